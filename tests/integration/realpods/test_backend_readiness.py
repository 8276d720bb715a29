"""An MCPServer backend pod is Ready once it listens, not once it starts (mcpserver_backend_readiness_probe), on
running pods.

ToolHive gives the backend's container no readiness probe, so without the collection's a new backend pod is Ready,
and in its Service, from its process's first second: a server that loads for a while refuses the requests sent to
it meanwhile, and ToolHive's proxy answers them with an empty 502 (a kubectl drain of the kind workers lost 12 calls
of 2,890 that way, in CI). The test server here waits LISTEN_AFTER_SECONDS before it listens; its pod is Ready that
much after its container starts with the probe, and at once without it (the control, on the same server, rolled by a
deploy that only turns the probe off).

One deploy.yml run in a fresh namespace: the MCPServer `greeter` (1 proxy, 1 backend), then the same run without
the probe.
"""
from datetime import datetime

import pytest

from .conftest import deploy, wait_until
from .traffic import PROXY_PORT

pytestmark = pytest.mark.usefixtures("real_nodes")

BACKEND, PROXY = "app=greeter,toolhive-basename=greeter", "app.kubernetes.io/instance=greeter"
LISTEN_AFTER_SECONDS = 8


def job(namespace, images, **extra):
    return dict({"toolhive_namespace": namespace, "toolhive_group": "backend-readiness", "redis_image": images["redis"],
                 "vmcp_instances": [],
                 "mcpserver_servers": [{"name": "greeter", "image": images["greeter"], "transport": "streamable-http",
                                        "mcp_port": PROXY_PORT, "replicas": 1, "backend_replicas": 1,
                                        "env": [{"name": "LISTEN_AFTER_SECONDS",
                                                 "value": str(LISTEN_AFTER_SECONDS)}]}]}, **extra)


def backend_pod(deployment, not_uid=None):
    """The backend's one Ready pod that is not NOT_UID, once there is one: (uid, its container mcp's readiness probe,
    seconds from the container's start to the pod's Ready)."""
    def stamp(text):
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    def ready():
        names = deployment.pods(BACKEND)
        if len(names) != 1:
            return None
        pod = deployment.kubectl("get", "pod", names[0], "-n", deployment.namespace, "-o", "json")
        return None if pod["metadata"]["uid"] == not_uid else pod
    wait_until("the backend's new pod to be Ready", ready, timeout=180)
    pod = ready()
    [container] = [c for c in pod["spec"]["containers"] if c["name"] == "mcp"]
    [status] = [s for s in pod["status"]["containerStatuses"] if s["name"] == "mcp"]
    [condition] = [c for c in pod["status"]["conditions"] if c["type"] == "Ready"]
    seconds = (stamp(condition["lastTransitionTime"]) - stamp(status["state"]["running"]["startedAt"])).total_seconds()
    return pod["metadata"]["uid"], container.get("readinessProbe"), seconds


def test_a_backend_pod_is_ready_once_it_listens_and_without_the_probe_before(run_playbook, kubectl, fresh_namespace,
                                                                             images):
    probed = deploy(run_playbook, kubectl, job(fresh_namespace, images),
                    lambda deployment: deployment.pods(PROXY) and deployment.pods(BACKEND))
    uid, probe, seconds = backend_pod(probed)
    assert probe == {"tcpSocket": {"port": PROXY_PORT}, "periodSeconds": 1, "failureThreshold": 3, "timeoutSeconds": 1,
                     "successThreshold": 1}
    # Timestamps are whole seconds: the process listens LISTEN_AFTER_SECONDS (and its start) after the container's.
    assert seconds >= LISTEN_AFTER_SECONDS - 1, seconds

    # The control: the same server, its backend rolled by the deploy that turns the probe off.
    unprobed = deploy(run_playbook, kubectl, job(fresh_namespace, images, mcpserver_backend_readiness_probe=False),
                      lambda deployment: True)
    _uid, probe, unprobed_seconds = backend_pod(unprobed, not_uid=uid)
    print(f"\nfrom the container's start to Ready: {seconds:.0f} s with the probe, {unprobed_seconds:.0f} s without; "
          f"the server listens after {LISTEN_AFTER_SECONDS} s")
    assert probe is None
    assert unprobed_seconds < LISTEN_AFTER_SECONDS - 3, unprobed_seconds  # Ready while it did not listen yet

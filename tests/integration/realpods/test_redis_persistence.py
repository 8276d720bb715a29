"""Sessions through a deleted Redis pod, on running pods: with `redis_persistence: true` they stand, without it they
end.

With persistence Redis is a StatefulSet whose PVC (the kind bed's default StorageClass `standard`) holds its
append-only file, written every second and once more when Redis stops on the SIGTERM of the pod's deletion: the new
pod, on the same volume, loads every session back. Without it (a Deployment, emptyDir) the new pod starts empty.

Each test deploys with playbooks/deploy.yml in a namespace of its own: Redis, the MCPServer `everything` (go-sdk's,
2 proxies, 1 backend) and a VirtualMCPServer `gateway` of 2 in front of it, with Redis session storage and
`sessionAffinity: None` (traffic.traffic_job without its remote proxy). A real client (the official `mcp` SDK, the
API server's service proxy to the gateway's Service) opens a session and calls a tool; the Redis pod is deleted and
its replacement waited for (Ready); the same open session, idle meanwhile, calls again. While Redis restarts another
long-lived session and a stream of new sessions call without pause (traffic.traffic_during): what they see is
printed (docs/performance.md, "The Redis pod deleted under live traffic").
"""
import subprocess
import time
import uuid

import pytest

from .conftest import deploy, wait_until
from .podclient import run
from .serviceclient import service_session, service_tools
from .traffic import SERVICES, causes, counted, traffic_job, greeted, traffic_during

pytestmark = pytest.mark.usefixtures("real_nodes")

GATEWAY = "app.kubernetes.io/name=virtualmcpserver,app.kubernetes.io/instance=gateway"
REDIS = "app.kubernetes.io/name=redis"
MAX_SECONDS = 300


@pytest.fixture
def namespace(kubectl):
    """A namespace name nobody uses, one per test (the playbook creates it); deleted afterwards."""
    name = f"rp-{uuid.uuid4().hex[:8]}"
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


def deployed(run_playbook, kubectl, kubeconfig, namespace, images, persistence):
    service, port, tool = SERVICES["gateway"]

    def serving(deployment):
        """Both gateway pods Ready, and a new session through the Service lists the backend's tool."""
        try:
            return (len(deployment.pods(GATEWAY)) == 2
                    and tool in run(service_tools(kubeconfig, deployment.namespace, service, port), timeout=30))
        except Exception:  # pylint: disable=broad-except  # not serving yet: asked again a second later
            return False

    job = traffic_job(namespace, images, "persistence", backend_replicas=1, redis_persistence=persistence,
                      mcpremoteproxy_proxies=[])
    return deploy(run_playbook, kubectl, job, serving)


def redis_pod(kubectl, namespace):
    """(name, uid, Ready) of the one Redis pod not being deleted, or None."""
    pods = [p for p in kubectl("get", "pods", "-n", namespace, "-l", REDIS, "-o", "json")["items"]
            if not p["metadata"].get("deletionTimestamp")]
    if len(pods) != 1:
        return None
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in pods[0]["status"].get("conditions", []))
    return pods[0]["metadata"]["name"], pods[0]["metadata"]["uid"], ready


def redis_cli(kubectl, namespace, pod, *args):
    """redis-cli ARGS in the Redis pod (the password from its environment, as test_redis_day2.running_config)."""
    return kubectl("exec", "-n", namespace, pod, "--", "sh", "-c",
                   'REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli --no-auth-warning "$@"', "sh", *args).stdout.split()


def restart_redis(kubectl, kubeconfig, namespace, session_id):
    """Delete the Redis pod and wait until its replacement is Ready. Returns what Redis held before and after (DBSIZE,
    and the keys of the session SESSION_ID), the old pod's log to its end and the new one's, and the seconds from the
    delete to Ready."""
    def held(pod):
        return {"dbsize": int(redis_cli(kubectl, namespace, pod, "DBSIZE")[0]),
                "keys": sorted(redis_cli(kubectl, namespace, pod, "--scan", "--pattern", f"*{session_id}*"))}

    name, uid, _ready = redis_pod(kubectl, namespace)
    before = held(name)
    # The old Redis's log to its last line: what it did on the SIGTERM.
    follow = subprocess.Popen(["kubectl", "--kubeconfig", kubeconfig, "logs", "-f", "-n", namespace, name],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(1)  # following
    deleted = time.monotonic()
    kubectl("delete", "pod", name, "-n", namespace, "--wait=false")
    new = wait_until("a new Redis pod Ready",
                     lambda: (pod := redis_pod(kubectl, namespace)) and pod[1] != uid and pod[2] and pod,
                     timeout=180, interval=0.2)
    ready = time.monotonic()
    old_log = follow.communicate(timeout=60)[0]
    return {"before": before, "after": held(new[0]), "deleted": deleted, "ready_after": ready - deleted,
            "old_log": old_log, "new_log": kubectl("logs", "-n", namespace, new[0]).stdout}


async def a_session_through_a_restart(kubectl, kubeconfig, namespace):
    """One session through the gateway Service: a call, Redis restarted under other clients' traffic, the same call.
    Returns (the first call's error or None, the last one's, restart_redis's result, the traffic's tallies)."""
    service, port, tool = SERVICES["gateway"]
    async with service_session(kubeconfig, namespace, service, port) as session:
        first = greeted(await session.call_tool(tool, {"name": "before"}), "before")
        restart, tallies = await traffic_during(kubeconfig, namespace, {"gateway": SERVICES["gateway"]},
                                                lambda: restart_redis(kubectl, kubeconfig, namespace,
                                                                      session.session_id))
        try:
            last = greeted(await session.call_tool(tool, {"name": "after"}), "after")
        except Exception as exc:  # pylint: disable=broad-except  # what a client sees is the finding
            last = f"{exc!r}; HTTP answers: {session.errors[-3:]}"
    return first, last, restart, tallies


def what_the_traffic_saw(persistence, restart, tallies):
    """Print what the other clients saw while Redis restarted (times from the delete); returns their failures."""
    _calls, failed, _summary = counted(tallies)
    print(f"\nredis_persistence {persistence}: the new Redis pod Ready {restart['ready_after']:.1f} s after the delete; "
          f"Redis before {restart['before']}, after {restart['after']}")
    for name, tally in zip(("the long-lived session", "new sessions"), tallies["gateway"]):
        times = sorted(at - restart["deleted"] for at, _what, _error in tally.failures)
        seconds, at = tally.slowest
        print(f"  {name}: {tally.calls} calls, {len(tally.failures)} failed ({causes(tally.failures)})"
              + (f" from {times[0]:+.1f} s to {times[-1]:+.1f} s" if times else "")
              + f"; the slowest {seconds:.2f} s, ended at {at - restart['deleted']:+.1f} s"
              + (f"; first failure: {tally.failures[0][2][:300]}" if tally.failures else ""))
    return failed


def test_with_persistence_an_open_session_answers_after_redis_is_deleted(run_playbook, kubectl, kubeconfig,
                                                                         namespace, images):
    deployed(run_playbook, kubectl, kubeconfig, namespace, images, persistence=True)
    assert kubectl("get", "statefulset", "toolhive-redis", "-n", namespace, "-o", "json")["status"]["readyReplicas"] == 1
    claim = kubectl("get", "pvc", "data-toolhive-redis-0", "-n", namespace, "-o", "json")
    assert claim["status"]["phase"] == "Bound" and claim["spec"]["storageClassName"] == "standard", claim["status"]

    first, last, restart, tallies = run(a_session_through_a_restart(kubectl, kubeconfig, namespace),
                                        timeout=MAX_SECONDS)
    what_the_traffic_saw(True, restart, tallies)
    print(f"the old Redis's last lines: {restart['old_log'].splitlines()[-4:]}")
    assert first is None, first
    # Redis wrote its append-only file out on the SIGTERM, and the new pod loaded it from the same volume: the
    # session's keys are there.
    assert "Calling fsync() on the AOF file" in restart["old_log"], restart["old_log"][-2000:]
    assert "DB loaded from append only file" in restart["new_log"], restart["new_log"][-2000:]
    assert restart["before"]["keys"], restart["before"]
    assert set(restart["before"]["keys"]) <= set(restart["after"]["keys"]), restart
    assert last is None, last


def test_without_persistence_an_open_session_ends_when_redis_is_deleted(run_playbook, kubectl, kubeconfig,
                                                                        namespace, images):
    """The control: the same restart of a Redis that keeps no data ends the session, and the client is told so."""
    deployed(run_playbook, kubectl, kubeconfig, namespace, images, persistence=False)
    assert kubectl("get", "deployment", "toolhive-redis", "-n", namespace, "-o", "json")["status"]["readyReplicas"] == 1

    first, last, restart, tallies = run(a_session_through_a_restart(kubectl, kubeconfig, namespace),
                                        timeout=MAX_SECONDS)
    failed = what_the_traffic_saw(False, restart, tallies)
    print(f"the open session's call after the restart: {last}")
    assert first is None, first
    assert restart["before"]["keys"] and not restart["after"]["keys"], restart
    # The client is told its session is gone (404: MCP's answer for a session the server no longer knows).
    assert last is not None and "404" in last, f"the session answered though Redis lost it: {last}"
    assert failed, "no call of the other clients failed though Redis lost their sessions"

"""Scaling and rolling servers with session storage while real clients call: no call reaches a stopped pod (issue 25).

One deploy.yml run in a fresh namespace on running pods, on the kind bed's workers: the standalone Redis, the
MCPServer `everything` (2 proxies, 1 backend), a VirtualMCPServer `gateway` of 2 and an MCPRemoteProxy `upstream`
of 2 in front of `everything`, all with Redis and `sessionAffinity: None`; the collection's defaults. The traffic
(traffic.py): on each of the 3 Services one long-lived session and a stream of new sessions, every call a
`tools/call`, at most 3,000 calls per client.

One backend: ToolHive pins each proxy pod, not each session, to a backend pod (a ClientIP Service, "not
per-MCP-session stickiness" in its pkg/container/kubernetes), and go-sdk's everything keeps its sessions in memory;
with two backends, a new proxy pod sends a session to the backend that does not hold it (HTTP 404, "session not
found": 42 of 6,015 calls while the proxies were scaled, seen here).
"""
import json

import pytest

from .conftest import REPO, deploy
from .podclient import run
from .traffic import KEPT_CONNECTION, SERVICES, causes, everything_job, timed, traffic_during, traffic_report

pytestmark = pytest.mark.usefixtures("real_nodes")

# The servers of the job, as toolhive.k8s.scale names them, and their Deployments' pods.
SERVERS = (("VirtualMCPServer", "gateway"), ("MCPServer", "everything"), ("MCPRemoteProxy", "upstream"))
PODS = ("app.kubernetes.io/name=virtualmcpserver,app.kubernetes.io/instance=gateway",
        "app.kubernetes.io/name=mcpserver,app.kubernetes.io/instance=everything",
        "app.kubernetes.io/name=mcpremoteproxy,app.kubernetes.io/instance=upstream")
MAX_SECONDS = 540
# KEPT_CONNECTIONS: what may still fail, only a call lost on a kept connection and at most 1 in 500. A ToolHive proxy
# in front of another (the gateway, the remote proxy) keeps a connection open to a pod that ends and does not send
# again a request lost on it (test_password_rotation, docs/redis.md); nothing on the pods can change that. Measured:
# 0 to 2 in about 4,000 calls a run (1 in 1,900 at worst); any other failure, such as a refused connection, fails.


def job(namespace, images, **extra):
    """The MCPServer without its replica field: scaled through it, the operator would roll every proxy pod and the
    backend at each scale (kinds.py "spec_change_rolls"); without it, scale sets the proxy Deployment's scale
    subresource, as `kubectl scale` does."""
    variables = everything_job(namespace, images, "scaling", backend_replicas=1, **extra)
    del variables["mcpserver_servers"][0]["replicas"]
    return variables


@pytest.fixture(scope="module")
def deployed(run_playbook, kubectl, fresh_namespace, images):
    deployment = deploy(run_playbook, kubectl, job(fresh_namespace, images),
                        lambda deployment: all(deployment.pods(selector) for selector in PODS))
    two = run_playbook(REPO / "playbooks" / "scale.yml", extra_vars={
        "toolhive_kind": "MCPServer", "toolhive_name": "everything", "toolhive_namespace": fresh_namespace,
        "toolhive_replicas": 2})
    assert two.returncode == 0, two.output[-3000:]
    assert all(len(deployment.pods(selector)) == 2 for selector in PODS)
    return deployment


def test_scaling_each_server_down_and_up_sends_no_call_to_a_stopped_pod(deployed, kubeconfig, run_playbook, tmp_path):
    """toolhive.k8s.scale takes each server 2 -> 1 -> 3 -> 2 (the MCPServer: its proxies) while every client
    calls: each pod a scale-down removes leaves its Services before it stops (restarts.release_surplus; an MCPServer
    proxy has no preStop hook), so no call is sent to a pod that has stopped. Without it, a remote proxy's session met the MCPServer proxy's
    502 twice in 1,367 calls (seen here)."""
    play = tmp_path / "scale.yml"
    play.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": f"{kind} {name} to {replicas}", "toolhive.k8s.scale": {
            "kind": kind, "name": name, "namespace": deployed.namespace, "replicas": replicas},
         "register": "scaled"} for replicas in (1, 3, 2) for kind, name in SERVERS] + [
        {"ansible.builtin.debug": {"var": "scaled.drained_pods"}}]}]))
    (scaled, seconds), tallies = run(traffic_during(kubeconfig, deployed.namespace, SERVICES,
                                                    timed(lambda: run_playbook(play, extra_vars={}))),
                                     timeout=MAX_SECONDS)
    assert scaled.returncode == 0 and scaled.output.count("changed: [localhost]") == 9, scaled.output[-4000:]
    calls, failed = traffic_report(tallies, "scaling each server 2 -> 1 -> 3 -> 2", seconds)
    # KEPT_CONNECTIONS: 1 of 3,255 calls here once, a new session through the remote proxy.
    assert set(causes(failed)) <= {KEPT_CONNECTION} and len(failed) <= calls // 500, (calls, failed)


def test_a_deploy_that_changes_the_pod_templates_rolls_them_sending_no_call_to_a_stopped_pod(
        deployed, kubectl, kubeconfig, run_playbook, images):
    """deploy.yml with a longer drain for the gateway and the remote proxy: their Deployments roll while every
    client calls, and no call is sent to a pod that has stopped. (A changed MCPServer would roll its proxies and restart its backend, whose
    sessions go with it: kinds.py "spec_change_rolls".)"""
    def generations():
        return {name: kubectl("get", "deployment", name, "-n", deployed.namespace, "-o", "json")["metadata"][
            "generation"] for name in ("gateway", "upstream", "everything")}
    before = generations()
    changed = job(deployed.namespace, images, vmcp_drain_seconds=12, mcpremoteproxy_drain_seconds=12)
    (rolled, seconds), tallies = run(traffic_during(kubeconfig, deployed.namespace, SERVICES, timed(
        lambda: run_playbook(REPO / "playbooks" / "deploy.yml", extra_vars=changed))), timeout=MAX_SECONDS)
    assert rolled.returncode == 0, rolled.output[-4000:]
    after = generations()
    # The gateway's and the remote proxy's Deployments rolled; the MCPServer's did not.
    assert (after["gateway"] > before["gateway"], after["upstream"] > before["upstream"],
            after["everything"] == before["everything"]) == (True, True, True), (before, after)
    calls, failed = traffic_report(tallies, "a deploy that rolls the gateway and the remote proxy", seconds)
    # KEPT_CONNECTIONS.
    assert set(causes(failed)) <= {KEPT_CONNECTION} and len(failed) <= calls // 500, (calls, failed)

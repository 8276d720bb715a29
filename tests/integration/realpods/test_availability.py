"""Servers that keep answering while their pods move (issue 25): spread over the nodes, paced by the disruption
budgets the collection owns, each stopping pod draining first, on the kind bed's two workers, under live MCP traffic.

One deploy.yml run in a fresh namespace on running pods: the standalone Redis, the MCPServer `everything` (2 proxies,
2 backends), a VirtualMCPServer `gateway` of 2 and an MCPRemoteProxy `upstream` of 2 in front of `everything`, all
with Redis and `sessionAffinity: None`; the collection's defaults (drain 10 s, spread, budgets).
"""
import subprocess
import time

import pytest

from ..host import ready_nodes
from .conftest import REPO, deploy
from .podclient import run
from .traffic import counted, traffic_during

pytestmark = pytest.mark.usefixtures("real_nodes")

DEPLOY = REPO / "playbooks" / "deploy.yml"
PROXY_PORT, GATEWAY_PORT = 8080, 4483
SERVICES = {"gateway": ("vmcp-gateway", GATEWAY_PORT, "everything_greet"),
            "proxy": ("mcp-everything-proxy", PROXY_PORT, "greet"),
            "remote proxy": ("mcp-upstream-remote-proxy", PROXY_PORT, "greet")}
# Each workload's pods: (budget, label selector).
WORKLOADS = {"gateway-vmcp": "app.kubernetes.io/name=virtualmcpserver,app.kubernetes.io/instance=gateway",
             "everything-proxy": "app.kubernetes.io/name=mcpserver,app.kubernetes.io/instance=everything",
             "everything-backend": "app=everything,toolhive-basename=everything",
             "upstream-proxy": "app.kubernetes.io/name=mcpremoteproxy,app.kubernetes.io/instance=upstream"}
SERVER_PODS = "toolhive=true"  # every server pod (the proxies', gateway's and backends'), not Redis's
MAX_SECONDS = 420


def deploy_vars(namespace, images):
    return {
        "toolhive_namespace": namespace,
        "toolhive_group": "availability",
        "redis_image": images["redis"],
        "mcpserver_servers": [{"name": "everything", "image": images["everything"], "transport": "streamable-http",
                               "mcp_port": PROXY_PORT, "replicas": 2, "backend_replicas": 2,
                               "session_affinity": "None"}],
        "vmcp_instances": [{"name": "gateway", "replicas": 2, "session_affinity": "None"}],
        # In no group: the gateway's health check reaches a remote proxy without its path (test_password_rotation).
        "mcpremoteproxy_proxies": [{"name": "upstream", "replicas": 2, "session_affinity": "None", "group": "",
                                    "remote_url": f"http://mcp-everything-proxy.{namespace}.svc:{PROXY_PORT}/mcp"}],
    }


@pytest.fixture(scope="module")
def workers(kubectl, kubeconfig):
    return ready_nodes(kubectl, kubeconfig, least=2)


@pytest.fixture(scope="module")
def deployed(run_playbook, kubectl, fresh_namespace, images, workers):
    def serving(deployment):
        return all(len(deployment.pods(selector)) == 2 for selector in WORKLOADS.values())
    return deploy(run_playbook, kubectl, deploy_vars(fresh_namespace, images), serving)


def nodes_of(kubectl, namespace, selector):
    pods = kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json")["items"]
    return sorted(p["spec"].get("nodeName") for p in pods if not p["metadata"].get("deletionTimestamp"))


def test_each_workloads_pods_run_on_different_nodes(deployed, kubectl):
    placed = {budget: nodes_of(kubectl, deployed.namespace, selector) for budget, selector in WORKLOADS.items()}
    assert all(len(set(nodes)) == 2 for nodes in placed.values()), placed


def test_each_workload_has_a_budget_that_counts_its_pods(deployed, kubectl):
    listed = kubectl("get", "poddisruptionbudgets", "-n", deployed.namespace, "-o", "json")["items"]
    budgets = {b["metadata"]["name"]: b for b in listed}
    assert sorted(budgets) == sorted(WORKLOADS)
    for name, budget in budgets.items():
        # The budget's selector finds the workload's 2 pods, both healthy, and lets one go.
        assert (budget["status"]["expectedPods"], budget["status"]["currentHealthy"],
                budget["status"]["disruptionsAllowed"]) == (2, 2, 1), (name, budget["status"])


def test_the_operator_keeps_the_drain_on_the_gateway_and_the_remote_proxy(deployed, kubectl):
    """The preStop sleep and its grace period reach the pods through podTemplateSpec (the operator merges it)."""
    for deployment, container, grace in (("gateway", "vmcp", 30), ("upstream", "toolhive", 40)):
        pod = kubectl("get", "deployment", deployment, "-n", deployed.namespace, "-o", "json")["spec"]["template"]["spec"]
        [main] = [c for c in pod["containers"] if c["name"] == container]
        assert main["lifecycle"] == {"preStop": {"sleep": {"seconds": 10}}}, main.get("lifecycle")
        assert pod["terminationGracePeriodSeconds"] == grace


def drain(kubeconfig, node):
    """`kubectl drain` of the servers' pods on NODE (Redis and the cluster's own pods stay: their availability is not
    the servers'), as a platform team runs it: it retries an eviction a budget refuses, every 5 s."""
    return subprocess.run(["kubectl", "--kubeconfig", kubeconfig, "drain", node, "--pod-selector", SERVER_PODS,
                           "--ignore-daemonsets", "--delete-emptydir-data", "--timeout", "240s"],
                          capture_output=True, text=True, timeout=300, check=False)


def test_draining_both_workers_in_turn_fails_no_call(deployed, kubectl, kubeconfig, workers):
    """Node maintenance, one node after the other: the first drain moves one pod of each workload to the other node;
    the second finds both pods of each workload there, and the budgets let them go one at a time (the second waits
    until the first's replacement is ready on the node drained before)."""
    namespace, first, second = deployed.namespace, workers[0], workers[1]

    def maintenance():
        started, results = time.monotonic(), []
        for node in (first, second):
            results.append(drain(kubeconfig, node))
            kubectl("uncordon", node)
        return results, time.monotonic() - started

    try:
        (results, seconds), tallies = run(traffic_during(kubeconfig, namespace, SERVICES, maintenance),
                                          timeout=MAX_SECONDS + 120)
    finally:
        for node in workers:
            kubectl("uncordon", node, check=False)
    calls, failed, summary = counted(tallies)
    print(f"\ntwo drains took {seconds:.1f} s; per Service (long-lived calls, failed, new-session calls, failed): "
          f"{summary}; failures: {failed[:10]}")
    for result in results:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # The second drain met the budgets: an eviction refused, then retried until the replacement was ready.
    assert "violate the pod's disruption budget" in results[1].stderr + results[1].stdout, results[1].stderr[-3000:]
    for budget, selector in WORKLOADS.items():
        assert len(deployed.pods(selector)) == 2, budget
    assert all(kept >= 50 and fresh >= 10 for kept, _, fresh, _ in summary.values()), summary
    assert failed == [], (calls, failed)

"""Servers that keep answering while their pods move (issue 25): spread over the nodes, paced by the disruption
budgets the collection owns, each stopping pod draining first, on the kind bed's two workers, under live MCP traffic.

One deploy.yml run in a fresh namespace on running pods: the standalone Redis, the MCPServer `greeter` (2 proxies,
2 backends), a VirtualMCPServer `gateway` of 2 and an MCPRemoteProxy `upstream` of 2 in front of `greeter`, all
with Redis and `sessionAffinity: None`; the collection's defaults (drain 10 s, spread, budgets, the backend's
readiness probe). `greeter` (testbed/images/stateless-greeter.py) keeps no session in memory, so what the drains lose
is the collection's, not the backend's: test_backend_sessions.py shows what a backend that keeps them loses when its
pod moves.
"""
import json
import re
import subprocess
import time

import pytest

from ..host import ready_nodes
from .conftest import deploy, wait_until
from .incluster import traffic_in_cluster
from .podclient import run
from .traffic import causes, services, traffic_job, traffic_report

# Alone, after the others (-m serial): it drains the nodes every other module's pods run on.
pytestmark = [pytest.mark.usefixtures("real_nodes"), pytest.mark.serial]

SERVER = "greeter"  # traffic.TEST_SERVERS: the one that keeps no session
# Each workload's pods: {budget: label selector}.
WORKLOADS = {"gateway-vmcp": "app.kubernetes.io/name=virtualmcpserver,app.kubernetes.io/instance=gateway",
             f"{SERVER}-proxy": f"app.kubernetes.io/name=mcpserver,app.kubernetes.io/instance={SERVER}",
             f"{SERVER}-backend": f"app={SERVER},toolhive-basename={SERVER}",
             "upstream-proxy": "app.kubernetes.io/name=mcpremoteproxy,app.kubernetes.io/instance=upstream"}
SERVER_PODS = "toolhive=true"  # every server pod (the proxies', gateway's and backends'), not Redis's
MAX_SECONDS = 420


@pytest.fixture(scope="module")
def workers(kubectl, kubeconfig):
    return ready_nodes(kubectl, kubeconfig, least=2)


@pytest.fixture(scope="module")
def deployed(run_playbook, kubectl, fresh_namespace, images, workers):
    def serving(deployment):
        return all(len(deployment.pods(selector)) == 2 for selector in WORKLOADS.values())
    job = traffic_job(fresh_namespace, images, "availability", backend_replicas=2, server=SERVER)
    return deploy(run_playbook, kubectl, job, serving)


def nodes_of(kubectl, namespace, selector):
    pods = kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json")["items"]
    return sorted(p["spec"].get("nodeName") for p in pods if not p["metadata"].get("deletionTimestamp"))


def test_each_workloads_pods_run_on_different_nodes(deployed, kubectl):
    """The spread the collection sets; an MCPServer proxy's pods have only the scheduler's own default spread (the
    operator writes their pod template whole), so they are not counted."""
    placed = {budget: nodes_of(kubectl, deployed.namespace, selector) for budget, selector in WORKLOADS.items()
              if budget != f"{SERVER}-proxy"}
    assert all(len(set(nodes)) == 2 for nodes in placed.values()), placed


def test_each_workload_has_a_budget_that_counts_its_pods(deployed, kubectl):
    listed = kubectl("get", "poddisruptionbudgets", "-n", deployed.namespace, "-o", "json")["items"]
    budgets = {b["metadata"]["name"]: b for b in listed}
    assert sorted(budgets) == sorted(WORKLOADS)
    for name, budget in budgets.items():
        # The budget's selector finds the workload's 2 pods, both healthy, and lets one go.
        assert (budget["status"]["expectedPods"], budget["status"]["currentHealthy"],
                budget["status"]["disruptionsAllowed"]) == (2, 2, 1), (name, budget["status"])


def test_every_server_pod_has_its_drain(deployed, kubectl):
    """The preStop sleep and its grace period reach the gateway's and the remote proxy's pods through podTemplateSpec
    (the operator merges it); an MCPServer proxy's pod template the operator writes whole, and each of its pods gets
    them from the operator role's MutatingAdmissionPolicy as it is made (its template has none)."""
    for deployment, container, grace in (("gateway", "vmcp", 30), ("upstream", "toolhive", 40)):
        pod = kubectl("get", "deployment", deployment, "-n", deployed.namespace, "-o", "json")["spec"]["template"]["spec"]
        [main] = [c for c in pod["containers"] if c["name"] == container]
        assert main["lifecycle"] == {"preStop": {"sleep": {"seconds": 10}}}, main.get("lifecycle")
        assert pod["terminationGracePeriodSeconds"] == grace
    template = kubectl("get", "deployment", SERVER, "-n", deployed.namespace, "-o", "json")["spec"]["template"]
    assert "lifecycle" not in template["spec"]["containers"][0]
    assert deployed.drains(WORKLOADS[f"{SERVER}-proxy"], "toolhive") == [({"preStop": {"sleep": {"seconds": 10}}}, 40)] * 2


def drain(kubeconfig, node):
    """`kubectl drain` of the servers' pods on NODE (Redis and the cluster's own pods stay: their availability is not
    the servers'), as a platform team runs it: it retries an eviction a budget refuses, every 5 s."""
    return subprocess.run(["kubectl", "--kubeconfig", kubeconfig, "drain", node, "--pod-selector", SERVER_PODS,
                           "--ignore-daemonsets", "--delete-emptydir-data", "--timeout", "240s"],
                          capture_output=True, text=True, timeout=300, check=False)


def maintenance(kubectl, nodes, drain_one):
    """Each node drained in turn (DRAIN_ONE), and put back in service before the next: the action of the traffic,
    returning ([each drain's result], seconds)."""
    def action():
        started, results = time.monotonic(), []
        for node in nodes:
            results.append(drain_one(node))
            kubectl("uncordon", node)
        return results, time.monotonic() - started
    return action


def under_traffic(deployed, kubectl, kubeconfig, workers, drain_one, what, client):
    """The drains while the clients call from the CLIENT image's pod on the control plane's node, which no drain
    moves."""
    try:
        (results, seconds), tallies = run(traffic_in_cluster(kubeconfig, deployed.namespace, services(SERVER),
                                                             maintenance(kubectl, workers, drain_one), client),
                                          timeout=MAX_SECONDS + 120)
    finally:
        for node in workers:
            kubectl("uncordon", node, check=False)
    calls, failed = traffic_report(tallies, what, seconds)
    # A drain does not wait for the replacements: every workload is whole again soon after.
    wait_until("2 ready pods of every workload", lambda: all(
        len(deployed.pods(selector)) == 2 for selector in WORKLOADS.values()), timeout=120)
    return results, calls, failed


def test_kubectl_drain_of_both_workers_in_turn_is_paced_by_the_budgets(deployed, kubectl, kubeconfig, workers, images):
    """Node maintenance with kubectl alone, one node after the other: the first drain moves one pod of each workload
    to the other node; the second finds both pods of each workload there, and the budgets let them go one at a time
    (kubectl retries the second eviction until the first's replacement is ready on the node drained before). Every
    evicted pod drains (the preStop sleeps), so no call fails."""
    results, calls, failed = under_traffic(deployed, kubectl, kubeconfig, workers,
                                           lambda node: drain(kubeconfig, node), "two kubectl drains", images["client"])
    for result in results:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "violate the pod's disruption budget" in results[1].stderr + results[1].stdout, results[1].stderr[-3000:]
    assert not failed, (calls, causes(failed), failed[:5])


def test_the_collections_drain_of_both_workers_in_turn_fails_no_call(
        deployed, kubectl, kubeconfig, workers, run_playbook, images, tmp_path):
    """toolhive.k8s.drain_node on each node in turn moves every server pod off it, and no call fails; kubectl drain
    then finds none of them to evict."""
    def drain_one(node):
        play = tmp_path / f"drain-{node}.yml"
        play.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": [{
            "toolhive.k8s.drain_node": {"node": node, "namespaces": [deployed.namespace]},
            "register": "moved"}, {"ansible.builtin.debug": {"var": "moved.moved_pods"}}]}]))
        there = kubectl("get", "pods", "-n", deployed.namespace, "-l", SERVER_PODS, "--field-selector",
                        f"spec.nodeName={node}", "-o", "json")["items"]
        moved = run_playbook(play, extra_vars={})
        return moved, sorted(p["metadata"]["name"] for p in there), drain(kubeconfig, node)

    results, calls, failed = under_traffic(deployed, kubectl, kubeconfig, workers, drain_one,
                                           "two drains by toolhive.k8s.drain_node", images["client"])
    # Every server pod the node held was moved, and it held some (the second node: every pod the first one had).
    for moved, there, drained in results:
        assert moved.returncode == 0, moved.output[-4000:]
        assert sorted(re.findall(rf"- {deployed.namespace}/(\S+)", moved.output)) == there and there, moved.output[-3000:]
        assert drained.returncode == 0 and "evicting pod" not in drained.stdout + drained.stderr, drained.stderr
    assert not failed, (calls, causes(failed), failed[:5])

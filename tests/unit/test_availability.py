"""The PodDisruptionBudgets the deploy owns: one per workload, selecting exactly that workload's pods."""
import pytest

from ansible_collections.toolhive.k8s.plugins.module_utils import availability
from ansible_collections.toolhive.k8s.plugins.module_utils.kinds import SERVERS


@pytest.mark.parametrize("kind, expected", [
    ("VirtualMCPServer", {"gw-vmcp": {"app.kubernetes.io/name": "virtualmcpserver", "app.kubernetes.io/instance": "gw"}}),
    ("MCPServer", {"gw-proxy": {"app.kubernetes.io/name": "mcpserver", "app.kubernetes.io/instance": "gw"},
                   "gw-backend": {"app": "gw", "toolhive-basename": "gw"}}),
    ("MCPRemoteProxy", {"gw-proxy": {"app.kubernetes.io/name": "mcpremoteproxy", "app.kubernetes.io/instance": "gw"}}),
])
def test_one_budget_per_workload_selects_its_pods(kind, expected):
    budgets = availability.disruption_budgets(kind, "gw", "ns", {"team": "a"})
    assert {b["metadata"]["name"]: b["spec"]["selector"]["matchLabels"] for b in budgets} == expected
    for budget in budgets:
        assert budget["apiVersion"] == "policy/v1" and budget["metadata"]["namespace"] == "ns"
        # One pod at a time, and never blocked by a pod that is not ready; a single replica never blocks a drain.
        assert budget["spec"]["maxUnavailable"] == 1 and budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
        assert budget["metadata"]["labels"] == {"team": "a", "app.kubernetes.io/managed-by": "toolhive.k8s",
                                                "app.kubernetes.io/component": "disruption-budget",
                                                "app.kubernetes.io/instance": "gw"}


def test_an_mcpserver_named_like_the_proxy_label_keeps_its_budgets_apart():
    """An MCPServer named `mcpserver` labels its backend pods app=mcpserver, as the proxies' are: the backend's
    budget also asks for toolhive-basename, which only the backend's pods carry."""
    proxy = {"app": "mcpserver", "app.kubernetes.io/name": "mcpserver", "app.kubernetes.io/instance": "mcpserver",
             "toolhive-name": "mcpserver", "toolhive": "true"}  # as the operator labels them (seen on kind)
    backend = {"app": "mcpserver", "toolhive-basename": "mcpserver", "toolhive-name": "mcpserver", "toolhive": "true"}
    selects = {b["metadata"]["name"]: b["spec"]["selector"]["matchLabels"]
               for b in availability.disruption_budgets("MCPServer", "mcpserver", "ns")}
    for name, pod in (("mcpserver-proxy", proxy), ("mcpserver-backend", backend)):
        other = backend if pod is proxy else proxy
        assert selects[name].items() <= pod.items() and not selects[name].items() <= other.items(), name


def test_a_drain_longer_than_the_default_grace_period_gets_a_longer_one():
    for kind, server in SERVERS.items():
        for workload in server["workloads"].values():
            if workload["pod_template"] != "podTemplateSpec":
                continue
            pod = availability.pod_fields(kind, "x", drain_seconds=60)["podTemplateSpec"]["spec"]
            assert pod["terminationGracePeriodSeconds"] == 60 + workload["stop_seconds"]
            assert availability.pod_fields(kind, "x") == {}  # nothing asked, nothing written


def test_only_a_workload_without_a_readiness_probe_of_its_own_gets_one():
    """An MCPServer's backend: the operator's probes cover the gateway's and the remote proxy's containers."""
    probed = {}
    for kind in SERVERS:
        pod = availability.pod_fields(kind, "x", listen_port=3001).get("podTemplateSpec", {}).get("spec", {})
        for container in pod.get("containers", []):
            probed[(kind, container["name"])] = container["readinessProbe"]
    assert probed == {("MCPServer", "mcp"): {"tcpSocket": {"port": 3001}, "periodSeconds": 1, "failureThreshold": 3}}

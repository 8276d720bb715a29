"""The operator's global Redis default (chart values operator.defaultRedis, env TOOLHIVE_DEFAULT_REDIS_ADDR).

The operator gives that Redis to every server without sessionStorage (an MCPServer: without provider redis), so
the guards must not call such a server "without Redis". The collection reads the default from the operator's
Deployment. The test bed runs its operator as a process, so these tests add an operator Deployment of their own
(the Helm chart's labels and env, no pods): it is cluster-wide state, so they run alone (marker `serial`, after
the parallel run). Each shows the refusal first, without the Deployment, then the same request accepted.
"""
import json

import pytest

from .test_autoscale_status_preflight import server

pytestmark = pytest.mark.serial

ADDRESS = "sessions.toolhive-system.svc.cluster.local:6379"


@pytest.fixture
def operator_default(kubectl, namespace):
    """A function that adds an operator Deployment (v0.44.0, Helm labels) with the default Redis env, in the
    test's namespace; removed at the end."""
    def add(env=({"name": "TOOLHIVE_DEFAULT_REDIS_ADDR", "value": ADDRESS},
                 {"name": "TOOLHIVE_DEFAULT_REDIS_SECRET_NAME", "value": "sessions"})):
        labels = {"app.kubernetes.io/name": "toolhive-operator", "app.kubernetes.io/version": "v0.44.0"}
        kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "toolhive-operator", "labels": labels},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app.kubernetes.io/name": "toolhive-operator"}},
                     "template": {"metadata": {"labels": {"app.kubernetes.io/name": "toolhive-operator"}},
                                  "spec": {"containers": [{"name": "manager", "env": list(env),
                                                           "image": "ghcr.io/stacklok/toolhive/operator:v0.44.0"}]}}}}))
        return f"Deployment {namespace}/toolhive-operator"
    yield add
    kubectl("delete", "deployment", "toolhive-operator", "-n", namespace, "--ignore-not-found", "--wait=true")


def test_preflight_accepts_replicas_the_operator_default_serves(module, namespace, operator_default):
    resources = [server("gateway", namespace, "VirtualMCPServer", replicas=3),
                 server("fetch", namespace, transport="streamable-http", replicas=2)]
    refused = module("preflight", resources=resources)
    assert refused.failed and any("gateway: spec.replicas=3 without Redis session storage" in p
                                  for p in refused["problems"]), refused.output
    assert "operator_default_redis" in refused["msg"]  # the fix names the operator's default too

    source = operator_default()
    accepted = module("preflight", resources=resources)
    assert not accepted.failed, accepted.output
    assert f"the operator's default Redis {ADDRESS} ({source}) serves the servers without sessionStorage" \
        in accepted["checks"]
    assert not accepted["warnings_found"]


def test_an_explicit_session_storage_that_is_not_redis_is_not_replaced_for_a_gateway(module, namespace,
                                                                                     operator_default):
    """vMCP and MCPRemoteProxy: any sessionStorage in the spec turns the operator's default off (an MCPServer
    only with provider redis)."""
    operator_default()
    result = module("preflight", resources=[
        server("gateway", namespace, "VirtualMCPServer", replicas=2, sessionStorage={"provider": "memory"}),
        server("fetch", namespace, transport="streamable-http", replicas=2, sessionStorage={"provider": "memory"})])
    assert result.failed
    assert any("gateway: spec.replicas=2 without Redis" in p for p in result["problems"]), result["problems"]
    assert not any("fetch:" in p for p in result["problems"]), result["problems"]


def test_scale_and_status_count_the_operator_default(module, vmcp, namespace, operator_default):
    name = vmcp(replicas=1)
    refused = module("scale", kind="VirtualMCPServer", name=name, namespace=namespace, replicas=2, wait=False)
    assert refused.failed and "without Redis session storage" in refused["msg"], refused.output

    source = operator_default(env=[{"name": "TOOLHIVE_DEFAULT_REDIS_ADDR", "value": ADDRESS}])
    scaled = module("scale", kind="VirtualMCPServer", name=name, namespace=namespace, replicas=2, wait=False)
    assert not scaled.failed and scaled["after"] == 2, scaled.output

    status = module("status", kind="VirtualMCPServer", name=name, namespace=namespace)
    report = status["resources"][0]
    assert report["operator_session_storage"] == {"address": ADDRESS, "secret_name": None, "secret_key": None,
                                                  "source": source}
    assert any(f"share sessions through the operator's default Redis {ADDRESS}" in f for f in report["findings"])
    assert not any("without Redis session storage" in f for f in report["findings"]), report["findings"]

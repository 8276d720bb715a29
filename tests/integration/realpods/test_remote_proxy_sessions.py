"""MCPRemoteProxy on running pods: 2 proxy replicas with Redis in front of an MCP server in the cluster, and a
session opened through one proxy pod served by the other.

The remote server is the MCPServer `everything` (go-sdk's everything example) of the same deployment, reached by
its Service's `SERVICE.NAMESPACE.svc` name: the operator (v0.44.0, cmd/thv-operator/pkg/validation/url_validation.go)
refuses private IPs and any `*.cluster.local` host as internal (SSRF guard) and never starts the proxy, but checks
the name only (no DNS lookup), so the short Service name passes. One deploy.yml run, with its closing MCP check.
"""
import re
from functools import partial

import pytest

from .conftest import REPO, deploy
from .podclient import pod_session, run
from .test_sessions import open_on_first_then_use_the_others, redis_cli, served

pytestmark = pytest.mark.usefixtures("real_nodes")

PROXY_PORT = 8080


def deploy_vars(namespace, images):
    return {
        "toolhive_namespace": namespace,
        "toolhive_group": "remote",
        "redis_image": images["redis"],
        "toolhive_mcp_check": True,  # deploy.yml ends by speaking MCP to every replica of every server
        "mcpserver_servers": [{"name": "everything", "image": images["everything"], "transport": "streamable-http",
                               "mcp_port": 8080, "replicas": 1, "backend_replicas": 1}],
        "vmcp_instances": [],
        "mcpremoteproxy_proxies": [{
            "name": "upstream", "replicas": 2, "session_affinity": "None",
            "remote_url": f"http://mcp-everything-proxy.{namespace}.svc:{PROXY_PORT}/mcp"}],
    }


@pytest.fixture(scope="module")
def deployed(run_playbook, kubectl, fresh_namespace, images):
    def serving(deployment):
        return len(deployment.pods("app.kubernetes.io/instance=upstream,app=mcpremoteproxy")) == 2
    return deploy(run_playbook, kubectl, deploy_vars(fresh_namespace, images), serving)


def test_the_remote_proxy_runs_two_replicas_with_redis(deployed):
    proxy = deployed.kubectl("get", "mcpremoteproxy", "upstream", "-n", deployed.namespace, "-o", "json")
    conditions = {c["type"]: c for c in proxy["status"]["conditions"]}
    assert conditions["Ready"]["status"] == "True", conditions
    assert conditions["SessionStorageWarning"]["reason"] == "SessionStorageConfigured", conditions
    assert conditions["ConfigurationValid"]["status"] == "True", conditions  # the remote URL passed its guard
    assert proxy["status"]["url"] == f"http://mcp-upstream-remote-proxy.{deployed.namespace}.svc.cluster.local:8080"
    assert len(deployed.pods("app.kubernetes.io/instance=upstream,app=mcpremoteproxy")) == 2


def test_a_session_through_one_remote_proxy_pod_is_served_by_the_other(deployed, kubeconfig):
    """initialize on proxy pod A; tools/list and tools/call (greet) on B, then A: both serve it, because the
    session lives in Redis under the proxy's own prefix thv:NS:remote:upstream:."""
    pods = deployed.pods("app.kubernetes.io/instance=upstream,app=mcpremoteproxy")
    assert len(pods) == 2, pods
    answers, router = run(open_on_first_then_use_the_others(
        partial(pod_session, kubeconfig, deployed.namespace, PROXY_PORT), pods, "greet"))
    for pod in pods:
        served(answers, pod, "greet")
    assert [e.status for e in router.posts(pods[1])] == [200, 200], router.exchanges
    keys = redis_cli(deployed, "--scan", "--pattern", f"thv:{deployed.namespace}:remote:upstream:*")
    assert keys, "no session under the remote proxy's keyPrefix"


def test_status_reports_the_remote_proxy(deployed, run_playbook):
    result = run_playbook(REPO / "playbooks" / "status.yml",
                          extra_vars={"toolhive_namespace": deployed.namespace, "toolhive_mcp_check": True})
    assert result.returncode == 0, result.output[-3000:]
    report = " ".join(result.output.split())
    # toolhive.k8s.mcp_check through the proxy's pods: both answer, and the session one opened the other served.
    assert re.search(rf"MCPRemoteProxy {deployed.namespace}/upstream: phase Ready; proxy Deployment/upstream 2/2 "
                     r"ready; session storage redis; MCP: 2/2 replicas answer \(\d+ tools, [\d-]+ ms\); session from "
                     r"upstream-\S+ served by 1/1 other; OK", report), result.output[-3000:]

"""MCPRemoteProxy, ToolHive's third scalable kind, through the playbooks on the test bed: deployed by deploy.yml with
Redis session storage, found by status, scaled, autoscaled, guarded, torn down - like the other two kinds."""
import re

import pytest

from .test_deploy import PLAYBOOK, Writes, recap

REMOTE_URL = "https://mcp.example.com/mcp"  # never reached: KWOK's pods run nothing


def remote(namespace, **overrides):
    deploy_vars = {
        "toolhive_namespace": namespace,
        "toolhive_group": "team",
        "mcpserver_servers": [],
        "vmcp_instances": [],
        "mcpremoteproxy_proxies": [{"name": "up", "remote_url": REMOTE_URL, "replicas": 2,
                                    "session_affinity": "None", "resources": {"requests": {"cpu": "50m"}}}],
    }
    deploy_vars.update(overrides)
    return deploy_vars


def test_a_remote_proxy_deploys_with_redis_scales_autoscales_and_goes(run_playbook, kubectl, fresh_namespace):
    ns = fresh_namespace
    first = run_playbook(PLAYBOOK, extra_vars=remote(ns))
    assert recap(first.output)["failed"] == 0, first.output[-4000:]

    proxy = kubectl("get", "mcpremoteproxy", "up", "-n", ns, "-o", "json")
    assert proxy["spec"]["remoteUrl"] == REMOTE_URL and proxy["spec"]["replicas"] == 2
    assert proxy["spec"]["sessionAffinity"] == "None" and proxy["spec"]["groupRef"] == {"name": "team"}
    # Its own keyPrefix, as every server gets (plugins/filter/session_storage.py): thv:NAMESPACE:remote:NAME:.
    assert proxy["spec"]["sessionStorage"] == {
        "provider": "redis", "address": f"toolhive-redis.{ns}.svc.cluster.local:6379", "db": 0,
        "keyPrefix": f"thv:{ns}:remote:up:", "passwordRef": {"name": "toolhive-redis-auth", "key": "password"}}
    cond = {c["type"]: c for c in proxy["status"]["conditions"]}
    assert cond["Ready"]["status"] == "True", cond  # deploy.yml waited for it
    assert cond["SessionStorageWarning"]["reason"] == "SessionStorageConfigured", cond

    # What the operator runs for it (kinds.SERVERS): Deployment NAME (container toolhive, app=mcpremoteproxy,
    # owned by the resource) and Service mcp-NAME-remote-proxy with the affinity asked for.
    deployment = kubectl("get", "deployment", "up", "-n", ns, "-o", "json")
    assert deployment["metadata"]["labels"]["app"] == "mcpremoteproxy"
    assert deployment["metadata"]["labels"]["app.kubernetes.io/instance"] == "up"
    assert [ref["kind"] for ref in deployment["metadata"]["ownerReferences"] if ref.get("controller")] == \
        ["MCPRemoteProxy"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["name"] == "toolhive" and container["resources"]["requests"]["cpu"] == "50m"
    assert deployment["status"]["readyReplicas"] == 2
    service = kubectl("get", "service", "mcp-up-remote-proxy", "-n", ns, "-o", "json")
    assert service["spec"]["sessionAffinity"] == "None"

    writes = Writes(ns, kubectl)
    second = run_playbook(PLAYBOOK, extra_vars=remote(ns))
    assert recap(second.output)["changed"] == 0, second.output[-4000:]
    assert writes.count() == []  # a no-op run writes nothing (dry runs only)

    status = run_playbook("playbooks/status.yml", extra_vars={"toolhive_namespace": ns})
    assert recap(status.output)["failed"] == 0, status.output[-3000:]
    report = " ".join(status.output.split())  # the debug output wraps long lines
    assert re.search(rf"MCPRemoteProxy {ns}/up: phase Ready; proxy Deployment/up 2/2 ready; session storage redis",
                     report), status.output[-3000:]

    scaled = run_playbook("playbooks/scale.yml", extra_vars={
        "toolhive_namespace": ns, "toolhive_kind": "MCPRemoteProxy", "toolhive_name": "up", "toolhive_replicas": 3})
    assert recap(scaled.output)["failed"] == 0, scaled.output[-3000:]
    assert kubectl("get", "mcpremoteproxy", "up", "-n", ns, "-o", "json")["spec"]["replicas"] == 3  # the owner's count
    assert kubectl("get", "deployment", "up", "-n", ns, "-o", "json")["status"]["readyReplicas"] == 3

    # Deploying again would undo the scale: refused, naming it, with nothing written.
    writes = Writes(ns, kubectl)
    again = run_playbook(PLAYBOOK, extra_vars=remote(ns))
    assert recap(again.output)["failed"] == 1
    assert f"MCPRemoteProxy {ns}/up: spec.replicas is 3 in the cluster, set by toolhive.k8s.scale or autoscale" \
        in again.output, again.output[-3000:]
    assert writes.count() == []

    hpa = run_playbook("playbooks/autoscale.yml", extra_vars={
        "toolhive_namespace": ns, "toolhive_kind": "MCPRemoteProxy", "toolhive_name": "up",
        "toolhive_min_replicas": 2, "toolhive_max_replicas": 4, "toolhive_release_replicas": True})
    assert recap(hpa.output)["failed"] == 0, hpa.output[-3000:]
    target = kubectl("get", "hpa", "up", "-n", ns, "-o", "json")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "up")
    assert "replicas" not in kubectl("get", "mcpremoteproxy", "up", "-n", ns, "-o", "json")["spec"]  # released

    # A replica count in the variables now would fight the HPA: refused before any write.
    fight = run_playbook(PLAYBOOK, extra_vars=remote(ns))
    assert recap(fight.output)["failed"] == 1
    assert "HPA up scales its Deployment up" in fight.output, fight.output[-3000:]
    left_out = remote(ns, mcpremoteproxy_proxies=[{"name": "up", "remote_url": REMOTE_URL, "session_affinity": "None",
                                                   "resources": {"requests": {"cpu": "50m"}}}])
    assert recap(run_playbook(PLAYBOOK, extra_vars=left_out).output)["failed"] == 0

    down = run_playbook("playbooks/teardown.yml", extra_vars=left_out)
    assert recap(down.output)["failed"] == 0, down.output[-3000:]
    assert kubectl("get", "mcpremoteproxy", "up", "-n", ns, check=False).returncode != 0


@pytest.mark.parametrize("overrides, message", [
    ({"redis_enabled": False},
     "MCPRemoteProxy {ns}/up: spec.replicas=2 without Redis session storage: each replica keeps its own sessions"),
    ({"redis_enabled": False},
     "or opt in explicitly with allow_without_session_storage: true"),
    ({"mcpserver_servers": [{"name": "up", "image": "x", "transport": "streamable-http"}]},
     "MCPRemoteProxy and MCPServer {ns}/up share a name: each would run Deployment up"),
    ({"mcpremoteproxy_proxies": [{"name": "up", "remote_url": "http://mcp-x-proxy.t.svc.cluster.local:8080/mcp"}]},
     "mcpremoteproxy_proxies[0].remote_url = 'http://mcp-x-proxy.t.svc.cluster.local:8080/mcp' points at "
     "mcp-x-proxy.t.svc.cluster.local, which the ToolHive operator refuses as an internal address"),
    ({"mcpremoteproxy_proxies": [{"name": "up", "remote_url": REMOTE_URL, "autoscale": {"max_replicas": 3},
                                  "replicas": 2}]},
     "MCPRemoteProxy {ns}/up: spec.replicas=2 is set while this play gives the workload an HPA"),
])
def test_guards_refuse_a_remote_proxy_before_any_write(run_playbook, kubectl, fresh_namespace, overrides, message):
    ns = fresh_namespace
    result = run_playbook(PLAYBOOK, extra_vars=remote(ns, **overrides))
    assert recap(result.output)["failed"] == 1
    assert message.format(ns=ns) in result.output.replace("\n", " "), result.output[-3000:]
    assert kubectl("get", "namespace", ns, check=False).returncode != 0  # nothing at all was written


def test_opt_in_deploys_a_remote_proxy_without_redis_with_the_operators_warning(run_playbook, kubectl, fresh_namespace):
    ns = fresh_namespace
    result = run_playbook(PLAYBOOK, extra_vars=remote(ns, redis_enabled=False,
                                                      toolhive_allow_without_session_storage=True))
    assert recap(result.output)["failed"] == 0, result.output[-3000:]
    assert "without Redis session storage" in result.output  # warned
    cond = {c["type"]: c for c in kubectl("get", "mcpremoteproxy", "up", "-n", ns, "-o", "json")["status"]["conditions"]}
    assert cond["SessionStorageWarning"]["reason"] == "SessionStorageMissingForReplicas"
    status = run_playbook("playbooks/status.yml", extra_vars={"toolhive_namespace": ns})
    assert "2 replicas without Redis session storage: sessions are not shared between pods." in \
        " ".join(status.output.split())

"""toolhive.k8s.autoscale, status and preflight against the test bed."""
from .conftest import API, wait_for


def hpa(kubectl, namespace, name):
    proc = kubectl("get", "hpa", name, "-n", namespace, "-o", "json", check=False)
    return proc if isinstance(proc, dict) else None


def test_autoscale_creates_an_idempotent_hpa_on_the_real_workload(module, vmcp, kubectl, namespace):
    name = vmcp()
    args = dict(kind="VirtualMCPServer", name=name, namespace=namespace, min_replicas=2, max_replicas=5,
                cpu_percent=70)
    first = module("autoscale", **args)
    assert not first.failed and first["changed"], first.output
    assert "no Redis session storage" in first.output  # a warning, not a refusal
    created = hpa(kubectl, namespace, name)
    assert created["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    assert created["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    assert first["command"].startswith(f"kubectl autoscale deployment/{name}")
    second = module("autoscale", **args)
    assert not second.failed and not second["changed"]
    # The spec, not resourceVersion: the HPA controller keeps writing status.
    assert hpa(kubectl, namespace, name)["spec"] == created["spec"]
    changed = module("autoscale", diff=True, **dict(args, max_replicas=6))
    assert changed["changed"] and changed["diff"]["after"]["hpa"]["maxReplicas"] == 6
    assert hpa(kubectl, namespace, name)["spec"]["maxReplicas"] == 6


def test_autoscale_refuses_spec_replicas_unless_released(module, vmcp, get, kubectl, namespace):
    name = vmcp(replicas=2)
    args = dict(kind="VirtualMCPServer", name=name, namespace=namespace, min_replicas=2, max_replicas=4)
    refused = module("autoscale", **args)
    assert refused.failed and "spec.replicas=2 is set" in refused["msg"] and "release_replicas" in refused["msg"]
    assert hpa(kubectl, namespace, name) is None
    checked = module("autoscale", check=True, release_replicas=True, **args)
    assert checked["changed"] and hpa(kubectl, namespace, name) is None
    assert get("virtualmcpserver", name)["spec"]["replicas"] == 2
    released = module("autoscale", release_replicas=True, **args)
    assert not released.failed and released["released"]
    assert "replicas" not in get("virtualmcpserver", name)["spec"]
    assert hpa(kubectl, namespace, name) is not None


def test_autoscale_refuses_stdio_and_absent_removes_only_the_hpa(module, mcpserver, vmcp, get, kubectl, namespace):
    stdio = mcpserver("io", transport="stdio")
    refused = module("autoscale", kind="MCPServer", name=stdio, namespace=namespace, max_replicas=3)
    assert refused.failed and "stdio" in refused["msg"] and hpa(kubectl, namespace, stdio) is None

    name = vmcp()
    module("autoscale", kind="VirtualMCPServer", name=name, namespace=namespace, max_replicas=3)
    removed = module("autoscale", kind="VirtualMCPServer", name=name, namespace=namespace, state="absent")
    assert removed["changed"] and hpa(kubectl, namespace, name) is None
    assert get("virtualmcpserver", name) and get("deployment", name)
    again = module("autoscale", kind="VirtualMCPServer", name=name, namespace=namespace, state="absent")
    assert not again.failed and not again["changed"]


def test_autoscale_warns_of_pods_without_a_request_and_of_an_mcpserver_released_from_its_replica_field(
        module, mcpserver, get, namespace):
    """An HPA on CPU needs a CPU request in every container of the pods: without one it never scales (said, not
    refused: the request may come later). Removing an MCPServer's spec.replicas rolls all its pods (said once)."""
    bare = mcpserver("bare", transport="streamable-http", replicas=2)
    args = dict(kind="MCPServer", namespace=namespace, max_replicas=3, release_replicas=True)
    warned = module("autoscale", name=bare, **args)
    assert not warned.failed and warned["released"], warned.output
    assert "its proxy Deployment bare: the pods have no cpu request in container toolhive" in warned.output, \
        warned.output
    assert "through spec.resources (mcpserver_servers: resources)" in warned.output
    assert warned.output.count("rolls every proxy pod and restarts the backend on any change of the MCPServer, "
                               "spec.replicas too") == 1, warned.output
    # The HPA is made all the same; a second run releases nothing, so it says only what still holds.
    assert get("horizontalpodautoscaler", bare)
    again = module("autoscale", name=bare, **args)
    assert not again["changed"] and "rolls every proxy pod" not in again.output
    assert "no cpu request" in again.output

    requested = mcpserver("requested", transport="streamable-http",
                          resources={"requests": {"cpu": "50m", "memory": "32Mi"}})
    quiet = module("autoscale", name=requested, memory_percent=70, cpu_percent=70, **args)
    assert not quiet.failed and not quiet["released"] and "the pods have no" not in quiet.output, quiet.output
    # Memory only: the same container has no memory request.
    memory = module("autoscale", name=bare, memory_percent=70, cpu_percent=None, **dict(args, max_replicas=4))
    assert "no cpu or memory request" not in memory.output and "no memory request in container toolhive" in \
        memory.output, memory.output


def test_status_reports_the_scaling_picture_and_waits_by_type_or_reason(module, vmcp, namespace):
    name = vmcp(replicas=2)
    by_reason = module("status", kind="VirtualMCPServer", name=name, namespace=namespace,
                       wait_for=[{"type": "SessionStorageMissingForReplicas", "status": "True"}], wait_timeout=60)
    assert not by_reason.failed, by_reason.output
    report = by_reason["resources"][0]
    assert report["replicas"] == {"replicas": 2}
    assert report["workloads"]["vmcp"]["name"] == name and report["workloads"]["vmcp"]["ready"] == 2
    assert any(c["type"] == "SessionStorageWarning" and c["status"] == "True" for c in report["conditions"])
    assert any("without Redis session storage" in f for f in report["findings"])
    assert any("ClientIP" in f for f in report["findings"])
    by_type = module("status", kind="VirtualMCPServer", namespace=namespace,
                     wait_for=[{"type": "SessionStorageWarning", "reason": "SessionStorageMissingForReplicas"}])
    assert not by_type.failed and len(by_type["resources"]) == 1


def test_status_timeout_names_the_conditions_it_saw(module, vmcp, namespace):
    name = vmcp()
    result = module("status", kind="VirtualMCPServer", name=name, namespace=namespace,
                    wait_for=[{"type": "SessionStorageWarning", "status": "False", "reason": "SessionStorageConfigured"}],
                    wait_timeout=3)
    assert result.failed and "timed out after 3s" in result["msg"]
    assert "SessionStorageWarning=False (SessionStorageWarningNotApplicable)" in result["msg"]


def test_status_finds_stdio_over_scaling_and_a_bad_key_prefix(module, mcpserver, namespace):
    name = mcpserver("io", transport="stdio", replicas=2,
                     sessionStorage={"provider": "redis", "address": "r:6379", "keyPrefix": "thv"})
    result = module("status", kind="MCPServer", name=name, namespace=namespace,
                    wait_for=[{"type": "StdioReplicaCapped", "status": "True"}])
    findings = " ".join(result["resources"][0]["findings"])
    assert "stdio server with spec.replicas=2" in findings
    assert "keyPrefix='thv' does not end with ':'" in findings


def server(name, namespace, kind="MCPServer", **spec):
    base = {"image": "x"} if kind == "MCPServer" else {"groupRef": {"name": "g"}, "incomingAuth": {"type": "anonymous"}}
    return {"apiVersion": API, "kind": kind, "metadata": {"name": name, "namespace": namespace}, "spec": {**base, **spec}}


def test_preflight_lists_every_problem_with_field_and_fix(module, vmcp, namespace):
    vmcp("taken")
    redis = {"provider": "redis", "address": "redis:6379", "keyPrefix": "a:",
             "passwordRef": {"name": "missing", "key": "password"}}
    result = module("preflight", resources=[
        server("io", namespace, transport="stdio", replicas=2),
        server("lonely", namespace, transport="streamable-http", replicas=3),
        server("prefix", namespace, transport="streamable-http", sessionStorage=dict(redis, keyPrefix="thv")),
        server("taken", namespace, transport="streamable-http"),
        server("auto", namespace, "VirtualMCPServer", replicas=2, sessionStorage=redis),
    ], autoscaled=[{"kind": "VirtualMCPServer", "name": "auto", "namespace": namespace}])
    assert result.failed
    problems = result["problems"]
    assert any("io: spec.replicas=2 with transport stdio" in p for p in problems)
    assert any("lonely: spec.replicas=3 without Redis session storage" in p for p in problems)
    assert any("keyPrefix='thv' does not end with ':'" in p and "Fix: use 'thv:'" in p for p in problems)
    assert any(f"VirtualMCPServer {namespace}/taken share a name" in p for p in problems)
    assert any("names Secret missing, which does not exist" in p for p in problems)
    assert any("auto: spec.replicas=2 is set while this play gives the workload an HPA" in p for p in problems)
    assert "nothing was written" in result["msg"]


def test_preflight_opt_in_turns_missing_redis_into_a_warning(module, kubectl, namespace):
    kubectl("create", "secret", "generic", "redis-auth", "-n", namespace, "--from-literal=password=x")
    ok = module("preflight", allow_without_session_storage=True, resources=[
        server("lonely", namespace, transport="streamable-http", replicas=3),
        server("wired", namespace, transport="streamable-http", replicas=2, sessionStorage={
            "provider": "redis", "address": "r:6379", "keyPrefix": "w:",
            "passwordRef": {"name": "redis-auth", "key": "password"}}),
    ])
    assert not ok.failed, ok.output
    assert any("lonely" in w for w in ok["warnings_found"])
    wrong_key = module("preflight", resources=[server("wired", namespace, transport="streamable-http", sessionStorage={
        "provider": "redis", "address": "r:6379", "passwordRef": {"name": "redis-auth", "key": "pass"}})])
    assert wrong_key.failed and "names key 'pass', which Secret" in wrong_key["msg"] and "password" in wrong_key["msg"]
    pending = module("preflight", resources=[server("new", namespace, transport="streamable-http", sessionStorage={
        "provider": "redis", "address": "r:6379", "passwordRef": {"name": "later", "key": "password"}})],
        pending_secrets=[{"name": "later", "namespace": namespace, "key": "password"}])
    assert not pending.failed


def test_preflight_names_an_api_version_the_crds_do_not_serve(module, namespace):
    manifest = server("x", namespace, transport="streamable-http")
    manifest["apiVersion"] = "toolhive.stacklok.dev/v1alpha9"
    result = module("preflight", resources=[manifest])
    assert result.failed and "does not serve v1alpha9" in result["msg"] and "v1beta1" in result["msg"]


def test_preflight_reports_which_resources_do_not_exist_yet(module, mcpserver, namespace):
    mcpserver("there", transport="streamable-http")
    group = {"apiVersion": API, "kind": "MCPGroup", "metadata": {"name": "new-group", "namespace": namespace},
             "spec": {}}
    result = module("preflight", resources=[server("there", namespace, transport="streamable-http"),
                                            server("new", namespace, transport="streamable-http"), group])
    assert not result.failed, result.output
    assert result["missing"] == [f"MCPServer {namespace}/new", f"MCPGroup {namespace}/new-group"]
    assert module("preflight", resources=[server("there", namespace, transport="streamable-http")])["missing"] == []


def test_the_backend_statefulset_the_proxy_runner_creates_is_found(module, mcpserver, apply, get, namespace):
    """The real proxy runner (v0.44.0, seen on running pods) creates StatefulSet NAME labelled app=NAME,
    toolhive-name=NAME, toolhive=true, with no owner reference: status and scale must find it by that."""
    name = mcpserver("fetch", transport="streamable-http")
    labels = {"app": name, "toolhive-name": name, "toolhive": "true"}
    apply({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name, "labels": labels},
           "spec": {"replicas": 1, "serviceName": "mcp-%s-headless" % name, "selector": {"matchLabels": labels},
                    "template": {"metadata": {"labels": labels},
                                 "spec": {"containers": [{"name": "mcp", "image": "x"}]}}}})
    wait_for("the backend pod", lambda: (get("statefulset", name) or {}).get("status", {}).get("readyReplicas"))
    report = module("status", kind="MCPServer", name=name, namespace=namespace)["resources"][0]
    assert report["workloads"]["backend"]["name"] == name and report["workloads"]["backend"]["exists"]
    assert report["workloads"]["backend"]["ready"] == 1

    scaled = module("scale", kind="MCPServer", name=name, namespace=namespace, target="backend", replicas=2,
                    allow_without_session_storage=True, wait_timeout=60)
    assert not scaled.failed, scaled.output
    assert scaled["workload"]["kind"] == "StatefulSet" and get("statefulset", name)["spec"]["replicas"] == 2


def test_status_waits_for_what_runs_without_a_condition(module, vmcp, apply, namespace):
    """wait_rollout alone (the deploy's wait for a VirtualMCPServer when its MCP check follows): the operator has
    observed the current generation and every workload exists, rolled out."""
    name = vmcp()
    done = module("status", kind="VirtualMCPServer", name=name, namespace=namespace, wait_rollout=True, wait_timeout=60)
    assert not done.failed, done.output
    assert done["resources"][0]["workloads"]["vmcp"]["ready"] >= 1
    # The control: a VirtualMCPServer whose group does not exist gets no Deployment, and the wait says so (it used
    # to return at once: wait_rollout did nothing without wait_for).
    apply({"apiVersion": API, "kind": "VirtualMCPServer", "metadata": {"name": "lonely"},
           "spec": {"groupRef": {"name": "missing"}, "incomingAuth": {"type": "anonymous"}}})
    waited = module("status", kind="VirtualMCPServer", name="lonely", namespace=namespace, wait_rollout=True,
                    wait_timeout=5)
    assert waited.failed and "timed out after 5s waiting for the rollouts" in waited["msg"], waited.output
    assert f"VirtualMCPServer {namespace}/lonely: its Deployment lonely is not created yet" in waited["msg"] or \
        f"VirtualMCPServer {namespace}/lonely: the operator has observed generation" in waited["msg"], waited["msg"]

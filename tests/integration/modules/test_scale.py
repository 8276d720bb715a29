"""toolhive.k8s.scale against the test bed: every behaviour and refusal."""
from .conftest import wait_for


def replicas_of(get, name):
    return get("deployment", name)["spec"]["replicas"]


def test_scales_the_deployment_named_after_the_vmcp_and_waits(module, vmcp, get, namespace):
    name = vmcp()
    result = module("scale", kind="VirtualMCPServer", name=name, namespace=namespace, replicas=3,
                    allow_without_session_storage=True)
    assert not result.failed, result.output
    assert result["changed"] and result["method"] == "scale"
    assert (result["before"], result["after"], result["ready_replicas"]) == (1, 3, 3)
    assert result["workload"]["name"] == name  # not vmcp-<name>: that is the Service
    assert result["command"] == f"kubectl scale deployment/{name} --namespace {namespace} --replicas=3"
    assert "without Redis session storage" in result.output  # the opt-in still warns
    assert get("deployment", name)["status"]["readyReplicas"] == 3


def test_second_run_changes_nothing(module, vmcp, get, namespace):
    name = vmcp()
    args = dict(kind="VirtualMCPServer", name=name, namespace=namespace, replicas=2, allow_without_session_storage=True)
    assert module("scale", **args)["changed"]
    version = get("deployment", name)["metadata"]["generation"]
    again = module("scale", **args)
    assert not again.failed and not again["changed"] and again["method"] == "none"
    assert get("deployment", name)["metadata"]["generation"] == version


def test_patches_the_resource_when_the_operator_owns_the_count(module, vmcp, get, namespace):
    name = vmcp(replicas=1)
    result = module("scale", kind="VirtualMCPServer", name=name, namespace=namespace, replicas=2,
                    allow_without_session_storage=True)
    assert not result.failed, result.output
    assert result["method"] == "resource"
    assert get("virtualmcpserver", name)["spec"]["replicas"] == 2
    assert result["ready_replicas"] == 2
    assert "kubectl patch virtualmcpserver" in result["command"]


def test_refuses_replicas_without_redis_and_writes_nothing(module, vmcp, get, namespace):
    name = vmcp()
    before = get("deployment", name)["metadata"]["generation"]
    result = module("scale", kind="VirtualMCPServer", name=name, namespace=namespace, replicas=3)
    assert result.failed
    assert "without Redis session storage" in result["msg"] and "allow_without_session_storage" in result["msg"]
    assert get("deployment", name)["metadata"]["generation"] == before
    assert replicas_of(get, name) == 1


def test_refuses_a_stdio_proxy_or_backend_above_one(module, mcpserver, get, namespace):
    name = mcpserver("io", transport="stdio")
    before = get("mcpserver", name)["metadata"]["generation"]
    for target in ("proxy", "backend"):
        result = module("scale", kind="MCPServer", name=name, namespace=namespace, target=target, replicas=2,
                        allow_without_session_storage=True)
        assert result.failed
        assert "transport stdio" in result["msg"]
    assert get("mcpserver", name)["metadata"]["generation"] == before
    assert replicas_of(get, name) == 1


def test_refuses_when_an_hpa_targets_the_workload_unless_forced(module, vmcp, get, apply, namespace):
    name = vmcp()
    apply({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "other-name"},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                    "minReplicas": 1, "maxReplicas": 3}})
    args = dict(kind="VirtualMCPServer", name=name, namespace=namespace, replicas=1, wait=False,
                allow_without_session_storage=True)
    refused = module("scale", **dict(args, replicas=2))
    assert refused.failed and "HPA other-name" in refused["msg"] and "force" in refused["msg"]
    forced = module("scale", force=True, **dict(args, replicas=2))
    assert not forced.failed and forced["changed"]


def test_current_replicas_is_a_precondition(module, vmcp, get, namespace):
    name = vmcp()
    before = get("deployment", name)["metadata"]["generation"]
    result = module("scale", kind="VirtualMCPServer", name=name, namespace=namespace, replicas=1, current_replicas=4)
    assert result.failed and "expected 4 current replicas" in result["msg"] and "found 1" in result["msg"]
    assert get("deployment", name)["metadata"]["generation"] == before


def test_check_mode_and_diff_write_nothing(module, vmcp, get, namespace):
    name = vmcp()
    before = get("deployment", name)["metadata"]["generation"]
    result = module("scale", check=True, diff=True, kind="VirtualMCPServer", name=name, namespace=namespace,
                    replicas=2, allow_without_session_storage=True)
    assert not result.failed and result["changed"]
    assert result["diff"]["before"] == {"replicas": 1} and result["diff"]["after"] == {"replicas": 2}
    assert get("deployment", name)["metadata"]["generation"] == before


def test_missing_resource_and_unreachable_api_server_are_named(module, namespace):
    missing = module("scale", kind="VirtualMCPServer", name="nope", namespace=namespace, replicas=1)
    assert missing.failed and f"VirtualMCPServer {namespace}/nope does not exist" in missing["msg"]
    refused = module("scale", kind="VirtualMCPServer", name="gw", namespace=namespace, replicas=1,
                     host="https://127.0.0.1:9", api_key="x", validate_certs=False,
                     env={"K8S_AUTH_KUBECONFIG": "", "KUBECONFIG": ""})
    assert refused.failed and "connection was refused" in refused["msg"] and "127.0.0.1:9" in refused["msg"]


def test_runs_with_only_the_k8s_auth_variables_awx_sets(module, vmcp, kubectl, namespace, tmp_path):
    """AWX's bearer-token credential sets K8S_AUTH_HOST/API_KEY/VERIFY_SSL/SSL_CA_CERT and nothing else."""
    name = vmcp()
    kubectl("create", "serviceaccount", "automation", "-n", namespace)
    # The wait watches the workload and reads its current pods (their ReplicaSet, and on a timeout their events).
    kubectl("create", "role", "automation", "-n", namespace, "--verb=get,list,watch,patch",
            "--resource=virtualmcpservers.toolhive.stacklok.dev,deployments.apps,deployments.apps/scale,"
            "statefulsets.apps,horizontalpodautoscalers.autoscaling,replicasets.apps,pods,events")
    kubectl("create", "rolebinding", "automation", "-n", namespace, "--role=automation",
            f"--serviceaccount={namespace}:automation")
    token = kubectl("create", "token", "automation", "-n", namespace).stdout.strip()
    config = kubectl("config", "view", "--raw", "--minify", "-o", "json")
    cluster = config["clusters"][0]["cluster"]
    env = {"KUBECONFIG": "", "K8S_AUTH_KUBECONFIG": "", "HOME": str(tmp_path), "K8S_AUTH_HOST": cluster["server"],
           "K8S_AUTH_API_KEY": token, "K8S_AUTH_VERIFY_SSL": "true", "K8S_AUTH_SSL_CA_CERT": cluster["certificate-authority"]}
    result = module("scale", env=env, kind="VirtualMCPServer", name=name, namespace=namespace, replicas=2,
                    allow_without_session_storage=True)
    assert not result.failed, result.output
    assert result["changed"] and result["ready_replicas"] == 2
    assert token not in result.output
    other = module("scale", env=env, kind="VirtualMCPServer", name=name, namespace="default", replicas=1)
    assert other.failed and "HTTP 403" in other["msg"] and "not allowed" in other["msg"]


def test_a_scale_down_takes_the_pods_it_removes_out_of_their_services_before_they_stop(
        module, vmcp, get, kubectl, namespace):
    """3 -> 1: the two pods that go leave their ReplicaSet first (it then removes the replacements it made, which
    served nothing), then the gateway's Service, and are deleted; the pod that stays is one of the three that
    served. A plain scale-down lets the ReplicaSet delete serving pods at once, and drains none."""
    name = vmcp()
    selector = f"app.kubernetes.io/name=virtualmcpserver,app.kubernetes.io/instance={name}"

    def serving():
        return {p["metadata"]["name"] for p in kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json")["items"]
                if not p["metadata"].get("deletionTimestamp")}
    args = dict(kind="VirtualMCPServer", name=name, namespace=namespace, allow_without_session_storage=True)
    assert module("scale", replicas=3, **args)["drained_pods"] == []  # scaling up drains nothing
    before = serving()
    assert len(before) == 3

    result = module("scale", replicas=1, **args)
    assert not result.failed and result["changed"], result.output
    assert len(result["drained_pods"]) == 2 and set(result["drained_pods"]) < before, (result["drained_pods"], before)
    assert serving() < before and len(serving()) == 1  # the one left served before: no replacement stayed
    assert result["ready_replicas"] == 1 and get("deployment", name)["spec"]["replicas"] == 1


def test_scaling_an_mcpserver_through_its_replica_field_warns_that_the_operator_rolls_its_pods(
        module, mcpserver, get, namespace):
    """The operator stamps the MCPServer's generation on its proxy's pod template, so the scale through
    spec.replicas rolls the proxy's Deployment (a new template), and the module says so; through the scale
    subresource (no replica field) the template stays and nothing is said."""
    def template_annotations(name):
        return get("deployment", name)["spec"]["template"]["metadata"].get("annotations") or {}
    args = dict(kind="MCPServer", namespace=namespace, allow_without_session_storage=True)

    owned = mcpserver("owned", transport="streamable-http", replicas=1)
    before = template_annotations(owned)
    result = module("scale", name=owned, replicas=2, **args)
    assert not result.failed and result["method"] == "resource", result.output
    assert "rolls every proxy pod and restarts the backend" in result.output
    wait_for("the operator's new pod template", lambda: template_annotations(owned) != before)

    free = mcpserver("free", transport="streamable-http")
    before = template_annotations(free)
    result = module("scale", name=free, replicas=2, **args)
    assert not result.failed and result["method"] == "scale", result.output
    assert "rolls every proxy pod" not in result.output
    assert template_annotations(free) == before

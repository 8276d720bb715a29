"""Pure logic: the guard rules, findings, condition matching, HPA comparison."""
import pytest

from ansible_collections.toolhive.k8s.plugins.module_utils import guards, kinds, operator
from ansible_collections.toolhive.k8s.plugins.modules.autoscale import contains
from ansible_collections.toolhive.k8s.plugins.modules.status import condition_matches, unobserved

REDIS = {"provider": "redis", "address": "r:6379", "keyPrefix": "a:"}


def manifest(kind="MCPServer", **spec):
    return {"kind": kind, "metadata": {"name": "s", "namespace": "ns"}, "spec": spec}


def test_transport_defaults_to_stdio_for_mcpserver_only():
    assert guards.transport("MCPServer", {}) == "stdio"
    assert guards.transport("VirtualMCPServer", {}) == "streamable-http"


@pytest.mark.parametrize("spec, expected", [
    ({"replicas": 2}, ["spec.replicas=2 with transport stdio"]),
    ({"backendReplicas": 2, "transport": "stdio"}, ["spec.backendReplicas=2 with transport stdio"]),
    ({"replicas": 1}, []),
    ({"replicas": 3, "transport": "sse"}, ["spec.replicas=3 without Redis session storage"]),
    ({"replicas": 3, "transport": "sse", "sessionStorage": REDIS}, []),
    ({"transport": "sse", "sessionStorage": dict(REDIS, keyPrefix="x")}, ["keyPrefix='x' does not end with ':'"]),
    ({"transport": "sse", "sessionStorage": {"provider": "redis"}}, ["provider=redis without address"]),
])
def test_check_resource_names_field_and_fix(spec, expected):
    errors, warnings = guards.check_resource(manifest(**spec))
    assert warnings == []
    assert len(errors) == len(expected)
    for error, text in zip(errors, expected):
        assert error.startswith("MCPServer ns/s: ") and text in error and "Fix:" in error


def test_opt_in_turns_missing_redis_into_a_warning_but_not_stdio():
    errors, warnings = guards.check_resource(manifest("VirtualMCPServer", replicas=3),
                                             allow_without_session_storage=True)
    assert errors == [] and "without Redis" in warnings[0]
    errors, warnings = guards.check_resource(manifest(replicas=3), allow_without_session_storage=True)
    assert "transport stdio" in errors[0]


def test_autoscaled_resource_must_leave_replicas_out():
    autoscaled = manifest("VirtualMCPServer", replicas=2, sessionStorage=REDIS)
    errors, warnings = guards.check_resource(autoscaled, autoscaled_fields={"replicas"})
    assert warnings == [] and "HPA" in errors[0] and "leave replicas out" in errors[0]
    assert guards.check_resource(manifest("VirtualMCPServer", sessionStorage=REDIS), {"replicas"}) == ([], [])


def test_findings_are_plain_sentences():
    sentences = guards.findings("MCPServer", {"transport": "stdio", "replicas": 2},
                                {"proxy": {"spec": 1}}, {"proxy": {"name": "h"}})
    text = " ".join(sentences)
    assert "2 replicas without Redis" in text
    assert "HPA h targets the proxy workload while spec.replicas=2" in text
    assert "stdio server with spec.replicas=2" in text
    assert "sessionAffinity ClientIP with 2 replicas" in text
    assert guards.findings("VirtualMCPServer", {"sessionStorage": REDIS, "sessionAffinity": "None"},
                           {"vmcp": {"spec": 3}}, {}) == []


# The transports each CRD accepts (v0.44.0 to v0.66.0; None: the spec names none). A VirtualMCPServer has no
# transport field, so the API server drops one from its spec.
CRD_TRANSPORTS = {"MCPServer": (None, "stdio", "sse", "streamable-http"), "VirtualMCPServer": (None,),
                  "MCPRemoteProxy": (None, "sse", "streamable-http")}


@pytest.mark.parametrize("kind, transport", [(k, t) for k, ts in CRD_TRANSPORTS.items() for t in ts])
def test_only_a_stdio_mcpserver_is_found_running_one_replica(kind, transport):
    """The stdio findings follow the transport alone: of what the CRDs accept, only an MCPServer's stdio (its
    default) is stdio."""
    spec = {"replicas": 2, "transport": transport} if transport else {"replicas": 2}
    workloads = {role: {"spec": 2} for role in kinds.roles_of(kind)}
    stdio = [s for s in guards.findings(kind, spec, workloads, {}) if s.startswith("stdio server")]
    if kind == "MCPServer" and transport in (None, "stdio"):
        assert stdio == ["stdio server with spec.replicas=2: it runs one replica only."] + [
            "stdio server's %s workload runs 2 replicas: only one is ever used." % role for role in workloads]
    else:
        assert stdio == []


@pytest.mark.parametrize("expected, matches", [
    ({"type": "SessionStorageWarning"}, True),
    ({"type": "SessionStorageMissingForReplicas"}, True),  # older docs: the reason as a condition
    ({"type": "SessionStorageWarning", "status": "False"}, False),
    ({"type": "SessionStorageWarning", "reason": "SessionStorageConfigured"}, False),
    ({"type": "Ready"}, False),
])
def test_condition_matches_by_type_or_reason(expected, matches):
    condition = {"type": "SessionStorageWarning", "status": "True", "reason": "SessionStorageMissingForReplicas"}
    assert condition_matches(condition, expected) is matches


def test_hpa_comparison_ignores_server_defaults():
    actual = {"minReplicas": 2, "maxReplicas": 5, "behavior": {"scaleUp": {"policies": []}},
              "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                  "type": "Utilization", "averageUtilization": 70}}}]}
    wanted = {"minReplicas": 2, "maxReplicas": 5, "metrics": [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]}
    assert contains(actual, wanted)
    assert not contains(actual, dict(wanted, maxReplicas=6))
    assert not contains(actual, dict(wanted, metrics=wanted["metrics"] * 2))


def test_a_remote_proxy_is_guarded_like_the_other_kinds():
    """MCPRemoteProxy (kinds.SERVERS): streamable-http by default (never stdio), one replica field, the same
    Redis and HPA guards and findings."""
    assert "MCPRemoteProxy" in guards.SCALED_KINDS
    assert guards.transport("MCPRemoteProxy", {}) == "streamable-http"
    assert guards.transport("MCPRemoteProxy", {"transport": "sse"}) == "sse"
    assert guards.replica_fields("MCPRemoteProxy") == ("replicas",)
    assert guards.field_for_target("MCPRemoteProxy", "backend") == "replicas"  # one workload: the proxy
    errors, warnings = guards.check_resource(manifest("MCPRemoteProxy", replicas=2))
    assert warnings == [] and errors[0].startswith("MCPRemoteProxy ns/s: spec.replicas=2 without Redis session "
                                                   "storage") and "allow_without_session_storage" in errors[0]
    errors, warnings = guards.check_resource(manifest("MCPRemoteProxy", replicas=2), allow_without_session_storage=True)
    assert errors == [] and "without Redis" in warnings[0]
    assert guards.check_resource(manifest("MCPRemoteProxy", replicas=2, sessionStorage=REDIS)) == ([], [])
    errors, warnings = guards.check_resource(manifest("MCPRemoteProxy", replicas=2, sessionStorage=REDIS), {"replicas"})
    assert "while this play gives the workload an HPA" in errors[0]
    text = " ".join(guards.findings("MCPRemoteProxy", {"replicas": 3}, {"proxy": {"spec": 3}}, {"proxy": {"name": "h"}}))
    assert "3 replicas without Redis" in text and "HPA h targets the proxy workload while spec.replicas=3" in text
    assert "sessionAffinity ClientIP with 3 replicas" in text and "stdio" not in text


OPERATOR_REDIS = {"address": "sessions:6379", "secret_name": None, "secret_key": None, "source": "Deployment x/y"}


@pytest.mark.parametrize("kind,storage,served", [
    ("VirtualMCPServer", None, True), ("VirtualMCPServer", {"provider": "memory"}, False),
    ("MCPRemoteProxy", None, True), ("MCPRemoteProxy", {"provider": "memory"}, False),
    ("MCPServer", None, True), ("MCPServer", {"provider": "memory"}, True), ("MCPServer", REDIS, False),
])
def test_the_operator_default_serves_what_the_operator_gives_it_to(kind, storage, served):
    """As the operator's controllers decide (v0.44.0 to v0.66.0): an MCPServer without provider redis, the
    other kinds only without any sessionStorage."""
    spec = {"sessionStorage": storage} if storage else {}
    assert guards.uses_operator_redis(kind, spec, OPERATOR_REDIS) is served
    assert guards.uses_operator_redis(kind, spec, None) is False
    errors, _warnings = guards.check_resource(manifest(kind, transport="streamable-http", replicas=2, **spec),
                                              operator_redis=OPERATOR_REDIS)
    assert any("without Redis session storage" in e for e in errors) is not (served or storage == REDIS)


def test_findings_name_the_operator_default_instead_of_missing_redis():
    found = guards.findings("VirtualMCPServer", {"replicas": 2, "sessionAffinity": "None"},
                            {"vmcp": {"spec": 2}}, {}, OPERATOR_REDIS)
    assert found == ["2 replicas share sessions through the operator's default Redis sessions:6379 (Deployment x/y); "
                     "the operator's SessionStorageWarning condition does not know that default."]


def operator_deployment(env, name="toolhive-operator"):
    return {"metadata": {"namespace": "toolhive-system", "name": name},
            "spec": {"template": {"spec": {"containers": [{"name": "manager", "env": env}]}}}}


def test_the_default_is_read_from_the_operators_env():
    assert operator.default_redis([]) is None
    assert operator.default_redis([operator_deployment([{"name": "GOGC", "value": "75"}])]) is None
    found = operator.default_redis([operator_deployment([
        {"name": "TOOLHIVE_DEFAULT_REDIS_ADDR", "value": "r:6379"},
        {"name": "TOOLHIVE_DEFAULT_REDIS_SECRET_NAME", "value": "redis"}])])
    assert found == {"address": "r:6379", "secret_name": "redis", "secret_key": "redis-password",
                     "source": "Deployment toolhive-system/toolhive-operator"}  # the operator's own default key
    from_map = operator.default_redis([operator_deployment([{"name": "TOOLHIVE_DEFAULT_REDIS_ADDR", "valueFrom": {
        "configMapKeyRef": {"name": "redis", "key": "addr"}}}])])
    assert from_map["address"] == "(from ConfigMap redis, key addr)" and from_map["secret_name"] is None


def test_a_generation_the_operator_has_not_observed_is_named():
    def gateway(generation, observed):
        return {"kind": "VirtualMCPServer", "metadata": {"name": "gw", "namespace": "t", "generation": generation},
                "status": {} if observed is None else {"observedGeneration": observed}}
    assert unobserved(gateway(3, 2)) == "VirtualMCPServer t/gw: the operator has observed generation 2, not 3 yet"
    assert unobserved(gateway(3, 3)) is None
    # An operator that does not report it is not waited for forever.
    assert unobserved(gateway(3, None)) is None


def test_every_api_path_comes_from_the_kinds_table_and_no_value_walks_the_api():
    from ansible_collections.toolhive.k8s.plugins.module_utils import kinds
    assert kinds.path("MCPServer", "t", "clock", api_version="v1alpha1") == \
        "/apis/toolhive.stacklok.dev/v1alpha1/namespaces/t/mcpservers/clock"
    assert kinds.path("Deployment", "t", "clock", "scale") == "/apis/apps/v1/namespaces/t/deployments/clock/scale"
    assert kinds.path("Pod", "t", "clock-0", "proxy", port=8080) == "/api/v1/namespaces/t/pods/clock-0:8080/proxy"
    assert kinds.path("Deployment", all_namespaces=True) == "/apis/apps/v1/deployments"
    with pytest.raises(ValueError, match="^namespace None is not a Kubernetes name"):
        kinds.path("Deployment")  # a missing namespace is never every namespace
    assert kinds.path("CustomResourceDefinition", "ignored", "mcpservers.toolhive.stacklok.dev") == \
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/mcpservers.toolhive.stacklok.dev"
    for namespace, name in (("..", "x"), ("t", "../../secrets"), ("t", "a%2Fb"), ("", "x")):
        with pytest.raises(ValueError, match="is not a Kubernetes name"):
            kinds.path("Secret", namespace, name)
    with pytest.raises(ValueError, match="^redis.password_secret.name "):
        kinds.path("Secret", "t", "a/b", fields=("namespace", "redis.password_secret.name"))
    # Kinds read or deleted only are never applied.
    assert "Pod" in kinds.API and "Pod" not in kinds.APPLIED and "Secret" in kinds.APPLIED


@pytest.mark.parametrize("containers, resources, missing", [
    ([{"name": "a", "resources": {"requests": {"cpu": "1"}}}], ["cpu"], None),
    ([{"name": "a", "resources": {"requests": {"cpu": "1"}}}, {"name": "b"}], ["cpu"], "no cpu request in container b,"),
    ([{"name": "a", "resources": {"requests": {"cpu": "1"}}}], ["cpu", "memory"], "no memory request in container a,"),
    ([{"name": "a", "resources": {"limits": {"cpu": "1"}}}], ["cpu"], None),  # the request defaults to the limit
    ([{"name": "a"}], ["memory", "cpu"], "no memory or cpu request in container a,"),
])
def test_an_hpa_needs_a_request_in_every_container(containers, resources, missing):
    problem = guards.missing_requests_problem("MCPServer", "backend", {"containers": containers}, resources)
    if missing is None:
        assert problem is None
    else:
        assert missing in problem and "(mcpserver_servers: backend_resources)" in problem, problem

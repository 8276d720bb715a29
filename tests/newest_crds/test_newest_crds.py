"""Every manifest the collection renders, accepted by the newest ToolHive release's CRDs (CEL rules included).

`playbooks/deploy.yml --check` against the API-only bed of conftest.py dry-runs (server-side apply, dryRun=All)
every rendered manifest whose namespace exists: the example, and a wide job (Sentinel mode with TLS and the
embedded auth server, explicit session storage, autoscaled, stdio and SSE servers, two gateways). The audit log
shows each ToolHive object was judged by the API server and nothing was written. Two negative controls show a
manifest the newest CRDs reject really fails the job, with the CRD's own message.
"""
import copy
import re

import pytest

from .conftest import NEWEST

TOOLHIVE_GROUP = "toolhive.stacklok.dev"
WRITES = {"create", "update", "patch", "delete", "deletecollection"}


def recap(output):
    match = re.search(r"localhost\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", output)
    assert match, output[-3000:]
    return {"ok": int(match[1]), "changed": int(match[2]), "failed": int(match[3])}


def writes(events, namespace):
    """{(resource, name): [(dry run?, response code), ...]} for every write of the job (the test bed's admin) in the
    namespace. A new namespace's controllers write there too (its default ServiceAccount, kube-root-ca.crt), at a
    moment of their own: seen in a run where they came after the audit began."""
    found = {}
    for event in events:
        ref = event.get("objectRef") or {}
        if ref.get("namespace") != namespace or event.get("verb") not in WRITES \
                or (event.get("user") or {}).get("username") != "toolhive-testbed-admin":
            continue
        dry = "dryRun=All" in event.get("requestURI", "")
        found.setdefault((ref.get("resource"), ref.get("name")), []).append(
            (dry, event.get("responseStatus", {}).get("code")))
    return found


def assert_all_dry_run_and_accepted(events, namespace, expected):
    """Every write was a dry run, and each expected ToolHive object was dry-run and accepted (200/201)."""
    found = writes(events, namespace)
    real = {key: calls for key, calls in found.items() if any(not dry for dry, _code in calls)}
    assert not real, f"--check wrote to the cluster: {real}"
    for key in expected:
        codes = [code for _dry, code in found.get(key, [])]
        assert codes, f"{key} was never sent to the API server for a dry run (seen: {sorted(found)})"
        assert all(code in (200, 201) for code in codes), f"{key}: the newest CRDs answered {codes}"


def session_storage(namespace, prefix):
    return {"provider": "redis", "address": f"sessions.{namespace}.svc.cluster.local:6379", "db": 1,
            "keyPrefix": prefix, "passwordRef": {"name": "sessions", "key": "password"}}


def wide(namespace):
    """Sentinel mode (TLS, ACL user, embedded auth server), user-given session storage, autoscaled, stdio and SSE
    servers, backend replicas, resources, args, env, labels, two gateways (NodePort, autoscaled), a remote proxy."""
    return {
        "toolhive_namespace": namespace,
        "toolhive_group": "platform",
        "redis_mode": "sentinel", "redis_name": "auth-redis", "redis_sentinel_replicas": 2,
        "redis_disable_default_user": True, "redis_tls_secret": "redis-tls", "redis_network_policy": True,
        "redis_auth_config": {"name": "auth", "embedded_auth_server": {
            "issuer": "https://auth.example.com",
            "upstreamProviders": [{"name": "corp", "type": "oidc",
                                   "oidcConfig": {"issuerUrl": "https://idp.example.com", "clientId": "toolhive"}}]}},
        "mcpserver_servers": [
            {"name": "fetch", "image": "ghcr.io/stackloklabs/gofetch/server:latest", "transport": "streamable-http",
             "mcp_port": 8080, "proxy_port": 8081, "replicas": 2, "backend_replicas": 2, "session_affinity": "None",
             "session_storage": session_storage(namespace, "thv:fetch:"),
             "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}},
             "backend_resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                   "limits": {"cpu": "500m", "memory": "256Mi"}},
             "args": ["--verbose"], "env": [{"name": "LOG_LEVEL", "value": "debug"}], "labels": {"team": "platform"}},
            {"name": "time", "image": "ghcr.io/stackloklabs/time/server:latest", "transport": "stdio",
             "proxy_mode": "streamable-http"},
            {"name": "events", "image": "ghcr.io/stackloklabs/time/server:latest", "transport": "sse",
             "mcp_port": 9000, "session_storage": session_storage(namespace, "thv:events:"),
             "autoscale": {"min_replicas": 2, "max_replicas": 4, "cpu_percent": 70}},
        ],
        "vmcp_instances": [
            {"name": "gateway", "replicas": 3, "service_type": "NodePort", "session_affinity": "ClientIP",
             "session_storage": session_storage(namespace, "thv:gateway:"),
             "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                           "limits": {"cpu": "500m", "memory": "512Mi"}}},
            {"name": "gateway-auto", "labels": {"tier": "edge"},
             "session_storage": session_storage(namespace, "thv:gateway-auto:"),
             "autoscale": {"min_replicas": 2, "max_replicas": 5, "cpu_percent": 60}},
        ],
        "mcpremoteproxy_proxies": [
            {"name": "upstream", "remote_url": "https://mcp.example.com/mcp", "replicas": 2,
             "session_affinity": "None", "session_storage": session_storage(namespace, "thv:upstream:")},
        ],
    }


@pytest.fixture
def wide_namespace(kubectl, namespace):
    """A namespace with the Secrets the wide job names (TLS for Redis, the session-storage password)."""
    kubectl("create", "secret", "generic", "redis-tls", "-n", namespace, "--from-literal=tls.crt=c",
            "--from-literal=tls.key=k", "--from-literal=ca.crt=ca")
    kubectl("create", "secret", "generic", "sessions", "-n", namespace, "--from-literal=password=p")
    return namespace


def test_the_bed_serves_the_newest_crds(kubectl):
    """Not the operator's (older) CRDs: sessionStorage.tls and its CEL rules are new after v0.47.0."""
    crd = kubectl("get", "crd", f"mcpservers.{TOOLHIVE_GROUP}", "-o", "json")
    beta = next(v for v in crd["spec"]["versions"] if v["name"] == "v1beta1")
    storage = beta["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["sessionStorage"]
    assert "tls" in storage["properties"], f"the bed does not serve ToolHive {NEWEST}'s CRDs"
    assert beta["storage"] and beta["served"]


def test_the_example_is_accepted(deploy_check, audit, namespace):
    since = audit()
    result = deploy_check("@playbooks/vars/example.yml", {"toolhive_namespace": namespace})
    assert result.returncode == 0 and recap(result.output)["failed"] == 0, result.output[-4000:]
    assert_all_dry_run_and_accepted(since.events(), namespace, [
        ("mcpgroups", "engineering"), ("virtualmcpservers", "gateway"),
        ("mcpservers", "everything"), ("mcpservers", "time")])


def test_a_wide_job_is_accepted(deploy_check, audit, wide_namespace):
    since = audit()
    result = deploy_check(wide(wide_namespace))
    assert result.returncode == 0 and recap(result.output)["failed"] == 0, result.output[-4000:]
    assert_all_dry_run_and_accepted(since.events(), wide_namespace, [
        ("mcpexternalauthconfigs", "auth"), ("mcpgroups", "platform"),
        ("virtualmcpservers", "gateway"), ("virtualmcpservers", "gateway-auto"),
        ("mcpservers", "fetch"), ("mcpservers", "time"), ("mcpservers", "events"), ("mcpremoteproxies", "upstream"),
        ("statefulsets", "auth-redis"), ("statefulsets", "auth-redis-sentinel")])


def test_servers_over_tls_to_the_roles_redis_are_accepted(deploy_check, audit, namespace):
    """redis_tls: the generated CA wired into every server's sessionStorage.tls.caCertSecretRef (refused on the
    operator's older CRDs before any write: tests/integration/roles/test_redis_tls.py)."""
    since = audit()
    result = deploy_check("@playbooks/vars/example.yml", {"toolhive_namespace": namespace, "redis_tls": True},
                          diff=True)
    assert result.returncode == 0 and recap(result.output)["failed"] == 0, result.output[-4000:]
    wired = re.findall(r"caCertSecretRef:\s*\n[+\s]*key: ca.crt\s*\n[+\s]*name: toolhive-redis-tls", result.output)
    assert len(wired) == 3, result.output[-6000:]  # the diff shows it in the gateway's and both servers' specs
    assert_all_dry_run_and_accepted(since.events(), namespace, [
        ("secrets", "toolhive-redis-tls"), ("virtualmcpservers", "gateway"), ("mcpservers", "everything"),
        ("mcpservers", "time")])


def rejected(events, namespace, key):
    return [code for dry, code in writes(events, namespace).get(key, []) if dry and code == 422]


def test_negative_control_a_session_storage_tls_the_newest_crds_reject(deploy_check, audit, wide_namespace):
    """A CEL rule that only the newest CRDs carry: tls.caCertSecretRef together with insecureSkipVerify."""
    variables = wide(wide_namespace)
    variables["mcpserver_servers"][0]["session_storage"]["tls"] = {
        "insecureSkipVerify": True, "caCertSecretRef": {"name": "redis-tls", "key": "ca.crt"}}
    since = audit()
    result = deploy_check(variables)
    assert result.returncode != 0, result.output[-3000:]
    assert "tls.insecureSkipVerify disables certificate verification" in result.output, result.output[-4000:]
    assert rejected(since.events(), wide_namespace, ("mcpservers", "fetch")), "the API server never refused it"


def test_negative_control_an_auth_server_setting_the_newest_crds_reject(deploy_check, audit, wide_namespace):
    """registrationRateLimit is new after v0.47.0; its CEL rule refuses a zero refill period."""
    variables = copy.deepcopy(wide(wide_namespace))
    variables["redis_auth_config"]["embedded_auth_server"]["registrationRateLimit"] = {
        "maxTokens": 5, "refillPeriod": "0s"}
    since = audit()
    result = deploy_check(variables)
    assert result.returncode != 0, result.output[-3000:]
    assert "registrationRateLimit.refillPeriod must be positive" in result.output, result.output[-4000:]
    assert rejected(since.events(), wide_namespace, ("mcpexternalauthconfigs", "auth")), \
        "the API server never refused it"


def preflight(newest_bed, namespace, **options):
    """toolhive.k8s.preflight on one MCPServer, by ansible ad hoc; (CompletedProcess, output)."""
    import json
    import os
    import subprocess
    from .conftest import REPO
    args = {"resources": [{"apiVersion": f"{TOOLHIVE_GROUP}/v1beta1", "kind": "MCPServer",
                           "metadata": {"name": "fetch", "namespace": namespace},
                           "spec": {"image": "ghcr.io/stackloklabs/gofetch/server:latest"}}],
            "namespaces": [namespace], **options}
    env = dict(os.environ, K8S_AUTH_KUBECONFIG=newest_bed, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(["ansible", "localhost", "-m", "toolhive.k8s.preflight", "-a", json.dumps(args)],
                          cwd=REPO, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300, check=False)
    return proc, proc.stdout + proc.stderr


def operator_deployment(kubectl, namespace, release):
    """An operator Deployment (replicas 0) labelled as Helm labels the chart's, at RELEASE."""
    kubectl("apply", "-f", "-", stdin=f"""
apiVersion: apps/v1
kind: Deployment
metadata:
  name: toolhive-operator
  namespace: {namespace}
  labels: {{app.kubernetes.io/name: toolhive-operator, app.kubernetes.io/version: {release}}}
spec:
  replicas: 0
  selector: {{matchLabels: {{app.kubernetes.io/name: toolhive-operator}}}}
  template:
    metadata: {{labels: {{app.kubernetes.io/name: toolhive-operator}}}}
    spec: {{containers: [{{name: manager, image: "ghcr.io/stacklok/toolhive/operator:{release}"}}]}}
""")


def test_the_operator_release_is_found_and_an_old_one_refused(newest_bed, kubectl, namespace):
    """No operator Deployment: the CRDs bound the release (tlsListener: v0.62.0 or later). An operator Deployment
    of v0.40.0 (Helm's labels): refused before any write, naming the supported range."""
    proc, output = preflight(newest_bed, namespace)
    assert proc.returncode == 0 and "ToolHive CRDs of v0.62.0 or later" in output, output[-3000:]
    operator_deployment(kubectl, namespace, "v0.40.0")
    try:
        proc, output = preflight(newest_bed, namespace)
        assert proc.returncode != 0, output[-3000:]
        assert f"ToolHive operator v0.40.0 (Deployment {namespace}/toolhive-operator) is not supported" in output
        assert "v0.44.0 to v0.66.0" in output
    finally:
        kubectl("delete", "deployment", "toolhive-operator", "-n", namespace, "--wait=false", check=False)


def test_the_newest_release_is_accepted_and_a_newer_one_warned_of(newest_bed, kubectl, namespace):
    """v0.66.0 (this bed's CRDs) passes; a release newer than the validated one passes with a warning naming it,
    and is refused only with strict_release."""
    operator_deployment(kubectl, namespace, NEWEST)
    try:
        proc, output = preflight(newest_bed, namespace, strict_release=True)
        assert proc.returncode == 0, output[-3000:]
        assert f"ToolHive operator {NEWEST} (Deployment {namespace}/toolhive-operator), supported" in output
        assert "newer than" not in output, output[-3000:]
        operator_deployment(kubectl, namespace, "v0.67.0")
        proc, output = preflight(newest_bed, namespace)
        assert proc.returncode == 0, output[-3000:]
        assert "[WARNING]: ToolHive operator v0.67.0" in output and f"newer than {NEWEST}" in output, output[-3000:]
        proc, output = preflight(newest_bed, namespace, strict_release=True)
        assert proc.returncode != 0 and "v0.67.0" in output and "strict_release" in output, output[-3000:]
        assert "nothing was written" in output
    finally:
        kubectl("delete", "deployment", "toolhive-operator", "-n", namespace, "--wait=false", check=False)

"""The roles through playbooks/deploy.yml and teardown.yml, on the test bed."""
import base64
import json
import re
import subprocess

from ..conftest import REPO, Audit, wait_until
from ..modules.faulty_api import FaultyAPI

import pytest

PLAYBOOK = "playbooks/deploy.yml"


def recap(output):
    match = re.search(r"localhost\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", output)
    assert match, output[-3000:]
    return {"ok": int(match[1]), "changed": int(match[2]), "failed": int(match[3])}


IN_MEMORY_ONLY = "keeps its sessions in memory only (redis_persistence is false): whenever its pod restarts"


def example(namespace, **overrides):
    deploy_vars = {
        "toolhive_namespace": namespace,
        "toolhive_group": "team",
        "mcpserver_servers": [
            {"name": "fetch", "image": "ghcr.io/stackloklabs/gofetch/server:latest", "transport": "streamable-http",
             "replicas": 2, "backend_resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
             "resources": {"requests": {"cpu": "50m"}}},
            {"name": "time", "image": "ghcr.io/stackloklabs/time/server:latest", "transport": "streamable-http",
             "session_affinity": "None"},
        ],
        "vmcp_instances": [{"name": "gateway", "replicas": 3,
                            "resources": {"requests": {"cpu": "100m"}, "limits": {"memory": "512Mi"}}}],
    }
    deploy_vars.update(overrides)
    return deploy_vars


def password(kubectl, namespace):
    secret = kubectl("get", "secret", "toolhive-redis-auth", "-n", namespace, "-o", "json")
    return base64.b64decode(secret["data"]["password"]).decode()


class Writes:
    """Write requests to one namespace (dry runs are not writes), from the test bed's audit log."""

    def __init__(self, namespace, kubectl):
        self.namespace = namespace
        self.audit = Audit(kubectl)

    def count(self):
        # The playbook's own identity: the controllers' writes (an HPA's events, the operator's status) are not ours.
        return [f"{e['verb']} {e['requestURI']}" for e in self.audit.events()
                if e.get("verb") in ("create", "update", "patch", "delete", "deletecollection")
                and (e.get("user") or {}).get("username") == "toolhive-testbed-admin"
                and (e.get("objectRef") or {}).get("namespace") == self.namespace
                and "dryRun=All" not in e["requestURI"]  # a server-side dry run writes nothing
                # The run lock's Lease (toolhive.k8s.run_lock): every run's own bookkeeping, released by its end.
                and (e.get("objectRef") or {}).get("resource") != "leases"]


def test_deploy_check_mode_writes_nothing_then_deploys_idempotently(run_playbook, kubectl, fresh_namespace):
    ns = fresh_namespace
    check = run_playbook(PLAYBOOK, "--check", "--diff", extra_vars=example(ns))
    assert recap(check.output)["failed"] == 0, check.output[-4000:]
    # Every object shown as it would be created (the namespace does not exist, so no dry run can be asked).
    for shown in ("ConfigMap %s/toolhive-redis-config", "Deployment %s/toolhive-redis", "Service %s/toolhive-redis",
                  "MCPGroup %s/team", "VirtualMCPServer %s/gateway", "MCPServer %s/fetch", "MCPServer %s/time"):
        assert "+++ after: " + shown % ns in check.output, check.output[-4000:]
    assert kubectl("get", "namespace", ns, check=False).returncode != 0  # nothing written, not even the namespace

    first_writes = Writes(ns, kubectl)
    first = run_playbook(PLAYBOOK, extra_vars=example(ns))
    assert recap(first.output)["failed"] == 0, first.output[-4000:]
    # The control: the count sees the playbook's writes (so an empty count below means none were sent).
    assert any(w.startswith("patch ") and "/virtualmcpservers/gateway" in w for w in first_writes.count())
    secret = password(kubectl, ns)
    assert len(secret) == 32 and secret not in first.output
    # Said once, when the Redis without persistence is made (the callback folds long lines).
    assert IN_MEMORY_ONLY in " ".join(first.output.split()), first.output[-3000:]

    vmcp = kubectl("get", "virtualmcpserver", "gateway", "-n", ns, "-o", "json")
    storage = vmcp["spec"]["sessionStorage"]
    assert storage == {"provider": "redis", "address": f"toolhive-redis.{ns}.svc.cluster.local:6379", "db": 0,
                       "keyPrefix": f"thv:{ns}:vmcp:gateway:",
                       "passwordRef": {"name": "toolhive-redis-auth", "key": "password"}}
    assert vmcp["spec"]["podTemplateSpec"]["spec"]["containers"][0]["name"] == "vmcp"
    fetch = kubectl("get", "mcpserver", "fetch", "-n", ns, "-o", "json")["spec"]
    assert fetch["sessionStorage"]["keyPrefix"] == f"thv:{ns}:mcp:fetch:"
    assert fetch["podTemplateSpec"]["spec"]["containers"][0] == {"name": "mcp", "resources": {
        "requests": {"cpu": "100m", "memory": "128Mi"}}, "lifecycle": {"preStop": {"sleep": {"seconds": 10}}},
        "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1, "failureThreshold": 3}}
    assert fetch["resources"] == {"requests": {"cpu": "50m"}} and fetch["groupRef"] == {"name": "team"}
    assert kubectl("get", "mcpserver", "time", "-n", ns, "-o", "json")["spec"]["sessionAffinity"] == "None"
    assert kubectl("get", "deployment", "gateway", "-n", ns, "-o", "json")["status"]["readyReplicas"] == 3

    cond = {c["type"]: c for c in kubectl("get", "virtualmcpserver", "gateway", "-n", ns, "-o", "json")
            ["status"]["conditions"]}
    assert cond["SessionStorageWarning"]["status"] == "False"
    assert cond["SessionStorageWarning"]["reason"] == "SessionStorageConfigured"

    writes = Writes(ns, kubectl)
    second = run_playbook(PLAYBOOK, extra_vars=example(ns))
    assert recap(second.output)["changed"] == 0, second.output[-4000:]
    assert writes.count() == []  # a no-op run writes nothing (dry runs only)
    assert password(kubectl, ns) == secret  # generated once, never regenerated
    assert IN_MEMORY_ONLY not in " ".join(second.output.split())


def test_diff_shows_a_change_and_teardown_keeps_the_secret_unless_purged(run_playbook, kubectl, fresh_namespace):
    ns = fresh_namespace
    assert recap(run_playbook(PLAYBOOK, extra_vars=example(ns)).output)["failed"] == 0
    bigger = example(ns, vmcp_instances=[{"name": "gateway", "replicas": 4}])
    diff = run_playbook(PLAYBOOK, "--check", "--diff", extra_vars=bigger)
    assert re.search(r"[-]\s*replicas: 3", diff.output) and re.search(r"[+]\s*replicas: 4", diff.output), \
        diff.output[-4000:]
    assert kubectl("get", "virtualmcpserver", "gateway", "-n", ns, "-o", "json")["spec"]["replicas"] == 3

    down = run_playbook("playbooks/teardown.yml", extra_vars=example(ns))
    assert recap(down.output)["failed"] == 0, down.output[-4000:]
    for kind, name in (("virtualmcpserver", "gateway"), ("mcpserver", "fetch"), ("deployment", "toolhive-redis")):
        assert kubectl("get", kind, name, "-n", ns, check=False).returncode != 0
    assert password(kubectl, ns)  # kept

    purged = run_playbook("playbooks/teardown.yml", extra_vars=dict(example(ns), purge=True))
    assert recap(purged.output)["failed"] == 0
    assert kubectl("get", "secret", "toolhive-redis-auth", "-n", ns, check=False).returncode != 0


@pytest.mark.parametrize("overrides, message", [
    ({"mcpserver_servers": [{"name": "io", "image": "x", "replicas": 2}]},
     "MCPServer {ns}/io: spec.replicas=2 with transport stdio"),
    ({"mcpserver_servers": [{"name": "io", "image": "x", "backend_replicas": 3}]},
     "spec.backendReplicas=3 with transport stdio"),
    ({"redis_enabled": False},
     "VirtualMCPServer {ns}/gateway: spec.replicas=3 without Redis session storage"),
    # One kind's opt-in is its own: fetch's 2 proxies are accepted, the gateway's 3 replicas are not.
    ({"redis_enabled": False, "mcpserver_allow_without_session_storage": True},
     "VirtualMCPServer {ns}/gateway: spec.replicas=3 without Redis session storage"),
    ({"mcpserver_servers": [{"name": "gateway", "image": "x", "transport": "streamable-http"}]},
     "MCPServer and VirtualMCPServer {ns}/gateway share a name"),
    ({"mcpserver_servers": [{"name": "p", "image": "x", "transport": "streamable-http",
                             "session_storage": {"provider": "redis", "address": "r:1", "keyPrefix": "p"}}]},
     "keyPrefix 'p' must be printable characters without blanks, ending with ':'"),
    ({"vmcp_instances": [{"name": "gateway", "replicas": 2, "autoscale": {"max_replicas": 4}}]},
     "spec.replicas=2 is set while this play gives the workload an HPA"),
    ({"mcpserver_servers": [{"name": "s", "image": "x", "transport": "streamable-http",
                             "session_storage": {"provider": "redis", "address": "r:1",
                                                 "passwordRef": {"name": "nope", "key": "password"}}}]},
     "names Secret nope, which does not exist"),
    ({"toolhive_api_version": "v1alpha9"}, "value of toolhive_api_version must be one of: v1beta1, v1alpha1"),
    ({"toolhive_cluster_domain": "corp example"}, "toolhive_cluster_domain = 'corp example' must be a DNS domain"),
])
def test_guards_refuse_before_any_write(run_playbook, kubectl, fresh_namespace, overrides, message):
    ns = fresh_namespace
    result = run_playbook(PLAYBOOK, extra_vars=example(ns, **overrides))
    assert recap(result.output)["failed"] == 1
    assert message.format(ns=ns) in result.output, result.output[-3000:]
    assert kubectl("get", "namespace", ns, check=False).returncode != 0  # nothing at all was written


def test_a_namespace_being_deleted_is_refused_before_any_write(run_playbook, kubectl, fresh_namespace):
    """A deploy right after a teardown, its namespace still Terminating: refused at once, naming it, not a 180 s
    wait for a Redis the API server never lets exist. A finalizer of the test's own holds the namespace there."""
    ns = fresh_namespace
    kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": ns, "finalizers": ["toolhive.test/hold"]}}))
    kubectl("delete", "namespace", ns, "--wait=false")
    try:
        assert kubectl("get", "namespace", ns, "-o", "json")["status"]["phase"] == "Terminating"
        writes = Writes(ns, kubectl)
        result = run_playbook(PLAYBOOK, extra_vars=example(ns))
        assert recap(result.output)["failed"] == 1
        assert re.search(rf"namespace {ns} \(deleted at [^)]+\) is being deleted \(Terminating\)", result.output), \
            result.output[-3000:]
        assert "This run had written nothing." in result.output
        assert writes.count() == []
    finally:
        kubectl("patch", "namespace", ns, "--type=merge", "-p", '{"metadata":{"finalizers":null}}')


def test_the_cluster_domain_is_a_variable(run_playbook, fresh_namespace):
    """Clusters with another clusterDomain: the servers' Redis address ends in it (check mode: nothing is written)."""
    ns = fresh_namespace
    plain = run_playbook(PLAYBOOK, "--check", "--diff", extra_vars=example(ns, toolhive_cluster_domain="corp.example"))
    assert recap(plain.output)["failed"] == 0, plain.output[-4000:]
    assert f"address: toolhive-redis.{ns}.svc.corp.example:6379" in plain.output, plain.output[-4000:]
    assert "svc.cluster.local" not in plain.output


def test_a_check_the_api_server_cannot_run_is_a_warning_not_a_failure(run_playbook, fresh_namespace):
    """KWOK's pods are Ready but have no network: the API server answers 'no route to host' for every one, as a
    managed control plane without a route to the nodes' pod ports does. The rollout is fine: the deploy succeeds,
    warning once with the fix, and status says the check could not run."""
    ns = fresh_namespace
    result = run_playbook(PLAYBOOK, extra_vars=example(ns, toolhive_mcp_check=True, toolhive_mcp_check_wait=20))
    assert recap(result.output)["failed"] == 0, result.output[-4000:]
    output = " ".join(result.output.split())  # warnings are wrapped to the terminal's width
    assert "the MCP check could not run: the API server cannot reach the pods" in output, result.output[-4000:]
    assert "no route to host" in output and "Fix: allow the control plane to reach the pods' ports" in output
    # The deploy waited for the gateway's rollout only, the check being to follow: without the check's word, the
    # operator's Ready is waited for.
    assert re.search(r"TASK \[Wait for the gateways' Ready where the MCP check could not run\] \**\nok: \[localhost\]",
                     result.output), result.output[-4000:]
    status = run_playbook("playbooks/status.yml", extra_vars={"toolhive_namespace": ns, "toolhive_mcp_check": True})
    report = " ".join(status.output.split())
    assert recap(status.output)["failed"] == 0, status.output[-4000:]
    assert f"VirtualMCPServer {ns}/gateway: phase Ready" in report and \
        "MCP: could not run (the API server cannot reach the pods)" in report, report[-3000:]


def test_opt_in_deploys_without_redis_with_a_warning(run_playbook, kubectl, fresh_namespace):
    ns = fresh_namespace
    result = run_playbook(PLAYBOOK, extra_vars=example(ns, redis_enabled=False,
                                                       toolhive_allow_without_session_storage=True))
    assert recap(result.output)["failed"] == 0, result.output[-3000:]
    assert "without Redis session storage" in result.output  # warned
    cond = {c["type"]: c for c in kubectl("get", "virtualmcpserver", "gateway", "-n", ns, "-o", "json")
            ["status"]["conditions"]}
    assert cond["SessionStorageWarning"]["reason"] == "SessionStorageMissingForReplicas"


def budgets(kubectl, namespace):
    listed = kubectl("get", "poddisruptionbudgets", "-n", namespace, "-o", "json")["items"]
    return {b["metadata"]["name"]: b["spec"]["selector"]["matchLabels"] for b in listed}


def test_each_workload_gets_a_budget_until_turned_off_and_a_users_budget_is_never_taken(
        run_playbook, kubectl, fresh_namespace):
    ns = fresh_namespace
    assert recap(run_playbook(PLAYBOOK, extra_vars=example(ns)).output)["failed"] == 0
    assert budgets(kubectl, ns) == {
        "gateway-vmcp": {"app.kubernetes.io/name": "virtualmcpserver", "app.kubernetes.io/instance": "gateway"},
        "fetch-proxy": {"app.kubernetes.io/name": "mcpserver", "app.kubernetes.io/instance": "fetch"},
        "fetch-backend": {"app": "fetch", "toolhive-basename": "fetch"},
        "time-proxy": {"app.kubernetes.io/name": "mcpserver", "app.kubernetes.io/instance": "time"},
        "time-backend": {"app": "time", "toolhive-basename": "time"}}

    # Each selects its workload's pods, as the disruption controller counts them (once it has seen the budget).
    def counted():
        status = kubectl("get", "poddisruptionbudget", "gateway-vmcp", "-n", ns, "-o", "json").get("status") or {}
        return (status.get("expectedPods"), status.get("disruptionsAllowed")) == (3, 1) and status
    wait_until("the gateway's budget to count its 3 pods and allow 1 disruption", counted, timeout=60)

    off = run_playbook(PLAYBOOK, extra_vars=example(ns, mcpserver_disruption_budgets=False))
    assert recap(off.output)["failed"] == 0, off.output[-4000:]
    assert sorted(budgets(kubectl, ns)) == ["gateway-vmcp"]  # the MCPServers' turned off, the gateway's kept

    # A budget of the user's, named as the collection would name one: the deploy refuses before any write.
    kubectl("create", "poddisruptionbudget", "fetch-proxy", "-n", ns, "--selector", "app=mine", "--min-available", "1")
    refused = run_playbook(PLAYBOOK, extra_vars=example(ns))
    assert recap(refused.output)["failed"] == 1
    assert "PodDisruptionBudget %s/fetch-proxy exists and is not the collection's" % ns in refused.output
    assert budgets(kubectl, ns)["fetch-proxy"] == {"app": "mine"}

    # The teardown removes the collection's budgets, also those of a role whose budgets are now off; never the user's.
    down = run_playbook("playbooks/teardown.yml", extra_vars=example(ns, vmcp_disruption_budgets=False))
    assert recap(down.output)["failed"] == 0, down.output[-4000:]
    assert budgets(kubectl, ns) == {"fetch-proxy": {"app": "mine"}}


def test_purge_keeps_a_secret_the_user_gave(run_playbook, kubectl, fresh_namespace):
    ns = fresh_namespace
    kubectl("create", "namespace", ns)
    kubectl("create", "secret", "generic", "my-redis", "-n", ns, "--from-literal=password=users-own")
    mine = example(ns, redis_password_secret="my-redis")
    assert recap(run_playbook(PLAYBOOK, extra_vars=mine).output)["failed"] == 0
    purged = run_playbook("playbooks/teardown.yml", extra_vars=dict(mine, purge=True))
    assert recap(purged.output)["failed"] == 0, purged.output[-3000:]
    assert "was not generated by this collection" in purged.output  # said, not silent
    secret = kubectl("get", "secret", "my-redis", "-n", ns, "-o", "json")
    assert base64.b64decode(secret["data"]["password"]).decode() == "users-own"
    assert kubectl("get", "deployment", "toolhive-redis", "-n", ns, check=False).returncode != 0  # the rest went


def test_two_first_deploys_at_once_end_with_one_password(ansible_env, kubectl, fresh_namespace):
    ns = fresh_namespace
    args = ["ansible-playbook", PLAYBOOK, "-e", json.dumps(dict(example(ns), toolhive_mcp_check=False))]
    writes = Writes(ns, kubectl)
    runs = [subprocess.Popen(args, cwd=REPO, env=ansible_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True) for attempt in range(2)]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [o[-2000:] for o in outputs]
    # The Secret was only ever created (a create the API server refuses when it exists), never rewritten:
    # with the earlier apply, the second run's patch replaced the first run's password.
    secret_writes = [w for w in writes.count() if "/secrets" in w]
    assert secret_writes and all(w.startswith("create ") for w in secret_writes), secret_writes
    both_ready = kubectl("get", "virtualmcpserver", "gateway", "-n", ns, "-o", "json")["status"]
    assert both_ready.get("phase") in ("Ready", "Pending") and password(kubectl, ns)


def test_a_hand_deleted_secret_stops_the_deploy_until_regeneration_is_asked(run_playbook, kubectl, fresh_namespace):
    ns = fresh_namespace
    assert recap(run_playbook(PLAYBOOK, extra_vars=example(ns)).output)["failed"] == 0
    old = password(kubectl, ns)
    kubectl("delete", "secret", "toolhive-redis-auth", "-n", ns)
    refused = run_playbook(PLAYBOOK, extra_vars=example(ns))
    assert recap(refused.output)["failed"] == 1
    assert "is missing while Deployment toolhive-redis" in refused.output, refused.output[-3000:]
    assert kubectl("get", "secret", "toolhive-redis-auth", "-n", ns, check=False).returncode != 0

    rotated = run_playbook(PLAYBOOK, extra_vars=example(ns, redis_regenerate_password=True))
    assert recap(rotated.output)["failed"] == 0, rotated.output[-3000:]
    assert password(kubectl, ns) != old
    template = kubectl("get", "deployment", "toolhive-redis", "-n", ns, "-o", "json")["spec"]["template"]
    assert "kubectl.kubernetes.io/restartedAt" in template["metadata"]["annotations"]  # Redis rolled


def test_a_first_run_failure_says_what_failed(run_playbook, fresh_namespace):
    """Redis waits on a PVC no provisioner binds: the failure names Redis and is not hidden (no_log)."""
    ns = fresh_namespace
    result = run_playbook(PLAYBOOK, extra_vars=example(ns, redis_persistence=True, redis_storage_class="none-here",
                                                       redis_wait_timeout=5))
    assert recap(result.output)["failed"] == 1
    assert "output has been hidden" not in result.output and "censored" not in result.output
    failed = result.output[result.output.index("fatal:"):]
    assert "toolhive-redis" in failed, failed[:3000]


def test_deploy_after_a_scale_refuses_to_undo_it_then_keeps_it(run_playbook, kubectl, fresh_namespace):
    """deploy -> scale -> deploy: the second deploy names the change and writes nothing (no 409 from the apply);
    with the scaled count in the variables it applies cleanly."""
    ns = fresh_namespace
    assert recap(run_playbook(PLAYBOOK, extra_vars=example(ns)).output)["failed"] == 0
    scaled = run_playbook("playbooks/scale.yml", extra_vars={
        "toolhive_namespace": ns, "toolhive_kind": "VirtualMCPServer", "toolhive_name": "gateway",
        "toolhive_replicas": 5})
    assert recap(scaled.output)["failed"] == 0, scaled.output[-3000:]

    writes = Writes(ns, kubectl)
    again = run_playbook(PLAYBOOK, extra_vars=example(ns))
    assert recap(again.output)["failed"] == 1
    assert "spec.replicas is 5 in the cluster, set by toolhive.k8s.scale or autoscale" in again.output, \
        again.output[-3000:]
    assert "409" not in again.output and "conflict" not in again.output.lower()
    assert writes.count() == []
    assert kubectl("get", "virtualmcpserver", "gateway", "-n", ns, "-o", "json")["spec"]["replicas"] == 5

    kept = run_playbook(PLAYBOOK, extra_vars=example(ns, vmcp_instances=[{"name": "gateway", "replicas": 5}]))
    assert recap(kept.output)["failed"] == 0, kept.output[-3000:]
    assert kubectl("get", "virtualmcpserver", "gateway", "-n", ns, "-o", "json")["spec"]["replicas"] == 5


def test_deploy_after_autoscale_refuses_to_fight_the_hpa(run_playbook, kubectl, fresh_namespace):
    """deploy -> autoscale (release_replicas) -> deploy: putting spec.replicas back would start a fight: refused."""
    ns = fresh_namespace
    assert recap(run_playbook(PLAYBOOK, extra_vars=example(ns)).output)["failed"] == 0
    hpa = run_playbook("playbooks/autoscale.yml", extra_vars={
        "toolhive_namespace": ns, "toolhive_kind": "VirtualMCPServer", "toolhive_name": "gateway",
        "toolhive_min_replicas": 2, "toolhive_max_replicas": 4, "toolhive_release_replicas": True})
    assert recap(hpa.output)["failed"] == 0, hpa.output[-3000:]

    writes = Writes(ns, kubectl)
    again = run_playbook(PLAYBOOK, extra_vars=example(ns))
    assert recap(again.output)["failed"] == 1
    assert "spec.replicas is unset (released to an HPA)" in again.output, again.output[-3000:]
    assert "HPA gateway scales its Deployment gateway" in again.output
    assert writes.count() == []
    assert "replicas" not in kubectl("get", "virtualmcpserver", "gateway", "-n", ns, "-o", "json")["spec"]

    left_out = run_playbook(PLAYBOOK, extra_vars=example(ns, vmcp_instances=[{"name": "gateway"}]))
    assert recap(left_out.output)["failed"] == 0, left_out.output[-3000:]
    assert "replicas" not in kubectl("get", "virtualmcpserver", "gateway", "-n", ns, "-o", "json")["spec"]


def test_losing_the_api_server_mid_deploy_says_what_stands_and_a_rerun_converges(
        run_playbook, kubectl, kubeconfig, fresh_namespace):
    """The API server goes away once Redis is written, as the gateways are applied: the failure names the step
    and what this run had already written; the next run finishes the job."""
    ns = fresh_namespace
    with FaultyAPI(kubeconfig) as proxy:
        def away_at_the_gateways(method, path):
            if "/virtualmcpservers" in path and method in ("PATCH", "POST"):
                proxy.go_away()
        proxy.hooks.append(away_at_the_gateways)
        env = {"KUBECONFIG": "/nonexistent", "K8S_AUTH_KUBECONFIG": None, "K8S_AUTH_HOST": proxy.url,
               "K8S_AUTH_API_KEY": "the-front-authenticates"}
        cut = run_playbook(PLAYBOOK, extra_vars=example(ns), env=env)
    assert recap(cut.output)["failed"] == 1
    said = cut.output[cut.output.index("The deploy stopped at"):]
    assert 'The deploy stopped at "Apply the gateways"' in said, said[:2000]
    assert "the Kubernetes API server could not be reached" in said
    assert ("Already changed by this run (it stands): namespace %s created; Redis password Secret %s/toolhive-redis-auth "
            "created; " % (ns, ns)) in said.replace("\n", " "), said[:2000]
    # Redis, then the backends (applied and rolled out before the gateways).
    for applied in ("ConfigMap %s/toolhive-redis-config", "Deployment %s/toolhive-redis", "Service %s/toolhive-redis",
                    "MCPServer %s/fetch", "MCPServer %s/time", "MCPGroup %s/team"):
        assert (applied % ns) + " applied" in said, said[:2000]
    assert "VirtualMCPServer %s/gateway applied" % ns not in said  # the write the API server never answered
    assert "Value of unknown type" not in said

    again = run_playbook(PLAYBOOK, extra_vars=example(ns))
    assert recap(again.output)["failed"] == 0, again.output[-3000:]
    assert kubectl("get", "deployment", "gateway", "-n", ns, "-o", "json")["status"]["readyReplicas"] == 3


def test_a_rotation_tells_redis_the_new_password_and_replaces_the_readers_pods(run_playbook, kubectl, fresh_namespace):
    """Standalone: the rotation's Jobs run, every server pod is replaced, Redis is not restarted, and the Secret ends
    with the new password alone. In check mode nothing is written."""
    ns = fresh_namespace
    assert recap(run_playbook(PLAYBOOK, extra_vars=example(ns)).output)["failed"] == 0
    old = password(kubectl, ns)
    redis_template = kubectl("get", "deployment", "toolhive-redis", "-n", ns, "-o", "json")["spec"]["template"]

    def server_pods():
        return {p["metadata"]["uid"] for p in kubectl("get", "pods", "-n", ns, "-o", "json")["items"]
                if [o["kind"] for o in p["metadata"].get("ownerReferences", [])] == ["ReplicaSet"]
                and not p["metadata"]["name"].startswith("toolhive-redis")}

    before = server_pods()
    dry = run_playbook(PLAYBOOK, "--check", extra_vars=example(ns, redis_regenerate_password=True))
    assert recap(dry.output)["failed"] == 0, dry.output[-3000:]
    assert password(kubectl, ns) == old and server_pods() == before
    assert kubectl("get", "jobs", "-n", ns, "-o", "json")["items"] == []

    rotated = run_playbook(PLAYBOOK, extra_vars=example(ns, redis_regenerate_password=True))
    assert recap(rotated.output)["failed"] == 0, rotated.output[-3000:]
    secret = kubectl("get", "secret", "toolhive-redis-auth", "-n", ns, "-o", "json")
    assert sorted(secret["data"]) == ["password"] and password(kubectl, ns) != old
    assert "toolhive.k8s/rotation" not in secret["metadata"]["annotations"]
    steps = sorted(j["metadata"]["name"].rsplit("-", 1)[1] for j in kubectl("get", "jobs", "-n", ns, "-o", "json")["items"]
                   if j["status"].get("succeeded") == 1)
    assert steps == ["accept", "drop"], steps
    assert not before & server_pods(), "a server kept a pod from before the rotation"
    assert kubectl("get", "deployment", "toolhive-redis", "-n", ns, "-o", "json")["spec"]["template"] == redis_template
    assert "Restarted, one at a time: Deployment/" in " ".join(rotated.output.split())

"""toolhive.k8s.mcp_check on running pods: each finding it makes, caused for real.

One deployment by playbooks/deploy.yml (the one test_sessions.py describes: gateways `shared` with Redis and
`solo` without, 3 replicas each; MCPServers `everything` with Redis and `alone` without, 2 proxies each), then:
one gateway replica frozen (SIGSTOP of its process on the node: Running and Ready, but it answers nothing);
Redis scaled to 0; hostile MCPServers (tests/integration/realpods/hostile.py: slow, huge, malformed, dripping
replies); check mode against the API server's audit log; the status playbook's line; and the least-privilege
account of awx/rbac.yaml, refused as soon as one of the verbs it gained is taken away.
"""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ..roles.test_awx_credential_and_rbac import rbac_for
from ..conftest import Audit
from .conftest import REPO, deploy, wait_until
from .podclient import kubeconfig_files
from .test_sessions import deploy_vars

pytestmark = pytest.mark.usefixtures("real_nodes")
HOSTILE = ("slow", "huge", "malformed", "drip")


@pytest.fixture(scope="module")
def deployed(run_playbook, kubectl, fresh_namespace, images):
    def serving(deployment):
        return len(deployment.pods("app.kubernetes.io/instance=shared")) == 3 and \
            len(deployment.pods("app.kubernetes.io/instance=everything,app=mcpserver")) == 2

    deployment = deploy(run_playbook, kubectl, deploy_vars(fresh_namespace, images), serving)
    return deployment


def mcp_check(ansible_env, *flags, env=None, **args):
    """Run the module (ad hoc, in a real Ansible process); returns (its result, seconds)."""
    cmd = ["ansible", "localhost", "-m", "toolhive.k8s.mcp_check", "-a", json.dumps(args), *flags]
    merged = {**ansible_env, "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "json", **(env or {})}
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=merged, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300, check=False)
    seconds = time.monotonic() - started
    try:
        result = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    except (ValueError, KeyError, IndexError):
        raise AssertionError(f"no module result: {proc.stdout[-3000:]} {proc.stderr[-3000:]}")
    return result, seconds


def server(result, name):
    return next(s for s in result["servers"] if s["name"] == name)


def replicas(result, name):
    return {r["pod"]: r for r in server(result, name)["replicas"]}


def test_sessions_shared_every_replica_serves(deployed, ansible_env):
    """Redis: every replica answers, and a session opened on one is served by the others (and the Service). Redis
    started before the servers: no session was lost, and none is said to be."""
    result, _output = mcp_check(ansible_env, namespace=deployed.namespace, names=["shared", "everything"])
    assert result["ok"], result["findings"]
    for name, count in (("shared", 3), ("everything", 2)):
        entry = server(result, name)
        assert entry["ok"] and entry["findings"] == [] and entry["sessions_lost"] is None, entry
        assert entry["service"]["answered"] and entry["service"]["tools"] == 10, entry["service"]
        pods = replicas(result, name)
        assert len(pods) == count
        opener = entry["session"]["opened_on"]
        for pod, replica in pods.items():
            assert replica["answered"] and replica["tools"] == 10 and replica["latency_ms"] > 0, replica
            assert replica["session_served"] is (None if pod == opener else True), replica
        assert f"served by {count - 1}/{count - 1} other; OK" in entry["summary"], entry["summary"]


def test_sessions_not_shared_finding_names_the_cause(deployed, ansible_env):
    """No session storage: every replica answers its own session, the others refuse it, and the finding says why."""
    result, _output = mcp_check(ansible_env, namespace=deployed.namespace, names=["solo", "alone"])
    assert not result["ok"]
    for name, refusal in (("solo", "Session terminated"), ("alone", "Session not found")):
        entry = server(result, name)
        opener = entry["session"]["opened_on"]
        others = [r for r in entry["replicas"] if r["pod"] != opener]
        assert others and all(r["answered"] for r in entry["replicas"]), entry["replicas"]
        for replica in others:
            assert replica["session_served"] is False and replica["session_error"]["status"] == 404, replica
            assert refusal in replica["session_error"]["message"], replica
            sentence = next(f for f in entry["findings"] if f"unknown on {replica['pod']}" in f)
            assert f"a session opened on {opener}" in sentence and "has no session storage" in sentence, sentence
            assert "set sessionStorage (provider redis" in sentence, sentence


def test_the_opt_in_accepts_lost_sessions_and_the_deploy_succeeds(deployed, ansible_env, run_playbook, images):
    """The deploy of this very job, with its opt-in (toolhive_allow_without_session_storage) and the MCP check on:
    the sessions solo and alone lose between replicas are what the user accepted - warnings, and the deploy
    succeeds. Without the opt-in the same check fails, and its message is the findings themselves."""
    refused, _seconds = mcp_check(ansible_env, namespace=deployed.namespace, names=["solo", "alone"])
    assert not refused["ok"] and refused["msg"].startswith("MCP check NOT OK"), refused["msg"]
    assert "has no session storage" in refused["msg"] and refused["accepted"] == [], refused["msg"]

    accepted, _seconds = mcp_check(ansible_env, namespace=deployed.namespace, names=["solo", "alone"],
                                   allow_without_session_storage=True)
    assert accepted["ok"] and accepted["findings"] == [], accepted["findings"]
    assert {a.split(":")[0] for a in accepted["accepted"]} == {
        f"VirtualMCPServer {deployed.namespace}/solo", f"MCPServer {deployed.namespace}/alone"}, accepted["accepted"]

    again = run_playbook(REPO / "playbooks" / "deploy.yml",
                         extra_vars=dict(deploy_vars(deployed.namespace, images), toolhive_mcp_check=True))
    assert again.returncode == 0, again.output[-6000:]
    output = " ".join(again.output.split())  # warnings are wrapped to the terminal's width
    for name in ("VirtualMCPServer %s/solo" % deployed.namespace, "MCPServer %s/alone" % deployed.namespace):
        assert "accepted (allow_without_session_storage): " + name in output, again.output[-6000:]


def host_pids(pod_uid, program):
    """PIDs on this host (the real node) of PROGRAM in the pod with POD_UID, found by their cgroup."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cgroup = (proc / "cgroup").read_text()
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")[0].decode()
        except OSError:
            continue
        if (pod_uid in cgroup or pod_uid.replace("-", "_") in cgroup) and cmdline.endswith(program):
            pids.append(int(proc.name))
    return pids


def test_one_frozen_replica_is_named_and_does_not_hang_the_play(deployed, ansible_env, kubectl):
    """One gateway pod's process stopped (SIGSTOP from the node): Running and Ready, but silent. The check reports
    that pod, within its timeout, and the other replicas as answering."""
    pods = deployed.pods("app.kubernetes.io/instance=shared")
    frozen = pods[1]
    uid = kubectl("get", "pod", frozen, "-n", deployed.namespace, "-o", "json")["metadata"]["uid"]
    pids = host_pids(uid, "/ko-app/vmcp")
    assert len(pids) == 1, pids
    os.kill(pids[0], signal.SIGSTOP)
    try:
        result, seconds = mcp_check(ansible_env, namespace=deployed.namespace, name="shared", timeout=2)
        assert kubectl("get", "pod", frozen, "-n", deployed.namespace, "-o", "json")["status"]["phase"] == "Running"
    finally:
        os.kill(pids[0], signal.SIGCONT)
    assert not result["ok"]
    entry = server(result, "shared")
    by_pod = replicas(result, "shared")
    assert by_pod[frozen]["answered"] is False and by_pod[frozen]["error"]["kind"] == "timeout", by_pod[frozen]
    assert by_pod[frozen]["error"]["step"] == "initialize"
    assert all(by_pod[p]["answered"] for p in pods if p != frozen), by_pod
    assert any(f.startswith(f"pod {frozen} did not answer initialize within 2.0s") for f in entry["findings"]), \
        entry["findings"]
    assert "2/3 replicas answer" in entry["summary"], entry["summary"]
    # Bounded: three rounds of at most 2 s each, plus Ansible's start.
    assert seconds < 15, seconds
    wait_until("the thawed pod to answer again",
               lambda: mcp_check(ansible_env, namespace=deployed.namespace, name="shared")[0]["ok"], timeout=60)


def test_hostile_servers_are_reported_within_the_bounds(deployed, ansible_env, kubectl, images):
    """MCPServers whose backend answers tools/list slowly, hugely, with no JSON or one byte at a time: each one a
    finding of its own kind, and the task ends within its bounds."""
    script = (REPO / "tests" / "integration" / "realpods" / "hostile.py").read_text()
    image = next(n for n in subprocess.run([str(REPO / "testbed" / "images.sh"), "names"], capture_output=True,
                                           text=True, check=True).stdout.split() if "mcp-server-time" in n)
    items = [{"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPServer",
              "metadata": {"name": f"hostile-{mode}", "namespace": deployed.namespace},
              "spec": {"image": image, "transport": "streamable-http", "mcpPort": 8080, "proxyPort": 8080,
                       "env": [{"name": "HOSTILE_MODE", "value": mode}],
                       "podTemplateSpec": {"spec": {"containers": [
                           {"name": "mcp", "command": ["python3", "-c", script]}]}}}} for mode in HOSTILE]
    kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    names = [f"hostile-{mode}" for mode in HOSTILE]
    wait_until("the hostile servers' proxies and backends to be Ready", lambda: all(
        deployed.pods(f"app.kubernetes.io/instance={n},app=mcpserver") and deployed.pods(f"app={n}")
        for n in names), timeout=120)
    wait_until("the hostile servers to answer initialize", lambda: all(
        r["error"] and r["error"]["step"] == "tools/list" for r in (
            replica for s in mcp_check(ansible_env, namespace=deployed.namespace, kind="MCPServer", names=names,
                                       timeout=2, max_response_bytes=65536)[0]["servers"]
            for replica in s["replicas"])), timeout=60, interval=2)
    result, seconds = mcp_check(ansible_env, namespace=deployed.namespace, kind="MCPServer", names=names, timeout=2,
                                max_response_bytes=65536)
    assert not result["ok"]
    expected = {"slow": ("timeout", "did not answer tools/list within 2.0s"),
                "drip": ("timeout", "did not answer tools/list within 2.0s"),
                "huge": ("too_large", "with more than 65536 bytes and the check stopped reading"),
                "malformed": ("malformed", "with something that is not MCP")}
    for mode, (kind, words) in expected.items():
        entry = server(result, f"hostile-{mode}")
        (replica,) = entry["replicas"]
        assert replica["answered"] is False and replica["initialize_ok"], replica
        assert replica["error"]["kind"] == kind, replica["error"]
        assert any(words in f for f in entry["findings"]), entry["findings"]
    assert seconds < 15, seconds  # every server at once: three rounds of at most 2 s, plus Ansible's start
    kubectl("delete", "mcpserver", *names, "-n", deployed.namespace, "--wait=false")


def audit_events(audit, namespace, kubectl):
    """The requests of the kubeconfig's user (the test bed's admin) into NAMESPACE since AUDIT (an AuditLog) was
    made."""
    # The module's own requests: the admin's identity (not the operator's or the controllers'), urllib3 (not
    # the kubectl of this test).
    admin = kubectl("auth", "whoami", "-o", "json")["status"]["userInfo"]["username"]
    return [e for e in audit.events() if e.get("objectRef", {}).get("namespace") == namespace
            and e.get("stage") == "ResponseComplete"
            and e.get("user", {}).get("username") == admin
            and e.get("userAgent", "").startswith("python-urllib3")]


def test_check_mode_writes_nothing_and_sends_no_mcp_request(deployed, ansible_env, kubectl):
    """--check: only reads (GET/list) reach the API server, none through its proxy; without --check, the same
    task's MCP requests are in the same log (so the audit would see them)."""
    audit = Audit(kubectl)
    result, _output = mcp_check(ansible_env, "--check", namespace=deployed.namespace)
    events = audit_events(audit, deployed.namespace, kubectl)
    assert result["ok"] is False and result["msg"].startswith("check mode: no MCP request sent"), result
    assert all(not r["checked"] and r["answered"] is None for s in result["servers"] for r in s["replicas"])
    assert events and {e["verb"] for e in events} <= {"get", "list"}, {(e["verb"], e["requestURI"]) for e in events}
    assert not [e for e in events if e["objectRef"].get("subresource") == "proxy"]

    audit = Audit(kubectl)
    mcp_check(ansible_env, namespace=deployed.namespace, name="shared")
    proxied = [e for e in audit_events(audit, deployed.namespace, kubectl) if e["objectRef"].get("subresource") == "proxy"]
    assert {(e["verb"], e["objectRef"]["resource"]) for e in proxied} == {
        ("create", "pods"), ("delete", "pods"), ("create", "services"), ("delete", "services")}, proxied


def test_status_playbook_shows_the_check_on_each_line_and_fails_when_not_ok(deployed, run_playbook):
    # The check on, as status.yml's default is (run_playbook turns it off for KWOK's silent pods). `solo` loses
    # sessions: the report says NOT OK, and the job ends non-zero after printing it.
    result = run_playbook(REPO / "playbooks" / "status.yml",
                          extra_vars={"toolhive_namespace": deployed.namespace, "toolhive_mcp_check": True})
    assert result.returncode == 2, result.output[-3000:]
    assert "Fail when the report says NOT OK" in result.output and "MCP check NOT OK" in result.output
    reporting = run_playbook(REPO / "playbooks" / "status.yml",
                             extra_vars={"toolhive_namespace": deployed.namespace, "toolhive_mcp_check": True,
                                         "toolhive_status_fail": False})
    assert reporting.returncode == 0, reporting.output[-3000:]
    report = " ".join(reporting.output.split())
    assert f"VirtualMCPServer {deployed.namespace}/shared: phase" in report
    line = report.split(f"VirtualMCPServer {deployed.namespace}/shared:")[1].split("VirtualMCPServer")[0]
    assert "MCP: 3/3 replicas answer (10 tools," in line and "served by 2/2 other; OK" in line, line
    line = report.split(f"VirtualMCPServer {deployed.namespace}/solo:")[1].split("VirtualMCPServer")[0]
    assert "served by 0/2 other; NOT OK" in line and "has no session storage" in line, line
    off = run_playbook(REPO / "playbooks" / "status.yml",
                       extra_vars={"toolhive_namespace": deployed.namespace, "toolhive_mcp_check": False})
    assert off.returncode == 0 and "MCP:" not in off.output, off.output[-3000:]


@pytest.fixture
def automation(kubectl, kubeconfig, deployed, tmp_path):
    """awx/rbac.yaml's account in the deployed namespace, and the environment of an AWX job with its token;
    yields (env, set_role(rules)) to take verbs away."""
    namespace = deployed.namespace
    documents = rbac_for(namespace)
    kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": documents}))
    role = [d for d in documents if d["kind"] == "Role"][0]
    token = kubectl("create", "token", "toolhive-automation", "-n", namespace).stdout.strip()
    server, authority = kubeconfig_files(kubeconfig)[:2]
    env = {"K8S_AUTH_HOST": server, "K8S_AUTH_API_KEY": token, "K8S_AUTH_VERIFY_SSL": "true",
           "K8S_AUTH_SSL_CA_CERT": authority, "KUBECONFIG": "", "K8S_AUTH_KUBECONFIG": "",
           "HOME": str(tmp_path)}

    def set_rules(rules):
        kubectl("apply", "-f", "-", stdin=json.dumps(dict(role, rules=rules)))
        time.sleep(1)  # RBAC is read from an informer

    yield env, role["rules"], set_rules
    set_rules(role["rules"])
    kubectl("delete", "clusterrolebinding,clusterrole", f"toolhive-automation-{namespace}", check=False)


def without(rules, resource, verb):
    """RULES with VERB taken away from the rule naming RESOURCE."""
    changed = []
    for rule in rules:
        rule = dict(rule)
        if resource in rule["resources"] and rule.get("apiGroups") == [""]:
            rule["verbs"] = [v for v in rule["verbs"] if v != verb]
        if rule["verbs"]:
            changed.append(rule)
    return changed


def test_least_privilege_account_runs_the_check_and_needs_each_verb(deployed, ansible_env, automation):
    """awx/rbac.yaml's account checks every replica; without any one of the verbs it gained, the task fails with
    HTTP 403 naming what to grant."""
    env, rules, set_rules = automation
    result, _output = mcp_check(ansible_env, env=env, namespace=deployed.namespace, name="shared")
    assert result.get("ok"), result
    for resource, verb in (("pods", "list"), ("pods/proxy", "create"), ("pods/proxy", "delete")):
        set_rules(without(rules, resource, verb))
        refused, _output = mcp_check(ansible_env, env=env, namespace=deployed.namespace, name="shared")
        assert refused.get("failed") and "403" in refused["msg"], (resource, verb, refused)
    set_rules(rules)


def test_redis_stopped_while_sessions_exist(deployed, ansible_env, kubectl):
    """Redis scaled to 0 under running gateways and proxies: the check names Redis; back at 1, it passes again."""
    kubectl("scale", "deployment", "toolhive-redis", "-n", deployed.namespace, "--replicas=0")
    try:
        wait_until("Redis to be gone", lambda: not deployed.pods("app.kubernetes.io/instance=toolhive-redis"))
        result, seconds = mcp_check(ansible_env, namespace=deployed.namespace, names=["shared", "everything"],
                                    timeout=3)
    finally:
        kubectl("scale", "deployment", "toolhive-redis", "-n", deployed.namespace, "--replicas=1")
    assert not result["ok"]
    for name in ("shared", "everything"):
        entry = server(result, name)
        assert not entry["ok"], entry
        assert any("Redis at toolhive-redis" in f for f in entry["findings"]), entry["findings"]
    assert seconds < 25, seconds
    recovered, _output = mcp_check(ansible_env, namespace=deployed.namespace, names=["shared", "everything"],
                                   wait_timeout=90)
    assert recovered["ok"], recovered["findings"]
    # The sessions opened before Redis came back are gone for good: said, though the servers serve again.
    redis = f"{deployed.namespace}/toolhive-redis"
    for name in ("shared", "everything"):
        entry = server(recovered, name)
        lost = entry["sessions_lost"]
        assert lost and lost["redis"] == redis, (
            {key: entry.get(key) for key in ("sessions_lost", "serving_since", "session_storage", "summary")},
            recovered.get("rounds"))
        assert f"sessions opened before {lost['at']} lost (Redis {redis} restarted" in server(recovered, name)["summary"]
    assert any(f"Redis {redis} restarted at" in w and "every session opened before then was lost" in w
               for w in recovered.get("warnings", [])), recovered.get("warnings")


def test_a_server_scaled_to_zero_is_reported_as_such_not_as_a_failed_check(deployed, ansible_env, run_playbook,
                                                                           kubectl):
    """`solo` (no session storage, so only the check's session finding) scaled to 0 with playbooks/scale.yml: the
    check passes it as scaled to 0; scaled back to 3 it is checked again."""
    scale = REPO / "playbooks" / "scale.yml"
    common = {"toolhive_namespace": deployed.namespace, "toolhive_kind": "VirtualMCPServer", "toolhive_name": "solo"}
    down = run_playbook(scale, extra_vars=dict(common, toolhive_replicas=0))
    assert down.returncode == 0, down.output[-3000:]
    try:
        wait_until("solo's pods to be gone", lambda: not deployed.pods("app.kubernetes.io/instance=solo"))
        result, _seconds = mcp_check(ansible_env, namespace=deployed.namespace, name="solo")
        assert result["ok"] and server(result, "solo")["summary"] == "scaled to 0, nothing to check; OK", result
        assert result["findings"] == []
    finally:
        up = run_playbook(scale, extra_vars=dict(common, toolhive_replicas=3,  # as deployed: solo opted in
                                                 toolhive_allow_without_session_storage=True))
    assert up.returncode == 0, up.output[-3000:]
    wait_until("solo's 3 pods", lambda: len(deployed.pods("app.kubernetes.io/instance=solo")) == 3, timeout=180)
    again, _seconds = mcp_check(ansible_env, namespace=deployed.namespace, name="solo")
    assert server(again, "solo")["desired"] == 3 and "replicas answer" in server(again, "solo")["summary"]

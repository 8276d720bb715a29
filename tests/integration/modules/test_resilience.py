"""The modules driven through pytest-ansible's fixtures (in-process Ansible,
as a task runs), for what reads better in Python: concurrency, a 409 conflict
at the worst moment, an API server that goes away mid-wait.

Faults come from FaultyAPI, a plain-HTTP front that forwards every request to
the real test-bed API server; the 409s are the API server's own answers to a
real concurrent change."""
import time

import pytest
import yaml
from ansible.plugins.loader import init_plugin_loader
from ansible.template import trust_as_template

from ..conftest import REPO
from .conftest import through, wait_for


@pytest.fixture(scope="session")
def collection_loader():
    # pytest-ansible looks modules up before it loads collections; load ours first.
    init_plugin_loader([str(REPO / ".collections")])


@pytest.fixture
def hosts(ansible_adhoc, collection_loader, tmp_path):
    """pytest-ansible's host manager (ansible_adhoc) over local hosts, each with its own host variables."""

    def make(**hostvars):
        inventory = tmp_path / "inventory.yml"
        common = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
        inventory.write_text(yaml.safe_dump({"all": {"hosts": {
            host: dict(common, **variables) for host, variables in (hostvars or {"localhost": {}}).items()}}}))
        return ansible_adhoc(inventory=str(inventory), host_pattern="all", connection="local")

    return make


@pytest.fixture
def toolhive(hosts):
    """toolhive(module, **args): run one of the collection's modules on localhost; the result of that host."""

    def run(module, **args):
        return getattr(hosts().localhost, "toolhive.k8s." + module)(**args)["localhost"]

    return run


def scale_concurrently(kubectl, namespace, name, replicas):
    """A hook making someone else's change right before our write reaches the API server, once."""
    done = []

    def hook(method, path):
        if method == "PATCH" and path.split("?")[0].endswith("/deployments/%s/scale" % name) and not done:
            done.append(True)
            kubectl("scale", "deployment", name, "-n", namespace, f"--replicas={replicas}")

    return hook


@pytest.mark.parametrize("bad, message", [
    (dict(replicas=-1), "replicas = -1 must be a replica count from 0 to 20"),
    (dict(replicas=10000), "replicas = 10000 must be a replica count from 0 to 20 (the bound is replica_limit"),
    (dict(name="../../api/v1/namespaces/kube-system/secrets/x"), "name = '../../api/v1/namespaces/kube-system/"),
    (dict(namespace="kube-system/../default"), "namespace = 'kube-system/../default' must be a namespace name"),
    (dict(replicas="three"), "argument 'replicas' is of type str and we were unable to convert to int"),
    (dict(target="sidecar"), "value of target must be one of: proxy, backend, got: sidecar"),
    (dict(kind="Deployment"), "value of kind must be one of: VirtualMCPServer, MCPServer, MCPRemoteProxy, got: Deployment"),
    (dict(wait_timeout="soon"), "argument 'wait_timeout' is of type str and we were unable to convert to int"),
])
def test_bad_input_is_refused_before_any_request(toolhive, faulty_api, vmcp, namespace, bad, message):
    name = vmcp()
    result = toolhive("scale", **dict(dict(kind="VirtualMCPServer", name=name, namespace=namespace, replicas=2,
                                           **through(faulty_api)), **bad))
    assert result.is_failed and message in result["msg"]
    assert faulty_api.log == []


def test_two_hosts_scaling_at_once_both_end_consistent(hosts, vmcp, get, namespace, kubeconfig):
    """Ansible's own forks run the two tasks in parallel; each one's write is checked against what it read."""
    name = vmcp()
    both = hosts(a={"wanted": 2}, b={"wanted": 4})
    results = getattr(both.all, "toolhive.k8s.scale")(
        kind="VirtualMCPServer", name=name, namespace=namespace, replicas=trust_as_template("{{ wanted }}"), wait=False,
        allow_without_session_storage=True, kubeconfig=kubeconfig)
    assert set(results.keys()) == {"a", "b"}
    assert not any(r.is_failed for r in results.values()), [dict(r) for r in results.values()]
    final = wait_for("the deployment to settle", lambda: (
        (d := get("deployment", name))["status"].get("readyReplicas") == d["spec"]["replicas"] and d))
    # Serialized: exactly one host decided on what the other wrote (by reading it, or after its write met a 409
    # because the other's came first); both deciding on the starting count would be a lost update.
    other = {"a": 4, "b": 2}
    second = [host for host, result in results.items() if result["before"] == other[host]]
    assert len(second) == 1, {host: (r["before"], r["after"]) for host, r in results.items()}
    assert final["spec"]["replicas"] == results[second[0]]["after"]


def test_a_409_is_retried_with_a_fresh_read(toolhive, faulty_api, vmcp, get, kubectl, namespace):
    name = vmcp()
    faulty_api.hooks.append(scale_concurrently(kubectl, namespace, name, replicas=2))
    result = toolhive("scale", kind="VirtualMCPServer", name=name, namespace=namespace, replicas=3,
                      allow_without_session_storage=True, wait_timeout=60, **through(faulty_api))
    assert not result.is_failed, result.get("msg")
    patches = [entry[2] for entry in faulty_api.log if entry[0] == "PATCH"]
    # The real API server refused the stale write; a retry went through (a busy controller may make one more 409).
    assert patches[0] == 409 and patches[-1] == 200 and set(patches[:-1]) == {409}, patches
    assert result["before"] == 2 and result["after"] == 3  # decided again on what was there after the change
    assert get("deployment", name)["spec"]["replicas"] == 3 and result["ready_replicas"] == 3


def test_a_409_rechecks_the_precondition(toolhive, faulty_api, vmcp, get, kubectl, namespace):
    name = vmcp()
    faulty_api.hooks.append(scale_concurrently(kubectl, namespace, name, replicas=2))
    result = toolhive("scale", kind="VirtualMCPServer", name=name, namespace=namespace, replicas=3,
                      current_replicas=1, allow_without_session_storage=True, **through(faulty_api))
    assert result.is_failed
    assert "expected 1 current replicas (current_replicas) but found 2; nothing was changed" in result["msg"]
    assert get("deployment", name)["spec"]["replicas"] == 2  # the other writer's count, not overwritten


def test_the_api_server_going_away_mid_wait_is_named(toolhive, faulty_api, vmcp, get, namespace):
    name = vmcp()

    def away_once_scaled(method, path):
        if method == "GET" and ("PATCH", f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale",
                                200) in faulty_api.log:
            faulty_api.go_away()

    faulty_api.hooks.append(away_once_scaled)
    started = time.monotonic()
    result = toolhive("scale", kind="VirtualMCPServer", name=name, namespace=namespace, replicas=3,
                      allow_without_session_storage=True, wait_timeout=8, **through(faulty_api))
    assert result.is_failed
    assert f"lost the API server while waiting for Deployment {namespace}/{name} to run 3 ready replicas" \
        in result["msg"]
    assert f"Deployment {name} was scaled to 3; that change stands" in result["msg"]
    assert "the API server could not be reached" in result["msg"] and faulty_api.url in result["msg"]
    assert time.monotonic() - started < 30  # gave up at the wait timeout, did not hang
    assert get("deployment", name)["spec"]["replicas"] == 3


def test_a_short_outage_mid_wait_is_waited_out(toolhive, faulty_api, vmcp, get, namespace):
    name = vmcp()
    outage = {}

    def blip(method, path):
        if method == "GET" and any(entry[0] == "PATCH" for entry in faulty_api.log) and "start" not in outage:
            outage["start"] = time.monotonic()
        if "start" in outage and time.monotonic() - outage["start"] < 3:
            return "cut"
        return None

    faulty_api.hooks.append(blip)
    result = toolhive("scale", kind="VirtualMCPServer", name=name, namespace=namespace, replicas=2,
                      allow_without_session_storage=True, wait_timeout=60, **through(faulty_api))
    assert not result.is_failed, result.get("msg")
    assert result["ready_replicas"] == 2 and "start" in outage


def after_the_write(faulty_api, answer, seconds=None):
    """A hook: every GET after the first write is answered with ANSWER (an HTTP status) for SECONDS (None:
    for ever); records when it started and how many it answered."""
    seen = {"answered": 0}

    def hook(method, path):
        if method != "GET" or not any(entry[0] == "PATCH" for entry in faulty_api.log):
            return None
        seen.setdefault("start", time.monotonic())
        if seconds is None or time.monotonic() - seen["start"] < seconds:
            seen["answered"] += 1
            return answer() if callable(answer) else answer
        return None

    faulty_api.hooks.append(hook)
    return seen


def test_throttling_and_server_errors_mid_wait_are_waited_out(toolhive, faulty_api, vmcp, get, namespace):
    """429s and 503s for 3 s right after the scale: the wait asks again and ends as the API server answers."""
    name = vmcp()
    answers = iter([429, 503] * 100)
    seen = after_the_write(faulty_api, lambda: next(answers), seconds=3)
    result = toolhive("scale", kind="VirtualMCPServer", name=name, namespace=namespace, replicas=2,
                      allow_without_session_storage=True, wait_timeout=60, **through(faulty_api))
    assert not result.is_failed, result.get("msg")
    assert result["ready_replicas"] == 2 and seen["answered"] >= 2  # the front really answered 429/503 first


def test_a_wait_gives_up_after_the_outage_bound_saying_what_it_saw(toolhive, faulty_api, vmcp, get, namespace):
    name = vmcp()
    after_the_write(faulty_api, 503)
    started = time.monotonic()
    result = toolhive("scale", kind="VirtualMCPServer", name=name, namespace=namespace, replicas=3,
                      allow_without_session_storage=True, wait_timeout=120, **through(faulty_api))
    assert result.is_failed
    assert f"lost the API server while waiting for Deployment {namespace}/{name} to run 3 ready replicas: " \
           "HTTP 503 for 15s in a row" in result["msg"], result["msg"]
    assert f"Deployment {name} was scaled to 3; that change stands" in result["msg"]
    assert time.monotonic() - started < 60  # the outage bound, not the wait's 120 s


def test_status_asks_again_through_a_short_outage(toolhive, faulty_api, vmcp, namespace):
    name = vmcp()
    seen = {"answered": 0}

    def first_reads(method, path):
        seen.setdefault("start", time.monotonic())
        if method == "GET" and time.monotonic() - seen["start"] < 2:
            seen["answered"] += 1
            return 503
        return None

    faulty_api.hooks.append(first_reads)
    result = toolhive("status", kind="VirtualMCPServer", name=name, namespace=namespace, **through(faulty_api))
    assert not result.is_failed, result.get("msg")
    assert result["resources"][0]["name"] == name and seen["answered"] >= 1


def test_a_status_written_between_the_list_and_the_dry_run_is_no_change(
        toolhive, faulty_api, kubectl, get, namespace):
    """A controller writes status at any moment; the no-op test compares what the apply owns, so it sends no
    write. The status is a LoadBalancer Service's address (192.0.2.1, a documentation address nobody reaches),
    which no controller of the test bed rewrites, so the difference stays in the dry run's answer."""
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "quiet", "namespace": namespace},
               "spec": {"type": "LoadBalancer", "selector": {"app": "quiet"}, "ports": [{"name": "redis", "port": 6379}]}}
    first = toolhive("apply", resources=[service], namespaces=[namespace], wait=False)
    assert not first.is_failed and first["created"], first
    written = []

    def status_meanwhile(method, path):
        if method == "PATCH" and "dryRun=All" in path and "/services/quiet" in path and not written:
            kubectl("patch", "service", "quiet", "-n", namespace, "--subresource=status", "--type=merge",
                    "-p", '{"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}}')
            written.append(get("service", "quiet")["status"])

    faulty_api.hooks.append(status_meanwhile)
    again = toolhive("apply", resources=[service], namespaces=[namespace], wait=False, **through(faulty_api))
    assert not again.is_failed, again.get("msg")
    # The control: the status landed between the list and the dry run.
    assert [w["loadBalancer"]["ingress"][0]["ip"] for w in written] == ["192.0.2.1"], written
    assert again["unchanged"] == [f"Service {namespace}/quiet"] and not again["changed"], again
    patches = [entry for entry in faulty_api.log if entry[0] == "PATCH" and entry[1].endswith("/services/quiet")]
    assert len(patches) == 1  # the dry run only (the log drops the query): no write was sent


def deployments_hidden(faulty_api, namespace, seconds=None):
    """A hook answering the namespace's Deployment list with no items for SECONDS (None: for ever), as the API
    server does before the operator has created a server's workload."""
    seen = {}

    def hook(method, path):
        if method == "GET" and path.split("?")[0] == f"/apis/apps/v1/namespaces/{namespace}/deployments":
            seen.setdefault("start", time.monotonic())
            if seconds is None or time.monotonic() - seen["start"] < seconds:
                seen["hidden"] = seen.get("hidden", 0) + 1
                return {"kind": "DeploymentList", "apiVersion": "apps/v1", "metadata": {}, "items": []}
        return None

    faulty_api.hooks.append(hook)
    return seen


def test_autoscale_waits_for_the_workload_the_operator_creates(toolhive, faulty_api, vmcp, get, namespace):
    """Right after a first deploy the Deployment may not exist yet: the HPA step waits for it (bounded)."""
    name = vmcp()
    seen = deployments_hidden(faulty_api, namespace, seconds=3)
    result = toolhive("autoscale", kind="VirtualMCPServer", name=name, namespace=namespace, max_replicas=3,
                      **through(faulty_api))
    assert not result.is_failed, result.get("msg")
    assert seen["hidden"] >= 2 and get("horizontalpodautoscaler", result["hpa"]["name"])  # it waited, then made it


def test_autoscale_gives_up_on_a_workload_that_never_comes(toolhive, faulty_api, vmcp, get, namespace):
    name = vmcp()
    deployments_hidden(faulty_api, namespace)
    result = toolhive("autoscale", kind="VirtualMCPServer", name=name, namespace=namespace, max_replicas=3,
                      workload_timeout=3, **through(faulty_api))
    assert result.is_failed
    assert f"VirtualMCPServer {namespace}/{name}: its vmcp Deployment does not exist after 3s" in result["msg"], \
        result["msg"]

"""`make deploy`'s example on running pods: playbooks/vars/example.yml as it is, with only what `make deploy`
adds on the test bed (testbed/example-overrides.yml: the local Redis image) and a fresh namespace.

Its MCPServers use public images at pinned tags that the test bed builds under the same names from the same
upstream releases (testbed/images/PUBLIC.md), so what answers here is what a user's cluster pulls. No tool
that needs the internet is called (server-everything's gzip-file-as-resource fetches a URL: never called).
"""
import json
import re
import time
from datetime import datetime, timezone

import pytest
import yaml
from mcp.shared.exceptions import MCPError

from .conftest import REPO, deploy
from .podclient import run
from .serviceclient import service_session, service_tools

pytestmark = pytest.mark.usefixtures("real_nodes")

EXAMPLE = REPO / "playbooks" / "vars" / "example.yml"
OVERRIDES = REPO / "testbed" / "example-overrides.yml"
GATEWAY_PORT = 4483


def example():
    return yaml.safe_load(EXAMPLE.read_text())


@pytest.fixture(scope="module")
def deployed(run_playbook, kubectl, kubeconfig, fresh_namespace):
    """deploy.yml -e @example.yml -e @example-overrides.yml, in a fresh namespace, with its closing MCP check on;
    serving = the gateway's Service lists tools of both backends to a real client."""
    gateway = example()["vmcp_instances"][0]["name"]

    outputs = []

    def playbook(path, extra_vars):
        # The files exactly as `make deploy` passes them; the namespace and the check (the fixture turns it off
        # for KWOK) come after, and a later -e wins.
        result = run_playbook(path, "-e", f"@{EXAMPLE}", "-e", f"@{OVERRIDES}", extra_vars=extra_vars)
        outputs.append(result.output)
        return result

    def serving(deployment):
        try:
            tools = run(service_tools(kubeconfig, deployment.namespace, f"vmcp-{gateway}", GATEWAY_PORT), timeout=30)
        except Exception:  # pylint: disable=broad-except  # not serving yet: asked again a second later
            return False
        return any(t.startswith("time_") for t in tools) and any(t.startswith("everything_") for t in tools)

    extra = {"toolhive_namespace": fresh_namespace, "toolhive_mcp_check": True}
    deployment = deploy(playbook, kubectl, extra, serving)
    deployment.gateway = f"vmcp-{gateway}"
    deployment.output = outputs[-1]
    print(f"example: playbook {deployment.deployed - deployment.started:.1f} s, "
          f"serving after {deployment.serving - deployment.started:.1f} s")
    return deployment


def test_every_pod_runs_on_a_real_node(deployed, real_nodes):
    pods = deployed.all_pods()
    servers = [s["name"] for s in example()["mcpserver_servers"]]
    # Redis, the gateway's 3 replicas, each MCPServer's proxy (everything: 2) and backend.
    assert len(pods) >= 1 + 3 + 3 + 2, [p["metadata"]["name"] for p in pods]
    for pod in pods:
        name = pod["metadata"]["name"]
        assert pod["spec"].get("nodeName") in real_nodes, f"{name} is on {pod['spec'].get('nodeName')}"
        assert pod["status"].get("phase") == "Running", f"{name}: {pod['status'].get('phase')}"
        statuses = pod["status"].get("containerStatuses", [])
        assert statuses and all(c["ready"] for c in statuses), f"{name}: {statuses}"
    for server in servers:  # each server's backend (StatefulSet, labelled app=<name> by the proxy runner) runs
        assert deployed.pods(f"app={server}"), f"no Ready backend pod of {server}"
    images = {c["image"] for p in pods for c in p["spec"]["containers"]}
    for server in example()["mcpserver_servers"]:
        assert server["image"] in images, f"{server['image']} runs in no pod ({sorted(images)})"


def test_the_deploy_playbooks_mcp_check_passed(deployed):
    """deploy() asserted the playbook's exit status, which fails when the closing MCP check fails; the check
    really ran (it is not skipped), and the operator reports the servers Ready and the gateway running."""
    task = deployed.output.split("TASK [Check at the MCP level", 1)
    assert len(task) == 2, deployed.output[-3000:]
    section = re.split(r"\n(?:TASK|PLAY RECAP) ", task[1], maxsplit=1)[0]
    # One item per server kind; the example has no MCPRemoteProxy, so only that item may be skipped.
    for kind in ("VirtualMCPServer", "MCPServer"):
        assert re.search(rf"^ok: \[localhost\] => \(item={kind}\)", section, re.M), section
    assert re.findall(r"^skipping: \[localhost\] => \(item=(\w+)\)", section, re.M) in ([], ["MCPRemoteProxy"]), section
    status = deployed.kubectl("get", "mcpservers,virtualmcpservers", "-n", deployed.namespace, "-o", "json")
    phases = {(i["kind"], i["metadata"]["name"]): i.get("status", {}).get("phase") for i in status["items"]}
    messages = {i["metadata"]["name"]: i.get("status", {}).get("message") for i in status["items"]}
    # The gateway's phase is the operator's copy of vmcp's backend health checks (every 30 s): a check slower than
    # 5 s, or the first one after a failed one, makes a backend `degraded`, and the phase `Degraded`, while vmcp
    # still routes to it (v0.47.0 pkg/vmcp/health/policy.go). Seen on a loaded CI machine right after the deploy.
    # So this reads the phase as a state, not a health verdict; the tests below call through the gateway.
    assert phases.pop(("VirtualMCPServer", "gateway")) in ("Ready", "Degraded"), messages
    assert phases == {("MCPServer", "everything"): "Ready", ("MCPServer", "time"): "Ready"}, messages


def test_the_gateway_starts_once_its_backends_are_ready(deployed):
    """The deploy applies the gateway only after its backends are Ready and rolled out: the gateway's health monitor
    checks a backend when the gateway starts and then every 30 s, and advertises it only once found healthy, so a
    gateway started beside starting backends would list their tools one cycle late. Every gateway pod was created
    after every MCPServer's pod (proxy and backend) turned Ready."""
    def ready_at(pod):
        return next(c["lastTransitionTime"] for c in pod["status"]["conditions"] if c["type"] == "Ready")

    pods = deployed.all_pods()
    gateways = [p for p in pods if p["metadata"]["labels"].get("app.kubernetes.io/name") == "virtualmcpserver"]
    servers = [p for p in pods if p["metadata"]["labels"].get("toolhive-name") in
               {s["name"] for s in example()["mcpserver_servers"]}]
    assert len(gateways) == 3 and len(servers) >= 4, [p["metadata"]["name"] for p in pods]
    # RFC 3339 UTC times of one format compare as strings; to the second, so a tie counts as after.
    last_ready = max(ready_at(p) for p in servers)
    for gateway in gateways:
        assert gateway["metadata"]["creationTimestamp"] >= last_ready, (
            gateway["metadata"]["name"], gateway["metadata"]["creationTimestamp"],
            {p["metadata"]["name"]: ready_at(p) for p in servers})


async def gateway_calls(kubeconfig, namespace, service):
    """One session through the gateway's Service: tools/list, time's get_current_time for UTC, everything's echo.
    A failed call is an MCPError whose message the SDK made up: the HTTP answers behind it are added."""
    async with service_session(kubeconfig, namespace, service, GATEWAY_PORT) as session:
        try:
            tools = sorted(t.name for t in (await session.list_tools()).tools)
            now = await session.call_tool("time_get_current_time", {"timezone": "UTC"})
            echo = await session.call_tool("everything_echo", {"message": "from the example test"})
        except MCPError as exc:
            raise AssertionError(f"{exc}; the HTTP error answers of this session: {session.errors}") from None
        return tools, now, echo


def test_a_real_client_reaches_both_backends_through_the_gateway_service(deployed, kubeconfig):
    # Seen once in CI right after the deploy (1 run of 3): a call answered with an HTTP error the SDK hid. The
    # session is tried a second time, and the first failure, with the HTTP answers behind it, is printed.
    try:
        tools, now, echo = run(gateway_calls(kubeconfig, deployed.namespace, deployed.gateway))
    except (AssertionError, BaseExceptionGroup) as first:  # noqa: F821 (Python 3.11 builtin)
        print(f"\nfirst session through the gateway failed, trying once more in 5 s: {first!r}")
        time.sleep(5)
        tools, now, echo = run(gateway_calls(kubeconfig, deployed.namespace, deployed.gateway))
    print(tools)
    # The gateway prefixes each backend's tools with the MCPServer's name.
    assert {"time_get_current_time", "time_convert_time"} <= set(tools), tools
    assert {"everything_echo", "everything_get-sum"} <= set(tools), tools
    assert {t.split("_", 1)[0] for t in tools} == {"time", "everything"}, tools

    assert not now.is_error, now
    answer = json.loads(now.content[0].text)
    assert answer["timezone"] == "UTC", answer
    stamp = datetime.fromisoformat(answer["datetime"])
    assert abs((stamp - datetime.now(timezone.utc)).total_seconds()) < 120, (answer, time.time())

    assert not echo.is_error, echo
    assert [c.text for c in echo.content] == ["Echo: from the example test"], echo.content

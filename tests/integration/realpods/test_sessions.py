"""The scaling guide's promise on running pods: with Redis session storage, a session opened on
one replica is served by every other replica; without it, another replica refuses the session.

One deployment by the collection's own playbooks/deploy.yml, in a fresh namespace on the test
bed's real node: Redis (the local Debian image), an MCPServer `everything` (go-sdk's everything
example, streamable HTTP) with 2 proxies and 2 backends and Redis, the same server without session
storage (`alone`, in no group), and two gateways of 3 replicas each with
`sessionAffinity: None`: `shared` (Redis) and `solo` (none). The client is the official `mcp` SDK;
each request goes to one pod of our choosing through the API server's pod proxy (see podclient.py),
as a Service without affinity may send it.
"""
import asyncio
import json
import uuid
from functools import partial

import pytest
from mcp.shared.exceptions import MCPError

from .conftest import REPO, deploy, wait_until
from .podclient import pod_session, run

pytestmark = pytest.mark.usefixtures("real_nodes")

GATEWAY_PORT = 4483
PROXY_PORT = 8080


def deploy_vars(namespace, images):
    """Extra variables of deploy.yml: what the module docstring describes."""
    server = {"image": images["everything"], "transport": "streamable-http", "mcp_port": 8080,
              "replicas": 2, "backend_replicas": 2, "session_affinity": "None"}
    return {
        "toolhive_namespace": namespace,
        "toolhive_group": "sessions",
        "redis_image": images["redis"],
        # `solo` and `alone` run several replicas without Redis on purpose.
        "toolhive_allow_without_session_storage": True,
        "mcpserver_servers": [
            {"name": "everything", **server},
            # In no group: a gateway aggregating it would itself lose its sessions to it. The vMCP's health
            # check (initialize, then tools, prompts and resources) lands on either proxy, so v0.44.0's gateway
            # marked it unhealthy and stayed not Ready (CI, 2026-12-04).
            {"name": "alone", **server, "session_storage": False, "group": ""},
        ],
        "vmcp_instances": [
            {"name": "shared", "replicas": 3, "session_affinity": "None"},
            {"name": "solo", "replicas": 3, "session_affinity": "None", "session_storage": False},
        ],
    }


async def tools_list(kubeconfig, namespace, pod):
    """A new session on gateway pod POD, and its tools/list."""
    async with pod_session(kubeconfig, namespace, GATEWAY_PORT) as (session, router):
        router.pod = pod
        await session.initialize()
        return await session.list_tools()


@pytest.fixture(scope="module")
def deployed(run_playbook, kubectl, kubeconfig, fresh_namespace, images):
    """The deployment, made once for the module; it measures when a gateway first serves."""
    def serving(deployment):
        """A real client's first tools/list through a Ready gateway pod answered."""
        pods = deployment.pods("app.kubernetes.io/instance=shared")
        try:
            return pods and run(tools_list(kubeconfig, deployment.namespace, pods[0]), timeout=30).tools
        except Exception:  # pylint: disable=broad-except  # not serving yet: asked again a second later
            return None

    return deploy(run_playbook, kubectl, deploy_vars(fresh_namespace, images), serving)


async def open_on_first_then_use_the_others(connect, pods, tool):
    """With the session CONNECT() opens: initialize on pods[0]; then tools/list and tools/call TOOL on each
    other pod, and pods[0] last. Returns ({pod: [tools/list result, tools/call result], each the MCPError it
    raised instead}, router)."""
    answers = {}
    async with connect() as (session, router):
        router.pod = pods[0]
        await session.initialize()
        await router.settled()
        for pod in pods[1:] + pods[:1]:
            router.pod = pod
            answers[pod] = []
            for call in (session.list_tools, lambda pod=pod: session.call_tool(tool, {"name": pod})):
                try:
                    answers[pod].append(await call())
                except MCPError as error:
                    answers[pod].append(error)
    for exchange in router.exchanges:  # shown with -s / on failure: what each pod really answered
        print(exchange)
    return answers, router


def served(answers, pod, tool):
    """POD listed TOOL and answered a call of it (everything's greet: `Hi <name>`)."""
    tools, call = answers[pod]
    assert not isinstance(tools, MCPError), f"tools/list on {pod}: {tools}"
    assert tool in [t.name for t in tools.tools], f"{pod} listed {[t.name for t in tools.tools]}"
    assert not isinstance(call, MCPError) and not call.is_error, f"tools/call {tool} on {pod}: {call}"
    assert [c.text for c in call.content] == [f"Hi {pod}"], call.content


def errors(results):
    """(code, message) of each MCPError; anything else as it is, to show in the failure."""
    return [(r.code, r.message) if isinstance(r, MCPError) else r for r in results]


def redis_cli(deployed, *args, password=True):
    """redis-cli in the Redis pod, through the Service's DNS name, with the password the container started with
    (REDIS_PASSWORD) or none."""
    auth = ['-a', '"$REDIS_PASSWORD"', "--no-auth-warning"] if password else []
    cli = ["env -u REDISCLI_AUTH redis-cli -h", f"toolhive-redis.{deployed.namespace}.svc.cluster.local", *auth]
    script = " ".join(cli + list(args))
    if args[0] == "--scan-values":  # the values of the keys matching a pattern, one a line
        script = f"for k in $({' '.join(cli)} --scan --pattern '{args[1]}'); do {' '.join(cli)} GET \"$k\"; done"
    proc = deployed.kubectl("exec", "-n", deployed.namespace, "deploy/toolhive-redis", "--", "sh", "-c", script)
    return proc.stdout.strip()


def test_every_pod_runs_on_a_real_node(deployed, real_nodes):
    """Every pod the deployment made runs, Ready and never restarted, on a real node."""
    pods = deployed.all_pods()
    # Redis 1, gateways 3 + 3 + 1, two MCPServers with 2 proxies and 2 backends each.
    assert len(pods) == 15, [p["metadata"]["name"] for p in pods]
    for pod in pods:
        name = pod["metadata"]["name"]
        assert pod["spec"]["nodeName"] in real_nodes, f"{name} is on {pod['spec'].get('nodeName')}"
        assert pod["status"]["phase"] == "Running", f"{name}: {pod['status']}"
        assert all(s["ready"] and s["restartCount"] == 0 for s in pod["status"]["containerStatuses"]), name


def test_time_from_deploy_to_first_tools_list(deployed):
    """From the start of deploy.yml to the first tools/list a gateway pod answers."""
    playbook = deployed.deployed - deployed.started
    first = deployed.serving - deployed.started
    print(f"\ndeploy.yml took {playbook:.1f}s; a gateway pod answered the first tools/list {first:.1f}s "
          "after it started")
    assert first < 120, f"first tools/list {first:.1f}s after the deploy started"


def test_gateway_session_with_redis_is_served_by_every_replica(deployed, kubeconfig):
    """The promise: a session opened on gateway pod A serves tools/list and tools/call on B and C."""
    pods = deployed.pods("app.kubernetes.io/instance=shared")
    assert len(pods) == 3, pods
    answers, router = run(open_on_first_then_use_the_others(
        partial(pod_session, kubeconfig, deployed.namespace, GATEWAY_PORT), pods, "everything_greet"))
    for pod in pods:
        served(answers, pod, "everything_greet")
    for pod in pods[1:]:
        assert [e.status for e in router.posts(pod)] == [200, 200], router.exchanges
    # The session the other pods restored is the one Redis holds under the gateway's prefix.
    key = f"thv:{deployed.namespace}:vmcp:shared:{router.session_id}"
    assert redis_cli(deployed, "EXISTS", key) == "1", key


def test_gateway_session_without_session_storage_is_refused_by_other_replicas(deployed, kubeconfig):
    """Without session storage, B and C answer HTTP 404 `Session terminated`; A still serves it."""
    pods = deployed.pods("app.kubernetes.io/instance=solo")
    assert len(pods) == 3, pods
    answers, router = run(open_on_first_then_use_the_others(
        partial(pod_session, kubeconfig, deployed.namespace, GATEWAY_PORT), pods, "everything_greet"))
    served(answers, pods[0], "everything_greet")  # the pod that made it still serves it
    for pod in pods[1:]:
        # The SDK's own words for an HTTP 404 on a session it holds.
        assert errors(answers[pod]) == [(-32600, "Session terminated")] * 2
        refusals = router.posts(pod)
        assert [(e.status, e.content_type, e.body) for e in refusals] == \
            [(404, "text/plain; charset=utf-8", "Session terminated\n")] * 2, refusals
    assert redis_cli(deployed, "--scan", "--pattern", f"thv:{deployed.namespace}:vmcp:solo:*") == ""


def test_mcpserver_session_with_redis_is_served_by_both_proxies(deployed, kubeconfig):
    """The same through the proxy runners of an MCPServer with 2 proxies and 2 backends."""
    pods = deployed.pods("app.kubernetes.io/instance=everything,app=mcpserver")
    assert len(pods) == 2, pods
    client = f"realpods-{uuid.uuid4().hex[:8]}"
    answers, router = run(open_on_first_then_use_the_others(
        partial(pod_session, kubeconfig, deployed.namespace, PROXY_PORT, client_name=client), pods, "greet"))
    for pod in pods:
        served(answers, pod, "greet")
    assert [e.status for e in router.posts(pods[1])] == [200, 200], router.exchanges
    # The proxy runner stores a session under an id of its own, with the client's `initialize` in it.
    stored = redis_cli(deployed, "--scan-values", f"thv:{deployed.namespace}:mcp:everything:*")
    assert client in stored, stored[-2000:]


def test_mcpserver_session_without_session_storage_is_refused_by_the_other_proxy(deployed, kubeconfig):
    """Without session storage the other proxy answers 404 with JSON-RPC -32001 `Session not found`."""
    pods = deployed.pods("app.kubernetes.io/instance=alone,app=mcpserver")
    assert len(pods) == 2, pods
    answers, router = run(open_on_first_then_use_the_others(
        partial(pod_session, kubeconfig, deployed.namespace, PROXY_PORT), pods, "greet"))
    served(answers, pods[0], "greet")
    assert errors(answers[pods[1]]) == [(-32001, "Session not found")] * 2
    # Unlike the gateway, the proxy runner answers with a JSON-RPC error (the id is the request's).
    refusals = router.posts(pods[1])
    assert [(e.status, e.content_type) for e in refusals] == [(404, "application/json")] * 2, refusals
    for refusal in refusals:
        body = json.loads(refusal.body)
        assert body["error"] == {"code": -32001, "message": "Session not found"}, refusal


def test_redis_answers_only_with_the_password(deployed):
    """Through the Service's DNS name: NOAUTH without the generated password, PONG with it."""
    assert redis_cli(deployed, "PING", password=False) == "NOAUTH Authentication required."
    assert redis_cli(deployed, "PING") == "PONG"


def test_status_reports_the_backend_statefulset_the_proxy_runner_made(deployed, run_playbook):
    """The proxy runner's StatefulSet (no owner reference, its own labels) is found by status."""
    result = run_playbook(REPO / "playbooks" / "status.yml", extra_vars={"toolhive_namespace": deployed.namespace})
    assert result.returncode == 0, result.output[-3000:]
    assert "backend StatefulSet/everything 2/2 ready" in result.output, result.output[-3000:]


def test_redis_readiness_probe_holds_no_password_and_fails_when_redis_does_not_answer(deployed):
    """The probe asks without a password (a rotation changes the password while Redis runs): NOAUTH is an answer.
    Pointed at a port nothing listens on, it fails: redis-cli exits 0 whatever it prints, so the probe reads it."""
    container = deployed.kubectl("get", "deploy", "toolhive-redis", "-n", deployed.namespace,
                                 "-o", "json")["spec"]["template"]["spec"]["containers"][0]
    assert "REDISCLI_AUTH" not in [env["name"] for env in container["env"]]
    probe = container["readinessProbe"]["exec"]["command"]
    assert deployed.kubectl("exec", "-n", deployed.namespace, "deploy/toolhive-redis", "--", *probe,
                            check=False).returncode == 0
    assert "-p 6379 " in probe[2]
    elsewhere = probe[:2] + [probe[2].replace("-p 6379 ", "-p 1 ")]
    proc = deployed.kubectl("exec", "-n", deployed.namespace, "deploy/toolhive-redis", "--", *elsewhere, check=False)
    assert proc.returncode != 0, f"{elsewhere} exited 0 with no Redis to answer: {proc.stdout.strip()!r}"


def test_gateway_session_survives_scaling_3_to_1_and_back(deployed, kubeconfig, run_playbook):
    """Scale the gateway 3 -> 1 with playbooks/scale.yml while a session is open: the pod that is left serves it;
    back to 3: the two new pods, which never saw the session, serve it too (Redis). Runs last: it scales `shared`."""
    def scale(replicas):
        result = run_playbook(REPO / "playbooks" / "scale.yml", extra_vars={
            "toolhive_namespace": deployed.namespace, "toolhive_kind": "VirtualMCPServer",
            "toolhive_name": "shared", "toolhive_replicas": replicas})
        assert result.returncode == 0, result.output[-3000:]

    async def scenario():
        async with pod_session(kubeconfig, deployed.namespace, GATEWAY_PORT) as (session, router):
            before = deployed.pods("app.kubernetes.io/instance=shared")
            router.pod = before[0]
            await session.initialize()
            await router.settled()
            await asyncio.to_thread(scale, 1)  # the session stays open while the playbook runs
            left = wait_until("one gateway pod", lambda: (p := deployed.pods("app.kubernetes.io/instance=shared"))
                              and len(p) == 1 and p)
            router.pod = left[0]
            after_down = (await session.list_tools(), await session.call_tool("everything_greet", {"name": left[0]}))
            await asyncio.to_thread(scale, 3)
            now = wait_until("three gateway pods", lambda: (p := deployed.pods("app.kubernetes.io/instance=shared"))
                             and len(p) == 3 and p)
            new = [p for p in now if p not in before]
            answers = {}
            for pod in new:
                router.pod = pod
                answers[pod] = (await session.list_tools(), await session.call_tool("everything_greet", {"name": pod}))
            return before, left, after_down, new, answers

    before, left, after_down, new, answers = run(scenario(), timeout=400)
    assert left[0] in before
    assert "everything_greet" in [t.name for t in after_down[0].tools]
    assert [c.text for c in after_down[1].content] == [f"Hi {left[0]}"]
    assert len(new) >= 2, (before, new)  # pods created after the session was opened
    for pod, (tools, call) in answers.items():
        assert "everything_greet" in [t.name for t in tools.tools], pod
        assert not call.is_error and [c.text for c in call.content] == [f"Hi {pod}"], (pod, call)

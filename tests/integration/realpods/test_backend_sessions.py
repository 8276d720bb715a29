"""What a session held by a backend pod that goes away gets, on running pods: why a node drain that moves go-sdk's
`everything` ends some sessions, which no setting of the collection can change (docs/performance.md), and why
test_availability.py drains a backend that keeps no session.

One deploy.yml run in a fresh namespace: Redis and the MCPServer `everything` (1 proxy, 1 backend, Redis session
storage). The backend keeps its MCP sessions in memory. When its pod is replaced, ToolHive's proxy finds the session
in Redis, and on the backend's 404 sends the session's stored `initialize` again and then the request (its "transparent
re-initialization"). It sends that `initialize` with the headers of the request that met the 404. A GET (the
standalone SSE stream, which go-sdk's client, the vMCP's among them, opens again first when its stream breaks) accepts
only `text/event-stream`, and a streamable-HTTP server refuses a POST that does not also accept JSON (400). So the
proxy answers the GET with the backend's 404, and the client ends its session. ToolHive v0.44.0 to v0.66.0 (every
supported release) build the `initialize` that way (`reinitializeAndReplay` in pkg/transport/proxy/transparent).

Raw HTTP through the API server's service proxy: the order of the requests is the point.
"""
import time

import httpx2
import pytest

from .conftest import deploy, wait_until
from .podclient import api_credentials
from .traffic import PROXY_PORT

pytestmark = pytest.mark.usefixtures("real_nodes")

BACKEND, PROXY = "app=everything,toolhive-basename=everything", "app.kubernetes.io/instance=everything"
PROTOCOL = "2025-11-25"
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "toolhive.k8s-realpods", "version": "1"}}}
GREET = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "greet", "arguments": {"name": "x"}}}
GREETING = '"text":"Hi x"'
MONITOR_SECONDS = 5  # how often ToolHive's proxy runner looks at its backend (pkg/container/runtime/monitor.go)


class Proxy:
    """The MCPServer's proxy Service, through the API server, request by request."""

    def __init__(self, kubeconfig, namespace):
        server, tls = api_credentials(kubeconfig)
        self.client = httpx2.Client(
            base_url=f"{server}/api/v1/namespaces/{namespace}/services/mcp-everything-proxy:{PROXY_PORT}/proxy",
            verify=tls, timeout=30)

    def post(self, message, session=None):
        """(status, Mcp-Session-Id, body) of MESSAGE POSTed as a client does, in SESSION when given."""
        headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": PROTOCOL}
        if session:
            headers["Mcp-Session-Id"] = session
        answer = self.client.post("/mcp", json=message, headers=headers)
        return answer.status_code, answer.headers.get("mcp-session-id"), answer.text

    def greet(self, session):
        """(status, body) of `greet` called in SESSION."""
        status, _session, body = self.post(GREET, session)
        return status, body

    def opened(self):
        """A new session, initialized as a client does: its Mcp-Session-Id."""
        status, session, body = self.post(INITIALIZE)
        assert status == 200 and session, (status, body)
        assert self.post({"jsonrpc": "2.0", "method": "notifications/initialized"}, session)[0] == 202
        return session

    def stream(self, session):
        """(status, the first bytes) of the session's standalone SSE stream (GET), as a client opens it."""
        headers = {"Accept": "text/event-stream", "Mcp-Session-Id": session, "MCP-Protocol-Version": PROTOCOL}
        with self.client.stream("GET", "/mcp", headers=headers) as answer:
            return answer.status_code, next(answer.iter_text(), "")


@pytest.fixture(scope="module")
def deployed(run_playbook, kubectl, fresh_namespace, images):
    job = {"toolhive_namespace": fresh_namespace, "toolhive_group": "backend-sessions", "redis_image": images["redis"],
           "vmcp_instances": [],
           "mcpserver_servers": [{"name": "everything", "image": images["everything"], "transport": "streamable-http",
                                  "mcp_port": PROXY_PORT, "replicas": 1, "backend_replicas": 1,
                                  "session_affinity": "None"}]}
    return deploy(run_playbook, kubectl, job, lambda deployment: deployment.pods(PROXY) and deployment.pods(BACKEND))


def proxy_restarts(kubectl, namespace):
    return sum(c["restartCount"] for p in pod_uids(kubectl, namespace, PROXY).values()
               for c in p["status"]["containerStatuses"])


def pod_uids(kubectl, namespace, selector):
    return {p["metadata"]["uid"]: p for p in kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json")["items"]}


def test_a_replaced_backend_pods_sessions_come_back_on_a_post_but_not_on_a_stream(deployed, kubectl, kubeconfig):
    proxy = Proxy(kubeconfig, deployed.namespace)
    posting, streaming = proxy.opened(), proxy.opened()
    for session in (posting, streaming):
        status, body = proxy.greet(session)
        assert status == 200 and GREETING in body, (status, body)

    [old] = pod_uids(kubectl, deployed.namespace, BACKEND)
    restarts = proxy_restarts(kubectl, deployed.namespace)
    kubectl("delete", "pod", "-n", deployed.namespace, "-l", BACKEND, "--wait=true")
    started = time.monotonic()
    wait_until("a new backend pod, Ready", lambda: deployed.pods(BACKEND) and old not in pod_uids(
        kubectl, deployed.namespace, BACKEND), timeout=120)
    # ToolHive's proxy runner looks at its backend every 5 s, and ends (its container restarts) when it finds none
    # running: one look after the new pod is Ready, any such restart has begun.
    time.sleep(MONITOR_SECONDS + 1)
    wait_until("the proxy ready behind its Service", lambda: deployed.pods(PROXY) and any(
        (e.get("conditions") or {}).get("ready") for item in kubectl(
            "get", "endpointslices", "-n", deployed.namespace, "-l", "kubernetes.io/service-name=mcp-everything-proxy",
            "-o", "json")["items"] for e in item.get("endpoints") or []), timeout=120)
    print(f"\nthe backend pod was replaced in {time.monotonic() - started:.1f} s; the proxy restarted "
          f"{proxy_restarts(kubectl, deployed.namespace) - restarts} time(s)")

    # A POST first: the proxy re-creates the backend session, and the session goes on, its stream too.
    status, body = proxy.greet(posting)
    assert status == 200 and GREETING in body, (status, body)
    assert proxy.stream(posting)[0] == 200
    # The stream first: the backend's own 404 reaches the client, which must then end the session (MCP).
    assert proxy.stream(streaming) == (404, "session not found\n")
    # The POST after it is served (the proxy re-creates the backend session then): too late for go-sdk's client, which
    # ended the session at the 404.
    status, body = proxy.greet(streaming)
    assert status == 200 and GREETING in body, (status, body)

"""A real MCP client (the official `mcp` SDK) that talks to one pod at a time.

The SDK speaks to one URL. A Service with `sessionAffinity: None` may send each request of
a session to a different replica; to make that happen on purpose, every request goes
through the API server's pod proxy to the pod named by `PodRouter.pod` at the moment it is
sent. The router changes only the path (same API server, same origin for the SDK) and
records each HTTP exchange, so a test can assert the status and body a pod really sent,
not only the error the SDK turned them into.
"""
import asyncio
import atexit
import base64
import contextlib
import hashlib
import shutil
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx2
import yaml
from mcp import ClientSession, Implementation
from mcp.client.streamable_http import streamable_http_client


@dataclass
class Exchange:
    """One HTTP request and the answer of the pod it went to."""

    pod: str
    method: str
    status: int
    content_type: str
    body: str  # only of error answers: a success may be a stream the SDK still has to read


class PodRouter(httpx2.AsyncBaseTransport):
    """Sends each request to /api/v1/namespaces/NS/pods/<pod>:<port>/proxy/<path> of the API server."""

    def __init__(self, inner, namespace, port, path="mcp"):
        self.inner, self.namespace, self.port, self.path = inner, namespace, port, path
        self.pod = None
        self.session_id = None  # as the pod that answered `initialize` named it
        self.exchanges = []

    async def handle_async_request(self, request):
        pod = self.pod
        request.url = request.url.copy_with(
            path=f"/api/v1/namespaces/{self.namespace}/pods/{pod}:{self.port}/proxy/{self.path}")
        response = await self.inner.handle_async_request(request)
        self.session_id = self.session_id or response.headers.get("mcp-session-id")
        body = ""
        if response.status_code >= 400:
            # Read the error body here (it is short) and hand the SDK an equivalent response.
            content = await response.aread()
            body = content.decode(errors="replace")
            response = httpx2.Response(response.status_code, headers=response.headers, content=content,
                                       request=request)
        self.exchanges.append(Exchange(pod, request.method, response.status_code,
                                       response.headers.get("content-type", ""), body))
        return response

    async def aclose(self):
        await self.inner.aclose()

    def posts(self, pod):
        """The POSTs (JSON-RPC messages) that went to POD."""
        return [e for e in self.exchanges if e.pod == pod and e.method == "POST"]

    async def settled(self, timeout=30):
        """Until the `notifications/initialized` that follows `initialize` has been answered (202): the SDK
        sends it in the background, and it must reach the pod that created the session, not the next one."""
        async with asyncio.timeout(timeout):
            while not any(e.status == 202 for e in self.exchanges):
                await asyncio.sleep(0.05)


def kubeconfig_files(kubeconfig):
    """(server, CA file, client certificate file, client key file) of the kubeconfig's current context. The
    process test bed writes file paths; kind writes the *-data forms, written out here once to a private folder."""
    config = yaml.safe_load(Path(kubeconfig).read_text(encoding="utf-8"))
    context = next(c["context"] for c in config["contexts"] if c["name"] == config["current-context"])
    cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
    user = next(u["user"] for u in config["users"] if u["name"] == context["user"])

    def as_file(entry, key):
        if key in entry:
            return entry[key]
        path = Path(_DATA_FILES) / f"{hashlib.sha256(entry[key + '-data'].encode()).hexdigest()[:16]}.pem"
        if not path.exists():
            path.write_bytes(base64.b64decode(entry[key + "-data"]))
        return str(path)

    return (cluster["server"], as_file(cluster, "certificate-authority"), as_file(user, "client-certificate"),
            as_file(user, "client-key"))


_DATA_FILES = tempfile.mkdtemp(prefix="toolhive-k8s-kubeconfig-")
atexit.register(shutil.rmtree, _DATA_FILES, ignore_errors=True)


def api_credentials(kubeconfig):
    """(server, ssl context) of the kubeconfig's current context: its CA and client certificate."""
    server, authority, certificate, key = kubeconfig_files(kubeconfig)
    tls = ssl.create_default_context(cafile=authority)
    tls.load_cert_chain(certificate, key)
    return server, tls


@contextlib.asynccontextmanager
async def pod_session(kubeconfig, namespace, port, path="mcp", client_name="toolhive.k8s-realpods"):
    """Yields (ClientSession, PodRouter): set router.pod before each call. CLIENT_NAME goes into
    `initialize` (clientInfo.name), where the proxy runner keeps it in the session it stores."""
    server, tls = api_credentials(kubeconfig)
    router = PodRouter(httpx2.AsyncHTTPTransport(verify=tls), namespace, port, path)
    timeout = httpx2.Timeout(30, read=60)
    async with httpx2.AsyncClient(transport=router, timeout=timeout) as client:
        # terminate_on_close=False: a DELETE would remove the session from Redis for every pod,
        # and the tests look at what is left afterwards.
        async with streamable_http_client(f"{server}/{path}", http_client=client,
                                          terminate_on_close=False) as (read, write):
            async with ClientSession(read, write, client_info=Implementation(name=client_name, version="1")) as session:
                yield session, router


def run(coro, timeout=120):
    """Run a scenario to its end from synchronous test code, bounded in time."""
    return asyncio.run(asyncio.wait_for(coro, timeout))

"""A real MCP client (the official `mcp` SDK) that talks to a Service, through the API server's service
proxy (/api/v1/namespaces/NS/services/NAME:PORT/proxy/mcp): what a user's client inside the cluster gets,
one Service address, the Service choosing the pod. Used by the teardown test and bench/serving.py.
"""
import contextlib

import httpx2
from mcp import ClientSession, Implementation
from mcp.client.streamable_http import streamable_http_client

from .podclient import api_credentials


@contextlib.asynccontextmanager
async def service_session(kubeconfig, namespace, service, port, path="mcp", client_name="toolhive.k8s-realpods"):
    """Yields an initialized ClientSession on SERVICE:PORT/PATH in NAMESPACE. Its `errors` lists every HTTP error
    answer (status, body): the SDK turns them into a generic "Server returned an error response"; its `session_id` is
    the Mcp-Session-Id the server gave it."""
    server, tls = api_credentials(kubeconfig)
    url = f"{server}/api/v1/namespaces/{namespace}/services/{service}:{port}/proxy/{path}"
    errors, ids = [], []

    async def keep_errors(response):
        if not ids and response.headers.get("mcp-session-id"):
            ids.append(response.headers["mcp-session-id"])
        if response.status_code >= 400:
            await response.aread()
            errors.append((response.status_code, response.text[:500]))

    async with httpx2.AsyncClient(verify=tls, timeout=httpx2.Timeout(30, read=60),
                                  event_hooks={"response": [keep_errors]}) as client:
        async with streamable_http_client(url, http_client=client) as (read, write):
            async with ClientSession(read, write, client_info=Implementation(name=client_name, version="1")) as session:
                session.errors = errors
                await session.initialize()
                session.session_id = ids[0] if ids else None
                yield session


async def service_tools(kubeconfig, namespace, service, port, path="mcp"):
    """The names of the tools a new session on the Service lists."""
    async with service_session(kubeconfig, namespace, service, port, path) as session:
        return sorted(tool.name for tool in (await session.list_tools()).tools)

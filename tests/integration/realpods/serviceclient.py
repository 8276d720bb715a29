"""A real MCP client (the official `mcp` SDK) that talks to a Service: what a user's client inside the cluster gets,
one Service address, the Service choosing the pod. From the host it goes through the API server's service proxy
(/api/v1/namespaces/NS/services/NAME:PORT/proxy/mcp, `service_session`); from a pod in the cluster, straight to the
Service's name (`direct_session`, incluster.py). Used by the traffic tests, the teardown test and the benchmarks.
"""
import contextlib
import contextvars
import logging

import httpx2
from mcp import ClientSession, Implementation
from mcp.client.streamable_http import streamable_http_client

from .podclient import api_credentials

# The errors list of the session whose SDK tasks are running (they inherit it from mcp_session).
_session_errors = contextvars.ContextVar("session_errors", default=None)


def _keep_why_sse_ended(record):
    """A filter on the SDK's streamable-HTTP logger. When an SSE answer breaks off, the SDK reports only "SSE stream
    ended without a response" and logs the exception behind it at debug level: keep that exception with the session's
    errors, so a failure says what broke the stream. The logger's level is lowered for that one record: the filter
    lets through only what the logger's parent would."""
    errors = _session_errors.get()
    if record.getMessage() == "SSE stream ended" and record.exc_info and errors is not None:
        errors.append(("SSE stream ended", repr(record.exc_info[1])[:300]))
    return record.levelno >= _sdk_logger.parent.getEffectiveLevel()


_sdk_logger = logging.getLogger("mcp.client.streamable_http")
_sdk_logger.setLevel(logging.DEBUG)
_sdk_logger.addFilter(_keep_why_sse_ended)


@contextlib.asynccontextmanager
async def mcp_session(url, verify, client_name="toolhive.k8s-realpods"):
    """Yields an initialized ClientSession on URL (VERIFY: httpx2's `verify`). Its `errors` lists every HTTP error
    answer (status, body), which the SDK turns into a generic "Server returned an error response", and each exception
    that broke off an SSE answer ("SSE stream ended", its repr); its `session_id` is the Mcp-Session-Id the server gave
    it."""
    errors, ids = [], []
    _session_errors.set(errors)

    async def keep_errors(response):
        if not ids and response.headers.get("mcp-session-id"):
            ids.append(response.headers["mcp-session-id"])
        if response.status_code >= 400:
            await response.aread()
            errors.append((response.status_code, response.text[:500]))

    async with httpx2.AsyncClient(verify=verify, timeout=httpx2.Timeout(30, read=60),
                                  event_hooks={"response": [keep_errors]}) as client:
        async with streamable_http_client(url, http_client=client) as (read, write):
            async with ClientSession(read, write, client_info=Implementation(name=client_name, version="1")) as session:
                session.errors = errors
                await session.initialize()
                session.session_id = ids[0] if ids else None
                yield session


def service_session(kubeconfig, namespace, service, port, path="mcp", client_name="toolhive.k8s-realpods"):
    """mcp_session on SERVICE:PORT/PATH in NAMESPACE, through the API server of KUBECONFIG."""
    server, tls = api_credentials(kubeconfig)
    return mcp_session(f"{server}/api/v1/namespaces/{namespace}/services/{service}:{port}/proxy/{path}", tls,
                       client_name)


def direct_session(namespace, service, port, path="mcp"):
    """mcp_session on SERVICE:PORT/PATH in NAMESPACE by the Service's DNS name: for a client in a pod."""
    return mcp_session(f"http://{service}.{namespace}.svc:{port}/{path}", True)


async def service_tools(kubeconfig, namespace, service, port, path="mcp"):
    """The names of the tools a new session on the Service lists."""
    async with service_session(kubeconfig, namespace, service, port, path) as session:
        return sorted(tool.name for tool in (await session.list_tools()).tools)

# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The small part of MCP's streamable-HTTP transport a health check needs, spoken through the
Kubernetes API server's service and pod proxy with the connection of a K8sClient.

A client (not a server) and only what `initialize`, `notifications/initialized`, `tools/list`,
`tools/call` and the session's DELETE need: JSON-RPC over POST, replies as `application/json` or
as a `text/event-stream` whose `data:` lines carry the JSON-RPC messages. Every exchange is bounded:
a deadline for the whole exchange (not only per socket read: a server that drips one byte a second
is cut off too) and a cap on the bytes read. A reply that is slow, too large or not JSON-RPC raises
McpError naming which; nothing here waits without a bound.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import time

from ansible_collections.toolhive.k8s.plugins.module_utils.errors import K8sError

PROTOCOL_VERSION = "2025-06-18"
CLIENT_INFO = {"name": "toolhive.k8s.mcp_check", "version": "1"}
SESSION_HEADER = "Mcp-Session-Id"
CHUNK = 65536
MAX_TOOL_PAGES = 20

# What went wrong with one exchange; each becomes a different finding.
TIMEOUT, TOO_LARGE, UNREACHABLE, HTTP, MALFORMED, RPC = (
    "timeout", "too_large", "unreachable", "http", "malformed", "rpc_error")


class McpError(Exception):
    """One MCP exchange that failed: kind (one of the constants above), the HTTP status when there was
    one, and a short excerpt of the reply (printable, at most 200 characters)."""

    def __init__(self, kind, message, status=None, body=""):
        super(McpError, self).__init__(message)
        self.kind = kind
        self.status = status
        self.body = body
        self.code = None  # the JSON-RPC error code, for RPC

    def as_dict(self):
        return {"kind": self.kind, "message": str(self), "status": self.status, "body": self.body}


def excerpt(data, limit=200):
    """At most LIMIT printable characters of a reply, control characters escaped: safe to show."""
    if isinstance(data, bytes):
        data = data[:limit * 4].decode("utf-8", "replace")
    data = data.strip()
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in data[:limit])
    return text + ("..." if len(data) > limit else "")


def sse_messages(text):
    """The JSON-RPC messages of a complete `text/event-stream` body, in order.

    Events are separated by a blank line; an event's `data:` lines (one space after the colon is
    dropped) joined with newlines are its data; `event:`, `id:`, `retry:` and comments are ignored; an
    event without data (a keep-alive) is skipped. Data that is not JSON raises McpError(MALFORMED).
    """
    messages = []
    data = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n") + [""]:
        if line == "":
            if data:
                payload = "\n".join(data)
                try:
                    messages.append(json.loads(payload))
                except ValueError:
                    raise McpError(MALFORMED, "an event-stream event whose data is not JSON: %s" % excerpt(payload),
                                   body=excerpt(payload))
                data = []
            continue
        if line.startswith(":"):
            continue
        field, _sep, value = line.partition(":")
        if field == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    return messages


def complete_events(buffer):
    """The part of a partly received event stream that ends with a blank line (complete events)."""
    text = buffer.replace("\r\n", "\n").replace("\r", "\n")
    end = text.rfind("\n\n")
    return text[:end + 2] if end >= 0 else ""


def response_for(messages, request_id):
    """The JSON-RPC response to REQUEST_ID among MESSAGES (a server may send notifications first)."""
    for message in messages:
        if isinstance(message, dict) and message.get("id") == request_id and ("result" in message or "error" in message):
            return message
    return None


def parse_reply(content_type, body, request_id):
    """The JSON-RPC response to REQUEST_ID in a POST's reply body (bytes), by its content type.

    Raises McpError: MALFORMED when it is neither JSON-RPC nor an event stream carrying it, RPC when the
    response is a JSON-RPC error (code and message kept).
    """
    kind = (content_type or "").split(";")[0].strip().lower()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise McpError(MALFORMED, "a reply that is not UTF-8 text", body=excerpt(body))
    if kind == "text/event-stream":
        messages = sse_messages(text)
    elif kind == "application/json":
        try:
            decoded = json.loads(text)
        except ValueError:
            raise McpError(MALFORMED, "a reply declared application/json that is not JSON: %s" % excerpt(text),
                           body=excerpt(text))
        messages = decoded if isinstance(decoded, list) else [decoded]
    else:
        raise McpError(MALFORMED, "a reply of content type %r, neither application/json nor text/event-stream: %s"
                       % (content_type, excerpt(text)), body=excerpt(text))
    response = response_for(messages, request_id)
    if response is None:
        raise McpError(MALFORMED, "no JSON-RPC response with id %r in the reply: %s" % (request_id, excerpt(text)),
                       body=excerpt(text))
    if "error" in response:
        error = response["error"] if isinstance(response["error"], dict) else {"message": response["error"]}
        failure = McpError(RPC, "JSON-RPC error %s: %s" % (error.get("code"), excerpt(str(error.get("message")))),
                           body=excerpt(text))
        failure.code = error.get("code")
        raise failure
    if not isinstance(response["result"], dict):
        raise McpError(MALFORMED, "a JSON-RPC result that is not an object: %s" % excerpt(text), body=excerpt(text))
    return response["result"]


def api_server_refusal(status, body):
    """A 401/403 written by the API server itself (a Status object): the credentials, not the MCP server."""
    if status not in (401, 403):
        return None
    try:
        decoded = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if isinstance(decoded, dict) and decoded.get("kind") == "Status":
        return decoded.get("message") or ""
    return None


class Endpoint:
    """One MCP endpoint behind the API server: PATH is the proxy path up to and including the MCP path,
    for example /api/v1/namespaces/ns/pods/gateway-abc:4483/proxy/mcp. Each exchange takes at most
    TIMEOUT seconds from the first byte sent to the last byte read and reads at most MAX_BYTES."""

    def __init__(self, client, path, timeout, max_bytes):
        self.client = client
        self.path = path
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._next_id = 0

    def _exchange(self, method, body=None, session_id=None, request_id=None):
        """(status, headers, body bytes, seconds). With REQUEST_ID and an event stream, reading stops at the
        response to it (a server may keep the stream open after it)."""
        urllib3 = self.client._urllib3  # pylint: disable=protected-access
        headers = dict(self.client.connection.headers)
        headers["Accept"] = "application/json, text/event-stream"
        if session_id:
            headers[SESSION_HEADER] = session_id
            headers["MCP-Protocol-Version"] = PROTOCOL_VERSION
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        started = time.monotonic()
        deadline = started + self.timeout
        try:
            response = self.client.pool.request(
                method, self.client.connection.host + self.path, body=data, headers=headers, retries=False,
                redirect=False, preload_content=False, timeout=urllib3.Timeout(connect=self.timeout, read=self.timeout))
        except urllib3.exceptions.HTTPError as exc:
            raise _transport_error(exc, self.timeout)
        reusable = False
        try:
            chunks, size = [], 0
            event_stream = (response.headers.get("Content-Type") or "").startswith("text/event-stream")
            while True:
                if time.monotonic() > deadline:
                    raise McpError(TIMEOUT, "the reply took longer than %ss (stopped after %d bytes)"
                                   % (self.timeout, size), status=response.status, body=excerpt(b"".join(chunks)))
                try:
                    chunk = response.read1(CHUNK) if hasattr(response, "read1") else response.read(CHUNK)
                except urllib3.exceptions.HTTPError as exc:
                    raise _transport_error(exc, self.timeout)
                if not chunk:
                    reusable = True
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > self.max_bytes:
                    raise McpError(TOO_LARGE, "a reply larger than max_response_bytes (%d bytes): stopped reading"
                                   % self.max_bytes, status=response.status, body=excerpt(b"".join(chunks)[:400]))
                if event_stream and request_id is not None and response.status < 300:
                    received = complete_events(b"".join(chunks).decode("utf-8", "replace"))
                    try:
                        if received and response_for(sse_messages(received), request_id):
                            break
                    except McpError:
                        break  # malformed: parse_reply says so on the whole body
            return response.status, response.headers, b"".join(chunks), time.monotonic() - started
        finally:
            if not reusable:
                response.close()  # unread bytes must never reach the next request on this connection
            response.release_conn()

    def post(self, message, session_id=None):
        """POST one JSON-RPC message. A request (with an id) returns (result, headers, seconds); a
        notification returns (None, headers, seconds) once the server accepted it (2xx)."""
        request_id = message.get("id")
        status, headers, body, seconds = self._exchange("POST", message, session_id, request_id)
        refusal = api_server_refusal(status, body)
        if refusal is not None:
            raise K8sError("POST %s: HTTP %d: %s — the credentials may not use the API server's proxy here: grant "
                           "`create` on pods/proxy and services/proxy (awx/rbac.yaml)" % (self.path, status, refusal),
                           status=status)
        if status >= 300:
            if status in (502, 503) and _from_api_server(body):
                raise McpError(UNREACHABLE, "HTTP %d from the API server: %s" % (status, _status_message(body)),
                               status=status, body=excerpt(body))
            raise McpError(HTTP, "HTTP %d: %s" % (status, excerpt(body)), status=status, body=excerpt(body))
        if request_id is None:
            return None, headers, seconds
        return parse_reply(headers.get("Content-Type"), body, request_id), headers, seconds

    def request(self, method, params=None, session_id=None):
        self._next_id += 1
        message = {"jsonrpc": "2.0", "id": self._next_id, "method": method}
        if params is not None:
            message["params"] = params
        return self.post(message, session_id)

    def open(self):
        """initialize: (session id or None, seconds)."""
        _result, headers, seconds = self.request("initialize", {
            "protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": CLIENT_INFO})
        return headers.get(SESSION_HEADER), seconds

    def initialized(self, session_id):
        """notifications/initialized: seconds."""
        return self.post({"jsonrpc": "2.0", "method": "notifications/initialized"}, session_id)[2]

    def initialize(self):
        """initialize and notifications/initialized: (session id or None, seconds)."""
        session_id, seconds = self.open()
        return session_id, seconds + self.initialized(session_id)

    def list_tools(self, session_id):
        """(tool names, seconds) over every page (at most MAX_TOOL_PAGES)."""
        names, cursor, seconds = [], None, 0.0
        for _page in range(MAX_TOOL_PAGES):
            result, _headers, took = self.request("tools/list", {"cursor": cursor} if cursor else None, session_id)
            seconds += took
            tools = result.get("tools")
            if not isinstance(tools, list):
                raise McpError(MALFORMED, "a tools/list result without a list of tools", body=excerpt(json.dumps(result)))
            names.extend(t.get("name") for t in tools if isinstance(t, dict))
            cursor = result.get("nextCursor")
            if not cursor:
                break
        return names, seconds

    def call_tool(self, session_id, name, arguments):
        result, _headers, seconds = self.request("tools/call", {"name": name, "arguments": arguments or {}}, session_id)
        return result, seconds

    def close(self, session_id):
        """DELETE the session: (status, None) or (None, McpError); never raises for the server's answer."""
        if not session_id:
            return None, None
        try:
            status, _headers, body, _seconds = self._exchange("DELETE", session_id=session_id)
        except McpError as exc:
            return None, exc
        refusal = api_server_refusal(status, body)
        if refusal is not None:
            raise K8sError("DELETE %s: HTTP %d: %s — the credentials may not close sessions through the API server's "
                           "proxy: grant `delete` on pods/proxy and services/proxy (awx/rbac.yaml)"
                           % (self.path, status, refusal), status=status)
        return status, None


def _from_api_server(body):
    """The API server's own words when it cannot reach the pod (`error trying to reach service`)."""
    text = body[:2000].decode("utf-8", "replace")
    return "error trying to reach service" in text or "no endpoints available" in text or '"kind":"Status"' in text


def _status_message(body):
    try:
        return excerpt(json.loads(body.decode("utf-8")).get("message") or body)
    except (UnicodeDecodeError, ValueError, AttributeError):
        return excerpt(body)


def _transport_error(exc, timeout):
    text = str(exc)
    name = type(exc).__name__
    if "timeout" in name.lower() or "timed out" in text.lower():
        return McpError(TIMEOUT, "no reply within %ss" % timeout)
    return McpError(UNREACHABLE, "the API server could not be reached for this request: %s" % excerpt(text))

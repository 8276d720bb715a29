"""The MCP check's pure logic: event-stream and JSON-RPC parsing, and what its findings say."""
import json

import pytest

from ansible_collections.toolhive.k8s.plugins.module_utils import mcp, mcp_findings
from ansible_collections.toolhive.k8s.plugins.modules.mcp_check import endpoint_of, verdict


def test_sse_messages_joins_data_lines_and_skips_the_rest():
    stream = (": keep-alive\r\n\r\n"
              "event: message\nid: 7\ndata: {\"jsonrpc\":\"2.0\",\n"
              "data:\"method\":\"notifications/progress\"}\n\n"
              "retry: 100\n\n"
              "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"tools\":[]}}\n")
    assert mcp.sse_messages(stream) == [
        {"jsonrpc": "2.0", "method": "notifications/progress"},
        {"jsonrpc": "2.0", "id": 3, "result": {"tools": []}}]


def test_sse_data_that_is_not_json_is_malformed():
    with pytest.raises(mcp.McpError) as error:
        mcp.sse_messages("data: <html>\n\n")
    assert error.value.kind == mcp.MALFORMED and "<html>" in str(error.value)


def test_complete_events_keeps_only_finished_events():
    assert mcp.complete_events("data: {}\n\ndata: {\"par") == "data: {}\n\n"
    assert mcp.complete_events("data: {\"par") == ""


@pytest.mark.parametrize("content_type,body", [
    ("application/json", b'{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"a"}]}}'),
    ("application/json; charset=utf-8", b'[{"jsonrpc":"2.0","id":9,"result":{}},'
                                        b'{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"a"}]}}]'),
    ("text/event-stream", b'data: {"jsonrpc":"2.0","method":"x"}\n\ndata: {"jsonrpc":"2.0","id":2,'
                          b'"result":{"tools":[{"name":"a"}]}}\n\n'),
])
def test_parse_reply_finds_the_response_to_its_id(content_type, body):
    assert mcp.parse_reply(content_type, body, 2) == {"tools": [{"name": "a"}]}


@pytest.mark.parametrize("content_type,body,kind,words", [
    ("application/json", b"<html>nope</html>", mcp.MALFORMED, "not JSON"),
    ("text/html", b"<html>nope</html>", mcp.MALFORMED, "neither application/json nor text/event-stream"),
    ("application/json", b'{"jsonrpc":"2.0","id":1,"result":{}}', mcp.MALFORMED, "no JSON-RPC response with id 2"),
    ("application/json", b'{"jsonrpc":"2.0","id":2,"result":[1]}', mcp.MALFORMED, "not an object"),
    ("application/json", b"\xff\xfe", mcp.MALFORMED, "not UTF-8"),
    ("application/json", b'{"jsonrpc":"2.0","id":2,"error":{"code":-32601,"message":"no such method"}}',
     mcp.RPC, "-32601: no such method"),
])
def test_parse_reply_refuses_what_is_not_its_answer(content_type, body, kind, words):
    with pytest.raises(mcp.McpError) as error:
        mcp.parse_reply(content_type, body, 2)
    assert error.value.kind == kind and words in str(error.value), str(error.value)


def test_excerpt_is_short_and_printable():
    text = mcp.excerpt("a\x1b[31mb\n" + "x" * 500)
    assert "\x1b" not in text and "\\x1b" in text and len(text) <= 210 and text.endswith("...")


def test_api_server_refusal_only_for_its_own_status_objects():
    status = json.dumps({"kind": "Status", "message": "pods \"p\" is forbidden"}).encode()
    assert mcp.api_server_refusal(403, status) == 'pods "p" is forbidden'
    assert mcp.api_server_refusal(403, b'{"error":"from the MCP server"}') is None
    assert mcp.api_server_refusal(404, status) is None


def base(**extra):
    server = {"kind": "VirtualMCPServer", "name": "gw", "namespace": "ns", "timeout": 5.0,
              "max_response_bytes": 1024, "path": "/mcp", "port": 4483, "desired": 2, "workload": "Deployment/gw",
              "session_storage": None, "service": {"name": "vmcp-gw", "answered": True, "error": None},
              "session": {"opened_on": "gw-a"}, "skipped": None, "ok": False,
              "replicas": [{"pod": "gw-a", "ready": True, "running": True, "checked": True, "answered": True,
                            "tools": 4, "latency_ms": 10.0, "error": None, "session_served": None},
                           {"pod": "gw-b", "ready": True, "running": True, "checked": True, "answered": True,
                            "tools": 4, "latency_ms": 20.0, "error": None, "session_served": True}]}
    server.update(extra)
    return server


def refused(server, status, message):
    server["replicas"][1].update(session_served=False, session_error={"kind": "http", "status": status,
                                                                      "message": message})
    return server


def test_all_well_no_findings_and_ok():
    server = base()
    assert mcp_findings.findings(server) == [] and verdict(server)
    server["ok"] = True
    assert mcp_findings.summary(server) == "2/2 replicas answer (4 tools, 10-20 ms); session from gw-a served by 1/1 " \
                                           "other; OK"


def test_session_refused_without_storage_names_the_cause_and_the_fix():
    server = refused(base(), 404, "HTTP 404: Session terminated")
    (sentence,) = mcp_findings.findings(server)
    assert sentence.startswith("gateway pod gw-a answers, but a session opened on gw-a is unknown on gw-b")
    assert "has no session storage" in sentence and "set sessionStorage (provider redis" in sentence
    assert not verdict(server)


def test_session_refused_with_redis_points_at_redis():
    storage = {"provider": "redis", "address": "redis.ns.svc:6379"}
    (down,) = mcp_findings.findings(refused(base(session_storage=storage), 503, "HTTP 503: unavailable"))
    assert "cannot reach its session storage (Redis at redis.ns.svc:6379)" in down
    (lost,) = mcp_findings.findings(refused(base(session_storage=storage), 404, "HTTP 404: Session terminated"))
    assert "session storage is configured (Redis at redis.ns.svc:6379)" in lost and "keyPrefix" in lost


@pytest.mark.parametrize("kind,status,words", [
    (mcp.TIMEOUT, None, "pod gw-b did not answer initialize within 5.0s"),
    (mcp.UNREACHABLE, 503, "pod gw-b cannot be reached on port 4483"),
    (mcp.TOO_LARGE, 200, "pod gw-b answered initialize with more than 1024 bytes"),
    (mcp.MALFORMED, 200, "pod gw-b answered initialize with something that is not MCP"),
])
def test_a_replica_that_fails_is_named_with_what_failed(kind, status, words):
    server = base()
    server["replicas"][1].update(answered=False, tools=None, session_served=None,
                                 error={"kind": kind, "status": status, "message": "m", "step": "initialize"})
    sentences = mcp_findings.findings(server)
    assert any(s.startswith(words) for s in sentences), sentences
    assert not verdict(server) and mcp_findings.summary(server).startswith("1/2 replicas answer")


def test_fewer_running_pods_than_replicas():
    server = base(desired=3)
    server["replicas"].append({"pod": "gw-c", "ready": False, "running": False, "checked": False,
                               "reason": "phase Pending", "answered": None})
    sentences = mcp_findings.findings(server)
    assert sentences[0].startswith("2 of 3 replicas have a running pod to check: not checked gw-c (phase Pending)")
    assert not verdict(server)


def test_replicas_that_disagree_on_the_tools_and_a_gateway_without_tools():
    server = base()
    server["replicas"][1]["tools"] = 2
    assert any("different numbers of tools (gw-a 4, gw-b 2)" in s for s in mcp_findings.findings(server))
    for replica in server["replicas"]:
        replica["tools"] = 0
    assert any("lists no tools: its group has no MCPServers" in s for s in mcp_findings.findings(server))


@pytest.mark.parametrize("kind, why", [
    ("VirtualMCPServer", "its group has no MCPServers, or it has not discovered them yet (toolhive.k8s.status shows "
                         "its conditions)."),
    ("MCPServer", "the backend offers none, or it is failing (see the backend's logs)."),
    ("MCPRemoteProxy", "the backend offers none, or it is failing (see the backend's logs)."),
])
def test_a_server_without_tools_is_told_why_in_its_kinds_words(kind, why):
    server = base(kind=kind)
    for replica in server["replicas"]:
        replica["tools"] = 0
    assert "it answers but lists no tools: " + why in mcp_findings.findings(server)


def test_service_that_breaks_sessions_through_affinity_none():
    server = base(session_affinity="None", service={"name": "vmcp-gw", "error": {
        "kind": "http", "status": 404, "step": "tools/list", "message": "HTTP 404: Session terminated"}})
    (sentence,) = mcp_findings.findings(server)
    assert sentence.startswith("through the Service vmcp-gw a new session breaks at its next request")
    assert "sessionAffinity None" in sentence and not verdict(server)


def test_failed_tool_calls_are_findings():
    server = base()
    server["replicas"][0]["calls"] = [{"name": "t", "ok": False, "is_error": True, "text": "boom", "error": None}]
    assert mcp_findings.findings(server) == ["tools/call t on pod gw-a answered with isError: boom"]
    assert not verdict(server)


def test_endpoints_from_the_status_url_and_sse_is_not_checked():
    mcpserver = {"kind": "MCPServer", "metadata": {"name": "m"}, "spec": {"transport": "streamable-http"},
                 "status": {"url": "http://mcp-m-proxy.ns.svc.cluster.local:8081/mcp"}}
    assert endpoint_of(mcpserver) == ("mcp-m-proxy", 8081, "/mcp", None)
    gateway = {"kind": "VirtualMCPServer", "metadata": {"name": "g"}, "spec": {}}
    assert endpoint_of(gateway) == ("vmcp-g", 4483, "/mcp", None)
    legacy = {"kind": "MCPServer", "metadata": {"name": "s"}, "spec": {"transport": "stdio", "proxyMode": "sse"}}
    assert "legacy SSE transport" in endpoint_of(legacy)[3]
    assert endpoint_of({"kind": "MCPServer", "metadata": {"name": "s"}, "spec": {}}) == ("mcp-s-proxy", 8080, "/mcp", None)
    remote = {"kind": "MCPRemoteProxy", "metadata": {"name": "r"}, "spec": {}}
    assert endpoint_of(remote) == ("mcp-r-remote-proxy", 8080, "/mcp", None)
    remote["spec"] = {"transport": "streamable-http", "proxyPort": 9090}
    assert endpoint_of(remote) == ("mcp-r-remote-proxy", 9090, "/mcp", None)
    remote["spec"] = {"transport": "sse"}
    assert endpoint_of(remote)[:3] == ("mcp-r-remote-proxy", 8080, "/sse") and "legacy SSE" in endpoint_of(remote)[3]


def test_the_opt_in_accepts_lost_sessions_of_a_server_without_storage_only():
    """allow_without_session_storage: the sessions the other replicas do not know (on a pod, and through the
    Service) are accepted; with Redis, or any other finding, the server still fails."""
    server = refused(base(), 404, "HTTP 404: Session terminated")
    server["service"]["error"] = {"status": 404, "step": "tools/list", "message": "HTTP 404: Session not found"}
    tagged = mcp_findings.tagged_findings(server)
    assert [lost for _sentence, lost in tagged] == [True, True]
    assert verdict(server, accept_lost_sessions=True) and not verdict(server)
    with_redis = refused(base(session_storage={"provider": "redis", "address": "r:6379"}), 404, "HTTP 404: gone")
    assert [lost for _sentence, lost in mcp_findings.tagged_findings(with_redis)] == [False]
    down = refused(base(), 404, "HTTP 404: Session terminated")
    down["replicas"][0].update(answered=False, error={"kind": mcp.TIMEOUT, "status": None, "message": "m",
                                                      "step": "initialize"})
    assert not verdict(down, accept_lost_sessions=True)  # a replica that does not answer is never accepted


def test_a_failed_check_says_its_findings():
    from ansible_collections.toolhive.k8s.plugins.modules.mcp_check import message
    server = dict(base(), ok=False, summary="1/2 replicas answer")
    text = message([server], ["VirtualMCPServer ns/gw: pod gw-b did not answer"], False, False)
    assert text == "MCP check NOT OK, 1 finding(s):\n- VirtualMCPServer ns/gw: pod gw-b did not answer"
    assert message([], [], False, False) == "MCP check NOT OK: no server found to check"
    assert message([dict(server, ok=True)], [], True, False).startswith("MCP check OK: VirtualMCPServer gw")


def unreachable(server, words):
    for replica in server["replicas"]:
        replica.update(answered=False, tools=None, session_served=None, error={
            "kind": mcp.UNREACHABLE, "status": 503, "step": "initialize",
            "message": "HTTP 503 from the API server: error trying to reach service: dial tcp 10.0.0.9:4483: " + words})
    return server


@pytest.mark.parametrize("words", ["connect: no route to host", "i/o timeout"])
def test_no_route_from_the_api_server_to_any_pod_means_the_check_could_not_run(words):
    sentence = mcp_findings.could_not_run([unreachable(base(), words)])
    assert sentence.startswith("the MCP check could not run: the API server cannot reach the pods") and words in sentence
    assert "Fix: allow the control plane to reach the pods' ports" in sentence


def test_a_pod_that_refuses_or_one_that_answers_is_the_servers_own_finding():
    assert mcp_findings.could_not_run([unreachable(base(), "connect: connection refused")]) is None
    one_answers = unreachable(base(), "connect: no route to host")
    one_answers["replicas"][0].update(answered=True, error=None)
    assert mcp_findings.could_not_run([one_answers]) is None
    assert mcp_findings.could_not_run([base(replicas=[])]) is None  # nothing tried: nothing to conclude

"""The traffic tests' MCP client, where it is pure logic: why an SSE answer ended is kept with its session, a pod's
tallies come back whole through JSON, and the in-cluster client runs the SDK the tests pin."""
import asyncio
import contextlib
import json
import logging
import re
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# The SDK is in the main line's venv (requirements-dev.txt); an older ansible-core line's (tests/matrix) lacks it.
pytest.importorskip("mcp", reason="the MCP SDK of the tests' client is installed in the main line's venv only")
# pylint: disable=wrong-import-position
from mcp import MCPError  # noqa: E402

from ..integration.realpods import incluster, serviceclient, traffic  # noqa: E402
from ..integration.realpods.traffic import Tally  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def sdk_debug_record(message, exc=None):
    logger = logging.getLogger("mcp.client.streamable_http")
    return logger.makeRecord(logger.name, logging.DEBUG, __file__, 1, message, (), (type(exc), exc, None) if exc else None)


def test_why_an_sse_answer_ended_is_kept_with_its_session_and_nothing_else_is_let_through():
    errors = []

    async def in_a_session():
        serviceclient._session_errors.set(errors)  # what mcp_session does for its SDK tasks
        ended = sdk_debug_record("SSE stream ended", ConnectionError("peer closed connection"))
        return [serviceclient._keep_why_sse_ended(ended), serviceclient._keep_why_sse_ended(sdk_debug_record("SSE message: {}"))]

    assert asyncio.run(in_a_session()) == [False, False]  # debug records stay out of the test's log
    assert errors == [("SSE stream ended", "ConnectionError('peer closed connection')")]
    # Outside a session nothing is kept; a warning still goes through.
    assert serviceclient._keep_why_sse_ended(sdk_debug_record("SSE stream ended", ConnectionError("x"))) is False
    warning = sdk_debug_record("Unexpected content type")
    warning.levelno = logging.WARNING
    assert serviceclient._keep_why_sse_ended(warning) is True and len(errors) == 1


def test_a_pods_tallies_come_back_whole_through_json():
    tally = Tally()
    tally.count("long-lived", None, started=0.0)
    tally.count("fresh", "MCPError('SSE stream ended without a response')")
    back = incluster.restored(json.loads(json.dumps(vars(tally))))
    assert vars(back) == vars(tally) and back.failures == tally.failures and isinstance(back.slowest, tuple)


def test_a_client_that_fails_to_the_end_went_without_an_answer_until_its_end(monkeypatch):
    clock = iter([10.0, 11.0, 40.0, 41.0])
    monkeypatch.setattr(traffic, "time", SimpleNamespace(monotonic=lambda: next(clock)))
    tally = Tally()
    tally.count("long-lived")  # answered at 10
    tally.count("long-lived", "the session broke")  # at 11, and nothing answered after it
    tally.count("long-lived", "the session broke")  # at 40
    assert tally.longest_gap == 0.0
    tally.ended()  # at 41
    assert tally.longest_gap == 31.0


def test_a_client_that_reached_its_limit_did_not_go_without_an_answer_while_the_action_went_on(monkeypatch):
    """Each client ends its tally as it stops: one that made its LIMIT of calls early is not counted as waiting for an
    answer until the action ends (a drain that outlasted the clients' limit read as a 70 s gap)."""
    class Session:
        errors = []

        async def call_tool(self, _tool, arguments):
            return SimpleNamespace(content=[SimpleNamespace(text=f"Hi {arguments['name']}")], is_error=False)

    @contextlib.asynccontextmanager
    async def connect(_service, _port):
        yield Session()

    real_sleep = asyncio.sleep

    async def action():
        await real_sleep(0.5)  # the clients' 2 calls each are long done

    monkeypatch.setattr(traffic.asyncio, "sleep", lambda _seconds: real_sleep(0))  # calling_during's own waits
    _result, tallies = asyncio.run(traffic.calling_during(connect, {"s": ("svc", 8080, "greet")}, action, limit=2))
    assert [(tally.calls, tally.failures) for tally in tallies["s"]] == [(2, []), (2, [])]
    assert max(tally.longest_gap for tally in tallies["s"]) < 0.25


def test_an_ended_session_is_told_from_a_failed_call():
    """The SDK's errors, as a long-lived client gets them: a 404 and a closed connection end the session."""
    assert traffic.session_ended(MCPError(-32600, "Session terminated"))
    assert traffic.session_ended(MCPError(-32000, "Connection closed"))
    assert not traffic.session_ended(MCPError(-32603, "Server returned an error response"))
    assert not traffic.session_ended(MCPError(-32000, "SSE stream ended without a response"))


def test_the_in_cluster_client_keeps_off_the_drained_nodes_and_is_bounded_in_time():
    pod = incluster.pod_manifest("c", "ns", "img", "code", 300, {"proxy": ["mcp-x-proxy", 8080, "greet"]})["spec"]
    assert pod["nodeSelector"] == {"node-role.kubernetes.io/control-plane": ""} and pod["activeDeadlineSeconds"] > 0
    assert pod["containers"][0]["command"][-3:] == ["ns", "300", '{"proxy": ["mcp-x-proxy", 8080, "greet"]}']
    assert pod["containers"][0]["imagePullPolicy"] == "Never" and pod["restartPolicy"] == "Never"


def pins(path):
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", path.read_text(), re.M))


def test_the_in_cluster_client_runs_the_sdk_the_tests_pin_with_what_it_requires():
    image = pins(REPO / "testbed" / "images" / "mcp-client.txt")
    assert image["mcp"] == pins(REPO / "requirements-dev.txt")["mcp"] == metadata.version("mcp")
    python311 = dict(default_environment(), python_version="3.11", python_full_version="3.11.2", extra="")
    names = {canonicalize_name(name): version for name, version in image.items()}
    for requirement in map(Requirement, metadata.requires("mcp")):
        if requirement.marker is None or requirement.marker.evaluate(python311):
            assert names.get(canonicalize_name(requirement.name)) in requirement.specifier, requirement

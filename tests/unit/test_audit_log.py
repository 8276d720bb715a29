"""The audit-log reader of the test suites: a line the API server is still writing waits for the next read."""
import json

from tests.audit_log import complete_events


def test_a_partial_last_line_waits_for_the_next_read(tmp_path):
    log = tmp_path / "audit.log"
    first, second = json.dumps({"requestURI": "/a"}), json.dumps({"requestURI": "/b"})
    log.write_text(first + "\n" + second[:9])  # the API server is in the middle of writing the second event
    assert complete_events(log, 0) == [{"requestURI": "/a"}]
    with log.open("a") as handle:
        handle.write(second[9:] + "\n")
    assert complete_events(log, 0) == [{"requestURI": "/a"}, {"requestURI": "/b"}]
    assert complete_events(log, len(first) + 1) == [{"requestURI": "/b"}]
    assert complete_events(log, 10 ** 6) == [{"requestURI": "/a"}, {"requestURI": "/b"}]  # rotated: from the start


def test_an_offset_taken_inside_a_line_leaves_that_line_out(tmp_path):
    """The log's size was read while the API server was writing an event (seen in CI: a JSONDecodeError on the
    rest of that line)."""
    log = tmp_path / "audit.log"
    first, second, third = (json.dumps({"requestURI": uri}) for uri in ("/a", "/b", "/c"))
    log.write_text(first + "\n" + second + "\n" + third + "\n")
    inside_second = len(first) + 1 + 5
    assert complete_events(log, inside_second) == [{"requestURI": "/c"}]
    assert complete_events(log, len(first) + 1) == [{"requestURI": "/b"}, {"requestURI": "/c"}]
    assert complete_events(log, len(first)) == [{"requestURI": "/b"}, {"requestURI": "/c"}]  # at the newline itself

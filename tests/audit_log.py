"""A test bed's audit log, read as the API server writes it: the one reader of every suite."""
import json
import time
import uuid


def complete_events(path, offset):
    """The events written after OFFSET (from the start when the log was rotated since), complete lines only: the
    API server may be writing the last one, which the next read sees whole. OFFSET, the log's size when it was taken,
    may fall inside a line the API server was writing then: that event began before OFFSET, and is left out."""
    start = offset if path.stat().st_size >= offset else 0
    with path.open("rb") as log:
        log.seek(max(start - 1, 0))  # from the byte before START: a newline there means START begins a line
        data = log.read()
    if start:
        data = data[data.find(b"\n") + 1:]
    return [json.loads(line) for line in data[:data.rfind(b"\n") + 1].splitlines() if line.strip()]


class AuditLog:
    """The audit log from the moment this is made. events(): every request the API server answered since, read
    once a request of our own (PROBE_REQUEST(name): a GET whose URI holds NAME) is in it - so is all before it."""

    def __init__(self, path, probe_request):
        assert path.exists(), f"{path}: the test bed writes an audit log; without it no request can be counted"
        self.path, self.probe_request = path, probe_request
        self.offset = path.stat().st_size

    def events(self):
        probe = "audit-probe-" + uuid.uuid4().hex[:12]
        self.probe_request(probe)
        deadline = time.monotonic() + 10
        while True:
            events = complete_events(self.path, self.offset)
            if any(probe in event.get("requestURI", "") for event in events):
                return events
            assert time.monotonic() < deadline, "the audit log did not record a request in 10 s: it is not written"
            time.sleep(0.3)

"""Live MCP traffic while something happens: for each Service, one long-lived session (opened before, used all
through) and a stream of new sessions, every call a tools/call to the Service (which picks the pod), from the host
through the API server's service proxy (traffic_during) or from a pod in the cluster straight to the Service
(incluster.py). Bounded in calls per client and in time; every failure is counted and kept, with the HTTP answers
behind it. Used by the tests on running pods and by bench/availability.py."""
import asyncio
import collections
import functools
import time

from .serviceclient import service_session

PROXY_PORT, GATEWAY_PORT = 8080, 4483
# The MCP servers the traffic tests deploy (traffic_job), each named as its image is in conftest's images(). Both
# answer `greet` alike. go-sdk's `everything` keeps its MCP sessions in memory; the stateless greeter
# (testbed/images) keeps none, so its pods can move under a session without ending it.
TEST_SERVERS = ("everything", "greeter")


def services(server="everything"):
    """The clients' Services of traffic_job(server=SERVER): {name: (Service, port, the tool called there)}; the
    gateway prefixes each backend's tools with its name."""
    return {"gateway": ("vmcp-gateway", GATEWAY_PORT, f"{server}_greet"),
            "proxy": (f"mcp-{server}-proxy", PROXY_PORT, "greet"),
            "remote proxy": ("mcp-upstream-remote-proxy", PROXY_PORT, "greet")}


SERVICES = services()


def traffic_job(namespace, images, group, backend_replicas, server="everything", **extra):
    """deploy.yml's variables: Redis, the MCPServer SERVER (TEST_SERVERS; 2 proxies), a VirtualMCPServer `gateway` of 2
    and an MCPRemoteProxy `upstream` of 2 in front of SERVER, all with Redis and sessionAffinity None."""
    return dict({
        "toolhive_namespace": namespace,
        "toolhive_group": group,
        "redis_image": images["redis"],
        "mcpserver_servers": [{"name": server, "image": images[server], "transport": "streamable-http",
                               "mcp_port": PROXY_PORT, "replicas": 2, "backend_replicas": backend_replicas,
                               "session_affinity": "None"}],
        "vmcp_instances": [{"name": "gateway", "replicas": 2, "session_affinity": "None"}],
        "mcpremoteproxy_proxies": [{
            # In no group: the gateway's health check reaches a remote proxy without its path (/mcp) and marks the
            # gateway BackendsDegraded, not Ready (v0.47.0, seen on running pods).
            "name": "upstream", "replicas": 2, "session_affinity": "None", "group": "",
            "remote_url": f"http://mcp-{server}-proxy.{namespace}.svc:{PROXY_PORT}/mcp"}],
    }, **extra)


class Tally:
    """One client's calls, its failures (when, which call, what went wrong), its slowest call, and the longest time
    it went without an answer: from one answered call to the next, or to the client's end (`ended`)."""
    def __init__(self):
        self.calls, self.failures, self.longest_gap, self.answered_at = 0, [], 0.0, None
        self.slowest = (0.0, None)  # the slowest call: its seconds, and when it ended

    def count(self, what, error=None, started=None):
        """One call (begun at time.monotonic() STARTED, when told): a failure is kept with when it ended."""
        self.calls += 1
        now = time.monotonic()
        if error is not None:
            self.failures.append((round(now, 1), what, error))
        elif self.answered_at is not None:
            self.longest_gap = max(self.longest_gap, now - self.answered_at)
        if error is None:
            self.answered_at = now
        if started is not None and now - started > self.slowest[0]:
            self.slowest = (round(now - started, 2), round(now, 1))

    def ended(self):
        """The client has stopped (at STOP, or at its limit of calls): a client whose calls failed to the end went
        without an answer until now. Each client says it as it stops: a client that reached its limit early did not
        go without an answer while the others went on."""
        if self.answered_at is not None:
            self.longest_gap = max(self.longest_gap, time.monotonic() - self.answered_at)


def greeted(answer, name):
    """None when ANSWER is the test servers' greeting of NAME, else what it was."""
    texts = [getattr(c, "text", c) for c in answer.content]
    return None if not answer.is_error and texts == [f"Hi {name}"] else f"answered {texts} (is_error {answer.is_error})"


async def long_lived(connect, service, port, tool, tally, opened, stop, limit):
    """One session (CONNECT(service, port)) opened before the action, calling TOOL until STOP. A session that ended
    (SESSION_ENDED: the server's 404, or the SDK's own end of it when its connection closed) or whose transport broke
    (a connection to the Service could not be made: from a pod, nothing in between answers for the Service) counts as
    one failed call, and a new one is opened, as MCP tells a client to and a user's client would: calling on in an
    ended session counts one failure per call, thousands a second (seen: 4,541 "Connection closed" in one drain)."""
    while not stop.is_set() and tally.calls < limit:
        started = time.monotonic()
        try:
            async with connect(service, port) as session:
                opened.set()
                while not stop.is_set() and tally.calls < limit:
                    started = time.monotonic()
                    try:
                        answer = await session.call_tool(tool, {"name": "long-lived"})
                        tally.count("long-lived", greeted(answer, "long-lived"), started)
                    except Exception as exc:  # pylint: disable=broad-except  # every failure is counted, and shown
                        tally.count("long-lived", f"{exc!r}; HTTP answers: {session.errors[-3:]}", started)
                        if session_ended(exc):
                            break
        except Exception as exc:  # pylint: disable=broad-except
            if not opened.is_set():
                raise  # not even opened before the action: the job does not serve
            tally.count("long-lived", f"the session broke: {exc!r}", started)
    tally.ended()


async def fresh_sessions(connect, service, port, tool, tally, stop, limit):
    """A new session for every call until STOP: initialize and tools/call each land where the Service says."""
    while not stop.is_set() and tally.calls < limit:
        errors, started = [], time.monotonic()
        try:
            async with connect(service, port) as session:
                errors = session.errors
                answer = await session.call_tool(tool, {"name": "fresh"})
                tally.count("fresh", greeted(answer, "fresh"), started)
        except Exception as exc:  # pylint: disable=broad-except
            tally.count("fresh", f"{exc!r}; HTTP answers: {errors[-3:]}", started)
    tally.ended()


async def calling_during(connect, services, action, limit=3000):
    """Await ACTION() while every client of SERVICES ({name: (service, port, tool)}; sessions from CONNECT(service,
    port)) calls, at most LIMIT calls each: it starts 3 s after every long-lived session is open, and the clients stop
    5 s after it returns. Returns (ACTION's result, {name: (long-lived, new) tallies})."""
    stop = asyncio.Event()
    tallies = {name: (Tally(), Tally()) for name in services}
    opened = {name: asyncio.Event() for name in services}
    clients = []
    for name, (service, port, tool) in services.items():
        kept, fresh = tallies[name]
        clients.append(asyncio.create_task(long_lived(connect, service, port, tool, kept, opened[name], stop, limit)))
        clients.append(asyncio.create_task(fresh_sessions(connect, service, port, tool, fresh, stop, limit)))
    await asyncio.wait_for(asyncio.gather(*(event.wait() for event in opened.values())), 60)
    await asyncio.sleep(3)  # every client is calling before the action starts
    result = await action()
    await asyncio.sleep(5)
    stop.set()
    await asyncio.gather(*clients)
    return result, tallies


def traffic_during(kubeconfig, namespace, services, action, limit=3000):
    """calling_during from this host, through the API server of KUBECONFIG, while ACTION (blocking) runs in a
    thread."""
    return calling_during(functools.partial(service_session, kubeconfig, namespace), services,
                          lambda: asyncio.to_thread(action), limit)


def counted(tallies):
    """(calls, failures, {name: (long-lived calls, failed, new-session calls, failed)}) of the traffic's tallies."""
    summary = {name: (kept.calls, len(kept.failures), fresh.calls, len(fresh.failures))
               for name, (kept, fresh) in tallies.items()}
    calls = sum(kept.calls + fresh.calls for kept, fresh in tallies.values())
    failures = [f for kept, fresh in tallies.values() for f in kept.failures + fresh.failures]
    return calls, failures, summary


def longest_gap(tallies):
    """The longest time, in seconds, any client of traffic_during went without an answer."""
    return max(tally.longest_gap for pair in tallies.values() for tally in pair)


# What a failure says, in a few words: the first pattern its message holds.
# SSE_ENDED: a call's SSE answer closed before its result. Through the API server's service proxy it comes with nothing
# happening too, about 1 call in 2,000: the API server closes the client's connection in the middle of the answer
# ("incomplete chunked read"); from a pod, 0 of 9,312 (docs/performance.md).
SSE_ENDED = "an SSE answer ended without a result"
# A proxy in front of another (the gateway, the remote proxy) sending on a connection the pod behind it has just closed
# as it ends: KEPT_CONNECTION, before 503, since the API server's 503 can carry it.
KEPT_CONNECTION = "a kept connection closed"
# The SDK's words for a session that ended, in its error's repr: the server answered 404 (it no longer knows the
# session), or the SDK closed the session itself when its connection to the server closed.
SESSION_GONE, CONNECTION_CLOSED = "Session terminated", "'Connection closed'"
SESSION_ENDED = (SESSION_GONE, CONNECTION_CLOSED)


def session_ended(exc):
    """Whether the SDK's exception EXC says the session has ended (SESSION_ENDED)."""
    return any(words in repr(exc) for words in SESSION_ENDED)


# The remote proxy's own 502, with no body (Go's ReverseProxy, no error handler in ToolHive's transparent proxy): it
# could not get an answer from the pod behind it. Its log says why ("http: proxy error: ..."); the client cannot.
PROXY_502 = "an empty 502 from a ToolHive proxy"
REFUSED, NO_CONNECTION = "connection refused", "no connection to the Service"
CAUSES = (("SSE stream ended without a response", SSE_ENDED), ("server closed idle connection", KEPT_CONNECTION),
          ("(502, '')", PROXY_502),
          ("connection refused", REFUSED),
          # httpx2's words for a connection to a Service that could not be made (from a pod: no API server in between):
          # refused, or no answer in 30 s (a node still sending to a pod that has gone).
          ("All connection attempts failed", NO_CONNECTION), ("ConnectTimeout", NO_CONNECTION),
          ("session not found", "a backend session not found"),
          ("not found", "a tool not found"), (SESSION_GONE, "the session ended (404)"),
          (CONNECTION_CLOSED, "the session's connection closed"), ("EOF", "EOF"),
          ("503", "503"), ("timed out", "timeout"))


def cause(error):
    """What a failure's ERROR says, in a few words (CAUSES, else "other")."""
    return next((cause for pattern, cause in CAUSES if pattern in str(error)), "other")


def causes(failures):
    """{cause: count} of traffic failures."""
    return dict(collections.Counter(cause(error) for _at, _what, error in failures))


def first_of_each_cause(failures):
    """{cause: (which call, its error)} of the first failure of each cause."""
    first = {}
    for _at, what, error in failures:
        first.setdefault(cause(error), (what, str(error)[:400]))
    return first


def traffic_report(tallies, what, seconds):
    """Print what every client saw during WHAT (SECONDS long), check that each called throughout, and return
    (calls, failures)."""
    calls, failed, summary = counted(tallies)
    print(f"\n{what} took {seconds:.1f} s; per Service (long-lived calls, failed, new-session calls, failed): "
          f"{summary}; {len(failed)} of {calls} failed, by cause {causes(failed)}, the longest time without an "
          f"answer {longest_gap(tallies):.1f} s; the first: {failed[:5]}")
    assert all(kept >= 50 and fresh >= 10 for kept, _kept_failed, fresh, _fresh_failed in summary.values()), summary
    return calls, failed


def timed(action):
    """ACTION for traffic_during, returning (its result, seconds)."""
    def run_it():
        started = time.monotonic()
        return action(), time.monotonic() - started
    return run_it

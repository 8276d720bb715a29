# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the MCP check's results mean, in plain sentences that name the likely cause and the fix,
and a one-line summary per server. Pure functions of the report of one server (see mcp_check)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.toolhive.k8s.plugins.module_utils import kinds, mcp


# What the API server says when its network cannot reach a pod at all (a managed control plane with no route or
# firewall opening to the nodes' pod ports), as opposed to a pod that refuses the connection.
NO_ROUTE = ("no route to host", "i/o timeout", "network is unreachable", "context deadline exceeded")


def api_server_cannot_reach(error):
    """Whether a replica's error is the API server's proxy failing to reach the pod's network."""
    message = (error or {}).get("message") or ""
    return ((error or {}).get("kind") == mcp.UNREACHABLE and "error trying to reach service" in message
            and any(words in message for words in NO_ROUTE))


def could_not_run(servers):
    """One sentence with the fix when the check could not run at all: no pod answered, and the API server said of
    every pod it tried that its network cannot reach it; None otherwise."""
    tried = [r for s in servers for r in s.get("replicas") or [] if r.get("checked")]
    if not tried or any(r.get("answered") for r in tried):
        return None
    if not all(api_server_cannot_reach(r.get("error")) for r in tried):
        return None
    return ("the MCP check could not run: the API server cannot reach the pods (%s), which is common on managed "
            "clusters whose control plane has no route to the nodes' pod ports. The rollout itself is not in "
            "question. Fix: allow the control plane to reach the pods' ports (a firewall rule), or skip the check "
            "(toolhive_mcp_check: false) and check from inside the cluster." % tried[0]["error"]["message"])


def storage_words(server):
    storage = server.get("session_storage") or {}
    if storage.get("provider") != "redis":
        return None
    return "Redis at %s" % (storage.get("address") or "the configured address")


def _error_sentence(server, pod, step, error):
    """Why POD failed STEP, and what to do."""
    kind, status, namespace = error.get("kind"), error.get("status"), server["namespace"]
    redis = storage_words(server)
    if kind == mcp.TIMEOUT:
        text = ("pod %s did not answer %s within %ss: the process hangs or is overloaded" % (pod, step, server["timeout"]))
        if redis:
            text += ", or it waits on its session storage (%s: is Redis running?)" % redis
        return text + ("; while it is Ready the Service still sends clients to it — read `kubectl logs %s -n %s` and "
                       "restart it (`kubectl delete pod %s -n %s`)." % (pod, namespace, pod, namespace))
    if kind == mcp.UNREACHABLE:
        return ("pod %s cannot be reached on port %s (%s): nothing listens there — the server crashed, is still "
                "starting, or listens on another port; see `kubectl describe pod %s -n %s` and its logs."
                % (pod, server.get("port"), error.get("message"), pod, namespace))
    if kind == mcp.TOO_LARGE:
        return ("pod %s answered %s with more than %d bytes and the check stopped reading: a reply that large is a "
                "fault or a hostile server; raise max_response_bytes only if its tool list really is that long."
                % (pod, step, server["max_response_bytes"]))
    if kind == mcp.MALFORMED:
        return ("pod %s answered %s with something that is not MCP (%s): it is not a streamable-HTTP MCP endpoint at "
                "%s — check the server's transport, port and path." % (pod, step, error.get("message"), server.get("path")))
    if kind == mcp.RPC:
        return "pod %s answered %s with a JSON-RPC error (%s): see its logs." % (pod, step, error.get("message"))
    text = "pod %s answered %s with %s" % (pod, step, error.get("message"))
    if status == 503 and redis:
        return text + (": it cannot use its session storage (%s) — check that Redis runs and accepts the password "
                       "of the Secret in sessionStorage.passwordRef." % redis)
    if status == 404 and step != "initialize":
        return text + (": the %s dropped the session it had just created — for a gateway, one of its backends failed "
                       "to initialise (a backend MCPServer with several replicas and no session storage?); see "
                       "`kubectl logs %s -n %s`." % (kinds.SERVERS[server["kind"]]["called"], pod, namespace))
    return text + "; see `kubectl logs %s -n %s`." % (pod, namespace)


def _session_sentence(server, opener, pod, error):
    """A session opened on OPENER that POD did not serve."""
    what, redis = kinds.SERVERS[server["kind"]]["called"], storage_words(server)
    head = "%s pod %s answers, but a session opened on %s is %s on %s" % (
        what, opener, opener, "not served" if error.get("kind") != mcp.HTTP else "unknown", pod)
    if error.get("kind") == mcp.TIMEOUT:
        return head + (" (no answer within %ss): %s waits on its session storage (%s) or hangs — check Redis and "
                       "`kubectl logs %s -n %s`." % (server["timeout"], pod, redis or "none configured", pod,
                                                     server["namespace"]))
    head += " (%s)" % error.get("message")
    if not redis:
        return head + (": the %s has no session storage, so each replica knows only its own sessions — set "
                       "sessionStorage (provider redis; the redis role with the %s role wires it), or run one replica."
                       % (what, kinds.SERVERS[server["kind"]]["role"]))
    if error.get("status") == 503:
        return head + (": %s cannot reach its session storage (%s): Redis is down or refuses the password — check "
                       "the Redis pod and the Secret in sessionStorage.passwordRef." % (pod, redis))
    return head + (": session storage is configured (%s) but %s does not find the session there — Redis was "
                   "restarted or flushed (without persistence its sessions are lost), is unreachable from %s, or the "
                   "replicas use different keyPrefix or db; check Redis and the %s's sessionStorage."
                   % (redis, pod, pod, what))


def _service_sentence(server, service):
    """The Service fails while the pods answer."""
    error, name = service["error"], service.get("name")
    affinity = server.get("session_affinity") or "ClientIP"
    if error.get("status") == 404 and error.get("step") != "initialize":
        head = ("through the Service %s a new session breaks at its next request (%s answered %s) while each pod "
                "serves its own sessions" % (name, error.get("step"), error.get("message")))
        if not storage_words(server):
            return head + (": the Service (sessionAffinity %s) sent that request to another replica, which does not "
                           "know the session without session storage — clients fail the same way; set "
                           "sessionStorage (provider redis), or sessionAffinity ClientIP only as a stopgap." % affinity)
        return head + (": the replica the Service chose did not find the session in the session storage (%s); see "
                       "the session findings and check Redis." % storage_words(server))
    return ("the Service %s does not answer through the API server (%s %s) while its pods do: check the Service's "
            "selector, ports and endpoints." % (name, error.get("step"), error.get("message")))


def lost_in_service(server, service):
    """The Service broke a new session at its next request on a server without session storage: the request went
    to another replica, which does not know the session."""
    error = service.get("error") or {}
    return error.get("status") == 404 and error.get("step") != "initialize" and not storage_words(server)


def findings(server):
    """Plain sentences about one server's check."""
    return [sentence for sentence, _lost in tagged_findings(server)]


def tagged_findings(server):
    """(sentence, lost_session) about one server's check; LOST_SESSION marks the sentences that say only that a
    replica did not know a session another one opened, on a server without session storage: what an opt-in to
    several replicas without Redis (allow_without_session_storage) accepts."""
    sentences = []

    def add(sentence, lost_session=False):
        sentences.append((sentence, lost_session))

    if server.get("scaled_to_zero"):
        return []
    if server.get("skipped"):
        return [(server["skipped"], False)]
    replicas = server.get("replicas") or []
    checked = [r for r in replicas if r.get("checked")]
    if server.get("desired") is not None and len(checked) < server["desired"]:
        missing = ["%s (%s)" % (r["pod"], r.get("reason")) for r in replicas if not r.get("checked")]
        add("%d of %d replicas have a running pod to check%s: the others cannot answer; see `kubectl "
            "describe deployment %s -n %s` and the pods' events."
            % (len(checked), server["desired"], (": not checked " + ", ".join(missing)) if missing else "",
               server.get("workload"), server["namespace"]))
    for replica in checked:
        if replica.get("error"):
            add(_error_sentence(server, replica["pod"], replica["error"].get("step"), replica["error"]))
        elif not replica.get("ready"):
            add("pod %s answers but is not Ready: the Service sends it no clients until its readiness "
                "probe passes." % replica["pod"])
    answering = [r for r in checked if r.get("answered")]
    counts = sorted(set(r.get("tools") for r in answering))
    if len(counts) > 1:
        add("its replicas list different numbers of tools (%s): they see different backends (one still "
            "discovering, or a backend unreachable from some) — compare their logs."
            % ", ".join("%s %s" % (r["pod"], r.get("tools")) for r in answering))
    elif counts == [0]:
        add("it answers but lists no tools: %s." % kinds.SERVERS[server["kind"]]["no_tools"])
    service = server.get("service") or {}
    if service.get("error") and answering:
        add(_service_sentence(server, service), lost_in_service(server, service))
    session = server.get("session") or {}
    for replica in checked:
        if replica.get("session_served") is False:
            add(_session_sentence(server, session.get("opened_on"), replica["pod"], replica.get("session_error") or {}),
                not storage_words(server))
    for replica in checked:
        for call in replica.get("calls") or []:
            if call.get("error"):
                add("tools/call %s on pod %s failed: %s" % (call["name"], replica["pod"], call["error"].get("message")))
            elif call.get("is_error"):
                add("tools/call %s on pod %s answered with isError: %s" % (
                    call["name"], replica["pod"], call.get("text")))
    return sentences


def summary(server):
    """One line: how many replicas answer, tools, latency, sessions."""
    if server.get("scaled_to_zero"):
        return "scaled to 0, nothing to check; OK"
    if server.get("skipped"):
        return "not checked"
    if server.get("check_mode"):
        return "check mode: %d pod(s) would be checked, no MCP request sent" % len(
            [r for r in server.get("replicas") or [] if r.get("running")])
    replicas = [r for r in server.get("replicas") or [] if r.get("checked")]
    answering = [r for r in replicas if r.get("answered")]
    total = max(len(replicas), server.get("desired") or 0)
    text = "%d/%d replicas answer" % (len(answering), total)
    if answering:
        latencies = [r["latency_ms"] for r in answering]
        tools = sorted(set(r["tools"] for r in answering))
        text += " (%s tools, %s ms)" % ("/".join(str(t) for t in tools),
                                        ("%d" % min(latencies)) if len(latencies) == 1
                                        else "%d-%d" % (min(latencies), max(latencies)))
    session = server.get("session") or {}
    if session.get("opened_on"):
        others = [r for r in replicas if r.get("session_served") is not None]
        served = [r for r in others if r["session_served"]]
        text += "; session from %s served by %d/%d other" % (session["opened_on"], len(served), len(others))
    elif session.get("reason"):
        text += "; sessions " + session["reason"]
    lost = server.get("sessions_lost")
    if lost:
        text += "; sessions opened before %s lost (Redis %s restarted, keeps no data)" % (lost["at"], lost["redis"])
    return text + ("; OK" if server.get("ok") else "; NOT OK")

#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: mcp_check
short_description: Check at the MCP level that ToolHive servers answer, on every replica, and that sessions survive any replica
version_added: 0.2.0
description:
  - For each VirtualMCPServer, MCPServer and MCPRemoteProxy, speaks MCP (streamable HTTP) to the server through the Kubernetes API
    server's service proxy, and to each replica through the pod proxy
    (C(/api/v1/namespaces/NS/pods/POD:PORT/proxy/mcp)) - C(initialize), C(notifications/initialized), C(tools/list),
    then the session's C(DELETE). It reports per replica whether it answered, the number of tools and the latency.
  - With O(sessions) (the default), it opens a session on one replica and sends C(tools/list) with that session's
    C(Mcp-Session-Id) to every other replica, and reports per pod whether the session was served. That is the
    scaling guide's promise (Redis session storage shares sessions between replicas), which no condition shows.
  - Findings are plain sentences naming the likely cause and the fix (no session storage, Redis unreachable, a pod
    that hangs, a reply that is too large or not MCP, replicas that see different tools).
  - Uses the credentials of the task and nothing else - no port-forward, no pod of its own - so it runs from AWX
    with the least-privilege account of C(awx/rbac.yaml) (C(create) and C(get) on C(pods/proxy) and
    C(services/proxy)).
  - A module of its own, not an option of M(toolhive.k8s.status), because it does what status never does - it sends
    requests to the servers themselves, opens sessions (and closes them) and needs the proxy permissions -
    while status only reads the API and stays safe to run anywhere, any time, with read-only rights.
  - "Bounded: each exchange has O(timeout) from the first byte sent to the last byte read (a server that drips bytes
    is cut off too) and reads at most O(max_response_bytes); a slow, huge or malformed reply is reported as a
    finding and never hangs the play. C(tools/call) is never sent unless O(call_tools) names the tool."
author:
  - toolhive.k8s maintainers (@toolhive-k8s)
extends_documentation_fragment:
  - toolhive.k8s.auth
options:
  kind:
    description: Kind of the servers to check. Without it, every kind (VirtualMCPServers first).
    type: str
    choices: [VirtualMCPServer, MCPServer, MCPRemoteProxy]
  namespace:
    description: Namespace of the servers.
    type: str
    required: true
  api_version:
    description: Version of the ToolHive API (C(v1alpha1) for operators older than v0.23).
    type: str
    default: v1beta1
    choices: [v1beta1, v1alpha1]
  name:
    description: Name of one server. Without it (and without O(names)), every server of O(kind) in O(namespace)
      (matching O(label_selector), if given).
    type: str
  names:
    description: Names of several servers.
    type: list
    elements: str
  label_selector:
    description: Label selector for the servers, for example C(team=search).
    type: str
  sessions:
    description:
      - Open a session on one replica and use it (C(tools/list)) on every other replica; each replica's
        C(session_served) says whether it served it. Needs two replicas that answer.
    type: bool
    default: true
  call_tools:
    description:
      - The allow-list of tools to call with C(tools/call) on every replica, each with its arguments. Without it no
        C(tools/call) is ever sent. A tool is called only when a replica lists it under exactly this name (a gateway
        prefixes the backend's name, for example C(time_get_current_time)).
      - Only list tools without side effects; the check calls them once per replica each time it runs.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Tool name, as C(tools/list) shows it.
        type: str
        required: true
      arguments:
        description: The call's arguments.
        type: dict
        default: {}
  timeout:
    description: Seconds one MCP exchange may take, from the first byte sent to the last byte read.
    type: float
    default: 5.0
  max_response_bytes:
    description: Largest reply read, in bytes; a larger one is cut off and reported.
    type: int
    default: 1048576
  parallel:
    description: How many MCP exchanges run at once (1-32).
    type: int
    default: 8
  wait_timeout:
    description:
      - Seconds to repeat the whole check (every 2 seconds) until it is OK, for example right after a deploy while
        gateways still discover their backends. C(0) checks once. The findings are those of the last round.
    type: int
    default: 0
  allow_without_session_storage:
    description:
      - The opt-in to several replicas without session storage, as the roles' C(*_allow_without_session_storage).
        For a server without Redis session storage, a session that another replica does not know is what the
        opt-in accepts - reported in RV(accepted) and as a warning, not a failure. Every other finding still fails.
    type: bool
    default: false
    version_added: 0.3.0
attributes:
  check_mode:
    support: full
    description: Reads the servers, their workloads and pods (GET only) and reports which pods would be checked; sends
      no MCP request at all (C(checked=false) on every replica).
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to show.
notes:
  - Every check opens sessions and closes them with C(DELETE); with Redis session storage a session lives in Redis
    between the two. The sessions check closes its session on the replica that opened it.
  - Checks the MCPServer's proxy (Deployment C(NAME), Service C(mcp-NAME-proxy)), which is what clients reach; an
    MCPServer whose proxy speaks the legacy SSE transport is reported as not checked. An MCPRemoteProxy is checked
    through its proxy (Deployment C(NAME), Service C(mcp-NAME-remote-proxy)), so the check reaches its remote server.
  - Pods are those of the workload's selector that are running and not being deleted; pods not Ready are checked
    too and said so (the Service sends them no clients).
seealso:
  - module: toolhive.k8s.status
"""

EXAMPLES = r"""
- name: Every replica answers, and a session opened on one is served by all
  toolhive.k8s.mcp_check:
    namespace: toolhive
  register: mcp

- name: Fail the job on any problem, naming it
  ansible.builtin.assert:
    that: mcp.ok
    fail_msg: "{{ mcp.findings }}"

- name: One gateway, calling a harmless tool on every replica
  toolhive.k8s.mcp_check:
    kind: VirtualMCPServer
    name: gateway
    namespace: toolhive
    call_tools:
      - name: time_get_current_time
        arguments: {timezone: UTC}

- name: Right after a deploy, wait up to 2 minutes until the gateways serve
  toolhive.k8s.mcp_check:
    namespace: toolhive
    wait_timeout: 120
"""

RETURN = r"""
msg:
  description: One line when OK; otherwise every finding, each on a line of its own (what a failed task shows).
  returned: always
  type: str
  sample: "MCP check NOT OK, 1 finding(s):\n- MCPServer toolhive/fetch: 1 of 2 replicas have a running pod to check"
could_not_run:
  description: Why the check could not run at all - the API server's proxy reached none of the pods for a network
    reason (common on managed clusters) - with the fix; also a warning. RV(ok) is then false, but nothing is known
    to be wrong with the servers. C(null) when the check ran.
  returned: always
  type: str
accepted:
  description: The findings O(allow_without_session_storage) accepted (sessions lost between replicas of a server
    without session storage), as C(KIND NAMESPACE/NAME sentence).
  returned: always
  type: list
  elements: str
ok:
  description: Every server checked answered on every replica and through its Service, every other replica served the
    session (with O(sessions)) and every allowed tool call succeeded; false in check mode.
  returned: always
  type: bool
servers:
  description: One entry per server.
  returned: always
  type: list
  elements: dict
  contains:
    kind:
      description: Kind.
      type: str
    name:
      description: Name.
      type: str
    namespace:
      description: Namespace.
      type: str
    ok:
      description: This server's part of RV(ok).
      type: bool
    summary:
      description: One line, as the status playbook shows it.
      type: str
      sample: 3/3 replicas answer (10 tools, 12-31 ms); session from gateway-7d9-abc served by 2/2 other; OK
    workload:
      description: The workload whose pods were checked.
      type: str
      sample: Deployment/gateway
    desired:
      description: The workload's replica count.
      type: int
    port:
      description: The pods' port.
      type: int
    path:
      description: The MCP path.
      type: str
    session_storage:
      description: spec.sessionStorage (without the password reference), or null.
      type: dict
    sessions_lost:
      description: When the server's Redis (one pod, no volume of its own) restarted after the server's workload was
        made, forgetting every session opened before (C(redis) as C(namespace/service), C(at)); also a warning.
        Informational - sessions opened since are served - so RV(ok) does not change. C(null) otherwise.
      type: dict
    service:
      description: The check through the Service (C(name), C(answered), C(tools), C(latency_ms), C(error)).
      type: dict
    replicas:
      description: Per pod; C(answered) means C(initialize) and C(tools/list) both succeeded.
      type: list
      elements: dict
      contains:
        pod:
          description: Pod name.
          type: str
        ready:
          description: The pod's Ready condition.
          type: bool
        checked:
          description: Whether MCP requests were sent to it (false in check mode, or for a pod not running).
          type: bool
        reason:
          description: Why it was not checked.
          type: str
        answered:
          description: C(initialize) and C(tools/list) succeeded.
          type: bool
        initialize_ok:
          description: C(initialize) (and C(notifications/initialized)) succeeded.
          type: bool
        tools_list_ok:
          description: C(tools/list) succeeded.
          type: bool
        tools:
          description: Number of tools listed.
          type: int
        latency_ms:
          description: Milliseconds of C(tools/list).
          type: float
        initialize_ms:
          description: Milliseconds of C(initialize) and C(notifications/initialized).
          type: float
        error:
          description: What failed (C(step), C(kind) one of timeout, too_large, unreachable, http, malformed, rpc_error,
            C(status), C(message)).
          type: dict
        session_served:
          description: With O(sessions), whether this pod served the session opened on C(session.opened_on) of the server
            (null for that pod itself, and when no session could be opened).
          type: bool
        session_error:
          description: How it refused the session.
          type: dict
        calls:
          description: The C(tools/call)s of O(call_tools) (C(name), C(ok), C(is_error), C(latency_ms), C(error)).
          type: list
          elements: dict
    session:
      description: C(opened_on), the pod where the session was opened, or C(reason) when none was.
      type: dict
    findings:
      description: Plain sentences naming the cause and the fix.
      type: list
      elements: str
    accepted:
      description: This server's findings that O(allow_without_session_storage) accepted.
      type: list
      elements: str
findings:
  description: Every server's findings, each prefixed with the server.
  returned: always
  type: list
  elements: str
"""

import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

from ansible_collections.toolhive.k8s.plugins.module_utils import guards, kinds, mcp, mcp_findings, waiter
from ansible_collections.toolhive.k8s.plugins.module_utils.client import ReadCache, run_module
from ansible_collections.toolhive.k8s.plugins.module_utils.errors import K8sError
from ansible_collections.toolhive.k8s.plugins.module_utils.resources import find_workload, get_resource

KINDS = tuple(kinds.SERVERS)
# The container that serves clients: the first workload's (kinds.SERVERS).
CONTAINER = {kind: next(iter(row["workloads"].values()))["container"] for kind, row in kinds.SERVERS.items()}


def ms(seconds):
    return round(seconds * 1000.0, 1)


def fetch(client, kind, params):
    """The servers of KIND the options name (a name not found of this kind is left to the other kind)."""
    namespace, version = params["namespace"], params["api_version"]
    if params["name"] and params["kind"]:
        return [get_resource(client, kind, params["name"], namespace, version)]
    selector = params["label_selector"] if not (params["name"] or params["names"]) else None
    items = client.get(kinds.path(kind, namespace, api_version=version), labelSelector=selector).get("items", [])
    for item in items:
        item.setdefault("kind", kind)
    wanted = [params["name"]] if params["name"] else params["names"]
    if wanted:
        items = [i for i in items if i["metadata"]["name"] in wanted]
    return items


def pod_path(namespace, pod, port, path):
    return kinds.path("Pod", namespace, pod, "proxy", port=port, fields=("namespace", "pod")) + path


def service_path(namespace, service, port, path):
    return kinds.path("Service", namespace, service, "proxy", port=port, fields=("namespace", "service")) + path


def endpoint_of(resource):
    """(service name, port, MCP path, reason it cannot be checked or None) from status.url and the spec."""
    kind, name, spec = resource["kind"], resource["metadata"]["name"], resource.get("spec") or {}
    # The spec's port and transport where its CRD has them, else the kind's (kinds.SERVERS): a gateway's spec has
    # neither. An MCPRemoteProxy forwards /mcp to its remoteUrl's path.
    service, port, path = (kinds.service_name(kind, name), spec.get("proxyPort") or spec.get("port")
                           or kinds.SERVERS[kind]["port"], "/mcp")
    transport = guards.transport(kind, spec)
    mode = transport if transport in ("sse", "streamable-http") else (spec.get("proxyMode") or "streamable-http")
    if mode == "sse":
        path = "/sse"
    url = (resource.get("status") or {}).get("url")
    if url:
        parsed = urlparse(url)
        if parsed.hostname:
            service = parsed.hostname.split(".")[0]
        port = parsed.port or port
        if parsed.path and parsed.path != "/":
            path = parsed.path
    if path.rstrip("/").endswith("/sse"):
        return service, port, path, ("not checked: it speaks the legacy SSE transport (%s); this check speaks "
                                     "streamable HTTP only (proxyMode: streamable-http)." % path)
    return service, int(port), path, None


def pod_port(workload, kind, default):
    """The container port named http of the workload's main container, else DEFAULT."""
    containers = ((workload.obj or {}).get("spec", {}).get("template", {}).get("spec", {}).get("containers") or [])
    for container in sorted(containers, key=lambda c: c.get("name") != CONTAINER[kind]):
        for port in container.get("ports") or []:
            if port.get("name") == "http" and port.get("containerPort"):
                return int(port["containerPort"])
    return default


def pods_of(reader, workload):
    """The workload's pods (by its selector), sorted by name, each {pod, ready, running, reason}."""
    selector = ((workload.obj or {}).get("spec", {}).get("selector") or {}).get("matchLabels") or {}
    if not selector:
        return []
    items = reader.get(kinds.path("Pod", workload.namespace)).get("items", [])
    pods = []
    for pod in items:
        labels = pod["metadata"].get("labels") or {}
        if any(labels.get(k) != v for k, v in selector.items()):
            continue
        status = pod.get("status") or {}
        ready = waiter.pod_ready(pod)
        running = status.get("phase") == "Running" and bool(status.get("podIP"))
        reason = None
        if pod["metadata"].get("deletionTimestamp"):
            running, reason = False, "being deleted"
        elif not running:
            waiting = [s.get("state", {}).get("waiting", {}).get("reason") for s in status.get("containerStatuses") or []]
            reason = "phase %s%s" % (status.get("phase"), "".join(", " + w for w in waiting if w))
        pods.append({"pod": pod["metadata"]["name"], "ready": ready, "running": running, "reason": reason})
    return sorted(pods, key=lambda p: p["pod"])


def container_started(pod):
    """When the pod's containers last started (RFC 3339, UTC): a container restarted in place counts too."""
    starts = [((s.get("state") or {}).get("running") or {}).get("startedAt")
              for s in (pod.get("status") or {}).get("containerStatuses") or []]
    return max([s for s in starts if s] or [None], key=lambda s: s or "")


def sessions_lost_at(client, server):
    """When the server's Redis (one pod, no volume of its own) started after the server's workload was made: the
    moment every session opened before was lost, since such a Redis keeps nothing across a restart; else None."""
    storage = server["session_storage"] or {}
    since = server.get("serving_since")
    if storage.get("provider") != "redis" or not storage.get("address") or not since:
        return None
    host = storage["address"].rsplit(":", 1)[0].split(".")
    namespace = host[1] if len(host) > 1 else server["namespace"]
    try:
        service = client.get_or_none(kinds.path("Service", namespace, host[0], fields=("address", "address")))
        selector = ((service or {}).get("spec") or {}).get("selector") or {}
        pods = client.get(kinds.path("Pod", namespace, fields=("address", "address")))["items"] \
            if selector else []
    except (K8sError, ValueError):  # a Redis outside the cluster, or in a namespace this account may not read
        return None
    pods = [p for p in pods if all(((p["metadata"].get("labels") or {}).get(k) == v) for k, v in selector.items())
            and not p["metadata"].get("deletionTimestamp")]
    if len(pods) != 1 or any(v.get("persistentVolumeClaim") for v in pods[0]["spec"].get("volumes") or []):
        return None  # Sentinel's replicas, or data on a volume: a restart need not lose it
    redis_started = container_started(pods[0])
    if redis_started and redis_started > since:
        return {"redis": "%s/%s" % (namespace, host[0]), "at": redis_started}
    return None


class Check:
    """The MCP exchanges of one run, with their bounds."""

    def __init__(self, client, params):
        self.client = client
        self.timeout = params["timeout"]
        self.max_bytes = params["max_response_bytes"]
        self.call_tools = params["call_tools"] or []
        self.sessions = params["sessions"]

    def endpoint(self, path):
        return mcp.Endpoint(self.client, path, self.timeout, self.max_bytes)

    def probe(self, path, keep_session=False):
        """initialize + tools/list (+ allowed calls) on one endpoint: a replica's fields (and its session id)."""
        endpoint = self.endpoint(path)
        result = {"checked": True, "answered": False, "initialize_ok": False, "tools_list_ok": False, "tools": None,
                  "latency_ms": None, "initialize_ms": None, "error": None}
        step, session_id = "initialize", None
        try:
            session_id, seconds = endpoint.open()
            step = "notifications/initialized"
            seconds += endpoint.initialized(session_id)
            result.update(initialize_ok=True, initialize_ms=ms(seconds))
            step = "tools/list"
            names, seconds = endpoint.list_tools(session_id)
            result.update(tools_list_ok=True, answered=True, tools=len(names), latency_ms=ms(seconds))
            calls = []
            for allowed in self.call_tools:
                calls.append(self.call(endpoint, session_id, allowed, names))
            if self.call_tools:
                result["calls"] = calls
        except mcp.McpError as exc:
            result["error"] = dict(exc.as_dict(), step=step)
        if not (keep_session and result["answered"]):
            endpoint.close(session_id)
            session_id = None
        return result, session_id

    def call(self, endpoint, session_id, allowed, listed):
        """tools/call of one allow-listed tool, only if this replica lists it."""
        entry = {"name": allowed["name"], "ok": False, "is_error": None, "latency_ms": None, "error": None}
        if allowed["name"] not in listed:
            entry["error"] = {"kind": "not_listed", "message": "this replica does not list a tool of that name"}
            return entry
        try:
            result, seconds = endpoint.call_tool(session_id, allowed["name"], allowed.get("arguments") or {})
        except mcp.McpError as exc:
            entry["error"] = exc.as_dict()
            return entry
        texts = [c.get("text") for c in result.get("content") or [] if isinstance(c, dict) and c.get("text")]
        entry.update(ok=not result.get("isError"), is_error=bool(result.get("isError")), latency_ms=ms(seconds),
                     text=mcp.excerpt(" ".join(texts)))
        return entry

    def use_session(self, path, session_id):
        """tools/list with another replica's session: (served, error)."""
        try:
            self.endpoint(path).list_tools(session_id)
            return True, None
        except mcp.McpError as exc:
            return False, exc.as_dict()


def plan(reader, resource, params):
    """A server's report before any MCP request: its workload, pods, port, path and Service."""
    kind, meta, spec = resource["kind"], resource["metadata"], resource.get("spec") or {}
    storage = dict(spec.get("sessionStorage") or {})
    storage.pop("passwordRef", None)
    service, port, path, skipped = endpoint_of(resource)
    server = {"kind": kind, "name": meta["name"], "namespace": meta["namespace"], "ok": False,
              "session_storage": storage or None, "session_affinity": spec.get("sessionAffinity") or "ClientIP", "timeout": params["timeout"],
              "max_response_bytes": params["max_response_bytes"], "path": path, "port": port, "desired": None,
              "workload": None, "service": {"name": service, "port": port}, "replicas": [], "session": {},
              "skipped": None}
    if skipped:
        server["skipped"] = "%s %s: %s" % (kind, meta["name"], skipped)
        server["ok"] = True
        return server
    workload = find_workload(reader, kind, meta["name"], meta["namespace"], kinds.roles_of(kind)[0])
    server["workload"] = "%s/%s" % (workload.kind, workload.name)
    if not workload.exists:
        server["skipped"] = ("its %s does not exist (yet): the operator has not created it — toolhive.k8s.status "
                             "shows its conditions." % server["workload"])
        return server
    server["desired"] = workload.spec_replicas
    # Sessions may exist since the workload does: its pods may be replaced, and their containers restart.
    server["serving_since"] = ((workload.obj or {}).get("metadata") or {}).get("creationTimestamp")
    if server["desired"] == 0:  # scaled to 0 on purpose: no replica ought to answer, and none is missing
        server.update(ok=True, skipped="scaled to 0", scaled_to_zero=True)
        return server
    server["port"] = pod_port(workload, kind, port)
    for pod in pods_of(reader, workload):
        replica = {"pod": pod["pod"], "ready": pod["ready"], "running": pod["running"], "checked": False,
                   "reason": pod["reason"], "answered": None, "session_served": None}
        if params["check_mode"] and pod["running"]:
            replica["reason"] = "check mode: no MCP request sent"
        server["replicas"].append(replica)
    return server


def check(client, servers, params):
    """Every MCP exchange, in three rounds over a pool of PARALLEL: each replica and each Service; the session
    opened on the first replica that answered used on every other; the kept sessions closed."""
    run = Check(client, params)
    jobs, sessions = [], {}
    for index, server in enumerate(servers):
        if server["skipped"]:
            continue
        namespace = server["namespace"]
        jobs.append(("service", index, None, service_path(namespace, server["service"]["name"],
                                                          server["service"]["port"], server["path"])))
        for replica in server["replicas"]:
            if replica["running"]:
                jobs.append(("pod", index, replica, pod_path(namespace, replica["pod"], server["port"], server["path"])))
    with ThreadPoolExecutor(max_workers=params["parallel"]) as pool:
        def first_round(job):
            what, index, replica, path = job
            result, session_id = run.probe(path, keep_session=what == "pod" and run.sessions)
            return job, result, session_id

        for (what, index, replica, path), result, session_id in pool.map(first_round, jobs):
            server = servers[index]
            if what == "service":
                server["service"].update(answered=result["answered"], tools=result["tools"],
                                         latency_ms=result["latency_ms"], error=result["error"])
                continue
            replica.update(result)
            if session_id:
                sessions.setdefault(index, []).append((replica, path, session_id))
        second = []
        for index, server in enumerate(servers):
            if server["skipped"] or not run.sessions:
                continue
            opened = sessions.get(index) or []
            checked = [r for r in server["replicas"] if r["checked"]]
            if len(checked) < 2:
                server["session"] = {"reason": "not checked: one replica"}
                continue
            if not opened or not opened[0][2]:
                server["session"] = {"reason": "not checked: no replica opened a session"}
                continue
            opener, _path, session_id = opened[0]
            server["session"] = {"opened_on": opener["pod"]}
            for replica in checked:
                if replica is opener or not replica["answered"]:
                    continue
                second.append((replica, pod_path(server["namespace"], replica["pod"], server["port"], server["path"]),
                               session_id))

        def second_round(job):
            replica, path, session_id = job
            return replica, run.use_session(path, session_id)

        for replica, (served, error) in pool.map(second_round, second):
            replica.update(session_served=served, session_error=error)
        kept = [(path, session_id) for opened in sessions.values() for _r, path, session_id in opened]
        list(pool.map(lambda kept_session: run.endpoint(kept_session[0]).close(kept_session[1]), kept))


def verdict(server, accept_lost_sessions=False):
    """Whether the server passes; ACCEPT_LOST_SESSIONS: a server without session storage whose other replicas do
    not know a session still passes (mcp_findings.tagged_findings reports it as accepted)."""
    if server["skipped"]:
        return server["ok"]
    replicas = [r for r in server["replicas"] if r["checked"]]
    if not replicas or (server["desired"] is not None and len(replicas) < server["desired"]):
        return False
    if server["service"].get("error") and not (accept_lost_sessions
                                               and mcp_findings.lost_in_service(server, server["service"])):
        return False
    for replica in replicas:
        if not replica["answered"]:
            return False
        if replica.get("session_served") is False and not accept_lost_sessions:
            return False
        if any(not call["ok"] for call in replica.get("calls") or []):
            return False
    return True


def one_round(client, params):
    reader = ReadCache(client)
    wanted_kinds = [params["kind"]] if params["kind"] else list(KINDS)
    resources = [r for kind in wanted_kinds for r in fetch(reader, kind, params)]
    if params["name"] and not resources:
        raise K8sError("no VirtualMCPServer, MCPServer or MCPRemoteProxy %s/%s: check the name and the namespace"
                       % (params["namespace"], params["name"]), status=404)
    servers = [plan(reader, resource, params) for resource in resources]
    if not params["check_mode"]:
        check(client, servers, params)
    for server in servers:
        accept = params["allow_without_session_storage"] and not mcp_findings.storage_words(server)
        tagged = [] if params["check_mode"] else mcp_findings.tagged_findings(server)
        server["ok"] = False if params["check_mode"] else verdict(server, accept)
        server["check_mode"] = params["check_mode"]
        server["findings"] = [sentence for sentence, lost in tagged if not (accept and lost)]
        server["accepted"] = [sentence for sentence, lost in tagged if accept and lost]
        # Read now, not from the round's cache: a Redis that came up while the round ran (which it can pass) was
        # not running yet when the round first listed the pods (seen in CI: no loss reported).
        server["sessions_lost"] = None if params["check_mode"] else sessions_lost_at(client, server)
        server["summary"] = mcp_findings.summary(server)
    return servers


def run(module, client):
    params = dict(module.params, check_mode=module.check_mode)
    if not 1 <= params["parallel"] <= 32:
        module.fail_json(msg="parallel = %s is not between 1 and 32" % params["parallel"])
    if params["timeout"] <= 0 or params["max_response_bytes"] < 1024:
        module.fail_json(msg="timeout must be above 0 and max_response_bytes at least 1024")
    # One kept-alive connection per worker: the pool's default (4) would open and drop one per extra request.
    client.pool.connection_pool_kw["maxsize"] = max(4, params["parallel"])
    deadline = time.monotonic() + params["wait_timeout"]
    rounds = 0
    while True:
        rounds += 1
        servers = one_round(client, params)
        ok = bool(servers) and all(s["ok"] for s in servers) and not params["check_mode"]
        unreachable = None if params["check_mode"] else mcp_findings.could_not_run(servers)
        if ok or unreachable or params["check_mode"] or time.monotonic() + 2 > deadline:
            break
        time.sleep(2)
    if unreachable:  # not the servers' fault, and no retry changes it: said once, not as every pod's finding
        module.warn(unreachable)
        for server in servers:
            server.update(findings=[], summary="could not run (the API server cannot reach the pods)")
    findings = ["%s %s/%s: %s" % (s["kind"], s["namespace"], s["name"], f) for s in servers for f in s["findings"]]
    accepted = ["%s %s/%s: %s" % (s["kind"], s["namespace"], s["name"], f) for s in servers for f in s["accepted"]]
    for warning in accepted:
        module.warn("accepted (allow_without_session_storage): " + warning)
    for redis, at in sorted({(s["sessions_lost"]["redis"], s["sessions_lost"]["at"]) for s in servers
                             if s.get("sessions_lost")}):
        module.warn("Redis %s restarted at %s, after the servers it serves had started (%s), and keeps no data: every "
                    "session opened before then was lost (its clients get 404 'Session terminated' and must "
                    "initialize again). Sessions opened since are served; redis_persistence keeps them across a "
                    "restart" % (redis, at, ", ".join("%s %s" % (s["kind"], s["name"]) for s in servers
                                                      if (s.get("sessions_lost") or {}).get("redis") == redis)))
    for server in servers:
        for field in ("timeout", "max_response_bytes", "check_mode"):
            server.pop(field, None)
    result = dict(changed=False, ok=ok, servers=servers, findings=findings, accepted=accepted, rounds=rounds,
                  could_not_run=unreachable, msg=unreachable or message(servers, findings, ok, params["check_mode"]))
    return result


def message(servers, findings, ok, check_mode):
    """One message a failed task shows as it is: the findings themselves, never an empty "Unknown error"."""
    if check_mode:
        return "check mode: no MCP request sent; %d pod(s) of %d server(s) would be checked" % (
            sum(1 for s in servers for r in s["replicas"] if r["running"]), len(servers))
    if ok:
        return "MCP check OK: %s" % "; ".join("%s %s: %s" % (s["kind"], s["name"], s["summary"]) for s in servers)
    if not servers:
        return "MCP check NOT OK: no server found to check"
    return "MCP check NOT OK, %d finding(s):\n- %s" % (len(findings), "\n- ".join(
        findings or ["%s %s: %s" % (s["kind"], s["name"], s["summary"]) for s in servers if not s["ok"]]))


def main():
    argument_spec = dict(
        kind=dict(type="str", choices=list(KINDS)),
        namespace=dict(type="str", required=True),
        api_version=dict(type="str", default="v1beta1", choices=["v1beta1", "v1alpha1"]),
        name=dict(type="str"),
        names=dict(type="list", elements="str"),
        label_selector=dict(type="str"),
        sessions=dict(type="bool", default=True),
        call_tools=dict(type="list", elements="dict", default=[], options=dict(
            name=dict(type="str", required=True),
            arguments=dict(type="dict", default={}),
        )),
        timeout=dict(type="float", default=5.0),
        max_response_bytes=dict(type="int", default=1048576),
        parallel=dict(type="int", default=8),
        wait_timeout=dict(type="int", default=0),
        allow_without_session_storage=dict(type="bool", default=False),
    )
    run_module(argument_spec, run, mutually_exclusive=[("name", "names", "label_selector")])


if __name__ == "__main__":
    main()

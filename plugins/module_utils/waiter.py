# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Waiting until workloads are ready: one readiness predicate per kind, and a wait that watches.

A wait lists each (kind, namespace) once and then watches it: it ends the moment the last object is
ready, where polling would find it up to a period late, and it costs one request per collection.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.toolhive.k8s.plugins.module_utils import kinds
from ansible_collections.toolhive.k8s.plugins.module_utils.errors import K8sError


def _rolled_out(obj):
    """Counts of a Deployment or StatefulSet whose controller has seen its spec: every pod up to date and ready."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    wanted = spec.get("replicas", 1)
    if status.get("observedGeneration", 0) < (obj.get("metadata") or {}).get("generation", 0):
        return False
    return (status.get("updatedReplicas", 0) == wanted and status.get("readyReplicas", 0) == wanted
            and status.get("replicas", 0) == wanted)


def deployment_ready(obj):
    return _rolled_out(obj) and (obj.get("status") or {}).get("availableReplicas", 0) >= (obj.get("spec") or {}).get(
        "replicas", 1)


def statefulset_ready(obj):
    status = obj.get("status") or {}
    same_revision = not status.get("updateRevision") or status.get("currentRevision") == status.get("updateRevision")
    return _rolled_out(obj) and (same_revision or (obj.get("spec") or {}).get("replicas", 1) == 0)


READY = {"Deployment": deployment_ready, "StatefulSet": statefulset_ready}


def describe(obj):
    status = (obj or {}).get("status") or {}
    counts = ((obj or {}).get("spec", {}).get("replicas"), status.get("replicas", 0), status.get("readyReplicas", 0),
              status.get("updatedReplicas", 0))
    return "spec %s, current %s, ready %s, updated %s" % counts


# Answers worth asking again: throttling (429) and server failures (an apiserver restarting behind a load
# balancer answers 502/503/504). No answer at all (status None) counts too.
TRANSIENT = (429, 500, 502, 503, 504)
OUTAGE = 15  # seconds of transient failures in a row a wait or a read waits out


def transient(exc):
    return exc.status is None or exc.status in TRANSIENT


class Outage:
    """The one outage rule of every wait and of status: a transient failure (no answer, 429, 5xx) is asked again
    once a second, for up to BOUND seconds in a row and never past the deadline; then the task fails, saying what
    it was waiting for and what it saw. Any other failure is raised at once."""

    def __init__(self, bound=OUTAGE):
        self.bound, self.since, self.seen = bound, None, []

    def answered(self):
        self.since, self.seen = None, []

    def absorb(self, exc, deadline, what):
        """Sleep a second and return when EXC may be waited out; raise K8sError otherwise. DEADLINE None: only the
        bound limits the wait (a read that waits for nothing else)."""
        if not transient(exc):
            raise exc
        now = time.time()
        self.since = self.since or now
        seen = "no answer" if exc.status is None else "HTTP %d" % exc.status
        if seen not in self.seen:
            self.seen.append(seen)
        if now - self.since >= self.bound or (deadline is not None and now >= deadline):
            raise K8sError("lost the API server while waiting for %s: %s for %.0fs in a row (last: %s)"
                           % (what, ", ".join(self.seen), now - self.since, exc), status=exc.status)
        time.sleep(1)

    def read(self, request, deadline, what):
        """request()'s answer, transient failures waited out (absorb): the one loop of every read that retries."""
        while True:
            try:
                answer = request()
            except K8sError as exc:
                self.absorb(exc, deadline, what)
                continue
            self.answered()
            return answer


def wait_ready(client, wanted, timeout, outage=OUTAGE):
    """Wait until every object in wanted [(kind, namespace, name)] is ready (READY[kind]).

    Transient failures are waited out (Outage). Raises K8sError naming what is not ready, with its counts, on
    timeout or a longer outage.
    """
    deadline = time.time() + timeout
    by_collection = {}
    for kind, namespace, name in wanted:
        by_collection.setdefault((kind, namespace), set()).add(name)
    for (kind, namespace), names in sorted(by_collection.items()):
        prefix, plural = kinds.API[kind][:2]
        path = "%s/namespaces/%s/%s" % (prefix, namespace, plural)
        seen, failures = {}, Outage(outage)
        while True:
            try:
                listed = client.get(path)
                failures.answered()
                seen.update({i["metadata"]["name"]: i for i in listed.get("items", []) if i["metadata"]["name"] in names})
                if all(n in seen and READY[kind](seen[n]) for n in names):
                    break
                if time.time() >= deadline:
                    break
                for event, obj in client.watch(path, listed["metadata"]["resourceVersion"], deadline - time.time()):
                    name = (obj.get("metadata") or {}).get("name")
                    if name in names and event in ("ADDED", "MODIFIED"):
                        seen[name] = obj
                    if all(n in seen and READY[kind](seen[n]) for n in names):
                        break
                else:
                    continue  # the server ended the watch: list again
                break
            except K8sError as exc:
                if exc.status == 410:  # the list's version is too old to watch from: list again
                    continue
                failures.absorb(exc, deadline, "%s in %s to be ready" % (kind, namespace))
        waiting = sorted(n for n in names if not (n in seen and READY[kind](seen[n])))
        if waiting:
            states = ["%s/%s (%s)" % (namespace, n, describe(seen[n]) if n in seen else "not created") for n in waiting]
            raise K8sError("timed out after %ss waiting for %s to be ready: %s" % (timeout, kind, "; ".join(states)))

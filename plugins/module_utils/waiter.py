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


def job_ready(obj):
    """A Job is done when one of its pods ran to success (its failure is STUCK: job_failures)."""
    return (obj.get("status") or {}).get("succeeded", 0) >= 1


READY = {"Deployment": deployment_ready, "StatefulSet": statefulset_ready, "Job": job_ready}

# Waiting reasons a pod leaves only when its spec or what it refers to changes: the kubelet keeps retrying, so a wait
# for it ends at once, naming the pod and the reason, instead of at its timeout with replica counts. A pod Pending
# on scheduling is not among them (a cluster autoscaler may add the node it needs): a timeout names its message.
# (ErrImagePull is not: a registry that failed once may answer the retry; ImagePullBackOff follows within seconds.)
STUCK = ("ImagePullBackOff", "InvalidImageName", "CrashLoopBackOff", "CreateContainerConfigError", "ErrImageNeverPull")
# What a failure on a STUCK pod tells the user to do, wherever the wait is.
STUCK_FIX = ("Fix the cause (the image's name and tag, the registry's credentials, the container's command or "
             "configuration) and run again")
CHECK_PODS_EVERY = 10  # seconds: a pod's state changes nothing on its workload, so the wait looks at the pods too
# The Deployment controller numbers its ReplicaSets: the one of the current template carries the Deployment's own
# revision (a rollback to an earlier template renumbers that template's ReplicaSet). Its Progressing condition may
# still name another ReplicaSet: the controller keeps the message while the condition's reason stays the same.
REVISION = "deployment.kubernetes.io/revision"


def current_pods_selector(kind, obj, replica_sets=()):
    """The label selector of OBJ's pods at its current template (a rollout's new pods, not the old ones it
    replaces), or None while the controller has not observed the object's generation or named its revision.
    For a Deployment, REPLICA_SETS are those its selector matches."""
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    labels = ["%s=%s" % item for item in sorted(((spec.get("selector") or {}).get("matchLabels") or {}).items())]
    if kind == "Job":  # its template never changes: every pod it made is current (its selector names its uid)
        return ",".join(labels)
    if status.get("observedGeneration", 0) < meta.get("generation", 0):
        return None
    if kind == "StatefulSet":
        revision = status.get("updateRevision")
        return ",".join(labels + ["controller-revision-hash=" + revision]) if revision else None
    revision = (meta.get("annotations") or {}).get(REVISION)
    current = [rs for rs in replica_sets
               if any(owner.get("uid") == meta.get("uid") for owner in rs["metadata"].get("ownerReferences") or [])
               and (rs["metadata"].get("annotations") or {}).get(REVISION) == revision]
    template_hash = (current[0]["metadata"].get("labels") or {}).get("pod-template-hash") if revision and current else None
    return ",".join(labels + ["pod-template-hash=" + template_hash]) if template_hash else None


def current_pods(client, kind, obj):
    """OBJ's pods at its current template (current_pods_selector), or None while they cannot be told."""
    namespace, match = obj["metadata"]["namespace"], ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    replica_sets = []
    if kind == "Deployment":
        replica_sets = client.get(kinds.path("ReplicaSet", namespace), labelSelector=",".join(
            "%s=%s" % item for item in sorted(match.items()))).get("items", [])
    selector = current_pods_selector(kind, obj, replica_sets)
    if selector is None:
        return None
    return client.get(kinds.path("Pod", namespace), labelSelector=selector).get("items", [])


def job_failures(pods):
    """One sentence per pod of a Job that failed (its pods never restart), with what its container said last."""
    failed = []
    for pod in pods:
        if (pod.get("status") or {}).get("phase") != "Failed":
            continue
        for container in pod["status"].get("containerStatuses") or []:
            ended = (container.get("state") or {}).get("terminated") or {}
            failed.append("pod %s, container %s: %s (exit code %s)%s" % (
                pod["metadata"]["name"], container.get("name"), ended.get("reason", "failed"), ended.get("exitCode"),
                (": " + ended["message"].strip()[:500]) if (ended.get("message") or "").strip() else ""))
        if not pod["status"].get("containerStatuses"):
            why = pod["status"].get("message") or pod["status"].get("reason") or "no reason given"
            failed.append("pod %s failed: %s" % (pod["metadata"]["name"], why))
    return failed


def pod_troubles(pods):
    """(stuck, other): one sentence per container waiting for a reason (STUCK or another) and per pod the scheduler
    could not place, each with the kubelet's or the scheduler's message."""
    stuck, other = [], []
    for pod in pods:
        name, status = pod["metadata"]["name"], pod.get("status") or {}
        if (pod["metadata"]).get("deletionTimestamp"):
            continue
        for container in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
            waiting = (container.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason")
            if reason and reason not in ("ContainerCreating", "PodInitializing"):
                sentence = "pod %s, container %s: %s%s" % (name, container.get("name"), reason, (
                    ": " + waiting["message"][:300]) if waiting.get("message") else "")
                # Why it last stopped, in its own words (its termination message): a crash loop's cause.
                said = (((container.get("lastState") or {}).get("terminated") or {}).get("message") or "").strip()
                if said:
                    sentence += " (it said: %s)" % said[:500]
                (stuck if reason in STUCK else other).append(sentence)
        for condition in status.get("conditions") or []:
            if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
                other.append("pod %s is not scheduled: %s" % (name, (condition.get("message")
                                                                     or condition.get("reason") or "")[:300]))
    return stuck, other


def current_pod_troubles(client, kind, obj, probes=False):
    """pod_troubles of OBJ's current pods; nothing while they cannot be told from a rollout's old ones. With PROBES,
    also why a running pod is not ready (failing_probes)."""
    pods = current_pods(client, kind, obj)
    if pods is None:
        return [], []
    stuck, other = pod_troubles(pods)
    if kind == "Job":
        stuck = job_failures(pods) + stuck
    return stuck, other + (failing_probes(client, obj["metadata"]["namespace"], pods) if probes else [])


def pod_ready(pod):
    """The pod's own Ready condition: what puts it behind its Services."""
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def failing_probes(client, namespace, pods):
    """One sentence per running pod of PODS that is not ready, with what its readiness probe last said (the
    kubelet's Unhealthy event; a probe may print why, as the Redis pods' do in Sentinel mode)."""
    unready = set(pod["metadata"]["name"] for pod in pods
                  if (pod.get("status") or {}).get("phase") == "Running" and not pod_ready(pod))
    if not unready:
        return []
    events = client.get(kinds.path("Event", namespace), fieldSelector="reason=Unhealthy").get("items", [])
    said = {}
    for event in sorted(events, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or ""):
        name = (event.get("involvedObject") or {}).get("name")
        if name in unready:
            said[name] = (event.get("message") or "").strip()
    return ["pod %s is not ready: %s" % (name, said.get(name, "no probe failure reported")[:300]) for name in sorted(unready)]


def stuck_on_an_earlier_revision(client, kind, obj):
    """The pods of a StatefulSet that wait for a STUCK reason on a revision other than its current one: a fixed
    template does not replace them (the controller waits for a pod to be Ready before it updates it), so they stay
    broken until deleted - the forced rollback Kubernetes documents. A Deployment replaces its own."""
    status = (obj.get("status") or {})
    revision = status.get("updateRevision")
    if kind != "StatefulSet" or not revision:
        return []
    match = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    labels = ",".join("%s=%s" % item for item in sorted(match.items()))
    pods = client.get(kinds.path("Pod", obj["metadata"]["namespace"]), labelSelector=labels).get("items", [])
    return [pod for pod in pods
            if (pod["metadata"].get("labels") or {}).get("controller-revision-hash") not in (None, revision)
            and pod_troubles([pod])[0]]


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


def wait_ready(client, wanted, timeout, outage=OUTAGE, replicas=None):
    """Wait until every object in wanted [(kind, namespace, name)] is ready (READY[kind]) and, with REPLICAS, asks
    for that many (its controller may set spec.replicas after the call: an operator, from its resource's spec).

    The one wait of the collection: apply, scale, rollout_restart and the deploy's waits use it. Transient failures
    are waited out (Outage). Raises K8sError naming what is not ready, with its counts and what its current pods
    wait for, on timeout or a longer outage; at once when a current pod is STUCK.
    """
    def ready(kind, obj):
        return READY[kind](obj) and (replicas is None or (obj.get("spec") or {}).get("replicas") == replicas)

    deadline = time.time() + timeout
    by_collection = {}
    for kind, namespace, name in wanted:
        by_collection.setdefault((kind, namespace), set()).add(name)
    for (kind, namespace), names in sorted(by_collection.items()):
        path = kinds.path(kind, namespace)
        seen, failures = {}, Outage(outage)
        what = ("%s %s/%s to run %d ready replicas" % (kind, namespace, sorted(names)[0], replicas)
                if replicas is not None and len(names) == 1 else "%s in %s to be ready" % (kind, namespace))
        while True:
            try:
                listed = client.get(path)
                failures.answered()
                seen.update({i["metadata"]["name"]: i for i in listed.get("items", []) if i["metadata"]["name"] in names})
                if all(n in seen and ready(kind, seen[n]) for n in names):
                    break
                raise_if_stuck(client, kind, [seen[n] for n in sorted(names) if n in seen and not ready(kind, seen[n])])
                if time.time() >= deadline:
                    break
                for event, obj in client.watch(path, listed["metadata"]["resourceVersion"],
                                               min(deadline - time.time(), CHECK_PODS_EVERY)):
                    name = (obj.get("metadata") or {}).get("name")
                    if name in names and event in ("ADDED", "MODIFIED"):
                        seen[name] = obj
                    if all(n in seen and ready(kind, seen[n]) for n in names):
                        break
                else:
                    continue  # the server ended the watch: list again
                break
            except K8sError as exc:
                if isinstance(exc, Stuck):
                    raise
                if exc.status == 410:  # the list's version is too old to watch from: list again
                    continue
                failures.absorb(exc, deadline, what)
        waiting = sorted(n for n in names if not (n in seen and ready(kind, seen[n])))
        if waiting:
            states = []
            for name in waiting:
                troubles = sum(current_pod_troubles(client, kind, seen[name], probes=True), []) if name in seen else []
                states.append("%s/%s (%s)%s" % (namespace, name, describe(seen[name]) if name in seen else "not created",
                                                (": " + "; ".join(troubles)) if troubles else ""))
            raise K8sError("timed out after %ss waiting for %s: %s" % (timeout, (
                "%s to run %d ready replicas" % (kind, replicas) if replicas is not None else "%s to be ready" % kind),
                "; ".join(states)))


class Stuck(K8sError):
    """A workload whose current pods cannot start: no wait ends it, and it is never waited out as an outage."""


def raise_if_stuck(client, kind, objects):
    """Stuck at once when a current pod of one of OBJECTS waits for a STUCK reason."""
    for obj in objects:
        stuck, _other = current_pod_troubles(client, kind, obj)
        if stuck:
            raise Stuck("%s %s/%s cannot become ready: %s. %s"
                        % (kind, obj["metadata"]["namespace"], obj["metadata"]["name"], "; ".join(stuck), STUCK_FIX))


def poll_until(what, probe, deadline, interval=0.5):
    """probe()'s first true answer, asked every INTERVAL seconds until DEADLINE; transient failures are waited out (the
    outage rule of every wait), a pod that cannot start (Stuck) ends it at once."""
    failures = Outage()
    while True:
        try:
            answer = probe()
        except Stuck:
            raise
        except K8sError as exc:
            failures.absorb(exc, deadline, what)
            continue
        failures.answered()
        if answer:
            return answer
        if time.time() >= deadline:
            raise K8sError("timed out waiting for %s" % what)
        time.sleep(interval)

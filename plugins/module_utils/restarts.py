# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""New pods for the workloads that read a Secret (toolhive.k8s.rollout_restart), or for the servers' pods on a
node (toolhive.k8s.drain_node), one pod at a time, without a failed request; and the pods a scale-down removes
(toolhive.k8s.scale) ended the same way (release_surplus).

A Deployment's pod is replaced in four steps, so that it never ends while a client may still be sent to it:
1. it leaves its ReplicaSet (its `pod-template-hash` label changed), which makes a replacement at once from the same
   template (a new pod reads the Secret anew), while the pod itself still serves behind its Services;
2. the replacement is ready;
3. it leaves its Services (one selector label removed), and the wait lasts until no EndpointSlice lists it and the
   nodes have had time to stop sending to it;
4. it is deleted, and ends its own way (its grace period).
A rolling update deletes the old pod at once instead: clients inside the cluster that were still sent to it got
"connection refused" (measured on running pods, docs/redis.md). The template is not touched, so no operator
reverts anything. A StatefulSet's pods cannot be doubled: each is deleted in turn, and its replacement waited for
until it is ready behind its Services.
What no step here prevents: a client that keeps a connection open to the pod (a ToolHive proxy in front of another)
sends its next request on it, and the request fails if the pod closes that connection as it ends.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import datetime
import time

from ansible_collections.toolhive.k8s.plugins.module_utils import kinds, waiter

WORKLOAD_KINDS = ("Deployment", "StatefulSet")
# The argument spec of a list entry that names one of them (password_secret's used_by, rollout_restart's skip).
WORKLOAD_OPTIONS = dict(kind=dict(type="str", required=True, choices=list(WORKLOAD_KINDS)),
                        name=dict(type="str", required=True))
DRAINING = "toolhive.k8s/draining"  # on a pod taken out of its ReplicaSet and Services, until it is deleted
TEMPLATE_HASH = "pod-template-hash"  # in a ReplicaSet's selector, never in a Service's
# Labels a pod keeps while it drains, though a Service selects on them: the Redis NetworkPolicy admits pods
# labelled toolhive=true, and a draining pod still serves requests that need Redis.
KEPT_LABELS = ("toolhive", "app", "app.kubernetes.io/name")
NODES_CATCH_UP = 3  # seconds after the EndpointSlices drop a pod, for every node's proxy rules to follow


def secret_refs(pod_spec):
    """Names of the Secrets a pod spec reads: env, envFrom and volumes, of every container."""
    containers = (pod_spec.get("containers") or []) + (pod_spec.get("initContainers") or [])
    refs = [((e.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name")
            for c in containers for e in c.get("env") or []]
    refs += [(e.get("secretRef") or {}).get("name") for c in containers for e in c.get("envFrom") or []]
    refs += [(v.get("secret") or {}).get("secretName") for v in pod_spec.get("volumes") or []]
    return {ref for ref in refs if ref}


def readers(client, namespace, secret):
    """[(kind, object)]: the Deployments and StatefulSets of NAMESPACE whose pods read SECRET."""
    found = []
    for kind in WORKLOAD_KINDS:
        for item in client.get(kinds.path(kind, namespace)).get("items", []):
            pod_spec = ((item.get("spec") or {}).get("template") or {}).get("spec") or {}
            if secret in secret_refs(pod_spec):
                found.append((kind, item))
    return found


def selector_of(obj):
    return ",".join("%s=%s" % pair for pair in sorted(obj["spec"]["selector"]["matchLabels"].items()))


def live_pods(client, namespace, selector):
    return [pod for pod in client.get(kinds.path("Pod", namespace), labelSelector=selector).get("items", [])
            if not pod["metadata"].get("deletionTimestamp")]


def service_labels(services, labels):
    """One label per Service that selects a pod of LABELS whose removal makes it select the pod no longer, none of
    KEPT_LABELS; None when a Service selects only on KEPT_LABELS (the pod cannot leave it)."""
    remove = set()
    for service in services:
        if not selects(service, labels):
            continue
        selector = service["spec"]["selector"]
        if remove & set(selector):
            continue
        candidates = sorted(key for key in selector if key not in KEPT_LABELS)
        if not candidates:
            return None
        remove.add(candidates[0])
    return sorted(remove)


def selects(service, labels):
    """Whether SERVICE selects a pod of LABELS; one without a selector selects none (its endpoints are kept by hand)."""
    selector = (service.get("spec") or {}).get("selector") or {}
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def listed_by_endpoints(client, namespace, uid, ready=False):
    """Whether an EndpointSlice of NAMESPACE lists the pod of UID (with READY, as ready: an absent condition is)."""
    slices = client.get(kinds.path("EndpointSlice", namespace)).get("items", [])
    return any((endpoint.get("targetRef") or {}).get("uid") == uid
               and (not ready or (endpoint.get("conditions") or {}).get("ready", True) is not False)
               for item in slices for endpoint in item.get("endpoints") or [])


def replacements_ready(client, deployment, wanted):
    """True when WANTED pods of DEPLOYMENT's ReplicaSets are ready; raises waiter.Stuck when one cannot start."""
    owned = [p for p in live_pods(client, deployment["metadata"]["namespace"], selector_of(deployment))
             if p["metadata"].get("ownerReferences")]
    fail_if_stuck("Deployment", deployment, [p for p in owned if not waiter.pod_ready(p)])
    return sum(1 for p in owned if waiter.pod_ready(p)) >= wanted


def fail_if_stuck(kind, workload, pods):
    """Raises waiter.Stuck, naming each pod and its reason, when one of PODS (of WORKLOAD, a KIND) cannot start."""
    stuck, _other = waiter.pod_troubles(pods)
    if stuck:
        raise waiter.Stuck("%s %s/%s cannot become ready: %s. %s" % (
            kind, workload["metadata"]["namespace"], workload["metadata"]["name"], "; ".join(stuck), waiter.STUCK_FIX))


def release(client, pod, deadline):
    """Step 1: POD out of its ReplicaSet (which makes a replacement), still serving behind its Services."""
    namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
    pod_path = kinds.path("Pod", namespace, name)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    client.patch(pod_path, {"metadata": {"labels": {TEMPLATE_HASH: "draining"}, "annotations": {DRAINING: now}}})
    waiter.poll_until("ReplicaSet to release pod %s/%s" % (namespace, name),
                      lambda: not (client.get(pod_path)["metadata"].get("ownerReferences")), deadline)


def drain_and_replace(client, deployment, pod, deadline):
    """The four steps of the module docstring for POD of DEPLOYMENT."""
    namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
    pod_path = kinds.path("Pod", namespace, name)
    wanted = (deployment.get("spec") or {}).get("replicas", 1)
    release(client, pod, deadline)
    waiter.poll_until("a ready replacement of pod %s/%s" % (namespace, name),
                      lambda: replacements_ready(client, deployment, wanted), deadline)
    waiter.wait_ready(client, [("Deployment", namespace, deployment["metadata"]["name"])], max(1, deadline - time.time()))
    finish_draining(client, client.get(pod_path), deadline)


def finish_draining(client, pod, deadline):
    """Steps 3 and 4: POD out of its Services, then deleted."""
    namespace, name, uid = pod["metadata"]["namespace"], pod["metadata"]["name"], pod["metadata"]["uid"]
    pod_path = kinds.path("Pod", namespace, name)
    services = client.get(kinds.path("Service", namespace)).get("items", [])
    labels = service_labels(services, pod["metadata"].get("labels") or {})
    if labels:  # behind a Service: out of it, and sent nothing new once every node has caught up
        client.patch(pod_path, {"metadata": {"labels": dict.fromkeys(labels)}})  # null removes a label
        waiter.poll_until("pod %s/%s to leave the EndpointSlices" % (namespace, name),
                          lambda: not listed_by_endpoints(client, namespace, uid), deadline)
        time.sleep(NODES_CATCH_UP)
    client.delete(pod_path, preconditions={"uid": uid})


def delete_in_turn(client, statefulset, pod, deadline):
    """POD of STATEFULSET deleted, and its replacement waited for until it is ready and every node sends to it: the
    StatefulSet's ready count can still hold the deleted pod when its replacement appears, and a next pod deleted
    then leaves a Service with no pod ready (seen: drain_node's second backend, "connection refused" for 2 s)."""
    namespace, name, uid = pod["metadata"]["namespace"], pod["metadata"]["name"], pod["metadata"]["uid"]
    pod_path = kinds.path("Pod", namespace, name)
    client.delete(pod_path, preconditions={"uid": uid})

    def ready_replacement():
        new = client.get_or_none(pod_path)
        if not new or new["metadata"]["uid"] == uid:
            return None
        if waiter.pod_ready(new):
            return new
        fail_if_stuck("StatefulSet", statefulset, [new])
        return None
    new = waiter.poll_until("pod %s/%s to be made again and ready" % (namespace, name), ready_replacement, deadline)
    services = client.get(kinds.path("Service", namespace)).get("items", [])
    if any(selects(service, new["metadata"].get("labels") or {}) for service in services):
        waiter.poll_until("pod %s/%s to be ready in its Services' EndpointSlices" % (namespace, name),
                          lambda: listed_by_endpoints(client, namespace, new["metadata"]["uid"], ready=True), deadline)
        time.sleep(NODES_CATCH_UP)
    waiter.wait_ready(client, [("StatefulSet", namespace, statefulset["metadata"]["name"])],
                      max(1, deadline - time.time()))


def draining(client, deployment):
    """The pods of DEPLOYMENT released (step 1) and not yet deleted."""
    return [pod for pod in live_pods(client, deployment["metadata"]["namespace"], selector_of(deployment))
            if DRAINING in (pod["metadata"].get("annotations") or {})]


def release_surplus(client, deployment, replicas, deadline):
    """Before DEPLOYMENT is scaled down to REPLICAS: as many of its pods as the scale-down removes are released
    (step 1), so that its ReplicaSet removes their replacements, which serve nothing yet, where it would have
    deleted pods its Services still send requests to; finish_draining then ends them. Pods released already (by a
    run that stopped, or before a conflict made the scale be written again) count. Chosen: the pods not ready, then
    those of the node that holds most of them, then the newest (removal_order). Returns the pods released."""
    surplus = (deployment.get("spec") or {}).get("replicas", 1) - replicas - len(draining(client, deployment))
    pods = removal_order([p for p in live_pods(client, deployment["metadata"]["namespace"], selector_of(deployment))
                          if controller(p).get("kind") == "ReplicaSet"])[:max(0, surplus)]
    for pod in pods:
        release(client, pod, deadline)
    return pods


def removal_order(pods):
    """PODS, the first to remove first: those not ready, then those of the node that holds most of them (the
    others stay spread), then the newest."""
    per_node = collections.Counter(p["spec"].get("nodeName") for p in pods)
    ordered = sorted(pods, key=lambda p: p["metadata"]["creationTimestamp"], reverse=True)
    return sorted(ordered, key=lambda p: (waiter.pod_ready(p), -per_node[p["spec"].get("nodeName")]))


def wait_gone(client, pod, deadline):
    """Until POD (that very pod: its uid) no longer exists."""
    path, uid = kinds.path("Pod", pod["metadata"]["namespace"], pod["metadata"]["name"]), pod["metadata"]["uid"]
    waiter.poll_until("pod %s/%s to end" % (pod["metadata"]["namespace"], pod["metadata"]["name"]),
                      lambda: ((client.get_or_none(path) or {}).get("metadata") or {}).get("uid") != uid, deadline)


def leftovers(client, namespace):
    """Pods a run stopped draining half-way (DRAINING): out of their ReplicaSet, maybe still behind a Service; each
    is to be finished (finish_draining), its replacement runs already."""
    return [pod for pod in client.get(kinds.path("Pod", namespace)).get("items", [])
            if DRAINING in (pod["metadata"].get("annotations") or {}) and not pod["metadata"].get("deletionTimestamp")]


def move_pod(client, kind, workload, pod, deadline):
    """POD replaced: a Deployment's drained (the four steps), a StatefulSet's deleted in turn. A pod on a cordoned
    node is so moved off it (toolhive.k8s.drain_node)."""
    (drain_and_replace if kind == "Deployment" else delete_in_turn)(client, workload, pod, deadline)


def replace_pods(client, kind, obj, timeout):
    """Every pod OBJ has now replaced, one at a time (module docstring); returns their names."""
    deadline = time.time() + timeout
    done = []
    for pod in live_pods(client, obj["metadata"]["namespace"], selector_of(obj)):
        move_pod(client, kind, obj, pod, deadline)
        done.append(pod["metadata"]["name"])
    return done


def controller(obj):
    """OBJ's controlling owner reference ({} when none): a pod's ReplicaSet, a workload's ToolHive server."""
    return next((ref for ref in obj["metadata"].get("ownerReferences") or [] if ref.get("controller")), {})


def server_pods_on(client, namespace, node):
    """[(workload kind, workload, pod)]: the pods on NODE of NAMESPACE's ToolHive server workloads (a Deployment or
    StatefulSet whose controller is a kind of kinds.SERVERS), in the order listed."""
    found = []
    for pod in client.get(kinds.path("Pod", namespace), fieldSelector="spec.nodeName=" + node).get("items", []):
        if pod["metadata"].get("deletionTimestamp"):
            continue
        owner = controller(pod)
        if owner.get("kind") == "ReplicaSet":
            replicaset = client.get_or_none(kinds.path("ReplicaSet", namespace, owner["name"])) or {"metadata": {}}
            owner = controller(replicaset)
        if owner.get("kind") not in WORKLOAD_KINDS:
            continue
        workload = client.get_or_none(kinds.path(owner["kind"], namespace, owner["name"]))
        if workload and controller(workload).get("kind") in kinds.SERVERS:
            found.append((owner["kind"], workload, pod))
    return found

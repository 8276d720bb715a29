#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: drain_node
short_description: Move the ToolHive servers' pods off a node without a failed request
version_added: 0.3.0
description:
  - Cordons O(node) (no new pod is placed on it) and moves every pod it runs of a ToolHive server's workload in
    O(namespaces) to the other nodes - the Deployments of VirtualMCPServer gateways, MCPServer proxies and
    MCPRemoteProxies, and MCPServer backend StatefulSets (a workload whose controller is one of those kinds). The
    pods of one workload move one at a time; the workloads move side by side (up to 8 at once), as the
    collection's PodDisruptionBudgets, one pod of each workload at a time, let C(kubectl drain) evict them. The
    Deployments' pods move first, then the StatefulSets', so that no proxy or gateway pod starts while a backend is
    away.
  - "A Deployment's pod moves as M(toolhive.k8s.rollout_restart) replaces one: it leaves its ReplicaSet, which makes a
    replacement on another node while the pod still serves; once the replacement is ready, the pod leaves its
    Services, and once no EndpointSlice lists it (and 3 s later) it is deleted. A StatefulSet's pod is deleted and
    made again on another node, and the next one only once it is ready in its Services' EndpointSlices (and 3 s
    later)."
  - Run it before C(kubectl drain), which then finds none of these pods, and evicts the rest under their
    PodDisruptionBudgets. An eviction stops a pod while clients may still be sent to it. Its drain (a preStop sleep;
    an MCPServer proxy's pod has one only from the C(operator) role's policy) covers that, but a gateway session
    whose backend refused a connection loses that backend's tools (measured in docs/performance.md).
  - A pod a stopped run left draining (annotation C(toolhive.k8s/draining)) is taken out of its Services and
    deleted first. The task returns once every pod it moved has ended. A replacement that cannot start (no other
    node can take it, an image that cannot be pulled) fails the task, naming the pod and its reason, once the
    moves under way have ended; no other move begins after it. The node stays cordoned, the pods not yet moved stay
    on it.
  - Needs C(get) and C(patch) on nodes (cluster-scoped) besides the namespaced rights of
    M(toolhive.k8s.rollout_restart).
author:
  - toolhive.k8s maintainers (@toolhive-k8s)
extends_documentation_fragment:
  - toolhive.k8s.auth
  - toolhive.k8s.attributes.writes
options:
  node:
    description: The node to move the pods off. It stays cordoned (C(kubectl uncordon) puts it back in service).
    type: str
    required: true
  namespaces:
    description: The namespaces whose servers' pods are moved.
    type: list
    elements: str
    required: true
  wait_timeout:
    description: Seconds to wait, in all, for the pods' replacements.
    type: int
    default: 600
attributes:
  diff_mode:
    support: none
    description: Nothing is configured; RV(moved_pods) says which pods moved.
"""

EXAMPLES = r"""
- name: Move the MCP servers off the node before its maintenance
  toolhive.k8s.drain_node:
    node: worker-3
    namespaces: [toolhive]

- name: Then drain the rest of it
  ansible.builtin.command: kubectl drain worker-3 --ignore-daemonsets --delete-emptydir-data --timeout 300s
  changed_when: true
"""

RETURN = r"""
cordoned:
  description: Whether this run cordoned the node (false when it was cordoned already).
  returned: always
  type: bool
moved_pods:
  description: The pods moved (or, in check mode, that would be), in the order their moves ended, as
    C(namespace/name).
  returned: always
  type: list
  elements: str
leftovers:
  description: Pods a stopped run had left draining, taken out of their Services and deleted first.
  returned: always
  type: list
  elements: str
"""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.toolhive.k8s.plugins.module_utils import kinds, restarts
from ansible_collections.toolhive.k8s.plugins.module_utils.client import run_module
from ansible_collections.toolhive.k8s.plugins.module_utils.errors import K8sError, Refused

# Workloads whose pods move at the same time (each workload's own pods move one at a time).
MOVED_AT_ONCE = 8


def by_workload(found):
    """FOUND's [(namespace, (kind, workload, pod))] as one list of (ref, kind, workload, pod) per workload."""
    groups = {}
    for namespace, (kind, workload, pod) in found:
        groups.setdefault((namespace, kind, workload["metadata"]["name"]), []).append(
            ("%s/%s" % (namespace, pod["metadata"]["name"]), kind, workload, pod))
    return list(groups.values())


def move_side_by_side(client, groups, deadline, moved):
    """Each of GROUPS' pods moved, a group's one at a time, the groups side by side; each ref appended to MOVED as
    its move ends. After a move fails no other begins. Returns [(ref, K8sError)] of the moves that failed."""
    failed, lock = [], threading.Lock()

    def move_group(group):
        for ref, kind, workload, pod in group:
            if failed:
                return
            try:
                restarts.move_pod(client, kind, workload, pod, deadline)
            except K8sError as exc:
                with lock:
                    failed.append((ref, exc))
                return
            with lock:
                moved.append(ref)
    if groups:
        with ThreadPoolExecutor(min(MOVED_AT_ONCE, len(groups))) as pool:
            list(pool.map(move_group, groups))  # re-raises what is not a K8sError
    return failed


def run(module, client):
    params = module.params
    node_path = kinds.path("Node", name=params["node"], fields=("namespace", "node"))
    node = client.get(node_path)
    found = [(namespace, item) for namespace in params["namespaces"]
             for item in restarts.server_pods_on(client, namespace, params["node"])]
    left = [pod for namespace in params["namespaces"] for pod in restarts.leftovers(client, namespace)]
    cordon = not (node.get("spec") or {}).get("unschedulable")
    result = dict(changed=bool(cordon or found or left), cordoned=cordon, leftovers=[
        "%s/%s" % (pod["metadata"]["namespace"], pod["metadata"]["name"]) for pod in left], moved_pods=[])
    if module.check_mode:
        result["moved_pods"] = ["%s/%s" % (namespace, pod["metadata"]["name"]) for namespace, (_kind, _workload, pod) in found]
        return result
    if cordon:
        client.patch(node_path, {"spec": {"unschedulable": True}})
    deadline = time.time() + params["wait_timeout"]
    for pod in left:
        restarts.finish_draining(client, pod, deadline)
    # The Deployments' pods first, then the backends': a backend pod is away until it is made again, and a proxy or
    # gateway pod that starts meanwhile opens its sessions with that backend in vain (measured: a gateway session
    # then lost the backend's tools for good).
    groups = by_workload(found)
    for kind in restarts.WORKLOAD_KINDS:
        failed = move_side_by_side(client, [g for g in groups if g[0][1] == kind], deadline, result["moved_pods"])
        if failed:
            break
    if failed:
        ref, exc = failed[0]
        raise Refused("moving pod %s off node %s: %s. The node stays cordoned; %s" % (
            ref, params["node"], exc, ("moved: %s." % ", ".join(result["moved_pods"]))
            if result["moved_pods"] else "no pod was moved."), status=exc.status, **result)
    # A moved pod ends in its grace period (its preStop sleep first): the node holds none of them once this returns,
    # so kubectl drain never meets one (it refuses a pod without a controller, as a drained pod is).
    for pod in [pod for _namespace, (_kind, _workload, pod) in found] + left:
        restarts.wait_gone(client, pod, deadline)
    return result


def main():
    run_module(dict(
        node=dict(type="str", required=True),
        namespaces=dict(type="list", elements="str", required=True),
        wait_timeout=dict(type="int", default=600),
    ), run)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: scale
short_description: Scale a ToolHive MCPServer, VirtualMCPServer or MCPRemoteProxy, like kubectl scale
version_added: 0.1.0
description:
  - Sets the replica count of the workload behind a ToolHive resource (the Deployment of a
    VirtualMCPServer or an MCPRemoteProxy, the proxy Deployment or the backend StatefulSet of an MCPServer).
  - The workload is found from the resource (labels and owner reference), never from a guessed name.
    The public scaling guide's C(kubectl scale deployment vmcp-NAME) names the Service and fails.
  - If the resource sets C(spec.replicas) (or C(spec.backendReplicas) for the backend), the operator owns
    the count, so the resource is patched. Otherwise the workload's scale subresource is patched, as
    C(kubectl scale) does. RV(method) says which.
  - Refuses, before writing anything, more than one replica of a stdio server, an HPA that targets the
    workload (it would undo the change) unless O(force), and more than one replica without Redis
    session storage unless O(allow_without_session_storage). Redis counts when the resource sets it or when
    the operator's global default (C(TOOLHIVE_DEFAULT_REDIS_ADDR) on its Deployment) serves the resource.
  - An MCPServer that sets the replica field is scaled through it, and ToolHive's operator then replaces every
    proxy pod and restarts the backend (it stamps the resource's generation on the proxy's pod template); the
    module warns. Leave the field out of the MCPServer to scale its workloads without restarts.
  - Scaling a Deployment down, the pods it removes leave their Services before they stop, so no client is sent to
    a pod that no longer listens. Each is first taken out of its ReplicaSet, which then removes the replacement
    it made, not a serving pod; once the Deployment runs O(replicas), each leaves its Services and is deleted. This
    needs no preStop hook, which an MCPServer's proxy pod lacks where the C(operator) role's drain policy cannot be
    installed. A StatefulSet (the backend) removes its highest pod as C(kubectl scale) does.
author:
  - toolhive.k8s maintainers (@toolhive-k8s)
extends_documentation_fragment:
  - toolhive.k8s.auth
  - toolhive.k8s.attributes.writes
  - toolhive.k8s.resource
  - toolhive.k8s.resource.replica_limit
attributes:
  diff_mode:
    support: full
    description: Shows the replica count before and after.
options:
  name:
    description: Name of the resource.
    type: str
    required: true
  target:
    description:
      - Which workload of an MCPServer to scale, the proxy Deployment or the backend StatefulSet.
      - Ignored for a VirtualMCPServer or an MCPRemoteProxy (each has one Deployment).
    type: str
    choices: [proxy, backend]
    default: proxy
  replicas:
    description: The replica count wanted.
    type: int
    required: true
  current_replicas:
    description:
      - Precondition, like C(kubectl scale --current-replicas). Scale only if the count is this now;
        otherwise fail without writing.
    type: int
  force:
    description: Scale even though an HPA targets the workload (it will change the count again).
    type: bool
    default: false
  allow_without_session_storage:
    description:
      - Allow more than one replica without Redis session storage. Each replica then keeps its own
        sessions; the module warns instead of failing.
    type: bool
    default: false
  wait:
    description: Wait until the workload runs O(replicas) ready, up-to-date replicas.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait when O(wait) is true. On timeout the task fails with the replica counts
      and the resource's conditions.
    type: int
    default: 120
seealso:
  - module: toolhive.k8s.autoscale
  - module: toolhive.k8s.status
  - module: kubernetes.core.k8s_scale
"""

EXAMPLES = r"""
- name: Scale the vMCP gateway to 3 replicas (its Deployment is "gateway", not "vmcp-gateway")
  toolhive.k8s.scale:
    kind: VirtualMCPServer
    name: gateway
    namespace: toolhive
    replicas: 3

- name: Scale an MCPServer's backend, only if it runs 1 replica now, without waiting
  toolhive.k8s.scale:
    kind: MCPServer
    name: fetch
    namespace: toolhive
    target: backend
    replicas: 2
    current_replicas: 1
    wait: false

- name: Scale while an HPA owns the count (it will take over again)
  toolhive.k8s.scale:
    kind: VirtualMCPServer
    name: gateway
    namespace: toolhive
    replicas: 5
    force: true
"""

RETURN = r"""
method:
  description: C(resource) when the resource's replica field was patched (the operator owns the count),
    C(scale) when the workload's scale subresource was patched, C(none) when nothing had to change.
  returned: always
  type: str
  sample: scale
field:
  description: The replica field of the resource that governs the workload.
  returned: always
  type: str
  sample: replicas
before:
  description: Replica count before the task.
  returned: always
  type: int
  sample: 1
after:
  description: Replica count after the task (wanted).
  returned: always
  type: int
  sample: 3
workload:
  description: The workload scaled and its replica counts after the task (after waiting, if O(wait)).
  returned: always
  type: dict
  sample: {kind: Deployment, name: gateway, role: vmcp, exists: true, spec: 3, current: 3, ready: 3, updated: 3}
ready_replicas:
  description: Ready replicas of the workload after the task.
  returned: always
  type: int
  sample: 3
drained_pods:
  description:
    - The pods a scale-down of a Deployment removed, each taken out of its ReplicaSet and Services before it was
      deleted (also those a run that stopped had left draining).
  returned: always
  type: list
  elements: str
  sample: [gateway-7d9c8b7f6d-x2k4q]
command:
  description: The equivalent kubectl command.
  returned: always
  type: str
  sample: kubectl scale deployment/gateway --namespace toolhive --replicas=3
"""

import json
import time

from ansible_collections.toolhive.k8s.plugins.module_utils import guards, kinds, operator, restarts
from ansible_collections.toolhive.k8s.plugins.module_utils.kinds import role_for_target
from ansible_collections.toolhive.k8s.plugins.module_utils.client import RESOURCE_ARG_SPEC, retry_on_conflict, run_module
from ansible_collections.toolhive.k8s.plugins.module_utils.errors import K8sError, Refused
from ansible_collections.toolhive.k8s.plugins.module_utils.resources import (
    describe_conditions, find_workload, get_resource, hpas_for)
from ansible_collections.toolhive.k8s.plugins.module_utils.waiter import wait_ready


# The way around a scale through an MCPServer's replica fields (guards.SPEC_CHANGE_ROLLS).
RESTARTS_ALL = guards.SPEC_CHANGE_ROLLS + (
    " To scale without restarts, leave %s out of the MCPServer (mcpserver_servers: replicas, backend_replicas) and "
    "scale with this module, which then sets the workload's scale subresource")


def kubectl_command(method, kind, name, namespace, field, replicas, workload, current_replicas):
    if method == "resource":
        patch = json.dumps({"spec": {field: replicas}}, separators=(",", ":"))
        return "kubectl patch %s %s --namespace %s --type merge -p '%s'" % (kind.lower(), name, namespace, patch)
    command = "kubectl scale %s --namespace %s --replicas=%d" % (workload.kubectl_ref(), namespace, replicas)
    if current_replicas is not None:
        command += " --current-replicas=%d" % current_replicas
    return command


def refuse_spec(module, client, params, spec, field):
    """Fail, before any lookup or write, for what the operator would undo."""
    kind, replicas = params["kind"], params["replicas"]
    where = guards.label(kind, params["namespace"], params["name"]) + ": "
    problem = guards.stdio_replica_problem(kind, spec, field, replicas)
    if problem:
        raise Refused(where + "refusing to scale to %d: %s" % (replicas, problem))
    problem = guards.session_storage_problem(kind, spec, field, replicas)
    if problem:  # no Redis in the spec: the operator's global default may still serve the sessions
        problem = guards.session_storage_problem(kind, spec, field, replicas,
                                                 operator.default_redis(operator.deployments(client)))
    if problem:
        if not params["allow_without_session_storage"]:
            raise Refused(where + problem)
        module.warn(where + problem)


def refuse_hpa(module, params, workload, hpas):
    hpa = hpas.get(workload.role)
    if hpa and not params["force"]:
        raise Refused("%s: HPA %s targets %s %s and would undo the change. Fix: change the HPA "
                      "(toolhive.k8s.autoscale), remove it (state: absent), or set force: true"
                      % (guards.label(params["kind"], params["namespace"], params["name"]),
                         hpa["metadata"]["name"], workload.kind, workload.name))


def write_scale(module, client):
    """Read, check and write once; returns (result, workload). The write carries the resourceVersion read, so a
    change made in between is a 409 and the whole decision is taken again (retry_on_conflict)."""
    params = module.params
    kind, name, namespace, replicas = params["kind"], params["name"], params["namespace"], params["replicas"]
    resource = get_resource(client, kind, name, namespace, params["api_version"])
    spec = resource.get("spec") or {}
    field = guards.field_for_target(kind, params["target"])
    refuse_spec(module, client, params, spec, field)
    workload = find_workload(client, kind, name, namespace, role_for_target(kind, params["target"]))
    if not workload.exists:
        raise Refused("%s: the operator has not created its %s %s yet (the backend StatefulSet is created "
                      "by the proxy runner once its pod runs); check toolhive.k8s.status"
                      % (guards.label(kind, namespace, name), workload.role, workload.kind))
    refuse_hpa(module, params, workload, hpas_for(client, namespace, [workload]))

    method = "resource" if spec.get(field) is not None else "scale"
    before = spec[field] if method == "resource" else workload.spec_replicas
    if params["current_replicas"] is not None and before != params["current_replicas"]:
        raise Refused("%s: expected %d current replicas (current_replicas) but found %s; nothing was changed"
                      % (guards.label(kind, namespace, name), params["current_replicas"], before))
    changed = before != replicas
    result = dict(changed=changed, method=method if changed else "none", field=field, before=before, after=replicas,
                  command=kubectl_command(method, kind, name, namespace, field, replicas, workload,
                                          params["current_replicas"]))
    if module._diff:
        result["diff"] = dict(before={field: before}, after={field: replicas},
                              before_header="%s %s" % (workload.kind, workload.name),
                              after_header="%s %s" % (workload.kind, workload.name))
    if changed and not module.check_mode and workload.kind == "Deployment":
        # The pods a scale-down removes leave their Services before they stop (restarts.release_surplus).
        restarts.release_surplus(client, workload.obj, replicas, time.time() + params["wait_timeout"])
    if changed:
        read = resource if method == "resource" else workload.obj
        body = {"metadata": {"resourceVersion": read["metadata"]["resourceVersion"]},
                "spec": {field if method == "resource" else "replicas": replicas}}
        path = kinds.path(kind, namespace, name, api_version=params["api_version"]) if method == "resource" else workload.path("scale")
        client.patch(path, body, dry_run=module.check_mode)
    return result, workload


def wait_for_replicas(client, params, workload, done):
    """The workload runs params' replicas, up to date and ready (waiter.wait_ready); a failure says what stands:
    DONE (the change this task made), and on a timeout the resource's conditions."""
    try:
        wait_ready(client, [(workload.kind, workload.namespace, workload.name)], params["wait_timeout"],
                   replicas=params["replicas"])
    except K8sError as exc:
        if str(exc).startswith("timed out"):
            resource = client.get_or_none(kinds.path(params["kind"], params["namespace"], params["name"], api_version=params["api_version"]))
            raise K8sError("%s. %s%s" % (exc, (done + ". ") if done else "", describe_conditions(resource)),
                           status=exc.status)
        raise K8sError("%s. %s" % (exc, (done + "; that change stands.") if done else ""), status=exc.status)


def run(module, client):
    params = module.params
    result, workload = retry_on_conflict(lambda: write_scale(module, client))
    if result["method"] == "resource" and kinds.SERVERS[params["kind"]]["spec_change_rolls"]:  # once, after any 409
        module.warn(RESTARTS_ALL % (guards.label(params["kind"], params["namespace"], params["name"]),
                                    result["field"], result["field"]))
    if params["wait"] and not module.check_mode:
        wait_for_replicas(client, params, workload, "%s %s was scaled to %d" % (
            workload.kind, workload.name, params["replicas"]) if result["changed"] else None)
    result["drained_pods"] = []
    if not module.check_mode:
        if workload.kind == "Deployment":
            deadline = time.time() + params["wait_timeout"]
            for pod in restarts.draining(client, workload.obj):
                restarts.finish_draining(client, pod, deadline)
                result["drained_pods"].append(pod["metadata"]["name"])
        result["changed"] = result["changed"] or bool(result["drained_pods"])  # pods a stopped run left, ended now
        workload.obj = client.get(workload.path())
    result["workload"] = workload.counts()
    result["ready_replicas"] = result["workload"]["ready"]
    return result


def main():
    argument_spec = dict(
        RESOURCE_ARG_SPEC,
        replica_limit=dict(type="int", default=20),
        name=dict(type="str", required=True),
        target=dict(type="str", choices=["proxy", "backend"], default="proxy"),
        replicas=dict(type="int", required=True),
        current_replicas=dict(type="int"),
        force=dict(type="bool", default=False),
        allow_without_session_storage=dict(type="bool", default=False),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=120),
    )
    run_module(argument_spec, run)


if __name__ == "__main__":
    main()

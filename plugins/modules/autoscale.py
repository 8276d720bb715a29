#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: autoscale
short_description: An autoscaling/v2 HPA for a ToolHive server, like kubectl autoscale but idempotent
version_added: 0.1.0
description:
  - Creates or updates a HorizontalPodAutoscaler aimed at the workload behind a ToolHive resource (the
    Deployment of a VirtualMCPServer or an MCPRemoteProxy, the proxy Deployment or the backend StatefulSet of an
    MCPServer).
  - The HPA is named after the workload, as C(kubectl autoscale) names it; the backend StatefulSet's HPA
    of an MCPServer is named C(NAME-backend), since the proxy Deployment has the same name.
  - A second run with the same options changes nothing (C(kubectl autoscale) fails when the HPA exists).
  - Refuses when the resource sets C(spec.replicas) (C(spec.backendReplicas) for the backend), since the operator
    would reset the count the HPA sets. O(release_replicas=true) removes that field so the operator leaves
    the count to the HPA. Refuses stdio MCPServers (the operator keeps them at 1 replica).
  - Warns when the server has no Redis session storage (its own, or the operator's global default).
  - Warns when a container of the workload's pods has no request (nor limit) for a resource the HPA targets, since
    the HPA could then never compute the utilization, and never scales. The warning names where the request is set.
  - Warns when it removes an MCPServer's replica field, since the operator rolls every proxy pod and restarts the
    backend on any change of the MCPServer. An MCPServer deployed without its replica fields is autoscaled without it.
  - The HPA deletes the pods of a scale-down itself, so each pod's drain is what keeps requests off it once it has
    stopped. The gateway's and the remote proxy's pods have theirs through their spec (a preStop sleep, the roles'
    C(*_drain_seconds)). The operator writes an MCPServer proxy's pod template whole, so its pods get theirs from the
    MutatingAdmissionPolicy the C(operator) role installs (C(operator_proxy_drain_seconds)); on a cluster that serves
    no MutatingAdmissionPolicy API they have none, and a request may reach one that has stopped (docs/usage.md).
  - O(state=absent) removes the HPA and nothing else.
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
    description: Shows the HPA spec (and the released replica field) before and after.
options:
  name:
    description: Name of the resource.
    type: str
    required: true
  target:
    description: Which workload of an MCPServer to autoscale; ignored for a VirtualMCPServer or an MCPRemoteProxy.
    type: str
    choices: [proxy, backend]
    default: proxy
  state:
    description: C(present) creates or updates the HPA; C(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
  min_replicas:
    description: Lower bound of the replica count.
    type: int
    default: 1
  max_replicas:
    description: Upper bound of the replica count. Required with O(state=present).
    type: int
  cpu_percent:
    description:
      - Target average CPU utilization, in percent of the pods' CPU requests.
      - Defaults to 80 when neither O(cpu_percent) nor O(memory_percent) is given (as C(kubectl autoscale)).
    type: int
  memory_percent:
    description: Target average memory utilization, in percent of the pods' memory requests.
    type: int
  behavior:
    description: The HPA's C(spec.behavior) (scale-up and scale-down policies), as in the autoscaling/v2 API.
    type: dict
  release_replicas:
    description:
      - Remove C(spec.replicas) (or C(spec.backendReplicas)) from the resource so the operator leaves the
        count to the HPA. Without it, a resource that sets the field is refused.
    type: bool
    default: false
  workload_timeout:
    description:
      - Seconds to wait for the workload the HPA targets, which the operator (or, for a backend, the proxy runner)
        creates after the resource - right after a first deploy it may not exist yet. Then the task fails, naming
        the workload. Not waited for in check mode.
    type: int
    default: 120
    version_added: 0.3.0
seealso:
  - module: toolhive.k8s.scale
  - module: toolhive.k8s.status
"""

EXAMPLES = r"""
- name: Autoscale the vMCP gateway between 2 and 5 replicas at 70% CPU, releasing spec.replicas
  toolhive.k8s.autoscale:
    kind: VirtualMCPServer
    name: gateway
    namespace: toolhive
    min_replicas: 2
    max_replicas: 5
    cpu_percent: 70
    release_replicas: true

- name: Scale down slowly
  toolhive.k8s.autoscale:
    kind: MCPServer
    name: fetch
    namespace: toolhive
    max_replicas: 4
    cpu_percent: 60
    behavior:
      scaleDown:
        stabilizationWindowSeconds: 600

- name: Remove the HPA (the replica count stays where the HPA left it)
  toolhive.k8s.autoscale:
    kind: VirtualMCPServer
    name: gateway
    namespace: toolhive
    state: absent
"""

RETURN = r"""
hpa:
  description: The HPA after the task (absent when removed or never created).
  returned: when O(state=present)
  type: dict
  sample: {name: gateway, min_replicas: 2, max_replicas: 5, current_replicas: 2, current_metrics: ["cpu 12%"]}
workload:
  description: The workload the HPA targets.
  returned: when the resource exists
  type: dict
  sample: {kind: Deployment, name: gateway, role: vmcp}
released:
  description: Whether the resource's replica field was removed (O(release_replicas)).
  returned: always
  type: bool
command:
  description: The equivalent kubectl command.
  returned: always
  type: str
  sample: kubectl autoscale deployment/gateway --namespace toolhive --min=2 --max=5 --cpu=70%
"""

from ansible_collections.toolhive.k8s.plugins.module_utils import guards, kinds, operator
from ansible_collections.toolhive.k8s.plugins.module_utils.kinds import role_for_target
from ansible_collections.toolhive.k8s.plugins.module_utils.client import RESOURCE_ARG_SPEC, retry_on_conflict, run_module
from ansible_collections.toolhive.k8s.plugins.module_utils.errors import Refused
from ansible_collections.toolhive.k8s.plugins.module_utils.resources import (
    find_workload, get_resource, hpa_summary, wait_for_workload)

MANAGED_BY = {"app.kubernetes.io/managed-by": "toolhive.k8s"}


def hpa_name(kind, workload):
    return kinds.hpa_name(kind, workload.role, workload.name)


def desired_spec(params, workload):
    cpu, memory = params["cpu_percent"], params["memory_percent"]
    if cpu is None and memory is None:
        cpu = 80
    metrics = []
    for resource, percent in (("cpu", cpu), ("memory", memory)):
        if percent is not None:
            metrics.append({"type": "Resource", "resource": {
                "name": resource, "target": {"type": "Utilization", "averageUtilization": percent}}})
    spec = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": workload.kind, "name": workload.name},
        "minReplicas": params["min_replicas"], "maxReplicas": params["max_replicas"], "metrics": metrics,
    }
    if params["behavior"] is not None:
        spec["behavior"] = params["behavior"]
    return spec


def contains(actual, wanted):
    """Whether `actual` already has everything `wanted` says (the server adds defaults)."""
    if isinstance(wanted, dict):
        return isinstance(actual, dict) and all(contains(actual.get(k), v) for k, v in wanted.items())
    if isinstance(wanted, list):
        return isinstance(actual, list) and len(actual) == len(wanted) and \
            all(contains(a, w) for a, w in zip(actual, wanted))
    return actual == wanted


def kubectl_command(params, workload, name):
    if params["state"] == "absent":
        return "kubectl delete hpa %s --namespace %s" % (name, params["namespace"])
    command = "kubectl autoscale %s --namespace %s --name %s --min=%d --max=%d" % (
        workload.kubectl_ref(), params["namespace"], name, params["min_replicas"], params["max_replicas"])
    if params["cpu_percent"] is not None or params["memory_percent"] is None:
        command += " --cpu=%d%%" % (params["cpu_percent"] if params["cpu_percent"] is not None else 80)
    if params["memory_percent"] is not None:
        command += " --memory=%d%%" % params["memory_percent"]
    return command


def validate(module):
    params = module.params
    if params["state"] == "present":
        if params["max_replicas"] is None:
            raise Refused("max_replicas is required with state: present")
        if params["min_replicas"] < 1 or params["max_replicas"] < params["min_replicas"]:
            raise Refused("need 1 <= min_replicas <= max_replicas, got min_replicas=%d max_replicas=%d"
                          % (params["min_replicas"], params["max_replicas"]))
        for option in ("cpu_percent", "memory_percent"):
            if params[option] is not None and params[option] < 1:
                raise Refused("%s must be a positive percentage, got %d" % (option, params[option]))


def absent(module, client, workload):
    params = module.params
    name = hpa_name(module.params["kind"], workload)
    existing = client.get_or_none(kinds.path("HorizontalPodAutoscaler", params["namespace"], name))
    result = dict(changed=existing is not None, released=False, command=kubectl_command(params, workload, name),
                  workload=workload.counts())
    if module._diff:
        result["diff"] = dict(before={"hpa": existing and existing.get("spec")}, after={"hpa": None})
    if existing is not None:
        client.delete(kinds.path("HorizontalPodAutoscaler", params["namespace"], name), dry_run=module.check_mode)
    return result


def present(module, client, resource, workload, warnings):
    params = module.params
    kind, namespace = params["kind"], params["namespace"]
    spec = resource.get("spec") or {}
    where = guards.label(kind, namespace, params["name"]) + ": "
    if guards.is_stdio(kind, spec):
        raise Refused(where + "refusing to autoscale a stdio server: the operator keeps it at one replica "
                              "and would fight the HPA. Fix: switch to transport streamable-http to scale it")
    field = guards.field_for_target(kind, params["target"])
    release = spec.get(field) is not None
    if release and not params["release_replicas"]:
        raise Refused(where + "spec.%s=%s is set, so the operator would reset whatever count the HPA picks. "
                              "Fix: set release_replicas: true to remove spec.%s from the resource, or remove "
                              "it yourself" % (field, spec[field], field))
    if not guards.has_redis(spec) and not guards.uses_operator_redis(
            kind, spec, operator.default_redis(operator.deployments(client))):
        warnings.append(where + "no Redis session storage: with more than one replica each pod keeps its own "
                                "sessions. Set sessionStorage (role toolhive.k8s.redis).")

    name = hpa_name(module.params["kind"], workload)
    wanted = desired_spec(params, workload)
    problem = guards.missing_requests_problem(kind, workload.role, workload.pod_spec(),
                                              [metric["resource"]["name"] for metric in wanted["metrics"]])
    if problem:
        warnings.append(where + "its %s %s %s: %s" % (workload.role, workload.kind, workload.name, problem))
    existing = client.get_or_none(kinds.path("HorizontalPodAutoscaler", namespace, name))
    if existing is not None and not contains(existing.get("spec"), wanted):
        owner = existing["spec"].get("scaleTargetRef", {})
        if (owner.get("kind"), owner.get("name")) != (workload.kind, workload.name):
            raise Refused("HPA %s/%s exists and targets %s %s, not %s %s; remove it or pick another workload"
                          % (namespace, name, owner.get("kind"), owner.get("name"), workload.kind,
                             workload.name))
    hpa_changed = existing is None or not contains(existing.get("spec"), wanted)
    result = dict(changed=hpa_changed or release, released=release, workload=workload.counts(),
                  command=kubectl_command(params, workload, name))
    if module._diff:
        result["diff"] = dict(
            before={"hpa": existing and {k: existing["spec"].get(k) for k in wanted}, field: spec.get(field)},
            after={"hpa": wanted, field: None if release else spec.get(field)})

    if release and kinds.SERVERS[kind]["spec_change_rolls"]:
        warnings.append(guards.SPEC_CHANGE_ROLLS % (guards.label(kind, namespace, params["name"]), "spec.%s" % field) + (
            " This happens once, as spec.%s is removed; an MCPServer deployed without it (mcpserver_servers: "
            "replicas, backend_replicas) is autoscaled without a restart" % field))
    if release:
        client.patch(kinds.path(kind, namespace, params["name"], api_version=params["api_version"]),
                     {"spec": {field: None}}, dry_run=module.check_mode)
    hpa = existing
    if existing is None:
        body = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": name, "namespace": namespace, "labels": MANAGED_BY}, "spec": wanted}
        hpa = client.create(kinds.path("HorizontalPodAutoscaler", namespace), body, dry_run=module.check_mode)
    elif hpa_changed:
        hpa = client.patch(kinds.path("HorizontalPodAutoscaler", namespace, name), {"spec": wanted}, dry_run=module.check_mode)
    result["hpa"] = hpa_summary(hpa)
    return result


def run(module, client):
    validate(module)
    warnings = []
    # An HPA created or a resource changed by someone else meanwhile is a 409: read again and decide again.
    result = retry_on_conflict(lambda: autoscale_once(module, client, warnings))
    for warning in sorted(set(warnings), key=warnings.index):  # once each, whatever the 409s made run again
        module.warn(warning)
    return result


def autoscale_once(module, client, warnings):
    params = module.params
    role = role_for_target(params["kind"], params["target"])
    if params["state"] == "absent":  # the HPA's name says whose it is: a server already gone still loses its HPA
        return absent(module, client, find_workload(client, params["kind"], params["name"], params["namespace"],
                                                    role))
    resource = get_resource(client, params["kind"], params["name"], params["namespace"], params["api_version"])
    # Right after a first deploy the operator may not have created the workload yet: wait for it, bounded.
    workload = wait_for_workload(client, params["kind"], params["name"], params["namespace"], role,
                                 0 if module.check_mode else params["workload_timeout"])
    if not workload.exists:
        raise Refused("%s: its %s %s does not exist after %ss: the operator has not created it, so there is "
                      "nothing for an HPA to target. Fix: check the resource's conditions "
                      "(toolhive.k8s.status) and the operator's logs, then run again"
                      % (guards.label(params["kind"], params["namespace"], params["name"]),
                         workload.role, workload.kind,
                         0 if module.check_mode else params["workload_timeout"]))
    return present(module, client, resource, workload, warnings)


def main():
    argument_spec = dict(
        RESOURCE_ARG_SPEC,
        replica_limit=dict(type="int", default=20),
        name=dict(type="str", required=True),
        target=dict(type="str", choices=["proxy", "backend"], default="proxy"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        min_replicas=dict(type="int", default=1),
        max_replicas=dict(type="int"),
        cpu_percent=dict(type="int"),
        memory_percent=dict(type="int"),
        behavior=dict(type="dict"),
        release_replicas=dict(type="bool", default=False),
        workload_timeout=dict(type="int", default=120),
    )
    run_module(argument_spec, run)


if __name__ == "__main__":
    main()

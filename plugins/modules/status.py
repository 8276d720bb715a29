#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: status
short_description: The scaling picture of ToolHive servers, and waiting on their conditions
version_added: 0.1.0
description:
  - Reports, for each MCPServer, VirtualMCPServer or MCPRemoteProxy, its phase, generation against observed generation, every
    condition, the spec, current and ready replicas of each workload, the HPA that targets it (if any), the
    session storage in use, and C(findings), plain sentences about what will hurt (several replicas without
    Redis, an HPA fighting C(spec.replicas), an over-scaled stdio server, ClientIP affinity with several replicas,
    a C(keyPrefix) without C(:)).
  - With O(wait_for), waits until every resource has the expected conditions; on timeout it fails naming the
    conditions it saw. With O(wait_rollout), waits until what runs is the current spec.
  - Reads only, but for O(replace_stuck_pods), which deletes a StatefulSet pod stuck on an earlier revision.
author:
  - toolhive.k8s maintainers (@toolhive-k8s)
extends_documentation_fragment:
  - toolhive.k8s.auth
  - toolhive.k8s.attributes.reads
  - toolhive.k8s.resource
options:
  name:
    description: Name of one resource. Without it (and without O(names)), every resource of O(kind) in O(namespace)
      (matching O(label_selector), if given).
    type: str
  names:
    description: Names of several resources, checked with one task.
    type: list
    elements: str
  label_selector:
    description: Label selector for the resources, for example C(team=search).
    type: str
  wait_for:
    description:
      - Conditions to wait for. Each entry matches a condition whose C(type) or C(reason) equals O(wait_for[].type)
        (older docs call the reason C(SessionStorageMissingForReplicas) a condition), and whose status and
        reason equal O(wait_for[].status) and O(wait_for[].reason) when given.
    type: list
    elements: dict
    suboptions:
      type:
        description: Condition type, or reason.
        type: str
        required: true
      status:
        description: Wanted status.
        type: str
        choices: ["True", "False", "Unknown"]
      reason:
        description: Wanted reason.
        type: str
  wait_rollout:
    description:
      - Wait until each resource's workloads (the gateway's or proxy's Deployment, an MCPServer's backend StatefulSet
        once it exists) are rolled out at their current spec - every pod updated and ready - so that a change just
        applied is running, not only observed by the operator while the old pods serve.
      - Without O(wait_for), the operator must also have observed each resource's current generation (its
        C(status.observedGeneration)), and every workload must exist. That is a wait for what runs, not for the operator's
        word (a VirtualMCPServer's C(Ready) follows its backends' health checks, reported every 30 s, up to a minute after
        its gateway serves), so a deploy whose MCP check follows need not wait for it.
      - A pod of a workload's current revision that cannot start (C(ImagePullBackOff), C(CrashLoopBackOff),
        C(InvalidImageName), C(CreateContainerConfigError)) fails the task at once, naming the pod, the reason and the
        kubelet's message; on timeout the pods' waiting reasons and the scheduler's messages are named.
    type: bool
    default: false
  replace_stuck_pods:
    description:
      - With O(wait_rollout), a StatefulSet pod that cannot start (a reason O(wait_rollout) names) on a revision
        other than the StatefulSet's current one is deleted, so that its controller makes it again at the current
        revision. That is the forced rollback Kubernetes documents for a StatefulSet whose bad revision was fixed;
        its controller waits for the broken pod to become Ready, which it never does, so a fixed re-run would not
        converge otherwise. Such a pod serves nothing. The only write of this module; in check mode it is named,
        not deleted (RV(replaced_pods)).
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait for O(wait_for) and O(wait_rollout).
    type: int
    default: 120
seealso:
  - module: toolhive.k8s.scale
  - module: toolhive.k8s.autoscale
"""

EXAMPLES = r"""
- name: Wait until the vMCP has Redis session storage configured
  toolhive.k8s.status:
    kind: VirtualMCPServer
    name: gateway
    namespace: toolhive
    wait_for:
      - type: SessionStorageWarning
        status: "False"
        reason: SessionStorageConfigured
  register: gateway

- name: Wait until what runs is the gateway's current spec (not for the operator's delayed Ready)
  toolhive.k8s.status:
    kind: VirtualMCPServer
    name: gateway
    namespace: toolhive
    wait_rollout: true
    wait_timeout: 300

- name: Show what will hurt
  ansible.builtin.debug:
    var: gateway.resources[0].findings

- name: Every MCPServer of team search
  toolhive.k8s.status:
    kind: MCPServer
    namespace: toolhive
    label_selector: team=search
"""

RETURN = r"""
resources:
  description: One entry per resource.
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
    phase:
      description: The phase the operator reports (Pending, Ready, Failed, ...).
      type: str
    generation:
      description: metadata.generation.
      type: int
    observed_generation:
      description: status.observedGeneration (null when the operator does not report one).
      type: int
    conditions:
      description: Every condition, as the operator wrote it.
      type: list
      elements: dict
    replicas:
      description: The replica fields of the spec (null when left out).
      type: dict
      sample: {replicas: 3}
    workloads:
      description: Per role (vmcp, proxy, backend), the workload and its spec, current and ready replicas.
      type: dict
      sample: {vmcp: {kind: Deployment, name: gateway, spec: 3, current: 3, ready: 3, updated: 3, exists: true}}
    hpas:
      description: Per role, the HPA that targets the workload, with its current state.
      type: dict
    session_storage:
      description: spec.sessionStorage, or null.
      type: dict
    operator_session_storage:
      description:
        - The operator's global Redis default (Helm C(operator.defaultRedis), env C(TOOLHIVE_DEFAULT_REDIS_ADDR))
          when it serves this resource's sessions (no C(sessionStorage), or for an MCPServer none of provider
          C(redis)), else null. The operator's C(SessionStorageWarning) condition does not know this default.
      type: dict
      sample: {address: "redis.toolhive-system.svc:6379", secret_name: redis, secret_key: redis-password,
               source: Deployment toolhive-system/toolhive-operator}
    session_affinity:
      description: spec.sessionAffinity (ClientIP when unset).
      type: str
    findings:
      description: Plain sentences about what will hurt.
      type: list
      elements: str
findings:
  description: Every resource's findings, each prefixed with the resource.
  returned: always
  type: list
  elements: str
replaced_pods:
  description: The pods O(replace_stuck_pods) deleted (in check mode, would delete), as C(namespace/name (reason)).
  returned: always
  type: list
  elements: str
"""

import time

from ansible_collections.toolhive.k8s.plugins.module_utils import guards, kinds, operator
from ansible_collections.toolhive.k8s.plugins.module_utils.kinds import follows_spec, roles_of
from ansible_collections.toolhive.k8s.plugins.module_utils.client import RESOURCE_ARG_SPEC, ReadCache, run_module
from ansible_collections.toolhive.k8s.plugins.module_utils.errors import Refused
from ansible_collections.toolhive.k8s.plugins.module_utils.waiter import (
    CHECK_PODS_EVERY, READY, STUCK_FIX, Outage, current_pod_troubles, describe as describe_counts, pod_troubles,
    stuck_on_an_earlier_revision)
from ansible_collections.toolhive.k8s.plugins.module_utils.resources import (
    find_workload, get_resource, hpa_summary, hpas_for)


def condition_matches(condition, expected):
    wanted = expected["type"]
    if wanted not in (condition.get("type"), condition.get("reason")):
        return False
    if expected.get("status") and condition.get("status") != expected["status"]:
        return False
    if expected.get("reason") and condition.get("reason") != expected["reason"]:
        return False
    return True


def unmet(resource, expectations):
    conditions = (resource.get("status") or {}).get("conditions") or []
    return [e for e in expectations if not any(condition_matches(c, e) for c in conditions)]


def describe(expected):
    text = expected["type"]
    if expected.get("status"):
        text += "=" + expected["status"]
    if expected.get("reason"):
        text += " (%s)" % expected["reason"]
    return text


def unobserved(resource):
    """A sentence when the operator has not observed the resource's current generation yet (its workloads may
    still be the previous spec's), else None."""
    meta, status = resource["metadata"], resource.get("status") or {}
    observed = status.get("observedGeneration")
    if observed is None or observed >= meta.get("generation", 0):
        return None
    return "%s %s/%s: the operator has observed generation %s, not %s yet" % (
        resource["kind"], meta["namespace"], meta["name"], observed, meta.get("generation"))


def rollouts(client, resources, require_workloads=False):
    """(pending, stuck, left_behind): sentences on the resources' workloads not rolled out at their current spec,
    with what their current pods wait for, and on current pods that cannot start; and the StatefulSet pods stuck on
    an earlier revision. Under REQUIRE_WORKLOADS (no condition is waited for) a resource whose generation the
    operator has not observed, or a workload not created yet, is pending; otherwise the operator's Ready condition,
    waited for with it, covers them."""
    reader, pending, stuck, left_behind = ReadCache(client), [], [], []
    for resource in resources:
        meta = resource["metadata"]
        server = "%s %s/%s" % (resource["kind"], meta["namespace"], meta["name"])
        not_observed = unobserved(resource) if require_workloads else None
        if not_observed:
            pending.append(not_observed)
            continue
        for role in roles_of(resource["kind"]):
            workload = find_workload(reader, resource["kind"], meta["name"], meta["namespace"], role)
            if not workload.exists:
                if require_workloads:
                    pending.append("%s: its %s %s is not created yet" % (server, workload.kind, workload.name))
                continue
            if not follows_spec(resource["kind"], role, resource.get("spec"), workload.obj):
                # Its pods are the old spec's: neither stuck for good nor left behind yet.
                pending.append("%s: %s %s does not run the spec's image yet" % (server, workload.kind, workload.name))
                continue
            if READY[workload.kind](workload.obj):
                continue
            blocked, other = current_pod_troubles(client, workload.kind, workload.obj)
            left_behind.extend(stuck_on_an_earlier_revision(client, workload.kind, workload.obj))
            stuck.extend("%s: %s" % (server, sentence) for sentence in blocked)
            pending.append("%s: %s %s not rolled out (%s)%s" % (
                server, workload.kind, workload.name, describe_counts(workload.obj),
                (": " + "; ".join(blocked + other)) if blocked + other else ""))
    return pending, stuck, left_behind


def replace(client, pods, check_mode):
    """Delete each pod left behind (bound to the very pod read: a pod made again since is not touched)."""
    replaced = []
    for pod in pods:
        meta = pod["metadata"]
        if not check_mode:
            client.delete(kinds.path("Pod", meta["namespace"], meta["name"]),
                          preconditions={"uid": meta["uid"]})
        replaced.append("%s/%s (%s)" % (meta["namespace"], meta["name"], "; ".join(pod_troubles([pod])[0])))
    return replaced


def report(client, resource, operator_redis=None):
    kind, meta = resource["kind"], resource["metadata"]
    spec, status = resource.get("spec") or {}, resource.get("status") or {}
    workloads = [find_workload(client, kind, meta["name"], meta["namespace"], role) for role in roles_of(kind)]
    existing = [w for w in workloads if w.exists]
    hpas = hpas_for(client, meta["namespace"], existing) if existing else {}
    counts = {w.role: w.counts() for w in workloads}
    return {
        "kind": kind, "name": meta["name"], "namespace": meta["namespace"],
        "phase": status.get("phase"), "generation": meta.get("generation"),
        "observed_generation": status.get("observedGeneration"),
        "conditions": status.get("conditions") or [],
        "replicas": {field: spec.get(field) for field in guards.replica_fields(kind)},
        "workloads": counts,
        "hpas": {role: hpa_summary(hpa) for role, hpa in hpas.items()},
        "session_storage": spec.get("sessionStorage"),
        "operator_session_storage": operator_redis if guards.uses_operator_redis(kind, spec, operator_redis) else None,
        "session_affinity": spec.get("sessionAffinity") or "ClientIP",
        "transport": guards.transport(kind, spec),
        "findings": guards.findings(kind, spec, {r: c for r, c in counts.items() if c["exists"]},
                                    {role: {"name": hpa["metadata"]["name"]} for role, hpa in hpas.items()},
                                    operator_redis),
    }


def fetch(client, params):
    kind, namespace = params["kind"], params["namespace"]
    if params["name"]:
        return [get_resource(client, kind, params["name"], namespace, params["api_version"])]
    items = client.get(kinds.path(kind, namespace, api_version=params["api_version"]),
                       labelSelector=None if params["names"] else params["label_selector"]).get("items", [])
    for item in items:  # list items carry no kind
        item.setdefault("kind", kind)
    if params["names"]:  # one list for all of them, not one request per name
        found = {item["metadata"]["name"]: item for item in items}
        for name in params["names"]:
            if name not in found:  # a 404 that names it, as for one name (or it has just appeared)
                found[name] = get_resource(client, kind, name, namespace, params["api_version"])
        return [found[name] for name in params["names"]]
    return items


def run(module, client):
    params = module.params
    expectations = params["wait_for"] or []
    waits = bool(expectations) or params["wait_rollout"]
    deadline = time.time() + params["wait_timeout"]
    failures, what = Outage(), "the %ss in %s" % (params["kind"], params["namespace"])
    pods_checked, replaced = 0, []
    while True:
        # A restarting or throttling API server is asked again, within the outage bound.
        resources = failures.read(lambda: fetch(client, params), deadline if waits else None, what)
        waiting = {r["metadata"]["name"]: unmet(r, expectations) for r in resources}
        waiting = {name: missing for name, missing in waiting.items() if missing}
        conditions_met = not waits or (resources and not waiting)
        pending = []
        if params["wait_rollout"] and (conditions_met or time.time() - pods_checked >= CHECK_PODS_EVERY):
            pending, stuck, left_behind = failures.read(
                lambda: rollouts(client, resources, require_workloads=not expectations), deadline, what)
            pods_checked = time.time()
            if params["replace_stuck_pods"] and left_behind:
                replaced += replace(client, left_behind, module.check_mode)
                if module.check_mode:
                    break  # nothing will change while this task waits
                continue
            if stuck:
                raise Refused("a pod cannot start, so the rollout cannot end: %s. %s." % ("; ".join(stuck), STUCK_FIX))
        if conditions_met and not (params["wait_rollout"] and pending):
            break
        if time.time() >= deadline:
            if not resources:
                raise Refused("timed out after %ss: no %s in %s matches" % (
                    params["wait_timeout"], params["kind"], params["namespace"]))
            if conditions_met:
                raise Refused("timed out after %ss waiting for the rollouts: %s" % (params["wait_timeout"], "; ".join(pending)),
                              resources=[report(ReadCache(client), r) for r in resources])
            seen = []
            for resource in resources:
                name = resource["metadata"]["name"]
                if name in waiting:
                    conditions = (resource.get("status") or {}).get("conditions") or []
                    seen.append("%s %s wants %s; has %s" % (
                        params["kind"], name, ", ".join(describe(e) for e in waiting[name]),
                        ", ".join("%s=%s (%s)" % (c.get("type"), c.get("status"), c.get("reason"))
                                  for c in conditions) or "no conditions"))
            raise Refused("timed out after %ss waiting for conditions: %s" % (params["wait_timeout"], "; ".join(seen)),
                          resources=[report(ReadCache(client), r) for r in resources])
        time.sleep(0.5)
    reader = ReadCache(client)
    operator_redis = operator.default_redis(operator.deployments(client)) if resources else None
    reports = [report(reader, r, operator_redis) for r in resources]
    findings = ["%s %s/%s: %s" % (r["kind"], r["namespace"], r["name"], f) for r in reports for f in r["findings"]]
    return dict(changed=bool(replaced), resources=reports, findings=findings, replaced_pods=replaced)


def main():
    argument_spec = dict(
        RESOURCE_ARG_SPEC,
        name=dict(type="str"),
        names=dict(type="list", elements="str"),
        label_selector=dict(type="str"),
        wait_for=dict(type="list", elements="dict", options=dict(
            type=dict(type="str", required=True),
            status=dict(type="str", choices=["True", "False", "Unknown"]),
            reason=dict(type="str"),
        )),
        wait_rollout=dict(type="bool", default=False),
        replace_stuck_pods=dict(type="bool", default=False),
        wait_timeout=dict(type="int", default=120),
    )
    run_module(argument_spec, run, mutually_exclusive=[("name", "names", "label_selector")])


if __name__ == "__main__":
    main()

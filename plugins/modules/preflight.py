#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: preflight
short_description: Check ToolHive manifests and the cluster before anything is written
version_added: 0.1.0
description:
  - The guards the roles of this collection run before their first write. Reads only.
  - First, the scope - every manifest must be of a kind this collection writes, in one of O(namespaces), with a
    Kubernetes name; a manifest out of scope stops the check before anything is read.
  - Fails with one message listing every problem, each naming the resource, the field and the fix.
  - Checks that the ToolHive CRDs are installed and serve the manifests' API version, and that the operator's
    release (its Deployment's version label or image tag, else a lower bound from the fields its CRDs serve) is
    in the range this collection supports (a release newer than the newest validated one is a warning, or with
    O(strict_release) a refusal); that no stdio server asks
    for more than one replica (proxy or backend); that no server runs more than one replica without Redis session
    storage, its own or the operator's global default (C(TOOLHIVE_DEFAULT_REDIS_ADDR) on the operator's
    Deployment) (unless O(allow_without_session_storage), then it warns); that every C(sessionStorage.keyPrefix) ends
    with C(:) and a Redis provider has an address; that no two servers of different kinds (MCPServer,
    VirtualMCPServer, MCPRemoteProxy) share a name in one namespace (among the manifests and against the cluster);
    that every C(sessionStorage.passwordRef) names an existing Secret and key (or one in O(pending_secrets)); and
    that no workload given an HPA (O(autoscaled)) has its replica field set; that a deploy would not undo a replica count changed since the last deploy (by
    M(toolhive.k8s.scale), M(toolhive.k8s.autoscale) releasing it, or kubectl - read from C(managedFields)) nor set
    a replica count on a workload an existing HPA scales; and that no PodDisruptionBudget of the job exists made by
    someone else (it would be taken over).
author:
  - toolhive.k8s maintainers (@toolhive-k8s)
extends_documentation_fragment:
  - toolhive.k8s.auth
  - toolhive.k8s.attributes.reads
options:
  resources:
    description:
      - Every manifest the job will apply - the ToolHive resources (MCPServer, VirtualMCPServer, MCPRemoteProxy,
        MCPGroup, MCPExternalAuthConfig), the servers' PodDisruptionBudgets, and Redis's (ConfigMap, Secret, Service,
        Deployment, StatefulSet, NetworkPolicy).
      - Any other kind or API group is refused, and so is a name or namespace that is not a Kubernetes name.
    type: list
    elements: dict
    required: true
  namespaces:
    description: The namespaces the job deploys to; a manifest in any other is refused. Empty, any namespace.
    type: list
    elements: str
    default: []
  autoscaled:
    description: Workloads the play gives an HPA.
    type: list
    elements: dict
    default: []
    suboptions:
      kind:
        description: Kind of the resource.
        type: str
        required: true
        choices: [VirtualMCPServer, MCPServer, MCPRemoteProxy]
      name:
        description: Name of the resource.
        type: str
        required: true
      namespace:
        description: Namespace of the resource.
        type: str
        required: true
      target:
        description: Workload of an MCPServer.
        type: str
        choices: [proxy, backend]
        default: proxy
      api_version:
        description: API version of the resource (not read by the checks; the deploy pipeline passes it on).
        type: str
      autoscale:
        description: The HPA settings (not read by the checks; the deploy pipeline passes them on).
        type: dict
  allow_without_session_storage:
    description: Explicit opt-in to more than one replica without Redis session storage (then a warning), for
      servers of every kind.
    type: bool
    default: false
  allow_without_session_storage_kinds:
    description: The same opt-in for servers of these kinds only (the roles pass each kind's own
      C(*_allow_without_session_storage)).
    type: list
    elements: str
    choices: [VirtualMCPServer, MCPServer, MCPRemoteProxy]
    default: []
    version_added: 0.3.0
  strict_release:
    description:
      - Refuse an operator release newer than the newest this collection validates its manifests against
        (ToolHive v0.66.0), instead of warning and going on.
      - A release older than the oldest supported one (v0.44.0) is always refused.
    type: bool
    default: false
    version_added: 0.3.0
  pending_secrets:
    description: Secrets the play creates but that may not exist yet (in check mode, say); treated as present.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Secret name.
        type: str
        required: true
      namespace:
        description: Secret namespace.
        type: str
        required: true
      key:
        description: Key in the Secret.
        type: str
"""

EXAMPLES = r"""
- name: Check the servers before applying them
  toolhive.k8s.preflight:
    resources: "{{ toolhive_rendered_servers }}"
    autoscaled:
      - kind: VirtualMCPServer
        name: gateway
        namespace: toolhive
    pending_secrets:
      - name: toolhive-redis
        namespace: toolhive
        key: password
"""

RETURN = r"""
checks:
  description: What was verified.
  returned: always
  type: list
  elements: str
  sample: ["CRD mcpservers.toolhive.stacklok.dev serves v1beta1"]
warnings_found:
  description: Problems accepted by an opt-in, also shown as warnings.
  returned: always
  type: list
  elements: str
missing:
  description: The resources that do not exist yet, as C(Kind namespace/name); empty when every one exists (an
    apply can then be compared with a server-side dry run first).
  returned: success
  type: list
  elements: str
  sample: ["MCPServer toolhive/fetch"]
problems:
  description: Every problem found (the task fails when there is one).
  returned: on failure
  type: list
  elements: str
"""

from ansible_collections.toolhive.k8s.plugins.module_utils import guards, kinds, operator, values, versions
from ansible_collections.toolhive.k8s.plugins.module_utils.applier import object_path
from ansible_collections.toolhive.k8s.plugins.module_utils.client import FIELD_MANAGER, ReadCache, run_module
from ansible_collections.toolhive.k8s.plugins.module_utils.resources import (
    GROUP, PLURALS, crds_missing_message)


# The only objects a job of this collection writes: anything else among the manifests (a ClusterRole, a
# Namespace, an object in another namespace) came from a value that was not data, and is refused.
WRITTEN_KINDS = dict({kind: GROUP for kind in PLURALS}, ConfigMap="v1", Secret="v1", Service="v1",
                     Deployment="apps/v1", StatefulSet="apps/v1", NetworkPolicy="networking.k8s.io/v1",
                     PodDisruptionBudget="policy/v1")


def check_scope(index, manifest, namespaces):
    """Problems of one manifest's kind, API group, name and namespace."""
    meta = manifest.get("metadata") or {}
    kind, api_version = manifest.get("kind"), str(manifest.get("apiVersion", ""))
    what = "resources[%d] (%s %s)" % (index, values.shown(kind, 40), values.shown(meta.get("name"), 40))
    if kind not in WRITTEN_KINDS:
        return [what + ": kind %s is not one this collection writes (%s)" % (values.shown(kind, 40),
                                                                             ", ".join(sorted(WRITTEN_KINDS)))]
    wanted = WRITTEN_KINDS[kind]  # an apiVersion, or a group whose versions all do
    if api_version != wanted and not api_version.startswith(wanted + "/"):
        return [what + ": apiVersion %s is not %s's (%s)" % (values.shown(api_version, 40), kind, wanted)]
    problems = []
    for field, rule in (("name", values.name), ("namespace", values.namespace)):
        problem = rule(meta.get(field))
        if problem:
            problems.append(what + ": metadata.%s %s %s" % (field, values.shown(meta.get(field)), problem))
    if not problems and namespaces and meta["namespace"] not in namespaces:
        problems.append(what + ": namespace %s is not one this job deploys to (%s)"
                        % (meta["namespace"], ", ".join(namespaces)))
    return problems


def check_crds(client, resources, problems, checks):
    """{kind: CRD} for the manifests' ToolHive kinds and API versions the cluster serves; a field a manifest sets
    that the CRD does not have is a problem (the API server would drop it silently)."""
    served = {}
    missing = []
    for kind, version in sorted({(r.get("kind"), r.get("apiVersion", "").split("/")[-1]) for r in resources
                                 if r.get("kind") in PLURALS}):
        crd = client.get_or_none(kinds.path("CustomResourceDefinition", name="%s.%s" % (PLURALS[kind], GROUP)))
        if crd is None:
            missing.append(kind)
            continue
        offered = [v["name"] for v in crd["spec"]["versions"] if v.get("served")]
        if version not in offered:
            crd_name = "%s.%s" % (PLURALS[kind], GROUP)
            problems.append("CRD %s does not serve %s (it serves %s). Fix: set the API version variable to one of "
                            "those, or upgrade the ToolHive operator" % (crd_name, version, ", ".join(offered)))
            continue
        served[kind] = crd
        checks.append("CRD %s.%s serves %s" % (PLURALS[kind], GROUP, version))
    for manifest in resources:
        kind, version = manifest.get("kind"), manifest.get("apiVersion", "").split("/")[-1]
        for path in versions.unknown_fields(served.get(kind), version, manifest.get("spec")):
            meta = manifest.get("metadata") or {}
            problems.append("%s %s/%s: %s is not a field of this cluster's ToolHive CRDs (%s.%s %s): the API server "
                            "would drop it without a word. Fix: install a ToolHive release that has it "
                            "(docs/toolhive-versions.md says which release brought each field), or leave it out"
                            % (kind, meta.get("namespace"), meta.get("name"), path, PLURALS[kind], GROUP, version))
    if missing:
        problems.append(crds_missing_message(missing))
    return served


def existing(reader, kind, namespace, version):
    """{name: object} of one kind in one namespace: one list (ReadCache) however many servers ask."""
    return {item["metadata"]["name"]: item
            for item in reader.get(kinds.path(kind, namespace, api_version=version))["items"]}


def names_of(reader, kind, namespace, version):
    return set(existing(reader, kind, namespace, version))


def owned_by_someone_else(obj, field):
    """Managers other than the collection's apply that own spec.<field>: a scale, an edit, a release to an HPA."""
    others = []
    for entry in obj["metadata"].get("managedFields") or []:
        owns = "f:" + field in ((entry.get("fieldsV1") or {}).get("f:spec") or {})
        if owns and not (entry.get("manager") == FIELD_MANAGER and entry.get("operation") == "Apply"):
            others.append("toolhive.k8s.scale or autoscale" if entry.get("manager") == FIELD_MANAGER
                          else "%s (%s)" % (entry.get("manager"), entry.get("operation")))
    return others


def check_ownership(reader, servers, served, autoscaled, problems, checks):
    """A deploy must not undo a day-2 change nor start a fight with an HPA: both are refused before any write."""
    for manifest in servers:
        kind, meta, spec = manifest["kind"], manifest["metadata"], manifest.get("spec") or {}
        if not served.get(kind):
            continue
        where = guards.label(kind, meta["namespace"], meta["name"]) + ": "
        live = existing(reader, kind, meta["namespace"], manifest["apiVersion"].split("/")[-1]).get(meta["name"])
        fields = [f for f in guards.replica_fields(kind) if spec.get(f) is not None]
        for field in fields if live else []:
            now, others = (live.get("spec") or {}).get(field), owned_by_someone_else(live, field)
            if now != spec[field] and (others or now is None):
                problems.append(where + "spec.%s is %s in the cluster, set by %s since the last deploy, but the "
                                "variables say %s: deploying would undo that change. Fix: put %s in the variables "
                                "to keep it, or leave the replica count out of them to leave it as it is"
                                % (field, "unset (released to an HPA)" if now is None else now,
                                   ", ".join(others) or "someone else", spec[field],
                                   "unset" if now is None else now))
        workloads = {w["kind"]: w["field"] for w in kinds.SERVERS[kind]["workloads"].values()
                     if w["field"] in fields and w["field"] not in autoscaled.get((kind, meta["namespace"], meta["name"]), ())}
        if not workloads:
            continue
        for hpa in reader.get(kinds.path("HorizontalPodAutoscaler", meta["namespace"])).get("items", []):
            target = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
            # The workloads carry the resource's name (find_workload): a Deployment, or the backend StatefulSet.
            if target.get("name") == meta["name"] and target.get("kind") in workloads:
                field = workloads[target["kind"]]
                problems.append(where + "HPA %s scales its %s %s, but the variables set spec.%s=%s: the operator "
                                "and the HPA would fight over the count. Fix: leave %s out and give the server "
                                "autoscale settings instead, or remove the HPA (toolhive.k8s.autoscale state=absent)"
                                % (hpa["metadata"]["name"], target["kind"], meta["name"], field, spec[field],
                                   "replicas" if field == "replicas" else "backend_replicas"))
    checks.append("no replica count set by a day-2 change or an HPA would be undone")


def check_names(reader, servers, served, problems, checks):
    """Servers of different kinds with one name would share Deployment <name> (every kind runs one so named)."""
    by_key = {}
    for manifest in servers:
        meta = manifest["metadata"]
        by_key.setdefault((meta.get("namespace"), meta["name"]), set()).add(manifest["kind"])
    for (namespace, name), kinds_of_name in sorted(by_key.items()):
        clash = set(kinds_of_name)
        version = next(m["apiVersion"].split("/")[-1] for m in servers
                       if m["kind"] in kinds_of_name and m["metadata"]["name"] == name)
        for other in guards.SCALED_KINDS:
            if other not in kinds_of_name and served.get(other) and name in names_of(reader, other, namespace, version):
                clash.add(other)
        if len(clash) > 1:
            problems.append("%s %s/%s share a name: each would run Deployment %s. Fix: rename one of them"
                            % (" and ".join(sorted(clash)), namespace, name, name))
    checks.append("no two servers of different kinds share a name (MCPServer, VirtualMCPServer, MCPRemoteProxy)")


# A workload the collection renders as one kind or the other (Redis: a Deployment, or with persistence a StatefulSet).
OTHER_WORKLOAD_KIND = {"Deployment": "StatefulSet", "StatefulSet": "Deployment"}


def check_workload_kinds(reader, resources, problems, checks):
    """A workload of ours that exists as the other kind: applying would run both on one selector, each a copy."""
    for manifest in resources:
        other = OTHER_WORKLOAD_KIND.get(manifest["kind"])
        if not other:
            continue
        meta = manifest["metadata"]
        found = reader.get_or_none(object_path(dict(manifest, kind=other, apiVersion="apps/v1")))
        labels = ((found or {}).get("metadata") or {}).get("labels") or {}
        if found and labels.get("app.kubernetes.io/managed-by") == "toolhive.k8s":
            problems.append("%s %s/%s: the cluster runs it as a %s (redis_persistence switched?): both would run "
                            "with one selector, and the running one's data would not move. Fix: set the variable "
                            "back, or run the teardown (the password Secret and the PVCs stay) and deploy again; "
                            "what the %s holds in memory is lost then"
                            % (manifest["kind"], meta["namespace"], meta["name"], other, other))
        else:
            checks.append("%s %s/%s is not running as a %s" % (manifest["kind"], meta["namespace"], meta["name"], other))


def check_budgets(reader, resources, problems, checks):
    """A PodDisruptionBudget of the name the collection would give one, made by someone else: never taken over."""
    for manifest in resources:
        if manifest["kind"] != "PodDisruptionBudget":
            continue
        meta = manifest["metadata"]
        found = existing(reader, "PodDisruptionBudget", meta["namespace"], "v1").get(meta["name"])
        labels = ((found or {}).get("metadata") or {}).get("labels") or {}
        if found and labels.get("app.kubernetes.io/managed-by") != "toolhive.k8s":
            problems.append("PodDisruptionBudget %s/%s exists and is not the collection's: the deploy would take it "
                            "over. Fix: rename or remove it, or set the role's *_disruption_budgets: false to keep "
                            "yours" % (meta["namespace"], meta["name"]))
        elif found:
            checks.append("PodDisruptionBudget %s/%s is the collection's" % (meta["namespace"], meta["name"]))


def find_missing(reader, resources):
    """The resources that do not exist yet ("Kind namespace/name"), so the caller knows an apply will create."""
    missing = []
    for resource in resources:
        kind, meta = resource["kind"], resource["metadata"]
        if meta["name"] not in names_of(reader, kind, meta["namespace"], resource["apiVersion"].split("/")[-1]):
            missing.append("%s %s/%s" % (kind, meta["namespace"], meta["name"]))
    return missing


def secret_refs(manifest):
    """(field, {name, key}) of each Secret a server's session storage reads: its password, its CA."""
    storage = (manifest.get("spec") or {}).get("sessionStorage") or {}
    refs = [("spec.sessionStorage.passwordRef", storage.get("passwordRef")),
            ("spec.sessionStorage.tls.caCertSecretRef", (storage.get("tls") or {}).get("caCertSecretRef"))]
    return [(field, ref) for field, ref in refs if ref]


def check_secrets(reader, servers, pending, problems, checks):
    pending_keys = {(p["namespace"], p["name"], p.get("key")) for p in pending}
    pending_names = {(p["namespace"], p["name"]) for p in pending}
    for manifest in servers:
        meta = manifest["metadata"]
        for field, ref in secret_refs(manifest):
            namespace, secret_name, key = meta.get("namespace"), ref.get("name"), ref.get("key")
            where = guards.label(manifest["kind"], namespace, meta["name"]) + ": %s " % field
            if (namespace, secret_name, key) in pending_keys or ((namespace, secret_name) in pending_names and not key):
                continue
            secret = reader.get_or_none(kinds.path("Secret", namespace, secret_name,
                                                   fields=("metadata.namespace", field + ".name")))
            if secret is None:
                problems.append(where + "names Secret %s, which does not exist in %s. Fix: create it (the role "
                                        "toolhive.k8s.redis does) or point %s at the Secret Redis uses"
                                % (secret_name, namespace, field.rsplit(".", 1)[-1]))
            elif key not in (secret.get("data") or {}):
                problems.append(where + "names key %r, which Secret %s/%s does not have (it has: %s). Fix: use one "
                                        "of those keys" % (key, namespace, secret_name,
                                                           ", ".join(sorted(secret.get("data") or {})) or "none"))
            elif "Secret %s/%s has key %s" % (namespace, secret_name, key) not in checks:
                checks.append("Secret %s/%s has key %s" % (namespace, secret_name, key))


def run(module, client):
    params = module.params
    resources = params["resources"]
    problems, checks, warnings = [], [], []
    for index, manifest in enumerate(resources):
        problems.extend(check_scope(index, manifest, params["namespaces"]))
    if problems:  # what the job may touch comes first: nothing else is read for an object out of scope
        module.fail_json(msg="preflight refused %d object(s), nothing was written:\n- %s"
                             % (len(problems), "\n- ".join(problems)), problems=problems)

    autoscaled = {}
    for item in params["autoscaled"]:
        key = (item["kind"], item["namespace"], item["name"])
        autoscaled.setdefault(key, set()).add(guards.field_for_target(item["kind"], item["target"]))
    servers = [r for r in resources if r["kind"] in guards.SCALED_KINDS]
    operator_deployments = operator.deployments(client) if servers else []
    operator_redis = operator.default_redis(operator_deployments)
    if operator_redis:
        checks.append("the operator's default Redis %s (%s) serves the servers without sessionStorage"
                      % (operator_redis["address"], operator_redis["source"]))
    for manifest in servers:
        meta = manifest["metadata"]
        errors, accepted = guards.check_resource(manifest, autoscaled.get((manifest["kind"], meta["namespace"],
                                                                           meta["name"]), ()),
                                                 params["allow_without_session_storage"]
                                                 or manifest["kind"] in params["allow_without_session_storage_kinds"],
                                                 operator_redis)
        problems.extend(errors)
        warnings.extend(accepted)
    served = check_crds(client, resources, problems, checks)
    if served:  # the operator's release, from its Deployment or its CRDs: outside the supported range, refused
        problems.extend(versions.check_operator(client, checks, warnings, operator_deployments if servers else None,
                                                params["strict_release"]))
    reader = ReadCache(client)  # every server names the same Secret, and each kind is listed once per namespace
    check_names(reader, servers, served, problems, checks)
    check_secrets(reader, servers, params["pending_secrets"], problems, checks)
    check_ownership(reader, servers, served, autoscaled, problems, checks)
    check_workload_kinds(reader, resources, problems, checks)
    check_budgets(reader, resources, problems, checks)
    for warning in warnings:
        module.warn(warning)
    if problems:
        module.fail_json(msg="preflight found %d problem(s), nothing was written:\n- %s"
                             % (len(problems), "\n- ".join(problems)), problems=problems, checks=checks)
    return dict(changed=False, checks=checks, warnings_found=warnings,
                missing=find_missing(reader, [r for r in resources if r["kind"] in PLURALS]))


def main():
    argument_spec = dict(
        resources=dict(type="list", elements="dict", required=True),
        autoscaled=dict(type="list", elements="dict", default=[], options=dict(
            kind=dict(type="str", required=True, choices=["VirtualMCPServer", "MCPServer", "MCPRemoteProxy"]),
            name=dict(type="str", required=True),
            namespace=dict(type="str", required=True),
            target=dict(type="str", choices=["proxy", "backend"], default="proxy"),
            api_version=dict(type="str"),
            autoscale=dict(type="dict"),
        )),
        allow_without_session_storage=dict(type="bool", default=False),
        allow_without_session_storage_kinds=dict(type="list", elements="str", default=[],
                                                 choices=["VirtualMCPServer", "MCPServer", "MCPRemoteProxy"]),
        strict_release=dict(type="bool", default=False),
        namespaces=dict(type="list", elements="str", default=[]),
        pending_secrets=dict(type="list", elements="dict", default=[], no_log=False, options=dict(
            name=dict(type="str", required=True),
            namespace=dict(type="str", required=True),
            key=dict(type="str", no_log=False),
        )),
    )
    run_module(argument_spec, run)


if __name__ == "__main__":
    main()

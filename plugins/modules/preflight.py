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
  - Fails with one message listing every problem, each naming the resource, the field and the fix.
  - Checks that the ToolHive CRDs are installed and serve the manifests' API version; that no stdio server asks
    for more than one replica (proxy or backend); that no server runs more than one replica without Redis session
    storage (unless O(allow_without_session_storage), then it warns); that every C(sessionStorage.keyPrefix) ends
    with C(:) and a Redis provider has an address; that no MCPServer and VirtualMCPServer share a name in one
    namespace (among the manifests and against the cluster); that every C(sessionStorage.passwordRef) names an
    existing Secret and key (or one in O(pending_secrets)); and that no workload given an HPA (O(autoscaled)) has its
    replica field set.
author:
  - toolhive.k8s maintainers (@toolhive-k8s)
extends_documentation_fragment:
  - toolhive.k8s.auth
  - toolhive.k8s.attributes.reads
options:
  resources:
    description: Rendered ToolHive manifests (MCPServer, VirtualMCPServer, MCPGroup, MCPExternalAuthConfig).
    type: list
    elements: dict
    required: true
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
        choices: [VirtualMCPServer, MCPServer]
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
  allow_without_session_storage:
    description: Explicit opt-in to more than one replica without Redis session storage (then a warning).
    type: bool
    default: false
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

from ansible_collections.toolhive.k8s.plugins.module_utils import guards
from ansible_collections.toolhive.k8s.plugins.module_utils.client import run_module
from ansible_collections.toolhive.k8s.plugins.module_utils.resources import GROUP, PLURALS, cr_path, crds_missing_message


def check_crds(client, resources, problems, checks):
    """{kind: served} for the manifests' kinds and API versions."""
    served = {}
    missing = []
    for kind, version in sorted({(r.get("kind"), r.get("apiVersion", "").split("/")[-1]) for r in resources}):
        if kind not in PLURALS:
            problems.append("%s is not a ToolHive kind this collection manages" % kind)
            continue
        crd = client.get_or_none("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/%s.%s"
                                 % (PLURALS[kind], GROUP))
        if crd is None:
            missing.append(kind)
            continue
        versions = [v["name"] for v in crd["spec"]["versions"] if v.get("served")]
        if version not in versions:
            crd_name = "%s.%s" % (PLURALS[kind], GROUP)
            problems.append("CRD %s does not serve %s (it serves %s). Fix: set the API version variable to one of "
                            "those, or upgrade the ToolHive operator" % (crd_name, version, ", ".join(versions)))
            continue
        served[kind] = True
        checks.append("CRD %s.%s serves %s" % (PLURALS[kind], GROUP, version))
    if missing:
        problems.append(crds_missing_message(missing))
    return served


class ExistingNames:
    """Names of one kind in one namespace, one list each: the checks ask about many servers."""

    def __init__(self, client):
        self.client = client
        self._names = {}

    def __call__(self, kind, namespace, version):
        if (kind, namespace) not in self._names:
            items = self.client.get(cr_path(kind, namespace, api_version=version)).get("items") or []
            self._names[(kind, namespace)] = {item["metadata"]["name"] for item in items}
        return self._names[(kind, namespace)]


def check_names(existing, servers, served, problems, checks):
    """An MCPServer and a VirtualMCPServer of one name would share Deployment <name>."""
    by_key = {}
    for manifest in servers:
        meta = manifest["metadata"]
        by_key.setdefault((meta.get("namespace"), meta["name"]), set()).add(manifest["kind"])
    for (namespace, name), kinds in sorted(by_key.items()):
        clash = kinds == set(guards.SCALED_KINDS)
        for kind in kinds:
            other = "VirtualMCPServer" if kind == "MCPServer" else "MCPServer"
            if not clash and served.get(other):
                version = next(m["apiVersion"].split("/")[-1] for m in servers if m["kind"] == kind)
                clash = name in existing(other, namespace, version)
        if clash:
            problems.append("MCPServer and VirtualMCPServer %s/%s share a name: both would run Deployment %s. Fix: "
                            "rename one of them" % (namespace, name, name))
    checks.append("no MCPServer shares a name with a VirtualMCPServer")


def find_missing(existing, resources):
    """The resources that do not exist yet ("Kind namespace/name"), so the caller knows an apply will create."""
    missing = []
    for resource in resources:
        kind, meta = resource["kind"], resource["metadata"]
        if meta["name"] not in existing(kind, meta["namespace"], resource["apiVersion"].split("/")[-1]):
            missing.append("%s %s/%s" % (kind, meta["namespace"], meta["name"]))
    return missing


def check_secrets(client, servers, pending, problems, checks):
    pending_keys = {(p["namespace"], p["name"], p.get("key")) for p in pending}
    pending_names = {(p["namespace"], p["name"]) for p in pending}
    secrets = {}  # every server names the same Secret: read it once
    for manifest in servers:
        meta = manifest["metadata"]
        ref = ((manifest.get("spec") or {}).get("sessionStorage") or {}).get("passwordRef")
        if not ref:
            continue
        namespace, secret_name, key = meta.get("namespace"), ref.get("name"), ref.get("key")
        where = guards.label(manifest["kind"], namespace, meta["name"]) + ": spec.sessionStorage.passwordRef "
        if (namespace, secret_name, key) in pending_keys or ((namespace, secret_name) in pending_names and not key):
            continue
        if (namespace, secret_name) not in secrets:
            secrets[(namespace, secret_name)] = client.get_or_none("/api/v1/namespaces/%s/secrets/%s"
                                                                   % (namespace, secret_name))
        secret = secrets[(namespace, secret_name)]
        if secret is None:
            problems.append(where + "names Secret %s, which does not exist in %s. Fix: create it (the role "
                                    "toolhive.k8s.redis does) or point passwordRef at the Redis password Secret"
                            % (secret_name, namespace))
        elif key not in (secret.get("data") or {}):
            problems.append(where + "names key %r, which Secret %s/%s does not have (it has: %s). Fix: use one of "
                                    "those keys" % (key, namespace, secret_name,
                                                    ", ".join(sorted(secret.get("data") or {})) or "none"))
        elif "Secret %s/%s has key %s" % (namespace, secret_name, key) not in checks:
            checks.append("Secret %s/%s has key %s" % (namespace, secret_name, key))


def run(module, client):
    params = module.params
    resources = params["resources"]
    problems, checks, warnings = [], [], []
    for index, manifest in enumerate(resources):
        meta = manifest.get("metadata") or {}
        if not manifest.get("kind") or not meta.get("name") or not meta.get("namespace"):
            problems.append("resources[%d] needs kind, metadata.name and metadata.namespace" % index)
    if problems:
        module.fail_json(msg="preflight: " + "; ".join(problems), problems=problems)

    autoscaled = {}
    for item in params["autoscaled"]:
        key = (item["kind"], item["namespace"], item["name"])
        autoscaled.setdefault(key, set()).add(guards.field_for_target(item["kind"], item["target"]))
    servers = [r for r in resources if r["kind"] in guards.SCALED_KINDS]
    for manifest in servers:
        meta = manifest["metadata"]
        errors, accepted = guards.check_resource(manifest, autoscaled.get((manifest["kind"], meta["namespace"],
                                                                           meta["name"]), ()),
                                                 params["allow_without_session_storage"])
        problems.extend(errors)
        warnings.extend(accepted)
    served = check_crds(client, resources, problems, checks)
    existing = ExistingNames(client)
    check_names(existing, servers, served, problems, checks)
    check_secrets(client, servers, params["pending_secrets"], problems, checks)
    for warning in warnings:
        module.warn(warning)
    if problems:
        module.fail_json(msg="preflight found %d problem(s), nothing was written:\n- %s"
                             % (len(problems), "\n- ".join(problems)), problems=problems, checks=checks)
    return dict(changed=False, checks=checks, warnings_found=warnings, missing=find_missing(existing, resources))


def main():
    argument_spec = dict(
        resources=dict(type="list", elements="dict", required=True),
        autoscaled=dict(type="list", elements="dict", default=[], options=dict(
            kind=dict(type="str", required=True, choices=["VirtualMCPServer", "MCPServer"]),
            name=dict(type="str", required=True),
            namespace=dict(type="str", required=True),
            target=dict(type="str", choices=["proxy", "backend"], default="proxy"),
        )),
        allow_without_session_storage=dict(type="bool", default=False),
        pending_secrets=dict(type="list", elements="dict", default=[], no_log=False, options=dict(
            name=dict(type="str", required=True),
            namespace=dict(type="str", required=True),
            key=dict(type="str", no_log=False),
        )),
    )
    run_module(argument_spec, run)


if __name__ == "__main__":
    main()

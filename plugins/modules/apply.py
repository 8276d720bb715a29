#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: apply
short_description: Server-side apply of ToolHive and Redis manifests as the field manager toolhive.k8s, then wait
version_added: 0.2.0
description:
  - How the roles of this collection write. Every object is applied with server-side apply under the field manager
    C(toolhive.k8s); a field another manager owns is a conflict the module reports, never takes over.
  - An object that exists is compared with a server-side dry run of the apply, so a run that changes nothing
    writes nothing. Objects are listed once per kind and namespace and sent several at a time.
  - In check mode every object is validated by a server-side dry run (objects in a namespace that does not exist
    yet are shown as they would be created); nothing is written.
  - With O(wait), waits until every Deployment and StatefulSet among O(resources) has rolled out and is ready
    (watching, not polling) - also when nothing changed.
  - On failure the message names each object that failed and what this task had already applied; the result's
    C(applied) lists it too.
  - With O(state=absent), deletes the objects (and waits until they are gone); an entry without a name deletes
    every object of its kind in its namespace carrying all of its C(metadata.labels).
author:
  - toolhive.k8s maintainers (@toolhive-k8s)
extends_documentation_fragment:
  - toolhive.k8s.auth
options:
  resources:
    description:
      - The manifests, of the kinds this collection writes (those M(toolhive.k8s.preflight) accepts) and
        C(Namespace)-scoped. Check them with M(toolhive.k8s.preflight) first.
    type: list
    elements: dict
    default: []
  namespaces:
    description:
      - Namespaces to create first when they do not exist. Existing namespaces are only read; none is ever deleted.
    type: list
    elements: str
    default: []
  turned_off:
    description:
      - With O(state=present), objects this run no longer wants (for example a NetworkPolicy turned off), each
        deleted after the apply when it exists. Same form as O(resources); only kind, apiVersion, name and
        namespace are read.
    type: list
    elements: dict
    default: []
  state:
    description:
      - C(present) applies; C(absent) deletes.
    type: str
    choices: [present, absent]
    default: present
  wait:
    description:
      - Wait until the Deployments and StatefulSets among O(resources) are ready (O(state=present)), or until every
        deleted object is gone (O(state=absent)).
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait.
    type: int
    default: 300
attributes:
  check_mode:
    support: full
    description: Validates every object by a server-side dry run; writes nothing.
  diff_mode:
    support: full
    description: Shows each object that would change, before and after (managedFields and status left out).
"""

EXAMPLES = r"""
- name: Apply Redis and wait until it is ready
  toolhive.k8s.apply:
    resources: "{{ lookup('ansible.builtin.template', 'redis.yaml.j2') | ansible.builtin.from_yaml_all | list }}"
    namespaces: [toolhive]
    wait: true

- name: Remove the data PVCs of Redis r
  toolhive.k8s.apply:
    state: absent
    resources:
      - apiVersion: v1
        kind: PersistentVolumeClaim
        metadata:
          namespace: toolhive
          labels: {app.kubernetes.io/instance: r, app.kubernetes.io/managed-by: toolhive.k8s}
"""

RETURN = r"""
created:
  description: The objects created (in check mode, that would be), as C(Kind namespace/name).
  returned: state is present
  type: list
  elements: str
  sample: [MCPServer toolhive/fetch]
updated:
  description: The objects changed (in check mode, that would be).
  returned: state is present
  type: list
  elements: str
unchanged:
  description: The objects the dry run showed unchanged; nothing was sent for them but the dry run.
  returned: state is present
  type: list
  elements: str
deleted:
  description: The objects deleted (in check mode, that would be) - O(resources) with O(state=absent), O(turned_off)
    with O(state=present).
  returned: always
  type: list
  elements: str
namespaces_created:
  description: The namespaces created (in check mode, that would be).
  returned: always
  type: list
  elements: str
applied:
  description: On failure, what this task had already changed (it stands), as C(Kind namespace/name action).
  returned: failure
  type: list
  elements: str
"""

from ansible_collections.toolhive.k8s.plugins.module_utils import kinds, values
from ansible_collections.toolhive.k8s.plugins.module_utils.applier import Applier, ApplyError, shown
from ansible_collections.toolhive.k8s.plugins.module_utils.client import run_module
from ansible_collections.toolhive.k8s.plugins.module_utils.errors import K8sError, Refused
from ansible_collections.toolhive.k8s.plugins.module_utils.waiter import READY, wait_ready


def diffs(results):
    return [{"before_header": r["ref"], "after_header": r["ref"], "before": shown(r.get("before")),
             "after": shown(r.get("after"))} for r in results if r["action"] != "unchanged"]


def present(module, applier, params):
    resources = params["resources"]
    created_namespaces = applier.ensure_namespaces(params["namespaces"])
    try:
        results = applier.apply(resources, absent_namespaces=created_namespaces if module.check_mode else ())
    except ApplyError as exc:
        done = ["namespace %s created" % n for n in created_namespaces] + exc.done
        raise Refused("%s.%s" % (exc, (" Already applied by this task (it stands): %s." % "; ".join(done))
                                 if done else " This task had applied nothing."),
                      applied=done, status=exc.status)
    turned_off = [r for r in applier.delete(params["turned_off"]) if r["action"] == "deleted"] if params["turned_off"] else []
    by_action = {a: [r["ref"] for r in results if r["action"] == a] for a in ("created", "updated", "unchanged")}
    by_action["deleted"] = [r["ref"] for r in turned_off]
    changed = bool(created_namespaces or by_action["created"] or by_action["updated"] or turned_off)
    workloads = [(r["kind"], r["namespace"], r["name"]) for r in results if r["kind"] in READY]
    if params["wait"] and workloads and not module.check_mode:
        try:
            wait_ready(applier.client, workloads, params["wait_timeout"])
        except K8sError as exc:
            done = ["namespace %s created" % n for n in created_namespaces] + [
                r["ref"] + " " + r["action"] for r in results if r["action"] != "unchanged"]
            raise Refused("%s.%s" % (exc, (" Already applied by this task (it stands): %s." % "; ".join(done))
                                     if done else ""), applied=done, status=exc.status)
    result = dict(changed=changed, namespaces_created=created_namespaces, **by_action)
    if module._diff:
        result["diff"] = diffs(results) + [{"before_header": r["ref"], "before": shown(r.get("before")), "after": {}}
                                           for r in turned_off]
    return result


def absent(module, applier, params):
    results = applier.delete(list(reversed(params["resources"])))
    if params["wait"]:
        applier.wait_gone(results, params["wait_timeout"])
    deleted = [r["ref"] for r in results if r["action"] == "deleted"]
    result = dict(changed=bool(deleted), deleted=deleted, namespaces_created=[])
    if module._diff:
        result["diff"] = [{"before_header": r["ref"], "before": shown(r.get("before")), "after": {}}
                          for r in results if r["action"] == "deleted"]
    return result


def refused(resources):
    """Problems of the manifests' kinds, names and namespaces: all found before the first request."""
    problems = []
    for index, manifest in enumerate(resources):
        meta = manifest.get("metadata") if isinstance(manifest.get("metadata"), dict) else {}
        where = "resources[%d] (%s %s)" % (index, values.shown(manifest.get("kind"), 40), values.shown(meta.get("name"), 40))
        if manifest.get("kind") not in kinds.APPLIED or not isinstance(manifest.get("apiVersion"), str):
            problems.append(where + ": kind and apiVersion must name a kind this collection writes (%s)"
                            % ", ".join(sorted(kinds.APPLIED)))
            continue
        checks = [("namespace", values.namespace)] if kinds.API[manifest["kind"]][2] else []
        if meta.get("name") is not None or not meta.get("labels"):
            checks.append(("name", values.PARAM_RULES["name"]))
        for field, rule in checks:
            problem = rule(meta.get(field))
            if problem:
                problems.append(where + ": metadata.%s %s %s" % (field, values.shown(meta.get(field)), problem))
    return problems


def run(module, client):
    params = module.params
    problems = refused(params["resources"] + params["turned_off"])
    if problems:
        raise Refused("%d object(s) refused before any write:\n- %s" % (len(problems), "\n- ".join(problems)),
                      problems=problems)
    applier = Applier(client, check_mode=module.check_mode)
    return (present if params["state"] == "present" else absent)(module, applier, params)


def main():
    argument_spec = dict(
        resources=dict(type="list", elements="dict", default=[]),
        turned_off=dict(type="list", elements="dict", default=[]),
        namespaces=dict(type="list", elements="str", default=[]),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        wait=dict(type="bool", default=False),
        wait_timeout=dict(type="int", default=300),
    )
    run_module(argument_spec, run)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: password_secret
short_description: A Secret of generated passwords, created once and never printed
version_added: 0.2.0
description:
  - Creates a Secret whose keys hold random passwords, only when it does not exist (a create that the API server
    refuses when another run created it first, so two concurrent first runs end with one password). An existing
    Secret is never rewritten unless O(regenerate) is asked for, and never when the collection did not create it.
  - A missing Secret while a workload that reads it exists (O(used_by)) is an error, not a new password that the
    running pods do not know. With O(regenerate), the passwords are replaced (or the Secret created again) and
    every Deployment and StatefulSet of the namespace whose pods read the Secret is restarted, Redis and the
    servers together - each the way its owner does not undo (an MCPServer through the operator's restart
    annotation, a VirtualMCPServer's gateway and an MCPRemoteProxy by replacing their pods, Redis by C(kubectl rollout restart)).
  - With O(state=absent) the Secret is deleted only if the collection created it (its label
    C(app.kubernetes.io/managed-by=toolhive.k8s) and annotation C(toolhive.k8s/generated=true)); a Secret the user
    made is kept and reported.
  - Passwords never appear in the module's result, its diff or its messages.
author:
  - toolhive.k8s maintainers (@toolhive-k8s)
extends_documentation_fragment:
  - toolhive.k8s.auth
  - toolhive.k8s.attributes.writes
  - toolhive.k8s.generated_secret
options:
  keys:
    description: Keys that hold a generated password.
    type: list
    elements: str
    default: [password]
  values:
    description: Keys with fixed, non-secret values (a user name, say), written at creation.
    type: dict
    default: {}
  length:
    description: Length of each generated password (letters and digits).
    type: int
    default: 32
  used_by:
    description: Workloads that read the Secret; while one exists, a missing Secret is an error unless O(regenerate).
    type: list
    elements: dict
    default: []
    suboptions:
      kind:
        description: Kind of the workload.
        type: str
        required: true
        choices: [Deployment, StatefulSet]
      name:
        description: Name of the workload.
        type: str
        required: true
  regenerate:
    description:
      - Replace the passwords (or create the Secret anew) and restart every workload of the namespace whose pods
        read the Secret. Only for a Secret the collection created.
    type: bool
    default: false
  rotation:
    description:
      - A rotation in steps, for a server that can be told a new password while it runs (Redis, see the
        C(toolhive.k8s.pipeline) role), so that no client is locked out at any moment.
      - C(start) writes new passwords and keeps each previous one under C(previous-KEY), with the annotation
        C(toolhive.k8s/rotation) naming the rotation; nothing is restarted. A Secret already in a rotation (an
        earlier run stopped half-way) is kept as it is, and that rotation is returned to be finished. A missing
        Secret cannot be rotated (no one knows the password the running pods hold), so C(start) then acts as
        O(regenerate).
      - C(finish) removes the previous passwords and the annotation, once every reader holds the new ones.
      - Like O(regenerate), only for a Secret the collection created.
      - C(none) changes nothing of a rotation; RV(rotation) still says whether one is under way.
    type: str
    choices: [none, start, finish]
    default: none
attributes:
  diff_mode:
    support: none
    description: The content is secret; RV(created), RV(regenerated) and RV(deleted) say what changed.
"""

EXAMPLES = r"""
- name: The Redis password, generated once
  toolhive.k8s.password_secret:
    name: toolhive-redis-auth
    namespace: toolhive
    keys: [password]
    used_by:
      - {kind: Deployment, name: toolhive-redis}

- name: Rotate it; Redis and every server that reads it restart together
  toolhive.k8s.password_secret:
    name: toolhive-redis-auth
    namespace: toolhive
    regenerate: true

- name: Rotate it in steps; Redis learns the new password while it runs (see the pipeline role)
  toolhive.k8s.password_secret:
    name: toolhive-redis-auth
    namespace: toolhive
    rotation: start
  register: rotation

- name: Purge it, only if this collection generated it
  toolhive.k8s.password_secret:
    name: toolhive-redis-auth
    namespace: toolhive
    state: absent
"""

RETURN = r"""
created:
  description: The Secret was created by this task.
  returned: always
  type: bool
regenerated:
  description: The passwords were replaced by this task.
  returned: always
  type: bool
deleted:
  description: The Secret was deleted by this task.
  returned: always
  type: bool
kept:
  description: Why a Secret was kept with O(state=absent) (the collection did not create it), else empty.
  returned: always
  type: str
secret_keys:
  description: The keys the Secret holds (never their values).
  returned: always
  type: list
  elements: str
restarted:
  description: Workloads restarted after O(regenerate), as C(Kind/name).
  returned: always
  type: list
  elements: str
rotation:
  description: The name of the rotation under way (the Secret holds the previous passwords too), else empty.
  returned: always
  type: str
  sample: 3fa2c1
"""

import base64
import datetime
import secrets
import string

from ansible_collections.toolhive.k8s.plugins.module_utils import generated_secrets, kinds, restarts
from ansible_collections.toolhive.k8s.plugins.module_utils.client import run_module
from ansible_collections.toolhive.k8s.plugins.module_utils.errors import K8sError
from ansible_collections.toolhive.k8s.plugins.module_utils.generated_secrets import (
    GENERATED, MANAGED_BY, generated_by_us)

ROTATION = "toolhive.k8s/rotation"  # on the Secret while it holds the previous passwords too
PREVIOUS = "previous-"  # the key prefix of a previous password during a rotation
ALPHABET = string.ascii_letters + string.digits


def new_password(length):
    return "".join(secrets.choice(ALPHABET) for position in range(length))


def new_secret(params):
    data = {key: new_password(params["length"]) for key in params["keys"]}
    data.update({key: str(value) for key, value in params["values"].items()})
    return generated_secrets.new_secret(params["name"], params["namespace"], params["labels"], data)


def restart(client, namespace, workloads, check_mode):
    """New pods for every reader, each the way its owner does not undo:
    - a ToolHive server's workload: as its kind's row in kinds.SERVERS says (restart), the operator's own restart
      annotation on the server, or its pods deleted;
    - anything else (Redis): kubectl rollout restart, a new pod-template annotation."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    done = []
    for kind, item in workloads:
        meta = item["metadata"]
        owner = restarts.controller(item)
        how = kinds.SERVERS.get(owner.get("kind"), {}).get("restart")
        if how == "pods":
            selector = ",".join("%s=%s" % pair for pair in sorted(item["spec"]["selector"]["matchLabels"].items()))
            client.request("DELETE", kinds.path("Pod", namespace),
                           params={"labelSelector": selector, "dryRun": "All" if check_mode else None})
        elif how:
            client.patch(kinds.path(owner["kind"], namespace, owner["name"], api_version=owner["apiVersion"].split("/")[-1]),
                         {"metadata": {"annotations": {how["annotation"]: now}}}, dry_run=check_mode)
        else:
            body = {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}}}}
            client.patch(kinds.path(kind, namespace, meta["name"]), body, patch_type="strategic",
                         dry_run=check_mode)
        done.append("%s/%s" % (kind, meta["name"]))
    return done


def present(module, client, result):
    params = module.params
    namespace, name = params["namespace"], params["name"]
    wanted_keys = set(params["keys"]) | set(params["values"])
    existing = client.get_or_none(kinds.path("Secret", namespace, name))
    result["rotation"] = rotation_of(existing)
    regenerate = params["regenerate"] or (params["rotation"] == "start" and existing is None)
    if existing is not None and (regenerate or params["rotation"] == "start") and not generated_by_us(existing):
        raise K8sError("Secret %s/%s was not generated by this collection (no label %s=toolhive.k8s and "
                       "annotation %s=true): it is never rewritten. Fix: rotate it yourself, or name another "
                       "Secret" % (namespace, name, MANAGED_BY, GENERATED))
    if existing is not None and params["rotation"] == "start":
        return start_rotation(module, client, existing, result) if not result["rotation"] else result
    if existing is not None and params["rotation"] == "finish":
        return finish_rotation(module, client, existing, result)
    if existing is not None and not regenerate:
        missing = sorted(wanted_keys - set(existing.get("data") or {}))
        if missing:
            raise K8sError("Secret %s/%s exists but lacks the key(s) %s. Fix: add them to the Secret, or name "
                           "another Secret (it is created with every key when missing)"
                           % (namespace, name, ", ".join(missing)))
        result["secret_keys"] = sorted(existing.get("data") or {})
        return result
    if existing is None and not regenerate:
        running = [w for w in params["used_by"]
                   if client.get_or_none(kinds.path(w["kind"], namespace, w["name"])) is not None]
        if running:
            raise K8sError(
                "Secret %s/%s is missing while %s, which read(s) it, exist(s): its pods still use the old password, "
                "so a new one would lock the servers out. Fix: restore the Secret (same name and keys) from your "
                "backup, or set regenerate (redis_regenerate_password: true) to create a new password and "
                "restart Redis and every server that reads it together"
                % (namespace, name, ", ".join("%s %s" % (w["kind"], w["name"]) for w in running)))
    body = new_secret(params)
    if existing is None:
        if generated_secrets.create_once(client, body, module.check_mode):
            result.update(changed=True, created=True)
        else:
            # Another run created it between our read and our create: its password is the one.
            raced = client.get(kinds.path("Secret", namespace, name))
            result["secret_keys"] = sorted(raced.get("data") or {})
            module.warn("Secret %s/%s was created by another run at the same moment; its password is kept"
                        % (namespace, name))
            return result
    else:
        body["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]  # a racing change: 409
        body["metadata"]["labels"] = dict(existing["metadata"].get("labels") or {}, **body["metadata"]["labels"])
        client.replace(kinds.path("Secret", namespace, name), body, dry_run=module.check_mode)
        result.update(changed=True, regenerated=True)
    result["secret_keys"] = sorted(wanted_keys)
    if regenerate:
        result["restarted"] = restart(client, namespace, restarts.readers(client, namespace, name), module.check_mode)
    return result


def rotation_of(secret):
    return ((secret or {}).get("metadata", {}).get("annotations") or {}).get(ROTATION, "")


def _replace(module, client, existing, data, annotations):
    meta = existing["metadata"]
    body = {"apiVersion": "v1", "kind": "Secret", "type": existing.get("type", "Opaque"), "data": data,
            "metadata": {"name": meta["name"], "namespace": meta["namespace"], "labels": meta.get("labels") or {},
                         "annotations": annotations,
                         "resourceVersion": meta["resourceVersion"]}}  # a racing change is a 409
    client.replace(kinds.path("Secret", existing["metadata"]["namespace"], existing["metadata"]["name"]), body,
                   dry_run=module.check_mode)


def start_rotation(module, client, existing, result):
    """New passwords for the generated keys, each previous one kept as PREVIOUS + key, the rotation named."""
    params, data = module.params, dict(existing.get("data") or {})
    for key in params["keys"]:
        if key in data:
            data[PREVIOUS + key] = data[key]
        data[key] = base64.b64encode(new_password(params["length"]).encode("ascii")).decode("ascii")
    rotation = secrets.token_hex(3)
    _replace(module, client, existing, data, dict(existing["metadata"].get("annotations") or {}, **{ROTATION: rotation}))
    result.update(changed=True, regenerated=True, rotation=rotation, secret_keys=sorted(data))
    return result


def finish_rotation(module, client, existing, result):
    """The previous passwords and the rotation's name removed: only the new passwords open the server now."""
    data = existing.get("data") or {}
    result["secret_keys"] = sorted(k for k in data if not k.startswith(PREVIOUS))
    if not result["rotation"]:
        return result
    annotations = {k: v for k, v in (existing["metadata"].get("annotations") or {}).items() if k != ROTATION}
    _replace(module, client, existing, {k: v for k, v in data.items() if not k.startswith(PREVIOUS)}, annotations)
    result.update(changed=True, rotation="")
    return result


def absent(module, client, result):
    params = module.params
    result, existing = generated_secrets.delete_if_ours(client, params["namespace"], params["name"], result,
                                                        module.check_mode)
    if result.get("kept"):
        module.warn(result["kept"])
    if existing is not None:
        result["secret_keys"] = sorted(existing.get("data") or {})
    return result


def run(module, client):
    result = dict(changed=False, created=False, regenerated=False, deleted=False, kept="", secret_keys=[], restarted=[],
                  rotation="")
    if module.params["state"] == "absent":
        return absent(module, client, result)
    return present(module, client, result)


def main():
    argument_spec = dict(
        name=dict(type="str", required=True),
        namespace=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        keys=dict(type="list", elements="str", default=["password"], no_log=False),
        values=dict(type="dict", default={}),
        length=dict(type="int", default=32),
        labels=dict(type="dict", default={}),
        used_by=dict(type="list", elements="dict", default=[], options=restarts.WORKLOAD_OPTIONS),
        regenerate=dict(type="bool", default=False),
        rotation=dict(type="str", choices=["none", "start", "finish"], default="none"),
    )
    run_module(argument_spec, run)


if __name__ == "__main__":
    main()

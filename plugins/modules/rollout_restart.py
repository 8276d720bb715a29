#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: rollout_restart
short_description: New pods for the workloads that read a Secret, one pod at a time, without a failed request
version_added: 0.3.0
description:
  - Finds every Deployment and StatefulSet of O(namespace) whose pods read the Secret O(secret) (an env
    C(secretKeyRef), an C(envFrom) or a volume), such as a ToolHive server's proxy or gateway reading the Redis
    password, and replaces each of their pods, one workload after the other and one pod at a time. A new pod reads
    the Secret as it is now.
  - "A Deployment's pod is replaced so that no client is sent to it once it stops: it leaves its ReplicaSet (its
    C(pod-template-hash) label changed), so the ReplicaSet makes a replacement from the same template while the pod
    still serves; once the replacement is ready, the pod leaves its Services (one selector label removed, never
    C(toolhive), C(app) or C(app.kubernetes.io/name)); once no EndpointSlice lists it, and 3 s later, it is
    deleted and ends in its grace period. The pod carries the annotation C(toolhive.k8s/draining) meanwhile."
  - The workloads' templates are not changed, so there is no rollout for the ToolHive operator to undo, and the
    number of ready pods never drops below the wanted replicas. A StatefulSet's pods cannot be doubled; each is
    deleted in turn, and the next only once its replacement is ready and listed as ready in its Services'
    EndpointSlices (and 3 s later).
  - A pod that a stopped run left draining (out of its ReplicaSet) is taken out of its Services and deleted first.
  - A pod that cannot start (an image that cannot be pulled, a crash loop) fails the task at once, naming the pod
    and its reason; the workloads not yet restarted are left as they were.
author:
  - toolhive.k8s maintainers (@toolhive-k8s)
extends_documentation_fragment:
  - toolhive.k8s.auth
  - toolhive.k8s.attributes.writes
options:
  namespace:
    description: The namespace of the Secret and of the workloads.
    type: str
    required: true
  secret:
    description: The Secret whose readers are restarted.
    type: str
    required: true
  skip:
    description: Workloads that read the Secret and are left alone (the Redis that the Secret is the password of).
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
  wait_timeout:
    description: Seconds to wait, in all, for the replacements of one workload's pods.
    type: int
    default: 300
attributes:
  diff_mode:
    support: none
    description: Nothing is configured, pods are replaced; RV(restarted) says which workloads.
"""

EXAMPLES = r"""
- name: New pods for every server that reads the Redis password, one server at a time
  toolhive.k8s.rollout_restart:
    namespace: toolhive
    secret: toolhive-redis-auth
    skip:
      - {kind: Deployment, name: toolhive-redis}
"""

RETURN = r"""
restarted:
  description: The workloads restarted (or, in check mode, that would be), in order, as C(Kind/name).
  returned: always
  type: list
  elements: str
  sample: [Deployment/shared, Deployment/time]
replaced_pods:
  description: The pods replaced, in order.
  returned: always
  type: list
  elements: str
leftovers:
  description: Pods a stopped run had left draining, taken out of their Services and deleted first.
  returned: always
  type: list
  elements: str
"""

import time

from ansible_collections.toolhive.k8s.plugins.module_utils import restarts
from ansible_collections.toolhive.k8s.plugins.module_utils.client import run_module
from ansible_collections.toolhive.k8s.plugins.module_utils.errors import K8sError, Refused


def run(module, client):
    params = module.params
    namespace, skip = params["namespace"], {(entry["kind"], entry["name"]) for entry in params["skip"]}
    found = [(kind, obj) for kind, obj in restarts.readers(client, namespace, params["secret"])
             if (kind, obj["metadata"]["name"]) not in skip]
    left = restarts.leftovers(client, namespace)
    result = dict(changed=bool(found or left), restarted=[], replaced_pods=[],
                  leftovers=[pod["metadata"]["name"] for pod in left])
    if module.check_mode:
        result["restarted"] = ["%s/%s" % (kind, obj["metadata"]["name"]) for kind, obj in found]
        return result
    deadline = time.time() + params["wait_timeout"]
    for pod in left:
        restarts.finish_draining(client, pod, deadline)
    for kind, obj in found:
        ref = "%s/%s" % (kind, obj["metadata"]["name"])
        try:
            result["replaced_pods"] += restarts.replace_pods(client, kind, obj, params["wait_timeout"])
        except K8sError as exc:
            raise Refused("restarting %s: %s. %s" % (ref, exc, (
                "Restarted before it: %s." % ", ".join(result["restarted"])) if result["restarted"]
                else "Nothing was restarted before it."), status=exc.status, **result)
        result["restarted"].append(ref)
    return result


def main():
    run_module(dict(
        namespace=dict(type="str", required=True),
        secret=dict(type="str", required=True, no_log=False),
        skip=dict(type="list", elements="dict", default=[], options=restarts.WORKLOAD_OPTIONS),
        wait_timeout=dict(type="int", default=300),
    ), run)


if __name__ == "__main__":
    main()

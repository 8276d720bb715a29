# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ToolHive resources, the workloads the operator runs for them, and their HPAs.

The workload is found from the resource itself (labels and the controller
owner reference), never from a guessed name: a VirtualMCPServer `v` runs
Deployment `v` (the public guide's `vmcp-v` is the Service).
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.toolhive.k8s.plugins.module_utils import kinds
from ansible_collections.toolhive.k8s.plugins.module_utils.errors import K8sError
from ansible_collections.toolhive.k8s.plugins.module_utils.kinds import GROUP, PLURALS
from ansible_collections.toolhive.k8s.plugins.module_utils.waiter import Outage


def get_resource(client, kind, name, namespace, api_version="v1beta1"):
    try:
        return client.get(kinds.path(kind, namespace, name, api_version=api_version))
    except K8sError as exc:
        if exc.status == 404:
            if exc.details.get("name") == name or "not found" in str(exc):
                crd = client.get_or_none(kinds.path("CustomResourceDefinition", name="%s.%s" % (PLURALS[kind], GROUP)))
                if crd is None:
                    raise K8sError(crds_missing_message([kind]), status=404)
                raise K8sError("%s %s/%s does not exist: check the name and the namespace"
                               % (kind, namespace, name), status=404)
        raise


def crds_missing_message(kinds):
    return ("the ToolHive CRDs for %s are not installed (the ToolHive operator is missing): install them with "
            "the role toolhive.k8s.operator, or `helm upgrade --install toolhive-operator-crds "
            "oci://ghcr.io/stacklok/toolhive/toolhive-operator-crds` and the toolhive-operator chart"
            % ", ".join(sorted(set(kinds))))


def _labelled_for(obj, resource_kind, name, role):
    labels = obj["metadata"].get("labels") or {}
    if role == "backend":
        # The real proxy runner (v0.44.0, seen on running pods) labels it app=NAME, toolhive-name=NAME,
        # toolhive=true and nothing else; app.kubernetes.io/instance is what the operator's own objects carry.
        return labels.get("toolhive-name") == name or labels.get("app.kubernetes.io/instance") == name
    return (labels.get("app.kubernetes.io/instance") == name
            and labels.get("app") == kinds.SERVERS[resource_kind]["app_label"])


def _owned_by(obj, kind, name):
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("kind") == kind and ref.get("name") == name and ref.get("controller"):
            return True
    return False


class Workload:
    """A Deployment or StatefulSet that runs (part of) a ToolHive resource."""

    def __init__(self, role, kind, name, namespace, obj):
        self.role = role
        self.kind = kind
        self.name = name
        self.namespace = namespace
        self.obj = obj

    @property
    def exists(self):
        return self.obj is not None

    @property
    def spec_replicas(self):
        return (self.obj or {}).get("spec", {}).get("replicas")

    def counts(self):
        status = (self.obj or {}).get("status", {})
        return {
            "kind": self.kind, "name": self.name, "role": self.role, "exists": self.exists,
            "spec": self.spec_replicas, "current": status.get("replicas", 0),
            "ready": status.get("readyReplicas", 0), "updated": status.get("updatedReplicas", 0),
        }

    def pod_spec(self):
        return (self.obj or {}).get("spec", {}).get("template", {}).get("spec")

    def path(self, subresource=None):
        return kinds.path(self.kind, self.namespace, self.name, subresource)

    def kubectl_ref(self):
        return "%s/%s" % (self.kind.lower(), self.name)


def find_workload(client, resource_kind, name, namespace, role):
    """The workload of one role ("vmcp", "proxy", "backend") of a ToolHive resource.

    Returns a Workload whose obj is None when the operator has not created it (yet).
    """
    kind = kinds.workload_kind(resource_kind, role)
    # The namespace's whole list, filtered here: one request that a ReadCache shares between many resources.
    items = [i for i in client.get(kinds.path(kind, namespace)).get("items", [])
             if _labelled_for(i, resource_kind, name, role)]
    owned = [i for i in items if _owned_by(i, resource_kind, name)]
    # The backend StatefulSet is created by the proxy runner, not the operator, with no owner reference:
    # its name and labels say whose it is.
    candidates = owned or [i for i in items if role == "backend" and i["metadata"]["name"] == name]
    obj = candidates[0] if candidates else None
    return Workload(role, kind, obj["metadata"]["name"] if obj else name, namespace, obj)


def wait_for_workload(client, resource_kind, name, namespace, role, timeout):
    """find_workload, asked again every second for up to TIMEOUT seconds until the workload exists (the operator
    creates it after the resource; transient failures are waited out as in every wait)."""
    deadline, failures = time.time() + timeout, Outage()
    what = "the %s of %s %s/%s" % (role, resource_kind, namespace, name)
    while True:
        workload = failures.read(lambda: find_workload(client, resource_kind, name, namespace, role), deadline, what)
        if workload.exists or time.time() >= deadline:
            return workload
        time.sleep(1)


def hpas_for(client, namespace, workloads):
    """{role: hpa} for HPAs whose scaleTargetRef is one of the workloads."""
    items = client.get(kinds.path("HorizontalPodAutoscaler", namespace)).get("items", [])
    found = {}
    for workload in workloads:
        for hpa in items:
            ref = hpa.get("spec", {}).get("scaleTargetRef", {})
            if ref.get("kind") == workload.kind and ref.get("name") == workload.name:
                found[workload.role] = hpa
    return found


def hpa_summary(hpa):
    spec, status = hpa.get("spec", {}), hpa.get("status", {})
    metrics = []
    for metric in status.get("currentMetrics") or []:
        resource = metric.get("resource") or {}
        if resource.get("current", {}).get("averageUtilization") is not None:
            metrics.append("%s %s%%" % (resource.get("name"), resource["current"]["averageUtilization"]))
    conditions = {c["type"]: c for c in status.get("conditions") or []}
    active = conditions.get("ScalingActive", {})
    return {
        "name": hpa["metadata"]["name"], "min_replicas": spec.get("minReplicas"),
        "max_replicas": spec.get("maxReplicas"), "current_replicas": status.get("currentReplicas"),
        "desired_replicas": status.get("desiredReplicas"), "current_metrics": metrics,
        "scaling_active": active.get("status"), "scaling_active_reason": active.get("reason"),
    }


def describe_conditions(resource):
    conditions = (resource or {}).get("status", {}).get("conditions") or []
    if not conditions:
        return "The resource reports no conditions."
    return "Conditions: " + "; ".join("%s=%s (%s)" % (c.get("type"), c.get("status"), c.get("reason"))
                                      for c in conditions)

# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What keeps a server answering while its pods are replaced, evicted or placed: the pod settings the deploy writes
into each server's spec, and the PodDisruptionBudgets it owns. Data in, manifests out; what differs between the
kinds is kinds.SERVERS (each workload's pods, the CRD field that reaches its pod template, its shutdown time).

- Drain: a stopping pod still receives requests until every node has seen its endpoint go. A preStop sleep keeps
  it serving that long; the grace period covers the sleep and the process's own shutdown.
- Ready when listening: a new pod receives requests once it is Ready. A container with no readiness probe is Ready
  when its process starts, before it listens, so the workloads that have none get a TCP probe on their port.
- Spread: a workload's pods on different nodes where the scheduler can (ScheduleAnyway: a one-node cluster still
  runs them all), counted per revision, so a rollout spreads the new pods too.
- Budgets: one pod of a workload evicted at a time (maxUnavailable 1, so a single replica never blocks a node
  drain); a pod that is not ready may always go, so a crashing pod never blocks one either.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.toolhive.k8s.plugins.module_utils.kinds import SERVERS, pod_labels

HOSTNAME = "kubernetes.io/hostname"
# The label a controller gives each revision's pods.
REVISION_LABEL = {"Deployment": "pod-template-hash", "StatefulSet": "controller-revision-hash"}
DEFAULT_GRACE_SECONDS = 30  # Kubernetes' own, and what the operator sets where it sets one
BUDGET_LABELS = {"app.kubernetes.io/managed-by": "toolhive.k8s", "app.kubernetes.io/component": "disruption-budget"}


def spread(labels, workload_kind):
    return [{"maxSkew": 1, "topologyKey": HOSTNAME, "whenUnsatisfiable": "ScheduleAnyway",
             "labelSelector": {"matchLabels": labels}, "matchLabelKeys": [REVISION_LABEL[workload_kind]]}]


def listening(port):
    """A readiness probe that passes once the container accepts connections on PORT, asked every second so that a
    new pod is Ready about a second after it listens (a TCP connect a second costs the server nothing)."""
    return {"tcpSocket": {"port": port}, "periodSeconds": 1, "failureThreshold": 3}


def pod_fields(kind, name, resources=None, annotations=None, drain_seconds=0, spread_pods=False, listen_port=None):
    """The spec fields of server NAME that set its pods: podTemplateSpec (RESOURCES of the container it reaches, pod
    ANNOTATIONS, the drain, the spread, and where the workload has no readiness probe of its own
    (SERVERS' probe_listening), one on LISTEN_PORT). A workload whose pod template the operator writes whole gets
    none."""
    fields = {}
    for role, workload in SERVERS[kind]["workloads"].items():
        labels = pod_labels(kind, role, name)
        if workload["pod_template"] != "podTemplateSpec":
            continue
        container = {"name": workload["container"]}
        if resources:
            container["resources"] = resources
        if listen_port and workload.get("probe_listening"):
            container["readinessProbe"] = listening(listen_port)
        spec = {}
        if drain_seconds:
            container["lifecycle"] = {"preStop": {"sleep": {"seconds": drain_seconds}}}
            spec["terminationGracePeriodSeconds"] = max(DEFAULT_GRACE_SECONDS, drain_seconds + workload["stop_seconds"])
        if len(container) > 1:
            spec["containers"] = [container]
        if spread_pods:
            spec["topologySpreadConstraints"] = spread(labels, workload["kind"])
        pod = {"metadata": {"annotations": annotations}} if annotations else {}
        if spec:
            pod["spec"] = spec
        if pod:
            fields["podTemplateSpec"] = pod
    return fields


def disruption_budgets(kind, name, namespace, labels=None):
    """One PodDisruptionBudget per workload of server NAME, named NAME-ROLE, carrying LABELS and BUDGET_LABELS."""
    return [{"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
             "metadata": {"name": "%s-%s" % (name, role), "namespace": namespace,
                          "labels": dict(labels or {}, **dict(BUDGET_LABELS, **{"app.kubernetes.io/instance": name}))},
             "spec": {"maxUnavailable": 1, "unhealthyPodEvictionPolicy": "AlwaysAllow",
                      "selector": {"matchLabels": pod_labels(kind, role, name)}}}
            for role in SERVERS[kind]["workloads"]]

# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rules that keep a ToolHive deployment out of the operator's way.

Pure functions on resource specs: preflight (before the roles write), scale,
autoscale and status (findings) all ask the same questions here.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.toolhive.k8s.plugins.module_utils import kinds
from ansible_collections.toolhive.k8s.plugins.module_utils.kinds import replica_fields  # noqa: F401 (re-exported)

SCALED_KINDS = tuple(kinds.SERVERS)


# What a change of an MCPServer's spec costs (kinds.SERVERS "spec_change_rolls"): label, then the field changed.
SPEC_CHANGE_ROLLS = (
    "%s: the operator rolls every proxy pod and restarts the backend on any change of the MCPServer, %s too (it "
    "stamps the MCPServer's generation on the proxy's pod template): the proxy's pods stop without a drain, and the "
    "sessions a backend keeps in memory end.")


def transport(kind, spec):
    """The resource's transport, else its CRD's default (kinds.SERVERS): stdio for an MCPServer; vMCP speaks HTTP."""
    return (spec or {}).get("transport") or kinds.SERVERS.get(kind, {}).get("transport", "streamable-http")


def is_stdio(kind, spec):
    return transport(kind, spec) == "stdio"


def has_redis(spec):
    """Redis session storage in the resource itself."""
    storage = (spec or {}).get("sessionStorage") or {}
    return storage.get("provider") == "redis"


def uses_operator_redis(kind, spec, operator_redis):
    """Whether the operator's global Redis default (operator.default_redis(), or None) serves this resource's
    sessions, by the kind's rule (kinds.SERVERS default_redis)."""
    if not operator_redis:
        return False
    if kinds.SERVERS[kind]["default_redis"] == "unless_redis":
        return not has_redis(spec)
    return not (spec or {}).get("sessionStorage")


def shares_sessions(kind, spec, operator_redis=None):
    return has_redis(spec) or uses_operator_redis(kind, spec, operator_redis)


def field_for_target(kind, target):
    return kinds.SERVERS[kind]["workloads"][kinds.role_for_target(kind, target)]["field"]


def label(kind, namespace, name):
    return "%s %s/%s" % (kind, namespace, name)


def stdio_replica_problem(kind, spec, field, replicas):
    if replicas is not None and replicas > 1 and is_stdio(kind, spec):
        if field == "backendReplicas":
            why = "extra backend pods of a stdio server are never used"
        else:
            why = "the operator caps a stdio proxy at 1 replica (StdioReplicaCapped) and scales it back"
        return ("spec.%s=%d with transport stdio: %s. Fix: keep %s at 1, or switch the server to "
                "transport streamable-http to scale it" % (field, replicas, why, field))
    return None


def session_storage_problem(kind, spec, field, replicas, operator_redis=None):
    if replicas is not None and replicas > 1 and not shares_sessions(kind, spec, operator_redis):
        return ("spec.%s=%d without Redis session storage: each replica keeps its own sessions, so clients "
                "lose them when routed to another pod (SessionStorageWarning). Fix: set "
                "sessionStorage {provider: redis, address, keyPrefix, passwordRef} (role toolhive.k8s.redis), "
                "give the operator a default Redis (role toolhive.k8s.operator, operator_default_redis), "
                "or opt in explicitly with allow_without_session_storage: true" % (field, replicas))
    return None


def key_prefix_problem(spec):
    storage = (spec or {}).get("sessionStorage") or {}
    prefix = storage.get("keyPrefix")
    if prefix is not None and not str(prefix).endswith(":"):
        return ("spec.sessionStorage.keyPrefix=%r does not end with ':' (the operator accepts it, the pods then "
                "fail at start). Fix: use %r" % (prefix, "%s:" % prefix))
    return None


def redis_address_problem(spec):
    storage = (spec or {}).get("sessionStorage") or {}
    if storage.get("provider") == "redis" and not storage.get("address"):
        return "spec.sessionStorage.provider=redis without address. Fix: set sessionStorage.address to host:port"
    return None


def missing_requests_problem(kind, role, pod_spec, resources):
    """Why an HPA on the utilization of RESOURCES ("cpu", "memory") of a workload with POD_SPEC could never act,
    or None: the HPA needs a request for it in every container (else ScalingActive False, FailedGetResourceMetric).
    A limit alone counts: a pod's request defaults to its limit."""
    def sets(container, resource):
        wanted = container.get("resources") or {}
        return resource in (wanted.get("requests") or {}) or resource in (wanted.get("limits") or {})
    containers = (pod_spec or {}).get("containers") or []
    missing = [(resource, [c.get("name") for c in containers if not sets(c, resource)]) for resource in resources]
    missing = [(resource, names) for resource, names in missing if names]
    if not missing:
        return None
    return ("the pods have no %s request in container %s, so the HPA can never compute their utilization and "
            "never scales (ScalingActive False, FailedGetResourceMetric). Fix: give them one through %s" % (
                " or ".join(resource for resource, _names in missing),
                ", ".join(sorted({name for _resource, names in missing for name in names})),
                kinds.SERVERS[kind]["workloads"][role]["requests_from"]))


def check_resource(manifest, autoscaled_fields=(), allow_without_session_storage=False, operator_redis=None):
    """Problems of one rendered ToolHive manifest: (errors, warnings), each naming field and fix.

    autoscaled_fields: the replica fields ("replicas"/"backendReplicas") of this
    resource whose workload the same play gives an HPA. operator_redis: the operator's global Redis default.
    """
    kind = manifest.get("kind")
    meta = manifest.get("metadata") or {}
    spec = manifest.get("spec") or {}
    prefix = label(kind, meta.get("namespace"), meta.get("name")) + ": "
    errors, warnings = [], []
    if kind not in SCALED_KINDS:
        return errors, warnings
    for field in replica_fields(kind):
        replicas = spec.get(field)
        problem = stdio_replica_problem(kind, spec, field, replicas)
        if problem:
            errors.append(prefix + problem)
            continue
        if field in autoscaled_fields and replicas is not None:
            errors.append(prefix + "spec.%s=%d is set while this play gives the workload an HPA: the operator "
                                   "and the HPA would fight over the count. Fix: leave %s out of the resource "
                                   "when autoscaling it" % (field, replicas, field))
        problem = session_storage_problem(kind, spec, field, replicas, operator_redis)
        if problem:
            (warnings if allow_without_session_storage else errors).append(prefix + problem)
    for problem in (key_prefix_problem(spec), redis_address_problem(spec)):
        if problem:
            errors.append(prefix + problem)
    return errors, warnings


def findings(kind, spec, workloads, hpas, operator_redis=None):
    """Plain sentences about a deployed resource: what will hurt, and why.

    workloads: {role: {"spec": n, "ready": n, ...}}; hpas: {role: hpa dict}; operator_redis: the operator's
    global Redis default (operator.default_redis()), or None.
    """
    spec = spec or {}
    sentences = []
    counts = [w.get("spec") or 0 for w in workloads.values()] + \
             [spec.get(f) or 0 for f in replica_fields(kind)]
    most = max(counts or [0])
    if most > 1 and uses_operator_redis(kind, spec, operator_redis):
        sentences.append("%d replicas share sessions through the operator's default Redis %s (%s); the operator's "
                         "SessionStorageWarning condition does not know that default." %
                         (most, operator_redis["address"], operator_redis["source"]))
    elif most > 1 and not has_redis(spec):
        sentences.append("%d replicas without Redis session storage: sessions are not shared between pods."
                         % most)
    for role, hpa in hpas.items():
        field = kinds.SERVERS[kind]["workloads"][role]["field"]
        if spec.get(field) is not None:
            sentences.append("HPA %s targets the %s workload while spec.%s=%s is set: the operator and the HPA "
                             "fight over the count; remove spec.%s." % (hpa["name"], role, field, spec[field], field))
    if is_stdio(kind, spec):  # as in check_resource: a kind whose CRD has no stdio never has it in its spec
        for field in replica_fields(kind):
            if (spec.get(field) or 0) > 1:
                sentences.append("stdio server with spec.%s=%s: it runs one replica only." % (field, spec[field]))
        for role, workload in workloads.items():
            if (workload.get("spec") or 0) > 1:
                sentences.append("stdio server's %s workload runs %s replicas: only one is ever used."
                                 % (role, workload["spec"]))
    affinity = spec.get("sessionAffinity") or "ClientIP"
    if affinity == "ClientIP" and most > 1:
        sentences.append("sessionAffinity ClientIP with %d replicas: clients behind one NAT all land on one pod; "
                         "use None for a stateless server." % most)
    problem = key_prefix_problem(spec)
    if problem:
        sentences.append(problem.split(". Fix")[0] + ".")
    return sentences

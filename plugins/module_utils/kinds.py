# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the collection knows about each kind it reads or writes: data, not code.

SERVERS describes the ToolHive kinds that run and scale (what differs between them is here and in
their template, nothing else: the plugins read this table, never test which of them a resource is): the
plural, the ``app`` label the operator puts on their workloads, each workload role with its kind, the spec
field that sets its replica count, the container the role's resources go to and the name of the HPA
toolhive.k8s.autoscale gives it, the labels of its pods (pods), the CRD field that reaches its pod template
(pod_template), how long its process drains after SIGTERM (stop_seconds) and whether its container lacks a
readiness probe of its own (probe_listening), the Service clients use and its port, the transport a resource runs when
its spec names none, the word the findings call it (called) and why it may answer with no tools
(no_tools), the role whose variables wire its session storage, whose sessions the operator's global Redis
default serves (default_redis), and how toolhive.k8s.password_secret gives its workloads new pods
(restart). API says where each kind the collection touches lives in the API, and path() builds every API
path from it; APPLIED are the kinds a manifest may hold.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.toolhive.k8s.plugins.module_utils.values import path_segment

GROUP = "toolhive.stacklok.dev"
# The labels that select the pods of a workload the operator makes ({app}: the kind's app_label): the Deployment's
# own selector (labelsForMCPServer, labelsForVirtualMCPServer, labelsForMCPRemoteProxy, v0.44.0 to v0.66.0).
DEPLOYMENT_PODS = {"app.kubernetes.io/name": "{app}", "app.kubernetes.io/instance": "{name}"}

SERVERS = {
    "VirtualMCPServer": {
        "plural": "virtualmcpservers",
        "app_label": "virtualmcpserver",
        "workloads": {
            # podTemplateSpec: the CRD field merged into this workload's pod template (strategic merge, so a
            # container's lifecycle and the pod's grace period and spread are kept); stop_seconds: how long its
            # process drains after SIGTERM (pkg/vmcp/server defaultShutdownTimeout).
            # requests_from: where its pods' resource requests are set (the resource's field, the role's variable).
            "vmcp": {"kind": "Deployment", "field": "replicas", "container": "vmcp", "hpa": "{name}",
                     "pods": DEPLOYMENT_PODS, "pod_template": "podTemplateSpec", "stop_seconds": 10,
                     "requests_from": "podTemplateSpec (vmcp_instances: resources)"},
        },
        "service": "vmcp-{name}",
        "port": 4483,  # the gateway's Service port
        "transport": "streamable-http",  # no transport field: the gateway speaks streamable HTTP
        "called": "gateway",  # in the findings' sentences
        # Why it answers the MCP check but lists no tools (mcp_findings).
        "no_tools": "its group has no MCPServers, or it has not discovered them yet (toolhive.k8s.status shows its "
                    "conditions)",
        "role": "vmcp",  # the role whose variables wire its session storage
        # When the operator's global Redis default (operator.default_redis()) serves its sessions, as its controller
        # decides (v0.44.0 to v0.66.0): "unless_redis", whatever sessionStorage says unless its provider is redis, or
        # "if_unset", only without sessionStorage. Here its Deployment gets the default's password only without
        # sessionStorage (virtualmcpserver_deployment.go buildRedisPasswordEnvVar); its config still names the
        # default's address for a provider other than redis (vmcpconfig/converter.go convertSessionStorage).
        "default_redis": "if_unset",
        # How password_secret gives its workload new pods when a password changes: "pods", deleted, since its
        # operator reverts any change to the pod template (v0.44.0 podTemplateMetadataNeedsUpdate compares the
        # annotations whole), or {"annotation": A}, the operator's own restart annotation A set on the resource.
        "restart": "pods",
        "spec_change_rolls": False,  # only a change of its pod template rolls its Deployment
    },
    "MCPServer": {
        "plural": "mcpservers",
        "app_label": "mcpserver",
        "workloads": {
            # The operator writes this pod template whole (deploymentForMCPServer: grace period 30, no lifecycle)
            # and passes podTemplateSpec to the backend; its pods get their drain from the operator role's
            # MutatingAdmissionPolicy (roles/operator/templates/mcpserver-proxy-drain.yaml.j2). Only its affinity can be set, through
            # resourceOverrides.proxyDeployment, from ToolHive v0.45.0 on (the oldest supported release lacks it).
            "proxy": {"kind": "Deployment", "field": "replicas", "container": "toolhive", "hpa": "{name}",
                      "pods": DEPLOYMENT_PODS, "pod_template": None,
                      "requests_from": "spec.resources (mcpserver_servers: resources)"},
            # Created by the proxy runner, not the operator, and labelled toolhive-name=NAME. The runner applies a
            # changed spec.image only once its new pod starts: until the container runs spec.image, the
            # StatefulSet's revision is the old spec's ("spec_image": the spec field its container's image is).
            # Its pods: app=NAME (the selector) and toolhive-basename=NAME, which the proxy's pods lack (an MCPServer
            # named mcpserver gives both app=mcpserver). The runner starts from podTemplateSpec's pod spec; the
            # server's own shutdown time is unknown (Kubernetes' default grace period, 30 s). Neither the operator
            # nor the runner gives its container a readiness probe (v0.44.0 to v0.66.0: a pod is Ready as soon as
            # its process starts, before it listens): "probe_listening", the collection gives it a TCP one on the
            # port the server listens on. The other workloads have the operator's own probes.
            "backend": {"kind": "StatefulSet", "field": "backendReplicas", "container": "mcp",
                        "hpa": "{name}-backend", "spec_image": "image",
                        "pods": {"app": "{name}", "toolhive-basename": "{name}"}, "pod_template": "podTemplateSpec",
                        "stop_seconds": 30, "probe_listening": True,
                        "requests_from": "podTemplateSpec (mcpserver_servers: backend_resources)"},
        },
        "service": "mcp-{name}-proxy",
        "port": 8080,  # the proxy's port when the spec names none (spec.proxyPort or spec.port)
        "transport": "stdio",  # the CRD's default
        "called": "server",
        "no_tools": "the backend offers none, or it is failing (see the backend's logs)",
        "role": "mcpserver",
        "default_redis": "unless_redis",  # mcpserver_runconfig.go populateScalingConfig
        # The operator's own rolling restart: this annotation on the MCPServer rolls its proxy's Deployment
        # (v0.44.0 mcpserver_controller.go RestartedAtAnnotationKey).
        "restart": {"annotation": "mcpserver.toolhive.stacklok.dev/restarted-at"},
        # Every change of the spec, its replica fields too, rolls the proxy's Deployment, and the new proxy pods roll
        # the backend's StatefulSet: the operator stamps the MCPServer's generation on the proxy's pod template
        # (v0.44.0 to v0.66.0, mcpserver_controller.go RunConfigMCPServerGenerationAnnotation; on running pods,
        # v0.47.0: 4 scales made 4 ReplicaSets and 4 StatefulSet revisions).
        "spec_change_rolls": True,
    },
    # v0.44.0 cmd/thv-operator/controllers: mcpremoteproxy_deployment.go (Deployment NAME, container "toolhive",
    # Replicas: spec.replicas), mcpremoteproxy_controller.go labelsForMCPRemoteProxy (app=mcpremoteproxy,
    # app.kubernetes.io/instance=NAME) and createProxyServiceName (mcp-NAME-remote-proxy).
    "MCPRemoteProxy": {
        "plural": "mcpremoteproxies",
        "app_label": "mcpremoteproxy",
        "workloads": {
            # The transparent proxy drains for 30 s after SIGTERM (transparent_proxy.go defaultShutdownTimeout).
            "proxy": {"kind": "Deployment", "field": "replicas", "container": "toolhive", "hpa": "{name}",
                      "pods": DEPLOYMENT_PODS, "pod_template": "podTemplateSpec", "stop_seconds": 30,
                      "requests_from": "spec.resources (mcpremoteproxy_proxies: resources)"},
        },
        "service": "mcp-{name}-remote-proxy",
        "port": 8080,
        "transport": "streamable-http",  # the CRD's default (enum sse, streamable-http)
        "called": "remote proxy",
        "no_tools": "the backend offers none, or it is failing (see the backend's logs)",
        "role": "mcpremoteproxy",
        "default_redis": "if_unset",  # mcpremoteproxy_runconfig.go populateScalingConfigForRemoteProxy
        "restart": "pods",  # as a VirtualMCPServer's (mcpremoteproxy_controller.go podTemplateMetadataNeedsUpdate)
        "spec_change_rolls": False,
    },
}

# kind: (API prefix, plural, namespaced). The ToolHive kinds take their version from the manifest (or the
# api_version option). Every API path is built from this table, by path().
API = {
    "Namespace": ("/api/v1", "namespaces", False),
    "ConfigMap": ("/api/v1", "configmaps", True),
    "Secret": ("/api/v1", "secrets", True),
    "Service": ("/api/v1", "services", True),
    "PersistentVolumeClaim": ("/api/v1", "persistentvolumeclaims", True),
    "Deployment": ("/apis/apps/v1", "deployments", True),
    "StatefulSet": ("/apis/apps/v1", "statefulsets", True),
    "NetworkPolicy": ("/apis/networking.k8s.io/v1", "networkpolicies", True),
    "HorizontalPodAutoscaler": ("/apis/autoscaling/v2", "horizontalpodautoscalers", True),
    "Lease": ("/apis/coordination.k8s.io/v1", "leases", True),
    "Job": ("/apis/batch/v1", "jobs", True),
    "PodDisruptionBudget": ("/apis/policy/v1", "poddisruptionbudgets", True),
    "MCPServer": ("/apis/" + GROUP, "mcpservers", True),
    "VirtualMCPServer": ("/apis/" + GROUP, "virtualmcpservers", True),
    "MCPRemoteProxy": ("/apis/" + GROUP, "mcpremoteproxies", True),
    "MCPGroup": ("/apis/" + GROUP, "mcpgroups", True),
    "MCPExternalAuthConfig": ("/apis/" + GROUP, "mcpexternalauthconfigs", True),
    # Read, waited on or deleted, never applied (NOT_APPLIED).
    "Pod": ("/api/v1", "pods", True),
    "Node": ("/api/v1", "nodes", False),
    "Event": ("/api/v1", "events", True),
    "ReplicaSet": ("/apis/apps/v1", "replicasets", True),
    "EndpointSlice": ("/apis/discovery.k8s.io/v1", "endpointslices", True),
    "CustomResourceDefinition": ("/apis/apiextensions.k8s.io/v1", "customresourcedefinitions", False),
}
NOT_APPLIED = ("Pod", "Node", "Event", "ReplicaSet", "EndpointSlice", "CustomResourceDefinition")
# The kinds a manifest given to toolhive.k8s.apply may hold.
APPLIED = tuple(kind for kind in API if kind not in NOT_APPLIED)


def path(kind, namespace=None, name=None, subresource=None, api_version="v1beta1", port=None,
         fields=("namespace", "name"), all_namespaces=False):
    """The API path of KIND's collection (in NAMESPACE, or across ALL_NAMESPACES), or of the object NAME
    (NAME:PORT for the API server's proxy to a pod or Service) and its SUBRESOURCE. The ToolHive kinds live at
    API_VERSION. Every namespace and name passes values.path_segment first: no value can walk the API (../, /,
    %2F); a refused one raises ValueError naming it as FIELDS (the user's words for the namespace and the name)."""
    prefix, plural, namespaced = API[kind]
    if prefix == "/apis/" + GROUP:
        prefix += "/" + api_version
    parts = [prefix]
    if namespaced and not all_namespaces:  # a missing namespace is refused, never read as every namespace
        parts += ["namespaces", path_segment(namespace, fields[0])]
    parts.append(plural)
    if name is not None:
        segment = path_segment(name, fields[1])
        parts.append(segment if port is None else "%s:%d" % (segment, port))
    if subresource:
        parts.append(subresource)
    return "/".join(parts)


PLURALS = {kind: plural for kind, (prefix, plural, namespaced) in API.items() if prefix == "/apis/" + GROUP}


def follows_spec(kind, role, spec, workload_obj):
    """Whether a workload's template already runs what the server's spec says, where the kinds table can tell (a
    backend's image): a workload made by another program catches up with the spec later."""
    field = SERVERS[kind]["workloads"][role].get("spec_image")
    if not field or not (spec or {}).get(field):
        return True
    container = SERVERS[kind]["workloads"][role]["container"]
    containers = (((workload_obj or {}).get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []
    return any(c.get("name") == container and c.get("image") == spec[field] for c in containers)


def roles_of(kind):
    """The workload roles of a server kind, in the order status reports them."""
    return tuple(SERVERS[kind]["workloads"])


def replica_fields(kind):
    return tuple(w["field"] for w in SERVERS[kind]["workloads"].values())


def role_for_target(kind, target):
    """The workload role a scale/autoscale `target` (proxy or backend) means for KIND."""
    workloads = SERVERS[kind]["workloads"]
    return target if target in workloads else next(iter(workloads))


def workload_kind(kind, role):
    return SERVERS[kind]["workloads"][role]["kind"]


def hpa_name(kind, role, name):
    return SERVERS[kind]["workloads"][role]["hpa"].format(name=name)


def service_name(kind, name):
    return SERVERS[kind]["service"].format(name=name)


def pod_labels(kind, role, name):
    """The labels that select the pods of NAME's ROLE workload."""
    labels = SERVERS[kind]["workloads"][role]["pods"]
    return {key: value.format(name=name, app=SERVERS[kind]["app_label"]) for key, value in labels.items()}

"""Every template renders values as data: a hostile value changes no document, no key, only its own value.

The templates are rendered by Ansible's own template lookup (as the roles do), with the value rules
bypassed, so this shows the templates alone hold: whatever a value holds, the manifests have the same
documents and keys, and the value arrives verbatim.
"""
import copy
from pathlib import Path

import pytest
import yaml

from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader, lookup_loader
import ansible.template
from ansible.template import Templar

if hasattr(ansible.template, "trust_as_template"):  # ansible-core 2.19+: only what is trusted is a template
    untrusted = str
else:  # before 2.19 every string is a template unless marked unsafe, as untrusted data is marked
    from ansible.utils.unsafe_proxy import wrap_var as untrusted

REPO = Path(__file__).resolve().parents[2]
HOSTILE = ["x\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nrules: [{verbs: ['*']}]",
           "a: b", "{a: b}", "}", "# comment", "'", '"', "017", "0x1f", "no", "null", "~", "- a", "|", "a\n  b: c",
           "{{ 7 * 7 }}", "../../api/v1/namespaces/kube-system"]

BASE = {
    "vmcp": ("roles/pipeline/templates/VirtualMCPServer.yaml.j2", {
        "vmcp_api_version": "v1beta1", "vmcp_namespace": "ns", "vmcp_group": "g", "vmcp_group_description": "d",
        "vmcp_instances": [{"name": "gw", "group": "g2", "replicas": 2, "session_affinity": "None",
                            "labels": {"team": "a"}, "resources": {"limits": {"cpu": "1"}},
                            "pod_annotations": {"a": "b"}}],
        "vmcp_drain_seconds": 10, "vmcp_spread_pods": True,
        "pipeline_redis_connection": {"mode": "standalone", "address": "r.ns.svc:6379", "password_secret": "s",
                                      "password_key": "k"},
    }),
    "mcpserver": ("roles/pipeline/templates/MCPServer.yaml.j2", {
        "mcpserver_api_version": "v1beta1", "mcpserver_namespace": "ns", "mcpserver_group": "g",
        "mcpserver_servers": [{"name": "fetch", "image": "img:1", "transport": "streamable-http", "mcp_port": 8080,
                               "replicas": 2, "args": ["--a"], "env": [{"name": "E", "value": "v"}],
                               "backend_resources": {"limits": {"cpu": "1"}}}],
        "mcpserver_drain_seconds": 10, "mcpserver_spread_pods": True, "mcpserver_backend_readiness_probe": True,
        "pipeline_redis_connection": {"mode": "standalone", "address": "r.ns.svc:6379", "password_secret": "s",
                                      "password_key": "k"},
    }),
    "remote": ("roles/pipeline/templates/MCPRemoteProxy.yaml.j2", {
        "mcpremoteproxy_api_version": "v1beta1", "mcpremoteproxy_namespace": "ns", "mcpremoteproxy_group": "g",
        "mcpremoteproxy_proxies": [{"name": "up", "remote_url": "https://mcp.example.com/mcp", "transport": "sse",
                                    "proxy_port": 8081, "replicas": 2, "session_affinity": "None",
                                    "labels": {"team": "a"}, "resources": {"limits": {"cpu": "1"}}}],
        "mcpremoteproxy_drain_seconds": 10, "mcpremoteproxy_spread_pods": True,
        "pipeline_redis_connection": {"mode": "standalone", "address": "r.ns.svc:6379", "password_secret": "s",
                                      "password_key": "k"},
    }),
    "standalone": ("roles/redis/templates/standalone.yaml.j2", {
        "redis_name": "r", "redis_namespace": "ns", "redis_image": "redis:7", "redis_port": 6379,
        "redis_maxmemory": "256mb", "redis_maxmemory_policy": "allkeys-lru", "redis_persistence": True,
        "redis_storage_class": "fast", "redis_storage_size": "1Gi", "redis_password_secret": "s",
        "redis_password_key": "k", "redis_resources": {}, "redis_network_policy": True,
        "pipeline_redis_tls_secret": "tls",
    }),
    "sentinel": ("roles/redis/templates/sentinel.yaml.j2", {
        "redis_name": "r", "redis_namespace": "ns", "redis_image": "redis:7", "redis_port": 6379,
        "redis_maxmemory": "256mb", "redis_maxmemory_policy": "allkeys-lru", "redis_password_secret": "s",
        "redis_password_key": "k", "redis_resources": {}, "redis_sentinel_replicas": 1, "redis_sentinel_quorum": 2,
        "redis_sentinel_master_name": "m", "redis_disable_default_user": True, "pipeline_redis_tls_secret": "tls",
        "redis_sentinel_discovery_without_auth": True,
        "redis_api_version": "v1beta1",
        "redis_auth_config": {"name": "auth", "embedded_auth_server": {"issuer": "https://i"}},
        "pipeline_cluster_domain": "cluster.local",
    }),
}

# (template, path of the string value inside BASE's variables)
STRING_VALUES = [
    ("vmcp", ("vmcp_namespace",)), ("vmcp", ("vmcp_group",)), ("vmcp", ("vmcp_group_description",)),
    ("vmcp", ("vmcp_instances", 0, "name")), ("vmcp", ("vmcp_instances", 0, "group")),
    ("vmcp", ("vmcp_instances", 0, "labels", "team")), ("vmcp", ("vmcp_instances", 0, "session_affinity")),
    ("vmcp", ("vmcp_instances", 0, "pod_annotations", "a")),
    ("mcpserver", ("mcpserver_namespace",)), ("mcpserver", ("mcpserver_group",)),
    ("mcpserver", ("mcpserver_servers", 0, "name")), ("mcpserver", ("mcpserver_servers", 0, "image")),
    ("mcpserver", ("mcpserver_servers", 0, "transport")), ("mcpserver", ("mcpserver_servers", 0, "args", 0)),
    ("mcpserver", ("mcpserver_servers", 0, "env", 0, "value")),
    ("mcpserver", ("pipeline_redis_connection", "password_secret")),
    ("remote", ("mcpremoteproxy_namespace",)), ("remote", ("mcpremoteproxy_group",)),
    ("remote", ("mcpremoteproxy_proxies", 0, "name")), ("remote", ("mcpremoteproxy_proxies", 0, "remote_url")),
    ("remote", ("mcpremoteproxy_proxies", 0, "transport")), ("remote", ("mcpremoteproxy_proxies", 0, "session_affinity")),
    ("remote", ("mcpremoteproxy_proxies", 0, "labels", "team")),
    ("remote", ("mcpremoteproxy_proxies", 0, "resources", "limits", "cpu")),
    ("remote", ("pipeline_redis_connection", "password_secret")), ("remote", ("pipeline_redis_connection", "address")),
    ("standalone", ("redis_name",)), ("standalone", ("redis_namespace",)), ("standalone", ("redis_image",)),
    ("standalone", ("redis_password_secret",)), ("standalone", ("redis_password_key",)),
    ("standalone", ("redis_storage_class",)), ("standalone", ("redis_storage_size",)),
    ("standalone", ("redis_maxmemory",)), ("standalone", ("pipeline_redis_tls_secret",)),
    ("sentinel", ("redis_name",)), ("sentinel", ("redis_namespace",)), ("sentinel", ("redis_image",)),
    ("sentinel", ("redis_password_secret",)), ("sentinel", ("redis_password_key",)),
    ("sentinel", ("pipeline_redis_tls_secret",)), ("sentinel", ("redis_sentinel_master_name",)),
    ("sentinel", ("redis_auth_config", "name")), ("sentinel", ("pipeline_cluster_domain",)),
]


@pytest.fixture(scope="module")
def render():
    init_plugin_loader()
    loader = DataLoader()
    lookup = lookup_loader.get("ansible.builtin.template", loader=loader, templar=Templar(loader=loader))

    def _render(name, variables):
        path = BASE[name][0]
        text = lookup.run([str(REPO / path)], variables)[0]
        return [doc for doc in yaml.safe_load_all(text) if doc]
    return _render


def shape(node, path=()):
    """Every key path and list length: what a value must not be able to change."""
    if isinstance(node, dict):
        out = {path + ("{}",)}
        for key, value in node.items():
            out |= shape(value, path + (key,))
        return out
    if isinstance(node, list):
        out = {path + ("[%d]" % len(node),)}
        for index, value in enumerate(node):
            out |= shape(value, path + (index,))
        return out
    return {path}


def leaves(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from leaves(value)
    elif isinstance(node, list):
        for value in node:
            yield from leaves(value)
    else:
        yield node


def set_at(variables, path, value):
    target = variables
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value


@pytest.mark.parametrize("template, path", STRING_VALUES, ids=lambda v: v if isinstance(v, str) else ".".join(map(str, v)))
def test_a_hostile_value_is_only_a_value(render, template, path):
    base = render(template, copy.deepcopy(BASE[template][1]))
    base_shape = [shape(doc) for doc in base]
    for hostile in HOSTILE:
        variables = copy.deepcopy(BASE[template][1])
        set_at(variables, path, untrusted(hostile))
        docs = render(template, variables)
        assert len(docs) == len(base), (hostile, [d.get("kind") for d in docs])
        assert [shape(doc) for doc in docs] == base_shape, hostile
        # The value arrives verbatim, as a string (not re-typed, not templated), somewhere in the output.
        found = [leaf for doc in docs for leaf in leaves(doc) if isinstance(leaf, str) and hostile in leaf]
        assert found, hostile
        assert not any(isinstance(leaf, str) and leaf == "49" for doc in docs for leaf in leaves(doc))


def test_the_base_renders_what_the_roles_apply(render):
    kinds = {name: [doc["kind"] for doc in render(name, copy.deepcopy(BASE[name][1]))] for name in BASE}
    assert kinds == {
        "vmcp": ["MCPGroup", "MCPGroup", "VirtualMCPServer"],
        "mcpserver": ["MCPServer"],
        "remote": ["MCPRemoteProxy"],
        "standalone": ["ConfigMap", "StatefulSet", "Service", "NetworkPolicy"],
        "sentinel": ["ConfigMap", "Service", "StatefulSet", "Service", "StatefulSet", "Service",
                     "MCPExternalAuthConfig"],
    }


def test_a_remote_proxy_renders_every_field_and_its_own_key_prefix(render):
    [proxy] = render("remote", copy.deepcopy(BASE["remote"][1]))
    assert proxy["apiVersion"] == "toolhive.stacklok.dev/v1beta1" and proxy["metadata"]["namespace"] == "ns"
    assert proxy["spec"] == {
        "remoteUrl": "https://mcp.example.com/mcp", "transport": "sse", "proxyPort": 8081, "replicas": 2,
        "sessionAffinity": "None", "resources": {"limits": {"cpu": "1"}}, "groupRef": {"name": "g"},
        "sessionStorage": {"provider": "redis", "address": "r.ns.svc:6379", "db": 0, "keyPrefix": "thv:ns:remote:up:",
                           "passwordRef": {"name": "s", "key": "k"}},
        "podTemplateSpec": {"spec": {
            "containers": [{"name": "toolhive", "lifecycle": {"preStop": {"sleep": {"seconds": 10}}}}],
            "terminationGracePeriodSeconds": 40,  # the drain, then the proxy's own 30 s
            "topologySpreadConstraints": [{
                "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "mcpremoteproxy",
                                                  "app.kubernetes.io/instance": "up"}},
                "matchLabelKeys": ["pod-template-hash"]}]}}}
    variables = copy.deepcopy(BASE["remote"][1])
    variables["mcpremoteproxy_proxies"] = [{"name": "up", "remote_url": "https://x.example.com", "session_storage": False}]
    variables.update(mcpremoteproxy_group="", mcpremoteproxy_drain_seconds=0, mcpremoteproxy_spread_pods=False)
    [bare] = render("remote", variables)
    assert bare["spec"] == {"remoteUrl": "https://x.example.com"}  # the CRD's defaults, nothing the user did not ask


def test_each_kind_drains_and_spreads_the_pods_its_crd_lets_the_collection_reach(render):
    """podTemplateSpec reaches the gateway's pods and an MCPServer's backend (beside the resources the user gave);
    the operator writes an MCPServer proxy's pod template whole, so its pods get nothing from it (their drain comes
    from the operator role's MutatingAdmissionPolicy)."""
    gateway = render("vmcp", copy.deepcopy(BASE["vmcp"][1]))[-1]
    pod = gateway["spec"]["podTemplateSpec"]
    assert pod["metadata"] == {"annotations": {"a": "b"}}
    assert pod["spec"]["containers"] == [{"name": "vmcp", "resources": {"limits": {"cpu": "1"}},
                                          "lifecycle": {"preStop": {"sleep": {"seconds": 10}}}}]
    assert pod["spec"]["terminationGracePeriodSeconds"] == 30  # 10 s drain + vmcp's 10 s: the operator's 30 stays
    [spread] = pod["spec"]["topologySpreadConstraints"]
    assert spread["labelSelector"]["matchLabels"] == {"app.kubernetes.io/name": "virtualmcpserver",
                                                      "app.kubernetes.io/instance": "gw"}

    [server] = render("mcpserver", copy.deepcopy(BASE["mcpserver"][1]))
    backend = server["spec"]["podTemplateSpec"]["spec"]
    assert backend["containers"] == [{"name": "mcp", "resources": {"limits": {"cpu": "1"}},
                                      "lifecycle": {"preStop": {"sleep": {"seconds": 10}}},
                                      "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1,
                                                         "failureThreshold": 3}}]
    assert backend["terminationGracePeriodSeconds"] == 40
    [spread] = backend["topologySpreadConstraints"]
    assert spread["labelSelector"]["matchLabels"] == {"app": "fetch", "toolhive-basename": "fetch"}
    assert spread["matchLabelKeys"] == ["controller-revision-hash"]  # a StatefulSet's revision label
    assert "resourceOverrides" not in server["spec"]  # the proxy's pod template is the operator's alone

    variables = dict(copy.deepcopy(BASE["mcpserver"][1]), mcpserver_drain_seconds=0, mcpserver_spread_pods=False,
                     mcpserver_backend_readiness_probe=False)
    [plain] = render("mcpserver", variables)
    assert "resourceOverrides" not in plain["spec"]
    assert plain["spec"]["podTemplateSpec"] == {"spec": {"containers": [{"name": "mcp", "resources": {
        "limits": {"cpu": "1"}}}]}}


def test_the_sentinel_pods_are_named_in_the_clusters_domain(render):
    variables = dict(copy.deepcopy(BASE["sentinel"][1]), pipeline_cluster_domain="corp.example")
    text = yaml.safe_dump_all(render("sentinel", variables))
    assert "r-0.r-headless.ns.svc.corp.example" in text and "r-sentinel-0.r-sentinel-headless.ns.svc.corp.example" \
        in text and "cluster.local" not in text


def test_the_redis_pod_template_changes_with_its_configuration_only(render):
    """Redis reads its configuration at start: the pod template carries its hash, so a change rolls the pod."""
    def config_hash(**changes):
        variables = dict(copy.deepcopy(BASE["standalone"][1]), **changes)
        workload = next(d for d in render("standalone", variables) if d["kind"] in ("Deployment", "StatefulSet"))
        return workload["spec"]["template"]["metadata"]["annotations"]["toolhive.k8s/redis-config-sha256"]

    assert config_hash() == config_hash() and len(config_hash()) == 64
    assert config_hash(redis_maxmemory="128mb") != config_hash()
    assert config_hash(redis_maxmemory_policy="volatile-lru") != config_hash()
    assert config_hash(redis_image="redis:8") == config_hash()  # not configuration: the image rolls it anyway


@pytest.mark.parametrize("server, port", [
    ({"transport": "streamable-http", "mcp_port": 3001}, 3001),
    ({"transport": "sse"}, 8080),  # the operator's mcpPort when the spec names none
    ({"transport": "stdio", "mcp_port": 3001}, None),  # a stdio backend listens on no port
    ({}, None),  # the CRD's transport: stdio
])
def test_an_http_backend_is_ready_once_it_listens_on_its_port(render, server, port):
    variables = dict(copy.deepcopy(BASE["mcpserver"][1]), mcpserver_drain_seconds=0, mcpserver_spread_pods=False)
    variables["mcpserver_servers"] = [dict(server, name="s", image="img:1", backend_resources={"limits": {"cpu": "1"}})]
    [container] = render("mcpserver", variables)[0]["spec"]["podTemplateSpec"]["spec"]["containers"]
    assert container.get("readinessProbe", {}).get("tcpSocket") == ({"port": port} if port else None)

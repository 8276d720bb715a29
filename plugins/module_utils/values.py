# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every value a user gives, checked before the first write: one rule per kind of value.

Pure functions. A rule returns None when the value is good, or a sentence saying what a
good value looks like. `check_variables` walks a job's variables with the table
VARIABLE_RULES and returns one message per bad value, naming the variable, the value
(shortened, control characters escaped) and the rule. The modules call `path_segment`
before a name reaches an API path, so no name can walk the API.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re
from urllib.parse import urlparse

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
QUANTITY = re.compile(r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")
REDIS_MEMORY = re.compile(r"^[0-9]+(b|k|kb|m|mb|g|gb)?$", re.IGNORECASE)
REDIS_TOKEN = re.compile(r"^[A-Za-z0-9][-._A-Za-z0-9]*$")
HOST_PORT = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*|\[[0-9a-fA-F:]+\]):[0-9]{1,5}$")
KEY_PREFIX = re.compile(r"^[\x21-\x7e]+:$")  # printable, no blank

# The image reference grammar of github.com/distribution/reference.
_ALNUM = r"[a-z0-9]+"
_COMPONENT = _ALNUM + r"(?:(?:[._]|__|[-]+)" + _ALNUM + r")*"
_DOMAIN = (r"(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*"
           r"[a-zA-Z0-9]))*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?")
IMAGE = re.compile(r"^(?:" + _DOMAIN + r"/)?" + _COMPONENT + r"(?:/" + _COMPONENT + r")*"
                   r"(?::[\w][\w.-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$")

DEFAULT_REPLICA_LIMIT = 20
MAXMEMORY_POLICIES = ("noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru",
                      "volatile-lfu", "volatile-random", "volatile-ttl")


def shown(value, limit=60):
    """The value as a message shows it: repr-like, control characters escaped, shortened."""
    text = repr(value) if not isinstance(value, str) else "'%s'" % value.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else text[:limit - 5] + "...'" + " (%d characters)" % len(value)


def _yaml_typed(value, wanted):
    """Why a value YAML typed differently is not the `wanted` type, or None."""
    if isinstance(value, bool):
        return ("is the YAML boolean %s, not a %s: unquoted yes/no/on/off/true/false are booleans. Fix: quote it"
                % (str(value).lower(), wanted))
    if value is None:
        return ("is empty (YAML null: nothing, ~ or null after the colon). Fix: give a %s, in quotes, or leave the "
                "variable out" % wanted)
    if isinstance(value, (int, float)) and wanted == "string":
        return ("is the number %s, not a string: YAML reads unquoted digits as a number (017 as 15, 0x1f as 31). "
                "Fix: quote the value" % value)
    return None


def _string(value, pattern, what, max_len):
    problem = _yaml_typed(value, "string") if not isinstance(value, str) else None
    if problem:
        return problem
    if not isinstance(value, str):
        return "must be a string (%s)" % what
    if len(value) > max_len or not pattern.fullmatch(value):
        return "must be %s, at most %d characters" % (what, max_len)
    return None


def _rule(pattern, what, max_len):
    def rule(value, context=None):
        return _string(value, pattern, what, max_len)
    rule.what = what
    return rule


# Server names become Deployment, StatefulSet and Service names (mcp-NAME-proxy, vmcp-NAME); the
# StatefulSet's pods carry a label NAME-<10-character hash> of at most 63.
server_name = _rule(DNS_LABEL, "a DNS-1123 label: lower-case letters, digits and '-', starting and ending with a "
                               "letter or digit (e.g. 'fetch')", 52)
name = _rule(DNS_LABEL, "a DNS-1123 label: lower-case letters, digits and '-', starting and ending with a letter "
                        "or digit", 63)
namespace = _rule(DNS_LABEL, "a namespace name (DNS-1123 label: lower-case letters, digits and '-', starting and "
                             "ending with a letter or digit)", 63)
# Redis's name is a Service name (DNS-1035) and prefixes -sentinel, -headless and -config.
redis_name = _rule(DNS_1035, "a DNS-1035 label: lower-case letters, digits and '-', starting with a letter", 40)
cluster_domain = _rule(DNS_SUBDOMAIN, "a DNS domain (lower-case labels separated by '.', e.g. 'cluster.local'; the "
                                      "kubelet's clusterDomain)", 200)
secret_name = _rule(DNS_SUBDOMAIN, "a Secret name (DNS-1123 subdomain: lower-case letters, digits, '-' and '.')", 253)
secret_key = _rule(SECRET_KEY, "a Secret key: letters, digits, '-', '_' and '.'", 253)
image = _rule(IMAGE, "an image reference on one line, e.g. 'ghcr.io/org/server:v1.2.3' (lower-case repository, "
                     "optional :tag and @sha256:digest)", 255)
redis_memory = _rule(REDIS_MEMORY, "a Redis memory size: digits with an optional unit b, k, kb, m, mb, g or gb "
                                   "(e.g. '256mb')", 20)
redis_token = _rule(REDIS_TOKEN, "a Redis name: letters, digits, '-', '_' and '.'", 64)
storage_class = _rule(re.compile(r"^$|" + DNS_SUBDOMAIN.pattern), "empty or a StorageClass name "
                                                                  "(DNS-1123 subdomain)", 253)
quantity_text = _rule(QUANTITY, "a Kubernetes quantity, e.g. '500m', '1', '256Mi', '1Gi'", 64)


# An MCPServer's group may be empty: the server then belongs to none.
group = _rule(re.compile(r"^$|" + DNS_LABEL.pattern), "empty (no group) or a DNS-1123 label: lower-case letters, "
                                                      "digits and '-', starting and ending with a letter or digit", 63)


def choice(*allowed):
    def rule(value, context=None):
        if value not in allowed:
            problem = _yaml_typed(value, "string")
            return problem or "must be one of %s" % ", ".join(allowed)
        return None
    return rule


maxmemory_policy = choice(*MAXMEMORY_POLICIES)


def integer(low, high=None, what="a whole number"):
    def rule(value, context=None):
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, str) and re.fullmatch(r"^-?[0-9]+$", value.strip()):
                value = int(value)
            else:
                return "must be %s" % what
        top = high(context) if callable(high) else high
        if value < low or (top is not None and value > top):
            return "must be %s from %d to %d" % (what, low, top) if top is not None else \
                "must be %s of at least %d" % (what, low)
        return None
    return rule


def replica_limit(context):
    return (context or {}).get("replica_limit") or DEFAULT_REPLICA_LIMIT


_replicas = integer(0, replica_limit, "a replica count")


def replicas(value, context=None):
    problem = _replicas(value, context)
    if problem and "from" in problem:
        problem += " (the bound is toolhive_replica_limit, %d: raise it for more)" % replica_limit(context)
    return problem


def min_replicas(value, context=None):
    problem = replicas(value, context)
    return problem or ("must be at least 1 (an HPA never scales to 0)" if int(value) < 1 else None)


port = integer(1, 65535, "a port")
percent = integer(1, 1000, "a percentage of the request")
seconds = integer(1, 86400, "a number of seconds")
drain_seconds = integer(0, 300, "a number of seconds (0 for no drain)")


def quantity(value, context=None):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return None if value >= 0 else "must not be negative"
    return quantity_text(value)


def resources(value, context=None):
    if not isinstance(value, dict):
        return "must be a mapping {requests: {cpu, memory}, limits: {cpu, memory}}"
    for section, amounts in value.items():
        if section not in ("requests", "limits"):
            return "has %s; only requests and limits are allowed" % shown(section)
        if not isinstance(amounts, dict):
            return "%s must be a mapping of resource name to quantity, e.g. {cpu: 500m, memory: 256Mi}" % section
        for resource, amount in amounts.items():
            problem = label_key(resource) or quantity(amount)
            if problem:
                return "%s.%s %s %s" % (section, shown(resource, 40), shown(amount, 40), problem)
    return None


def label_key(key, context=None):
    if not isinstance(key, str):
        return _yaml_typed(key, "string") or "keys must be strings"
    prefix, label_name = key.rpartition("/")[::2]
    if prefix and (len(prefix) > 253 or not DNS_SUBDOMAIN.fullmatch(prefix)):
        return "key %s: its prefix must be a DNS-1123 subdomain" % shown(key)
    if len(label_name) > 63 or not LABEL_NAME.fullmatch(label_name):
        return ("key %s must be a label name: letters, digits, '-', '_' and '.', at most 63, optionally after "
                "a DNS prefix and '/'" % shown(key))
    return None


def labels(value, context=None):
    if not isinstance(value, dict):
        return "must be a mapping of label keys to values"
    for key, label_value in value.items():
        problem = label_key(key)
        if problem:
            return problem
        if not isinstance(label_value, str):
            return "value of %s %s" % (key, _yaml_typed(label_value, "string") or "must be a string")
        if len(label_value) > 63 or not LABEL_VALUE.fullmatch(label_value):
            return ("value of %s, %s, must be a label value: letters, digits, '-', '_' and '.', at most 63"
                    % (key, shown(label_value)))
    return None


def annotations(value, context=None):
    if not isinstance(value, dict):
        return "must be a mapping of annotation keys to string values"
    for key, annotation in value.items():
        problem = label_key(key)
        if problem:
            return problem
        if not isinstance(annotation, str):
            return "value of %s %s" % (key, _yaml_typed(annotation, "string") or "must be a string")
    return None


def env(value, context=None):
    if not isinstance(value, list):
        return "must be a list of {name, value}"
    for item in value:
        if not isinstance(item, dict) or set(item) - {"name", "value"} or "name" not in item:
            return "must be a list of {name, value}, got %s" % shown(item)
        problem = _string(item["name"], ENV_NAME, "an environment variable name", 253)
        if problem:
            return "name %s %s" % (shown(item["name"]), problem)
        if not isinstance(item.get("value", ""), str):
            return "value of %s %s" % (item["name"], _yaml_typed(item["value"], "string") or "must be a string")
    return None


def strings(value, context=None):
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return "must be a list of strings (quote numbers and yes/no)"
    return None


def key_prefix(value, context=None):
    problem = _string(value, KEY_PREFIX, "printable characters without blanks, ending with ':' (e.g. 'thv:gw:')", 128)
    return problem


def session_storage(value, context=None):
    if value is False or value is None:
        return None
    if not isinstance(value, dict):
        return "must be false (no session storage) or the CRD's sessionStorage mapping"
    checks = (("provider", choice("memory", "redis")), ("address", _rule(HOST_PORT, "host:port", 253)),
              ("db", integer(0, 15, "a Redis database number")), ("keyPrefix", key_prefix))
    for field, rule in checks:
        if field in value:
            problem = rule(value[field])
            if problem:
                return "%s %s %s" % (field, shown(value[field], 40), problem)
    ref = value.get("passwordRef")
    if ref is not None:
        if not isinstance(ref, dict) or set(ref) - {"name", "key"} or "name" not in ref:
            return "passwordRef must be {name, key}"
        problem = secret_name(ref["name"]) or (secret_key(ref["key"]) if "key" in ref else None)
        if problem:
            return "passwordRef %s %s" % (shown(ref), problem)
    return None


# What the operator's remoteUrl validation refuses (cmd/thv-operator/pkg/validation/url_validation.go,
# v0.44.0 and, without allowPrivateEndpoint, every later release): loopback, link-local, private and
# unique-local addresses, and these host names with their subdomains.
BLOCKED_HOSTS = ("localhost", "kubernetes.default.svc.cluster.local", "kubernetes.default.svc", "kubernetes.default",
                 "cluster.local", "metadata.google.internal")
BLOCKED_NETWORKS = ("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                    "::/128", "::1/128", "fe80::/10", "fc00::/7")
REMOTE_URL = re.compile(r"^https?://[^\s/?#@]+(:[0-9]{1,5})?([/?#][\x21-\x7e]*)?$")


def remote_url(value, context=None):
    problem = _yaml_typed(value, "string") if not isinstance(value, str) else None
    if problem:
        return problem
    if len(value) > 2048 or not REMOTE_URL.fullmatch(value) or urlparse(value).hostname is None:
        return ("must be an http:// or https:// URL on one line, without blanks or user info, at most 2048 characters "
                "(e.g. 'https://mcp.example.com/mcp')")
    host = urlparse(value).hostname.lower()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        address = getattr(address, "ipv4_mapped", None) or address
        blocked = [net for net in BLOCKED_NETWORKS if address in ipaddress.ip_network(net)]
    else:
        blocked = [name for name in BLOCKED_HOSTS if host == name or host.endswith("." + name)]
    if blocked:
        return ("points at %s, which the ToolHive operator refuses as an internal address (%s): the proxy would never "
                "start (ConfigurationValid=False, RemoteURLInvalid). Fix: a public URL, or for a Service in the cluster "
                "its SERVICE.NAMESPACE.svc name (e.g. 'http://mcp-fetch-proxy.tools.svc:8080/mcp'), which the "
                "operator accepts" % (host, blocked[0]))
    return None


def incoming_auth(value, context=None):
    if not isinstance(value, dict) or value.get("type") not in ("anonymous", "oidc"):
        return "must be a mapping whose type is anonymous or oidc"
    return None


def autoscale(value, context=None):
    if not isinstance(value, dict):
        return "must be {min_replicas, max_replicas, cpu_percent}"
    low = value.get("min_replicas", 1)
    for field, rule in (("min_replicas", min_replicas), ("max_replicas", replicas), ("cpu_percent", percent)):
        if field in value:
            problem = rule(value[field], context)
            if problem:
                return "%s %s %s" % (field, shown(value[field]), problem)
    if "max_replicas" not in value:
        return "needs max_replicas (the HPA's upper bound)"
    if int(value["max_replicas"]) < int(low):
        return "max_replicas %s is below min_replicas %s" % (value["max_replicas"], low)
    return None


def auth_config(value, context=None):
    if value is None:
        return None
    if not isinstance(value, dict):
        return "must be {name, embedded_auth_server}"
    problem = name(value.get("name"))
    return "name %s %s" % (shown(value.get("name")), problem) if problem else None


# Every variable that reaches a manifest or an API path, and its rule. "list[].field" is a
# field of each element of a list variable.
VARIABLE_RULES = {
    "toolhive_namespace": namespace,
    "toolhive_group": name,
    "toolhive_name": server_name,
    "toolhive_replicas": replicas,
    "toolhive_current_replicas": integer(0, None, "a replica count"),
    "toolhive_min_replicas": min_replicas,
    "toolhive_max_replicas": replicas,
    "toolhive_cpu_percent": percent,
    "toolhive_memory_percent": percent,
    "toolhive_wait_timeout": seconds,
    "toolhive_replica_limit": integer(1, 1000, "a replica count"),
    "toolhive_cluster_domain": cluster_domain,
    "toolhive_drain_seconds": drain_seconds,
    "redis_namespace": namespace,
    "redis_name": redis_name,
    "redis_image": image,
    "redis_port": port,
    "redis_maxmemory": redis_memory,
    "redis_maxmemory_policy": maxmemory_policy,
    "redis_resources": resources,
    "redis_storage_size": quantity_text,
    "redis_storage_class": storage_class,
    "redis_password_secret": secret_name,
    "redis_password_key": secret_key,
    "redis_password_length": integer(16, 512, "a password length"),
    "redis_wait_timeout": seconds,
    "redis_sentinel_replicas": replicas,
    "redis_sentinel_quorum": integer(1, 3, "a quorum of the three Sentinels"),
    "redis_sentinel_master_name": redis_token,
    "redis_acl_user": redis_token,
    "redis_tls_secret": _rule(re.compile(r"^$|" + DNS_SUBDOMAIN.pattern), "empty or a Secret name", 253),
    "redis_tls_days": integer(1, 3650, "a certificate validity in days"),
    "redis_auth_config": auth_config,
    "vmcp_namespace": namespace,
    "vmcp_group": name,
    "vmcp_wait_timeout": seconds,
    "vmcp_drain_seconds": drain_seconds,
    "vmcp_instances[].name": server_name,
    "vmcp_instances[].group": name,
    "vmcp_instances[].incoming_auth": incoming_auth,
    "vmcp_instances[].replicas": replicas,
    "vmcp_instances[].resources": resources,
    "vmcp_instances[].pod_annotations": annotations,
    "vmcp_instances[].session_storage": session_storage,
    "vmcp_instances[].labels": labels,
    "vmcp_instances[].autoscale": autoscale,
    "mcpserver_namespace": namespace,
    "mcpserver_group": group,
    "mcpserver_wait_timeout": seconds,
    "mcpserver_drain_seconds": drain_seconds,
    "mcpserver_servers[].name": server_name,
    "mcpserver_servers[].image": image,
    "mcpserver_servers[].proxy_port": port,
    "mcpserver_servers[].mcp_port": port,
    "mcpserver_servers[].replicas": replicas,
    "mcpserver_servers[].backend_replicas": replicas,
    "mcpserver_servers[].session_storage": session_storage,
    "mcpserver_servers[].group": group,
    "mcpserver_servers[].resources": resources,
    "mcpserver_servers[].backend_resources": resources,
    "mcpserver_servers[].args": strings,
    "mcpserver_servers[].env": env,
    "mcpserver_servers[].labels": labels,
    "mcpserver_servers[].autoscale": autoscale,
    "mcpremoteproxy_namespace": namespace,
    "mcpremoteproxy_group": group,
    "mcpremoteproxy_wait_timeout": seconds,
    "mcpremoteproxy_drain_seconds": drain_seconds,
    "mcpremoteproxy_proxies[].name": server_name,
    "mcpremoteproxy_proxies[].remote_url": remote_url,
    "mcpremoteproxy_proxies[].proxy_port": port,
    "mcpremoteproxy_proxies[].replicas": replicas,
    "mcpremoteproxy_proxies[].session_storage": session_storage,
    "mcpremoteproxy_proxies[].group": group,
    "mcpremoteproxy_proxies[].resources": resources,
    "mcpremoteproxy_proxies[].labels": labels,
    "mcpremoteproxy_proxies[].autoscale": autoscale,
    "operator_namespace": namespace,
    "operator_proxy_drain_seconds": drain_seconds,
}


def check_variables(variables, rules=None):
    """One message per bad value among `variables` (a dict of the job's variables)."""
    rules = VARIABLE_RULES if rules is None else rules
    context = {"replica_limit": variables.get("toolhive_replica_limit")}
    if replica_limit(context) != DEFAULT_REPLICA_LIMIT and rules["toolhive_replica_limit"](replica_limit(context)):
        context = {}
    problems = []
    for path, rule in rules.items():
        variable, field = path.partition("[].")[::2]
        if variable not in variables:
            continue
        value = variables[variable]
        if not field:
            problem = rule(value, context)
            if problem:
                problems.append("%s = %s %s" % (variable, shown(value), problem))
            continue
        if not isinstance(value, list):
            continue  # the argument spec names the type
        seen = set()
        for index, item in enumerate(value):
            if not isinstance(item, dict) or field not in item:
                continue
            if item[field] is None and field != "name":
                continue  # left out
            problem = rule(item[field], context)
            if problem:
                problems.append("%s[%d].%s = %s %s" % (variable, index, field, shown(item[field]), problem))
            if field == "name" and not problem:
                if item[field] in seen:
                    problems.append("%s[%d].name = %s appears twice: names must be unique"
                                    % (variable, index, shown(item[field])))
                seen.add(item[field])
    return problems


def path_segment(value, what):
    """A name or namespace about to become part of an API path: refused unless it is a Kubernetes name."""
    if not isinstance(value, str) or len(value) > 253 or not DNS_SUBDOMAIN.fullmatch(value):
        raise ValueError("%s %s is not a Kubernetes name (lower-case letters, digits, '-' and '.'; no '/' or "
                         "'..'): refused before any request" % (what, shown(value)))
    return value


# The modules' options that reach API paths or the objects they write, and their rules.
PARAM_RULES = {
    "name": _rule(DNS_SUBDOMAIN, "a Kubernetes name (lower-case letters, digits, '-' and '.')", 253),
    "length": integer(16, 512, "a password length"),
    "namespace": namespace,
    "replicas": replicas,
    "current_replicas": integer(0, None, "a replica count"),
    "min_replicas": min_replicas,
    "max_replicas": replicas,
    "cpu_percent": percent,
    "memory_percent": percent,
}


def check_params(params):
    """One message per bad module option (None means left out)."""
    context = {"replica_limit": params.get("replica_limit")}
    problems = []
    for option, rule in PARAM_RULES.items():
        value = params.get(option)
        if value is not None:
            problem = rule(value, context)
            if problem:
                problems.append("%s = %s %s" % (option, shown(value), problem.replace(
                    "toolhive_replica_limit", "replica_limit")))
    for option, rule in (("names", name), ("namespaces", namespace)):
        for index, value in enumerate(params.get(option) or []):
            problem = rule(value)
            if problem:
                problems.append("%s[%d] = %s %s" % (option, index, shown(value), problem))
    return problems

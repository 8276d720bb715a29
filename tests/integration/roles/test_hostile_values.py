"""Hostile values through every playbook, on the test bed: each is refused before any request.

Every hostile value carries a marker (a fresh hex string); the job's namespace is fresh too. After a
refused run the API server's audit log holds no request of any verb that names the marker or the
namespace (so neither an injected object nor a path walked with ../ reached it, and not even the
namespace was created), only the variable check ran, and its message names the variable. The full
matrix of values x variables is in tests/unit/test_values.py (pure rules) and
tests/unit/test_templates_as_data.py (templates); here each variable gets one value, the values cycled
so every playbook meets every kind.
"""
import re
import uuid

import pytest
CHECK_TASKS = {"Check the job's variables before anything else", "Refuse an HPA without an upper bound"}


def hostile_values(marker, namespace):
    """Every kind of value the issue lists, each carrying the marker."""
    return [
        "x\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: %s}\n"
        "rules: [{apiGroups: ['*'], resources: ['*'], verbs: ['*']}]" % marker,   # newline and ---
        "%s\n  extra: {image: evil}" % namespace,                                 # a key below the value
        "{%s: x}" % marker, "%s}" % marker, "%s: x" % marker, "%s # c" % marker,   # { } ': ' '#'
        "'%s\"" % marker,                                                         # quotes
        "../../../api/v1/namespaces/kube-system/secrets/%s" % marker,             # traversal
        ("a%s" % marker * 10)[:300],                                              # 300 characters
        "UPPER-%s" % marker,                                                      # upper case
        True, None, 15,                                                           # no, null, 017 as YAML reads them
    ]


def set_value(variables, path, value):
    target = variables
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value


def base(playbook, namespace):
    server = {"name": "fetch", "image": "ghcr.io/org/fetch:v1", "transport": "streamable-http",
              "labels": {"team": "a"}, "session_storage": {"provider": "redis", "address": "r:6379",
                                                           "keyPrefix": "thv:a:"}}
    jobs = {
        "deploy": {"toolhive_namespace": namespace, "toolhive_group": "team", "mcpserver_servers": [server],
                   "vmcp_instances": [{"name": "gateway", "replicas": 1, "pod_annotations": {"a": "b"}}]},
        "teardown": {"toolhive_namespace": namespace, "mcpserver_servers": [server],
                     "vmcp_instances": [{"name": "gateway"}], "purge": True},
        "scale": {"toolhive_namespace": namespace, "toolhive_kind": "VirtualMCPServer", "toolhive_name": "gateway",
                  "toolhive_replicas": 2},
        "autoscale": {"toolhive_namespace": namespace, "toolhive_kind": "VirtualMCPServer",
                      "toolhive_name": "gateway", "toolhive_max_replicas": 3},
        "status": {"toolhive_namespace": namespace},
    }
    return jobs[playbook]


# Every variable of each playbook that reaches a manifest or an API path.
VARIABLES = {
    "deploy": [("toolhive_namespace",), ("toolhive_group",), ("redis_namespace",), ("redis_name",),
               ("redis_image",), ("redis_password_secret",), ("redis_password_key",), ("redis_maxmemory",),
               ("redis_storage_size",), ("redis_storage_class",), ("vmcp_namespace",), ("mcpserver_namespace",),
               ("mcpserver_servers", 0, "name"), ("mcpserver_servers", 0, "image"), ("mcpserver_servers", 0, "group"),
               ("mcpserver_servers", 0, "labels", "team"), ("mcpserver_servers", 0, "session_storage", "keyPrefix"),
               ("mcpserver_servers", 0, "session_storage", "address"), ("vmcp_instances", 0, "name"),
               ("vmcp_instances", 0, "group"), ("vmcp_instances", 0, "replicas")],
    "teardown": [("toolhive_namespace",), ("redis_name",), ("redis_password_secret",), ("mcpserver_servers", 0, "name"),
                 ("vmcp_instances", 0, "name")],
    "scale": [("toolhive_namespace",), ("toolhive_name",), ("toolhive_replicas",)],
    "autoscale": [("toolhive_namespace",), ("toolhive_name",), ("toolhive_max_replicas",),
                  ("toolhive_cpu_percent",)],
    "status": [("toolhive_namespace",)],
}
NUMBERS = {"toolhive_replicas": [10000, "3\n---", -1], "toolhive_max_replicas": [10000, 0],
           "toolhive_cpu_percent": [0, -5], "replicas": [10000, "2 # c"]}
CASES = []
for playbook, paths in VARIABLES.items():
    for index, path in enumerate(paths):
        kinds = NUMBERS.get(path[-1])
        picks = range(len(kinds)) if kinds else [(index * 5 + len(CASES)) % 13, (index * 5 + len(CASES) + 7) % 13]
        for pick in picks:
            CASES.append((playbook, path, pick))


def requests_naming(audit, needles):
    hits = []
    for event in audit.events():
        ref = event.get("objectRef") or {}
        text = " ".join([event.get("requestURI", ""), ref.get("name", ""), ref.get("namespace", "")])
        if any(needle in text for needle in needles):
            hits.append("%s %s" % (event.get("verb"), event.get("requestURI")))
    return hits


@pytest.mark.parametrize("playbook, path, pick", CASES,
                         ids=["%s-%s-%d" % (c[0], ".".join(map(str, c[1])), c[2]) for c in CASES])
def test_a_hostile_value_is_refused_before_any_request(run_playbook, kubectl, audit, playbook, path, pick):
    marker = uuid.uuid4().hex
    namespace = "t-" + marker[:10]
    variables = base(playbook, namespace)
    numbers = NUMBERS.get(path[-1])
    value = numbers[pick] if numbers else hostile_values(marker, namespace)[pick]
    if path[0] == "redis_storage_size":
        variables["redis_persistence"] = True
    set_value(variables, path, value)

    since = audit()
    result = run_playbook("playbooks/%s.yml" % playbook, extra_vars=variables)

    assert result.returncode == 2, result.output[-3000:]
    assert set(re.findall(r"^TASK \[(.*?)\]", result.output, re.MULTILINE)) <= CHECK_TASKS, result.output[-3000:]
    # The message names the variable the way the job spells it: name, or list[index].field.
    spelled = path[0] + "".join("[%d]" % step if isinstance(step, int) else ".%s" % step for step in path[1:3])
    assert spelled in result.output, result.output[-3000:]
    assert requests_naming(since, [marker, namespace]) == []
    assert kubectl("get", "namespace", namespace, check=False).returncode != 0
    assert kubectl("get", "clusterrole", marker, check=False).returncode != 0


def test_the_audit_check_sees_a_request_that_names_the_namespace(run_playbook, audit):
    """The check above can fail: a run that does reach the cluster shows up in it."""
    namespace = "t-" + uuid.uuid4().hex[:10]
    since = audit()
    result = run_playbook("playbooks/status.yml", extra_vars={"toolhive_namespace": namespace})
    assert result.returncode == 0, result.output[-3000:]
    assert requests_naming(since, [namespace]) != []

"""The value rules (pure logic): each kind of bad value is refused with the variable, the value and the rule."""
import pytest

from ansible_collections.toolhive.k8s.plugins.module_utils import values

HOSTILE_STRINGS = ["x\n---\nkind: ClusterRole", "a: b", "{a: b}", "}", "# c", "'", '"', "Fetch", "a" * 300,
                   "../x", "a/b", "", " x", "x ", "x\ty", "\x1b[31mred", "fetch\n"]


@pytest.mark.parametrize("variable", ["toolhive_namespace", "redis_name", "redis_password_secret",
                                      "redis_image", "toolhive_name", "vmcp_group"])
@pytest.mark.parametrize("value", HOSTILE_STRINGS, ids=range(len(HOSTILE_STRINGS)))
def test_hostile_strings_are_refused_naming_the_variable(variable, value):
    problems = values.check_variables({variable: value})
    if variable == "redis_image" and value == "a/b":
        assert problems == []  # a valid reference: repository a/b on the default registry
        return
    assert len(problems) == 1, problems
    assert problems[0].startswith(variable + " = ")
    # Control characters escaped, long values shortened: the message stays one readable line.
    assert "\n" not in problems[0] and "\x1b" not in problems[0] and len(problems[0]) < 400


@pytest.mark.parametrize("value, said", [
    (False, "is the YAML boolean false"), (True, "is the YAML boolean true"), (None, "is empty (YAML null"),
    (15, "is the number 15, not a string"), (31, "is the number 31"), (1.5, "is the number 1.5"),
])
def test_yaml_typed_values_are_named_as_such(value, said):
    problem = values.check_variables({"toolhive_namespace": value})[0]
    assert said in problem and "Fix:" in problem


@pytest.mark.parametrize("variable, value", [
    ("toolhive_namespace", "017"), ("toolhive_namespace", "123"), ("toolhive_name", "123"),
    ("redis_image", "redis:7.4-alpine"), ("redis_image", "localhost:5000/a/b-c_d.e:v1.0"),
    ("redis_image", "ghcr.io/stacklok/toolhive/vmcp@sha256:" + "a" * 64), ("redis_password_key", "password"),
    ("redis_password_secret", "my.secret-1"), ("redis_maxmemory", "256mb"), ("redis_storage_size", "1Gi"),
    ("toolhive_cpu_percent", 1), ("toolhive_replicas", 0), ("toolhive_replicas", "3"),
])
def test_good_values_pass(variable, value):
    assert values.check_variables({variable: value}) == []


@pytest.mark.parametrize("variable, value, said", [
    ("toolhive_cpu_percent", 0, "from 1 to 1000"), ("toolhive_cpu_percent", -5, "from 1 to 1000"),
    ("toolhive_replicas", 10000, "from 0 to 20"), ("toolhive_replicas", -1, "from 0 to 20"),
    ("toolhive_min_replicas", 0, "at least 1"), ("redis_port", 70000, "a port from 1 to 65535"),
    ("redis_maxmemory", "256mb\nrequirepass x", "Redis memory size"),
    ("redis_maxmemory_policy", "noeviction\nrequirepass", "must be one of"),
    ("redis_storage_size", "1Gi\n", "quantity"),
])
def test_numbers_and_tokens_have_bounds(variable, value, said):
    problems = values.check_variables({variable: value})
    assert len(problems) == 1 and said in problems[0], problems


def test_the_replica_bound_can_be_raised():
    assert values.check_variables({"toolhive_replicas": 50}) != []
    assert values.check_variables({"toolhive_replicas": 50, "toolhive_replica_limit": 100}) == []


@pytest.mark.parametrize("server, said", [
    ({"name": "Fetch", "image": "i"}, "mcpserver_servers[0].name = 'Fetch'"),
    ({"name": "a", "image": "i\n---"}, "mcpserver_servers[0].image"),
    ({"name": "a", "image": "i", "labels": {"a": "b\nc"}}, "mcpserver_servers[0].labels"),
    ({"name": "a", "image": "i", "labels": {"a": True}}, "value of a is the YAML boolean true"),
    ({"name": "a", "image": "i", "env": [{"name": "A B", "value": "x"}]}, "mcpserver_servers[0].env"),
    ({"name": "a", "image": "i", "resources": {"limits": {"cpu": "1\n---"}}}, "mcpserver_servers[0].resources"),
    ({"name": "a", "image": "i", "session_storage": {"provider": "redis", "keyPrefix": "x"}}, "keyPrefix 'x'"),
    ({"name": "a", "image": "i", "session_storage": {"passwordRef": {"name": "../s", "key": "k"}}}, "passwordRef"),
    ({"name": "a", "image": "i", "autoscale": {"max_replicas": 3, "cpu_percent": 0}}, "cpu_percent 0"),
    ({"name": "a", "image": "i", "proxy_port": 0}, "mcpserver_servers[0].proxy_port = 0"),
])
def test_list_items_are_named_by_index_and_field(server, said):
    problems = values.check_variables({"mcpserver_servers": [server]})
    assert len(problems) == 1 and said in problems[0], problems


def test_duplicate_names_are_refused():
    problems = values.check_variables({"vmcp_instances": [{"name": "gw"}, {"name": "gw"}]})
    assert problems == ["vmcp_instances[1].name = 'gw' appears twice: names must be unique"]


@pytest.mark.parametrize("name", ["../x", "a/b", "..", "", "A", "x%2Fy", None, 5])
def test_no_name_reaches_an_api_path_unchecked(name):
    with pytest.raises(ValueError, match="refused before any request"):
        values.path_segment(name, "name")
    problems = values.check_params({"name": name, "namespace": "ns"})
    if name is None:  # an option left out: nothing to refuse here; the path builder above refuses it
        assert problems == []
    else:
        assert [p.split(" ")[0] for p in problems] == ["name"], problems


def test_module_options_are_checked_like_variables():
    assert values.check_params({"name": "gw", "namespace": "ns", "replicas": 3}) == []
    assert values.check_params({"name": "gw", "namespace": "ns", "replicas": 30, "replica_limit": 50}) == []
    problems = values.check_params({"name": "gw", "namespace": "kube-system/../x", "replicas": 30})
    assert [p.split(" ")[0] for p in problems] == ["namespace", "replicas"]
    assert "replica_limit" in problems[1]


def test_an_mcpserver_may_belong_to_no_group():
    assert values.check_variables({"mcpserver_group": "", "mcpserver_servers": [{"name": "a", "group": ""}]}) == []
    assert values.check_variables({"mcpserver_group": "A"}) != []


@pytest.mark.parametrize("url", ["https://mcp.example.com/mcp", "http://mcp-everything-proxy.tools.svc:8080/mcp",
                                 "https://api.example.com:8443/v2/mcp?toolsets=a,b", "http://8.8.8.8/mcp"])
def test_a_remote_url_the_operator_accepts_passes(url):
    assert values.check_variables({"mcpremoteproxy_proxies": [{"name": "r", "remote_url": url}]}) == []


@pytest.mark.parametrize("url, said", [
    ("ftp://mcp.example.com", "an http:// or https:// URL on one line"),
    ("https://mcp.example.com/mcp\n---\nkind: ClusterRole", "on one line"),
    ("https://mcp.example.com/a b", "without blanks"), ("https:// mcp.example.com", "without blanks"),
    ("https://user:pw@mcp.example.com/", "user info"), ("mcp.example.com/mcp", "http:// or https://"),
    (17, "is the number 17"), ("https://" + "a" * 2050, "at most 2048"),
    # What the operator's SSRF guard refuses (the proxy would never start): said first, with the fix.
    ("http://mcp-x-proxy.tools.svc.cluster.local:8080/mcp", "refuses as an internal address (cluster.local)"),
    ("http://10.96.0.12:8080/mcp", "(10.0.0.0/8)"), ("http://[::ffff:127.0.0.1]/", "(127.0.0.0/8)"),
    ("http://localhost:8080/mcp", "(localhost)"), ("http://169.254.169.254/", "(169.254.0.0/16)"),
    ("https://kubernetes.default.svc/", "(kubernetes.default.svc)"),
])
def test_a_remote_url_is_one_url_the_operator_accepts(url, said):
    problems = values.check_variables({"mcpremoteproxy_proxies": [{"name": "r", "remote_url": url}]})
    assert len(problems) == 1 and problems[0].startswith("mcpremoteproxy_proxies[0].remote_url = "), problems
    assert said in problems[0] and "\n" not in problems[0], problems


def test_remote_proxy_fields_have_the_rules_of_the_other_kinds():
    problems = values.check_variables({"mcpremoteproxy_proxies": [
        {"name": "Remote", "remote_url": "https://x.example.com"},
        {"name": "r", "remote_url": "https://x.example.com", "replicas": 500, "proxy_port": 0,
         "session_storage": {"provider": "redis", "keyPrefix": "x"}, "labels": {"a": "b\nc"}}]})
    said = " | ".join(problems)
    for text in ("mcpremoteproxy_proxies[0].name = 'Remote'", "mcpremoteproxy_proxies[1].replicas = 500",
                 "mcpremoteproxy_proxies[1].proxy_port = 0", "mcpremoteproxy_proxies[1].session_storage",
                 "mcpremoteproxy_proxies[1].labels"):
        assert text in said, said

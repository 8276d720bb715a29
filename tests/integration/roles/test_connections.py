"""One connection setting reaches every request: per inventory host, or once per play through module_defaults.

The default kubeconfig points at a file that does not exist and no K8S_AUTH_* variable is set, so any request
that did not get the host's or the play's setting fails: these runs succeed only if every request - the
collection's modules and kubernetes.core's tasks in the roles - went where the setting says.
"""
import re

import pytest
import yaml

EXAMPLE = {"toolhive_group": "team",
           "mcpserver_servers": [{"name": "fetch", "image": "ghcr.io/org/fetch:v1", "transport": "streamable-http"}],
           "vmcp_instances": [{"name": "gateway", "replicas": 2}]}


def recap_of(output, host):
    match = re.search(r"^%s\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)" % re.escape(host),
                      output, re.MULTILINE)
    assert match, output[-3000:]
    return {"ok": int(match[1]), "changed": int(match[2]), "failed": int(match[3])}


def nowhere_env(tmp_path):
    return {"KUBECONFIG": str(tmp_path / "no-default-kubeconfig"), "K8S_AUTH_KUBECONFIG": None}  # None: unset


def inventory(tmp_path, kubeconfig, namespace):
    dead = tmp_path / "dead-kubeconfig"
    config = yaml.safe_load(open(kubeconfig).read())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = "https://127.0.0.1:9"  # nothing listens there: refused at once
    dead.write_text(yaml.safe_dump(config))
    common = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
              "toolhive_namespace": namespace}
    path = tmp_path / "clusters.yml"
    path.write_text(yaml.safe_dump({"all": {"children": {"clusters": {"hosts": {
        "cluster-a": dict(common, toolhive_kubeconfig=kubeconfig),
        "cluster-b": dict(common, toolhive_kubeconfig=str(dead)),
    }}}}}))
    return str(path)


def test_playbooks_run_per_cluster_and_an_unreachable_one_fails_alone(
        run_playbook, kubectl, kubeconfig, namespace, tmp_path):
    ns = namespace + "-c"
    inv = inventory(tmp_path, kubeconfig, ns)
    env = nowhere_env(tmp_path)
    try:
        both = run_playbook("playbooks/deploy.yml", "-i", inv, "-e", "toolhive_hosts=clusters",
                            extra_vars=EXAMPLE, env=env)
        assert recap_of(both.output, "cluster-a")["failed"] == 0, both.output[-4000:]
        assert recap_of(both.output, "cluster-b")["failed"] == 1
        assert "cannot reach" in both.output or "Connection refused" in both.output, both.output[-4000:]
        assert kubectl("get", "virtualmcpserver", "gateway", "-n", ns, "-o", "json")["spec"]["replicas"] == 2

        one = ("-i", inv, "-e", "toolhive_hosts=cluster-a")
        # Redis alone with TLS: its generated TLS Secret (toolhive.k8s.tls_secret) goes to the host's cluster too.
        tls = run_playbook("playbooks/deploy.yml", *one, env=env, extra_vars={
            "toolhive_namespace": ns + "-tls", "redis_tls": True, "redis_wait": False, "mcpserver_servers": [],
            "vmcp_instances": []})
        assert recap_of(tls.output, "cluster-a")["failed"] == 0, tls.output[-4000:]
        assert kubectl("get", "secret", "toolhive-redis-tls", "-n", ns + "-tls", check=False).returncode == 0
        for playbook, extra in (
                ("scale", {"toolhive_kind": "MCPServer", "toolhive_name": "fetch", "toolhive_replicas": 1}),
                ("autoscale", {"toolhive_kind": "MCPServer", "toolhive_name": "fetch", "toolhive_max_replicas": 3}),
                ("status", {}),
                ("teardown", dict(EXAMPLE, purge=True))):
            result = run_playbook("playbooks/%s.yml" % playbook, *one, extra_vars=extra, env=env)
            assert recap_of(result.output, "cluster-a")["failed"] == 0, (playbook, result.output[-4000:])
        assert kubectl("get", "virtualmcpserver", "gateway", "-n", ns, check=False).returncode != 0
    finally:
        for name in (ns, ns + "-tls"):
            kubectl("delete", "namespace", name, "--wait=false", check=False)


ROLES = {  # every role of the collection, with what it deploys here (the operator role: verify only)
    "operator": {"operator_install": False},
    "redis": {"redis_tls": True},  # the TLS Secret too (toolhive.k8s.tls_secret)
    # Without session storage: the TLS wiring needs sessionStorage.tls, which the bed's v0.44.0 CRDs lack.
    "vmcp": {"vmcp_instances": [{"name": "gateway", "replicas": 1, "session_storage": False}]},
    "mcpserver": {"mcpserver_servers": [{"name": "fetch", "image": "ghcr.io/org/fetch:v1",
                                         "transport": "streamable-http", "session_storage": False}]},
    "mcpremoteproxy": {"mcpremoteproxy_proxies": [{"name": "up", "remote_url": "https://mcp.example.com/mcp",
                                                   "session_storage": False}]},
}


@pytest.mark.parametrize("group", ["toolhive.k8s.k8s", "kubernetes.core.k8s"])
def test_module_defaults_once_per_play_reach_every_role(
        run_playbook, kubectl, kubeconfig, namespace, tmp_path, group):
    """Either group - the collection's, or kubernetes.core's that its users already set - reaches every request
    of every role, deploying and removing."""
    ns = namespace + "-m"

    def play(state):
        tasks = [{"name": role, "ansible.builtin.include_role": {"name": "toolhive.k8s." + role},
                  "vars": dict(variables, **({} if role == "operator" else {role + "_state": state}))}
                 for role, variables in ROLES.items()]
        return {"name": "Every role, the connection given once (%s)" % state, "hosts": "localhost",
                "gather_facts": False, "module_defaults": {"group/" + group: {"kubeconfig": kubeconfig}},
                "vars": {"toolhive_namespace": ns, "redis_purge": True, "toolhive_group": "team"},
                "tasks": tasks if state == "present" else tasks[:0:-1]}  # removed in reverse, no operator

    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([play("present")]))
    try:
        result = run_playbook(playbook, env=nowhere_env(tmp_path))
        assert recap_of(result.output, "localhost")["failed"] == 0, result.output[-4000:]
        assert kubectl("get", "deployment", "gateway", "-n", ns, "-o", "json")["spec"]["replicas"] == 1
        for kind, name in (("secret", "toolhive-redis-auth"), ("secret", "toolhive-redis-tls"),
                           ("mcpserver", "fetch"), ("mcpremoteproxy", "up")):
            assert kubectl("get", kind, name, "-n", ns, check=False).returncode == 0, (kind, name)
        playbook.write_text(yaml.safe_dump([play("absent")]))
        result = run_playbook(playbook, env=nowhere_env(tmp_path))
        assert recap_of(result.output, "localhost")["failed"] == 0, result.output[-4000:]
        for kind, name in (("virtualmcpserver", "gateway"), ("mcpserver", "fetch"), ("mcpremoteproxy", "up"),
                           ("secret", "toolhive-redis-tls")):
            assert kubectl("get", kind, name, "-n", ns, check=False).returncode != 0, (kind, name)
    finally:
        kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_without_the_setting_nothing_reaches_a_cluster(run_playbook, tmp_path):
    """The control: with the default pointing nowhere and no setting, the same job fails (so the tests above
    succeed because of the setting)."""
    result = run_playbook("playbooks/status.yml", env=nowhere_env(tmp_path))
    assert recap_of(result.output, "localhost")["failed"] == 1
    assert "no-default-kubeconfig" in result.output or "kubeconfig" in result.output.lower(), result.output[-3000:]

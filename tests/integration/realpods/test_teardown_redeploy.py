"""playbooks/teardown.yml on running pods: without purge the Redis password Secret stays and a redeploy reuses
it, the servers answering again; with purge everything deploy made is gone, and nothing else.

A fresh namespace, made by the test with a ConfigMap and a Secret of the user's own in it; then deploy.yml
(Redis from the local Debian image, the MCPServer `everything` (go-sdk's example), a VirtualMCPServer `gateway`,
the MCP check on); a real MCP client (the `mcp` SDK) lists the tools through the gateway's Service (the API
server's service proxy). Everything in the namespace is read with every namespaced kind the API server lists
(events excepted), so "nothing else" covers what the operator made too.
"""
import base64
import json
import time
import uuid

import pytest

from .conftest import REPO, wait_until
from .podclient import run
from .serviceclient import service_tools

pytestmark = pytest.mark.usefixtures("real_nodes")

SECRET = "toolhive-redis-auth"
# The namespace's history, and metrics-server's readings of its pods: not its contents.
IGNORED = {"events", "events.events.k8s.io", "pods.metrics.k8s.io"}


def deploy_vars(namespace, images):
    return {
        "toolhive_namespace": namespace,
        "toolhive_group": "teardown",
        "redis_image": images["redis"],
        "toolhive_mcp_check": True,
        "mcpserver_servers": [{"name": "everything", "image": images["everything"], "transport": "streamable-http",
                               "mcp_port": 8080}],
        "vmcp_instances": [{"name": "gateway", "replicas": 1}],
    }


@pytest.fixture(scope="module")
def namespaced_kinds(kubectl):
    names = kubectl("api-resources", "--namespaced=true", "--verbs=list", "-o", "name").stdout.split()
    return ",".join(n for n in names if n not in IGNORED)


def contents(kubectl, namespace, kinds):
    """{(kind, name): (uid, resourceVersion)} of everything in NAMESPACE."""
    items = kubectl("get", kinds, "-n", namespace, "-o", "json")["items"]
    return {(i["kind"], i["metadata"]["name"]): (i["metadata"]["uid"], i["metadata"]["resourceVersion"])
            for i in items}


def secret(kubectl, namespace):
    obj = kubectl("get", "secret", SECRET, "-n", namespace, "-o", "json")
    return obj["metadata"]["uid"], obj["metadata"]["resourceVersion"], obj["data"]


def gateway_tools(kubeconfig, namespace):
    return run(service_tools(kubeconfig, namespace, "vmcp-gateway", 4483), timeout=60)


def redis_ping(kubectl, namespace, password):
    """PING from the Redis pod to the Service's DNS name with PASSWORD (the container's own REDISCLI_AUTH unset)."""
    script = (f"env -u REDISCLI_AUTH redis-cli -h toolhive-redis.{namespace}.svc.cluster.local "
              f"-a \"$P\" --no-auth-warning PING")
    return kubectl("exec", "-n", namespace, "deploy/toolhive-redis", "--", "env", f"P={password}", "sh", "-c",
                   script).stdout.strip()


def settle(what, kubectl, namespace, kinds, done, timeout=90):
    """Until done(contents) holds (pods may still be terminating when the playbook ends); returns the seconds
    it took. The failure names what differs at the end."""
    started = time.monotonic()
    while True:
        now = contents(kubectl, namespace, kinds)
        if done(now):
            return time.monotonic() - started
        assert time.monotonic() - started < timeout, f"{what}: not after {timeout}s; now: {sorted(now)}"
        time.sleep(1)


def teardown(run_playbook, variables, purge):
    proc = run_playbook(REPO / "playbooks" / "teardown.yml", extra_vars={**variables, "purge": purge})
    assert proc.returncode == 0, proc.output[-6000:]
    return proc


def test_teardown_keeps_the_secret_redeploy_reuses_it_purge_removes_only_what_deploy_made(
        run_playbook, kubectl, kubeconfig, images, namespaced_kinds):
    namespace = f"rp-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", namespace)
    try:
        # The user's own objects, there before the collection.
        kubectl("create", "configmap", "users-own", "-n", namespace, "--from-literal=keep=me")
        kubectl("create", "secret", "generic", "users-secret", "-n", namespace, "--from-literal=token=mine")
        before = wait_until("the namespace's default ServiceAccount and CA ConfigMap",
                            lambda: (c := contents(kubectl, namespace, namespaced_kinds)).get(
                                ("ServiceAccount", "default")) and c.get(("ConfigMap", "kube-root-ca.crt")) and c,
                            timeout=30)
        variables = deploy_vars(namespace, images)

        proc = run_playbook(REPO / "playbooks" / "deploy.yml", extra_vars=variables)
        assert proc.returncode == 0, proc.output[-6000:]
        tools = gateway_tools(kubeconfig, namespace)
        assert "everything_greet" in tools, tools
        uid, version, data = secret(kubectl, namespace)
        password = base64.b64decode(data["password"]).decode()
        assert len(password) == 32
        assert redis_ping(kubectl, namespace, password) == "PONG"
        deployed = contents(kubectl, namespace, namespaced_kinds)
        made = set(deployed) - set(before)
        kinds_made = {kind for kind, _name in made}
        assert {"VirtualMCPServer", "MCPServer", "MCPGroup", "Deployment", "StatefulSet", "Pod", "Service",
                "Secret"} <= kinds_made, sorted(made)

        # Teardown without purge: the Secret stays, untouched; the servers and Redis go.
        teardown(run_playbook, variables, purge=False)
        assert secret(kubectl, namespace) == (uid, version, data)

        right_after = sorted(set(contents(kubectl, namespace, namespaced_kinds)) - set(before))
        gone = settle("only the password Secret left beside what was there before", kubectl, namespace,
                      namespaced_kinds, lambda now: set(now) - set(before) == {("Secret", SECRET)})
        print(f"\nright after teardown.yml (no purge), beside what was there before: {right_after}; "
              f"only the Secret {gone:.0f}s later")
        # The user's objects: the same objects, never written.
        now = contents(kubectl, namespace, namespaced_kinds)
        assert {k: now[k] for k in before} == before

        # Redeploy: the same Secret (same object, same password), Redis requires it, the servers answer again.
        proc = run_playbook(REPO / "playbooks" / "deploy.yml", extra_vars=variables)
        assert proc.returncode == 0, proc.output[-6000:]
        assert secret(kubectl, namespace) == (uid, version, data)
        assert redis_ping(kubectl, namespace, password) == "PONG"
        # redis-cli's AUTH fails (on stderr), then its PING is refused.
        assert redis_ping(kubectl, namespace, "not-the-password") == "NOAUTH Authentication required."
        assert gateway_tools(kubeconfig, namespace) == tools
        redeployed = contents(kubectl, namespace, namespaced_kinds)
        assert {kind for kind, _name in set(redeployed) - set(before)} == kinds_made

        # Purge: everything deploy made goes, the Secret too; the user's objects stay, unwritten.
        teardown(run_playbook, variables, purge=True)

        right_after = sorted(set(contents(kubectl, namespace, namespaced_kinds)) ^ set(before))
        gone = settle("the namespace as it was before the first deploy", kubectl, namespace, namespaced_kinds,
                      lambda now: now == before)
        print(f"right after teardown.yml (purge), beside what was there before: {right_after}; "
              f"as before {gone:.0f}s later")
        users = kubectl("get", "configmap", "users-own", "-n", namespace, "-o", "json")
        assert users["data"] == {"keep": "me"}
        users = kubectl("get", "secret", "users-secret", "-n", namespace, "-o", "json")
        assert base64.b64decode(users["data"]["token"]) == b"mine"
        print(f"\ndeploy made {len(made)} objects: {json.dumps(sorted(f'{k}/{n}' for k, n in made))}")
    finally:
        kubectl("delete", "namespace", namespace, "--wait=false", check=False)

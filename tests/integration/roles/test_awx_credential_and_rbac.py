"""What an AWX job does, on the test bed: the playbooks run with only the
variables AWX's "OpenShift or Kubernetes API Bearer Token" credential sets
(K8S_AUTH_HOST, K8S_AUTH_API_KEY, K8S_AUTH_VERIFY_SSL, K8S_AUTH_SSL_CA_CERT; no
kubeconfig anywhere), with the token of the ServiceAccount in awx/rbac.yaml,
and that account is refused what lies outside the playbooks."""
import json
import re
import subprocess

import pytest
import yaml

from ..conftest import REPO
from .test_deploy import example, recap


def rbac_for(namespace):
    """awx/rbac.yaml moved to another namespace, as its header tells an admin to do."""
    documents = yaml.safe_load((REPO / "awx" / "rbac.yaml").read_text())["items"]
    for document in documents:
        metadata = document["metadata"]
        if document["kind"] == "Namespace":
            metadata["name"] = namespace
        elif "namespace" in metadata:
            metadata["namespace"] = namespace
        else:  # cluster-scoped: a name of its own per namespace
            metadata["name"] = f"toolhive-automation-{namespace}"
            if "roleRef" in document:
                document["roleRef"]["name"] = metadata["name"]
        for subject in document.get("subjects", []):
            subject["namespace"] = namespace
        for rule in document.get("rules", []):
            if rule.get("resources") == ["namespaces"]:
                rule["resourceNames"] = [namespace]
    return documents


@pytest.fixture
def automation(kubectl, namespace, tmp_path):
    """The environment of an AWX job whose credential holds the automation account's token."""
    kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": rbac_for(namespace)}))
    token = kubectl("create", "token", "toolhive-automation", "-n", namespace).stdout.strip()
    cluster = kubectl("config", "view", "--raw", "--minify", "-o", "json")["clusters"][0]["cluster"]
    ca = cluster.get("certificate-authority")
    if ca is None:  # kind embeds the CA
        ca = tmp_path / "ca.crt"
        ca.write_bytes(__import__("base64").b64decode(cluster["certificate-authority-data"]))
    yield {"K8S_AUTH_HOST": cluster["server"], "K8S_AUTH_API_KEY": token, "K8S_AUTH_VERIFY_SSL": "true",
           "K8S_AUTH_SSL_CA_CERT": str(ca), "KUBECONFIG": "", "K8S_AUTH_KUBECONFIG": "", "HOME": str(tmp_path)}, token
    kubectl("delete", "clusterrolebinding,clusterrole", f"toolhive-automation-{namespace}", check=False)


def test_playbooks_run_with_only_the_awx_credential_and_least_privilege(
        run_playbook, kubectl, namespace, automation):
    env, token = automation
    servers = example(namespace, vmcp_instances=[{"name": "gateway", "replicas": 2}],
                      mcpremoteproxy_proxies=[{"name": "up", "remote_url": "https://mcp.example.com/mcp",
                                               "replicas": 2}])

    deploy = run_playbook("playbooks/deploy.yml", extra_vars=servers, env=env)
    assert recap(deploy.output)["failed"] == 0, deploy.output[-4000:]
    assert kubectl("get", "virtualmcpserver", "gateway", "-n", namespace, "-o", "json")["spec"]["replicas"] == 2

    again = run_playbook("playbooks/deploy.yml", extra_vars=servers, env=env)
    assert recap(again.output) == dict(recap(again.output), failed=0, changed=0), again.output[-4000:]

    scale = run_playbook("playbooks/scale.yml", extra_vars={
        "toolhive_namespace": namespace, "toolhive_kind": "VirtualMCPServer", "toolhive_name": "gateway",
        "toolhive_replicas": 3}, env=env)
    assert recap(scale.output)["failed"] == 0, scale.output[-4000:]
    assert "Deployment/gateway: 2 -> 3 replicas, 3 ready" in scale.output

    autoscale = run_playbook("playbooks/autoscale.yml", extra_vars={
        "toolhive_namespace": namespace, "toolhive_kind": "MCPServer", "toolhive_name": "time",
        "toolhive_min_replicas": 1, "toolhive_max_replicas": 3, "toolhive_cpu_percent": 70}, env=env)
    assert recap(autoscale.output)["failed"] == 0, autoscale.output[-4000:]
    hpa = kubectl("get", "hpa", "time", "-n", namespace, "-o", "json")
    assert hpa["spec"]["maxReplicas"] == 3 and hpa["spec"]["scaleTargetRef"]["name"] == "time"

    # The MCP check on (run_playbook turns it off): KWOK's pods cannot answer, but every request must be allowed.
    status = run_playbook("playbooks/status.yml", extra_vars={"toolhive_namespace": namespace, "toolhive_mcp_check": True},
                          env=env)
    assert recap(status.output)["failed"] == 0, status.output[-4000:]
    report = " ".join(status.output.split())  # the YAML callback folds long lines
    assert re.search(rf"VirtualMCPServer {namespace}/gateway: phase Ready; vmcp Deployment/gateway 3/3 ready", report)
    assert re.search(rf"MCPServer {namespace}/time: phase Ready; .* HPA time 1-3;", report)
    assert re.search(rf"MCPRemoteProxy {namespace}/up: phase Ready; proxy Deployment/up 2/2 ready", report)
    # The MCP check ran for every server with the account's own rights (pods list, pods/services proxy): the API
    # server answered each request itself (KWOK's pods have no network: "no route to host"), none was refused.
    assert len(re.findall(r"; MCP: could not run \(the API server cannot reach the pods\)", report)) == 4, report
    assert "MCP check: the MCP check could not run: the API server cannot reach the pods" in report, report
    assert "HTTP 403" not in status.output, status.output[-4000:]

    teardown = run_playbook("playbooks/teardown.yml", extra_vars=servers, env=env)
    assert recap(teardown.output)["failed"] == 0, teardown.output[-4000:]
    assert kubectl("get", "virtualmcpserver,mcpserver,mcpremoteproxy", "-n", namespace, "-o", "name").stdout == ""
    assert kubectl("get", "secret", "toolhive-redis-auth", "-n", namespace, check=False).returncode == 0  # kept

    for output in (deploy.output, again.output, scale.output, autoscale.output, status.output, teardown.output):
        assert token not in output


def test_the_automation_account_is_refused_outside_its_namespace(run_playbook, ansible_env, kubectl, namespace,
                                                                 automation):
    env = automation[0]
    other = f"{namespace}-other"
    kubectl("create", "namespace", other)
    try:
        kubectl("create", "secret", "generic", "not-yours", "-n", other, "--from-literal=k=v")
        read = subprocess.run(
            ["ansible", "localhost", "-m", "kubernetes.core.k8s_info", "-a",
             json.dumps({"kind": "Secret", "namespace": other, "name": "not-yours"})],
            cwd=REPO, env={**ansible_env, **env}, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False)
        output = read.stdout + read.stderr
        assert read.returncode != 0 and "403" in output and "forbidden" in output.lower(), output
        assert "dg==" not in output  # nothing of the Secret's data

        scale = run_playbook("playbooks/scale.yml", extra_vars={
            "toolhive_namespace": other, "toolhive_kind": "VirtualMCPServer", "toolhive_name": "gateway",
            "toolhive_replicas": 2}, env=env)
        assert recap(scale.output)["failed"] == 1
        assert "HTTP 403" in scale.output and "not allowed" in scale.output
    finally:
        kubectl("delete", "namespace", other, "--wait=false", check=False)

"""Exec authentication against the real API server, with the kubeconfig in a file and given as a dict.

The exec plugin is a script that prints a ServiceAccount's token (TokenRequest, `kubectl create token`), the way
cloud CLIs print theirs. That account may only read its own namespace, so a request that succeeds with it, and a
read elsewhere that is refused, show the credential really came from the plugin.
"""
import json
import sys

import pytest
import yaml

from ..conftest import REPO

sys.path.insert(0, str(REPO / ".collections"))
from ansible_collections.toolhive.k8s.plugins.module_utils.client import (  # noqa: E402
    K8sClient, connection_from_kubeconfig)
from ansible_collections.toolhive.k8s.plugins.module_utils.errors import K8sError  # noqa: E402


@pytest.fixture
def exec_kubeconfig(kubectl, kubeconfig, namespace, tmp_path):
    """A kubeconfig (dict) whose user is an exec plugin printing the token of a reader of NAMESPACE."""
    kubectl("create", "serviceaccount", "exec-reader", "-n", namespace)
    kubectl("create", "rolebinding", "exec-reader", "-n", namespace, "--clusterrole=view",
            f"--serviceaccount={namespace}:exec-reader")
    # What toolhive.k8s.status reads, in this namespace only ("view" does not cover the ToolHive kinds).
    kubectl("create", "role", "exec-reader-toolhive", "-n", namespace, "--verb=get,list",
            "--resource=mcpservers.toolhive.stacklok.dev", "--resource=deployments.apps",
            "--resource=statefulsets.apps", "--resource=horizontalpodautoscalers.autoscaling")
    kubectl("create", "rolebinding", "exec-reader-toolhive", "-n", namespace, "--role=exec-reader-toolhive",
            f"--serviceaccount={namespace}:exec-reader")
    token = kubectl("create", "token", "exec-reader", "-n", namespace, "--duration=10m").stdout.strip()
    plugin = tmp_path / "print-token"
    credential = {"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                  "status": {"token": token}}
    plugin.write_text("#!/bin/sh\ncat <<'EOF'\n%s\nEOF\n" % json.dumps(credential))
    plugin.chmod(0o700)
    bed = yaml.safe_load(open(kubeconfig).read())
    context = next(c for c in bed["contexts"] if c["name"] == bed["current-context"])["context"]
    cluster = next(c for c in bed["clusters"] if c["name"] == context["cluster"])
    authority = cluster["cluster"].get("certificate-authority")
    if authority and not authority.startswith("/"):
        cluster["cluster"]["certificate-authority"] = str((REPO / ".cluster" / authority).resolve())
    return {"apiVersion": "v1", "kind": "Config", "current-context": "exec",
            "clusters": [cluster], "contexts": [{"name": "exec", "context": {"cluster": cluster["name"],
                                                                             "user": "plugin"}}],
            "users": [{"name": "plugin", "user": {"exec": {
                "apiVersion": "client.authentication.k8s.io/v1", "command": str(plugin),
                "interactiveMode": "Never"}}}]}


def as_the_plugin_user(kubeconfig, namespace):
    client = K8sClient(connection_from_kubeconfig(kubeconfig))
    account = client.get(f"/api/v1/namespaces/{namespace}/serviceaccounts/exec-reader")
    assert account["metadata"]["name"] == "exec-reader"
    with pytest.raises(K8sError) as refused:  # the account may read its own namespace only
        client.get("/api/v1/namespaces/kube-system/secrets")
    assert refused.value.status == 403


def test_exec_auth_from_a_file(exec_kubeconfig, namespace, tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(exec_kubeconfig))
    as_the_plugin_user(str(path), namespace)


def test_exec_auth_from_a_dict(exec_kubeconfig, namespace):
    as_the_plugin_user(exec_kubeconfig, namespace)


def test_a_module_given_the_kubeconfig_as_a_dict(module, exec_kubeconfig, namespace, tmp_path):
    """As a play passes it (kubeconfig: "{{ lookup(...) | from_yaml }}"), with the default pointing nowhere."""
    result = module("status", kind="MCPServer", namespace=namespace, kubeconfig=exec_kubeconfig,
                    env={"KUBECONFIG": str(tmp_path / "nowhere"), "K8S_AUTH_KUBECONFIG": ""})
    assert not result.failed, result.output[-3000:]
    assert result["resources"] == [] and "findings" in result, result

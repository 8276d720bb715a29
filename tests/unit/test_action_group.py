"""Every module that talks to a cluster is reachable by the connection options a play sets once: it is in the
action group, and it runs through the action plugin that adds kubernetes.core's group defaults."""
import ast
import importlib
from pathlib import Path

import pytest
import yaml

from ansible_collections.toolhive.k8s.plugins.plugin_utils import cluster_action as cluster

REPO = Path(__file__).resolve().parents[2]
RUNTIME = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())


def talks_to_a_cluster(path):
    """A module built by run_module (module_utils.client), which adds the connection options."""
    tree = ast.parse(path.read_text())
    return any(isinstance(node, ast.Name) and node.id == "run_module" for node in ast.walk(tree))


MODULES = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py") if talks_to_a_cluster(p))


def test_the_enumeration_finds_the_modules():
    # A control: the enumeration itself must find them (tls_secret was missing from the group before).
    assert {"apply", "scale", "status", "tls_secret"} <= set(MODULES)
    assert "validate_variables" not in MODULES  # it reads variables only


@pytest.mark.parametrize("module", MODULES)
def test_a_cluster_module_is_in_the_action_group_with_the_cluster_action(module):
    assert module in RUNTIME["action_groups"]["k8s"], f"{module} is missing from meta/runtime.yml's group k8s"
    action = importlib.import_module(f"ansible_collections.toolhive.k8s.plugins.action.{module}")
    assert issubclass(action.ActionModule, cluster.ClusterAction), \
        f"plugins/action/{module}.py does not run through plugins/plugin_utils/cluster_action.py"


def test_kubernetes_core_defaults_fill_only_what_the_task_lacks():
    defaults = cluster.kubernetes_core_defaults([
        {"group/kubernetes.core.k8s": {"kubeconfig": "/first", "context": "a"}},
        {"group/kubernetes.core.k8s": {"kubeconfig": "/later"}, "kubernetes.core.k8s_info": {"context": "b"}},
    ])
    assert defaults == {"kubeconfig": "/later", "context": "a"}
    args = cluster.with_kubernetes_core_defaults(
        {"kind": "MCPServer", "verify_ssl": False},
        dict(defaults, validate_certs=True, persist_config=True))  # an option of kubernetes.core's only: left out
    assert args == {"kind": "MCPServer", "verify_ssl": False, "kubeconfig": "/later", "context": "a"}

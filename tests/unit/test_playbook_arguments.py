"""Each playbook checks its variables in its first task: a bad job fails there,
naming the variable, before it reads or writes anything in a cluster (the
kubeconfig here points nowhere, so any API call would fail differently)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHECKS = {"Check the job's variables before anything else", "Refuse an HPA without an upper bound"}
ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name("ansible-playbook"))


def run_playbook(playbook, *extra_vars, tmp_path):
    env = dict(os.environ, KUBECONFIG=str(tmp_path / "no-such-kubeconfig"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"), ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
    for key in [k for k in env if k.startswith("K8S_AUTH_")]:
        del env[key]
    args = [arg for var in extra_vars for arg in ("-e", var)]
    return subprocess.run([ANSIBLE_PLAYBOOK, f"playbooks/{playbook}.yml", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("playbook, extra_vars, messages", [
    ("scale", ["toolhive_kind=VirtualMCPServer", "toolhive_name=gateway"],
     ["missing required arguments: toolhive_replicas"]),
    ("scale", ["toolhive_kind=Deployment", "toolhive_name=gateway", "toolhive_replicas=three"],
     ["toolhive_replicas = 'three' must be a replica count",
      "value of toolhive_kind must be one of: VirtualMCPServer, MCPServer, MCPRemoteProxy, got: Deployment"]),
    ("autoscale", ["toolhive_kind=MCPServer", "toolhive_name=fetch", "toolhive_max_replicas=3",
                   "toolhive_cpu_percent=0"],
     ["toolhive_cpu_percent = '0' must be a percentage of the request from 1 to 1000"]),
    ("deploy", ['{"mcpserver_servers": [{"name": "x", "image": "i", "replicas": 10000}], "vmcp_instances": []}'],
     ["mcpserver_servers[0].replicas = 10000 must be a replica count from 0 to 20 (the bound is "
      "toolhive_replica_limit, 20: raise it for more)"]),
    ("status", ['{"toolhive_namespace": 15}'],
     ["toolhive_namespace = 15 is the number 15, not a string"]),
    ("autoscale", ["toolhive_kind=MCPServer", "toolhive_name=fetch", "toolhive_state=on"],
     ["value of toolhive_state must be one of: present, absent, got: on"]),
    ("autoscale", ["toolhive_kind=MCPServer", "toolhive_name=fetch", "toolhive_min_replicas=2"],
     ["toolhive_max_replicas must be set"]),
    ("deploy", ['{"mcpserver_servers": [{"name": "x"}], "vmcp_instances": []}'],
     ["missing required arguments: image found in mcpserver_servers"]),
    ("deploy", ['{"mcpserver_servers": [], "vmcp_instances": [], "redis_enabled": "maybe"}'],
     ["argument 'redis_enabled' is of type", "we were unable to convert to bool"]),  # the type's wording varies
    ("teardown", ['{"mcpserver_servers": [], "vmcp_instances": [], "purge": "perhaps"}'],
     ["argument 'purge' is of type", "we were unable to convert to bool"]),
], ids=lambda value: value if isinstance(value, str) else None)
def test_bad_variables_fail_in_the_first_task(playbook, extra_vars, messages, tmp_path):
    result = run_playbook(playbook, *extra_vars, tmp_path=tmp_path)
    assert result.returncode == 2, result.stdout
    tasks_run = re.findall(r"^TASK \[(.*?)\]", result.stdout, re.MULTILINE)
    assert tasks_run and set(tasks_run) <= CHECKS, tasks_run  # a check ran, and failed the job, first
    for message in messages:
        assert message in result.stdout

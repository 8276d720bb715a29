"""The `operator` role with the charts of the releases whose operator cannot be built here (v0.63.0 and the newest):
on the API-only bed of conftest.py, whose KWOK nodes run the operator's pod in name only (scheduled and Ready, no
process), which is all the role and Helm's wait look at. The previous release installed (its CRD chart applied
server-side, then its operator chart), upgraded to the newest, run again with no change, then removed: a chart change
that breaks the role fails here. The bed is left without an operator, as the other tests of this bed find it.

The tests of this module run in order.
"""
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from ..operator_release import chart_crd_schemas, helm_releases, operator_deployment
from .conftest import NEWEST, REPO

PREVIOUS = "v0.63.0"  # the release before the newest with CRD changes (docs/toolhive-versions.md)


def charts(release):
    """RELEASE's two charts, packaged by testbed/kind.sh from its Go module (once)."""
    return Path(subprocess.run([REPO / "testbed" / "kind.sh", "charts-dir", release], capture_output=True, text=True,
                               check=True, timeout=600).stdout.strip())


def recap(output):
    line = re.search(r"localhost\s*:\s*(.*)", output.split("PLAY RECAP")[-1]).group(1)
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


@pytest.fixture(scope="module")
def operator(newest_bed):
    """operator(release, *args, **extra_vars): playbooks/operator.yml on the bed with RELEASE's packaged charts."""

    def run(release, *args, **extra_vars):
        variables = {"operator_version": release.lstrip("v"), "operator_chart_repo": str(charts(release)),
                     **extra_vars}
        env = dict(os.environ, KUBECONFIG=newest_bed, K8S_AUTH_KUBECONFIG=newest_bed,
                   ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"),
                   ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
        proc = subprocess.run(["ansible-playbook", "playbooks/operator.yml", *args, "-e", json.dumps(variables)],
                              cwd=REPO, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600, check=False)
        proc.output = proc.stdout + proc.stderr
        return proc

    return run


def served_crd(kubectl, name):
    return kubectl("get", "crd", f"{name}.toolhive.stacklok.dev", "--show-managed-fields", "-o", "json")


def test_the_previous_release_installs_crds_first_then_the_operator(operator, kubectl, newest_bed):
    assert operator_deployment(kubectl) is None and helm_releases(newest_bed) == {}  # the bed as it comes up
    result = operator(PREVIOUS)
    assert result.returncode == 0, result.output[-3000:]
    deployment = operator_deployment(kubectl)
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == \
        f"ghcr.io/stacklok/toolhive/operator:{PREVIOUS}"
    assert deployment["status"].get("availableReplicas") == 1  # Helm's wait saw it Ready
    assert helm_releases(newest_bed) == {"toolhive-operator": f"toolhive-operator-{PREVIOUS.lstrip('v')}"}
    # The bed came up with the newest CRDs: the role applied the previous release's over them, server-side.
    crd = served_crd(kubectl, "virtualmcpservers")
    assert "toolhive.k8s" in {m["manager"] for m in crd["metadata"]["managedFields"]}
    assert {v["name"]: v["schema"] for v in crd["spec"]["versions"]} == chart_crd_schemas(charts(PREVIOUS), PREVIOUS, "virtualmcpservers")


def test_the_upgrade_to_the_newest_applies_its_crds_then_its_operator(operator, kubectl, newest_bed):
    # The two releases' CRDs differ (in descriptions only, docs/toolhive-versions.md): else this proves nothing.
    assert chart_crd_schemas(charts(PREVIOUS), PREVIOUS, "virtualmcpservers") != chart_crd_schemas(charts(NEWEST), NEWEST, "virtualmcpservers")
    result = operator(NEWEST)
    assert result.returncode == 0, result.output[-3000:]
    order = [m.start() for m in (re.search(r"TASK \[[^\]]*Apply the CRDs", result.output),
                                 re.search(r"TASK \[[^\]]*Install or upgrade the operator chart", result.output))]
    assert order == sorted(order)
    crd = served_crd(kubectl, "virtualmcpservers")
    assert {v["name"]: v["schema"] for v in crd["spec"]["versions"]} == chart_crd_schemas(charts(NEWEST), NEWEST, "virtualmcpservers")
    assert operator_deployment(kubectl)["spec"]["template"]["spec"]["containers"][0]["image"] == \
        f"ghcr.io/stacklok/toolhive/operator:{NEWEST}"
    assert helm_releases(newest_bed) == {"toolhive-operator": f"toolhive-operator-{NEWEST.lstrip('v')}"}


def test_a_second_run_of_the_newest_changes_nothing(operator):
    result = operator(NEWEST, "--diff")
    assert result.returncode == 0, result.output[-3000:]
    assert recap(result.output)["changed"] == 0, result.output[-3000:]


def test_removal_keeps_the_crds(operator, kubectl, newest_bed):
    result = operator(NEWEST, operator_state="absent")
    assert result.returncode == 0, result.output[-3000:]
    assert operator_deployment(kubectl) is None and helm_releases(newest_bed) == {}
    assert served_crd(kubectl, "mcpservers")["metadata"]["name"] == "mcpservers.toolhive.stacklok.dev"

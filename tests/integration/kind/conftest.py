"""Fixtures for the tests of the kind bed (testbed/kind.sh): they need TESTBED_NODES=kind and its cluster at
KUBECONFIG; anything else skips them (the KWOK suite and the process bed never collect them otherwise)."""
import os
import subprocess
from pathlib import Path

import pytest

from ..host import REPO

CACHE = Path(os.environ.get("TESTBED_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
             / "toolhive-k8s-testbed")
OPERATOR_PLAYBOOK = REPO / "playbooks" / "operator.yml"


@pytest.fixture(scope="session", autouse=True)
def kind_bed():
    if os.environ.get("TESTBED_NODES") != "kind":
        pytest.skip("the kind bed's tests run with TESTBED_NODES=kind on testbed/kind.sh's cluster")


def charts(release):
    """The directory testbed/kind.sh packages RELEASE's two charts into (kind.sh says where)."""
    return Path(subprocess.run([REPO / "testbed" / "kind.sh", "charts-dir", release], capture_output=True, text=True,
                               check=True).stdout.strip())


@pytest.fixture(scope="session")
def operator(run_playbook):
    """operator(release, *args, **extra_vars): playbooks/operator.yml for RELEASE (v0.47.0) from its packaged
    charts, with ARGS (--check, --diff) and EXTRA_VARS; returns the finished process (returncode, output)."""

    def run(release, *args, **extra_vars):
        variables = {"operator_version": release.lstrip("v"), "operator_chart_repo": str(charts(release)),
                     **extra_vars}
        return run_playbook(OPERATOR_PLAYBOOK, *args, extra_vars=variables)

    return run

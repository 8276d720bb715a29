"""An API-only test bed with the CRDs of the newest ToolHive release (its operator cannot be built here).

`testbed/cluster.sh up` with TESTBED_CRDS_VERSION=<newest> and TESTBED_OPERATOR=none, in a state directory and
on ports of its own (base 27400, NEWEST_CRDS_PORT_BASE to change it), so the default test bed (the operator's
CRDs, used by every other test) is never touched. Brought down at the end unless it was already running or
TESTBED_KEEP=1. No operator runs: the tests dry-run manifests, which only the API server and the CRDs judge.
"""
import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from ..audit_log import AuditLog
from ..versions_env import pinned

REPO = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("NEWEST_CRDS_STATE", REPO / ".build" / "newest-crds" / ".cluster"))
PORT_BASE = os.environ.get("NEWEST_CRDS_PORT_BASE", "27400")


NEWEST = os.environ.get("TOOLHIVE_NEWEST_VERSION") or pinned()["TOOLHIVE_NEWEST_VERSION"]


def bed_env():
    env = dict(os.environ, TESTBED_STATE=str(STATE), TESTBED_PORT_BASE=PORT_BASE, TESTBED_CRDS_VERSION=NEWEST,
               TESTBED_OPERATOR="none", TESTBED_NODES="kwok")
    env.pop("TOOLHIVE_OPERATOR_VERSION", None)
    return env


@pytest.fixture(scope="session")
def newest_bed():
    """The kubeconfig of the bed serving the newest release's CRDs."""
    up = subprocess.run(["nice", "-n", "10", str(REPO / "testbed" / "cluster.sh"), "up"], env=bed_env(),
                        capture_output=True, text=True, timeout=900, check=False)
    if up.returncode != 0:
        pytest.fail(f"the newest-CRD test bed ({NEWEST}) did not come up:\n{up.stderr[-3000:]}")
    started_here = "already running" not in up.stderr
    yield str(STATE / "kubeconfig")
    if started_here and os.environ.get("TESTBED_KEEP") != "1":
        subprocess.run([str(REPO / "testbed" / "cluster.sh"), "down"], env=bed_env(), capture_output=True,
                       timeout=120, check=False)


@pytest.fixture(scope="session")
def kubectl(newest_bed):
    def run(*args, check=True, stdin=None):
        cmd = ["kubectl", "--kubeconfig", newest_bed, *args]
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed: {proc.stderr}")
        if "json" in args and proc.returncode == 0:
            return json.loads(proc.stdout)
        return proc

    return run


@pytest.fixture
def namespace(kubectl):
    """A fresh namespace; --check dry-runs only where the namespace exists."""
    name = f"n-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def deploy_check(newest_bed):
    """deploy_check(vars..., diff=False): `ansible-playbook playbooks/deploy.yml --check [--diff]` on the bed;
    stdout+stderr in .output."""

    def run(*var_args, diff=False):
        cmd = ["ansible-playbook", "playbooks/deploy.yml", "--check"] + (["--diff"] if diff else [])
        for item in var_args:
            cmd += ["-e", item if isinstance(item, str) else json.dumps(item)]
        env = dict(os.environ, KUBECONFIG=newest_bed, K8S_AUTH_KUBECONFIG=newest_bed,
                   ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"),
                   ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
        proc = subprocess.run(cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600, check=False)
        proc.output = proc.stdout + proc.stderr
        return proc

    return run


class Audit(AuditLog):
    """The bed's audit log from the moment this is made (every request its API server answered since)."""

    def __init__(self, kubectl):
        super().__init__(STATE / "logs" / "audit.log", lambda name: kubectl("get", "namespace", name, check=False))


@pytest.fixture
def audit(kubectl):
    return lambda: Audit(kubectl)

"""Shared fixtures for tests that talk to a real Kubernetes API server.

The cluster is the local test bed (`make cluster-up`) unless KUBECONFIG points
elsewhere. There is no skipping: a missing cluster is a failure, not a pass.
"""
import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from ..audit_log import AuditLog

REPO = Path(__file__).resolve().parents[2]
TESTBED_KUBECONFIG = REPO / ".cluster" / "kubeconfig"


def pytest_configure(config):
    config.addinivalue_line("markers", "serial: changes cluster-wide state (an operator Deployment, a node's drain) or "
                                       "counts what load does; the suite runs these alone, after the parallel run "
                                       "(-m serial)")


def _kubeconfig():
    return os.environ.get("KUBECONFIG") or str(TESTBED_KUBECONFIG)


@pytest.fixture(scope="session")
def kubeconfig():
    path = _kubeconfig()
    probe = subprocess.run(
        ["kubectl", "--kubeconfig", path, "get", "--raw", "/readyz"],
        capture_output=True, text=True, timeout=30, check=False,
    )
    if probe.returncode != 0:
        pytest.fail(f"no Kubernetes API server at {path}: run `make cluster-up` first\n{probe.stderr}")
    return path


@pytest.fixture(scope="session")
def kubectl(kubeconfig):
    """Run kubectl against the test cluster; returns parsed JSON with `-o json`."""

    def run(*args, check=True, stdin=None):
        cmd = ["kubectl", "--kubeconfig", kubeconfig, *args]
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed: {proc.stderr}")
        if "json" in args and proc.returncode == 0:
            return json.loads(proc.stdout)
        return proc

    return run


@pytest.fixture
def namespace(kubectl):
    """A fresh namespace per test, deleted afterwards (without waiting)."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def ansible_env(kubeconfig):
    env = dict(os.environ)
    env.update(
        KUBECONFIG=kubeconfig,
        K8S_AUTH_KUBECONFIG=kubeconfig,
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
    )
    return env


@pytest.fixture(scope="session")
def run_playbook(ansible_env):
    """Run ansible-playbook from the repo; returns the CompletedProcess."""

    def run(playbook, *args, extra_vars=None, env=None):
        # Pods on KWOK's simulated nodes never answer: deploy.yml's closing MCP check is for running pods, whose
        # tests turn it back on (a later -e wins).
        cmd = ["ansible-playbook", str(playbook), *args, "-e", '{"toolhive_mcp_check": false}']
        if extra_vars is not None:
            cmd += ["-e", json.dumps(extra_vars)]
        merged = {k: v for k, v in {**ansible_env, **(env or {})}.items() if v is not None}  # None unsets
        proc = subprocess.run(cmd, cwd=REPO, env=merged,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=900, check=False)
        proc.output = proc.stdout + proc.stderr
        return proc

    return run


# The test bed keeps its audit log beside its kubeconfig (testbed/cluster.sh: STATE/logs/audit.log).
AUDIT_LOG = Path(_kubeconfig()).parent / "logs" / "audit.log"


class Audit(AuditLog):
    """The test bed's audit log from the moment this is made: every request the API server answered since."""

    def __init__(self, kubectl):
        super().__init__(AUDIT_LOG, lambda name: kubectl("get", "namespace", name, check=False))


@pytest.fixture
def audit(kubectl):
    """audit(): an Audit from now on."""
    return lambda: Audit(kubectl)


def wait_until(what, probe, timeout=60, interval=0.5):
    """probe() until it returns something true, and return that; its last answer is in the failure message."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last seen: {last!r}")

"""`cluster.sh down` of a test bed with a real node leaves this host as it found it.

A throw-away test bed (own state directory and ports) with TESTBED_NODES=real:
up, a pod with volumes, down; then no process, container, mount, bridge,
iptables chain, nft table, cgroup, host path or changed sysctl may remain.

The real node is one per machine (kube-proxy owns the host's KUBE-* rules), so
this test needs the machine's real node for itself: run it while no other test
bed has a real node up (e.g. as its own stage before the suite's cluster-up).
"""
import json
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from .realnode import (BRIDGE, GUARD, REPO, guard_owner, host_snapshot, image, kubepods_cgroups,
                       processes_mentioning, require_real_nodes)

BASE = 29400
PORTS = [BASE + off for off in (1, 2, 10, 11, 12, 13, 20, 43, 44, 57, 59, 81)]


def _listening(port, host="127.0.0.1"):
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) == 0


@pytest.fixture
def short_tmp():
    """pytest's tmp_path is too long for the node's unix sockets (node.sh allows 60 characters)."""
    path = Path(tempfile.mkdtemp(prefix="tb", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_down_leaves_nothing_behind(short_tmp):
    require_real_nodes()
    owner = guard_owner()
    if owner:
        pytest.fail(f"the real node of another test bed is up ({owner}); this test needs the machine's only "
                    "real node: run it before that test bed's cluster-up or after its cluster-down")
    state = short_tmp / "state"
    env = dict(os.environ, TESTBED_STATE=str(state), TESTBED_PORT_BASE=str(BASE), TESTBED_NODES="real")
    script = str(REPO / "testbed" / "cluster.sh")
    before = host_snapshot(state)

    try:
        up = subprocess.run([script, "up"], env=env, capture_output=True, text=True, timeout=900, check=False)
        assert up.returncode == 0, f"cluster-up failed:\n{up.stderr[-4000:]}"
        assert guard_owner() == str(state)

        def kc(*args, stdin=None):
            return subprocess.run(["kubectl", "--kubeconfig", str(state / "kubeconfig"), *args], input=stdin, capture_output=True,
                                  text=True, timeout=60, check=True).stdout

        # A pod with an emptyDir, a Secret-backed token and a configMap: mounts, a netns, cgroups.
        kc("create", "configmap", "c", "--from-literal=k=v")
        kc("apply", "-f", "-", stdin=json.dumps({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "redis"},
            "spec": {"containers": [{"name": "redis", "image": image("redis-debian"),
                                     "volumeMounts": [{"name": "d", "mountPath": "/data"},
                                                      {"name": "c", "mountPath": "/etc/c"}]}],
                     "volumes": [{"name": "d", "emptyDir": {}}, {"name": "c", "configMap": {"name": "c"}}]}}))
        kc("wait", "--for", "condition=Ready", "pod/redis", "--timeout", "60s")
        pids = {p.name: int(p.read_text()) for p in (state / "pids").iterdir()}
        assert {"containerd", "kubelet", "kube-proxy", "api-forward"} <= set(pids)
        containers = [int(pid) for cg in kubepods_cgroups() for pid in _procs(Path(cg))]
        assert containers, "no container process found in the kubepods cgroups"
        shims = [pid for pid, cmd in processes_mentioning(str(state)) if "containerd-shim" in cmd]
        assert shims, "no containerd shim found"
    finally:
        down = subprocess.run([script, "down"], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert down.returncode == 0, down.stderr

    for name, pid in pids.items():
        assert not Path(f"/proc/{pid}").exists(), f"{name} (pid {pid}) still running"
    for pid in containers + shims:
        assert not Path(f"/proc/{pid}").exists(), f"container or shim process {pid} still running"
    assert not state.exists()
    assert [p for p in PORTS if _listening(p)] == []
    assert guard_owner() is None, f"{GUARD} still installed"
    after = host_snapshot(state)
    assert BRIDGE not in after["links"]
    for key, value in before.items():
        assert after[key] == value, f"{key} changed: before {value!r}, after {after[key]!r}"


def _procs(cgroup):
    pids = []
    for procs in cgroup.rglob("cgroup.procs"):
        pids += [int(p) for p in procs.read_text().split()]
    return pids

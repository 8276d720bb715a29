"""`make cluster-down` on the kind bed leaves nothing of it on the host: no container or engine process, no
network, bridge, mount, cgroup or rule. Brings the bed down: make test runs it last."""
import os
import subprocess
from pathlib import Path

from ..host import REPO, iptables_chains, links
from .conftest import CACHE

ENGINE = CACHE / "kind-engine"


def processes_of_the_engine():
    """Processes whose command line names the engine's folder (dockerd, containerd, their shims) or a kind node."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(ENGINE) in cmdline or "toolhive-k8s-control-plane" in cmdline:
            found.append(f"{proc.name}: {cmdline[:200]}")
    return found


def mounts_of_the_bed():
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    return [m for m in mounts if str(ENGINE) in m or "toolhive-kind" in m or "/.kind/" in m]


def test_cluster_down_leaves_nothing():
    assert processes_of_the_engine(), "the kind bed is not up: nothing to take down"  # else this proves nothing
    proc = subprocess.run(["make", "cluster-down"], cwd=REPO, capture_output=True, text=True, timeout=300,
                          check=False, env=dict(os.environ, CLUSTER="kind"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert processes_of_the_engine() == []
    assert "thvkind0" not in links()
    assert {c for c in iptables_chains() if "THVKIND" in c} == set()
    assert mounts_of_the_bed() == []
    assert [d for d in Path("/sys/fs/cgroup").glob("*/docker") if d.is_dir()] == []
    assert not (ENGINE / "docker.sock").exists()
    assert not (REPO / ".kind").exists()

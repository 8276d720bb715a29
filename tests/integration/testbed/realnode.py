"""Helpers for the real-node tests: what `testbed/node.sh` installs on this host.

Every reading here is of the host itself (iptables counters, links, mounts,
cgroups, sysctls, processes); nothing is simulated.
"""
import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
NODES = os.environ.get("TESTBED_NODES", "kwok")
GUARD = "TESTBED-EGRESS-GUARD"
FORWARD = "TESTBED-EGRESS-FORWARD"
REJECT = "TESTBED-EGRESS-REJECT"
AUDIT = "TESTBED-EGRESS-AUDIT"
BRIDGE = "thvbr0"
HOST_PATHS = ["/run/containerd", "/var/lib/cni", "/var/log/containers", "/var/lib/kubelet",
              "/run/netns", "/etc/cni", "/opt/cni"]
SYSCTLS = ["net.ipv4.ip_forward", "net.ipv4.conf.all.forwarding", "net.ipv4.conf.default.forwarding",
           "net.ipv4.conf.all.route_localnet", "net.ipv6.conf.all.forwarding",
           "net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables",
           "vm.overcommit_memory", "vm.panic_on_oom", "kernel.panic", "kernel.panic_on_oops",
           "kernel.keys.root_maxkeys", "kernel.keys.root_maxbytes", "net.netfilter.nf_conntrack_max"]


def require_real_nodes():
    """Skip only on the explicit opt-out; everything else is the test's to pass or fail."""
    if NODES not in ("real", "both", "kind"):
        pytest.skip(f"TESTBED_NODES={NODES}: the real node is opted out (TESTBED_NODES=kind, real or both runs it)")


def ready_kind_node(kubectl, kubeconfig):
    """The kind cluster's one node (testbed/kind.sh), Ready and schedulable."""
    nodes = kubectl("get", "nodes", "-o", "json")["items"]
    ready = [n["metadata"]["name"] for n in nodes if not n["spec"].get("taints")
             and any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])]
    if len(ready) != 1:
        pytest.fail(f"TESTBED_NODES=kind needs the kind cluster of testbed/kind.sh at {kubeconfig} with one Ready, "
                    f"schedulable node; found {ready} of {[n['metadata']['name'] for n in nodes]}")
    return ready[0]


def ready_real_node(kubectl, kubeconfig):
    """The real node's name. Skips only on the opt-out; fails, with cluster-up's own reason, when it is not Ready."""
    require_real_nodes()
    if NODES == "kind":
        return ready_kind_node(kubectl, kubeconfig)
    unavailable = Path(kubeconfig).parent / "realnode-unavailable"
    if unavailable.exists():
        pytest.fail(f"the real node could not start; cluster-up said: {unavailable.read_text().strip()}")
    nodes = kubectl("get", "nodes", "-l", "toolhive.testbed/node=real", "-o", "json")["items"]
    ready = [n["metadata"]["name"] for n in nodes
             if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])]
    if not ready:
        pytest.fail(f"TESTBED_NODES asks for a real node but the cluster at {kubeconfig} has none Ready "
                    f"(nodes labelled toolhive.testbed/node=real: {[n['metadata']['name'] for n in nodes]}); "
                    "run testbed/cluster.sh up with the same TESTBED_NODES and read its output")
    return ready[0]


def run(*cmd, check=True):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr}")
    return proc.stdout


def counters(chain, table="filter"):
    """{rule text: packets} of one chain, as the kernel counts them."""
    out = run("iptables", "-w", "5", "-t", table, "-L", chain, "-v", "-x", "-n")
    rules = {}
    for line in out.splitlines()[2:]:
        fields = line.split()
        if fields:
            rules[" ".join(fields[2:])] = int(fields[0])
    return rules


def packets(chain, pattern, table="filter"):
    """Packets counted by the rules of CHAIN whose text matches PATTERN."""
    return sum(n for rule, n in counters(chain, table).items() if re.search(pattern, rule))


def leaked():
    """Packets of the guarded ranges that reached the last line (mangle POSTROUTING) and were dropped
    there: each one would have left the machine had the filter rules missed it."""
    return packets(AUDIT, r"^DROP", table="mangle")


def image(fragment):
    names = run(str(REPO / "testbed" / "images.sh"), "names").split()
    return next(n for n in names if fragment in n)


def sysctls():
    values = {}
    for key in SYSCTLS:
        proc = subprocess.run(["sysctl", "-n", key], capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            values[key] = proc.stdout.strip()
    return values


def iptables_chains():
    """Chain names in the IPv4 and IPv6 filter, nat and mangle tables."""
    names = set()
    for tool in ("iptables", "ip6tables"):
        for table in ("filter", "nat", "mangle"):
            out = run(tool, "-w", "5", "-t", table, "-S", check=False)
            names |= {f"{tool}/{table}/{line.split()[1]}" for line in out.splitlines() if line.startswith("-N ")}
    return names


def nft_tables():
    return set(run("nft", "list", "tables", check=False).splitlines())


def links():
    return {line.split()[0].split("@")[0] for line in run("ip", "-br", "link").splitlines()}


def mounts_under(*prefixes):
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if any(fields[1].startswith(p) for p in prefixes) or fields[0] == "overlay":
            found.append(fields[1])
    return found


def kubepods_cgroups():
    return sorted(str(p) for p in Path("/sys/fs/cgroup").glob("*/kubepods"))


def processes_mentioning(text):
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append((int(proc.name), cmdline.strip()))
    return found


def guard_owner():
    out = run("iptables", "-w", "5", "-S", GUARD, check=False)
    match = re.search(r'--comment "?owner=([^"]+)"?', out)
    return match.group(1).strip() if match else None


def host_snapshot(state):
    """Everything `down` must put back, in one comparable dict."""
    return {
        "sysctls": sysctls(),
        "chains": iptables_chains(),
        "nft tables": nft_tables(),
        "links": links(),
        "host paths": {p: os.path.exists(p) for p in HOST_PATHS},
        "mounts": mounts_under(str(state)),
        "kubepods cgroups": kubepods_cgroups(),
        "processes": processes_mentioning(str(state)),
    }

"""Readings of this host and of the kind bed (testbed/kind.sh) for the tests on running pods: the images the test
bed builds, the bed's one node, iptables chains and counters, links. Nothing here is simulated."""
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NODES = os.environ.get("TESTBED_NODES", "kind")


def require_running_pods():
    """Skip only on the explicit opt-out; everything else is the test's to pass or fail."""
    if NODES != "kind":
        pytest.skip(f"TESTBED_NODES={NODES}: running pods are opted out (TESTBED_NODES=kind runs them on "
                    "testbed/kind.sh's cluster)")


def ready_nodes(kubectl, kubeconfig, least=1):
    """The kind cluster's schedulable nodes, Ready: their names, sorted. Fails (skips only on the opt-out) when there
    are fewer than LEAST."""
    require_running_pods()
    nodes = kubectl("get", "nodes", "-o", "json")["items"]
    ready = sorted(n["metadata"]["name"] for n in nodes if not n["spec"].get("taints")
                   and any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"]))
    if len(ready) < least:
        pytest.fail(f"the tests on running pods need testbed/kind.sh's cluster at {kubeconfig} with at least {least} "
                    f"Ready, schedulable node(s) (TESTBED_KIND_WORKERS); found {ready} of "
                    f"{[n['metadata']['name'] for n in nodes]}")
    return ready


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


def image(fragment):
    """The test bed's image whose name contains FRAGMENT (testbed/images.sh names)."""
    names = run(str(REPO / "testbed" / "images.sh"), "names").split()
    return next(n for n in names if fragment in n)


def iptables_chains():
    """Chain names in the IPv4 and IPv6 filter, nat and mangle tables."""
    names = set()
    for tool in ("iptables", "ip6tables"):
        for table in ("filter", "nat", "mangle"):
            out = run(tool, "-w", "5", "-t", table, "-S", check=False)
            names |= {f"{tool}/{table}/{line.split()[1]}" for line in out.splitlines() if line.startswith("-N ")}
    return names


def links():
    return {line.split()[0].split("@")[0] for line in run("ip", "-br", "link").splitlines()}

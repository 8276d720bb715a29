"""The real node of the test bed (TESTBED_NODES=real or both): pods really run, and
nothing leaves this machine.

Each test reads the host's own state (iptables counters of the egress guard,
errors returned by the kernel to a real socket in a real pod) through the
cluster of $KUBECONFIG, which must have the real node.
"""
import errno
import json
import socket
import time
import uuid

import pytest
import yaml

from ..conftest import wait_until as _shared_wait
from .realnode import AUDIT, FORWARD, GUARD, REJECT, REPO, image, leaked, packets, ready_real_node, run

REAL = {"toolhive.testbed/node": "real"}
# An address outside this machine that no test may reach: TEST-NET-2 (RFC 5737). Not
# 192.0.2.1: on machines like ours that TEST-NET-1 address is the real default gateway.
OUTSIDE = "198.51.100.1"
UNUSED_CLUSTER_IP = "10.96.254.253"
KWOK_POD_IP = "10.244.7.7"


@pytest.fixture(scope="module")
def real_node(kubectl, kubeconfig):
    ready = ready_real_node(kubectl, kubeconfig)
    clusterips = {s["spec"].get("clusterIP") for s in kubectl("get", "services", "-A", "-o", "json")["items"]}
    assert UNUSED_CLUSTER_IP not in clusterips, "pick another unused ClusterIP for the test"
    return ready


def wait_until(what, probe, timeout=60, interval=0.25):
    return _shared_wait(what, probe, timeout, interval)


# A probe that runs in a pod: connect to each target once (2 s at most) and print
# the kernel's answer as JSON. Python from the mcp-server-time image.
PROBE = """
import errno, json, socket, sys, time
out = {}
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    s = socket.socket(); s.settimeout(2); t = time.monotonic()
    try:
        s.connect((host, int(port))); result = "connected"
    except socket.timeout:
        result = "timeout"
    except OSError as e:
        result = errno.errorcode.get(e.errno, str(e.errno))
    out[target] = [result, round(time.monotonic() - t, 3)]
    s.close()
for name in ["kubernetes.default.svc.cluster.local", "example.com"]:
    try:
        out[name] = ["resolved", sorted({a[4][0] for a in socket.getaddrinfo(name, 443, socket.AF_INET)})]
    except socket.gaierror as e:
        out[name] = ["unresolved", e.args[0]]
print(json.dumps(out))
"""


def run_probe(kubectl, namespace, *targets):
    name = f"probe-{uuid.uuid4().hex[:6]}"
    pod = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"nodeSelector": REAL, "restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                 "containers": [{"name": "probe", "image": image("mcp-server-time"),
                                 "imagePullPolicy": "IfNotPresent",
                                 "command": ["/usr/bin/python3", "-c", PROBE, *targets]}]},
    }
    kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(pod))

    def phase():
        obj = kubectl("get", "pod", name, "-n", namespace, "-o", "json")
        return obj["status"].get("phase") in ("Succeeded", "Failed") and obj["status"]

    status = wait_until(f"pod {name} to finish", phase, timeout=90)
    logs = kubectl("logs", name, "-n", namespace).stdout
    assert status["phase"] == "Succeeded", f"probe pod failed: {status}\n{logs}"
    return json.loads(logs.strip().splitlines()[-1])


def test_untranslated_cluster_ip_from_this_host_is_refused_by_the_guard(real_node):
    """No Service has this ClusterIP, so kube-proxy does not translate it: without the guard
    the SYN would follow the default route out of the machine."""
    rejected, leaks = packets(GUARD, r"10\.96\.0\.0/16"), leaked()
    sock = socket.socket()
    sock.settimeout(3)
    started = time.monotonic()
    with pytest.raises(OSError) as refused:
        sock.connect((UNUSED_CLUSTER_IP, 80))
    sock.close()
    assert refused.value.errno in (errno.EHOSTUNREACH, errno.ECONNREFUSED), refused.value
    assert time.monotonic() - started < 1.0, "refused locally, at once (not a timeout)"
    assert packets(GUARD, r"10\.96\.0\.0/16") > rejected, "the guard's service-range rule did not count it"
    assert leaked() == leaks, "a packet of the guarded ranges reached an outside interface"


def test_guard_comes_before_kube_proxy(real_node):
    """kube-proxy inserts its jumps at the top of OUTPUT and FORWARD (KUBE-FORWARD accepts some
    packets): the guard must still see every packet first."""
    for chain, target in (("OUTPUT", GUARD), ("FORWARD", FORWARD)):
        rules = run("iptables", "-w", "5", "-S", chain).splitlines()
        assert rules[1].endswith(f"-j {target}"), f"{chain} starts with {rules[1]!r}, not the guard"
    assert run("iptables", "-w", "5", "-t", "mangle", "-S", "POSTROUTING").count(f"-j {AUDIT}") == 1


def test_pod_cannot_reach_outside_untranslated_or_kwok_addresses(real_node, kubectl, namespace):
    """From a real pod: an outside address, an untranslated ClusterIP and a KWOK pod address are
    refused on this host (the guard counts them); the cluster's own Service works; DNS answers
    cluster names only."""
    rejected, leaks = packets(REJECT, r"^REJECT"), leaked()
    result = run_probe(kubectl, namespace, f"{OUTSIDE}:80", f"{UNUSED_CLUSTER_IP}:80", f"{KWOK_POD_IP}:80",
                       "10.96.0.1:443")
    for target in (f"{OUTSIDE}:80", f"{UNUSED_CLUSTER_IP}:80", f"{KWOK_POD_IP}:80"):
        outcome, seconds = result[target]
        assert outcome in ("EHOSTUNREACH", "ECONNREFUSED"), f"{target}: {outcome} ({result})"
        assert seconds < 1.0, f"{target} was not refused at once: {seconds}s"
    assert result["10.96.0.1:443"][0] == "connected", f"Service kubernetes through kube-proxy: {result}"
    assert result["kubernetes.default.svc.cluster.local"] == ["resolved", ["10.96.0.1"]], result
    assert result["example.com"][0] == "unresolved", f"CoreDNS must not forward: {result}"
    assert packets(REJECT, r"^REJECT") >= rejected + 3, "the guard did not count the three refusals"
    assert packets(FORWARD, r"thvbr0") > 0
    assert leaked() == leaks, "a packet of the guarded ranges reached an outside interface"


def test_image_pull_cannot_leave_the_machine(real_node, kubectl, namespace):
    """An image that was not imported fails to pull at once, through containerd's proxy: a closed
    local port. (The guard covers the cluster's ranges; this covers containerd's own traffic.)"""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pull"},
           "spec": {"nodeSelector": REAL, "terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "c", "image": "docker.io/library/busybox:1.36.1",
                                    "imagePullPolicy": "Always"}]}}
    kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(pod))

    def waiting():
        obj = kubectl("get", "pod", "pull", "-n", namespace, "-o", "json")
        for status in obj["status"].get("containerStatuses", []):
            state = status.get("state", {}).get("waiting", {})
            if state.get("reason") in ("ErrImagePull", "ImagePullBackOff") and state.get("message"):
                return state
        return None

    state = wait_until("the pull to fail", waiting, timeout=60)
    assert "127.0.0.1:9" in state["message"], state


def test_host_network_pods_are_refused(real_node, kubectl, namespace):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hostnet"},
           "spec": {"hostNetwork": True, "containers": [{"name": "c", "image": image("pause")}]}}
    proc = kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(pod), check=False)
    assert proc.returncode != 0 and "host network" in proc.stderr, proc.stderr


def test_pod_starts_on_the_real_node_and_answers(real_node, kubectl, namespace):
    """A Redis pod (Debian's redis-server image) created, Ready, and answering PING through exec."""
    redis = image("redis-debian")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "redis"},
           "spec": {"nodeSelector": REAL, "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "redis", "image": redis, "args": ["--save", "", "--appendonly", "no"],
                                    "readinessProbe": {"exec": {"command": ["redis-cli", "ping"]},
                                                       "periodSeconds": 1}}]}}
    started = time.monotonic()
    kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(pod))

    def ready():
        obj = kubectl("get", "pod", "redis", "-n", namespace, "-o", "json")
        return any(c["type"] == "Ready" and c["status"] == "True" for c in obj["status"].get("conditions", []))

    wait_until("pod redis Ready", ready, timeout=60, interval=0.1)
    elapsed = time.monotonic() - started
    assert kubectl("exec", "redis", "-n", namespace, "--", "redis-cli", "ping").stdout.strip() == "PONG"
    assert elapsed < 15, f"pod create to Ready took {elapsed:.1f}s"


def test_the_example_overrides_name_the_redis_image_the_node_runs(real_node):
    """make deploy's testbed/example-overrides.yml names the Redis image this machine built (its tag is the
    installed redis-tools package's version: a Debian update changes it, and then this file must follow)."""
    overrides = yaml.safe_load((REPO / "testbed" / "example-overrides.yml").read_text())
    assert overrides["redis_image"] == image("redis-debian"), (
        f"testbed/example-overrides.yml names {overrides['redis_image']}, the test bed built "
        f"{image('redis-debian')}: update the file")

"""Acceptance tests of the local test bed: real API server, KWOK nodes, operator.

Pods never run containers here; these tests check what the API server, the
controllers and the ToolHive operator do.
"""
import json
import os
import socket
import subprocess
import time
from pathlib import Path

from ..conftest import wait_until as _shared_wait


REPO = Path(__file__).resolve().parents[3]
API = "toolhive.stacklok.dev/v1beta1"


def wait_until(what, probe, timeout=90, interval=1.0):
    return _shared_wait(what, probe, timeout, interval)


def apply(kubectl, namespace, *manifests):
    # A leading "---" makes kubectl read a YAML stream (of JSON documents): a stream that starts
    # with "{" is read as JSON, and the "---" between documents is then a parse error.
    kubectl("apply", "-n", namespace, "-f", "-", stdin="---\n" + "\n---\n".join(json.dumps(m) for m in manifests))


def ready_replicas(kubectl, namespace, kind, name):
    obj = kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
    return obj.get("status", {}).get("readyReplicas", 0) if isinstance(obj, dict) else 0


def condition(obj, ctype):
    for cond in obj.get("status", {}).get("conditions", []):
        if cond["type"] == ctype:
            return cond
    return None


def test_nodes_are_ready(kubectl):
    nodes = kubectl("get", "nodes", "-o", "json")["items"]
    ready = [n["metadata"]["name"] for n in nodes if condition(n, "Ready") and condition(n, "Ready")["status"] == "True"]
    assert len(ready) >= 2, f"want at least two Ready nodes, got {ready}"


def test_plain_deployment_reaches_three_ready_replicas(kubectl, namespace):
    apply(kubectl, namespace, {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "web", "image": "nginx"}]}},
        },
    })
    wait_until("3 ready replicas of deployment/web",
               lambda: ready_replicas(kubectl, namespace, "deployment", "web") == 3)


def test_vmcp_without_session_storage_warns_and_scales(kubectl, namespace):
    apply(kubectl, namespace,
          {"apiVersion": API, "kind": "MCPGroup", "metadata": {"name": "team"}, "spec": {}},
          {"apiVersion": API, "kind": "VirtualMCPServer", "metadata": {"name": "gateway"},
           "spec": {"groupRef": {"name": "team"}, "incomingAuth": {"type": "anonymous"}, "replicas": 3}})

    def warning():
        vmcp = kubectl("get", "virtualmcpserver", "gateway", "-n", namespace, "-o", "json")
        cond = condition(vmcp, "SessionStorageWarning")
        return cond if cond and cond["status"] == "True" else None

    cond = wait_until("SessionStorageWarning=True on the VirtualMCPServer", warning)
    assert cond["reason"] == "SessionStorageMissingForReplicas"
    # The Deployment is named after the resource (not vmcp-<name>, the Service).
    wait_until("3 ready replicas of deployment/gateway",
               lambda: ready_replicas(kubectl, namespace, "deployment", "gateway") == 3)
    assert kubectl("get", "service", "vmcp-gateway", "-n", namespace, check=False).returncode == 0


def test_streamable_http_mcpserver_reaches_ready(kubectl, namespace):
    apply(kubectl, namespace, {
        "apiVersion": API, "kind": "MCPServer", "metadata": {"name": "fetch"},
        "spec": {"image": "ghcr.io/stackloklabs/gofetch/server:latest",
                 "transport": "streamable-http", "proxyPort": 8080, "mcpPort": 8080},
    })

    def phase():
        obj = kubectl("get", "mcpserver", "fetch", "-n", namespace, "-o", "json")
        return obj.get("status", {}).get("phase") == "Ready"

    wait_until("MCPServer fetch phase Ready", phase, timeout=120)


def test_hpa_enforces_min_replicas(kubectl, namespace):
    apply(kubectl, namespace, {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "scaled"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "scaled"}},
                 "template": {"metadata": {"labels": {"app": "scaled"}},
                              "spec": {"containers": [{"name": "c", "image": "x",
                                                       "resources": {"requests": {"cpu": "100m"}}}]}}},
    }, {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "scaled"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "scaled"},
                 "minReplicas": 2, "maxReplicas": 4,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                              "target": {"type": "Utilization", "averageUtilization": 70}}}]},
    })
    wait_until("the HPA to raise deployment/scaled to minReplicas=2",
               lambda: ready_replicas(kubectl, namespace, "deployment", "scaled") == 2, timeout=120)


def _listening(port):
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_second_test_bed_up_is_idempotent_and_down_leaves_nothing(tmp_path):
    """A throw-away test bed on other ports: up twice, then down."""
    base = 27400
    env = dict(os.environ, TESTBED_STATE=str(tmp_path / "state"), TESTBED_PORT_BASE=str(base),
               TESTBED_NODES="kwok")  # the machine's one real node may be the suite's
    script = str(REPO / "testbed" / "cluster.sh")
    first = subprocess.run([script, "up"], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert first.returncode == 0, first.stderr
    assert f"export KUBECONFIG={tmp_path}/state/kubeconfig" in first.stdout
    pids = {p.name: int(p.read_text()) for p in (tmp_path / "state" / "pids").iterdir()}
    assert {"etcd", "kube-apiserver", "thv-operator", "kwok"} <= set(pids)
    # The beds share one egress guard, each its owner rule in it: this bed's down must leave the suite's bed guarded.
    owner = f'--comment "owner={tmp_path}/state"'
    assert owner in guard_rules(), guard_rules()

    second = subprocess.run([script, "up"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert second.returncode == 0 and "already running" in second.stderr
    assert {p.name: int(p.read_text()) for p in (tmp_path / "state" / "pids").iterdir()} == pids

    down = subprocess.run([script, "down"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert down.returncode == 0, down.stderr
    for name, pid in pids.items():
        assert not Path(f"/proc/{pid}").exists(), f"{name} (pid {pid}) still running"
    ports = [base + off for off in (1, 2, 43, 44, 47, 57, 59, 81)]
    assert [p for p in ports if _listening(p)] == []
    assert not (tmp_path / "state").exists()
    rules = guard_rules()
    assert owner not in rules and "owner=" in rules and "-d 10.244.0.0/16 -j REJECT" in rules, rules
    assert "-j TESTBED-KWOK-GUARD" in subprocess.run(["iptables", "-w", "5", "-S", "OUTPUT"], capture_output=True,
                                                     text=True, check=False).stdout


def guard_rules():
    return subprocess.run(["iptables", "-w", "5", "-S", "TESTBED-KWOK-GUARD"], capture_output=True, text=True,
                          check=False).stdout


def test_hpa_scales_up_when_simulated_cpu_usage_rises(kubectl, namespace):
    """KWOK serves kubelet metrics from the pod annotation kwok.x-k8s.io/usage-cpu;
    metrics-server turns them into metrics.k8s.io, which the HPA controller reads."""
    def deployment(usage):
        return {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "busy"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "busy"}},
                     "template": {"metadata": {"labels": {"app": "busy"},
                                               "annotations": {"kwok.x-k8s.io/usage-cpu": usage}},
                                  "spec": {"containers": [{"name": "c", "image": "x",
                                                           "resources": {"requests": {"cpu": "100m"}}}]}}},
        }

    apply(kubectl, namespace, deployment("10m"), {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "busy"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "busy"},
                 "minReplicas": 1, "maxReplicas": 4,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                              "target": {"type": "Utilization", "averageUtilization": 70}}}]},
    })

    def current_utilization():
        hpa = kubectl("get", "hpa", "busy", "-n", namespace, "-o", "json")
        for metric in hpa.get("status", {}).get("currentMetrics") or []:
            utilization = metric.get("resource", {}).get("current", {}).get("averageUtilization")
            if utilization is not None:
                return utilization
        return None

    low = wait_until("the HPA to read the pods' CPU usage",
                     lambda: current_utilization() is not None, timeout=120) and current_utilization()
    assert low < 70
    assert kubectl("get", "deployment", "busy", "-n", namespace, "-o", "json")["spec"]["replicas"] == 1

    apply(kubectl, namespace, deployment("200m"))  # 200% of the request
    wait_until("the HPA to scale deployment/busy above 1 replica",
               lambda: ready_replicas(kubectl, namespace, "deployment", "busy") > 1, timeout=150)


def test_failed_component_is_reported_with_its_log_tail(tmp_path):
    """The API server's port is taken: `up` fails, names the component, shows its log."""
    base = 28400
    env = dict(os.environ, TESTBED_STATE=str(tmp_path / "state"), TESTBED_PORT_BASE=str(base),
               TESTBED_NODES="kwok")  # the machine's one real node may be the suite's
    script = str(REPO / "testbed" / "cluster.sh")
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", base + 43))
        squatter.listen()
        up = subprocess.run([script, "up"], env=env, capture_output=True, text=True, timeout=180, check=False)
    try:
        assert up.returncode != 0
        assert "FAILED: kube-apiserver did not become ready" in up.stderr
        assert "address already in use" in up.stderr  # the tail of the component's own log
    finally:
        down = subprocess.run([script, "down"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert down.returncode == 0
    assert not [p for p in (base + 1, base + 2, base + 43) if _listening(p)]


def test_proxy_to_a_kwok_pod_address_is_refused_on_this_host(kubectl, namespace):
    """KWOK hands out pod addresses no interface here owns: without a guard, the API server's pod proxy would send
    them along the default route, out of the machine. The guard rejects them locally, at once (EHOSTUNREACH from an
    ICMP admin-prohibited reply of this host), where a packet sent out would wait for a timeout or an answer."""
    apply(kubectl, namespace, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "fake"},
                               "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
    ip = wait_until("the pod's address", lambda: kubectl("get", "pod", "fake", "-n", namespace, "-o", "json")
                    ["status"].get("podIP"))
    assert ip.startswith("10.244."), ip
    started = time.monotonic()
    answer = kubectl("get", "--raw", f"/api/v1/namespaces/{namespace}/pods/fake:80/proxy/", check=False)
    took = time.monotonic() - started
    assert answer.returncode != 0
    assert f"dial tcp {ip}:80: connect: no route to host" in answer.stderr, answer.stderr
    assert took < 10, f"refused only after {took:.1f} s: the packet may have left the machine"
    guards = subprocess.run(["iptables", "-w", "5", "-S", "OUTPUT"], capture_output=True, text=True, check=False)
    assert "-j TESTBED-KWOK-GUARD" in guards.stdout or "-j TESTBED-EGRESS-GUARD" in guards.stdout, guards.stdout

"""Nothing leaves the machine from the kind bed (testbed/kind.sh with its own engine): a pod's connection to an
outside address and the host's to an untranslated ClusterIP fail here, the cluster's DNS forwards nowhere, and kind
never writes the user's kubeconfig. Readings are of the host and of pods that really run."""
import json
import os
import subprocess
import uuid

import pytest
import yaml

from ..conftest import wait_until
from ..host import REPO, counters, image
from ...versions_env import pinned as versions
from .conftest import CACHE

GUARD, GUARD_OUT = "THVKIND-GUARD", "THVKIND-GUARD-OUT"
OUTSIDE = "192.0.2.10"  # TEST-NET-1: an address of no machine here


def own_engine():
    if subprocess.run(["iptables", "-w", "5", "-S", GUARD], capture_output=True, check=False).returncode != 0:
        pytest.fail("the kind bed's guard chain is missing: testbed/kind.sh up installs it before its engine starts")


def dropped(chain):
    return sum(n for rule, n in counters(chain).items() if rule.startswith(("DROP", "REJECT")))


@pytest.fixture(scope="module")
def shell_pod(kubectl):
    """A pod with a shell (the test bed's Redis image: busybox) in a namespace of its own."""
    namespace = f"kind-bed-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", namespace)
    kubectl("run", "shell", "-n", namespace, f"--image={image('redis-debian')}", "--restart=Never",
            "--command", "--", "sleep", "3600")
    kubectl("wait", "-n", namespace, "--for=condition=Ready", "pod/shell", "--timeout=120s")
    yield lambda *cmd: kubectl("exec", "-n", namespace, "shell", "--", *cmd, check=False)
    kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_a_pod_cannot_reach_an_outside_address(shell_pod):
    own_engine()
    forwarding = open("/proc/sys/net/ipv4/ip_forward").read().strip() == "1"
    before = dropped(GUARD)
    result = shell_pod("nc", "-w", "3", OUTSIDE, "80")
    assert result.returncode != 0, result.stdout
    if forwarding:  # the host would route it out: the guard's DROP counted it
        assert dropped(GUARD) > before, counters(GUARD)


def test_the_host_cannot_reach_an_untranslated_cluster_ip(kubectl):
    own_engine()
    cluster_ip = kubectl("get", "service", "kubernetes", "-n", "default", "-o", "json")["spec"]["clusterIP"]
    before = dropped(GUARD_OUT)
    probe = subprocess.run(["curl", "-sk", "--max-time", "3", f"https://{cluster_ip}/"], capture_output=True,
                           text=True, check=False)
    assert probe.returncode != 0
    assert dropped(GUARD_OUT) > before, counters(GUARD_OUT)


def test_the_cluster_dns_answers_for_the_cluster_and_forwards_nowhere(shell_pod):
    inside = shell_pod("nslookup", "kubernetes.default.svc.cluster.local")
    assert inside.returncode == 0 and "Address" in inside.stdout, inside.stdout + inside.stderr
    outside = shell_pod("nslookup", "example.com")
    assert outside.returncode != 0, outside.stdout


def test_kind_never_writes_the_users_kubeconfig(tmp_path):
    """A second `up` (the cluster exists) with a HOME of its own: no HOME/.kube/config appears. The caches that
    HOME would move stay where they are."""
    caches = subprocess.run(["go", "env", "GOPATH", "GOCACHE", "GOMODCACHE"], capture_output=True, text=True,
                            check=True).stdout.split()
    env = dict(os.environ, HOME=str(tmp_path), KUBECONFIG="", GOPATH=caches[0], GOCACHE=caches[1],
               GOMODCACHE=caches[2], TESTBED_CACHE=str(CACHE))
    proc = subprocess.run([str(REPO / "testbed" / "kind.sh"), "up"], env=env, capture_output=True, text=True,
                          timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (tmp_path / ".kube" / "config").exists()  # (kubectl keeps its discovery cache in .kube/cache)
    assert f"export KUBECONFIG={REPO}/.kind/kubeconfig" in proc.stdout


def test_the_nodes_run_the_pinned_kubernetes_release(kubectl):
    own_engine()  # the user's engine runs kind's public node image (KIND_NODE_IMAGE), of kind's own release
    wanted = versions()["KUBERNETES_VERSION"]
    nodes = kubectl("get", "nodes", "-o", "json")["items"]
    assert {n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes} == {wanted}


def test_metrics_server_reads_the_nodes(kubectl):
    wait_until("metrics for the node", lambda: kubectl("top", "nodes", check=False).returncode == 0, timeout=180)


def test_an_image_pull_cannot_leave_the_machine(kubectl, shell_pod):
    """An image that was not loaded fails to pull at once, through the node containerd's proxy: a closed local
    port (the guard covers the nodes' own traffic; this covers containerd's)."""
    own_engine()
    namespace = kubectl("get", "pods", "-A", "-l", "run=shell", "-o", "json")["items"][0]["metadata"]["namespace"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pull"},
           "spec": {"terminationGracePeriodSeconds": 0,
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


def test_the_example_overrides_name_the_redis_image_the_node_runs():
    """make deploy's testbed/example-overrides.yml names the Redis image this machine built (its tag is the
    installed redis-tools package's version: a Debian update changes it, and then this file must follow)."""
    overrides = yaml.safe_load((REPO / "testbed" / "example-overrides.yml").read_text())
    assert overrides["redis_image"] == image("redis-debian"), (
        f"testbed/example-overrides.yml names {overrides['redis_image']}, the test bed built "
        f"{image('redis-debian')}: update the file")


def test_a_claim_of_the_default_class_binds_and_a_pod_writes_to_it(kubectl):
    """kind's default StorageClass `standard` (on the own engine, kind.sh installs the local-path-provisioner kind's
    node image has): a claim naming no class gets it, binds once a pod uses it (WaitForFirstConsumer), the pod
    writes to it, and the volume is removed with its claim (reclaimPolicy Delete, the helper pod's teardown)."""
    classes = kubectl("get", "storageclasses", "-o", "json")["items"]
    default = [c for c in classes
               if c["metadata"].get("annotations", {}).get("storageclass.kubernetes.io/is-default-class") == "true"]
    assert [(c["metadata"]["name"], c["provisioner"], c["volumeBindingMode"]) for c in default] == [
        ("standard", "rancher.io/local-path", "WaitForFirstConsumer")], default
    namespace = f"kind-pvc-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", namespace)
    try:
        claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
                 "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "16Mi"}}}}
        kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(claim))
        assert kubectl("get", "pvc", "data", "-n", namespace, "-o", "json")["status"]["phase"] == "Pending"
        # The test bed's Redis image as a shell (busybox), its own user (uid 999): the volume is writable by any.
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "writer"},
               "spec": {"terminationGracePeriodSeconds": 0,
                        "containers": [{"name": "c", "image": image("redis-debian"), "command": [
                            "sh", "-c", "echo written > /data/file && sleep 3600"],
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}}
        kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(pod))
        kubectl("wait", "-n", namespace, "--for=condition=Ready", "pod/writer", "--timeout=120s")
        bound = kubectl("get", "pvc", "data", "-n", namespace, "-o", "json")
        assert bound["status"]["phase"] == "Bound" and bound["spec"]["storageClassName"] == "standard", bound["status"]
        volume = kubectl("get", "pv", bound["spec"]["volumeName"], "-o", "json")
        assert volume["spec"]["hostPath"]["path"].startswith("/var/local-path-provisioner/"), volume["spec"]
        node = kubectl("get", "pod", "writer", "-n", namespace, "-o", "json")["spec"]["nodeName"]
        assert node in json.dumps(volume["spec"]["nodeAffinity"]), volume["spec"]["nodeAffinity"]
        assert kubectl("exec", "-n", namespace, "writer", "--", "cat", "/data/file").stdout == "written\n"

        kubectl("delete", "pod", "writer", "-n", namespace, "--wait=true")
        kubectl("delete", "pvc", "data", "-n", namespace, "--wait=true")
        wait_until("the volume to be removed", lambda: kubectl(
            "get", "pv", volume["metadata"]["name"], check=False).returncode != 0, timeout=120)
    finally:
        kubectl("delete", "namespace", namespace, "--wait=false", check=False)

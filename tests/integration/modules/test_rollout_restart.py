"""toolhive.k8s.rollout_restart on the test bed: every pod of the readers of a Secret replaced, one at a time, the
pod leaving its ReplicaSet and its Services before it is deleted; the workloads' templates untouched."""
import json

from .conftest import wait_for
from .test_password_secret import reader


def pods(kubectl, namespace, selector):
    return {p["metadata"]["name"]: p for p in kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json")["items"]
            if not p["metadata"].get("deletionTimestamp")}


def service(apply, name, selector):
    apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
           "spec": {"selector": selector, "ports": [{"port": 80}]}})


def test_every_reader_but_the_skipped_ones_gets_new_pods(module, apply, get, kubectl, namespace):
    module("password_secret", name="auth", namespace=namespace)
    for name, secret in (("redis", "auth"), ("gateway", "auth"), ("proxy", "auth"), ("unrelated", "other")):
        reader(apply, name, secret)
    before = {name: wait_for(f"{name}'s pod", lambda name=name: pods(kubectl, namespace, f"app={name}"))
              for name in ("redis", "gateway", "proxy", "unrelated")}
    generations = {name: get("deployment", name)["metadata"]["generation"] for name in before}

    dry = module("rollout_restart", check=True, namespace=namespace, secret="auth",
                 skip=[{"kind": "Deployment", "name": "redis"}])
    assert not dry.failed and dry["restarted"] == ["Deployment/gateway", "Deployment/proxy"], dry.output
    assert pods(kubectl, namespace, "app=gateway").keys() == before["gateway"].keys()  # check mode: nothing

    result = module("rollout_restart", namespace=namespace, secret="auth", skip=[{"kind": "Deployment", "name": "redis"}])
    assert not result.failed and result["changed"], result.output
    assert result["restarted"] == ["Deployment/gateway", "Deployment/proxy"]
    assert sorted(result["replaced_pods"]) == sorted(list(before["gateway"]) + list(before["proxy"]))
    for name in ("gateway", "proxy"):
        now = pods(kubectl, namespace, f"app={name}")
        assert len(now) == 1 and not now.keys() & before[name].keys(), (name, list(now))
    for name in ("redis", "unrelated"):
        assert pods(kubectl, namespace, f"app={name}").keys() == before[name].keys()
    # The pods were replaced by their ReplicaSets, from the same template: no rollout, nothing for an operator to undo.
    assert {name: get("deployment", name)["metadata"]["generation"] for name in before} == generations


def test_a_pod_a_run_left_draining_is_finished(module, apply, kubectl, namespace):
    """A pod out of its ReplicaSet (toolhive.k8s/draining) that a stopped run left behind its Service: the next run
    takes it out of the Service and deletes it, and says so."""
    module("password_secret", name="auth", namespace=namespace)
    apply({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "left", "labels": {"role": "left", "toolhive": "true"},
        "annotations": {"toolhive.k8s/draining": "2026-12-05T00:00:00Z"}},
        "spec": {"containers": [{"name": "c", "image": "x"}]}})
    service(apply, "left", {"role": "left", "toolhive": "true"})
    wait_for("the Service's endpoint", lambda: "left" in json.dumps(kubectl(
        "get", "endpointslices", "-n", namespace, "-l", "kubernetes.io/service-name=left", "-o", "json")))
    result = module("rollout_restart", namespace=namespace, secret="auth")
    assert not result.failed and result["leftovers"] == ["left"] and result["changed"], result.output
    # It left the Service by its own label, kept the one Redis's NetworkPolicy admits, and was deleted.
    left = [p for p in kubectl("get", "pods", "-n", namespace, "-o", "json")["items"] if p["metadata"]["name"] == "left"]
    assert not left or (left[0]["metadata"].get("deletionTimestamp")
                        and left[0]["metadata"]["labels"] == {"toolhive": "true"}), left


def test_the_operators_gateway_gets_new_pods_and_keeps_none_from_before(module, vmcp, kubectl, get, namespace):
    """A VirtualMCPServer's gateway, whose template the operator owns: its two pods replaced, none left over."""
    module("password_secret", name="auth", namespace=namespace)
    gateway = vmcp(replicas=2, sessionStorage={"provider": "redis", "address": "r:6379", "keyPrefix": "a:",
                                               "passwordRef": {"name": "auth", "key": "password"}})
    wait_for("the gateway's Redis password env", lambda: "auth" in json.dumps(get("deployment", gateway)["spec"]))

    def gateway_pods():
        found = pods(kubectl, namespace, "app.kubernetes.io/instance=%s" % gateway)
        return sorted(p["metadata"]["uid"] for p in found.values() if p["metadata"].get("ownerReferences"))

    before = wait_for("the gateway's two pods", lambda: len(gateway_pods()) == 2 and gateway_pods())
    result = module("rollout_restart", namespace=namespace, secret="auth")
    assert not result.failed and result["restarted"] == ["Deployment/%s" % gateway], result.output
    after = gateway_pods()
    assert len(after) == 2 and not set(after) & set(before), (before, after)
    assert not pods(kubectl, namespace, "pod-template-hash=draining")

"""toolhive.k8s.run_lock on the test bed: one holder per namespace, waits saying for whom, takes over an expired
Lease, releases only its own (tests/integration/roles/test_run_lock_playbooks.py: through the playbooks)."""
import datetime
import json
import os
import socket
import subprocess
import time

LEASE = "toolhive-k8s-run"


def holder_of(get):
    lease = get("lease", LEASE)
    return lease["spec"]["holderIdentity"] if lease else None


def test_one_holder_waits_names_it_then_takes_over_when_it_expires(module, get, kubectl, namespace):
    mine = module("run_lock", namespaces=[namespace], holder="run C")
    assert not mine.failed and mine["taken"] == [namespace] and not mine["changed"], mine.output
    assert holder_of(get) == "run C"
    renewed = module("run_lock", namespaces=[namespace], holder="run C")
    assert not renewed.failed and renewed["taken"] == [], renewed.output
    assert module("run_lock", namespaces=[namespace], holder="run C", state="absent")["released"] == [namespace]

    # Run A, whose process is still there (this one), holds the namespace for 10 s from now.
    foreign_lease(kubectl, namespace, os.getpid(), seconds=10)
    started = time.monotonic()
    busy = module("run_lock", namespaces=[namespace], holder="run B", wait_timeout=1)
    assert busy.failed and time.monotonic() - started < 30
    assert f"namespace {namespace} is being deployed or torn down by run A" in busy["msg"], busy["msg"]
    assert f"kubectl delete lease {LEASE} -n {namespace}" in busy["msg"]
    assert holder_of(get) == "run A"

    # A never renews: after its 10 s B takes over, having waited and said for whom.
    took = module("run_lock", namespaces=[namespace], holder="run B", wait_timeout=30)
    assert not took.failed and took["taken"] == [namespace] and took["waited"] > 0, took.output
    assert any("waiting: namespace %s is being deployed or torn down by run A" % namespace in w
               for w in took.get("warnings", [])), took.get("warnings")
    assert holder_of(get) == "run B"

    assert module("run_lock", namespaces=[namespace], holder="run A", state="absent")["released"] == []
    assert holder_of(get) == "run B"  # not A's to release
    released = module("run_lock", namespaces=[namespace], holder="run B", state="absent")
    assert released["released"] == [namespace] and get("lease", LEASE) is None


def test_check_mode_says_who_holds_and_writes_nothing(module, get, kubectl, namespace):
    foreign_lease(kubectl, namespace, os.getpid())
    checked = module("run_lock", check=True, namespaces=[namespace, "no-such-namespace"], holder="run B")
    assert not checked.failed and checked["held_by"] == {namespace: "run A", "no-such-namespace": None}
    assert holder_of(get) == "run A"


def test_a_namespace_that_does_not_exist_is_returned_not_locked(module):
    result = module("run_lock", namespaces=["nowhere-yet"], holder="run A")
    assert not result.failed and result["missing"] == ["nowhere-yet"] and result["taken"] == []


def foreign_lease(kubectl, namespace, pid, seconds=1800):
    """A Lease of run A on this controller, renewed now for SECONDS, whose ansible-playbook had PID."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": LEASE, "annotations": {"toolhive.k8s/controller-host": socket.gethostname(),
                                                    "toolhive.k8s/controller-pid": str(pid)}},
        "spec": {"holderIdentity": "run A", "leaseDurationSeconds": seconds, "acquireTime": stamp, "renewTime": stamp}}))


def test_a_lease_whose_run_is_gone_from_this_controller_is_taken_over_at_once(module, get, kubectl, namespace):
    foreign_lease(kubectl, namespace, os.getpid())  # the control: a run that is still there is waited for
    busy = module("run_lock", namespaces=[namespace], holder="run B", wait_timeout=1)
    assert busy.failed and "by run A" in busy["msg"], busy.output
    gone = subprocess.Popen(["true"])
    gone.wait()
    foreign_lease(kubectl, namespace, gone.pid)
    took = module("run_lock", namespaces=[namespace], holder="run B", wait_timeout=1)
    assert not took.failed and took["taken"] == [namespace] and took["waited"] < 1, took.output
    notes = get("lease", LEASE)["metadata"]["annotations"]
    assert notes["toolhive.k8s/controller-host"] == socket.gethostname()
    assert notes["toolhive.k8s/controller-pid"] != str(gone.pid)  # now this run's ansible-playbook

"""Pure logic of toolhive.k8s.apply: what counts as a no-op, how a conflict is told, readiness per kind."""
from ansible_collections.toolhive.k8s.plugins.module_utils import applier, waiter
from ansible_collections.toolhive.k8s.plugins.module_utils.errors import K8sError


def live(**spec):
    return {"apiVersion": "v1", "kind": "ConfigMap", "data": spec,
            "metadata": {"name": "c", "namespace": "n", "resourceVersion": "7", "generation": 1,
                         "managedFields": [{"manager": "toolhive.k8s", "operation": "Apply",
                                            "time": "2026-11-25T10:00:00Z", "fieldsV1": {"f:data": {"f:a": {}}}}]}}


def test_a_dry_run_that_changes_only_bookkeeping_is_a_no_op():
    dry = live(a="1")
    dry["metadata"].update(resourceVersion="8", generation=2)
    dry["metadata"]["managedFields"][0]["time"] = "2026-11-25T11:00:00Z"
    assert applier._comparable(dry) == applier._comparable(live(a="1"))


def test_a_changed_value_or_a_changed_owner_is_a_change():
    assert applier._comparable(live(a="2")) != applier._comparable(live(a="1"))
    taken = live(a="1")
    taken["metadata"]["managedFields"][0]["manager"] = "kubectl"
    assert applier._comparable(taken) != applier._comparable(live(a="1"))


def test_diffs_leave_out_managed_fields_and_status():
    shown = applier.shown(dict(live(a="1"), status={"x": 1}))
    assert "status" not in shown and "managedFields" not in shown["metadata"]
    assert applier.shown(None) == {}


def test_paths_come_from_the_kinds_table_and_refuse_what_is_not_a_name():
    assert applier.object_path({"apiVersion": "apps/v1", "kind": "Deployment",
                                "metadata": {"name": "d", "namespace": "n"}}) == "/apis/apps/v1/namespaces/n/deployments/d"
    assert applier.object_path({"apiVersion": "toolhive.stacklok.dev/v1alpha1", "kind": "MCPServer",
                                "metadata": {"name": "m", "namespace": "n"}}) == \
        "/apis/toolhive.stacklok.dev/v1alpha1/namespaces/n/mcpservers/m"
    try:
        applier.object_path({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "../x", "namespace": "n"}})
    except ValueError as exc:
        assert "metadata.name" in str(exc)
    else:
        raise AssertionError("a path segment with ../ was accepted")


def test_an_apply_conflict_names_ownership_and_the_fix():
    exc = K8sError("PATCH /x: HTTP 409: Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas — "
                   "conflict: someone else changed the object", status=409)
    text = applier.ssa_message(exc)
    assert "another field manager owns these fields" in text and "--force-conflicts" in text
    assert "someone else changed" not in text
    assert applier.ssa_message(K8sError("HTTP 422: bad", status=422)) == "HTTP 422: bad"


def rollout(kind="Deployment", spec=3, ready=3, updated=3, current=3, available=3, generation=2, observed=2, **status):
    return {"kind": kind, "metadata": {"generation": generation}, "spec": {"replicas": spec},
            "status": dict(status, replicas=current, readyReplicas=ready, updatedReplicas=updated,
                           availableReplicas=available, observedGeneration=observed)}


def test_a_deployment_is_ready_only_when_its_controller_saw_the_spec_and_every_pod_is_new_and_ready():
    assert waiter.deployment_ready(rollout())
    assert not waiter.deployment_ready(rollout(observed=1))  # the controller has not seen the new spec
    assert not waiter.deployment_ready(rollout(updated=2))  # an old pod still serves
    assert not waiter.deployment_ready(rollout(current=4))  # an old pod still exists
    assert not waiter.deployment_ready(rollout(available=2))
    assert waiter.deployment_ready(rollout(spec=0, ready=0, updated=0, current=0, available=0))


def test_a_statefulset_is_ready_when_every_pod_runs_the_update_revision():
    assert waiter.statefulset_ready(rollout("StatefulSet", currentRevision="a", updateRevision="a"))
    assert not waiter.statefulset_ready(rollout("StatefulSet", currentRevision="a", updateRevision="b"))
    assert not waiter.statefulset_ready(rollout("StatefulSet", ready=2))


def workload(kind, generation=2, observed=2, revision="3", **status):
    return {"metadata": {"name": "redis", "namespace": "ns", "generation": generation, "uid": "u-1",
                         "annotations": {"deployment.kubernetes.io/revision": revision}},
            "spec": {"selector": {"matchLabels": {"app": "redis", "tier": "cache"}}},
            "status": dict(observedGeneration=observed, **status)}


def replica_set(template_hash, revision, owner="u-1"):
    return {"metadata": {"name": "redis-" + template_hash, "labels": {"pod-template-hash": template_hash},
                         "annotations": {"deployment.kubernetes.io/revision": revision},
                         "ownerReferences": [{"kind": "Deployment", "uid": owner}]}}


def test_the_current_pods_of_a_rollout_are_those_of_its_new_revision():
    sets = [replica_set("6d4cf56db6", "3"), replica_set("5b8f9c7d44", "2")]
    assert waiter.current_pods_selector("Deployment", workload("Deployment"), sets) == \
        "app=redis,tier=cache,pod-template-hash=6d4cf56db6"
    assert waiter.current_pods_selector("StatefulSet", workload("StatefulSet", updateRevision="redis-7f9")) == \
        "app=redis,tier=cache,controller-revision-hash=redis-7f9"
    # A rollback to an earlier template: the controller renumbers that template's ReplicaSet, whatever its
    # Progressing condition still names (seen: the bad template's ReplicaSet, whose pod could not pull).
    rolled_back = workload("Deployment", revision="4", conditions=[
        {"type": "Progressing", "reason": "ReplicaSetUpdated", "message": 'ReplicaSet "redis-6d4cf56db6" is progressing.'}])
    assert waiter.current_pods_selector("Deployment", rolled_back, [replica_set("6d4cf56db6", "3"),
                                                                    replica_set("5b8f9c7d44", "4")]) == \
        "app=redis,tier=cache,pod-template-hash=5b8f9c7d44"
    # Not yet known: the controller has not seen the new spec, or has not numbered the ReplicaSet of this
    # Deployment (another Deployment's, with the same labels, does not count).
    assert waiter.current_pods_selector("Deployment", workload("Deployment", observed=1), sets) is None
    assert waiter.current_pods_selector("Deployment", workload("Deployment", revision="4"), sets) is None
    assert waiter.current_pods_selector("Deployment", workload("Deployment"), [replica_set("6d4cf56db6", "3", "u-2")]) is None
    assert waiter.current_pods_selector("StatefulSet", workload("StatefulSet")) is None


def pod(name, waiting=None, scheduled=None, deleting=False):
    status = {"containerStatuses": [{"name": "redis", "state": {"waiting": waiting} if waiting else {"running": {}}}]}
    if scheduled:
        status["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                 "message": scheduled}]
    meta = {"name": name, **({"deletionTimestamp": "2026-12-05T00:00:00Z"} if deleting else {})}
    return {"metadata": meta, "status": status}


def test_pod_troubles_tell_what_no_wait_ends_from_what_may_pass():
    stuck, other = waiter.pod_troubles([
        pod("a", {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "x:1"'}),
        pod("b", {"reason": "CrashLoopBackOff", "message": "back-off 10s restarting failed container"}),
        pod("c", {"reason": "ErrImagePull", "message": "registry unavailable"}),
        pod("d", {"reason": "ContainerCreating"}),
        pod("e", scheduled="0/1 nodes are available: 1 Insufficient cpu."),
        pod("f", {"reason": "ImagePullBackOff"}, deleting=True),
        pod("g"),
    ])
    assert stuck == ['pod a, container redis: ImagePullBackOff: Back-off pulling image "x:1"',
                     "pod b, container redis: CrashLoopBackOff: back-off 10s restarting failed container"]
    assert other == ["pod c, container redis: ErrImagePull: registry unavailable",
                     "pod e is not scheduled: 0/1 nodes are available: 1 Insufficient cpu."]


def test_a_crash_loop_is_told_with_what_the_container_last_said():
    crashing = pod("redis-0", {"reason": "CrashLoopBackOff", "message": "back-off 20s"})
    crashing["status"]["containerStatuses"][0]["lastState"] = {"terminated": {"exitCode": 1, "message": (
        "this pod starts empty and would be the master (Sentinels), while other pods hold data\n")}}
    stuck, _other = waiter.pod_troubles([crashing])
    assert stuck == ["pod redis-0, container redis: CrashLoopBackOff: back-off 20s (it said: this pod starts empty "
                     "and would be the master (Sentinels), while other pods hold data)"]


def test_only_a_statefulsets_stuck_pods_of_an_earlier_revision_are_left_behind():
    """What toolhive.k8s.status replace_stuck_pods deletes: a pod that cannot start on a revision the StatefulSet no
    longer wants - never one of the current revision (that one is the wait's failure), a running one, or a
    Deployment's (its controller replaces them)."""
    def at(revision, name, waiting=None):
        made = pod(name, waiting)
        made["metadata"]["labels"] = {"app": "clock", "controller-revision-hash": revision}
        return made

    pods = [at("clock-bad", "clock-0", {"reason": "ImagePullBackOff"}), at("clock-bad", "clock-1"),
            at("clock-good", "clock-2", {"reason": "CrashLoopBackOff"})]

    class Pods:
        def get(self, path, labelSelector=None):
            assert path == "/api/v1/namespaces/n/pods" and labelSelector == "app=clock"
            return {"items": pods}

    sts = {"metadata": {"name": "clock", "namespace": "n"}, "spec": {"selector": {"matchLabels": {"app": "clock"}}},
           "status": {"updateRevision": "clock-good", "currentRevision": "clock-bad"}}
    left = waiter.stuck_on_an_earlier_revision(Pods(), "StatefulSet", sts)
    assert [p["metadata"]["name"] for p in left] == ["clock-0"]
    assert waiter.stuck_on_an_earlier_revision(Pods(), "Deployment", sts) == []


def test_a_running_pod_that_is_not_ready_is_told_with_what_its_probe_last_said():
    def running(name, ready):
        return {"metadata": {"name": name}, "status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True" if ready else "False"}]}}

    class Events:
        def get(self, path, fieldSelector=None):
            assert path == "/api/v1/namespaces/n/events" and fieldSelector == "reason=Unhealthy"
            return {"items": [
                {"involvedObject": {"name": "redis-1"}, "lastTimestamp": "2026-12-05T10:00:09Z",
                 "message": "Readiness probe failed: Sentinel s-1 does not know this replica yet"},
                {"involvedObject": {"name": "redis-1"}, "lastTimestamp": "2026-12-05T10:00:01Z",
                 "message": "Readiness probe failed: Redis does not answer PING"},
                {"involvedObject": {"name": "redis-0"}, "lastTimestamp": "2026-12-05T10:00:05Z",
                 "message": "Readiness probe failed: earlier, now ready"}]}

    told = waiter.failing_probes(Events(), "n", [running("redis-0", True), running("redis-1", False),
                                                 running("redis-2", False)])
    assert told == ["pod redis-1 is not ready: Readiness probe failed: Sentinel s-1 does not know this replica yet",
                    "pod redis-2 is not ready: no probe failure reported"]
    assert waiter.failing_probes(None, "n", [running("redis-0", True)]) == []  # no request when every pod is ready


def test_a_job_is_ready_when_it_succeeded_and_stuck_when_its_pod_failed_saying_why():
    job = {"metadata": {"name": "rotate", "namespace": "ns", "generation": 1},
           "spec": {"selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}}}, "status": {}}
    assert not waiter.job_ready(job) and waiter.job_ready(dict(job, status={"succeeded": 1}))
    # A Job's template never changes: all of its pods are current, whatever its (absent) observedGeneration says.
    assert waiter.current_pods_selector("Job", job) == "batch.kubernetes.io/controller-uid=u1"
    failed = {"metadata": {"name": "rotate-x"}, "status": {"phase": "Failed", "containerStatuses": [{
        "name": "rotate", "state": {"terminated": {"reason": "Error", "exitCode": 1,
                                                   "message": "Redis answers neither password\n"}}}]}}
    running = {"metadata": {"name": "rotate-y"}, "status": {"phase": "Running"}}
    assert waiter.job_failures([failed, running]) == [
        "pod rotate-x, container rotate: Error (exit code 1): Redis answers neither password"]

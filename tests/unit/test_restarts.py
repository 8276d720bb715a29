import datetime
import time

import pytest

from ansible_collections.toolhive.k8s.plugins.module_utils import restarts, waiter
from ansible_collections.toolhive.k8s.plugins.modules import password_secret
from ansible_collections.toolhive.k8s.plugins.module_utils.errors import K8sError


def test_a_pod_reads_a_secret_through_env_envfrom_or_a_volume_of_any_container():
    spec = {"initContainers": [{"env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "init", "key": "k"}}}]}],
            "containers": [{"env": [{"name": "B", "value": "plain"},
                                    {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}],
                            "envFrom": [{"secretRef": {"name": "bulk"}}, {"configMapRef": {"name": "cm2"}}]}],
            "volumes": [{"secret": {"secretName": "mounted"}}, {"emptyDir": {}}]}
    assert restarts.secret_refs(spec) == {"init", "bulk", "mounted"}
    assert restarts.secret_refs({}) == set()


def test_a_wait_of_a_drain_asks_again_through_an_outage_and_ends_at_once_on_a_stuck_pod(monkeypatch):
    monkeypatch.setattr(waiter.time, "sleep", lambda seconds: None)
    answers = iter([K8sError("no answer"), K8sError("HTTP 503", status=503), False, "ready"])

    def probe():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert waiter.poll_until("the replacement", probe, time.time() + 60) == "ready"

    def stuck():
        raise waiter.Stuck("Deployment ns/gw cannot become ready: pod gw-1, container vmcp: ImagePullBackOff")

    with pytest.raises(waiter.Stuck):
        waiter.poll_until("the replacement", stuck, time.time() + 60)

    def refused():  # not transient: no second ask
        raise K8sError("HTTP 403", status=403)

    with pytest.raises(K8sError, match="HTTP 403"):
        waiter.poll_until("the replacement", refused, time.time() + 60)


class Recorder:
    """A client that records the writes password_secret.restart sends."""

    def __init__(self):
        self.sent = []

    def patch(self, path, body, patch_type="merge", dry_run=False):
        self.sent.append(("PATCH", path, body, patch_type, dry_run))

    def request(self, method, path, params=None):
        self.sent.append((method, path, params))


def owned(kind, name, owner=None):
    refs = [{"kind": owner, "name": "srv", "apiVersion": "toolhive.stacklok.dev/v1beta1", "controller": True}]
    return kind, {"metadata": {"name": name, "ownerReferences": refs if owner else []},
                  "spec": {"selector": {"matchLabels": {"app": name, "app.kubernetes.io/instance": "srv"}}}}


@pytest.mark.parametrize("check_mode", [False, True])
def test_each_reader_is_restarted_the_way_its_owner_does_not_undo(monkeypatch, check_mode):
    """An MCPServer's proxy through the operator's annotation on the MCPServer, a gateway's and a remote proxy's pods
    deleted, anything else (Redis) by a new pod-template annotation."""
    class Now(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=tz)

    monkeypatch.setattr(password_secret.datetime, "datetime", Now)
    client = Recorder()
    workloads = [owned("Deployment", "proxy", "MCPServer"), owned("Deployment", "gw", "VirtualMCPServer"),
                 owned("Deployment", "remote", "MCPRemoteProxy"), owned("StatefulSet", "redis")]
    done = password_secret.restart(client, "ns", workloads, check_mode)
    assert done == ["Deployment/proxy", "Deployment/gw", "Deployment/remote", "StatefulSet/redis"]
    dry, now = "All" if check_mode else None, "2026-01-02T03:04:05Z"
    assert client.sent == [
        ("PATCH", "/apis/toolhive.stacklok.dev/v1beta1/namespaces/ns/mcpservers/srv",
         {"metadata": {"annotations": {"mcpserver.toolhive.stacklok.dev/restarted-at": now}}}, "merge", check_mode),
        ("DELETE", "/api/v1/namespaces/ns/pods",
         {"labelSelector": "app=gw,app.kubernetes.io/instance=srv", "dryRun": dry}),
        ("DELETE", "/api/v1/namespaces/ns/pods",
         {"labelSelector": "app=remote,app.kubernetes.io/instance=srv", "dryRun": dry}),
        ("PATCH", "/apis/apps/v1/namespaces/ns/statefulsets/redis",
         {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}}}},
         "strategic", check_mode),
    ]


def test_a_scale_down_removes_the_pods_not_ready_then_those_of_the_fullest_node_then_the_newest():
    def pod(name, node, created, ready=True):
        return {"metadata": {"name": name, "creationTimestamp": created}, "spec": {"nodeName": node},
                "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}
    pods = [pod("a-old", "a", "2026-12-05T10:00:00Z"), pod("a-new", "a", "2026-12-05T11:00:00Z"),
            pod("b-only", "b", "2026-12-05T12:00:00Z"), pod("c-starting", "c", "2026-12-05T09:00:00Z", ready=False)]
    order = [p["metadata"]["name"] for p in restarts.removal_order(pods)]
    # Not ready first, though oldest; then node a (2 pods there), newest first; then b (1).
    assert order == ["c-starting", "a-new", "a-old", "b-only"]


def test_a_replaced_statefulset_pod_counts_once_a_service_selects_it_and_its_endpoint_is_ready():
    services = [{"spec": {"selector": {"app": "greeter", "toolhive-basename": "greeter"}}},
                {"spec": {}}]  # no selector: endpoints kept by hand, never waited for
    labels = {"app": "greeter", "toolhive-basename": "greeter", "x": "y"}
    assert [restarts.selects(service, labels) for service in services] == [True, False]
    assert not restarts.selects(services[0], {"app": "greeter"})

    class Slices:
        def __init__(self, *endpoints):
            self.endpoints = list(endpoints)

        def get(self, path, **params):
            assert path.endswith("/endpointslices"), path
            return {"items": [{"endpoints": self.endpoints}]}

    def endpoint(uid, **conditions):
        return {"targetRef": {"uid": uid}, **({"conditions": conditions} if conditions else {})}
    # The new pod listed but not ready yet (the EndpointSlice controller's view lags the pod's): not yet.
    assert restarts.listed_by_endpoints(Slices(endpoint("new", ready=False)), "ns", "new")
    assert not restarts.listed_by_endpoints(Slices(endpoint("new", ready=False)), "ns", "new", ready=True)
    assert restarts.listed_by_endpoints(Slices(endpoint("new", ready=True)), "ns", "new", ready=True)
    assert restarts.listed_by_endpoints(Slices(endpoint("new")), "ns", "new", ready=True)  # absent: ready
    assert not restarts.listed_by_endpoints(Slices(endpoint("old", ready=True)), "ns", "new", ready=True)

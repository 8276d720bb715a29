import time

import pytest

from ansible_collections.toolhive.k8s.plugins.module_utils import restarts, waiter
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

"""What a wait for a workload says when its pods cannot start, on running pods: a current pod the kubelet cannot
start (an image no node can pull, a container that keeps crashing) ends the wait at once, naming the pod and the
reason; a pod no node can take is named with the scheduler's message when the wait times out; a rollout's old pods
stuck on a bad image do not stop the fixed re-run. Through the redis role (toolhive.k8s.apply's wait), and through
the deploy's wait for the servers (toolhive.k8s.status with wait_rollout)."""
import re

import pytest

from ..conftest import REPO
from ..host import image
from .test_example import example

PLAYBOOK = REPO / "tests" / "integration" / "roles" / "playbooks" / "redis.yml"


@pytest.fixture
def redis(run_playbook, fresh_namespace, images):
    """redis(**variables): the redis role in a fresh namespace with the test bed's Redis image; the finished run."""

    def run(**variables):
        return run_playbook(PLAYBOOK, extra_vars={"redis_namespace": fresh_namespace, "redis_image": images["redis"],
                                                  **variables})

    return run


def failure(result):
    assert result.returncode != 0, result.output[-3000:]
    return re.sub(r"\s+", " ", result.output[result.output.index("fatal:"):])


def test_an_image_no_node_can_pull_fails_the_wait_at_once_naming_it_then_the_fixed_run_converges(redis, kubectl,
                                                                                                 fresh_namespace):
    message = failure(redis(redis_image="localhost/toolhive-testbed/no-such-image:1", redis_wait_timeout=300))
    assert re.search(r"Deployment \S+/toolhive-redis cannot become ready: pod toolhive-redis-\S+, container "
                     r"redis: ImagePullBackOff", message), message[:3000]
    assert "timed out" not in message  # it did not wait its 300 s
    # The fix: the old ReplicaSet's pod is still in ImagePullBackOff while the new one starts; the wait looks at
    # the current template's pods only.
    fixed = redis()
    assert fixed.returncode == 0, fixed.output[-3000:]
    deployment = kubectl("get", "deployment", "toolhive-redis", "-n", fresh_namespace, "-o", "json")
    assert deployment["status"]["readyReplicas"] == 1


def test_a_container_that_keeps_crashing_fails_the_wait_naming_crashloopbackoff(redis):
    # Another program under the Redis image's role: metrics-server refuses Redis's arguments and exits, again and
    # again (every Redis setting that would make Redis itself exit is refused before any write).
    message = failure(redis(redis_image=image("metrics-server"), redis_wait_timeout=300))
    assert re.search(r"container redis: CrashLoopBackOff", message), message[:3000]
    assert "timed out" not in message


def test_a_pod_no_node_can_take_is_named_with_the_schedulers_message(redis):
    message = failure(redis(redis_resources={"requests": {"cpu": "64"}}, redis_wait_timeout=20))
    assert "timed out after 20s waiting for Deployment to be ready" in message, message[:3000]
    assert re.search(r"pod toolhive-redis-\S+ is not scheduled: 0/\d+ nodes are available: .*Insufficient cpu",
                     message), message[:3000]


def test_a_server_redeployed_with_an_image_no_node_can_pull_fails_the_deploy_naming_it(run_playbook, kubectl,
                                                                                       fresh_namespace, images):
    """The operator's Ready follows the new generation while the old pods serve: the deploy's wait also waits for
    the rollout, and a pod of the new revision that cannot start ends it at once, named (the deploy used to succeed
    in seconds on the old pods' Ready)."""
    time_image = next(s["image"] for s in example()["mcpserver_servers"] if s["name"] == "time")
    variables = {"toolhive_namespace": fresh_namespace, "toolhive_group": "waits", "redis_image": images["redis"],
                 "vmcp_instances": [], "toolhive_mcp_check": False,
                 "mcpserver_servers": [{"name": "clock", "image": time_image, "transport": "stdio"}]}
    first = run_playbook(REPO / "playbooks" / "deploy.yml", extra_vars=variables)
    assert first.returncode == 0, first.output[-3000:]
    broken = dict(variables, mcpserver_servers=[{"name": "clock", "image": time_image + "-missing",
                                                 "transport": "stdio"}], mcpserver_wait_timeout=300)
    message = failure(run_playbook(REPO / "playbooks" / "deploy.yml", extra_vars=broken))
    assert re.search(rf"a pod cannot start, so the rollout cannot end: MCPServer {fresh_namespace}/clock: pod clock-"
                     r"\S+, container \S+: (ImagePullBackOff|CrashLoopBackOff)", message), message[:3000]
    assert "timed out" not in message
    # The fixed re-run converges without hands: the backend StatefulSet's pod stuck on the bad revision is one its
    # controller never replaces (it waits for that pod to become Ready); the deploy's wait deletes it, and the
    # controller makes it again at the fixed revision (toolhive.k8s.status replace_stuck_pods). It used to time out.
    fixed = run_playbook(REPO / "playbooks" / "deploy.yml", extra_vars=dict(variables, mcpserver_wait_timeout=180))
    assert fixed.returncode == 0, fixed.output[-3000:]
    assert re.search(r"changed: \[localhost\] => \(item=MCPServer\)", fixed.output), fixed.output[-3000:]
    backend = kubectl("get", "statefulset", "clock", "-n", fresh_namespace, "-o", "json")
    assert backend["status"]["currentRevision"] == backend["status"]["updateRevision"], backend["status"]
    assert backend["status"].get("readyReplicas") == 1, backend["status"]
    pods = kubectl("get", "pods", "-n", fresh_namespace, "-l", f"controller-revision-hash={backend['status']['updateRevision']}",
                   "-o", "json")["items"]
    assert [c["image"] for p in pods for c in p["spec"]["containers"]] == [time_image]

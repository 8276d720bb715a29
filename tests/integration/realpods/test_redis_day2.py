"""Day-2 changes to Redis reach the running Redis (issue: "success means it is true"), on running pods.

Redis alone (standalone, no persistence) deployed by playbooks/deploy.yml in a fresh namespace; then, in order:
a changed maxmemory and policy restart Redis and the running Redis has the new values (CONFIG GET in its pod), and
the deploy says the open sessions ended; switching redis_persistence on is refused before any write; a teardown run
with other variables (persistence on) still removes the Redis the collection made.
"""
import pytest

from .conftest import REPO

pytestmark = pytest.mark.usefixtures("real_nodes")

DEPLOY, TEARDOWN = REPO / "playbooks" / "deploy.yml", REPO / "playbooks" / "teardown.yml"
RESTARTED = "every session opened before it has ended"


def redis_vars(namespace, images, **overrides):
    return dict({"toolhive_namespace": namespace, "redis_image": images["redis"], "mcpserver_servers": [],
                 "vmcp_instances": []}, **overrides)


def running_pod(kubectl, namespace):
    pods = [p for p in kubectl("get", "pods", "-n", namespace, "-l", "app.kubernetes.io/name=redis",
                               "-o", "json")["items"] if not p["metadata"].get("deletionTimestamp")]
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    return pods[0]["metadata"]["name"]


def running_config(kubectl, namespace, *names):
    """CONFIG GET from inside the running Redis: what it runs with, not what its ConfigMap says."""
    out = kubectl("exec", "-n", namespace, running_pod(kubectl, namespace), "--", "sh", "-c",
                  'REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli --no-auth-warning CONFIG GET "$@"', "sh",
                  *names).stdout.split()
    return dict(zip(out[::2], out[1::2]))


@pytest.fixture(scope="module")
def redis(run_playbook, kubectl, fresh_namespace, images):
    result = run_playbook(DEPLOY, extra_vars=redis_vars(fresh_namespace, images))
    assert result.returncode == 0, result.output[-4000:]
    assert RESTARTED not in " ".join(result.output.split())  # a first deploy restarts nothing
    return fresh_namespace


def test_a_config_change_restarts_redis_and_the_running_redis_has_it(redis, run_playbook, kubectl, images):
    before = running_config(kubectl, redis, "maxmemory", "maxmemory-policy")
    assert before == {"maxmemory": str(256 * 1024 * 1024), "maxmemory-policy": "allkeys-lru"}
    first_pod = running_pod(kubectl, redis)

    changed = run_playbook(DEPLOY, extra_vars=redis_vars(redis, images, redis_maxmemory="128mb",
                                                         redis_maxmemory_policy="volatile-lru"))
    assert changed.returncode == 0, changed.output[-4000:]
    # The deploy waited for the new pod: the running Redis has the new values as soon as it returns.
    assert running_config(kubectl, redis, "maxmemory", "maxmemory-policy") == {
        "maxmemory": str(128 * 1024 * 1024), "maxmemory-policy": "volatile-lru"}
    assert running_pod(kubectl, redis) != first_pod
    assert RESTARTED in " ".join(changed.output.split()), changed.output[-3000:]  # the callback folds lines

    again = run_playbook(DEPLOY, extra_vars=redis_vars(redis, images, redis_maxmemory="128mb",
                                                       redis_maxmemory_policy="volatile-lru"))
    assert again.returncode == 0 and RESTARTED not in " ".join(again.output.split()), again.output[-3000:]


def test_switching_persistence_on_is_refused_before_any_write(redis, run_playbook, kubectl, images):
    refused = run_playbook(DEPLOY, extra_vars=redis_vars(redis, images, redis_maxmemory="128mb",
                                                         redis_maxmemory_policy="volatile-lru",
                                                         redis_persistence=True))
    assert refused.returncode != 0
    assert (f"StatefulSet {redis}/toolhive-redis: the cluster runs it as a Deployment (redis_persistence switched?)"
            in refused.output), refused.output[-4000:]
    assert "This run had written nothing" in refused.output
    assert kubectl("get", "statefulsets", "-n", redis, "-o", "json")["items"] == []
    assert running_pod(kubectl, redis)  # the running Redis is left as it was


def test_a_teardown_with_other_variables_removes_the_redis_the_collection_made(redis, run_playbook, kubectl,
                                                                               images):
    result = run_playbook(TEARDOWN, extra_vars=redis_vars(redis, images, redis_persistence=True))
    assert result.returncode == 0, result.output[-4000:]
    left = kubectl("get", "deployments,statefulsets,services,configmaps", "-n", redis, "-l",
                   "app.kubernetes.io/managed-by=toolhive.k8s", "-o", "name").stdout.split()
    assert left == []
    # The password Secret stays without purge.
    assert kubectl("get", "secret", "toolhive-redis-auth", "-n", redis, check=False).returncode == 0

"""One deploy or teardown at a time per namespace (toolhive.k8s.run_lock), through the playbooks on the test bed:
two deploys of one namespace at once run one after the other, and a teardown started during a deploy waits for it."""
import time
from concurrent.futures import ThreadPoolExecutor

from ..conftest import REPO, wait_until
from .test_deploy import example, recap

LEASE = "toolhive-k8s-run"


def redis_memory(kubectl, namespace):
    config = kubectl("get", "configmap", "toolhive-redis-config", "-n", namespace, "-o", "json")["data"]["redis.conf"]
    return next(line.split()[1] for line in config.splitlines() if line.startswith("maxmemory "))


def test_two_deploys_of_one_namespace_run_one_after_the_other(run_playbook, kubectl, fresh_namespace):
    ns = fresh_namespace
    first = run_playbook(REPO / "playbooks" / "deploy.yml", extra_vars=example(ns))  # the namespace exists then
    assert recap(first.output)["failed"] == 0, first.output[-3000:]

    def deploy(memory):
        result = run_playbook(REPO / "playbooks" / "deploy.yml", extra_vars=example(ns, redis_maxmemory=memory))
        return memory, time.monotonic(), result

    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = [pool.submit(deploy, memory) for memory in ("100mb", "200mb")]
        done = sorted((f.result() for f in runs), key=lambda run: run[1])
    for _memory, _ended, result in done:
        assert result.returncode == 0, result.output[-3000:]
    waited = [memory for memory, _ended, result in done if "waiting: namespace %s is being deployed" % ns in result.output]
    assert len(waited) == 1, [r.output[-2000:] for _m, _e, r in done]  # one ran, the other waited for it
    # The run that finished last is the one that waited, and the cluster holds its values alone.
    assert done[-1][0] == waited[0]
    assert redis_memory(kubectl, ns) == waited[0]
    assert kubectl("get", "lease", LEASE, "-n", ns, check=False).returncode != 0  # released


def test_a_teardown_during_a_deploy_waits_for_it(run_playbook, kubectl, fresh_namespace):
    ns = fresh_namespace
    with ThreadPoolExecutor(max_workers=1) as pool:
        deploy = pool.submit(run_playbook, REPO / "playbooks" / "deploy.yml", extra_vars=example(ns))
        wait_until("the deploy to hold the namespace",
                   lambda: kubectl("get", "lease", LEASE, "-n", ns, check=False).returncode == 0 or deploy.done())
        teardown = run_playbook(REPO / "playbooks" / "teardown.yml", extra_vars=example(ns))
        deployed = deploy.result()
    assert deployed.returncode == 0, deployed.output[-3000:]
    assert teardown.returncode == 0, teardown.output[-3000:]
    assert "waiting: namespace %s is being deployed or torn down by" % ns in teardown.output, teardown.output[-3000:]
    # Torn down after the deploy, so nothing of it stands.
    left = kubectl("get", "virtualmcpservers,mcpservers,deployments,services", "-n", ns, "-o", "name").stdout.split()
    assert left == [], left

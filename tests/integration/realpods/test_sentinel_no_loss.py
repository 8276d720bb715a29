"""Sentinel mode loses nothing when the master goes away at the worst moment: right after the deploy returns,
with the machine's CPU taken by busy pods.

Its own namespace and deployment (the redis role, three Redis pods, three Sentinels). The data is written through
the ACL user on the master and acknowledged by both replicas (WAIT) before the master pod is deleted: what must
hold afterwards is that a replica was promoted and every pod, the restarted one included, has all of it. Before
the collection waited for a failover to be possible and kept a restarted pod from starting as an empty master
while a replica held data, this lost every key (seen on running pods).
"""
import json
import time

import pytest

from .conftest import wait_until
from .test_sentinel import CLIENT, NAME, PLAYBOOK, Sentinel, role_vars, start_client

# Alone, after the others (-m serial): it takes both cores with busy pods, which would slow every other module.
pytestmark = [pytest.mark.usefixtures("real_nodes"), pytest.mark.serial]

KEYS = 300
# Two busy loops (the machine has two cores) for at most this long: the load is bounded in time.
LOAD_SECONDS = 420
LOAD = "load"


def local_cli(deployment, pod, *args):
    """redis-cli inside POD, to its own Redis, as the ACL user."""
    quoted = " ".join(f"'{a}'" for a in args)
    proc = deployment.exec(pod, f'timeout 10 redis-cli --user "$ACL_USERNAME" --pass "$ACL_PASSWORD" --no-auth-warning '
                           f'{quoted}', check=False)
    return (proc.stderr.strip() + "\n" + proc.stdout).strip()


def start_load(kubectl, namespace, image):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": LOAD, "namespace": namespace},
           "spec": {"terminationGracePeriodSeconds": 0, "restartPolicy": "Never", "containers": [
               {"name": "busy", "image": image, "command": [
                   "sh", "-c", f"for i in 1 2; do timeout {LOAD_SECONDS} sh -c 'while :; do :; done' & done; wait"]}]}}
    kubectl("create", "namespace", namespace)
    kubectl("apply", "-f", "-", stdin=json.dumps(pod))
    wait_until("the load pod to run", lambda: kubectl("get", "pod", LOAD, "-n", namespace, "-o", "json")
               ["status"].get("phase") == "Running", timeout=120)


def promoted_from(deployment, old):
    """The master every Sentinel names and that says so itself, once it is not OLD (waited for)."""
    def promoted():
        named, roles = set(deployment.masters_named().values()), deployment.roles()
        new = named.pop() if len(named) == 1 else None
        return new != old and roles.get(new) == "master" and new
    return wait_until(f"a replica of {old} to be promoted, named by every Sentinel", promoted, timeout=240)


def every_pod_has_every_key(deployment, restarted):
    logs = deployment.kubectl("logs", "-n", deployment.namespace, restarted).stdout
    for pod in deployment.redis_pods:
        assert local_cli(deployment, pod, "DBSIZE") == str(KEYS), (pod, logs[-3000:])
        assert local_cli(deployment, pod, "GET", f"thv:auth:k{KEYS - 1}") == f"v{KEYS - 1}", pod
    return " | ".join(line for line in logs.splitlines() if "master" in line)[-600:]


@pytest.fixture(scope="module")
def deployment(kubectl, kubeconfig, fresh_namespace, images):
    """The deployment the tests share, in file order (the master moves)."""
    made = Sentinel(kubectl, fresh_namespace)
    made.kubeconfig = kubeconfig
    return made


def test_the_master_deleted_right_after_the_deploy_under_load_loses_nothing(deployment, run_playbook, images):
    start_load(deployment.kubectl, deployment.namespace, images["redis"])
    started = time.monotonic()
    result = run_playbook(PLAYBOOK, extra_vars=role_vars(deployment.namespace, images["redis"]))
    assert result.returncode == 0, result.output[-6000:]
    returned = time.monotonic()
    master = f"{NAME}-0"  # the first start's master

    # Right away: the data, acknowledged by both replicas, then the master pod deleted.
    script = "; ".join(f"echo 'SET thv:auth:k{i} v{i}'" for i in range(KEYS))
    written = deployment.exec(master, f'({script}) | redis-cli --user "$ACL_USERNAME" --pass "$ACL_PASSWORD" '
                              f'--no-auth-warning | sort | uniq -c')
    assert written.stdout.split() == [str(KEYS), "OK"], written.stdout
    assert local_cli(deployment, master, "WAIT", "2", "5000") == "2"
    deployment.kubectl("delete", "pod", master, "-n", deployment.namespace, "--wait=false")
    deleted = time.monotonic()
    print(f"\nunder load: the role took {returned - started:.1f}s; {KEYS} keys written and the master deleted "
          f"{deleted - returned:.1f}s after it returned")

    # A replica is promoted, and every pod, the restarted one too, follows it with every key.
    start_client(deployment, images["redis"])
    deployment.ready([CLIENT])
    new = promoted_from(deployment, master)
    deployment.replicas_synced(new)
    said = every_pod_has_every_key(deployment, master)
    print(f"{master} -> {new} {time.monotonic() - deleted:.1f}s after the delete; the restarted pod said: {said}")


def test_a_master_restarted_while_no_sentinel_runs_waits_for_them_and_loses_nothing(deployment):
    """The master's container restarts while every Sentinel is gone: nobody can promote a replica, and the replicas
    still hold the data, so the restarted pod must not start as an empty master; it waits, saying why. Sentinels
    that start while the master is down know its replicas and each other from the start (they could not learn
    them from the master), so they promote one."""
    master = deployment.master()
    deployment.replicas_synced(master)
    sentinels = f"statefulset/{NAME}-sentinel"
    deployment.kubectl("scale", sentinels, "-n", deployment.namespace, "--replicas=0")
    wait_until("every Sentinel pod to be gone", lambda: not deployment.kubectl(
        "get", "pods", "-n", deployment.namespace, "-l", "app.kubernetes.io/name=redis-sentinel", "-o", "json")
        ["items"], timeout=120)

    def restarts():
        pod = deployment.kubectl("get", "pod", master, "-n", deployment.namespace, "-o", "json")
        return pod["status"]["containerStatuses"][0]["restartCount"]
    before = restarts()
    deployment.exec(master, "kill 1")
    wait_until(f"{master}'s container to start again", lambda: restarts() > before, timeout=60)
    said = wait_until(f"{master} to decide, or to say why it cannot", lambda: any(
        words in (out := deployment.kubectl("logs", "-n", deployment.namespace, master).stdout)
        for words in ("master: ", "asking the Sentinels")) and out, timeout=60)
    # For 10 s: the restarted pod does not serve, and the replicas keep every key (they would copy an empty master).
    seen, until = [], time.monotonic() + 10
    while time.monotonic() < until:
        seen.append((deployment.roles()[master], [local_cli(deployment, pod, "DBSIZE")
                                                  for pod in deployment.redis_pods if pod != master]))
        assert seen[-1][0] != "master" and seen[-1][1] == [str(KEYS)] * 2, (seen, said)
        time.sleep(1)
    assert f"holds {KEYS} keys): asking the Sentinels to promote a replica" in said, said

    deployment.kubectl("scale", sentinels, "-n", deployment.namespace, "--replicas=3")
    new = promoted_from(deployment, master)
    deployment.ready(deployment.redis_pods)
    deployment.replicas_synced(new)
    said = every_pod_has_every_key(deployment, master)
    print(f"\nno Sentinel running: {master} -> {new}; the restarted pod said: {said}")

"""Redis Sentinel mode (the embedded auth server's storage) on running pods.

One deployment by the collection's redis role, in a fresh namespace on the test bed's real node: three
Redis pods (a master and two replicas), three Sentinels (quorum 2), the ACL user `thv-auth`, the default
user off. Every question is asked with the real `redis-cli` from a client pod of our own in the same
namespace (its own Redis image, the role's Secret in its environment), through the pods' DNS names.

The tests run in file order and share the deployment: the failovers move the master, and the Sentinel
restarts then have to find it where it moved to (never where it started).
"""
import json
import shlex
import subprocess
import threading
import time

import pytest

from .conftest import wait_until

pytestmark = pytest.mark.usefixtures("real_nodes")

NAME = "auth-redis"
MASTER = "mymaster"
PLAYBOOK = "tests/integration/roles/playbooks/redis.yml"
CLIENT = "sentinel-client"
CLI_TIMEOUT = 10  # seconds for one redis-cli call from the client pod
# One line per poll: /proc/uptime, then each Redis pod's ROLE (`none` when it does not answer within 1 s).
POLL = """
while :; do
  line=$(cut -d' ' -f1 /proc/uptime)
  for h in $REDIS_PODS; do
    r=$(timeout 1 redis-cli -h "$h" --user sentinel --pass "$SENTINEL_PASSWORD" --no-auth-warning ROLE 2>/dev/null | head -n 1)
    line="$line ${r:-none}"
  done
  echo "$line"
  sleep 0.2
done
"""


def role_vars(namespace, image, **overrides):
    return dict({"redis_namespace": namespace, "redis_name": NAME, "redis_mode": "sentinel",
                 "redis_sentinel_replicas": 2, "redis_disable_default_user": True, "redis_image": image}, **overrides)


class Sentinel:
    """The deployment, and redis-cli from the client pod."""

    def __init__(self, kubectl, namespace):
        self.kubectl, self.namespace = kubectl, namespace
        domain = f"{namespace}.svc.cluster.local"
        self.redis_pods = [f"{NAME}-{i}" for i in range(3)]
        self.sentinel_pods = [f"{NAME}-sentinel-{i}" for i in range(3)]
        self.fqdn = {**{p: f"{p}.{NAME}-headless.{domain}" for p in self.redis_pods},
                     **{p: f"{p}.{NAME}-sentinel-headless.{domain}" for p in self.sentinel_pods}}
        self.pod_of = {fqdn: pod for pod, fqdn in self.fqdn.items()}

    def exec(self, pod, script, check=True, env=None):
        """sh -c SCRIPT in POD; the CompletedProcess (stdout stripped of the trailing newline)."""
        prefix = ["env", *[f"{k}={v}" for k, v in (env or {}).items()]] if env else []
        proc = self.kubectl("exec", "-n", self.namespace, pod, "--", *prefix, "sh", "-c", script, check=check)
        proc.stdout = proc.stdout.rstrip("\n")
        return proc

    def cli(self, pod, *args, user="sentinel", password="$SENTINEL_PASSWORD"):
        """redis-cli from the client pod to POD (Redis or Sentinel), as USER (None: no login at all): what it wrote
        on stderr (a failed login), then its answer. Bounded: just after a pod is deleted its name may still
        resolve to the old address, where a connect hangs for minutes (seen in CI); a wait asks again instead."""
        port = 26379 if "sentinel" in pod else 6379
        login = f'--user {user} --pass "{password}" --no-auth-warning' if user else ""
        quoted = " ".join(f"'{a}'" for a in args)
        proc = self.exec(CLIENT, f"timeout {CLI_TIMEOUT} redis-cli -h {self.fqdn[pod]} -p {port} {login} {quoted}",
                         check=False)
        if proc.returncode == 124:
            return f"no answer within {CLI_TIMEOUT} s"
        return (proc.stderr.strip() + "\n" + proc.stdout).strip()

    def roles(self):
        return {pod: self.cli(pod, "ROLE").split("\n")[0] for pod in self.redis_pods}

    def masters_named(self):
        """{sentinel: the Redis pod it names as master (or its raw answer)}."""
        answers = {}
        for pod in self.sentinel_pods:
            answer = self.cli(pod, "SENTINEL", "get-master-addr-by-name", MASTER).split("\n")
            answers[pod] = self.pod_of.get(answer[0], "\n".join(answer))
        return answers

    def master(self, timeout=150):
        """The master every Sentinel names and that says so itself (waited for). The default timeout allows for
        a failover attempt that stalls: a Sentinel retries only after failover-timeout (60 s) has passed."""
        seen = {}

        def agreed():
            seen["named"], seen["roles"] = self.masters_named(), self.roles()
            named = set(seen["named"].values())
            return len(named) == 1 and seen["roles"].get(next(iter(named))) == "master" and next(iter(named))
        try:
            return wait_until("the three Sentinels to agree on a master that says it is one", agreed, timeout=timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the Sentinels named {seen.get('named')}, the pods said {seen.get('roles')}")

    def replicas_synced(self, master):
        """Every other pod is a replica of MASTER with its link up (waited for)."""
        def synced():
            infos = {pod: self.cli(pod, "INFO", "replication") for pod in self.redis_pods if pod != master}
            ok = all("role:slave" in i and f"master_host:{self.fqdn[master]}" in i and "master_link_status:up" in i
                     for i in infos.values())
            return ok or None
        wait_until(f"every replica to follow {master} with its link up", synced, timeout=90)

    def ready(self, pods):
        def all_ready():
            items = self.kubectl("get", "pods", "-n", self.namespace, "-o", "json")["items"]
            state = {p["metadata"]["name"]: any(c["type"] == "Ready" and c["status"] == "True"
                                                for c in p["status"].get("conditions", []))
                     for p in items if not p["metadata"].get("deletionTimestamp")}
            return all(state.get(p) for p in pods)
        wait_until(f"{pods} Ready", all_ready, timeout=120)


class RolePoller:
    """POLL in the client pod, each line stamped with time.monotonic() as it arrives."""

    def __init__(self, deployment):
        self.lines = []
        self.proc = subprocess.Popen(
            ["kubectl", "--kubeconfig", deployment.kubeconfig, "exec", "-n", deployment.namespace, CLIENT, "--", "sh", "-c", POLL],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            fields = line.split()
            if len(fields) == 4:
                self.lines.append((time.monotonic(), fields[1:]))

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        return self.lines


def longest_two_masters(lines):
    """The longest stretch (seconds) during which at least two pods answered `master`, from the first poll that
    saw it to the first that no longer did."""
    longest, since = 0.0, None
    for stamp, roles in lines:
        if roles.count("master") >= 2:
            since = stamp if since is None else since
            longest = max(longest, stamp - since)
        elif since is not None:
            longest, since = max(longest, stamp - since), None
    return longest


@pytest.fixture(scope="module")
def deployed(run_playbook, kubectl, kubeconfig, fresh_namespace, images):
    """The role in sentinel mode, and the client pod."""
    started = time.monotonic()
    result = run_playbook(PLAYBOOK, extra_vars=role_vars(fresh_namespace, images["redis"]))
    assert result.returncode == 0, result.output[-6000:]
    print(f"\nthe redis role (sentinel mode, 3 Redis pods, 3 Sentinels) took {time.monotonic() - started:.1f}s")
    deployment = Sentinel(kubectl, fresh_namespace)
    deployment.kubeconfig = kubeconfig
    start_client(deployment, images["redis"])
    deployment.ready([CLIENT, *deployment.redis_pods, *deployment.sentinel_pods])
    return deployment


def start_client(deployment, image):
    """The client pod: its own Redis image, the role's Secret in its environment."""
    secret = {"name": f"{NAME}-auth"}
    env = [{"name": var, "valueFrom": {"secretKeyRef": {**secret, "key": key}}}
           for var, key in (("SENTINEL_PASSWORD", "sentinel-password"), ("ACL_USERNAME", "acl-username"),
                            ("ACL_PASSWORD", "acl-password"), ("REDIS_PASSWORD", "password"))]
    env.append({"name": "REDIS_PODS", "value": " ".join(deployment.fqdn[p] for p in deployment.redis_pods)})
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": CLIENT, "namespace": deployment.namespace},
           "spec": {"containers": [{"name": "client", "image": image, "command": ["sleep", "86400"],
                                    "env": env}], "terminationGracePeriodSeconds": 0}}
    deployment.kubectl("apply", "-f", "-", stdin=json.dumps(pod))


def test_three_sentinels_agree_on_the_master(deployed):
    # Right after the role, a Sentinel pod's DNS name may not resolve yet (its EndpointSlice entry lags its Ready).
    named = wait_until("every Sentinel to answer", lambda: (answers := deployed.masters_named()) and not any(
        "Could not connect" in answer for answer in answers.values()) and answers, timeout=60)
    assert set(named.values()) == {f"{NAME}-0"}, named
    assert deployed.roles() == {f"{NAME}-0": "master", f"{NAME}-1": "slave", f"{NAME}-2": "slave"}

    def counts(pod):
        fields = deployed.cli(pod, "SENTINEL", "master", MASTER).split("\n")
        info = dict(zip(fields[::2], fields[1::2]))
        return info.get("num-slaves"), info.get("num-other-sentinels"), info.get("quorum")

    # A Sentinel learns the replicas from the master's INFO (every 10 s) and its peers from their hellos (every
    # 2 s): right after the role it may not know them all yet.
    for pod in deployed.sentinel_pods:
        wait_until(f"{pod} to know 2 replicas and 2 other Sentinels", lambda pod=pod: counts(pod) == ("2", "2", "2"),
                   timeout=60)
    deployed.replicas_synced(f"{NAME}-0")


def test_the_acl_user_touches_only_auth_keys_and_the_default_user_is_off(deployed):
    master = deployed.master()
    acl = {"user": "$ACL_USERNAME", "password": "$ACL_PASSWORD"}
    assert deployed.cli(master, "SET", "thv:auth:acl-check", "yes", **acl) == "OK"
    assert deployed.cli(master, "GET", "thv:auth:acl-check", **acl) == "yes"
    for args in (("SET", "thv:vmcp:x", "1"), ("GET", "other"), ("KEYS", "*"), ("FLUSHALL",), ("CONFIG", "GET", "*")):
        assert deployed.cli(master, *args, **acl).startswith("NOPERM"), args
    # The default user: no login at all, and with its (generated) password.
    assert deployed.cli(master, "PING", user=None).startswith("NOAUTH")
    answer = deployed.cli(master, "GET", "thv:auth:acl-check", user="default", password="$REDIS_PASSWORD").split("\n")
    assert "WRONGPASS" in answer[0] and answer[1].startswith("NOAUTH"), answer


def test_sentinels_refuse_unauthenticated_commands(deployed):
    master = deployed.master()
    refused = [("PING",), ("SENTINEL", "FAILOVER", MASTER), ("SENTINEL", "REMOVE", MASTER),
               ("SENTINEL", "SET", MASTER, "quorum", "1"), ("SENTINEL", "MONITOR", "evil", "10.0.0.1", "6379", "1"),
               ("SENTINEL", "RESET", "*"), ("SENTINEL", "FLUSHCONFIG"), ("SENTINEL", "MASTER", MASTER),
               ("SENTINEL", "CONFIG", "SET", "resolve-hostnames", "no"), ("INFO",), ("ACL", "LIST"), ("SHUTDOWN",)]
    for pod in deployed.sentinel_pods:
        for args in refused:
            answer = deployed.cli(pod, *args, user=None)
            assert answer.startswith("NOPERM"), (pod, args, answer)
            # A wrong password: the login fails and redis-cli sends the command anyway, as nobody.
            answer = deployed.cli(pod, *args, password="wrong").split("\n")
            assert "WRONGPASS" in answer[0] and answer[1].startswith("NOPERM"), (pod, args, answer)
        # Only finding the master is open (redis_sentinel_discovery_without_auth: ToolHive sends no password).
        assert deployed.cli(pod, "SENTINEL", "get-master-addr-by-name", MASTER, user=None).split("\n")[0] == \
            deployed.fqdn[master]
    # Nothing of the above took effect.
    assert deployed.master() == master
    assert set(deployed.masters_named()) == set(deployed.sentinel_pods)


def test_every_readiness_probe_fails_with_a_wrong_password(deployed):
    # The trap the probes avoid: redis-cli exits 0 on WRONGPASS.
    wrong = deployed.exec(f"{NAME}-0", 'redis-cli --user sentinel --pass wrong --no-auth-warning ping', check=False)
    assert wrong.returncode == 0 and "WRONGPASS" in wrong.stderr + wrong.stdout, wrong
    for pod in deployed.redis_pods + deployed.sentinel_pods:
        spec = deployed.kubectl("get", "pod", pod, "-n", deployed.namespace, "-o", "json")["spec"]
        probe = shlex.join(spec["containers"][0]["readinessProbe"]["exec"]["command"])
        passed = deployed.exec(pod, probe, check=False)
        assert passed.returncode == 0, (pod, probe, passed.stdout, passed.stderr)
        failed = deployed.exec(pod, probe, check=False, env={"SENTINEL_PASSWORD": "wrong"})
        assert failed.returncode != 0, (pod, probe, failed.stdout, failed.stderr)


def failover(deployed, act, what):
    """Write keys, ACT(old master) while polling every pod's role; returns (old, new, seconds to a new master,
    poll lines). The keys are then on the new master and on every replica, the old master included."""
    old = deployed.master()
    deployed.replicas_synced(old)
    acl = {"user": "$ACL_USERNAME", "password": "$ACL_PASSWORD"}
    marker = f"{what.replace(' ', '-')}-{time.time_ns()}"
    assert deployed.cli(old, "SET", f"thv:auth:{marker}", marker, **acl) == "OK"
    deployed.exec(CLIENT, f'for i in $(seq 1 500); do echo "SET thv:auth:{marker}:$i v$i"; done | redis-cli -h '
                  f'{deployed.fqdn[old]} --user "$ACL_USERNAME" --pass "$ACL_PASSWORD" --no-auth-warning > /dev/null')
    deployed.cli(old, "WAIT", "2", "5000", **acl)
    poller = RolePoller(deployed)
    wait_until("the poller's first line", lambda: poller.lines, timeout=30)
    start = time.monotonic()
    act(old)
    promoted = wait_until("a replica to be promoted", lambda: next(
        (stamp for stamp, roles in poller.lines if stamp > start and
         any(r == "master" and deployed.redis_pods[i] != old for i, r in enumerate(roles))), None), timeout=60)
    new = deployed.master()
    assert new != old
    deployed.ready(deployed.redis_pods)
    deployed.replicas_synced(new)
    time.sleep(3)  # a few more polls with the old master back
    lines = poller.stop()
    took = promoted - start
    print(f"\n{what}: {old} -> {new}, a replica answered `master` {took:.1f}s after; "
          f"{len(lines)} polls, longest stretch with two masters {longest_two_masters(lines):.1f}s")
    assert took < 30, took
    assert longest_two_masters(lines) <= 2, [line for line in lines if line[1].count("master") >= 2]
    for pod in deployed.redis_pods:
        assert deployed.cli(pod, "GET", f"thv:auth:{marker}", **acl) == marker, pod
        assert deployed.cli(pod, "GET", f"thv:auth:{marker}:500", **acl) == "v500", pod
    return old, new


def test_deleting_the_master_pod_promotes_a_replica_and_loses_nothing(deployed):
    old, new = failover(deployed, lambda pod: deployed.kubectl("delete", "pod", pod, "-n", deployed.namespace,
                                                               "--wait=false"), "pod deleted")
    assert deployed.roles()[old] == "slave"


def test_a_restarted_master_container_never_serves_as_an_empty_master(deployed):
    """The fast case: the container restarts in the same pod (same address) before the Sentinels see it down.
    It must not come back as the (empty) master the Sentinels still name."""
    def kill(pod):
        deployed.exec(pod, "kill 1")
    old, new = failover(deployed, kill, "container restarted")
    logs = deployed.kubectl("logs", "-n", deployed.namespace, old).stdout
    assert f"master: {deployed.fqdn[new]} (Sentinels)" in logs, logs[-2000:]


def first_answers(deployed, pods, restart, timeout=120):
    """RESTART(), then ask each Sentinel of PODS every 0.2 s (from the client pod) until it answers; its first
    answer to get-master-addr-by-name, each."""
    hosts = " ".join(deployed.fqdn[p] for p in pods)
    script = f"""
    end=$(( $(date +%s) + {timeout} ))
    for h in {hosts}; do
      while [ $(date +%s) -lt $end ]; do
        a=$(timeout 2 redis-cli -h "$h" -p 26379 --user sentinel --pass "$SENTINEL_PASSWORD" --no-auth-warning \
            SENTINEL get-master-addr-by-name {MASTER} 2>/dev/null | head -n 1)
        case "$a" in ''|*' '*) sleep 0.2 ;; *) echo "$h $a"; break ;; esac
      done
    done
    """
    restart()  # returns once the old pods are gone: every answer is a new Sentinel's
    answers = dict(line.split() for line in deployed.exec(CLIENT, script).stdout.splitlines())
    return {deployed.pod_of[h]: deployed.pod_of.get(a, a) for h, a in answers.items()}


def move_master_away_from_the_first_pod(deployed):
    """The Sentinels fall back to the first Redis pod when nobody answers: put the master elsewhere first."""
    if deployed.master() == f"{NAME}-0":
        assert deployed.cli(deployed.sentinel_pods[0], "SENTINEL", "FAILOVER", MASTER) == "OK"
        wait_until("the master to move", lambda: deployed.master() != f"{NAME}-0", timeout=60)
    master = deployed.master()
    deployed.replicas_synced(master)
    return master


def delete_and_wait_gone(deployed, pods):
    deployed.kubectl("delete", "pod", *pods, "-n", deployed.namespace, "--wait=true", "--grace-period=1")


def test_a_restarted_sentinel_names_the_current_master_from_its_first_answer(deployed):
    master = move_master_away_from_the_first_pod(deployed)
    pod = deployed.sentinel_pods[1]
    answers = first_answers(deployed, [pod], lambda: delete_and_wait_gone(deployed, [pod]))
    assert answers == {pod: master}, answers
    deployed.ready(deployed.sentinel_pods)
    assert set(deployed.masters_named().values()) == {master}


def test_all_three_sentinels_restarted_together_name_the_current_master_from_their_first_answer(deployed):
    master = move_master_away_from_the_first_pod(deployed)
    answers = first_answers(deployed, deployed.sentinel_pods,
                            lambda: delete_and_wait_gone(deployed, deployed.sentinel_pods))
    assert answers == {pod: master for pod in deployed.sentinel_pods}, answers
    deployed.ready(deployed.sentinel_pods)
    # They know each other again and could fail over.
    wait_until("the Sentinels to see quorum", lambda: all(
        deployed.cli(p, "SENTINEL", "CKQUORUM", MASTER).startswith("OK 3 usable") for p in deployed.sentinel_pods),
        timeout=60)
    assert deployed.master() == master
    deployed.replicas_synced(master)


def test_the_role_turns_unauthenticated_discovery_off(deployed, run_playbook, images):
    master = deployed.master()
    variables = role_vars(deployed.namespace, images["redis"], redis_sentinel_discovery_without_auth=False)
    result = run_playbook(PLAYBOOK, extra_vars=variables)
    assert result.returncode == 0, result.output[-6000:]
    deployed.kubectl("rollout", "status", f"statefulset/{NAME}-sentinel", "-n", deployed.namespace, "--timeout=180s")
    deployed.ready(deployed.sentinel_pods)
    for pod in deployed.sentinel_pods:
        answer = deployed.cli(pod, "SENTINEL", "get-master-addr-by-name", MASTER, user=None)
        assert answer.startswith("NOAUTH"), (pod, answer)
    # The Redis pods share the changed environment, so they roll too and the master may move (seen: -2 to -1):
    # what must hold is one master all three Sentinels agree on, and their quorum.
    assert deployed.master() in (master, *deployed.redis_pods)
    wait_until("the Sentinels to see quorum", lambda: all(
        deployed.cli(p, "SENTINEL", "CKQUORUM", MASTER).startswith("OK 3 usable") for p in deployed.sentinel_pods),
        timeout=60)

"""Benchmarks on the test bed: the collection against kubectl and kubernetes.core.

Every figure is the median of several runs; every comparison is a ratio of two
figures measured in the same run. API requests are counted from the test bed's
audit log (only the user's own identity, not the controllers' or the operator's).

    python bench/run.py --sizes 1 10 50 --runs 3 [--markdown results.md]
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AUDIT_LOG = REPO / ".cluster" / "logs" / "audit.log"
USER = "toolhive-testbed-admin"
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}
MANAGED_KINDS = "mcpgroups,mcpservers,virtualmcpservers,deployments,statefulsets,services,secrets,configmaps,poddisruptionbudgets"


class Audit:
    """Counts the API requests the user's identity makes between start() and stop()."""

    def __init__(self, path=AUDIT_LOG):
        self.path = path
        self.offset = 0

    def start(self):
        # Earlier commands' events may still be landing: start once the log has been quiet for 0.3 s.
        size = -1
        while size != self.path.stat().st_size:
            size = self.path.stat().st_size
            time.sleep(0.3)
        self.offset = size

    def stop(self):
        time.sleep(1.0)
        requests = writes = 0
        with self.path.open("rb") as log:
            log.seek(self.offset)
            for line in log:
                event = json.loads(line)
                if event.get("user", {}).get("username") != USER:
                    continue
                requests += 1
                # A server-side dry run persists nothing: not a write.
                writes += event.get("verb") in WRITE_VERBS and "dryRun=All" not in event.get("requestURI", "")
        return requests, writes


def run(cmd, env=None, check=True):
    proc = subprocess.run(cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def measure(cmd, audit, env=None):
    audit.start()
    started = time.monotonic()
    run(cmd, env=env)
    seconds = time.monotonic() - started
    requests, writes = audit.stop()
    return {"seconds": seconds, "requests": requests, "writes": writes}


def median(samples, key):
    return statistics.median(s[key] for s in samples)


def kubectl(*args, **kwargs):
    return run(["kubectl", *args], **kwargs)


def fresh_namespace(name):
    kubectl("delete", "namespace", name, "--ignore-not-found", "--wait=true", "--timeout=180s")
    kubectl("create", "namespace", name)


def deploy_vars(namespace, servers):
    """Extra vars for playbooks/deploy.yml: Redis, N MCPServers in one group, one vMCP x3."""
    with open(REPO / "playbooks" / "vars" / "example.yml", encoding="utf-8") as handle:
        import yaml  # the venv has it; imported here so --help works anywhere
        example = yaml.safe_load(handle)
    return build_deploy_vars(example, namespace, servers)


def build_deploy_vars(example, namespace, servers):
    template = example["mcpserver_servers"][0]
    result = dict(example)
    result["toolhive_namespace"] = namespace
    result["toolhive_mcp_check"] = False  # KWOK's pods do not answer; the kubectl baseline checks nothing either
    result["mcpserver_servers"] = [dict(template, name=f"server-{i:03d}") for i in range(servers)]
    return result


def exported_manifests(namespace, target_namespace):
    """What the playbook deployed, as plain manifests for kubectl to apply elsewhere."""
    objects = json.loads(kubectl("get", MANAGED_KINDS, "-n", namespace,
                                 "-l", "app.kubernetes.io/managed-by=toolhive.k8s", "-o", "json").stdout)["items"]
    manifests = []
    for obj in objects:
        meta = obj["metadata"]
        if obj["kind"] == "Service":  # allocated by the API server; a copy must get its own
            for field in ("clusterIP", "clusterIPs"):
                obj["spec"].pop(field, None)
        manifests.append({
            "apiVersion": obj["apiVersion"], "kind": obj["kind"],
            "metadata": {"name": meta["name"], "namespace": target_namespace,
                         "labels": meta.get("labels", {}), "annotations": {
                             k: v for k, v in meta.get("annotations", {}).items()
                             if not k.startswith(("kubectl.kubernetes.io/", "deployment.kubernetes.io/"))}},
            **{k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata", "status")},
        })
    return manifests


def is_redis(manifest):
    return manifest["metadata"]["labels"].get("app.kubernetes.io/name") == "redis"


def kubectl_deploy(namespace, manifests, redis_first=False):
    """A shell script applying the manifests (already in namespace) with kubectl, then waiting like the playbook."""
    def apply(items):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
            json.dump({"apiVersion": "v1", "kind": "List", "items": items}, handle)
        return f"kubectl apply --server-side --field-manager bench -f {handle.name} >/dev/null"
    wait_deployments = (f"kubectl wait -n {namespace} --for=condition=Available deployment --all --timeout=300s "
                        ">/dev/null")
    wait_servers = (f"kubectl wait -n {namespace} --for=jsonpath='{{.status.phase}}'=Ready mcpserver --all "
                    "--timeout=300s >/dev/null")
    if not redis_first:
        return " && ".join([apply(manifests), wait_deployments, wait_servers])
    redis = [m for m in manifests if is_redis(m)]
    wait_redis = " && ".join(f"kubectl rollout status -n {namespace} {m['kind'].lower()}/{m['metadata']['name']} "
                             "--timeout=300s >/dev/null" for m in redis if m["kind"] in ("Deployment", "StatefulSet"))
    return " && ".join([apply(redis), wait_redis, apply([m for m in manifests if not is_redis(m)]),
                        wait_deployments, wait_servers])


def floor_deploy(namespace, manifests, client="kubernetes.core"):
    """ansible-playbook bench/floor-deploy.yml for these manifests, applied by CLIENT's module."""
    extra = {"bench_namespace": namespace, "bench_client": client,
             "bench_redis": [m for m in manifests if is_redis(m)],
             "bench_rest": [m for m in manifests if not is_redis(m)],
             "bench_servers": [m["metadata"]["name"] for m in manifests if m["kind"] == "MCPServer"],
             "bench_gateways": [m["metadata"]["name"] for m in manifests if m["kind"] == "VirtualMCPServer"]}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(extra, handle)
    return ["ansible-playbook", "bench/floor-deploy.yml", "-e", f"@{handle.name}"]


def growth(by_size):
    """How deploy cost grows with N: seconds and API requests per extra MCPServer, between the smallest and the
    largest N, for the playbook and for kubectl."""
    if len(by_size) < 2:
        return []
    low, high = min(by_size), max(by_size)
    lines = []
    for who in ("playbook", "kubectl"):
        (t_low, r_low), (t_high, r_high) = by_size[low][who], by_size[high][who]
        per_second = (t_high - t_low) / (high - low)
        per_request = (r_high - r_low) / (high - low)
        lines.append(f"- {who}: {t_low:.1f} s at N={low}, {t_high:.1f} s at N={high}: {per_second:.2f} s and "
                     f"{per_request:.1f} API requests per extra MCPServer (fixed part {t_low - per_second * low:.1f} s)")
    return lines


def bench_deploy(sizes, runs, audit, rows, by_size):
    for size in sizes:
        ansible, rerun, baseline, redis_first, floor, floor_ours = [], [], [], [], [], []
        for attempt in range(runs):
            ns_a, ns_k = f"bench-a{size}-{attempt}", f"bench-k{size}-{attempt}"
            fresh_namespace(ns_a)
            with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as varfile:
                json.dump(deploy_vars(ns_a, size), varfile)
            playbook = ["ansible-playbook", "playbooks/deploy.yml", "-e", f"@{varfile.name}"]
            ansible.append(measure(playbook, audit))
            rerun.append(measure(playbook, audit))

            exported = exported_manifests(ns_a, ns_k)
            fresh_namespace(ns_k)
            baseline.append(measure(["bash", "-c", kubectl_deploy(ns_k, exported)], audit))
            # Gone before the next run starts: an operator busy deleting would slow whichever runs next.
            kubectl("delete", "namespace", ns_a, ns_k, "--wait=true", "--timeout=300s")

            # What ordering costs, apart from Ansible: the same job Redis-ready-first, by kubectl and by the
            # fewest Ansible tasks that can do it.
            fresh_namespace(ns_k)
            redis_first.append(measure(["bash", "-c", kubectl_deploy(ns_k, exported, redis_first=True)], audit))
            kubectl("delete", "namespace", ns_k, "--wait=true", "--timeout=300s")
            fresh_namespace(ns_k)
            floor.append(measure(floor_deploy(ns_k, exported), audit))
            kubectl("delete", "namespace", ns_k, "--wait=true", "--timeout=300s")
            fresh_namespace(ns_k)
            floor_ours.append(measure(floor_deploy(ns_k, exported, client="toolhive.k8s"), audit))
            kubectl("delete", "namespace", ns_k, "--wait=true", "--timeout=300s")
        rows.append((f"deploy N={size}: playbooks/deploy.yml", ansible, baseline, "kubectl apply --server-side + wait"))
        by_size[size] = {"playbook": (median(ansible, "seconds"), median(ansible, "requests")),
                         "kubectl": (median(baseline, "seconds"), median(baseline, "requests"))}
        rows.append((f"no-op re-run N={size}", rerun, None, None))
        rows.append((f"deploy N={size}: Ansible floor, Redis first (bench/floor-deploy.yml, 4 tasks)", floor,
                     redis_first, "kubectl, Redis first: apply Redis + wait, apply the rest + wait"))
        rows.append((f"deploy N={size}: the same floor applying with toolhive.k8s.apply", floor_ours, floor,
                     "the floor applying with kubernetes.core.k8s"))
        rows.append((f"deploy N={size}: playbooks/deploy.yml ", ansible, redis_first,
                     "kubectl, Redis first: apply Redis + wait, apply the rest + wait"))


def bench_scale(runs, audit, rows):
    ns = "bench-scale"
    fresh_namespace(ns)
    group = {"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPGroup", "metadata": {"name": "g"}, "spec": {}}
    vmcp = {"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "VirtualMCPServer", "metadata": {"name": "gw"},
            "spec": {"groupRef": {"name": "g"}, "incomingAuth": {"type": "anonymous"}}}
    subprocess.run(["kubectl", "apply", "-n", ns, "-f", "-"], input=json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": [group, vmcp]}), text=True, capture_output=True, check=True)
    deadline = time.monotonic() + 120
    while kubectl("get", "deployment", "gw", "-n", ns, check=False).returncode != 0:
        if time.monotonic() > deadline:
            raise SystemExit("the operator did not create deployment gw")
        time.sleep(1)

    def task(module, args):
        return ["ansible", "localhost", "-m", module] + (["-a", json.dumps(args)] if args else [])

    ours, core, plain = [], [], []
    for attempt in range(runs):
        replicas = 2 + attempt % 2 * 1  # alternate 2 and 3 so every run really scales
        ours.append(measure(task("toolhive.k8s.scale", {
            "kind": "VirtualMCPServer", "name": "gw", "namespace": ns, "replicas": replicas,
            "allow_without_session_storage": True, "wait": False}), audit))
        core.append(measure(task("kubernetes.core.k8s_scale", {
            "kind": "Deployment", "name": "gw", "namespace": ns, "replicas": replicas + 1, "wait": False}), audit))
        plain.append(measure(["kubectl", "scale", "deployment/gw", "-n", ns, f"--replicas={replicas + 2}"], audit))
    rows.append(("scale: one toolhive.k8s.scale task", ours, core, "one kubernetes.core.k8s_scale task"))
    rows.append(("scale: one toolhive.k8s.scale task ", ours, plain, "kubectl scale"))

    auto, auto_kubectl, ping = [], [], []
    for attempt in range(runs):
        kubectl("delete", "hpa", "--all", "-n", ns)
        auto.append(measure(task("toolhive.k8s.autoscale", {
            "kind": "VirtualMCPServer", "name": "gw", "namespace": ns, "min_replicas": 2, "max_replicas": 5,
            "cpu_percent": 70}), audit))
        kubectl("delete", "hpa", "--all", "-n", ns)
        auto_kubectl.append(measure(["kubectl", "autoscale", "deployment/gw", "-n", ns, "--min=2", "--max=5",
                                     "--cpu=70%"], audit))
        ping.append(measure(task("ansible.builtin.ping", {}), audit))
    rows.append(("autoscale: one toolhive.k8s.autoscale task", auto, auto_kubectl, "kubectl autoscale"))
    rows.append(("Ansible floor: one ansible.builtin.ping task", ping, None, None))
    kubectl("delete", "namespace", ns, "--wait=false")


def bench_startup(runs, rows):
    code = ("import time; t=time.perf_counter();"
            "from ansible_collections.toolhive.k8s.plugins.module_utils import client;"
            "print(time.perf_counter()-t)")
    full = "import time; t=time.perf_counter(); import kubernetes.client; print(time.perf_counter()-t)"
    env = dict(os.environ, PYTHONPATH=str(REPO / ".collections"))
    ours = [{"seconds": float(run([sys.executable, "-c", code], env=env).stdout)} for _run in range(runs)]
    theirs = [{"seconds": float(run([sys.executable, "-c", full], env=env).stdout)} for _run in range(runs)]
    rows.append(("module start-up: import our client", ours, theirs, "import kubernetes.client"))


def table(rows):
    lines = ["| measurement | seconds | API requests | writes | baseline | baseline seconds | ratio |",
             "|---|---:|---:|---:|---|---:|---:|"]
    for name, ours, theirs, baseline in rows:
        requests = f"{median(ours, 'requests'):.0f}" if "requests" in ours[0] else ""
        writes = f"{median(ours, 'writes'):.0f}" if "writes" in ours[0] else ""
        if theirs:
            ratio = median(ours, "seconds") / median(theirs, "seconds")
            base = f"| {baseline} | {median(theirs, 'seconds'):.2f} | {ratio:.2f}× |"
            if "requests" in theirs[0]:
                base = (f"| {baseline} ({median(theirs, 'requests'):.0f} requests) "
                        f"| {median(theirs, 'seconds'):.2f} | {ratio:.2f}× |")
        else:
            base = "| | | |"
        lines.append(f"| {name.strip()} | {median(ours, 'seconds'):.2f} | {requests} | {writes} {base}")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    args = parser.parse_args()
    if not AUDIT_LOG.exists():
        raise SystemExit(f"no audit log at {AUDIT_LOG}: the benchmarks need the local test bed (make cluster-up)")

    audit, rows, by_size = Audit(), [], {}
    bench_deploy(args.sizes, args.runs, audit, rows, by_size)
    bench_scale(args.runs, audit, rows)
    bench_startup(max(args.runs, 5), rows)
    header = (f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
              f"Python {platform.python_version()}; median of {args.runs} runs")
    out = f"{header}\n\n{table(rows)}\n"
    if len(by_size) > 1:
        out += "\nGrowth with N:\n\n" + "\n".join(growth(by_size)) + "\n"
    print(out)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(out, encoding="utf-8")


if __name__ == "__main__":
    main()

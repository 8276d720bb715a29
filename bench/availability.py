"""Failed calls while the servers' pods move, with and without the collection's measures (issue 25).

Needs the kind bed with two workers (testbed/kind.sh, KUBECONFIG=.kind/kubeconfig), its local images and the
operator. For each setting, one job is deployed with playbooks/deploy.yml into a fresh namespace: the standalone
Redis, the MCPServer --server (2 proxies scaled through its workload), a VirtualMCPServer `gateway` of 2 and an
MCPRemoteProxy `upstream` of 2 in front of it, Redis session storage, `sessionAffinity: None`
(tests/integration/realpods/traffic.py's traffic_job). --server says which: `greeter` (the default; the test bed's
stateless greeter, which keeps no session; 2 backends) or `everything` (go-sdk's, which keeps its sessions in
memory; 1 backend: several would each hold some, and a backend pod that moves ends some of those it held,
test_backend_sessions.py). Then each operation runs while real MCP clients call (traffic.py: on each of the 3
Services one long-lived session and a stream of new sessions, `tools/call`, at most --limit calls per client, stopped
5 s after the operation). --client says from where: `in-cluster` (the default) from a pod on
the control plane's node to each Service's DNS name, as a user's client in the cluster calls (incluster.py);
`api-server` from this host through the API server's service proxy, which sends each request to any ready pod, and
itself breaks off about 1 answer in 2,000 (docs/performance.md):

- scale: each server 2 -> 1 -> 3 -> 2 (the MCPServer's proxies; its backends stay);
- rollout: deploy.yml with new resources for the gateway and the remote proxy, so their Deployments roll;
- hpa: each server at 3, then an HPA on each (toolhive.k8s.autoscale in both settings: 1 to 3 at 400% of a CPU
  request the traffic stays under, no scale-down window) takes it to 1; the HPAs are removed and each server set back
  to 2. The HPA deletes the pods itself: only the drain (preStop) differs between the settings (the MCPServer's
  proxies get theirs from the operator role's MutatingAdmissionPolicy);
- drain: both workers drained in turn (the servers' pods; Redis stays), each put back before the next.

The settings:
- with the collection's measures: its defaults (drain 10 s, spread over the nodes, disruption budgets, the backend's
  readiness probe; the operator role's drain of MCPServer proxy pods), scaled by toolhive.k8s.scale, and the nodes
  drained by toolhive.k8s.drain_node, then `kubectl drain`;
- without: `toolhive_drain_seconds: 0`, `toolhive_spread_pods: false`, `toolhive_disruption_budgets: false`,
  `mcpserver_backend_readiness_probe: false`, the binding of the operator role's drain policy deleted for the
  setting (and made again after it), scaled by `kubectl scale` of each Deployment, and the nodes drained by
  `kubectl drain` alone.

Each row: calls, failed calls by cause, and the longest time a client went without an answer.

    KUBECONFIG=... python bench/availability.py [--limit 6000] [--operations scale,rollout,hpa,drain]
        [--server greeter|everything] [--client in-cluster|api-server] [--markdown F]

The goal (issue 25): 0 failed calls of at least 10,000 across the operations, with the measures.
"""
import argparse
import contextlib
import json
import logging
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
# pylint: disable=wrong-import-position
from bench.shell import sh  # noqa: E402
from tests.integration.host import image  # noqa: E402
from tests.operator_release import PROXY_DRAIN  # noqa: E402
from tests.integration.realpods.incluster import traffic_in_cluster  # noqa: E402
from tests.integration.realpods.podclient import run  # noqa: E402
from tests.integration.realpods.traffic import (  # noqa: E402
    TEST_SERVERS, causes, counted, first_of_each_cause, longest_gap, services, traffic_job, traffic_during)

SERVER_PODS = "toolhive=true"  # every server pod (the proxies', gateway's and backends'), not Redis's
WITHOUT = {"toolhive_drain_seconds": 0, "toolhive_spread_pods": False, "toolhive_disruption_budgets": False,
           "mcpserver_backend_readiness_probe": False}
SETTINGS = {"with the collection's measures": ({}, "drain_node"), "without them": (WITHOUT, "kubectl")}
OPERATIONS = ("scale", "rollout", "hpa", "drain")
# The proxies' CPU request, which their HPAs need (the gateway has the operator's own).
PROXY_RESOURCES = {"requests": {"cpu": "100m", "memory": "64Mi"}}
ROLLED_RESOURCES = {"requests": {"cpu": "120m", "memory": "80Mi"}}  # rollout's: a new pod template


def playbook(plays_or_path, extra_vars=None):
    """ansible-playbook of a path, or of plays written to a temporary file; extra vars as JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        path = plays_or_path
        if not isinstance(plays_or_path, Path):
            path = Path(tmp) / "play.json"
            path.write_text(json.dumps(plays_or_path), encoding="utf-8")
        variables = Path(tmp) / "vars.json"
        variables.write_text(json.dumps(extra_vars or {}), encoding="utf-8")
        return sh("ansible-playbook", path, "-e", f"@{variables}")


def servers(server):
    """(kind, name) of the job's three servers."""
    return (("VirtualMCPServer", "gateway"), ("MCPServer", server), ("MCPRemoteProxy", "upstream"))


def job(namespace, server, settings, resources=None):
    """The MCPServer without its replica field (docs/usage.md, "Pods that move": any change of an MCPServer rolls its
    proxies and backend)."""
    images = {"redis": image("redis-debian"), "everything": image("go-sdk-everything"),
              "greeter": image("stateless-greeter")}
    variables = traffic_job(namespace, images, "availability", backend_replicas=1 if server == "everything" else 2,
                            server=server, **settings)
    del variables["mcpserver_servers"][0]["replicas"]
    variables["mcpserver_servers"][0]["resources"] = PROXY_RESOURCES
    # Other resources give the gateway and the remote proxy a new pod template (rollout).
    variables["mcpremoteproxy_proxies"][0]["resources"] = resources or PROXY_RESOURCES
    if resources:
        variables["vmcp_instances"][0]["resources"] = resources
    return variables


def scale_to(namespace, kind, name, replicas, how):
    if how == "kubectl":  # the workloads themselves: kubectl scale, then its rollout waited for
        # What toolhive.k8s.scale's `command` says: the resource's replica field where it sets one (the job's gateway
        # and remote proxy), else the Deployment's scale (the MCPServer's proxy); each Deployment is named after it.
        if kind == "MCPServer":
            sh("kubectl", "scale", "-n", namespace, f"deployment/{name}", f"--replicas={replicas}")
        else:
            sh("kubectl", "patch", "-n", namespace, kind.lower(), name, "--type", "merge", "-p",
               json.dumps({"spec": {"replicas": replicas}}))
        time.sleep(2)  # the operator's turn to write the Deployment
        sh("kubectl", "rollout", "status", "-n", namespace, f"deployment/{name}", "--timeout=300s")
    else:
        playbook([{"hosts": "localhost", "gather_facts": False, "tasks": [{"toolhive.k8s.scale": {
            "kind": kind, "name": name, "namespace": namespace, "replicas": replicas}}]}])


def scale(namespace, server, _settings, how):
    for replicas in (1, 3, 2):
        for kind, name in servers(server):
            scale_to(namespace, kind, name, replicas, how)


def rollout(namespace, server, settings, _how):
    # Other requests, which an HPA can still act on (hpa runs after it): at 7m, the gateway's 3 pods used 1,304% of it.
    playbook(REPO / "playbooks" / "deploy.yml", job(namespace, server, settings, ROLLED_RESOURCES))


def one_pod(namespace, kind, name):
    """Whether the server's Deployment is at 1 and its other pods have ended."""
    deployment = json.loads(sh("kubectl", "get", "deployment", name, "-n", namespace, "-o", "json").stdout)
    pods = json.loads(sh("kubectl", "get", "pods", "-n", namespace, "-l",
                         f"app.kubernetes.io/name={kind.lower()},app.kubernetes.io/instance={name}", "-o", "json").stdout)
    return deployment["spec"]["replicas"] == 1 and len(pods["items"]) == 1


def hpa(namespace, server, _settings, how):
    for kind, name in servers(server):
        scale_to(namespace, kind, name, 3, how)

    def autoscale(**args):
        playbook([{"hosts": "localhost", "gather_facts": False, "tasks": [{"toolhive.k8s.autoscale": dict(
            kind=kind, name=name, namespace=namespace, **args)} for kind, name in servers(server)]}])
    autoscale(min_replicas=1, max_replicas=3, cpu_percent=400, release_replicas=True, behavior={"scaleDown": {
        "stabilizationWindowSeconds": 0, "policies": [{"type": "Pods", "value": 2, "periodSeconds": 15}]}})
    try:
        deadline = time.monotonic() + 300
        while not all(one_pod(namespace, kind, name) for kind, name in servers(server)):
            if time.monotonic() > deadline:
                raise RuntimeError("the HPAs did not take every server to one pod in 300 s")
            time.sleep(2)
    finally:
        autoscale(state="absent")
    for kind, name in servers(server):
        scale_to(namespace, kind, name, 2, "scale")


def workers():
    nodes = json.loads(sh("kubectl", "get", "nodes", "-o", "json").stdout)["items"]
    return sorted(n["metadata"]["name"] for n in nodes
                  if not any(t.get("effect") == "NoSchedule" for t in n["spec"].get("taints") or []))


def drain(namespace, server, _settings, how):
    for node in workers():
        try:
            if how == "drain_node":
                playbook([{"hosts": "localhost", "gather_facts": False, "tasks": [
                    {"toolhive.k8s.drain_node": {"node": node, "namespaces": [namespace]}}]}])
            sh("kubectl", "drain", node, "--pod-selector", SERVER_PODS, "--ignore-daemonsets",
               "--delete-emptydir-data", "--timeout", "240s")
        finally:
            sh("kubectl", "uncordon", node, check=False)
    # A drain does not wait for the replacements: the next operation starts with every workload whole.
    for kind, name in servers(server):
        sh("kubectl", "wait", "-n", namespace, "--for=condition=Ready", f"{kind.lower()}/{name}", "--timeout=300s")
    sh("kubectl", "rollout", "status", "-n", namespace, f"statefulset/{server}", "--timeout=300s")


@contextlib.contextmanager
def proxy_drain(wanted):
    """The operator role's drain of MCPServer proxy pods as WANTED for a setting: without it, its binding is deleted
    (the policy then acts on no pod), and made again as it was afterwards."""
    name = f"mutatingadmissionpolicybinding/{PROXY_DRAIN}"
    found = sh("kubectl", "get", name, "-o", "json", check=False)
    if wanted or found.returncode != 0:
        yield
        return
    binding = json.loads(found.stdout)
    sh("kubectl", "delete", name)
    try:
        yield
    finally:
        kept = {key: binding["metadata"][key] for key in ("name", "labels") if key in binding["metadata"]}
        sh("kubectl", "create", "-f", "-", stdin=json.dumps(dict(binding, metadata=kept)))


def measured(namespace, server, operation, settings, how, client, limit):
    def action():
        started = time.monotonic()
        operation(namespace, server, settings, how)
        return time.monotonic() - started
    if client == "in-cluster":
        traffic = traffic_in_cluster(os.environ["KUBECONFIG"], namespace, services(server), action,
                                     image("mcp-client"), limit)
    else:
        traffic = traffic_during(os.environ["KUBECONFIG"], namespace, services(server), action, limit)
    seconds, tallies = run(traffic, timeout=1800)
    calls, failed, summary = counted(tallies)
    return {"seconds": seconds, "calls": calls, "failed": len(failed), "causes": causes(failed),
            "gap": longest_gap(tallies), "per Service (long-lived calls, failed, new-session calls, failed)": summary,
            "first of each cause": {name: first_of_each_cause(kept.failures + fresh.failures)
                                    for name, (kept, fresh) in tallies.items()}}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=6000, help="calls per client, at most")
    parser.add_argument("--client", choices=("in-cluster", "api-server"), default="in-cluster")
    parser.add_argument("--operations", default=",".join(OPERATIONS))
    parser.add_argument("--server", choices=sorted(TEST_SERVERS), default="greeter")
    parser.add_argument("--markdown", type=Path, help="also write the result here")
    args = parser.parse_args()
    operations = args.operations.split(",")
    if set(operations) - set(OPERATIONS):
        raise SystemExit(f"--operations: choose from {', '.join(OPERATIONS)}")
    logging.getLogger("mcp").setLevel(logging.CRITICAL)  # the SDK's tracebacks of closed streams: counted, not shown
    os.environ.setdefault("KUBECONFIG", str(REPO / ".kind" / "kubeconfig"))
    if len(workers()) < 2 and "drain" in operations:
        raise SystemExit("drain needs two schedulable workers (testbed/kind.sh: TESTBED_KIND_WORKERS=2)")
    rows = []
    for setting, (settings, how) in SETTINGS.items():
        namespace = f"avail-{uuid.uuid4().hex[:6]}"
        with proxy_drain(how == "drain_node"):
            try:
                playbook(REPO / "playbooks" / "deploy.yml", job(namespace, args.server, settings))
                scale_to(namespace, "MCPServer", args.server, 2, "scale")  # its 2 proxies, with no replica field
                for name in operations:
                    try:
                        result = measured(namespace, args.server, globals()[name], settings, how, args.client,
                                          args.limit)
                    except Exception as exc:  # pylint: disable=broad-except  # a row; the job's state is unknown then
                        result = {"error": str(exc)}
                    rows.append((setting, name, result))
                    print(f"{setting}, {name}: {result}", flush=True)
                    if "error" in result:
                        break
            finally:
                sh("kubectl", "delete", "namespace", namespace, "--ignore-not-found", "--timeout=300s", check=False)
    lines = [f"machine: {platform.node()}, {os.cpu_count()} cores; the MCPServer {args.server}; 6 clients "
             f"({args.client}), at most {args.limit} calls each", "",
             "| setting | operation | took (s) | calls | failed | by cause | longest without an answer (s) |",
             "|---|---|---:|---:|---:|---|---:|"]
    for setting, name, r in rows:
        if "error" in r:
            lines.append(f"| {setting} | {name} | did not finish: {r['error']} | | | | |")
            continue
        lines.append(f"| {setting} | {name} | {r['seconds']:.0f} | {r['calls']:,} | {r['failed']:,} | "
                     f"{', '.join(f'{c} {n}' for c, n in r['causes'].items()) or '-'} | {r['gap']:.1f} |")
    for setting in SETTINGS:
        calls = sum(r.get("calls", 0) for s, _n, r in rows if s == setting)
        failed = sum(r.get("failed", 0) for s, _n, r in rows if s == setting)
        lines.append(f"| {setting} | **all** | | {calls:,} | **{failed:,}** | | |")
    out = "\n".join(lines) + "\n"
    print(out)
    if args.markdown:
        args.markdown.write_text(out, encoding="utf-8")


if __name__ == "__main__":
    main()

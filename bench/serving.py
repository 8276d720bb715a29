"""Time to serving on real pods: playbooks/deploy.yml against kubectl, in one run.

Needs the kind bed (testbed/kind.sh, KUBECONFIG=.kind/kubeconfig) and its local images. Each run deploys the same
job three ways, each into a fresh namespace, and times it from the first command to the first `tools/list`
answered through the gateway's Service, by a real client (the official `mcp` SDK, through the API server's
service proxy), listing the tools of every MCPServer:

- playbook: `ansible-playbook playbooks/deploy.yml` (its closing MCP check off: the kubectl leg checks nothing
  more than the one client call either), then the client call;
- playbook + MCP check: the same with the playbook's default closing check on (`toolhive_mcp_check`);
- playbook, vmcp_wait false + MCP check: the playbook without its wait for the gateway's `Ready` condition
  (`vmcp_wait: false`), its MCP check (which retries until every replica answers) telling when it serves;
- kubectl: `kubectl create namespace`, `kubectl apply --server-side` of the manifests the playbook applied
  (bench/run.py's exported_manifests, the password Secret included, the source namespace replaced everywhere),
  then either `kubectl wait` for the MCPServers' and gateways' `Ready` condition (what the playbook waits for),
  or for what runs (the MCPServers' phase `Ready`, the gateway's Deployment `Available`); then the same client
  call.

The client call is retried (every 0.5 s) until it lists every server's tools: a gateway goes on discovering its
backends after it turns Ready, for both legs alike. The order of the legs rotates between runs; each namespace is
deleted, and waited for, before the next leg starts. The job: Redis (the local Debian image), 2 MCPServers
(go-sdk's `everything`, one with 2 proxies), one VirtualMCPServer x3, Redis session storage, small CPU requests.

    KUBECONFIG=... python bench/serving.py [--runs 3] [--markdown out.md]

The target (issue 13): the playbook within 1.1x kubectl.
"""
import argparse
import asyncio
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
# pylint: disable=wrong-import-position
from bench.run import exported_manifests  # noqa: E402
from tests.integration.realpods.serviceclient import service_tools  # noqa: E402
from bench.shell import sh  # noqa: E402
from tests.integration.host import image  # noqa: E402

SMALL = {"requests": {"cpu": "5m", "memory": "32Mi"}}
SERVERS = ("alpha", "beta")
GATEWAY, GATEWAY_PORT = "gateway", 4483
LEGS = ("playbook", "playbook + MCP check", "playbook, vmcp_wait false + MCP check", "kubectl, waiting for Ready",
        "kubectl, waiting for the workloads")


def kubeconfig():
    return os.environ.get("KUBECONFIG") or str(REPO / ".cluster" / "kubeconfig")


def deploy_vars(namespace, mcp_check, vmcp_wait=True):
    everything = image("go-sdk-everything")
    server = {"image": everything, "transport": "streamable-http", "mcp_port": 8080, "resources": SMALL,
              "backend_resources": SMALL}
    return {
        "toolhive_namespace": namespace, "toolhive_group": "serving", "redis_image": image("redis-debian"),
        "redis_resources": SMALL, "toolhive_mcp_check": mcp_check, "vmcp_wait": vmcp_wait,
        "mcpserver_servers": [{"name": SERVERS[0], **server, "replicas": 2},
                              {"name": SERVERS[1], **server, "session_affinity": "None"}],
        "vmcp_instances": [{"name": GATEWAY, "replicas": 3, "resources": SMALL}],
    }


def serving(namespace, deadline):
    """Seconds until a new session's tools/list through the gateway's Service names every server's tools."""
    last = None
    while time.monotonic() < deadline:
        try:
            tools = asyncio.run(asyncio.wait_for(
                service_tools(kubeconfig(), namespace, f"vmcp-{GATEWAY}", GATEWAY_PORT), 20))
            if all(any(t.startswith(f"{s}_") for t in tools) for s in SERVERS):
                return tools
            last = tools
        except Exception as error:  # pylint: disable=broad-except  # not serving yet
            last = repr(error)[:300]
        time.sleep(0.5)
    raise SystemExit(f"{namespace}: the gateway did not serve every server's tools in time; last: {last}")


def playbook_leg(namespace, mcp_check, vmcp_wait):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(deploy_vars(namespace, mcp_check, vmcp_wait), handle)
    started = time.monotonic()
    sh("ansible-playbook", "playbooks/deploy.yml", "-e", f"@{handle.name}")
    command = time.monotonic() - started
    tools = serving(namespace, started + 600)
    return {"seconds": time.monotonic() - started, "command": command, "tools": len(tools)}


def kubectl_leg(namespace, manifests, workloads):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"apiVersion": "v1", "kind": "List", "items": manifests}, handle)
    started = time.monotonic()
    sh("kubectl", "create", "namespace", namespace)
    sh("kubectl", "apply", "--server-side", "--field-manager", "bench", "-f", handle.name)
    if workloads:
        # What runs: the MCPServers' phase, and the gateway's Deployment (made by the operator: wait for it to exist).
        sh("kubectl", "wait", "-n", namespace, "--for=jsonpath={.status.phase}=Ready", "mcpserver", "--all",
           "--timeout=300s")
        sh("kubectl", "wait", "-n", namespace, "--for=create", f"deployment/{GATEWAY}", "--timeout=300s")
        sh("kubectl", "wait", "-n", namespace, "--for=condition=Available", f"deployment/{GATEWAY}",
           "--timeout=300s")
    else:
        # The conditions the playbook waits for (toolhive.k8s.status, `Ready` of every server).
        sh("kubectl", "wait", "-n", namespace, "--for=condition=Ready", "mcpserver,virtualmcpserver", "--all",
           "--timeout=300s")
    command = time.monotonic() - started
    tools = serving(namespace, started + 600)
    return {"seconds": time.monotonic() - started, "command": command, "tools": len(tools)}


def delete(namespace):
    sh("kubectl", "delete", "namespace", namespace, "--ignore-not-found", "--wait=true", "--timeout=300s")


def export(namespace):
    """The playbook's manifests, checked: only what the collection applied (no operator-made object)."""
    manifests = exported_manifests(namespace, namespace)
    kinds = sorted(f"{m['kind']}/{m['metadata']['name']}" for m in manifests)
    expected = {"MCPGroup", "MCPServer", "VirtualMCPServer", "Deployment", "Service", "Secret", "ConfigMap",
                "PodDisruptionBudget"}
    if {m["kind"] for m in manifests} - expected or len([m for m in manifests if m["kind"] == "MCPServer"]) != 2:
        raise SystemExit(f"unexpected export: {kinds}")
    return manifests, kinds


def retarget(manifests, source, namespace):
    """The manifests for NAMESPACE: every mention of the SOURCE namespace replaced, not only metadata's (the
    servers' sessionStorage names Redis by its DNS name, and keyPrefix holds the namespace too)."""
    return json.loads(json.dumps(manifests).replace(source, namespace))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--markdown", type=Path, help="also write the result here")
    args = parser.parse_args()
    # The SDK logs a traceback when a session closes under a pending stream, and a failed DELETE: not ours to show.
    logging.getLogger("mcp").setLevel(logging.CRITICAL)
    os.environ.setdefault("KUBECONFIG", kubeconfig())
    tag = uuid.uuid4().hex[:6]
    results = {leg: [] for leg in LEGS}
    loads, manifests, kinds, source = [], None, None, None
    for attempt in range(args.runs):
        order = LEGS[attempt % len(LEGS):] + LEGS[:attempt % len(LEGS)]
        while manifests is None and order[0].startswith("kubectl"):  # kubectl needs the playbook's manifests first
            order = order[1:] + order[:1]
        for leg in order:
            namespace = f"serve-{tag}-{attempt}-{LEGS.index(leg)}"
            loads.append(os.getloadavg()[0])
            try:
                if leg.startswith("kubectl"):
                    result = kubectl_leg(namespace, retarget(manifests, source, namespace), "workloads" in leg)
                else:
                    result = playbook_leg(namespace, mcp_check=leg != "playbook", vmcp_wait="vmcp_wait" not in leg)
                    if manifests is None:
                        manifests, kinds = export(namespace)
                        source = namespace
            finally:
                delete(namespace)
            results[leg].append(result)
            print(f"run {attempt + 1} {leg}: serving after {result['seconds']:.1f}s (its commands "
                  f"{result['command']:.1f}s), {result['tools']} tools; load {loads[-1]:.2f}", flush=True)

    med = {leg: statistics.median(r["seconds"] for r in results[leg]) for leg in LEGS}
    cmd = {leg: statistics.median(r["command"] for r in results[leg]) for leg in LEGS}
    base = med["kubectl, waiting for the workloads"]
    lines = [
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()};"
        f" {args.runs} runs; 1-minute load average at the start of each leg: min {min(loads):.2f}, median "
        f"{statistics.median(loads):.2f}, max {max(loads):.2f}",
        f"manifests applied by the kubectl leg ({len(kinds)}): {', '.join(kinds)}", "",
        "| leg | time to serving, median (s) | each run (s) | the commands alone, median (s) "
        "| ratio to kubectl waiting for Ready | ratio to kubectl waiting for the workloads |",
        "|---|---:|---|---:|---:|---:|"]
    for leg in LEGS:
        runs = ", ".join(f"{r['seconds']:.1f}" for r in results[leg])
        lines.append(f"| {leg} | {med[leg]:.1f} | {runs} | {cmd[leg]:.1f} "
                     f"| {med[leg] / med['kubectl, waiting for Ready']:.2f}× | {med[leg] / base:.2f}× |")
    out = "\n".join(lines) + "\n"
    print(out)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(out, encoding="utf-8")


if __name__ == "__main__":
    main()

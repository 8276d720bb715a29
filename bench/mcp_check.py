"""Benchmark of toolhive.k8s.mcp_check on the kind bed (testbed/kind.sh, KUBECONFIG=.kind/kubeconfig).

Deploys, with playbooks/deploy.yml into a fresh namespace: Redis, 3 gateways x 3 replicas and 10 MCPServers
(go-sdk `everything`, 1 proxy and 1 backend each), all with Redis session storage and tiny CPU requests; waits
until one check passes; then times the check of the whole namespace (initialize, tools/list and the sessions
check on every replica, and through every Service), as a user runs it: `ansible localhost -m
toolhive.k8s.mcp_check`, a new Ansible process each time. The namespace is deleted at the end.

    KUBECONFIG=... python bench/mcp_check.py [--runs 5] [--keep]

The target (issue 15): within 5 s.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.integration.host import image  # noqa: E402  pylint: disable=wrong-import-position

SMALL = {"requests": {"cpu": "5m", "memory": "32Mi"}}


def deploy_vars(namespace):
    everything = image("go-sdk-everything")
    return {
        "toolhive_namespace": namespace, "toolhive_group": "bench", "redis_image": image("redis-debian"),
        "mcpserver_servers": [{"name": f"server{i}", "image": everything, "transport": "streamable-http",
                               "mcp_port": 8080, "replicas": 1, "backend_replicas": 1, "session_affinity": "None",
                               "resources": SMALL, "backend_resources": SMALL} for i in range(10)],
        "vmcp_instances": [{"name": f"gateway{i}", "replicas": 3, "session_affinity": "None", "resources": SMALL}
                           for i in range(3)],
    }


def env():
    return dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
                ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"), ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
                ANSIBLE_STDOUT_CALLBACK="json")


def check(namespace, **args):
    started = time.monotonic()
    proc = subprocess.run(["ansible", "localhost", "-m", "toolhive.k8s.mcp_check", "-a",
                           json.dumps(dict(namespace=namespace, **args))],
                          cwd=REPO, env=env(), stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    result = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    return result, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the namespace")
    parser.add_argument("--namespace", help="an existing namespace deployed by an earlier --keep run")
    args = parser.parse_args()
    namespace = args.namespace or f"bench-mcp-{uuid.uuid4().hex[:6]}"
    try:
        if not args.namespace:
            started = time.monotonic()
            proc = subprocess.run(["ansible-playbook", "playbooks/deploy.yml", "-e", json.dumps(deploy_vars(namespace))],
                                  cwd=REPO, env=dict(env(), ANSIBLE_STDOUT_CALLBACK="default"), stdin=subprocess.DEVNULL, capture_output=True,
                                  text=True, check=False)
            if proc.returncode:
                raise SystemExit(proc.stdout[-4000:] + proc.stderr[-2000:])
            print(f"deployed in {time.monotonic() - started:.1f}s")
        result, seconds = check(namespace, wait_timeout=300)
        if not result.get("ok"):
            raise SystemExit(f"the check never passed: {result.get('findings') or result.get('msg')}")
        print(f"first passing check after {result['rounds']} round(s), {seconds:.1f}s")
        samples, pods = [], 0
        for _run in range(args.runs):
            result, seconds = check(namespace)
            assert result["ok"], result["findings"]
            pods = sum(len(s["replicas"]) for s in result["servers"])
            samples.append(seconds)
        servers = len(result["servers"])
        sessions = sum(1 for s in result["servers"] for r in s["replicas"] if r["session_served"])
        noop = []
        for _run in range(args.runs):  # Ansible's own floor: the same module with nothing to check
            noop.append(check(namespace, name="none-such", kind="MCPServer", sessions=False)[1])
        print(f"{servers} servers, {pods} pods, {sessions} replicas served another's session; "
              f"check: median {statistics.median(samples):.2f}s (min {min(samples):.2f}, max {max(samples):.2f}) "
              f"of {args.runs}; a run that fails at once (Ansible and module start): "
              f"median {statistics.median(noop):.2f}s")
    finally:
        if not args.keep:
            subprocess.run(["kubectl", "delete", "namespace", namespace, "--wait=false"], capture_output=True,
                           check=False)


if __name__ == "__main__":
    main()

"""Fixtures for driving this collection's modules against the test bed."""
import json
import subprocess

import pytest

from ..conftest import REPO, wait_until
from .faulty_api import FaultyAPI

API = "toolhive.stacklok.dev/v1beta1"


class Result(dict):
    """What a module returned, plus how the ansible command ended."""

    rc = 0
    output = ""

    @property
    def failed(self):
        return self.rc != 0 or self.get("failed", False)


@pytest.fixture(scope="session")
def module(ansible_env):
    """Run one module of the collection through `ansible localhost -m`, as a task would."""

    def run(module_name, /, check=False, diff=False, env=None, **args):
        cmd = ["ansible", "localhost", "-m", f"toolhive.k8s.{module_name}", "-a", json.dumps(args)]
        cmd += ["--check"] if check else []
        cmd += ["--diff"] if diff else []
        proc = subprocess.run(cmd, cwd=REPO, env={**ansible_env, "ANSIBLE_STDOUT_CALLBACK": "json",
                                                  "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", **(env or {})},
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300, check=False)
        result = Result()
        try:
            payload = json.loads(proc.stdout)
            result.update(payload["plays"][0]["tasks"][0]["hosts"]["localhost"])
        except (ValueError, KeyError, IndexError):
            result["msg"] = proc.stdout + proc.stderr
        result.rc = proc.returncode
        result.output = proc.stdout + proc.stderr
        return result

    return run


def wait_for(what, probe, timeout=60):
    return wait_until(what, probe, timeout)


@pytest.fixture
def apply(kubectl, namespace):
    def run(*manifests):
        kubectl("apply", "-n", namespace, "-f", "-",
                stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(manifests)}))
    return run


@pytest.fixture
def get(kubectl, namespace):
    def run(kind, name):
        proc = kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
        return proc if isinstance(proc, dict) else None
    return run


@pytest.fixture
def vmcp(apply, get, namespace):
    """A VirtualMCPServer `gw` (group `g`, no replicas field) whose Deployment the operator created."""

    def make(name="gw", **spec):
        apply({"apiVersion": API, "kind": "MCPGroup", "metadata": {"name": "g"}, "spec": {}},
              {"apiVersion": API, "kind": "VirtualMCPServer", "metadata": {"name": name},
               "spec": {"groupRef": {"name": "g"}, "incomingAuth": {"type": "anonymous"}, **spec}})
        wait_for(f"deployment {name}", lambda: get("deployment", name))
        return name

    return make


@pytest.fixture
def mcpserver(apply, get):
    def make(name, **spec):
        apply({"apiVersion": API, "kind": "MCPServer", "metadata": {"name": name}, "spec": {"image": "x", **spec}})
        wait_for(f"deployment {name}", lambda: get("deployment", name))
        return name

    return make


@pytest.fixture
def faulty_api(kubeconfig):
    """A plain-HTTP front for the test bed's API server that puts faults at exact moments (faulty_api.py)."""
    with FaultyAPI(kubeconfig) as proxy:
        yield proxy


def through(proxy):
    """Module options that send a module's requests through the front."""
    return dict(host=proxy.url, api_key="unused-the-front-authenticates", kubeconfig=None)

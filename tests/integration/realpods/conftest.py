"""Fixtures for tests on running pods: the kind bed's node (testbed/kind.sh), and one deployment made
by the collection's own playbook that every test in a module reads.

Skipped only under the explicit opt-out (TESTBED_NODES=kwok); a kind bed without a Ready node is a failure.
"""
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from ..conftest import wait_until as _shared_wait
from ..host import REPO, image, ready_nodes


@pytest.fixture(scope="session")
def real_nodes(kubectl, kubeconfig):
    """The nodes the pods really run on (kind's workers); fails (never skips, but under TESTBED_NODES=kwok) when none
    is Ready."""
    return ready_nodes(kubectl, kubeconfig)


def wait_until(what, probe, timeout=120, interval=0.5):
    return _shared_wait(what, probe, timeout, interval)


class Deployment:
    """A namespace deployed by playbooks/deploy.yml, and what the tests need to find in it."""

    def __init__(self, kubectl, namespace):
        self.kubectl, self.namespace = kubectl, namespace
        # time.monotonic() at the start and end of the playbook, and when serving() first said yes
        self.started = self.deployed = self.serving = None

    def pods(self, selector):
        """Names of the Running, Ready pods matching SELECTOR, sorted."""
        items = self.kubectl("get", "pods", "-n", self.namespace, "-l", selector, "-o", "json")["items"]
        return sorted(p["metadata"]["name"] for p in items
                      if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
                      and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"]["conditions"]))

    def drains(self, selector, container):
        """(lifecycle hooks, grace period) of CONTAINER in each pod matching SELECTOR that is not ending."""
        items = self.kubectl("get", "pods", "-n", self.namespace, "-l", selector, "-o", "json")["items"]
        return [(c.get("lifecycle"), p["spec"].get("terminationGracePeriodSeconds"))
                for p in items if not p["metadata"].get("deletionTimestamp")
                for c in p["spec"]["containers"] if c["name"] == container]

    def all_pods(self):
        """Every pod of the namespace, as the API returns them."""
        return self.kubectl("get", "pods", "-n", self.namespace, "-o", "json")["items"]


def deploy(run_playbook, kubectl, extra_vars, serving):
    """Run deploy.yml for EXTRA_VARS (which name a fresh namespace) and, while it runs, call
    serving(deployment) every second until it says yes: the time to serving is the user's, and
    the playbook may still be waiting for the operator's status when the pods already answer."""
    deployment = Deployment(kubectl, extra_vars["toolhive_namespace"])
    with ThreadPoolExecutor(max_workers=1) as pool:
        deployment.started = time.monotonic()
        playbook = pool.submit(run_playbook, REPO / "playbooks" / "deploy.yml", extra_vars=extra_vars)
        while deployment.serving is None and not playbook.done():
            if serving(deployment):
                deployment.serving = time.monotonic()
            else:
                time.sleep(1)
        result = playbook.result()
        deployment.deployed = time.monotonic()
    assert result.returncode == 0, result.output[-6000:]
    if deployment.serving is None:
        wait_until("the deployment to serve", lambda: serving(deployment), timeout=120, interval=1)
        deployment.serving = time.monotonic()
    return deployment


@pytest.fixture(scope="module")
def fresh_namespace(kubectl):
    """A namespace name nobody uses; the playbook creates it, and it is deleted afterwards."""
    name = f"rp-{uuid.uuid4().hex[:8]}"
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def images():
    """The test bed's local images (testbed/images.sh names); `client` is the in-cluster MCP client's (incluster.py),
    `greeter` the server that keeps no session (traffic.TEST_SERVERS)."""
    return {"redis": image("redis-debian"), "everything": image("go-sdk-everything"),
            "greeter": image("stateless-greeter"), "client": image("mcp-client")}

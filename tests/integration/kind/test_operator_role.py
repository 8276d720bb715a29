"""The `operator` role (playbooks/operator.yml) on kind, as a user runs it on a new cluster: ToolHive's operator
installed with Helm in the cluster (CRD chart applied server-side, then the operator chart), re-run, upgraded from
the oldest supported release to the test bed's, configured through chart values, checked without installing,
refused with a reason when the charts cannot be read, and removed; with it, the MutatingAdmissionPolicy that gives
MCPServer proxy pods their drain (the kind bed serves its v1beta1, as Kubernetes 1.36 serves v1).

The tests of this module run in order on one cluster and leave the test bed's release installed.
"""
import json
import re

import pytest

from ...operator_release import PROXY_DRAIN, chart_crd_schemas, helm_releases, operator_deployment
from ..conftest import wait_until
from ...versions_env import pinned as versions
from .conftest import charts

pytestmark = pytest.mark.serial

RELEASE, OLDEST = versions()["TOOLHIVE_VERSION"], versions()["TOOLHIVE_OLDEST_VERSION"]
CRDS = ["mcpservers", "virtualmcpservers", "mcpgroups"]


def recap(output):
    """{'ok': n, 'changed': n, 'failed': n, ...} of the play recap."""
    line = re.search(r"localhost\s*:\s*(.*)", output.split("PLAY RECAP")[-1]).group(1)
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


def crd(kubectl, name):
    """CRD NAME.toolhive.stacklok.dev as the API server has it, or None."""
    found = kubectl("get", "crd", f"{name}.toolhive.stacklok.dev", "--show-managed-fields", "-o", "json", check=False)
    return found if isinstance(found, dict) else None


def proxy_drain(kubectl):
    """{kind: object} of the MutatingAdmissionPolicy and binding that give MCPServer proxy pods their drain, those there."""
    found = {kind: kubectl("get", kind, PROXY_DRAIN, "-o", "json", check=False)
             for kind in ("mutatingadmissionpolicy", "mutatingadmissionpolicybinding")}
    return {kind: item for kind, item in found.items() if isinstance(item, dict)}


def release_crd_schema(release, name):
    """The schema of CRD NAME as RELEASE's CRD chart renders it."""
    return chart_crd_schemas(charts(release), release, name)


@pytest.fixture(scope="module")
def empty_cluster(kubectl, operator):
    """No operator release and no ToolHive CRD: the cluster a user starts from. Resources of earlier runs go first,
    while an operator may still be there to release its finalizers."""
    names = [i["metadata"]["name"] for i in kubectl("get", "crd", "-o", "json")["items"]
             if i["metadata"]["name"].endswith(".toolhive.stacklok.dev")]
    for name in names:
        kubectl("delete", name.split(".")[0], "--all", "--all-namespaces", "--timeout=120s", check=False)
    assert operator(RELEASE, operator_state="absent").returncode == 0
    if names:
        kubectl("delete", "crd", *names, "--timeout=120s")
    assert operator_deployment(kubectl) is None
    assert crd(kubectl, "mcpservers") is None
    assert proxy_drain(kubectl) == {}  # the removal took the drain's policy too


def test_verify_only_on_an_empty_cluster_says_how_to_install(empty_cluster, operator):
    result = operator(RELEASE, operator_install=False)
    assert result.returncode != 0
    assert "CRD mcpservers.toolhive.stacklok.dev is not installed" in result.output
    assert "playbooks/operator.yml" in result.output


def test_check_mode_installs_nothing(empty_cluster, operator, kubectl, kubeconfig):
    result = operator(OLDEST, "--check")
    assert result.returncode == 0, result.output[-3000:]
    assert recap(result.output)["changed"] >= 1  # it says what a real run would change...
    assert operator_deployment(kubectl) is None  # ...and changes nothing
    assert helm_releases(kubeconfig) == {}
    assert proxy_drain(kubectl) == {}


def test_install_the_oldest_supported_release(empty_cluster, operator, kubectl, kubeconfig):
    result = operator(OLDEST)
    assert result.returncode == 0, result.output[-3000:]
    deployment = operator_deployment(kubectl)
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"ghcr.io/stacklok/toolhive/operator:{OLDEST}"
    assert deployment["status"].get("availableReplicas") == 1  # helm --wait: installed means running
    assert helm_releases(kubeconfig) == {"toolhive-operator": f"toolhive-operator-{OLDEST.lstrip('v')}"}
    for name in CRDS:
        found = crd(kubectl, name)
        managers = {m["manager"] for m in found["metadata"]["managedFields"]}
        assert "toolhive.k8s" in managers, managers  # applied by the role, server-side, not by Helm
    drain = proxy_drain(kubectl)
    assert drain["mutatingadmissionpolicybinding"]["spec"]["policyName"] == PROXY_DRAIN
    policy = drain["mutatingadmissionpolicy"]["spec"]
    selector = policy["matchConstraints"]["objectSelector"]["matchLabels"]
    assert selector == {"app.kubernetes.io/name": "mcpserver", "toolhive": "true"}
    assert "sleep: Object.spec.containers.lifecycle.preStop.sleep{seconds: 10}" in \
        policy["mutations"][0]["applyConfiguration"]["expression"]


def test_the_proxy_drain_is_refused_out_of_range_removed_at_zero_and_made_again(operator, kubectl):
    made = proxy_drain(kubectl)["mutatingadmissionpolicy"]["metadata"]["uid"]
    result = operator(OLDEST, operator_proxy_drain_seconds=301)
    assert result.returncode != 0 and "operator_proxy_drain_seconds = 301" in result.output, result.output[-3000:]
    assert proxy_drain(kubectl)["mutatingadmissionpolicy"]["metadata"]["uid"] == made  # refused before any write
    result = operator(OLDEST, operator_proxy_drain_seconds=0)
    assert result.returncode == 0, result.output[-3000:]
    assert proxy_drain(kubectl) == {} and recap(result.output)["changed"] == 1, result.output[-3000:]
    result = operator(OLDEST, "--check")
    assert result.returncode == 0 and recap(result.output)["changed"] == 1, result.output[-3000:]
    assert proxy_drain(kubectl) == {}  # check mode made nothing
    result = operator(OLDEST, operator_proxy_drain_seconds=25)
    assert result.returncode == 0, result.output[-3000:]
    expression = proxy_drain(kubectl)["mutatingadmissionpolicy"]["spec"]["mutations"][0]["applyConfiguration"][
        "expression"]
    assert "{seconds: 25}" in expression and "orValue(0) > 55 ?" in expression, expression  # the grace: 25 + 30
    assert operator(OLDEST).returncode == 0  # back to the default for the tests that follow


def test_a_second_run_changes_nothing(operator):
    result = operator(OLDEST, "--diff")
    assert result.returncode == 0, result.output[-3000:]
    assert recap(result.output)["changed"] == 0, result.output[-3000:]


def test_unreadable_charts_are_refused_with_the_reason_and_nothing_changes(operator, kubectl, tmp_path):
    before = operator_deployment(kubectl)["metadata"]["generation"]
    result = operator(OLDEST, operator_chart_repo=str(tmp_path / "no-charts"))
    assert result.returncode != 0
    assert f"The ToolHive operator {OLDEST.lstrip('v')} was not installed" in result.output
    assert f"{tmp_path}/no-charts/toolhive-operator-crds-{OLDEST.lstrip('v')}.tgz" in result.output
    result = operator(OLDEST, operator_chart_repo="oci://127.0.0.1:9/toolhive")
    assert result.returncode != 0
    assert "can be reached" in result.output, result.output[-3000:]
    assert operator_deployment(kubectl)["metadata"]["generation"] == before


def test_upgrade_applies_the_new_crds_then_the_new_operator(operator, kubectl, kubeconfig):
    assert release_crd_schema(OLDEST, "mcpservers") != release_crd_schema(RELEASE, "mcpservers")  # else no proof
    result = operator(RELEASE)
    assert result.returncode == 0, result.output[-3000:]
    order = [m.start() for m in (re.search(r"TASK \[[^\]]*Apply the CRDs", result.output),
                                 re.search(r"TASK \[[^\]]*Install or upgrade the operator chart", result.output))]
    assert order == sorted(order)
    served = {v["name"]: v["schema"] for v in crd(kubectl, "mcpservers")["spec"]["versions"]}
    assert served == release_crd_schema(RELEASE, "mcpservers")
    deployment = operator_deployment(kubectl)
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == \
        f"ghcr.io/stacklok/toolhive/operator:{RELEASE}"
    assert deployment["status"].get("availableReplicas") == 1
    assert helm_releases(kubeconfig) == {"toolhive-operator": f"toolhive-operator-{RELEASE.lstrip('v')}"}


def test_chart_values_and_the_default_redis_reach_the_operator(operator, kubectl):
    result = operator(RELEASE, operator_values={"operator": {"resources": {"requests": {"cpu": "15m"}}}},
                      operator_default_redis={"address": "redis.shared.svc:6379", "secret_name": "shared-redis"})
    assert result.returncode == 0, result.output[-3000:]
    container = operator_deployment(kubectl)["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["requests"]["cpu"] == "15m"
    env = {e["name"]: e.get("value") or json.dumps(e.get("valueFrom")) for e in container.get("env", [])}
    assert env.get("TOOLHIVE_DEFAULT_REDIS_ADDR") == "redis.shared.svc:6379", env
    assert env.get("TOOLHIVE_DEFAULT_REDIS_SECRET_NAME") == "shared-redis", env
    # Back to the chart's defaults: Helm resets values a run does not give.
    result = operator(RELEASE)
    assert result.returncode == 0, result.output[-3000:]
    container = operator_deployment(kubectl)["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["requests"]["cpu"] == "10m"
    assert "TOOLHIVE_DEFAULT_REDIS_ADDR" not in {e["name"] for e in container.get("env", [])}


def test_removal_keeps_the_crds_and_the_servers_then_a_reinstall_serves_them_again(
        operator, kubectl, kubeconfig, fresh_group):
    result = operator(RELEASE, operator_state="absent")
    assert result.returncode == 0, result.output[-3000:]
    assert operator_deployment(kubectl) is None
    assert helm_releases(kubeconfig) == {}
    assert proxy_drain(kubectl) == {}
    assert crd(kubectl, "mcpgroups")["metadata"]["name"] == "mcpgroups.toolhive.stacklok.dev"
    assert kubectl("get", "mcpgroup", fresh_group, "-n", "default", "-o", "json")["metadata"]["name"] == fresh_group
    result = operator(RELEASE, operator_install=False)  # verify-only: the CRDs are there
    assert result.returncode == 0, result.output[-3000:]
    assert recap(result.output)["changed"] == 0
    result = operator(RELEASE)
    assert result.returncode == 0, result.output[-3000:]
    assert set(proxy_drain(kubectl)) == {"mutatingadmissionpolicy", "mutatingadmissionpolicybinding"}
    wait_until("the reinstalled operator to reconcile the group again", lambda: kubectl(
        "get", "mcpgroup", fresh_group, "-n", "default", "-o", "json").get("status", {}).get("phase") == "Ready", timeout=120)


@pytest.fixture
def fresh_group(kubectl):
    """An MCPGroup the running operator has made Ready, deleted afterwards."""
    name = "operator-role-test"
    kubectl("apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPGroup",
        "metadata": {"name": name, "namespace": "default"}, "spec": {}}))
    wait_until("the group to be Ready", lambda: kubectl("get", "mcpgroup", name, "-n", "default", "-o", "json")
               .get("status", {}).get("phase") == "Ready", timeout=120)
    yield name
    kubectl("delete", "mcpgroup", name, "-n", "default", "--ignore-not-found")

"""Pure logic: operator_default_redis becomes the chart's operator.defaultRedis values (roles/operator/vars)."""
from pathlib import Path

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader
from ansible.template import Templar

try:
    from ansible.template import trust_as_template
except ImportError:  # ansible-core before 2.19 trusts every template string it is given
    def trust_as_template(text):
        return text

REPO = Path(__file__).resolve().parents[2]
EXPRESSION = yaml.safe_load((REPO / "roles/operator/vars/main.yml").read_text())["operator_default_redis_values"]


def chart_values(**variables):
    init_plugin_loader()
    return Templar(loader=DataLoader(), variables=variables).template(trust_as_template(EXPRESSION))


@pytest.mark.parametrize("given,expected", [
    ({}, {}),
    ({"address": "r.ns.svc:6379"}, {"operator": {"defaultRedis": {"addr": "r.ns.svc:6379"}}}),
    ({"address": "r:6379", "secret_name": "auth", "secret_key": "password"},
     {"operator": {"defaultRedis": {"addr": "r:6379", "existingSecret": "auth", "existingSecretKey": "password"}}}),
])
def test_only_the_keys_given_reach_the_chart(given, expected):
    assert chart_values(operator_default_redis=given) == expected


def test_left_out_it_adds_nothing():
    assert chart_values() == {}


POLICY_API = yaml.safe_load((REPO / "roles/operator/vars/main.yml").read_text())["operator_admission_policy_api"]
GA, BETA = "admissionregistration.k8s.io/v1", "admissionregistration.k8s.io/v1beta1"


def policy_api(*served):
    """The MutatingAdmissionPolicy API the role picks, the cluster serving the kind in SERVED (group/versions)."""
    apis = {GA: {"ValidatingAdmissionPolicy": {}}, BETA: {}, "v1": {"Pod": {}}}
    for version in served:
        apis.setdefault(version, {})["MutatingAdmissionPolicy"] = {"name": "mutatingadmissionpolicies"}
    init_plugin_loader()
    return Templar(loader=DataLoader(), variables={"operator_cluster_apis": {"apis": apis}}).template(
        trust_as_template(POLICY_API))


@pytest.mark.parametrize("served,picked", [((GA, BETA), GA), ((BETA,), BETA), ((GA,), GA), ((), "")])
def test_the_drain_policy_takes_the_ga_api_first_and_none_where_none_is_served(served, picked):
    assert policy_api(*served) == picked


def test_the_drain_policy_finds_the_proxy_pods_and_container_kinds_names():
    """The role's policy selects what kinds.py says an MCPServer proxy's pods and container are (one name per pod
    label it shares with the table; toolhive=true keeps the other kinds' pods out)."""
    from ansible_collections.toolhive.k8s.plugins.module_utils.kinds import SERVERS, pod_labels
    role = yaml.safe_load((REPO / "roles/operator/vars/main.yml").read_text())
    proxy = pod_labels("MCPServer", "proxy", "x")
    assert role["operator_proxy_container"] == SERVERS["MCPServer"]["workloads"]["proxy"]["container"]
    assert {k: v for k, v in proxy.items() if k in role["operator_proxy_pod_labels"]} == {
        "app.kubernetes.io/name": role["operator_proxy_pod_labels"]["app.kubernetes.io/name"]}
    assert role["operator_proxy_pod_labels"]["toolhive"] == "true"

"""The operator's release: parsed from a Deployment or bounded by the CRDs, and the supported range."""
import pytest

from ansible_collections.toolhive.k8s.plugins.module_utils import operator, versions
from ansible_collections.toolhive.k8s.plugins.module_utils.errors import K8sError


@pytest.mark.parametrize("text, release", [
    ("v0.63.0", (0, 63, 0)), ("0.44.0", (0, 44, 0)), ("toolhive-operator-0.47.0", (0, 47, 0)),
    ("ghcr.io/stacklok/toolhive/operator:v0.63.0", (0, 63, 0)),
    ("ghcr.io/stacklok/toolhive/operator:v0.44.0@sha256:" + "a" * 64, (0, 44, 0)),
    ("registry.local:5000/toolhive/operator:v0.47.0", (0, 47, 0)),
    ("ghcr.io/stacklok/toolhive/operator:latest", None), ("registry.local:5000/operator", None),
    ("v0.63.0-rc.1", None), ("", None), (None, None), ("0.63", None),
])
def test_parse_release(text, release):
    assert versions.parse_release(text) == release


def deployment(labels=None, image="ghcr.io/stacklok/toolhive/operator:v0.47.0"):
    return {"metadata": {"name": "toolhive-operator", "namespace": "toolhive-system", "labels": labels or {}},
            "spec": {"template": {"spec": {"containers": [{"name": "manager", "image": image}]}}}}


def test_release_from_deployment_prefers_labels_then_the_image():
    assert versions.release_from_deployment(deployment({"app.kubernetes.io/version": "v0.63.0"})) == (0, 63, 0)
    assert versions.release_from_deployment(deployment({"helm.sh/chart": "toolhive-operator-0.62.0"})) == (0, 62, 0)
    assert versions.release_from_deployment(deployment()) == (0, 47, 0)
    assert versions.release_from_deployment(deployment(image="ghcr.io/stacklok/toolhive/operator:main")) is None
    assert versions.release_from_deployment(deployment(image="nginx:1.27.0")) is None  # not the operator's image


def crd(*paths):
    """A CRD whose v1beta1 schema has the dotted paths."""
    root = {"type": "object", "properties": {}}
    for path in paths:
        node = root
        for name in path.split("."):
            node = node["properties"].setdefault(name, {"type": "object", "properties": {}})
    return {"spec": {"versions": [{"name": "v1alpha1", "schema": {"openAPIV3Schema": {}}},
                                  {"name": "v1beta1", "schema": {"openAPIV3Schema": root}}]}}


def test_release_from_crds_is_the_newest_marker_served():
    crds = {"mcpservers": crd("spec.sessionStorage.tls", "spec.maxRequestBodySize"),
            "mcpexternalauthconfigs": crd("spec.embeddedAuthServer.trustedIssuers")}
    assert versions.release_from_crds(crds)[0] == (0, 55, 1)
    assert versions.release_from_crds({"mcpexternalauthconfigs": crd("spec.embeddedAuthServer.trustedIssuers")})[0] \
        == (0, 44, 0)
    release, marker = versions.release_from_crds({"mcpservers": crd("spec.replicas"), "mcpremoteproxies": None})
    assert release is None and marker[0] == (0, 44, 0)


def test_has_field_reads_only_v1beta1():
    assert versions.has_field(crd("spec.sessionStorage.tls"), "spec.sessionStorage.tls")
    assert not versions.has_field(crd("spec.sessionStorage"), "spec.sessionStorage.tls")
    assert not versions.has_field(None, "spec")


@pytest.mark.parametrize("release, exact, strict, refused", [
    ((0, 44, 0), True, False, False), ((0, 63, 0), True, False, False), ((0, 66, 0), True, True, False),
    ((0, 47, 0), False, False, False), ((0, 43, 0), True, False, True), ((0, 43, 0), True, True, True),
    ((0, 67, 0), True, False, False),  # newer than validated: a warning (newer_warning), not a refusal
    ((0, 67, 0), True, True, True),  # ... unless strict
    ((1, 0, 0), False, True, False),  # a lower bound from the CRDs says nothing about an upper limit
])
def test_problem_names_the_supported_range(release, exact, strict, refused):
    message = versions.problem(release, exact, "Deployment toolhive-system/toolhive-operator", strict=strict)
    assert bool(message) == refused
    if refused:
        assert versions.shown(release) in message and "toolhive-system/toolhive-operator" in message
        assert "v0.44.0 to v0.66.0" in message if release < versions.OLDEST else "newer than v0.66.0" in message
        assert "Fix:" in message


def test_the_newest_validated_release_is_v0_66_0():
    # v0.66.0 (2026-11-16) was refused by exact release before; its CRDs are tests/newest_crds'.
    assert versions.NEWEST == (0, 66, 0) and versions.SUPPORTED == "v0.44.0 to v0.66.0"


def test_problem_for_crds_older_than_the_oldest_marker():
    message = versions.problem(None, False, "its CRDs", versions.CRD_MARKERS[-1])
    assert "older than v0.44.0" in message and "trustedIssuers" in message and "v0.44.0 to v0.66.0" in message


class FakeClient:
    def __init__(self, deployments=None, crds=None, list_status=None):
        self.deployments, self.crds, self.list_status = deployments or [], crds or {}, list_status

    def get(self, path, **params):
        assert path == "/apis/apps/v1/deployments" and params == {"labelSelector": operator.SELECTOR}
        if self.list_status:
            raise K8sError("forbidden", status=self.list_status)
        return {"items": self.deployments}

    def get_or_none(self, path, **params):
        return self.crds.get(path.rsplit("/", 1)[1].split(".")[0])


def test_check_operator_from_the_deployment_or_the_crds():
    checks, warnings = [], []
    assert versions.check_operator(FakeClient([deployment()]), checks, warnings) == []
    assert checks == ["ToolHive operator v0.47.0 (Deployment toolhive-system/toolhive-operator), supported "
                      "(v0.44.0 to v0.66.0)"] and warnings == []
    old = FakeClient([deployment(image="ghcr.io/stacklok/toolhive/operator:v0.40.0")])
    assert "v0.40.0" in versions.check_operator(old, [], [])[0]
    # Listing Deployments forbidden (a namespaced role): the CRDs decide.
    checks = []
    forbidden = FakeClient(list_status=403, crds={"mcpexternalauthconfigs": crd("spec.embeddedAuthServer.trustedIssuers")})
    assert versions.check_operator(forbidden, checks, []) == [] and "v0.44.0 or later" in checks[0]
    too_old = FakeClient(crds={"mcpservers": crd("spec.replicas")})
    assert "older than v0.44.0" in versions.check_operator(too_old, [], [])[0]
    with pytest.raises(K8sError):
        versions.check_operator(FakeClient(list_status=500), [], [])


@pytest.mark.parametrize("labels", [{"app.kubernetes.io/version": "v0.66.0"}, {"helm.sh/chart": "operator-0.66.0"}])
def test_the_newest_release_is_accepted_without_a_warning(labels):
    checks, warnings = [], []
    assert versions.check_operator(FakeClient([deployment(labels)]), checks, warnings, strict=True) == []
    assert warnings == [] and "v0.66.0" in checks[0] and "supported" in checks[0]


def test_a_newer_release_warns_and_strict_refuses():
    newer = FakeClient([deployment(image="ghcr.io/stacklok/toolhive/operator:v0.68.1")])
    checks, warnings = [], []
    assert versions.check_operator(newer, checks, warnings) == []
    assert len(warnings) == 1 and "v0.68.1" in warnings[0] and "newer than v0.66.0" in warnings[0]
    assert "toolhive_strict_release: true" in warnings[0] and "v0.68.1" in checks[0]
    checks, warnings = [], []
    refusal = versions.check_operator(newer, checks, warnings, strict=True)
    assert len(refusal) == 1 and "v0.68.1" in refusal[0] and "toolhive_strict_release: false" in refusal[0]
    assert warnings == [] and checks == []

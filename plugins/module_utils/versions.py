# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which ToolHive operator release a cluster runs, and whether this collection supports it.

The exact release comes from the operator's Deployment (Helm labels `app.kubernetes.io/version`,
`helm.sh/chart`, or the image tag); without one (an operator run outside the cluster, or no right to list
Deployments) the CRDs tell a lower bound: the newest field they serve whose first release is known (read from
the CRDs shipped in each release's Go module, docs/toolhive-versions.md). The CRDs carry no version label.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.toolhive.k8s.plugins.module_utils import kinds, operator

OLDEST = (0, 44, 0)  # the oldest release every test has run against (docs/toolhive-versions.md)
NEWEST = (0, 66, 0)  # the newest release whose CRDs validate every rendered manifest (tests/newest_crds)

# (first release, CRD plural, field path in its v1beta1 schema), newest first. Only releases the Go proxy
# serves were read: a field may have come in a refused release just before the one named. v0.63.0 to v0.66.0
# changed no schema field (only descriptions), so the CRDs cannot tell those releases apart.
CRD_MARKERS = (
    ((0, 62, 0), "mcpexternalauthconfigs", "spec.embeddedAuthServer.tlsListener"),
    ((0, 56, 0), "mcpexternalauthconfigs", "spec.embeddedAuthServer.registrationRateLimit"),
    ((0, 55, 1), "mcpservers", "spec.sessionStorage.tls"),
    ((0, 48, 0), "mcpservers", "spec.proxyReadTimeout"),
    ((0, 47, 0), "mcpservers", "spec.maxRequestBodySize"),
    ((0, 45, 0), "mcpremoteproxies", "spec.allowPrivateEndpoint"),
    ((0, 44, 0), "mcpexternalauthconfigs", "spec.embeddedAuthServer.trustedIssuers"),
)

_RELEASE = re.compile(r"(?:^|[:\-v])v?(\d+)\.(\d+)\.(\d+)$")


def shown(release):
    return "v%d.%d.%d" % release


SUPPORTED = "%s to %s" % (shown(OLDEST), shown(NEWEST))


def parse_release(text):
    """(major, minor, patch) from "v0.63.0", "0.63.0", "operator-0.63.0" (helm.sh/chart) or an image
    reference ".../operator:v0.63.0[@sha256:...]"; None for anything else (latest, a digest only, a pre-release)."""
    if not isinstance(text, str) or not text:
        return None
    text = text.split("@", 1)[0]
    if "/" in text or text.count(":") == 1:
        tail = text.rsplit("/", 1)[-1]
        if ":" not in tail:
            return None
        text = tail.rsplit(":", 1)[1]
    match = _RELEASE.search(text)
    return tuple(int(part) for part in match.groups()) if match else None


def release_from_deployment(deployment):
    """The release a ToolHive operator Deployment runs: its version label, chart label, then image tag."""
    meta = deployment.get("metadata") or {}
    labels = meta.get("labels") or {}
    for value in (labels.get("app.kubernetes.io/version"), labels.get("helm.sh/chart")):
        release = parse_release(value)
        if release:
            return release
    containers = (((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    for container in containers:
        image = container.get("image") or ""
        if "/operator:" in image or image.startswith("operator:"):
            release = parse_release(image)
            if release:
                return release
    return None


def has_field(crd, path):
    """Whether the CRD's v1beta1 schema has the dotted field path."""
    for version in (crd or {}).get("spec", {}).get("versions", []):
        if version.get("name") != "v1beta1":
            continue
        node = (version.get("schema") or {}).get("openAPIV3Schema") or {}
        for name in path.split("."):
            node = (node.get("properties") or {}).get(name)
            if node is None:
                return False
        return True
    return False


def _unknown(schema, value, path):
    if not isinstance(schema, dict) or schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    if isinstance(value, dict):
        properties = schema.get("properties")
        if properties is None:  # a map: its values follow additionalProperties
            extra = schema.get("additionalProperties")
            return [found for key, item in sorted(value.items()) for found in _unknown(extra, item, path + "." + key)]
        unknown = []
        for key, item in sorted(value.items()):
            if key not in properties:
                unknown.append(path + "." + key)
            else:
                unknown.extend(_unknown(properties[key], item, path + "." + key))
        return unknown
    if isinstance(value, list):
        return [found for item in value for found in _unknown(schema.get("items"), item, path + "[]")]
    return []


def unknown_fields(crd, version, spec):
    """The dotted paths of SPEC that the CRD's schema for VERSION does not have (the API server would drop them
    without a word: structural schemas prune unknown fields)."""
    for served in (crd or {}).get("spec", {}).get("versions", []):
        if served.get("name") == version:
            schema = ((served.get("schema") or {}).get("openAPIV3Schema") or {}).get("properties", {}).get("spec")
            return _unknown(schema, spec or {}, "spec") if schema else []
    return []


def release_from_crds(crds):
    """(lower bound, marker) from {plural: CRD}: the first release of the newest marker field the CRDs serve;
    (None, oldest marker) when they serve none, i.e. older than the oldest marker's release."""
    for release, plural, path in CRD_MARKERS:
        if has_field(crds.get(plural), path):
            return release, (release, plural, path)
    return None, CRD_MARKERS[-1]


def problem(release=None, exact=True, source="", marker=None, strict=False):
    """A refusal naming the supported range and the fix, or None when the release may be deployed to.

    A release newer than NEWEST is refused only when STRICT: newer releases have only added to the CRDs so far
    (docs/toolhive-versions.md), so by default the caller warns (newer_than_validated) and goes on."""
    fix = ("Fix: install a supported operator and its CRDs (role toolhive.k8s.operator, operator_version)")
    if release is None and marker is not None:
        first, plural, path = marker
        return ("the ToolHive CRDs are older than %s (%s has no %s, which %s brought): this collection supports "
                "ToolHive %s. %s" % (shown(OLDEST), plural, path, shown(first), SUPPORTED, fix))
    if release is None:
        return None
    if release < OLDEST:
        return ("ToolHive operator %s (%s) is not supported: this collection supports ToolHive %s. %s"
                % (shown(release), source, SUPPORTED, fix))
    if strict and newer_than_validated(release, exact):
        return ("ToolHive operator %s (%s) is newer than %s, the newest release this collection validates, and "
                "strict_release (toolhive_strict_release) is on. Fix: install ToolHive %s or older (role toolhive.k8s.operator, "
                "operator_version), or set toolhive_strict_release: false to deploy with a warning"
                % (shown(release), source, shown(NEWEST), shown(NEWEST)))
    return None


def newer_than_validated(release, exact):
    """Whether an exact release is newer than NEWEST (a lower bound from the CRDs says nothing about that)."""
    return bool(release) and exact and release > NEWEST


def newer_warning(release, source):
    return ("ToolHive operator %s (%s) is newer than %s, the newest release whose CRDs this collection validates "
            "every manifest against: deploying anyway (newer releases have only added fields so far). Set "
            "toolhive_strict_release: true to refuse releases newer than the validated ones"
            % (shown(release), source, shown(NEWEST)))


def operator_release(client, crds, operator_deployments=None):
    """{release, exact, source, marker} for the cluster: a Deployment's exact release, else the CRDs' bound.

    crds is {plural: CRD or None}; more are read as the markers need. operator_deployments: as
    operator.deployments() (read here when not given); none found (listing may be forbidden): the CRDs decide."""
    if operator_deployments is None:
        operator_deployments = operator.deployments(client)
    for deployment in operator_deployments:
        release = release_from_deployment(deployment)
        if release:
            meta = deployment["metadata"]
            return dict(release=release, exact=True, marker=None,
                        source="Deployment %s/%s" % (meta.get("namespace"), meta.get("name")))
    for _release, plural, _path in CRD_MARKERS:
        if plural not in crds:
            crds[plural] = client.get_or_none(kinds.path("CustomResourceDefinition", name="%s.%s" % (plural, kinds.GROUP)))
    release, marker = release_from_crds(crds)
    return dict(release=release, exact=False, marker=marker, source="its CRDs")


def check_operator(client, checks, warnings, operator_deployments=None, strict=False):
    """[problem] or [] for preflight; a supported release is added to checks, a newer one also to warnings."""
    found = operator_release(client, {}, operator_deployments)
    refusal = problem(found["release"], found["exact"], found["source"], found["marker"], strict)
    if refusal:
        return [refusal]
    release = shown(found["release"])
    if newer_than_validated(found["release"], found["exact"]):
        warnings.append(newer_warning(found["release"], found["source"]))
        checks.append("ToolHive operator %s (%s), newer than the validated %s" % (release, found["source"], SUPPORTED))
        return []
    checks.append("ToolHive operator %s (%s), supported (%s)" % (release, found["source"], SUPPORTED)
                  if found["exact"] else
                  "ToolHive CRDs of %s or later (%s), supported (%s)" % (release, found["marker"][2], SUPPORTED))
    return []

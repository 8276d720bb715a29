"""What the operator role installed, as the cluster and Helm tell it: the one reader of the operator role's tests
(on kind, and with the charts of the releases that cannot run here on the newest-CRDs bed)."""
import json
import subprocess
from pathlib import Path

import yaml

NAMESPACE = "toolhive-system"
# The name of the MutatingAdmissionPolicy, and of its binding, that give MCPServer proxy pods their drain.
PROXY_DRAIN = yaml.safe_load((Path(__file__).resolve().parents[1] / "roles" / "operator" / "vars" / "main.yml")
                             .read_text())["operator_proxy_drain_name"]


def operator_deployment(kubectl):
    """The operator's Deployment in its namespace, or None."""
    found = kubectl("get", "deployment", "-n", NAMESPACE, "-l", "app.kubernetes.io/name=toolhive-operator",
                    "-o", "json")["items"]
    return found[0] if found else None


def helm_releases(kubeconfig):
    """{release name: chart} of the deployed Helm releases in the operator's namespace, as `helm list` says."""
    listed = subprocess.run(["helm", "list", "--kubeconfig", kubeconfig, "-n", NAMESPACE, "-o", "json"],
                            capture_output=True, text=True, check=True, timeout=60).stdout
    return {r["name"]: r["chart"] for r in json.loads(listed) if r["status"] == "deployed"}


def chart_crd_schemas(charts_dir, release, name):
    """{version: schema} of CRD NAME as RELEASE's CRD chart (in CHARTS_DIR) renders it."""
    chart = charts_dir / f"toolhive-operator-crds-{release.lstrip('v')}.tgz"
    rendered = subprocess.run(["helm", "template", str(chart)], capture_output=True, text=True, check=True,
                              timeout=60).stdout
    document = next(d for d in yaml.safe_load_all(rendered)
                    if d and d["metadata"]["name"] == f"{name}.toolhive.stacklok.dev")
    return {v["name"]: v["schema"] for v in document["spec"]["versions"]}

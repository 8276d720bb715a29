# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the cluster's ToolHive operator Deployment says about itself: found once, read by versions and guards.

The operator's global Redis default (chart values `operator.defaultRedis`, env `TOOLHIVE_DEFAULT_REDIS_ADDR`,
`..._SECRET_NAME`, `..._SECRET_KEY`, all releases this collection supports) gives session storage to every
server whose spec has none; the operator's own SessionStorageWarning condition does not know it (read in
cmd/thv-operator/pkg/controllerutil/defaultredis.go and the controllers, v0.44.0 to v0.66.0).
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.toolhive.k8s.plugins.module_utils import kinds
from ansible_collections.toolhive.k8s.plugins.module_utils.errors import K8sError

SELECTOR = "app.kubernetes.io/name=toolhive-operator"  # the Helm chart's selector label
DEFAULT_REDIS_ENV = {"address": "TOOLHIVE_DEFAULT_REDIS_ADDR", "secret_name": "TOOLHIVE_DEFAULT_REDIS_SECRET_NAME",
                     "secret_key": "TOOLHIVE_DEFAULT_REDIS_SECRET_KEY"}


def deployments(client):
    """The operator Deployments of the cluster; [] when listing Deployments cluster-wide is not allowed (a
    namespaced AWX role) or there is none (an operator run outside the cluster)."""
    try:
        return client.get(kinds.path("Deployment", all_namespaces=True), labelSelector=SELECTOR).get("items", [])
    except K8sError as exc:
        if exc.status not in (401, 403, 404):
            raise
        return []


def _env_value(entry):
    if "value" in entry:
        return entry["value"]
    source = entry.get("valueFrom") or {}
    ref = source.get("configMapKeyRef") or source.get("secretKeyRef")
    if ref:  # set, but not readable here without more rights: say where it comes from
        return "(from %s %s, key %s)" % ("ConfigMap" if "configMapKeyRef" in source else "Secret",
                                         ref.get("name"), ref.get("key"))
    return "(set from the pod)"


def default_redis(operator_deployments):
    """{address, secret_name, secret_key, source} of the operator's global Redis default, or None."""
    for deployment in operator_deployments:
        meta = deployment.get("metadata") or {}
        containers = (((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers")
        for container in containers or []:
            env = {e.get("name"): _env_value(e) for e in container.get("env") or []}
            if env.get(DEFAULT_REDIS_ENV["address"]):
                found = {key: env.get(name) for key, name in DEFAULT_REDIS_ENV.items()}
                if found["secret_name"] and not found["secret_key"]:
                    found["secret_key"] = "redis-password"  # the operator's own default key
                found["source"] = "Deployment %s/%s" % (meta.get("namespace"), meta.get("name"))
                return found
    return None

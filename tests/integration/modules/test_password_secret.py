"""toolhive.k8s.password_secret on the test bed: created once, never printed, never lost, never someone else's."""
import base64
import json

import pytest

from .conftest import wait_for
from .faulty_api import FaultyAPI


@pytest.fixture
def faulty_api(kubeconfig):
    with FaultyAPI(kubeconfig) as proxy:
        yield proxy


def through(proxy):
    return dict(host=proxy.url, api_key="unused-the-front-authenticates", kubeconfig=None)


def secret_value(get, name, key="password"):
    secret = get("secret", name)
    return base64.b64decode(secret["data"][key]).decode() if secret else None


def user_secret(kubectl, namespace, name, value="users-own", labels=None):
    kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "labels": labels or {}},
        "stringData": {"password": value}}))


def reader(apply, name, secret):
    apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}},
                                 "spec": {"containers": [{"name": "c", "image": "x", "env": [
                                     {"name": "P", "valueFrom": {"secretKeyRef": {"name": secret,
                                                                                  "key": "password"}}}]}]}}}})


def test_created_once_and_never_printed(module, get, namespace):
    first = module("password_secret", name="auth", namespace=namespace, keys=["password", "other"])
    assert not first.failed and first["created"] and first["changed"], first.output
    password = secret_value(get, "auth")
    assert len(password) == 32 and password not in first.output
    again = module("password_secret", name="auth", namespace=namespace, keys=["password", "other"])
    assert not again.failed and not again["changed"] and not again["created"]
    assert secret_value(get, "auth") == password and again["keys"] == ["other", "password"]
    meta = get("secret", "auth")["metadata"]
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "toolhive.k8s"
    assert meta["annotations"]["toolhive.k8s/generated"] == "true"


def test_check_mode_creates_nothing(module, get, namespace):
    result = module("password_secret", check=True, name="auth", namespace=namespace)
    assert not result.failed and result["changed"] and result["created"]
    assert get("secret", "auth") is None


def test_a_run_that_loses_the_race_keeps_the_winners_password(module, kubectl, get, namespace, faulty_api):
    """Another run creates the Secret between our read and our create: the API server answers 409, ours is dropped."""
    def other_run_first(method, path):
        if method == "POST" and path.split("?")[0].endswith("/namespaces/%s/secrets" % namespace) \
                and get("secret", "auth") is None:
            user_secret(kubectl, namespace, "auth", value="the-winner",
                        labels={"app.kubernetes.io/managed-by": "toolhive.k8s"})

    faulty_api.hooks.append(other_run_first)
    result = module("password_secret", name="auth", namespace=namespace, **through(faulty_api))
    assert not result.failed, result.output
    assert ("POST", "/api/v1/namespaces/%s/secrets" % namespace, 409) in faulty_api.log  # the race happened
    assert not result["created"] and "created by another run" in result.output
    assert secret_value(get, "auth") == "the-winner"


def test_a_deleted_secret_while_redis_runs_is_an_error_not_a_new_password(module, apply, get, namespace):
    reader(apply, "redis", "auth")
    result = module("password_secret", name="auth", namespace=namespace,
                    used_by=[{"kind": "Deployment", "name": "redis"}])
    assert result.failed and "is missing while Deployment redis" in result["msg"]
    assert "redis_regenerate_password: true" in result["msg"]
    assert get("secret", "auth") is None  # nothing written


def test_regenerate_replaces_the_password_and_restarts_every_reader(module, apply, get, namespace):
    module("password_secret", name="auth", namespace=namespace)
    before = secret_value(get, "auth")
    reader(apply, "redis", "auth")
    reader(apply, "gateway", "auth")
    reader(apply, "unrelated", "other-secret")
    result = module("password_secret", name="auth", namespace=namespace, regenerate=True)
    assert not result.failed and result["regenerated"], result.output
    assert secret_value(get, "auth") != before
    assert sorted(result["restarted"]) == ["Deployment/gateway", "Deployment/redis"]
    for name in ("redis", "gateway"):
        annotations = get("deployment", name)["spec"]["template"]["metadata"].get("annotations") or {}
        assert "kubectl.kubernetes.io/restartedAt" in annotations
    assert not (get("deployment", "unrelated")["spec"]["template"]["metadata"].get("annotations") or {})


def test_a_users_secret_is_never_rewritten_nor_deleted(module, kubectl, get, namespace):
    user_secret(kubectl, namespace, "mine")
    rotate = module("password_secret", name="mine", namespace=namespace, regenerate=True)
    assert rotate.failed and "was not generated by this collection" in rotate["msg"]
    purge = module("password_secret", name="mine", namespace=namespace, state="absent")
    assert not purge.failed and not purge["deleted"] and not purge["changed"] and "kept" in purge["kept"]
    assert secret_value(get, "mine") == "users-own"

    module("password_secret", name="ours", namespace=namespace)
    gone = module("password_secret", name="ours", namespace=namespace, state="absent")
    assert gone["deleted"] and get("secret", "ours") is None


def test_regenerate_restarts_the_operators_workloads_its_own_way(module, vmcp, mcpserver, kubectl, get, namespace):
    """The operator reverts a gateway's pod template, so its pods are replaced; an MCPServer's proxy is restarted
    through the operator's own annotation. Both read the Secret through the env the operator wires."""
    module("password_secret", name="auth", namespace=namespace)
    storage = {"provider": "redis", "address": "r:6379", "keyPrefix": "a:",
               "passwordRef": {"name": "auth", "key": "password"}}
    gateway = vmcp(sessionStorage=storage)
    proxy = mcpserver("fetch", transport="streamable-http", sessionStorage=storage)
    wait_for("the gateway's Redis password env", lambda: "auth" in json.dumps(get("deployment", gateway)["spec"]))
    wait_for("the proxy's Redis password env", lambda: "auth" in json.dumps(get("deployment", proxy)["spec"]))

    def gateway_pods():
        pods = kubectl("get", "pods", "-n", namespace, "-l", "app.kubernetes.io/instance=%s" % gateway,
                       "-o", "json")["items"]
        return sorted(p["metadata"]["uid"] for p in pods if p["metadata"].get("ownerReferences"))

    before = wait_for("the gateway's pods", gateway_pods)
    result = module("password_secret", name="auth", namespace=namespace, regenerate=True)
    assert not result.failed, result.output
    assert sorted(result["restarted"]) == ["Deployment/%s" % proxy, "Deployment/%s" % gateway]
    annotations = get("mcpserver", proxy)["metadata"].get("annotations") or {}
    assert "mcpserver.toolhive.stacklok.dev/restarted-at" in annotations
    wait_for("new gateway pods", lambda: (now := gateway_pods()) and not set(now) & set(before))

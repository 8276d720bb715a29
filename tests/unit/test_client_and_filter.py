"""Pure logic: kubeconfig resolution, error messages, the session_storage filter."""
import base64
import os
import ssl

import pytest

from ansible_collections.toolhive.k8s.plugins.filter.session_storage import session_storage
from ansible_collections.toolhive.k8s.plugins.module_utils import client
from ansible_collections.toolhive.k8s.plugins.module_utils.errors import K8sError


def kubeconfig(user, cluster=None):
    return {
        "current-context": "c",
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
        "clusters": [{"name": "k", "cluster": dict({"server": "https://k:6443"}, **(cluster or {}))}],
        "users": [{"name": "u", "user": user}],
    }


def test_token_and_ca_data_from_a_kubeconfig():
    ca = base64.b64encode(b"-----BEGIN CERTIFICATE-----").decode()
    conn = client.connection_from_kubeconfig(kubeconfig({"token": "t"}, {"certificate-authority-data": ca}))
    assert conn.host == "https://k:6443" and conn.headers == {"Authorization": "Bearer t"}
    assert conn.ca_data == "-----BEGIN CERTIFICATE-----" and conn.verify


def test_client_certificate_data_goes_to_private_files():
    data = base64.b64encode(b"PEM").decode()
    conn = client.connection_from_kubeconfig(kubeconfig({"client-certificate-data": data, "client-key-data": data},
                                                        {"insecure-skip-tls-verify": True}))
    with open(conn.cert_file, "rb") as handle:
        assert handle.read() == b"PEM"
    assert not conn.verify
    with pytest.raises(ssl.SSLError):  # not a real certificate; the files go all the same
        client.K8sClient(conn)
    assert not os.path.exists(conn.cert_file) and not os.path.exists(conn.key_file)


def test_unknown_context_is_named():
    with pytest.raises(K8sError, match="no context named 'other'"):
        client.connection_from_kubeconfig(kubeconfig({"token": "t"}), context="other")


def test_explicit_options_override_the_kubeconfig(monkeypatch):
    monkeypatch.delenv("KUBECONFIG", raising=False)
    params = {"kubeconfig": kubeconfig({"token": "t"}), "host": "https://other:443", "api_key": "k",
              "validate_certs": False, "ca_cert": None, "client_cert": None, "client_key": None, "proxy": None,
              "context": None, "username": None}
    conn = client.resolve_connection(params)
    assert conn.host == "https://other:443" and conn.headers["Authorization"] == "Bearer k" and not conn.verify


def test_host_and_token_alone_need_no_kubeconfig(monkeypatch):
    monkeypatch.setenv("KUBECONFIG", "/nonexistent")
    conn = client.resolve_connection({"host": "https://h", "api_key": "Bearer x"})
    assert conn.headers["Authorization"] == "Bearer x" and conn.source == "host https://h"


@pytest.mark.parametrize("status, hint", [(401, "did not accept the credentials"), (403, "not allowed"),
                                          (404, "not found"), (409, "conflict"), (422, "invalid"),
                                          (503, "try again")])
def test_api_errors_say_what_to_do(status, hint):
    error = K8sError.from_response(status, '{"message": "boom", "reason": "X"}', "PATCH", "/apis/x")
    assert "PATCH /apis/x: HTTP %d: boom" % status in str(error) and hint in str(error)
    assert error.status == status and error.reason == "X"


def test_session_storage_from_redis_facts_with_a_prefix_per_server():
    redis = {"address": "r.ns.svc:6379", "password_secret": "s", "password_key": "password"}
    assert session_storage(None, redis, "mcp", "ns", "fetch") == {
        "provider": "redis", "address": "r.ns.svc:6379", "db": 0, "keyPrefix": "thv:ns:mcp:fetch:",
        "passwordRef": {"name": "s", "key": "password"}}
    assert session_storage(False, redis) is None
    assert session_storage({"provider": "memory"}, redis) == {"provider": "memory"}
    assert session_storage(None, None) is None


def write(path, config):
    import yaml
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_kubeconfig_paths_merge_as_kubectl_merges_them(tmp_path, monkeypatch):
    """The first file to name a cluster, user or context wins, and so does the first current-context; files that
    do not exist are skipped; each file's relative paths are relative to that file."""
    (tmp_path / "b").mkdir()
    first = write(tmp_path / "a.yaml", {"current-context": "work", "contexts": [
        {"name": "work", "context": {"cluster": "k", "user": "u"}}]})
    second = write(tmp_path / "b" / "config", {
        "current-context": "ignored", "contexts": [{"name": "work", "context": {"cluster": "other", "user": "u"}}],
        "clusters": [{"name": "k", "cluster": {"server": "https://k:6443", "certificate-authority": "ca.crt"}}],
        "users": [{"name": "u", "user": {"tokenFile": "token"}}]})
    (tmp_path / "b" / "token").write_text("secret\n")
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([first, str(tmp_path / "missing"), second]))
    conn = client.resolve_connection({})
    assert conn.host == "https://k:6443" and conn.headers == {"Authorization": "Bearer secret"}
    assert conn.ca_file == str(tmp_path / "b" / "ca.crt")
    assert first in conn.source and second in conn.source and "(context work)" in conn.source


def test_no_file_of_kubeconfig_exists(monkeypatch):
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join(["/nonexistent/a", "/nonexistent/b"]))
    with pytest.raises(K8sError, match="no file of KUBECONFIG exists"):
        client.resolve_connection({})


def test_a_kubeconfig_given_as_a_dict_is_not_changed():
    given = kubeconfig({"tokenFile": "relative/token", "token": "t"})
    before = repr(given)
    client.connection_from_kubeconfig(given)
    assert repr(given) == before

"""Pure logic: the TLS material tls_secret generates, the sessionStorage.tls wiring, CRD fields a manifest sets."""
import datetime
import ssl

import pytest
from cryptography import x509

from ansible_collections.toolhive.k8s.plugins.filter.session_storage import session_storage
from ansible_collections.toolhive.k8s.plugins.module_utils import versions
from ansible_collections.toolhive.k8s.plugins.modules import tls_secret

NAMES = ["r", "r.ns", "r.ns.svc", "r.ns.svc.cluster.local", "*.r.ns.svc.cluster.local"]


@pytest.fixture(scope="module")
def material():
    return tls_secret.generate(NAMES, 825)


def test_the_certificate_names_every_client_name_and_chains_to_the_ca(material, tmp_path):
    names, not_after = tls_secret.certificate_facts(material["tls.crt"])
    assert names == NAMES
    assert datetime.timedelta(days=824) < not_after - datetime.datetime.now(datetime.timezone.utc)
    ca = x509.load_pem_x509_certificate(material["ca.crt"].encode())
    server = x509.load_pem_x509_certificate(material["tls.crt"].encode())
    server.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    # What a TLS client checks: Python's ssl loads the pair and trusts the chain through the CA alone.
    (tmp_path / "crt").write_text(material["tls.crt"])
    (tmp_path / "key").write_text(material["tls.key"])
    ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(tmp_path / "crt", tmp_path / "key")
    assert "PRIVATE KEY" in material["tls.key"] and "PRIVATE KEY" not in material["ca.crt"] + material["tls.crt"]


def test_a_wildcard_covers_one_label_only():
    assert tls_secret.uncovered(NAMES, ["r-0.r.ns.svc.cluster.local", "r.ns.svc", "*.r.ns.svc.cluster.local"]) == []
    assert tls_secret.uncovered(NAMES, ["a.b.r.ns.svc.cluster.local", "other.ns.svc"]) == [
        "a.b.r.ns.svc.cluster.local", "other.ns.svc"]


def test_session_storage_points_at_the_ca_when_redis_serves_tls():
    redis = {"mode": "standalone", "address": "r.ns.svc.cluster.local:6379", "password_secret": "auth",
             "password_key": "password"}
    assert "tls" not in session_storage(None, redis, "vmcp", "ns", "gw")
    assert "tls" not in session_storage(None, dict(redis, tls_ca_secret=None), "vmcp", "ns", "gw")
    wired = session_storage(None, dict(redis, tls_ca_secret="r-tls"), "vmcp", "ns", "gw")
    assert wired["tls"] == {"caCertSecretRef": {"name": "r-tls", "key": "ca.crt"}}


def crd(spec_schema):
    return {"spec": {"versions": [{"name": "v1beta1", "schema": {"openAPIV3Schema": {"properties": {
        "spec": spec_schema}}}}]}}


def test_fields_the_crd_does_not_have_are_named():
    schema = {"properties": {
        "sessionStorage": {"properties": {"provider": {}, "address": {}, "passwordRef": {"properties": {
            "name": {}, "key": {}}}}},
        "podTemplateSpec": {"x-kubernetes-preserve-unknown-fields": True},
        "env": {"items": {"properties": {"name": {}, "value": {}}}},
        "labels": {"additionalProperties": {"type": "string"}}}}
    spec = {"sessionStorage": {"provider": "redis", "tls": {"caCertSecretRef": {"name": "x"}},
                               "passwordRef": {"name": "a", "kye": "b"}},
            "podTemplateSpec": {"anything": {"goes": 1}}, "env": [{"name": "A", "valu": "b"}],
            "labels": {"free": "form"}, "proxyReadTimeout": "30s"}
    assert versions.unknown_fields(crd(schema), "v1beta1", spec) == [
        "spec.env[].valu", "spec.proxyReadTimeout", "spec.sessionStorage.passwordRef.kye", "spec.sessionStorage.tls"]
    assert versions.unknown_fields(crd(schema), "v1alpha1", spec) == []  # a version the CRD lacks: checked elsewhere

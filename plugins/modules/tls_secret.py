#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: tls_secret
short_description: A TLS Secret (a private CA and a server certificate) for Redis, generated once, never printed
version_added: 0.3.0
description:
  - Creates a Secret of type C(kubernetes.io/tls) with C(tls.crt), C(tls.key) (a server certificate for
    O(dns_names), ECDSA P-256) and C(ca.crt) (the private CA that signed it, whose key is not kept), only when it
    does not exist - by a create that the API server refuses when another run made it first, so two concurrent
    first runs end with one certificate.
  - An existing Secret is never rewritten. One that lacks a key, or whose certificate does not cover every name of
    O(dns_names), is an error naming the fix (the role's own Secret can be deleted to be generated again). One
    that expires within 30 days gets a warning.
  - With O(state=absent) the Secret is deleted only if the collection created it (its label
    C(app.kubernetes.io/managed-by=toolhive.k8s) and annotation C(toolhive.k8s/generated=true)).
  - The private key never appears in the module's result, its diff or its messages.
author:
  - toolhive.k8s maintainers (@toolhive-k8s)
requirements:
  - cryptography (a dependency of ansible-core)
extends_documentation_fragment:
  - toolhive.k8s.auth
  - toolhive.k8s.attributes.writes
  - toolhive.k8s.generated_secret
options:
  dns_names:
    description:
      - The names clients use to reach the server (its Service's names, C(*.headless.NAMESPACE.svc.cluster.local)
        for a StatefulSet's pods). Required with O(state=present).
    type: list
    elements: str
    default: []
  days:
    description: Validity of the CA and the server certificate, in days.
    type: int
    default: 825
attributes:
  diff_mode:
    support: none
    description: The content is secret; RV(created) and RV(deleted) say what changed.
"""

EXAMPLES = r"""
- name: TLS for a standalone Redis, generated once
  toolhive.k8s.tls_secret:
    name: toolhive-redis-tls
    namespace: toolhive
    dns_names:
      - toolhive-redis
      - toolhive-redis.toolhive.svc
      - toolhive-redis.toolhive.svc.cluster.local

- name: Remove it, only if this collection generated it
  toolhive.k8s.tls_secret:
    name: toolhive-redis-tls
    namespace: toolhive
    state: absent
"""

RETURN = r"""
created:
  description: The Secret was created by this task.
  returned: always
  type: bool
deleted:
  description: The Secret was deleted by this task.
  returned: always
  type: bool
kept:
  description: Why a Secret was kept with O(state=absent) (the collection did not create it), else empty.
  returned: always
  type: str
dns_names:
  description: The names the server certificate covers (read from the Secret, or those it was made for).
  returned: always
  type: list
  elements: str
not_after:
  description: When the server certificate expires (ISO 8601, UTC); empty when there is none.
  returned: always
  type: str
"""

import base64
import datetime
import secrets

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    HAS_CRYPTOGRAPHY = True
except ImportError:
    HAS_CRYPTOGRAPHY = False

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.toolhive.k8s.plugins.module_utils import generated_secrets, kinds
from ansible_collections.toolhive.k8s.plugins.module_utils.client import run_module
from ansible_collections.toolhive.k8s.plugins.module_utils.errors import K8sError

KEYS = ("tls.crt", "tls.key", "ca.crt")


def _pem(obj):
    return obj.public_bytes(serialization.Encoding.PEM).decode()


def generate(dns_names, days, now=None):
    """{tls.crt, tls.key, ca.crt} as PEM: a private CA (its key thrown away) and a server certificate it signed,
    with the extensions strict X.509 verification asks for (Python 3.13's default, OpenSSL's -x509_strict)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    # A name of its own per CA: clients that hold several CAs pick the issuer by name.
    unique = "toolhive.k8s CA %s %s" % (secrets.token_hex(4), dns_names[0])
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, unique[:64])])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    server = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0][:64])]))
              .issuer_name(ca_name).public_key(server_key.public_key())
              .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
              .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                             critical=False)
              .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                           data_encipherment=False, key_agreement=True, key_cert_sign=False,
                                           crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
              .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False)
              .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
              .sign(ca_key, hashes.SHA256()))
    key = server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()).decode()
    return {"tls.crt": _pem(server), "tls.key": key, "ca.crt": _pem(ca)}


def certificate_facts(pem):
    """(DNS names, not_after as an aware datetime) of a PEM certificate."""
    cert = x509.load_pem_x509_certificate(pem.encode() if isinstance(pem, str) else pem)
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    not_after = getattr(cert, "not_valid_after_utc", None) or cert.not_valid_after.replace(
        tzinfo=datetime.timezone.utc)
    return list(names), not_after


def uncovered(names, wanted):
    """The wanted names no certificate name covers (a wildcard covers one label, as TLS clients check)."""
    def covers(pattern, name):
        if pattern == name:
            return True
        if pattern.startswith("*.") and not name.startswith("*."):
            head, _dot, rest = name.partition(".")
            return bool(head) and rest == pattern[2:]
        return False
    return [name for name in wanted if not any(covers(pattern, name) for pattern in names)]


def check_existing(module, existing, result):
    params = module.params
    where = "Secret %s/%s" % (params["namespace"], params["name"])
    data = existing.get("data") or {}
    missing = [key for key in KEYS if key not in data]
    if missing:
        raise K8sError("%s exists but lacks %s. Fix: add them (a server certificate, its key and the CA that signed "
                       "it), or delete the Secret if the collection made it, so that it is generated again"
                       % (where, ", ".join(missing)))
    names, not_after = certificate_facts(base64.b64decode(data["tls.crt"]))
    result.update(dns_names=names, not_after=not_after.isoformat())
    left_out = uncovered(names, params["dns_names"])
    if left_out:
        raise K8sError("%s: its certificate does not cover %s (it covers %s), so clients would refuse it. Fix: "
                       "delete the Secret if the collection made it, so that it is generated again for these names, "
                       "or give it a certificate that covers them" % (where, ", ".join(left_out), ", ".join(names)))
    if not_after - datetime.datetime.now(datetime.timezone.utc) < datetime.timedelta(days=30):
        module.warn("%s: its certificate expires %s. Fix: delete the Secret if the collection made it (it is "
                    "generated again by the next run; Redis and its clients must then restart), or renew it"
                    % (where, not_after.isoformat()))
    return result


def present(module, client, result):
    params = module.params
    if not params["dns_names"]:
        raise K8sError("dns_names is empty: the certificate must name the server. Fix: list the names clients use")
    existing = client.get_or_none(kinds.path("Secret", params["namespace"], params["name"]))
    if existing is not None:
        return check_existing(module, existing, result)
    material = generate(params["dns_names"], params["days"])
    body = generated_secrets.new_secret(params["name"], params["namespace"], params["labels"], material,
                                        secret_type="kubernetes.io/tls")
    if generated_secrets.create_once(client, body, module.check_mode):
        names, not_after = certificate_facts(material["tls.crt"])
        result.update(changed=True, created=True, dns_names=names, not_after=not_after.isoformat())
        return result
    module.warn("Secret %s/%s was created by another run at the same moment; its certificate is kept"
                % (params["namespace"], params["name"]))
    return check_existing(module, client.get(kinds.path("Secret", params["namespace"], params["name"])), result)


def run(module, client):
    if not HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"))
    result = dict(changed=False, created=False, deleted=False, kept="", dns_names=[], not_after="")
    if module.params["state"] == "absent":
        result = generated_secrets.delete_if_ours(client, module.params["namespace"], module.params["name"], result,
                                                  module.check_mode)[0]
        if result["kept"]:
            module.warn(result["kept"])
        return result
    return present(module, client, result)


def main():
    argument_spec = dict(
        name=dict(type="str", required=True),
        namespace=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        dns_names=dict(type="list", elements="str", default=[]),
        days=dict(type="int", default=825),
        labels=dict(type="dict", default={}),
    )
    run_module(argument_spec, run)


if __name__ == "__main__":
    main()

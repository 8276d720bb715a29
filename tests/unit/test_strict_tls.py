"""TLS verified as strictly as Python 3.13 does (VERIFY_X509_STRICT), against a local HTTPS endpoint (no cluster:
this is about the handshake): the CA tls_secret generates for Redis passes it; a CA without keyUsage fails it, and
the collection's client then names the cause and the fix."""
import datetime
import http.server
import json
import socket
import ssl
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.toolhive.k8s.plugins.module_utils.client import Connection, K8sClient
from ansible_collections.toolhive.k8s.plugins.module_utils.errors import K8sError
from ansible_collections.toolhive.k8s.plugins.modules import tls_secret

PYTHON_VERIFIES_STRICTLY = bool(ssl.create_default_context().verify_flags & ssl.VERIFY_X509_STRICT)


def pem(obj):
    return obj.public_bytes(serialization.Encoding.PEM).decode()


def lax_material():
    """A CA as `openssl req -x509` made one before (no keyUsage), and a localhost certificate it signed."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lax CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + datetime.timedelta(1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return {"tls.crt": pem(cert), "tls.key": private, "ca.crt": pem(ca)}


class Version(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        body = json.dumps({"major": "1", "minor": "35"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def serve(tmp_path):
    """serve(material) -> the https URL of a local endpoint presenting material's certificate."""
    servers = []

    def start(material):
        (tmp_path / "crt").write_text(material["tls.crt"])
        (tmp_path / "key").write_text(material["tls.key"])
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tmp_path / "crt", tmp_path / "key")
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Version)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return "https://localhost:%d" % server.server_address[1]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def strict_handshake(url, ca_pem):
    """A handshake as Python 3.13's default context makes it, on any Python: VERIFY_X509_STRICT on."""
    context = ssl.create_default_context(cadata=ca_pem)
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    host, port = url[len("https://"):].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        with context.wrap_socket(sock, server_hostname=host) as tls:
            return tls.version()


def test_the_generated_redis_ca_passes_strict_verification(serve):
    material = tls_secret.generate(["localhost"], 30)
    assert strict_handshake(serve(material), material["ca.crt"]).startswith("TLS")


def test_a_ca_without_key_usage_fails_strict_verification(serve):
    """The control: the endpoint and the check are the same; only the CA's extensions differ."""
    material = lax_material()
    with pytest.raises(ssl.SSLCertVerificationError, match="CA cert does not include key usage extension"):
        strict_handshake(serve(material), material["ca.crt"])


def test_the_client_names_the_cause_and_the_fix_when_python_refuses_the_cluster_ca(serve):
    material = lax_material()
    client = K8sClient(Connection(serve(material), ca_data=material["ca.crt"], source="kubeconfig test"))
    if not PYTHON_VERIFIES_STRICTLY:  # Python 3.12 and older accept this CA: the collection works there as before
        assert client.get("/version")["major"] == "1"
        return
    with pytest.raises(K8sError) as refused:
        client.get("/version")
    message = str(refused.value)
    assert "CA cert does not include key usage extension" in message  # the cause, as OpenSSL says it
    assert "lack extensions strict X.509 verification requires" in message
    assert "Fix: reissue the cluster's CA with basicConstraints critical CA:TRUE, keyUsage keyCertSign" in message

"""Redis over TLS (redis_tls: the role's generated CA and certificate) on the test bed's real node.

What ToolHive's servers would do with sessionStorage.tls (v0.55.1 and later; no release that has it builds here,
so no server is in this test): reach Redis by its Service name, verify its certificate against the CA in the
Secret, log in with the password. Shown with two real clients: `redis-cli --tls` in a pod of our own (the Secret
mounted as a server's would be, the Service's DNS name), and Python's ssl from this host to the pod's address,
which checks the name in the certificate as Go's TLS client does. Plaintext, a wrong name and another CA are
refused.
"""
import base64
import json
import re
import socket
import ssl
import subprocess
import sys

import pytest

from ..roles.test_deploy import recap
from ..host import REPO
from .conftest import wait_until

sys.path.insert(0, str(REPO / ".collections"))
from ansible_collections.toolhive.k8s.plugins.modules.tls_secret import generate  # noqa: E402

pytestmark = pytest.mark.usefixtures("real_nodes")

PLAYBOOK = "tests/integration/roles/playbooks/redis.yml"
CLIENT = "tls-client"


class Redis:
    def __init__(self, kubectl, namespace):
        self.kubectl, self.namespace = kubectl, namespace
        self.fqdn = f"toolhive-redis.{namespace}.svc.cluster.local"

    def secret(self, name, key):
        data = self.kubectl("get", "secret", name, "-n", self.namespace, "-o", "json")["data"]
        return base64.b64decode(data[key]).decode()

    def pod(self):
        pods = self.kubectl("get", "pods", "-n", self.namespace, "-l", "app.kubernetes.io/instance=toolhive-redis",
                            "-o", "json")["items"]
        return next(p["metadata"]["name"] for p in pods if p["status"].get("podIP"))

    def cli(self, *args):
        proc = self.kubectl("exec", "-n", self.namespace, CLIENT, "--", "redis-cli", "-h", self.fqdn, *args,
                            check=False)
        return (proc.stdout + proc.stderr).strip()


@pytest.fixture(scope="module")
def redis(run_playbook, kubectl, fresh_namespace, images):
    variables = {"redis_namespace": fresh_namespace, "redis_tls": True, "redis_image": images["redis"]}
    result = run_playbook(PLAYBOOK, extra_vars=variables)
    assert recap(result.output)["failed"] == 0, result.output[-6000:]
    deployed = Redis(kubectl, fresh_namespace)
    auth = {"secretKeyRef": {"name": "toolhive-redis-auth", "key": "password"}}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": CLIENT, "namespace": fresh_namespace},
           "spec": {"terminationGracePeriodSeconds": 0, "containers": [{
               "name": "client", "image": images["redis"], "command": ["sleep", "86400"],
               "env": [{"name": "REDISCLI_AUTH", "valueFrom": auth}],
               "volumeMounts": [{"name": "ca", "mountPath": "/ca", "readOnly": True}]}],
               "volumes": [{"name": "ca", "secret": {"secretName": "toolhive-redis-tls",
                                                     "items": [{"key": "ca.crt", "path": "ca.crt"}]}}]}}
    kubectl("apply", "-f", "-", stdin=json.dumps(pod))
    kubectl("wait", "--for=condition=Ready", f"pod/{CLIENT}", "-n", fresh_namespace, "--timeout=120s")
    return deployed


@pytest.fixture(scope="module")
def forwarded(redis, kubeconfig):
    """(127.0.0.1, port) on this host that `kubectl port-forward` connects to the Redis pod's port 6379."""
    forward = subprocess.Popen(["kubectl", "--kubeconfig", kubeconfig, "port-forward", "-n", redis.namespace,
                                f"pod/{redis.pod()}", ":6379"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    line = forward.stdout.readline()  # "Forwarding from 127.0.0.1:PORT -> 6379"
    match = re.search(r"127\.0\.0\.1:(\d+)", line)
    assert match, line + forward.stderr.read() if forward.poll() is not None else line
    yield "127.0.0.1", int(match.group(1))
    forward.terminate()
    forward.wait(timeout=10)


def tls_exchange(address, ca_pem, server_hostname, password, timeout=10):
    """AUTH and PING over TLS from this host to ADDRESS (host, port); Redis's answers."""
    context = ssl.create_default_context(cadata=ca_pem)
    with socket.create_connection(address, timeout=timeout) as raw:
        with context.wrap_socket(raw, server_hostname=server_hostname) as tls:
            tls.sendall(f"AUTH {password}\r\nPING\r\n".encode())
            answer = b""
            while answer.count(b"\r\n") < 2:
                chunk = tls.recv(1024)
                if not chunk:
                    break
                answer += chunk
            return answer.decode()


def test_a_pod_reaches_redis_by_its_service_name_over_tls_only(redis):
    # The Service's DNS name may lag the pod's Ready by a moment.
    assert wait_until("PONG over TLS through the Service", lambda: redis.cli(
        "--tls", "--cacert", "/ca/ca.crt", "--no-auth-warning", "ping") == "PONG", timeout=60)
    plaintext = redis.cli("--no-auth-warning", "ping")
    assert "PONG" not in plaintext, plaintext  # port 0: Redis refuses plaintext clients
    assert plaintext, "redis-cli said nothing"


def test_the_certificate_names_the_service_and_chains_to_the_secrets_ca(redis, forwarded):
    ca, password = redis.secret("toolhive-redis-tls", "ca.crt"), redis.secret("toolhive-redis-auth", "password")
    address = forwarded
    assert tls_exchange(address, ca, redis.fqdn, password) == "+OK\r\n+PONG\r\n"
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        tls_exchange(address, ca, "redis.example.com", password)


def test_another_ca_is_refused(redis, forwarded):
    other_ca = generate([redis.fqdn], 1)["ca.crt"]
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        tls_exchange(forwarded, other_ca, redis.fqdn, "unused")


def test_plaintext_from_the_host_gets_no_answer(redis, forwarded):
    with socket.create_connection(forwarded, timeout=10) as raw:
        raw.sendall(b"PING\r\n")
        try:
            answer = raw.recv(1024)
        except (ConnectionResetError, socket.timeout):
            answer = b""
    assert b"PONG" not in answer, answer

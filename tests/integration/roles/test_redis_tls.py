"""Redis over TLS in standalone mode (redis_tls), on the test bed's API server.

The Secret is generated once (check mode writes nothing, a second run keeps it, its key is never printed, a purge
removes it); Redis is configured to serve TLS only. The servers' sessionStorage.tls exists from ToolHive v0.55.1:
on this bed's CRDs (v0.44.0) the deploy is refused before any write, naming the field. Redis really serving TLS to
a client is shown on running pods (realpods/test_redis_tls.py); the newest CRDs accepting the wiring in
tests/newest_crds.
"""
import base64

from cryptography import x509

from .test_deploy import Writes, example, recap

PLAYBOOK = "tests/integration/roles/playbooks/redis.yml"


def tls_vars(namespace, **overrides):
    return dict({"redis_namespace": namespace, "redis_tls": True, "redis_wait": False}, **overrides)


def test_the_tls_secret_is_generated_once_and_redis_serves_tls_only(run_playbook, kubectl, namespace):
    checked = run_playbook(PLAYBOOK, "--check", extra_vars=tls_vars(namespace))
    assert recap(checked.output)["failed"] == 0, checked.output[-4000:]
    assert kubectl("get", "secret", "toolhive-redis-tls", "-n", namespace, check=False).returncode != 0

    first = run_playbook(PLAYBOOK, extra_vars=tls_vars(namespace))
    assert recap(first.output)["failed"] == 0, first.output[-4000:]
    secret = kubectl("get", "secret", "toolhive-redis-tls", "-n", namespace, "-o", "json")
    assert secret["type"] == "kubernetes.io/tls" and sorted(secret["data"]) == ["ca.crt", "tls.crt", "tls.key"]
    assert secret["metadata"]["annotations"]["toolhive.k8s/generated"] == "true"
    key = base64.b64decode(secret["data"]["tls.key"]).decode()
    assert key.splitlines()[1] not in first.output  # the private key is never printed
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName)
    assert f"toolhive-redis.{namespace}.svc.cluster.local" in names and "toolhive-redis" in names

    conf = kubectl("get", "configmap", "toolhive-redis-config", "-n", namespace, "-o", "json")["data"]["redis.conf"]
    assert conf.splitlines()[:2] == ["port 0", "tls-port 6379"]  # plaintext refused, TLS on the usual port
    pod = kubectl("get", "deployment", "toolhive-redis", "-n", namespace, "-o", "json")["spec"]["template"]["spec"]
    assert {"name": "tls", "secret": {"secretName": "toolhive-redis-tls", "defaultMode": 420}} in pod["volumes"]
    assert "--tls --cacert /tls/ca.crt ping" in pod["containers"][0]["readinessProbe"]["exec"]["command"][2]

    again = run_playbook(PLAYBOOK, extra_vars=tls_vars(namespace))
    assert recap(again.output)["failed"] == 0 and recap(again.output)["changed"] == 0, again.output[-4000:]
    kept = kubectl("get", "secret", "toolhive-redis-tls", "-n", namespace, "-o", "json")
    assert kept["data"] == secret["data"]  # the same certificate: never rewritten

    purged = run_playbook(PLAYBOOK, extra_vars=tls_vars(namespace, redis_state="absent", redis_purge=True))
    assert recap(purged.output)["failed"] == 0, purged.output[-4000:]
    assert kubectl("get", "secret", "toolhive-redis-tls", "-n", namespace, check=False).returncode != 0


def test_a_user_secret_is_used_as_is_and_kept_on_purge(run_playbook, kubectl, namespace):
    kubectl("create", "secret", "generic", "mine", "-n", namespace, "--from-literal=tls.crt=c",
            "--from-literal=tls.key=k", "--from-literal=ca.crt=ca")
    done = run_playbook(PLAYBOOK, extra_vars=tls_vars(namespace, redis_tls=False, redis_tls_secret="mine"))
    assert recap(done.output)["failed"] == 0, done.output[-4000:]
    pod = kubectl("get", "deployment", "toolhive-redis", "-n", namespace, "-o", "json")["spec"]["template"]["spec"]
    assert any(v.get("secret", {}).get("secretName") == "mine" for v in pod["volumes"])
    assert kubectl("get", "secret", "toolhive-redis-tls", "-n", namespace, check=False).returncode != 0
    purged = run_playbook(PLAYBOOK, extra_vars=tls_vars(namespace, redis_tls=False, redis_tls_secret="mine",
                                                        redis_state="absent", redis_purge=True))
    assert recap(purged.output)["failed"] == 0, purged.output[-4000:]
    assert kubectl("get", "secret", "mine", "-n", namespace, "-o", "json")["data"]["tls.key"]


def test_servers_over_tls_are_refused_before_any_write_on_crds_without_the_field(run_playbook, kubectl, namespace):
    writes = Writes(namespace, kubectl)  # the playbook's own writes (a new namespace's controllers write too)
    refused = run_playbook("playbooks/deploy.yml", extra_vars=example(namespace, redis_tls=True))
    assert recap(refused.output)["failed"] == 1, refused.output[-4000:]
    assert "spec.sessionStorage.tls is not a field of this cluster's ToolHive CRDs" in refused.output
    assert "install a ToolHive release that has it" in refused.output
    assert writes.count() == []

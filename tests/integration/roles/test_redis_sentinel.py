"""The redis role in sentinel mode, wired into an MCPExternalAuthConfig, on the test bed."""
import base64

from .test_deploy import recap

PLAYBOOK = "tests/integration/roles/playbooks/redis.yml"


def sentinel_vars(namespace, **overrides):
    return dict({
        "redis_namespace": namespace, "redis_name": "auth-redis", "redis_mode": "sentinel",
        "redis_sentinel_replicas": 1, "redis_disable_default_user": True, "redis_tls_secret": "redis-tls",
        "redis_auth_config": {"name": "auth", "embedded_auth_server": {
            "issuer": "https://auth.example.com",
            "upstreamProviders": [{"name": "corp", "type": "oidc",
                                   "oidcConfig": {"issuerUrl": "https://idp.example.com", "clientId": "toolhive"}}]}},
    }, **overrides)


def test_sentinel_topology_acl_tls_and_auth_config(run_playbook, kubectl, namespace):
    kubectl("create", "secret", "generic", "redis-tls", "-n", namespace, "--from-literal=tls.crt=c",
            "--from-literal=tls.key=k", "--from-literal=ca.crt=ca")
    first = run_playbook(PLAYBOOK, extra_vars=sentinel_vars(namespace))
    assert recap(first.output)["failed"] == 0, first.output[-4000:]

    redis = kubectl("get", "statefulset", "auth-redis", "-n", namespace, "-o", "json")
    sentinels = kubectl("get", "statefulset", "auth-redis-sentinel", "-n", namespace, "-o", "json")
    assert redis["status"]["readyReplicas"] == 2 and sentinels["status"]["readyReplicas"] == 3

    config = kubectl("get", "configmap", "auth-redis-config", "-n", namespace, "-o", "json")["data"]
    sentinel_conf = config["start-sentinel.sh"]
    assert "sentinel resolve-hostnames yes" in sentinel_conf and "sentinel announce-hostnames yes" in sentinel_conf
    # The scripts are constant; the values are the containers' environment (and the master is asked at start).
    assert "sentinel monitor $MASTER_NAME $master $REDIS_PORT $QUORUM" in sentinel_conf
    assert '"tls-port 26379"' in sentinel_conf and "tls-port 6379" in config["redis.conf"]
    assert 'echo "user default off"' in config["start-redis.sh"]
    assert "~thv:auth:*" in config["start-redis.sh"]
    assert "masterauth $SENTINEL_PASSWORD" in config["start-redis.sh"]
    assert "SENTINEL get-master-addr-by-name" in config["lib.sh"]
    for workload in (redis, sentinels):
        container = workload["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["REDIS_PODS"].split() == [f"auth-redis-{i}.auth-redis-headless.{namespace}.svc.cluster.local"
                                             for i in range(2)]
        assert env["SENTINEL_PODS"].split() == [
            f"auth-redis-sentinel-{i}.auth-redis-sentinel-headless.{namespace}.svc.cluster.local" for i in range(3)]
        assert (env["MASTER_NAME"], env["REDIS_PORT"], env["QUORUM"]) == ("mymaster", "6379", "2")
        assert (env["CLI_TLS"], env["DISABLE_DEFAULT_USER"], env["DISCOVERY_WITHOUT_AUTH"]) == (
            "--tls --cacert /tls/ca.crt", "true", "true")
    # Only the answer PONG means ready (redis-cli exits 0 on WRONGPASS); a Redis pod also needs a failover to be
    # possible as every Sentinel sees it (the probe on running pods: realpods/test_sentinel*.py).
    assert sentinels["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["exec"]["command"][2].startswith(
        'test "$(redis-cli')
    assert redis["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["exec"]["command"] == \
        ["sh", "/etc/redis/ready-redis.sh"]
    assert '[ "$(cli -p "$REDIS_PORT" PING)" = PONG ]' in config["ready-redis.sh"]
    assert "SENTINEL CKQUORUM" in config["ready-redis.sh"]
    # The pods read their configuration at start: their template carries its hash, so a change rolls them.
    for workload in (redis, sentinels):
        assert len(workload["spec"]["template"]["metadata"]["annotations"]["toolhive.k8s/redis-config-sha256"]) == 64

    secret = kubectl("get", "secret", "auth-redis-auth", "-n", namespace, "-o", "json")["data"]
    assert base64.b64decode(secret["acl-username"]).decode() == "thv-auth"
    for key in ("password", "acl-password", "sentinel-password"):
        assert base64.b64decode(secret[key]).decode() not in first.output

    auth = kubectl("get", "mcpexternalauthconfig", "auth", "-n", namespace, "-o", "json")
    storage = auth["spec"]["embeddedAuthServer"]["storage"]["redis"]
    assert storage["sentinelConfig"]["sentinelService"] == {"name": "auth-redis-sentinel", "namespace": namespace,
                                                            "port": 26379}
    assert storage["aclUserConfig"]["usernameSecretRef"] == {"name": "auth-redis-auth", "key": "acl-username"}
    assert storage["tls"]["caCertSecretRef"] == {"name": "redis-tls", "key": "ca.crt"}
    assert storage["sentinelTls"]["caCertSecretRef"] == {"name": "redis-tls", "key": "ca.crt"}

    again = run_playbook(PLAYBOOK, extra_vars=sentinel_vars(namespace))
    assert recap(again.output)["changed"] == 0, again.output[-4000:]
    assert kubectl("get", "secret", "auth-redis-auth", "-n", namespace, "-o", "json")["data"] == secret


def test_sentinel_addresses_instead_of_the_service_and_teardown(run_playbook, kubectl, namespace):
    variables = sentinel_vars(namespace, redis_tls_secret="")
    variables["redis_auth_config"]["sentinel_addrs"] = True
    assert recap(run_playbook(PLAYBOOK, extra_vars=variables).output)["failed"] == 0
    storage = kubectl("get", "mcpexternalauthconfig", "auth", "-n", namespace, "-o", "json")[
        "spec"]["embeddedAuthServer"]["storage"]["redis"]
    assert storage["sentinelConfig"]["sentinelAddrs"] == [
        f"auth-redis-sentinel-{i}.auth-redis-sentinel-headless.{namespace}.svc.cluster.local:26379" for i in range(3)]
    assert "tls" not in storage

    down = run_playbook(PLAYBOOK, extra_vars=dict(variables, redis_state="absent"))
    assert recap(down.output)["failed"] == 0, down.output[-3000:]
    for kind, name in (("statefulset", "auth-redis-sentinel"), ("mcpexternalauthconfig", "auth"),
                       ("service", "auth-redis-sentinel")):
        assert kubectl("get", kind, name, "-n", namespace, check=False).returncode != 0
    assert kubectl("get", "secret", "auth-redis-auth", "-n", namespace, check=False).returncode == 0


def test_role_twice_in_one_run_keeps_the_password_and_removes_the_network_policy(run_playbook, kubectl, namespace):
    """The role caches its reads (deploy.yml reads before it writes); a second run of it in the same play must read
    again: a stale read would create the Secret anew (a new password) and miss the NetworkPolicy to remove."""
    result = run_playbook("tests/integration/roles/playbooks/redis_twice.yml", extra_vars={"redis_namespace": namespace})
    assert recap(result.output)["failed"] == 0, result.output[-4000:]
    policies = kubectl("get", "networkpolicy", "-n", namespace, "-o", "json")["items"]
    assert policies == [], policies
    assert kubectl("get", "secret", "toolhive-redis-auth", "-n", namespace, "-o", "json")["data"]["password"]

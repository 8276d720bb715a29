from ansible_collections.toolhive.k8s.plugins.module_utils import restarts


def test_a_pod_reads_a_secret_through_env_envfrom_or_a_volume_of_any_container():
    spec = {"initContainers": [{"env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "init", "key": "k"}}}]}],
            "containers": [{"env": [{"name": "B", "value": "plain"},
                                    {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}],
                            "envFrom": [{"secretRef": {"name": "bulk"}}, {"configMapRef": {"name": "cm2"}}]}],
            "volumes": [{"secret": {"secretName": "mounted"}}, {"emptyDir": {}}]}
    assert restarts.secret_refs(spec) == {"init", "bulk", "mounted"}
    assert restarts.secret_refs({}) == set()

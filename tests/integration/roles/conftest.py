"""Fixtures shared by the role and playbook tests."""
import pytest


@pytest.fixture
def fresh_namespace(kubectl, namespace):
    """The roles create the namespace themselves: hand them a name that does not exist yet."""
    kubectl("delete", "namespace", namespace, "--wait=false")
    name = namespace + "-d"
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)

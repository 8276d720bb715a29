"""Each role's README (Galaxy and Automation Hub refuse a collection with a role without one) names every option of
every entry point of its argument spec, so it cannot fall behind the spec."""
from pathlib import Path

import pytest
import yaml

ROLES = sorted((Path(__file__).resolve().parents[2] / "roles").iterdir())


@pytest.mark.parametrize("role", ROLES, ids=lambda role: role.name)
def test_the_readme_names_every_option(role):
    readme = (role / "README.md").read_text()
    assert readme.startswith(f"# toolhive.k8s.{role.name}\n")
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    options = [name for spec in specs.values() for name in (spec.get("options") or {})]
    assert options
    assert [name for name in options if f"`{name}`" not in readme] == []

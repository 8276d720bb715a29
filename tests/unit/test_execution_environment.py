"""The execution environment's build context, made by `ansible-builder create`
(no container engine needed): ansible-core, kubernetes.core, this collection
from its tarball, and the Python requirements ansible-builder will find in
the collections it installs."""
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
VERSION = yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]
TARBALL = f"toolhive-k8s-{VERSION}.tar.gz"


def run(*cmd, cwd=REPO):
    return subprocess.run([str(BIN / cmd[0]), *cmd[1:]], cwd=cwd, capture_output=True, text=True, check=True,
                          timeout=300).stdout


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """The collection tarball and the build context, made as `make ee` makes them, in a temporary folder."""
    root = tmp_path_factory.mktemp("ee")
    shutil.copy(REPO / "execution-environment.yml", root)
    run("ansible-galaxy", "collection", "build", "--output-path", str(root / ".build" / "collection"), str(REPO))
    run("ansible-builder", "create", "--file", "execution-environment.yml", "--context", "context",
        "--output-filename", "Containerfile", cwd=root)
    return root


def test_context_installs_ansible_core_kubernetes_core_and_this_collection(build):
    context = build / "context"
    containerfile = (context / "Containerfile").read_text()
    assert 'ANSIBLE_INSTALL_REFS="ansible-core==2.21.5 ansible-runner==' in containerfile
    assert "ansible-galaxy collection install" in containerfile
    assert "introspect.py introspect" in containerfile
    galaxy = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    sources = {c["name"]: c for c in galaxy["collections"]}
    assert "kubernetes.core" in sources
    assert sources[f"/build/collections/{TARBALL}"]["type"] == "file"
    assert (context / "_build" / "collections" / TARBALL).is_file()


def test_tarball_holds_the_collection_and_no_local_state(build):
    with tarfile.open(build / ".build" / "collection" / TARBALL) as tarball:
        names = tarball.getnames()
    for wanted in ("plugins/modules/scale.py", "plugins/action/validate_variables.py", "roles/redis/tasks/main.yml",
                   "playbooks/scale.yml", "playbooks/specs/scale.yml", "meta/execution-environment.yml",
                   "awx/rbac.yaml"):
        assert wanted in names
    assert not [n for n in names if n.split("/")[0] in {".venv", ".cluster", ".kind", ".collections", ".build", "collections"}]


def test_builder_finds_the_collections_python_requirements(build, tmp_path):
    """What ansible-builder's introspection will install in the image, read from the installed collections."""
    collections = tmp_path / "collections"
    run("ansible-galaxy", "collection", "install", "--no-deps", "--force", "-p", str(collections),
        str(build / ".build" / "collection" / TARBALL))
    # kubernetes.core where this Ansible finds it: its `ansible` package, or a collections path (tests/matrix).
    roots = [Path(sys.prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages",
             *map(Path, filter(None, os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep)))]
    kubernetes_core = next(root / "ansible_collections" / "kubernetes" for root in roots
                           if (root / "ansible_collections" / "kubernetes" / "core").is_dir())
    (collections / "ansible_collections" / "kubernetes").symlink_to(kubernetes_core)
    found = yaml.safe_load(run("ansible-builder", "introspect", "--sanitize", str(collections)).split("---", 1)[1])
    python = "\n".join(found["python"])
    assert "urllib3>=1.26  # from collection toolhive.k8s" in python
    assert "kubernetes>=24.2.0  # from collection toolhive.k8s" in python
    assert "# from collection kubernetes.core" in python

"""The supported ansible-core lines (tests/matrix/lines.txt, then .venv's own): each older line's sanity, unit tests
and a deploy + scale + status smoke on the KWOK bed, each in its own virtualenv; the newest line's smoke.

ANSIBLE_CORE_RELEASE=2.16.19 runs one release (tests/run_suite.py makes a summary row of each); without it, all.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MAIN_VENV = Path(sys.prefix)
sys.path.insert(0, str(REPO / "tests"))
# One reader of tests/matrix/lines.txt: the suite's runner, which makes a row of each release.
from run_suite import ansible_core_release as main_release, older_ansible_core_releases  # noqa: E402


def releases():
    asked = os.environ.get("ANSIBLE_CORE_RELEASE")
    return [asked] if asked else [*older_ansible_core_releases(), main_release()]


def pytest_generate_tests(metafunc):
    if "release" in metafunc.fixturenames:
        metafunc.parametrize("release", releases(), scope="module")


def pytest_collection_modifyitems(config, items):
    """The newest line's sanity and unit tests are make test's own stages: not collected here (not skipped)."""
    stages = [item for item in items if item.originalname in ("test_sanity", "test_unit")
              and item.callspec.params.get("release") == main_release()]
    if stages:
        config.hook.pytest_deselected(items=stages)
        items[:] = [item for item in items if item not in stages]


class Line:
    """One ansible-core release's virtualenv, and commands run with it first on PATH."""

    def __init__(self, release):
        self.release = release
        if release == main_release():
            self.venv = MAIN_VENV
        else:
            self.venv = Path(subprocess.run([str(REPO / "tests" / "matrix" / "venv.sh"), release], cwd=REPO,
                                            capture_output=True, text=True, check=True, timeout=900).stdout.strip())
        site_packages = next(MAIN_VENV.glob("lib/python*/site-packages"))
        self.env = dict(os.environ, PATH=f"{self.venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
                        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
                        # The collection, then kubernetes.core from .venv's `ansible` package (6.x supports 2.16+).
                        ANSIBLE_COLLECTIONS_PATH=os.pathsep.join([str(REPO / ".collections"), str(site_packages)]))
        self.env.pop("VIRTUAL_ENV", None)
        self.env.pop("PYTHONPATH", None)

    def run(self, *cmd, timeout=900):
        proc = subprocess.run(list(cmd), cwd=REPO, env=self.env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
                              check=False)
        proc.output = proc.stdout + proc.stderr
        return proc


@pytest.fixture(scope="module")
def line(release):
    return Line(release)

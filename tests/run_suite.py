"""The whole test suite, as `make test` runs it, ending in one summary line.

Each stage runs whatever happens to the others. pytest stages count their test
cases (from JUnit XML); a check that is not pytest (sanity, ansible-lint, a
Molecule scenario, the benchmark smoke) counts as one test; a step that is not
a test (bringing a test bed up) is a row but no test, and fails the line when it
fails. Whatever does not run is a row saying why, counted as skipped. The test
bed is brought up if no cluster answers, and brought down again at the end if
this run started it (TESTBED_KEEP=1 keeps it).
"""
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import versions_env  # tests/versions_env.py: this script runs from tests/

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / ".build" / "results"
KUBECONFIG = REPO / ".cluster" / "kubeconfig"
KIND_KUBECONFIG = REPO / ".kind" / "kubeconfig"
# On the kind bed (testbed/kind.sh), in this order: the bed itself (nothing leaves the machine), the operator role
# (install, upgrade, removal), the oldest supported ToolHive release's leg (the KWOK suite runs on it too: deploy,
# scaling, guards; here sessions across replicas on running pods, and the backend's readiness probe that reaches its
# pods through the runner), every running-pods test on the test bed's release, and last the bed's teardown.
KIND_BED_TESTS = ["tests/integration/kind/test_kind_bed.py"]
OPERATOR_ROLE_TESTS = ["tests/integration/kind/test_operator_role.py"]
OLDEST_RELEASE_TESTS = ["tests/integration/realpods/test_sessions.py",
                        "tests/integration/realpods/test_remote_proxy_sessions.py",
                        "tests/integration/realpods/test_backend_readiness.py"]
RUNNING_POD_TESTS = ["tests/integration/realpods"]
KIND_TEARDOWN_TEST = "tests/integration/kind/test_kind_teardown.py"
# Not for the KWOK bed: they need pods that run.
KIND_ONLY = ["tests/integration/realpods", "tests/integration/kind"]


def run(cmd, **kwargs):
    print(f"\n=== {' '.join(cmd)}", flush=True)
    return subprocess.run(cmd, cwd=REPO, check=False, **kwargs).returncode


def pytest_counts(junit):
    try:
        root = ET.parse(junit).getroot()
    except (OSError, ET.ParseError):
        return 0, 1, 0
    suites = [root] if root.tag == "testsuite" else list(root)
    total = sum(int(s.get("tests", 0)) for s in suites)
    failed = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    skipped = sum(int(s.get("skipped", 0)) for s in suites)
    return total - failed - skipped, failed, skipped


class Suite:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.skipped = 0  # every stage or leg that did not run, with its reason (skip)
        self.lines = []

    def stage(self, name, cmd, env=None):
        """A check that is not pytest: one test."""
        started = time.monotonic()
        ok = run(cmd, env=env) == 0
        self.passed += ok
        self.failed += not ok
        self.lines.append(f"{'PASS' if ok else 'FAIL'} {name} ({time.monotonic() - started:.0f}s)")
        return ok

    def step(self, name, cmd, env=None):
        """A step the tests need that is no test itself (a test bed up): a row, and a failure when it fails."""
        started = time.monotonic()
        ok = run(cmd, env=env) == 0
        self.failed += not ok
        self.lines.append(f"{'OK  ' if ok else 'FAIL'} {name}, a step, not a test ({time.monotonic() - started:.0f}s)")
        return ok

    def skip(self, name, reason):
        """A stage or leg that does not run: a row saying why, counted as skipped."""
        self.skipped += 1
        self.lines.append(f"SKIP {name}: {reason}")

    def pytest(self, name, paths, env=None, extra=()):
        started = time.monotonic()
        rc = run(pytest_command(name, paths, extra), env=env)
        self.count(name, rc, time.monotonic() - started)

    def pytests_two_at_a_time(self, runs):
        """RUNS, each (name, paths, env), as pytest stages two at a time (one per core); each one's output goes to
        its log (RESULTS/NAME.log), printed whole when it ends, and the rows keep RUNS' order."""
        def logged(name, paths, env):
            log = RESULTS / f"{name}.log"
            started = time.monotonic()
            with log.open("w") as out:
                rc = run(pytest_command(name, paths), env=env, stdout=out, stderr=subprocess.STDOUT)
            return rc, log, time.monotonic() - started

        with ThreadPoolExecutor(max_workers=2) as pool:
            started = [(name, pool.submit(logged, name, paths, env)) for name, paths, env in runs]
            for name, future in started:
                rc, log, seconds = future.result()
                print(log.read_text(), end="", flush=True)
                self.count(name, rc, seconds)

    def count(self, name, rc, seconds):
        """The row of pytest stage NAME, which ended with RC after SECONDS, from its JUnit XML."""
        passed, failed, skipped = pytest_counts(RESULTS / f"{name}.xml")
        if rc not in (0, 5) and failed == 0:
            failed = 1  # pytest itself failed (collection error, crash)
        if rc == 5:
            failed += 1  # no tests collected: a suite that runs nothing is a defect
        self.passed += passed
        self.failed += failed
        self.skipped += skipped
        self.lines.append(f"{'PASS' if failed == 0 else 'FAIL'} {name}: {passed} passed, {failed} failed, "
                          f"{skipped} skipped ({seconds:.0f}s)")


def pytest_command(name, paths, extra=()):
    """pytest on PATHS, its JUnit XML (a fresh one) named after the stage NAME."""
    junit = RESULTS / f"{name}.xml"
    junit.unlink(missing_ok=True)
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}", *extra, *paths]


def cluster_answers(env):
    try:
        probe = subprocess.run(["kubectl", "get", "--raw", "/readyz"], env=env, capture_output=True,
                               timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):  # no kubectl yet: the test bed build brings one
        return False
    return probe.returncode == 0


def main():
    RESULTS.mkdir(parents=True, exist_ok=True)
    suite = Suite()
    # The KWOK bed's own kubeconfig, whatever KUBECONFIG says: a user's current cluster is never tested on.
    env = dict(os.environ, KUBECONFIG=str(KUBECONFIG))

    newest = f"ansible-core {ansible_core_release()}, Python {sys.version_info[0]}.{sys.version_info[1]}"
    suite.stage(f"sanity ({newest})", ["tests/sanity/run.sh"])
    suite.stage("ansible-lint", ["ansible-lint", "--profile", "production", "--offline"])
    suite.stage("galaxy-importer", ["make", "--no-print-directory", "galaxy-import"])
    suite.pytest(f"unit ({newest})", ["tests/unit"])

    # The bulk of the suite runs on KWOK's simulated nodes: many servers, simulated CPU, images that need
    # not exist. Its pods must not land on a real node, so its bed has none.
    started_here = False
    # Each older ansible-core line (tests/matrix/lines.txt): its sanity, the unit tests and a smoke of the
    # playbooks on this bed; the newest line's smoke (its sanity and unit tests are the rows above).
    lines = [f"ansible-core {release}" for release in [*older_ansible_core_releases(), ansible_core_release()]]
    kwok_stages = ["integration", "integration (serial)", "bench smoke (N=1)", *lines]
    if not cluster_answers(env):
        started_here = suite.step("cluster-up (KWOK)", ["testbed/cluster.sh", "up"], env=dict(env, TESTBED_NODES="kwok"))
    if not cluster_answers(env):
        for name in kwok_stages:
            suite.skip(name, "no test bed: cluster-up (KWOK) failed (its row says how)")
    else:
        ignored = [f"--ignore={path}" for path in KIND_ONLY]
        suite.pytest("integration", ["tests/integration"], env=dict(env, TESTBED_NODES="kwok"),
                     extra=("-n", "2", "-m", "not serial", *ignored))
        suite.pytest("integration (serial)", ["tests/integration"], env=dict(env, TESTBED_NODES="kwok"),
                     extra=("-m", "serial", *ignored))
        suite.stage("bench smoke (N=1)", ["make", "bench", "BENCH_SIZES=1", "BENCH_RUNS=1"], env=env)
        # Two lines at a time: each is one process at a time (ansible-test, pytest, a playbook).
        suite.pytests_two_at_a_time([(name, ["tests/matrix"], dict(env, ANSIBLE_CORE_RELEASE=name.split()[1]))
                                     for name in lines])
    if started_here and os.environ.get("TESTBED_KEEP") != "1":
        # TESTBED_NODES=kwok as for up: make test's own environment names the kind bed, and cluster.sh refuses it.
        run(["testbed/cluster.sh", "down"], env=dict(env, TESTBED_NODES="kwok"))
    # The newest ToolHive release's CRDs (its operator cannot be built here) on an API-only bed of their
    # own: every manifest the collection renders, dry-run against them (tests/newest_crds brings it up and down).
    suite.pytest("newest CRDs", ["tests/newest_crds"])
    running_pods(suite)

    print("\n".join(["", "=== summary", *suite.lines]))
    print(f"{suite.passed} passed, {suite.failed} failed" + (f", {suite.skipped} skipped" if suite.skipped else ""))
    return 1 if suite.failed else 0


def ansible_core_release():
    """The newest line's release: the ansible-core of the Python running this (.venv)."""
    from ansible.release import __version__
    return __version__


def older_ansible_core_releases():
    lines = (REPO / "tests" / "matrix" / "lines.txt").read_text().splitlines()
    return [line.split()[1] for line in lines if line[:1].isdigit()]


def running_pods(suite):
    """The tests on running pods, on the kind bed: the bed, the operator role, then one leg per ToolHive release
    (the oldest supported, then the test bed's), each on the operator the role installs, then the bed's teardown.
    Only TESTBED_NODES=kwok skips them (counted); a kind bed that cannot come up fails its row and the legs say so."""
    pinned = versions_env.pinned()
    release, oldest = pinned["TOOLHIVE_VERSION"], pinned["TOOLHIVE_OLDEST_VERSION"]
    # (release, its tests, whether some of them are marked to run alone)
    legs = [(oldest, OLDEST_RELEASE_TESTS, False), (release, RUNNING_POD_TESTS, True)]
    molecule = [f"molecule {scenario}" for scenario in molecule_scenarios()]
    rows = ["kind bed", "operator role (kind)", *(row for leg, _tests, alone in legs for row in leg_rows(leg, alone)), *molecule,
            "kind teardown"]
    if os.environ.get("TESTBED_NODES") == "kwok":
        for name in rows:
            suite.skip(name, "opted out: TESTBED_NODES=kwok")
        return
    env = dict(os.environ, TESTBED_NODES="kind", KUBECONFIG=str(KIND_KUBECONFIG))
    if not suite.step("cluster-up (kind)", ["testbed/kind.sh", "up"], env=env):
        for name in rows:
            suite.skip(name, "no kind bed: cluster-up (kind) failed (its row says how)")
        return
    suite.pytest("kind bed", KIND_BED_TESTS, env=env)
    suite.pytest("operator role (kind)", OPERATOR_ROLE_TESTS, env=env)
    for leg_release, tests, some_alone in legs:
        installed = suite.step(f"operator ToolHive {leg_release} (playbooks/operator.yml)",
                               ["ansible-playbook", "playbooks/operator.yml", "-e", f"operator_version={leg_release[1:]}",
                                "-e", f"operator_chart_repo={charts_dir(leg_release)}"], env=env)
        leg = leg_rows(leg_release, some_alone)
        if not installed:
            for name in leg:
                suite.skip(name, "its operator was not installed (the row above)")
            continue
        # Two modules at a time, each module's tests in one process (they share its deployment): most of their
        # time is spent waiting on pods. Then the modules that must run alone (the serial mark says why).
        suite.pytest(leg[0], tests, env=env, extra=("-n", "2", "--dist", "loadfile", "-m", "not serial"))
        if some_alone:
            suite.pytest(leg[1], tests, env=env, extra=("-m", "serial"))
    # Each scenario's create finds the cluster up and the role's release (the last leg's) installed; its destroy
    # deletes its namespace only.
    for name in molecule:
        suite.stage(name, ["molecule", "test", "-s", name.split()[1]], env=env)
    if os.environ.get("TESTBED_KEEP") == "1":
        suite.skip("kind teardown", "TESTBED_KEEP=1 keeps the kind cluster")
    else:
        suite.pytest("kind teardown", [KIND_TEARDOWN_TEST], env=env)


def leg_rows(release, some_alone):
    """The rows of one running-pods leg: its modules run two at a time, then (SOME_ALONE) those that run alone."""
    together = f"running pods (ToolHive {release})"
    return [together, f"{together}, alone"] if some_alone else [together]


def charts_dir(release):
    """Where testbed/kind.sh up packaged RELEASE's two ToolHive charts."""
    return subprocess.run(["testbed/kind.sh", "charts-dir", release], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout.strip()


def molecule_scenarios():
    """The Molecule scenarios, all on the kind bed."""
    return sorted(p.parent.name for p in (REPO / "extensions" / "molecule").glob("*/molecule.yml"))


if __name__ == "__main__":
    sys.exit(main())

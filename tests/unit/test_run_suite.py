"""The suite runner's summary (pure orchestration: every command it would run is faked): whatever does not run
is a row saying why, counted as skipped; a step that is not a test is no test."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import run_suite  # noqa: E402  (tests/run_suite.py)


@pytest.fixture
def runner(monkeypatch, tmp_path, capsys):
    """run_suite.main() with every command answered by FAIL_ON (a set of command words that fail), one pytest
    case per pytest stage; returns (exit code, summary lines)."""
    def start(fail_on=(), cluster=True, env=None):
        commands = []

        def fake_run(cmd, **kwargs):
            commands.append(" ".join(cmd))
            return 1 if any(word in cmd for word in fail_on) else 0

        monkeypatch.setattr(run_suite, "RESULTS", tmp_path)
        monkeypatch.setattr(run_suite, "run", fake_run)
        monkeypatch.setattr(run_suite, "pytest_counts", lambda junit: (1, 0, 0))
        monkeypatch.setattr(run_suite, "cluster_answers", lambda env: cluster)
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        code = run_suite.main()
        out = capsys.readouterr().out
        return code, out[out.index("=== summary"):].splitlines()[1:], commands
    return start


def test_everything_runs_and_nothing_is_skipped(runner, monkeypatch):
    monkeypatch.delenv("TESTBED_KEEP", raising=False)
    monkeypatch.delenv("TESTBED_NODES", raising=False)
    code, lines, commands = runner()
    assert code == 0 and not [line for line in lines if line.startswith("SKIP")], lines
    steps = [line for line in lines if "a step, not a test" in line]
    assert len(steps) == 3  # the kind bed's cluster-up and each leg's operator: rows, not tests
    tests = len([line for line in lines if line.startswith("PASS")])
    assert lines[-1] == f"{tests} passed, 0 failed"
    # Every Molecule scenario, on kind: after the last leg (its operator is the role's release), before the teardown.
    rows = [line[5:] for line in lines if line[:4] in ("PASS", "OK  ")]
    last_leg = max(i for i, row in enumerate(rows) if row.startswith("running pods (ToolHive "
                                                                     + run_suite.versions_env.pinned()["TOOLHIVE_VERSION"]))
    teardown = next(i for i, row in enumerate(rows) if row.startswith("kind teardown"))
    scenarios = [f"molecule {s}" for s in ("default", "guards", "scaling", "sentinel")]
    assert [row.split(" (")[0] for row in rows[last_leg + 1:teardown]] == scenarios
    assert [c for c in commands if c.startswith("molecule")] == [f"molecule test -s {s[9:]}" for s in scenarios]
    # Every supported ansible-core line is a row of its own, older ones first, the newest (this .venv's) last.
    releases = [*run_suite.older_ansible_core_releases(), run_suite.ansible_core_release()]
    assert len(releases) == 6 and releases[0].startswith("2.16.")
    assert [row.split(":")[0] for row in rows if row.startswith("ansible-core ")] == [
        f"ansible-core {release}" for release in releases]


def test_a_kept_bed_drops_no_leg_without_a_row(runner, monkeypatch):
    monkeypatch.delenv("TESTBED_NODES", raising=False)
    code, lines, commands = runner(env={"TESTBED_KEEP": "1"})
    assert "SKIP kind teardown: TESTBED_KEEP=1 keeps the kind cluster" in lines
    assert lines[-1].endswith(", 1 skipped") and code == 0
    assert not [c for c in commands if c.endswith(" down") or "test_kind_teardown" in c]  # kept


def test_a_failed_kind_bed_or_operator_skips_what_needed_it_with_a_row(runner, monkeypatch):
    monkeypatch.delenv("TESTBED_NODES", raising=False)
    monkeypatch.delenv("TESTBED_KEEP", raising=False)
    code, lines, _commands = runner(fail_on={"testbed/kind.sh"})
    assert code == 1 and any(line.startswith("FAIL cluster-up (kind), a step, not a test") for line in lines)
    for row in ("kind bed", "operator role (kind)", "molecule default", "kind teardown"):
        assert f"SKIP {row}: no kind bed: cluster-up (kind) failed (its row says how)" in lines, lines
    oldest = run_suite.versions_env.pinned()["TOOLHIVE_OLDEST_VERSION"]
    code, lines, _commands = runner(fail_on={f"operator_version={oldest[1:]}"})
    assert code == 1
    assert f"SKIP running pods (ToolHive {oldest}): its operator was not installed (the row above)" in lines
    assert any(line.startswith(f"PASS running pods (ToolHive {run_suite.versions_env.pinned()['TOOLHIVE_VERSION']})")
               for line in lines)


def test_a_failed_cluster_up_shows_every_stage_it_took_with_it(runner, monkeypatch):
    monkeypatch.delenv("TESTBED_KEEP", raising=False)
    monkeypatch.setenv("TESTBED_NODES", "kwok")
    code, lines, _commands = runner(fail_on={"up"}, cluster=False)
    assert code == 1 and any(line.startswith("FAIL cluster-up (KWOK), a step, not a test") for line in lines)
    skipped = [line for line in lines if line.startswith("SKIP")]
    for stage in ("integration", "integration (serial)", "bench smoke (N=1)",
                  *(f"ansible-core {r}" for r in run_suite.older_ansible_core_releases())):
        assert f"SKIP {stage}: no test bed: cluster-up (KWOK) failed (its row says how)" in skipped, skipped
    assert any(line.startswith("SKIP running pods (ToolHive") and "TESTBED_NODES=kwok" in line for line in skipped)
    assert "SKIP molecule default: opted out: TESTBED_NODES=kwok" in skipped
    failed = int(lines[-1].split(" failed")[0].rsplit(" ", 1)[1])
    assert failed == 1 and lines[-1].endswith(f", {len(skipped)} skipped")


def test_running_pod_modules_run_two_at_a_time_then_the_serial_ones_alone(runner, monkeypatch):
    monkeypatch.delenv("TESTBED_NODES", raising=False)
    monkeypatch.delenv("TESTBED_KEEP", raising=False)
    release = run_suite.versions_env.pinned()["TOOLHIVE_VERSION"]
    _code, lines, commands = runner()
    every_module = [c for c in commands if c.endswith(" tests/integration/realpods")]
    assert len(every_module) == 2 and "-n 2 --dist loadfile -m not serial" in every_module[0], every_module
    assert "-m serial" in every_module[1] and "-n 2" not in every_module[1], every_module
    rows = [line.split(":")[0] for line in lines if line.startswith("PASS running pods")]
    assert rows[-2:] == [f"PASS running pods (ToolHive {release})", f"PASS running pods (ToolHive {release}), alone"]
    _code, lines, _commands = runner(fail_on={f"operator_version={release[1:]}"})
    for row in (f"running pods (ToolHive {release})", f"running pods (ToolHive {release}), alone"):
        assert f"SKIP {row}: its operator was not installed (the row above)" in lines, lines

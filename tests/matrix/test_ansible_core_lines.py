"""Each supported ansible-core line runs the collection: its own sanity tests, the unit tests, and a smoke of the
playbooks (deploy, its idempotent rerun, scale, status, teardown) on the KWOK bed (KUBECONFIG)."""
import json
import re
import subprocess

from .conftest import main_release

SMOKE_VARS = "tests/matrix/smoke.yml"


def recap(output):
    match = re.search(r"localhost\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", output)
    assert match, output[-3000:]
    return {"ok": int(match[1]), "changed": int(match[2]), "failed": int(match[3])}


def test_sanity(line):
    proc = line.run("tests/sanity/run.sh", timeout=1500)
    assert proc.returncode == 0, proc.output[-5000:]
    assert "Running sanity test" in proc.output, proc.output[-2000:]


def test_unit(line):
    proc = line.run(str(line.venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/unit")
    assert proc.returncode == 0, proc.output[-5000:]
    assert re.search(r"\d+ passed", proc.output), proc.output[-2000:]


def kubectl(line, *args):
    proc = line.run("kubectl", *args, "-o", "json", timeout=60)
    assert proc.returncode == 0, proc.output
    return json.loads(proc.stdout)


def test_smoke(line):
    namespace = "matrix-" + line.release.replace(".", "-")
    extra = ["-e", f"@{SMOKE_VARS}", "-e", f"toolhive_namespace={namespace}"]
    outputs = []

    def playbook(name, *args):
        proc = line.run("ansible-playbook", f"playbooks/{name}.yml", *extra, *args)
        outputs.append(proc.output)
        assert proc.returncode == 0, proc.output[-5000:]
        return recap(proc.output)

    try:
        assert playbook("deploy")["changed"] > 0
        gateway = kubectl(line, "get", "virtualmcpserver", "gateway", "-n", namespace)
        assert gateway["spec"]["replicas"] == 2
        assert kubectl(line, "get", "mcpserver", "fetch", "-n", namespace)["spec"]["replicas"] == 2
        assert playbook("deploy")["changed"] == 0  # idempotent

        playbook("scale", "-e", "toolhive_kind=VirtualMCPServer", "-e", "toolhive_name=gateway",
                 "-e", "toolhive_replicas=3")
        assert kubectl(line, "get", "virtualmcpserver", "gateway", "-n", namespace)["spec"]["replicas"] == 3
        playbook("status")
        assert re.search(r"VirtualMCPServer \S*gateway", outputs[-1]), outputs[-1][-3000:]
    finally:
        playbook("teardown")
    gone = line.run("kubectl", "get", "virtualmcpserver,mcpserver,deployment", "-n", namespace, "-o", "name")
    assert gone.stdout.strip() == "", gone.output
    if line.release == main_release():
        # The newest line: nothing of the collection's own content is deprecated.
        assert not [o for o in outputs if "[DEPRECATION WARNING]" in o], \
            [o[o.index("[DEPRECATION WARNING]"):][:1500] for o in outputs if "[DEPRECATION WARNING]" in o]


def test_the_smoke_runs_on_the_release_it_names(line):
    """The control: the line's own ansible-core answers (not .venv's), so each row tests what it says."""
    proc = line.run("ansible-playbook", "--version")
    assert proc.returncode == 0 and f"[core {line.release}]" in proc.stdout, proc.output
    assert str(line.venv) in subprocess.run(["bash", "-c", "command -v ansible-playbook"], env=line.env,
                                            capture_output=True, text=True, check=True).stdout

"""The one way the benchmarks run a command: from the repository, output captured, a failure ends the benchmark."""
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def sh(*cmd, check=True, stdin=None):
    """CMD's CompletedProcess (text); with CHECK, a non-zero exit ends the benchmark, showing what the command said."""
    proc = subprocess.run([str(c) for c in cmd], cwd=REPO, input=stdin, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc

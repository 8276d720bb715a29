"""Stand-in for pip's get-pip.py, which ansible-test downloads from a host our
machines cannot reach: bootstrap pip from the interpreter's own ensurepip,
then install what ansible-test asked for (from PyPI)."""
import subprocess
import sys

subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
if args:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", *args])

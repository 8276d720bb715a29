#!/usr/bin/env bash
# venv.sh RELEASE : makes (once per release and requirements) the virtualenv of one ansible-core release in
# .build/matrix/RELEASE and prints its path: that ansible-core on Python 3.12, the collection's requirements
# and what its unit tests need. kubernetes.core comes from .venv's `ansible` package (tests/matrix/conftest.py).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
release=$1
venv=$repo/.build/matrix/$release
want="ansible-core==$release $(cat "$repo/requirements.txt" "$repo/tests/matrix/requirements.txt" | sha256sum | cut -c1-16)"
if [[ $(cat "$venv/.installed" 2>/dev/null) != "$want" ]]; then
  python=$("$repo/testbed/python.sh" 3.12)
  rm -rf "$venv" && "$python" -m venv "$venv"
  "$venv/bin/pip" install -q -U pip >&2
  "$venv/bin/pip" install -q "ansible-core==$release" -r "$repo/requirements.txt" -r "$repo/tests/matrix/requirements.txt" >&2
  echo "$want" >"$venv/.installed"
fi
echo "$venv"

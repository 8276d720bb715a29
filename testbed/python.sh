#!/usr/bin/env bash
# python.sh [3.N] : prints the Python the virtualenv is made with: the newest one on this machine that
# ansible-core's newest line runs on (3.12 or newer), or exactly 3.N when asked, found on PATH (python3.14 ...
# python3) or in pyenv's versions. Fails, saying what to install, when there is none.
set -euo pipefail

wanted=${1:-}
good() { # good PYTHON : PYTHON runs and is 3.12 or newer (or the version asked for)
  "$1" -c 'import sys; w = sys.argv[1]; v = "%d.%d" % sys.version_info[:2]
sys.exit(not (v == w if w else (3, 12) <= sys.version_info[:2] < (4, 0)))' "$wanted" 2>/dev/null
}

candidates() {
  local name
  for name in python3.14 python3.13 python3.12 python3; do
    command -v "$name" 2>/dev/null || true
  done
  # pyenv's shims run only the versions it was told to; its own directories are real interpreters.
  local root
  root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
  local found=("$root"/versions/3.1[2-9]*/bin/python3)
  if [[ -e ${found[0]} ]]; then printf '%s\n' "${found[@]}" | sort -rV; fi
}

while read -r python; do
  [[ -n $python ]] && good "$python" && { echo "$python"; exit 0; }
done < <(candidates)
echo "No Python ${wanted:-3.12 or newer} here; ansible-core 2.21 needs 3.12 or newer: install python3.12" \
  "(apt-get install python3.12, or pyenv install 3.13), or name one: make PYTHON=/path/to/python3.12" >&2
exit 1

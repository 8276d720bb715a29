#!/usr/bin/env bash
# ansible-test wants the collection at .../ansible_collections/<ns>/<name>:
# copy what git knows of the checkout there and run sanity on the copy.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)

# ansible-test skips its shellcheck test without a word when shellcheck is missing (bindep.txt): install it
# where we can, and fail the stage where we cannot.
if ! command -v shellcheck >/dev/null && [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
  { apt-get install -y -q shellcheck || { apt-get update -q && apt-get install -y -q shellcheck; }; } >/dev/null 2>&1 || true
fi
command -v shellcheck >/dev/null || {
  echo "sanity: shellcheck is missing, so ansible-test would skip its shellcheck test; install it (bindep.txt)" >&2
  exit 1
}
# One copy per ansible-core release: the suite runs two lines' sanity at a time.
release=$(python -c 'from ansible.release import __version__; print(__version__)')
root=$repo/.build/sanity/$release
dest=$root/ansible_collections/toolhive/k8s
rm -rf "$root" && mkdir -p "$dest"
cd "$repo"
git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} cp --parents {} "$dest/" 2>/dev/null || true
cd "$dest"
git init -q && git add -A

# ansible-test keeps its per-test virtualenvs under ~/.ansible/test/venv, named by their requirements only: two
# lines on one Python (2.16 and 2.17 on 3.12) would make the same one at once, and one removes what the other is
# installing (CI: pip's "expected string or bytes-like object, got 'NoneType'"). A home of its own per release.
export HOME=$HOME/.cache/toolhive-k8s-ansible-test/$release
mkdir -p "$HOME"

# ansible-test bootstraps pip in its per-test virtualenvs with a script it
# downloads from a host we cannot reach; give it our ensurepip-based one.
pip_version=$(python - <<'PY'
from ansible_test._internal.python_requirements import get_venv_packages
from ansible_test._internal.host_configs import NativePythonConfig
import sys
print(get_venv_packages(NativePythonConfig(version="%d.%d" % sys.version_info[:2]))["pip"])
PY
) || pip_version=24.2
cache=~/.ansible/test/cache/get_pip_${pip_version//./_}.py
if [[ ! -f $cache ]]; then  # written whole, then renamed: another line's sanity may be reading it
  install -D -m 0644 "$repo/tests/sanity/get_pip.py" "$cache.$$" && mv "$cache.$$" "$cache"
fi

exec ansible-test sanity --python "$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')" --requirements "$@"

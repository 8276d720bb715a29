#!/usr/bin/env bash
# ansible-test wants the collection at .../ansible_collections/<ns>/<name>:
# copy what git knows of the checkout there and run sanity on the copy.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
root=$repo/.build/sanity
dest=$root/ansible_collections/toolhive/k8s
rm -rf "$root" && mkdir -p "$dest"
cd "$repo"
git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} cp --parents {} "$dest/" 2>/dev/null || true
cd "$dest"
git init -q && git add -A
exec ansible-test sanity --python "$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')" --requirements "$@"

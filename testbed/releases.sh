# shellcheck shell=bash
# Which ToolHive releases the test bed runs; sourced after versions.env by build.sh, images.sh and cluster.sh.

# The releases the test bed builds an operator and images (vmcp, proxy runner) for: the default, the oldest
# supported, and any TOOLHIVE_OPERATOR_VERSION asked for; space-separated, oldest first.
toolhive_releases() {
  printf '%s\n' "$TOOLHIVE_VERSION" "$TOOLHIVE_OLDEST_VERSION" "${TOOLHIVE_OPERATOR_VERSION:-}" | sed '/^$/d' |
    sort -uV | paste -sd' '
}

# operator_release NODES : the release the operator runs. A KWOK-only bed runs the oldest supported one:
# newer operators wait for a backend StatefulSet that only a running proxy runner creates (versions.env).
operator_release() {
  if [[ -n ${TOOLHIVE_OPERATOR_VERSION:-} ]]; then echo "$TOOLHIVE_OPERATOR_VERSION"
  elif [[ $1 == kwok ]]; then echo "$TOOLHIVE_OLDEST_VERSION"
  else echo "$TOOLHIVE_VERSION"
  fi
}

# module_dir MODULE@VERSION : the module's source in Go's module cache (downloaded if missing), or nothing.
module_dir() {
  GOFLAGS=-mod=mod go mod download -json "$1" | sed -n 's/.*"Dir": "\(.*\)",/\1/p'
}

# toolhive_module_dir VERSION : ToolHive's module source at VERSION; a release that needs a newer Go than the local
# one is downloaded with that toolchain (TOOLHIVE_GOTOOLCHAIN). Fails, saying so, when it cannot be downloaded.
toolhive_module_dir() {
  local dir
  dir=$(module_dir "github.com/stacklok/toolhive@$1") || true
  [[ -n $dir ]] || dir=$(GOTOOLCHAIN=${TOOLHIVE_GOTOOLCHAIN:-go1.27.3} module_dir "github.com/stacklok/toolhive@$1") || true
  [[ -n $dir ]] || { echo "FAILED: github.com/stacklok/toolhive@$1 could not be downloaded" >&2; return 1; }
  echo "$dir"
}

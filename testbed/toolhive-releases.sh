#!/usr/bin/env bash
# Which ToolHive release newer than the test bed's default can be built here?
#
#   toolhive-releases.sh [--build] [VERSION...]
#
# Lists the releases the Go module proxy reports (`go list -m -versions`) that are
# newer than TOOLHIVE_VERSION (testbed/versions.env), plus any VERSION given (the
# proxy serves some tags it does not list), and for each, in order, resolves the
# three commands the test bed runs (cmd/thv-operator, cmd/vmcp,
# cmd/thv-proxyrunner) in a scratch module: `go get` (the module graph), then
# `go list -deps` (every package's source). Nothing is compiled unless --build is
# given, and then only the newest release that resolves.
#
# Each line names the exact dependency that blocks a release and why (a 403 from
# the proxy, a version missing from the checksum database, ...). Those answers are
# final: no dependency is ever replaced, stubbed or fetched around the proxy or the
# checksum database, since that would no longer be ToolHive's build. A module that
# needs a newer Go than the local one is tried with GOTOOLCHAIN=$TOOLHIVE_GOTOOLCHAIN
# (default go1.27.3, which the proxy serves).
#
# The last line is machine-readable: `newest-buildable=vX.Y.Z` (the default itself
# when nothing newer resolves). Runs at nice 19; scratch modules live under
# $TESTBED_CACHE/releases (a second run reuses the downloads).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=testbed/versions.env
source "$here/versions.env"
default=${TOOLHIVE_OPERATOR_VERSION:-$TOOLHIVE_VERSION}
module=github.com/stacklok/toolhive
commands=(cmd/thv-operator cmd/vmcp cmd/thv-proxyrunner)
newer_toolchain=${TOOLHIVE_GOTOOLCHAIN:-go1.27.3}
cache=${TESTBED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/toolhive-k8s-testbed}
work="$cache/releases"

build=false
extra=()
for arg in "$@"; do
  case $arg in
    --build) build=true ;;
    v[0-9]*) extra+=("$arg") ;;
    -h | --help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: $0 [--build] [VERSION...]" >&2; exit 2 ;;
  esac
done

export GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN=local
renice -n 19 $$ >/dev/null 2>&1 || true
mkdir -p "$work"
log() { printf '[releases %s] %s\n' "$(date +%T)" "$*" >&2; }

newer() { # newer A B : A is a later version than B
  [[ $1 != "$2" && "$(printf '%s\n%s\n' "$1" "$2" | sort -V | tail -n 1)" == "$1" ]]
}

local_go=$(go env GOVERSION) # go1.26.8
local_go=${local_go#go}

# Every "module@version: reading URL: STATUS" in Go's output, one per line, as
# "module@version (what refused it: STATUS)".
blockers() {
  grep -oE '[A-Za-z0-9.~_/-]+@v[A-Za-z0-9.+_-]+: (verifying module: [^ ]+: )?reading https?://[^ ]+: [0-9]{3}[A-Za-z ]*' |
    sed -E 's#^([^ ]+): (verifying module: [^ ]+: )?reading (https?://[^ ]+): ([0-9]{3}[A-Za-z ]*)#\1 \3 \4#' |
    while read -r dep url status; do
      case $url in
        */sumdb/*) echo "$dep (not in the checksum database: $status)" ;;
        *.zip) echo "$dep (module proxy, source zip: $status)" ;;
        *.mod) echo "$dep (module proxy, go.mod: $status)" ;;
        *.info) echo "$dep (module proxy, version info: $status)" ;;
        *) echo "$dep ($url: $status)" ;;
      esac
    done | sort -u
}

go_needed() { # VERSION : the go directive of the release's go.mod (read outside any module)
  local out gomod
  out=$(cd "$work" && go mod download -json "$module@$1" 2>&1) || true
  gomod=$(sed -n 's/.*"GoMod": "\(.*\)",/\1/p' <<<"$out")
  [[ -n $gomod ]] && sed -n 's/^go \([0-9.]*\).*/\1/p' "$gomod"
}

# try VERSION: prints "resolves" or "blocked: ..." ; returns 0 when it resolves
try() {
  local v=$1 dir="$work/$1" out gomod go_needed toolchain=local
  # A fresh scratch module each time: a go.sum left by an earlier run would vouch for a module the
  # checksum database does not know, and go.mod would pin that run's toolchain.
  rm -rf "$dir" && mkdir -p "$dir"
  if ! out=$(cd "$work" && go mod download -json "$module@$v" 2>&1); then
    if ! grep -q '"GoMod"' <<<"$out"; then
      echo "blocked: $module@$v itself ($(blockers <<<"$out" | sed 's/^[^(]*(//; s/)$//' | head -n 1))"
      return 1
    fi
  fi
  gomod=$(sed -n 's/.*"GoMod": "\(.*\)",/\1/p' <<<"$out")
  go_needed=$(sed -n 's/^go \([0-9.]*\).*/\1/p' "$gomod")
  if newer "$go_needed" "$local_go"; then toolchain=$newer_toolchain; fi
  (
    cd "$dir"
    export GOTOOLCHAIN=$toolchain
    [[ -f go.mod ]] || go mod init toolhive-release-probe >/dev/null 2>&1
    out=$(go get "$module@$v" 2>&1) || {
      found=$(blockers <<<"$out")
      echo "blocked (module graph, go $go_needed, GOTOOLCHAIN=$toolchain): ${found:-$(tail -n 3 <<<"$out" | tr '\n' ' ')}" | paste -sd ';'
      exit 1
    }
    out=$(go list -e -deps -f '{{if .Error}}{{.ImportPath}}: {{.Error}}{{end}}' "${commands[@]/#/$module/}" 2>&1 |
      grep -v '^go: downloading') || true
    if [[ -n $out ]]; then
      found=$(blockers <<<"$out")
      [[ -n $found ]] || found=$(head -n 5 <<<"$out")
      printf 'blocked (go %s, GOTOOLCHAIN=%s): %s\n' "$go_needed" "$toolchain" "$(paste -sd ';' <<<"$found" | sed 's/;/; /g')"
      exit 1
    fi
    echo "resolves (go $go_needed, GOTOOLCHAIN=$toolchain): ${commands[*]}"
  )
}

compile() { # compile VERSION : the three commands, into the scratch module's bin/
  local v=$1 dir="$work/$1" toolchain=local go_needed
  go_needed=$(go_needed "$v")
  if newer "$go_needed" "$local_go"; then toolchain=$newer_toolchain; fi
  (cd "$dir" && GOTOOLCHAIN=$toolchain nice -n 19 go build -p 1 -trimpath -ldflags "-s -w" -o "$dir/bin/" \
    "${commands[@]/#/$module/}")
}

mapfile -t listed < <(go list -m -versions "$module" | tr ' ' '\n' | tail -n +2)
candidates=()
for v in "${listed[@]}" "${extra[@]}"; do
  newer "$v" "$default" && candidates+=("$v")
done
mapfile -t candidates < <(printf '%s\n' "${candidates[@]}" | sort -Vu)

echo "ToolHive releases newer than the default $default ($(date -u +%F); Go $local_go; proxy $(go env GOPROXY)):"
newest=$default
for v in "${candidates[@]}"; do
  log "$v"
  if answer=$(try "$v"); then newest=$v; fi
  printf '  %-8s %s\n' "$v" "$answer"
done

if $build && [[ $newest != "$default" ]]; then
  log "compiling $newest (nice 19, one job at a time)"
  if compile "$newest" >"$work/$newest/build.log" 2>&1; then
    echo "compiled: $newest (${commands[*]} in $work/$newest/bin)"
  else
    echo "compile FAILED for $newest: $(tail -n 5 "$work/$newest/build.log" | tr '\n' ' ')"
    exit 1
  fi
fi
echo "newest-buildable=$newest"

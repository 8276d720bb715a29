#!/usr/bin/env bash
# Builds the kind bed's container images without a registry or a container
# engine: one-layer docker archives in $TESTBED_CACHE/images, loaded into the
# nodes by kind.sh (`kind load image-archive`; pause and CoreDNS are in the node
# image). A stamp records what was built; an unchanged input set skips everything.
#
#   images.sh          build what is missing or out of date
#   images.sh names    print the image names, one a line
#
# Names: upstream's public name only where the image holds the same upstream
# program at the same version (ToolHive's operator, vmcp and proxy runner, which
# its chart and the operator deploy by those names; metrics-server; dockyard's mcp-server-time and
# server-everything, which playbooks/vars/example.yml deploys): each one is in
# testbed/images/PUBLIC.md with what upstream builds it from. Everything else is
# localhost/toolhive-testbed/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=testbed/versions.env
source "$here/versions.env"
# shellcheck source=testbed/releases.sh
source "$here/releases.sh"
releases=$(toolhive_releases) # vmcp and the proxy runner for each release the operator can run

cache=${TESTBED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/toolhive-k8s-testbed}
out="$cache/images"
gobin="$out/bin"
log() { printf '[images %s] %s\n' "$(date +%T)" "$*" >&2; }

deb_version() { # Debian version as a tag: 5:7.0.15-1~deb12u10 -> 7.0.15-1-deb12u10
  dpkg-query -W -f '${Version}' "$1" | sed 's/^[0-9]*://; s/[~+:]/-/g'
}

local_repo=localhost/toolhive-testbed
redis_tag=$(deb_version redis-tools 2>/dev/null || echo unknown)
pause_image="$local_repo/pause:$PAUSE_VERSION"
coredns_image="$local_repo/coredns:$COREDNS_VERSION"
redis_image="$local_repo/redis-debian:$redis_tag"
toolhive_images=()
for release in $releases; do
  toolhive_images+=("ghcr.io/stacklok/toolhive/operator:$release" "ghcr.io/stacklok/toolhive/vmcp:$release"
                    "ghcr.io/stacklok/toolhive/proxyrunner:$release")
done
everything_image="$local_repo/go-sdk-everything:$GO_SDK_VERSION"
# The tests' MCP client inside the cluster: its tag is the SDK's version (testbed/images/mcp-client.txt).
sdk_version=$(sed -n 's/^mcp==//p' "$here/images/mcp-client.txt")
client_image="$local_repo/mcp-client:$sdk_version"
# An MCP server that keeps no session (testbed/images/stateless-greeter.py), on the client's SDK.
greeter_image="$local_repo/stateless-greeter:$sdk_version"
# The kind bed's metrics-server (installed with its own chart by testbed/kind.sh).
metrics_image="registry.k8s.io/metrics-server/metrics-server:$METRICS_SERVER_VERSION"
# dockyard (stacklok/dockyard) builds these two from the same PyPI / npm release: testbed/images/PUBLIC.md.
time_image="ghcr.io/stacklok/dockyard/uvx/mcp-server-time:$MCP_SERVER_TIME_VERSION"
server_everything_image="ghcr.io/stacklok/dockyard/npx/server-everything:$SERVER_EVERYTHING_VERSION"
# The own engine's StorageClass `standard` (kind.sh): the provisioner, and the helper pod it runs on a node to make and
# remove a volume's directory (busybox, as kind's kindest/local-path-helper).
busybox_tag=$(deb_version busybox-static 2>/dev/null || echo unknown)
local_path_image="$local_repo/local-path-provisioner:$LOCAL_PATH_PROVISIONER_VERSION"
local_path_helper_image="$local_repo/local-path-helper:$busybox_tag"

if [[ ${1:-} == names ]]; then
  printf '%s\n' "$pause_image" "$coredns_image" "$redis_image" "${toolhive_images[@]}" \
    "$everything_image" "$client_image" "$greeter_image" "$time_image" "$server_everything_image" "$metrics_image" \
    "$local_path_image" "$local_path_helper_image"
  exit 0
fi

stamp="$out/.versions"
# Regular files only (a __pycache__ directory is not an input), and no documentation.
inputs=$(find "$here/images.sh" "$here/images" "$here/versions.env" -maxdepth 2 -type f ! -name '*.md' ! -path '*/__pycache__/*' \
  -print0 | sort -z | xargs -0 cat | sha256sum | cut -c1-16)
want="inputs=$inputs toolhive=${releases// /,} redis=$redis_tag python=$(deb_version python3.11)"
want+=" node=$(deb_version nodejs) busybox=$busybox_tag"
if [[ -f $stamp && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi
for tool in node npm; do
  command -v "$tool" >/dev/null ||
    { echo "images.sh: the server-everything image needs $tool (Debian package nodejs; npm with Debian's)" >&2; exit 1; }
done
mkdir -p "$gobin"
rm -f "$stamp"

# --- Go programs (one `go install` at a time: the machine has two cores) ----
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod
go_install() { # go_install LDFLAGS PACKAGE@VERSION...
  local ld=$1; shift
  (cd "$out" && GOBIN="$gobin" go install -trimpath -ldflags "$ld" "$@")
}
t=$SECONDS
log "coredns $COREDNS_VERSION"
go_install "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"
# The same ldflags as upstream's release images (.github/ko-ci.yml), less the commit and date.
for release in $releases; do
  th="-s -w -X github.com/stacklok/toolhive/pkg/versions.Version=$release"
  th+=" -X github.com/stacklok/toolhive/pkg/versions.BuildType=release"
  log "thv-operator, vmcp, thv-proxyrunner $release"
  mkdir -p "$gobin/$release"
  (cd "$out" && GOBIN="$gobin/$release" go install -trimpath -ldflags "$th" \
    "github.com/stacklok/toolhive/cmd/thv-operator@$release" "github.com/stacklok/toolhive/cmd/vmcp@$release" \
    "github.com/stacklok/toolhive/cmd/thv-proxyrunner@$release")
done
log "go-sdk everything $GO_SDK_VERSION"
go_install "-s -w" "github.com/modelcontextprotocol/go-sdk/examples/server/everything@$GO_SDK_VERSION"
log "metrics-server $METRICS_SERVER_VERSION"
go_install "-s -w -X sigs.k8s.io/metrics-server/pkg/version.gitVersion=$METRICS_SERVER_VERSION" \
  "sigs.k8s.io/metrics-server/cmd/metrics-server@$METRICS_SERVER_VERSION"
log "local-path-provisioner $LOCAL_PATH_PROVISIONER_VERSION"
# Upstream's scripts/build sets main.VERSION the same way.
go_install "-s -w -X main.VERSION=$LOCAL_PATH_PROVISIONER_VERSION" \
  "github.com/rancher/local-path-provisioner@$LOCAL_PATH_PROVISIONER_VERSION"
log "Go programs built in $((SECONDS - t))s"

# --- root filesystems --------------------------------------------------------
t=$SECONDS
work="$out/rootfs"
rm -rf "$work"
mkdir -p "$work"

base() { # base DIR : ko's static base: CA bundle, passwd with nonroot 65532, /tmp
  mkdir -p "$1"/{etc/ssl/certs,tmp,home/nonroot}
  chmod 1777 "$1/tmp"
  cp /etc/ssl/certs/ca-certificates.crt "$1/etc/ssl/certs/"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$1/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$1/etc/group"
  chown 65532:65532 "$1/home/nonroot"
}

copy_libs() { # copy_libs DIR FILE : the shared libraries FILE loads, copied into DIR at their paths
  local lib
  for lib in $(ldd "$2" 2>/dev/null | grep -o '/[^ ]*' || true); do
    [[ -e $1$lib ]] && continue
    mkdir -p "$1$(dirname "$lib")"
    cp -L "$lib" "$1$lib"
  done
}

with_libs() { # with_libs DIR FILE... : copy FILEs (host paths) and their libraries into DIR
  local dir=$1 f; shift
  for f in "$@"; do
    mkdir -p "$dir$(dirname "$f")"
    cp -L "$f" "$dir$f"
    copy_libs "$dir" "$f"
  done
}

with_busybox() { # with_busybox DIR : Debian's static busybox as DIR/bin/busybox, each applet a link to it
  mkdir -p "$1/bin"
  cp /bin/busybox "$1/bin/busybox"
  local applet
  for applet in $(/bin/busybox --list); do
    [[ -e $1/bin/$applet ]] || ln -s busybox "$1/bin/$applet"
  done
}

pack() { # pack TAR NAME DIR ARGS... : mkimage.py with the image's config
  python3 "$here/images/mkimage.py" "$out/$1.tar" "$2" "$3" "${@:4}" \
    --label "org.opencontainers.image.description=built by toolhive.k8s testbed/images.sh" >&2
}

ko_env=(--env PATH=/ko-app:/usr/local/bin:/usr/bin:/bin --env KO_DATA_PATH=/var/run/ko
        --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt)

# pause: the sandbox process, static C.
mkdir -p "$work/pause"
gcc -static -O2 -s -o "$work/pause/pause" "$here/images/pause.c"
pack pause "$pause_image" "$work/pause" --entrypoint '["/pause"]' --user 65535

# CoreDNS: static Go.
base "$work/coredns"
cp "$gobin/coredns" "$work/coredns/coredns"
pack coredns "$coredns_image" "$work/coredns" --entrypoint '["/coredns"]' --user 65532

# operator (kind's, installed by the chart), vmcp, proxy runner, everything: ko's layout (/ko-app/<binary>, uid 65532).
rm -f "$out"/operator*.tar "$out"/vmcp*.tar "$out"/proxyrunner*.tar
specs=("everything:everything:everything:$everything_image")
for release in $releases; do
  specs+=("$release/thv-operator:thv-operator:operator-$release:ghcr.io/stacklok/toolhive/operator:$release"
          "$release/vmcp:vmcp:vmcp-$release:ghcr.io/stacklok/toolhive/vmcp:$release"
          "$release/thv-proxyrunner:thv-proxyrunner:proxyrunner-$release:ghcr.io/stacklok/toolhive/proxyrunner:$release")
done
for spec in "${specs[@]}"; do
  IFS=: read -r path binary tar name <<<"$spec"
  name=${spec#*:*:*:}
  base "$work/$tar"
  mkdir -p "$work/$tar/ko-app" "$work/$tar/var/run/ko"
  cp "$gobin/$path" "$work/$tar/ko-app/$binary"
  cmd=null
  # The example serves stdio unless told an address; streamable HTTP on 8080 by default.
  [[ $binary == everything ]] && cmd='["-http", ":8080"]'
  pack "$tar" "$name" "$work/$tar" --entrypoint "[\"/ko-app/$binary\"]" --cmd "$cmd" --user 65532 "${ko_env[@]}"
done

# metrics-server: static Go, as its Dockerfile builds it (distroless static, uid 65534).
base "$work/metrics-server"
cp "$gobin/metrics-server" "$work/metrics-server/metrics-server"
pack metrics-server "$metrics_image" "$work/metrics-server" --entrypoint '["/metrics-server"]' --user 65534

# local-path-provisioner: static Go in ko's layout (upstream's image is Alpine's; the provisioner only talks to the API
# server, so it runs as nonroot). Its Deployment runs `local-path-provisioner ...`, found on ko's PATH.
l="$work/local-path-provisioner"
base "$l"
mkdir -p "$l/ko-app"
cp "$gobin/local-path-provisioner" "$l/ko-app/local-path-provisioner"
pack local-path-provisioner "$local_path_image" "$l" --entrypoint '["/ko-app/local-path-provisioner"]' --user 65532 \
  "${ko_env[@]}"
# Its helper: sh, mkdir, rm and chmod of busybox, as root (it makes each volume's directory in the node's
# root-owned /var/local-path-provisioner).
with_busybox "$work/local-path-helper"
pack local-path-helper "$local_path_helper_image" "$work/local-path-helper" --cmd '["sh"]' --user 0

# Redis: Debian's redis-tools binary (redis-server and redis-sentinel are names
# of one program), busybox as the shell the roles' scripts need, uid 999 as in
# the official image.
r="$work/redis"
mkdir -p "$r"/{bin,usr/bin,usr/local/bin,data,run,tmp,etc}
chmod 1777 "$r/run" "$r/tmp"
chown 999:999 "$r/data"
with_libs "$r" /usr/bin/redis-check-rdb /usr/bin/redis-cli
mv "$r/usr/bin/redis-check-rdb" "$r/usr/bin/redis-server"
ln -s redis-server "$r/usr/bin/redis-sentinel"
ln -s redis-server "$r/usr/bin/redis-check-rdb"
with_busybox "$r"
cp "$here/images/redis-entrypoint.sh" "$r/usr/local/bin/docker-entrypoint.sh"
printf 'root:x:0:0:root:/root:/bin/sh\nredis:x:999:999:redis:/data:/bin/sh\n' >"$r/etc/passwd"
printf 'root:x:0:\nredis:x:999:\n' >"$r/etc/group"
pack redis "$redis_image" "$r" --entrypoint '["docker-entrypoint.sh"]' --cmd '["redis-server"]' \
  --workdir /data --user 999:999

python_rootfs() { # python_rootfs DIR VENV REQUIREMENTS : Debian's python3 and, at VENV, a venv with the pinned packages
  local p=$1 venv=$2
  base "$p"
  rm -rf "$out/venv"
  /usr/bin/python3 -m venv "$out/venv"
  "$out/venv/bin/pip" install -q --no-deps --require-virtualenv -r "$3"
  mkdir -p "$p/usr/lib" "$p/usr/bin" "$p/opt" "$p/usr/share"
  cp -a /usr/lib/python3.11 "$p/usr/lib/"
  rm -rf "$p"/usr/lib/python3.11/{test,idlelib,tkinter,ensurepip,turtledemo,lib2to3}
  cp -a "$out/venv" "$p$venv"
  # The venv was made at another path: point its scripts' #! lines at where it is in the image.
  grep -rlI "^#!$out/venv/bin/python" "$p$venv/bin" | xargs -r sed -i "1s|^#!$out/venv/bin/python|#!$venv/bin/python|"
  sed -i "s|$out/venv|$venv|g" "$p$venv/pyvenv.cfg"
  with_libs "$p" /usr/bin/python3.11
  ln -s python3.11 "$p/usr/bin/python3"
  find "$p/usr/lib/python3.11/lib-dynload" "$p$venv" -name '*.so*' -print0 |
    while IFS= read -r -d '' so; do copy_libs "$p" "$so"; done
  rm -rf "$out/venv"
}

# mcp-server-time: Debian's python3 and a venv with the pinned PyPI packages.
p="$work/time"
venv=/opt/mcp-server-time
python_rootfs "$p" "$venv" "$here/images/mcp-server-time.txt"
cp -a /usr/share/zoneinfo "$p/usr/share/"
ln -s /usr/share/zoneinfo/UTC "$p/etc/localtime"
pack time "$time_image" "$p" --entrypoint "[\"$venv/bin/mcp-server-time\"]" --user 65532 \
  --env "PATH=$venv/bin:/usr/bin:/bin" --env TZ=UTC --env PYTHONDONTWRITEBYTECODE=1

# The MCP client that calls the servers from inside the cluster (tests/integration/realpods/incluster.py): the same
# SDK as the tests' own, in a venv on Debian's python3. The client's code comes in a ConfigMap, not in the image.
c="$work/mcp-client"
python_rootfs "$c" /opt/mcp-client "$here/images/mcp-client.txt"
pack mcp-client "$client_image" "$c" --entrypoint '["/opt/mcp-client/bin/python3"]' --user 65532 \
  --env "PATH=/opt/mcp-client/bin:/usr/bin:/bin" --env PYTHONDONTWRITEBYTECODE=1 --env PYTHONUNBUFFERED=1
# The stateless greeter: the same root filesystem and its server's one file.
mv "$c" "$work/stateless-greeter"
cp "$here/images/stateless-greeter.py" "$work/stateless-greeter/opt/stateless-greeter.py"
pack stateless-greeter "$greeter_image" "$work/stateless-greeter" \
  --entrypoint '["/opt/mcp-client/bin/python3", "/opt/stateless-greeter.py"]' --user 65532 \
  --env "PATH=/opt/mcp-client/bin:/usr/bin:/bin" --env PYTHONDONTWRITEBYTECODE=1 --env PYTHONUNBUFFERED=1
# server-everything: what dockyard's npx image holds (npm install of the pinned release in /app, run as
# the npm package's bin) on this machine's node (package nodejs); package-lock.json pins the dependencies.
npm_version=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["dependencies"]["@modelcontextprotocol/server-everything"])' \
  "$here/images/server-everything/package.json")
if [[ $npm_version != "$SERVER_EVERYTHING_VERSION" ]]; then
  echo "images.sh: testbed/images/server-everything/package.json pins $npm_version, versions.env says $SERVER_EVERYTHING_VERSION" >&2
  exit 1
fi
e="$work/server-everything"
base "$e"
mkdir -p "$e/app"
cp "$here/images/server-everything/package.json" "$here/images/server-everything/package-lock.json" "$e/app/"
(cd "$e/app" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
chown -R 65532:65532 "$e/app"
with_libs "$e" /usr/bin/node
pack server-everything "$server_everything_image" "$e" \
  --entrypoint '["/usr/bin/node", "/app/node_modules/@modelcontextprotocol/server-everything/dist/index.js"]' \
  --workdir /app --user 65532 --env PATH=/app/node_modules/.bin:/usr/bin:/bin --env NODE_PATH=/app/node_modules \
  --env NODE_ENV=production
rm -rf "$work"
log "images packed in $((SECONDS - t))s"
echo "$want" >"$stamp"

#!/usr/bin/env bash
# Builds the test-bed binaries from Go modules into $TESTBED_BIN.
# Go's module and build caches make a second build on the same machine cheap;
# a stamp file recording the versions skips even that.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=testbed/versions.env
source "$here/versions.env"
# shellcheck source=testbed/releases.sh
source "$here/releases.sh"
operators=$(toolhive_releases) # one operator binary each: bin/thv-operator-<release>

cache=${TESTBED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/toolhive-k8s-testbed}
bin=${TESTBED_BIN:-$cache/bin}
stamp="$bin/.versions"
want="k8s=$KUBERNETES_VERSION+kubelet,kube-proxy,kubeadm etcd=$ETCD_VERSION kwok=$KWOK_VERSION metrics=$METRICS_SERVER_VERSION"
want+=" kind=$KIND_VERSION helm=$HELM_VERSION"
missing_operators=
for release in $operators; do
  [[ -x $bin/thv-operator-$release ]] || missing_operators+=" $release"
done
if [[ -f $stamp && "$(cat "$stamp")" == "$want" && -z $missing_operators ]]; then
  exit 0
fi

export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod
mkdir -p "$bin"
work="$cache/modules"
log() { printf '[build %s] %s\n' "$(date +%T)" "$*" >&2; }

build_kubernetes() {
  local dir="$work/kubernetes-$KUBERNETES_VERSION" minor staging
  minor=${KUBERNETES_VERSION#v1.}          # 35.8
  staging="v0.$minor"                      # k8s.io/<staging module> release
  mkdir -p "$dir" && cd "$dir"
  if [[ ! -f go.mod ]]; then
    go mod init testbed/kubernetes >/dev/null 2>&1
    local gomod
    gomod=$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
    # k8s.io/kubernetes replaces its staging modules with local paths; point
    # every one of them at the published release instead.
    local m
    while read -r m; do
      go mod edit -replace "$m=$m@$staging"
    done < <(awk '$2 == "=>" && $3 ~ /^\.\/staging\// {print $1}' "$gomod")
    grep '^godebug' "$gomod" >>go.mod || true
    go mod edit -require "k8s.io/kubernetes@$KUBERNETES_VERSION"
  fi
  # kubelet, kube-proxy and kubeadm for the kind node image (kind-node-image.sh): the same
  # module graph, one build.
  local pkgs=(k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
              k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
              k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kubeadm)
  local ver="k8s.io/component-base/version" cver="k8s.io/client-go/pkg/version" ld="-s -w" p
  for p in "$ver" "$cver"; do
    ld+=" -X $p.gitVersion=$KUBERNETES_VERSION -X $p.gitMajor=1 -X $p.gitMinor=${minor%%.*}"
    ld+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  go get "${pkgs[@]/%/@$KUBERNETES_VERSION}" >/dev/null 2>&1 || go get "${pkgs[@]}"
  go build -trimpath -tags selinux,notest,grpcnotrace -ldflags "$ld" -o "$bin/" "${pkgs[@]}"
}

build_etcd() {
  local dir="$work/etcd-$ETCD_VERSION"
  mkdir -p "$dir" && cd "$dir"
  [[ -f go.mod ]] || go mod init testbed/etcd >/dev/null 2>&1
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" 2>/dev/null || go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  go build -trimpath -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3
}

go_install() {
  GOBIN="$bin" go install -trimpath -ldflags "-s -w" "$1"
}

if [[ ! -f $stamp || "$(cat "$stamp")" != "$want" ]]; then
  rm -f "$stamp"
  log "kubernetes $KUBERNETES_VERSION";   (build_kubernetes)
  log "etcd $ETCD_VERSION";               (build_etcd)
  log "kwok $KWOK_VERSION";               go_install "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  log "metrics-server $METRICS_SERVER_VERSION"; go_install "sigs.k8s.io/metrics-server/cmd/metrics-server@$METRICS_SERVER_VERSION"
  log "kind $KIND_VERSION";               go_install "sigs.k8s.io/kind@$KIND_VERSION"
  # kubernetes.core reads `helm version`: the release's own version string, as its release build sets it.
  log "helm $HELM_VERSION"
  GOBIN="$bin" go install -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  echo "$want" >"$stamp"
fi
for release in $missing_operators; do
  log "thv-operator $release"
  GOBIN="$work/operator-$release" go install -trimpath -ldflags "-s -w" "github.com/stacklok/toolhive/cmd/thv-operator@$release"
  mv "$work/operator-$release/thv-operator" "$bin/thv-operator-$release"
done
log "done: $bin"

#!/usr/bin/env bash
# kind's node image for an engine that cannot pull (testbed/kind.sh), built here: Debian packages, kind's base
# files from its Go module, and the test bed's Kubernetes binaries (testbed/build.sh) and images
# (testbed/images.sh), with the control plane's images already in the node's containerd. Nothing is pulled.
#
#   kind-node-image.sh name    the image's name, tagged by its inputs
#   kind-node-image.sh build   build it into the Docker engine at DOCKER_HOST
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=testbed/versions.env
source "$here/versions.env"
# shellcheck source=testbed/releases.sh
source "$here/releases.sh"
cache=${TESTBED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/toolhive-k8s-testbed}
bin=${TESTBED_BIN:-$cache/bin}
images="$cache/images"
log() { printf '[kind %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

debian_mirror() { # the Debian mirror this machine's apt uses (debootstrap fetches from it)
  if [[ -n ${TESTBED_DEBIAN_MIRROR:-} ]]; then echo "$TESTBED_DEBIAN_MIRROR"; return; fi
  local mirror
  mirror=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
    awk '/^URIs: *http.*\/debian$/ {print $2; exit} /^deb http[^ ]*\/debian / {print $2; exit}')
  echo "${mirror:-http://deb.debian.org/debian}"
}

node_image_name() { # tagged by its inputs: this script, the node's containerd config, the versions it uses
  local inputs
  inputs=$({ cat "$0" "$here/kind/containerd.toml"
             echo "$KUBERNETES_VERSION $ETCD_VERSION $COREDNS_VERSION $PAUSE_VERSION $KIND_VERSION $DEBIAN_SUITE"; } |
           sha256sum | cut -c1-12)
  echo "localhost/toolhive-testbed/kind-node:$KUBERNETES_VERSION-$inputs"
}

# kube-apiserver, -controller-manager, -scheduler and kube-proxy of KUBERNETES_VERSION under the names kubeadm
# asks for; etcd and CoreDNS under the test bed's own names (their versions are not the ones kubeadm names).
control_plane_images() { # DIR ROOTFS : docker archives of the control plane's images in DIR
  local out=$1 rootfs=$2 c
  for c in kube-apiserver kube-controller-manager kube-scheduler; do
    rm -rf "${out:?}/$c" && mkdir -p "$out/$c/usr/local/bin"
    cp "$bin/$c" "$out/$c/usr/local/bin/"
    python3 "$here/images/mkimage.py" "$out/$c.tar" "registry.k8s.io/$c:$KUBERNETES_VERSION" "$out/$c" >/dev/null
  done
  rm -rf "$out/etcd" && mkdir -p "$out/etcd/usr/local/bin" "$out/etcd/var/lib/etcd"
  cp "$bin/etcd" "$out/etcd/usr/local/bin/"
  python3 "$here/images/mkimage.py" "$out/etcd.tar" "localhost/toolhive-testbed/etcd:$ETCD_VERSION" "$out/etcd" >/dev/null
  # kube-proxy programs the node's iptables: the node's own iptables, nft and conntrack with their libraries.
  local p="$out/kube-proxy"
  rm -rf "$p" && mkdir -p "$p/usr/local/bin"
  tar -C "$rootfs" -c --exclude ./usr/lib/systemd --exclude ./usr/lib/udev --exclude './usr/sbin/containerd*' \
    ./usr/sbin ./usr/lib ./usr/lib64 ./etc/alternatives | tar -C "$p" -x
  ln -s usr/sbin "$p/sbin" && ln -s usr/lib "$p/lib" && ln -s usr/lib64 "$p/lib64" && mkdir -p "$p/usr/bin" "$p/tmp"
  ln -sf /etc/alternatives/iptables "$p/usr/sbin/iptables"
  cp "$bin/kube-proxy" "$p/usr/local/bin/"
  python3 "$here/images/mkimage.py" "$out/kube-proxy.tar" "registry.k8s.io/kube-proxy:$KUBERNETES_VERSION" "$p" >/dev/null
}

remove_work() { # DIR : a build folder, after unmounting whatever a failed debootstrap left mounted in it
  local mount
  [[ -d $1 ]] || return 0
  findmnt -rn -o TARGET | grep "^$1/" | sort -r | while read -r mount; do umount -l "$mount"; done
  rm -rf --one-file-system "${1:?}"
}

build_node_image() { # kind's node image from Debian packages, kind's base files and the test bed's binaries
  local image work="$cache/kind-node-build" kind_dir t=$SECONDS
  image=$(node_image_name)
  command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null ||
    die "the node image needs debootstrap (Debian package debootstrap)"
  kind_dir=$(cd "$cache/modules" && module_dir "sigs.k8s.io/kind@$KIND_VERSION")
  [[ -d $kind_dir/images/base/files ]] || die "sigs.k8s.io/kind@$KIND_VERSION's base files could not be read"
  remove_work "$work" && mkdir -p "$work"
  local r="$work/rootfs"
  log "node image $image: Debian $DEBIAN_SUITE root filesystem"
  # kind's base image packages (images/base/Dockerfile), with Debian's containerd and runc instead of builds of
  # kind's pinned ones, and Debian's CNI plugins.
  debootstrap --variant=minbase --include=systemd,dbus,containerd,runc,containernetworking-plugins,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz,e2fsprogs,bash,ca-certificates,curl,jq,procps,socat \
    "$DEBIAN_SUITE" "$r" "$(debian_mirror)" >"$work/debootstrap.log" 2>&1 ||
    { tail -n 20 "$work/debootstrap.log" >&2; die "debootstrap of Debian $DEBIAN_SUITE failed"; }
  chroot "$r" apt-get clean
  rm -rf "${r:?}"/var/lib/apt/lists/* "${r:?}"/usr/share/{doc,man,locale} "${r:?}"/dev/*
  # kind's base files and its base Dockerfile's systemd set-up.
  local f="$kind_dir/images/base/files"
  cp -r "$f/kind" "$r/kind" && chmod -R u+w "$r/kind" && chmod 755 "$r/kind" "$r"/kind/bin/*
  install -m 0755 "$f/usr/local/bin/entrypoint" "$f/usr/local/bin/clean-install" "$r/usr/local/bin/"
  install -m 0644 "$f/etc/crictl.yaml" "$r/etc/"
  install -m 0644 "$f"/etc/default/* "$r/etc/default/"
  install -m 0644 "$f"/etc/sysctl.d/* "$r/etc/sysctl.d/"
  mkdir -p "$r/etc/systemd/system/kubelet.service.d" "$r/etc/containerd" "$r/etc/kubernetes/manifests" "$r/opt/cni/bin" "$r/etc/cni/net.d"
  install -m 0644 "$f"/etc/systemd/system/{kubelet.service,kubelet.slice,undo-mount-hacks.service} "$r/etc/systemd/system/"
  install -m 0644 "$f"/etc/systemd/system/kubelet.service.d/* "$r/etc/systemd/system/kubelet.service.d/"
  sed 's|^ExecStart=/usr/local/bin/containerd|ExecStart=/usr/bin/containerd|' "$f/etc/systemd/system/containerd.service" \
    >"$r/etc/systemd/system/containerd.service"
  install -m 0644 "$here/kind/containerd.toml" "$r/etc/containerd/config.toml"
  # The node's containerd cannot pull either: every image is in the node image or loaded by `kind load`.
  mkdir -p "$r/etc/systemd/system/containerd.service.d"
  printf '[Service]\nEnvironment=HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 NO_PROXY=\n' \
    >"$r/etc/systemd/system/containerd.service.d/no-pull.conf"
  ctr oci spec | jq '.hooks.createContainer[.hooks.createContainer | length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' |
    jq 'del(.process.rlimits)' >"$r/etc/containerd/cri-base.json"
  find "$r/lib/systemd/system/sysinit.target.wants/" -name systemd-tmpfiles-setup.service -delete
  rm -f "$r"/lib/systemd/system/multi-user.target.wants/* "$r"/etc/systemd/system/*.wants/* \
    "$r"/lib/systemd/system/local-fs.target.wants/* "$r"/lib/systemd/system/sockets.target.wants/*udev* \
    "$r"/lib/systemd/system/sockets.target.wants/*initctl* "$r"/lib/systemd/system/basic.target.wants/*
  echo "ReadKMsg=no" >>"$r/etc/systemd/journald.conf"
  ln -sf /usr/lib/systemd/systemd "$r/sbin/init"
  chroot "$r" systemctl enable kubelet.service containerd.service undo-mount-hacks.service >/dev/null 2>&1
  chroot "$r" systemctl mask systemd-binfmt.service >/dev/null 2>&1
  cp -a "$r"/usr/lib/cni/. "$r/opt/cni/bin/"
  # Kubernetes.
  install -m 0755 "$bin/kubelet" "$bin/kubeadm" "$bin/kubectl" "$r/usr/bin/"
  echo "$KUBERNETES_VERSION" >"$r/kind/version"
  # The control plane's images, imported into the node's containerd store by a containerd of this host run on
  # the node's root (the same Debian containerd release), so that nothing is pulled when the node starts.
  log "node image $image: control-plane images"
  control_plane_images "$work/images" "$r"
  local ctrd="$work/ctrd"
  mkdir -p "$ctrd"
  printf 'version = 2\nroot = "%s"\nstate = "%s"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "%s"\n[plugins."io.containerd.internal.v1.opt"]\n  path = "%s"\n' \
    "$r/var/lib/containerd" "$ctrd/state" "$ctrd/sock" "$ctrd/opt" >"$ctrd/config.toml"
  containerd --config "$ctrd/config.toml" >"$ctrd/log" 2>&1 &
  local ctrd_pid=$! i archive
  for i in $(seq 100); do [[ -S $ctrd/sock ]] && break; sleep 0.1; done
  for archive in "$work"/images/*.tar "$images/pause.tar" "$images/coredns.tar"; do
    ctr -a "$ctrd/sock" -n k8s.io images import --no-unpack --digests "$archive" >/dev/null
  done
  ctr -a "$ctrd/sock" -n k8s.io images ls -q | while read -r i; do
    ctr -a "$ctrd/sock" -n k8s.io images label "$i" io.cri-containerd.pinned=pinned >/dev/null
  done
  kill "$ctrd_pid"; wait "$ctrd_pid" 2>/dev/null || true
  log "node image $image: packing"
  python3 "$here/images/mkimage.py" "$work/node.tar" "$image" "$r" --entrypoint '["/usr/local/bin/entrypoint", "/sbin/init"]' \
    --env container=docker --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --stop-signal SIGRTMIN+3 >/dev/null
  docker load -i "$work/node.tar" >/dev/null
  remove_work "$work"
  # Earlier builds (other inputs) only take space.
  docker images --format '{{.Repository}}:{{.Tag}}' "${image%:*}" | grep -vxF "$image" | xargs -r docker rmi >/dev/null || true
  log "node image $image built in $((SECONDS - t))s"
}

case ${1:-} in
  name) node_image_name ;;
  build) build_node_image ;;
  *) echo "usage: $0 name|build" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Checks that this machine can run the test bed's real node and installs the
# Debian packages it needs (the same list as bindep.txt, profile "node").
# Prints one line saying exactly what is missing and what to do, and exits 1,
# when the node cannot run here. Called by cluster.sh before anything starts.
#
#   setup-node.sh         the real node's checks and packages
#   setup-node.sh guard   only the egress guard's (iptables, nf_tables): a KWOK-only bed's
set -euo pipefail

guard_packages=(iptables nftables)
packages=(containerd runc containernetworking-plugins "${guard_packages[@]}" conntrack socat
          busybox-static redis-tools gcc libc6-dev python3-venv)

subject="real node" # what cannot run when a check fails: the real node, or (setup-node.sh guard) the egress guard
die() { printf '%s unavailable: %s\n' "$subject" "$*" >&2; exit 1; }

install_missing() { # PACKAGE... : apt-get install those not installed yet
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  command -v apt-get >/dev/null ||
    die "missing packages ${missing[*]} and no apt-get: install them (see bindep.txt) or set TESTBED_NODES=kwok"
  printf '[setup-node] installing %s\n' "${missing[*]}" >&2
  # No recommends: criu and friends are not needed. No package here starts a
  # daemon without systemd, and containerd's unit is never started by us.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null ||
    { apt-get update -q >/dev/null &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; } ||
    die "apt-get install ${missing[*]} failed"
}

# Only the nft backend: iptables-legacy rules would sit beside kube-proxy's
# nft rules where neither `iptables` nor the guard's checks see them.
check_iptables() {
  iptables -V 2>/dev/null | grep -q nf_tables ||
    die "iptables is not the nf_tables variant ($(iptables -V 2>&1)); select it: update-alternatives --set iptables /usr/sbin/iptables-nft"
  iptables -w 5 -S OUTPUT >/dev/null 2>&1 || die "iptables cannot read the filter table: $(iptables -S OUTPUT 2>&1 | tail -1)"
}

if [[ ${1:-} == guard ]]; then
  subject="egress guard"
  [[ $(id -u) == 0 ]] || die "it needs root (iptables)"
  install_missing "${guard_packages[@]}"
  check_iptables
  exit 0
fi

[[ $(id -u) == 0 ]] ||
  die "it needs root (network namespaces, iptables, cgroups, mounts); run as root or set TESTBED_NODES=kwok"
[[ $(uname -s) == Linux ]] || die "it needs Linux; set TESTBED_NODES=kwok"
grep -qw overlay /proc/filesystems ||
  die "the kernel has no overlay filesystem (containerd's snapshotter); set TESTBED_NODES=kwok"
[[ -d /proc/sys/net/bridge ]] ||
  die "the kernel has no bridge netfilter (br_netfilter); load it (modprobe br_netfilter) or set TESTBED_NODES=kwok"
[[ -d /sys/fs/cgroup/memory || -f /sys/fs/cgroup/cgroup.controllers ]] ||
  die "no memory cgroup under /sys/fs/cgroup; set TESTBED_NODES=kwok"

# images.sh builds the npm server the example runs with node and npm: any Node.js that has both will do
# (NodeSource's nodejs brings npm; Debian's needs its npm package).
node_packages=()
command -v npm >/dev/null && command -v node >/dev/null || node_packages=(nodejs npm)
install_missing "${packages[@]}" "${node_packages[@]}"
check_iptables

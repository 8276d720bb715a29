#!/usr/bin/env bash
# Checks that this machine can run the test bed's real node and installs the
# Debian packages it needs (the same list as bindep.txt, profile "node").
# Prints one line saying exactly what is missing and what to do, and exits 1,
# when the node cannot run here. Called by cluster.sh before anything starts.
set -euo pipefail

packages=(containerd runc containernetworking-plugins iptables nftables conntrack socat
          busybox-static redis-tools gcc libc6-dev python3-venv)

die() { printf 'real node unavailable: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) == 0 ]] ||
  die "it needs root (network namespaces, iptables, cgroups, mounts); run as root or set TESTBED_NODES=kwok"
[[ $(uname -s) == Linux ]] || die "it needs Linux; set TESTBED_NODES=kwok"
grep -qw overlay /proc/filesystems ||
  die "the kernel has no overlay filesystem (containerd's snapshotter); set TESTBED_NODES=kwok"
[[ -d /proc/sys/net/bridge ]] ||
  die "the kernel has no bridge netfilter (br_netfilter); load it (modprobe br_netfilter) or set TESTBED_NODES=kwok"
[[ -d /sys/fs/cgroup/memory || -f /sys/fs/cgroup/cgroup.controllers ]] ||
  die "no memory cgroup under /sys/fs/cgroup; set TESTBED_NODES=kwok"

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# images.sh builds the npm server the example runs with node and npm: any Node.js that has both will do
# (NodeSource's nodejs brings npm; Debian's needs its npm package).
command -v npm >/dev/null && command -v node >/dev/null || missing+=(nodejs npm)
if ((${#missing[@]})); then
  command -v apt-get >/dev/null ||
    die "missing packages ${missing[*]} and no apt-get: install them (see bindep.txt) or set TESTBED_NODES=kwok"
  printf '[setup-node] installing %s\n' "${missing[*]}" >&2
  # No recommends: criu and friends are not needed. No package here starts a
  # daemon without systemd, and containerd's unit is never started by us.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null ||
    { apt-get update -q >/dev/null &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; } ||
    die "apt-get install ${missing[*]} failed"
fi

# Only the nft backend: iptables-legacy rules would sit beside kube-proxy's
# nft rules where neither `iptables` nor the guard's checks see them.
iptables -V 2>/dev/null | grep -q nf_tables ||
  die "iptables is not the nf_tables variant ($(iptables -V 2>&1)); select it: update-alternatives --set iptables /usr/sbin/iptables-nft"
iptables -w 5 -S OUTPUT >/dev/null 2>&1 || die "iptables cannot read the filter table: $(iptables -S OUTPUT 2>&1 | tail -1)"

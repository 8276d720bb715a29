#!/usr/bin/env bash
# Installs the Debian packages a part of the test bed needs (the same lists as bindep.txt's profiles), or prints
# one line saying exactly what is missing and what to do, and exits 1.
#
#   packages.sh guard    the process bed's egress guard: iptables, nf_tables (root)
#   packages.sh images   what testbed/images.sh builds images with: gcc, busybox, redis-tools, python3-venv, node
#   packages.sh engine   the kind bed's own Docker engine and node image: docker.io, containerd, runc, iptables,
#                        jq, debootstrap (root; no service is started)
set -euo pipefail

subject=${1:-}
die() { printf '%s unavailable: %s\n' "${subject:-test bed}" "$*" >&2; exit 1; }

install_missing() { # PACKAGE... : apt-get install those not installed yet
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  [[ $(id -u) == 0 ]] || die "missing packages ${missing[*]}: install them (bindep.txt) or run as root"
  command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get: install them (see bindep.txt)"
  printf '[packages] installing %s\n' "${missing[*]}" >&2
  # No recommends. No package here starts a daemon without systemd, and no unit of them is ever started by us.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null ||
    { apt-get update -q >/dev/null &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; } ||
    die "apt-get install ${missing[*]} failed"
}

# Only the nft backend: iptables-legacy rules would sit beside nft rules where neither `iptables` nor the guards'
# checks see them.
check_iptables() {
  iptables -V 2>/dev/null | grep -q nf_tables ||
    die "iptables is not the nf_tables variant ($(iptables -V 2>&1)); select it: update-alternatives --set iptables /usr/sbin/iptables-nft"
  iptables -w 5 -S OUTPUT >/dev/null 2>&1 || die "iptables cannot read the filter table: $(iptables -S OUTPUT 2>&1 | tail -1)"
}

case $subject in
  guard)
    subject="egress guard"
    [[ $(id -u) == 0 ]] || die "it needs root (iptables)"
    install_missing iptables nftables
    check_iptables
    ;;
  images)
    # images.sh builds the npm server the example runs with node and npm: any Node.js that has both will do
    # (NodeSource's nodejs brings npm; Debian's needs its npm package).
    node_packages=()
    command -v npm >/dev/null && command -v node >/dev/null || node_packages=(nodejs npm)
    install_missing busybox-static redis-tools gcc libc6-dev python3-venv "${node_packages[@]}"
    ;;
  engine)
    subject="kind bed's engine"
    [[ $(id -u) == 0 ]] ||
      die "it needs root (its own Docker engine, iptables); start your own Docker engine instead (https://docs.docker.com/engine/install/)"
    grep -qw overlay /proc/filesystems || die "the kernel has no overlay filesystem (Docker's storage driver)"
    install_missing docker.io containerd runc iptables nftables jq debootstrap
    check_iptables
    ;;
  *) echo "usage: $0 guard|images|engine" >&2; exit 2 ;;
esac

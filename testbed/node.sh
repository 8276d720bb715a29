#!/usr/bin/env bash
# The test bed's real node: containerd + runc + a CNI bridge, kubelet and
# kube-proxy as local processes beside cluster.sh's control plane, CoreDNS as a
# pod. One per machine (kube-proxy owns the host's KUBE-* rules).
#
#   node.sh guard     the egress guard; cluster.sh runs it before any component
#   node.sh runtime   bridge, containerd, images imported (no API server needed)
#   node.sh join      certificates, kubelet, kube-proxy, Service kubernetes, CoreDNS
#   node.sh down      everything above removed, the guard last; sysctls restored
#   node.sh status
#
# Nothing may leave this machine: a ClusterIP or pod address that kube-proxy has
# not translated would follow the default route out. The guard rejects traffic
# to the service range, the pod range (off the bridge) and KWOK's fake pod range
# on OUTPUT and FORWARD, and a mangle/POSTROUTING chain drops (and counts) any
# such packet that is about to leave on another interface. No MASQUERADE (CNI
# ipMasq false), no DNS forwarding, no image pulls (containerd's proxy is a
# closed local port), no pods on the host network.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
# shellcheck source=testbed/versions.env
source "$here/versions.env"

state=${TESTBED_STATE:-$repo/.cluster}
cache=${TESTBED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/toolhive-k8s-testbed}
bin=${TESTBED_BIN:-$cache/bin}
port_base=${TESTBED_PORT_BASE:-26400}
api_port=$((port_base + 43))
kubelet_port=$((port_base + 10)) kubelet_healthz_port=$((port_base + 11))
proxy_metrics_port=$((port_base + 12)) proxy_healthz_port=$((port_base + 13))
stream_port=$((port_base + 20))
node_name=realnode
# Must match cluster.sh: the API server's service range and KWOK's --cidr.
service_cidr=10.96.0.0/16 dns_ip=10.96.0.10 kwok_pod_cidr=10.244.0.0/16
pod_cidr=10.240.0.0/24 gateway=10.240.0.1 bridge=thvbr0

d="$state/node" pki="$state/pki" logs="$state/logs" pids="$state/pids"
sock="$d/containerd/containerd.sock"
kubeconfig="$state/kubeconfig"
guard=TESTBED-EGRESS-GUARD forward=TESTBED-EGRESS-FORWARD reject=TESTBED-EGRESS-REJECT
audit=TESTBED-EGRESS-AUDIT
# Host paths that containerd, runc, CNI and the kubelet use whatever they are told.
host_paths=(/run/containerd /var/lib/cni /var/log/containers /var/lib/kubelet /run/netns /etc/cni /opt/cni)
# Sysctls the kubelet, kube-proxy and the bridge plugin set.
sysctls=(net.ipv4.ip_forward net.ipv4.conf.all.forwarding net.ipv4.conf.default.forwarding
         net.ipv4.conf.all.route_localnet net.ipv6.conf.all.forwarding
         net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables
         vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
         kernel.keys.root_maxkeys kernel.keys.root_maxbytes
         net.netfilter.nf_conntrack_max net.netfilter.nf_conntrack_tcp_timeout_established
         net.netfilter.nf_conntrack_tcp_timeout_close_wait)
node_components=(api-forward kube-proxy kubelet containerd)

log() { printf '[node %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
ipt() { iptables -w 5 "$@"; }
kc() { "$bin/kubectl" --kubeconfig "$kubeconfig" "$@"; }
ctr_() { ctr --address "$sock" --namespace k8s.io "$@"; }
alive() { [[ -f "$pids/$1" ]] && kill -0 "$(cat "$pids/$1")" 2>/dev/null; }

start() { # start NAME COMMAND... : detached, pid recorded (as cluster.sh does)
  local name=$1; shift
  alive "$name" && return 0
  setsid "$@" >"$logs/$name.log" 2>&1 </dev/null &
  echo $! >"$pids/$name"
}

stop_pid() { # stop_pid PID : TERM, then KILL after 10 s; returns once it is gone
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
}

stop() { # stop NAME : the recorded process, waited for
  [[ -f "$pids/$1" ]] || return 0
  stop_pid "$(cat "$pids/$1")"
  rm -f "$pids/$1"
}

wait_for() { # wait_for NAME SECONDS COMMAND... : poll; on timeout show NAME's log
  local name=$1 seconds=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ! alive "$name" || ((SECONDS >= deadline)); then
      log "FAILED: $name did not become ready; last lines of $logs/$name.log:"
      tail -n 30 "$logs/$name.log" >&2 2>/dev/null || true
      exit 1
    fi
    sleep 0.2
  done
}

put() { # put FILE < CONTENT : replace FILE only when the content differs
  # (kube-proxy exits whenever its config file is written, even unchanged).
  local tmp
  tmp=$(mktemp "$1.XXXXXX")
  cat >"$tmp"
  if cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv "$tmp" "$1"; fi
}

fill() { # fill TEMPLATE : the template with @NAME@ placeholders filled in
  sed -e "s|@NODE@|$d|g" -e "s|@BRIDGE@|$bridge|g" -e "s|@POD_CIDR@|$pod_cidr|g" \
    -e "s|@GATEWAY@|$gateway|g" -e "s|@STREAM_PORT@|$stream_port|g" -e "s|@API_PORT@|$api_port|g" \
    -e "s|@DNS_IP@|$dns_ip|g" -e "s|@PAUSE_IMAGE@|$(image pause)|g" \
    -e "s|@COREDNS_IMAGE@|$(image coredns)|g" "$here/node/$1"
}

image() { "$here/images.sh" names | grep -m1 "/$1:"; }

# --- the egress guard ---------------------------------------------------------

guard_owner() { # the state directory of the test bed whose guard is installed, if any
  { ipt -S "$guard" 2>/dev/null || true; } | sed -n 's/.*--comment "\{0,1\}owner=\([^"]*\)"\{0,1\}.*/\1/p' | head -n1
}

guard() {
  local owner
  owner=$(guard_owner)
  if [[ -n $owner && $owner != "$state" && -d $owner/node ]]; then
    die "the real node of another test bed is running ($owner): one real node per machine; bring that one down first (TESTBED_STATE=$owner testbed/cluster.sh down)"
  fi
  # Unix socket paths are limited to 107 bytes (containerd counts 104); the longest of ours
  # is the node directory + /containerd/containerd.sock.ttrpc or /kubelet/device-plugins/kubelet.sock.
  ((${#d} <= 60)) ||
    die "the state directory's path is too long for the node's sockets ($d: ${#d} > 60 characters); set a shorter TESTBED_STATE"
  mkdir -p "$d" "$logs" "$pids"
  # What to put back at `down`; taken once, before anything of ours changed it.
  if [[ ! -f $d/sysctl.before ]]; then
    local k p
    for k in "${sysctls[@]}"; do
      sysctl -n "$k" >/dev/null 2>&1 && printf '%s=%s\n' "$k" "$(sysctl -n "$k" | tr '\t' ' ')"
    done >"$d/sysctl.before"
    for p in "${host_paths[@]}"; do [[ -e $p ]] || echo "$p"; done >"$d/created-paths"
    nft list tables 2>/dev/null >"$d/nft-tables.before" || true
  fi
  local c
  for c in "$reject" "$guard" "$forward"; do ipt -N "$c" 2>/dev/null || ipt -F "$c"; done
  # Seen, rate-limited, in the kernel log: what tried to get out.
  ipt -A "$reject" -m limit --limit 6/min --limit-burst 10 -j LOG --log-prefix "$guard: "
  ipt -A "$reject" -j REJECT --reject-with icmp-admin-prohibited
  # Loopback never leaves (a local address, the gateway's included, routes through lo).
  ipt -A "$guard" -o lo -j RETURN
  ipt -A "$guard" -d "$service_cidr" -j "$reject"            # a ClusterIP kube-proxy did not translate
  ipt -A "$guard" -d "$kwok_pod_cidr" -j "$reject"           # KWOK's pods have no network at all
  ipt -A "$guard" -d "$pod_cidr" ! -o "$bridge" -j "$reject" # pod addresses live on the bridge only
  ipt -A "$guard" -s "$pod_cidr" ! -o "$bridge" -j "$reject" # pods talk to the bridge and this host only
  ipt -A "$guard" -m comment --comment "owner=$state"        # no target: names the owner
  ipt -A "$forward" -i "$bridge" ! -o "$bridge" -j "$reject" # whatever a pod forges as its source
  ipt -A "$forward" -j "$guard"
  # Last line, after every filter rule and before NAT: drop what is about to leave.
  ipt -t mangle -N "$audit" 2>/dev/null || ipt -t mangle -F "$audit"
  ipt -t mangle -A "$audit" -o lo -j RETURN
  ipt -t mangle -A "$audit" -o "$bridge" -j RETURN
  for c in "-d $service_cidr" "-d $kwok_pod_cidr" "-d $pod_cidr" "-s $pod_cidr"; do
    # shellcheck disable=SC2086 # "-d CIDR" is two words on purpose
    ipt -t mangle -A "$audit" $c -j DROP
  done
  guard_first
  ipt -t mangle -C POSTROUTING -j "$audit" 2>/dev/null || ipt -t mangle -I POSTROUTING 1 -j "$audit"
  # IPv6: the host does not forward it, and no pod gets an IPv6 address; make sure.
  ip6tables -w 5 -N "$forward" 2>/dev/null || ip6tables -w 5 -F "$forward"
  ip6tables -w 5 -A "$forward" -i "$bridge" -j DROP
  ip6tables -w 5 -A "$forward" -o "$bridge" -j DROP
  ip6tables -w 5 -C FORWARD -j "$forward" 2>/dev/null || ip6tables -w 5 -I FORWARD 1 -j "$forward"
  log "egress guard installed ($guard on OUTPUT, $forward on FORWARD, $audit on mangle POSTROUTING)"
}

guard_first() { # the guard's jumps first in OUTPUT and FORWARD, ahead of kube-proxy's
  # (its KUBE-FORWARD accepts marked and established packets). A new jump goes
  # in at the top before the old one is removed, so there is never a gap.
  local chain target first tag new
  for chain in OUTPUT FORWARD; do
    target=$guard
    [[ $chain == FORWARD ]] && target=$forward
    first=$(ipt -S "$chain" | sed -n 2p)
    [[ $first == *"-j $target" ]] && continue
    tag=$(ipt -S "$chain" | grep -o -- "--comment testbed-guard-[ab] -j $target" | head -n1 | cut -d' ' -f2 || true)
    new=testbed-guard-a
    [[ $tag == testbed-guard-a ]] && new=testbed-guard-b
    ipt -I "$chain" 1 -m comment --comment "$new" -j "$target"
    [[ -z $tag ]] || ipt -D "$chain" -m comment --comment "$tag" -j "$target"
  done
}

guard_installed() {
  ipt -S OUTPUT | grep -q -- "-j $guard\$" && ipt -S FORWARD | grep -q -- "-j $forward\$" &&
    ipt -t mangle -S POSTROUTING | grep -q -- "-j $audit\$"
}

# --- runtime: bridge, containerd, images ---------------------------------------

runtime() {
  guard_installed || die "the egress guard is not installed: run \`node.sh guard\` first"
  mkdir -p "$d/cni/net.d" "$d/containerd" "$d/runc"
  if ! ip link show "$bridge" >/dev/null 2>&1; then ip link add "$bridge" type bridge; fi
  ip addr show dev "$bridge" | grep -q " $gateway/" || ip addr add "$gateway/24" dev "$bridge"
  ip link set "$bridge" up
  fill cni.conflist | put "$d/cni/net.d/10-testbed.conflist"
  fill containerd.toml | put "$d/containerd/config.toml"
  # Pulls go to a closed local port: an image that is not imported fails here, never downloads.
  HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 NO_PROXY='' \
    start containerd containerd --config "$d/containerd/config.toml"
  wait_for containerd 20 ctr --address "$sock" version
  local tar
  for tar in "$cache"/images/*.tar; do
    ctr_ images import "$tar" >/dev/null 2>"$logs/images-import.log" ||
      die "ctr images import $tar: $(cat "$logs/images-import.log")"
  done
  log "containerd up, $(ctr_ images ls -q | grep -vc '^sha256:') images imported"
}

# --- join: kubelet, kube-proxy, cluster objects ------------------------------------

issue_node_cert() { # NAME SUBJECT [SAN] : a fresh key and certificate from the cluster's CA
  local name=$1 subject=$2 san=${3:-}
  openssl ecparam -genkey -name prime256v1 -noout -out "$d/$name.key" 2>/dev/null
  openssl req -new -key "$d/$name.key" -subj "$subject" -out "$d/$name.csr" 2>/dev/null
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=serverAuth,clientAuth"
    [[ -z $san ]] || echo "subjectAltName=$san"
  } >"$d/$name.ext"
  openssl x509 -req -in "$d/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 30 -extfile "$d/$name.ext" -out "$d/$name.crt" 2>/dev/null
}

node_kubeconfig() { # FILE CERT
  put "$1" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: testbed, cluster: {server: "https://127.0.0.1:$api_port", certificate-authority: "$pki/ca.crt"}}]
users: [{name: $2, user: {client-certificate: "$d/$2.crt", client-key: "$d/$2.key"}}]
contexts: [{name: testbed, context: {cluster: testbed, user: $2}}]
current-context: testbed
EOF
}

node_ready() {
  [[ $(kc get node "$node_name" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}') == True ]]
}

dns_ready() {
  [[ $(kc -n kube-system get deploy coredns -o jsonpath='{.status.readyReplicas}') == 1 ]]
}

join() {
  alive containerd || die "containerd is not running: run \`node.sh runtime\` first"
  # The CA is new whenever the state directory is: certificates from this one, every time.
  if ! alive kubelet; then
    issue_node_cert kubelet "/O=system:nodes/CN=system:node:$node_name" "IP:$gateway,IP:127.0.0.1,DNS:$node_name"
  fi
  alive kube-proxy || issue_node_cert kube-proxy "/CN=system:kube-proxy"
  node_kubeconfig "$d/kubelet.kubeconfig" kubelet
  node_kubeconfig "$d/kube-proxy.kubeconfig" kube-proxy
  # Pods reach the API server (127.0.0.1 only) through Service kubernetes -> the gateway -> socat.
  start api-forward socat "TCP-LISTEN:$api_port,bind=$gateway,fork,reuseaddr" "TCP:127.0.0.1:$api_port"
  put "$d/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# Kubernetes 1.35 refuses cgroup v1 unless told otherwise; machines like ours have v1.
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$sock
address: $gateway
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $kubelet_healthz_port
tlsCertFile: $d/kubelet.crt
tlsPrivateKeyFile: $d/kubelet.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
clusterDNS: [$dns_ip]
clusterDomain: cluster.local
# No host resolver in pods: CoreDNS answers cluster names and nothing else.
resolvConf: ""
podLogsDir: $d/pod-logs
syncFrequency: 10s
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 110
EOF
  # --containerd: cadvisor dials /run/containerd/containerd.sock otherwise.
  start kubelet "$bin/kubelet" --config "$d/kubelet.yaml" --kubeconfig "$d/kubelet.kubeconfig" \
    --root-dir "$d/kubelet" --hostname-override "$node_name" --node-ip "$gateway" \
    --node-labels toolhive.testbed/node=real --containerd "$sock" --v=1
  put "$d/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $d/kube-proxy.kubeconfig}
mode: iptables
clusterCIDR: $pod_cidr
hostnameOverride: $node_name
bindAddress: $gateway
metricsBindAddress: 127.0.0.1:$proxy_metrics_port
healthzBindAddress: 127.0.0.1:$proxy_healthz_port
# Node ports on the bridge gateway only; never on an outside interface, never on 127.0.0.1
# (that would set route_localnet).
nodePortAddresses: ["$gateway/32"]
# Leave the host's conntrack settings alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
oomScoreAdj: 0
EOF
  start kube-proxy "$bin/kube-proxy" --config "$d/kube-proxy.yaml" --v=1
  fill objects.yaml.in | kc apply -f - >/dev/null
  wait_for kubelet 60 node_ready
  wait_for kube-proxy 30 curl -sf "http://127.0.0.1:$proxy_healthz_port/healthz"
  guard_first
  wait_for kubelet 60 dns_ready
  guard_first
  log "node $node_name Ready, CoreDNS Ready"
}

# --- down ----------------------------------------------------------------------

our_cgroup_dirs() { # the kubelet's pod cgroups in every hierarchy, deepest first
  find /sys/fs/cgroup -maxdepth 2 -type d -name kubepods 2>/dev/null | while read -r top; do
    find "$top" -depth -type d
  done
}

down() {
  # Best effort from here on: one step failing must not leave the others undone.
  set +e +o pipefail
  local pid id k v p c t f owner
  owner=$(guard_owner)
  if [[ -n $owner && $owner != "$state" ]]; then
    # Another test bed's real node holds the host (its guard says so): touch nothing of it.
    for c in "${node_components[@]}"; do stop "$c"; done
    rm -rf "$d"
    return 0
  fi
  # 1. No one restarts containers any more (all three told at once, then waited for).
  for f in kubelet kube-proxy api-forward; do [[ ! -f $pids/$f ]] || kill -TERM "$(cat "$pids/$f")" 2>/dev/null; done
  stop kubelet
  stop kube-proxy
  stop api-forward
  # 2. Every container task, then containerd; shims exit with their last task.
  if alive containerd; then
    for id in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s SIGKILL "$id" 2>/dev/null || true; done
    # containerd's CRI removes some of them itself meanwhile: until none is left (5 s at most).
    for _ in $(seq 25); do
      id=$(ctr_ tasks ls -q 2>/dev/null)
      [[ -n $id ]] || break
      for id in $id; do ctr_ tasks rm -f "$id" >/dev/null 2>&1; done
      sleep 0.2
    done
  fi
  # Processes still in the pods' cgroups are containers of ours: kill them by pid.
  for c in $(our_cgroup_dirs); do
    while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done <"$c/cgroup.procs"
  done
  stop containerd
  # Shims of our containerd (it passes its socket to them) that outlived it.
  for p in /proc/[0-9]*; do
    [[ -r $p/cmdline ]] || continue
    if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q -- "containerd-shim.* -address $sock"; then
      stop_pid "${p#/proc/}"
    fi
  done
  # 3. Mounts under the node's directory (overlay root filesystems, shm, netns, volumes), deepest first.
  awk -v r="$d/" 'index($2, r) == 1 {print $2}' /proc/self/mounts | sort -r | while read -r p; do
    umount "$p" 2>/dev/null || umount -l "$p"
  done
  # 4. Cgroups (empty now).
  for c in $(our_cgroup_dirs); do rmdir "$c" 2>/dev/null || log "cannot remove cgroup $c"; done
  # 5. kube-proxy's and the portmap plugin's rules, then the bridge.
  [[ ! -x $bin/kube-proxy ]] || "$bin/kube-proxy" --cleanup >/dev/null 2>&1 || true
  for t in filter nat mangle; do
    ipt -t "$t" -S 2>/dev/null | grep -E -- '^-A [A-Z]+ .*-j (KUBE|CNI)-' | while read -r rule; do
      # shellcheck disable=SC2086 # a rule as iptables -S prints it is a word list
      eval "ipt -t $t ${rule/-A/-D}" 2>/dev/null || true
    done
    for c in $(ipt -t "$t" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^(KUBE|CNI)-/ {print $2}'); do ipt -t "$t" -F "$c"; done
    for c in $(ipt -t "$t" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^(KUBE|CNI)-/ {print $2}'); do ipt -t "$t" -X "$c"; done
  done
  for t in filter nat mangle; do
    for c in $(ip6tables -w 5 -t "$t" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^(KUBE|CNI)-/ {print $2}'); do
      ip6tables -w 5 -t "$t" -S 2>/dev/null | grep -E -- "^-A [A-Z]+ .*-j $c( |\$)" | while read -r rule; do
        eval "ip6tables -w 5 -t $t ${rule/-A/-D}" 2>/dev/null || true
      done
      ip6tables -w 5 -t "$t" -F "$c"; ip6tables -w 5 -t "$t" -X "$c"
    done
  done
  nft delete table ip kube-proxy 2>/dev/null || true
  nft delete table ip6 kube-proxy 2>/dev/null || true
  ip link del "$bridge" 2>/dev/null || true
  # 6. Sysctls as they were; paths the components made outside the state directory.
  if [[ -f $d/sysctl.before ]]; then
    while IFS='=' read -r k v; do
      [[ $(sysctl -n "$k" 2>/dev/null | tr '\t' ' ') == "$v" ]] || sysctl -qw "$k=$v" || log "cannot restore $k=$v"
    done <"$d/sysctl.before"
  fi
  if [[ -f $d/created-paths ]]; then
    while read -r p; do
      if [[ -e $p ]] && ! grep -q " $p " /proc/self/mounts; then rm -rf "$p"; fi
    done <"$d/created-paths"
  fi
  # 7. The guard goes last: nothing of ours runs any more.
  ipt -S OUTPUT 2>/dev/null | grep -E -- "-j $guard\$" | while read -r rule; do eval "ipt ${rule/-A/-D}"; done
  ipt -S FORWARD 2>/dev/null | grep -E -- "-j $forward\$" | while read -r rule; do eval "ipt ${rule/-A/-D}"; done
  ipt -t mangle -D POSTROUTING -j "$audit" 2>/dev/null || true
  for c in "$forward" "$guard" "$reject"; do ipt -F "$c" 2>/dev/null || true; ipt -X "$c" 2>/dev/null || true; done
  ipt -t mangle -F "$audit" 2>/dev/null || true
  ipt -t mangle -X "$audit" 2>/dev/null || true
  ip6tables -w 5 -D FORWARD -j "$forward" 2>/dev/null || true
  ip6tables -w 5 -F "$forward" 2>/dev/null || true
  ip6tables -w 5 -X "$forward" 2>/dev/null || true
  # iptables-nft leaves the tables it made (now empty) behind: remove those that were not there.
  if [[ -f $d/nft-tables.before ]]; then
    nft list tables 2>/dev/null | while read -r _ family table; do
      grep -qx "table $family $table" "$d/nft-tables.before" && continue
      [[ $table == filter || $table == nat || $table == mangle ]] || continue
      # Empty: no line with a handle but the table's and its chains'.
      nft -a list table "$family" "$table" | grep '# handle' | grep -qvE '^\s*(table|chain) ' ||
        nft delete table "$family" "$table"
    done
  fi
  rm -rf "$d"
}

status() {
  local c
  for c in "${node_components[@]}"; do
    if alive "$c"; then printf '%-24s running (pid %s)\n' "$c" "$(cat "$pids/$c")"
    elif [[ -f "$pids/$c" ]]; then printf '%-24s DEAD (log: %s)\n' "$c" "$logs/$c.log"
    else printf '%-24s not started\n' "$c"
    fi
  done
  if guard_installed 2>/dev/null; then echo "egress guard: installed"; else echo "egress guard: NOT installed"; fi
}

case ${1:-} in
  guard | runtime | join | down | status | guard_first) "$1" ;;
  *) echo "usage: $0 guard|runtime|join|down|status" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# The process test bed: a real Kubernetes control plane and the ToolHive operator
# as local processes on 127.0.0.1 (no Docker). The kind cluster is testbed/kind.sh.
#
#   cluster.sh up       idempotent; prints the `export KUBECONFIG=...` line
#   cluster.sh status   processes, nodes, operator
#   cluster.sh down     stops only the processes it started (by pid), removes state
#
# TESTBED_CRDS_VERSION installs the CRDs of another ToolHive release than the
# operator's (default: the operator's), e.g. the newest, whose controller cannot be
# built here; TESTBED_OPERATOR=none starts no operator: an API-only bed on which the
# collection's manifests are checked by server-side dry run against those CRDs.
# With TESTBED_STATE and TESTBED_PORT_BASE such a bed runs beside the default one.
#
# Its nodes are KWOK's: simulated, pods run no containers (the kind bed runs
# them: testbed/kind.sh). TESTBED_NODES, if set, must say kwok.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
# shellcheck source=testbed/versions.env
source "$here/versions.env"
# shellcheck source=testbed/releases.sh
source "$here/releases.sh"
toolhive_release=$(operator_release kwok)
crds_version=${TESTBED_CRDS_VERSION:-$toolhive_release}
operator=${TESTBED_OPERATOR:-run}
case $operator in run | none) ;; *) echo "TESTBED_OPERATOR must be run or none, not '$operator'" >&2; exit 2 ;; esac

state=${TESTBED_STATE:-$repo/.cluster}
cache=${TESTBED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/toolhive-k8s-testbed}
bin=${TESTBED_BIN:-$cache/bin}
kubeconfig="$state/kubeconfig"
pki="$state/pki" logs="$state/logs" pids="$state/pids"

# Below the kernel's ephemeral port range (32768+), where outgoing connections could take them.
port_base=${TESTBED_PORT_BASE:-26400}
etcd_port=$((port_base + 1)) etcd_peer_port=$((port_base + 2))
api_port=$((port_base + 43)) kcm_port=$((port_base + 57)) sched_port=$((port_base + 59))
kwok_port=$((port_base + 47)) operator_health_port=$((port_base + 81))
metrics_port=$((port_base + 44))
operator_namespace=toolhive-system
case ${TESTBED_NODES:-kwok} in kwok) ;; *) echo "this bed's nodes are KWOK's (TESTBED_NODES=kwok); pods that run: testbed/kind.sh" >&2; exit 2 ;; esac
components=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok metrics-server)
[[ $operator == none ]] || components+=(thv-operator)

log() { printf '[testbed %s] %s\n' "$(date +%T)" "$*" >&2; }
kc() { "$bin/kubectl" --kubeconfig "$kubeconfig" "$@"; }

fail() {
  local component=$1
  log "FAILED: $component did not become ready; last lines of $logs/$component.log:"
  tail -n 40 "$logs/$component.log" >&2 2>/dev/null || true
  exit 1
}

alive() { [[ -f "$pids/$1" ]] && kill -0 "$(cat "$pids/$1")" 2>/dev/null; }

start() { # start NAME BINARY ARGS... : a detached process, its pid recorded
  local name=$1; shift
  if alive "$name"; then return 0; fi
  setsid "$@" >"$logs/$name.log" 2>&1 </dev/null &
  echo $! >"$pids/$name"
}

wait_for() { # wait_for NAME SECONDS COMMAND... : poll until COMMAND succeeds
  local name=$1 seconds=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    alive "$name" || fail "$name"
    ((SECONDS < deadline)) || fail "$name"
    sleep 0.2
  done
}

healthz() { curl -skf --max-time 2 "$1" >/dev/null; }

# --- certificates ---------------------------------------------------------

issue_cert() { # issue_cert NAME SUBJECT [SAN] : key + cert signed by the CA
  local name=$1 subject=$2 san=${3:-}
  openssl ecparam -genkey -name prime256v1 -noout -out "$pki/$name.key" 2>/dev/null
  openssl req -new -key "$pki/$name.key" -subj "$subject" -out "$pki/$name.csr" 2>/dev/null
  local ext="$pki/$name.ext"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "subjectKeyIdentifier=hash"
    echo "authorityKeyIdentifier=keyid"
    echo "extendedKeyUsage=serverAuth,clientAuth"
    [[ -n $san ]] && echo "subjectAltName=$san"
  } >"$ext"
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/${4:-ca}.crt" -CAkey "$pki/${4:-ca}.key" \
    -CAcreateserial -days 365 -extfile "$ext" -out "$pki/$name.crt" 2>/dev/null
}

# The extensions strict X.509 verification (Python 3.13's default) asks of a CA, as kubeadm's CAs have them.
make_ca() {
  openssl ecparam -genkey -name prime256v1 -noout -out "$pki/$1.key" 2>/dev/null
  openssl req -x509 -new -key "$pki/$1.key" -subj "/CN=$1" -days 365 -out "$pki/$1.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,digitalSignature,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" 2>/dev/null
}

make_pki() {
  # A state directory from before the CA carried keyUsage: strict clients refuse it, so it is made anew.
  if [[ -f "$pki/ca.crt" ]] && ! openssl x509 -in "$pki/ca.crt" -noout -ext keyUsage 2>/dev/null | grep -q "Certificate Sign"; then
    rm -rf "$pki"
  fi
  if [[ -f "$pki/admin.crt" ]]; then
    # A state directory from before the API server talked to kubelets.
    [[ -f "$pki/apiserver-kubelet-client.crt" ]] ||
      issue_cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
    return 0
  fi
  mkdir -p "$pki"
  make_ca ca
  make_ca front-proxy-ca
  issue_cert apiserver "/CN=kube-apiserver" \
    "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.96.0.1"
  issue_cert admin "/O=system:masters/CN=toolhive-testbed-admin"
  issue_cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
  # Each component its own user name, so the audit log tells their requests
  # apart from the user's (benchmarks count only the user's).
  local c
  for c in kube-controller-manager kube-scheduler kwok metrics-server thv-operator; do
    issue_cert "client-$c" "/O=system:masters/CN=testbed:$c"
  done
  issue_cert front-proxy-client "/CN=front-proxy-client" "" front-proxy-ca
  issue_cert metrics-server "/CN=metrics-server" "DNS:localhost,IP:127.0.0.1"
  issue_cert kwok "/CN=kwok" "DNS:localhost,IP:127.0.0.1"
  openssl ecparam -genkey -name prime256v1 -noout -out "$pki/sa.key" 2>/dev/null
  openssl ec -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
}

write_kubeconfig() { # write_kubeconfig FILE CERT : a kubeconfig for one client certificate
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: toolhive-testbed
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority: $pki/ca.crt
users:
- name: $2
  user:
    client-certificate: $pki/$2.crt
    client-key: $pki/$2.key
contexts:
- name: toolhive-testbed
  context: {cluster: toolhive-testbed, user: $2}
current-context: toolhive-testbed
EOF
  chmod 600 "$1"
}

write_kubeconfigs() {
  write_kubeconfig "$kubeconfig" admin
  local c
  for c in kube-controller-manager kube-scheduler kwok metrics-server thv-operator; do
    write_kubeconfig "$state/kubeconfig-$c" "client-$c"
  done
}

# --- components -----------------------------------------------------------

start_etcd() {
  start etcd "$bin/etcd" --name testbed --data-dir "$state/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-cluster "testbed=http://127.0.0.1:$etcd_peer_port" \
    --unsafe-no-fsync=true --quota-backend-bytes=4294967296 --log-level=warn
}

start_apiserver() {
  cat >"$state/audit-policy.yaml" <<'EOF'
# Metadata for every request: enough to count API calls in benchmarks.
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
EOF
  start kube-apiserver "$bin/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --authorization-mode Node,RBAC --allow-privileged=true \
    --service-cluster-ip-range 10.96.0.0/16 --endpoint-reconciler-type none \
    --requestheader-client-ca-file "$pki/front-proxy-ca.crt" \
    --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "$pki/front-proxy-client.crt" --proxy-client-key-file "$pki/front-proxy-client.key" \
    --audit-policy-file "$state/audit-policy.yaml" --audit-log-path "$logs/audit.log" \
    --audit-log-maxsize 200 --audit-log-maxbackup 1 \
    --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types InternalIP,Hostname \
    --profiling=false --v=1
}

start_controller_manager() {
  local config="$state/kubeconfig-kube-controller-manager"
  start kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig "$config" --authentication-kubeconfig "$config" --authorization-kubeconfig "$config" \
    --bind-address 127.0.0.1 --secure-port "$kcm_port" --leader-elect=false \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
    --use-service-account-credentials=true \
    --horizontal-pod-autoscaler-sync-period 5s \
    --horizontal-pod-autoscaler-downscale-stabilization 30s \
    --kube-api-qps 200 --kube-api-burst 400 --concurrent-deployment-syncs 10 --concurrent-statefulset-syncs 10 \
    --profiling=false --v=1
}

start_scheduler() {
  local config="$state/kubeconfig-kube-scheduler"
  start kube-scheduler "$bin/kube-scheduler" \
    --kubeconfig "$config" --authentication-kubeconfig "$config" --authorization-kubeconfig "$config" \
    --bind-address 127.0.0.1 --secure-port "$sched_port" --leader-elect=false --profiling=false --v=1
}

kwok_stages() { # KWOK's own stage and metric files, from its module: node and pod
  # lifecycles, plus kubelet-style resource metrics fed by pod annotations
  # (kwok.x-k8s.io/usage-cpu) so that metrics-server and the HPA see CPU usage.
  local dir file
  dir=$(module_dir "sigs.k8s.io/kwok@$KWOK_VERSION")
  for file in stage/node/fast/node-initialize stage/node/heartbeat-with-lease/node-heartbeat-with-lease \
    stage/pod/fast/pod-ready stage/pod/fast/pod-complete stage/pod/fast/pod-delete \
    metrics/resource/metrics-resource metrics/usage/usage-from-annotation; do
    cat "$dir/kustomize/$file.yaml"
    echo "---"
  done
}

start_kwok() {
  local config="$state/kubeconfig-kwok"
  mkdir -p "$state/kwok"
  [[ -s "$state/kwok/stages.yaml" ]] || kwok_stages >"$state/kwok/stages.yaml"
  KWOK_WORKDIR="$state/kwok" start kwok "$bin/kwok" \
    --kubeconfig "$config" --config "$state/kwok/stages.yaml" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
    --node-ip 127.0.0.1 --node-port "$kwok_port" --server-address "127.0.0.1:$kwok_port" \
    --tls-cert-file "$pki/kwok.crt" --tls-private-key-file "$pki/kwok.key" \
    --node-lease-duration-seconds 40 --cidr 10.244.0.0/16
}

create_nodes() {
  local i
  for i in 0 1 2; do
    cat <<EOF
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
    metrics.k8s.io/resource-metrics-path: /metrics/nodes/kwok-node-$i/metrics/resource
  labels:
    kubernetes.io/hostname: kwok-node-$i
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
spec: {}
status:
  allocatable: {cpu: "64", memory: 256Gi, pods: "500"}
  capacity: {cpu: "64", memory: 256Gi, pods: "500"}
---
EOF
  done | kc apply -f - >/dev/null
}

install_crds() {
  local dir
  dir=$(toolhive_module_dir "$crds_version") || exit 1
  [[ $crds_version == "$toolhive_release" ]] || log "CRDs of ToolHive $crds_version (operator: ${operator/run/$toolhive_release})"
  kc apply --server-side --force-conflicts --field-manager toolhive-testbed \
    -f "$dir/deploy/charts/operator-crds/files/crds/" >/dev/null
  kc wait --for condition=Established --timeout 60s crd -l '!nonexistent' >/dev/null 2>&1 ||
    kc wait --for condition=Established --timeout 60s crd --all >/dev/null
  # Established is not served: the API server builds each CR's storage afterwards (seconds
  # for the large CRDs on a busy machine) and answers 429 until then. Wait until all list.
  local resources
  resources=$(kc get crd -o name | sed -n 's#.*/\(.*\.toolhive\.stacklok\.dev\)$#\1#p' | paste -sd,)
  wait_for kube-apiserver 120 kc get "$resources" -A --request-timeout 10s
}

start_operator() {
  local config="$state/kubeconfig-thv-operator"
  kc get namespace "$operator_namespace" >/dev/null 2>&1 || kc create namespace "$operator_namespace" >/dev/null
  POD_NAMESPACE=$operator_namespace TOOLHIVE_SKIP_UPDATE_CHECK=true \
    TOOLHIVE_RUNNER_IMAGE="ghcr.io/stacklok/toolhive/proxyrunner:$toolhive_release" \
    VMCP_IMAGE="ghcr.io/stacklok/toolhive/vmcp:$toolhive_release" \
    KUBECONFIG="$config" \
    start thv-operator "$bin/thv-operator-$toolhive_release" \
    --kubeconfig "$config" --metrics-bind-address 0 \
    --health-probe-bind-address "127.0.0.1:$operator_health_port"
}

# metrics-server scrapes KWOK's simulated kubelet metrics and serves
# metrics.k8s.io, so the HPA controller sees pods' (annotated) CPU usage.
start_metrics_server() {
  local config="$state/kubeconfig-metrics-server"
  [[ -x "$bin/metrics-server" ]] || return 0
  start metrics-server "$bin/metrics-server" \
    --kubeconfig "$config" --authentication-kubeconfig "$config" --authorization-kubeconfig "$config" \
    --bind-address 127.0.0.1 --secure-port "$metrics_port" \
    --tls-cert-file "$pki/metrics-server.crt" --tls-private-key-file "$pki/metrics-server.key" \
    --kubelet-insecure-tls --kubelet-use-node-status-port --kubelet-preferred-address-types InternalIP \
    --metric-resolution 10s --kubelet-request-timeout 5s
  kc apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Service
metadata: {name: metrics-server, namespace: kube-system}
spec:
  type: ExternalName
  externalName: localhost
  ports: [{name: https, port: $metrics_port}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.metrics.k8s.io}
spec:
  group: metrics.k8s.io
  version: v1beta1
  groupPriorityMinimum: 100
  versionPriority: 100
  insecureSkipTLSVerify: true
  service: {name: metrics-server, namespace: kube-system, port: $metrics_port}
EOF
}

nodes_ready() {
  local ready
  ready=$(kc get nodes -l type=kwok -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True)
  ((ready >= 3))
}

# --- commands -------------------------------------------------------------

running() { # every component alive and the API server answering
  local c
  for c in "${components[@]}"; do
    [[ $c == metrics-server && ! -f "$pids/metrics-server" ]] && continue
    alive "$c" || return 1
  done
  kc get --raw /readyz >/dev/null 2>&1
}

stop_leftovers() { # processes of an earlier run that are still alive: stopped, waited for
  local f pid
  for f in "$pids"/*; do
    [[ -f $f ]] || continue
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
      while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    rm -f "$f"
  done
}

# The API server's service and pod proxies dial the addresses KWOK hands out, which no interface here owns: they
# would follow the default route out. This chain rejects them on this host. Host-wide, so one bed installs it (its
# state names it) and only that bed removes it.
kwok_guard=TESTBED-KWOK-GUARD
kwok_guard_up() {
  if [[ $(id -u) != 0 ]]; then
    log "WARNING: no egress guard (iptables needs root): nothing here may reach a ClusterIP or a KWOK pod address"
    return 0
  fi
  # As root the guard is not optional: a fresh machine gets iptables first (bindep.txt), before any component.
  local out
  if ! out=$("$here/packages.sh" guard 2>&1); then
    log "FAILED: the egress guard cannot be installed (${out##*egress guard unavailable: }); nothing was started."
    log "Install iptables (bindep.txt), or run as a user without root (no guard, a warning instead)"
    exit 1
  fi
  # One chain for every bed of the machine (they share the ranges), with one owner rule per bed: the last bed
  # down removes it, never one that another running bed still needs.
  if ! iptables -w 5 -S "$kwok_guard" >/dev/null 2>&1; then
    iptables -w 5 -N "$kwok_guard"
    iptables -w 5 -A "$kwok_guard" -o lo -j RETURN
    iptables -w 5 -A "$kwok_guard" -d 10.96.0.0/16 -j REJECT --reject-with icmp-admin-prohibited
    iptables -w 5 -A "$kwok_guard" -d 10.244.0.0/16 -j REJECT --reject-with icmp-admin-prohibited
    iptables -w 5 -I OUTPUT 1 -j "$kwok_guard"
  fi
  iptables -w 5 -C "$kwok_guard" -m comment --comment "owner=$state" 2>/dev/null ||
    iptables -w 5 -A "$kwok_guard" -m comment --comment "owner=$state"
  log "egress guard installed ($kwok_guard on OUTPUT: the service range and KWOK's pod range)"
}
kwok_guard_down() {
  iptables -w 5 -D "$kwok_guard" -m comment --comment "owner=$state" 2>/dev/null || return 0
  iptables -w 5 -S "$kwok_guard" | grep -q -- "owner=" && return 0 # another bed still runs behind it
  while iptables -w 5 -D OUTPUT -j "$kwok_guard" 2>/dev/null; do :; done
  iptables -w 5 -F "$kwok_guard" && iptables -w 5 -X "$kwok_guard"
}

up_testbed() {
  if [[ -d $pids ]] && running; then
    log "already running"
    echo "export KUBECONFIG=$kubeconfig"
    return 0
  fi
  "$here/build.sh"
  mkdir -p "$state" "$logs" "$pids"
  stop_leftovers
  make_pki
  write_kubeconfigs
  local t0=$SECONDS
  kwok_guard_up
  start_etcd
  wait_for etcd 30 curl -sf "http://127.0.0.1:$etcd_port/health"
  start_apiserver
  wait_for kube-apiserver 60 kc get --raw /readyz
  start_controller_manager
  start_scheduler
  start_kwok
  create_nodes
  install_crds
  [[ $operator == none ]] || start_operator
  start_metrics_server
  wait_for kube-controller-manager 30 healthz "https://127.0.0.1:$kcm_port/healthz"
  wait_for kube-scheduler 30 healthz "https://127.0.0.1:$sched_port/healthz"
  wait_for kwok 60 nodes_ready
  [[ $operator == none ]] || wait_for thv-operator 60 curl -sf "http://127.0.0.1:$operator_health_port/readyz"
  [[ ! -f "$pids/metrics-server" ]] || wait_for metrics-server 30 healthz "https://127.0.0.1:$metrics_port/livez"
  # The service-account token controller fills in namespaces' default SA: pods need it.
  wait_for kube-controller-manager 30 kc -n default get serviceaccount default
  log "up in $((SECONDS - t0))s (KWOK nodes; ToolHive operator: ${operator/run/$toolhive_release}, CRDs: $crds_version)"
  echo "export KUBECONFIG=$kubeconfig"
}

status_testbed() {
  local c rc=0
  for c in "${components[@]}"; do
    if alive "$c"; then printf '%-24s running (pid %s)\n' "$c" "$(cat "$pids/$c")"
    elif [[ -f "$pids/$c" ]]; then printf '%-24s DEAD (log: %s)\n' "$c" "$logs/$c.log"; rc=1
    else printf '%-24s not started\n' "$c"; [[ $c == metrics-server ]] || rc=1
    fi
  done
  if [[ -f $kubeconfig ]] && kc get --raw /readyz >/dev/null 2>&1; then
    kc get nodes
    echo "export KUBECONFIG=$kubeconfig"
  else
    echo "API server: not reachable"; rc=1
  fi
  return $rc
}

down_testbed() {
  local c pid
  # Reverse order: the operator and controllers first, etcd last.
  for ((i = ${#components[@]} - 1; i >= 0; i--)); do
    c=${components[$i]}
    [[ -f "$pids/$c" ]] || continue
    pid=$(cat "$pids/$c")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pids/$c"
  done
  kwok_guard_down
  rm -rf "$state"
  log "down"
}

case "${1:-}" in
  up) up_testbed ;;
  status) status_testbed ;;
  down) down_testbed ;;
  *) echo "usage: $0 up|status|down (the kind cluster: testbed/kind.sh)" >&2; exit 2 ;;
esac

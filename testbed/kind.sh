#!/usr/bin/env bash
# The kind bed: a kind cluster, the cluster users have. ToolHive's operator is not installed here: the
# collection's `operator` role does that (playbooks/operator.yml), as on any cluster.
#
#   kind.sh up       idempotent; prints the `export KUBECONFIG=...` line
#   kind.sh status   engine, nodes, pods
#   kind.sh down     deletes the cluster; stops the engine it started and removes its bridge and rules
#   kind.sh charts-dir RELEASE   the directory of RELEASE's two ToolHive charts (packaged there when missing;
#                                `up` packages those of the releases the bed runs)
#
# The Docker engine: the user's when one answers (then kind pulls the pinned KIND_NODE_IMAGE, and every image
# that cannot be pulled is built here and loaded); otherwise an engine of the bed's own (root, Debian's
# docker.io): guarded before it starts, unable to pull, its node image built here from the test bed's binaries
# (docs/testbed.md, "The kind bed").
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
# shellcheck source=testbed/versions.env
source "$here/versions.env"
# shellcheck source=testbed/releases.sh
source "$here/releases.sh"

cache=${TESTBED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/toolhive-k8s-testbed}
bin=${TESTBED_BIN:-$cache/bin}
images="$cache/images"
state=${TESTBED_KIND_STATE:-$repo/.kind}
kubeconfig="$state/kubeconfig"
name=${KIND_CLUSTER_NAME:-toolhive-k8s}
# Two workers: the tests of spread pods and node drains need two nodes to place pods on (the control plane keeps
# its taint, as on a user's cluster).
workers=${TESTBED_KIND_WORKERS:-2}
# The own engine: its data (the node image) is kept in the cache between runs, its runtime state is not.
engine="$cache/kind-engine"
socket="$engine/docker.sock"
# Ranges no other bed uses (cluster.sh: 10.96/16, 10.244/16).
network=toolhive-kind bridge=thvkind0 node_subnet=172.30.0.0/24
pod_subnet=10.250.0.0/16 service_subnet=10.251.0.0/16
guard=THVKIND-GUARD

export PATH="$bin:$PATH"
log() { printf '[kind %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
kc() { kubectl --kubeconfig "$kubeconfig" "$@"; }

# --- which engine -------------------------------------------------------------

own_engine_running() { [[ -S $socket ]] && DOCKER_HOST="unix://$socket" docker version >/dev/null 2>&1; }

pick_engine() { # sets DOCKER_HOST for the own engine; engine_kind=own|user
  if own_engine_running || [[ ${TESTBED_KIND_ENGINE:-auto} == own ]]; then engine_kind=own
  elif [[ ${TESTBED_KIND_ENGINE:-auto} == user ]] || docker info >/dev/null 2>&1; then engine_kind=user
  else engine_kind=own
  fi
  if [[ $engine_kind == own ]]; then export DOCKER_HOST="unix://$socket"; fi
}

# --- the own engine: guarded before it starts ---------------------------------

guard_up() {
  # Forwarded traffic: only between the nodes on their bridge; nothing from them goes anywhere else, and
  # nothing from elsewhere reaches them. The host's own traffic to kind's pod and service ranges is refused
  # (it has no route there; a ClusterIP only exists inside the nodes).
  local t
  for t in iptables ip6tables; do
    $t -w 5 -N "$guard" 2>/dev/null || $t -w 5 -F "$guard"
    $t -w 5 -A "$guard" -i "$bridge" -o "$bridge" -j RETURN
    $t -w 5 -A "$guard" -i "$bridge" -j DROP
    $t -w 5 -A "$guard" -o "$bridge" -j DROP
    $t -w 5 -C FORWARD -j "$guard" 2>/dev/null || $t -w 5 -I FORWARD -j "$guard"
  done
  iptables -w 5 -N "$guard-OUT" 2>/dev/null || iptables -w 5 -F "$guard-OUT"
  iptables -w 5 -A "$guard-OUT" -d "$pod_subnet" -j REJECT --reject-with icmp-admin-prohibited
  iptables -w 5 -A "$guard-OUT" -d "$service_subnet" -j REJECT --reject-with icmp-admin-prohibited
  iptables -w 5 -C OUTPUT -j "$guard-OUT" 2>/dev/null || iptables -w 5 -I OUTPUT -j "$guard-OUT"
}

guard_down() {
  local t c
  for t in iptables ip6tables; do
    for c in "FORWARD:$guard" "OUTPUT:$guard-OUT"; do
      while $t -w 5 -D "${c%%:*}" -j "${c#*:}" 2>/dev/null; do :; done
      $t -w 5 -F "${c#*:}" 2>/dev/null || true
      $t -w 5 -X "${c#*:}" 2>/dev/null || true
    done
  done
}

engine_config() {
  mkdir -p "$engine/data" "$engine/logs"
  install -m 0755 "$here/kind/runc-capfix" "$engine/runc-capfix"
  python3 - "$engine" <<'PY'
import json, pathlib, sys
engine = pathlib.Path(sys.argv[1])
(engine / "containerd.toml").write_text("\n".join([
    "version = 2",
    f"root = {json.dumps(str(engine / 'containerd'))}",
    'state = "/run/toolhive-kind/containerd"',
    'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
    "[grpc]", f"  address = {json.dumps(str(engine / 'containerd.sock'))}",
    "[plugins.\"io.containerd.internal.v1.opt\"]", f"  path = {json.dumps(str(engine / 'opt'))}", ""]))
(engine / "daemon.json").write_text(json.dumps({
    "data-root": str(engine / "data"), "exec-root": "/run/toolhive-kind/docker",
    "pidfile": str(engine / "dockerd.pid"), "hosts": ["unix://" + str(engine / "docker.sock")],
    "containerd": str(engine / "containerd.sock"),
    # No rules, masquerading or forwarding of Docker's own: the bed's guard is the only rule set, and the
    # nodes masquerade their pods inside themselves.
    "iptables": False, "ip6tables": False, "ip-masq": False, "ip-forward": False, "bridge": "none",
    "dns": ["127.0.0.1"], "storage-driver": "overlay2", "exec-opts": ["native.cgroupdriver=cgroupfs"],
    "runtimes": {"runc-capfix": {"path": str(engine / "runc-capfix")}}, "default-runtime": "runc-capfix",
}, indent=2))
PY
}

# Runs in the engine's private mount namespace (unshare -m): a tmpfs of its own on /run keeps containerd's
# shim sockets out of the host's /run/containerd, which any containerd of the host also uses.
engine_main() {
  mount --make-rprivate /
  mount -t tmpfs -o mode=755 toolhive-kind-run /run
  containerd --config "$engine/containerd.toml" >"$engine/logs/containerd.log" 2>&1 &
  echo $! >"$engine/containerd.pid"
  for _ in $(seq 100); do [[ -S $engine/containerd.sock ]] && break; sleep 0.1; done
  # An engine that cannot pull: every image comes from this machine.
  export HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 NO_PROXY=
  exec dockerd --config-file "$engine/daemon.json" >"$engine/logs/dockerd.log" 2>&1
}

engine_up() {
  own_engine_running && return 0
  "$here/packages.sh" engine || exit 1 # it says what is missing and how to get it
  guard_up
  engine_config
  rm -f "$socket" "$engine/containerd.sock"
  setsid unshare -m "$0" engine-main </dev/null >/dev/null 2>&1 &
  echo $! >"$engine/unshare.pid"
  local deadline=$((SECONDS + 60))
  until own_engine_running; do
    ((SECONDS < deadline)) || { tail -n 20 "$engine/logs/dockerd.log" >&2; die "the Docker engine did not start"; }
    sleep 0.3
  done
  docker network inspect "$network" >/dev/null 2>&1 ||
    docker network create "$network" --subnet "$node_subnet" \
      -o com.docker.network.bridge.name="$bridge" -o com.docker.network.bridge.enable_ip_masquerade=false >/dev/null
  log "Docker engine of the bed's own: $DOCKER_HOST (guarded; cannot pull)"
}

stop_pid() { # stop_pid FILE : TERM the process whose pid FILE holds, wait up to 20 s, then KILL
  [[ -f $1 ]] || return 0
  local pid
  pid=$(cat "$1")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$1"
}

engine_down() {
  if own_engine_running; then docker network rm "$network" >/dev/null 2>&1 || true; fi
  stop_pid "$engine/dockerd.pid"
  stop_pid "$engine/containerd.pid"
  stop_pid "$engine/unshare.pid"
  rm -f "$socket" "$engine/containerd.sock"
  ip link delete "$bridge" 2>/dev/null || true
  guard_down
  # The cgroupfs driver's parent cgroup, empty once the engine's containers are gone.
  local dir
  for dir in /sys/fs/cgroup/*/docker /sys/fs/cgroup/docker; do
    if [[ -d $dir ]]; then rmdir "$dir" 2>/dev/null || true; fi
  done
}

# --- the node image -----------------------------------------------------------

node_image() { # the image the nodes run: pulled on the user's engine, else built here (cached in the engine)
  if [[ $engine_kind == user ]] && { docker image inspect "$KIND_NODE_IMAGE" >/dev/null 2>&1 || docker pull -q "$KIND_NODE_IMAGE" >/dev/null 2>&1; }; then
    echo "$KIND_NODE_IMAGE"; return
  fi
  local image
  image=$("$here/kind-node-image.sh" name)
  docker image inspect "$image" >/dev/null 2>&1 || "$here/kind-node-image.sh" build >&2
  echo "$image"
}

# --- the cluster --------------------------------------------------------------

cluster_config() { # NODE-IMAGE : kind's cluster configuration, JSON
  python3 - "$1" "$workers" "$pod_subnet" "$service_subnet" "$engine_kind" "$ETCD_VERSION" "$COREDNS_VERSION" \
    "$state/logs" "$here/kind/audit-policy.yaml" <<'PY'
import json, sys
image, workers, pods, services, engine, etcd, coredns, logs, policy = sys.argv[1:]
# The API server's audit log, in the bed's state folder on the host (tests read it: tests/audit_log.py).
audit_mounts = [{"hostPath": logs, "containerPath": "/var/log/kubernetes/audit"},
                {"hostPath": policy, "containerPath": "/etc/kubernetes/audit-policy.yaml", "readOnly": True}]
config = {
    "kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4",
    "networking": {"podSubnet": pods, "serviceSubnet": services, "apiServerAddress": "127.0.0.1"},
    "nodes": [{"role": "control-plane", "image": image, "extraMounts": audit_mounts}]
             + [{"role": "worker", "image": image}] * int(workers),
}
# No apiVersion in the patches: kind patches each document of its kind whatever kubeadm API version it writes.
cluster = {"kind": "ClusterConfiguration", "apiServer": {
    "extraArgs": {"audit-log-path": "/var/log/kubernetes/audit/audit.log",
                  "audit-policy-file": "/etc/kubernetes/audit-policy.yaml",
                  "audit-log-maxsize": "200", "audit-log-maxbackup": "1"},
    "extraVolumes": [
        {"name": "audit-log", "hostPath": "/var/log/kubernetes/audit", "mountPath": "/var/log/kubernetes/audit",
         "pathType": "DirectoryOrCreate"},
        {"name": "audit-policy", "hostPath": "/etc/kubernetes/audit-policy.yaml",
         "mountPath": "/etc/kubernetes/audit-policy.yaml", "readOnly": True, "pathType": "File"}]}}
patches = [cluster]
if engine == "own":
    # The node image built here: no kindnetd or local-path images (kind.sh configures each node's bridge CNI);
    # etcd and CoreDNS under the test bed's names; cgroup v1 hosts allowed.
    config["networking"]["disableDefaultCNI"] = True
    cluster["etcd"] = {"local": {"imageRepository": "localhost/toolhive-testbed", "imageTag": etcd}}
    cluster["dns"] = {"imageRepository": "localhost/toolhive-testbed", "imageTag": coredns}
    patches.append({"kind": "KubeletConfiguration", "failCgroupV1": False})
config["kubeadmConfigPatches"] = [json.dumps(p) for p in patches]
# MutatingAdmissionPolicy as Kubernetes 1.36 serves it by default (1.35 has it in beta, off unless asked for): the
# operator role's drain for MCPServer proxy pods is one (roles/operator).
config["featureGates"] = {"MutatingAdmissionPolicy": True}
config["runtimeConfig"] = {"admissionregistration.k8s.io/v1beta1": "true"}
print(json.dumps(config, indent=2))
PY
}

cluster_exists() { kind get clusters 2>/dev/null | grep -x "$name" >/dev/null; }

pod_range() { # NODE : its pod range, once the controller manager has given it one
  local cidr deadline=$((SECONDS + 120))
  until cidr=$(kc get node "$1" -o jsonpath='{.spec.podCIDR}' 2>/dev/null) && [[ -n $cidr ]]; do
    ((SECONDS < deadline)) || die "node $1 was given no pod range in 120 s"
    sleep 1
  done
  echo "$cidr"
}

node_network() { # the own engine's nodes: each node's bridge CNI on its pod range, routes to the others'
  local nodes node cidr ip other
  nodes=$(kind get nodes --name "$name")
  for node in $nodes; do
    cidr=$(pod_range "$node")
    python3 - "$cidr" <<'PY' | docker exec -i "$node" sh -c 'cat > /etc/cni/net.d/10-toolhive-bridge.conflist'
import json, sys
print(json.dumps({"cniVersion": "0.4.0", "name": "toolhive-bridge", "plugins": [
    # ipMasq: pod traffic leaves the node with the node's address, so the host never sees a pod address.
    {"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": True, "hairpinMode": True,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": sys.argv[1]}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": True}}]}, indent=2))
PY
    for other in $nodes; do
      [[ $other == "$node" ]] && continue
      ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$other")
      docker exec "$node" ip route replace "$(pod_range "$other")" via "$ip"
    done
  done
}

no_dns_forwarding() { # the own engine's CoreDNS answers for the cluster only: no forward to any resolver
  local corefile
  corefile=$(kc -n kube-system get configmap coredns -o jsonpath='{.data.Corefile}')
  grep -q 'forward ' <<<"$corefile" || return 0
  kc -n kube-system get configmap coredns -o json | python3 -c '
import json, re, sys
cm = json.load(sys.stdin)
cm["data"]["Corefile"] = re.sub(r"\n\s*forward [^{\n]*\{[^}]*\}", "", cm["data"]["Corefile"])
print(json.dumps(cm))' | kc replace -f - >/dev/null
  # A new cluster's CoreDNS pods wait for the node's network and read the new file when they start; one that
  # already runs is restarted.
  if kc -n kube-system get pods -l k8s-app=kube-dns -o jsonpath='{.items[*].status.phase}' | grep -q Running; then
    kc -n kube-system rollout restart deployment/coredns >/dev/null
  fi
}

load_images() { # the images the example and the tests run, where the node lacks them; two loads at a time
  local node have archive image
  # sed reads every line: head would leave kind writing to a closed pipe, and pipefail end the script without a word
  # (seen with several nodes).
  node=$(kind get nodes --name "$name" | sed -n 1p)
  have=$(docker exec "$node" ctr -n k8s.io images ls -q)
  for archive in "$images"/*.tar; do
    [[ $(basename "$archive") == @(pause|coredns).tar ]] && continue
    image=$(tar -xOf "$archive" manifest.json | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["RepoTags"][0])')
    grep -qxF "$image" <<<"$have" && continue
    printf '%s\t%s\n' "$image" "$archive"
  done | while IFS=$'\t' read -r image archive; do
    # On the user's engine, an image that can be pulled is: the kubelet would pull it anyway.
    if [[ $engine_kind == user ]] && [[ $image != localhost/* ]] && docker pull -q "$image" >/dev/null 2>&1; then
      kind load docker-image --name "$name" "$image" >/dev/null
    else
      printf '%s\0' "$archive"
    fi
  done | xargs -0 -r -n 1 -P 2 kind load image-archive --name "$name" >/dev/null
}

charts_dir() { # charts_dir RELEASE: RELEASE's two charts, packaged from its Go module (once), in $cache/charts/RELEASE
  local release=$1 dir out="$cache/charts/$1"
  if [[ ! -f $out/toolhive-operator-${release#v}.tgz || ! -f $out/toolhive-operator-crds-${release#v}.tgz ]]; then
    mkdir -p "$cache/modules"
    dir=$(cd "$cache/modules" && toolhive_module_dir "$release") || exit 1
    [[ -d $dir/deploy/charts ]] || die "github.com/stacklok/toolhive@$release has no deploy/charts"
    mkdir -p "$out"
    helm package "$dir/deploy/charts/operator-crds" "$dir/deploy/charts/operator" -d "$out" >/dev/null
  fi
  echo "$out"
}

charts() { # the charts of each release the bed runs
  local release
  for release in $(toolhive_releases); do charts_dir "$release" >/dev/null; done
}

metrics_server() { # the HPA's resource metrics: metrics-server with the chart of its own release (ready: wait_ready)
  local dir
  dir=$(cd "$cache/modules" && module_dir "sigs.k8s.io/metrics-server@$METRICS_SERVER_VERSION")
  # kind's kubelets serve self-signed certificates (kind's own docs: --kubelet-insecure-tls).
  KUBECONFIG=$kubeconfig helm upgrade --install metrics-server "$dir/charts/metrics-server" --namespace kube-system \
    --set-json 'args=["--kubelet-insecure-tls"]' --set image.tag="$METRICS_SERVER_VERSION" >/dev/null ||
    die "metrics-server could not be installed"
}

local_path_storage() { # the own engine: kind's default StorageClass `standard` (ready: wait_ready)
  # What kind's own node image installs (kind's pkg/build/nodeimage/const_storage.go): rancher's local-path-provisioner,
  # each volume a directory under the node's /var/local-path-provisioner, made by a helper pod on that node. The node
  # image built here has no local-path images, so kind fell back on a `standard` of the in-tree host-path provisioner,
  # which nothing serves and whose provisioner cannot be changed: it is replaced.
  local names images current
  names=$("$here/images.sh" names)
  images=("$(grep /local-path-provisioner: <<<"$names")" "$(grep /local-path-helper: <<<"$names")")
  current=$(kc get storageclass standard -o jsonpath='{.provisioner}' 2>/dev/null || true)
  if [[ -n $current && $current != rancher.io/local-path ]]; then kc delete storageclass standard >/dev/null; fi
  python3 - "${images[@]}" <<'PY' | kc apply -f - >/dev/null || die "local-path-provisioner could not be installed"
import json, sys
image, helper = sys.argv[1:]
# Upstream's deploy/local-path-storage.yaml of the same release, with kind's changes: the class `standard`, default;
# volumes under /var; the control plane's taint tolerated; the images built here.
ns, name, account = "local-path-storage", "local-path-provisioner", "local-path-provisioner-service-account"
rbac, every = "rbac.authorization.k8s.io/v1", ["get", "list", "watch", "create", "patch", "update", "delete"]
subjects = [{"kind": "ServiceAccount", "name": account, "namespace": ns}]
def rules(*triples): return [{"apiGroups": [g], "resources": r, "verbs": v} for g, r, v in triples]
config = {"nodePathMap": [{"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": ["/var/local-path-provisioner"]}]}
helper_pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "helper-pod"},
              "spec": {"containers": [{"name": "helper-pod", "image": helper, "imagePullPolicy": "IfNotPresent"}]}}
items = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
    {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account, "namespace": ns}},
    # The helper pods, in its own namespace.
    {"apiVersion": rbac, "kind": "Role", "metadata": {"name": name + "-role", "namespace": ns},
     "rules": rules(("", ["pods"], every))},
    {"apiVersion": rbac, "kind": "RoleBinding", "metadata": {"name": name + "-bind", "namespace": ns},
     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name + "-role"}, "subjects": subjects},
    {"apiVersion": rbac, "kind": "ClusterRole", "metadata": {"name": name + "-role"},
     "rules": rules(("", ["nodes", "persistentvolumeclaims", "configmaps", "pods", "pods/log"], every[:3]),
                    ("", ["persistentvolumes"], every), ("", ["events"], ["create", "patch"]),
                    ("storage.k8s.io", ["storageclasses"], every[:3]))},
    {"apiVersion": rbac, "kind": "ClusterRoleBinding", "metadata": {"name": name + "-bind"},
     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name + "-role"},
     "subjects": subjects},
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns}, "spec": {
        "replicas": 1, "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}}, "spec": {
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Equal", "effect": "NoSchedule"}],
            "serviceAccountName": account,
            "containers": [{
                "name": name, "image": image, "imagePullPolicy": "IfNotPresent",
                "command": [name, "--debug", "start", "--config", "/etc/config/config.json"],
                "volumeMounts": [{"name": "config-volume", "mountPath": "/etc/config/"}],
                "env": [{"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                        {"name": "CONFIG_MOUNT_PATH", "value": "/etc/config/"}]}],
            "volumes": [{"name": "config-volume", "configMap": {"name": "local-path-config"}}]}}}},
    {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
     "metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
     "provisioner": "rancher.io/local-path", "volumeBindingMode": "WaitForFirstConsumer", "reclaimPolicy": "Delete"},
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "local-path-config", "namespace": ns}, "data": {
        "config.json": json.dumps(config),
        "setup": '#!/bin/sh\nset -eu\nmkdir -m 0777 -p "$VOL_DIR"\n',
        "teardown": '#!/bin/sh\nset -eu\nrm -rf "$VOL_DIR"\n',
        "helperPod.yaml": json.dumps(helper_pod)}},  # JSON is YAML
]
print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}, indent=2))
PY
}

wait_ready() { # every node Ready, CoreDNS and metrics-server rolled out (and the own engine's local-path-provisioner)
  kc wait --for condition=Ready node --all --timeout 180s >/dev/null ||
    { kc get nodes >&2; die "the nodes did not become Ready"; }
  local deployment
  for deployment in coredns metrics-server; do
    kc -n kube-system rollout status "deployment/$deployment" --timeout 180s >/dev/null ||
      { kc -n kube-system get pods >&2; die "$deployment did not become ready"; }
  done
  if [[ $engine_kind == own ]]; then
    kc -n local-path-storage rollout status deployment/local-path-provisioner --timeout 180s >/dev/null ||
      { kc -n local-path-storage get pods >&2; die "local-path-provisioner did not become ready"; }
  fi
}

up() {
  local t=$SECONDS image
  mkdir -p "$state" "$cache/modules"
  "$here/packages.sh" images
  "$here/build.sh"
  "$here/images.sh"
  pick_engine
  if [[ $engine_kind == own ]]; then engine_up; export KIND_EXPERIMENTAL_DOCKER_NETWORK=$network
  else log "Docker engine: yours ($(docker context show 2>/dev/null || echo "${DOCKER_HOST:-default}"))"
  fi
  if ! cluster_exists; then
    image=$(node_image)
    log "creating kind cluster $name (node image $image, $workers workers)"
    mkdir -p "$state/logs"
    cluster_config "$image" >"$state/cluster.json"
    kind create cluster --name "$name" --config "$state/cluster.json" --kubeconfig "$kubeconfig" --wait 0s >"$state/create.log" 2>&1 ||
      { tail -n 30 "$state/create.log" >&2; die "kind create cluster failed (whole log: $state/create.log)"; }
  else
    kind get kubeconfig --name "$name" >"$kubeconfig"
  fi
  chmod 600 "$kubeconfig"
  # CoreDNS's file first: its pods start once the node has a network, and then read it.
  if [[ $engine_kind == own ]]; then no_dns_forwarding; node_network; fi
  metrics_server
  log "loading images"
  load_images
  # After its images are loaded: a pod that tried to pull first would wait out the kubelet's back-off.
  if [[ $engine_kind == own ]]; then local_path_storage; fi
  charts
  log "waiting for the nodes, CoreDNS, metrics-server and the storage provisioner"
  wait_ready
  log "kind cluster $name ready in $((SECONDS - t))s"
  echo "export KUBECONFIG=$kubeconfig"
}

down() {
  pick_engine
  if { [[ $engine_kind == user ]] || own_engine_running; } && cluster_exists; then
    kind delete cluster --name "$name" --kubeconfig "$kubeconfig" >/dev/null
  fi
  [[ $engine_kind == own ]] && engine_down
  rm -rf "$state"
}

status() {
  pick_engine
  echo "engine: $engine_kind${DOCKER_HOST:+ ($DOCKER_HOST)}"
  if [[ $engine_kind == own ]] && ! own_engine_running; then echo "kind cluster $name: not running"; return 0; fi
  cluster_exists || { echo "kind cluster $name: not running"; return 0; }
  kc get nodes -o wide && kc get pods -A
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) status ;;
  engine-main) engine_main ;;
  charts-dir) charts_dir "${2:?usage: $0 charts-dir RELEASE}" ;;
  *) echo "usage: $0 up|status|down|charts-dir RELEASE" >&2; exit 2 ;;
esac

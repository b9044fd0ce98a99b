#!/usr/bin/env bash
# Brings up a local Kubernetes control plane on loopback with mindie-apiserver
# registered behind it by an APIService:
#   etcd, kube-apiserver (RBAC, front proxy), kube-controller-manager,
#   kube-scheduler, mindie-apiserver (on the same etcd).
# Writes the cluster-admin kubeconfig to $OUT/kubeconfig and one kubeconfig
# per tenant user to $OUT/users/<user>.kubeconfig; every component logs to
# $OUT/logs/. Running it again starts whatever is not running and reapplies
# the configuration. Stop everything with hack/local-down.sh.
#
# The node lifecycle controller marks a node whose heartbeats stopped
# NotReady after 20 s (--node-monitor-grace-period; Kubernetes' default is
# 50 s), so that node failures show quickly here.
#
# It also starts SIM_NODES (default 4) simulated Ascend nodes (cmd/ascend-sim:
# a kubelet and device plugin stand-in that runs the MindIE Server simulator
# for every MindIE pod, on a loopback pod IP from SIM_POD_CIDR); SIM_NODES=0
# starts none. And SIM_EDGE_NODES (default 3; 0 when SIM_NODES=0) simulated
# edge nodes edge-0, edge-1, ... (labelled mindie.io/edge=true and
# node-role.kubernetes.io/edge="", tainted node-role.kubernetes.io/edge:NoSchedule,
# arm64 or amd64, some with one huawei.com/Ascend310P; each with its own
# loopback address from SIM_EDGE_CIDR), where pods of any image run a
# generic simulated app (docs/simulator.md, "Edge nodes and generic pods").
# SIM_EDGE_ARCH (default: the mix) gives them all one architecture.
#
# MINDIE_APISERVER_FLAGS (default none) are flags appended to
# mindie-apiserver's command line, split at spaces, such as
# "--controller-workers=16 --kube-api-qps=400 --kube-api-burst=800"; they
# take effect when mindie-apiserver starts (stop it to restart it with
# others).
#
# MINDIE_REPLICAS (default 1) above 1 runs that many mindie-apiserver
# replicas, mindie-apiserver-0, -1, ... (leader-election identities alike),
# on the ports in MINDIE_REPLICA_PORTS (split at spaces; default: the ports
# after MINDIE_PORT), behind hack/servicelb on MINDIE_PORT
# (mindie-apiserver-lb), which stands in for a Service's virtual IP: the
# APIService reaches whichever replica is ready. MINDIE_LB_POLICY (default
# round-robin) is servicelb's -policy: first sends every connection to the
# first ready replica (the worst case for a failover test). The pid files
# and logs of the replicas and of servicelb are named after them.
#
# MINDIE_CONTROLLERS (default in-process) set to external runs the workload
# controllers as a process of their own, mindie-controller (cmd/
# mindie-controller, under mindie-apiserver's service account, serving
# /healthz, /readyz and /metrics on 127.0.0.1:MINDIE_CONTROLLER_PORT,
# default MINDIE_PORT + 100), and mindie-apiserver with
# --external-controllers. MINDIE_CONTROLLER_FLAGS are flags appended to its
# command line. MINDIE_APISERVER_ENV and MINDIE_CONTROLLER_ENV (split at
# spaces, such as "GOMEMLIMIT=200MiB") are environment variables of these
# processes alone.
#
# Environment: OUT (default _output/local), ETCD_PORT (23790),
# KUBE_PORT (16443), MINDIE_PORT (18443), SIM_NODES (4),
# SIM_POD_CIDR (127.1.0.0/16), SIM_EDGE_NODES (3), SIM_EDGE_CIDR (127.2.0.0/16),
# SIM_EDGE_ARCH (""), MINDIE_APISERVER_FLAGS (""), MINDIE_REPLICAS (1),
# MINDIE_REPLICA_PORTS (""), MINDIE_LB_POLICY (round-robin),
# MINDIE_CONTROLLERS (in-process), MINDIE_CONTROLLER_PORT (MINDIE_PORT + 100),
# MINDIE_CONTROLLER_FLAGS (""), MINDIE_APISERVER_ENV (""), MINDIE_CONTROLLER_ENV ("").
set -o errexit -o nounset -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
OUT=${OUT:-$ROOT/_output/local}
ETCD_PORT=${ETCD_PORT:-23790}
ETCD_PEER_PORT=${ETCD_PEER_PORT:-$((ETCD_PORT + 10))}
KUBE_PORT=${KUBE_PORT:-16443}
MINDIE_PORT=${MINDIE_PORT:-18443}
SIM_NODES=${SIM_NODES:-4}
SIM_POD_CIDR=${SIM_POD_CIDR:-127.1.0.0/16}
if [ "$SIM_NODES" -gt 0 ]; then SIM_EDGE_NODES=${SIM_EDGE_NODES:-3}; else SIM_EDGE_NODES=${SIM_EDGE_NODES:-0}; fi
SIM_EDGE_CIDR=${SIM_EDGE_CIDR:-127.2.0.0/16}
SIM_EDGE_ARCH=${SIM_EDGE_ARCH:-}
MINDIE_REPLICAS=${MINDIE_REPLICAS:-1}
read -r -a MINDIE_APISERVER_EXTRA <<<"${MINDIE_APISERVER_FLAGS:-}"
read -r -a MINDIE_APISERVER_ENVS <<<"${MINDIE_APISERVER_ENV:-}"
MINDIE_CONTROLLERS=${MINDIE_CONTROLLERS:-in-process}
case "$MINDIE_CONTROLLERS" in
  in-process) ;;
  external) MINDIE_APISERVER_EXTRA+=(--external-controllers) ;;
  *) echo "local-up: MINDIE_CONTROLLERS=$MINDIE_CONTROLLERS: want in-process or external" >&2; exit 2 ;;
esac
MINDIE_CONTROLLER_PORT=${MINDIE_CONTROLLER_PORT:-$((MINDIE_PORT + 100))}
read -r -a MINDIE_CONTROLLER_EXTRA <<<"${MINDIE_CONTROLLER_FLAGS:-}"
read -r -a MINDIE_CONTROLLER_ENVS <<<"${MINDIE_CONTROLLER_ENV:-}"
PKI=$OUT/pki
LOGS=$OUT/logs
PIDS=$OUT/pids
TENANTS=(tenant-a-editor:team-a:edit tenant-b-editor:team-b:edit tenant-a-viewer:team-a:view)

mkdir -p "$OUT" "$PKI" "$LOGS" "$PIDS" "$OUT/users" "$OUT/bin"
cd "$ROOT"

log() { echo "local-up: $*" >&2; }

BIN=$(hack/testbin/build.sh)
go build -o "$OUT/bin/mindie-apiserver" ./cmd/mindie-apiserver
go build -o "$OUT/bin/mindie-controller" ./cmd/mindie-controller
go build -o "$OUT/bin/pki" ./hack/pki
go build -o "$OUT/bin/httpcheck" ./hack/httpcheck
go build -o "$OUT/bin/servicelb" ./hack/servicelb
go build -o "$OUT/bin/ascend-sim" ./cmd/ascend-sim
go build -o "$OUT/bin/mindie-router" ./cmd/mindie-router
go build -o "$OUT/bin/kubectl-mindie" ./cmd/kubectl-mindie
ln -sf "$BIN/kubectl" "$OUT/bin/kubectl"
KUBECTL="$OUT/bin/kubectl"

# running NAME: the process in $PIDS/NAME is alive (a zombie, killed but not
# yet reaped, does not count).
running() {
  [ -f "$PIDS/$1" ] || return 1
  local pid state
  pid=$(cat "$PIDS/$1")
  kill -0 "$pid" 2>/dev/null || return 1
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo X)
  [ "$state" != Z ] && [ "$state" != X ]
}

# start NAME CMD...: runs CMD in the background unless NAME already runs.
start() {
  local name=$1; shift
  if running "$name"; then return; fi
  log "starting $name"
  "$@" >>"$LOGS/$name.log" 2>&1 &
  echo $! >"$PIDS/$name"
}

# wait_for NAME URL HTTPCHECK-ARGS...: waits until URL answers 200.
wait_for() {
  local name=$1 url=$2; shift 2
  for _ in $(seq 1 240); do
    if "$OUT/bin/httpcheck" "$@" "$url" >/dev/null 2>&1; then return 0; fi
    if ! running "$name"; then
      log "$name exited; the end of $LOGS/$name.log:"; tail -20 "$LOGS/$name.log" >&2; return 1
    fi
    sleep 0.5
  done
  log "$name did not become healthy at $url; the end of $LOGS/$name.log:"; tail -20 "$LOGS/$name.log" >&2
  return 1
}

# --- certificates ------------------------------------------------------------
pki() { "$OUT/bin/pki" -dir "$PKI" "$@"; }
pki ca cluster-ca            # signs kube-apiserver's serving certificate
pki ca client-ca             # signs the client certificates of users and components
pki ca front-proxy-ca        # signs the aggregator's proxy client certificate
pki ca mindie-ca             # signs mindie-apiserver's serving certificate (APIService caBundle)
pki ca service-account       # its key signs service account tokens
pki cert kube-apiserver -ca cluster-ca -usage server -cn kube-apiserver \
  -san 127.0.0.1 -san localhost -san kubernetes -san kubernetes.default -san kubernetes.default.svc -san 10.96.0.1
pki cert front-proxy-client -ca front-proxy-ca -cn front-proxy-client
pki cert mindie-apiserver-serving -ca mindie-ca -usage server -cn mindie-apiserver \
  -san mindie-apiserver.mindie-system.svc -san localhost -san 127.0.0.1
pki cert admin -ca client-ca -cn kubernetes-admin -o system:masters
pki cert kube-controller-manager -ca client-ca -cn system:kube-controller-manager
pki cert kube-scheduler -ca client-ca -cn system:kube-scheduler
# mindie-apiserver's identity is its service account, as in a real cluster.
pki cert mindie-apiserver -ca client-ca -cn system:serviceaccount:mindie-system:mindie-apiserver \
  -o system:serviceaccounts -o system:serviceaccounts:mindie-system
for t in "${TENANTS[@]}"; do pki cert "${t%%:*}" -ca client-ca -cn "${t%%:*}"; done

# kubeconfig FILE CERT: a kubeconfig for the client certificate CERT.
kubeconfig() {
  local file=$1 cert=$2
  "$KUBECTL" config set-cluster local --kubeconfig="$file" --server="https://127.0.0.1:$KUBE_PORT" \
    --certificate-authority="$PKI/cluster-ca.crt" --embed-certs=true >/dev/null
  "$KUBECTL" config set-credentials "$cert" --kubeconfig="$file" \
    --client-certificate="$PKI/$cert.crt" --client-key="$PKI/$cert.key" --embed-certs=true >/dev/null
  "$KUBECTL" config set-context local --kubeconfig="$file" --cluster=local --user="$cert" >/dev/null
  "$KUBECTL" config use-context local --kubeconfig="$file" >/dev/null
}
kubeconfig "$OUT/kubeconfig" admin
kubeconfig "$OUT/kube-controller-manager.kubeconfig" kube-controller-manager
kubeconfig "$OUT/kube-scheduler.kubeconfig" kube-scheduler
kubeconfig "$OUT/mindie-apiserver.kubeconfig" mindie-apiserver
for t in "${TENANTS[@]}"; do
  user=${t%%:*}; ns=${t#*:}; ns=${ns%%:*}
  kubeconfig "$OUT/users/$user.kubeconfig" "$user"
  "$KUBECTL" config set-context local --kubeconfig="$OUT/users/$user.kubeconfig" --namespace="$ns" >/dev/null
done
kubectl() { "$KUBECTL" --kubeconfig="$OUT/kubeconfig" "$@"; }

# --- control plane -----------------------------------------------------------
start etcd "$BIN/etcd" --name=local --data-dir="$OUT/etcd" \
  --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster="local=http://127.0.0.1:$ETCD_PEER_PORT" --log-level=warn
wait_for etcd "http://127.0.0.1:$ETCD_PORT/health"

start kube-apiserver "$BIN/kube-apiserver" \
  --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$KUBE_PORT" \
  --endpoint-reconciler-type=none --service-cluster-ip-range=10.96.0.0/16 \
  --tls-cert-file="$PKI/kube-apiserver.crt" --tls-private-key-file="$PKI/kube-apiserver.key" \
  --client-ca-file="$PKI/client-ca.crt" \
  --service-account-issuer=https://kubernetes.default.svc \
  --service-account-key-file="$PKI/service-account.key" \
  --service-account-signing-key-file="$PKI/service-account.key" \
  --authorization-mode=Node,RBAC \
  --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" \
  --requestheader-allowed-names=front-proxy-client \
  --requestheader-username-headers=X-Remote-User \
  --requestheader-group-headers=X-Remote-Group \
  --requestheader-extra-headers-prefix=X-Remote-Extra- \
  --proxy-client-cert-file="$PKI/front-proxy-client.crt" \
  --proxy-client-key-file="$PKI/front-proxy-client.key" \
  --kubelet-preferred-address-types=InternalIP
wait_for kube-apiserver "https://127.0.0.1:$KUBE_PORT/readyz" -cacert "$PKI/cluster-ca.crt"

start kube-controller-manager "$BIN/kube-controller-manager" \
  --kubeconfig="$OUT/kube-controller-manager.kubeconfig" \
  --authentication-kubeconfig="$OUT/kube-controller-manager.kubeconfig" \
  --authorization-kubeconfig="$OUT/kube-controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port=0 --leader-elect=false \
  --node-monitor-grace-period=20s \
  --use-service-account-credentials=true \
  --service-account-private-key-file="$PKI/service-account.key" --root-ca-file="$PKI/cluster-ca.crt"
start kube-scheduler "$BIN/kube-scheduler" \
  --kubeconfig="$OUT/kube-scheduler.kubeconfig" \
  --authentication-kubeconfig="$OUT/kube-scheduler.kubeconfig" \
  --authorization-kubeconfig="$OUT/kube-scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port=0 --leader-elect=false

# --- simulated Ascend and edge nodes -------------------------------------------------
SIM_ARGS=(--kubeconfig="$OUT/kubeconfig"
  --nodes="$SIM_NODES" --pod-cidr="$SIM_POD_CIDR" --edge-nodes="$SIM_EDGE_NODES" --edge-node-cidr="$SIM_EDGE_CIDR"
  --crash-loop-backoff=2s --control-addr-file="$OUT/ascend-sim.control" --router-binary="$OUT/bin/mindie-router")
if [ -n "$SIM_EDGE_ARCH" ]; then SIM_ARGS+=(--edge-arch="$SIM_EDGE_ARCH"); fi
if [ $((SIM_NODES + SIM_EDGE_NODES)) -gt 0 ]; then
  # An ascend-sim started with other nodes (other SIM_* values, or an older
  # local-up without edge nodes) is restarted with these; its pods stay in
  # the API and the new one runs them again.
  if running ascend-sim && [ "$(cat "$OUT/ascend-sim.args" 2>/dev/null)" != "${SIM_ARGS[*]}" ]; then
    log "restarting ascend-sim: its nodes changed"
    pid=$(cat "$PIDS/ascend-sim")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do running ascend-sim || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  start ascend-sim "$OUT/bin/ascend-sim" "${SIM_ARGS[@]}"
  echo "${SIM_ARGS[*]}" >"$OUT/ascend-sim.args"
fi

# --- mindie-apiserver ----------------------------------------------------------
# The shipped manifests, less what needs a kubelet (Deployment, PDB, Service):
# here the server runs as a process and is reached through an ExternalName
# Service, and the APIService gets the real caBundle.
for f in namespace serviceaccount rbac-delegation rbac-server rbac-users flowcontrol; do
  kubectl apply --server-side --force-conflicts --field-manager=local-up -f "artifacts/deploy/$f.yaml" >/dev/null
done
kubectl apply --server-side --force-conflicts --field-manager=local-up -f - >/dev/null <<EOF
apiVersion: v1
kind: Service
metadata: {name: mindie-apiserver, namespace: mindie-system}
spec: {type: ExternalName, externalName: localhost}
EOF

# start_mindie NAME PORT [FLAG...]: one mindie-apiserver replica on PORT.
start_mindie() {
  local name=$1 port=$2; shift 2
  start "$name" env ${MINDIE_APISERVER_ENVS[@]+"${MINDIE_APISERVER_ENVS[@]}"} "$OUT/bin/mindie-apiserver" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 --secure-port="$port" \
    --tls-cert-file="$PKI/mindie-apiserver-serving.crt" --tls-private-key-file="$PKI/mindie-apiserver-serving.key" \
    --kubeconfig="$OUT/mindie-apiserver.kubeconfig" \
    --authentication-kubeconfig="$OUT/mindie-apiserver.kubeconfig" \
    --authorization-kubeconfig="$OUT/mindie-apiserver.kubeconfig" \
    --audit-policy-file=artifacts/deploy/audit-policy.yaml --audit-log-format=json \
    "$@" ${MINDIE_APISERVER_EXTRA[@]+"${MINDIE_APISERVER_EXTRA[@]}"}
  wait_for "$name" "https://127.0.0.1:$port/readyz" -cacert "$PKI/mindie-ca.crt"
}
if [ "$MINDIE_REPLICAS" -le 1 ]; then
  start_mindie mindie-apiserver "$MINDIE_PORT" --audit-log-path="$LOGS/audit.log"
else
  # Replicas on the ports after MINDIE_PORT, behind servicelb on MINDIE_PORT
  # (the Service's virtual IP and kube-proxy of a real cluster).
  read -r -a replica_ports <<<"${MINDIE_REPLICA_PORTS:-}"
  backends=()
  for i in $(seq 0 $((MINDIE_REPLICAS - 1))); do
    port=${replica_ports[$i]:-$((MINDIE_PORT + 1 + i))}
    start_mindie "mindie-apiserver-$i" "$port" \
      --audit-log-path="$LOGS/audit-$i.log" --leader-elect-identity="mindie-apiserver-$i"
    backends+=(-backend "127.0.0.1:$port")
  done
  start mindie-apiserver-lb "$OUT/bin/servicelb" -listen "127.0.0.1:$MINDIE_PORT" -cacert "$PKI/mindie-ca.crt" \
    -policy "${MINDIE_LB_POLICY:-round-robin}" "${backends[@]}"
  wait_for mindie-apiserver-lb "https://127.0.0.1:$MINDIE_PORT/readyz" -cacert "$PKI/mindie-ca.crt"
fi

kubectl apply --server-side --force-conflicts --field-manager=local-up -f - >/dev/null <<EOF
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1alpha1.infer.mindie.io}
spec:
  group: infer.mindie.io
  version: v1alpha1
  groupPriorityMinimum: 1000
  versionPriority: 15
  service: {name: mindie-apiserver, namespace: mindie-system, port: $MINDIE_PORT}
  caBundle: $(base64 -w0 <"$PKI/mindie-ca.crt")
EOF

if [ "$MINDIE_CONTROLLERS" = external ]; then
  start mindie-controller env ${MINDIE_CONTROLLER_ENVS[@]+"${MINDIE_CONTROLLER_ENVS[@]}"} "$OUT/bin/mindie-controller" \
    --kubeconfig="$OUT/mindie-apiserver.kubeconfig" --health-bind-address="127.0.0.1:$MINDIE_CONTROLLER_PORT" \
    ${MINDIE_CONTROLLER_EXTRA[@]+"${MINDIE_CONTROLLER_EXTRA[@]}"}
  # Ready once its InferServer informer has listed through kube-apiserver.
  wait_for mindie-controller "http://127.0.0.1:$MINDIE_CONTROLLER_PORT/readyz"
fi

# --- tenants -------------------------------------------------------------------
for t in "${TENANTS[@]}"; do
  user=${t%%:*}; rest=${t#*:}; ns=${rest%%:*}; role=${rest#*:}
  kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply --server-side --field-manager=local-up -f - >/dev/null
  kubectl -n "$ns" create rolebinding "$user" --clusterrole="$role" --user="$user" --dry-run=client -o yaml |
    kubectl apply --server-side --force-conflicts --field-manager=local-up -f - >/dev/null
done

kubectl wait --for=condition=Available --timeout=120s apiservice/v1alpha1.infer.mindie.io >/dev/null
# The InferServer roles reach edit and view once the controller manager has
# aggregated them; wait for that, so the tenants can work when this returns.
for _ in $(seq 1 120); do
  if [ "$(kubectl auth can-i create inferservers.infer.mindie.io -n team-a --as=tenant-a-editor 2>/dev/null)" = yes ] &&
     [ "$(kubectl auth can-i list inferservers.infer.mindie.io -n team-a --as=tenant-a-viewer 2>/dev/null)" = yes ]; then
    break
  fi
  sleep 0.5
done
if [ "$SIM_NODES" -gt 0 ]; then
  for _ in $(seq 1 $((120 + 2 * SIM_NODES))); do
    [ "$(kubectl get nodes -l mindie.io/simulated=true --no-headers 2>/dev/null | wc -l)" -ge "$SIM_NODES" ] && break
    sleep 0.5
  done
  kubectl wait --for=condition=Ready --timeout=$((60 + SIM_NODES))s node -l mindie.io/simulated=true >/dev/null
fi
if [ "$SIM_EDGE_NODES" -gt 0 ]; then
  # edge-0 .. edge-<SIM_EDGE_NODES-1> Ready, counted from one list a
  # round (edge nodes of an earlier run with more of them do not count).
  ready_edges() {
    kubectl get nodes -l mindie.io/simulated=edge \
      -o jsonpath='{range .items[*]}{.metadata.name} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' 2>/dev/null |
      awk -v n="$SIM_EDGE_NODES" '$2 == "True" && $1 ~ /^edge-[0-9]+$/ && substr($1, 6) + 0 < n { c++ } END { print c + 0 }'
  }
  deadline=$(($(date +%s) + 120 + SIM_EDGE_NODES / 4))
  until [ "$(ready_edges)" -ge "$SIM_EDGE_NODES" ]; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "only $(ready_edges) of $SIM_EDGE_NODES simulated edge nodes are Ready"; exit 1
    fi
    sleep 1
  done
fi
log "ready: mindie-apiserver is registered as v1alpha1.infer.mindie.io; $SIM_NODES simulated Ascend nodes, $SIM_EDGE_NODES simulated edge nodes (-l mindie.io/edge=true)"
echo "export KUBECONFIG=$OUT/kubeconfig"

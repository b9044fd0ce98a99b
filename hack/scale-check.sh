#!/usr/bin/env bash
# Scale check: brings up a separate local cluster (hack/local-up.sh) with
# SCALE_NODES simulated Ascend nodes on free loopback ports, creates
# SCALE_DEPLOYMENTS Deployments of SCALE_REPLICAS pods each (no NPUs, a
# readinessProbe on the MindIE Server simulator's management port), waits
# until every pod is Ready (at most SCALE_READY_TIMEOUT seconds), samples the
# resident memory and CPU time of ascend-sim and of every control-plane
# process from /proc while it runs and tears the cluster down
# (hack/local-down.sh --purge, also on failure). test/bench/scalecheck then
# turns what it measured into the results (JSON, the format of
# test/bench/results), which go to docs/bench/scale-check.json, and
# test/bench/report renders docs/scale-check.md (and the other benchmark
# documents) from them.
#
#   SCALE_NODES          simulated nodes (default 100)
#   SCALE_DEPLOYMENTS    Deployments (default 10)
#   SCALE_REPLICAS       replicas of each (default 100)
#   SCALE_NODE_TIMEOUT   seconds to wait for the nodes to be Ready (default 600)
#   SCALE_READY_TIMEOUT  seconds to wait for the pods to be Ready (default 900)
#   SCALE_RESULTS        where the results go (default docs/bench/scale-check.json,
#                        from which the documents are rendered; elsewhere, only
#                        the scale check's document is rendered, next to the
#                        results as <name>.md)
#
#   hack/scale-check.sh --report-only
#       renders the documents from $SCALE_RESULTS without running anything.
#
# Samples, progress and the cluster's logs are kept in _output/scale-check/
# (what each file holds is in test/bench/scalecheck); to make the results
# again from them: go run ./test/bench/scalecheck -results <file>.
# Everything listens on and dials loopback addresses only.
set -o errexit -o nounset -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "${ROOT}"

NODES=${SCALE_NODES:-100}
DEPLOYMENTS=${SCALE_DEPLOYMENTS:-10}
REPLICAS=${SCALE_REPLICAS:-100}
NODE_TIMEOUT=${SCALE_NODE_TIMEOUT:-600}
READY_TIMEOUT=${SCALE_READY_TIMEOUT:-900}
DEFAULT_RESULTS=docs/bench/scale-check.json
RESULTS=${SCALE_RESULTS:-${DEFAULT_RESULTS}}
PODS=$((DEPLOYMENTS * REPLICAS))
NS=scale-check
SAMPLE_EVERY=2 # seconds between /proc samples
POLL_EVERY=10  # seconds between readiness polls
# The processes sampled, in the order the document lists them.
COMPONENTS=(ascend-sim etcd kube-apiserver kube-controller-manager kube-scheduler mindie-apiserver)

WORK=_output/scale-check
BIN=${WORK}/bin
SAMPLES=${WORK}/samples.tsv   # epoch, component, pid, VmRSS KiB, utime+stime ticks
PROGRESS=${WORK}/progress.tsv # elapsed s, Ready nodes, pods created, pods Ready
MARKS=${WORK}/marks.tsv       # phase name, epoch
PARAMS=${WORK}/run.tsv        # key, value: the run's parameters, machine and outcome

log() { echo "scale-check: $*" >&2; }
mark() { printf '%s\t%s\n' "$1" "$(date +%s.%N)" >>"${MARKS}"; }
param() { printf '%s\t%s\n' "$1" "$2"; }

# render: the documents from $RESULTS.
render() {
  if [ "${RESULTS}" = "${DEFAULT_RESULTS}" ]; then
    go run ./test/bench/report
  else
    go run ./test/bench/report -reconcile '' -benchmarks-out '' -scale-check "${RESULTS}" -scale-check-out "${RESULTS%.json}.md"
  fi
}
case "${1:-}" in
  --report-only) render; exit 0 ;;
  "") ;;
  *) log "unknown argument ${1}: want --report-only or none"; exit 2 ;;
esac
rm -rf "${WORK}"
mkdir -p "${BIN}" "$(dirname "${RESULTS}")"
# Built before the cluster comes up, so that a build error stops the check
# before it costs anything: the reconcile benchmark's program picks the free
# ports, scalecheck makes the results.
go build -o "${BIN}/reconcile" ./test/bench/reconcile
go build -o "${BIN}/scalecheck" ./test/bench/scalecheck

read -r ETCD_PORT ETCD_PEER_PORT KUBE_PORT MINDIE_PORT < <("${BIN}/reconcile" ports -n 4)
OUT=$(mktemp -d "${TMPDIR:-/tmp}/scale-check.XXXXXX")
export OUT ETCD_PORT ETCD_PEER_PORT KUBE_PORT MINDIE_PORT
export SIM_NODES=${NODES} SIM_POD_CIDR=127.77.0.0/16
kubectl() { "${OUT}/bin/kubectl" --kubeconfig="${OUT}/kubeconfig" --request-timeout=60s "$@"; }
log "OUT=${OUT} etcd=${ETCD_PORT}/${ETCD_PEER_PORT} kube-apiserver=${KUBE_PORT} mindie-apiserver=${MINDIE_PORT}"

# sampler: every SAMPLE_EVERY seconds, VmRSS and utime+stime of each
# component in $OUT/pids, until $WORK/stop exists (or 3 hours at most).
sampler() {
  local i name pid rss ticks now
  for ((i = 0; i < 3 * 3600 / SAMPLE_EVERY; i++)); do
    [ -e "${WORK}/stop" ] && return 0
    now=$(date +%s.%N)
    for name in "${COMPONENTS[@]}"; do
      pid=$(cat "${OUT}/pids/${name}" 2>/dev/null) || continue
      rss=$(awk '/^VmRSS:/ {print $2}' "/proc/${pid}/status" 2>/dev/null) || continue
      # Fields after "pid (comm) ": state is the 1st, utime the 12th, stime the 13th.
      ticks=$(sed 's/^.*) //' "/proc/${pid}/stat" 2>/dev/null | awk '{print $12 + $13}') || continue
      [ -n "${rss}" ] && [ -n "${ticks}" ] || continue
      printf '%s\t%s\t%s\t%s\t%s\n' "${now}" "${name}" "${pid}" "${rss}" "${ticks}" >>"${SAMPLES}"
    done
    sleep "${SAMPLE_EVERY}"
  done
}

# keep_logs: copies the cluster's logs to $WORK/logs, where they outlive
# the purge; the audit log is large and left out.
keep_logs() {
  if [ -d "${OUT}/logs" ]; then
    mkdir -p "${WORK}/logs"
    find "${OUT}/logs" -maxdepth 1 -name '*.log' ! -name 'audit*' -exec cp {} "${WORK}/logs/" \;
  fi
}

SAMPLER=
cleanup() {
  local rc=$?
  set +o errexit
  touch "${WORK}/stop"
  if [ -n "${SAMPLER}" ]; then
    wait "${SAMPLER}" 2>/dev/null
  fi
  keep_logs
  log "tearing down"
  hack/local-down.sh --purge
  exit "${rc}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "${OUT}/pids"
sampler &
SAMPLER=$!

# --- cluster -----------------------------------------------------------------------
start=$(date +%s)
mark up-start
# local-up.sh gives up when the simulated nodes are not all Ready within
# its own bound (about two minutes); with the control plane and ascend-sim
# running that is a result to record, not a reason to stop.
LOCALUP_NODE_TIMEOUTS=0
if ! hack/local-up.sh >"${WORK}/local-up.out" 2>&1; then
  LOCALUP_NODE_TIMEOUTS=$(grep -c '^timed out waiting for the condition on nodes/' "${WORK}/local-up.out" || true)
  if [ "${LOCALUP_NODE_TIMEOUTS}" -eq 0 ] || ! kubectl get --raw /readyz >/dev/null 2>&1 ||
     ! kill -0 "$(cat "${OUT}/pids/ascend-sim" 2>/dev/null || echo 0)" 2>/dev/null; then
    log "local-up failed:"; tail -30 "${WORK}/local-up.out" >&2; exit 1
  fi
  log "local-up gave up waiting for ${LOCALUP_NODE_TIMEOUTS} of ${NODES} nodes to be Ready; going on"
fi
mark up-done
log "control plane up in $(($(date +%s) - start))s; waiting for ${NODES} Ready nodes"

ready_nodes() {
  kubectl get nodes -l mindie.io/simulated=true --no-headers 2>/dev/null | awk '$2 == "Ready" {n++} END {print n + 0}'
}
# Not reaching every node is recorded, not fatal: the pods then go to the
# nodes that are Ready, and the report says so.
start=$(date +%s)
MAX_READY_NODES=0
NODES_SECONDS=
while :; do
  n=$(ready_nodes)
  [ "${n}" -gt "${MAX_READY_NODES}" ] && MAX_READY_NODES=${n}
  if [ "${n}" -ge "${NODES}" ]; then
    NODES_SECONDS=$(($(date +%s) - start))
    log "${NODES} nodes Ready after ${NODES_SECONDS}s more"
    break
  fi
  if [ $(($(date +%s) - start)) -ge "${NODE_TIMEOUT}" ]; then
    log "only ${n}/${NODES} nodes Ready after ${NODE_TIMEOUT}s (at most ${MAX_READY_NODES} at once); creating the pods anyway"
    break
  fi
  sleep 5
done
mark nodes-ready

# --- pods --------------------------------------------------------------------------
kubectl create namespace "${NS}" >/dev/null
manifests() {
  local d
  for ((d = 0; d < DEPLOYMENTS; d++)); do
    cat <<EOF
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: sim-${d}, namespace: ${NS}}
spec:
  replicas: ${REPLICAS}
  selector: {matchLabels: {app: sim-${d}}}
  template:
    metadata: {labels: {app: sim-${d}}}
    spec:
      nodeSelector: {mindie.io/simulated: "true"}
      terminationGracePeriodSeconds: 1
      containers:
        - name: server
          image: mindie:server
          ports: [{name: inference, containerPort: 1025}, {name: management, containerPort: 1026}]
          readinessProbe:
            httpGet: {path: /v2/health/ready, port: 1026}
            periodSeconds: 10
EOF
  done
}
mark pods-start
pods_start=$(date +%s.%N)
manifests | kubectl apply -f - >/dev/null
log "created ${DEPLOYMENTS} Deployments x ${REPLICAS} replicas; waiting up to ${READY_TIMEOUT}s for ${PODS} Ready pods"

printf 'elapsed_s\tready_nodes\tpods_created\tpods_ready\n' >"${PROGRESS}"
ready=0
ALL_READY_SECONDS=
for ((i = 0; i <= READY_TIMEOUT / POLL_EVERY + 1; i++)); do
  # Sums over the Deployments' status: cheap next to listing 1,000 pods.
  read -r created ready < <(kubectl -n "${NS}" get deployments --no-headers \
    -o custom-columns=R:.status.replicas,READY:.status.readyReplicas 2>/dev/null |
    awk '{c += ($1 == "<none>" ? 0 : $1); r += ($2 == "<none>" ? 0 : $2)} END {print c + 0, r + 0}') || true
  created=${created:-0} ready=${ready:-0}
  elapsed=$(awk -v a="${pods_start}" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
  n=$(ready_nodes)
  [ "${n}" -gt "${MAX_READY_NODES}" ] && MAX_READY_NODES=${n}
  printf '%s\t%s\t%s\t%s\n' "${elapsed}" "${n}" "${created}" "${ready}" >>"${PROGRESS}"
  if [ "${ready}" -ge "${PODS}" ]; then
    ALL_READY_SECONDS=${elapsed}
    break
  fi
  if awk -v e="${elapsed}" -v t="${READY_TIMEOUT}" 'BEGIN {exit !(e >= t)}'; then
    break
  fi
  [ $((i % 6)) -eq 0 ] && log "t=${elapsed}s: ${created} pods created, ${ready} Ready"
  sleep "${POLL_EVERY}"
done
mark pods-end
FINAL_READY=${ready}
if [ -n "${ALL_READY_SECONDS}" ]; then
  log "all ${PODS} pods Ready after ${ALL_READY_SECONDS}s"
else
  log "only ${FINAL_READY}/${PODS} pods Ready after ${READY_TIMEOUT}s"
fi

# Where the pods are: phase and Ready condition, and the nodes' state.
kubectl -n "${NS}" get pods --no-headers \
  -o 'custom-columns=PHASE:.status.phase,NODE:.spec.nodeName,READY:.status.conditions[?(@.type=="Ready")].status' \
  >"${WORK}/pods.txt" 2>/dev/null || true
FINAL_NODES=$(ready_nodes)
kubectl get events -A --no-headers 2>/dev/null | awk '{print $3, $4}' | sort | uniq -c | sort -rn | head -15 >"${WORK}/events.txt" || true
sleep "${SAMPLE_EVERY}" # one more sample after the end mark

# --- results -----------------------------------------------------------------------
touch "${WORK}/stop"
wait "${SAMPLER}" 2>/dev/null || true
SAMPLER=
# The keys are those of test/bench/scalecheck; an empty nodes-seconds or
# all-ready-seconds is a wait that ran out.
{
  param date "$(date -u '+%Y-%m-%dT%H:%M:%SZ')"
  param cpu-model "$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1)"
  param cpus "$(nproc)"
  param mem-total-kib "$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)"
  param clk-tck "$(getconf CLK_TCK)"
  param components "${COMPONENTS[*]}"
  param nodes "${NODES}"
  param deployments "${DEPLOYMENTS}"
  param replicas "${REPLICAS}"
  param node-timeout "${NODE_TIMEOUT}"
  param ready-timeout "${READY_TIMEOUT}"
  param sample-every "${SAMPLE_EVERY}"
  param poll-every "${POLL_EVERY}"
  param localup-node-timeouts "${LOCALUP_NODE_TIMEOUTS}"
  param nodes-seconds "${NODES_SECONDS}"
  param max-ready-nodes "${MAX_READY_NODES}"
  param final-nodes "${FINAL_NODES}"
  param all-ready-seconds "${ALL_READY_SECONDS}"
  param final-ready "${FINAL_READY}"
} >"${PARAMS}"
# ascend-sim's log is read from here (what it logged is counted in the results).
keep_logs
"${BIN}/scalecheck" -work "${WORK}" -results "${RESULTS}"
log "wrote ${RESULTS}; samples, progress and logs are in ${WORK}/"
render

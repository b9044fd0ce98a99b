#!/usr/bin/env bash
# Fault-recovery benchmark: brings up a separate local cluster
# (hack/local-up.sh) on free loopback ports with SIM_NODES simulated Ascend
# nodes of 8 NPUs, runs test/bench/faultbench on it and tears it down
# (hack/local-down.sh --purge, also on failure). faultbench measures the
# time from a fault to a replacement instance answering a chat on its pod
# IP, each scenario on a fresh InferServer (2 single-node instances of 8
# NPUs, a router, terminationGracePeriodSeconds 5, nodeLostSeconds left at
# 60), created and waited Available first:
#   npu-force  `ascend-sim fault npu --level SeparateNPU` on a chip of an
#              instance pod, faultRescheduling Force;
#   npu-grace  the same with Grace (the default);
#   node-loss  `ascend-sim fault node --down=true` on the node of an
#              instance pod;
# and beside them, in the same run, the baseline: one more instance added
# to each scenario's server and timed from bound to a node to Ready (the
# simulated model load and the probes). Each fault is undone and the server
# let recover before the next. The results (JSON, the format of
# test/bench/results) go to docs/bench/faults.json and test/bench/report
# renders docs/benchmarks.md (its "Fault recovery" section) from them.
#
#   FAULT_REPEATS       faults per NPU scenario (default 3)
#   FAULT_NODE_REPEATS  node losses (default 3; each takes about a minute)
#   FAULT_SCENARIOS     the scenarios, comma-separated (default
#                       npu-force,npu-grace,node-loss)
#   FAULT_RESULTS       where the results go (default docs/bench/faults.json,
#                       from which docs/benchmarks.md is rendered; elsewhere,
#                       nothing is rendered)
#
#   hack/fault-bench.sh --report-only
#       renders docs/benchmarks.md from the results without running anything.
#
# Progress, the results of the current run and the cluster's logs are kept
# in _output/fault-bench/ (the cluster itself in _output/fault-bench/cluster,
# purged at the end). Everything listens on and dials loopback addresses
# only. About 6 minutes on two cores, most of it the node losses (a node's
# pods are deleted 60 s after its last heartbeat).
set -o errexit -o nounset -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "${ROOT}"

REPEATS=${FAULT_REPEATS:-3}
NODE_REPEATS=${FAULT_NODE_REPEATS:-3}
SCENARIOS=${FAULT_SCENARIOS:-npu-force,npu-grace,node-loss}
DEFAULT_RESULTS=docs/bench/faults.json
RESULTS=${FAULT_RESULTS:-${DEFAULT_RESULTS}}
WORK=${ROOT}/_output/fault-bench
BIN=${WORK}/bin/faultbench

log() { echo "fault-bench: $*" >&2; }

COMMAND="hack/fault-bench.sh"
if [ "${REPEATS}" != 3 ] || [ "${NODE_REPEATS}" != 3 ] || [ "${SCENARIOS}" != npu-force,npu-grace,node-loss ]; then
  COMMAND="FAULT_REPEATS=${REPEATS} FAULT_NODE_REPEATS=${NODE_REPEATS} FAULT_SCENARIOS=${SCENARIOS} ${COMMAND}"
fi

render() {
  if [ "${RESULTS}" = "${DEFAULT_RESULTS}" ]; then
    go run ./test/bench/report
  else
    log "results in ${RESULTS}; docs/benchmarks.md renders only ${DEFAULT_RESULTS}"
  fi
}
case "${1:-}" in
  --report-only) render; exit 0 ;;
  "") ;;
  *) log "unknown argument ${1}: want --report-only or none"; exit 2 ;;
esac

mkdir -p "${WORK}/bin" "$(dirname "${RESULTS}")"
go build -o "${BIN}" ./test/bench/faultbench

rm -rf "${WORK:?}/logs" "${WORK}/faults.json" "${WORK}/local-up.out" "${WORK}/cluster"
mkdir -p "${WORK}/logs"

read -r ETCD_PORT ETCD_PEER_PORT KUBE_PORT MINDIE_PORT < <("${BIN}" ports -n 4)
OUT=${WORK}/cluster
export OUT ETCD_PORT ETCD_PEER_PORT KUBE_PORT MINDIE_PORT
export SIM_NODES=4 SIM_POD_CIDR=127.79.0.0/16
log "OUT=${OUT} etcd=${ETCD_PORT}/${ETCD_PEER_PORT} kube-apiserver=${KUBE_PORT} mindie-apiserver=${MINDIE_PORT}"

# keep_logs: copies the cluster's logs to $WORK/logs, where they outlive
# the purge; the audit log is large and left out.
keep_logs() {
  if [ -d "${OUT}/logs" ]; then
    find "${OUT}/logs" -maxdepth 1 -name '*.log' ! -name 'audit*' -exec cp {} "${WORK}/logs/" \;
  fi
}
cleanup() {
  local rc=$?
  set +o errexit
  keep_logs
  log "tearing down"
  hack/local-down.sh --purge
  exit "${rc}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start=$(date +%s)
if ! hack/local-up.sh >"${WORK}/local-up.out" 2>&1; then
  log "local-up failed:"; tail -30 "${WORK}/local-up.out" >&2; exit 1
fi
log "cluster up in $(($(date +%s) - start))s"

"${BIN}" run -kubeconfig "${OUT}/kubeconfig" -sim "${OUT}/bin/ascend-sim" -control-addr-file "${OUT}/ascend-sim.control" \
  -repeats "${REPEATS}" -node-repeats "${NODE_REPEATS}" -scenarios "${SCENARIOS}" \
  -command "${COMMAND}" -out "${WORK}/faults.json"
keep_logs

cp "${WORK}/faults.json" "${RESULTS}.tmp"
mv "${RESULTS}.tmp" "${RESULTS}"
log "wrote ${RESULTS} in $(($(date +%s) - start))s; logs are in ${WORK}/"
render

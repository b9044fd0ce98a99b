#!/usr/bin/env bash
# Reconcile benchmark: brings up a separate local cluster (hack/local-up.sh)
# on free loopback ports with no simulated nodes (the pods stay Pending, so
# what is measured is the InferServer controller and the API servers, not
# the simulator). For each size N it runs test/bench/reconcile, which
# creates N single-node InferServers at once and measures the time until
# every one has its children (Deployment, Service, ControllerRevision) and
# until every status is observed, mindie-apiserver's peak resident memory,
# and beside them a baseline of the same run: N ConfigMaps written with the
# same client and concurrency. mindie-apiserver is restarted before each N
# (after the previous N's servers are deleted), so each starts from a fresh
# process. It tears the cluster down (hack/local-down.sh --purge, also on
# failure). When every N has been measured, the results (JSON, the format of
# test/bench/results) go to docs/bench/reconcile.json and test/bench/report
# renders docs/reconcile-bench.md and docs/benchmarks.md from them.
#
#   RECONCILE_SIZES       the N to measure (default "100 1000")
#   RECONCILE_WORKERS     goroutines creating at once (default 20)
#   RECONCILE_TIMEOUT     seconds to wait for every status of one N (default 300)
#   RECONCILE_RESULTS     where the results go (default docs/bench/reconcile.json,
#                         from which the documents are rendered; elsewhere,
#                         only the reconcile report is rendered, next to the
#                         results as <name>.md)
#
#   hack/reconcile-bench.sh --report-only
#       renders the documents from $RECONCILE_RESULTS without running anything.
#
# Progress, the results of the current run (as each N is measured) and the
# cluster's logs are kept in _output/reconcile-bench/. Everything listens on
# and dials loopback addresses only. About 7 minutes on two cores, most of
# it the 1,000 servers and their deletion.
set -o errexit -o nounset -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "${ROOT}"

SIZES=${RECONCILE_SIZES:-100 1000}
WORKERS=${RECONCILE_WORKERS:-20}
TIMEOUT=${RECONCILE_TIMEOUT:-300}
DEFAULT_RESULTS=docs/bench/reconcile.json
RESULTS=${RECONCILE_RESULTS:-${DEFAULT_RESULTS}}
WORK=_output/reconcile-bench
BIN=${WORK}/bin/reconcile

log() { echo "reconcile-bench: $*" >&2; }

COMMAND="hack/reconcile-bench.sh"
if [ "${SIZES}" != "100 1000" ] || [ "${WORKERS}" != 20 ] || [ "${TIMEOUT}" != 300 ]; then
  COMMAND="RECONCILE_SIZES='${SIZES}' RECONCILE_WORKERS=${WORKERS} RECONCILE_TIMEOUT=${TIMEOUT} ${COMMAND}"
fi

# render: the documents from $RESULTS.
render() {
  if [ "${RESULTS}" = "${DEFAULT_RESULTS}" ]; then
    go run ./test/bench/report
  else
    go run ./test/bench/report -reconcile "${RESULTS}" -benchmarks-out '' -reconcile-out "${RESULTS%.json}.md"
  fi
}
case "${1:-}" in
  --report-only) render; exit 0 ;;
  "") ;;
  *) log "unknown argument ${1}: want --report-only or none"; exit 2 ;;
esac

mkdir -p "${WORK}/bin" "$(dirname "${RESULTS}")"
go build -o "${BIN}" ./test/bench/reconcile

rm -rf "${WORK:?}/logs" "${WORK}/reconcile.json" "${WORK}/local-up.out"
mkdir -p "${WORK}/logs"

read -r ETCD_PORT ETCD_PEER_PORT KUBE_PORT MINDIE_PORT < <("${BIN}" ports -n 4)
OUT=$(mktemp -d "${TMPDIR:-/tmp}/reconcile-bench.XXXXXX")
export OUT ETCD_PORT ETCD_PEER_PORT KUBE_PORT MINDIE_PORT
export SIM_NODES=0 SIM_POD_CIDR=127.78.0.0/16
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

# restart_mindie: stops mindie-apiserver (its controller gives up its Lease
# as it stops) and lets hack/local-up.sh, which starts whatever is not
# running, start a fresh one.
restart_mindie() {
  local pid
  pid=$(cat "${OUT}/pids/mindie-apiserver")
  kill -TERM "${pid}" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "${pid}" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "${pid}" 2>/dev/null; then
    # Its HTTP server waits up to a minute for connections with open
    # watches to end; its controllers stopped and gave up their Lease
    # right after the signal.
    log "mindie-apiserver (${pid}) still runs 20s after SIGTERM; killing it"
    kill -KILL "${pid}" 2>/dev/null || true
    sleep 1
  fi
  if ! hack/local-up.sh >>"${WORK}/local-up.out" 2>&1; then
    log "restarting mindie-apiserver failed:"; tail -20 "${WORK}/local-up.out" >&2; exit 1
  fi
}

start=$(date +%s)
if ! hack/local-up.sh >"${WORK}/local-up.out" 2>&1; then
  log "local-up failed:"; tail -30 "${WORK}/local-up.out" >&2; exit 1
fi
log "cluster up in $(($(date +%s) - start))s"

clk_tck=$(getconf CLK_TCK 2>/dev/null || echo 100)
first=1
for n in ${SIZES}; do
  if [ "${first}" = 0 ]; then
    log "restarting mindie-apiserver"
    restart_mindie
  fi
  first=0
  log "N=${n}"
  "${BIN}" run -kubeconfig "${OUT}/kubeconfig" -n "${n}" -workers "${WORKERS}" \
    -pids "${OUT}/pids" -log "${OUT}/logs/mindie-apiserver.log" -clk-tck "${clk_tck}" \
    -metrics-url "https://127.0.0.1:${MINDIE_PORT}/metrics" -metrics-ca "${OUT}/pki/mindie-ca.crt" \
    -timeout "${TIMEOUT}s" -command "${COMMAND}" -results "${WORK}/reconcile.json"
done
keep_logs

cp "${WORK}/reconcile.json" "${RESULTS}.tmp"
mv "${RESULTS}.tmp" "${RESULTS}"
log "wrote ${RESULTS}; logs are in ${WORK}/"
render

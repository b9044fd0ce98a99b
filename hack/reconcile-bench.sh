#!/usr/bin/env bash
# Reconcile benchmark: brings up a separate local cluster (hack/local-up.sh)
# on free loopback ports with no simulated nodes (the pods stay Pending, so
# what is measured is the InferServer controller and the API servers, not
# the simulator). For each size N it creates N single-node InferServers at
# once and measures, with hack/reconcilebench, the time until every one has
# its children (Deployment, Service, ControllerRevision) and until every
# status is observed, mindie-apiserver's peak resident memory, and beside
# them a baseline of the same run: N ConfigMaps written with the same client
# and concurrency. mindie-apiserver is restarted before each N (after the
# previous N's servers are deleted), so each starts from a fresh process.
# It tears the cluster down (hack/local-down.sh --purge, also on failure),
# writes docs/reconcile-bench.md and puts its summary table into
# docs/benchmarks.md.
#
#   RECONCILE_SIZES       the N to measure (default "100 1000")
#   RECONCILE_WORKERS     goroutines creating at once (default 20)
#   RECONCILE_TIMEOUT     seconds to wait for every status of one N (default 300)
#   RECONCILE_REPORT      where the report goes (default docs/reconcile-bench.md)
#   RECONCILE_BENCHMARKS  the report the summary goes into (default
#                         docs/benchmarks.md; empty: none)
#
#   hack/reconcile-bench.sh --section-only
#       only puts the summary of the existing report into
#       $RECONCILE_BENCHMARKS (hack/bench.sh does this with RECONCILE_BENCH=0,
#       after it has rewritten docs/benchmarks.md).
#   hack/reconcile-bench.sh --report-only
#       rewrites the report from the last run's results in
#       _output/reconcile-bench/ without running anything.
#
# Results, progress and the cluster's logs are kept in
# _output/reconcile-bench/. Everything listens on and dials loopback
# addresses only. About 7 minutes on two cores, most of it the 1,000
# servers and their deletion.
set -o errexit -o nounset -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "${ROOT}"

SIZES=${RECONCILE_SIZES:-100 1000}
WORKERS=${RECONCILE_WORKERS:-20}
TIMEOUT=${RECONCILE_TIMEOUT:-300}
REPORT=${RECONCILE_REPORT:-docs/reconcile-bench.md}
BENCHMARKS=${RECONCILE_BENCHMARKS-docs/benchmarks.md}
WORK=_output/reconcile-bench
BIN=${WORK}/bin/reconcilebench

log() { echo "reconcile-bench: $*" >&2; }

COMMAND="hack/reconcile-bench.sh"
if [ "${SIZES}" != "100 1000" ] || [ "${WORKERS}" != 20 ] || [ "${TIMEOUT}" != 300 ]; then
  COMMAND="RECONCILE_SIZES='${SIZES}' RECONCILE_WORKERS=${WORKERS} RECONCILE_TIMEOUT=${TIMEOUT} ${COMMAND}"
fi

mkdir -p "${WORK}/bin" "$(dirname "${REPORT}")"
go build -o "${BIN}" ./hack/reconcilebench

section() {
  if [ -n "${BENCHMARKS}" ] && [ -f "${BENCHMARKS}" ] && [ -f "${REPORT}" ]; then
    "${BIN}" section -from "${REPORT}" -into "${BENCHMARKS}"
    log "put the summary of ${REPORT} into ${BENCHMARKS}"
  fi
}
# report: writes $REPORT from the results in $WORK and puts its summary
# into $BENCHMARKS.
report() {
  local cpu command f results=()
  for f in "${WORK}"/result-*.json; do
    [ -e "${f}" ] && results+=("${f}")
  done
  if [ "${#results[@]}" -eq 0 ]; then
    log "no results in ${WORK}"; exit 1
  fi
  cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo 2>/dev/null | head -n 1 || true)
  command=$(cat "${WORK}/command" 2>/dev/null || echo "${COMMAND}")
  "${BIN}" report -out "${REPORT}" \
    -cpu "${cpu:-unknown}" -nproc "$(nproc)" \
    -mem "$(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)" \
    -go "$(go version)" -command "${command}" \
    "${results[@]}"
  cat "${REPORT}"
  log "wrote ${REPORT}; results and logs are in ${WORK}/"
  section
}
case "${1:-}" in
  --section-only) section; exit 0 ;;
  --report-only) report; exit 0 ;;
  "") ;;
  *) log "unknown argument ${1}: want --section-only, --report-only or none"; exit 2 ;;
esac

rm -rf "${WORK:?}/logs" "${WORK}"/result-*.json "${WORK}/local-up.out"
mkdir -p "${WORK}/logs"
echo "${COMMAND}" >"${WORK}/command"

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
    -timeout "${TIMEOUT}s" -out "${WORK}/result-${n}.json"
done
keep_logs

report

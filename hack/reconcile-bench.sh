#!/usr/bin/env bash
# Reconcile benchmark: brings up a separate local cluster (hack/local-up.sh)
# on free loopback ports with no simulated nodes (the pods stay Pending, so
# what is measured is the InferServer controller and the API servers, not
# the simulator). For each size N it runs test/bench/reconcile, which
# creates N single-node InferServers at once and measures the time until
# every one has its children (Deployment, Service, ControllerRevision) and
# until every status is observed, mindie-apiserver's peak resident memory,
# the controller's work queue and the API servers' writes, and beside them a
# baseline of the same run: the very children the controller writes on the
# servers' first syncs, written directly with the same client and
# concurrency (the median of three runs; one run for more than 1,000
# servers), and the deletion of the N servers at the end. The servers'
# phase runs as often as the baseline (RECONCILE_RUNS), the run whose time
# until every status was observed is the median counting. Up to 1,000
# servers it measures the floor too (RECONCILE_FLOOR): the servers' writes
# made by the benchmark itself, without a controller. The runs take turns
# (baseline, floor, servers, baseline, ...), so that a drift of the
# machine's speed falls on all alike. mindie-apiserver is restarted before
# each N and before every phase after that, so that each is measured on a
# fresh process. It tears the cluster down (hack/local-down.sh --purge,
# also on failure). When every N has been measured, the results
# (JSON, the format of test/bench/results) go to $RECONCILE_RESULTS and
# test/bench/report renders the documents from them.
#
#   RECONCILE_SIZES       the N to measure (default "100 1000 10000"; 10,000
#                         takes half an hour or more on two cores)
#   RECONCILE_BASELINE_RUNS  runs of the baseline for each N, the median counts
#                         (default: 3 up to 1,000 servers, one beyond, where a
#                         run takes many minutes and varies little)
#   RECONCILE_RUNS        runs of the servers' phase for each N, each ending
#                         with the servers' deletion; the median run counts
#                         (default: as many as the baseline's)
#   RECONCILE_WORKERS     goroutines creating at once (default: -workers of
#                         test/bench/reconcile run, 20)
#   RECONCILE_TIMEOUT     seconds each phase of one N may take (every status
#                         observed, a baseline run, the deletion), plus
#                         RECONCILE_TIMEOUT_PER_SERVER seconds for each
#                         server (default: -timeout and -timeout-per-server,
#                         300 and 0.1: 1,300 s for 10,000)
#   RECONCILE_APISERVER_FLAGS  flags added to mindie-apiserver's command line
#                         (hack/local-up.sh's MINDIE_APISERVER_FLAGS), such as
#                         "--controller-workers=16 --kube-api-qps=400
#                         --kube-api-burst=800"; the results record them and
#                         the settings the server ran with (default none)
#   RECONCILE_CONTROLLERS external: the controllers run as mindie-controller,
#                         a process of their own, beside mindie-apiserver
#                         --external-controllers (hack/local-up.sh's
#                         MINDIE_CONTROLLERS); its memory is sampled too and
#                         its work queue read (default in-process)
#   RECONCILE_APISERVER_ENV, RECONCILE_CONTROLLER_ENV  environment variables
#                         of mindie-apiserver and of mindie-controller alone,
#                         such as "GOMEMLIMIT=200MiB" (default none)
#   RECONCILE_FLOOR       1: the floor is measured too, as often as the servers
#                         (test/bench/reconcile run -floor): the same writes
#                         as the servers' phase, made by the benchmark itself
#                         on mindie-apiserver restarted without its
#                         controllers, what a controller that cost nothing
#                         would take; 0: not (default: 1 up to 1,000 servers,
#                         0 beyond)
#   RECONCILE_DELETE      0: the servers are not deleted and timed at the end
#                         (the teardown removes them; default 1)
#   RECONCILE_ADD         1: the sizes measured are put into the results already
#                         in $RECONCILE_RESULTS (replacing those of the same N),
#                         which must be of a run with the same parameters;
#                         to measure one N again without the others
#                         (default: the results of this run alone)
#   RECONCILE_RESULTS     where the results go (default docs/bench/reconcile.json,
#                         from which the documents are rendered; elsewhere,
#                         only the reconcile report is rendered, next to the
#                         results as <name>.md)
#
#   hack/reconcile-bench.sh --report-only
#       renders the documents from $RECONCILE_RESULTS without running anything.
#   hack/reconcile-bench.sh --restart-mindie [--without-controllers]
#       restarts mindie-apiserver on the cluster of the running benchmark
#       (test/bench/reconcile, which the script runs, does, with the
#       cluster's variables exported); --without-controllers: with
#       --external-controllers and no mindie-controller, for the floor.
#
# Progress, the results of the current run (as each N is measured) and the
# cluster's logs are kept in _output/reconcile-bench/ (the time each N took
# in _output/reconcile-bench/times). Everything listens on and dials
# loopback addresses only. On two cores, N=100 takes a few minutes and
# N=1000 about 20 (three runs of the servers, each with its deletion, three
# of the floor and three of the baseline); N=10000 takes an hour or more: writing 10,000 servers'
# children alone (and the 20,000 pods kube-controller-manager makes of
# their Deployments) took the baseline about 20 minutes on a machine where
# 1,000 took 36 s.
set -o errexit -o nounset -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "${ROOT}"

DEFAULT_SIZES="100 1000 10000"
SIZES=${RECONCILE_SIZES:-${DEFAULT_SIZES}}
APISERVER_FLAGS=${RECONCILE_APISERVER_FLAGS:-}
DEFAULT_RESULTS=docs/bench/reconcile.json
RESULTS=${RECONCILE_RESULTS:-${DEFAULT_RESULTS}}
WORK=_output/reconcile-bench
BIN=${WORK}/bin/reconcile

log() { echo "reconcile-bench: $*" >&2; }

# The command as the documents show it (the variables set, then the
# script), and the flags of test/bench/reconcile run the variables set;
# what is not set is left to its defaults.
COMMAND="hack/reconcile-bench.sh"
RUN_FLAGS=()
# setting VAR FLAG [UNIT]: passes $VAR as FLAG when it is set.
setting() {
  local value=${!1:-}
  [ -n "${value}" ] || return 0
  COMMAND="${1}='${value}' ${COMMAND}"
  RUN_FLAGS+=("${2}" "${value}${3:-}")
}
setting RECONCILE_TIMEOUT_PER_SERVER -timeout-per-server s
setting RECONCILE_TIMEOUT -timeout s
setting RECONCILE_WORKERS -workers
BASELINE_RUNS=${RECONCILE_BASELINE_RUNS:-}
[ -z "${BASELINE_RUNS}" ] || COMMAND="RECONCILE_BASELINE_RUNS='${BASELINE_RUNS}' ${COMMAND}"
# baseline_runs N: how many times the baseline runs for N servers.
baseline_runs() {
  if [ -n "${BASELINE_RUNS}" ]; then echo "${BASELINE_RUNS}"
  elif [ "${1}" -le 1000 ]; then echo 3
  else echo 1
  fi
}
FLOOR=${RECONCILE_FLOOR:-}
[ -z "${FLOOR}" ] || COMMAND="RECONCILE_FLOOR='${FLOOR}' ${COMMAND}"
# floor_flag N: the flag that has the floor measured for N servers, if it is.
floor_flag() {
  if [ "${FLOOR:-$([ "${1}" -le 1000 ] && echo 1 || echo 0)}" != 0 ]; then echo -floor; fi
}
RUNS=${RECONCILE_RUNS:-}
[ -z "${RUNS}" ] || COMMAND="RECONCILE_RUNS='${RUNS}' ${COMMAND}"
if [ "${RECONCILE_DELETE:-1}" = 0 ]; then
  RUN_FLAGS+=(-delete=false)
  COMMAND="RECONCILE_DELETE='0' ${COMMAND}"
fi
ADD=${RECONCILE_ADD:-0}
[ "${ADD}" = 0 ] || COMMAND="RECONCILE_ADD='${ADD}' ${COMMAND}"
[ -z "${APISERVER_FLAGS}" ] || COMMAND="RECONCILE_APISERVER_FLAGS='${APISERVER_FLAGS}' ${COMMAND}"
CONTROLLERS=${RECONCILE_CONTROLLERS:-in-process}
case "${CONTROLLERS}" in
  in-process) ;;
  external) COMMAND="RECONCILE_CONTROLLERS='external' ${COMMAND}" ;;
  *) log "RECONCILE_CONTROLLERS=${CONTROLLERS}: want in-process or external"; exit 2 ;;
esac
for v in RECONCILE_CONTROLLER_ENV RECONCILE_APISERVER_ENV; do
  [ -z "${!v:-}" ] || COMMAND="${v}='${!v}' ${COMMAND}"
done
[ "${SIZES}" = "${DEFAULT_SIZES}" ] || COMMAND="RECONCILE_SIZES='${SIZES}' ${COMMAND}"

# render: the documents from $RESULTS.
render() {
  if [ "${RESULTS}" = "${DEFAULT_RESULTS}" ]; then
    go run ./test/bench/report
  else
    go run ./test/bench/report -reconcile "${RESULTS}" -benchmarks-out '' -scale-check-out '' -reconcile-out "${RESULTS%.json}.md"
  fi
}
# restart_mindie [--without-controllers]: stops mindie-controller, if it runs, and mindie-apiserver
# (the controllers give up their Lease as they stop) and lets hack/local-up.sh, which starts whatever is not
# running, start a fresh one. test/bench/reconcile runs it before every
# phase but the first (through --restart-mindie, with the cluster's
# variables exported), so that the servers' memory is measured from a fresh
# process, not one whose caches held the baseline's children. With
# --without-controllers the new mindie-apiserver runs without controllers
# (--external-controllers, and no mindie-controller), for the floor.
restart_mindie() {
  local pid flags=${MINDIE_APISERVER_FLAGS} controllers=${MINDIE_CONTROLLERS}
  case "${1:-}" in
    "") ;;
    --without-controllers) flags="${flags} --external-controllers" controllers=in-process ;;
    *) log "--restart-mindie ${1}: want --without-controllers or nothing"; exit 2 ;;
  esac
  if [ -f "${OUT}/pids/mindie-controller" ]; then
    pid=$(cat "${OUT}/pids/mindie-controller")
    kill -TERM "${pid}" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "${pid}" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL "${pid}" 2>/dev/null || true
  fi
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
  if ! MINDIE_APISERVER_FLAGS=${flags} MINDIE_CONTROLLERS=${controllers} hack/local-up.sh >>"${WORK}/local-up.out" 2>&1; then
    log "restarting mindie-apiserver failed:"; tail -20 "${WORK}/local-up.out" >&2; exit 1
  fi
}

case "${1:-}" in
  --report-only) render; exit 0 ;;
  --restart-mindie)
    [ -n "${OUT:-}" ] || { log "--restart-mindie: OUT is not set: only test/bench/reconcile, run by this script, restarts"; exit 2; }
    restart_mindie "${2:-}"; exit 0 ;;
  "") ;;
  *) log "unknown argument ${1}: want --report-only or none"; exit 2 ;;
esac

mkdir -p "${WORK}/bin" "$(dirname "${RESULTS}")"
go build -o "${BIN}" ./test/bench/reconcile

rm -rf "${WORK:?}/logs" "${WORK}/reconcile.json" "${WORK}/local-up.out" "${WORK}/times"
if [ "${ADD}" != 0 ] && [ -f "${RESULTS}" ]; then
  cp "${RESULTS}" "${WORK}/reconcile.json"
fi
mkdir -p "${WORK}/logs"

read -r ETCD_PORT ETCD_PEER_PORT KUBE_PORT MINDIE_PORT MINDIE_CONTROLLER_PORT < <("${BIN}" ports -n 5)
OUT=$(mktemp -d "${TMPDIR:-/tmp}/reconcile-bench.XXXXXX")
export OUT ETCD_PORT ETCD_PEER_PORT KUBE_PORT MINDIE_PORT MINDIE_CONTROLLER_PORT
export SIM_NODES=0 SIM_POD_CIDR=127.78.0.0/16
export MINDIE_APISERVER_FLAGS="${APISERVER_FLAGS}" MINDIE_CONTROLLERS="${CONTROLLERS}"
export MINDIE_APISERVER_ENV="${RECONCILE_APISERVER_ENV:-}" MINDIE_CONTROLLER_ENV="${RECONCILE_CONTROLLER_ENV:-}"
# The controllers' log (failed syncs, requests held back) and work queue.
CONTROLLER_LOG=${OUT}/logs/mindie-apiserver.log
if [ "${CONTROLLERS}" = external ]; then
  CONTROLLER_LOG=${OUT}/logs/mindie-controller.log
  RUN_FLAGS+=(-controller-metrics-url "http://127.0.0.1:${MINDIE_CONTROLLER_PORT}/metrics")
fi
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

clk_tck=$(getconf CLK_TCK 2>/dev/null || echo 100)
first=1
for n in ${SIZES}; do
  n_start=$(date +%s)
  if [ "${first}" = 0 ]; then
    log "restarting mindie-apiserver"
    restart_mindie
  fi
  first=0
  log "N=${n}"
  "${BIN}" run -kubeconfig "${OUT}/kubeconfig" -n "${n}" \
    -pids "${OUT}/pids" -log "${CONTROLLER_LOG}" -clk-tck "${clk_tck}" \
    -metrics-url "https://127.0.0.1:${MINDIE_PORT}/metrics" -metrics-ca "${OUT}/pki/mindie-ca.crt" \
    -baseline-runs "$(baseline_runs "${n}")" -runs "${RUNS:-$(baseline_runs "${n}")}" \
    ${RUN_FLAGS[@]+"${RUN_FLAGS[@]}"} $(floor_flag "${n}") \
    -apiserver-flags "${APISERVER_FLAGS}" -restart-mindie "hack/reconcile-bench.sh --restart-mindie" \
    -command "${COMMAND}" -results "${WORK}/reconcile.json"
  echo "N=${n} $(($(date +%s) - n_start))s" >>"${WORK}/times"
  log "N=${n} took $(($(date +%s) - n_start))s"
done
keep_logs

cp "${WORK}/reconcile.json" "${RESULTS}.tmp"
mv "${RESULTS}.tmp" "${RESULTS}"
log "wrote ${RESULTS}; logs are in ${WORK}/"
render

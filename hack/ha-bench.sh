#!/usr/bin/env bash
# Failover benchmark: brings up a local cluster of its own (hack/local-up.sh)
# on free loopback ports with two mindie-apiserver replicas on one etcd
# behind hack/servicelb (MINDIE_REPLICAS=2; policy first, so that the
# replica that leads also carries all traffic, the worst case) and no
# simulated nodes, and runs test/bench/habench: steady writes and reads of
# InferServers through kube-apiserver, undisturbed for the baseline, then
# with the leading replica killed (SIGKILL) a few seconds in; what the
# clients saw after the kill against the baseline, how soon the other
# replica's controllers acted, and whether anything acknowledged was lost or
# written twice. About 3 minutes on two cores. Everything listens on and
# dials loopback addresses only.
#
#   HA_RESULTS  where the results go (default docs/bench/ha.json, from which
#               the "Two replicas, one killed" section of docs/benchmarks.md
#               is rendered)
#
#   hack/ha-bench.sh --report-only   renders the documents without running.
#
# Progress and the cluster's logs are kept in _output/ha-bench/.
set -o errexit -o nounset -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "${ROOT}"

DEFAULT_RESULTS=docs/bench/ha.json
RESULTS=${HA_RESULTS:-${DEFAULT_RESULTS}}
WORK=${ROOT}/_output/ha-bench
BIN=${WORK}/bin/habench

log() { echo "ha-bench: $*" >&2; }

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
go build -o "${BIN}" ./test/bench/habench

rm -rf "${WORK:?}/logs" "${WORK}/ha.json" "${WORK}/local-up.out" "${WORK}/cluster"
mkdir -p "${WORK}/logs"

read -r ETCD_PORT ETCD_PEER_PORT KUBE_PORT MINDIE_PORT REPLICA_0 REPLICA_1 < <("${BIN}" ports -n 6)
OUT=${WORK}/cluster
MINDIE_REPLICAS=2
MINDIE_REPLICA_PORTS="${REPLICA_0} ${REPLICA_1}"
MINDIE_LB_POLICY=first
export OUT ETCD_PORT ETCD_PEER_PORT KUBE_PORT MINDIE_PORT MINDIE_REPLICAS MINDIE_REPLICA_PORTS MINDIE_LB_POLICY
export SIM_NODES=0
log "OUT=${OUT} etcd=${ETCD_PORT}/${ETCD_PEER_PORT} kube-apiserver=${KUBE_PORT} servicelb=${MINDIE_PORT} replicas=${MINDIE_REPLICA_PORTS}"

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

"${BIN}" run -kubeconfig "${OUT}/kubeconfig" -pids "${OUT}/pids" -out "${WORK}/ha.json"
keep_logs

cp "${WORK}/ha.json" "${RESULTS}.tmp"
mv "${RESULTS}.tmp" "${RESULTS}"
log "wrote ${RESULTS} in $(($(date +%s) - start))s; logs are in ${WORK}/"
render

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

NAME=ha-bench PROGRAM=./test/bench/habench RESULT=ha.json
RESULTS=${HA_RESULTS:-}
# shellcheck source=hack/lib/bench-cluster.sh
source hack/lib/bench-cluster.sh

bench_prepare "$@"

read -r ETCD_PORT ETCD_PEER_PORT KUBE_PORT MINDIE_PORT REPLICA_0 REPLICA_1 < <("${BIN}" ports -n 6)
OUT=${WORK}/cluster
MINDIE_REPLICAS=2
MINDIE_REPLICA_PORTS="${REPLICA_0} ${REPLICA_1}"
MINDIE_LB_POLICY=first
export OUT ETCD_PORT ETCD_PEER_PORT KUBE_PORT MINDIE_PORT MINDIE_REPLICAS MINDIE_REPLICA_PORTS MINDIE_LB_POLICY
export SIM_NODES=0
log "OUT=${OUT} etcd=${ETCD_PORT}/${ETCD_PEER_PORT} kube-apiserver=${KUBE_PORT} servicelb=${MINDIE_PORT} replicas=${MINDIE_REPLICA_PORTS}"

bench_cluster_up

"${BIN}" run -kubeconfig "${OUT}/kubeconfig" -pids "${OUT}/pids" -out "${WORK}/ha.json"
bench_publish

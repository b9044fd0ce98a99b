#!/usr/bin/env bash
# EdgeDeployment benchmark: brings up a separate local cluster
# (hack/local-up.sh) on free loopback ports with EDGE_NODES simulated edge
# nodes (all arm64, no Ascend nodes), runs test/bench/edgebench on it and
# tears it down (hack/local-down.sh --purge, also on failure). edgebench
# measures, in this order:
#   idle     mindie-apiserver's VmRSS before anything runs;
#   direct   the baseline: the pods the job would create (one per node, made
#            by the controller's own edgedeployment.Pod) created directly,
#            100 at a time through a client limited as mindie-apiserver's
#            controllers are (100 requests/s, burst 200), timed from the
#            first create to every pod Running and Ready; then deleted and
#            timed until they are gone;
#   job      one EdgeDeployment to every edge node, maxConcurrentNodes
#            EDGE_CONCURRENCY, timed from its creation to status.phase
#            Succeeded (every node must succeed), mindie-apiserver's VmRSS
#            sampled every second; then deleted and timed until it and its
#            pods are gone, and the VmRSS read again after a pause.
# The results (JSON, the format of test/bench/results) go to
# docs/bench/edge.json and test/bench/report renders docs/benchmarks.md (its
# "EdgeDeployment at 1,000 nodes" section) from them.
#
#   EDGE_NODES        simulated edge nodes, all targets of the job (default 1000,
#                     the most one EdgeDeployment may target)
#   EDGE_CONCURRENCY  the job's spec.maxConcurrentNodes (default 100)
#   EDGE_RESULTS      where the results go (default docs/bench/edge.json, from
#                     which docs/benchmarks.md is rendered; elsewhere, nothing
#                     is rendered)
#
#   hack/edge-bench.sh --report-only
#       renders docs/benchmarks.md from the results without running anything.
#
# Progress, the results of the current run and the cluster's logs (the
# audit log too, gzipped) are kept in _output/edge-bench/ (the cluster
# itself in _output/edge-bench/cluster, purged at the end). Everything
# listens on and dials loopback addresses only. About 12 minutes on two
# cores with the defaults: 7 to bring the cluster up (the nodes register in
# a minute; hack/local-up.sh then waits for them one name at a time), 4 for
# the two phases and the pauses, and the teardown.
set -o errexit -o nounset -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "${ROOT}"

NODES=${EDGE_NODES:-1000}
CONCURRENCY=${EDGE_CONCURRENCY:-100}
NAME=edge-bench PROGRAM=./test/bench/edgebench RESULT=edge.json
RESULTS=${EDGE_RESULTS:-}
# shellcheck source=hack/lib/bench-cluster.sh
source hack/lib/bench-cluster.sh

if ! [ "${NODES}" -ge 1 ] 2>/dev/null || [ "${NODES}" -gt 1000 ] || ! [ "${CONCURRENCY}" -ge 1 ] 2>/dev/null; then
  log "EDGE_NODES=${NODES} EDGE_CONCURRENCY=${CONCURRENCY}: want 1 to 1000 nodes (what one EdgeDeployment may target) and a positive concurrency"
  exit 2
fi

COMMAND="hack/edge-bench.sh"
if [ "${NODES}" != 1000 ] || [ "${CONCURRENCY}" != 100 ]; then
  COMMAND="EDGE_NODES=${NODES} EDGE_CONCURRENCY=${CONCURRENCY} ${COMMAND}"
fi

bench_prepare "$@"

read -r ETCD_PORT ETCD_PEER_PORT KUBE_PORT MINDIE_PORT < <("${BIN}" ports -n 4)
OUT=${WORK}/cluster
export OUT ETCD_PORT ETCD_PEER_PORT KUBE_PORT MINDIE_PORT
# Ranges of their own, apart from the default cluster's (127.1, 127.2) and
# the other benchmarks' (127.77 to 127.79).
export SIM_NODES=0 SIM_EDGE_NODES=${NODES} SIM_EDGE_ARCH=arm64 SIM_POD_CIDR=127.80.0.0/16 SIM_EDGE_CIDR=127.81.0.0/16
log "OUT=${OUT} etcd=${ETCD_PORT}/${ETCD_PEER_PORT} kube-apiserver=${KUBE_PORT} mindie-apiserver=${MINDIE_PORT}; ${NODES} edge nodes"

KEEP_AUDIT_LOG=1
bench_cluster_up

"${BIN}" run -kubeconfig "${OUT}/kubeconfig" -pid-file "${OUT}/pids/mindie-apiserver" -audit-log "${OUT}/logs/audit.log" -logs-dir "${OUT}/logs" \
  -nodes "${NODES}" -max-concurrent-nodes "${CONCURRENCY}" -clk-tck "$(getconf CLK_TCK)" \
  -command "${COMMAND}" -out "${WORK}/edge.json"
bench_publish

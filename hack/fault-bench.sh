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
NAME=fault-bench PROGRAM=./test/bench/faultbench RESULT=faults.json
RESULTS=${FAULT_RESULTS:-}
# shellcheck source=hack/lib/bench-cluster.sh
source hack/lib/bench-cluster.sh

COMMAND="hack/fault-bench.sh"
if [ "${REPEATS}" != 3 ] || [ "${NODE_REPEATS}" != 3 ] || [ "${SCENARIOS}" != npu-force,npu-grace,node-loss ]; then
  COMMAND="FAULT_REPEATS=${REPEATS} FAULT_NODE_REPEATS=${NODE_REPEATS} FAULT_SCENARIOS=${SCENARIOS} ${COMMAND}"
fi

bench_prepare "$@"

read -r ETCD_PORT ETCD_PEER_PORT KUBE_PORT MINDIE_PORT < <("${BIN}" ports -n 4)
OUT=${WORK}/cluster
export OUT ETCD_PORT ETCD_PEER_PORT KUBE_PORT MINDIE_PORT
export SIM_NODES=4 SIM_POD_CIDR=127.79.0.0/16
log "OUT=${OUT} etcd=${ETCD_PORT}/${ETCD_PEER_PORT} kube-apiserver=${KUBE_PORT} mindie-apiserver=${MINDIE_PORT}"

bench_cluster_up

"${BIN}" run -kubeconfig "${OUT}/kubeconfig" -sim "${OUT}/bin/ascend-sim" -control-addr-file "${OUT}/ascend-sim.control" \
  -repeats "${REPEATS}" -node-repeats "${NODE_REPEATS}" -scenarios "${SCENARIOS}" \
  -command "${COMMAND}" -out "${WORK}/faults.json"
bench_publish

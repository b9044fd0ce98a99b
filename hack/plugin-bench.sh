#!/usr/bin/env bash
# Plugin benchmark: brings up a separate local cluster (hack/local-up.sh) on
# free loopback ports with PLUGIN_INSTANCES/8 simulated Ascend nodes of 8
# NPUs (32 for the default 256) and no edge nodes, runs
# test/bench/pluginbench on it and tears it down (hack/local-down.sh
# --purge, also on failure). pluginbench times the cluster's own kubectl
# and kubectl-mindie binaries ($OUT/bin), run as a user runs them:
#   status  `kubectl mindie status` of one InferServer of PLUGIN_INSTANCES
#           single-NPU instances, all ready, against `kubectl get pods -l
#           <its selector> -o json`;
#   get     `kubectl mindie get` of a namespace of PLUGIN_SERVERS paused
#           InferServers (no pods), all observed by the controller, against
#           `kubectl get inferservers` of the same namespace;
# each command and its baseline in turn, PLUGIN_RUNS times. The results
# (JSON, the format of test/bench/results) go to docs/bench/plugin.json and
# test/bench/report renders docs/benchmarks.md (its "Plugin at scale"
# section) from them.
#
#   PLUGIN_INSTANCES  instances of the server status shows (default 256)
#   PLUGIN_SERVERS    InferServers get lists (default 1000)
#   PLUGIN_RUNS       timed runs of each command (default 15)
#   PLUGIN_RESULTS    where the results go (default docs/bench/plugin.json,
#                     from which docs/benchmarks.md is rendered; elsewhere,
#                     nothing is rendered)
#
#   hack/plugin-bench.sh --report-only
#       renders docs/benchmarks.md from the results without running anything.
#
# Progress, the results of the current run and the cluster's logs are kept
# in _output/plugin-bench/ (the cluster itself in _output/plugin-bench/cluster,
# purged at the end). Everything listens on and dials loopback addresses
# only. About 3 minutes on two cores: the cluster's start, the 256
# instances' startup (half a minute each) and the controller's first sync of
# the 1,000 servers (about a minute); the timed commands take seconds.
set -o errexit -o nounset -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "${ROOT}"

INSTANCES=${PLUGIN_INSTANCES:-256}
SERVERS=${PLUGIN_SERVERS:-1000}
RUNS=${PLUGIN_RUNS:-15}
NAME=plugin-bench PROGRAM=./test/bench/pluginbench RESULT=plugin.json
RESULTS=${PLUGIN_RESULTS:-}
# shellcheck source=hack/lib/bench-cluster.sh
source hack/lib/bench-cluster.sh

COMMAND="hack/plugin-bench.sh"
if [ "${INSTANCES}" != 256 ] || [ "${SERVERS}" != 1000 ] || [ "${RUNS}" != 15 ]; then
  COMMAND="PLUGIN_INSTANCES=${INSTANCES} PLUGIN_SERVERS=${SERVERS} PLUGIN_RUNS=${RUNS} ${COMMAND}"
fi

bench_prepare "$@"
rm -rf "${WORK:?}/home"
mkdir -p "${WORK}/home"

read -r ETCD_PORT ETCD_PEER_PORT KUBE_PORT MINDIE_PORT < <("${BIN}" ports -n 4)
OUT=${WORK}/cluster
export OUT ETCD_PORT ETCD_PEER_PORT KUBE_PORT MINDIE_PORT
# One simulated node of 8 NPUs for every 8 single-NPU instances.
export SIM_NODES=$(((INSTANCES + 7) / 8)) SIM_EDGE_NODES=0 SIM_POD_CIDR=127.82.0.0/16
log "OUT=${OUT} etcd=${ETCD_PORT}/${ETCD_PEER_PORT} kube-apiserver=${KUBE_PORT} mindie-apiserver=${MINDIE_PORT} nodes=${SIM_NODES}"

bench_cluster_up

"${BIN}" run -kubeconfig "${OUT}/kubeconfig" -bin "${OUT}/bin" -home "${WORK}/home" \
  -instances "${INSTANCES}" -servers "${SERVERS}" -runs "${RUNS}" \
  -command "${COMMAND}" -out "${WORK}/plugin.json"
bench_publish

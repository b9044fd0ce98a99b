#!/usr/bin/env bash
# The InferServer API against a CRD: brings up a separate local cluster
# (hack/local-up.sh) on free loopback ports, without simulated nodes and
# with mindie-apiserver's controllers off, runs test/bench/crdbench on it
# and tears it down (hack/local-down.sh --purge, also on failure).
# crdbench installs a CustomResourceDefinition generated from the
# InferServer OpenAPI definitions (group infer.crdbench.mindie.io, the same
# version, kind, plural, subresources and defaults) and measures both APIs
# with the same client, user and objects, InferServers through the
# aggregator as users reach them: create throughput and latency with 20
# clients, GET latency, LIST of 1,000 and of 10,000, a watch with 10
# clients; and InferServer GETs and LISTs on mindie-apiserver's own port,
# so that the aggregator's hop shows. The results (JSON, the format of
# test/bench/results) go to docs/bench/crd.json and test/bench/report
# renders docs/benchmarks.md (its section "InferServer API against a CRD")
# from them.
#
#   CRD_OBJECTS   objects of each API created, read and listed first
#                 (default 1000)
#   CRD_LARGE     the size of the second LIST, reached by creating the rest
#                 (default 10000; 0 skips it and takes about half the time)
#   CRD_MINDIE_FLAGS  flags added to mindie-apiserver's (after
#                 --controllers=false), to try a configuration
#   CRD_RESULTS   where the results go (default docs/bench/crd.json, from
#                 which docs/benchmarks.md is rendered; elsewhere, nothing
#                 is rendered)
#
#   hack/crd-bench.sh --report-only
#       renders docs/benchmarks.md from the results without running anything.
#
# Progress and the cluster's logs are kept in _output/crd-bench/ (the
# cluster itself in _output/crd-bench/cluster, purged at the end).
# Everything listens on and dials loopback addresses only. About 3 minutes
# on two cores (the cluster's start included), half of it the creates of
# CRD_LARGE.
set -o errexit -o nounset -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "${ROOT}"

OBJECTS=${CRD_OBJECTS:-1000}
LARGE=${CRD_LARGE:-10000}
EXTRA_FLAGS=${CRD_MINDIE_FLAGS:-}
NAME=crd-bench PROGRAM=./test/bench/crdbench RESULT=crd.json
RESULTS=${CRD_RESULTS:-}
# shellcheck source=hack/lib/bench-cluster.sh
source hack/lib/bench-cluster.sh

COMMAND="hack/crd-bench.sh"
if [ "${OBJECTS}" != 1000 ] || [ "${LARGE}" != 10000 ]; then
  COMMAND="CRD_OBJECTS=${OBJECTS} CRD_LARGE=${LARGE} ${COMMAND}"
fi
if [ -n "${EXTRA_FLAGS}" ]; then
  COMMAND="CRD_MINDIE_FLAGS='${EXTRA_FLAGS}' ${COMMAND}"
fi

bench_prepare "$@"

read -r ETCD_PORT ETCD_PEER_PORT KUBE_PORT MINDIE_PORT < <("${BIN}" ports -n 4)
OUT=${WORK}/cluster
export OUT ETCD_PORT ETCD_PEER_PORT KUBE_PORT MINDIE_PORT
export SIM_NODES=0 SIM_EDGE_NODES=0 MINDIE_REPLICAS=1
export MINDIE_APISERVER_FLAGS="--controllers=false${EXTRA_FLAGS:+ ${EXTRA_FLAGS}}"
log "OUT=${OUT} etcd=${ETCD_PORT}/${ETCD_PEER_PORT} kube-apiserver=${KUBE_PORT} mindie-apiserver=${MINDIE_PORT} (${MINDIE_APISERVER_FLAGS})"

bench_cluster_up

"${BIN}" run -kubeconfig "${OUT}/kubeconfig" -tenant-kubeconfig "${OUT}/users/tenant-a-editor.kubeconfig" -tenant tenant-a-editor \
  -mindie-url "https://127.0.0.1:${MINDIE_PORT}" -mindie-ca "${OUT}/pki/mindie-ca.crt" -pids "${OUT}/pids" \
  -objects "${OBJECTS}" -large "${LARGE}" -mindie-flags "${EXTRA_FLAGS}" \
  -command "${COMMAND}" -out "${WORK}/crd.json"
bench_publish

#!/usr/bin/env bash
# Runs the benchmarks of test/bench (an in-process mindie-apiserver on an
# embedded etcd, each benchmark beside a baseline measured in the same run)
# and keeps their output in docs/bench/apiserver.txt, after lines that say
# when, where and how they ran (the full output, with the embedded etcd's
# log lines, in _output/bench.txt). test/bench/report then renders
# docs/benchmarks.md (the medians and the ratio of each benchmark to its
# baseline, with its goal, and the reconcile benchmark's summary) and
# docs/reconcile-bench.md from the results in docs/bench/.
#
#   BENCHTIME  -benchtime of each benchmark run (default 2s)
#   COUNT      runs of each benchmark; the report takes the median (default 3)
#   BENCH      -bench pattern (default: all)
#   RECONCILE_BENCH  0 skips the reconcile benchmark that follows them
#              (hack/reconcile-bench.sh: 100, 1,000 and 10,000 InferServers
#              created at once on a local cluster of its own, against their
#              very children written directly; 10,000 takes most of an hour
#              or more on two cores; docs/bench/reconcile.json). When skipped, the
#              documents show the last run's results from
#              docs/bench/reconcile.json.
#   ROUTER_BENCH  0 skips the router benchmark that follows them
#              (go run ./test/bench/routerbench: the router's overhead in front
#              of a backend that answers at once, and its routing quality on
#              four simulated MindIE Server instances against round_robin;
#              about 4 minutes; docs/bench/router.json, rendered as the Router
#              section of docs/benchmarks.md). When skipped, the document
#              shows the last run's results from docs/bench/router.json.
#   PD_BENCH   0 skips the Prefill/Decode benchmark that follows them
#              (go run ./test/bench/pdbench: four simulated MindIE Server
#              instances without roles, then as prefill and decode instances
#              behind the router in PD mode, on one long-prompt trace; TTFT,
#              time per output token and tokens/s from the simulator's timing
#              model; about 2.5 minutes; docs/bench/pd.json, rendered as the
#              Prefill/Decode section of docs/benchmarks.md). When skipped,
#              the document shows the last run's results from
#              docs/bench/pd.json, or says it has not run.
#   FAULT_BENCH  0 skips the fault-recovery benchmark that follows them
#              (hack/fault-bench.sh: a local cluster of its own with 4
#              simulated nodes; the time from an NPU fault, with
#              faultRescheduling Force and Grace, and from a node loss to a
#              replacement instance serving, against a fresh pod's startup
#              measured in the same run; about 6 minutes; docs/bench/faults.json,
#              rendered as the Fault recovery section of docs/benchmarks.md).
#              When skipped, the document shows the last run's results from
#              docs/bench/faults.json, or says it has not been run.
#   EDGE_BENCH  0 skips the EdgeDeployment benchmark that follows them
#              (hack/edge-bench.sh: a local cluster of its own with 1,000
#              simulated edge nodes; one EdgeDeployment to all of them, 100
#              nodes at a time, timed to Succeeded against the same pods
#              created directly in the same run, and mindie-apiserver's
#              memory meanwhile; about 12 minutes; docs/bench/edge.json,
#              rendered as the EdgeDeployment section of docs/benchmarks.md).
#              When skipped, the document shows the last run's results from
#              docs/bench/edge.json, or says it has none yet.
#   PLUGIN_BENCH  0 skips the plugin benchmark that follows them
#              (hack/plugin-bench.sh: a local cluster of its own with 32
#              simulated nodes; `kubectl mindie status` of a 256-instance
#              InferServer against `kubectl get pods -o json` of its pods,
#              and `kubectl mindie get` of 1,000 InferServers against
#              `kubectl get inferservers`, the real binaries timed in the
#              same run; about 3 minutes; docs/bench/plugin.json, rendered
#              as the Plugin at scale section of docs/benchmarks.md). When
#              skipped, the document shows the last run's results from
#              docs/bench/plugin.json, or says it has no results yet.
#   CRD_BENCH  0 skips the comparison with a CRD that follows them
#              (hack/crd-bench.sh: a local cluster of its own, without
#              simulated nodes; a CRD generated from the InferServer schema
#              on the same kube-apiserver, and InferServers through the
#              aggregator, measured with the same client, user and objects:
#              create throughput and p99, GET, LIST of 1,000 and 10,000, a
#              watch with 10 clients; about 3 minutes; docs/bench/crd.json,
#              rendered as the section "InferServer API against a CRD" of
#              docs/benchmarks.md). When skipped, the document shows the last
#              run's results from docs/bench/crd.json, or says it has not
#              been run.
#   HA_BENCH   0 skips the failover benchmark that follows them
#              (hack/ha-bench.sh: a local cluster of its own with two
#              mindie-apiserver replicas behind hack/servicelb; steady
#              InferServer writes and reads through kube-apiserver, then the
#              leading replica killed: the clients' pace, latency and
#              retried failures against an undisturbed run, the time until
#              the other replica's controllers act, nothing acknowledged
#              lost; about 2 minutes; docs/bench/ha.json, rendered as the
#              section "Two replicas, one killed" of docs/benchmarks.md).
#              When skipped, the document shows the last run's results from
#              docs/bench/ha.json, or says it has no results yet.
#   SCALE_CHECK  0 skips the scale check that follows the benchmarks
#              (hack/scale-check.sh: 100 simulated nodes, 1,000 pods, a local
#              cluster of its own; about 5 to 20 minutes; docs/bench/scale-check.json,
#              rendered as docs/scale-check.md). When skipped, the document
#              shows the last run's results from docs/bench/scale-check.json.
#
# The defaults take about a minute and a half on two cores. To render the
# documents again from docs/bench/ without running anything:
#   go run ./test/bench/report
# To see the in-process server's logs while debugging a benchmark:
#   go test ./test/bench/ -run '^$' -bench Create -args -server-logs
set -o errexit -o nounset -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "${ROOT}"

BENCHTIME=${BENCHTIME:-2s}
COUNT=${COUNT:-3}
BENCH=${BENCH:-.}
RAW=_output/bench.txt
RESULTS=docs/bench/apiserver.txt

mkdir -p _output docs/bench

cmd=(go test ./test/bench/ -run '^$' -bench "${BENCH}" -benchmem -count "${COUNT}" -benchtime "${BENCHTIME}" -timeout 30m)
cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo 2>/dev/null | head -n 1 || true)
# Configuration lines of the Go benchmark format, which test/bench/report
# reads (and benchstat keeps).
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "go-version: $(go version)"
  echo "cpu-model: ${cpu:-unknown}"
  echo "command: go test ./test/bench/ -run '^\$' -bench '${BENCH}' -benchmem -count ${COUNT} -benchtime ${BENCHTIME}"
} >"${RAW}"
echo "+ ${cmd[*]}" >&2
# go test prints the test binary's stderr with its results; the server's
# klog output is discarded by the benchmarks, but the embedded etcd still
# logs errors as JSON lines (it does when it shuts down). They stay in the
# raw output and are kept off the terminal and out of the results.
"${cmd[@]}" 2>&1 | tee -a "${RAW}" | sed -u '/^{"level":/d'
sed '/^{"level":/d' "${RAW}" >"${RESULTS}.tmp"
mv "${RESULTS}.tmp" "${RESULTS}"
echo "wrote ${RAW} and ${RESULTS}" >&2
# Rendered now, with the reconcile benchmark's last results, so that the
# documents show these benchmarks even if what follows fails.
go run ./test/bench/report

if [ "${ROUTER_BENCH:-1}" != 0 ]; then
  echo "+ go run ./test/bench/routerbench -out docs/bench/router.json (ROUTER_BENCH=0 skips it)" >&2
  go run ./test/bench/routerbench -out docs/bench/router.json
  go run ./test/bench/report
fi

if [ "${PD_BENCH:-1}" != 0 ]; then
  echo "+ go run ./test/bench/pdbench -out docs/bench/pd.json (PD_BENCH=0 skips it)" >&2
  go run ./test/bench/pdbench -out docs/bench/pd.json
  go run ./test/bench/report
fi

if [ "${RECONCILE_BENCH:-1}" != 0 ]; then
  echo "+ hack/reconcile-bench.sh (RECONCILE_BENCH=0 skips it)" >&2
  hack/reconcile-bench.sh
fi

if [ "${FAULT_BENCH:-1}" != 0 ]; then
  echo "+ hack/fault-bench.sh (FAULT_BENCH=0 skips it)" >&2
  hack/fault-bench.sh
fi

if [ "${EDGE_BENCH:-1}" != 0 ]; then
  echo "+ hack/edge-bench.sh (EDGE_BENCH=0 skips it)" >&2
  hack/edge-bench.sh
fi

if [ "${PLUGIN_BENCH:-1}" != 0 ]; then
  echo "+ hack/plugin-bench.sh (PLUGIN_BENCH=0 skips it)" >&2
  hack/plugin-bench.sh
fi

if [ "${CRD_BENCH:-1}" != 0 ]; then
  echo "+ hack/crd-bench.sh (CRD_BENCH=0 skips it)" >&2
  hack/crd-bench.sh
fi

if [ "${HA_BENCH:-1}" != 0 ]; then
  echo "+ hack/ha-bench.sh (HA_BENCH=0 skips it)" >&2
  hack/ha-bench.sh
fi

if [ "${SCALE_CHECK:-1}" != 0 ]; then
  echo "+ hack/scale-check.sh (SCALE_CHECK=0 skips it)" >&2
  hack/scale-check.sh
fi

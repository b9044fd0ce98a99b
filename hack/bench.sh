#!/usr/bin/env bash
# Runs the benchmarks of test/bench (an in-process mindie-apiserver on an
# embedded etcd, each benchmark beside a baseline measured in the same run),
# keeps the raw output in _output/bench.txt and writes docs/benchmarks.md with
# the medians and the ratios of each benchmark to its baseline.
#
#   BENCHTIME  -benchtime of each benchmark run (default 2s)
#   COUNT      runs of each benchmark; the report takes the median (default 3)
#   BENCH      -bench pattern (default: all)
#   RECONCILE_BENCH  0 skips the reconcile benchmark that follows them
#              (hack/reconcile-bench.sh: 100 and 1,000 InferServers created at
#              once on a local cluster of its own, against N ConfigMaps; about
#              7 minutes; docs/reconcile-bench.md). Its summary table is put
#              into docs/benchmarks.md either way (from the last
#              docs/reconcile-bench.md when skipped).
#   SCALE_CHECK  0 skips the scale check that follows the benchmarks
#              (hack/scale-check.sh: 100 simulated nodes, 1,000 pods, a local
#              cluster of its own; about 5 to 20 minutes; docs/scale-check.md)
#
# The defaults take about a minute and a half on two cores. To see the
# in-process server's logs while debugging a benchmark:
#   go test ./test/bench/ -run '^$' -bench Create -args -server-logs
set -o errexit -o nounset -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "${ROOT}"

BENCHTIME=${BENCHTIME:-2s}
COUNT=${COUNT:-3}
BENCH=${BENCH:-.}
RAW=_output/bench.txt
REPORT=docs/benchmarks.md

mkdir -p _output docs

cmd=(go test ./test/bench/ -run '^$' -bench "${BENCH}" -benchmem -count "${COUNT}" -benchtime "${BENCHTIME}" -timeout 30m)
echo "+ ${cmd[*]}" >&2
# go test prints the test binary's stderr with its results; the server's
# klog output is discarded by the benchmarks, but the embedded etcd still
# logs errors as JSON lines (it does when it shuts down). They stay in the
# raw output and are kept off the terminal.
"${cmd[@]}" 2>&1 | tee "${RAW}" | sed -u '/^{"level":/d'

cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo 2>/dev/null | head -n 1 || true)
go run ./hack/benchreport \
  -date "$(date -u '+%Y-%m-%d %H:%M UTC')" \
  -go "$(go version)" \
  -cpu "${cpu:-unknown}" \
  -command "go test ./test/bench/ -run '^\$' -bench '${BENCH}' -benchmem -count ${COUNT} -benchtime ${BENCHTIME}" \
  <"${RAW}" >"${REPORT}.tmp"
mv "${REPORT}.tmp" "${REPORT}"
echo "wrote ${RAW} and ${REPORT}" >&2

if [ "${RECONCILE_BENCH:-1}" != 0 ]; then
  echo "+ hack/reconcile-bench.sh (RECONCILE_BENCH=0 skips it)" >&2
  hack/reconcile-bench.sh
else
  hack/reconcile-bench.sh --section-only
fi

if [ "${SCALE_CHECK:-1}" != 0 ]; then
  echo "+ hack/scale-check.sh (SCALE_CHECK=0 skips it)" >&2
  hack/scale-check.sh
fi

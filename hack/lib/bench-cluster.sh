# Sourced by the benchmark scripts that measure on a local cluster of their
# own (hack/fault-bench.sh, edge-bench.sh, plugin-bench.sh, crd-bench.sh,
# ha-bench.sh): the steps they share. Before sourcing it a script sets
#   NAME     its name in log lines and its work directory, _output/$NAME
#   PROGRAM  the measuring program's package (./test/bench/<name>bench)
#   RESULT   the results' file name (docs/bench/$RESULT by default)
#   RESULTS  where this run's results go (default docs/bench/$RESULT; the
#            documents are rendered only from the default)
# and is in the repository's root. It defines WORK, BIN, DEFAULT_RESULTS
# and log, and:
#   bench_prepare "$@"   --report-only renders the documents and exits;
#                        otherwise builds $BIN and clears $WORK's last run
#   bench_cluster_up     hack/local-up.sh with the ports and variables the
#                        script exported (OUT among them), and a trap that
#                        keeps the logs and tears the cluster down
#                        (hack/local-down.sh --purge) on any exit
#   bench_publish        keeps the logs, moves $WORK/$RESULT to $RESULTS
#                        and renders the documents
# KEEP_AUDIT_LOG=1 (before bench_cluster_up) keeps mindie-apiserver's audit
# log too, gzipped.

WORK=${ROOT}/_output/${NAME}
BIN=${WORK}/bin/$(basename "${PROGRAM}")
DEFAULT_RESULTS=docs/bench/${RESULT}
RESULTS=${RESULTS:-${DEFAULT_RESULTS}}

log() { echo "${NAME}: $*" >&2; }

bench_render() {
  if [ "${RESULTS}" = "${DEFAULT_RESULTS}" ]; then
    go run ./test/bench/report
  else
    log "results in ${RESULTS}; docs/benchmarks.md renders only ${DEFAULT_RESULTS}"
  fi
}

bench_prepare() {
  case "${1:-}" in
    --report-only) bench_render; exit 0 ;;
    "") ;;
    *) log "unknown argument ${1}: want --report-only or none"; exit 2 ;;
  esac
  mkdir -p "${WORK}/bin" "$(dirname "${RESULTS}")"
  go build -o "${BIN}" "${PROGRAM}"
  rm -rf "${WORK:?}/logs" "${WORK:?}/${RESULT}" "${WORK}/local-up.out" "${WORK}/cluster"
  mkdir -p "${WORK}/logs"
}

# bench_keep_logs: copies the cluster's logs to $WORK/logs, where they
# outlive the purge; the audit logs are large and left out unless asked for.
bench_keep_logs() {
  if [ -d "${OUT}/logs" ]; then
    find "${OUT}/logs" -maxdepth 1 -name '*.log' ! -name 'audit*' -exec cp {} "${WORK}/logs/" \;
    if [ "${KEEP_AUDIT_LOG:-0}" = 1 ] && [ -f "${OUT}/logs/audit.log" ]; then
      gzip -c "${OUT}/logs/audit.log" >"${WORK}/logs/audit.log.gz"
    fi
  fi
}

bench_cleanup() {
  local rc=$?
  set +o errexit
  bench_keep_logs
  log "tearing down"
  hack/local-down.sh --purge
  exit "${rc}"
}

bench_cluster_up() {
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
  BENCH_START=$(date +%s)
  if ! hack/local-up.sh >"${WORK}/local-up.out" 2>&1; then
    log "local-up failed:"; tail -30 "${WORK}/local-up.out" >&2; exit 1
  fi
  log "cluster up in $(($(date +%s) - BENCH_START))s"
}

bench_publish() {
  bench_keep_logs
  cp "${WORK}/${RESULT}" "${RESULTS}.tmp"
  mv "${RESULTS}.tmp" "${RESULTS}"
  log "wrote ${RESULTS} in $(($(date +%s) - BENCH_START))s; logs are in ${WORK}/"
  bench_render
}

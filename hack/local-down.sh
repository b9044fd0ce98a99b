#!/usr/bin/env bash
# Stops what hack/local-up.sh started: the APIService first (otherwise
# namespace deletion and garbage collection stall on a failed discovery),
# then mindie-controller (MINDIE_CONTROLLERS=external), mindie-apiserver, the scheduler, the controller manager,
# kube-apiserver and etcd. Data stays in $OUT unless --purge is given.
set -o errexit -o nounset -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
OUT=${OUT:-$ROOT/_output/local}
PIDS=$OUT/pids

running() { [ -f "$PIDS/$1" ] && kill -0 "$(cat "$PIDS/$1")" 2>/dev/null; }

if running kube-apiserver && [ -x "$OUT/bin/kubectl" ]; then
  "$OUT/bin/kubectl" --kubeconfig="$OUT/kubeconfig" delete apiservice v1alpha1.infer.mindie.io \
    --ignore-not-found --timeout=20s >/dev/null 2>&1 || true
fi

# stop NAME: SIGTERM, then SIGKILL after a grace period (kube-apiserver can
# linger with open watches).
stop() {
  local name=$1 grace=${2:-20}
  running "$name" || { rm -f "$PIDS/$name"; return 0; }
  local pid; pid=$(cat "$PIDS/$name")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 $((grace * 5))); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$PIDS/$name"
  echo "local-down: stopped $name" >&2
}
stop mindie-controller
stop mindie-apiserver
# Replicas of MINDIE_REPLICAS > 1, and the balancer in front of them.
for f in "$PIDS"/mindie-apiserver-*; do
  [ -e "$f" ] && stop "$(basename "$f")"
done
stop ascend-sim
stop kube-scheduler 10
stop kube-controller-manager 10
stop kube-apiserver 15
stop etcd 10

if [ "${1:-}" = "--purge" ]; then
  rm -rf "$OUT"
fi

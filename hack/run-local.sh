#!/usr/bin/env bash
# Starts mindie-apiserver on this machine in standalone mode (embedded etcd,
# client-certificate authentication, loopback only), creates the sample
# InferServer and leaves the server running. Stop it with hack/run-local.sh stop.
set -o errexit -o nounset -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
OUT=${OUT:-$ROOT/_output/local}
PORT=${PORT:-8443}
cd "$ROOT"

stop() {
  if [ -f "$OUT/mindie-apiserver.pid" ]; then
    kill "$(cat "$OUT/mindie-apiserver.pid")" 2>/dev/null || true
    rm -f "$OUT/mindie-apiserver.pid"
    echo "mindie-apiserver stopped (data kept in $OUT/data)."
  fi
}
if [ "${1:-}" = "stop" ]; then stop; exit 0; fi

stop
mkdir -p "$OUT"
[ -x bin/mindie-apiserver ] || go build -o bin/mindie-apiserver ./cmd/mindie-apiserver
go run ./hack/devcerts -dir "$OUT" -server "https://127.0.0.1:$PORT" -server-ca "$OUT/certs/apiserver.crt"

bin/mindie-apiserver --standalone \
  --bind-address=127.0.0.1 --secure-port="$PORT" \
  --cert-dir="$OUT/certs" --data-dir="$OUT/data" \
  --client-ca-file="$OUT/ca.crt" >"$OUT/mindie-apiserver.log" 2>&1 &
echo $! >"$OUT/mindie-apiserver.pid"

curl_api() {
  curl --silent --show-error --cacert "$OUT/certs/apiserver.crt" --cert "$OUT/admin.crt" --key "$OUT/admin.key" "$@"
}
for _ in $(seq 1 120); do
  if [ -f "$OUT/certs/apiserver.crt" ] && curl_api --fail "https://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$(cat "$OUT/mindie-apiserver.pid")" 2>/dev/null; then
    echo "mindie-apiserver exited; its log:" >&2; tail -20 "$OUT/mindie-apiserver.log" >&2; exit 1
  fi
  sleep 0.5
done
curl_api --fail "https://127.0.0.1:$PORT/readyz" >/dev/null

sample=artifacts/samples/inferserver.yaml
url="https://127.0.0.1:$PORT/apis/infer.mindie.io/v1alpha1/namespaces/default/inferservers"
# Server-side apply, so that running this again is harmless.
curl_api --fail -X PATCH -H 'Content-Type: application/apply-patch+yaml' \
  --data-binary @"$sample" "$url/llama3-8b?fieldManager=make-run" >/dev/null

cat <<MSG
mindie-apiserver is running on https://127.0.0.1:$PORT (pid $(cat "$OUT/mindie-apiserver.pid"),
log $OUT/mindie-apiserver.log, data $OUT/data) and holds the sample InferServer llama3-8b.

Try:
  export KUBECONFIG=$OUT/kubeconfig
  kubectl get inferservers -o wide        # or: kubectl get isvc
  kubectl explain inferserver.spec.strategy
  kubectl scale inferserver llama3-8b --replicas=3
  curl --cacert $OUT/certs/apiserver.crt --cert $OUT/admin.crt --key $OUT/admin.key $url

Stop it with: hack/run-local.sh stop
MSG

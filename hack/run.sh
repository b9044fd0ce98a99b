#!/usr/bin/env bash
# make run: the local cluster with mindie-apiserver registered, the sample
# InferServer applied, and what to try next.
set -o errexit -o nounset -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
OUT=${OUT:-$ROOT/_output/local}
cd "$ROOT"

hack/local-up.sh >/dev/null
export KUBECONFIG=$OUT/kubeconfig
KUBECTL=$OUT/bin/kubectl
"$KUBECTL" apply --server-side --field-manager=make-run -f artifacts/samples/

cat <<MSG

The local cluster is up (logs in $OUT/logs, audit log $OUT/logs/audit.log).
mindie-apiserver serves infer.mindie.io behind kube-apiserver https://127.0.0.1:${KUBE_PORT:-16443}.

  export KUBECONFIG=$OUT/kubeconfig PATH=$OUT/bin:\$PATH
  kubectl get inferservers -A -o wide
  kubectl explain inferserver.spec.strategy
  kubectl scale inferserver llama3-8b --replicas=3
  kubectl auth can-i create inferservers -n team-b --as=tenant-a-editor

Tenant kubeconfigs (tenant-a-editor, tenant-b-editor, tenant-a-viewer): $OUT/users/
Stop it all with: hack/local-down.sh   (add --purge to delete its data)
MSG

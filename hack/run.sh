#!/usr/bin/env bash
# make run: the local cluster with mindie-apiserver registered, the samples
# of artifacts/samples/ applied (the InferServers inferserver.yaml and pd.yaml,
# a Prefill/Decode server, and edge.yaml, an EdgeDeployment to the arm64
# simulated edge nodes), and what to try next.
set -o errexit -o nounset -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
OUT=${OUT:-$ROOT/_output/local}
cd "$ROOT"

hack/local-up.sh >/dev/null
export KUBECONFIG=$OUT/kubeconfig
KUBECTL=$OUT/bin/kubectl
# The samples belong to make run: take their fields back if someone changed them.
"$KUBECTL" apply --server-side --force-conflicts --field-manager=make-run -f artifacts/samples/

cat <<MSG

The local cluster is up (logs in $OUT/logs, audit log $OUT/logs/audit.log).
mindie-apiserver serves infer.mindie.io behind kube-apiserver https://127.0.0.1:${KUBE_PORT:-16443}.

  export KUBECONFIG=$OUT/kubeconfig PATH=$OUT/bin:\$PATH OUT=$OUT
  kubectl get inferservers -A -o wide       # the samples become Available in a few seconds
  kubectl get deployment,pods,service,controllerrevisions -l infer.mindie.io/server=llama3-8b
  kubectl get inferserver llama3-8b -o yaml # status: instances, pods, model info, conditions
  kubectl mindie status llama3-8b           # the kubectl plugin (built into $OUT/bin)
  kubectl mindie chat llama3-8b -m "Hello"  # through the API server and the router
  kubectl get pods -l infer.mindie.io/router=llama3-8b -o wide   # the routers: the real mindie-router
  kubectl mindie routes llama3-8b           # each router's view: in flight, free slots, affinity hits
  kubectl mindie status llama3-8b-pd        # the Prefill/Decode sample (pd.yaml): roles, groups, members linked
  kubectl mindie chat llama3-8b-pd -m "Hello"        # prefilled by one instance, decoded by the other
  kubectl mindie logs llama3-8b-pd --role=decode --tail=5   # the decode instances' logs
  kubectl mindie edge status edge-infer -w  # the EdgeDeployment sample (edge.yaml): the arm64 edge nodes, one at a time
  kubectl get edgedeployments -o wide      # phase, nodes succeeded/targets, failed; or: kubectl mindie edge list
  kubectl mindie edge stop edge-infer; kubectl mindie edge continue edge-infer   # the job's control
  kubectl mindie edge retry edge-infer      # when nodes ended Failed or TimedOut: run it again on them
  kubectl get nodes -l mindie.io/edge=true -L kubernetes.io/arch   # the simulated edge nodes
  kubectl explain inferserver.spec.strategy
  kubectl scale inferserver llama3-8b --replicas=3
  kubectl auth can-i create inferservers -n team-b --as=tenant-a-editor
  kubectl get nodes -L accelerator          # ${SIM_NODES:-4} simulated Ascend nodes (ascend-sim)
  ascend-sim fault npu --node ascend-0 --chip 3 --level SeparateNPU   # then look at
  kubectl -n kube-system get configmap mindx-dl-deviceinfo-ascend-0 -o yaml

Tenant kubeconfigs (tenant-a-editor, tenant-b-editor, tenant-a-viewer): $OUT/users/
Stop it all with: hack/local-down.sh   (add --purge to delete its data)
MSG

#!/usr/bin/env bash
# Builds the binaries of the local test cluster from the Go module proxy:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kubectl of
# Kubernetes v1.36.3. They land in a git-ignored cache keyed by version, and a
# later run that finds them all there builds nothing. Prints the directory.
set -o errexit -o nounset -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
KUBE_VERSION=v1.36.3
ETCD_VERSION=v3.6.8
CACHE=${MINDIE_TESTBIN_CACHE:-$ROOT/.cache/testbin}
DIR="$CACHE/kube-$KUBE_VERSION-etcd-$ETCD_VERSION"
BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl)

complete() {
  for b in "${BINARIES[@]}"; do [ -x "$DIR/$b" ] || return 1; done
}
if complete; then
  echo "$DIR"
  exit 0
fi

echo "Building the test cluster binaries (Kubernetes $KUBE_VERSION, etcd $ETCD_VERSION) into $DIR; the first build takes several minutes." >&2
# A build of its own, so that two scripts building at once (benchmarks
# and tests bring up clusters side by side) do not undo each other; the
# first to finish moves its binaries into place.
mkdir -p "$CACHE"
TMP=$(mktemp -d "$DIR.partial.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
cd "$ROOT/hack/testbin"
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$TMP/" \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler \
  k8s.io/kubernetes/cmd/kubectl
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$TMP/etcd" ./etcd
if ! complete; then
  rm -rf "$DIR"
  mv "$TMP" "$DIR" 2>/dev/null || complete
fi
complete
echo "$DIR"

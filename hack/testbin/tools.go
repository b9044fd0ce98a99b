//go:build tools

// Package testbin pins the Kubernetes v1.36.3 and etcd sources that
// hack/testbin/build.sh compiles into the local test cluster's binaries. It
// is a module of its own so none of this enters the product's dependencies.
package testbin

import (
	_ "k8s.io/kubectl/pkg/cmd"
	_ "k8s.io/kubernetes/cmd/kube-apiserver/app"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	_ "k8s.io/kubernetes/cmd/kube-scheduler/app"
)

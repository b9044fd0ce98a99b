// Command mindie-apiserver serves the infer.mindie.io API as a Kubernetes
// aggregated API server.
package main

import (
	"os"

	"k8s.io/component-base/cli"

	"mindie.io/deployer/pkg/cmd/server"
)

func main() {
	_ = cli.Run // keep component-base's logging flags consistent with Kubernetes binaries
	os.Exit(server.Main())
}

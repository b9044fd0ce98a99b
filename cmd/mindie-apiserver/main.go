// Command mindie-apiserver serves the infer.mindie.io API as a Kubernetes
// aggregated API server.
package main

import (
	"os"

	"mindie.io/deployer/pkg/cmd/server"
)

func main() {
	os.Exit(server.Main())
}

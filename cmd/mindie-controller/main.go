// Command mindie-controller runs mindie's workload controllers in a process
// of their own, beside mindie-apiserver --external-controllers.
package main

import (
	"os"

	"mindie.io/deployer/pkg/cmd/controller"
)

func main() {
	os.Exit(controller.Main())
}

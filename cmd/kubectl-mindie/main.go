// Command kubectl-mindie is the kubectl plugin for MindIE InferServers
// (infer.mindie.io/v1alpha1): with it on PATH, "kubectl mindie ..." creates
// them (also from the legacy infer_server.json), shows their status, logs
// and rollout history, chats with the model they serve, shows what their
// routers see (routes), rolls them back and scales them. It replaces the
// original deployer's msctl.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/rest"

	"mindie.io/deployer/plugin/cmd"
	"mindie.io/deployer/plugin/options"
)

func main() {
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	// Server warnings are printed as kubectl prints them.
	rest.SetDefaultWarningHandler(rest.NewWarningWriter(os.Stderr, rest.WarningWriterOptions{Deduplicate: true}))
	root := cmd.NewCmdMindie(options.New(streams))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	root.SetContext(ctx)
	code := cmd.Execute(root, os.Args[1:])
	stop()
	os.Exit(code)
}

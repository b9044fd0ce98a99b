// Package cmd is the command tree of kubectl-mindie, the kubectl plugin for
// InferServers and EdgeDeployments (infer.mindie.io/v1alpha1). Each command
// lives in a package of its own below this one (create, get, delete,
// status, logs, chat, routes, rollout, scale, edge) and reaches the cluster
// through options.MindieOptions.
package cmd

import (
	"github.com/spf13/cobra"

	"mindie.io/deployer/plugin/cmd/chat"
	"mindie.io/deployer/plugin/cmd/completion"
	"mindie.io/deployer/plugin/cmd/create"
	"mindie.io/deployer/plugin/cmd/delete"
	"mindie.io/deployer/plugin/cmd/edge"
	"mindie.io/deployer/plugin/cmd/get"
	"mindie.io/deployer/plugin/cmd/logs"
	"mindie.io/deployer/plugin/cmd/rollout"
	"mindie.io/deployer/plugin/cmd/routes"
	"mindie.io/deployer/plugin/cmd/scale"
	"mindie.io/deployer/plugin/cmd/status"
	"mindie.io/deployer/plugin/internal/printing"
	"mindie.io/deployer/plugin/options"
)

// NewCmdMindie returns the kubectl-mindie command tree, which runs with o.
func NewCmdMindie(o *options.MindieOptions) *cobra.Command {
	root := &cobra.Command{
		Use:   "kubectl-mindie",
		Short: "Manage MindIE InferServers and EdgeDeployments (infer.mindie.io)",
		Long: `kubectl mindie manages InferServers, the MindIE inference services served by
mindie-apiserver (infer.mindie.io/v1alpha1): create them from manifests or from
the legacy infer_server.json, watch their rollout, read their logs, chat with
the model they serve, see how their routers route, roll back and scale them.
"kubectl mindie edge" runs EdgeDeployments: one application deployed to many
edge nodes as a job that can be followed, stopped, continued and retried.

Every standard kubectl flag works: --kubeconfig, --context, -n, --as, ...`,
		Annotations: map[string]string{
			cobra.CommandDisplayNameAnnotation: "kubectl mindie",
		},
		SilenceErrors: true,
		SilenceUsage:  true,
		// Without a subcommand, print the help.
		Run: func(c *cobra.Command, _ []string) { _ = c.Help() },
	}
	root.SetIn(o.In)
	root.SetOut(o.Out)
	root.SetErr(o.ErrOut)
	o.AddKubectlFlags(root)
	_ = root.RegisterFlagCompletionFunc("namespace", completion.Namespaces(o))

	root.AddCommand(
		create.NewCmdCreate(o),
		create.NewCmdConvert(o),
		get.NewCmdGet(o),
		delete.NewCmdDelete(o),
		status.NewCmdStatus(o),
		logs.NewCmdLogs(o),
		chat.NewCmdChat(o),
		routes.NewCmdRoutes(o),
		rollout.NewCmdRollout(o),
		scale.NewCmdScale(o),
		edge.NewCmdEdge(o),
	)
	return root
}

// Execute runs the command tree with args and returns the exit code: 0 on
// success, 1 after printing the error as kubectl does.
func Execute(root *cobra.Command, args []string) int {
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		printing.Error(root.ErrOrStderr(), err)
		return 1
	}
	return 0
}

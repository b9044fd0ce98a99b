package cmd

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/klog/v2"
)

// NewRootCommand returns the kubectl-mindie command tree. flags are the
// standard kubectl flags (added to every command); f gives the clients.
func NewRootCommand(f Factory, flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	root := &cobra.Command{
		Use:   "kubectl-mindie",
		Short: "Manage MindIE InferServers (infer.mindie.io)",
		Long: `kubectl mindie manages InferServers, the MindIE inference services served by
mindie-apiserver (infer.mindie.io/v1alpha1): create them from manifests or from
the legacy infer_server.json, watch their rollout, read their logs, chat with
the model they serve, roll back and scale them.

Every standard kubectl flag works: --kubeconfig, --context, -n, --as, ...`,
		Annotations: map[string]string{
			cobra.CommandDisplayNameAnnotation: "kubectl mindie",
		},
		SilenceErrors: true,
		SilenceUsage:  true,
		// Without a subcommand, print the help.
		Run: func(c *cobra.Command, _ []string) { _ = c.Help() },
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	flags.AddFlags(root.PersistentFlags())
	// -v, as kubectl has it, for the clients' request logs.
	var goFlags flag.FlagSet
	klog.InitFlags(&goFlags)
	if v := goFlags.Lookup("v"); v != nil {
		root.PersistentFlags().AddGoFlag(v)
	}
	_ = root.RegisterFlagCompletionFunc("namespace", completeNamespaces(f))

	root.AddCommand(
		newCreateCommand(f, streams),
		newConvertCommand(f, streams),
		newGetCommand(f, streams),
		newDeleteCommand(f, streams),
		newStatusCommand(f, streams),
		newLogsCommand(f, streams),
		newChatCommand(f, streams),
		newRolloutCommand(f, streams),
		newScaleCommand(f, streams),
	)
	return root
}

// PrintError writes err as kubectl does: "error: " and the message; an
// aggregate gets one such line per error.
func PrintError(w io.Writer, err error) {
	var agg utilerrors.Aggregate
	if errors.As(err, &agg) && len(agg.Errors()) > 1 {
		for _, e := range agg.Errors() {
			PrintError(w, e)
		}
		return
	}
	msg := err.Error()
	if status, ok := err.(apierrors.APIStatus); ok && status.Status().Message != "" {
		msg = status.Status().Message
	}
	fmt.Fprintf(w, "error: %s\n", strings.TrimRight(msg, "\n"))
}

// Execute runs the command tree with args and returns the exit code: 0 on
// success, 1 after printing the error.
func Execute(root *cobra.Command, args []string) int {
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		PrintError(root.ErrOrStderr(), err)
		return 1
	}
	return 0
}

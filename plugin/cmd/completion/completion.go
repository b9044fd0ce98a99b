// Package completion completes the arguments and flags of kubectl-mindie's
// commands from the cluster: InferServer names and namespaces. The
// completion command itself, which prints the shell scripts, is cobra's.
package completion

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mindie.io/deployer/plugin/options"
)

// Timeout bounds the requests a shell completion makes.
const Timeout = 5 * time.Second

// InferServerNames completes InferServer names in the command's namespace.
// With many=false it offers a name only for the first argument.
func InferServerNames(o *options.MindieOptions, many bool) cobra.CompletionFunc {
	return func(_ *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if !many && len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		servers, err := o.InferServers()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(context.Background(), Timeout)
		defer cancel()
		list, err := servers.List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		taken := map[string]bool{}
		for _, a := range args {
			taken[a] = true
		}
		var names []cobra.Completion
		for _, s := range list.Items {
			if strings.HasPrefix(s.Name, toComplete) && !taken[s.Name] {
				names = append(names, s.Name)
			}
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

// Namespaces completes -n with the cluster's namespaces.
func Namespaces(o *options.MindieOptions) cobra.CompletionFunc {
	return func(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		c, err := o.KubeClient()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(context.Background(), Timeout)
		defer cancel()
		list, err := c.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var names []cobra.Completion
		for _, n := range list.Items {
			if strings.HasPrefix(n.Name, toComplete) {
				names = append(names, n.Name)
			}
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

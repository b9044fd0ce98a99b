package options

import (
	"fmt"

	"github.com/spf13/cobra"

	"mindie.io/deployer/apis/infer/v1alpha1"
)

// FieldManager is the field manager of every write the plugin makes.
const FieldManager = "kubectl-mindie"

// Modes of --dry-run.
const (
	DryRunNone   = "none"
	DryRunClient = "client"
	DryRunServer = "server"
)

// AddDryRunFlag adds --dry-run=none|client|server; --dry-run alone is client.
func AddDryRunFlag(c *cobra.Command, p *string) {
	c.Flags().StringVar(p, "dry-run", DryRunNone, `Must be "none", "server", or "client". With client, only print the object that would be sent; with server, submit a server-side request (validated and defaulted) without persisting it.`)
	c.Flags().Lookup("dry-run").NoOptDefVal = DryRunClient
	_ = c.RegisterFlagCompletionFunc("dry-run", cobra.FixedCompletions([]string{DryRunNone, DryRunClient, DryRunServer}, cobra.ShellCompDirectiveNoFileComp))
}

// ValidateDryRun refuses a --dry-run value that is not a mode.
func ValidateDryRun(v string) error {
	switch v {
	case DryRunNone, DryRunClient, DryRunServer:
		return nil
	}
	return fmt.Errorf(`invalid --dry-run value %q: must be "none", "server", or "client"`, v)
}

// AddAllNamespacesFlag adds -A/--all-namespaces.
func AddAllNamespacesFlag(c *cobra.Command, p *bool) {
	c.Flags().BoolVarP(p, "all-namespaces", "A", false, "If present, list the requested objects across all namespaces. The namespace in the current context is ignored even if specified with --namespace.")
}

// ExactArgs is cobra.ExactArgs with kubectl's wording and the usage line.
func ExactArgs(n int, what string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != n {
			return fmt.Errorf("%s is required (usage: %s)", what, c.UseLine())
		}
		return nil
	}
}

// InferServersPath is the API path of the InferServers of ns ("" for all
// namespaces), or of one of them, and of its subresource.
func InferServersPath(ns, name string, subresource ...string) string {
	p := "/apis/" + v1alpha1.SchemeGroupVersion.String()
	if ns != "" {
		p += "/namespaces/" + ns
	}
	p += "/inferservers"
	if name != "" {
		p += "/" + name
		for _, s := range subresource {
			p += "/" + s
		}
	}
	return p
}

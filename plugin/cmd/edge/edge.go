// Package edge holds the edge command and its subcommands, which run
// EdgeDeployments (infer.mindie.io/v1alpha1): IEF's batch application
// deployment jobs, one container application deployed to many edge nodes.
// deploy creates them from manifests; status shows a job and its nodes and,
// with -w, follows it until it ends; stop, continue and retry set the job's
// control fields (spec.stopped, spec.retryGeneration); delete and list do
// what their names say. The controller does the work: these commands only
// read the status it writes and change the spec.
package edge

import (
	"context"
	"strings"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"mindie.io/deployer/apis/infer/v1alpha1"
	inferv1alpha1 "mindie.io/deployer/pkg/generated/clientset/versioned/typed/infer/v1alpha1"
	"mindie.io/deployer/plugin/cmd/completion"
	"mindie.io/deployer/plugin/options"
)

// edgeDeploymentGVK is the kind every EdgeDeployment is printed with.
var edgeDeploymentGVK = v1alpha1.SchemeGroupVersion.WithKind("EdgeDeployment")

// qualifiedResource is how kubectl names EdgeDeployments in its messages.
var qualifiedResource = schema.GroupResource{Group: v1alpha1.GroupName, Resource: "edgedeployment"}

// resourceName is "edgedeployment.infer.mindie.io/NAME", as kubectl -o name prints.
func resourceName(name string) string {
	return qualifiedResource.String() + "/" + name
}

// NewCmdEdge returns the edge command and its subcommands.
func NewCmdEdge(mindie *options.MindieOptions) *cobra.Command {
	c := &cobra.Command{
		Use:   "edge SUBCOMMAND",
		Short: "Deploy an application to many edge nodes (EdgeDeployments): deploy, status, stop, continue, retry, delete, list",
		Long: `Run EdgeDeployments (infer.mindie.io/v1alpha1, short name edep): IEF's batch
application deployment, a job that deploys one container application onto a
set of edge nodes, a bounded number of nodes at a time, within a timeout. The
job can be stopped and continued, and retried on the nodes where it failed or
timed out (see docs/edge.md).

The target nodes must share one architecture (kubernetes.io/arch): a job
whose nodes do not is refused (Failed, reason MixedArchitectures).`,
		Example: `  kubectl mindie edge deploy -f artifacts/samples/edge.yaml
  kubectl mindie edge status edge-infer -w
  kubectl mindie edge retry edge-infer
  kubectl mindie edge stop edge-infer && kubectl mindie edge continue edge-infer`,
		Run: func(c *cobra.Command, _ []string) { _ = c.Help() },
	}
	c.AddCommand(
		newDeployCommand(mindie),
		newStatusCommand(mindie),
		newStopCommand(mindie, true),
		newStopCommand(mindie, false),
		newRetryCommand(mindie),
		newDeleteCommand(mindie),
		newListCommand(mindie),
	)
	return c
}

// edgeDeployments is the EdgeDeployment client of the command's namespace,
// and that namespace.
func edgeDeployments(o *options.MindieOptions) (string, inferv1alpha1.EdgeDeploymentInterface, error) {
	ns, client, err := o.NamespacedInferClient()
	if err != nil {
		return "", nil, err
	}
	return ns, client.InferV1alpha1().EdgeDeployments(ns), nil
}

// namespaceFlag is " -n NS" when -n was given, for the commands a message
// suggests.
func namespaceFlag(o *options.MindieOptions) string {
	ns, explicit, err := o.Namespace()
	if err != nil || !explicit {
		return ""
	}
	return " -n " + ns
}

// edgeNames completes EdgeDeployment names in the command's namespace.
// With many=false it offers a name only for the first argument.
func edgeNames(o *options.MindieOptions, many bool) cobra.CompletionFunc {
	return func(_ *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if !many && len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		_, edeps, err := edgeDeployments(o)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(context.Background(), completion.Timeout)
		defer cancel()
		list, err := edeps.List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		taken := map[string]bool{}
		for _, a := range args {
			taken[a] = true
		}
		var names []cobra.Completion
		for _, e := range list.Items {
			if strings.HasPrefix(e.Name, toComplete) && !taken[e.Name] {
				names = append(names, e.Name)
			}
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

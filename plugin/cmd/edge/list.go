package edge

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/plugin/internal/printing"
	"mindie.io/deployer/plugin/options"
)

type listOptions struct {
	*options.MindieOptions

	allNamespaces bool
	selector      string
}

func newListCommand(mindie *options.MindieOptions) *cobra.Command {
	o := &listOptions{MindieOptions: mindie}
	c := &cobra.Command{
		Use:   "list",
		Short: "List EdgeDeployment jobs with their phase and nodes",
		Long: `List EdgeDeployments: phase, target nodes that succeeded out of all of them
(? while a selector is not resolved yet), nodes that failed or timed out (what
a retry runs again), architecture and age. "kubectl get edep" shows the same
from the server.`,
		Example: `  kubectl mindie edge list -A`,
		Args:    cobra.NoArgs,
		RunE:    func(c *cobra.Command, _ []string) error { return o.run(c.Context()) },
	}
	options.AddAllNamespacesFlag(c, &o.allNamespaces)
	c.Flags().StringVarP(&o.selector, "selector", "l", "", "Selector (label query) of the EdgeDeployments to list.")
	return c
}

func (o *listOptions) run(ctx context.Context) error {
	ns, client, err := o.NamespacedInferClient()
	if err != nil {
		return err
	}
	if o.allNamespaces {
		ns = ""
	}
	list, err := client.InferV1alpha1().EdgeDeployments(ns).List(ctx, metav1.ListOptions{LabelSelector: o.selector})
	if err != nil {
		return err
	}
	if len(list.Items) == 0 {
		if ns == "" {
			fmt.Fprintln(o.ErrOut, "No resources found")
		} else {
			fmt.Fprintf(o.ErrOut, "No resources found in %s namespace.\n", ns)
		}
		return nil
	}
	w := printing.NewTabWriter(o.Out)
	header := []any{"NAME", "PHASE", "NODES", "FAILED", "ARCH", "AGE"}
	if o.allNamespaces {
		header = append([]any{"NAMESPACE"}, header...)
	}
	w.Row(header...)
	now := o.Now()
	for i := range list.Items {
		e := &list.Items[i]
		row := []any{e.Name, phase(e), succeededOf(e), e.Status.Failed + e.Status.TimedOut, printing.OrNone(e.Status.Architecture), printing.MetaAge(e.CreationTimestamp, now)}
		if o.allNamespaces {
			row = append([]any{e.Namespace}, row...)
		}
		w.Row(row...)
	}
	w.Flush()
	return nil
}

// succeededOf is "succeeded/targets", as kubectl get prints NODES: the
// targets once resolved, before that the names listed, "?" while a
// selector is not resolved.
func succeededOf(e *v1alpha1.EdgeDeployment) string {
	total := targetCount(e)
	if total == "" {
		switch p := e.Status.Phase; {
		case p != "" && p != v1alpha1.EdgePhaseQueued:
			total = "0"
		case e.Spec.Targets.Selector == nil:
			total = fmt.Sprint(len(e.Spec.Targets.Nodes))
		default:
			total = "?"
		}
	}
	return fmt.Sprintf("%d/%s", e.Status.Succeeded, total)
}

package rollout

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"sigs.k8s.io/yaml"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/revision"
	"mindie.io/deployer/plugin/cmd/completion"
	"mindie.io/deployer/plugin/internal/printing"
	"mindie.io/deployer/plugin/options"
)

// revisionsOf returns the revisions of the InferServer s, oldest first.
func revisionsOf(ctx context.Context, o *options.MindieOptions, s *v1alpha1.InferServer) ([]*appsv1.ControllerRevision, error) {
	kube, err := o.KubeClient()
	if err != nil {
		return nil, err
	}
	list, err := kube.AppsV1().ControllerRevisions(s.Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: labels.Set{v1alpha1.LabelServer: s.Name}.AsSelector().String(),
	})
	if err != nil {
		return nil, fmt.Errorf("listing the revisions of InferServer %q: %w", s.Name, err)
	}
	revs := make([]*appsv1.ControllerRevision, 0, len(list.Items))
	for i := range list.Items {
		revs = append(revs, &list.Items[i])
	}
	revs = revision.OwnedBy(revs, string(s.UID))
	revision.Sort(revs)
	return revs, nil
}

func findRevision(revs []*appsv1.ControllerRevision, n int64) *appsv1.ControllerRevision {
	for _, r := range revs {
		if r.Revision == n {
			return r
		}
	}
	return nil
}

type rolloutHistoryOptions struct {
	*options.MindieOptions
	revision int64
	print    *genericclioptions.PrintFlags
}

func newRolloutHistoryCommand(mindie *options.MindieOptions) *cobra.Command {
	o := &rolloutHistoryOptions{MindieOptions: mindie, print: printing.NewPrintFlags("")}
	c := &cobra.Command{
		Use:   "history NAME",
		Short: "List the revisions of an InferServer, or show one",
		Example: `  kubectl mindie rollout history llama3

  # The instance template of revision 3
  kubectl mindie rollout history llama3 --revision=3`,
		Args:              options.ExactArgs(1, "NAME"),
		ValidArgsFunction: completion.InferServerNames(mindie, false),
		RunE:              func(c *cobra.Command, args []string) error { return o.run(c.Context(), args[0]) },
	}
	c.Flags().Int64Var(&o.revision, "revision", 0, "Print the instance template of this revision.")
	o.print.AddFlags(c)
	c.Flags().Lookup("output").Usage = "Print the ControllerRevisions instead: json, yaml, name, jsonpath=..."
	return c
}

func (o *rolloutHistoryOptions) run(ctx context.Context, name string) error {
	if printing.OutputFormat(o.print) != "" {
		if _, err := o.print.ToPrinter(); err != nil {
			return err
		}
	}
	s, err := o.GetInferServer(ctx, name)
	if err != nil {
		return err
	}
	revs, err := revisionsOf(ctx, o.MindieOptions, s)
	if err != nil {
		return err
	}
	if o.revision > 0 {
		r := findRevision(revs, o.revision)
		if r == nil {
			return fmt.Errorf("unable to find the specified revision %d of InferServer %q", o.revision, name)
		}
		if printing.OutputFormat(o.print) != "" {
			return printing.PrintObject(o.print, r, o.Out)
		}
		tmpl, err := revision.Decode(r)
		if err != nil {
			return err
		}
		data, err := yaml.Marshal(map[string]any{"spec": tmpl})
		if err != nil {
			return err
		}
		fmt.Fprintf(o.Out, "%s with revision #%d (%s)\n", printing.ResourceName(name), r.Revision, r.Name)
		if cause := r.Annotations[v1alpha1.AnnotationChangeCause]; cause != "" {
			fmt.Fprintf(o.Out, "change-cause: %s\n", cause)
		}
		_, err = o.Out.Write(data)
		return err
	}
	if printing.OutputFormat(o.print) != "" {
		objs := make([]runtime.Object, 0, len(revs))
		for _, r := range revs {
			objs = append(objs, r)
		}
		if printing.OutputFormat(o.print) == "name" {
			for _, obj := range objs {
				if err := printing.PrintObject(o.print, obj, o.Out); err != nil {
					return err
				}
			}
			return nil
		}
		list, err := printing.List(objs)
		if err != nil {
			return err
		}
		return printing.PrintObject(o.print, list, o.Out)
	}
	if len(revs) == 0 {
		fmt.Fprintf(o.Out, "No rollout history found for InferServer %q.\n", name)
		return nil
	}
	fmt.Fprintln(o.Out, printing.ResourceName(name))
	w := printing.NewTabWriter(o.Out)
	w.Row("REVISION", "CHANGE-CAUSE")
	for _, r := range revs {
		w.Row(r.Revision, printing.OrNone(r.Annotations[v1alpha1.AnnotationChangeCause]))
	}
	w.Flush()
	return nil
}

package edge

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"

	"mindie.io/deployer/plugin/internal/watch"
	"mindie.io/deployer/plugin/options"
)

// Values of --cascade, as kubectl delete has them.
const (
	cascadeBackground = "background"
	cascadeForeground = "foreground"
	cascadeOrphan     = "orphan"
)

type deleteOptions struct {
	*options.MindieOptions

	ignoreNotFound bool
	wait           bool
	timeout        time.Duration
	cascade        string
	pollInterval   time.Duration
}

func newDeleteCommand(mindie *options.MindieOptions) *cobra.Command {
	o := &deleteOptions{MindieOptions: mindie, pollInterval: 500 * time.Millisecond}
	c := &cobra.Command{
		Use:   "delete NAME...",
		Short: "Delete EdgeDeployment jobs and wait until they are gone",
		Long: `Delete EdgeDeployments. The pods the job made on the edge nodes are removed by
the garbage collector after the job (--cascade=background, the default),
before it is gone (foreground), or left running on their nodes (orphan). By
default the command waits until the EdgeDeployment is gone (--wait=false
returns at once).`,
		Example: `  kubectl mindie edge delete edge-infer

  # Keep the application running on the nodes, forget the job
  kubectl mindie edge delete edge-infer --cascade=orphan`,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: edgeNames(mindie, true),
		RunE:              func(c *cobra.Command, args []string) error { return o.run(c.Context(), args) },
	}
	c.Flags().BoolVar(&o.ignoreNotFound, "ignore-not-found", false, "Treat an EdgeDeployment that does not exist as deleted.")
	c.Flags().BoolVar(&o.wait, "wait", true, "Wait until the EdgeDeployments are gone.")
	c.Flags().DurationVar(&o.timeout, "timeout", 5*time.Minute, "How long --wait waits; 0 waits forever.")
	c.Flags().StringVar(&o.cascade, "cascade", cascadeBackground, `What happens to the job's pods: "background" (removed after the job), "foreground" (removed before the job is gone) or "orphan" (left running).`)
	_ = c.RegisterFlagCompletionFunc("cascade", cobra.FixedCompletions([]string{cascadeBackground, cascadeForeground, cascadeOrphan}, cobra.ShellCompDirectiveNoFileComp))
	return c
}

func (o *deleteOptions) run(ctx context.Context, names []string) error {
	var policy metav1.DeletionPropagation
	switch o.cascade {
	case cascadeBackground:
		policy = metav1.DeletePropagationBackground
	case cascadeForeground:
		policy = metav1.DeletePropagationForeground
	case cascadeOrphan:
		policy = metav1.DeletePropagationOrphan
	default:
		return fmt.Errorf(`invalid --cascade value %q: must be "background", "foreground" or "orphan"`, o.cascade)
	}
	ns, edeps, err := edgeDeployments(o.MindieOptions)
	if err != nil {
		return err
	}
	var errs []error
	seen := map[string]bool{}
	var deleted []watch.Target
	for _, name := range names {
		if seen[name] {
			continue
		}
		seen[name] = true
		e, err := edeps.Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			// The UID makes sure the wait and the delete are about the
			// object read, not one created anew under the same name.
			err = edeps.Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &policy, Preconditions: &metav1.Preconditions{UID: &e.UID}})
		}
		switch {
		case apierrors.IsNotFound(err) && o.ignoreNotFound:
			continue
		case err != nil:
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(o.Out, "%s %q deleted from %s namespace\n", qualifiedResource.String(), name, ns)
		deleted = append(deleted, watch.Target{Namespace: ns, Name: name, UID: e.UID})
	}
	if o.wait && len(deleted) > 0 {
		err := watch.Gone(ctx, deleted, func(ctx context.Context, t watch.Target) (metav1.Object, error) {
			return edeps.Get(ctx, t.Name, metav1.GetOptions{})
		}, o.timeout, o.pollInterval, qualifiedResource.String(), "EdgeDeployment")
		if err != nil {
			errs = append(errs, err)
		}
	}
	return utilerrors.NewAggregate(errs)
}

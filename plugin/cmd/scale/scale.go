// Package scale holds the scale command, which sets spec.replicas through
// the scale subresource.
package scale

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/util/retry"

	"mindie.io/deployer/plugin/cmd/completion"
	"mindie.io/deployer/plugin/internal/printing"
	"mindie.io/deployer/plugin/options"
)

type scaleOptions struct {
	*options.MindieOptions

	replicas        int32
	currentReplicas int32
	dryRun          string
}

// NewCmdScale returns the scale command.
func NewCmdScale(mindie *options.MindieOptions) *cobra.Command {
	o := &scaleOptions{MindieOptions: mindie}
	c := &cobra.Command{
		Use:   "scale NAME... --replicas=N",
		Short: "Set the number of instances of an InferServer",
		Long: `Set spec.replicas of InferServers through their scale subresource (as kubectl
scale and HorizontalPodAutoscalers do). With --current-replicas the change
happens only if the InferServer has that many replicas now.`,
		Example: `  kubectl mindie scale llama3 --replicas=4

  # Only if nobody changed it meanwhile
  kubectl mindie scale llama3 --current-replicas=2 --replicas=4`,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completion.InferServerNames(mindie, true),
		RunE:              func(c *cobra.Command, args []string) error { return o.run(c.Context(), args) },
	}
	c.Flags().Int32Var(&o.replicas, "replicas", -1, "The new number of instances (required).")
	c.Flags().Int32Var(&o.currentReplicas, "current-replicas", -1, "Precondition: the current number of replicas; -1 for none.")
	_ = c.MarkFlagRequired("replicas")
	options.AddDryRunFlag(c, &o.dryRun)
	return c
}

func (o *scaleOptions) run(ctx context.Context, names []string) error {
	if o.replicas < 0 {
		return errors.New("the --replicas=N flag is required, and N must be at least 0")
	}
	if err := options.ValidateDryRun(o.dryRun); err != nil {
		return err
	}
	servers, err := o.InferServers()
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		suffix := ""
		// The resourceVersion read with the scale makes the update fail
		// with a conflict if the InferServer changed meanwhile: then read
		// it again and check the precondition again.
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			scale, err := servers.GetScale(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if o.currentReplicas >= 0 && scale.Spec.Replicas != o.currentReplicas {
				return fmt.Errorf("expected replicas of InferServer %q to be %d, was %d", name, o.currentReplicas, scale.Spec.Replicas)
			}
			if o.dryRun == options.DryRunClient {
				suffix = " (dry run)"
				return nil
			}
			opts := metav1.UpdateOptions{FieldManager: options.FieldManager}
			if o.dryRun == options.DryRunServer {
				opts.DryRun = []string{metav1.DryRunAll}
				suffix = " (server dry run)"
			}
			scale.Spec.Replicas = o.replicas
			_, err = servers.UpdateScale(ctx, name, scale, opts)
			return err
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(o.Out, "%s scaled%s\n", printing.ResourceName(name), suffix)
	}
	return utilerrors.NewAggregate(errs)
}

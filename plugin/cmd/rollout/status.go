package rollout

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/inferstatus"
	"mindie.io/deployer/plugin/cmd/completion"
	"mindie.io/deployer/plugin/internal/watch"
	"mindie.io/deployer/plugin/options"
)

type rolloutStatusOptions struct {
	*options.MindieOptions
	watch   bool
	timeout time.Duration
}

func newRolloutStatusCommand(mindie *options.MindieOptions) *cobra.Command {
	o := &rolloutStatusOptions{MindieOptions: mindie}
	c := &cobra.Command{
		Use:   "status NAME",
		Short: "Wait until the rollout of an InferServer completes",
		Long: `Show the rollout of an InferServer and, by default, wait until it completes:
the controller has seen the current spec and reports the rollout complete
(every instance runs the new revision and is available, and no old instance
is left). It fails when the rollout exceeds its progress deadline, or when the
InferServer is Degraded for a reason the controller cannot resolve by itself:
too few NPUs, a pod that cannot be scheduled or pulled, a server that crashes
or does not start.`,
		Example: `  kubectl mindie rollout status llama3 --timeout=10m

  # One look, without waiting
  kubectl mindie rollout status llama3 --watch=false`,
		Args:              options.ExactArgs(1, "NAME"),
		ValidArgsFunction: completion.InferServerNames(mindie, false),
		RunE:              func(c *cobra.Command, args []string) error { return o.run(c.Context(), args[0]) },
	}
	c.Flags().BoolVarP(&o.watch, "watch", "w", true, "Watch the rollout until it completes.")
	c.Flags().DurationVar(&o.timeout, "timeout", 0, "How long to wait before giving up; 0 waits forever.")
	return c
}

func (o *rolloutStatusOptions) run(ctx context.Context, name string) error {
	ns, client, err := o.NamespacedInferClient()
	if err != nil {
		return err
	}
	s, err := client.InferV1alpha1().InferServers(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if !o.watch {
		msg, _, err := inferstatus.Rollout(s)
		if err != nil {
			return err
		}
		fmt.Fprintln(o.Out, msg)
		return nil
	}
	last := ""
	_, err = watch.Until(ctx, client, ns, name, s, o.timeout, func(s *v1alpha1.InferServer) (bool, error) {
		msg, done, err := inferstatus.Rollout(s)
		if err != nil {
			return false, err
		}
		if msg != last {
			fmt.Fprintln(o.Out, msg)
			last = msg
		}
		return done, nil
	})
	if errors.Is(err, watch.ErrTimeout) {
		return fmt.Errorf("timed out after %v waiting for the rollout of InferServer %q to finish", o.timeout, name)
	}
	return err
}

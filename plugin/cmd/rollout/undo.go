package rollout

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/revision"
	"mindie.io/deployer/plugin/cmd/completion"
	"mindie.io/deployer/plugin/internal/printing"
	"mindie.io/deployer/plugin/options"
)

type rolloutUndoOptions struct {
	*options.MindieOptions
	toRevision int64
}

func newRolloutUndoCommand(mindie *options.MindieOptions) *cobra.Command {
	o := &rolloutUndoOptions{MindieOptions: mindie}
	c := &cobra.Command{
		Use:   "undo NAME [--to-revision=N]",
		Short: "Roll an InferServer back to a previous revision",
		Long: `Set the instance template of an InferServer back to that of a revision (by
default the previous one) and let the controller roll it out. Replicas,
strategy and the service are kept. A paused InferServer is refused: resume it
first.`,
		Example: `  kubectl mindie rollout undo llama3
  kubectl mindie rollout undo llama3 --to-revision=2`,
		Args:              options.ExactArgs(1, "NAME"),
		ValidArgsFunction: completion.InferServerNames(mindie, false),
		RunE:              func(c *cobra.Command, args []string) error { return o.run(c.Context(), args[0]) },
	}
	c.Flags().Int64Var(&o.toRevision, "to-revision", 0, "The revision to roll back to; 0 is the previous one.")
	return c
}

// previousRevision is the newest revision whose template differs from spec's.
func previousRevision(revs []*appsv1.ControllerRevision, spec *v1alpha1.InferServerSpec) *appsv1.ControllerRevision {
	for i := len(revs) - 1; i >= 0; i-- {
		if !revision.Matches(revs[i], spec) {
			return revs[i]
		}
	}
	return nil
}

func (o *rolloutUndoOptions) run(ctx context.Context, name string) error {
	if o.toRevision < 0 {
		return errors.New("--to-revision must not be negative")
	}
	servers, err := o.InferServers()
	if err != nil {
		return err
	}
	var result string
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s, err := servers.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if s.Spec.Paused {
			return fmt.Errorf("you cannot roll back a paused InferServer; resume it first with 'kubectl mindie rollout resume %s' and try again", name)
		}
		revs, err := revisionsOf(ctx, o.MindieOptions, s)
		if err != nil {
			return err
		}
		var target *appsv1.ControllerRevision
		if o.toRevision == 0 {
			if target = previousRevision(revs, &s.Spec); target == nil {
				return fmt.Errorf("no rollout history found for InferServer %q: there is no previous revision to roll back to", name)
			}
		} else if target = findRevision(revs, o.toRevision); target == nil {
			return fmt.Errorf("unable to find the specified revision %d of InferServer %q", o.toRevision, name)
		}
		if revision.Matches(target, &s.Spec) {
			result = fmt.Sprintf("%s skipped rollback (current template already matches revision %d)", printing.ResourceName(name), target.Revision)
			return nil
		}
		tmpl, err := revision.Decode(target)
		if err != nil {
			return err
		}
		revision.Restore(&s.Spec, tmpl)
		// The change cause of the revision goes back with its template.
		if cause, ok := target.Annotations[v1alpha1.AnnotationChangeCause]; ok {
			if s.Annotations == nil {
				s.Annotations = map[string]string{}
			}
			s.Annotations[v1alpha1.AnnotationChangeCause] = cause
		} else {
			delete(s.Annotations, v1alpha1.AnnotationChangeCause)
		}
		if _, err := servers.Update(ctx, s, metav1.UpdateOptions{FieldManager: options.FieldManager}); err != nil {
			return err
		}
		result = fmt.Sprintf("%s rolled back to revision %d", printing.ResourceName(name), target.Revision)
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(o.Out, result)
	return nil
}

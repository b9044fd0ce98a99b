package edge

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"

	"mindie.io/deployer/apis/infer/v1alpha1"
	inferv1alpha1 "mindie.io/deployer/pkg/generated/clientset/versioned/typed/infer/v1alpha1"
	"mindie.io/deployer/plugin/options"
)

// patch is a change of one job: its type and body (nil: nothing to do),
// and what to say once it is made.
type patch struct {
	kind types.PatchType
	data []byte
	what string
}

type controlOptions struct {
	*options.MindieOptions

	force bool
}

func newStopCommand(mindie *options.MindieOptions, stop bool) *cobra.Command {
	o := &controlOptions{MindieOptions: mindie}
	c := &cobra.Command{
		Use:   "stop NAME...",
		Short: "Stop EdgeDeployment jobs: no node is started any more (spec.stopped)",
		Long: `Stop EdgeDeployment jobs by setting spec.stopped: no node is started any more,
the nodes being deployed finish (phase Stopping), the queued ones become
Stopped (phase Stopped), and what was deployed stays. "kubectl mindie edge
continue" goes on with the Stopped nodes. A job whose run has ended has
nothing to stop and is left alone.`,
		Example:           `  kubectl mindie edge stop edge-infer`,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: edgeNames(mindie, true),
	}
	if !stop {
		c.Use = "continue NAME..."
		c.Short = "Continue stopped EdgeDeployment jobs with their Stopped nodes"
		c.Long = `Continue stopped EdgeDeployment jobs by clearing spec.stopped: the controller
deploys to the nodes left Stopped, in a new run whose timeout counts from now.`
		c.Example = `  kubectl mindie edge continue edge-infer && kubectl mindie edge status edge-infer -w`
	}
	c.RunE = func(c *cobra.Command, args []string) error {
		return o.each(c.Context(), args, func(e *v1alpha1.EdgeDeployment) (patch, error) {
			switch {
			case stop && e.Spec.Stopped:
				return patch{what: "already stopped"}, nil
			case stop && judge(e) == ended:
				return patch{what: fmt.Sprintf("has ended (%s): nothing to stop", e.Status.Phase)}, nil
			case !stop && !e.Spec.Stopped:
				return patch{what: "is not stopped"}, nil
			case stop:
				return patch{types.MergePatchType, []byte(`{"spec":{"stopped":true}}`), "stopped"}, nil
			}
			return patch{types.MergePatchType, []byte(`{"spec":{"stopped":false}}`), "continued"}, nil
		})
	}
	return c
}

func newRetryCommand(mindie *options.MindieOptions) *cobra.Command {
	o := &controlOptions{MindieOptions: mindie}
	c := &cobra.Command{
		Use:   "retry NAME...",
		Short: "Run EdgeDeployment jobs again on their Failed and TimedOut nodes (spec.retryGeneration)",
		Long: `Retry EdgeDeployment jobs: raise spec.retryGeneration by one, which makes the
controller run the job again on its Failed and TimedOut nodes only, once the
current run has ended (and, for a stopped job, once it is continued).

The job's status is read first: a job without Failed or TimedOut nodes, or
with a retry the controller has not acted on yet, is refused unless --force.
The new value is written only if spec.retryGeneration still has the value
read, so two retries at the same time raise it once.`,
		Example:           `  kubectl mindie edge retry edge-infer && kubectl mindie edge status edge-infer -w`,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: edgeNames(mindie, true),
		RunE: func(c *cobra.Command, args []string) error {
			return o.each(c.Context(), args, o.retry)
		},
	}
	c.Flags().BoolVar(&o.force, "force", false, "Raise spec.retryGeneration even when no node failed or timed out, or a retry is pending.")
	return c
}

// retry is the patch that raises e's retryGeneration by one, guarded by a
// test of its current value.
func (o *controlOptions) retry(e *v1alpha1.EdgeDeployment) (patch, error) {
	failed := retryable(e)
	if !o.force {
		switch {
		case retryPending(e):
			return patch{}, fmt.Errorf("EdgeDeployment %q already has a retry pending: spec.retryGeneration is %d, the controller acted on %d; wait for it, or use --force to raise it again",
				e.Name, e.Spec.RetryGeneration, e.Status.ObservedRetryGeneration)
		case retryableCount(e) == 0:
			msg := fmt.Sprintf("EdgeDeployment %q has no Failed or TimedOut nodes to retry (%s: %s)", e.Name, phase(e), counts(e))
			if r := refusal(e); r != nil {
				msg += fmt.Sprintf(": the job was refused (%s: %s), and its targets cannot change: create another EdgeDeployment", r.reason, r.message)
			} else {
				msg += "; use --force to raise spec.retryGeneration anyway"
			}
			return patch{}, fmt.Errorf("%s", msg)
		}
	}
	// spec.retryGeneration is left out of the object while 0: a test of
	// null holds on a missing field.
	var old any
	if e.Spec.RetryGeneration != 0 {
		old = e.Spec.RetryGeneration
	}
	next := e.Spec.RetryGeneration + 1
	data, err := json.Marshal([]map[string]any{
		{"op": "test", "path": "/spec/retryGeneration", "value": old},
		{"op": "add", "path": "/spec/retryGeneration", "value": next},
	})
	if err != nil {
		return patch{}, fmt.Errorf("encode the retry patch of EdgeDeployment %q: %w", e.Name, err)
	}
	what := fmt.Sprintf("retried (retryGeneration %d)", next)
	if n := retryableCount(e); n > 0 {
		what += fmt.Sprintf(": %d %s to run again", n, plural(n == 1, "node", "nodes"))
		if len(failed) == n && n <= maxListed {
			what += " (" + nodeNames(failed) + ")"
		}
	}
	return patch{types.JSONPatchType, data, what}, nil
}

func nodeNames(nodes []v1alpha1.EdgeNodeStatus) string {
	names := make([]string, len(nodes))
	for i, n := range nodes {
		names[i] = n.Node
	}
	return strings.Join(names, ", ")
}

// each reads every named job, asks change for a patch and applies it. A
// retry whose test failed is reported as the retry someone else made.
func (o *controlOptions) each(ctx context.Context, names []string, change func(*v1alpha1.EdgeDeployment) (patch, error)) error {
	_, edeps, err := edgeDeployments(o.MindieOptions)
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		e, err := edeps.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p, err := change(e)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if p.data != nil {
			if _, err := edeps.Patch(ctx, name, p.kind, p.data, metav1.PatchOptions{FieldManager: options.FieldManager}); err != nil {
				if p.kind == types.JSONPatchType {
					err = o.retryConflict(ctx, edeps, e, err)
				}
				errs = append(errs, err)
				continue
			}
		}
		fmt.Fprintf(o.Out, "%s %s\n", resourceName(name), p.what)
	}
	return utilerrors.NewAggregate(errs)
}

// retryConflict explains a failed retry patch: when spec.retryGeneration
// moved since it was read, someone else retried the job meanwhile.
func (o *controlOptions) retryConflict(ctx context.Context, edeps inferv1alpha1.EdgeDeploymentInterface, read *v1alpha1.EdgeDeployment, err error) error {
	now, getErr := edeps.Get(ctx, read.Name, metav1.GetOptions{})
	if getErr != nil || now.UID != read.UID || now.Spec.RetryGeneration == read.Spec.RetryGeneration {
		return err
	}
	return fmt.Errorf("EdgeDeployment %q was retried by someone else meanwhile: spec.retryGeneration went from %d to %d; not raised again",
		read.Name, read.Spec.RetryGeneration, now.Spec.RetryGeneration)
}

package rollout

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/plugin/cmd/completion"
	"mindie.io/deployer/plugin/internal/printing"
	"mindie.io/deployer/plugin/options"
)

type rolloutPatchOptions struct {
	*options.MindieOptions
}

func newRolloutRestartCommand(mindie *options.MindieOptions) *cobra.Command {
	o := &rolloutPatchOptions{MindieOptions: mindie}
	return &cobra.Command{
		Use:   "restart NAME...",
		Short: "Restart every instance of an InferServer through a rollout",
		Long: `Restart the instances of an InferServer by a rollout within its strategy (what
the legacy deployer's update did): the pods get a new annotation ` + v1alpha1.AnnotationRestartedAt + `,
which makes a new revision.`,
		Example:           `  kubectl mindie rollout restart llama3 && kubectl mindie rollout status llama3`,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completion.InferServerNames(mindie, true),
		RunE: func(c *cobra.Command, args []string) error {
			return o.each(c.Context(), args, func(s *v1alpha1.InferServer) ([]byte, string, error) {
				if s.Spec.Paused {
					return nil, "", fmt.Errorf("can't restart paused InferServer %q (run 'kubectl mindie rollout resume %s' first)", s.Name, s.Name)
				}
				patch := map[string]any{"spec": map[string]any{"podMetadata": map[string]any{"annotations": map[string]string{
					v1alpha1.AnnotationRestartedAt: o.Now().Format(time.RFC3339),
				}}}}
				data, err := json.Marshal(patch)
				if err != nil {
					return nil, "", fmt.Errorf("encode the restart patch of InferServer %q: %w", s.Name, err)
				}
				return data, "restarted", nil
			})
		},
	}
}

func newRolloutPauseCommand(mindie *options.MindieOptions, pause bool) *cobra.Command {
	o := &rolloutPatchOptions{MindieOptions: mindie}
	c := &cobra.Command{
		Use:               "pause NAME...",
		Short:             "Pause the rollout of an InferServer where it stands (scaling still happens)",
		Example:           `  kubectl mindie rollout pause llama3`,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completion.InferServerNames(mindie, true),
	}
	if !pause {
		c.Use = "resume NAME..."
		c.Short = "Resume a paused rollout of an InferServer"
		c.Example = `  kubectl mindie rollout resume llama3`
	}
	c.RunE = func(c *cobra.Command, args []string) error {
		return o.each(c.Context(), args, func(s *v1alpha1.InferServer) ([]byte, string, error) {
			switch {
			case pause && s.Spec.Paused:
				return nil, "already paused", nil
			case !pause && !s.Spec.Paused:
				return nil, "is not paused", nil
			case pause:
				return []byte(`{"spec":{"paused":true}}`), "paused", nil
			}
			return []byte(`{"spec":{"paused":false}}`), "resumed", nil
		})
	}
	return c
}

// each reads every named InferServer, asks change for a merge patch (nil:
// nothing to do) and what to say, and applies the patch.
func (o *rolloutPatchOptions) each(ctx context.Context, names []string, change func(*v1alpha1.InferServer) ([]byte, string, error)) error {
	servers, err := o.InferServers()
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		s, err := servers.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		patch, what, err := change(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if patch != nil {
			if _, err := servers.Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: options.FieldManager}); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		fmt.Fprintf(o.Out, "%s %s\n", printing.ResourceName(name), what)
	}
	return utilerrors.NewAggregate(errs)
}

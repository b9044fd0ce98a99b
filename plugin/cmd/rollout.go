package cmd

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/yaml"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/revision"
)

// reasonProgressDeadlineExceeded on a False Progressing condition fails
// rollout status, as for Deployments.
const reasonProgressDeadlineExceeded = "ProgressDeadlineExceeded"

func newRolloutCommand(f Factory, streams genericiooptions.IOStreams) *cobra.Command {
	c := &cobra.Command{
		Use:   "rollout SUBCOMMAND",
		Short: "Manage the rollout of an InferServer: status, history, undo, restart, pause, resume",
		Long: `Manage the rollout of an InferServer's instances, as kubectl rollout does for
Deployments. Every change of the instance template (anything in spec but
replicas, strategy, paused, revisionHistoryLimit and service) is a revision,
stored as a ControllerRevision owned by the InferServer.`,
		Example: `  kubectl mindie rollout restart llama3
  kubectl mindie rollout status llama3
  kubectl mindie rollout history llama3
  kubectl mindie rollout undo llama3 --to-revision=2`,
		Run: func(c *cobra.Command, _ []string) { _ = c.Help() },
	}
	c.AddCommand(
		newRolloutStatusCommand(f, streams),
		newRolloutHistoryCommand(f, streams),
		newRolloutUndoCommand(f, streams),
		newRolloutRestartCommand(f, streams),
		newRolloutPauseCommand(f, streams, true),
		newRolloutPauseCommand(f, streams, false),
	)
	return c
}

// ---- status ----

type rolloutStatusOptions struct {
	f       Factory
	streams genericiooptions.IOStreams
	watch   bool
	timeout time.Duration
}

func newRolloutStatusCommand(f Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &rolloutStatusOptions{f: f, streams: streams}
	c := &cobra.Command{
		Use:   "status NAME",
		Short: "Wait until the rollout of an InferServer completes",
		Long: `Show the rollout of an InferServer and, by default, wait until it completes:
the controller has seen the current spec, every instance runs the new
revision and is available, and no old instance is left.`,
		Example: `  kubectl mindie rollout status llama3 --timeout=10m

  # One look, without waiting
  kubectl mindie rollout status llama3 --watch=false`,
		Args:              exactArgs(1, "NAME"),
		ValidArgsFunction: completeInferServers(f, false),
		RunE:              func(c *cobra.Command, args []string) error { return o.run(c.Context(), args[0]) },
	}
	c.Flags().BoolVarP(&o.watch, "watch", "w", true, "Watch the rollout until it completes.")
	c.Flags().DurationVar(&o.timeout, "timeout", 0, "How long to wait before giving up; 0 waits forever.")
	return c
}

// rolloutStatus says where the rollout of s stands, and whether it is complete.
func rolloutStatus(s *v1alpha1.InferServer) (string, bool, error) {
	want := replicas(s)
	st := s.Status
	if st.ObservedGeneration < s.Generation {
		return fmt.Sprintf("Waiting for InferServer %q spec update to be observed...", s.Name), false, nil
	}
	if c := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionProgressing); c != nil && c.Status == metav1.ConditionFalse && c.Reason == reasonProgressDeadlineExceeded {
		return "", false, fmt.Errorf("InferServer %q exceeded its progress deadline: %s", s.Name, c.Message)
	}
	paused := ""
	if s.Spec.Paused {
		paused = fmt.Sprintf(" (InferServer %q is paused: 'kubectl mindie rollout resume %s' continues it)", s.Name, s.Name)
	}
	switch {
	case st.UpdatedReplicas < want:
		return fmt.Sprintf("Waiting for rollout to finish: %d out of %d new instances have been updated...%s", st.UpdatedReplicas, want, paused), false, nil
	case st.Replicas > st.UpdatedReplicas:
		return fmt.Sprintf("Waiting for rollout to finish: %d old instances are pending termination...%s", st.Replicas-st.UpdatedReplicas, paused), false, nil
	case st.AvailableReplicas < want:
		return fmt.Sprintf("Waiting for rollout to finish: %d of %d updated instances are available...", st.AvailableReplicas, want), false, nil
	}
	return fmt.Sprintf("inferserver %q successfully rolled out", s.Name), true, nil
}

func (o *rolloutStatusOptions) run(ctx context.Context, name string) error {
	ns, client, err := namespacedClient(o.f)
	if err != nil {
		return err
	}
	s, err := client.InferV1alpha1().InferServers(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if !o.watch {
		msg, _, err := rolloutStatus(s)
		if err != nil {
			return err
		}
		fmt.Fprintln(o.streams.Out, msg)
		return nil
	}
	last := ""
	_, err = waitInferServer(ctx, client, ns, name, s, o.timeout, func(s *v1alpha1.InferServer) (bool, error) {
		msg, done, err := rolloutStatus(s)
		if err != nil {
			return false, err
		}
		if msg != last {
			fmt.Fprintln(o.streams.Out, msg)
			last = msg
		}
		return done, nil
	})
	if errors.Is(err, errWaitTimeout) {
		return fmt.Errorf("timed out after %v waiting for the rollout of InferServer %q to finish", o.timeout, name)
	}
	return err
}

// ---- history ----

// revisionsOf returns the revisions of the InferServer s, oldest first.
func revisionsOf(ctx context.Context, f Factory, s *v1alpha1.InferServer) ([]*appsv1.ControllerRevision, error) {
	kube, err := f.KubeClient()
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
	f        Factory
	streams  genericiooptions.IOStreams
	revision int64
	print    *genericclioptions.PrintFlags
}

func newRolloutHistoryCommand(f Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &rolloutHistoryOptions{f: f, streams: streams, print: newPrintFlags("")}
	c := &cobra.Command{
		Use:   "history NAME",
		Short: "List the revisions of an InferServer, or show one",
		Example: `  kubectl mindie rollout history llama3

  # The instance template of revision 3
  kubectl mindie rollout history llama3 --revision=3`,
		Args:              exactArgs(1, "NAME"),
		ValidArgsFunction: completeInferServers(f, false),
		RunE:              func(c *cobra.Command, args []string) error { return o.run(c.Context(), args[0]) },
	}
	c.Flags().Int64Var(&o.revision, "revision", 0, "Print the instance template of this revision.")
	o.print.AddFlags(c)
	c.Flags().Lookup("output").Usage = "Print the ControllerRevisions instead: json, yaml, name, jsonpath=..."
	return c
}

func (o *rolloutHistoryOptions) run(ctx context.Context, name string) error {
	if outputFormat(o.print) != "" {
		if _, err := o.print.ToPrinter(); err != nil {
			return err
		}
	}
	s, err := getServer(ctx, o.f, name)
	if err != nil {
		return err
	}
	revs, err := revisionsOf(ctx, o.f, s)
	if err != nil {
		return err
	}
	if o.revision > 0 {
		r := findRevision(revs, o.revision)
		if r == nil {
			return fmt.Errorf("unable to find the specified revision %d of InferServer %q", o.revision, name)
		}
		if outputFormat(o.print) != "" {
			return printObject(o.print, r, o.streams.Out)
		}
		tmpl, err := revision.Decode(r)
		if err != nil {
			return err
		}
		data, err := yaml.Marshal(map[string]any{"spec": tmpl})
		if err != nil {
			return err
		}
		fmt.Fprintf(o.streams.Out, "%s with revision #%d (%s)\n", resourceName(name), r.Revision, r.Name)
		if cause := r.Annotations[v1alpha1.AnnotationChangeCause]; cause != "" {
			fmt.Fprintf(o.streams.Out, "change-cause: %s\n", cause)
		}
		_, err = o.streams.Out.Write(data)
		return err
	}
	if outputFormat(o.print) != "" {
		objs := make([]runtime.Object, 0, len(revs))
		for _, r := range revs {
			objs = append(objs, r)
		}
		if outputFormat(o.print) == "name" {
			for _, obj := range objs {
				if err := printObject(o.print, obj, o.streams.Out); err != nil {
					return err
				}
			}
			return nil
		}
		list, err := listOf(objs)
		if err != nil {
			return err
		}
		return printObject(o.print, list, o.streams.Out)
	}
	if len(revs) == 0 {
		fmt.Fprintf(o.streams.Out, "No rollout history found for InferServer %q.\n", name)
		return nil
	}
	fmt.Fprintln(o.streams.Out, resourceName(name))
	w := tabWriter(o.streams.Out)
	w.row("REVISION", "CHANGE-CAUSE")
	for _, r := range revs {
		w.row(r.Revision, orNone(r.Annotations[v1alpha1.AnnotationChangeCause]))
	}
	w.flush()
	return nil
}

// ---- undo ----

type rolloutUndoOptions struct {
	f          Factory
	streams    genericiooptions.IOStreams
	toRevision int64
}

func newRolloutUndoCommand(f Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &rolloutUndoOptions{f: f, streams: streams}
	c := &cobra.Command{
		Use:   "undo NAME [--to-revision=N]",
		Short: "Roll an InferServer back to a previous revision",
		Long: `Set the instance template of an InferServer back to that of a revision (by
default the previous one) and let the controller roll it out. Replicas,
strategy and the service are kept. A paused InferServer is refused: resume it
first.`,
		Example: `  kubectl mindie rollout undo llama3
  kubectl mindie rollout undo llama3 --to-revision=2`,
		Args:              exactArgs(1, "NAME"),
		ValidArgsFunction: completeInferServers(f, false),
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
	servers, err := serversIn(o.f)
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
		revs, err := revisionsOf(ctx, o.f, s)
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
			result = fmt.Sprintf("%s skipped rollback (current template already matches revision %d)", resourceName(name), target.Revision)
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
		if _, err := servers.Update(ctx, s, metav1.UpdateOptions{FieldManager: fieldManager}); err != nil {
			return err
		}
		result = fmt.Sprintf("%s rolled back to revision %d", resourceName(name), target.Revision)
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(o.streams.Out, result)
	return nil
}

// ---- restart, pause, resume ----

type rolloutPatchOptions struct {
	f       Factory
	streams genericiooptions.IOStreams
	now     func() time.Time
}

func newRolloutRestartCommand(f Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &rolloutPatchOptions{f: f, streams: streams, now: time.Now}
	return &cobra.Command{
		Use:   "restart NAME...",
		Short: "Restart every instance of an InferServer through a rollout",
		Long: `Restart the instances of an InferServer by a rollout within its strategy (what
the legacy deployer's update did): the pods get a new annotation ` + v1alpha1.AnnotationRestartedAt + `,
which makes a new revision.`,
		Example:           `  kubectl mindie rollout restart llama3 && kubectl mindie rollout status llama3`,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completeInferServers(f, true),
		RunE: func(c *cobra.Command, args []string) error {
			return o.each(c.Context(), args, func(s *v1alpha1.InferServer) ([]byte, string, error) {
				if s.Spec.Paused {
					return nil, "", fmt.Errorf("can't restart paused InferServer %q (run 'kubectl mindie rollout resume %s' first)", s.Name, s.Name)
				}
				patch := map[string]any{"spec": map[string]any{"podMetadata": map[string]any{"annotations": map[string]string{
					v1alpha1.AnnotationRestartedAt: o.now().Format(time.RFC3339),
				}}}}
				return jsonMarshal(patch), "restarted", nil
			})
		},
	}
}

func newRolloutPauseCommand(f Factory, streams genericiooptions.IOStreams, pause bool) *cobra.Command {
	o := &rolloutPatchOptions{f: f, streams: streams, now: time.Now}
	c := &cobra.Command{
		Use:               "pause NAME...",
		Short:             "Pause the rollout of an InferServer where it stands (scaling still happens)",
		Example:           `  kubectl mindie rollout pause llama3`,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completeInferServers(f, true),
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
	servers, err := serversIn(o.f)
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
			if _, err := servers.Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: fieldManager}); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		fmt.Fprintf(o.streams.Out, "%s %s\n", resourceName(name), what)
	}
	return utilerrors.NewAggregate(errs)
}

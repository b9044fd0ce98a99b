package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/plugin/internal/printing"
	"mindie.io/deployer/plugin/internal/watch"
	"mindie.io/deployer/plugin/options"
)

// timeoutMargin is added to the job's own timeout when -w waits without
// --timeout: a run that has not ended by then has no controller acting on
// it.
const timeoutMargin = 2 * time.Minute

// nodeStates are the states of a node's task, in the order status counts
// them.
var nodeStates = []v1alpha1.EdgeNodeState{v1alpha1.EdgeNodeQueued, v1alpha1.EdgeNodeDeploying, v1alpha1.EdgeNodeSucceeded,
	v1alpha1.EdgeNodeFailed, v1alpha1.EdgeNodeTimedOut, v1alpha1.EdgeNodeStopped}

type statusOptions struct {
	*options.MindieOptions

	watch   bool
	timeout time.Duration
	states  []string
}

func newStatusCommand(mindie *options.MindieOptions) *cobra.Command {
	o := &statusOptions{MindieOptions: mindie}
	c := &cobra.Command{
		Use:   "status NAME",
		Short: "Show an EdgeDeployment job and the state of each of its nodes; -w follows it until it ends",
		Long: `Show an EdgeDeployment: a summary (phase, target nodes and their architecture,
nodes per state, start and completion of the current run, retries), its
conditions, and a table of its target nodes with the state of the job's task
on each (Queued, Deploying, Succeeded, Failed, TimedOut, Stopped), the reason,
the pods, since when and what happened.

With -w it prints the picture, then one line per change of the phase or of a
node, until the run ends (Succeeded, PartiallySucceeded, Failed or TimedOut)
or the job is stopped (then it says how to continue), and the picture again.
Only a status the controller wrote for the current spec counts: right after a
continue or a retry it waits for the controller to act on it.

The command exits non-zero, naming the phase and the nodes that failed or timed
out, when the run ended Failed, PartiallySucceeded or TimedOut; with -w also
when --timeout expires first.`,
		Example: `  # The job and its nodes
  kubectl mindie edge status edge-infer

  # Deploy and wait until every node is done; fails unless all succeeded
  kubectl mindie edge deploy -f edge.yaml && kubectl mindie edge status edge-infer -w

  # Only the nodes to look at
  kubectl mindie edge status edge-infer --state=Failed,TimedOut`,
		Args:              options.ExactArgs(1, "NAME"),
		ValidArgsFunction: edgeNames(mindie, false),
		RunE:              func(c *cobra.Command, args []string) error { return o.run(c.Context(), args[0]) },
	}
	c.Flags().BoolVarP(&o.watch, "watch", "w", false, "Follow the job until its run ends or it is stopped.")
	c.Flags().DurationVar(&o.timeout, "timeout", 0, "How long -w waits; 0 waits the job's spec.timeoutSeconds plus 2 minutes, by when a run has ended if the controller acts on it.")
	c.Flags().StringSliceVar(&o.states, "state", nil, "List only the nodes in these states (Queued, Deploying, Succeeded, Failed, TimedOut, Stopped); the summary still counts all.")
	_ = c.RegisterFlagCompletionFunc("state", func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
		var out []cobra.Completion
		for _, s := range nodeStates {
			out = append(out, string(s))
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	})
	return c
}

func (o *statusOptions) run(ctx context.Context, name string) error {
	filter, err := parseStates(o.states)
	if err != nil {
		return err
	}
	if o.timeout < 0 {
		return fmt.Errorf("invalid --timeout %v: must not be negative", o.timeout)
	}
	ns, client, err := o.NamespacedInferClient()
	if err != nil {
		return err
	}
	e, err := client.InferV1alpha1().EdgeDeployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	nsFlag := namespaceFlag(o.MindieOptions)
	describe(o.Out, e, filter, nsFlag, o.Now())
	if !o.watch || judge(e) != moving {
		return endError(e, nsFlag)
	}

	timeout := o.timeout
	if timeout == 0 {
		timeout = time.Duration(ptr.Deref(e.Spec.TimeoutSeconds, v1alpha1.DefaultEdgeTimeoutSeconds))*time.Second + timeoutMargin
	}
	fmt.Fprintln(o.Out)
	prev := e
	final, err := watch.UntilEdge(ctx, client, ns, name, e, timeout, func(cur *v1alpha1.EdgeDeployment) (bool, error) {
		for _, line := range changes(prev, cur) {
			fmt.Fprintf(o.Out, "%s %s\n", o.Now().Format("15:04:05"), line)
		}
		prev = cur
		return judge(cur) != moving, nil
	})
	if final != nil && final != e {
		fmt.Fprintln(o.Out)
		describe(o.Out, final, filter, nsFlag, o.Now())
	}
	switch {
	case errors.Is(err, watch.ErrTimeout):
		msg := fmt.Sprintf("timed out after %v waiting for EdgeDeployment %q to end (%s: %s)", timeout, name, phase(final), counts(final))
		if final.Status.ObservedGeneration < final.Generation {
			msg += fmt.Sprintf("; the controller has not acted on generation %d: is the EdgeDeployment controller running?", final.Generation)
		}
		return errors.New(msg)
	case err != nil:
		return err
	}
	return endError(final, nsFlag)
}

// parseStates checks --state and returns the states it keeps (nil: all).
func parseStates(values []string) (map[v1alpha1.EdgeNodeState]bool, error) {
	if len(values) == 0 {
		return nil, nil
	}
	keep := map[v1alpha1.EdgeNodeState]bool{}
	for _, v := range values {
		i := slices.IndexFunc(nodeStates, func(s v1alpha1.EdgeNodeState) bool { return strings.EqualFold(string(s), strings.TrimSpace(v)) })
		if i < 0 {
			names := make([]string, len(nodeStates))
			for j, s := range nodeStates {
				names[j] = string(s)
			}
			return nil, fmt.Errorf("invalid --state %q: must be one of %s", v, strings.Join(names, ", "))
		}
		keep[nodeStates[i]] = true
	}
	return keep, nil
}

// changes are the lines -w prints between two states of a job: the phase
// when it changed, each node whose state or reason changed, and the
// controller acting on a retry.
func changes(prev, cur *v1alpha1.EdgeDeployment) []string {
	var out []string
	if prev.Status.Phase != cur.Status.Phase {
		out = append(out, fmt.Sprintf("phase %s -> %s (%s)", phase(prev), phase(cur), counts(cur)))
	}
	if cur.Status.ObservedRetryGeneration > prev.Status.ObservedRetryGeneration {
		out = append(out, fmt.Sprintf("retry %d started", cur.Status.ObservedRetryGeneration))
	}
	before := map[string]v1alpha1.EdgeNodeStatus{}
	for _, n := range prev.Status.Nodes {
		before[n.Node] = n
	}
	for _, n := range cur.Status.Nodes {
		if b, ok := before[n.Node]; ok && b.State == n.State && b.Reason == n.Reason && b.Attempts == n.Attempts {
			continue
		}
		line := fmt.Sprintf("%s: %s", n.Node, n.State)
		if n.Reason != "" {
			line += " (" + n.Reason + ")"
		}
		if n.Message != "" && (n.State == v1alpha1.EdgeNodeFailed || n.State == v1alpha1.EdgeNodeTimedOut) {
			line += ": " + oneLine(n.Message)
		}
		out = append(out, line)
	}
	return out
}

// describe renders the whole picture of a job: the summary, its conditions,
// its nodes (those of filter, nil for all) and a last line of where it
// stands and what to do.
func describe(out io.Writer, e *v1alpha1.EdgeDeployment, filter map[v1alpha1.EdgeNodeState]bool, nsFlag string, now time.Time) {
	st, spec := e.Status, e.Spec
	w := printing.NewTabWriter(out)
	w.Row("Name:", e.Name)
	w.Row("Namespace:", e.Namespace)
	w.Row("Created:", timeAndAge(&e.CreationTimestamp, now))
	if e.DeletionTimestamp != nil {
		w.Row("Deleting:", fmt.Sprintf("since %s ago, finalizers %v", printing.MetaAge(*e.DeletionTimestamp, now), e.Finalizers))
	}
	if spec.Description != "" {
		w.Row("Description:", oneLine(spec.Description))
	}
	w.Row("Image:", spec.Container.Image)
	w.Row("Targets:", targetsSpec(spec.Targets))
	w.Row("Job:", fmt.Sprintf("%d %s per node, at most %d %s at a time, timeout %ds",
		ptr.Deref(spec.InstancesPerNode, 0), plural(ptr.Deref(spec.InstancesPerNode, 0) == 1, "instance", "instances"),
		ptr.Deref(spec.MaxConcurrentNodes, 0), plural(ptr.Deref(spec.MaxConcurrentNodes, 0) == 1, "node", "nodes"),
		ptr.Deref(spec.TimeoutSeconds, 0)))
	ph := phase(e)
	switch {
	case st.ObservedGeneration < e.Generation:
		ph += fmt.Sprintf(" (generation %d not yet observed by the controller, observed %d)", e.Generation, st.ObservedGeneration)
	case spec.Stopped && st.Phase != v1alpha1.EdgePhaseStopped && st.Phase != v1alpha1.EdgePhaseStopping:
		ph += " (spec.stopped is set)"
	}
	w.Row("Phase:", ph)
	nodes := "not resolved yet"
	if n := targetCount(e); n != "" {
		nodes = n + " " + plural(n == "1", "target", "targets")
		if st.Architecture != "" {
			nodes += " (" + st.Architecture + ")"
		}
		nodes += ": " + stateCounts(e)
	} else if p := st.Phase; p != "" && p != v1alpha1.EdgePhaseQueued {
		nodes = "none"
	}
	w.Row("Nodes:", nodes)
	w.Row("Started:", timeAndAge(st.StartTime, now))
	completed := "-"
	if st.CompletionTime != nil {
		completed = timeAndAge(st.CompletionTime, now)
		if st.StartTime != nil {
			completed += ", after " + st.CompletionTime.Sub(st.StartTime.Time).Round(time.Second).String()
		}
	}
	w.Row("Completed:", completed)
	retry := fmt.Sprintf("generation %d, observed %d", spec.RetryGeneration, st.ObservedRetryGeneration)
	if spec.RetryGeneration == 0 && st.ObservedRetryGeneration == 0 {
		retry = "none"
	}
	if retryPending(e) {
		retry += " (pending: it runs the failed and timed-out nodes again once the run has ended"
		if spec.Stopped {
			retry += " and the job is continued"
		}
		retry += ")"
	}
	w.Row("Retry:", retry)
	w.Flush()

	fmt.Fprintln(out)
	fmt.Fprintln(out, "Conditions:")
	if len(st.Conditions) == 0 {
		fmt.Fprintln(out, "  <none>")
	} else {
		w = printing.NewTabWriter(out)
		w.Row("  TYPE", "STATUS", "REASON", "AGE", "MESSAGE")
		for _, c := range st.Conditions {
			w.Row("  "+c.Type, c.Status, printing.OrNone(c.Reason), printing.MetaAge(c.LastTransitionTime, now), oneLine(c.Message))
		}
		w.Flush()
	}

	fmt.Fprintln(out)
	describeNodes(out, e, filter, now)

	fmt.Fprintln(out)
	fmt.Fprintln(out, summary(e, nsFlag))
}

// describeNodes renders the Nodes table: every target node (those of
// filter) with the state of the job's task on it.
func describeNodes(out io.Writer, e *v1alpha1.EdgeDeployment, filter map[v1alpha1.EdgeNodeState]bool, now time.Time) {
	rows := slices.Clone(e.Status.Nodes)
	// Targets without a task yet (a controller that lists them as it
	// starts them) are shown without state.
	for _, t := range e.Status.Targets {
		if !slices.ContainsFunc(rows, func(n v1alpha1.EdgeNodeStatus) bool { return n.Node == t }) {
			rows = append(rows, v1alpha1.EdgeNodeStatus{Node: t})
		}
	}
	if len(rows) == 0 {
		fmt.Fprintln(out, "Nodes: <none> (the targets are resolved when the job starts)")
		return
	}
	if filter != nil {
		rows = slices.DeleteFunc(rows, func(n v1alpha1.EdgeNodeStatus) bool { return !filter[n.State] })
		if len(rows) == 0 {
			fmt.Fprintln(out, "Nodes: <none> in the states asked for")
			return
		}
	}
	fmt.Fprintln(out, "Nodes:")
	w := printing.NewTabWriter(out)
	w.Row("  NODE", "STATE", "REASON", "PODS", "SINCE", "MESSAGE")
	for _, n := range rows {
		since := "-"
		if n.Since != nil {
			since = printing.MetaAge(*n.Since, now)
		}
		state := string(n.State)
		if state == "" {
			state = "-"
		}
		w.Row("  "+n.Node, state, dash(n.Reason), pods(n.Pods), since, oneLine(n.Message))
	}
	w.Flush()
}

// summary is the last line of the picture: where the job stands and, when
// it waits for someone, what to run.
func summary(e *v1alpha1.EdgeDeployment, nsFlag string) string {
	line := fmt.Sprintf("%s: %s.", phase(e), counts(e))
	switch judge(e) {
	case stopped:
		line = fmt.Sprintf("Stopped: %s. Continue the job with 'kubectl mindie edge continue %s%s'.", counts(e), e.Name, nsFlag)
	case ended:
		if r := refusal(e); r != nil {
			line += fmt.Sprintf(" The job was refused (%s): its targets cannot change; create another EdgeDeployment.", r.reason)
		} else if n := retryableCount(e); n > 0 {
			line += fmt.Sprintf(" Retry the %d %s that failed or timed out with 'kubectl mindie edge retry %s%s'.", n, plural(n == 1, "node", "nodes"), e.Name, nsFlag)
		}
	default:
		if e.Status.ObservedGeneration < e.Generation {
			line += " Waiting for the controller to act on the current spec."
		}
	}
	return line
}

// stateCounts is "1 Succeeded, 1 Deploying, 1 Failed": the counts of
// status, by state, those at zero left out.
func stateCounts(e *v1alpha1.EdgeDeployment) string {
	st := e.Status
	var parts []string
	for _, c := range []struct {
		n     int32
		state v1alpha1.EdgeNodeState
	}{
		{st.Succeeded, v1alpha1.EdgeNodeSucceeded}, {st.Running, v1alpha1.EdgeNodeDeploying}, {st.Queued, v1alpha1.EdgeNodeQueued},
		{st.Failed, v1alpha1.EdgeNodeFailed}, {st.TimedOut, v1alpha1.EdgeNodeTimedOut}, {st.Stopped, v1alpha1.EdgeNodeStopped},
	} {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c.n, c.state))
		}
	}
	if len(parts) == 0 {
		return "none counted yet"
	}
	return strings.Join(parts, ", ")
}

// targetsSpec renders spec.targets: the names and the selector.
func targetsSpec(t v1alpha1.EdgeTargets) string {
	var parts []string
	if len(t.Nodes) > 0 {
		names := t.Nodes
		if len(names) > maxListed {
			names = append(slices.Clone(names[:maxListed]), fmt.Sprintf("and %d more", len(t.Nodes)-maxListed))
		}
		parts = append(parts, "nodes "+strings.Join(names, ", "))
	}
	if t.Selector != nil {
		parts = append(parts, "selector "+metav1.FormatLabelSelector(t.Selector))
	}
	if len(parts) == 0 {
		return "<none>"
	}
	return strings.Join(parts, "; ")
}

// maxPods bounds the pods a row of the Nodes table names.
const maxPods = 3

func pods(names []string) string {
	switch {
	case len(names) == 0:
		return "-"
	case len(names) > maxPods:
		return fmt.Sprintf("%s +%d", strings.Join(names[:maxPods], ","), len(names)-maxPods)
	}
	return strings.Join(names, ",")
}

func timeAndAge(t *metav1.Time, now time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return fmt.Sprintf("%s (%s ago)", t.UTC().Format(time.RFC3339), printing.MetaAge(*t, now))
}

// oneLine keeps a message on its row.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

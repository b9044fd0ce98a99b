// Package status holds the status command: the whole state of an
// InferServer, and with -w until it is available.
package status

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/inferstatus"
	"mindie.io/deployer/plugin/cmd/completion"
	"mindie.io/deployer/plugin/internal/printing"
	"mindie.io/deployer/plugin/internal/watch"
	"mindie.io/deployer/plugin/options"
)

type statusOptions struct {
	*options.MindieOptions

	watch   bool
	timeout time.Duration
	print   *genericclioptions.PrintFlags
}

// NewCmdStatus returns the status command.
func NewCmdStatus(mindie *options.MindieOptions) *cobra.Command {
	o := &statusOptions{MindieOptions: mindie, print: printing.NewPrintFlags("")}
	c := &cobra.Command{
		Use:   "status NAME",
		Short: "Show the whole state of an InferServer: spec, conditions, instances, pods, router, model, rollout, events",
		Long: `Show an InferServer as the legacy "msctl get" did and more: a summary of its spec
(replicas, nodes per instance, NPUs, image, revision), its conditions, every
instance and its pods (node, pod IP, NPUs, phase, live, ready, restarts), its
router when spec.router is set (algorithm, authentication, replicas, endpoint,
node port, router pods; "kubectl mindie routes" shows how each routes), the
model the servers report, the rollout's progress and the recent events.

For a Prefill/Decode server (spec.roles) replicas count groups: a Roles
section gives each role's instances per group, nodes per instance, NPUs per
pod and how many of its members serve their role and are linked to their
peers, and the groups are listed with their members (role, MindIE instance
id, pod, role status, links ok out of peers, what they wait for).

With -w it follows the InferServer until the controller has observed its
current spec and reports it Available (enough instances serve; a rollout may
still be under way, see "kubectl mindie rollout status"), or until --timeout;
it exits non-zero when the timeout expires or the InferServer ends Degraded.`,
		Example: `  # The whole picture
  kubectl mindie status llama3

  # Wait until a new InferServer serves
  kubectl mindie create -f infer_server.json && kubectl mindie status llama3 -w --timeout=15m`,
		Args:              options.ExactArgs(1, "NAME"),
		ValidArgsFunction: completion.InferServerNames(mindie, false),
		RunE:              func(c *cobra.Command, args []string) error { return o.run(c.Context(), args[0]) },
	}
	c.Flags().BoolVarP(&o.watch, "watch", "w", false, "Follow the InferServer until it is available at its current generation (or --timeout).")
	c.Flags().DurationVar(&o.timeout, "timeout", 10*time.Minute, "How long -w waits.")
	o.print.AddFlags(c)
	c.Flags().Lookup("output").Usage = "Print the InferServer object instead: json, yaml, name, jsonpath=..."
	return c
}

func (o *statusOptions) run(ctx context.Context, name string) error {
	if printing.OutputFormat(o.print) != "" {
		if _, err := o.print.ToPrinter(); err != nil {
			return err
		}
	}
	ns, client, err := o.NamespacedInferClient()
	if err != nil {
		return err
	}
	s, err := client.InferV1alpha1().InferServers(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if !o.watch {
		return o.show(ctx, s)
	}
	if inferstatus.IsAvailable(s) {
		if err := o.show(ctx, s); err != nil {
			return err
		}
		return degradedError(s)
	}
	if printing.OutputFormat(o.print) == "" {
		if err := o.show(ctx, s); err != nil {
			return err
		}
		fmt.Fprintln(o.Out)
	}

	last := ""
	final, err := watch.Until(ctx, client, ns, name, s, o.timeout, func(s *v1alpha1.InferServer) (bool, error) {
		if line := progressLine(s); line != last {
			last = line
			if printing.OutputFormat(o.print) == "" {
				fmt.Fprintf(o.Out, "%s %s\n", o.Now().Format("15:04:05"), line)
			}
		}
		return inferstatus.IsAvailable(s), nil
	})
	if final != nil {
		if printing.OutputFormat(o.print) == "" {
			fmt.Fprintln(o.Out)
		}
		if err := o.show(ctx, final); err != nil {
			return err
		}
	}
	switch {
	case errors.Is(err, watch.ErrTimeout):
		return fmt.Errorf("timed out after %v waiting for InferServer %q to become available (%s)", o.timeout, name, last)
	case err != nil:
		return err
	}
	return degradedError(final)
}

// degradedError fails a watch that ends with the InferServer Degraded.
func degradedError(s *v1alpha1.InferServer) error {
	if c := inferstatus.Degraded(s); c != nil {
		return fmt.Errorf("InferServer %q is available but Degraded: %s: %s", s.Name, c.Reason, c.Message)
	}
	return nil
}

// progressLine is one line of what -w follows.
func progressLine(s *v1alpha1.InferServer) string {
	want := *s.Spec.Replicas
	line := fmt.Sprintf("updated %d/%d, ready %d/%d, available %d/%d", s.Status.UpdatedReplicas, want, s.Status.ReadyReplicas, want, s.Status.AvailableReplicas, want)
	if s.Status.ObservedGeneration < s.Generation {
		line += fmt.Sprintf(", generation %d not yet observed", s.Generation)
	}
	for _, t := range []string{v1alpha1.ConditionAvailable, v1alpha1.ConditionProgressing, v1alpha1.ConditionDegraded} {
		if c := meta.FindStatusCondition(s.Status.Conditions, t); c != nil {
			line += fmt.Sprintf(", %s=%s", t, c.Status)
			if c.Reason != "" {
				line += " (" + c.Reason + ")"
			}
		}
	}
	return line
}

// show prints s: its object with -o, otherwise the whole picture.
func (o *statusOptions) show(ctx context.Context, s *v1alpha1.InferServer) error {
	if printing.OutputFormat(o.print) != "" {
		return printing.PrintObject(o.print, s, o.Out)
	}
	info := statusInfo{server: s, revisions: map[string]int64{}}
	kube, err := o.KubeClient()
	if err != nil {
		return err
	}
	// The revisions and the events are read at the same time.
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, r := range slices.Compact([]string{s.Status.CurrentRevision, s.Status.UpdateRevision}) {
		if r == "" {
			continue
		}
		wg.Go(func() {
			if cr, err := kube.AppsV1().ControllerRevisions(s.Namespace).Get(ctx, r, metav1.GetOptions{}); err == nil {
				mu.Lock()
				info.revisions[r] = cr.Revision
				mu.Unlock()
			}
		})
	}
	wg.Go(func() { info.events, info.eventsErr = inferServerEvents(ctx, kube, s) })
	wg.Wait()
	describe(o.Out, info, o.Now())
	return nil
}

// inferServerEvents lists the events involving s, oldest first.
func inferServerEvents(ctx context.Context, kube kubernetes.Interface, s *v1alpha1.InferServer) ([]corev1.Event, error) {
	list, err := kube.CoreV1().Events(s.Namespace).List(ctx, metav1.ListOptions{FieldSelector: eventSelector(s)})
	if err != nil {
		return nil, err
	}
	var events []corev1.Event
	for _, e := range list.Items {
		ref := e.InvolvedObject
		if ref.Kind != "InferServer" || ref.Name != s.Name || (ref.UID != "" && s.UID != "" && ref.UID != s.UID) {
			continue
		}
		events = append(events, e)
	}
	sort.SliceStable(events, func(i, j int) bool { return eventTime(events[i]).Before(eventTime(events[j])) })
	return events, nil
}

// statusInfo is everything status prints.
type statusInfo struct {
	server *v1alpha1.InferServer
	// revisions maps revision names to their numbers, where known.
	revisions map[string]int64
	events    []corev1.Event
	eventsErr error
}

// describe renders the whole picture of an InferServer.
func describe(out io.Writer, info statusInfo, now time.Time) {
	s := info.server
	w := printing.NewTabWriter(out)
	nodes := *s.Spec.NodesPerInstance
	npus := *s.Spec.Resources.NPU.Count
	w.Row("Name:", s.Name)
	w.Row("Namespace:", s.Namespace)
	w.Row("Created:", fmt.Sprintf("%s (%s ago)", s.CreationTimestamp.UTC().Format(time.RFC3339), printing.MetaAge(s.CreationTimestamp, now)))
	if s.DeletionTimestamp != nil {
		w.Row("Deleting:", fmt.Sprintf("since %s ago, finalizers %v", printing.MetaAge(*s.DeletionTimestamp, now), s.Finalizers))
	}
	pd := len(s.Spec.Roles) > 0
	if pd {
		w.Row("Replicas:", fmt.Sprintf("%d %s desired, each with %s", *s.Spec.Replicas, plural(int(*s.Spec.Replicas), "group", "groups"), groupShape(s)))
		w.Row("NPUs:", groupNPUs(s)+" per group")
	} else {
		w.Row("Replicas:", fmt.Sprintf("%d desired, %d %s per instance", *s.Spec.Replicas, nodes, plural(int(nodes), "node", "nodes")))
		w.Row("NPUs:", fmt.Sprintf("%d x %s per pod, %d per instance", npus, s.Spec.Resources.NPU.Type, npus*nodes))
	}
	w.Row("Image:", printing.OrNone(s.Spec.Image))
	w.Row("Revision:", revisionSummary(info))
	if s.Spec.Paused {
		w.Row("Paused:", "true (a rollout stands still until 'kubectl mindie rollout resume "+s.Name+"')")
	}
	w.Row("Rollout:", rolloutSummary(s))
	w.Flush()

	if pd {
		fmt.Fprintln(out)
		describeRoles(out, s)
	}

	fmt.Fprintln(out)
	fmt.Fprintln(out, "Conditions:")
	if len(s.Status.Conditions) == 0 {
		fmt.Fprintln(out, "  <none> (the controller has not reported yet)")
	} else {
		w = printing.NewTabWriter(out)
		w.Row("  TYPE", "STATUS", "REASON", "AGE", "MESSAGE")
		for _, c := range sortedConditions(s.Status.Conditions) {
			w.Row("  "+c.Type, c.Status, printing.OrNone(c.Reason), printing.MetaAge(c.LastTransitionTime, now), c.Message)
		}
		w.Flush()
	}

	fmt.Fprintln(out)
	instanceColumn := "  INSTANCE"
	if pd {
		fmt.Fprintln(out, "Groups:")
		instanceColumn = "  GROUP"
	} else {
		fmt.Fprintln(out, "Instances:")
	}
	if len(s.Status.Instances) == 0 {
		fmt.Fprintln(out, "  <none>")
	} else {
		if pd {
			describeGroups(out, info)
		} else {
			w = printing.NewTabWriter(out)
			w.Row("  INSTANCE", "READY", "REVISION", "MASTER", "RANKTABLE")
			for _, in := range s.Status.Instances {
				w.Row("  "+in.Name, in.Ready, revisionName(info, in.Revision), printing.OrNone(in.Master), dash(in.Ranktable))
			}
			w.Flush()
		}
		fmt.Fprintln(out)
		fmt.Fprintln(out, "Pods:")
		w = printing.NewTabWriter(out)
		w.Row(instanceColumn, "POD", "NODE", "POD IP", "NPUS", "PHASE", "LIVE", "READY", "RESTARTS", "MESSAGE")
		for _, in := range s.Status.Instances {
			if len(in.Pods) == 0 {
				w.Row("  "+in.Name, "<none>", "", "", "", "", "", "", "", "")
			}
			for _, p := range in.Pods {
				w.Row("  "+in.Name, p.Name, dash(p.Node), dash(p.PodIP), dash(strings.Join(p.NPUs, ",")), dash(string(p.Phase)), p.Live, p.Ready, p.Restarts, p.Message)
			}
		}
		w.Flush()
	}

	if s.Spec.Router != nil {
		fmt.Fprintln(out)
		describeRouter(out, s)
	}

	fmt.Fprintln(out)
	describeFaults(out, s, now)

	fmt.Fprintln(out)
	fmt.Fprintln(out, "Model:")
	if m := s.Status.Model; m == nil {
		fmt.Fprintln(out, "  <none> (no instance has reported yet)")
	} else {
		w = printing.NewTabWriter(out)
		w.Row("  Server version:", printing.OrNone(m.Version))
		read := "instance " + printing.OrNone(m.Instance)
		if m.LastUpdateTime != nil {
			read += fmt.Sprintf(", %s ago (%s)", printing.MetaAge(*m.LastUpdateTime, now), m.LastUpdateTime.UTC().Format(time.RFC3339))
		}
		w.Row("  Read from:", read)
		w.Row("  Limits:", fmt.Sprintf("max input length %d, max batch total tokens %d, max concurrent requests %d", m.MaxInputLength, m.MaxBatchTotalTokens, m.MaxConcurrentRequests))
		w.Flush()
		w = printing.NewTabWriter(out)
		w.Row("  MODEL", "DTYPE", "MAX TOKENS", "DEVICE", "PIPELINE")
		for _, e := range m.Models {
			w.Row("  "+e.ID, dash(e.DType), e.MaxTotalTokens, dash(e.DeviceType), dash(e.PipelineTag))
		}
		w.Flush()
	}

	fmt.Fprintln(out)
	switch {
	case info.eventsErr != nil && apierrors.IsForbidden(info.eventsErr):
		fmt.Fprintf(out, "Events: not shown: you may not list events in namespace %s\n", s.Namespace)
	case info.eventsErr != nil:
		fmt.Fprintf(out, "Events: not shown: %v\n", info.eventsErr)
	case len(info.events) == 0:
		fmt.Fprintln(out, "Events: <none>")
	default:
		fmt.Fprintln(out, "Events:")
		w = printing.NewTabWriter(out)
		w.Row("  TYPE", "REASON", "AGE", "FROM", "MESSAGE")
		for _, e := range info.events {
			w.Row("  "+e.Type, e.Reason, eventAge(e, now), eventSource(e), strings.TrimSpace(e.Message))
		}
		w.Flush()
	}
}

// describeRouter renders the Router section: spec.router and what
// status.router reports of the router pods.
func describeRouter(out io.Writer, s *v1alpha1.InferServer) {
	r, st := s.Spec.Router, s.Status.Router
	fmt.Fprintln(out, "Router:")
	w := printing.NewTabWriter(out)
	algorithm := string(r.Algorithm)
	if st != nil && st.Algorithm != "" && st.Algorithm != r.Algorithm {
		algorithm += fmt.Sprintf(" (the routers run %s)", st.Algorithm)
	}
	w.Row("  Algorithm:", printing.OrNone(algorithm))
	w.Row("  Authentication:", printing.OrNone(string(r.Authentication)))
	want := int32Value(r.Replicas)
	if st == nil {
		w.Row("  Replicas:", fmt.Sprintf("%d desired", want))
	} else {
		line := fmt.Sprintf("%d/%d ready, %d/%d updated", st.ReadyReplicas, want, st.UpdatedReplicas, want)
		if st.Replicas != want {
			line += fmt.Sprintf(", %d %s exist", st.Replicas, plural(int(st.Replicas), "pod", "pods"))
		}
		w.Row("  Replicas:", line)
	}
	w.Row("  Thresholds:", fmt.Sprintf("free slots %d%%, free KV blocks %d%%", int32Value(r.SlotsThresholdPercent), int32Value(r.BlocksThresholdPercent)))
	w.Row("  Limits:", fmt.Sprintf("%d in flight (%d per instance), %d retries, first token %ds, request %ds",
		int32Value(r.MaxInflight), int32Value(r.MaxInflightPerInstance), int32Value(r.MaxRetries),
		int32Value(r.FirstTokenTimeoutSeconds), int32Value(r.RequestTimeoutSeconds)))
	if st == nil {
		w.Flush()
		fmt.Fprintln(out, "  <none> (the controller has not reported the router yet)")
		return
	}
	w.Row("  Endpoint:", printing.OrNone(st.Endpoint))
	nodePort := "<none>"
	if st.NodePort != 0 {
		nodePort = fmt.Sprint(st.NodePort)
	}
	w.Row("  Node port:", nodePort)
	if len(st.Pods) == 0 {
		w.Row("  Pods:", "<none>")
		w.Flush()
		return
	}
	w.Flush()
	w = printing.NewTabWriter(out)
	w.Row("  POD", "NODE", "POD IP", "READY")
	for _, p := range st.Pods {
		w.Row("  "+p.Name, dash(p.Node), dash(p.PodIP), p.Ready)
	}
	w.Flush()
}

// int32Value is *p, or 0 for nil.
func int32Value(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// revisionName is a revision's name with its number, when known.
func revisionName(info statusInfo, name string) string {
	if name == "" {
		return "<none>"
	}
	if n, ok := info.revisions[name]; ok {
		return fmt.Sprintf("%s (#%d)", name, n)
	}
	return name
}

func revisionSummary(info statusInfo) string {
	st := info.server.Status
	switch {
	case st.UpdateRevision == "" && st.CurrentRevision == "":
		return "<none>"
	case st.UpdateRevision == st.CurrentRevision || st.CurrentRevision == "":
		return revisionName(info, st.UpdateRevision)
	case st.UpdateRevision == "":
		return revisionName(info, st.CurrentRevision)
	}
	return fmt.Sprintf("%s, rolling out from %s", revisionName(info, st.UpdateRevision), revisionName(info, st.CurrentRevision))
}

func rolloutSummary(s *v1alpha1.InferServer) string {
	want := *s.Spec.Replicas
	st := s.Status
	line := fmt.Sprintf("%d/%d updated, %d/%d ready, %d/%d available", st.UpdatedReplicas, want, st.ReadyReplicas, want, st.AvailableReplicas, want)
	if st.Replicas != want {
		unit := "instances"
		if len(s.Spec.Roles) > 0 {
			unit = plural(int(st.Replicas), "group", "groups")
		}
		line += fmt.Sprintf(", %d %s exist", st.Replicas, unit)
	}
	if st.ObservedGeneration < s.Generation {
		line += fmt.Sprintf("; generation %d not yet observed (observed %d)", s.Generation, st.ObservedGeneration)
	} else if inferstatus.IsComplete(s) {
		line += "; complete"
	}
	return line
}

// sortedConditions puts Available, Progressing and Degraded first.
func sortedConditions(cs []metav1.Condition) []metav1.Condition {
	order := map[string]int{v1alpha1.ConditionAvailable: 0, v1alpha1.ConditionProgressing: 1, v1alpha1.ConditionDegraded: 2}
	out := append([]metav1.Condition(nil), cs...)
	sort.SliceStable(out, func(i, j int) bool {
		oi, ok := order[out[i].Type]
		if !ok {
			oi = 3
		}
		oj, ok := order[out[j].Type]
		if !ok {
			oj = 3
		}
		return oi < oj
	})
	return out
}

// eventTime is when an event last happened.
func eventTime(e corev1.Event) time.Time {
	switch {
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return e.Series.LastObservedTime.Time
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.FirstTimestamp.IsZero():
		return e.FirstTimestamp.Time
	}
	return e.CreationTimestamp.Time
}

// eventAge renders as kubectl describe does: "3m", or "10s (x5 over 3m)".
func eventAge(e corev1.Event, now time.Time) string {
	last := printing.Age(eventTime(e), now)
	count := e.Count
	if e.Series != nil {
		count = e.Series.Count
	}
	first := e.FirstTimestamp.Time
	if first.IsZero() {
		first = e.EventTime.Time
	}
	if count > 1 && !first.IsZero() {
		return fmt.Sprintf("%s (x%d over %s)", last, count, printing.Age(first, now))
	}
	return last
}

func eventSource(e corev1.Event) string {
	switch {
	case e.ReportingController != "":
		return e.ReportingController
	case e.Source.Component != "":
		return e.Source.Component
	}
	return "-"
}

// eventSelector selects the events of an InferServer.
func eventSelector(s *v1alpha1.InferServer) string {
	return fields.AndSelectors(
		fields.OneTermEqualSelector("involvedObject.kind", "InferServer"),
		fields.OneTermEqualSelector("involvedObject.name", s.Name),
		fields.OneTermEqualSelector("involvedObject.namespace", s.Namespace),
	).String()
}

// describeFaults renders the server's fault history, newest first: what
// happened to which pod, what the controller did, and when the instance
// served again.
func describeFaults(out io.Writer, s *v1alpha1.InferServer, now time.Time) {
	fmt.Fprintf(out, "Faults (policy %s, node lost after %ds, grace-over-time %ds):\n",
		s.Spec.FaultRescheduling, ptr.Deref(s.Spec.NodeLostSeconds, 0), ptr.Deref(s.Spec.FaultGraceOverTimeSeconds, 0))
	if len(s.Status.Faults) == 0 {
		fmt.Fprintln(out, "  <none>")
		return
	}
	w := printing.NewTabWriter(out)
	w.Row("  AGE", "KIND", "INSTANCE", "POD", "NODE", "CHIP", "LEVEL", "ACTION", "RECOVERED", "MESSAGE")
	for i := len(s.Status.Faults) - 1; i >= 0; i-- {
		f := s.Status.Faults[i]
		recovered := "no"
		if f.RecoveredTime != nil {
			recovered = "after " + f.RecoveredTime.Sub(f.Time.Time).Round(time.Second).String()
		}
		w.Row("  "+printing.MetaAge(f.Time, now), f.Kind, dash(f.Instance), dash(f.Pod), dash(f.Node), dash(f.Chip), dash(f.Level), dash(string(f.Action)), recovered, f.Message)
	}
	w.Flush()
}

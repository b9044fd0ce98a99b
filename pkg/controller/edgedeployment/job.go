package edgedeployment

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/podstatus"
)

// crashLoopRestarts is how many restarts make a crash-looping app a
// failed node.
const crashLoopRestarts = 3

// podsMissingGrace is how long after a node's pods were made the
// controller waits for its cache to show them before it takes them for
// gone.
const podsMissingGrace = 10 * time.Second

// terminal says whether a node's task is over for this run.
// maxParallelCreates bounds the pod creations of one sync under way at
// once.
const maxParallelCreates = 32

func terminal(s v1alpha1.EdgeNodeState) bool {
	return s == v1alpha1.EdgeNodeSucceeded || s == v1alpha1.EdgeNodeFailed || s == v1alpha1.EdgeNodeTimedOut
}

// run moves the job on: resolves its targets, re-runs what a retry asks
// for, judges the nodes being deployed, times the run out, dispatches
// queued nodes, and sets the phase.
func (c *Controller) run(ctx context.Context, e *v1alpha1.EdgeDeployment) (time.Duration, error) {
	now := c.now()
	st := &e.Status
	if len(st.Targets) == 0 {
		if refused := c.resolve(e, now); refused {
			return 0, nil
		}
	}
	if len(st.Nodes) == 0 {
		// Refused before: nothing to run.
		return 0, nil
	}
	pods, err := c.jobPods(e)
	if err != nil {
		return 0, err
	}
	byNode := map[string][]*corev1.Pod{}
	for _, p := range pods {
		byNode[p.Labels[LabelNode]] = append(byNode[p.Labels[LabelNode]], p)
	}
	// A retry is acted on once the current run has ended.
	ended := st.CompletionTime != nil
	if e.Spec.RetryGeneration > st.ObservedRetryGeneration && ended {
		if err := c.retry(ctx, e, byNode, now); err != nil {
			return 0, err
		}
	}
	if !e.Spec.Stopped && (st.Phase == v1alpha1.EdgePhaseStopped || st.Phase == v1alpha1.EdgePhaseStopping) {
		// Continued: a new run, with a fresh timeout.
		st.StartTime = ptr.To(metav1.NewTime(now))
	}
	for i := range st.Nodes {
		n := &st.Nodes[i]
		if n.State == v1alpha1.EdgeNodeDeploying {
			c.judge(e, n, byNode[n.Node], now)
		}
	}
	deadline := st.StartTime.Add(time.Duration(*e.Spec.TimeoutSeconds) * time.Second)
	running := st.Phase != v1alpha1.EdgePhaseStopped && st.Phase != v1alpha1.EdgePhaseStopping
	timedOut := false
	if running && !e.Spec.Stopped && !now.Before(deadline) {
		for i := range st.Nodes {
			n := &st.Nodes[i]
			if !terminal(n.State) {
				timedOut = true
				n.State, n.Reason, n.Since = v1alpha1.EdgeNodeTimedOut, "TimedOut",
					ptr.To(metav1.NewTime(now))
				n.Message = fmt.Sprintf("the run passed its timeout of %ds before the node was done", *e.Spec.TimeoutSeconds)
			}
		}
	}
	if e.Spec.Stopped {
		for i := range st.Nodes {
			if n := &st.Nodes[i]; n.State == v1alpha1.EdgeNodeQueued {
				n.State, n.Reason, n.Message, n.Since = v1alpha1.EdgeNodeStopped, "JobStopped", "the job was stopped before the node was started", ptr.To(metav1.NewTime(now))
			}
		}
	} else {
		for i := range st.Nodes {
			if n := &st.Nodes[i]; n.State == v1alpha1.EdgeNodeStopped {
				n.State, n.Reason, n.Message, n.Since = v1alpha1.EdgeNodeQueued, "", "", ptr.To(metav1.NewTime(now))
			}
		}
		if err := c.dispatch(ctx, e, byNode, now); err != nil {
			return 0, err
		}
	}
	c.setPhase(e, timedOut, now)
	if st.Phase == v1alpha1.EdgePhaseRunning || st.Phase == v1alpha1.EdgePhaseQueued {
		return deadline.Sub(now) + time.Second, nil
	}
	return 0, nil
}

// resolve records the job's target nodes, or refuses the job (true).
func (c *Controller) resolve(e *v1alpha1.EdgeDeployment, now time.Time) bool {
	st := &e.Status
	want := map[string]*corev1.Node{}
	missing := []string{}
	for _, name := range e.Spec.Targets.Nodes {
		n, err := c.nodes.Get(name)
		if err != nil {
			missing = append(missing, name)
			continue
		}
		want[name] = n
	}
	if sel := e.Spec.Targets.Selector; sel != nil {
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err == nil {
			nodes, _ := c.nodes.List(s)
			for _, n := range nodes {
				want[n.Name] = n
			}
		}
	}
	refuse := func(reason, msg string) bool {
		st.Phase = v1alpha1.EdgePhaseFailed
		st.CompletionTime = ptr.To(metav1.NewTime(now))
		setCondition(e, v1alpha1.EdgeConditionFailed, true, reason, msg, now)
		return true
	}
	if len(missing) > 0 {
		return refuse(v1alpha1.EdgeReasonNoTargets, fmt.Sprintf("spec.targets.nodes: no node %s in the cluster", strings.Join(missing, ", ")))
	}
	if len(want) == 0 {
		return refuse(v1alpha1.EdgeReasonNoTargets, "spec.targets resolve to no node")
	}
	if len(want) > v1alpha1.MaxEdgeTargets {
		return refuse(v1alpha1.EdgeReasonTooManyTargets, fmt.Sprintf("spec.targets resolve to %d nodes, more than %d: split the job", len(want), v1alpha1.MaxEdgeTargets))
	}
	byArch := map[string][]string{}
	for _, name := range sortedKeys(want) {
		arch := want[name].Labels[corev1.LabelArchStable]
		if arch == "" {
			arch = "unknown"
		}
		byArch[arch] = append(byArch[arch], name)
	}
	if len(byArch) > 1 {
		var parts []string
		for _, a := range sortedKeys(byArch) {
			parts = append(parts, fmt.Sprintf("%s: %s", a, strings.Join(byArch[a], ", ")))
		}
		return refuse(v1alpha1.EdgeReasonMixedArchitectures, "the target nodes do not share one kubernetes.io/arch ("+strings.Join(parts, "; ")+"): one job deploys one image, built for one architecture")
	}
	st.Targets = sortedKeys(want)
	for a := range byArch {
		st.Architecture = a
	}
	if st.StartTime == nil {
		st.StartTime = ptr.To(e.CreationTimestamp)
		if st.StartTime.IsZero() {
			st.StartTime = ptr.To(metav1.NewTime(now))
		}
	}
	for _, name := range st.Targets {
		st.Nodes = append(st.Nodes, v1alpha1.EdgeNodeStatus{Node: name, State: v1alpha1.EdgeNodeQueued, Since: ptr.To(metav1.NewTime(now))})
	}
	return false
}

func summarize(names []string) string {
	if len(names) <= 10 {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:10], ", ") + fmt.Sprintf(" and %d more", len(names)-10)
}

// retry queues the failed and timed-out nodes again, their pods deleted,
// and starts a new run with a fresh timeout.
func (c *Controller) retry(ctx context.Context, e *v1alpha1.EdgeDeployment, byNode map[string][]*corev1.Pod, now time.Time) error {
	st := &e.Status
	var again []string
	for i := range st.Nodes {
		n := &st.Nodes[i]
		if n.State != v1alpha1.EdgeNodeFailed && n.State != v1alpha1.EdgeNodeTimedOut {
			continue
		}
		// Its pods go; dispatch waits for them before making new ones.
		for _, p := range byNode[n.Node] {
			if err := c.deletePod(ctx, p); err != nil {
				return err
			}
		}
		n.State, n.Reason, n.Message, n.Pods, n.Since = v1alpha1.EdgeNodeQueued, "", "", nil, ptr.To(metav1.NewTime(now))
		n.RetryGeneration = e.Spec.RetryGeneration
		again = append(again, n.Node)
	}
	st.ObservedRetryGeneration = e.Spec.RetryGeneration
	if len(again) == 0 {
		return nil
	}
	st.StartTime = ptr.To(metav1.NewTime(now))
	st.CompletionTime = nil
	st.Phase = v1alpha1.EdgePhaseRunning
	st.Conditions = nil
	return nil
}

// dispatch starts queued nodes while fewer than maxConcurrentNodes are
// being deployed.
func (c *Controller) dispatch(ctx context.Context, e *v1alpha1.EdgeDeployment, byNode map[string][]*corev1.Pod, now time.Time) error {
	st := &e.Status
	deploying := 0
	for _, n := range st.Nodes {
		if n.State == v1alpha1.EdgeNodeDeploying {
			deploying++
		}
	}
	// The nodes that start now, and the pods they still need.
	type start struct {
		node    *v1alpha1.EdgeNodeStatus
		pods    []string
		missing []*corev1.Pod
	}
	var starts []start
	for i := range st.Nodes {
		n := &st.Nodes[i]
		if deploying+len(starts) >= int(*e.Spec.MaxConcurrentNodes) {
			break
		}
		if n.State != v1alpha1.EdgeNodeQueued {
			continue
		}
		// Pods of this run already there were made by a sync whose status
		// write failed: they are the node's. Pods of an earlier run (a
		// retry's, being deleted) must go first.
		current := map[string]bool{}
		stale := false
		for _, p := range byNode[n.Node] {
			if p.DeletionTimestamp == nil && retryGenerationOf(p) == e.Spec.RetryGeneration {
				current[p.Name] = true
			} else {
				stale = true
			}
		}
		if stale {
			continue
		}
		s := start{node: n}
		for i := 0; i < int(*e.Spec.InstancesPerNode); i++ {
			p := Pod(e, n.Node, i)
			s.pods = append(s.pods, p.Name)
			if !current[p.Name] {
				s.missing = append(s.missing, p)
			}
		}
		starts = append(starts, s)
	}
	// Created at once (the client's rate limit paces them), not one
	// round trip after another: a wave of maxConcurrentNodes nodes starts
	// in about the time of one create.
	failed := make([]error, len(starts))
	var mu sync.Mutex // failed: a node's pods fail apart
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxParallelCreates)
	for i, s := range starts {
		for _, p := range s.missing {
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				if _, err := c.kube.CoreV1().Pods(e.Namespace).Create(ctx, p, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
					c.recorder.Eventf(e, corev1.EventTypeWarning, ReasonFailedCreate, "Creating pod %s on node %s: %v", p.Name, s.node.Node, err)
					mu.Lock()
					failed[i] = errors.Join(failed[i], fmt.Errorf("create pod %s: %w", p.Name, err))
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	for i, s := range starts {
		if failed[i] != nil {
			continue
		}
		n := s.node
		n.Pods = s.pods
		n.State, n.Reason, n.Message, n.Since = v1alpha1.EdgeNodeDeploying, "", "", ptr.To(metav1.NewTime(now))
		n.Attempts++
	}
	return errors.Join(failed...)
}

// judge decides a deploying node's task from its pods and its node.
func (c *Controller) judge(e *v1alpha1.EdgeDeployment, n *v1alpha1.EdgeNodeStatus, pods []*corev1.Pod, now time.Time) {
	fail := func(reason, msg string) {
		n.State, n.Reason, n.Message, n.Since = v1alpha1.EdgeNodeFailed, reason, msg, ptr.To(metav1.NewTime(now))
	}
	if node, err := c.nodes.Get(n.Node); err != nil {
		fail("NodeNotFound", "the node is gone from the cluster")
		return
	} else if !nodeReady(node) {
		fail("NodeNotReady", "the node is not ready (offline or unreachable)")
		return
	}
	sort.Slice(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
	if len(pods) < int(*e.Spec.InstancesPerNode) {
		if n.Since != nil && now.Sub(n.Since.Time) < podsMissingGrace {
			// Just made: the cache may not show them yet.
			return
		}
		// A pod went (deleted by hand, evicted): deploy the node again.
		n.State, n.Reason, n.Message, n.Since = v1alpha1.EdgeNodeQueued, "PodsMissing",
			fmt.Sprintf("%d of %d pods left: deploying the node again", len(pods), *e.Spec.InstancesPerNode), ptr.To(metav1.NewTime(now))
		return
	}
	n.Pods = nil
	ready := 0
	for _, p := range pods {
		n.Pods = append(n.Pods, p.Name)
		if reason, msg, failed := podFailure(e, p); failed {
			fail(reason, fmt.Sprintf("pod %s: %s", p.Name, msg))
			return
		}
		if p.Status.Phase == corev1.PodRunning && podstatus.Serving(p) {
			ready++
		}
	}
	if len(pods) == int(*e.Spec.InstancesPerNode) && ready == len(pods) {
		n.State, n.Reason, n.Message, n.Since = v1alpha1.EdgeNodeSucceeded, "", "", ptr.To(metav1.NewTime(now))
	}
}

// podFailure says why a pod cannot run, if it cannot.
func podFailure(e *v1alpha1.EdgeDeployment, p *corev1.Pod) (string, string, bool) {
	if p.Status.Phase == corev1.PodFailed || (p.Status.Phase == corev1.PodSucceeded && e.Spec.RestartPolicy != corev1.RestartPolicyAlways) {
		msg := fmt.Sprintf("ended %s under restartPolicy %s", p.Status.Phase, e.Spec.RestartPolicy)
		if cs := podstatus.Container(p, containerName); cs != nil && cs.State.Terminated != nil {
			msg += fmt.Sprintf(", exit code %d (%s)", cs.State.Terminated.ExitCode, cs.State.Terminated.Reason)
		}
		if p.Status.Phase == corev1.PodSucceeded {
			return "Completed", msg + ": an application expected to keep running", true
		}
		return "Exited", msg, true
	}
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodScheduled && cond.Status == corev1.ConditionFalse && cond.Reason == corev1.PodReasonUnschedulable {
			return "Unschedulable", cond.Message, true
		}
	}
	if cs := podstatus.Container(p, containerName); cs != nil && cs.State.Waiting != nil {
		switch w := cs.State.Waiting; w.Reason {
		case "ErrImagePull", "ImagePullBackOff", "InvalidImageName":
			return "ImagePullFailed", w.Reason + ": " + w.Message, true
		case "CrashLoopBackOff":
			// One crash is not a failure: the restart policy is there
			// for it. An app that keeps crashing is.
			if cs.RestartCount >= crashLoopRestarts {
				return "CrashLoopBackOff", fmt.Sprintf("restarted %d times: %s", cs.RestartCount, w.Message), true
			}
		case "CreateContainerConfigError", "CreateContainerError":
			return w.Reason, w.Message, true
		}
	}
	return "", "", false
}

// setPhase sets the job's phase, conditions and completion time from its
// nodes.
func (c *Controller) setPhase(e *v1alpha1.EdgeDeployment, timedOut bool, now time.Time) {
	st := &e.Status
	var deploying, queued, succeeded, failed, timedOutNodes int
	for _, n := range st.Nodes {
		switch n.State {
		case v1alpha1.EdgeNodeDeploying:
			deploying++
		case v1alpha1.EdgeNodeQueued, v1alpha1.EdgeNodeStopped:
			queued++
		case v1alpha1.EdgeNodeSucceeded:
			succeeded++
		case v1alpha1.EdgeNodeFailed:
			failed++
		case v1alpha1.EdgeNodeTimedOut:
			timedOutNodes++
		}
	}
	if deploying+queued > 0 {
		switch {
		case e.Spec.Stopped && deploying > 0:
			st.Phase = v1alpha1.EdgePhaseStopping
		case e.Spec.Stopped:
			st.Phase = v1alpha1.EdgePhaseStopped
		default:
			st.Phase = v1alpha1.EdgePhaseRunning
		}
		st.CompletionTime = nil
		return
	}
	wasDone := st.CompletionTime != nil
	switch {
	case timedOut || (timedOutNodes > 0 && st.Phase == v1alpha1.EdgePhaseTimedOut):
		st.Phase = v1alpha1.EdgePhaseTimedOut
	case failed+timedOutNodes == 0:
		st.Phase = v1alpha1.EdgePhaseSucceeded
	case succeeded > 0:
		st.Phase = v1alpha1.EdgePhasePartiallySucceeded
	default:
		st.Phase = v1alpha1.EdgePhaseFailed
	}
	if !wasDone {
		st.CompletionTime = ptr.To(metav1.NewTime(now))
	}
	msg := fmt.Sprintf("%d of %d nodes succeeded, %d failed, %d timed out", succeeded, len(st.Nodes), failed, timedOutNodes)
	if st.Phase == v1alpha1.EdgePhaseSucceeded {
		setCondition(e, v1alpha1.EdgeConditionComplete, true, string(st.Phase), msg, now)
		setCondition(e, v1alpha1.EdgeConditionFailed, false, string(st.Phase), msg, now)
		return
	}
	setCondition(e, v1alpha1.EdgeConditionComplete, false, string(st.Phase), msg, now)
	setCondition(e, v1alpha1.EdgeConditionFailed, true, string(st.Phase), msg+": kubectl mindie edge retry "+e.Name+" deploys again to the nodes that did not succeed", now)
}

// retryGenerationOf is the spec.retryGeneration a pod was made for.
func retryGenerationOf(p *corev1.Pod) int64 {
	g, _ := strconv.ParseInt(p.Annotations[AnnotationRetryGeneration], 10, 64)
	return g
}

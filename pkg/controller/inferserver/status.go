package inferserver

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/ascend"
	"mindie.io/deployer/pkg/inferstatus"
	"mindie.io/deployer/pkg/podstatus"
)

// ReasonInstanceRecreating is the Degraded reason while an instance is
// being recreated (an alias kept for the cross-node code).
const ReasonInstanceRecreating = inferstatus.ReasonInstanceRecreating

// podStatus is what the status says about one pod.
func (c *Controller) podStatus(s *v1alpha1.InferServer, p *corev1.Pod) v1alpha1.InstancePodStatus {
	ps := v1alpha1.InstancePodStatus{
		Name:  p.Name,
		Node:  p.Spec.NodeName,
		PodIP: p.Status.PodIP,
		NPUs:  chipsOf(s, p),
		Phase: p.Status.Phase,
		Ready: c.podServes(s, p),
	}
	cs := podstatus.Container(p, containerName)
	if cs != nil {
		ps.Restarts = cs.RestartCount
		ps.Live = cs.State.Running != nil && ptr.Deref(cs.Started, true)
	}
	ps.Message = c.podMessage(s, p, cs)
	return ps
}

// podMessage explains a pod that is not ready, or is empty.
func (c *Controller) podMessage(s *v1alpha1.InferServer, p *corev1.Pod, cs *corev1.ContainerStatus) string {
	if p.DeletionTimestamp != nil {
		return "terminating"
	}
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodScheduled && cond.Status == corev1.ConditionFalse {
			return strings.TrimSpace(cond.Reason + ": " + cond.Message)
		}
	}
	if cs == nil {
		if p.Spec.NodeName == "" {
			return "waiting to be scheduled"
		}
		return "starting"
	}
	switch {
	case cs.State.Waiting != nil:
		return strings.TrimSpace(cs.State.Waiting.Reason + ": " + cs.State.Waiting.Message)
	case cs.State.Terminated != nil:
		t := cs.State.Terminated
		return fmt.Sprintf("terminated: %s, exit code %d%s", t.Reason, t.ExitCode, startupNote(s, cs, t))
	case cs.State.Running != nil && !ptr.Deref(cs.Started, true):
		// A timestamp, not a duration: a status that changes with the
		// clock would be rewritten on every sync.
		return fmt.Sprintf("starting up since %s (startup budget %ds)",
			cs.State.Running.StartedAt.UTC().Format(time.RFC3339), *s.Spec.Health.StartupSeconds)
	case !cs.Ready:
		return "not ready: readiness probe failing"
	}
	return ""
}

// startupNote says when a container ended without ever passing its
// startup probe within the budget.
func startupNote(s *v1alpha1.InferServer, cs *corev1.ContainerStatus, t *corev1.ContainerStateTerminated) string {
	if startupExceeded(s, cs, t) {
		return fmt.Sprintf(" (did not start within the %ds startup budget)", *s.Spec.Health.StartupSeconds)
	}
	return ""
}

func startupExceeded(s *v1alpha1.InferServer, cs *corev1.ContainerStatus, t *corev1.ContainerStateTerminated) bool {
	if t == nil || ptr.Deref(cs.Started, false) || t.StartedAt.IsZero() || t.FinishedAt.IsZero() {
		return false
	}
	budget := time.Duration(*s.Spec.Health.StartupSeconds) * time.Second
	return t.FinishedAt.Sub(t.StartedAt.Time) >= budget-time.Second
}

// notePodProblem keeps the most telling problem of the server's pods for
// the Degraded condition.
func (c *Controller) notePodProblem(s *v1alpha1.InferServer, st *syncState, p *corev1.Pod) {
	if st.degradedReason != "" || p.DeletionTimestamp != nil {
		return
	}
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodScheduled && cond.Status == corev1.ConditionFalse && cond.Reason == corev1.PodReasonUnschedulable {
			// A Prefill/Decode member's pod asks for its role's NPUs.
			who, as := "pod "+p.Name, s
			if role := p.Labels[v1alpha1.LabelRole]; role != "" {
				who = fmt.Sprintf("%s instance %s of group %s (pod %s)", role, p.Labels[v1alpha1.LabelMember], p.Labels[v1alpha1.LabelInstance], p.Name)
				as = roleServer(s, v1alpha1.RoleName(role))
			}
			res := npuResource(as)
			if strings.Contains(cond.Message, "Insufficient "+string(res)) {
				st.degradedReason = inferstatus.ReasonInsufficientNPU
				st.degradedMessage = fmt.Sprintf("%s needs %d %s on a node with %s=%s and cannot be scheduled: %s",
					who, npuCount(as), res, ascend.LabelAccelerator, ascend.AcceleratorValue(string(npuType(as))), cond.Message)
			} else {
				st.degradedReason = inferstatus.ReasonUnschedulable
				st.degradedMessage = fmt.Sprintf("%s cannot be scheduled: %s", who, cond.Message)
			}
			return
		}
	}
	cs := podstatus.Container(p, containerName)
	if cs == nil {
		return
	}
	if w := cs.State.Waiting; w != nil {
		switch w.Reason {
		case "CrashLoopBackOff":
			st.degradedReason = inferstatus.ReasonCrashLoop
			if startupExceeded(s, cs, cs.LastTerminationState.Terminated) {
				st.degradedReason = inferstatus.ReasonStartupBudget
			}
			st.degradedMessage = fmt.Sprintf("pod %s: %s%s", p.Name, w.Message, startupNote(s, cs, cs.LastTerminationState.Terminated))
		case "ImagePullBackOff", "ErrImagePull", "InvalidImageName":
			st.degradedReason = inferstatus.ReasonImagePull
			st.degradedMessage = fmt.Sprintf("pod %s: %s: %s", p.Name, w.Reason, w.Message)
		}
		if st.degradedReason != "" {
			return
		}
	}
	if cs.RestartCount > 0 && !ptr.Deref(cs.Started, false) && startupExceeded(s, cs, cs.LastTerminationState.Terminated) {
		st.degradedReason = inferstatus.ReasonStartupBudget
		st.degradedMessage = fmt.Sprintf("pod %s restarted %d times without starting within the %ds startup budget",
			p.Name, cs.RestartCount, *s.Spec.Health.StartupSeconds)
		return
	}
	if cs.State.Running != nil && !ptr.Deref(cs.Started, true) {
		budget := time.Duration(*s.Spec.Health.StartupSeconds) * time.Second
		since := cs.State.Running.StartedAt.Time
		running := c.now().Sub(since)
		if running > budget {
			st.degradedReason = inferstatus.ReasonStartupBudget
			st.degradedMessage = fmt.Sprintf("pod %s has been starting since %s, beyond its %s startup budget",
				p.Name, since.UTC().Format(time.RFC3339), budget)
		} else {
			// Look again when the budget runs out.
			st.requeueAfter(budget - running + time.Second)
		}
	}
}

// updateStatus writes what this sync observed.
func (c *Controller) updateStatus(ctx context.Context, st *syncState) error {
	s := st.server
	old := s.Status.DeepCopy()
	want := *s.Spec.Replicas
	status := v1alpha1.InferServerStatus{
		ObservedGeneration: s.Generation,
		Replicas:           st.total,
		UpdatedReplicas:    st.updated,
		ReadyReplicas:      st.ready,
		AvailableReplicas:  st.ready,
		Selector:           serverSelector(s).String(),
		UpdateRevision:     st.update.Name,
		CurrentRevision:    s.Status.CurrentRevision,
		LastProgressTime:   s.Status.LastProgressTime,
		Conditions:         s.Status.Conditions,
		Instances:          st.instances,
		Roles:              roleStatuses(s, st.instances, st.update.Name),
		Faults:             c.faultHistory(st),
		Router:             st.router,
	}
	if status.Router != nil {
		if svc, err := c.services.Services(s.Namespace).Get(s.Name); err == nil && svc.Spec.Type == corev1.ServiceTypeNodePort && len(svc.Spec.Ports) > 0 {
			status.Router.NodePort = svc.Spec.Ports[0].NodePort
		}
	}
	status.UnavailableReplicas = max(0, want-status.AvailableReplicas)
	counts := inferstatus.Counts{Desired: want, Existing: st.total, Updated: st.updated, Available: status.AvailableReplicas}
	complete := inferstatus.Complete(counts)
	if complete || status.CurrentRevision == "" {
		status.CurrentRevision = st.update.Name
	}
	now := metav1.NewTime(c.now())
	if status.LastProgressTime == nil || inferstatus.Progressed(old, &status) {
		status.LastProgressTime = &now
	}
	st.rolloutDone = complete

	// Model information: from a ready instance of the update revision, or
	// else any ready instance.
	key := st.key
	var target *infoTarget
	for _, pass := range []bool{true, false} {
		for _, inst := range st.instances {
			if !inst.Ready || (pass && inst.Revision != st.update.Name) {
				continue
			}
			for _, p := range inst.Pods {
				if p.Name == inst.Master && p.PodIP != "" {
					target = &infoTarget{instance: inst.Name, podIP: p.PodIP, port: managementPort(s), https: s.Spec.TLS.Enabled}
				}
			}
			if target != nil {
				break
			}
		}
		if target != nil {
			break
		}
	}
	status.Model = c.info.want(key, target)
	if status.Model == nil && old.Model != nil {
		status.Model = old.Model
	}

	_, unavailable, err := resolveBounds(s)
	if err != nil {
		st.failures = append(st.failures, err.Error())
	}
	minAvailable := want - unavailable
	setCond := func(t string, ok bool, reason, msg string) {
		cs := metav1.ConditionFalse
		if ok {
			cs = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&status.Conditions, metav1.Condition{Type: t, Status: cs, Reason: reason, Message: msg,
			ObservedGeneration: s.Generation, LastTransitionTime: now})
	}
	availMsg := fmt.Sprintf("%d of %d instances available, at least %d required", status.AvailableReplicas, want, minAvailable)
	switch {
	case !inferstatus.Available(counts, unavailable):
		setCond(v1alpha1.ConditionAvailable, false, inferstatus.ReasonMinimumUnavailable, availMsg)
	case status.Router != nil && status.Router.ReadyReplicas == 0:
		setCond(v1alpha1.ConditionAvailable, false, inferstatus.ReasonRouterUnavailable,
			fmt.Sprintf("%s, but no router replica of %d is ready", availMsg, *s.Spec.Router.Replicas))
	case status.Router != nil:
		setCond(v1alpha1.ConditionAvailable, true, inferstatus.ReasonMinimumAvailable,
			fmt.Sprintf("%s; %d of %d router replicas ready", availMsg, status.Router.ReadyReplicas, *s.Spec.Router.Replicas))
	default:
		setCond(v1alpha1.ConditionAvailable, true, inferstatus.ReasonMinimumAvailable, availMsg)
	}
	progress := fmt.Sprintf("%d of %d instances updated, %d ready, %d in total", st.updated, want, st.ready, st.total)
	exceeded, left := inferstatus.DeadlineExceeded(status.LastProgressTime.Time, *s.Spec.ProgressDeadlineSeconds, now.Time)
	switch {
	case s.Spec.Paused && !complete:
		meta.SetStatusCondition(&status.Conditions, metav1.Condition{Type: v1alpha1.ConditionProgressing, Status: metav1.ConditionUnknown,
			Reason: inferstatus.ReasonRolloutPaused, Message: fmt.Sprintf("rollout of %s paused: %d of %d instances updated", st.update.Name, st.updated, want),
			ObservedGeneration: s.Generation, LastTransitionTime: now})
	case complete:
		setCond(v1alpha1.ConditionProgressing, true, inferstatus.ReasonRolloutComplete,
			fmt.Sprintf("revision %s is rolled out to all %d instances", st.update.Name, want))
	case exceeded:
		setCond(v1alpha1.ConditionProgressing, false, inferstatus.ReasonProgressDeadlineExceeded,
			fmt.Sprintf("rollout of %s made no progress since %s, beyond its progress deadline of %ds: %s",
				st.update.Name, status.LastProgressTime.UTC().Format(time.RFC3339), *s.Spec.ProgressDeadlineSeconds, progress))
	case st.inPlace != "":
		setCond(v1alpha1.ConditionProgressing, true, inferstatus.ReasonRollingInPlace,
			fmt.Sprintf("rolling out %s in place (%s): %s", st.update.Name, st.inPlace, progress))
		st.requeueAfter(left + time.Second)
	default:
		setCond(v1alpha1.ConditionProgressing, true, inferstatus.ReasonRolloutInProgress,
			fmt.Sprintf("rolling out %s: %s", st.update.Name, progress))
		// Look again when the deadline would pass without progress.
		st.requeueAfter(left + time.Second)
	}
	switch {
	case st.degradedReason != "":
		setCond(v1alpha1.ConditionDegraded, true, st.degradedReason, st.degradedMessage)
	case len(st.failures) > 0:
		setCond(v1alpha1.ConditionDegraded, true, inferstatus.ReasonReconcileError, strings.Join(st.failures, "; "))
	default:
		setCond(v1alpha1.ConditionDegraded, false, inferstatus.ReasonAsExpected, "no problem observed")
	}

	if statusEqual(old, &status) {
		return nil
	}
	c.recordTransitions(s, old, &status)
	cp := s.DeepCopy()
	cp.Status = status
	_, err = c.infer.InferV1alpha1().InferServers(s.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{FieldManager: FieldManager})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		// A newer InferServer is on its way through the informer.
		return nil
	}
	if err != nil {
		return fmt.Errorf("update status: %w", err)
	}
	return nil
}

// statusEqual compares statuses, ignoring condition transition times and
// when model information was read.
func statusEqual(a, b *v1alpha1.InferServerStatus) bool {
	norm := func(s *v1alpha1.InferServerStatus) string {
		cp := s.DeepCopy()
		for i := range cp.Conditions {
			cp.Conditions[i].LastTransitionTime = metav1.Time{}
		}
		if cp.Model != nil {
			cp.Model.LastUpdateTime = nil
		}
		data, _ := json.Marshal(cp)
		return string(data)
	}
	return norm(a) == norm(b)
}

// recordTransitions emits events for conditions that changed meaningfully.
func (c *Controller) recordTransitions(s *v1alpha1.InferServer, old, cur *v1alpha1.InferServerStatus) {
	was := func(t string) *metav1.Condition { return meta.FindStatusCondition(old.Conditions, t) }
	if d := meta.FindStatusCondition(cur.Conditions, v1alpha1.ConditionDegraded); d != nil && d.Status == metav1.ConditionTrue {
		if w := was(v1alpha1.ConditionDegraded); w == nil || w.Status != metav1.ConditionTrue || w.Reason != d.Reason {
			c.recorder.Event(s, corev1.EventTypeWarning, d.Reason, d.Message)
		}
	}
	if p := meta.FindStatusCondition(cur.Conditions, v1alpha1.ConditionProgressing); p != nil {
		w := was(v1alpha1.ConditionProgressing)
		if p.Reason == inferstatus.ReasonRolloutComplete && (w == nil || w.Reason != inferstatus.ReasonRolloutComplete || old.UpdateRevision != cur.UpdateRevision) {
			c.recorder.Event(s, corev1.EventTypeNormal, ReasonRolloutComplete, p.Message)
		}
		if p.Reason == inferstatus.ReasonProgressDeadlineExceeded && (w == nil || w.Reason != p.Reason) {
			c.recorder.Event(s, corev1.EventTypeWarning, p.Reason, p.Message)
		}
		if p.Reason == inferstatus.ReasonRolloutInProgress && old.UpdateRevision != "" && old.UpdateRevision != cur.UpdateRevision {
			c.recorder.Eventf(s, corev1.EventTypeNormal, ReasonRolloutStarted, "Rolling out %s (was %s)", cur.UpdateRevision, old.UpdateRevision)
		}
	}
}

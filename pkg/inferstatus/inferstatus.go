// Package inferstatus is the one status contract of an InferServer: the
// condition reasons, when a rollout is complete, when a server is
// available, when a rollout has made no progress for too long, and how a
// reader (kubectl mindie status -w, rollout status) judges what the
// controller wrote. The controller computes its conditions with these
// functions and the plugin reads them back with these functions, so the
// two cannot disagree.
package inferstatus

import (
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mindie.io/deployer/apis/infer/v1alpha1"
)

// Reasons of the Available condition.
const (
	ReasonMinimumAvailable   = "MinimumInstancesAvailable"
	ReasonMinimumUnavailable = "MinimumInstancesUnavailable"
	// ReasonRouterUnavailable: enough instances are ready but no router
	// replica is, so the Service reaches nothing.
	ReasonRouterUnavailable = "RouterUnavailable"
)

// Reasons of the Progressing condition.
const (
	ReasonRolloutInProgress        = "RolloutInProgress"
	ReasonRolloutComplete          = "RolloutComplete"
	ReasonRolloutPaused            = "RolloutPaused"
	ReasonProgressDeadlineExceeded = "ProgressDeadlineExceeded"
	// ReasonRollingInPlace: a rolling update whose surge does not fit the
	// free NPUs goes in place, within maxUnavailable.
	ReasonRollingInPlace = "RollingInPlace"
)

// Reasons of the Degraded condition.
const (
	ReasonAsExpected         = "AsExpected"
	ReasonInsufficientNPU    = "InsufficientNPU"
	ReasonUnschedulable      = "Unschedulable"
	ReasonStartupBudget      = "StartupBudgetExceeded"
	ReasonCrashLoop          = "CrashLoopBackOff"
	ReasonImagePull          = "ImagePullFailed"
	ReasonInstanceRecreating = "InstanceRecreating"
	// ReasonNPUFault: a pod holds a chip the device plugin reports faulty
	// and cannot serve; the controller moves it (faultRescheduling).
	ReasonNPUFault = "NPUFault"
	// ReasonNodeLost: a pod's node is NotReady or unreachable.
	ReasonNodeLost       = "NodeLost"
	ReasonReconcileError = "ReconcileError"
	// ReasonRolesNotLinked: the pods of a Prefill/Decode group are ready
	// but a member does not serve its role linked to all its peers yet.
	ReasonRolesNotLinked = "RolesNotLinked"
)

// Counts are the instance counts a rollout is judged on.
type Counts struct {
	// Desired is spec.replicas.
	Desired int32
	// Existing counts the instances that exist, of any revision.
	Existing int32
	// Updated counts the instances of the revision being rolled out.
	Updated int32
	// Available counts the ready instances.
	Available int32
}

// CountsOf reads the counts of s as its status reports them.
func CountsOf(s *v1alpha1.InferServer) Counts {
	return Counts{
		Desired:   *s.Spec.Replicas,
		Existing:  s.Status.Replicas,
		Updated:   s.Status.UpdatedReplicas,
		Available: s.Status.AvailableReplicas,
	}
}

// Complete is the rule for "rollout complete": every desired instance
// runs the newest revision and is available, and no other instance exists.
func Complete(c Counts) bool {
	return c.Updated == c.Desired && c.Existing == c.Desired && c.Available == c.Desired
}

// Available is the rule for the Available condition: at least desired
// minus maxUnavailable instances are available, and at least one when any
// is desired.
func Available(c Counts, maxUnavailable int32) bool {
	return c.Available >= c.Desired-maxUnavailable && (c.Desired == 0 || c.Available > 0)
}

// Progressed reports whether the rollout moved between two statuses: a new
// generation observed, another revision to roll out, or a change in the
// number of existing, updated or ready instances.
func Progressed(old, cur *v1alpha1.InferServerStatus) bool {
	return old.ObservedGeneration != cur.ObservedGeneration ||
		old.UpdateRevision != cur.UpdateRevision ||
		old.Replicas != cur.Replicas ||
		old.UpdatedReplicas != cur.UpdatedReplicas ||
		old.ReadyReplicas != cur.ReadyReplicas
}

// DeadlineExceeded reports whether a rollout that last progressed at last
// has gone past its deadline at now, and otherwise how long is left.
func DeadlineExceeded(last time.Time, deadlineSeconds int32, now time.Time) (bool, time.Duration) {
	left := last.Add(time.Duration(deadlineSeconds) * time.Second).Sub(now)
	return left <= 0, left
}

// NeedsAttention reports whether a Degraded reason is one the controller
// cannot resolve by itself (too few NPUs, a pod that cannot be scheduled or
// pulled, a server that crashes or does not start), as opposed to work the
// controller is doing (recreating an instance, retrying a failed write).
func NeedsAttention(reason string) bool {
	switch reason {
	case ReasonInsufficientNPU, ReasonUnschedulable, ReasonStartupBudget, ReasonCrashLoop, ReasonImagePull:
		return true
	}
	return false
}

// Observed reports whether the controller has acted on the current spec.
func Observed(s *v1alpha1.InferServer) bool {
	return s.Status.ObservedGeneration >= s.Generation
}

// IsAvailable is the reader's side of Available: the controller has
// observed the current spec and set Available to True.
func IsAvailable(s *v1alpha1.InferServer) bool {
	return Observed(s) && meta.IsStatusConditionTrue(s.Status.Conditions, v1alpha1.ConditionAvailable)
}

// IsComplete is the reader's side of Complete: the controller has observed
// the current spec and reports the rollout complete.
func IsComplete(s *v1alpha1.InferServer) bool {
	if !Observed(s) {
		return false
	}
	c := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionProgressing)
	return c != nil && c.Status == metav1.ConditionTrue && c.Reason == ReasonRolloutComplete && Complete(CountsOf(s))
}

// Degraded returns the Degraded condition when it is True, else nil.
func Degraded(s *v1alpha1.InferServer) *metav1.Condition {
	c := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionDegraded)
	if c == nil || c.Status != metav1.ConditionTrue {
		return nil
	}
	return c
}

// RolloutError is why a rollout is judged failed.
type RolloutError struct {
	Server, Reason, Message string
}

func (e *RolloutError) Error() string {
	if e.Reason == ReasonProgressDeadlineExceeded {
		return fmt.Sprintf("InferServer %q exceeded its progress deadline: %s", e.Server, e.Message)
	}
	return fmt.Sprintf("InferServer %q is Degraded: %s: %s", e.Server, e.Reason, e.Message)
}

// Rollout judges the rollout of s as a reader: a line saying where it
// stands, whether it is complete, and an error when it has failed
// (Progressing False with ProgressDeadlineExceeded, or Degraded for a
// reason that needs attention, see NeedsAttention).
func Rollout(s *v1alpha1.InferServer) (string, bool, error) {
	if !Observed(s) {
		return fmt.Sprintf("Waiting for InferServer %q spec update to be observed...", s.Name), false, nil
	}
	if c := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionProgressing); c != nil &&
		c.Status == metav1.ConditionFalse && c.Reason == ReasonProgressDeadlineExceeded {
		return "", false, &RolloutError{Server: s.Name, Reason: c.Reason, Message: c.Message}
	}
	if IsComplete(s) {
		return fmt.Sprintf("inferserver %q successfully rolled out", s.Name), true, nil
	}
	if d := Degraded(s); d != nil && NeedsAttention(d.Reason) {
		return "", false, &RolloutError{Server: s.Name, Reason: d.Reason, Message: d.Message}
	}
	paused := ""
	if s.Spec.Paused {
		paused = fmt.Sprintf(" (InferServer %q is paused: 'kubectl mindie rollout resume %s' continues it)", s.Name, s.Name)
	}
	if p := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionProgressing); p != nil && p.Reason == ReasonRollingInPlace {
		// Say why before the counts, in the controller's words.
		if i := strings.Index(p.Message, " in place ("); i >= 0 {
			if j := strings.LastIndex(p.Message, "): "); j > i {
				paused += fmt.Sprintf(" Rolling in place: %s.", p.Message[i+len(" in place ("):j])
			}
		}
	}
	c := CountsOf(s)
	switch {
	case c.Updated < c.Desired:
		return fmt.Sprintf("Waiting for rollout to finish: %d out of %d new instances have been updated...%s", c.Updated, c.Desired, paused), false, nil
	case c.Existing > c.Updated:
		return fmt.Sprintf("Waiting for rollout to finish: %d old instances are pending termination...%s", c.Existing-c.Updated, paused), false, nil
	default:
		return fmt.Sprintf("Waiting for rollout to finish: %d of %d updated instances are available...", c.Available, c.Desired), false, nil
	}
}

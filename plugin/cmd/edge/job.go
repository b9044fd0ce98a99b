package edge

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mindie.io/deployer/apis/infer/v1alpha1"
)

// standing is where a job stands, as status -w judges it.
type standing int

const (
	// moving: the controller has more to do (or has not seen the spec).
	moving standing = iota
	// ended: the run ended, and no retry of it is pending; the phase says how.
	ended
	// stopped: spec.stopped holds the job; nothing happens until it is
	// continued.
	stopped
)

// judge says where e stands. Only a status the controller wrote for the
// current spec counts: right after a continue or a retry, the phase is the
// old run's until the controller acts on it.
func judge(e *v1alpha1.EdgeDeployment) standing {
	if e.Status.ObservedGeneration < e.Generation {
		return moving
	}
	p := e.Status.Phase
	switch {
	case p == v1alpha1.EdgePhaseStopped && e.Spec.Stopped:
		return stopped
	case runEnded(p):
		if retryPending(e) && retryableCount(e) > 0 {
			// The retry starts once the controller acts on it, unless the
			// job is stopped: then it waits for a continue.
			if e.Spec.Stopped {
				return stopped
			}
			return moving
		}
		return ended
	}
	return moving
}

// runEnded says whether p ends a run.
func runEnded(p v1alpha1.EdgeDeploymentPhase) bool {
	switch p {
	case v1alpha1.EdgePhaseSucceeded, v1alpha1.EdgePhasePartiallySucceeded, v1alpha1.EdgePhaseFailed, v1alpha1.EdgePhaseTimedOut:
		return true
	}
	return false
}

// failedEnd says whether a run that ended in p failed somewhere: status
// exits non-zero for these.
func failedEnd(p v1alpha1.EdgeDeploymentPhase) bool {
	return runEnded(p) && p != v1alpha1.EdgePhaseSucceeded
}

// retryPending says whether spec.retryGeneration was raised and the
// controller has not acted on it yet.
func retryPending(e *v1alpha1.EdgeDeployment) bool {
	return e.Status.ObservedRetryGeneration < e.Spec.RetryGeneration
}

// retryable are the nodes a retry runs again: Failed and TimedOut.
func retryable(e *v1alpha1.EdgeDeployment) []v1alpha1.EdgeNodeStatus {
	var out []v1alpha1.EdgeNodeStatus
	for _, n := range e.Status.Nodes {
		if n.State == v1alpha1.EdgeNodeFailed || n.State == v1alpha1.EdgeNodeTimedOut {
			out = append(out, n)
		}
	}
	return out
}

// retryableCount is how many nodes a retry runs again: those of
// status.nodes, or the counts when the nodes are not listed.
func retryableCount(e *v1alpha1.EdgeDeployment) int {
	return max(len(retryable(e)), int(e.Status.Failed)+int(e.Status.TimedOut))
}

// refusal is the Failed condition of a job refused before any node was
// deployed to (its targets were wrong), or nil.
func refusal(e *v1alpha1.EdgeDeployment) *condition {
	c := meta.FindStatusCondition(e.Status.Conditions, v1alpha1.EdgeConditionFailed)
	if c == nil || c.Status != metav1.ConditionTrue {
		return nil
	}
	switch c.Reason {
	case v1alpha1.EdgeReasonMixedArchitectures, v1alpha1.EdgeReasonNoTargets, v1alpha1.EdgeReasonTooManyTargets:
		return &condition{reason: c.Reason, message: c.Message}
	}
	return nil
}

type condition struct{ reason, message string }

// targetCount is the number of target nodes, "" while they are not
// resolved.
func targetCount(e *v1alpha1.EdgeDeployment) string {
	switch {
	case len(e.Status.Targets) > 0:
		return fmt.Sprint(len(e.Status.Targets))
	case len(e.Status.Nodes) > 0:
		return fmt.Sprint(len(e.Status.Nodes))
	}
	return ""
}

// counts is "1/3 nodes succeeded, 1 deploying, 1 failed": the target nodes
// per state, those in no state left out.
func counts(e *v1alpha1.EdgeDeployment) string {
	st := e.Status
	total := targetCount(e)
	if total == "" {
		if p := e.Status.Phase; p == "" || p == v1alpha1.EdgePhaseQueued {
			return "targets not resolved yet"
		}
		return "no target nodes"
	}
	parts := []string{fmt.Sprintf("%d/%s %s succeeded", st.Succeeded, total, plural(total == "1", "node", "nodes"))}
	for _, c := range []struct {
		n    int32
		what string
	}{
		{st.Running, "deploying"}, {st.Queued, "queued"}, {st.Failed, "failed"}, {st.TimedOut, "timed out"}, {st.Stopped, "stopped"},
	} {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c.n, c.what))
		}
	}
	return strings.Join(parts, ", ")
}

// phase is the phase, "<none>" before the API server set one.
func phase(e *v1alpha1.EdgeDeployment) string {
	if e.Status.Phase == "" {
		return "<none>"
	}
	return string(e.Status.Phase)
}

// maxListed bounds the nodes a message names.
const maxListed = 10

// nodeList names nodes with their state and reason: "edge-1 (Failed:
// ImagePullBackOff), edge-2 (TimedOut)", at most maxListed of them.
func nodeList(nodes []v1alpha1.EdgeNodeStatus) string {
	var parts []string
	for i, n := range nodes {
		if i == maxListed {
			parts = append(parts, fmt.Sprintf("and %d more", len(nodes)-maxListed))
			break
		}
		what := string(n.State)
		if n.Reason != "" {
			what += ": " + n.Reason
		}
		parts = append(parts, fmt.Sprintf("%s (%s)", n.Node, what))
	}
	return strings.Join(parts, ", ")
}

// endError is the error of a job whose run ended Failed,
// PartiallySucceeded or TimedOut: the phase and the nodes that failed, or
// why the job was refused. nil otherwise.
func endError(e *v1alpha1.EdgeDeployment, nsFlag string) error {
	if judge(e) != ended || !failedEnd(e.Status.Phase) {
		return nil
	}
	msg := fmt.Sprintf("EdgeDeployment %q ended %s", e.Name, e.Status.Phase)
	if r := refusal(e); r != nil {
		return fmt.Errorf("%s: the job was refused: %s: %s", msg, r.reason, r.message)
	}
	failed := retryable(e)
	switch {
	case len(failed) > 0:
		return fmt.Errorf("%s: %d of %s nodes failed or timed out: %s; retry with 'kubectl mindie edge retry %s%s'",
			msg, len(failed), targetCount(e), nodeList(failed), e.Name, nsFlag)
	case retryableCount(e) > 0:
		return fmt.Errorf("%s (%s); retry with 'kubectl mindie edge retry %s%s'", msg, counts(e), e.Name, nsFlag)
	}
	if c := meta.FindStatusCondition(e.Status.Conditions, v1alpha1.EdgeConditionFailed); c != nil && c.Message != "" {
		return fmt.Errorf("%s: %s: %s", msg, c.Reason, c.Message)
	}
	return fmt.Errorf("%s (%s)", msg, counts(e))
}

func plural(one bool, singular, many string) string {
	if one {
		return singular
	}
	return many
}

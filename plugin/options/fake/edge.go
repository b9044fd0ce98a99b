package fake

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	clienttesting "k8s.io/client-go/testing"

	"mindie.io/deployer/apis/infer/v1alpha1"
)

// EdgeDeployment returns an EdgeDeployment as the API server holds it:
// created an hour ago, at generation 1, Queued, targeting the nodes
// labelled mindie.io/edge=true with the image example/edge-infer:1.0,
// changed by mutate and then defaulted.
func EdgeDeployment(ns, name string, mutate ...func(*v1alpha1.EdgeDeployment)) *v1alpha1.EdgeDeployment {
	e := &v1alpha1.EdgeDeployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID("uid-" + name), Generation: 1,
			CreationTimestamp: metav1.NewTime(time.Now().Add(-time.Hour))},
		Spec: v1alpha1.EdgeDeploymentSpec{
			Targets:   v1alpha1.EdgeTargets{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"mindie.io/edge": "true"}}},
			Container: v1alpha1.EdgeContainer{Image: "example/edge-infer:1.0"},
		},
		Status: v1alpha1.EdgeDeploymentStatus{Phase: v1alpha1.EdgePhaseQueued},
	}
	for _, m := range mutate {
		m(e)
	}
	v1alpha1.SetObjectDefaults_EdgeDeployment(e)
	return e
}

// EdgeNode is the task of a job on node in state, with a reason and a
// message, on the pod <node>-0, in that state for the last minute.
func EdgeNode(node string, state v1alpha1.EdgeNodeState, reason, message string) v1alpha1.EdgeNodeStatus {
	since := metav1.NewTime(time.Now().Add(-time.Minute))
	n := v1alpha1.EdgeNodeStatus{Node: node, State: state, Reason: reason, Message: message, Since: &since, Attempts: 1}
	if state != v1alpha1.EdgeNodeQueued && state != v1alpha1.EdgeNodeStopped {
		n.Pods = []string{node + "-0"}
	}
	return n
}

// EdgeRun is a mutation of EdgeDeployment that gives it the status a
// controller writes for a run in phase with these nodes: the targets and
// the counts from the nodes, arm64, the current generation and retry
// observed, started ten minutes ago, and for a run that ended its
// completion and the conditions Complete and Failed.
func EdgeRun(phase v1alpha1.EdgeDeploymentPhase, nodes ...v1alpha1.EdgeNodeStatus) func(*v1alpha1.EdgeDeployment) {
	return func(e *v1alpha1.EdgeDeployment) {
		start := metav1.NewTime(time.Now().Add(-10 * time.Minute))
		st := v1alpha1.EdgeDeploymentStatus{Phase: phase, ObservedGeneration: e.Generation, ObservedRetryGeneration: e.Spec.RetryGeneration,
			StartTime: &start, Architecture: "arm64", Nodes: nodes}
		for _, n := range nodes {
			st.Targets = append(st.Targets, n.Node)
		}
		st.CountNodes()
		done := metav1.NewTime(time.Now().Add(-2 * time.Minute))
		if phase == v1alpha1.EdgePhaseSucceeded || phase == v1alpha1.EdgePhaseFailed || phase == v1alpha1.EdgePhasePartiallySucceeded || phase == v1alpha1.EdgePhaseTimedOut {
			// As the controller writes them: both conditions, the phase
			// as their reason.
			st.CompletionTime = &done
			msg := fmt.Sprintf("%d of %d nodes succeeded, %d failed, %d timed out", st.Succeeded, len(nodes), st.Failed, st.TimedOut)
			ok := phase == v1alpha1.EdgePhaseSucceeded
			st.Conditions = []metav1.Condition{
				{Type: v1alpha1.EdgeConditionComplete, Status: conditionStatus(ok), Reason: string(phase), Message: msg, LastTransitionTime: done},
				{Type: v1alpha1.EdgeConditionFailed, Status: conditionStatus(!ok), Reason: string(phase), Message: msg, LastTransitionTime: done},
			}
		}
		e.Status = st
	}
}

func conditionStatus(b bool) metav1.ConditionStatus {
	if b {
		return metav1.ConditionTrue
	}
	return metav1.ConditionFalse
}

// WatchEdgeWith makes the fake clientset answer watches of EdgeDeployments
// with the given states, one after the other.
func (f *Options) WatchEdgeWith(states ...*v1alpha1.EdgeDeployment) {
	w := watch.NewFakeWithChanSize(len(states), false)
	for _, s := range states {
		w.Modify(s)
	}
	f.Infer.PrependWatchReactor("edgedeployments", clienttesting.DefaultWatchReactor(w, nil))
}

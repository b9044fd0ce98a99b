package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/inferstatus"
)

// progressDeadlineExceeded is true once Progressing is False for want of progress.
func progressDeadlineExceeded(s *v1alpha1.InferServer) (bool, string) {
	p := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionProgressing)
	ok := s.Status.ObservedGeneration == s.Generation && p != nil && p.Status == metav1.ConditionFalse &&
		p.Reason == inferstatus.ReasonProgressDeadlineExceeded
	return ok, "Progressing False with ProgressDeadlineExceeded"
}

// TestProgressDeadlineAndSettledStatus runs, on the 4 simulated nodes of 8
// NPUs, a small server that settles and servers that can never become
// ready (an instance more than the NPUs allow) with a short progress
// deadline, single-node and then cross-node. The stuck ones must reach
// Progressing=False/ProgressDeadlineExceeded and make `kubectl mindie rollout
// status` fail; the settled one must not be written to at all meanwhile.
func TestProgressDeadlineAndSettledStatus(t *testing.T) {
	waitNoServerPods(t)
	const ns = "default"
	settled, stuck, stuckCross := uniqueName("settled"), uniqueName("stuck"), uniqueName("stuckx")
	t.Cleanup(func() {
		kubectl(t, "", "delete", "inferserver", settled, stuck, stuckCross, "-n", ns, "--ignore-not-found", "--wait=false")
	})

	// The settled server takes one node.
	applyServer(t, ns, fmt.Sprintf(`apiVersion: infer.mindie.io/v1alpha1
kind: InferServer
metadata: {name: %s, namespace: %s}
spec:
  replicas: 1
  terminationGracePeriodSeconds: 2
  resources: {cpu: "1", memory: 2000Mi, npu: {count: 8}}
`, settled, ns))
	waitServer(t, ns, settled, 3*time.Minute, settled+" rolled out", func(s *v1alpha1.InferServer) (bool, string) {
		ok, msg := rolledOut(1)(s)
		return ok && inferstatus.IsComplete(s) && s.Status.Model != nil, msg + ", complete, with model information"
	})
	// rollout status agrees with the controller on a complete rollout.
	if out := mustMindie(t, "", "", "rollout", "status", settled, "-n", ns, "--timeout=30s"); !strings.Contains(out, "successfully rolled out") {
		t.Errorf("rollout status of %s:\n%s", settled, out)
	}
	before := server(t, ns, settled)
	settledSince := time.Now()

	// Four instances of 8 NPUs on the three free nodes: one stays Pending.
	applyServer(t, ns, fmt.Sprintf(`apiVersion: infer.mindie.io/v1alpha1
kind: InferServer
metadata: {name: %s, namespace: %s}
spec:
  replicas: 4
  progressDeadlineSeconds: 40
  terminationGracePeriodSeconds: 2
  resources: {cpu: "1", memory: 2000Mi, npu: {count: 8}}
  health: {startupSeconds: 30}
`, stuck, ns))
	s := waitServer(t, ns, stuck, 3*time.Minute, stuck+" past its progress deadline", progressDeadlineExceeded)
	if s.Status.ReadyReplicas != 3 || s.Status.LastProgressTime == nil {
		t.Errorf("%s: %d ready (want 3), lastProgressTime %v", stuck, s.Status.ReadyReplicas, s.Status.LastProgressTime)
	}
	p := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionProgressing)
	if !strings.Contains(p.Message, "beyond its progress deadline of 40s") || !strings.Contains(p.Message, "3 ready") {
		t.Errorf("Progressing message: %s", p.Message)
	}
	r := mindie(t, "", "", "rollout", "status", stuck, "-n", ns, "--timeout=60s")
	if r.err == nil || !strings.Contains(r.stderr, "exceeded its progress deadline") {
		t.Errorf("rollout status of %s: err %v, want a failure naming the deadline\nstdout:\n%s\nstderr:\n%s", stuck, r.err, r.stdout, r.stderr)
	}
	if out := mustKubectl(t, "", "get", "events", "-n", ns, "--field-selector",
		"involvedObject.name="+stuck+",reason="+inferstatus.ReasonProgressDeadlineExceeded, "-o", "name"); strings.TrimSpace(out) == "" {
		t.Error("no ProgressDeadlineExceeded event")
	}
	mustKubectl(t, "", "delete", "inferserver", stuck, "-n", ns, "--wait=true", "--timeout=90s")

	// Cross-node: two instances of two nodes each, on the three free nodes.
	applyServer(t, ns, fmt.Sprintf(`apiVersion: infer.mindie.io/v1alpha1
kind: InferServer
metadata: {name: %s, namespace: %s}
spec:
  replicas: 2
  nodesPerInstance: 2
  progressDeadlineSeconds: 40
  terminationGracePeriodSeconds: 2
  resources: {cpu: "1", memory: 2000Mi, npu: {count: 8}}
  health: {startupSeconds: 30}
`, stuckCross, ns))
	s = waitServer(t, ns, stuckCross, 3*time.Minute, stuckCross+" past its progress deadline", progressDeadlineExceeded)
	if s.Status.ReadyReplicas != 1 {
		t.Errorf("%s: %d instances ready, want 1", stuckCross, s.Status.ReadyReplicas)
	}
	if r := mindie(t, "", "", "rollout", "status", stuckCross, "-n", ns, "--timeout=60s"); r.err == nil {
		t.Errorf("rollout status of %s succeeded:\n%s", stuckCross, r.stdout)
	}

	// Meanwhile, and for at least a minute, the settled server was never written.
	if wait := time.Minute - time.Since(settledSince); wait > 0 {
		time.Sleep(wait)
	}
	after := server(t, ns, settled)
	if after.ResourceVersion != before.ResourceVersion {
		t.Errorf("settled %s was written: resourceVersion %s -> %s\nbefore: %+v\nafter: %+v",
			settled, before.ResourceVersion, after.ResourceVersion, before.Status, after.Status)
	}

	mustKubectl(t, "", "delete", "inferserver", stuckCross, "-n", ns, "--wait=true", "--timeout=90s")
	deleteServerAndWait(t, ns, settled)
}

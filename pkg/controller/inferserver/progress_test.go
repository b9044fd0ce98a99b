package inferserver

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/inferstatus"
)

// A rollout that makes no progress for progressDeadlineSeconds turns
// Progressing False with ProgressDeadlineExceeded, once, and back to True at
// the next progress; single-node and cross-node alike.
func TestProgressDeadline(t *testing.T) {
	const deadline = 40
	for name, srv := range map[string]*v1alpha1.InferServer{
		// No pod ever appears: nothing runs the Deployment here.
		"single-node": newServer("llama", func(s *v1alpha1.InferServer) { s.Spec.ProgressDeadlineSeconds = ptr.To[int32](deadline) }),
		// The pods stay Pending.
		"cross-node": crossNodeServer("llama", 1, func(s *v1alpha1.InferServer) { s.Spec.ProgressDeadlineSeconds = ptr.To[int32](deadline) }),
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, srv)
			requeue, _ := f.sync("llama")
			s := f.server("llama")
			p := condition(s, v1alpha1.ConditionProgressing)
			if s.Status.LastProgressTime == nil || !s.Status.LastProgressTime.Time.Equal(testNow) ||
				p == nil || p.Status != metav1.ConditionTrue || p.Reason != inferstatus.ReasonRolloutInProgress {
				t.Fatalf("first sync: lastProgressTime %v, Progressing %+v", s.Status.LastProgressTime, p)
			}
			if requeue <= 0 || requeue > (deadline+1)*time.Second {
				t.Errorf("requeue %v, want at most the deadline and a second", requeue)
			}

			// Just before the deadline: nothing to write.
			f.now = testNow.Add((deadline - 1) * time.Second)
			if _, writes := f.sync("llama"); len(writes) != 0 {
				t.Errorf("a sync before the deadline wrote %v", writes)
			}
			f.now = testNow.Add((deadline + 1) * time.Second)
			_, writes := f.sync("llama")
			if !has(writes, "update inferservers/status llama") {
				t.Errorf("writes past the deadline: %v", writes)
			}
			s = f.server("llama")
			p = condition(s, v1alpha1.ConditionProgressing)
			if p == nil || p.Status != metav1.ConditionFalse || p.Reason != inferstatus.ReasonProgressDeadlineExceeded ||
				!strings.Contains(p.Message, "beyond its progress deadline of 40s") || !strings.Contains(p.Message, testNow.Format(time.RFC3339)) {
				t.Fatalf("Progressing past the deadline: %+v", p)
			}
			if _, _, err := inferstatus.Rollout(s); err == nil {
				t.Error("a reader does not see the rollout failed")
			}
			if ev := f.events(); count(ev, inferstatus.ReasonProgressDeadlineExceeded) != 1 {
				t.Errorf("events %v", ev)
			}
			// Later still: the status is settled, nothing is written, no new event.
			f.now = testNow.Add(time.Hour)
			if _, writes := f.sync("llama"); len(writes) != 0 {
				t.Errorf("a settled failed rollout was written again: %v", writes)
			}
			if ev := f.events(); count(ev, inferstatus.ReasonProgressDeadlineExceeded) != 0 {
				t.Errorf("the event came again: %v", ev)
			}

			// A new generation is progress: the clock starts again.
			f.update("llama", func(s *v1alpha1.InferServer) { s.Spec.Image = "mindie:v2"; s.Generation++ })
			f.sync("llama")
			s = f.server("llama")
			p = condition(s, v1alpha1.ConditionProgressing)
			if !s.Status.LastProgressTime.Time.Equal(f.now) || p.Status != metav1.ConditionTrue || p.Reason != inferstatus.ReasonRolloutInProgress {
				t.Errorf("after a new generation: lastProgressTime %v, Progressing %+v", s.Status.LastProgressTime, p)
			}
		})
	}
}

// A pod still loading within its startup budget is described with a
// timestamp: as the clock moves, its status is not written again.
func TestStartingPodStatusIsClockFree(t *testing.T) {
	f := newFixture(t, crossNodeServer("llama", 1, nil))
	f.sync("llama")
	started := testNow.Add(-5 * time.Second)
	for _, p := range f.pods() {
		f.editPod(p.Name, func(p *corev1.Pod) {
			runPod(p)
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}}
			p.Status.ContainerStatuses[0].Ready = false
			p.Status.ContainerStatuses[0].Started = ptr.To(false)
			p.Status.ContainerStatuses[0].State.Running.StartedAt = metav1.NewTime(started)
		})
	}
	f.sync("llama")
	s := f.server("llama")
	msg := s.Status.Instances[0].Pods[0].Message
	if msg != "starting up since "+started.Format(time.RFC3339)+" (startup budget 180s)" {
		t.Errorf("pod message %q", msg)
	}
	for _, d := range []time.Duration{time.Second, 10 * time.Second, time.Minute} {
		f.now = testNow.Add(d)
		if _, writes := f.sync("llama"); len(writes) != 0 {
			t.Errorf("%v later, a sync wrote %v", d, writes)
		}
	}
	// Beyond the budget the server is Degraded, again with a timestamp.
	f.now = started.Add(181 * time.Second)
	f.sync("llama")
	d := condition(f.server("llama"), v1alpha1.ConditionDegraded)
	if d == nil || d.Reason != inferstatus.ReasonStartupBudget || !strings.Contains(d.Message, "starting since "+started.Format(time.RFC3339)) {
		t.Errorf("Degraded beyond the startup budget: %+v", d)
	}
	f.now = started.Add(300 * time.Second)
	if _, writes := f.sync("llama"); len(writes) != 0 {
		t.Errorf("Degraded status rewritten as the clock moves: %v", writes)
	}
}

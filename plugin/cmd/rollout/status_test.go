package rollout

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/inferstatus"
	"mindie.io/deployer/plugin/options/fake"
)

func TestRolloutStatusMessages(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*v1alpha1.InferServer)
		want   string
		done   bool
	}{
		{"not observed", func(s *v1alpha1.InferServer) { s.Generation = 2; s.Status.ObservedGeneration = 1 }, `Waiting for InferServer "llama" spec update to be observed...`, false},
		{"updating", func(s *v1alpha1.InferServer) { s.Status.UpdatedReplicas = 1; s.Status.Replicas = 3 }, "Waiting for rollout to finish: 1 out of 3 new instances have been updated...", false},
		{"paused", func(s *v1alpha1.InferServer) { s.Spec.Paused = true; s.Status.UpdatedReplicas = 1 },
			`Waiting for rollout to finish: 1 out of 3 new instances have been updated... (InferServer "llama" is paused: 'kubectl mindie rollout resume llama' continues it)`, false},
		{"old left", func(s *v1alpha1.InferServer) { s.Status.UpdatedReplicas = 3; s.Status.Replicas = 4 }, "Waiting for rollout to finish: 1 old instances are pending termination...", false},
		{"unavailable", func(s *v1alpha1.InferServer) {
			s.Status.UpdatedReplicas, s.Status.Replicas, s.Status.AvailableReplicas = 3, 3, 1
		}, "Waiting for rollout to finish: 1 of 3 updated instances are available...", false},
		{"done", fake.Available, `inferserver "llama" successfully rolled out`, true},
	} {
		s := fake.InferServer("default", "llama", func(s *v1alpha1.InferServer) { s.Spec.Replicas = ptr.To(int32(3)); s.Status.ObservedGeneration = 1 }, tc.mutate)
		f := fake.New(t, NewCmdRollout, s)
		if out := f.MustRun(t, "", "rollout", "status", "llama", "--watch=false"); out != tc.want+"\n" {
			t.Errorf("%s: rollout status --watch=false prints %q, want %q", tc.name, out, tc.want)
		}
		// Complete or not: a rollout that is not complete waits (here
		// without any change, until the timeout).
		f.WatchWith()
		r := f.Run(t, "", "rollout", "status", "llama", "--timeout=200ms")
		if done := r.Code == 0; done != tc.done {
			t.Errorf("%s: rollout status: exit %d, want complete %v\nstdout:\n%s\nstderr:\n%s", tc.name, r.Code, tc.done, r.Stdout, r.Stderr)
		}
	}
	s := fake.InferServer("default", "llama", func(s *v1alpha1.InferServer) {
		s.Status.ObservedGeneration = 1
		s.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionProgressing, Status: metav1.ConditionFalse, Reason: inferstatus.ReasonProgressDeadlineExceeded, Message: "stuck"}}
	})
	fake.New(t, NewCmdRollout, s).FailRun(t, "", []string{"rollout", "status", "llama", "--watch=false"}, "exceeded its progress deadline: stuck")
}

func TestRolloutStatusWatch(t *testing.T) {
	s := fake.InferServer("default", "llama", func(s *v1alpha1.InferServer) { s.Generation = 2; s.Status.ObservedGeneration = 1 })
	f := fake.New(t, NewCmdRollout, s)
	step := func(updated, replicas, avail int32) *v1alpha1.InferServer {
		c := s.DeepCopy()
		c.Status.ObservedGeneration = 2
		c.Status.UpdatedReplicas, c.Status.Replicas, c.Status.AvailableReplicas = updated, replicas, avail
		return c
	}
	w := watch.NewFake()
	f.Infer.PrependWatchReactor("inferservers", clienttesting.DefaultWatchReactor(w, nil))
	go func() {
		// The controller reports the rollout complete with the last state.
		last := step(2, 2, 2)
		last.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionProgressing, Status: metav1.ConditionTrue, Reason: inferstatus.ReasonRolloutComplete}}
		for _, st := range []*v1alpha1.InferServer{step(1, 3, 1), step(1, 3, 1), step(2, 3, 1), step(2, 2, 1), last} {
			w.Modify(st)
		}
	}()
	out := f.MustRun(t, "", "rollout", "status", "llama", "--timeout=30s")
	// Each state is printed once; the precondition may see a later state
	// than the first event, so the middle lines are checked loosely.
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if lines[0] != `Waiting for InferServer "llama" spec update to be observed...` || lines[len(lines)-1] != `inferserver "llama" successfully rolled out` {
		t.Errorf("rollout status:\n%s", out)
	}
	seen := map[string]bool{}
	for _, l := range lines {
		if seen[l] {
			t.Errorf("line %q printed twice:\n%s", l, out)
		}
		seen[l] = true
	}

	// One look.
	f = fake.New(t, NewCmdRollout, fake.InferServer("default", "llama", func(s *v1alpha1.InferServer) { s.Status.ObservedGeneration = 1 }))
	if out := f.MustRun(t, "", "rollout", "status", "llama", "--watch=false"); out != "Waiting for rollout to finish: 0 out of 2 new instances have been updated...\n" {
		t.Errorf("rollout status --watch=false: %q", out)
	}
	if n := len(fake.Actions(f.Infer, "watch", "inferservers")); n != 0 {
		t.Errorf("--watch=false watched")
	}
	f.WatchWith()
	f.FailRun(t, "", []string{"rollout", "status", "llama", "--timeout=500ms"}, `timed out after 500ms waiting for the rollout of InferServer "llama" to finish`)
}

// TestRolloutStatusContract checks that rollout status judges a rollout by
// the status contract (package inferstatus): it fails on a progress
// deadline and on a Degraded reason that needs attention, waits through
// one the controller resolves, and completes only when the controller
// reports the rollout complete at the current generation.
func TestRolloutStatusContract(t *testing.T) {
	complete := fake.Available
	for _, tc := range []struct {
		name string
		// initial is the state first read; next, when set, the state the
		// watch delivers after it.
		initial, next func(*v1alpha1.InferServer)
		code          int
		stdout        []string
		stderr        string
	}{{
		name: "progress deadline exceeded",
		initial: func(s *v1alpha1.InferServer) {
			s.Status.ObservedGeneration = 1
			s.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionProgressing, Status: metav1.ConditionFalse,
				Reason: inferstatus.ReasonProgressDeadlineExceeded, Message: "instance llama-1 made no progress for 780s"}}
		},
		code:   1,
		stderr: `error: InferServer "llama" exceeded its progress deadline: instance llama-1 made no progress for 780s` + "\n",
	}, {
		name: "degraded for a reason that needs attention",
		initial: func(s *v1alpha1.InferServer) {
			s.Status.ObservedGeneration = 1
			s.Status.Conditions = []metav1.Condition{
				{Type: v1alpha1.ConditionProgressing, Status: metav1.ConditionTrue, Reason: inferstatus.ReasonRolloutInProgress},
				{Type: v1alpha1.ConditionDegraded, Status: metav1.ConditionTrue, Reason: inferstatus.ReasonInsufficientNPU, Message: "no node has 8 free Ascend910 NPUs"},
			}
		},
		code:   1,
		stderr: `error: InferServer "llama" is Degraded: InsufficientNPU: no node has 8 free Ascend910 NPUs` + "\n",
	}, {
		name: "degraded while the controller recreates an instance",
		initial: func(s *v1alpha1.InferServer) {
			s.Status.ObservedGeneration = 1
			s.Status.Replicas, s.Status.UpdatedReplicas, s.Status.AvailableReplicas = 2, 2, 1
			s.Status.Conditions = []metav1.Condition{
				{Type: v1alpha1.ConditionProgressing, Status: metav1.ConditionTrue, Reason: inferstatus.ReasonRolloutInProgress},
				{Type: v1alpha1.ConditionDegraded, Status: metav1.ConditionTrue, Reason: inferstatus.ReasonInstanceRecreating, Message: "recreating instance llama-1"},
			}
		},
		next: complete,
		code: 0,
		stdout: []string{"Waiting for rollout to finish: 1 of 2 updated instances are available...",
			`inferserver "llama" successfully rolled out`},
	}, {
		name: "degraded for a reason that needs attention while watched",
		initial: func(s *v1alpha1.InferServer) {
			s.Status.ObservedGeneration = 1
		},
		next: func(s *v1alpha1.InferServer) {
			s.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionDegraded, Status: metav1.ConditionTrue, Reason: inferstatus.ReasonImagePull, Message: "mindie:server cannot be pulled"}}
		},
		code:   1,
		stdout: []string{"Waiting for rollout to finish: 0 out of 2 new instances have been updated..."},
		stderr: `error: InferServer "llama" is Degraded: ImagePullFailed: mindie:server cannot be pulled` + "\n",
	}, {
		name:    "complete at the observed generation",
		initial: complete,
		code:    0,
		stdout:  []string{`inferserver "llama" successfully rolled out`},
	}, {
		name: "complete, but for an older generation",
		initial: func(s *v1alpha1.InferServer) {
			fake.Available(s)
			s.Generation = 2
		},
		next: complete,
		code: 0,
		stdout: []string{`Waiting for InferServer "llama" spec update to be observed...`,
			`inferserver "llama" successfully rolled out`},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			s := fake.InferServer("default", "llama", tc.initial)
			f := fake.New(t, NewCmdRollout, s)
			if tc.next != nil {
				next := s.DeepCopy()
				tc.next(next)
				f.WatchWith(next)
			} else {
				f.WatchWith()
			}
			r := f.Run(t, "", "rollout", "status", "llama", "--timeout=10s")
			if r.Code != tc.code || r.Stdout != strings.Join(append(tc.stdout, ""), "\n") || r.Stderr != tc.stderr {
				t.Errorf("rollout status: exit %d, want %d\nstdout:\n%s\nwant:\n%s\nstderr:\n%s\nwant:\n%s",
					r.Code, tc.code, r.Stdout, strings.Join(tc.stdout, "\n"), r.Stderr, tc.stderr)
			}
			// A rollout judged from the first state needs no watch.
			if n := len(fake.Actions(f.Infer, "watch", "inferservers")); tc.next == nil && n != 0 {
				t.Errorf("rollout status watched %d times, want none", n)
			}
		})
	}

	// One look at a rollout complete for an older generation does not
	// call it complete.
	s := fake.InferServer("default", "llama", func(s *v1alpha1.InferServer) { fake.Available(s); s.Generation = 2 })
	if out := fake.New(t, NewCmdRollout, s).MustRun(t, "", "rollout", "status", "llama", "--watch=false"); out != `Waiting for InferServer "llama" spec update to be observed...`+"\n" {
		t.Errorf("rollout status --watch=false of an unobserved generation: %q", out)
	}
}

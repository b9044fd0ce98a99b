package inferstatus

import (
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
)

func TestCompleteAndAvailable(t *testing.T) {
	cases := []struct {
		name            string
		c               Counts
		maxUnavailable  int32
		complete, avail bool
	}{
		{"all updated and available", Counts{Desired: 3, Existing: 3, Updated: 3, Available: 3}, 1, true, true},
		{"an old instance remains", Counts{Desired: 3, Existing: 4, Updated: 3, Available: 4}, 1, false, true},
		{"one not updated", Counts{Desired: 3, Existing: 3, Updated: 2, Available: 3}, 1, false, true},
		{"one updated not available", Counts{Desired: 3, Existing: 3, Updated: 3, Available: 2}, 1, false, true},
		{"below the minimum", Counts{Desired: 3, Existing: 3, Updated: 3, Available: 1}, 1, false, false},
		{"none available with maxUnavailable = desired", Counts{Desired: 2, Existing: 2, Updated: 2}, 2, false, false},
		{"zero desired", Counts{}, 0, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Complete(tc.c); got != tc.complete {
				t.Errorf("Complete(%+v) = %v, want %v", tc.c, got, tc.complete)
			}
			if got := Available(tc.c, tc.maxUnavailable); got != tc.avail {
				t.Errorf("Available(%+v, %d) = %v, want %v", tc.c, tc.maxUnavailable, got, tc.avail)
			}
		})
	}
}

func TestProgressedAndDeadline(t *testing.T) {
	base := v1alpha1.InferServerStatus{ObservedGeneration: 2, UpdateRevision: "r1", Replicas: 2, UpdatedReplicas: 1, ReadyReplicas: 1}
	same := base
	same.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionDegraded}}
	same.Instances = []v1alpha1.InstanceStatus{{Name: "a", Message: "other text"}}
	if Progressed(&base, &same) {
		t.Error("a status with the same counts is progress")
	}
	for name, change := range map[string]func(*v1alpha1.InferServerStatus){
		"generation": func(s *v1alpha1.InferServerStatus) { s.ObservedGeneration++ },
		"revision":   func(s *v1alpha1.InferServerStatus) { s.UpdateRevision = "r2" },
		"replicas":   func(s *v1alpha1.InferServerStatus) { s.Replicas-- },
		"updated":    func(s *v1alpha1.InferServerStatus) { s.UpdatedReplicas++ },
		"ready":      func(s *v1alpha1.InferServerStatus) { s.ReadyReplicas++ },
	} {
		cur := base
		change(&cur)
		if !Progressed(&base, &cur) {
			t.Errorf("a change of %s is not progress", name)
		}
	}

	last := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if exceeded, left := DeadlineExceeded(last, 60, last.Add(59*time.Second)); exceeded || left != time.Second {
		t.Errorf("59s into a 60s deadline: exceeded=%v left=%v", exceeded, left)
	}
	if exceeded, _ := DeadlineExceeded(last, 60, last.Add(60*time.Second)); !exceeded {
		t.Error("60s into a 60s deadline is not exceeded")
	}
}

func server(gen, observed int64, desired int32, st v1alpha1.InferServerStatus, conds ...metav1.Condition) *v1alpha1.InferServer {
	s := &v1alpha1.InferServer{ObjectMeta: metav1.ObjectMeta{Name: "llama", Generation: gen}}
	s.Spec.Replicas = ptr.To(desired)
	st.ObservedGeneration = observed
	st.Conditions = conds
	s.Status = st
	return s
}

func cond(typ string, status metav1.ConditionStatus, reason string) metav1.Condition {
	return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: "msg of " + reason}
}

func TestRollout(t *testing.T) {
	full := v1alpha1.InferServerStatus{Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 2, AvailableReplicas: 2}
	half := v1alpha1.InferServerStatus{Replicas: 2, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1}
	complete := cond(v1alpha1.ConditionProgressing, metav1.ConditionTrue, ReasonRolloutComplete)
	progressing := cond(v1alpha1.ConditionProgressing, metav1.ConditionTrue, ReasonRolloutInProgress)
	cases := []struct {
		name       string
		s          *v1alpha1.InferServer
		done       bool
		failReason string
		msg        string
	}{
		{"complete", server(3, 3, 2, full, complete), true, "", "successfully rolled out"},
		{"generation not observed", server(4, 3, 2, full, complete), false, "", "spec update to be observed"},
		{"counts complete but condition says in progress", server(3, 3, 2, full, progressing), false, "", "2 of 2 updated instances are available"},
		{"half updated", server(3, 3, 2, half, progressing), false, "", "1 out of 2 new instances have been updated"},
		{"deadline exceeded", server(3, 3, 2, half, cond(v1alpha1.ConditionProgressing, metav1.ConditionFalse, ReasonProgressDeadlineExceeded)),
			false, ReasonProgressDeadlineExceeded, ""},
		{"degraded for lack of NPUs", server(3, 3, 2, half, progressing, cond(v1alpha1.ConditionDegraded, metav1.ConditionTrue, ReasonInsufficientNPU)),
			false, ReasonInsufficientNPU, ""},
		{"degraded while recreating goes on", server(3, 3, 2, half, progressing, cond(v1alpha1.ConditionDegraded, metav1.ConditionTrue, ReasonInstanceRecreating)),
			false, "", "1 out of 2"},
		{"complete wins over a transient problem", server(3, 3, 2, full, complete, cond(v1alpha1.ConditionDegraded, metav1.ConditionTrue, ReasonReconcileError)),
			true, "", "successfully"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			msg, done, err := Rollout(tc.s)
			if done != tc.done {
				t.Errorf("done = %v, want %v (%q)", done, tc.done, msg)
			}
			var re *RolloutError
			switch {
			case tc.failReason == "" && err != nil:
				t.Errorf("unexpected error %v", err)
			case tc.failReason != "" && (!errors.As(err, &re) || re.Reason != tc.failReason):
				t.Errorf("error = %v, want a RolloutError with reason %s", err, tc.failReason)
			case tc.failReason != "" && !strings.Contains(err.Error(), "msg of "+tc.failReason):
				t.Errorf("error %q lacks the condition's message", err)
			}
			if !strings.Contains(msg, tc.msg) {
				t.Errorf("message %q lacks %q", msg, tc.msg)
			}
		})
	}
}

func TestIsAvailable(t *testing.T) {
	avail := cond(v1alpha1.ConditionAvailable, metav1.ConditionTrue, ReasonMinimumAvailable)
	if !IsAvailable(server(2, 2, 1, v1alpha1.InferServerStatus{}, avail)) {
		t.Error("Available=True at the observed generation is not available")
	}
	if IsAvailable(server(3, 2, 1, v1alpha1.InferServerStatus{}, avail)) {
		t.Error("Available=True at an older generation is available")
	}
	if IsAvailable(server(2, 2, 1, v1alpha1.InferServerStatus{}, cond(v1alpha1.ConditionAvailable, metav1.ConditionFalse, ReasonMinimumUnavailable))) {
		t.Error("Available=False is available")
	}
}

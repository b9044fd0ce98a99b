package inferserver

import (
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
)

// iv is an instance of the server "llama" for the planner.
func iv(index int, rev string, ready bool) instanceView {
	return instanceView{name: fmt.Sprintf("llama-%d", index), index: index, revision: rev, ready: ready}
}

func names(ins []instanceView) []string {
	out := []string{}
	for _, in := range ins {
		out = append(out, in.name)
	}
	sort.Strings(out)
	return out
}

func TestPlanInstances(t *testing.T) {
	rolling := func(replicas, surge, unavailable int) rolloutGoal {
		return rolloutGoal{replicas: replicas, maxSurge: surge, maxUnavailable: unavailable, update: "r2",
			numbers: map[string]int64{"r1": 1, "r2": 2}}
	}
	paused := func(replicas int) rolloutGoal {
		g := rolling(replicas, 1, 0)
		g.paused = true
		return g
	}
	recreate := func(replicas int) rolloutGoal {
		g := rolling(replicas, 0, replicas)
		g.recreate = true
		return g
	}
	terminating := func(in instanceView) instanceView { in.terminating = true; return in }
	broken := func(in instanceView) instanceView { in.broken = "pod llama-1-1 (rank 1) was deleted"; return in }

	for _, tc := range []struct {
		name     string
		goal     rolloutGoal
		observed []instanceView
		target   string
		recreate []string
		remove   []string
		create   []int
		wait     bool
	}{
		{name: "steady state", goal: rolling(2, 1, 0), observed: []instanceView{iv(0, "r2", true), iv(1, "r2", true)}},
		{name: "first instances", goal: rolling(3, 1, 1), create: []int{0, 1, 2}},
		{name: "scale up fills holes, lowest first", goal: rolling(4, 1, 0),
			observed: []instanceView{iv(0, "r2", true), iv(2, "r2", true)}, create: []int{1, 3}},
		{name: "scale down takes the unready, then the highest index", goal: rolling(2, 1, 0),
			observed: []instanceView{iv(0, "r2", true), iv(1, "r2", false), iv(2, "r2", true), iv(3, "r2", true)},
			remove:   []string{"llama-1", "llama-3"}},
		{name: "rolling surge 1 unavailable 0: one new, no old deleted", goal: rolling(2, 1, 0),
			observed: []instanceView{iv(0, "r1", true), iv(1, "r1", true)}, create: []int{2}},
		{name: "rolling surge 0 unavailable 1: one old goes first", goal: rolling(2, 0, 1),
			observed: []instanceView{iv(0, "r1", true), iv(1, "r1", true)}, remove: []string{"llama-1"}},
		{name: "rolling: an unready old instance goes regardless of availability", goal: rolling(2, 0, 1),
			observed: []instanceView{iv(0, "r1", true), iv(1, "r1", false)}, remove: []string{"llama-1"}},
		{name: "rolling: a new unready instance holds back the deletion of old ones", goal: rolling(2, 1, 0),
			observed: []instanceView{iv(0, "r1", true), iv(1, "r1", true), iv(2, "r2", false)}},
		{name: "rolling: a new ready instance lets an old one go", goal: rolling(2, 1, 0),
			observed: []instanceView{iv(0, "r1", true), iv(1, "r1", true), iv(2, "r2", true)}, remove: []string{"llama-1"}},
		{name: "rolling: the name of a deleted instance waits for its pods", goal: rolling(2, 1, 0),
			observed: []instanceView{iv(0, "r1", true), terminating(iv(1, "r1", false)), iv(2, "r2", true)},
			create:   nil, wait: true},
		{name: "scale up during a rollout", goal: rolling(4, 1, 1),
			observed: []instanceView{iv(0, "r1", true), iv(1, "r1", true)}, create: []int{2, 3, 4}},
		{name: "scale down during a rollout keeps the minimum available", goal: rolling(1, 1, 0),
			observed: []instanceView{iv(0, "r1", true), iv(1, "r1", true), iv(2, "r1", true), iv(3, "r2", false)},
			remove:   []string{"llama-1", "llama-2"}},
		{name: "Recreate deletes every old instance first", goal: recreate(2),
			observed: []instanceView{iv(0, "r1", true), iv(1, "r1", true)}, remove: []string{"llama-0", "llama-1"}},
		{name: "Recreate waits for old pods to go", goal: recreate(2),
			observed: []instanceView{terminating(iv(0, "r1", false))}, wait: true},
		{name: "Recreate creates once the old pods are gone", goal: recreate(2), create: []int{0, 1}},
		{name: "Recreate scales the new revision", goal: recreate(1),
			observed: []instanceView{iv(0, "r2", true), iv(1, "r2", true)}, remove: []string{"llama-1"}},
		{name: "paused replaces nothing", goal: paused(2),
			observed: []instanceView{iv(0, "r1", true), iv(1, "r2", true)}, target: "r2"},
		{name: "paused scales up with the newest running revision", goal: paused(3),
			observed: []instanceView{iv(0, "r1", true), iv(1, "r1", true)}, target: "r1", create: []int{2}},
		{name: "paused scales down", goal: paused(1),
			observed: []instanceView{iv(0, "r1", true), iv(1, "r2", true)}, target: "r2", remove: []string{"llama-1"}},
		{name: "a broken instance is recreated under its name once its pods are gone", goal: rolling(2, 1, 0),
			observed: []instanceView{iv(0, "r2", true), broken(iv(1, "r2", true))},
			recreate: []string{"llama-1"}, wait: true},
		{name: "a recreated instance comes back when its pods are gone", goal: rolling(2, 1, 0),
			observed: []instanceView{iv(0, "r2", true)}, create: []int{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := planInstances(tc.goal, tc.observed)
			target := tc.target
			if target == "" {
				target = tc.goal.update
			}
			if p.target != target {
				t.Errorf("target %s, want %s", p.target, target)
			}
			if got, want := names(p.recreate), append([]string{}, tc.recreate...); !reflect.DeepEqual(got, want) {
				t.Errorf("recreate %v, want %v", got, want)
			}
			if got, want := names(p.remove), append([]string{}, tc.remove...); !reflect.DeepEqual(got, want) {
				t.Errorf("remove %v, want %v", got, want)
			}
			if !reflect.DeepEqual(p.create, tc.create) {
				t.Errorf("create %v, want %v", p.create, tc.create)
			}
			if p.wait != tc.wait {
				t.Errorf("wait %v, want %v", p.wait, tc.wait)
			}
		})
	}
}

// TestRolloutWithinBounds runs rollouts to the end through the planner, for
// every form of maxSurge and maxUnavailable: at no step more than
// replicas+maxSurge instances, nor fewer ready than replicas-maxUnavailable.
func TestRolloutWithinBounds(t *testing.T) {
	for _, tc := range []struct {
		replicas               int32
		surge, unavailable     intstr.IntOrString
		wantSurge, wantUnavail int
	}{
		{4, intstr.FromInt32(1), intstr.FromInt32(0), 1, 0},
		{4, intstr.FromInt32(0), intstr.FromInt32(1), 0, 1},
		{2, intstr.FromInt32(0), intstr.FromInt32(1), 0, 1},
		{4, intstr.FromString("50%"), intstr.FromString("50%"), 2, 2},
		{3, intstr.FromString("50%"), intstr.FromString("50%"), 2, 1},
		{3, intstr.FromString("25%"), intstr.FromString("25%"), 1, 0},
		{4, intstr.FromString("100%"), intstr.FromString("0%"), 4, 0},
		{4, intstr.FromString("0%"), intstr.FromString("100%"), 0, 4},
		// Both come to 0: one instance may be unavailable, as with Deployments.
		{10, intstr.FromInt32(0), intstr.FromString("1%"), 0, 1},
		{3, intstr.FromInt32(0), intstr.FromInt32(0), 0, 1},
		// More unavailable than there are instances: all of them.
		{2, intstr.FromInt32(1), intstr.FromInt32(5), 1, 2},
		{1, intstr.FromString("50%"), intstr.FromString("50%"), 1, 0},
	} {
		name := fmt.Sprintf("replicas %d surge %s unavailable %s", tc.replicas, tc.surge.String(), tc.unavailable.String())
		t.Run(name, func(t *testing.T) {
			s := defaulted(func(s *v1alpha1.InferServer) {
				s.Spec.Replicas = ptr.To(tc.replicas)
				s.Spec.Strategy.RollingUpdate = &v1alpha1.RollingUpdateInferServer{MaxSurge: &tc.surge, MaxUnavailable: &tc.unavailable}
			})
			goal, err := rolloutGoalOf(s, "r2", map[string]int64{"r1": 1, "r2": 2})
			if err != nil {
				t.Fatal(err)
			}
			if goal.maxSurge != tc.wantSurge || goal.maxUnavailable != tc.wantUnavail {
				t.Fatalf("bounds %d/%d, want %d/%d", goal.maxSurge, goal.maxUnavailable, tc.wantSurge, tc.wantUnavail)
			}
			simulate(t, goal, int(tc.replicas), tc.wantSurge, tc.wantUnavail)
		})
	}
}

// TestRecreateRollout: Recreate deletes every old instance, waits for them
// to be gone, and only then creates the new ones.
func TestRecreateRollout(t *testing.T) {
	s := defaulted(func(s *v1alpha1.InferServer) {
		s.Spec.Replicas = ptr.To[int32](3)
		s.Spec.Strategy.Type = v1alpha1.RecreateInferServerStrategyType
	})
	goal, err := rolloutGoalOf(s, "r2", map[string]int64{"r1": 1, "r2": 2})
	if err != nil {
		t.Fatal(err)
	}
	if !goal.recreate || goal.maxSurge != 0 || goal.maxUnavailable != 3 {
		t.Fatalf("goal %+v", goal)
	}
	w := &world{}
	for i := 0; i < 3; i++ {
		w.live = append(w.live, iv(i, "r1", true))
	}
	for step := 0; step < 20 && !w.done(goal); step++ {
		p := w.step(goal)
		if len(p.create) > 0 {
			for _, in := range append(append([]instanceView{}, w.live...), w.terminating...) {
				if in.revision != "r2" && !contains(p.remove, in.name) {
					t.Fatalf("step %d creates %v while %s (revision %s) remains", step, p.create, in.name, in.revision)
				}
			}
		}
	}
	if !w.done(goal) {
		t.Fatalf("not rolled out: %+v", w)
	}
}

func contains(ins []instanceView, name string) bool {
	for _, in := range ins {
		if in.name == name {
			return true
		}
	}
	return false
}

// world is a cluster as the planner sees it: a created instance becomes
// ready one step later, a deleted one terminates for one step.
type world struct {
	live, terminating []instanceView
}

func (w *world) views() []instanceView {
	return append(append([]instanceView{}, w.live...), w.terminating...)
}

// step plans and carries the plan out.
func (w *world) step(g rolloutGoal) instancePlan {
	p := planInstances(g, w.views())
	w.terminating = nil
	var keep []instanceView
	for _, in := range w.live {
		if contains(p.remove, in.name) || contains(p.recreate, in.name) {
			in.terminating, in.ready = true, false
			w.terminating = append(w.terminating, in)
			continue
		}
		in.ready = true // what was created a step ago is up now
		keep = append(keep, in)
	}
	for _, idx := range p.create {
		keep = append(keep, iv(idx, p.target, false))
	}
	w.live = keep
	return p
}

func (w *world) done(g rolloutGoal) bool {
	if len(w.live) != g.replicas || len(w.terminating) > 0 {
		return false
	}
	for _, in := range w.live {
		if in.revision != g.update || !in.ready {
			return false
		}
	}
	return true
}

func simulate(t *testing.T, g rolloutGoal, replicas, surge, unavailable int) {
	t.Helper()
	w := &world{}
	for i := 0; i < replicas; i++ {
		w.live = append(w.live, iv(i, "r1", true))
	}
	for step := 0; step < 50; step++ {
		if w.done(g) {
			return
		}
		readyBefore := countByReadiness(w.live, true)
		p := planInstances(g, w.views())
		// What is ready and stays.
		ready := 0
		for _, in := range w.live {
			if in.ready && !contains(p.remove, in.name) {
				ready++
			}
		}
		w.step(g)
		if len(w.live) > replicas+surge {
			t.Fatalf("step %d: %d instances, limit %d", step, len(w.live), replicas+surge)
		}
		if limit := min(readyBefore, replicas-unavailable); ready < limit {
			t.Fatalf("step %d: %d ready, limit %d", step, ready, limit)
		}
	}
	t.Fatalf("no end after 50 steps: %+v", w)
}

// TestTrackerForgetsExactly: forgetting llama does not forget llama-2.
func TestTrackerForgetsExactly(t *testing.T) {
	tr := newTracker()
	now := time.Unix(1000, 0)
	tr.expectCreated("ns/llama", "llama-0-0", now)
	tr.expectCreated("ns/llama-2", "llama-2-0-0", now)
	tr.setRecreating("ns/llama", "llama-0", "pod llama-0-1 failed")
	tr.setRecreating("ns/llama-2", "llama-2-0", "pod llama-2-0-1 failed")
	tr.forget("ns/llama")
	if tr.pending("ns/llama", "llama-0-0", now) {
		t.Error("llama's pod is still pending")
	}
	if _, ok := tr.recreatingWhy("ns/llama", "llama-0"); ok {
		t.Error("llama's instance is still recreating")
	}
	if !tr.pending("ns/llama-2", "llama-2-0-0", now) {
		t.Error("forgetting llama forgot llama-2's pod")
	}
	if why, ok := tr.recreatingWhy("ns/llama-2", "llama-2-0"); !ok || why != "pod llama-2-0-1 failed" {
		t.Error("forgetting llama forgot llama-2's recreation")
	}
	// A pending pod expires after a minute and is forgotten once observed.
	if tr.pending("ns/llama-2", "llama-2-0-0", now.Add(2*time.Minute)) || tr.pending("ns/llama-2", "llama-2-0-0", now) {
		t.Error("a pod created long ago is still pending")
	}
	tr.expectCreated("ns/llama-2", "llama-2-0-1", now)
	tr.observed("ns/llama-2", "llama-2-0-1")
	if tr.pending("ns/llama-2", "llama-2-0-1", now) {
		t.Error("an observed pod is still pending")
	}
	tr.doneRecreating("ns/llama-2", "llama-2-0")
	if _, ok := tr.recreatingWhy("ns/llama-2", "llama-2-0"); ok {
		t.Error("a recreated instance is still recreating")
	}
}

package inferserver

import (
	"fmt"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/capacity"
)

// The rollout plan `kubectl mindie rollout plan` prints: the controller's
// own planner run forward from the instances the server reports, each
// step's new instances assumed ready before the next, with the NPUs each
// step's new instances need placed on the free NPUs of the matching nodes
// (those of deleted instances given back to their nodes). It decides the
// surge as the controller does (planFitting).

// RolloutPlan is what a rollout of a cross-node or Prefill/Decode server
// would do.
type RolloutPlan struct {
	// Target is the revision the rollout goes to.
	Target string
	// MaxSurge and MaxUnavailable are the bounds in instances (groups).
	MaxSurge, MaxUnavailable int
	// Recreate: every old instance goes before a new one is made.
	Recreate bool
	// InstanceNPUs is what one new instance asks for; InstancePods its pods.
	InstanceNPUs int64
	InstancePods int
	// Free describes the free NPUs of the matching nodes at the start;
	// FreeKnown is false when they were not given.
	Free      string
	FreeKnown bool
	// InPlace says why the rollout goes in place, or is "".
	InPlace string
	// SurgeWaits says why the surge will wait for NPUs (maxUnavailable 0),
	// or is "".
	SurgeWaits string
	Steps      []RolloutStep
	// Incomplete: the plan did not reach the end in the steps it may take.
	Incomplete bool
}

// RolloutStep is one step of a plan.
type RolloutStep struct {
	// Delete and Create are the instances the step deletes and makes.
	Delete, Create []string
	// NPUs the step's new instances ask for, and whether they fit.
	NPUs int64
	Fits bool
	// Ready is how many instances serve once the step's deletions are
	// done, before its new instances are ready.
	Ready int
}

// planFitting plans a sync; when a rolling update's plan creates beyond
// the count and fits says the new instances do not fit, it plans again in
// place, if maxUnavailable allows. decided says whether fits was asked.
func planFitting(g rolloutGoal, observed []instanceView, fits func(n int) (bool, string, error)) (p instancePlan, decided bool, d surgeDecision, err error) {
	p = planInstances(g, observed)
	d.revision = g.update
	if g.recreate || g.paused || g.maxSurge == 0 || surgeOf(g, observed, p) == 0 {
		return p, false, d, nil
	}
	ok, why, err := fits(len(p.create))
	if err != nil {
		return p, false, d, err
	}
	d.fits, d.why = ok, why
	if ok || g.maxUnavailable == 0 {
		return p, true, d, nil
	}
	d.inPlace = true
	g.maxSurge = 0
	return planInstances(g, observed), true, d, nil
}

// maxPlanSteps bounds a plan: a rollout of many instances one at a time
// takes about twice as many steps as instances.
const maxPlanSteps = 500

// PlanRollout plans the rollout of s (defaulted) to target from the
// instances of its status, on the nodes given with their free NPUs; nil
// nodes means they are not known (the plan then takes every step to fit,
// and says nothing of the surge).
func PlanRollout(s *v1alpha1.InferServer, target string, nodes []capacity.Node) (RolloutPlan, error) {
	if nodesPerInstance(s) == 1 && !isPD(s) {
		return RolloutPlan{}, fmt.Errorf("InferServer %q runs single-node instances as a Deployment, which rolls them out itself; a plan is for cross-node and Prefill/Decode servers", s.Name)
	}
	g, err := rolloutGoalOf(s, target, map[string]int64{})
	if err != nil {
		return RolloutPlan{}, err
	}
	g.paused = false
	pods := instancePods(s, "x")
	plan := RolloutPlan{Target: target, MaxSurge: g.maxSurge, MaxUnavailable: g.maxUnavailable, Recreate: g.recreate,
		InstanceNPUs: capacity.Total(pods), InstancePods: len(pods), Free: capacity.Describe(nodes)}
	known := nodes != nil
	plan.FreeKnown = known
	if !known {
		plan.Free = "the nodes' free NPUs are not known"
	}
	free := append([]capacity.Node(nil), nodes...)
	// The pods of each instance, and their nodes: a deleted instance's
	// NPUs go back to its nodes.
	held := map[string][]capacity.Pod{}
	placedOn := map[string]map[string]string{}
	var views []instanceView
	for _, is := range s.Status.Instances {
		idx, ok := instanceIndex(s.Name, is.Name)
		if !ok {
			continue
		}
		views = append(views, instanceView{name: is.Name, index: idx, revision: is.Revision, ready: is.Ready})
		on := map[string]string{}
		for i, p := range is.Pods {
			on[p.Name] = p.Node
			// Its NPUs as the current shape's pod of that rank asks.
			held[is.Name] = append(held[is.Name], capacity.Pod{Name: p.Name, NPUs: pods[min(i, len(pods)-1)].NPUs})
		}
		placedOn[is.Name] = on
	}
	decided := false
	for step := 0; ; step++ {
		if step == maxPlanSteps {
			plan.Incomplete = true
			break
		}
		var p instancePlan
		if decided || !known {
			// Asked once for the rollout, as the controller does.
			p = planInstances(g, views)
		} else {
			var asked bool
			var d surgeDecision
			p, asked, d, _ = planFitting(g, views, func(n int) (bool, string, error) {
				ok, why := newInstancesFit(s, free, n)
				return ok, why, nil
			})
			if asked {
				decided = true
				switch {
				case d.inPlace:
					plan.InPlace = d.why
					g.maxSurge = 0
				case !d.fits:
					plan.SurgeWaits = d.why
				}
			}
		}
		if len(p.remove) == 0 && len(p.create) == 0 && len(p.recreate) == 0 {
			if done(views, target, g.replicas) {
				break
			}
			if !p.wait {
				plan.Incomplete = true
				break
			}
		}
		var st RolloutStep
		gone := map[string]bool{}
		for _, v := range append(p.recreate, p.remove...) {
			st.Delete = append(st.Delete, v.name)
			gone[v.name] = true
			for _, hp := range held[v.name] {
				giveBack(free, placedOn[v.name][hp.Name], hp.NPUs)
			}
		}
		var kept []instanceView
		for _, v := range views {
			if !gone[v.name] {
				kept = append(kept, v)
				if v.ready {
					st.Ready++
				}
			}
		}
		var want []capacity.Pod
		for _, idx := range p.create {
			name := fmt.Sprintf("%s-%d", s.Name, idx)
			st.Create = append(st.Create, name)
			ip := instancePods(s, name)
			want = append(want, ip...)
			held[name] = ip
			kept = append(kept, instanceView{name: name, index: idx, revision: target})
		}
		st.NPUs = capacity.Total(want)
		var on map[string]string
		on, free, st.Fits = capacity.Place(free, want)
		st.Fits = st.Fits || !known
		for _, idx := range p.create {
			placedOn[fmt.Sprintf("%s-%d", s.Name, idx)] = on
		}
		plan.Steps = append(plan.Steps, st)
		// The step's new instances become ready before the next.
		for i := range kept {
			kept[i].ready = true
		}
		views = kept
	}
	return plan, nil
}

// giveBack returns NPUs to a node of the list (nothing when the node is
// not one of them).
func giveBack(nodes []capacity.Node, node string, npus int64) {
	for i := range nodes {
		if nodes[i].Name == node {
			nodes[i].Free = min(nodes[i].Allocatable, nodes[i].Free+npus)
		}
	}
}

// done says whether every instance runs target and there are as many as
// wanted.
func done(views []instanceView, target string, replicas int) bool {
	if len(views) != replicas {
		return false
	}
	for _, v := range views {
		if v.revision != target {
			return false
		}
	}
	return true
}

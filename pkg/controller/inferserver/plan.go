package inferserver

import (
	"fmt"
	"sort"

	"k8s.io/apimachinery/pkg/util/intstr"

	"mindie.io/deployer/apis/infer/v1alpha1"
)

// The rollout maths of cross-node InferServers, as the Deployment
// controller's rolling.go and recreate.go do it for ReplicaSets, but counted
// in instances. planInstances is a pure function of what a sync observed and
// what the spec asks for; syncInstances carries the plan out.

// instanceView is what the planner knows of one cross-node instance.
type instanceView struct {
	name     string
	index    int
	revision string
	// ready: every pod of the instance is ready.
	ready bool
	// broken says why the instance must be recreated; empty when it need not.
	broken string
	// terminating: every pod of the instance that is left is being deleted.
	terminating bool
}

// rolloutGoal is what the instances should become.
type rolloutGoal struct {
	replicas int
	// recreate: every old instance goes before a new one is made.
	recreate bool
	// paused stops replacing instances; scaling goes on.
	paused bool
	// maxSurge and maxUnavailable are counts of instances (resolveBounds).
	maxSurge, maxUnavailable int
	// update is the revision being rolled out.
	update string
	// numbers are the revisions' numbers by name: paused, new instances get
	// the newest revision an instance runs.
	numbers map[string]int64
}

// instancePlan is what one sync does to the instances.
type instancePlan struct {
	// target is the revision new instances get.
	target string
	// recreate are the broken instances: deleted whole now, made again under
	// the same name once their pods are gone.
	recreate []instanceView
	// remove are the instances the rollout or a scale-down deletes.
	remove []instanceView
	// create are the indexes of the instances to make.
	create []int
	// wait: something must go away before the plan can go on (old pods
	// terminating, a name still taken); look again soon.
	wait bool
}

// rolloutGoalOf reads the goal from the (defaulted) spec.
func rolloutGoalOf(s *v1alpha1.InferServer, update string, numbers map[string]int64) (rolloutGoal, error) {
	surge, unavailable, err := resolveBounds(s)
	if err != nil {
		return rolloutGoal{}, err
	}
	return rolloutGoal{
		replicas:       int(replicas(s)),
		recreate:       s.Spec.Strategy.Type == v1alpha1.RecreateInferServerStrategyType,
		paused:         s.Spec.Paused,
		maxSurge:       int(surge),
		maxUnavailable: int(unavailable),
		update:         update,
		numbers:        numbers,
	}, nil
}

// planInstances decides what to do with the observed instances (every one
// the sync saw, terminating ones included).
func planInstances(g rolloutGoal, observed []instanceView) instancePlan {
	p := instancePlan{target: g.update}
	var healthy []instanceView
	for _, in := range observed {
		switch {
		case in.terminating:
		case in.broken != "":
			p.recreate = append(p.recreate, in)
		default:
			healthy = append(healthy, in)
		}
	}
	if g.paused {
		// Paused midway, new instances (scaling) get the newest revision the
		// instances already run.
		if rev := newestRunning(g.numbers, healthy); rev != "" {
			p.target = rev
		}
	}
	var fresh, stale []instanceView
	for _, in := range healthy {
		if in.revision == p.target {
			fresh = append(fresh, in)
		} else {
			stale = append(stale, in)
		}
	}
	var toCreate int
	switch {
	case g.paused:
		toCreate = max(0, g.replicas-len(healthy))
		p.remove = pickForDeletion(healthy, len(healthy)-g.replicas)
	case g.recreate:
		toCreate, p.remove, p.wait = planRecreate(g, observed, fresh, stale, p.target)
	default:
		toCreate, p.remove = planRolling(g, healthy, fresh, stale)
	}
	var wait bool
	p.create, wait = freeIndexes(observed, append(append([]instanceView{}, p.recreate...), p.remove...), toCreate)
	p.wait = p.wait || wait
	return p
}

// planRecreate deletes every old instance, waits for their pods to go, then
// scales the new revision to the count.
func planRecreate(g rolloutGoal, observed, fresh, stale []instanceView, target string) (int, []instanceView, bool) {
	if len(stale) > 0 {
		return 0, stale, false
	}
	for _, in := range observed {
		if in.revision != target {
			// Pods of another revision are still terminating.
			return 0, nil, true
		}
	}
	return max(0, g.replicas-len(fresh)), pickForDeletion(fresh, len(fresh)-g.replicas), false
}

// planRolling replaces old instances within the bounds: at most
// replicas+maxSurge instances, at least replicas-maxUnavailable ready.
// Instances being deleted count as neither.
func planRolling(g rolloutGoal, healthy, fresh, stale []instanceView) (int, []instanceView) {
	want, total := g.replicas, len(healthy)
	toCreate := 0
	if len(fresh) < want {
		toCreate = max(0, min(want-len(fresh), want+g.maxSurge-total))
	}
	// Old instances go within what may be unavailable, the unready first:
	// deleting them costs no availability.
	minAvailable := want - g.maxUnavailable
	budget := total - minAvailable - countByReadiness(fresh, false)
	available := countByReadiness(healthy, true)
	var remove []instanceView
	for _, in := range pickForDeletion(stale, len(stale)) {
		if budget <= 0 {
			break
		}
		if in.ready {
			if available-1 < minAvailable {
				continue
			}
			available--
		}
		remove = append(remove, in)
		budget--
	}
	// Instances of the new revision above the count go too (a scale-down).
	if extra := len(fresh) - want; extra > 0 {
		remove = append(remove, pickForDeletion(fresh, extra)...)
	}
	return toCreate, remove
}

// countByReadiness counts the instances whose readiness is ready.
func countByReadiness(ins []instanceView, ready bool) int {
	n := 0
	for _, in := range ins {
		if in.ready == ready {
			n++
		}
	}
	return n
}

// freeIndexes picks n indexes for new instances, lowest first. An index
// held by an instance that is terminating or being deleted is not reused
// until its pods are gone (the instance comes back under its name): the
// plan waits for it.
func freeIndexes(observed, deleted []instanceView, n int) ([]int, bool) {
	gone := map[string]bool{}
	for _, in := range deleted {
		gone[in.name] = true
	}
	// index -> whether a live instance holds it
	used := map[int]bool{}
	for _, in := range observed {
		used[in.index] = !in.terminating && !gone[in.name]
	}
	var out []int
	for idx := 0; n > 0; idx++ {
		live, exists := used[idx]
		if exists && live {
			continue
		}
		if exists {
			return out, true
		}
		out = append(out, idx)
		n--
	}
	return out, false
}

// newestRunning is the revision with the highest number that an instance
// runs, or "".
func newestRunning(numbers map[string]int64, ins []instanceView) string {
	newest, number := "", int64(-1)
	for _, in := range ins {
		if n, ok := numbers[in.revision]; ok && n > number {
			newest, number = in.revision, n
		}
	}
	return newest
}

// pickForDeletion chooses n instances to remove: unready ones first, then
// the highest index.
func pickForDeletion(ins []instanceView, n int) []instanceView {
	if n <= 0 {
		return nil
	}
	cp := append([]instanceView{}, ins...)
	sort.SliceStable(cp, func(i, j int) bool {
		if cp[i].ready != cp[j].ready {
			return !cp[i].ready
		}
		return cp[i].index > cp[j].index
	})
	return cp[:min(n, len(cp))]
}

// rollingBounds are the spec's maxSurge and maxUnavailable (a RollingUpdate
// strategy is defaulted with both).
func rollingBounds(s *v1alpha1.InferServer) (surge, unavailable intstr.IntOrString) {
	ru := s.Spec.Strategy.RollingUpdate
	return *ru.MaxSurge, *ru.MaxUnavailable
}

// resolveBounds turns maxSurge and maxUnavailable into instance counts, as
// Deployments do: surge rounds up, unavailability down, and when both come
// out 0 one instance may be unavailable so that the rollout can progress.
func resolveBounds(s *v1alpha1.InferServer) (surge, unavailable int32, err error) {
	if s.Spec.Strategy.Type == v1alpha1.RecreateInferServerStrategyType {
		return 0, replicas(s), nil
	}
	su, un := rollingBounds(s)
	n := int(replicas(s))
	sv, err := intstr.GetScaledValueFromIntOrPercent(&su, n, true)
	if err != nil {
		return 0, 0, fmt.Errorf("spec.strategy.rollingUpdate.maxSurge: %w", err)
	}
	uv, err := intstr.GetScaledValueFromIntOrPercent(&un, n, false)
	if err != nil {
		return 0, 0, fmt.Errorf("spec.strategy.rollingUpdate.maxUnavailable: %w", err)
	}
	if sv == 0 && uv == 0 {
		uv = 1
	}
	if uv > n {
		uv = n
	}
	return int32(sv), int32(uv), nil
}

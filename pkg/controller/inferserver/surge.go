package inferserver

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/capacity"
	"mindie.io/deployer/pkg/inferstatus"
)

// Before a rolling update of cross-node instances (and Prefill/Decode
// groups) surges, the controller asks whether the surge fits the free
// NPUs of the nodes its pods could run on. When it does not, new
// instances would wait Pending for NPUs that only the rollout itself can
// free, so the rollout goes in place instead: maxSurge 0, old instances
// deleted within maxUnavailable, their NPUs taken by the new ones. With
// maxUnavailable 0 there is no in place: the surge goes ahead and waits
// for NPUs, and the controller says so. The answer holds for the rest of
// the rollout of that revision (the surge's own pods, once bound, would
// otherwise make it look as if it never fitted); a restarted controller
// asks again.

// ReasonRollingInPlace is the event and the Progressing reason of a
// rolling update whose surge does not fit: it rolls in place.
const ReasonRollingInPlace = inferstatus.ReasonRollingInPlace

// ReasonSurgeDoesNotFit is the event of a rolling update whose surge does
// not fit and which may not roll in place (maxUnavailable 0).
const ReasonSurgeDoesNotFit = "SurgeDoesNotFit"

// surgeDecision is what the controller decided for one rollout.
type surgeDecision struct {
	revision string
	// fits: the new instances fit; inPlace: they did not and the rollout
	// goes in place. why is the question asked.
	fits, inPlace bool
	why           string
}

// instancePods are the pods one new instance (a group, for a PD server)
// of s asks to place, under the instance's name.
func instancePods(s *v1alpha1.InferServer, instance string) []capacity.Pod {
	n := podsPerInstance(s)
	out := make([]capacity.Pod, 0, n)
	for rank := 0; rank < n; rank++ {
		p := capacity.Pod{Name: podName(s, instance, rank), NPUs: int64(npuCount(s)), Spread: instance}
		if isPD(s) {
			m, _, _ := memberOfRank(s, rank)
			p.NPUs = int64(npuCount(roleServer(s, m.role)))
			p.Spread = ""
			if m.nodes > 1 {
				p.Spread = instance + "-" + m.name()
			}
		}
		out = append(out, p)
	}
	return out
}

// NodeSelection is which nodes the pods of s could run on.
func NodeSelection(s *v1alpha1.InferServer) capacity.Selection {
	return capacity.Selection{Resource: npuResource(s), NodeSelector: podNodeSelector(s), Tolerations: s.Spec.Tolerations}
}

// surgeOf is how many of a plan's new instances go beyond the count: the
// surge.
func surgeOf(g rolloutGoal, observed []instanceView, p instancePlan) int {
	live := 0
	for _, in := range observed {
		if !in.terminating && in.broken == "" {
			live++
		}
	}
	return min(len(p.create), max(0, live-len(p.remove)+len(p.create)-g.replicas))
}

// planWithinNPUs plans the sync, rolling in place when the instances a
// rolling update is about to create, surge included, do not fit the free
// NPUs.
func (c *Controller) planWithinNPUs(ctx context.Context, st *syncState, g rolloutGoal, observed []instanceView) (instancePlan, error) {
	s := st.server
	if d, known := c.track.surge(st.key); known && d.revision == g.update {
		if d.inPlace && !g.recreate && !g.paused {
			st.inPlace = d.why
			g.maxSurge = 0
		}
		return planInstances(g, observed), nil
	}
	p, asked, d, err := planFitting(g, observed, func(n int) (bool, string, error) { return c.creationsFit(ctx, s, n) })
	if err != nil || !asked {
		return p, err
	}
	switch {
	case d.inPlace:
		st.inPlace = d.why
		c.recorder.Eventf(s, corev1.EventTypeNormal, ReasonRollingInPlace,
			"Rolling out %s in place, at most %d instances unavailable at a time: %s", g.update, g.maxUnavailable, d.why)
	case !d.fits:
		c.recorder.Eventf(s, corev1.EventTypeWarning, ReasonSurgeDoesNotFit,
			"Rolling out %s: %s; maxUnavailable is 0, so the new instances wait for NPUs", g.update, d.why)
	}
	c.track.setSurge(st.key, d)
	return p, nil
}

// creationsFit says whether n new instances of s fit the free NPUs of the
// nodes they could run on, and why (or why not).
func (c *Controller) creationsFit(ctx context.Context, s *v1alpha1.InferServer, n int) (bool, string, error) {
	nodes, err := c.kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return false, "", fmt.Errorf("list nodes: %w", err)
	}
	pods, err := c.kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "status.phase!=Succeeded,status.phase!=Failed"})
	if err != nil {
		return false, "", fmt.Errorf("list pods: %w", err)
	}
	ok, why := newInstancesFit(s, capacity.Nodes(NodeSelection(s), nodes.Items, pods.Items), n)
	return ok, why, nil
}

// newInstancesFit says whether n new instances of s fit the nodes' free
// NPUs, and describes the question.
func newInstancesFit(s *v1alpha1.InferServer, free []capacity.Node, n int) (bool, string) {
	var want []capacity.Pod
	for i := 0; i < n; i++ {
		want = append(want, instancePods(s, fmt.Sprintf("new-%d", i))...)
	}
	_, _, ok := capacity.Place(free, want)
	return ok, fmt.Sprintf("%d new instances with the surge need %d NPUs (%d pods), %s", n, capacity.Total(want), len(want), capacity.Describe(free))
}

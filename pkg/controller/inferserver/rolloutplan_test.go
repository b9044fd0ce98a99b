package inferserver

import (
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/capacity"
)

// planServer is a 2-group 1P1D server (8 NPUs a member) whose groups run
// revision old, each member's pod on a node of its own.
func planServer(surge, unavailable int32) (*v1alpha1.InferServer, []capacity.Node) {
	s := pdServer("llama", 2, 1, 1, func(s *v1alpha1.InferServer) {
		s.Spec.Strategy.RollingUpdate = &v1alpha1.RollingUpdateInferServer{
			MaxSurge: ptr.To(intstr.FromInt32(surge)), MaxUnavailable: ptr.To(intstr.FromInt32(unavailable))}
	})
	var nodes []capacity.Node
	for g := 0; g < 2; g++ {
		is := v1alpha1.InstanceStatus{Name: fmt.Sprintf("llama-%d", g), Revision: "old", Ready: true}
		for _, m := range []string{"p0", "d0"} {
			node := fmt.Sprintf("node-%d-%s", g, m)
			is.Pods = append(is.Pods, v1alpha1.InstancePodStatus{Name: is.Name + "-" + m, Node: node})
			nodes = append(nodes, capacity.Node{Name: node, Allocatable: 8})
		}
		s.Status.Instances = append(s.Status.Instances, is)
	}
	return s, nodes
}

func steps(p RolloutPlan) string {
	var out []string
	for _, st := range p.Steps {
		out = append(out, fmt.Sprintf("-%s +%s %d %v %d", orNone(st.Delete), orNone(st.Create), st.NPUs, st.Fits, st.Ready))
	}
	return strings.Join(out, " | ")
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "."
	}
	return strings.Join(s, ",")
}

func TestPlanRollout(t *testing.T) {
	// Every NPU taken: the surge does not fit, the rollout goes in place.
	s, nodes := planServer(1, 1)
	p, err := PlanRollout(s, "new", nodes)
	if err != nil {
		t.Fatal(err)
	}
	want := "-llama-1 +. 0 true 1 | -. +llama-1 16 true 1 | -llama-0 +. 0 true 1 | -. +llama-0 16 true 1"
	if got := steps(p); got != want || p.InPlace == "" || p.SurgeWaits != "" || p.Incomplete || p.InstanceNPUs != 16 || p.InstancePods != 2 {
		t.Errorf("plan %s (in place %q, waits %q, incomplete %v)\nwant %s", got, p.InPlace, p.SurgeWaits, p.Incomplete, want)
	}
	if !strings.Contains(p.InPlace, "2 new instances with the surge need 32 NPUs (4 pods), 16 NPUs free") {
		t.Errorf("in place: %s", p.InPlace)
	}

	// Two free nodes more: the surge fits.
	s, nodes = planServer(1, 1)
	nodes = append(nodes, capacity.Node{Name: "spare-a", Allocatable: 8, Free: 8}, capacity.Node{Name: "spare-b", Allocatable: 8, Free: 8})
	p, _ = PlanRollout(s, "new", nodes)
	want = "-llama-1 +. 0 true 1 | -. +llama-1,llama-2 32 true 1 | -llama-0 +. 0 true 2"
	if got := steps(p); got != want || p.InPlace != "" {
		t.Errorf("plan %s (in place %q)\nwant %s", got, p.InPlace, want)
	}

	// maxUnavailable 0 and no room: the surge waits for NPUs, and says so.
	s, nodes = planServer(1, 0)
	p, _ = PlanRollout(s, "new", nodes)
	if len(p.Steps) == 0 || p.Steps[0].Fits || p.SurgeWaits == "" || p.InPlace != "" {
		t.Errorf("plan %s (waits %q)", steps(p), p.SurgeWaits)
	}

	// Nothing to do when every group runs the target.
	s, nodes = planServer(1, 1)
	if p, _ := PlanRollout(s, "old", nodes); len(p.Steps) != 0 || p.Incomplete {
		t.Errorf("plan %s", steps(p))
	}
	// Single-node servers roll as Deployments.
	if _, err := PlanRollout(newServer("plain", nil), "new", nodes); err == nil || !strings.Contains(err.Error(), "Deployment") {
		t.Errorf("single-node: %v", err)
	}
}

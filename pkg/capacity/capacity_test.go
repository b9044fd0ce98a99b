package capacity

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const npu = corev1.ResourceName("huawei.com/Ascend910")

func node(name string, npus int64, mutate func(*corev1.Node)) corev1.Node {
	n := corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"accelerator": "huawei-Ascend910"}},
		Status: corev1.NodeStatus{
			Allocatable: corev1.ResourceList{npu: *resource.NewQuantity(npus, resource.DecimalSI)},
			Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		},
	}
	if mutate != nil {
		mutate(&n)
	}
	return n
}

func pod(nodeName string, npus int64, phase corev1.PodPhase) corev1.Pod {
	return corev1.Pod{
		Spec: corev1.PodSpec{NodeName: nodeName, Containers: []corev1.Container{{
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{npu: *resource.NewQuantity(npus, resource.DecimalSI)}}}}},
		Status: corev1.PodStatus{Phase: phase},
	}
}

func TestNodes(t *testing.T) {
	nodes := []corev1.Node{
		node("a", 8, nil),
		node("b", 8, nil),
		node("cordoned", 8, func(n *corev1.Node) { n.Spec.Unschedulable = true }),
		node("notready", 8, func(n *corev1.Node) { n.Status.Conditions[0].Status = corev1.ConditionFalse }),
		node("other", 8, func(n *corev1.Node) { n.Labels = nil }),
		node("tainted", 8, func(n *corev1.Node) {
			n.Spec.Taints = []corev1.Taint{{Key: "npu", Value: "faulty", Effect: corev1.TaintEffectNoSchedule}}
		}),
		node("soft", 8, func(n *corev1.Node) {
			n.Spec.Taints = []corev1.Taint{{Key: "busy", Effect: corev1.TaintEffectPreferNoSchedule}}
		}),
		node("nonpu", 0, nil),
	}
	pods := []corev1.Pod{pod("a", 4, corev1.PodRunning), pod("a", 2, corev1.PodPending), pod("b", 8, corev1.PodSucceeded), pod("", 8, corev1.PodPending)}
	sel := Selection{Resource: npu, NodeSelector: map[string]string{"accelerator": "huawei-Ascend910"}}
	got := Nodes(sel, nodes, pods)
	want := "a:2 b:8 soft:8"
	if s := describe(got); s != want {
		t.Errorf("nodes %s, want %s", s, want)
	}
	sel.Tolerations = []corev1.Toleration{{Key: "npu", Operator: corev1.TolerationOpExists}}
	if s := describe(Nodes(sel, nodes, pods)); s != "a:2 b:8 soft:8 tainted:8" {
		t.Errorf("with a toleration: %s", s)
	}
	if d := Describe(got); d != "18 NPUs free on 3 matching nodes (a 2, b 8, soft 8)" {
		t.Errorf("describe %q", d)
	}
}

func describe(nodes []Node) string {
	var parts []string
	for _, n := range nodes {
		parts = append(parts, n.Name+":"+resource.NewQuantity(n.Free, resource.DecimalSI).String())
	}
	return strings.Join(parts, " ")
}

func TestPlace(t *testing.T) {
	nodes := []Node{{Name: "a", Free: 8}, {Name: "b", Free: 4}, {Name: "c", Free: 4}}
	// Largest first: the 8 takes a, the 4s take b and c.
	placed, left, ok := Place(nodes, []Pod{{Name: "p", NPUs: 4}, {Name: "d", NPUs: 8}, {Name: "q", NPUs: 4}})
	if !ok || placed["d"] != "a" || placed["p"] != "b" || placed["q"] != "c" || FreeTotal(left) != 0 || FreeTotal(nodes) != 16 {
		t.Errorf("placed %v left %v ok %v", placed, left, ok)
	}
	// Two pods of one spread cannot share a node, though it has room.
	_, _, ok = Place([]Node{{Name: "a", Free: 16}}, []Pod{{Name: "0", NPUs: 8, Spread: "g"}, {Name: "1", NPUs: 8, Spread: "g"}})
	if ok {
		t.Error("a spread placed on one node")
	}
	_, _, ok = Place([]Node{{Name: "a", Free: 16}}, []Pod{{Name: "0", NPUs: 8}, {Name: "1", NPUs: 8}})
	if !ok {
		t.Error("two pods without a spread did not share a node")
	}
	placed, _, ok = Place(nodes, []Pod{{Name: "x", NPUs: 9}, {Name: "y", NPUs: 1}})
	if ok || placed["y"] != "a" || placed["x"] != "" {
		t.Errorf("placed %v ok %v", placed, ok)
	}
	if Total([]Pod{{NPUs: 3}, {NPUs: 5}}) != 8 {
		t.Error("total")
	}
}

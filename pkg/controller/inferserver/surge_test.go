package inferserver

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/ascend"
	"mindie.io/deployer/pkg/inferstatus"
)

// addNode adds a ready node of 8 Ascend910 NPUs to the fake cluster.
func (f *fixture) addNode(name string) {
	f.t.Helper()
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{ascend.LabelAccelerator: ascend.AcceleratorValue("Ascend910")}},
		Status: corev1.NodeStatus{
			Allocatable: corev1.ResourceList{ascend.ResourceName("Ascend910"): resource.MustParse("8")},
			Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		},
	}
	if _, err := f.kube.CoreV1().Nodes().Create(f.ctx, n, metav1.CreateOptions{}); err != nil {
		f.t.Fatal(err)
	}
}

// TestSurgeThatDoesNotFitRollsInPlace rolls a 2-group 1P1D server with
// maxSurge 1 and maxUnavailable 1 on nodes whose NPUs its pods take: the
// surge group would wait for NPUs only the rollout frees, so the rollout
// goes in place and says so. With two more nodes, the same rollout
// surges.
func TestSurgeThatDoesNotFitRollsInPlace(t *testing.T) {
	for _, spare := range []int{0, 2} {
		t.Run(map[int]string{0: "full", 2: "room"}[spare], func(t *testing.T) {
			f, _ := linkedPD(t, 5, 1, 1)
			for _, p := range f.pods() {
				f.addNode(p.Spec.NodeName)
			}
			for i := 0; i < spare; i++ {
				f.addNode("spare-" + string(rune('a'+i)))
			}
			f.update("llama", func(s *v1alpha1.InferServer) { s.Spec.Image = "mindie:v2" })
			// The first step deletes one old group (maxUnavailable 1), whose
			// index the next one takes; the second creates with the surge.
			if _, writes := f.sync("llama"); count(writes, "delete pods llama-1-") != 2 || has(writes, "create pods") {
				t.Fatalf("writes %v", writes)
			}
			_, writes := f.sync("llama")
			s := f.server("llama")
			p := condition(s, v1alpha1.ConditionProgressing)
			ev := f.events()
			if spare == 0 {
				if has(writes, "create pods llama-2-") || !has(writes, "create pods llama-1-p0") || has(writes, "delete pods") {
					t.Errorf("writes %v", writes)
				}
				if p == nil || p.Reason != inferstatus.ReasonRollingInPlace ||
					!strings.Contains(p.Message, "2 new instances with the surge need 32 NPUs (4 pods), 16 NPUs free on 4 matching nodes") {
					t.Errorf("progressing %+v", p)
				}
				if count(ev, "RollingInPlace Rolling out") != 1 || !has(ev, "at most 1 instances unavailable at a time") {
					t.Errorf("events %v", ev)
				}
				msg, _, _ := inferstatus.Rollout(s)
				if !strings.Contains(msg, "Rolling in place: 2 new instances with the surge need 32 NPUs") {
					t.Errorf("rollout status %q", msg)
				}
				// Asked once for the rollout, not at every sync.
				f.sync("llama")
				if ev := f.events(); has(ev, "RollingInPlace") {
					t.Errorf("asked again: %v", ev)
				}
				return
			}
			if !has(writes, "create pods llama-2-p0") || !has(writes, "create pods llama-1-d0") || has(writes, "delete pods") {
				t.Errorf("writes %v", writes)
			}
			if p == nil || p.Reason != inferstatus.ReasonRolloutInProgress || has(ev, "RollingInPlace") {
				t.Errorf("progressing %+v, events %v", p, ev)
			}
		})
	}
}

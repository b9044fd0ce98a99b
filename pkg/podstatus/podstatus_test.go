package podstatus

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestReadyServingContainer(t *testing.T) {
	ready := func(s corev1.ConditionStatus) *corev1.Pod {
		return &corev1.Pod{Status: corev1.PodStatus{
			Conditions:        []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}, {Type: corev1.PodReady, Status: s}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "a"}, {Name: "b", RestartCount: 2}},
		}}
	}
	if !Ready(ready(corev1.ConditionTrue)) || Ready(ready(corev1.ConditionFalse)) || Ready(&corev1.Pod{}) {
		t.Error("Ready does not follow the Ready condition")
	}
	p := ready(corev1.ConditionTrue)
	if !Serving(p) {
		t.Error("a Ready pod is not serving")
	}
	p.DeletionTimestamp = &metav1.Time{}
	if Serving(p) {
		t.Error("a pod being deleted is serving")
	}
	if c := Container(p, "b"); c == nil || c.RestartCount != 2 {
		t.Errorf("Container b: %+v", c)
	}
	if c := Container(p, "c"); c != nil {
		t.Errorf("Container c: %+v", c)
	}
}

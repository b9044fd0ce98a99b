package cachetrim

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

func TestManagedFields(t *testing.T) {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{"a": "b"},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}}}
	out, err := ManagedFields(p)
	if err != nil || out.(*corev1.Pod).ManagedFields != nil || out.(*corev1.Pod).Labels["a"] != "b" {
		t.Errorf("ManagedFields: %+v, %v", out, err)
	}
	// A tombstone is not an object: it passes as it is.
	tomb := cache.DeletedFinalStateUnknown{Key: "ns/p", Obj: p}
	if out, err := ManagedFields(tomb); err != nil || out != any(tomb) {
		t.Errorf("tombstone: %+v, %v", out, err)
	}
}

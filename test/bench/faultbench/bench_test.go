package main

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/ascend"
)

func TestPickVictim(t *testing.T) {
	now := time.Now()
	pods := []podState{
		{name: "unready", node: "n0", ip: "127.0.0.1"},
		{name: "deleting", node: "n1", ip: "127.0.0.2", ready: now, deleting: now},
		{name: "a", node: "n2", ip: "127.0.0.3", ready: now},
		{name: "b", node: "n3", ip: "127.0.0.4", ready: now},
	}
	routers := map[string]bool{"n2": true}
	if v, ok := pickVictim(pods, routers, false); !ok || v.name != "a" {
		t.Errorf("victim %q %t, want the first ready, live pod a", v.name, ok)
	}
	if v, ok := pickVictim(pods, routers, true); !ok || v.name != "b" {
		t.Errorf("victim avoiding router nodes %q %t, want b", v.name, ok)
	}
	// Every candidate shares a node with a router: the first one still.
	routers["n3"] = true
	if v, ok := pickVictim(pods, routers, true); !ok || v.name != "a" {
		t.Errorf("victim when every node has a router %q %t, want a", v.name, ok)
	}
	if _, ok := pickVictim(pods[:2], nil, false); ok {
		t.Error("picked a victim among pods neither ready nor live")
	}
}

func pod(uid, node string, ready bool, deleting bool) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid), Name: "p-" + uid,
			Labels:      map[string]string{v1alpha1.LabelServer: "s"},
			Annotations: map[string]string{ascend.ChipListAnnotation(npuType): "Ascend910-2,Ascend910-3"}},
		Spec:   corev1.PodSpec{NodeName: node},
		Status: corev1.PodStatus{PodIP: "127.0.0.9"},
	}
	if ready {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	}
	if deleting {
		p.DeletionTimestamp = &metav1.Time{Time: time.Now()}
		p.DeletionGracePeriodSeconds = ptr.To[int64](5)
	}
	return p
}

func TestTracker(t *testing.T) {
	tr := &tracker{pods: map[types.UID]*podState{}}
	tr.update(pod("1", "", false, false))
	s, _ := tr.get("1")
	if s.created.IsZero() || !s.scheduled.IsZero() || !s.ready.IsZero() || !s.instance("s") || !s.live() {
		t.Fatalf("a new pod: %+v", s)
	}
	tr.update(pod("1", "n0", false, false))
	tr.update(pod("1", "n0", true, false))
	s, _ = tr.get("1")
	if s.node != "n0" || s.scheduled.IsZero() || s.ready.IsZero() || s.ready.Before(s.scheduled) || len(s.chips) != 2 || s.chips[0] != "Ascend910-2" {
		t.Fatalf("bound and ready: %+v", s)
	}
	first := s.ready
	tr.update(pod("1", "n0", true, true))
	tr.update(pod("1", "n0", false, true))
	s, _ = tr.get("1")
	if !s.ready.Equal(first) || s.deleting.IsZero() || s.grace != 5 || s.live() || !s.gone.IsZero() {
		t.Fatalf("deleting gracefully: %+v", s)
	}
	tr.remove(cache.DeletedFinalStateUnknown{Key: "ns/p-1", Obj: pod("1", "n0", false, true)})
	if s, _ = tr.get("1"); s.gone.IsZero() {
		t.Fatalf("removed: %+v", s)
	}
	// Deleted with no grace period: the removal is the deletion too.
	tr.update(pod("2", "n1", true, false))
	tr.remove(pod("2", "n1", true, false))
	if s, _ = tr.get("2"); s.deleting.IsZero() || s.gone.IsZero() || s.grace != 0 {
		t.Fatalf("deleted at once: %+v", s)
	}
	// A router pod is not an instance pod.
	r := pod("3", "n2", true, false)
	r.Labels = map[string]string{v1alpha1.LabelRouter: "s"}
	tr.update(r)
	if s, _ = tr.get("3"); s.instance("s") {
		t.Fatalf("router pod counted as an instance: %+v", s)
	}
	if got := tr.selectPods(func(p *podState) bool { return p.instance("s") }); len(got) != 2 || got[0].name != "p-1" {
		t.Fatalf("instance pods, oldest first: %+v", got)
	}
}

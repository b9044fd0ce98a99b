package inferserver

import (
	"sort"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"mindie.io/deployer/apis/infer/v1alpha1"
)

func TestLabelledReadsTheServersOwnChildren(t *testing.T) {
	inf := cache.NewSharedIndexInformer(&cache.ListWatch{}, &corev1.Pod{}, 0, cache.Indexers{})
	idx, err := indexByServer(inf, v1alpha1.LabelServer)
	if err != nil {
		t.Fatal(err)
	}
	pod := func(ns, name string, lbls map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: lbls}}
	}
	for _, p := range []*corev1.Pod{
		pod("a", "s-0", map[string]string{v1alpha1.LabelServer: "s"}),
		pod("a", "s-1", map[string]string{v1alpha1.LabelServer: "s", "other": "x"}),
		pod("a", "s2-0", map[string]string{v1alpha1.LabelServer: "s2"}),
		pod("b", "s-0", map[string]string{v1alpha1.LabelServer: "s"}),
		pod("a", "unlabelled", nil),
		pod("a", "router", map[string]string{v1alpha1.LabelRouter: "s"}),
	} {
		if err := idx.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	s := &v1alpha1.InferServer{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "s"}}
	var got []string
	for _, p := range labelled[*corev1.Pod](idx, s) {
		got = append(got, p.Namespace+"/"+p.Name)
	}
	sort.Strings(got)
	if want := []string{"a/s-0", "a/s-1"}; len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("labelled = %v, want %v", got, want)
	}
	// A relabelled pod moves with its label.
	moved := pod("a", "s-1", map[string]string{v1alpha1.LabelServer: "s2"})
	if err := idx.Update(moved); err != nil {
		t.Fatal(err)
	}
	if n := len(labelled[*corev1.Pod](idx, s)); n != 1 {
		t.Errorf("after relabelling: %d pods of s, want 1", n)
	}
	if _, err := indexByServer(inf, v1alpha1.LabelServer); err == nil {
		t.Error("adding the index twice: no error")
	}
}

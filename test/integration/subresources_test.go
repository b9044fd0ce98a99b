package integration

import (
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	cachedmemory "k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/scale"

	"mindie.io/deployer/apis/infer/v1alpha1"
)

func TestStatusSubresource(t *testing.T) {
	e := newEnv(t)
	servers := e.client.InferV1alpha1().InferServers("default")
	s := e.create(newServer("st", replicas(3)))

	// A status sent with the main resource is dropped.
	s.Status.ReadyReplicas = 3
	s.Status.Replicas = 3
	s.Spec.Image = "mindie:v2"
	s, err := servers.Update(e.ctx, s, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Status.ReadyReplicas != 0 || s.Status.Replicas != 0 {
		t.Fatalf("the main resource wrote status: %+v", s.Status)
	}

	// The status subresource writes status only.
	s.Status = v1alpha1.InferServerStatus{
		ObservedGeneration: s.Generation, Replicas: 3, ReadyReplicas: 2, AvailableReplicas: 2, UpdatedReplicas: 3,
		Selector: "infer.mindie.io/server=st",
		Conditions: []metav1.Condition{{
			Type: v1alpha1.ConditionAvailable, Status: metav1.ConditionTrue, Reason: "MinimumInstancesAvailable",
			Message: "2 of 3 instances ready", LastTransitionTime: metav1.Now(), ObservedGeneration: s.Generation,
		}},
		Model: &v1alpha1.ModelInfo{Version: "2.0", Models: []v1alpha1.ModelEntry{{ID: "llama3-70b", DeviceType: "npu"}}},
	}
	s.Spec.Image = "ignored:by-status"
	generation := s.Generation
	updated, err := servers.UpdateStatus(e.ctx, s, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if updated.Status.ReadyReplicas != 2 || updated.Status.Model.Models[0].ID != "llama3-70b" || len(updated.Status.Conditions) != 1 {
		t.Fatalf("status not written: %+v", updated.Status)
	}
	if updated.Spec.Image != "mindie:v2" || updated.Generation != generation {
		t.Fatalf("status update changed spec (%q) or generation (%d -> %d)", updated.Spec.Image, generation, updated.Generation)
	}

	// An impossible status is refused.
	updated.Status.ReadyReplicas = 7
	if _, err := servers.UpdateStatus(e.ctx, updated, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) || findCause(err, "status.readyReplicas") == nil {
		t.Fatalf("readyReplicas > replicas: want Invalid naming status.readyReplicas, got %v", err)
	}
}

func TestScaleSubresource(t *testing.T) {
	e := newEnv(t)
	servers := e.client.InferV1alpha1().InferServers("default")
	e.create(newServer("sc", replicas(2)))

	sc, err := servers.GetScale(e.ctx, "sc", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sc.Spec.Replicas != 2 || sc.Status.Selector != "infer.mindie.io/server=sc" {
		t.Fatalf("scale: %+v", sc)
	}
	sc.Spec.Replicas = 4
	if _, err := servers.UpdateScale(e.ctx, "sc", sc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := *e.get("default", "sc").Spec.Replicas; got != 4 {
		t.Fatalf("after scale to 4: spec.replicas %d", got)
	}
	// A stale Scale conflicts.
	sc.Spec.Replicas = 5
	if _, err := servers.UpdateScale(e.ctx, "sc", sc, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("stale scale: want Conflict, got %v", err)
	}
	// Out of range is refused with the range.
	for _, n := range []int32{0, 257} {
		fresh, err := servers.GetScale(e.ctx, "sc", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		fresh.Spec.Replicas = n
		_, err = servers.UpdateScale(e.ctx, "sc", fresh, metav1.UpdateOptions{})
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "between 1 and 256") {
			t.Fatalf("scale to %d: want Invalid with the range, got %v", n, err)
		}
	}
	// A merge patch of the scale, as kubectl scale sends.
	raw, err := e.client.InferV1alpha1().RESTClient().Patch(types.MergePatchType).Namespace("default").
		Resource("inferservers").Name("sc").SubResource("scale").Body([]byte(`{"spec":{"replicas":6}}`)).DoRaw(e.ctx)
	if err != nil {
		t.Fatalf("patch scale: %v: %s", err, raw)
	}
	if got := *e.get("default", "sc").Spec.Replicas; got != 6 {
		t.Fatalf("after scale patch to 6: spec.replicas %d", got)
	}
}

// TestScaleClient drives the scale subresource the way kubectl scale and
// the HorizontalPodAutoscaler do: found through discovery, spoken to with
// the polymorphic scale client.
func TestScaleClient(t *testing.T) {
	e := newEnv(t)
	e.create(newServer("hpa", replicas(1)))

	disc, err := discovery.NewDiscoveryClientForConfig(e.config)
	if err != nil {
		t.Fatal(err)
	}
	cached := cachedmemory.NewMemCacheClient(disc)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(cached)
	scales, err := scale.NewForConfig(e.config, mapper, dynamic.LegacyAPIPathResolverFunc, scale.NewDiscoveryScaleKindResolver(cached))
	if err != nil {
		t.Fatal(err)
	}
	gr := v1alpha1.Resource("inferservers")
	sc, err := scales.Scales("default").Get(e.ctx, gr, "hpa", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sc.Spec.Replicas != 1 || sc.Status.Selector == "" {
		t.Fatalf("scale via the scale client: %+v", sc)
	}
	sc.Spec.Replicas = 3
	if _, err := scales.Scales("default").Update(e.ctx, gr, sc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := *e.get("default", "hpa").Spec.Replicas; got != 3 {
		t.Fatalf("scale client set replicas %d, want 3", got)
	}
	// Discovery advertises the subresources with the right kinds.
	resources, err := disc.ServerResourcesForGroupVersion(v1alpha1.SchemeGroupVersion.String())
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]string{}
	for _, r := range resources.APIResources {
		kinds[r.Name] = r.Kind
		if r.Name == "inferservers" && (!contains(r.ShortNames, "isvc") || !contains(r.Categories, "mindie")) {
			t.Errorf("inferservers lacks short name isvc or category mindie: %+v", r)
		}
	}
	want := map[string]string{"inferservers": "InferServer", "inferservers/status": "InferServer", "inferservers/scale": "Scale"}
	for name, kind := range want {
		if kinds[name] != kind {
			t.Errorf("discovery: %s has kind %q, want %q", name, kinds[name], kind)
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

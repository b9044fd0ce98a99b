package integration

import (
	"encoding/json"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mindie.io/deployer/apis/infer/v1alpha1"
	applyv1alpha1 "mindie.io/deployer/pkg/generated/applyconfiguration/infer/v1alpha1"
)

// TestServerSideApply checks that spec and status are owned apart: users
// own what they apply of the spec, the controller owns the status, and
// neither can take the other's fields by writing the wrong endpoint.
func TestServerSideApply(t *testing.T) {
	e := newEnv(t)
	servers := e.client.InferV1alpha1().InferServers("default")
	apply := func(manager string, cfg *applyv1alpha1.InferServerApplyConfiguration, force bool) (*v1alpha1.InferServer, error) {
		return servers.Apply(e.ctx, cfg, metav1.ApplyOptions{FieldManager: manager, Force: force})
	}

	// alice applies a spec, and a status that must be ignored.
	cfg := applyv1alpha1.InferServer("ssa", "default").
		WithSpec(applyv1alpha1.InferServerSpec().WithReplicas(2).WithImage("mindie:1.0")).
		WithStatus(applyv1alpha1.InferServerStatus().WithReadyReplicas(2).WithReplicas(2))
	s, err := apply("alice", cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	if *s.Spec.Replicas != 2 || s.Spec.Image != "mindie:1.0" || s.Status.ReadyReplicas != 0 {
		t.Fatalf("apply: spec %d %q, status.readyReplicas %d", *s.Spec.Replicas, s.Spec.Image, s.Status.ReadyReplicas)
	}
	alice := managedBy(t, s, "alice", "")
	if !strings.Contains(alice, `"f:replicas"`) || !strings.Contains(alice, `"f:image"`) || strings.Contains(alice, `"f:status"`) {
		t.Fatalf("alice's fields: %s", alice)
	}

	// The controller applies status through the status subresource.
	st := applyv1alpha1.InferServer("ssa", "default").
		WithStatus(applyv1alpha1.InferServerStatus().WithReplicas(2).WithReadyReplicas(1).WithObservedGeneration(1)).
		WithSpec(applyv1alpha1.InferServerSpec().WithImage("controller:must-not-win"))
	s, err = servers.ApplyStatus(e.ctx, st, metav1.ApplyOptions{FieldManager: "controller", Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if s.Status.ReadyReplicas != 1 || s.Spec.Image != "mindie:1.0" {
		t.Fatalf("status apply: readyReplicas %d, image %q", s.Status.ReadyReplicas, s.Spec.Image)
	}
	ctrl := managedBy(t, s, "controller", "status")
	if !strings.Contains(ctrl, `"f:readyReplicas"`) || strings.Contains(ctrl, `"f:spec"`) {
		t.Fatalf("controller's fields: %s", ctrl)
	}

	// bob may not take alice's replicas without force...
	_, err = apply("bob", applyv1alpha1.InferServer("ssa", "default").WithSpec(applyv1alpha1.InferServerSpec().WithReplicas(5)), false)
	if !apierrors.IsConflict(err) || !strings.Contains(err.Error(), "alice") {
		t.Fatalf("bob's apply of replicas: want a conflict naming alice, got %v", err)
	}
	// ...and with force he owns it.
	s, err = apply("bob", applyv1alpha1.InferServer("ssa", "default").WithSpec(applyv1alpha1.InferServerSpec().WithReplicas(5)), true)
	if err != nil {
		t.Fatal(err)
	}
	if *s.Spec.Replicas != 5 || strings.Contains(managedBy(t, s, "alice", ""), `"f:replicas"`) {
		t.Fatalf("forced apply: replicas %d, alice still owns replicas", *s.Spec.Replicas)
	}

	// Scaling moves ownership of spec.replicas to the scaler.
	sc, err := servers.GetScale(e.ctx, "ssa", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sc.Spec.Replicas = 7
	if _, err := servers.UpdateScale(e.ctx, "ssa", sc, metav1.UpdateOptions{FieldManager: "autoscaler"}); err != nil {
		t.Fatal(err)
	}
	s = e.get("default", "ssa")
	if *s.Spec.Replicas != 7 || !strings.Contains(managedBy(t, s, "autoscaler", "scale"), `"f:replicas"`) {
		t.Fatalf("after scale: replicas %d, managedFields %s", *s.Spec.Replicas, mustJSON(s.ManagedFields))
	}
	if strings.Contains(managedBy(t, s, "bob", ""), `"f:replicas"`) {
		t.Fatalf("bob still owns replicas after the scale: %s", mustJSON(s.ManagedFields))
	}
}

// managedBy returns the fields a manager owns on a subresource ("" for the main resource).
func managedBy(t *testing.T, s *v1alpha1.InferServer, manager, subresource string) string {
	t.Helper()
	var out []string
	for _, m := range s.ManagedFields {
		if m.Manager == manager && m.Subresource == subresource && m.FieldsV1 != nil {
			out = append(out, m.FieldsV1.GetRawString())
		}
	}
	return strings.Join(out, "\n")
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

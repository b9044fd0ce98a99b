package scale

import (
	"testing"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clienttesting "k8s.io/client-go/testing"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/plugin/options"
	"mindie.io/deployer/plugin/options/fake"
)

// scaleSubresource makes the fake clientset serve the scale subresource
// from its InferServers; conflicts updates fail with a conflict first.
func scaleSubresource(f *fake.Options, conflicts int) *[]*autoscalingv1.Scale {
	var updates []*autoscalingv1.Scale
	f.Infer.PrependReactor("get", "inferservers", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "scale" {
			return false, nil, nil
		}
		obj, err := f.Infer.Tracker().Get(a.GetResource(), a.GetNamespace(), a.(clienttesting.GetAction).GetName())
		if err != nil {
			return true, nil, err
		}
		s := obj.(*v1alpha1.InferServer)
		return true, &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace, ResourceVersion: "7"},
			Spec: autoscalingv1.ScaleSpec{Replicas: *s.Spec.Replicas}}, nil
	})
	f.Infer.PrependReactor("update", "inferservers", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "scale" {
			return false, nil, nil
		}
		sc := a.(clienttesting.UpdateAction).GetObject().(*autoscalingv1.Scale)
		updates = append(updates, sc)
		if conflicts > 0 {
			conflicts--
			return true, nil, apierrors.NewConflict(v1alpha1.Resource("inferservers"), sc.Name, nil)
		}
		return true, sc, nil
	})
	return &updates
}

func TestScale(t *testing.T) {
	f := fake.New(t, NewCmdScale, fake.InferServer("default", "llama"), fake.InferServer("default", "other"))
	updates := scaleSubresource(f, 1)
	if out := f.MustRun(t, "", "scale", "llama", "other", "--replicas=4"); out != "inferserver.infer.mindie.io/llama scaled\ninferserver.infer.mindie.io/other scaled\n" {
		t.Errorf("scale: %q", out)
	}
	if len(*updates) != 3 {
		t.Fatalf("%d scale updates, want 3 (one conflict retried)", len(*updates))
	}
	for _, u := range *updates {
		if u.Spec.Replicas != 4 || u.ResourceVersion != "7" {
			t.Errorf("scale update %+v, want replicas 4 with the resourceVersion read", u)
		}
	}

	f = fake.New(t, NewCmdScale, fake.InferServer("default", "llama"))
	updates = scaleSubresource(f, 0)
	f.FailRun(t, "", []string{"scale", "llama", "--replicas=4", "--current-replicas=3"}, `expected replicas of InferServer "llama" to be 3, was 2`)
	f.MustRun(t, "", "scale", "llama", "--replicas=4", "--current-replicas=2")
	if len(*updates) != 1 {
		t.Errorf("%d updates, want 1 (the precondition held once)", len(*updates))
	}
	if out := f.MustRun(t, "", "scale", "llama", "--replicas=1", "--dry-run=server"); out != "inferserver.infer.mindie.io/llama scaled (server dry run)\n" {
		t.Errorf("scale --dry-run=server: %q", out)
	}
	if opts := fake.Actions(f.Infer, "update", "inferservers")[1].(clienttesting.UpdateActionImpl).UpdateOptions; len(opts.DryRun) != 1 || opts.FieldManager != options.FieldManager {
		t.Errorf("dry run update options %+v", opts)
	}
	f.FailRun(t, "", []string{"scale", "llama"}, `required flag(s) "replicas" not set`)
	f.FailRun(t, "", []string{"scale", "nope", "--replicas=1"}, `inferservers.infer.mindie.io "nope" not found`)
}

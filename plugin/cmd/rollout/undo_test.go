package rollout

import (
	"sync/atomic"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/plugin/options"
	"mindie.io/deployer/plugin/options/fake"
)

func updatedServer(t *testing.T, f *fake.Options) *v1alpha1.InferServer {
	t.Helper()
	ups := fake.Actions(f.Infer, "update", "inferservers")
	if len(ups) == 0 {
		t.Fatal("no update")
	}
	return ups[len(ups)-1].(clienttesting.UpdateAction).GetObject().(*v1alpha1.InferServer)
}

func TestRolloutUndo(t *testing.T) {
	f, _ := history(t, func(s *v1alpha1.InferServer) { s.Spec.Replicas = ptr.To(int32(5)) })
	if out := f.MustRun(t, "", "rollout", "undo", "llama"); out != "inferserver.infer.mindie.io/llama rolled back to revision 2\n" {
		t.Errorf("undo: %q", out)
	}
	s := updatedServer(t, f)
	if s.Spec.Image != "mindie:v2" || *s.Spec.Replicas != 5 || s.Annotations[v1alpha1.AnnotationChangeCause] != "" {
		t.Errorf("after undo: image %q replicas %d change-cause %q, want mindie:v2, 5 kept, none (as revision 2)", s.Spec.Image, *s.Spec.Replicas, s.Annotations[v1alpha1.AnnotationChangeCause])
	}
	if opts := fake.Actions(f.Infer, "update", "inferservers")[0].(clienttesting.UpdateActionImpl).UpdateOptions; opts.FieldManager != options.FieldManager {
		t.Errorf("update options %+v", opts)
	}

	f, _ = history(t)
	f.MustRun(t, "", "rollout", "undo", "llama", "--to-revision=1")
	if s := updatedServer(t, f); s.Spec.Image != "mindie:v1" || s.Annotations[v1alpha1.AnnotationChangeCause] != "image v1" {
		t.Errorf("undo --to-revision=1: image %q cause %q", s.Spec.Image, s.Annotations[v1alpha1.AnnotationChangeCause])
	}

	f, _ = history(t)
	if out := f.MustRun(t, "", "rollout", "undo", "llama", "--to-revision=3"); out != "inferserver.infer.mindie.io/llama skipped rollback (current template already matches revision 3)\n" {
		t.Errorf("undo to the current revision: %q", out)
	}
	if n := len(fake.Actions(f.Infer, "update", "inferservers")); n != 0 {
		t.Errorf("skipped rollback updated %d times", n)
	}
	f.FailRun(t, "", []string{"rollout", "undo", "llama", "--to-revision=7"}, "unable to find the specified revision 7")

	f, _ = history(t, func(s *v1alpha1.InferServer) { s.Spec.Paused = true })
	f.FailRun(t, "", []string{"rollout", "undo", "llama"}, "you cannot roll back a paused InferServer; resume it first with 'kubectl mindie rollout resume llama' and try again")
	if n := len(fake.Actions(f.Infer, "update", "inferservers")); n != 0 {
		t.Errorf("undo of a paused InferServer updated it")
	}

	// A conflict is retried with a fresh read.
	f, _ = history(t)
	var conflicts atomic.Int32
	f.Infer.PrependReactor("update", "inferservers", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if conflicts.Add(1) == 1 {
			return true, nil, apierrors.NewConflict(v1alpha1.Resource("inferservers"), "llama", nil)
		}
		return false, nil, nil
	})
	f.MustRun(t, "", "rollout", "undo", "llama")
	if n := len(fake.Actions(f.Infer, "get", "inferservers")); n != 2 || conflicts.Load() != 2 {
		t.Errorf("undo after a conflict: %d gets, %d updates, want 2 and 2", n, conflicts.Load())
	}
}

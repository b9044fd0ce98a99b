package delete

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clienttesting "k8s.io/client-go/testing"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/plugin/options/fake"
)

// finalizing makes deletes of the fake clientset behave like the API
// server with the cleanup finalizer: the object stays, marked deleted,
// and goes away after gets more reads.
func finalizing(f *fake.Options, gets int32) {
	var deleted atomic.Bool
	var left atomic.Int32
	left.Store(gets)
	f.Infer.PrependReactor("delete", "inferservers", func(a clienttesting.Action) (bool, runtime.Object, error) {
		obj, err := f.Infer.Tracker().Get(a.GetResource(), a.GetNamespace(), a.(clienttesting.DeleteAction).GetName())
		if err != nil {
			return true, nil, err
		}
		s := obj.(*v1alpha1.InferServer)
		now := metav1.Now()
		s.DeletionTimestamp = &now
		s.Finalizers = []string{v1alpha1.FinalizerCleanup}
		deleted.Store(true)
		return true, nil, f.Infer.Tracker().Update(a.GetResource(), s, s.Namespace)
	})
	f.Infer.PrependReactor("get", "inferservers", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if deleted.Load() && left.Add(-1) < 0 {
			_ = f.Infer.Tracker().Delete(a.GetResource(), a.GetNamespace(), a.(clienttesting.GetAction).GetName())
		}
		return false, nil, nil
	})
}

func TestDeleteWaits(t *testing.T) {
	f := fake.New(t, NewCmdDelete, fake.InferServer("default", "a"))
	finalizing(f, 2)
	out := f.MustRun(t, "", "delete", "a")
	if out != "inferserver.infer.mindie.io \"a\" deleted from default namespace\n" {
		t.Errorf("stdout %q", out)
	}
	if n := len(fake.Actions(f.Infer, "get", "inferservers")); n != 3 {
		t.Errorf("%d gets, want 3: two while the finalizer runs, one that finds it gone", n)
	}
	if _, err := f.Infer.InferV1alpha1().InferServers("default").Get(t.Context(), "a", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a still exists: %v", err)
	}
}

func TestDeleteNoWait(t *testing.T) {
	f := fake.New(t, NewCmdDelete, fake.InferServer("default", "a"), fake.InferServer("default", "b"))
	finalizing(f, 100)
	f.MustRun(t, "", "delete", "a", "b", "--wait=false")
	if n := len(fake.Actions(f.Infer, "delete", "inferservers")); n != 2 {
		t.Errorf("%d deletes, want 2", n)
	}
	if n := len(fake.Actions(f.Infer, "get", "inferservers")); n != 0 {
		t.Errorf("--wait=false made %d gets", n)
	}
}

func TestDeleteTimeout(t *testing.T) {
	f := fake.New(t, NewCmdDelete, fake.InferServer("default", "a"))
	finalizing(f, 1<<30)
	start := time.Now()
	f.FailRun(t, "", []string{"delete", "a", "--timeout=1200ms"}, `timed out after 1.2s waiting for inferserver.infer.mindie.io "a" to be deleted`,
		"finalizers [infer.mindie.io/cleanup] remain: is the InferServer controller running?")
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the timeout took %v", d)
	}
}

func TestDeleteBySelector(t *testing.T) {
	labelled := func(s *v1alpha1.InferServer) { s.Labels = map[string]string{"team": "nlp"} }
	f := fake.New(t, NewCmdDelete, fake.InferServer("default", "a", labelled), fake.InferServer("default", "b"), fake.InferServer("team-b", "c", labelled))
	out := f.MustRun(t, "", "delete", "-l", "team=nlp", "-A")
	if strings.Count(out, "deleted") != 2 || !strings.Contains(out, `"a" deleted from default namespace`) || !strings.Contains(out, `"c" deleted from team-b namespace`) {
		t.Errorf("delete -l team=nlp -A: %q", out)
	}
	dels := fake.Actions(f.Infer, "delete", "inferservers")
	if len(dels) != 2 {
		t.Fatalf("%d deletes, want 2", len(dels))
	}
	// Deletes of selected objects are for exactly those objects.
	if p := dels[0].(clienttesting.DeleteActionImpl).DeleteOptions.Preconditions; p == nil || p.UID == nil || *p.UID != "uid-a" {
		t.Errorf("delete of a selected object without its UID as precondition: %+v", p)
	}
	if _, err := f.Infer.InferV1alpha1().InferServers("default").Get(t.Context(), "b", metav1.GetOptions{}); err != nil {
		t.Errorf("b (not selected) is gone: %v", err)
	}

	r := f.Run(t, "", "delete", "--all", "-n", "team-a")
	if r.Code != 0 || r.Stderr != "No resources found in team-a namespace.\n" {
		t.Errorf("delete --all in an empty namespace: %+v", r)
	}
}

func TestDeleteRefusals(t *testing.T) {
	f := fake.New(t, NewCmdDelete, fake.InferServer("default", "a"))
	f.FailRun(t, "", []string{"delete"}, "resource name(s), -l/--selector or --all is required")
	f.FailRun(t, "", []string{"delete", "a", "--all"}, "names cannot be combined")
	f.FailRun(t, "", []string{"delete", "nope"}, `inferservers.infer.mindie.io "nope" not found`)
	if r := f.Run(t, "", "delete", "nope", "--ignore-not-found"); r.Code != 0 || r.Stdout != "" {
		t.Errorf("delete nope --ignore-not-found: %+v", r)
	}
	// One missing name does not stop the others.
	r := f.FailRun(t, "", []string{"delete", "nope", "a"}, `"nope" not found`)
	if !strings.Contains(r.Stdout, `"a" deleted`) {
		t.Errorf("delete nope a: a not deleted: %+v", r)
	}
}

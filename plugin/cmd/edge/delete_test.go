package edge

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
// server with the controller's cleanup finalizer on the object: it stays, marked deleted, and goes
// away after gets more reads.
func finalizing(f *fake.Options, gets int32) {
	var deleted atomic.Bool
	var left atomic.Int32
	left.Store(gets)
	f.Infer.PrependReactor("delete", "edgedeployments", func(a clienttesting.Action) (bool, runtime.Object, error) {
		obj, err := f.Infer.Tracker().Get(a.GetResource(), a.GetNamespace(), a.(clienttesting.DeleteAction).GetName())
		if err != nil {
			return true, nil, err
		}
		e := obj.(*v1alpha1.EdgeDeployment)
		now := metav1.Now()
		e.DeletionTimestamp = &now
		e.Finalizers = []string{"infer.mindie.io/edge-cleanup"}
		deleted.Store(true)
		return true, nil, f.Infer.Tracker().Update(a.GetResource(), e, e.Namespace)
	})
	f.Infer.PrependReactor("get", "edgedeployments", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if deleted.Load() && left.Add(-1) < 0 {
			_ = f.Infer.Tracker().Delete(a.GetResource(), a.GetNamespace(), a.(clienttesting.GetAction).GetName())
		}
		return false, nil, nil
	})
}

func TestDelete(t *testing.T) {
	f := fake.New(t, NewCmdEdge, fake.EdgeDeployment("default", "a", running))
	finalizing(f, 2)
	out := f.MustRun(t, "", "edge", "delete", "a", "--cascade=foreground")
	if out != "edgedeployment.infer.mindie.io \"a\" deleted from default namespace\n" {
		t.Errorf("stdout %q", out)
	}
	dels := fake.Actions(f.Infer, "delete", "edgedeployments")
	if len(dels) != 1 {
		t.Fatalf("%d deletes, want 1", len(dels))
	}
	opts := dels[0].(clienttesting.DeleteActionImpl).DeleteOptions
	if opts.PropagationPolicy == nil || *opts.PropagationPolicy != metav1.DeletePropagationForeground || opts.Preconditions == nil || *opts.Preconditions.UID != "uid-a" {
		t.Errorf("delete options %+v, want foreground propagation and a's UID as precondition", opts)
	}
	// One read before the delete, two while the finalizer runs, one that
	// finds it gone.
	if n := len(fake.Actions(f.Infer, "get", "edgedeployments")); n != 4 {
		t.Errorf("%d gets, want 4", n)
	}
	if _, err := f.Infer.InferV1alpha1().EdgeDeployments("default").Get(t.Context(), "a", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a still exists: %v", err)
	}

	f = fake.New(t, NewCmdEdge, fake.EdgeDeployment("default", "b"))
	f.MustRun(t, "", "edge", "delete", "b", "--wait=false", "--cascade=orphan")
	dels = fake.Actions(f.Infer, "delete", "edgedeployments")
	if p := dels[len(dels)-1].(clienttesting.DeleteActionImpl).DeleteOptions.PropagationPolicy; p == nil || *p != metav1.DeletePropagationOrphan {
		t.Errorf("--cascade=orphan: propagation %v", p)
	}
}

func TestDeleteTimeout(t *testing.T) {
	f := fake.New(t, NewCmdEdge, fake.EdgeDeployment("default", "a"))
	finalizing(f, 1<<30)
	start := time.Now()
	f.FailRun(t, "", []string{"edge", "delete", "a", "--timeout=1200ms"}, `timed out after 1.2s waiting for edgedeployment.infer.mindie.io "a" to be deleted`,
		"finalizers [infer.mindie.io/edge-cleanup] remain: is the EdgeDeployment controller running?")
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the timeout took %v", d)
	}
}

func TestDeleteRefusals(t *testing.T) {
	f := fake.New(t, NewCmdEdge, fake.EdgeDeployment("default", "a"))
	f.FailRun(t, "", []string{"edge", "delete"}, "requires at least 1 arg(s)")
	f.FailRun(t, "", []string{"edge", "delete", "a", "--cascade=true"}, `invalid --cascade value "true"`)
	if r := f.Run(t, "", "edge", "delete", "nope", "--ignore-not-found"); r.Code != 0 || r.Stdout != "" {
		t.Errorf("delete nope --ignore-not-found: %+v", r)
	}
	// One missing name does not stop the others.
	r := f.FailRun(t, "", []string{"edge", "delete", "nope", "a"}, `edgedeployments.infer.mindie.io "nope" not found`)
	if !strings.Contains(r.Stdout, `"a" deleted`) {
		t.Errorf("delete nope a: a not deleted: %+v", r)
	}
}

func TestList(t *testing.T) {
	f := fake.New(t, NewCmdEdge,
		fake.EdgeDeployment("default", "cams", partial),
		fake.EdgeDeployment("default", "new"),
		fake.EdgeDeployment("default", "named", func(e *v1alpha1.EdgeDeployment) {
			e.Spec.Targets = v1alpha1.EdgeTargets{Nodes: []string{"edge-0", "edge-1"}}
		}),
		fake.EdgeDeployment("team-a", "other", running))
	rows := fake.Columns(f.MustRun(t, "", "edge", "list"))
	want := [][]string{
		{"NAME", "PHASE", "NODES", "FAILED", "ARCH", "AGE"},
		{"cams", "PartiallySucceeded", "1/3", "2", "arm64", "60m"},
		{"named", "Queued", "0/2", "0", "<none>", "60m"},
		{"new", "Queued", "0/?", "0", "<none>", "60m"},
	}
	if len(rows) != len(want) {
		t.Fatalf("edge list: %v", rows)
	}
	for i := range want {
		if strings.Join(rows[i], " ") != strings.Join(want[i], " ") {
			t.Errorf("row %d: %v, want %v", i, rows[i], want[i])
		}
	}
	rows = fake.Columns(f.MustRun(t, "", "edge", "list", "-A"))
	if len(rows) != 5 || rows[0][0] != "NAMESPACE" || strings.Join(rows[4][:4], " ") != "team-a other Running 0/2" {
		t.Errorf("edge list -A: %v", rows)
	}
	if r := f.Run(t, "", "edge", "list", "-n", "empty"); r.Code != 0 || r.Stderr != "No resources found in empty namespace.\n" {
		t.Errorf("edge list -n empty: %+v", r)
	}
}

func TestCompletion(t *testing.T) {
	f := fake.New(t, NewCmdEdge, fake.EdgeDeployment("default", "cams"), fake.EdgeDeployment("default", "cars"), fake.EdgeDeployment("default", "dogs"))
	if out := f.MustRun(t, "", "__complete", "edge", "status", "ca"); out != "cams\ncars\n:4\n" {
		t.Errorf("completing status ca: %q", out)
	}
	if out := f.MustRun(t, "", "__complete", "edge", "stop", "cams", ""); out != "cars\ndogs\n:4\n" {
		t.Errorf("completing stop cams: %q", out)
	}
	if out := f.MustRun(t, "", "__complete", "edge", "status", "--state", ""); !strings.Contains(out, "TimedOut\n") {
		t.Errorf("completing --state: %q", out)
	}
}

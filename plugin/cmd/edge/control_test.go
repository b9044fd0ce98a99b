package edge

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clienttesting "k8s.io/client-go/testing"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/plugin/options"
	"mindie.io/deployer/plugin/options/fake"
)

func patches(f *fake.Options) []clienttesting.PatchActionImpl {
	var out []clienttesting.PatchActionImpl
	for _, a := range fake.Actions(f.Infer, "patch", "edgedeployments") {
		out = append(out, a.(clienttesting.PatchActionImpl))
	}
	return out
}

func get(t *testing.T, f *fake.Options, name string) *v1alpha1.EdgeDeployment {
	t.Helper()
	e, err := f.Infer.InferV1alpha1().EdgeDeployments("default").Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestStopContinue(t *testing.T) {
	done := fake.EdgeDeployment("default", "done", fake.EdgeRun(v1alpha1.EdgePhaseSucceeded, fake.EdgeNode("edge-0", v1alpha1.EdgeNodeSucceeded, "", "")))
	f := fake.New(t, NewCmdEdge, fake.EdgeDeployment("default", "cams", running), done)

	if out := f.MustRun(t, "", "edge", "stop", "cams"); out != "edgedeployment.infer.mindie.io/cams stopped\n" {
		t.Errorf("stop: %q", out)
	}
	if !get(t, f, "cams").Spec.Stopped {
		t.Errorf("stop did not set spec.stopped")
	}
	if out := f.MustRun(t, "", "edge", "stop", "cams"); out != "edgedeployment.infer.mindie.io/cams already stopped\n" {
		t.Errorf("stop again: %q", out)
	}
	if out := f.MustRun(t, "", "edge", "stop", "done"); out != "edgedeployment.infer.mindie.io/done has ended (Succeeded): nothing to stop\n" {
		t.Errorf("stop an ended job: %q", out)
	}
	if out := f.MustRun(t, "", "edge", "continue", "cams", "done"); out != "edgedeployment.infer.mindie.io/cams continued\nedgedeployment.infer.mindie.io/done is not stopped\n" {
		t.Errorf("continue: %q", out)
	}
	if get(t, f, "cams").Spec.Stopped {
		t.Errorf("continue did not clear spec.stopped")
	}
	p := patches(f)
	if len(p) != 2 || p[0].PatchType != types.MergePatchType || string(p[0].Patch) != `{"spec":{"stopped":true}}` ||
		string(p[1].Patch) != `{"spec":{"stopped":false}}` || p[1].PatchOptions.FieldManager != options.FieldManager {
		t.Errorf("patches: %+v", p)
	}

	// One missing name does not stop the others.
	r := f.FailRun(t, "", []string{"edge", "stop", "nope", "cams"}, `edgedeployments.infer.mindie.io "nope" not found`)
	if r.Stdout != "edgedeployment.infer.mindie.io/cams stopped\n" {
		t.Errorf("stop nope cams: %q", r.Stdout)
	}
	f.FailRun(t, "", []string{"edge", "continue"}, "requires at least 1 arg(s)")
}

func TestRetry(t *testing.T) {
	f := fake.New(t, NewCmdEdge, fake.EdgeDeployment("default", "cams", partial))
	out := f.MustRun(t, "", "edge", "retry", "cams")
	if out != "edgedeployment.infer.mindie.io/cams retried (retryGeneration 1): 2 nodes to run again (edge-1, edge-3)\n" {
		t.Errorf("retry: %q", out)
	}
	p := patches(f)
	// retryGeneration 0 is left out of the object: the test is of null.
	if len(p) != 1 || p[0].PatchType != types.JSONPatchType ||
		string(p[0].Patch) != `[{"op":"test","path":"/spec/retryGeneration","value":null},{"op":"add","path":"/spec/retryGeneration","value":1}]` {
		t.Fatalf("patches: %+v", p)
	}
	if g := get(t, f, "cams").Spec.RetryGeneration; g != 1 {
		t.Errorf("retryGeneration %d after the retry, want 1", g)
	}

	// The controller has not acted on it yet: a second retry is refused.
	f.FailRun(t, "", []string{"edge", "retry", "cams"},
		`EdgeDeployment "cams" already has a retry pending: spec.retryGeneration is 1, the controller acted on 0; wait for it, or use --force to raise it again`)
	f.MustRun(t, "", "edge", "retry", "cams", "--force")
	p = patches(f)
	if len(p) != 2 || string(p[1].Patch) != `[{"op":"test","path":"/spec/retryGeneration","value":1},{"op":"add","path":"/spec/retryGeneration","value":2}]` {
		t.Errorf("retry --force: patches %d, last %s", len(p), p[len(p)-1].Patch)
	}
	if g := get(t, f, "cams").Spec.RetryGeneration; g != 2 {
		t.Errorf("retryGeneration %d after retry --force, want 2", g)
	}
}

func TestRetryRefusals(t *testing.T) {
	refused := fake.EdgeDeployment("default", "mixed", func(e *v1alpha1.EdgeDeployment) {
		e.Status = v1alpha1.EdgeDeploymentStatus{Phase: v1alpha1.EdgePhaseFailed, ObservedGeneration: 1, Conditions: []metav1.Condition{{
			Type: v1alpha1.EdgeConditionFailed, Status: metav1.ConditionTrue, Reason: v1alpha1.EdgeReasonMixedArchitectures, Message: "amd64 (edge-2), arm64 (edge-0)"}}}
	})
	done := fake.EdgeDeployment("default", "done", fake.EdgeRun(v1alpha1.EdgePhaseSucceeded, fake.EdgeNode("edge-0", v1alpha1.EdgeNodeSucceeded, "", "")))
	f := fake.New(t, NewCmdEdge, refused, done, fake.EdgeDeployment("default", "busy", running))
	f.FailRun(t, "", []string{"edge", "retry", "done"},
		`EdgeDeployment "done" has no Failed or TimedOut nodes to retry (Succeeded: 1/1 node succeeded); use --force to raise spec.retryGeneration anyway`)
	f.FailRun(t, "", []string{"edge", "retry", "busy"},
		`EdgeDeployment "busy" has no Failed or TimedOut nodes to retry (Running: 0/2 nodes succeeded, 1 deploying, 1 queued)`)
	f.FailRun(t, "", []string{"edge", "retry", "mixed"},
		`EdgeDeployment "mixed" has no Failed or TimedOut nodes to retry (Failed: no target nodes): the job was refused (MixedArchitectures: amd64 (edge-2), arm64 (edge-0)), and its targets cannot change: create another EdgeDeployment`)
	f.FailRun(t, "", []string{"edge", "retry", "nope"}, `"nope" not found`)
	if n := len(patches(f)); n != 0 {
		t.Errorf("%d patches for refused retries", n)
	}
	if out := f.MustRun(t, "", "edge", "retry", "done", "--force"); out != "edgedeployment.infer.mindie.io/done retried (retryGeneration 1)\n" {
		t.Errorf("retry --force: %q", out)
	}
}

// Two retries at the same time: the one whose test fails says so and
// does not raise retryGeneration again.
func TestRetryConcurrent(t *testing.T) {
	f := fake.New(t, NewCmdEdge, fake.EdgeDeployment("default", "cams", partial))
	gvr := v1alpha1.SchemeGroupVersion.WithResource("edgedeployments")
	f.Infer.PrependReactor("patch", "edgedeployments", func(clienttesting.Action) (bool, runtime.Object, error) {
		// Someone else's retry lands between our read and our patch.
		obj, err := f.Infer.Tracker().Get(gvr, "default", "cams")
		if err != nil {
			return true, nil, err
		}
		e := obj.(*v1alpha1.EdgeDeployment).DeepCopy()
		if e.Spec.RetryGeneration == 0 {
			e.Spec.RetryGeneration = 1
			if err := f.Infer.Tracker().Update(gvr, e, "default"); err != nil {
				return true, nil, err
			}
		}
		return false, nil, nil
	})
	f.FailRun(t, "", []string{"edge", "retry", "cams"},
		`EdgeDeployment "cams" was retried by someone else meanwhile: spec.retryGeneration went from 0 to 1; not raised again`)
	if g := get(t, f, "cams").Spec.RetryGeneration; g != 1 {
		t.Errorf("retryGeneration %d, want 1: raised once", g)
	}
}

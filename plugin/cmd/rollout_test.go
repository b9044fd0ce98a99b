package cmd

import (
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	clienttesting "k8s.io/client-go/testing"
	"sigs.k8s.io/yaml"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/revision"
)

func TestRolloutStatusMessages(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*v1alpha1.InferServer)
		want   string
		done   bool
	}{
		{"not observed", func(s *v1alpha1.InferServer) { s.Generation = 2; s.Status.ObservedGeneration = 1 }, `Waiting for InferServer "llama" spec update to be observed...`, false},
		{"updating", func(s *v1alpha1.InferServer) { s.Status.UpdatedReplicas = 1; s.Status.Replicas = 3 }, "Waiting for rollout to finish: 1 out of 3 new instances have been updated...", false},
		{"paused", func(s *v1alpha1.InferServer) { s.Spec.Paused = true; s.Status.UpdatedReplicas = 1 },
			`Waiting for rollout to finish: 1 out of 3 new instances have been updated... (InferServer "llama" is paused: 'kubectl mindie rollout resume llama' continues it)`, false},
		{"old left", func(s *v1alpha1.InferServer) { s.Status.UpdatedReplicas = 3; s.Status.Replicas = 4 }, "Waiting for rollout to finish: 1 old instances are pending termination...", false},
		{"unavailable", func(s *v1alpha1.InferServer) {
			s.Status.UpdatedReplicas, s.Status.Replicas, s.Status.AvailableReplicas = 3, 3, 1
		}, "Waiting for rollout to finish: 1 of 3 updated instances are available...", false},
		{"done", available, `inferserver "llama" successfully rolled out`, true},
	} {
		s := server("default", "llama", func(s *v1alpha1.InferServer) { s.Spec.Replicas = ptrInt32(3); s.Status.ObservedGeneration = 1 }, tc.mutate)
		msg, done, err := rolloutStatus(s)
		if err != nil || msg != tc.want || done != tc.done {
			t.Errorf("%s: %q %v %v, want %q %v", tc.name, msg, done, err, tc.want, tc.done)
		}
	}
	s := server("default", "llama", func(s *v1alpha1.InferServer) {
		s.Status.ObservedGeneration = 1
		s.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionProgressing, Status: metav1.ConditionFalse, Reason: reasonProgressDeadlineExceeded, Message: "stuck"}}
	})
	if _, _, err := rolloutStatus(s); err == nil || !strings.Contains(err.Error(), "exceeded its progress deadline: stuck") {
		t.Errorf("progress deadline: %v", err)
	}
}

func ptrInt32(n int32) *int32 { return &n }

func TestRolloutStatusWatch(t *testing.T) {
	s := server("default", "llama", func(s *v1alpha1.InferServer) { s.Generation = 2; s.Status.ObservedGeneration = 1 })
	f := newTestFactory(t, s)
	step := func(updated, replicas, avail int32) *v1alpha1.InferServer {
		c := s.DeepCopy()
		c.Status.ObservedGeneration = 2
		c.Status.UpdatedReplicas, c.Status.Replicas, c.Status.AvailableReplicas = updated, replicas, avail
		return c
	}
	w := watch.NewFake()
	f.infer.PrependWatchReactor("inferservers", clienttesting.DefaultWatchReactor(w, nil))
	go func() {
		for _, st := range []*v1alpha1.InferServer{step(1, 3, 1), step(1, 3, 1), step(2, 3, 1), step(2, 2, 1), step(2, 2, 2)} {
			w.Modify(st)
		}
	}()
	out := f.mustRun(t, "", "rollout", "status", "llama", "--timeout=30s")
	// Each state is printed once; the precondition may see a later state
	// than the first event, so the middle lines are checked loosely.
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if lines[0] != `Waiting for InferServer "llama" spec update to be observed...` || lines[len(lines)-1] != `inferserver "llama" successfully rolled out` {
		t.Errorf("rollout status:\n%s", out)
	}
	seen := map[string]bool{}
	for _, l := range lines {
		if seen[l] {
			t.Errorf("line %q printed twice:\n%s", l, out)
		}
		seen[l] = true
	}

	// One look.
	f = newTestFactory(t, server("default", "llama", func(s *v1alpha1.InferServer) { s.Status.ObservedGeneration = 1 }))
	if out := f.mustRun(t, "", "rollout", "status", "llama", "--watch=false"); out != "Waiting for rollout to finish: 0 out of 2 new instances have been updated...\n" {
		t.Errorf("rollout status --watch=false: %q", out)
	}
	if n := len(actions(f.infer, "watch", "inferservers")); n != 0 {
		t.Errorf("--watch=false watched")
	}
	watchWith(f)
	f.failRun(t, "", []string{"rollout", "status", "llama", "--timeout=500ms"}, `timed out after 500ms waiting for the rollout of InferServer "llama" to finish`)
}

// history is an InferServer with three revisions: images v1, v2, v3 (current).
func history(t *testing.T, mutate ...func(*v1alpha1.InferServer)) (*testFactory, *v1alpha1.InferServer) {
	t.Helper()
	s := server("default", "llama", append([]func(*v1alpha1.InferServer){func(s *v1alpha1.InferServer) {
		s.Spec.Image = "mindie:v3"
		s.Annotations = map[string]string{v1alpha1.AnnotationChangeCause: "image v3"}
	}}, mutate...)...)
	tmpl := func(image string) v1alpha1.InferServerSpec {
		spec := s.Spec.DeepCopy()
		spec.Image = image
		return revision.Template(spec)
	}
	foreign := revisionObject(s, "llama-foreign", 9, "not ours", tmpl("mindie:other"))
	foreign.OwnerReferences[0].UID = types.UID("someone-else")
	f := newTestFactory(t, s,
		revisionObject(s, "llama-v2", 2, "", tmpl("mindie:v2")),
		revisionObject(s, "llama-v1", 1, "image v1", tmpl("mindie:v1")),
		revisionObject(s, "llama-v3", 3, "image v3", tmpl("mindie:v3")),
		foreign)
	return f, s
}

func TestRolloutHistory(t *testing.T) {
	f, _ := history(t)
	out := f.mustRun(t, "", "rollout", "history", "llama")
	if tb := parseColumns(out); len(tb) != 5 || tb[0][0] != "inferserver.infer.mindie.io/llama" || strings.Join(tb[1], " ") != "REVISION CHANGE-CAUSE" ||
		strings.Join(tb[2], " ") != "1 image v1" || strings.Join(tb[3], " ") != "2 <none>" || strings.Join(tb[4], " ") != "3 image v3" {
		t.Errorf("rollout history:\n%s", out)
	}
	if sel := actions(f.kube, "list", "controllerrevisions")[0].(clienttesting.ListActionImpl).GetListRestrictions().Labels.String(); sel != "infer.mindie.io/server=llama" {
		t.Errorf("revisions listed with %q", sel)
	}

	out = f.mustRun(t, "", "rollout", "history", "llama", "--revision=1")
	header, body, _ := strings.Cut(out, "\n")
	if header != "inferserver.infer.mindie.io/llama with revision #1 (llama-v1)" {
		t.Errorf("header %q", header)
	}
	_, body, _ = strings.Cut(body, "\n") // change-cause
	var doc struct {
		Spec v1alpha1.InferServerSpec `json:"spec"`
	}
	if err := yaml.UnmarshalStrict([]byte(body), &doc); err != nil || doc.Spec.Image != "mindie:v1" || doc.Spec.Replicas != nil {
		t.Errorf("--revision=1 template (%v):\n%s", err, out)
	}
	out = f.mustRun(t, "", "rollout", "history", "llama", "-o", "name")
	if out != "controllerrevision.apps/llama-v1\ncontrollerrevision.apps/llama-v2\ncontrollerrevision.apps/llama-v3\n" {
		t.Errorf("history -o name: %q", out)
	}
	out = f.mustRun(t, "", "rollout", "history", "llama", "--revision=2", "-o", "json")
	var cr map[string]any
	if err := json.Unmarshal([]byte(out), &cr); err != nil || cr["kind"] != "ControllerRevision" || cr["revision"] != 2.0 {
		t.Errorf("history --revision=2 -o json (%v):\n%s", err, out)
	}
	f.failRun(t, "", []string{"rollout", "history", "llama", "--revision=9"}, `unable to find the specified revision 9 of InferServer "llama"`)

	f = newTestFactory(t, server("default", "fresh"))
	if out := f.mustRun(t, "", "rollout", "history", "fresh"); out != "No rollout history found for InferServer \"fresh\".\n" {
		t.Errorf("history without revisions: %q", out)
	}
}

func updatedServer(t *testing.T, f *testFactory) *v1alpha1.InferServer {
	t.Helper()
	ups := actions(f.infer, "update", "inferservers")
	if len(ups) == 0 {
		t.Fatal("no update")
	}
	return ups[len(ups)-1].(clienttesting.UpdateAction).GetObject().(*v1alpha1.InferServer)
}

func TestRolloutUndo(t *testing.T) {
	f, _ := history(t, func(s *v1alpha1.InferServer) { s.Spec.Replicas = ptrInt32(5) })
	if out := f.mustRun(t, "", "rollout", "undo", "llama"); out != "inferserver.infer.mindie.io/llama rolled back to revision 2\n" {
		t.Errorf("undo: %q", out)
	}
	s := updatedServer(t, f)
	if s.Spec.Image != "mindie:v2" || *s.Spec.Replicas != 5 || s.Annotations[v1alpha1.AnnotationChangeCause] != "" {
		t.Errorf("after undo: image %q replicas %d change-cause %q, want mindie:v2, 5 kept, none (as revision 2)", s.Spec.Image, *s.Spec.Replicas, s.Annotations[v1alpha1.AnnotationChangeCause])
	}
	if opts := actions(f.infer, "update", "inferservers")[0].(clienttesting.UpdateActionImpl).UpdateOptions; opts.FieldManager != fieldManager {
		t.Errorf("update options %+v", opts)
	}

	f, _ = history(t)
	f.mustRun(t, "", "rollout", "undo", "llama", "--to-revision=1")
	if s := updatedServer(t, f); s.Spec.Image != "mindie:v1" || s.Annotations[v1alpha1.AnnotationChangeCause] != "image v1" {
		t.Errorf("undo --to-revision=1: image %q cause %q", s.Spec.Image, s.Annotations[v1alpha1.AnnotationChangeCause])
	}

	f, _ = history(t)
	if out := f.mustRun(t, "", "rollout", "undo", "llama", "--to-revision=3"); out != "inferserver.infer.mindie.io/llama skipped rollback (current template already matches revision 3)\n" {
		t.Errorf("undo to the current revision: %q", out)
	}
	if n := len(actions(f.infer, "update", "inferservers")); n != 0 {
		t.Errorf("skipped rollback updated %d times", n)
	}
	f.failRun(t, "", []string{"rollout", "undo", "llama", "--to-revision=7"}, "unable to find the specified revision 7")

	f, _ = history(t, func(s *v1alpha1.InferServer) { s.Spec.Paused = true })
	f.failRun(t, "", []string{"rollout", "undo", "llama"}, "you cannot roll back a paused InferServer; resume it first with 'kubectl mindie rollout resume llama' and try again")
	if n := len(actions(f.infer, "update", "inferservers")); n != 0 {
		t.Errorf("undo of a paused InferServer updated it")
	}

	// A conflict is retried with a fresh read.
	f, _ = history(t)
	var conflicts atomic.Int32
	f.infer.PrependReactor("update", "inferservers", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if conflicts.Add(1) == 1 {
			return true, nil, apierrors.NewConflict(v1alpha1.Resource("inferservers"), "llama", nil)
		}
		return false, nil, nil
	})
	f.mustRun(t, "", "rollout", "undo", "llama")
	if n := len(actions(f.infer, "get", "inferservers")); n != 2 || conflicts.Load() != 2 {
		t.Errorf("undo after a conflict: %d gets, %d updates, want 2 and 2", n, conflicts.Load())
	}
}

func patches(f *testFactory) []clienttesting.PatchActionImpl {
	var out []clienttesting.PatchActionImpl
	for _, a := range actions(f.infer, "patch", "inferservers") {
		out = append(out, a.(clienttesting.PatchActionImpl))
	}
	return out
}

func TestRolloutRestartPauseResume(t *testing.T) {
	f := newTestFactory(t, server("default", "llama"), server("default", "frozen", func(s *v1alpha1.InferServer) { s.Spec.Paused = true }))
	out := f.mustRun(t, "", "rollout", "restart", "llama")
	if out != "inferserver.infer.mindie.io/llama restarted\n" {
		t.Errorf("restart: %q", out)
	}
	p := patches(f)
	if len(p) != 1 || p[0].PatchType != types.MergePatchType || p[0].PatchOptions.FieldManager != fieldManager {
		t.Fatalf("patches %+v", p)
	}
	var patch struct {
		Spec struct {
			PodMetadata struct {
				Annotations map[string]string `json:"annotations"`
			} `json:"podMetadata"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(p[0].Patch, &patch); err != nil {
		t.Fatal(err)
	}
	at, err := time.Parse(time.RFC3339, patch.Spec.PodMetadata.Annotations[v1alpha1.AnnotationRestartedAt])
	if err != nil || time.Since(at) > time.Minute {
		t.Errorf("restart patch %s: restartedAt %v (%v)", p[0].Patch, at, err)
	}
	got, _ := f.infer.InferV1alpha1().InferServers("default").Get(t.Context(), "llama", metav1.GetOptions{})
	if got.Spec.PodMetadata.Annotations[v1alpha1.AnnotationRestartedAt] == "" {
		t.Errorf("the patch did not set the annotation")
	}
	f.failRun(t, "", []string{"rollout", "restart", "frozen"}, `can't restart paused InferServer "frozen"`)

	if out := f.mustRun(t, "", "rollout", "pause", "llama"); out != "inferserver.infer.mindie.io/llama paused\n" {
		t.Errorf("pause: %q", out)
	}
	if out := f.mustRun(t, "", "rollout", "pause", "llama"); out != "inferserver.infer.mindie.io/llama already paused\n" {
		t.Errorf("pause again: %q", out)
	}
	if out := f.mustRun(t, "", "rollout", "resume", "llama", "frozen"); out != "inferserver.infer.mindie.io/llama resumed\ninferserver.infer.mindie.io/frozen resumed\n" {
		t.Errorf("resume: %q", out)
	}
	if out := f.mustRun(t, "", "rollout", "resume", "llama"); out != "inferserver.infer.mindie.io/llama is not paused\n" {
		t.Errorf("resume again: %q", out)
	}
	p = patches(f)
	if len(p) != 4 || string(p[1].Patch) != `{"spec":{"paused":true}}` || string(p[3].Patch) != `{"spec":{"paused":false}}` {
		t.Errorf("patches: %d, %s", len(p), p[len(p)-1].Patch)
	}
	f.failRun(t, "", []string{"rollout", "pause", "nope"}, `"nope" not found`)
}

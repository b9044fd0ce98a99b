package rollout

import (
	"encoding/json"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clienttesting "k8s.io/client-go/testing"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/plugin/options"
	"mindie.io/deployer/plugin/options/fake"
)

func patches(f *fake.Options) []clienttesting.PatchActionImpl {
	var out []clienttesting.PatchActionImpl
	for _, a := range fake.Actions(f.Infer, "patch", "inferservers") {
		out = append(out, a.(clienttesting.PatchActionImpl))
	}
	return out
}

func TestRolloutRestartPauseResume(t *testing.T) {
	f := fake.New(t, NewCmdRollout, fake.InferServer("default", "llama"), fake.InferServer("default", "frozen", func(s *v1alpha1.InferServer) { s.Spec.Paused = true }))
	out := f.MustRun(t, "", "rollout", "restart", "llama")
	if out != "inferserver.infer.mindie.io/llama restarted\n" {
		t.Errorf("restart: %q", out)
	}
	p := patches(f)
	if len(p) != 1 || p[0].PatchType != types.MergePatchType || p[0].PatchOptions.FieldManager != options.FieldManager {
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
	got, _ := f.Infer.InferV1alpha1().InferServers("default").Get(t.Context(), "llama", metav1.GetOptions{})
	if got.Spec.PodMetadata.Annotations[v1alpha1.AnnotationRestartedAt] == "" {
		t.Errorf("the patch did not set the annotation")
	}
	f.FailRun(t, "", []string{"rollout", "restart", "frozen"}, `can't restart paused InferServer "frozen"`)

	if out := f.MustRun(t, "", "rollout", "pause", "llama"); out != "inferserver.infer.mindie.io/llama paused\n" {
		t.Errorf("pause: %q", out)
	}
	if out := f.MustRun(t, "", "rollout", "pause", "llama"); out != "inferserver.infer.mindie.io/llama already paused\n" {
		t.Errorf("pause again: %q", out)
	}
	if out := f.MustRun(t, "", "rollout", "resume", "llama", "frozen"); out != "inferserver.infer.mindie.io/llama resumed\ninferserver.infer.mindie.io/frozen resumed\n" {
		t.Errorf("resume: %q", out)
	}
	if out := f.MustRun(t, "", "rollout", "resume", "llama"); out != "inferserver.infer.mindie.io/llama is not paused\n" {
		t.Errorf("resume again: %q", out)
	}
	p = patches(f)
	if len(p) != 4 || string(p[1].Patch) != `{"spec":{"paused":true}}` || string(p[3].Patch) != `{"spec":{"paused":false}}` {
		t.Errorf("patches: %d, %s", len(p), p[len(p)-1].Patch)
	}
	f.FailRun(t, "", []string{"rollout", "pause", "nope"}, `"nope" not found`)
}

package rollout

import (
	"encoding/json"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"
	clienttesting "k8s.io/client-go/testing"
	"sigs.k8s.io/yaml"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/revision"
	"mindie.io/deployer/plugin/options/fake"
)

// history is an InferServer with three revisions: images v1, v2, v3 (current).
func history(t *testing.T, mutate ...func(*v1alpha1.InferServer)) (*fake.Options, *v1alpha1.InferServer) {
	t.Helper()
	s := fake.InferServer("default", "llama", append([]func(*v1alpha1.InferServer){func(s *v1alpha1.InferServer) {
		s.Spec.Image = "mindie:v3"
		s.Annotations = map[string]string{v1alpha1.AnnotationChangeCause: "image v3"}
	}}, mutate...)...)
	tmpl := func(image string) v1alpha1.InferServerSpec {
		spec := s.Spec.DeepCopy()
		spec.Image = image
		return revision.Template(spec)
	}
	foreign := fake.ControllerRevision(s, "llama-foreign", 9, "not ours", tmpl("mindie:other"))
	foreign.OwnerReferences[0].UID = types.UID("someone-else")
	f := fake.New(t, NewCmdRollout, s,
		fake.ControllerRevision(s, "llama-v2", 2, "", tmpl("mindie:v2")),
		fake.ControllerRevision(s, "llama-v1", 1, "image v1", tmpl("mindie:v1")),
		fake.ControllerRevision(s, "llama-v3", 3, "image v3", tmpl("mindie:v3")),
		foreign)
	return f, s
}

func TestRolloutHistory(t *testing.T) {
	f, _ := history(t)
	out := f.MustRun(t, "", "rollout", "history", "llama")
	if tb := fake.Columns(out); len(tb) != 5 || tb[0][0] != "inferserver.infer.mindie.io/llama" || strings.Join(tb[1], " ") != "REVISION CHANGE-CAUSE" ||
		strings.Join(tb[2], " ") != "1 image v1" || strings.Join(tb[3], " ") != "2 <none>" || strings.Join(tb[4], " ") != "3 image v3" {
		t.Errorf("rollout history:\n%s", out)
	}
	if sel := fake.Actions(f.Kube, "list", "controllerrevisions")[0].(clienttesting.ListActionImpl).GetListRestrictions().Labels.String(); sel != "infer.mindie.io/server=llama" {
		t.Errorf("revisions listed with %q", sel)
	}

	out = f.MustRun(t, "", "rollout", "history", "llama", "--revision=1")
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
	out = f.MustRun(t, "", "rollout", "history", "llama", "-o", "name")
	if out != "controllerrevision.apps/llama-v1\ncontrollerrevision.apps/llama-v2\ncontrollerrevision.apps/llama-v3\n" {
		t.Errorf("history -o name: %q", out)
	}
	out = f.MustRun(t, "", "rollout", "history", "llama", "--revision=2", "-o", "json")
	var cr map[string]any
	if err := json.Unmarshal([]byte(out), &cr); err != nil || cr["kind"] != "ControllerRevision" || cr["revision"] != 2.0 {
		t.Errorf("history --revision=2 -o json (%v):\n%s", err, out)
	}
	f.FailRun(t, "", []string{"rollout", "history", "llama", "--revision=9"}, `unable to find the specified revision 9 of InferServer "llama"`)

	f = fake.New(t, NewCmdRollout, fake.InferServer("default", "fresh"))
	if out := f.MustRun(t, "", "rollout", "history", "fresh"); out != "No rollout history found for InferServer \"fresh\".\n" {
		t.Errorf("history without revisions: %q", out)
	}
}

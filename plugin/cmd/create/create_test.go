package create

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	clienttesting "k8s.io/client-go/testing"
	"sigs.k8s.io/yaml"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/plugin/options"
	"mindie.io/deployer/plugin/options/fake"
)

const legacyFile = "testdata/infer_server.json"

func createdObjects(t *testing.T, f *fake.Options) []*v1alpha1.InferServer {
	t.Helper()
	var out []*v1alpha1.InferServer
	for _, a := range fake.Actions(f.Infer, "create", "inferservers") {
		out = append(out, a.(clienttesting.CreateAction).GetObject().(*v1alpha1.InferServer))
	}
	return out
}

func TestCreateFromManifestOnStdin(t *testing.T) {
	f := fake.New(t, NewCmdCreate)
	manifest := `# two InferServers
apiVersion: infer.mindie.io/v1alpha1
kind: InferServer
metadata: {name: a}
spec: {replicas: 3, image: "mindie:1"}
---
# a comment only document
---
apiVersion: infer.mindie.io/v1alpha1
kind: InferServer
metadata: {name: b, namespace: team-b}
spec: {resources: {npu: {count: 2}}}
`
	out := f.MustRun(t, manifest, "create", "-f", "-")
	if want := "inferserver.infer.mindie.io/a created\ninferserver.infer.mindie.io/b created\n"; out != want {
		t.Errorf("stdout %q, want %q", out, want)
	}
	objs := createdObjects(t, f)
	if len(objs) != 2 {
		t.Fatalf("%d creates, want 2", len(objs))
	}
	if objs[0].Namespace != "default" || *objs[0].Spec.Replicas != 3 || objs[0].Spec.Image != "mindie:1" {
		t.Errorf("first object %s/%s replicas %v image %q, want default/a, 3, mindie:1", objs[0].Namespace, objs[0].Name, objs[0].Spec.Replicas, objs[0].Spec.Image)
	}
	if objs[1].Namespace != "team-b" || *objs[1].Spec.Resources.NPU.Count != 2 {
		t.Errorf("second object %s/%s, want team-b/b with 2 NPUs", objs[1].Namespace, objs[1].Name)
	}
	opts := fake.Actions(f.Infer, "create", "inferservers")[0].(clienttesting.CreateActionImpl).CreateOptions
	if opts.FieldManager != options.FieldManager || opts.FieldValidation != metav1.FieldValidationStrict || len(opts.DryRun) != 0 {
		t.Errorf("create options %+v, want field manager %s, strict validation, no dry run", opts, options.FieldManager)
	}
}

func TestCreateFromLegacyFile(t *testing.T) {
	f := fake.New(t, NewCmdCreate)
	out := f.MustRun(t, "", "create", "-f", legacyFile, "-n", "team-a")
	if out != "inferserver.infer.mindie.io/mindie-server created\n" {
		t.Errorf("stdout %q", out)
	}
	objs := createdObjects(t, f)
	if len(objs) != 1 {
		t.Fatalf("%d creates, want 1", len(objs))
	}
	s := objs[0]
	if s.Namespace != "team-a" || s.Name != "mindie-server" || *s.Spec.Replicas != 2 || *s.Spec.Resources.NPU.Count != 4 || s.Spec.Service.NodePort != 31005 {
		t.Errorf("converted object %s/%s replicas %d npus %d nodePort %d, want team-a/mindie-server, 2, 4, 31005",
			s.Namespace, s.Name, *s.Spec.Replicas, *s.Spec.Resources.NPU.Count, s.Spec.Service.NodePort)
	}

	// The same from stdin.
	data, err := os.ReadFile(legacyFile)
	if err != nil {
		t.Fatal(err)
	}
	f = fake.New(t, NewCmdCreate)
	f.MustRun(t, string(data), "create", "-f", "-")
	if objs := createdObjects(t, f); len(objs) != 1 || objs[0].Namespace != "default" {
		t.Errorf("legacy file on stdin: created %v, want one object in default", objs)
	}
}

func TestCreateInvalidLegacyFile(t *testing.T) {
	f := fake.New(t, NewCmdCreate)
	data, err := os.ReadFile(legacyFile)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(strings.Replace(string(data), `"replicas": 2`, `"replicas": 300`, 1), `"npu_chip_num": 4`, `"npu_chip_num": 9`, 1)
	path := filepath.Join(t.TempDir(), "infer_server.json")
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	r := f.FailRun(t, "", []string{"create", "-f", path}, path+": 2 problems:", "replicas: 300: must be between 1 and 256", "resource_requests.npu_chip_num: 9: must be between 1 and 8")
	if strings.Count(r.Stderr, "error: ") != 1 {
		t.Errorf("want one error line (with the problems below it):\n%s", r.Stderr)
	}
	if n := len(fake.Actions(f.Infer, "create", "inferservers")); n != 0 {
		t.Errorf("%d creates of an invalid file", n)
	}
}

func TestCreateDryRun(t *testing.T) {
	manifest := "apiVersion: infer.mindie.io/v1alpha1\nkind: InferServer\nmetadata: {name: a}\nspec: {replicas: 1}\n"

	f := fake.New(t, NewCmdCreate)
	if out := f.MustRun(t, manifest, "create", "-f", "-", "--dry-run=server"); out != "inferserver.infer.mindie.io/a created (server dry run)\n" {
		t.Errorf("server dry run: stdout %q", out)
	}
	acts := fake.Actions(f.Infer, "create", "inferservers")
	if len(acts) != 1 || strings.Join(acts[0].(clienttesting.CreateActionImpl).CreateOptions.DryRun, ",") != metav1.DryRunAll {
		t.Errorf("server dry run: creates %v, want one with DryRun All", acts)
	}

	f = fake.New(t, NewCmdCreate)
	out := f.MustRun(t, manifest, "create", "-f", "-", "--dry-run=client", "-o", "yaml")
	if n := len(f.Infer.Actions()); n != 0 {
		t.Errorf("client dry run made %d requests", n)
	}
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(out), &obj); err != nil {
		t.Fatalf("client dry run -o yaml: %v\n%s", err, out)
	}
	if obj["kind"] != "InferServer" || obj["apiVersion"] != "infer.mindie.io/v1alpha1" || obj["status"] != nil || strings.Contains(out, "creationTimestamp") {
		t.Errorf("client dry run -o yaml prints:\n%s\nwant an InferServer without status and creationTimestamp", out)
	}
	if md := obj["metadata"].(map[string]any); md["namespace"] != "default" {
		t.Errorf("client dry run: namespace %v, want default", md["namespace"])
	}

	f = fake.New(t, NewCmdCreate)
	if out := f.MustRun(t, manifest, "create", "-f", "-", "--dry-run"); out != "inferserver.infer.mindie.io/a created (dry run)\n" {
		t.Errorf("--dry-run alone: stdout %q", out)
	}
	f.FailRun(t, manifest, []string{"create", "-f", "-", "--dry-run=maybe"}, `invalid --dry-run value "maybe"`)
}

func TestCreateRefusals(t *testing.T) {
	f := fake.New(t, NewCmdCreate)
	f.FailRun(t, "apiVersion: infer.mindie.io/v1alpha1\nkind: InferServer\nmetadata: {name: a, namespace: team-b}\n", []string{"create", "-f", "-", "-n", "team-a"},
		`the namespace from the provided object "team-b" does not match the namespace "team-a"`)
	f.FailRun(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n", []string{"create", "-f", "-"}, "document 1 is a ConfigMap, not an InferServer")
	f.FailRun(t, "apiVersion: infer.mindie.io/v1alpha1\nkind: InferServer\nmetadata: {name: a}\nspec: {replica: 2}\n", []string{"create", "-f", "-"}, `unknown field "spec.replica"`)
	f.FailRun(t, "", []string{"create", "-f", "-"}, "no objects passed to create")
	f.FailRun(t, "", []string{"create", "-f", "/nonexistent/x.yaml"}, "reading /nonexistent/x.yaml")
	f.FailRun(t, "", []string{"create"}, `required flag(s) "filename" not set`)
	if n := len(fake.Actions(f.Infer, "create", "inferservers")); n != 0 {
		t.Errorf("%d creates for refused input", n)
	}

	// The server's refusal is the error.
	f = fake.New(t, NewCmdCreate)
	f.Infer.PrependReactor("create", "inferservers", func(a clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewInvalid(schema.GroupKind{Group: v1alpha1.GroupName, Kind: "InferServer"}, "a", field.ErrorList{field.Invalid(field.NewPath("spec", "replicas"), 0, "must be between 1 and 256, inclusive")})
	})
	f.FailRun(t, "apiVersion: infer.mindie.io/v1alpha1\nkind: InferServer\nmetadata: {name: a}\n", []string{"create", "-f", "-"},
		`InferServer.infer.mindie.io "a" is invalid: spec.replicas: Invalid value: 0: must be between 1 and 256, inclusive`)
}

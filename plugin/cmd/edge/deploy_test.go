package edge

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/rest"
	clienttesting "k8s.io/client-go/testing"
	"sigs.k8s.io/yaml"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/generated/clientset/versioned"
	"mindie.io/deployer/plugin/options"
	"mindie.io/deployer/plugin/options/fake"
)

const twoJobs = `# two jobs
apiVersion: infer.mindie.io/v1alpha1
kind: EdgeDeployment
metadata: {name: a}
spec:
  targets: {nodes: [edge-0, edge-1]}
  container: {image: "app:1"}
---
# a comment only document
---
apiVersion: infer.mindie.io/v1alpha1
kind: EdgeDeployment
metadata: {name: b, namespace: team-b}
spec:
  targets: {selector: {matchLabels: {site: north}}}
  container: {image: "app:2"}
  maxConcurrentNodes: 5
`

func createdJobs(f *fake.Options) []*v1alpha1.EdgeDeployment {
	var out []*v1alpha1.EdgeDeployment
	for _, a := range fake.Actions(f.Infer, "create", "edgedeployments") {
		out = append(out, a.(clienttesting.CreateAction).GetObject().(*v1alpha1.EdgeDeployment))
	}
	return out
}

func TestDeploy(t *testing.T) {
	f := fake.New(t, NewCmdEdge)
	out := f.MustRun(t, twoJobs, "edge", "deploy", "-f", "-")
	if want := "edgedeployment.infer.mindie.io/a created\nedgedeployment.infer.mindie.io/b created\n"; out != want {
		t.Errorf("stdout %q, want %q", out, want)
	}
	jobs := createdJobs(f)
	if len(jobs) != 2 {
		t.Fatalf("%d creates, want 2", len(jobs))
	}
	if jobs[0].Namespace != "default" || strings.Join(jobs[0].Spec.Targets.Nodes, ",") != "edge-0,edge-1" || jobs[0].Spec.Container.Image != "app:1" {
		t.Errorf("first job %s/%s targets %v image %q", jobs[0].Namespace, jobs[0].Name, jobs[0].Spec.Targets.Nodes, jobs[0].Spec.Container.Image)
	}
	if jobs[1].Namespace != "team-b" || *jobs[1].Spec.MaxConcurrentNodes != 5 {
		t.Errorf("second job %s/%s, want team-b/b with maxConcurrentNodes 5", jobs[1].Namespace, jobs[1].Name)
	}
	opts := fake.Actions(f.Infer, "create", "edgedeployments")[0].(clienttesting.CreateActionImpl).CreateOptions
	if opts.FieldManager != options.FieldManager || opts.FieldValidation != metav1.FieldValidationStrict || len(opts.DryRun) != 0 {
		t.Errorf("create options %+v, want field manager %s, strict validation, no dry run", opts, options.FieldManager)
	}

	// From a file, in the namespace of -n.
	path := filepath.Join(t.TempDir(), "job.json")
	if err := os.WriteFile(path, []byte(`{"apiVersion":"infer.mindie.io/v1alpha1","kind":"EdgeDeployment","metadata":{"name":"c"},"spec":{"targets":{"nodes":["edge-0"]},"container":{"image":"app:1"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := f.MustRun(t, "", "edge", "deploy", "-f", path, "-n", "team-a"); out != "edgedeployment.infer.mindie.io/c created\n" {
		t.Errorf("deploy -f job.json: %q", out)
	}
	if _, err := f.Infer.InferV1alpha1().EdgeDeployments("team-a").Get(t.Context(), "c", metav1.GetOptions{}); err != nil {
		t.Errorf("c not created in team-a: %v", err)
	}
}

func TestDeployDryRun(t *testing.T) {
	manifest := "apiVersion: infer.mindie.io/v1alpha1\nkind: EdgeDeployment\nmetadata: {name: a}\nspec: {targets: {nodes: [edge-0]}, container: {image: 'app:1'}}\n"

	f := fake.New(t, NewCmdEdge)
	if out := f.MustRun(t, manifest, "edge", "deploy", "-f", "-", "--dry-run=server"); out != "edgedeployment.infer.mindie.io/a created (server dry run)\n" {
		t.Errorf("server dry run: stdout %q", out)
	}
	acts := fake.Actions(f.Infer, "create", "edgedeployments")
	if len(acts) != 1 || strings.Join(acts[0].(clienttesting.CreateActionImpl).CreateOptions.DryRun, ",") != metav1.DryRunAll {
		t.Errorf("server dry run: creates %v, want one with DryRun All", acts)
	}

	f = fake.New(t, NewCmdEdge)
	out := f.MustRun(t, manifest, "edge", "deploy", "-f", "-", "--dry-run=client", "-o", "yaml")
	if n := len(f.Infer.Actions()); n != 0 {
		t.Errorf("client dry run made %d requests", n)
	}
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(out), &obj); err != nil {
		t.Fatalf("client dry run -o yaml: %v\n%s", err, out)
	}
	if obj["kind"] != "EdgeDeployment" || obj["apiVersion"] != "infer.mindie.io/v1alpha1" || obj["status"] != nil || strings.Contains(out, "creationTimestamp") {
		t.Errorf("client dry run -o yaml prints:\n%s\nwant an EdgeDeployment without status and creationTimestamp", out)
	}
	if out := f.MustRun(t, manifest, "edge", "deploy", "-f", "-", "--dry-run", "-o", "name"); out != "edgedeployment.infer.mindie.io/a\n" {
		t.Errorf("--dry-run -o name: %q", out)
	}
	f.FailRun(t, manifest, []string{"edge", "deploy", "-f", "-", "--dry-run=maybe"}, `invalid --dry-run value "maybe"`)
}

func TestDeployRefusals(t *testing.T) {
	legacy, err := os.ReadFile("../create/testdata/infer_server.json")
	if err != nil {
		t.Fatal(err)
	}
	f := fake.New(t, NewCmdEdge)
	for _, tc := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"apiVersion: infer.mindie.io/v1alpha1\nkind: InferServer\nmetadata: {name: a}\n", nil,
			"stdin: document 1 is an InferServer, not an EdgeDeployment (apiVersion infer.mindie.io/v1alpha1, kind EdgeDeployment): create InferServers with 'kubectl mindie create -f -'"},
		{"apiVersion: infer.mindie.io/v1alpha1\nkind: EdgeDeployment\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n", nil,
			"stdin: document 2 is a ConfigMap (v1), not an EdgeDeployment (apiVersion infer.mindie.io/v1alpha1, kind EdgeDeployment)"},
		{"apiVersion: networking.k8s.io/v1\nkind: Ingress\n", nil, "document 1 is an Ingress (networking.k8s.io/v1), not an EdgeDeployment"},
		{"apiVersion: apps/v1\nkind: EdgeDeployment\n", nil, "document 1 is an EdgeDeployment of apps/v1, which this kubectl mindie does not know: want an EdgeDeployment (apiVersion infer.mindie.io/v1alpha1"},
		{"apiVersion: infer.mindie.io/v1\nkind: EdgeDeployment\n", nil, "document 1 is an EdgeDeployment of infer.mindie.io/v1, which this kubectl mindie does not know"},
		{"metadata: {name: a}\nspec: {}\n", nil, "stdin: document 1 has no apiVersion or kind: want an EdgeDeployment"},
		{"- a\n- b\n", nil, "stdin: document 1 is not an object"},
		{string(legacy), nil, "stdin is a legacy infer_server.json, which describes an InferServer, not an EdgeDeployment (apiVersion infer.mindie.io/v1alpha1, kind EdgeDeployment): create it with 'kubectl mindie create -f -'"},
		{"apiVersion: infer.mindie.io/v1alpha1\nkind: EdgeDeployment\nmetadata: {name: a}\nspec: {stoped: true}\n", nil, `stdin: document 1: strict decoding error: unknown field "spec.stoped"`},
		{"apiVersion: infer.mindie.io/v1alpha1\nkind: EdgeDeployment\nmetadata: {name: a, namespace: team-b}\n", []string{"-n", "team-a"},
			`the namespace from the provided object "team-b" does not match the namespace "team-a"`},
		{"# nothing\n", nil, "no EdgeDeployments passed to deploy"},
	} {
		f.FailRun(t, tc.stdin, append([]string{"edge", "deploy", "-f", "-"}, tc.args...), tc.want)
	}
	f.FailRun(t, "", []string{"edge", "deploy", "-f", "/nonexistent/x.yaml"}, "reading /nonexistent/x.yaml")
	f.FailRun(t, "", []string{"edge", "deploy"}, `required flag(s) "filename" not set`)
	if n := len(createdJobs(f)); n != 0 {
		t.Errorf("%d creates for refused input", n)
	}

	// The server's refusal is the error; the other jobs are still created.
	f = fake.New(t, NewCmdEdge)
	f.Infer.PrependReactor("create", "edgedeployments", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if a.(clienttesting.CreateAction).GetObject().(*v1alpha1.EdgeDeployment).Name != "a" {
			return false, nil, nil
		}
		return true, nil, apierrors.NewInvalid(schema.GroupKind{Group: v1alpha1.GroupName, Kind: "EdgeDeployment"}, "a",
			field.ErrorList{field.Invalid(field.NewPath("spec", "targets", "nodes").Index(1), "edge-0", "duplicate")})
	})
	r := f.FailRun(t, twoJobs, []string{"edge", "deploy", "-f", "-"}, `EdgeDeployment.infer.mindie.io "a" is invalid: spec.targets.nodes[1]: Invalid value: "edge-0": duplicate`)
	if r.Stdout != "edgedeployment.infer.mindie.io/b created\n" {
		t.Errorf("the job after a refused one: %q", r.Stdout)
	}
}

// The server's warnings come back as Warning headers, which the client
// prints on stderr (kubectl-mindie's main sets the same writer as the
// default), next to the created line.
func TestDeployShowsWarnings(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/apis/infer.mindie.io/v1alpha1/namespaces/default/edgedeployments" {
			http.NotFound(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		var e v1alpha1.EdgeDeployment
		if err := json.Unmarshal(body, &e); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		e.UID, e.Generation = "uid-1", 1
		e.Status.Phase = v1alpha1.EdgePhaseQueued
		w.Header().Add("Warning", `299 - "spec.container.image: \"app:latest\" has the tag latest: name a version"`)
		w.Header().Add("Warning", `299 - "spec.container.privileged: the container runs with root privileges"`)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(&e)
	}))
	defer srv.Close()

	f := fake.New(t, nil)
	client, err := versioned.NewForConfig(&rest.Config{Host: srv.URL,
		WarningHandler: rest.NewWarningWriter(f.Stderr, rest.WarningWriterOptions{Deduplicate: true})})
	if err != nil {
		t.Fatal(err)
	}
	f.MindieOptions.Infer = client
	c := NewCmdEdge(f.MindieOptions)
	c.SetArgs([]string{"deploy", "-f", "-"})
	f.Stdin.WriteString("apiVersion: infer.mindie.io/v1alpha1\nkind: EdgeDeployment\nmetadata: {name: a}\nspec: {targets: {nodes: [edge-0]}, container: {image: 'app:latest', privileged: true}}\n")
	if err := c.Execute(); err != nil {
		t.Fatalf("deploy: %v\n%s", err, f.Stderr)
	}
	if out := f.Stdout.String(); out != "edgedeployment.infer.mindie.io/a created\n" {
		t.Errorf("stdout %q", out)
	}
	want := "Warning: spec.container.image: \"app:latest\" has the tag latest: name a version\nWarning: spec.container.privileged: the container runs with root privileges\n"
	if got := f.Stderr.String(); got != want {
		t.Errorf("stderr %q, want the server's warnings %q", got, want)
	}
}

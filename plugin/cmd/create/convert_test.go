package create

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/plugin/options/fake"
)

func TestConvert(t *testing.T) {
	f := fake.New(t, NewCmdConvert)
	out := f.MustRun(t, "", "convert", "-f", legacyFile, "-n", "team-a")
	var obj v1alpha1.InferServer
	if err := yaml.UnmarshalStrict([]byte(out), &obj); err != nil {
		t.Fatalf("convert prints no InferServer YAML: %v\n%s", err, out)
	}
	if obj.Kind != "InferServer" || obj.Name != "mindie-server" || obj.Namespace != "team-a" || *obj.Spec.Replicas != 2 {
		t.Errorf("convert: %s %s/%s, want InferServer team-a/mindie-server", obj.Kind, obj.Namespace, obj.Name)
	}
	for _, unwanted := range []string{"status:", "creationTimestamp", "tls: {}"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("convert output has %q:\n%s", unwanted, out)
		}
	}
	if n := len(f.Infer.Actions()) + len(f.Kube.Actions()); n != 0 {
		t.Errorf("convert made %d requests", n)
	}

	out = f.MustRun(t, "", "convert", "-f", legacyFile, "-o", "json")
	if !strings.HasPrefix(out, "{") || !strings.Contains(out, `"kind": "InferServer"`) || !strings.Contains(out, `"namespace": "default"`) {
		t.Errorf("convert -o json:\n%s", out)
	}

	f.FailRun(t, "apiVersion: infer.mindie.io/v1alpha1\nkind: InferServer\nmetadata: {name: a}\n", []string{"convert", "-f", "-"}, "stdin is not a legacy infer_server.json")
	// A legacy file that lacks server_name is still a legacy file: the error names the key.
	data, err := os.ReadFile(legacyFile)
	if err != nil {
		t.Fatal(err)
	}
	noName := regexp.MustCompile(`"server_name":\s*"[^"]*",`).ReplaceAllString(string(data), "")
	if noName == string(data) {
		t.Fatal("testdata has no server_name to remove")
	}
	r := f.FailRun(t, noName, []string{"convert", "-f", "-"}, "server_name", "required")
	if strings.Contains(r.Stderr, "is not a legacy") {
		t.Errorf("a legacy file without server_name is not recognised:\n%s", r.Stderr)
	}
	// create reads it as convert does.
	fake.New(t, NewCmdCreate).FailRun(t, noName, []string{"create", "-f", "-"}, "server_name", "required")
	f.FailRun(t, "", []string{"convert", "-f", legacyFile, "-o", "table"}, `unable to match a printer suitable for the output format "table"`)
}

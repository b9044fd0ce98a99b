package get

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clienttesting "k8s.io/client-go/testing"

	"mindie.io/deployer/plugin/options/fake"
)

// serverTable is the Table mindie-apiserver answers for the given InferServers.
func serverTable(items ...[2]string) metav1.Table {
	t := metav1.Table{
		TypeMeta: metav1.TypeMeta{Kind: "Table", APIVersion: "meta.k8s.io/v1"},
		ColumnDefinitions: []metav1.TableColumnDefinition{
			{Name: "Name", Type: "string", Format: "name"},
			{Name: "Ready", Type: "string"},
			{Name: "Age", Type: "string"},
			{Name: "Image", Type: "string", Priority: 1},
		},
	}
	for _, it := range items {
		ns, name := it[0], it[1]
		meta, _ := json.Marshal(metav1.PartialObjectMetadata{
			TypeMeta:   metav1.TypeMeta{Kind: "PartialObjectMetadata", APIVersion: "meta.k8s.io/v1"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"team": "nlp"}},
		})
		t.Rows = append(t.Rows, metav1.TableRow{Cells: []any{name, "1/2", "5m", "mindie:" + name}, Object: runtime.RawExtension{Raw: meta}})
	}
	return t
}

func TestGetTable(t *testing.T) {
	f := fake.New(t, NewCmdGet)
	f.SetHandler(func(r *http.Request) *http.Response {
		switch r.URL.Path {
		case "/apis/infer.mindie.io/v1alpha1/namespaces/default/inferservers":
			return fake.JSONResponse(200, serverTable([2]string{"default", "a"}, [2]string{"default", "b"}))
		case "/apis/infer.mindie.io/v1alpha1/inferservers":
			return fake.JSONResponse(200, serverTable([2]string{"default", "a"}, [2]string{"team-b", "c"}))
		case "/apis/infer.mindie.io/v1alpha1/namespaces/default/inferservers/a":
			return fake.JSONResponse(200, serverTable([2]string{"default", "a"}))
		case "/apis/infer.mindie.io/v1alpha1/namespaces/team-a/inferservers":
			return fake.JSONResponse(200, serverTable())
		case "/apis/infer.mindie.io/v1alpha1/namespaces/team-b/inferservers":
			return fake.StatusResponse(403, metav1.StatusReasonForbidden, `inferservers.infer.mindie.io is forbidden: User "tenant-a-editor" cannot list resource "inferservers" in API group "infer.mindie.io" in the namespace "team-b"`)
		}
		return fake.StatusResponse(404, metav1.StatusReasonNotFound, `inferservers.infer.mindie.io "x" not found`)
	})

	out := f.MustRun(t, "", "get")
	tb := fake.Columns(out)
	if strings.Join(tb[0], " ") != "NAME READY AGE" || len(tb) != 3 || strings.Join(tb[1], " ") != "a 1/2 5m" || tb[2][0] != "b" {
		t.Errorf("get: want the server's default columns and rows a, b:\n%s", out)
	}
	reqs := f.Recorded()
	if len(reqs) != 1 || !strings.Contains(reqs[0].Accept, "as=Table;v=v1;g=meta.k8s.io") || reqs[0].Method != http.MethodGet {
		t.Errorf("get: requests %+v, want one GET asking for a Table", reqs)
	}

	out = f.MustRun(t, "", "get", "-o", "wide", "-l", "team=nlp")
	if tb := fake.Columns(out); strings.Join(tb[0], " ") != "NAME READY AGE IMAGE" || tb[1][3] != "mindie:a" {
		t.Errorf("get -o wide: want the IMAGE column:\n%s", out)
	}
	if q := f.Recorded()[1].Query; q != "labelSelector=team%3Dnlp" {
		t.Errorf("get -l team=nlp: query %q", q)
	}

	out = f.MustRun(t, "", "get", "-A", "--show-labels")
	tb = fake.Columns(out)
	if strings.Join(tb[0], " ") != "NAMESPACE NAME READY AGE LABELS" || strings.Join(tb[2], " ") != "team-b c 1/2 5m team=nlp" {
		t.Errorf("get -A --show-labels: want NAMESPACE first, LABELS last:\n%s", out)
	}

	out = f.MustRun(t, "", "get", "a", "--no-headers")
	if tb := fake.Columns(out); len(tb) != 1 || strings.Join(tb[0], " ") != "a 1/2 5m" {
		t.Errorf("get a --no-headers:\n%q", out)
	}

	// A missing name is an error after the rows found.
	r := f.FailRun(t, "", []string{"get", "a", "x"}, `inferservers.infer.mindie.io "x" not found`)
	if !strings.Contains(r.Stdout, "a ") {
		t.Errorf("get a x: the row of a is missing:\n%s", r.Stdout)
	}

	// The server's refusal, as it said it.
	f.FailRun(t, "", []string{"get", "-n", "team-b"}, `User "tenant-a-editor" cannot list resource "inferservers" in API group "infer.mindie.io" in the namespace "team-b"`)

	r = f.Run(t, "", "get", "-n", "team-a")
	if r.Code != 0 || r.Stdout != "" || r.Stderr != "No resources found in team-a namespace.\n" {
		t.Errorf("get in an empty namespace: %+v", r)
	}
}

func TestGetObjects(t *testing.T) {
	f := fake.New(t, NewCmdGet, fake.InferServer("default", "a"), fake.InferServer("default", "b"), fake.InferServer("team-b", "c"))
	out := f.MustRun(t, "", "get", "-o", "name")
	if out != "inferserver.infer.mindie.io/a\ninferserver.infer.mindie.io/b\n" {
		t.Errorf("get -o name: %q", out)
	}
	out = f.MustRun(t, "", "get", "-A", "-o", "json")
	var list struct {
		Kind  string `json:"kind"`
		Items []struct {
			Kind     string            `json:"kind"`
			Metadata metav1.ObjectMeta `json:"metadata"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("get -A -o json: %v\n%s", err, out)
	}
	if list.Kind != "List" || len(list.Items) != 3 || list.Items[2].Kind != "InferServer" || list.Items[2].Metadata.Namespace != "team-b" {
		t.Errorf("get -A -o json: a List of the 3 InferServers, got %+v", list)
	}
	out = f.MustRun(t, "", "get", "b", "-o", "yaml")
	if !strings.HasPrefix(out, "apiVersion: infer.mindie.io/v1alpha1\nkind: InferServer\n") || !strings.Contains(out, "name: b\n") {
		t.Errorf("get b -o yaml:\n%s", out)
	}
	out = f.MustRun(t, "", "get", "a", "-o", "jsonpath={.spec.image}")
	if out != "mindie:server" {
		t.Errorf("get a -o jsonpath: %q", out)
	}
	f.FailRun(t, "", []string{"get", "nope", "-o", "name"}, `inferservers.infer.mindie.io "nope" not found`)
	lists := fake.Actions(f.Infer, "list", "inferservers")
	if len(lists) != 2 || lists[1].GetNamespace() != "" {
		t.Errorf("list actions %v, want 2, the second across namespaces", lists)
	}
	if ns := lists[0].(clienttesting.ListAction).GetNamespace(); ns != "default" {
		t.Errorf("first list in %q, want default", ns)
	}
}

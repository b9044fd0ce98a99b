package routes

import (
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/router"
	"mindie.io/deployer/plugin/options/fake"
)

const routesURLPath = "/apis/infer.mindie.io/v1alpha1/namespaces/default/inferservers/llama/proxy/router/routes"

// withRouter gives s a router whose status lists pods, ready or not.
func withRouter(pods map[string]bool, order ...string) func(*v1alpha1.InferServer) {
	return func(s *v1alpha1.InferServer) {
		fake.Available(s)
		s.Spec.Router = &v1alpha1.RouterSpec{Algorithm: v1alpha1.RouterCacheAffinity}
		st := &v1alpha1.RouterStatus{Replicas: int32(len(order)), UpdatedReplicas: int32(len(order)), Algorithm: v1alpha1.RouterCacheAffinity,
			Endpoint: "https://llama-router.default.svc:1025"}
		for i, name := range order {
			st.Pods = append(st.Pods, v1alpha1.RouterPodStatus{Name: name, Node: "sim-node-0", PodIP: "127.3.0." + string(rune('1'+i)), Ready: pods[name]})
			if pods[name] {
				st.ReadyReplicas++
			}
		}
		s.Status.Router = st
	}
}

// reportA is router a's answer: cache_affinity, one instance routable and
// one not, with a field this plugin does not know.
const reportA = `{"router":"llama-router-a","algorithm":"cache_affinity","time":"2025-01-02T03:04:05Z","ready":true,"inFlight":3,
"instances":[
 {"name":"llama-0","inference":"http://127.2.0.5:1025","routable":true,"saturated":false,"inFlight":2,"prefillTokens":512,"load":2.5,
  "freeSlots":190,"totalSlots":200,"freeBlocks":900,"totalBlocks":1024,"waiting":0,"running":2,"requests":1500,"failures":3},
 {"name":"llama-1","inference":"http://127.2.0.6:1025","routable":false,"saturated":false,"why":["status_failing","breaker_open"],
  "statusError":"dial tcp 127.2.0.6:1026: connection refused","inFlight":0,"prefillTokens":0,"load":0,
  "freeSlots":0,"totalSlots":0,"freeBlocks":0,"totalBlocks":0,"waiting":0,"running":0,"requests":20,"failures":5}],
"affinity":{"hits":120,"misses":30,"rehomed":2,"balanced":1,"promptBlocks":400,"expectedHitBlocks":220,"expectedHitRate":0.55,
 "windowHitRate":0.625,"windowChats":40,"lowReuse":false,"indexEntries":1234,"indexCapacity":65536},
"futureField":"kept"}`

// reportB is router b's answer: the same instances, one saturated.
const reportB = `{"router":"llama-router-b","algorithm":"cache_affinity","time":"2025-01-02T03:04:05Z","ready":true,"inFlight":0,
"instances":[
 {"name":"llama-0","inference":"http://127.2.0.5:1025","routable":true,"saturated":true,"why":["saturated"],"inFlight":7,"prefillTokens":4096,"load":9,
  "freeSlots":2,"totalSlots":200,"freeBlocks":10,"totalBlocks":1024,"waiting":4,"running":196,"requests":900,"failures":0},
 {"name":"llama-1","inference":"http://127.2.0.6:1025","routable":true,"saturated":false,"inFlight":1,"prefillTokens":128,"load":1,
  "freeSlots":150,"totalSlots":200,"freeBlocks":700,"totalBlocks":1024,"waiting":0,"running":50,"requests":800,"failures":1}],
"affinity":{"hits":0,"misses":64,"rehomed":0,"balanced":50,"promptBlocks":64,"expectedHitBlocks":0,"expectedHitRate":0,
 "windowHitRate":0.05,"windowChats":64,"lowReuse":true,"indexEntries":64,"indexCapacity":65536}}`

// routers answers GET .../proxy/router/routes with answers[pod], the pod
// being the one the header names.
func routers(t *testing.T, answers map[string]func() *http.Response) func(*http.Request) *http.Response {
	return func(r *http.Request) *http.Response {
		if r.Method != http.MethodGet || r.URL.Path != routesURLPath {
			t.Errorf("unexpected request %s %s", r.Method, r.URL.Path)
			return fake.StatusResponse(404, metav1.StatusReasonNotFound, "unexpected "+r.URL.Path)
		}
		pod := r.Header.Get(RouterPodHeader)
		if a, ok := answers[pod]; ok {
			return a()
		}
		return fake.StatusResponse(503, metav1.StatusReasonServiceUnavailable, `inferserver "llama" has no ready router pod "`+pod+`"`)
	}
}

func jsonAnswer(body string) func() *http.Response {
	return func() *http.Response { return fake.TextResponse(200, "application/json", body+"\n") }
}

// askedPods are the router pods the requests named, in order.
func askedPods(t *testing.T, f *fake.Options) []string {
	t.Helper()
	var pods []string
	for _, r := range f.Recorded() {
		if r.Path != routesURLPath || r.Method != http.MethodGet {
			t.Errorf("request %s %s, want GET %s", r.Method, r.Path, routesURLPath)
		}
		pods = append(pods, r.Header.Get(RouterPodHeader))
	}
	slices.Sort(pods)
	return pods
}

// section is the part of out from the line starting with start to the
// next blank line.
func section(out, start string) string {
	i := strings.Index(out, start)
	if i < 0 {
		return ""
	}
	s := out[i:]
	if j := strings.Index(s, "\n\n"); j >= 0 {
		s = s[:j+1]
	}
	return s
}

// row is the fields of the line of text whose first field is name.
func row(text, name string) []string {
	for _, r := range fake.Columns(text) {
		if r[0] == name {
			return r
		}
	}
	return nil
}

func TestRoutesTables(t *testing.T) {
	s := fake.InferServer("default", "llama", withRouter(map[string]bool{"llama-router-a": true, "llama-router-b": true, "llama-router-c": false},
		"llama-router-a", "llama-router-b", "llama-router-c"))
	f := fake.New(t, NewCmdRoutes, s)
	f.SetHandler(routers(t, map[string]func() *http.Response{"llama-router-a": jsonAnswer(reportA), "llama-router-b": jsonAnswer(reportB)}))
	r := f.Run(t, "", "routes", "llama")
	if r.Code != 0 {
		t.Fatalf("routes: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if got := askedPods(t, f); !slices.Equal(got, []string{"llama-router-a", "llama-router-b"}) {
		t.Errorf("asked router pods %v, want the ready ones llama-router-a and llama-router-b, each by its name", got)
	}
	if r.Stderr != "Warning: router pod llama-router-c is not ready; skipped\n" {
		t.Errorf("stderr %q, want the not ready pod's warning", r.Stderr)
	}

	a, b := section(r.Stdout, "Router llama-router-a:"), section(r.Stdout, "Router llama-router-b:")
	if a == "" || b == "" || strings.Index(r.Stdout, "Router llama-router-a:") > strings.Index(r.Stdout, "Router llama-router-b:") {
		t.Fatalf("routes: want router a's then router b's report:\n%s", r.Stdout)
	}
	for _, want := range []string{
		"Router llama-router-a: cache_affinity, ready, 3 in flight\n",
		"Affinity: hit rate 62.5% over the last 40 chats (120 hits, 30 misses, 2 rehomed, 1 balanced since start), expected hit rate 55.0%, low reuse no, index 1234/65536 entries\n",
		"llama-1: reading /v1/status fails: dial tcp 127.2.0.6:1026: connection refused\n",
	} {
		if !strings.Contains(a, want) {
			t.Errorf("router a's report lacks %q:\n%s", want, a)
		}
	}
	if !strings.Contains(b, "low reuse yes (chats are balanced on load)") || !strings.Contains(b, "hit rate 5.0% over the last 64 chats") {
		t.Errorf("router b's affinity line:\n%s", b)
	}
	for _, tc := range []struct {
		text, name string
		want       []string
	}{
		{a, "NAME", []string{"NAME", "ROUTABLE", "IN-FLIGHT", "PREFILL", "SLOTS", "BLOCKS", "WAITING", "RUNNING", "REQUESTS", "FAILURES"}},
		{a, "llama-0", []string{"llama-0", "yes", "2", "512", "190/200", "900/1024", "0", "2", "1500", "3"}},
		{a, "llama-1", []string{"llama-1", "no:", "status_failing,breaker_open", "0", "0", "-", "-", "0", "0", "20", "5"}},
		{b, "llama-0", []string{"llama-0", "yes:", "saturated", "7", "4096", "2/200", "10/1024", "4", "196", "900", "0"}},
		{b, "llama-1", []string{"llama-1", "yes", "1", "128", "150/200", "700/1024", "0", "50", "800", "1"}},
	} {
		if got := row(tc.text, tc.name); !slices.Equal(got, tc.want) {
			t.Errorf("row %s: got %q, want %q in:\n%s", tc.name, got, tc.want, tc.text)
		}
	}
}

func TestRoutesJSONAndYAML(t *testing.T) {
	s := fake.InferServer("default", "llama", withRouter(map[string]bool{"llama-router-a": true, "llama-router-b": true}, "llama-router-a", "llama-router-b"))
	f := fake.New(t, NewCmdRoutes, s)
	f.SetHandler(routers(t, map[string]func() *http.Response{"llama-router-a": jsonAnswer(reportA), "llama-router-b": jsonAnswer(reportB)}))

	var list []map[string]any
	if err := json.Unmarshal([]byte(f.MustRun(t, "", "routes", "llama", "-o", "json")), &list); err != nil {
		t.Fatalf("routes -o json is no JSON list: %v", err)
	}
	if len(list) != 2 || list[0]["router"] != "llama-router-a" || list[1]["router"] != "llama-router-b" || list[0]["futureField"] != "kept" {
		t.Errorf("routes -o json: want both reports as sent, unknown fields kept: %v", list)
	}

	list = nil
	if err := yaml.Unmarshal([]byte(f.MustRun(t, "", "routes", "llama", "-o", "yaml")), &list); err != nil {
		t.Fatalf("routes -o yaml: %v", err)
	}
	if len(list) != 2 || list[1]["algorithm"] != "cache_affinity" {
		t.Errorf("routes -o yaml: %v", list)
	}

	f.FailRun(t, "", []string{"routes", "llama", "-o", "wide"}, `output format "wide", allowed formats are: json,yaml`)
}

func TestRoutesWithoutRouter(t *testing.T) {
	f := fake.New(t, NewCmdRoutes, fake.InferServer("default", "plain", fake.Available),
		fake.InferServer("default", "starting", withRouter(map[string]bool{"starting-router-a": false}, "starting-router-a")),
		fake.InferServer("default", "new", func(s *v1alpha1.InferServer) { s.Spec.Router = &v1alpha1.RouterSpec{} }))
	f.FailRun(t, "", []string{"routes", "plain"},
		"inferserver \"plain\" has no router: set spec.router to route through one; `kubectl mindie status plain` shows its instances")
	f.FailRun(t, "", []string{"routes", "starting"}, `inferserver "starting" has no ready router pod (1 listed in status.router.pods, 2 wanted)`)
	f.FailRun(t, "", []string{"routes", "new"}, `inferserver "new" has no ready router pod (0 listed in status.router.pods, 2 wanted)`)
	f.FailRun(t, "", []string{"routes", "nope"}, `inferservers.infer.mindie.io "nope" not found`)
	f.FailRun(t, "", []string{"routes"}, "NAME is required")
	if n := len(f.Recorded()); n != 0 {
		t.Errorf("%d proxy requests, want none", n)
	}
}

func TestRoutesFailingRouter(t *testing.T) {
	s := fake.InferServer("default", "llama", withRouter(map[string]bool{"llama-router-a": true, "llama-router-b": true, "llama-router-c": true},
		"llama-router-a", "llama-router-b", "llama-router-c"))
	f := fake.New(t, NewCmdRoutes, s)
	f.SetHandler(routers(t, map[string]func() *http.Response{
		"llama-router-a": jsonAnswer(reportA),
		"llama-router-b": func() *http.Response {
			return fake.TextResponse(502, "application/json", `{"error":"router shutting down","error_type":"upstream"}`)
		},
		"llama-router-c": jsonAnswer(`<html>not a report</html>`),
	}))
	r := f.Run(t, "", "routes", "llama")
	if r.Code != 1 {
		t.Fatalf("routes with failing routers: exit %d, want 1\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if !strings.Contains(r.Stdout, "Router llama-router-a: cache_affinity") || row(r.Stdout, "llama-0") == nil {
		t.Errorf("routes: the router that answered is not printed:\n%s", r.Stdout)
	}
	if strings.Contains(r.Stdout, "llama-router-b") || strings.Contains(r.Stdout, "llama-router-c") {
		t.Errorf("routes prints a failed router on stdout:\n%s", r.Stdout)
	}
	for _, want := range []string{
		"error: router pod llama-router-b: GET /router/routes: 502 Bad Gateway: router shutting down\n",
		"error: router pod llama-router-c: GET /router/routes: the answer is not a routes report: ",
	} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.Stderr)
		}
	}

	// The API server's refusal, a Status, gives its message; -o json
	// still prints the reports that came, and exits 1.
	f.SetHandler(routers(t, map[string]func() *http.Response{"llama-router-a": jsonAnswer(reportA)}))
	r = f.Run(t, "", "routes", "llama", "-o", "json")
	if r.Code != 1 || !strings.Contains(r.Stdout, `"router": "llama-router-a"`) {
		t.Errorf("routes -o json with failing routers: exit %d, stdout:\n%s", r.Code, r.Stdout)
	}
	for _, pod := range []string{"llama-router-b", "llama-router-c"} {
		want := "error: router pod " + pod + ": GET /router/routes: 503 Service Unavailable: inferserver \"llama\" has no ready router pod \"" + pod + "\"\n"
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.Stderr)
		}
	}

	f.SetHandler(func(*http.Request) *http.Response {
		return fake.StatusResponse(403, metav1.StatusReasonForbidden, `User "tenant-a-viewer" cannot get resource "inferservers/proxy"`)
	})
	f.FailRun(t, "", []string{"routes", "llama"}, `403 Forbidden: User "tenant-a-viewer" cannot get resource "inferservers/proxy" (reading a router's routes needs the "get" verb on inferservers/proxy`)
}

// TestReportMatchesRouter checks that every field the plugin decodes is
// one the router sends, by JSON name and kind: the decode types mirror
// pkg/router's.
func TestReportMatchesRouter(t *testing.T) {
	if RoutesPath != router.RoutesPath {
		t.Errorf("RoutesPath %q, the router serves %q", RoutesPath, router.RoutesPath)
	}
	for _, pair := range [][2]reflect.Type{
		{reflect.TypeFor[routesReport](), reflect.TypeFor[router.RoutesReport]()},
		{reflect.TypeFor[instanceReport](), reflect.TypeFor[router.InstanceReport]()},
		{reflect.TypeFor[affinityReport](), reflect.TypeFor[router.AffinityReport]()},
	} {
		mine, theirs := jsonFields(pair[0]), jsonFields(pair[1])
		for name, kind := range mine {
			if k, ok := theirs[name]; !ok {
				t.Errorf("%s.%s: %s has no such JSON field", pair[0].Name(), name, pair[1])
			} else if k != kind {
				t.Errorf("%s.%s is a %s, the router's a %s", pair[0].Name(), name, kind, k)
			}
		}
	}
}

// jsonFields maps the JSON names of a struct's fields to their kinds
// (pointers, slices and times by what they hold).
func jsonFields(t reflect.Type) map[string]string {
	out := map[string]string{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		ft := f.Type
		kind := ""
		for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
			kind += ft.Kind().String() + " of "
			ft = ft.Elem()
		}
		switch {
		case ft == reflect.TypeFor[time.Time]():
			kind += "time"
		case ft.Kind() == reflect.Struct:
			kind += "struct"
		default:
			kind += ft.Kind().String()
		}
		out[name] = kind
	}
	return out
}

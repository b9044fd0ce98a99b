package router

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// routes gets and decodes /router/routes, refusing fields RoutesReport does
// not have (the API server decodes the same type).
func (tr *testRouter) routes(t *testing.T) RoutesReport {
	t.Helper()
	a := send(t, http.MethodGet, tr.url+RoutesPath, "")
	if a.status != http.StatusOK || a.header.Get("Content-Type") != "application/json" {
		t.Fatalf("%s: %d %s %s", RoutesPath, a.status, a.header.Get("Content-Type"), a.body)
	}
	var rep RoutesReport
	dec := json.NewDecoder(strings.NewReader(a.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("%s: %v\n%s", RoutesPath, err, a.body)
	}
	return rep
}

func instanceReport(t *testing.T, rep RoutesReport, name string) InstanceReport {
	t.Helper()
	for _, ir := range rep.Instances {
		if ir.Name == name {
			return ir
		}
	}
	t.Fatalf("no instance %s in %+v", name, rep.Instances)
	return InstanceReport{}
}

func TestRoutesReport(t *testing.T) {
	t.Setenv("POD_NAME", "mindie-router-7d9f-abcde")
	backends := threeBackends(t)
	byName := map[string]*fakeBackend{}
	for _, b := range backends {
		byName[b.name] = b
	}
	before := time.Now()
	tr := startRouter(t, testConfig(CacheAffinity), backends...)
	for _, b := range backends {
		tr.waitStatus(t, b.name, 100, 1000)
	}

	rep := tr.routes(t)
	if rep.Router != "mindie-router-7d9f-abcde" || rep.Algorithm != CacheAffinity || !rep.Ready || rep.ShuttingDown ||
		rep.Time.Before(before) || rep.InFlight != 0 || len(rep.Instances) != 3 {
		t.Fatalf("first report %+v", rep)
	}
	for i, ir := range rep.Instances {
		if ir.Name != backends[i].name || ir.Inference != backends[i].srv.URL || !ir.Routable || ir.Saturated || len(ir.Why) != 0 ||
			ir.FreeSlots != 100 || ir.TotalSlots != 100 || ir.FreeBlocks != 1000 || ir.TotalBlocks != 1000 ||
			ir.StatusTime == nil || ir.Requests != 0 || ir.Failures != 0 || ir.InFlight != 0 {
			t.Errorf("instance %d: %+v", i, ir)
		}
	}
	if a := rep.Affinity; a == nil || a.Hits != 0 || a.Misses != 0 || a.WindowChats != 0 || a.IndexEntries != 0 || a.IndexCapacity != 3000 || a.LowReuse {
		t.Fatalf("affinity before any chat: %+v", rep.Affinity)
	}

	// A conversation of three turns: one miss, then two hits on its home.
	turns := []string{"what is in the routes report", "instances", "and affinity?"}
	home := tr.chat(t, "", turns[0]).instance
	tr.chat(t, "", turns...)
	tr.chat(t, "", append(turns, "figures", "thanks")...)
	rep = tr.routes(t)
	a := rep.Affinity
	if a.Hits != 2 || a.Misses != 1 || a.WindowChats != 3 || a.PromptBlocks != 1+3+5 || a.ExpectedHitBlocks != 1+3 ||
		a.IndexEntries != 5 || a.WindowHitRate != 4.0/9 || a.ExpectedHitRate != 4.0/9 {
		t.Errorf("affinity after a conversation of three turns: %+v", a)
	}
	if ir := instanceReport(t, rep, home); ir.Requests != 3 || ir.InFlight != 0 || ir.PrefillTokens != 0 {
		t.Errorf("home %s after three turns: %+v", home, ir)
	}

	// A request in flight counts, with its prompt still to prefill.
	release := make(chan struct{})
	slow := byName[home]
	slow.setHandler(func(w http.ResponseWriter, _ *http.Request) {
		<-release
		w.Write([]byte(`{}`))
	})
	done := make(chan answer, 1)
	long := append(slices.Clone(turns), "figures", "thanks", strings.Repeat("a long question ", 100))
	go func() {
		a, _ := trySend(http.MethodPost, tr.url+"/v1/chat/completions", chat("", long...))
		done <- a
	}()
	waitFor(t, "the request at its instance", func() bool { return slow.hits.Load() == 4 })
	rep = tr.routes(t)
	if ir := instanceReport(t, rep, home); rep.InFlight != 1 || ir.InFlight != 1 || ir.Prefilling != 1 || ir.PrefillTokens < 400 || ir.Load <= 1 {
		t.Errorf("a request in flight: router %d, instance %+v", rep.InFlight, ir)
	}
	close(release)
	if a := <-done; a.status != http.StatusOK || a.instance != home {
		t.Fatalf("the slow turn: %d from %s", a.status, a.instance)
	}
	slow.setHandler(nil)
	rep = tr.routes(t)
	if ir := instanceReport(t, rep, home); rep.InFlight != 0 || ir.InFlight != 0 || ir.Prefilling != 0 || ir.PrefillTokens != 0 || ir.Load != 0 || ir.Requests != 4 {
		t.Errorf("after the request: router %d, instance %+v", rep.InFlight, ir)
	}

	// Failures, saturation, failing status, the breaker, draining and unready.
	byName["a"].setHandler(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) })
	for before := byName["a"].hits.Load(); byName["a"].hits.Load() == before; {
		send(t, http.MethodPost, tr.url+"/v1/completions", `{"prompt":"x"}`)
	}
	byName["b"].setStatus(3, 1000)
	tr.waitStatus(t, "b", 3, 1000)
	byName["c"].setStatusCode(http.StatusServiceUnavailable)
	waitFor(t, "c's status failing", func() bool { return tr.routableCount() == 2 })
	rep = tr.routes(t)
	if ir := instanceReport(t, rep, "a"); ir.Failures == 0 || !ir.Routable {
		t.Errorf("a after a 500: %+v", ir)
	}
	if ir := instanceReport(t, rep, "b"); !ir.Routable || !ir.Saturated || !slices.Equal(ir.Why, []string{WhySaturated}) || ir.FreeSlots != 3 {
		t.Errorf("b saturated: %+v", ir)
	}
	if ir := instanceReport(t, rep, "c"); ir.Routable || !slices.Equal(ir.Why, []string{WhyStatusFailing}) || !strings.Contains(ir.StatusError, "503") {
		t.Errorf("c with a failing status: %+v", ir)
	}
	tr.mu.Lock()
	until := time.Now().Add(time.Minute)
	tr.backends["a"].openUntil = until
	tr.mu.Unlock()
	ia, ib := byName["a"].instance(), byName["b"].instance()
	ia.Draining, ib.Ready = true, false
	tr.src.set(ia, ib, byName["c"].instance())
	rep = tr.routes(t)
	if rep.Ready {
		t.Errorf("ready with no routable instance: %+v", rep)
	}
	if ir := instanceReport(t, rep, "a"); ir.Routable || !slices.Equal(ir.Why, []string{WhyDraining, WhyBreakerOpen}) ||
		ir.BreakerOpenUntil == nil || !ir.BreakerOpenUntil.Equal(until) {
		t.Errorf("a draining with its breaker open: %+v", ir)
	}
	if ir := instanceReport(t, rep, "b"); ir.Routable || !slices.Equal(ir.Why, []string{WhyUnready, WhySaturated}) {
		t.Errorf("b unready: %+v", ir)
	}
}

func TestRoutesReportLowReuse(t *testing.T) {
	cfg := testConfig(CacheAffinity)
	cfg.AffinityHitWindow = 4
	tr := startRouter(t, cfg, threeBackends(t)...)
	for i := range 4 {
		tr.chat(t, "", "unrelated "+strings.Repeat("x", i))
	}
	a := tr.routes(t).Affinity
	if !a.LowReuse || a.WindowHitRate != 0 || a.WindowChats != 4 || a.Misses != 3 || a.Balanced != 1 {
		t.Errorf("after 4 unrelated chats: %+v", a)
	}
	// Other algorithms have no affinity part.
	ll := startRouter(t, testConfig(LeastLoad), newFakeBackend(t, "only"))
	if rep := ll.routes(t); rep.Affinity != nil || rep.Algorithm != LeastLoad {
		t.Errorf("least_load report %+v", rep)
	}
	if body := send(t, http.MethodGet, ll.url+RoutesPath, "").body; strings.Contains(body, "affinity") {
		t.Errorf("least_load report has an affinity part: %s", body)
	}
}

func TestRoutesReportNeedsTheInferenceRoutesAuthentication(t *testing.T) {
	api := newFakeAPI()
	tr, _ := authRouter(t, api, &fakeClock{now: time.Now()})
	cases := []struct {
		authorization string
		status        int
	}{
		{"", http.StatusUnauthorized},
		{"Bearer bad", http.StatusUnauthorized},
		{"Bearer other", http.StatusForbidden}, // bob may not use the server
		{"Bearer good", http.StatusOK},
	}
	for _, c := range cases {
		a := sendAuth(t, http.MethodGet, tr.url+RoutesPath, c.authorization, "")
		if a.status != c.status {
			t.Errorf("%q: %d %s, want %d", c.authorization, a.status, a.body, c.status)
		}
		if c.status == http.StatusUnauthorized && a.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%q: 401 without WWW-Authenticate", c.authorization)
		}
		if c.status == http.StatusOK {
			var rep RoutesReport
			if err := json.NewDecoder(bytes.NewReader([]byte(a.body))).Decode(&rep); err != nil || len(rep.Instances) != 1 {
				t.Errorf("report %v: %s", err, a.body)
			}
		}
	}
	api.mu.Lock()
	sar := api.lastSAR
	api.mu.Unlock()
	if ra := sar.ResourceAttributes; ra == nil || ra.Verb != "create" || ra.Resource != "inferservers" || ra.Subresource != "proxy" || ra.Name != "llama" {
		t.Errorf("the routes report was authorized with %+v, want create inferservers/proxy of llama", sar.ResourceAttributes)
	}
	api.fail(errors.New("the API server did not answer"))
	if a := sendAuth(t, http.MethodGet, tr.url+RoutesPath, "Bearer fresh", ""); a.status != http.StatusServiceUnavailable {
		t.Errorf("API unreachable: %d, want 503", a.status)
	}
}

func TestIsInferenceRoute(t *testing.T) {
	for _, c := range []struct {
		method, path string
		want         bool
	}{
		{"POST", "/v1/chat/completions", true},
		{"GET", "/v1/models", true},
		{"GET", "/v1/models/llama", true},
		{"POST", "/v2/models/llama/generate_stream", true},
		{"POST", "/infer", true},
		{"GET", "/v1/chat/completions", false},
		{"GET", "/info", false},
		{"GET", RoutesPath, false},
		{"GET", "/metrics", false},
		{"POST", "/v1/chat/completions/x", false},
	} {
		if got := IsInferenceRoute(c.method, c.path); got != c.want {
			t.Errorf("IsInferenceRoute(%s %s) = %v, want %v", c.method, c.path, got, c.want)
		}
	}
}

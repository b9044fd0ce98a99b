package router

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

// fakeBackend is an instance the test controls: its inference API answers
// with handler (by default a small JSON naming it) and its /v1/status
// reports the free slots and blocks set on it. It listens on 127.0.0.1.
type fakeBackend struct {
	name string
	srv  *httptest.Server
	hits atomic.Int64 // inference requests received

	mu                      sync.Mutex
	freeSlots, totalSlots   int
	freeBlocks, totalBlocks int
	statusCode              int
	handler                 http.HandlerFunc
}

func newFakeBackend(t *testing.T, name string) *fakeBackend {
	t.Helper()
	return newFakeBackendOf(t, name, false)
}

// newFakeHTTPSBackend is a fakeBackend serving HTTPS on both ports with
// httptest's certificate (for 127.0.0.1, ::1 and example.com; the CA is
// f.srv.Certificate()).
func newFakeHTTPSBackend(t *testing.T, name string) *fakeBackend {
	t.Helper()
	return newFakeBackendOf(t, name, true)
}

func newFakeBackendOf(t *testing.T, name string, https bool) *fakeBackend {
	t.Helper()
	f := &fakeBackend{name: name, freeSlots: 100, totalSlots: 100, freeBlocks: 1000, totalBlocks: 1000, statusCode: http.StatusOK}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, _ *http.Request) {
		f.mu.Lock()
		code := f.statusCode
		body := fmt.Sprintf(`{"service":{"roleStatus":"RoleUnknown","currentRole":"none"},"resource":{"availSlotsNum":%d,"availBlockNum":%d,"totalSlotsNum":%d,"totalBlockNum":%d,"waitingRequestNum":0,"runningRequestNum":0}}`,
			f.freeSlots, f.freeBlocks, f.totalSlots, f.totalBlocks)
		f.mu.Unlock()
		if code != http.StatusOK {
			w.WriteHeader(code)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, body)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		f.hits.Add(1)
		f.mu.Lock()
		h := f.handler
		f.mu.Unlock()
		if h != nil {
			h(w, r)
			return
		}
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"served_by":%q,"path":%q}`, name, r.URL.Path)
	})
	f.srv = httptest.NewUnstartedServer(mux)
	if https {
		// Handshakes the router refuses are what some tests check, not news.
		f.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
		f.srv.StartTLS()
	} else {
		f.srv.Start()
	}
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeBackend) instance() Instance {
	return Instance{Name: f.name, Inference: f.srv.URL, Management: f.srv.URL, Ready: true}
}

func (f *fakeBackend) setStatus(freeSlots, freeBlocks int) {
	f.mu.Lock()
	f.freeSlots, f.freeBlocks = freeSlots, freeBlocks
	f.mu.Unlock()
}

func (f *fakeBackend) setStatusCode(code int) {
	f.mu.Lock()
	f.statusCode = code
	f.mu.Unlock()
}

func (f *fakeBackend) setHandler(h http.HandlerFunc) {
	f.mu.Lock()
	f.handler = h
	f.mu.Unlock()
}

// fakeSource is a Source whose set the test changes.
type fakeSource struct {
	mu      sync.Mutex
	current []Instance
	update  func([]Instance)
}

func (s *fakeSource) Run(ctx context.Context, update func([]Instance)) error {
	s.mu.Lock()
	s.update = update
	update(s.current)
	s.mu.Unlock()
	<-ctx.Done()
	return nil
}

func (s *fakeSource) set(instances ...Instance) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.current = instances
	if s.update != nil {
		s.update(instances)
	}
}

// testConfig is the default configuration with fast status polling.
func testConfig(algorithm Algorithm) Config {
	cfg := DefaultConfig()
	cfg.Algorithm = algorithm
	cfg.StatusInterval = 10 * time.Millisecond
	cfg.ConnectTimeout = time.Second
	cfg.InsecureHTTP = true
	cfg.ShutdownDelay = 0 // tests of the delay set theirs
	return cfg
}

// testRouter is a running router in front of fake backends.
type testRouter struct {
	*Router
	url string
	src *fakeSource
}

// startRouter runs a router over the backends and waits until each is
// routable.
func startRouter(t *testing.T, cfg Config, backends ...*fakeBackend) *testRouter {
	t.Helper()
	return startRouterWith(t, cfg, nil, backends...)
}

// startRouterWith is startRouter with more options (an Authenticator).
func startRouterWith(t *testing.T, cfg Config, opts []Option, backends ...*fakeBackend) *testRouter {
	t.Helper()
	instances := make([]Instance, len(backends))
	for i, b := range backends {
		instances[i] = b.instance()
	}
	tr := runTestRouter(t, cfg, opts, instances)
	tr.waitRoutable(t, len(backends))
	return tr
}

// runTestRouter runs a router over instances, served by an httptest server
// on loopback, until the test ends.
func runTestRouter(t *testing.T, cfg Config, opts []Option, instances []Instance) *testRouter {
	t.Helper()
	src := &fakeSource{current: instances}
	r, err := New(cfg, src, append([]Option{WithLogger(logr.Discard()), WithRandSeed(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	srv := httptest.NewServer(r.Handler())
	t.Cleanup(func() {
		srv.Close()
		cancel()
		<-done
	})
	return &testRouter{Router: r, url: srv.URL, src: src}
}

// waitRoutable waits until n instances are routable.
func (tr *testRouter) waitRoutable(t *testing.T, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d routable instances", n), func() bool { return tr.routableCount() == n })
}

func (r *Router) routableCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, b := range r.order {
		if b.routable(time.Now()) {
			n++
		}
	}
	return n
}

// waitStatus waits until the router has read a backend's status showing
// the given free slots and blocks.
func (r *Router) waitStatus(t *testing.T, name string, freeSlots, freeBlocks int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%s's status with %d free slots and %d free blocks", name, freeSlots, freeBlocks), func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		b := r.backends[name]
		return b != nil && b.statusOK && b.status.AvailSlots == freeSlots && b.status.AvailBlocks == freeBlocks && b.sincePoll == 0
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// answer is a response read whole.
type answer struct {
	status   int
	instance string
	header   http.Header
	body     string
}

func send(t *testing.T, method, url, body string) answer {
	t.Helper()
	a, err := trySend(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// trySend is send for goroutines other than the test's.
func trySend(method, url, body string) (answer, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: reading the answer: %w", method, url, err)
	}
	return answer{status: resp.StatusCode, instance: resp.Header.Get(InstanceHeader), header: resp.Header, body: string(data)}, nil
}

// chat returns an OpenAI chat body: the messages alternate user and
// assistant, after an optional system prompt.
func chat(system string, turns ...string) string {
	type msg struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	}
	var msgs []msg
	if system != "" {
		msgs = append(msgs, msg{"system", system})
	}
	for i, t := range turns {
		role := "user"
		if i%2 == 1 {
			role = "assistant"
		}
		msgs = append(msgs, msg{role, t})
	}
	data, _ := json.Marshal(map[string]any{"model": "m", "messages": msgs})
	return string(data)
}

func (tr *testRouter) chat(t *testing.T, system string, turns ...string) answer {
	t.Helper()
	a := send(t, http.MethodPost, tr.url+"/v1/chat/completions", chat(system, turns...))
	if a.status != http.StatusOK {
		t.Fatalf("chat %q: %d %s", turns, a.status, a.body)
	}
	return a
}

// metricsText scrapes the router's /metrics.
func (tr *testRouter) metricsText(t *testing.T) string {
	t.Helper()
	a := send(t, http.MethodGet, tr.url+"/metrics", "")
	if a.status != http.StatusOK {
		t.Fatalf("/metrics: %d", a.status)
	}
	return a.body
}

// metricValue finds the value of one series in Prometheus text, or -1.
func metricValue(text, series string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			var v float64
			fmt.Sscan(rest, &v)
			return v
		}
	}
	return -1
}

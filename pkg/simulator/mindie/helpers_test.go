package mindie

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mindie.io/deployer/test/testutil"
)

// fakeClock records every requested sleep. By default a sleep returns at
// once and time stands still; in blocking mode a sleep waits until Advance
// moves the time past its end (or its context ends).
type fakeClock struct {
	mu       sync.Mutex
	now      time.Time
	sleeps   []time.Duration
	blocking bool
	waiters  []*fakeSleeper
}

type fakeSleeper struct {
	until time.Time
	done  chan struct{}
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.sleeps = append(c.sleeps, d)
	if !c.blocking || d <= 0 {
		c.mu.Unlock()
		return ctx.Err()
	}
	w := &fakeSleeper{until: c.now.Add(d), done: make(chan struct{})}
	c.waiters = append(c.waiters, w)
	c.mu.Unlock()
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		c.waiters = slices.DeleteFunc(c.waiters, func(x *fakeSleeper) bool { return x == w })
		c.mu.Unlock()
		return ctx.Err()
	}
}

// Advance moves the time forward and wakes the sleeps that end by then.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.waiters = slices.DeleteFunc(c.waiters, func(w *fakeSleeper) bool {
		if !w.until.After(c.now) {
			close(w.done)
			return true
		}
		return false
	})
}

func (c *fakeClock) setBlocking(b bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.blocking = b
}

// takeSleeps returns the sleeps recorded so far and forgets them.
func (c *fakeClock) takeSleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.sleeps
	c.sleeps = nil
	return out
}

// recorded is the number of sleeps recorded so far.
func (c *fakeClock) recorded() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sleeps)
}

// sleepers is the number of blocked sleeps.
func (c *fakeClock) sleepers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

// waitUntil polls cond until it holds, failing the test after 10 s. It is
// how tests wait for another goroutine to reach a state, never an
// assertion in itself.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// harness is a simulator behind two httptest servers on loopback, with a
// fake clock.
type harness struct {
	t      *testing.T
	clock  *fakeClock
	srv    *Server
	inf    *httptest.Server
	mgmt   *httptest.Server
	log    *testutil.SyncBuffer
	client *http.Client
}

// testConfig is a Config whose durations are easy to tell apart in the
// recorded sleeps, loaded at once.
func testConfig() Config {
	return Config{
		LoadTime:        NoDelay,
		PrefillPerToken: time.Millisecond,
		DecodePerToken:  time.Second,
		BlockSize:       4,
	}
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := &harness{t: t, clock: newFakeClock(), log: &testutil.SyncBuffer{}, client: &http.Client{Timeout: 20 * time.Second}}
	srv, err := New(cfg, WithClock(h.clock), WithLogWriter(h.log))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.srv = srv
	h.inf = httptest.NewServer(srv.InferenceHandler())
	h.mgmt = httptest.NewServer(srv.ManagementHandler())
	t.Cleanup(h.inf.Close)
	t.Cleanup(h.mgmt.Close)
	// Runs before the servers close: nothing may stay blocked.
	t.Cleanup(func() {
		h.srv.SetHung(false)
		h.clock.setBlocking(false)
		h.clock.Advance(time.Hour)
	})
	return h
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (h *harness) do(method, url, body string) response {
	h.t.Helper()
	resp, err := h.doErr(context.Background(), method, url, body)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp
}

func (h *harness) doErr(ctx context.Context, method, url, body string) (response, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return response{}, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// post sends a JSON body to the inference port.
func (h *harness) post(path, body string) response {
	h.t.Helper()
	return h.do(http.MethodPost, h.inf.URL+path, body)
}

func (h *harness) getInference(path string) response {
	h.t.Helper()
	return h.do(http.MethodGet, h.inf.URL+path, "")
}

func (h *harness) getMgmt(path string) response {
	h.t.Helper()
	return h.do(http.MethodGet, h.mgmt.URL+path, "")
}

// async sends a request in the background; the channel gets its result.
type result struct {
	resp response
	err  error
}

func (h *harness) async(ctx context.Context, method, url, body string) <-chan result {
	ch := make(chan result, 1)
	go func() {
		resp, err := h.doErr(ctx, method, url, body)
		ch <- result{resp, err}
	}()
	return ch
}

func receive(t *testing.T, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("timed out waiting for a response")
		return result{}
	}
}

func decode[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decoding %q: %v", r.body, err)
	}
	return v
}

// sseData returns the payloads of a server-sent event stream's "data:"
// lines, and fails unless every event is a single data line followed by a
// blank line.
func sseData(t *testing.T, body []byte) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	expectBlank := false
	for sc.Scan() {
		line := sc.Text()
		if expectBlank {
			if line != "" {
				t.Fatalf("event not followed by a blank line: %q in %q", line, body)
			}
			expectBlank = false
			continue
		}
		payload, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("not a data line: %q in %q", line, body)
		}
		out = append(out, payload)
		expectBlank = true
	}
	if expectBlank {
		t.Fatalf("stream does not end with a blank line: %q", body)
	}
	return out
}

// chatBody builds a chat completion request.
func chatBody(t *testing.T, messages []map[string]string, extra map[string]any) string {
	t.Helper()
	body := map[string]any{"model": DefaultModelID, "messages": messages}
	for k, v := range extra {
		body[k] = v
	}
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func jsonBody(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// words returns n distinct words "w<start>" ... "w<start+n-1>": a prompt of
// n tokens.
func words(start, n int) string {
	ws := make([]string, n)
	for i := range ws {
		ws[i] = "w" + strconv.Itoa(start+i)
	}
	return strings.Join(ws, " ")
}

// step moves the time to the end of the earliest blocked sleep, waking it
// (and any other that ends then). It reports whether there was one.
func (c *fakeClock) step() bool {
	c.mu.Lock()
	if len(c.waiters) == 0 {
		c.mu.Unlock()
		return false
	}
	next := c.waiters[0].until
	for _, w := range c.waiters[1:] {
		if w.until.Before(next) {
			next = w.until
		}
	}
	d := next.Sub(c.now)
	c.mu.Unlock()
	c.Advance(d)
	return true
}

// runUntil drives a blocking fake clock one sleep at a time, each to its
// exact end, until cond holds: the engine then runs as it would in real
// time, with no time lost between its iterations.
func (h *harness) runUntil(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out running the clock until %s", what)
		}
		if !h.clock.step() {
			time.Sleep(100 * time.Microsecond)
		}
	}
}

// submitted is a job run with submit.
type submitted struct {
	done chan struct{}
	gen  *generation
	err  error
}

func (s *submitted) finished() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// ttft is the model's time from the request's arrival to its first token.
func (s *submitted) ttft() time.Duration { return s.gen.tokenTimes[0].Sub(s.gen.arrived) }

// intervals are the model's times between the request's tokens.
func (s *submitted) intervals() []time.Duration {
	var out []time.Duration
	for i := 1; i < len(s.gen.tokenTimes); i++ {
		out = append(out, s.gen.tokenTimes[i].Sub(s.gen.tokenTimes[i-1]))
	}
	return out
}

// submit runs a completion-style job of prompt in the background, straight
// through the engine (no HTTP), for tests that look at its token times.
func (h *harness) submit(prompt string, maxTokens int) *submitted {
	h.t.Helper()
	j, apiErr := h.srv.newJob(Tokenize(prompt), &maxTokens, "max_tokens", defaultCompletionTokens, true)
	if apiErr != nil {
		h.t.Fatalf("newJob: %v", apiErr)
	}
	s := &submitted{done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.gen, s.err = h.srv.execute(context.Background(), j, nil)
	}()
	return s
}

// wait waits for every s to finish (the clock must be running) and fails
// the test on an error.
func (h *harness) wait(subs ...*submitted) {
	h.t.Helper()
	h.runUntil("the requests finish", func() bool {
		for _, s := range subs {
			if !s.finished() {
				return false
			}
		}
		return true
	})
	for i, s := range subs {
		if s.err != nil {
			h.t.Fatalf("request %d: %v", i, s.err)
		}
	}
}

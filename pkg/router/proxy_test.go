package router

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

// abortConnection drops the connection without an answer.
func abortConnection(w http.ResponseWriter, _ *http.Request) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
	}
}

// closedURL is a loopback address nobody listens on.
func closedURL(t *testing.T) string {
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close()
	return u
}

func TestRetryBeforeFirstByte(t *testing.T) {
	cases := []struct {
		name    string
		handler http.HandlerFunc // the failing instance's; nil: nobody listens
		reason  string
	}{
		{"500", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) }, "status_5xx"},
		{"503", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "busy", http.StatusServiceUnavailable) }, "status_5xx"},
		{"429", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "full", http.StatusTooManyRequests) }, "status_429"},
		{"connection dropped", abortConnection, "connect"},
		{"headers then dropped", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusOK)
			http.NewResponseController(w).Flush()
			panic(http.ErrAbortHandler)
		}, "connect"},
		{"connection refused", nil, "connect"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			good, bad := newFakeBackend(t, "good"), newFakeBackend(t, "bad")
			bad.setHandler(c.handler)
			tr := startRouter(t, testConfig(RoundRobin), good, bad)
			if c.handler == nil {
				tr.src.set(good.instance(), Instance{Name: "bad", Inference: closedURL(t), Ready: true})
			}
			// round_robin's first pick is the second instance: bad.
			a := send(t, http.MethodPost, tr.url+"/generate", `{"inputs":"hi"}`)
			if a.status != http.StatusOK || a.instance != "good" {
				t.Fatalf("got %d from %q: %s; want 200 from good", a.status, a.instance, a.body)
			}
			if c.handler != nil && bad.hits.Load() != 1 {
				t.Errorf("bad got %d requests, want 1", bad.hits.Load())
			}
			m := tr.metricsText(t)
			if v := metricValue(m, `mindie_router_retries_total{reason="`+c.reason+`",route="/generate"}`); v != 1 {
				t.Errorf("retries{reason=%s} = %v, want 1\n%s", c.reason, v, m)
			}
		})
	}
}

func TestRetriesExhaustedRelayTheLastFailure(t *testing.T) {
	backends := threeBackends(t)
	for _, b := range backends {
		b.setHandler(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, `{"error":"engine failed"}`)
		})
	}
	cfg := testConfig(RoundRobin)
	cfg.MaxRetries = 1
	tr := startRouter(t, cfg, backends...)
	a := send(t, http.MethodPost, tr.url+"/generate", `{"inputs":"hi"}`)
	if a.status != http.StatusInternalServerError || a.body != `{"error":"engine failed"}` || a.instance == "" {
		t.Fatalf("got %d from %q: %s; want the instance's 500 relayed", a.status, a.instance, a.body)
	}
	hits := int64(0)
	for _, b := range backends {
		hits += b.hits.Load()
	}
	if hits != 2 {
		t.Errorf("%d attempts, want 2 (--max-retries=1)", hits)
	}
}

func TestNoRetryAfterTheFirstByte(t *testing.T) {
	good, bad := newFakeBackend(t, "good"), newFakeBackend(t, "bad")
	bad.setHandler(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"token\":1}\n\n")
		http.NewResponseController(w).Flush()
		time.Sleep(20 * time.Millisecond)
		panic(http.ErrAbortHandler)
	})
	tr := startRouter(t, testConfig(RoundRobin), good, bad)
	a := send(t, http.MethodPost, tr.url+"/v1/chat/completions", chat("", "stream please"))
	if a.status != http.StatusOK || a.instance != "bad" {
		t.Fatalf("got %d from %q, want 200 from bad (the answer had started)", a.status, a.instance)
	}
	if !strings.HasPrefix(a.body, "data: {\"token\":1}\n\n") || !strings.Contains(a.body, `"type":"upstream_error"`) {
		t.Errorf("body %q: want the first event, then an error event", a.body)
	}
	if good.hits.Load() != 0 {
		t.Errorf("good got %d requests, want none", good.hits.Load())
	}
	if v := metricValue(tr.metricsText(t), `mindie_router_retries_total{reason="connect",route="/v1/chat/completions"}`); v != -1 {
		t.Errorf("retries = %v, want none", v)
	}
}

func TestLimitsAndErrors(t *testing.T) {
	// slow holds requests until the test ends.
	var block chan struct{}
	slow := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}
	type shape int
	const (
		openAI shape = iota
		plain
	)
	cases := []struct {
		name       string
		configure  func(*Config)
		handler    http.HandlerFunc
		noBackends bool
		occupy     bool // one request in flight first
		path, body string
		chunked    bool
		status     int
		retryAfter string
		shape      shape
		instance   bool // X-Mindie-Instance is set
		message    string
	}{
		{name: "413 by Content-Length", configure: func(c *Config) { c.MaxBodyBytes = 100 },
			path: "/v1/chat/completions", body: chat("", strings.Repeat("x", 200)),
			status: http.StatusRequestEntityTooLarge, shape: openAI, message: "--max-body-bytes"},
		{name: "413 chunked", configure: func(c *Config) { c.MaxBodyBytes = 100 },
			path: "/generate", body: `{"inputs":"` + strings.Repeat("x", 200) + `"}`, chunked: true,
			status: http.StatusRequestEntityTooLarge, shape: plain, message: "--max-body-bytes"},
		{name: "429 router full", configure: func(c *Config) { c.MaxInflight = 1 }, handler: slow, occupy: true,
			path: "/v1/completions", body: `{"prompt":"x"}`,
			status: http.StatusTooManyRequests, retryAfter: "1", shape: openAI, message: "--max-inflight"},
		{name: "429 instance full", configure: func(c *Config) { c.MaxInflightPerInstance = 1 }, handler: slow, occupy: true,
			path: "/generate", body: `{"inputs":"x"}`,
			status: http.StatusTooManyRequests, retryAfter: "1", shape: plain, message: "--max-inflight-per-instance"},
		{name: "503 no instance", noBackends: true,
			path: "/v1/chat/completions", body: chat("", "hi"),
			status: http.StatusServiceUnavailable, retryAfter: "1", shape: openAI, message: "no instance"},
		{name: "504 first token", configure: func(c *Config) { c.FirstTokenTimeout = 100 * time.Millisecond }, handler: slow,
			path: "/v1/chat/completions", body: chat("", "hi"),
			status: http.StatusGatewayTimeout, shape: openAI, instance: true, message: "--first-token-timeout"},
		{name: "504 request timeout", configure: func(c *Config) { c.RequestTimeout = 100 * time.Millisecond }, handler: slow,
			path: "/infer", body: `{"inputs":"x"}`,
			status: http.StatusGatewayTimeout, shape: plain, instance: true, message: "--request-timeout"},
		{name: "404 unknown route", path: "/v1/embeddings", body: `{}`,
			status: http.StatusNotFound, shape: openAI, message: "no route"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig(LeastLoad)
			if c.configure != nil {
				c.configure(&cfg)
			}
			b := newFakeBackend(t, "only")
			b.setHandler(c.handler)
			tr := startRouter(t, cfg, b)
			block = make(chan struct{})
			t.Cleanup(func() { close(block) }) // before the router and backend close
			if c.noBackends {
				tr.src.set()
			}
			if c.occupy {
				go trySend(http.MethodPost, tr.url+c.path, c.body)
				waitFor(t, "a request in flight", func() bool { return b.hits.Load() == 1 })
			}
			var body io.Reader = strings.NewReader(c.body)
			if c.chunked {
				body = io.MultiReader(body) // unknown length: sent chunked
			}
			resp, err := http.Post(tr.url+c.path, "application/json", body)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			data, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != c.status {
				t.Fatalf("got %d %s, want %d", resp.StatusCode, data, c.status)
			}
			if got := resp.Header.Get("Retry-After"); got != c.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, c.retryAfter)
			}
			if got := resp.Header.Get(InstanceHeader); (got != "") != c.instance {
				t.Errorf("%s %q, want set: %v", InstanceHeader, got, c.instance)
			}
			var message string
			switch c.shape {
			case openAI:
				var e struct {
					Error struct {
						Message string `json:"message"`
						Type    string `json:"type"`
						Code    *int   `json:"code"`
					} `json:"error"`
				}
				if err := json.Unmarshal(data, &e); err != nil || e.Error.Type == "" || e.Error.Code == nil || *e.Error.Code != c.status {
					t.Errorf("body %s is not an OpenAI error with code %d", data, c.status)
				}
				message = e.Error.Message
			case plain:
				var e struct {
					Error     string `json:"error"`
					ErrorType string `json:"error_type"`
				}
				if err := json.Unmarshal(data, &e); err != nil || e.ErrorType == "" {
					t.Errorf("body %s is not {error, error_type}", data)
				}
				message = e.Error
			}
			if !strings.Contains(message, c.message) {
				t.Errorf("message %q does not say %q", message, c.message)
			}
		})
	}
}

func TestStreamsChunkByChunk(t *testing.T) {
	b := newFakeBackend(t, "streamer")
	release := make(chan struct{})
	b.setHandler(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		io.WriteString(w, "data: {\"token\":\"first\"}\n\n")
		rc.Flush()
		<-release
		io.WriteString(w, "data: {\"token\":\"last\"}\n\n")
		io.WriteString(w, "data: [DONE]\n\n")
	})
	tr := startRouter(t, testConfig(CacheAffinity), b)
	resp, err := http.Post(tr.url+"/v1/chat/completions", "application/json", strings.NewReader(chat("", "stream")))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get(InstanceHeader) != "streamer" || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("headers %v", resp.Header)
	}
	rd := bufio.NewReader(resp.Body)
	got := make(chan string, 1)
	go func() {
		line, _ := rd.ReadString('\n')
		got <- line
	}()
	select {
	case line := <-got:
		if line != "data: {\"token\":\"first\"}\n" {
			t.Fatalf("first line %q", line)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the first event did not arrive while the instance held back the rest")
	}
	close(release)
	rest, err := io.ReadAll(rd)
	if err != nil {
		t.Fatal(err)
	}
	if want := "\ndata: {\"token\":\"last\"}\n\ndata: [DONE]\n\n"; string(rest) != want {
		t.Errorf("rest %q, want %q", rest, want)
	}
}

func TestReadyzFollowsInstances(t *testing.T) {
	cfg := testConfig(LeastLoad)
	b := newFakeBackend(t, "a")
	tr := startRouter(t, cfg, b)
	readyz := func() int { return send(t, http.MethodGet, tr.url+"/readyz", "").status }
	steps := []struct {
		name string
		do   func()
		want int
	}{
		{"one instance", func() {}, http.StatusOK},
		{"removed", func() { tr.src.set() }, http.StatusServiceUnavailable},
		{"back", func() { tr.src.set(b.instance()); tr.waitRoutable(t, 1) }, http.StatusOK},
		{"status failing", func() {
			b.setStatusCode(http.StatusInternalServerError)
			waitFor(t, "not routable", func() bool { return tr.routableCount() == 0 })
		}, http.StatusServiceUnavailable},
		{"status back", func() { b.setStatusCode(http.StatusOK); tr.waitRoutable(t, 1) }, http.StatusOK},
		{"draining", func() {
			i := b.instance()
			i.Draining = true
			tr.src.set(i)
		}, http.StatusServiceUnavailable},
		{"not ready", func() {
			i := b.instance()
			i.Ready = false
			tr.src.set(i)
		}, http.StatusServiceUnavailable},
	}
	for _, s := range steps {
		s.do()
		if got := readyz(); got != s.want {
			t.Errorf("%s: /readyz %d, want %d", s.name, got, s.want)
		}
	}
	if got := send(t, http.MethodGet, tr.url+"/healthz", ""); got.status != http.StatusOK {
		t.Errorf("/healthz %d", got.status)
	}
}

func TestDrainingInstanceFinishesItsRequests(t *testing.T) {
	a, b := newFakeBackend(t, "a"), newFakeBackend(t, "b")
	release := make(chan struct{})
	a.setHandler(func(w http.ResponseWriter, _ *http.Request) {
		<-release
		io.WriteString(w, `{"done":true}`)
	})
	tr := startRouter(t, testConfig(RoundRobin), b, a) // round robin starts at the second: a
	first := make(chan answer, 1)
	go func() {
		a, err := trySend(http.MethodPost, tr.url+"/generate", `{"inputs":"x"}`)
		if err != nil {
			a.body = err.Error()
		}
		first <- a
	}()
	waitFor(t, "a request at a", func() bool { return a.hits.Load() == 1 })
	drained := a.instance()
	drained.Draining = true
	tr.src.set(b.instance(), drained)
	for range 3 {
		if got := send(t, http.MethodPost, tr.url+"/generate", `{"inputs":"y"}`).instance; got != "b" {
			t.Fatalf("a new request went to %s while a drains", got)
		}
	}
	tr.src.set(b.instance()) // and a goes away altogether
	close(release)
	if got := <-first; got.status != http.StatusOK || got.instance != "a" || got.body != `{"done":true}` {
		t.Errorf("the request in flight at a ended %d %q %s", got.status, got.instance, got.body)
	}
}

func TestCircuitBreaker(t *testing.T) {
	bad, good := newFakeBackend(t, "bad"), newFakeBackend(t, "good")
	bad.setHandler(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) })
	cfg := testConfig(LeastLoad)
	cfg.BreakerFailures = 2
	cfg.BreakerBackoff = time.Minute
	cfg.BreakerMaxBackoff = time.Minute
	tr := startRouter(t, cfg, bad, good)
	for i := 0; bad.hits.Load() < 2; i++ {
		if i == 100 {
			t.Fatal("the failing instance was not picked twice in 100 requests")
		}
		if a := send(t, http.MethodPost, tr.url+"/generate", `{"inputs":"x"}`); a.status != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, a.status, a.body)
		}
	}
	for range 10 {
		send(t, http.MethodPost, tr.url+"/generate", `{"inputs":"x"}`)
	}
	if n := bad.hits.Load(); n != 2 {
		t.Errorf("the failing instance got %d requests, want 2 and then none while it backs off", n)
	}
	if v := metricValue(tr.metricsText(t), `mindie_router_circuit_breaker_trips_total{instance="bad"}`); v != 1 {
		t.Errorf("trips = %v, want 1", v)
	}
}

func TestMetricsHaveTheSeries(t *testing.T) {
	good, bad := newFakeBackend(t, "good"), newFakeBackend(t, "bad")
	bad.setHandler(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "boom", http.StatusBadGateway) })
	tr := startRouter(t, testConfig(CacheAffinity), good, bad)
	for i := range 4 {
		tr.chat(t, "", "metrics", "answer", strings.Repeat("more ", i))
	}
	for i, before := 0, bad.hits.Load(); bad.hits.Load() == before; i++ { // least-loaded, ties at random
		if i == 50 {
			t.Fatal("bad never picked")
		}
		send(t, http.MethodPost, tr.url+"/generate", `{"inputs":"x"}`)
	}
	m := tr.metricsText(t)
	for _, series := range []string{
		`mindie_router_requests_total{code="200",instance="good",route="/v1/chat/completions"}`,
		`mindie_router_time_to_first_byte_seconds_bucket{instance="good",route="/v1/chat/completions",le="+Inf"}`,
		`mindie_router_request_duration_seconds_count{instance="good",route="/generate"}`,
		`mindie_router_instance_inflight_requests{instance="good"}`,
		`mindie_router_instance_pending_prefill_tokens{instance="good"}`,
		`mindie_router_instance_routable{instance="good"}`,
		`mindie_router_instance_free_slots{instance="good"}`,
		`mindie_router_inflight_requests`,
		`mindie_router_decisions_total{algorithm="cache_affinity",reason="affinity"}`,
		`mindie_router_affinity_lookups_total{result="hit"}`,
		`mindie_router_affinity_prompt_blocks_total`,
		`mindie_router_affinity_expected_hit_blocks_total`,
		`mindie_router_affinity_index_blocks`,
		`mindie_router_affinity_window_hit_ratio`,
		`mindie_router_affinity_low_reuse`,
	} {
		if metricValue(m, series) < 0 {
			t.Errorf("no series %s", series)
		}
	}
	if !strings.Contains(m, "mindie_router_retries_total{") {
		t.Errorf("no retries_total series after a 502 was retried")
	}
}

func TestServeShutsDownGracefully(t *testing.T) {
	cases := []struct {
		name     string
		grace    time.Duration
		finishes bool // the instance ends the stream within the grace period
	}{
		{"the stream finishes", 5 * time.Second, true},
		{"the grace period runs out", 200 * time.Millisecond, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newFakeBackend(t, "a")
			release := make(chan struct{})
			b.setHandler(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				io.WriteString(w, "data: 1\n\n")
				http.NewResponseController(w).Flush()
				select {
				case <-release:
				case <-r.Context().Done():
					return
				}
				io.WriteString(w, "data: 2\n\n")
			})
			cfg := testConfig(LeastLoad)
			cfg.ShutdownGrace = c.grace
			r, err := New(cfg, StaticSource{b.instance()})
			if err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ctx, stop := context.WithCancel(context.Background())
			served := make(chan error, 1)
			go func() { served <- r.Serve(ctx, ln) }()
			waitFor(t, "ready", r.Ready)
			url := "http://" + ln.Addr().String()
			resp, err := http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(chat("", "x")))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			rd := bufio.NewReader(resp.Body)
			if line, _ := rd.ReadString('\n'); line != "data: 1\n" {
				t.Fatalf("first line %q", line)
			}
			stop()
			waitFor(t, "not ready", func() bool { return !r.Ready() })
			waitFor(t, "the listener closed", func() bool {
				conn, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second)
				if err == nil {
					conn.Close()
				}
				return err != nil
			})
			if c.finishes {
				close(release)
			}
			rest, readErr := io.ReadAll(rd)
			err = <-served
			if c.finishes {
				if readErr != nil || string(rest) != "\ndata: 2\n\n" || err != nil {
					t.Errorf("rest %q (%v), Serve: %v; want the stream finished and a clean stop", rest, readErr, err)
				}
				return
			}
			close(release)
			if err == nil || !errors.Is(readErr, io.ErrUnexpectedEOF) && readErr == nil {
				t.Errorf("Serve: %v, read: %v; want the grace period to run out and the stream cut", err, readErr)
			}
		})
	}
}

// TestServeKeepsServingDuringTheShutdownDelay: after the signal the router
// is not ready at once, but serves every new request – on new connections
// and on kept-alive ones, each answer asking to close the connection – until
// the delay is over; only then does it stop accepting and return.
func TestServeKeepsServingDuringTheShutdownDelay(t *testing.T) {
	const delay = 1500 * time.Millisecond
	b := newFakeBackend(t, "a")
	cfg := testConfig(LeastLoad)
	cfg.ShutdownDelay = delay
	r, err := New(cfg, StaticSource{b.instance()}, WithLogger(logr.Discard()))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	served := make(chan error, 1)
	go func() { served <- r.Serve(ctx, ln) }()
	waitFor(t, "ready", r.Ready)
	url := "http://" + ln.Addr().String()
	keepAlive := &http.Client{Timeout: 5 * time.Second}
	fresh := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(c *http.Client, method, path, body string) (*http.Response, error) {
		req, _ := http.NewRequest(method, url+path, strings.NewReader(body))
		resp, err := c.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return resp, err
	}
	if resp, err := get(keepAlive, http.MethodGet, "/readyz", ""); err != nil || resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("/readyz before the signal: %v %v", resp, err)
	}

	signalled := time.Now()
	stop()
	waitFor(t, "/readyz to answer 503", func() bool {
		resp, err := get(fresh, http.MethodGet, "/readyz", "")
		if err != nil {
			t.Fatalf("/readyz refused after the signal: %v", err)
		}
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	sent := 0
	for time.Since(signalled) < delay-500*time.Millisecond {
		for _, c := range []*http.Client{fresh, keepAlive} {
			resp, err := get(c, http.MethodPost, "/v1/chat/completions", chat("", "during the delay"))
			if err != nil {
				t.Fatalf("a request %s after the signal was refused: %v", time.Since(signalled), err)
			}
			if resp.StatusCode != http.StatusOK || resp.Header.Get(InstanceHeader) != "a" {
				t.Fatalf("a request %s after the signal: %d from %q", time.Since(signalled), resp.StatusCode, resp.Header.Get(InstanceHeader))
			}
			if !resp.Close {
				t.Errorf("an answer during the delay does not ask to close the connection")
			}
			sent++
		}
		if resp, err := get(fresh, http.MethodGet, "/readyz", ""); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("/readyz during the delay: %v %v, want 503", resp, err)
		}
		select {
		case err := <-served:
			t.Fatalf("Serve returned %s after the signal, before the %s delay: %v", time.Since(signalled), delay, err)
		default:
		}
		time.Sleep(20 * time.Millisecond)
	}
	if sent == 0 {
		t.Fatal("no request sent during the delay")
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
		if elapsed := time.Since(signalled); elapsed < delay {
			t.Errorf("Serve returned %s after the signal, before the %s delay", elapsed, delay)
		}
	case <-time.After(delay + 5*time.Second):
		t.Fatal("Serve did not return after the delay")
	}
	if conn, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		conn.Close()
		t.Error("still accepting after the delay")
	}
}

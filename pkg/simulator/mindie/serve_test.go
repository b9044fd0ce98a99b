package mindie

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"mindie.io/deployer/test/testutil"
)

// serving is a Server run by Serve on real loopback TCP ports.
type serving struct {
	srv    *Server
	log    *testutil.SyncBuffer
	inf    string // base URLs
	mgmt   string
	cancel context.CancelFunc
	done   chan struct{} // closed when Serve returns
	err    error         // what it returned
}

func startServing(t *testing.T, cfg Config, opts ...Option) *serving {
	t.Helper()
	return startServingWith(t, cfg, func(srv *Server, ctx context.Context) error {
		return srv.Serve(ctx, "127.0.0.1:0", "127.0.0.1:0")
	}, opts...)
}

// startServingOn serves on listeners the test made.
func startServingOn(t *testing.T, cfg Config, inference, management net.Listener, opts ...Option) *serving {
	t.Helper()
	return startServingWith(t, cfg, func(srv *Server, ctx context.Context) error {
		return srv.ServeListeners(ctx, inference, management)
	}, opts...)
}

func startServingWith(t *testing.T, cfg Config, serve func(*Server, context.Context) error, opts ...Option) *serving {
	t.Helper()
	log := &testutil.SyncBuffer{}
	srv, err := New(cfg, append([]Option{WithLogWriter(log)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &serving{srv: srv, log: log, cancel: cancel, done: make(chan struct{})}
	go func() {
		s.err = serve(srv, ctx)
		close(s.done)
	}()
	select {
	case <-srv.Listening():
	case <-s.done:
		t.Fatalf("Serve: %v", s.err)
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not start listening")
	}
	inf, mgmt := srv.Addrs()
	s.inf, s.mgmt = "http://"+inf.String(), "http://"+mgmt.String()
	t.Cleanup(func() {
		srv.SetHung(false)
		cancel()
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after its context ended")
		}
	})
	return s
}

func (s *serving) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-s.done:
		return s.err
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
		return nil
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServeOnRealLoopbackPorts(t *testing.T) {
	s := startServing(t, Config{LoadTime: NoDelay, DecodePerToken: time.Millisecond, PrefillPerToken: time.Microsecond})
	for _, addr := range []string{s.inf, s.mgmt} {
		if !strings.HasPrefix(addr, "http://127.0.0.1:") || strings.HasSuffix(addr, ":0") {
			t.Fatalf("not a bound loopback address: %s", addr)
		}
	}
	if code, _ := httpGet(t, s.mgmt+"/v2/health/live"); code != http.StatusOK {
		t.Errorf("live: %d", code)
	}
	if code, _ := httpGet(t, s.mgmt+"/v2/health/ready"); code != http.StatusOK {
		t.Errorf("ready: %d", code)
	}
	if code, body := httpGet(t, s.mgmt+"/info"); code != http.StatusOK || !strings.Contains(body, `"version":"0.1.0-simulator"`) {
		t.Errorf("/info: %d %s", code, body)
	}
	if code, body := httpGet(t, s.mgmt+"/health/timed-2"); code != http.StatusOK || body != "healthy" {
		t.Errorf("timed health with the real clock: %d %q", code, body)
	}
	if code, _ := httpGet(t, s.inf+"/v2/health/live"); code != http.StatusNotFound {
		t.Errorf("the inference port should not serve management endpoints: %d", code)
	}

	// A real streamed chat completion, flushed chunk by chunk.
	body := `{"messages": [{"role": "user", "content": "Hello over TCP"}], "max_tokens": 5, "stream": true}`
	resp, err := http.Post(s.inf+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("chat: %d %v", resp.StatusCode, err)
	}
	events := sseData(t, raw)
	if len(events) != 7 || events[6] != "[DONE]" {
		t.Errorf("want a role chunk, 5 tokens and [DONE], got %q", events)
	}

	s.cancel()
	if err := s.wait(t); err != nil {
		t.Errorf("Serve after its context ended = %v, want nil", err)
	}
	if _, err := net.Dial("tcp", strings.TrimPrefix(s.mgmt, "http://")); err == nil {
		t.Error("the management port still accepts connections after Serve returned")
	}
	log := s.log.String()
	for _, want := range []string{"MindIE Server SIMULATOR", "listening: inference=http://127.0.0.1:", "ready", "stopped", "listeners closed"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

func TestServeReturnsErrCrashedAfterCrash(t *testing.T) {
	s := startServing(t, Config{LoadTime: NoDelay})
	s.srv.Crash()
	if err := s.wait(t); !errors.Is(err, ErrCrashed) {
		t.Errorf("Serve after Crash = %v, want ErrCrashed", err)
	}
	for _, base := range []string{s.inf, s.mgmt} {
		if _, err := net.Dial("tcp", strings.TrimPrefix(base, "http://")); err == nil {
			t.Errorf("%s still accepts connections after the crash", base)
		}
	}
}

func TestServeDrainsRunningRequestsOnShutdown(t *testing.T) {
	clock := newFakeClock()
	clock.setBlocking(true)
	s := startServing(t, Config{LoadTime: NoDelay}, WithClock(clock))
	done := make(chan result, 1)
	go func() {
		resp, err := http.Post(s.inf+"/v1/completions", "application/json", strings.NewReader(`{"prompt": "drain me", "max_tokens": 3}`))
		if err != nil {
			done <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{resp: response{status: resp.StatusCode, body: b}, err: err}
	}()
	waitUntil(t, "the request runs", func() bool { return clock.sleepers() == 1 })
	s.cancel()
	waitUntil(t, "the server drains", func() bool { return s.srv.State() == StateStopping })
	select {
	case <-s.done:
		t.Fatalf("Serve returned before the running request finished: %v", s.err)
	default:
	}
	var r result
	for r.resp.status == 0 && r.err == nil {
		clock.Advance(time.Hour)
		select {
		case r = <-done:
		case <-time.After(time.Millisecond):
		}
	}
	if r.err != nil || r.resp.status != http.StatusOK {
		t.Errorf("the running request should finish during the drain: %+v", r)
	}
	if err := s.wait(t); err != nil {
		t.Errorf("Serve = %v", err)
	}
}

func TestServeAbortsWhatTheDrainTimeoutLeaves(t *testing.T) {
	clock := newFakeClock()
	clock.setBlocking(true)
	s := startServing(t, Config{LoadTime: NoDelay}, WithClock(clock), WithDrainTimeout(time.Millisecond))
	done := make(chan error, 1)
	go func() {
		resp, err := http.Post(s.inf+"/v1/completions", "application/json", strings.NewReader(`{"prompt": "never finishes", "max_tokens": 3}`))
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	waitUntil(t, "the request runs", func() bool { return clock.sleepers() == 1 })
	s.cancel()
	if err := s.wait(t); err != nil {
		t.Errorf("Serve = %v", err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the request was not aborted")
	}
	if !strings.Contains(s.log.String(), "drain timeout: aborting") {
		t.Errorf("the abort should be logged:\n%s", s.log)
	}
}

func TestServeShutsDownDespiteAHang(t *testing.T) {
	s := startServing(t, Config{LoadTime: NoDelay})
	s.srv.SetHung(true)
	done := make(chan error, 1)
	go func() {
		resp, err := http.Get(s.mgmt + "/v2/health/live")
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	waitUntil(t, "the probe blocks", func() bool { return s.srv.hungWaiters.Load() == 1 })
	s.cancel()
	if err := s.wait(t); err != nil {
		t.Errorf("Serve = %v", err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Error("a probe blocked by the hang should get no answer")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the blocked probe was not released")
	}
}

func TestServeRefusesNonLoopbackAddresses(t *testing.T) {
	srv, err := New(Config{}, WithClock(newFakeClock()))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ inf, mgmt, want string }{
		{"0.0.0.0:1025", "127.0.0.1:0", "inference address \"0.0.0.0:1025\" is not a loopback address"},
		{"127.0.0.1:0", ":1026", "management address \":1026\" has no host"},
		{"192.168.1.10:0", "127.0.0.1:0", "not a loopback address"},
		{"example.com:80", "127.0.0.1:0", "is not an IP address"},
		{"127.0.0.1", "127.0.0.1:0", "missing port"},
	} {
		err := srv.Serve(t.Context(), tc.inf, tc.mgmt)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Serve(%q, %q) = %v, want an error with %q", tc.inf, tc.mgmt, err, tc.want)
		}
	}
	select {
	case <-srv.Listening():
		t.Error("Serve listened despite refusing the addresses")
	default:
	}
}

func TestCheckLoopbackAddr(t *testing.T) {
	for _, ok := range []string{"127.0.0.1:1025", "127.1.2.3:0", "[::1]:8080", "localhost:1026"} {
		if err := CheckLoopbackAddr(ok); err != nil {
			t.Errorf("CheckLoopbackAddr(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"0.0.0.0:1025", "[::]:1025", ":1025", "10.0.0.1:80", "[2001:db8::1]:80", "host:1", "127.0.0.1"} {
		if err := CheckLoopbackAddr(bad); err == nil {
			t.Errorf("CheckLoopbackAddr(%q) accepted a non-loopback address", bad)
		}
	}
}

func TestServeListenersChecksAndServesOnce(t *testing.T) {
	srv, err := New(Config{LoadTime: NoDelay})
	if err != nil {
		t.Fatal(err)
	}
	listen := func() net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return ln
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.ServeListeners(ctx, listen(), listen()) }()
	<-srv.Listening()
	if err := srv.ServeListeners(ctx, listen(), listen()); err == nil || !strings.Contains(err.Error(), "already serving") {
		t.Errorf("a second ServeListeners = %v, want 'already serving'", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("ServeListeners = %v", err)
	}
}

package mindie

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// advanceUntilDone advances the blocking fake clock one sleep at a time
// until the request answers.
func advanceUntilDone(t *testing.T, h *harness, done <-chan result) result {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case r := <-done:
			return r
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the request never finished")
		}
		h.clock.Advance(time.Hour)
		time.Sleep(time.Millisecond)
	}
}

func TestSlotsQueueAndLimitRequests(t *testing.T) {
	cfg := testConfig()
	cfg.TotalSlots = 1
	cfg.MaxConcurrentRequests = 2
	cfg.CacheBlocks = 50
	h := newHarness(t, cfg)
	h.clock.setBlocking(true)
	url := h.inf.URL + "/v1/completions"

	first := h.async(t.Context(), http.MethodPost, url, `{"prompt": "`+words(0, 10)+`", "max_tokens": 3}`)
	waitUntil(t, "the first request prefills", func() bool { return h.clock.sleepers() == 1 })
	second := h.async(t.Context(), http.MethodPost, url, `{"prompt": "`+words(100, 5)+`", "max_tokens": 3}`)
	waitUntil(t, "the second request waits for a slot", func() bool { return h.srv.Stats().Waiting == 1 })

	st := getStatus(t, h, "/v1/status")
	if r := st.Resource; r.RunningRequestNum != 1 || r.WaitingRequestNum != 1 || r.AvailSlotsNum != 0 || r.TotalSlotsNum != 1 {
		t.Errorf("status with one running and one waiting: %+v", r)
	}
	// The running request holds the blocks of its 10-token prompt.
	if r := st.Resource; r.AvailBlockNum != 47 || r.TotalBlockNum != 50 {
		t.Errorf("free blocks %d of %d, want 47 of 50", r.AvailBlockNum, r.TotalBlockNum)
	}
	m := string(h.getInference("/metrics").body)
	if !strings.Contains(m, `num_requests_running{model_name="llama3-8b-sim"} 1`) || !strings.Contains(m, `num_requests_waiting{model_name="llama3-8b-sim"} 1`) {
		t.Errorf("/metrics gauges:\n%s", m)
	}

	// Two in flight is the limit: the third is refused at once.
	third := h.post("/v1/completions", `{"prompt": "x", "max_tokens": 1}`)
	if third.status != http.StatusTooManyRequests || !strings.Contains(string(third.body), "too many requests in flight: the limit is 2") {
		t.Errorf("third request: %d %s, want 429", third.status, third.body)
	}

	for _, done := range []<-chan result{first, second} {
		if r := advanceUntilDone(t, h, done); r.err != nil || r.resp.status != http.StatusOK {
			t.Errorf("queued request: %+v", r)
		}
	}
	if st := h.srv.Stats(); st.Running != 0 || st.Waiting != 0 || st.FreeSlots != 1 || st.FreeBlocks != 50 {
		t.Errorf("everything should be released: %+v", st)
	}
}

func TestHungServerStopsAnsweringUntilCleared(t *testing.T) {
	h := newHarness(t, testConfig())
	h.srv.SetHung(true)
	if !h.srv.Stats().Hung {
		t.Error("Stats().Hung should be true")
	}
	live := h.async(t.Context(), http.MethodGet, h.mgmt.URL+"/v2/health/live", "")
	infer := h.async(t.Context(), http.MethodPost, h.inf.URL+"/v1/completions", `{"prompt": "hi", "max_tokens": 2}`)
	waitUntil(t, "both requests block", func() bool { return h.srv.hungWaiters.Load() == 2 })
	select {
	case r := <-live:
		t.Fatalf("live answered while hung: %+v", r)
	default:
	}

	h.srv.SetHung(false)
	if r := receive(t, live); r.err != nil || r.resp.status != http.StatusOK {
		t.Errorf("live after the hang: %+v", r)
	}
	if r := receive(t, infer); r.err != nil || r.resp.status != http.StatusOK {
		t.Errorf("inference after the hang: %+v", r)
	}
	if log := h.log.String(); !strings.Contains(log, "HANG injected") || !strings.Contains(log, "hang cleared") {
		t.Errorf("the hang should be logged:\n%s", log)
	}
}

func TestHungProbeTimesOutOnTheClientSide(t *testing.T) {
	h := newHarness(t, testConfig())
	h.srv.SetHung(true)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := h.doErr(ctx, http.MethodGet, h.mgmt.URL+"/v2/health/live", "")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a probe of a hung server should time out, got %v", err)
	}
	waitUntil(t, "the abandoned probe is released", func() bool { return h.srv.hungWaiters.Load() == 0 })
	waitUntil(t, "the abandoned probe is logged", func() bool { return strings.Contains(h.log.String(), "GET /v2/health/live: client gone") })
}

func TestHangPausesRunningRequests(t *testing.T) {
	h := newHarness(t, testConfig())
	h.clock.setBlocking(true)
	done := h.async(t.Context(), http.MethodPost, h.inf.URL+"/v1/completions", `{"prompt": "hi", "max_tokens": 3}`)
	waitUntil(t, "the request prefills", func() bool { return h.clock.sleepers() == 1 })
	h.srv.SetHung(true)
	h.clock.Advance(time.Hour) // the prefill ends with the first token; the first decode step waits for the hang
	waitUntil(t, "decoding stalls", func() bool { return h.srv.hungWaiters.Load() == 1 })
	h.clock.Advance(time.Hour)
	if got, sleepers := h.srv.Stats().GenerationTokens, h.clock.sleepers(); got != 1 || sleepers != 0 {
		t.Errorf("while hung: %d tokens generated (want the prefill's 1) and %d iterations running (want 0)", got, sleepers)
	}
	h.srv.SetHung(false)
	if r := advanceUntilDone(t, h, done); r.err != nil || r.resp.status != http.StatusOK {
		t.Errorf("after the hang: %+v", r)
	}
}

func TestCrashDropsEverything(t *testing.T) {
	h := newHarness(t, testConfig())
	h.clock.setBlocking(true)
	stream := h.async(t.Context(), http.MethodPost, h.inf.URL+"/v1/chat/completions",
		chatBody(t, conversation, map[string]any{"stream": true, "max_tokens": 50}))
	waitUntil(t, "the stream prefills", func() bool { return h.clock.sleepers() == 1 })
	h.clock.Advance(time.Hour) // the prefill's token out
	waitUntil(t, "the stream decodes", func() bool { return h.clock.sleepers() == 1 && h.srv.Stats().GenerationTokens == 1 })
	h.clock.Advance(time.Hour) // a decode step's token out
	waitUntil(t, "the stream sends a token", func() bool { return h.srv.Stats().GenerationTokens == 2 && h.clock.sleepers() == 1 })

	h.srv.Crash()
	r := receive(t, stream)
	if r.err == nil {
		t.Errorf("a stream cut by a crash should fail to read, got %d %q", r.resp.status, r.resp.body)
	}
	for _, url := range []string{h.mgmt.URL + "/v2/health/live", h.mgmt.URL + "/info", h.inf.URL + "/v1/models"} {
		if _, err := h.doErr(t.Context(), http.MethodGet, url, ""); err == nil {
			t.Errorf("GET %s answered after the crash", url)
		}
	}
	st := h.srv.Stats()
	if st.State != StateCrashed || st.Running != 0 || st.RequestsFailed != 1 {
		t.Errorf("after the crash: %+v", st)
	}
	if err := h.srv.Stop(t.Context(), false); !errors.Is(err, ErrCrashed) {
		t.Errorf("Stop after a crash = %v, want ErrCrashed", err)
	}
	if !strings.Contains(h.log.String(), "CRASH injected") {
		t.Errorf("the crash should be logged:\n%s", h.log)
	}
}

func TestStopServiceGraceful(t *testing.T) {
	h := newHarness(t, testConfig())
	h.clock.setBlocking(true)
	running := h.async(t.Context(), http.MethodPost, h.inf.URL+"/v1/completions", `{"prompt": "finish me", "max_tokens": 4}`)
	waitUntil(t, "the request runs", func() bool { return h.clock.sleepers() == 1 })

	stop := h.async(t.Context(), http.MethodGet, h.mgmt.URL+"/stopService", "")
	waitUntil(t, "the service is stopping", func() bool { return h.srv.State() == StateStopping })
	r := h.post("/v1/completions", `{"prompt": "too late", "max_tokens": 1}`)
	if r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "not accepting new requests") {
		t.Errorf("a new request while stopping: %d %s, want 503", r.status, r.body)
	}
	if r := h.getMgmt("/v2/health/ready"); r.status != http.StatusServiceUnavailable {
		t.Errorf("ready while stopping: %d", r.status)
	}
	if r := h.getMgmt("/v2/health/live"); r.status != http.StatusOK {
		t.Errorf("live while draining: %d, want 200", r.status)
	}
	select {
	case r := <-stop:
		t.Fatalf("/stopService answered before the running request finished: %+v", r)
	default:
	}

	if r := advanceUntilDone(t, h, running); r.err != nil || r.resp.status != http.StatusOK {
		t.Errorf("the running request should finish: %+v", r)
	}
	s := receive(t, stop)
	if s.err != nil || s.resp.status != http.StatusOK || !strings.Contains(string(s.resp.body), `"status":"stopped"`) || !strings.Contains(string(s.resp.body), `"aborted_requests":0`) {
		t.Errorf("/stopService: %+v", s)
	}
	if r := h.getMgmt("/v2/health/live"); r.status != http.StatusServiceUnavailable {
		t.Errorf("live after stopping: %d, want 503", r.status)
	}
	if r := h.getMgmt("/health/timed-5"); r.status != http.StatusServiceUnavailable {
		t.Errorf("timed health after stopping: %d, want 503", r.status)
	}
	if h.srv.State() != StateStopped {
		t.Errorf("State %q", h.srv.State())
	}
	if again := h.getMgmt("/stopService"); again.status != http.StatusOK {
		t.Errorf("a second /stopService: %d", again.status)
	}
	if log := h.log.String(); !strings.Contains(log, "stopping (graceful)") || !strings.Contains(log, "stopped (graceful, 0 requests aborted)") {
		t.Errorf("stopping should be logged:\n%s", log)
	}
}

func TestStopServiceForceAbortsRunningRequests(t *testing.T) {
	h := newHarness(t, testConfig())
	h.clock.setBlocking(true)
	plain := h.async(t.Context(), http.MethodPost, h.inf.URL+"/v1/completions", `{"prompt": "abort me", "max_tokens": 50}`)
	waitUntil(t, "the request prefills", func() bool { return h.clock.sleepers() == 1 })
	stream := h.async(t.Context(), http.MethodPost, h.inf.URL+"/generate_stream", `{"inputs": "abort me too", "parameters": {"max_new_tokens": 50}}`)
	waitUntil(t, "the second request queues", func() bool { return h.srv.Stats().Waiting == 1 })
	h.clock.Advance(time.Hour) // the first prefill ends; the second starts
	waitUntil(t, "the second prefills", func() bool {
		st := h.srv.Stats()
		return st.Running == 2 && st.GenerationTokens == 1 && h.clock.sleepers() == 1
	})
	h.clock.Advance(time.Hour) // the second prefill ends; a decode step of both starts
	waitUntil(t, "both decode", func() bool { return h.srv.Stats().GenerationTokens == 2 && h.clock.sleepers() == 1 })
	h.clock.Advance(time.Hour) // one token each
	waitUntil(t, "both generate", func() bool { return h.srv.Stats().GenerationTokens == 4 && h.clock.sleepers() == 1 })

	s := h.getMgmt("/stopService?mode=Force")
	if s.status != http.StatusOK || !strings.Contains(string(s.body), `"aborted_requests":2`) || !strings.Contains(string(s.body), `"mode":"force"`) {
		t.Errorf("/stopService?mode=Force: %d %s", s.status, s.body)
	}
	p := receive(t, plain)
	if p.err != nil || p.resp.status != http.StatusServiceUnavailable || !strings.Contains(string(p.resp.body), "mode=Force") {
		t.Errorf("an aborted request should get 503: %+v", p)
	}
	st := receive(t, stream)
	if st.err != nil || st.resp.status != http.StatusOK {
		t.Fatalf("the stream had started: %+v", st)
	}
	events := sseData(t, st.resp.body)
	if last := events[len(events)-1]; !strings.Contains(last, `"error":"request aborted`) {
		t.Errorf("an aborted stream should end with an error event, got %q", last)
	}
	if r := h.getMgmt("/v2/health/live"); r.status != http.StatusServiceUnavailable {
		t.Errorf("live after a forced stop: %d", r.status)
	}
	if stats := h.srv.Stats(); stats.RequestsFailed != 2 || stats.Running != 0 {
		t.Errorf("after a forced stop: %+v", stats)
	}
}

func TestStopServiceRejectsUnknownModes(t *testing.T) {
	h := newHarness(t, testConfig())
	r := h.getMgmt("/stopService?mode=Gentle")
	if e := decode[struct{ Error string }](t, r); r.status != http.StatusBadRequest || !strings.Contains(e.Error, `unknown stop mode "Gentle"`) {
		t.Errorf("unknown mode: %d %s", r.status, r.body)
	}
	if h.srv.State() != StateReady {
		t.Errorf("a rejected stop should not stop the server: %q", h.srv.State())
	}
}

func TestClientCancellationReleasesTheRequest(t *testing.T) {
	h := newHarness(t, testConfig())
	h.clock.setBlocking(true)
	ctx, cancel := context.WithCancel(t.Context())
	done := h.async(ctx, http.MethodPost, h.inf.URL+"/v1/chat/completions", chatBody(t, conversation, map[string]any{"stream": true}))
	waitUntil(t, "the request runs", func() bool { return h.clock.sleepers() == 1 })
	cancel()
	if r := receive(t, done); !errors.Is(r.err, context.Canceled) {
		t.Errorf("the client's cancellation: %v", r.err)
	}
	waitUntil(t, "the server releases the request", func() bool {
		st := h.srv.Stats()
		return st.Running == 0 && st.RequestsFailed == 1
	})
}

// An NPU fault of level RestartRequest fails the requests running on the
// NPU at that moment, with an engine error; a waiting request and new ones
// are served.
func TestFailRunningFailsTheRunningRequestsOnly(t *testing.T) {
	cfg := testConfig()
	cfg.TotalSlots = 2
	h := newHarness(t, cfg)
	h.clock.setBlocking(true)
	plain := h.async(t.Context(), http.MethodPost, h.inf.URL+"/v1/completions", `{"prompt": "fail me", "max_tokens": 50}`)
	waitUntil(t, "the plain request prefills", func() bool { return h.clock.sleepers() == 1 })
	stream := h.async(t.Context(), http.MethodPost, h.inf.URL+"/v1/chat/completions",
		chatBody(t, conversation, map[string]any{"stream": true, "max_tokens": 50}))
	waitUntil(t, "the stream queues", func() bool { return h.srv.Stats().Waiting == 1 })
	h.clock.Advance(time.Hour) // the first prefill ends; the stream's starts
	waitUntil(t, "the stream prefills", func() bool {
		st := h.srv.Stats()
		return st.Running == 2 && st.GenerationTokens == 1 && h.clock.sleepers() == 1
	})
	h.clock.Advance(time.Hour) // the stream's first token; a decode step of both starts
	waitUntil(t, "both decode", func() bool { return h.srv.Stats().GenerationTokens == 2 && h.clock.sleepers() == 1 })
	h.clock.Advance(time.Hour) // one token each
	waitUntil(t, "both generate", func() bool { return h.srv.Stats().GenerationTokens == 4 && h.clock.sleepers() == 1 })
	// A third request waits: both slots are taken.
	waiting := h.async(t.Context(), http.MethodPost, h.inf.URL+"/generate", `{"inputs": "wait for me", "parameters": {"max_new_tokens": 2}}`)
	waitUntil(t, "the third request queues", func() bool { return h.srv.Stats().Waiting == 1 })

	if n := h.srv.FailRunning(); n != 2 {
		t.Errorf("FailRunning failed %d requests, want the 2 running", n)
	}
	p := receive(t, plain)
	if p.err != nil || p.resp.status != http.StatusInternalServerError ||
		!strings.Contains(string(p.resp.body), `"type":"server_error"`) || !strings.Contains(string(p.resp.body), "NPU fault (RestartRequest)") {
		t.Errorf("a running request hit by the fault: %+v, want a 500 server_error", p)
	}
	s := receive(t, stream)
	if s.err != nil || s.resp.status != http.StatusOK {
		t.Fatalf("the stream had started: %+v", s)
	}
	events := sseData(t, s.resp.body)
	if last := events[len(events)-1]; !strings.Contains(last, `"type":"server_error"`) || !strings.Contains(last, "NPU fault") {
		t.Errorf("the stream should end with an error event, got %q", last)
	}
	if strings.Contains(string(s.resp.body), "[DONE]") || len(events) < 3 {
		t.Errorf("the stream should have its tokens so far and no end marker: %q", events)
	}
	// The waiting request runs on: the NPU works again.
	if w := advanceUntilDone(t, h, waiting); w.err != nil || w.resp.status != http.StatusOK {
		t.Errorf("the waiting request: %+v", w)
	}
	h.clock.setBlocking(false)
	if r := h.post("/v1/completions", `{"prompt": "after the fault", "max_tokens": 3}`); r.status != http.StatusOK {
		t.Errorf("a new request after the fault: %d %s", r.status, r.body)
	}
	if r := h.getMgmt("/v2/health/ready"); r.status != http.StatusOK {
		t.Errorf("ready after a RestartRequest fault: %d", r.status)
	}
	if st := h.srv.Stats(); st.RequestsFailed != 2 || st.RequestsSucceeded != 2 || st.Running != 0 || st.FreeBlocks != st.TotalBlocks {
		t.Errorf("after the fault: %+v", st)
	}
	if n := h.srv.FailRunning(); n != 0 {
		t.Errorf("FailRunning with nothing running failed %d", n)
	}
	if !strings.Contains(h.log.String(), "NPU FAULT injected (RestartRequest): 2 running requests failed") {
		t.Errorf("the fault should be logged:\n%s", h.log)
	}
}

// Unusable NPUs fail every request in flight, new requests and the health
// checks, until they are usable again.
func TestNPUFailedFailsHealthAndRequestsUntilCleared(t *testing.T) {
	cfg := testConfig()
	cfg.TotalSlots = 1
	h := newHarness(t, cfg)
	h.clock.setBlocking(true)
	running := h.async(t.Context(), http.MethodPost, h.inf.URL+"/generate_stream", `{"inputs": "fail me", "parameters": {"max_new_tokens": 50}}`)
	waitUntil(t, "the request prefills", func() bool { return h.clock.sleepers() == 1 })
	waiting := h.async(t.Context(), http.MethodPost, h.inf.URL+"/v1/completions", `{"prompt": "me too", "max_tokens": 5}`)
	waitUntil(t, "the second request queues", func() bool { return h.srv.Stats().Waiting == 1 })

	h.srv.SetNPUFailed(true)
	h.srv.SetNPUFailed(true) // idempotent
	for name, ch := range map[string]<-chan result{"running": running, "waiting": waiting} {
		r := receive(t, ch)
		if r.err != nil || r.resp.status != http.StatusInternalServerError || !strings.Contains(string(r.resp.body), "the NPU is unusable") {
			t.Errorf("the %s request: %+v, want a 500 engine error", name, r)
		}
	}
	h.clock.setBlocking(false)
	h.clock.Advance(time.Hour) // the iteration under way when the NPU failed ends
	if r := h.post("/generate", `{"inputs": "new", "parameters": {"max_new_tokens": 2}}`); r.status != http.StatusInternalServerError ||
		!strings.Contains(string(r.body), `"error_type":"engine_error"`) {
		t.Errorf("a new request on unusable NPUs: %d %s, want 500 engine_error", r.status, r.body)
	}
	for _, path := range []string{"/v2/health/live", "/v2/health/ready", "/health", "/health/timed-5"} {
		if r := h.getMgmt(path); r.status != http.StatusServiceUnavailable {
			t.Errorf("GET %s on unusable NPUs: %d, want 503", path, r.status)
		}
	}
	for _, path := range []string{"/v1/status", "/info"} {
		if r := h.getMgmt(path); r.status != http.StatusOK {
			t.Errorf("GET %s on unusable NPUs: %d, want 200 (the process runs)", path, r.status)
		}
	}
	if st := h.srv.Stats(); !st.NPUFailed || st.Running != 0 || st.Waiting != 0 || st.State != StateReady || st.RequestsFailed != 3 {
		t.Errorf("stats with unusable NPUs: %+v", st)
	}

	h.srv.SetNPUFailed(false)
	for _, path := range []string{"/v2/health/live", "/v2/health/ready", "/health", "/health/timed-5"} {
		if r := h.getMgmt(path); r.status != http.StatusOK {
			t.Errorf("GET %s after the NPUs recovered: %d, want 200", path, r.status)
		}
	}
	if r := h.post("/v1/completions", `{"prompt": "recovered", "max_tokens": 3}`); r.status != http.StatusOK {
		t.Errorf("a request after the NPUs recovered: %d %s", r.status, r.body)
	}
	if log := h.log.String(); !strings.Contains(log, "NPU FAILURE (injected): 2 requests in flight failed") || !strings.Contains(log, "NPU failure cleared") {
		t.Errorf("the failure and its end should be logged:\n%s", log)
	}
}

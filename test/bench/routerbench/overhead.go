package main

// This file measures the router's overhead: the same requests sent
// straight to a backend that answers at once and through the router in
// front of it, open-loop at fixed rates and closed-loop at full speed.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"

	"mindie.io/deployer/pkg/router"
	"mindie.io/deployer/test/bench/measure"
	"mindie.io/deployer/test/bench/results"
)

// echoAnswer is what the backend answers to every request: a small
// non-streamed OpenAI chat completion.
var echoAnswer = []byte(`{"id":"chatcmpl-echo","object":"chat.completion","created":0,"model":"echo",` +
	`"choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],` +
	`"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`)

// startEcho serves a backend on 127.0.0.1 that reads the whole request
// and answers echoAnswer at once. It returns its base URL.
func startEcho(ctx context.Context) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("listen for the echo backend: %w", err)
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(echoAnswer)
	})}
	go srv.Serve(ln)
	context.AfterFunc(ctx, func() { srv.Close() })
	return "http://" + ln.Addr().String(), nil
}

// startRouter serves a router over the given instances on 127.0.0.1 and
// waits until it is ready. It returns the router's base URL.
func startRouter(ctx context.Context, cfg router.Config, instances router.StaticSource) (string, error) {
	// Plain HTTP and no authentication: the benchmark measures routing, and
	// the loopback client would pay TLS on the routed side only.
	cfg.InsecureHTTP = true
	cfg.Authentication = router.AuthNone
	cfg.ShutdownDelay = 0 // nothing sends to a finished run's router
	r, err := router.New(cfg, instances, router.WithLogger(logr.Discard()), router.WithRandSeed(1))
	if err != nil {
		return "", fmt.Errorf("router: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("listen for the router: %w", err)
	}
	go r.Serve(ctx, ln)
	deadline := time.Now().Add(10 * time.Second)
	for !r.Ready() {
		if time.Now().After(deadline) {
			return "", fmt.Errorf("the router was not ready within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return "http://" + ln.Addr().String(), nil
}

// newClient is an HTTP client that keeps many connections to one host
// open and never goes through a proxy.
func newClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		MaxIdleConnsPerHost: 4096,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}, Timeout: 30 * time.Second}
}

// chatBody is a non-streamed chat request whose one user message is about
// size bytes of words.
func chatBody(size int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, uint64(size)))
	var text bytes.Buffer
	for text.Len() < size {
		if text.Len() > 0 {
			text.WriteByte(' ')
		}
		text.WriteString(measure.Words(rng, 1))
	}
	body, _ := json.Marshal(map[string]any{
		"model":      "echo",
		"max_tokens": 16,
		"messages":   []Message{{Role: "user", Content: text.String()}},
	})
	return body
}

// post sends one request and reads the whole answer; it reports whether
// the answer was a 200.
func post(ctx context.Context, client *http.Client, url string, body []byte) bool {
	resp, err := measure.PostJSON(ctx, client, url+"/v1/chat/completions", body)
	if err != nil {
		return false
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return err == nil && resp.StatusCode == http.StatusOK
}

// maxOutstanding bounds the requests of an open-loop run in flight at
// once; a request that would exceed it is not sent and counts as failed,
// so that an overloaded run ends instead of piling up goroutines.
const maxOutstanding = 2000

// openLoop sends requests at a fixed rate for d, each at its planned time
// whatever the answers before it did, and measures each latency from its
// planned time, so that a slow answer cannot hold back the next ones and
// hide queueing (no coordinated omission).
func openLoop(ctx context.Context, client *http.Client, url string, body []byte, rate float64, d time.Duration) results.Latency {
	n := int(rate * d.Seconds())
	interval := time.Duration(float64(time.Second) / rate)
	lat := make([]float64, n)
	ok := make([]bool, n)
	var outstanding atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var last time.Time
	cpu0 := processCPU()
	start := time.Now()
	for i := range n {
		planned := start.Add(time.Duration(i) * interval)
		if w := time.Until(planned); w > 0 {
			time.Sleep(w)
		}
		if outstanding.Load() >= maxOutstanding {
			continue
		}
		outstanding.Add(1)
		wg.Go(func() {
			defer outstanding.Add(-1)
			good := post(ctx, client, url, body)
			end := time.Now()
			lat[i], ok[i] = measure.Ms(end.Sub(planned)), good
			mu.Lock()
			if end.After(last) {
				last = end
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	cpu := processCPU() - cpu0
	var good []float64
	for i := range n {
		if ok[i] {
			good = append(good, lat[i])
		}
	}
	l := results.Latency{
		Requests:   n,
		Failed:     n - len(good),
		P50Ms:      measure.Round(measure.Percentile(good, 0.50), 3),
		P90Ms:      measure.Round(measure.Percentile(good, 0.90), 3),
		P99Ms:      measure.Round(measure.Percentile(good, 0.99), 3),
		MaxMs:      measure.Round(measure.Percentile(good, 1), 3),
		CPUSeconds: measure.Round(cpu.Seconds(), 4),
	}
	if s := last.Sub(start).Seconds(); s > 0 {
		l.Achieved = measure.Round(float64(len(good))/s, 1)
	}
	return l
}

// closedLoop runs conc clients that each send the next request as soon as
// the last one is answered, for d. It returns the answered requests per
// second, the failures and the process CPU used.
func closedLoop(ctx context.Context, client *http.Client, url string, body []byte, conc int, d time.Duration) (rate float64, failed int, cpu time.Duration) {
	var answered, bad atomic.Int64
	cpu0 := processCPU()
	start := time.Now()
	stop := start.Add(d)
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for time.Now().Before(stop) {
				if post(ctx, client, url, body) {
					answered.Add(1)
				} else {
					bad.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	return float64(answered.Load()) / elapsed.Seconds(), int(bad.Load()), processCPU() - cpu0
}

// overheadParams are the overhead runs' knobs.
type overheadParams struct {
	PromptBytes []int
	Rates       []float64
	Seconds     float64
	Concurrency int
	CapSeconds  float64
}

// measureOverhead runs every (prompt size, rate) open-loop, directly then
// through a router with algorithm, and the capacity runs.
func measureOverhead(ctx context.Context, p overheadParams, algorithm router.Algorithm, logf func(string, ...any)) (results.Overhead, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	backend, err := startEcho(ctx)
	if err != nil {
		return results.Overhead{}, err
	}
	cfg := routerConfig
	cfg.Algorithm = algorithm
	routed, err := startRouter(ctx, cfg, router.StaticSource{{Name: "echo-0", Inference: backend, Ready: true}})
	if err != nil {
		return results.Overhead{}, err
	}
	out := results.Overhead{
		Backend: "a Go net/http server on 127.0.0.1 in the same process that reads the request and answers a " +
			fmt.Sprintf("%d-byte chat completion at once; no /v1/status (balanced on the router's own counts)", len(echoAnswer)),
		Algorithm:   string(algorithm),
		MaxInFlight: maxOutstanding,
	}
	d := time.Duration(p.Seconds * float64(time.Second))
	for _, size := range p.PromptBytes {
		body := chatBody(size, 1)
		direct, viaRouter := newClient(), newClient()
		// Warm both paths up: connections, the router's pools, the heap.
		openLoop(ctx, direct, backend, body, 100, time.Second/2)
		openLoop(ctx, viaRouter, routed, body, 100, time.Second/2)
		for _, rate := range p.Rates {
			l := results.OverheadLoad{PromptBytes: size, Rate: rate, Seconds: p.Seconds}
			l.Direct = openLoop(ctx, direct, backend, body, rate, d)
			l.Routed = openLoop(ctx, viaRouter, routed, body, rate, d)
			logf("overhead: %d B at %g/s: direct p50 %.3f p99 %.3f ms (%d failed), routed p50 %.3f p99 %.3f ms (%d failed)",
				size, rate, l.Direct.P50Ms, l.Direct.P99Ms, l.Direct.Failed, l.Routed.P50Ms, l.Routed.P99Ms, l.Routed.Failed)
			out.Loads = append(out.Loads, l)
		}
		c := results.OverheadCapacity{PromptBytes: size, Concurrency: p.Concurrency, Seconds: p.CapSeconds}
		cd := time.Duration(p.CapSeconds * float64(time.Second))
		var f1, f2 int
		var cpuD, cpuR time.Duration
		c.DirectRate, f1, cpuD = closedLoop(ctx, direct, backend, body, p.Concurrency, cd)
		c.RoutedRate, f2, cpuR = closedLoop(ctx, viaRouter, routed, body, p.Concurrency, cd)
		c.DirectRate, c.RoutedRate = measure.Round(c.DirectRate, 1), measure.Round(c.RoutedRate, 1)
		c.DirectCPU, c.RoutedCPU, c.Failed = measure.Round(cpuD.Seconds(), 4), measure.Round(cpuR.Seconds(), 4), f1+f2
		logf("capacity: %d B, %d clients: direct %.0f/s, routed %.0f/s", size, p.Concurrency, c.DirectRate, c.RoutedRate)
		out.Capacity = append(out.Capacity, c)
		direct.CloseIdleConnections()
		viaRouter.CloseIdleConnections()
	}
	return out, nil
}

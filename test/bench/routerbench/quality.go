package main

// This file runs a trace through the router in front of simulated MindIE
// Server instances and measures what each request saw: its time to first
// token, its prompt tokens found in the instance's prefix cache, its
// answer's tokens.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"mindie.io/deployer/pkg/router"
	"mindie.io/deployer/pkg/simulator/mindie"
	"mindie.io/deployer/test/bench/measure"
	"mindie.io/deployer/test/bench/results"
)

// startSimulators serves n simulators with cfg on 127.0.0.1 and waits
// until they are ready.
func startSimulators(ctx context.Context, n int, cfg mindie.Config) ([]*mindie.Server, router.StaticSource, error) {
	var sims []*mindie.Server
	var src router.StaticSource
	for i := range n {
		s, err := mindie.New(cfg)
		if err != nil {
			return nil, nil, fmt.Errorf("simulator %d: %w", i, err)
		}
		go s.Serve(ctx, "127.0.0.1:0", "127.0.0.1:0")
		select {
		case <-s.Listening():
		case <-time.After(10 * time.Second):
			return nil, nil, fmt.Errorf("simulator %d did not listen within 10s", i)
		}
		inf, mgmt := s.Addrs()
		sims = append(sims, s)
		src = append(src, router.Instance{
			Name:       fmt.Sprintf("sim-%d", i),
			Inference:  "http://" + inf.String(),
			Management: "http://" + mgmt.String(),
			Ready:      true,
		})
	}
	for i, s := range sims {
		deadline := time.Now().Add(10 * time.Second)
		for !s.Ready() {
			if time.Now().After(deadline) {
				return nil, nil, fmt.Errorf("simulator %d was not ready within 10s", i)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return sims, src, nil
}

// outcome is what one request of a trace saw.
type outcome struct {
	ok                         bool
	sent                       time.Time
	ttft                       time.Duration
	end                        time.Time
	prompt, cached, completion int64
	instance                   string
}

// streamChat sends one streamed chat request and reads its answer.
func streamChat(ctx context.Context, client *http.Client, url, model string, msgs []Message, maxTokens int) outcome {
	body, _ := json.Marshal(map[string]any{
		"model": model, "messages": msgs, "max_tokens": maxTokens,
		"stream": true, "stream_options": map[string]bool{"include_usage": true},
	})
	start := time.Now()
	o := outcome{sent: start}
	resp, err := measure.PostJSON(ctx, client, url+"/v1/chat/completions", body)
	if err != nil {
		return o
	}
	defer resp.Body.Close()
	o.instance = resp.Header.Get(router.InstanceHeader)
	if resp.StatusCode != http.StatusOK {
		return o
	}
	rd := bufio.NewReaderSize(resp.Body, 64<<10)
	done, first := false, true
	for {
		line, err := rd.ReadString('\n')
		if data, isData := strings.CutPrefix(strings.TrimRight(line, "\r\n"), "data: "); isData {
			if first {
				// The simulator sends its first event with the first token.
				o.ttft, first = time.Since(start), false
			}
			if data == "[DONE]" {
				done = true
				break
			}
			var ev struct {
				Error json.RawMessage `json:"error"`
				Usage *struct {
					PromptTokens        int64 `json:"prompt_tokens"`
					CompletionTokens    int64 `json:"completion_tokens"`
					PromptTokensDetails struct {
						CachedTokens int64 `json:"cached_tokens"`
					} `json:"prompt_tokens_details"`
				} `json:"usage"`
			}
			if json.Unmarshal([]byte(data), &ev) != nil || len(ev.Error) > 0 {
				return o
			}
			if ev.Usage != nil {
				o.prompt, o.completion, o.cached = ev.Usage.PromptTokens, ev.Usage.CompletionTokens, ev.Usage.PromptTokensDetails.CachedTokens
			}
		}
		if err != nil {
			break
		}
	}
	o.end = time.Now()
	o.ok = done && o.prompt > 0
	return o
}

// runParams are how a trace is run.
type runParams struct {
	Algorithm router.Algorithm
	Sim       mindie.Config
	Instances int
	// TimeScale multiplies the trace's times (the simulator's timings are
	// scaled in Sim already).
	TimeScale float64
	// Warmup is how many requests, in the order sent, TTFTP90AfterWarmupMs
	// leaves out.
	Warmup int
	// Grace is how long after the last planned send the run may go on;
	// requests unanswered then fail.
	Grace time.Duration
}

// runTrace runs t through a fresh router (p.Algorithm, otherwise its
// defaults) in front of fresh simulators.
func runTrace(ctx context.Context, t *Trace, p runParams) (results.AlgorithmRun, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sims, src, err := startSimulators(ctx, p.Instances, p.Sim)
	if err != nil {
		return results.AlgorithmRun{}, err
	}
	cfg := routerConfig
	cfg.Algorithm = p.Algorithm
	url, err := startRouter(ctx, cfg, src)
	if err != nil {
		return results.AlgorithmRun{}, err
	}
	// Let the router read every instance's status once.
	time.Sleep(cfg.StatusInterval + 200*time.Millisecond)

	scale := func(d time.Duration) time.Duration { return time.Duration(float64(d) * p.TimeScale) }
	planned := scale(time.Duration(t.Shape.PlannedSeconds * float64(time.Second)))
	runCtx, stopRun := context.WithTimeout(ctx, planned+p.Grace)
	defer stopRun()

	// Sample the instances' queues while the trace runs.
	maxWaiting := 0
	sampleDone := measure.Sample(runCtx, 100*time.Millisecond, func() {
		for _, s := range sims {
			maxWaiting = max(maxWaiting, s.Stats().Waiting)
		}
	})

	client := newClient()
	client.Timeout = 0 // bounded by runCtx
	model := p.Sim.WithDefaults().ModelID
	var mu sync.Mutex
	var outcomes []outcome
	var wg sync.WaitGroup
	start := time.Now()
	for i := range t.Sessions {
		s := &t.Sessions[i]
		wg.Go(func() {
			at := start.Add(scale(s.Start))
			for k, turn := range s.Turns {
				at = at.Add(scale(turn.Think))
				timer := time.NewTimer(time.Until(at))
				select {
				case <-timer.C:
				case <-runCtx.Done():
					timer.Stop()
				}
				o := outcome{sent: time.Now()} // unsent: the run's deadline passed
				if runCtx.Err() == nil {
					o = streamChat(runCtx, client, url, model, s.Messages(k), turn.MaxTokens)
				}
				mu.Lock()
				outcomes = append(outcomes, o)
				mu.Unlock()
				at = time.Now()
			}
		})
	}
	wg.Wait()
	stopRun()
	<-sampleDone

	if len(ttftsOf(outcomes)) == 0 {
		return results.AlgorithmRun{}, fmt.Errorf("none of the %d requests was answered", len(outcomes))
	}
	run := results.AlgorithmRun{Algorithm: string(p.Algorithm), Requests: len(outcomes), MaxWaiting: maxWaiting}
	perInstance := map[string]int{}
	var ttfts []float64
	var last time.Time
	for _, o := range outcomes {
		if !o.ok {
			run.Failed++
			continue
		}
		ttfts = append(ttfts, measure.Ms(o.ttft))
		run.PromptTokens += o.prompt
		run.CachedTokens += o.cached
		run.CompletionTokens += o.completion
		perInstance[o.instance]++
		if o.end.After(last) {
			last = o.end
		}
	}
	for _, inst := range src {
		run.PerInstance = append(run.PerInstance, perInstance[inst.Name])
	}
	for _, s := range sims {
		st := s.Stats()
		run.Preemptions += st.Preemptions
		run.EvictedBlocks += st.EvictedBlocks
	}
	if run.PromptTokens > 0 {
		run.HitRate = measure.Round(float64(run.CachedTokens)/float64(run.PromptTokens), 4)
	}
	run.TTFTP50Ms = measure.Round(measure.Percentile(ttfts, 0.5), 1)
	run.TTFTP90Ms = measure.Round(measure.Percentile(ttfts, 0.9), 1)
	run.TTFTP99Ms = measure.Round(measure.Percentile(ttfts, 0.99), 1)
	// The same after the first warm-up requests sent: what the router does
	// once its reuse detector's window has filled.
	slices.SortFunc(outcomes, func(a, b outcome) int { return a.sent.Compare(b.sent) })
	if len(outcomes) > p.Warmup {
		run.TTFTP90AfterWarmupMs = measure.Round(measure.Percentile(ttftsOf(outcomes[p.Warmup:]), 0.9), 1)
	}
	if s := last.Sub(start).Seconds(); s > 0 {
		run.Seconds = measure.Round(s, 2)
		run.OutputTokensPerSecond = measure.Round(float64(run.CompletionTokens)/s, 1)
	}
	return run, nil
}

func ttftsOf(os []outcome) []float64 {
	var out []float64
	for _, o := range os {
		if o.ok {
			out = append(out, measure.Ms(o.ttft))
		}
	}
	return out
}

package main

// This file predicts, from the timing model alone, the time to first token
// each layout should see, so that the measured figures can be checked
// against it: the trace's prefills replayed through the layout's prefill
// instances, with nothing else (no decode steps, no KV transfer, no HTTP).

import (
	"time"

	"mindie.io/deployer/test/bench/measure"
)

// prediction is what the replay predicts for one layout, in the model's
// time.
type prediction struct {
	ttftP50Ms, ttftP90Ms float64
	// busy is the share of the prefill instances' time the trace's
	// prefills take, over the trace's planned length.
	busy float64
}

// predictTTFT replays t through servers first-come-first-served prefill
// servers, each request going to the one that is free first (the least
// prefill work left, which least_load approximates) and taking perToken
// for each prompt token (nothing is cached: the prompts share no block).
// A request's TTFT is its wait plus its own prefill.
func predictTTFT(t *Trace, servers int, perToken time.Duration) prediction {
	if servers < 1 || len(t.Requests) == 0 {
		return prediction{}
	}
	free := make([]time.Duration, servers)
	ttfts := make([]float64, 0, len(t.Requests))
	var work time.Duration
	for _, r := range t.Requests {
		k := 0
		for i := range free {
			if free[i] < free[k] {
				k = i
			}
		}
		prefill := time.Duration(r.PromptTokens) * perToken
		work += prefill
		free[k] = max(free[k], r.At) + prefill
		ttfts = append(ttfts, measure.Ms(free[k]-r.At))
	}
	p := prediction{
		ttftP50Ms: measure.Round(measure.Percentile(ttfts, 0.5), 1),
		ttftP90Ms: measure.Round(measure.Percentile(ttfts, 0.9), 1),
	}
	if last := t.Requests[len(t.Requests)-1].At; last > 0 {
		p.busy = measure.Round(float64(work)/float64(last)/float64(servers), 3)
	}
	return p
}

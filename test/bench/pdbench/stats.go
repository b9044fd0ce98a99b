package main

// This file turns what the client saw of each request into a run's
// figures: TTFT and TPOT percentiles, output tokens/s, failures.

import (
	"time"

	"mindie.io/deployer/test/bench/measure"
	"mindie.io/deployer/test/bench/results"
)

// outcome is what the client saw of one request, in wall time.
type outcome struct {
	ok   bool
	sent time.Time
	// first and last are when the first and the last token arrived;
	// tokens counts the events that carried one, maxGap is the longest
	// wait between two of them.
	first, last time.Time
	tokens      int
	maxGap      time.Duration
	// end is when the answer ended; prompt and completion its usage.
	end                time.Time
	prompt, completion int64
}

// ttft is the time from sending the request to its first token.
func (o *outcome) ttft() time.Duration { return o.first.Sub(o.sent) }

// tpot is the time per output token after the first: the time from the
// first token to the last over the tokens after the first. ok is false
// for an answer of fewer than two tokens, which has none.
func (o *outcome) tpot() (time.Duration, bool) {
	if o.tokens < 2 {
		return 0, false
	}
	return o.last.Sub(o.first) / time.Duration(o.tokens-1), true
}

// summarize fills in run's request, token, latency and throughput figures
// from the outcomes of its requests. scale is the run's time scale: wall
// durations are divided by it, so the figures are the model's. A request
// is interrupted when it waited more than interruptGap (model time)
// between two of its tokens.
func summarize(run *results.PDRun, outcomes []outcome, scale float64, interruptGap time.Duration) {
	model := func(d time.Duration) float64 { return measure.Ms(d) / scale }
	run.Requests = len(outcomes)
	run.Failed, run.PromptTokens, run.CompletionTokens = 0, 0, 0
	var ttfts, tpots []float64
	var maxGap time.Duration
	var firstSent, lastEnd time.Time
	interrupted, gapMs := 0, measure.Ms(interruptGap)
	for i := range outcomes {
		o := &outcomes[i]
		if firstSent.IsZero() || o.sent.Before(firstSent) {
			firstSent = o.sent
		}
		if !o.ok {
			run.Failed++
			continue
		}
		run.PromptTokens += o.prompt
		run.CompletionTokens += o.completion
		ttfts = append(ttfts, model(o.ttft()))
		if d, ok := o.tpot(); ok {
			tpots = append(tpots, model(d))
		}
		maxGap = max(maxGap, o.maxGap)
		if model(o.maxGap) > gapMs {
			interrupted++
		}
		if o.end.After(lastEnd) {
			lastEnd = o.end
		}
	}
	run.TTFTP50Ms = measure.Round(measure.Percentile(ttfts, 0.5), 1)
	run.TTFTP90Ms = measure.Round(measure.Percentile(ttfts, 0.9), 1)
	run.TTFTP99Ms = measure.Round(measure.Percentile(ttfts, 0.99), 1)
	run.TPOTP50Ms = measure.Round(measure.Percentile(tpots, 0.5), 2)
	run.TPOTP90Ms = measure.Round(measure.Percentile(tpots, 0.9), 2)
	run.TPOTP99Ms = measure.Round(measure.Percentile(tpots, 0.99), 2)
	run.TPOTRequests = len(tpots)
	run.MaxGapMs = measure.Round(model(maxGap), 1)
	run.InterruptGapMs = measure.Round(gapMs, 1)
	run.InterruptedShare = 0
	if len(ttfts) > 0 {
		run.InterruptedShare = measure.Round(float64(interrupted)/float64(len(ttfts)), 3)
	}
	run.Seconds, run.OutputTokensPerSecond = 0, 0
	if s := lastEnd.Sub(firstSent).Seconds() / scale; !lastEnd.IsZero() && s > 0 {
		run.Seconds = measure.Round(s, 2)
		run.OutputTokensPerSecond = measure.Round(float64(run.CompletionTokens)/s, 1)
	}
}

package main

import (
	"testing"
	"time"

	"mindie.io/deployer/test/bench/results"
)

// answered is an outcome sent at t0+sent whose n tokens arrive from
// t0+first, one every gap.
func answered(t0 time.Time, sent, first, gap time.Duration, n int) outcome {
	o := outcome{ok: true, sent: t0.Add(sent), first: t0.Add(first), tokens: n, prompt: 100, completion: int64(n)}
	o.last = o.first.Add(time.Duration(n-1) * gap)
	o.end = o.last
	if n > 1 {
		o.maxGap = gap
	}
	return o
}

func TestOutcomeTPOT(t *testing.T) {
	t0 := time.Now()
	o := answered(t0, 0, 100*time.Millisecond, 20*time.Millisecond, 11)
	if d, ok := o.tpot(); !ok || d != 20*time.Millisecond {
		t.Errorf("tpot %v %t, want 20ms", d, ok)
	}
	if o.ttft() != 100*time.Millisecond {
		t.Errorf("ttft %v, want 100ms", o.ttft())
	}
	one := answered(t0, 0, 100*time.Millisecond, 0, 1)
	if _, ok := one.tpot(); ok {
		t.Error("an answer of one token has a TPOT")
	}
}

func TestSummarize(t *testing.T) {
	t0 := time.Now()
	outcomes := []outcome{
		// Wall times at a time scale of 0.5: the model's are twice these.
		answered(t0, 0, 100*time.Millisecond, 10*time.Millisecond, 11),                   // TTFT 200, TPOT 20 (model)
		answered(t0, time.Second, 1300*time.Millisecond, 40*time.Millisecond, 6),         // TTFT 600, TPOT 80, ends at 1.5 s
		answered(t0, 2*time.Second, 2050*time.Millisecond, 0, 1),                         // TTFT 100, no TPOT
		{sent: t0.Add(3 * time.Second)},                                                  // failed
		answered(t0, 500*time.Millisecond, 900*time.Millisecond, 15*time.Millisecond, 5), // TTFT 800, TPOT 30
	}
	var run results.PDRun
	summarize(&run, outcomes, 0.5, 50*time.Millisecond)
	if run.Requests != 5 || run.Failed != 1 || run.CompletionTokens != 23 || run.PromptTokens != 400 {
		t.Fatalf("requests %d failed %d completion %d prompt %d", run.Requests, run.Failed, run.CompletionTokens, run.PromptTokens)
	}
	if run.TTFTP50Ms != 200 || run.TTFTP90Ms != 800 {
		t.Errorf("TTFT p50 %g p90 %g, want 200 and 800 (model time)", run.TTFTP50Ms, run.TTFTP90Ms)
	}
	if run.TPOTRequests != 3 || run.TPOTP50Ms != 30 || run.TPOTP90Ms != 80 {
		t.Errorf("TPOT over %d requests: p50 %g p90 %g, want 3, 30 and 80", run.TPOTRequests, run.TPOTP50Ms, run.TPOTP90Ms)
	}
	if run.MaxGapMs != 80 {
		t.Errorf("max gap %g, want 80", run.MaxGapMs)
	}
	// Gaps of 20, 80, none and 30 ms (model): one of four over 50 ms.
	if run.InterruptedShare != 0.25 || run.InterruptGapMs != 50 {
		t.Errorf("interrupted %g over %g ms, want 0.25 over 50", run.InterruptedShare, run.InterruptGapMs)
	}
	// From the first send (t0) to the last answer (2.05 s wall): 4.1 s of
	// model time, 23 tokens.
	if run.Seconds != 4.1 || run.OutputTokensPerSecond != 5.6 {
		t.Errorf("%g s, %g tokens/s; want 4.1 s and 5.6", run.Seconds, run.OutputTokensPerSecond)
	}
}

func TestSummarizeNothingAnswered(t *testing.T) {
	var run results.PDRun
	summarize(&run, []outcome{{sent: time.Now()}}, 1, time.Second)
	if run.Failed != 1 || run.OutputTokensPerSecond != 0 || run.TTFTP90Ms != 0 {
		t.Errorf("%+v", run)
	}
}

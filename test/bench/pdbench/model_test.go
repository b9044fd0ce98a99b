package main

import (
	"testing"
	"time"
)

func TestPredictTTFT(t *testing.T) {
	// Prefill 1 ms a token. Arrivals at 0, 1, 1.5 and 10 s with prompts of
	// 2000, 1000, 3000 and 500 tokens.
	tr := &Trace{Requests: []Request{
		{At: 0, PromptTokens: 2000},
		{At: time.Second, PromptTokens: 1000},
		{At: 1500 * time.Millisecond, PromptTokens: 3000},
		{At: 10 * time.Second, PromptTokens: 500},
	}}
	// One server: 2 s; 1 s waiting + 1 s = 2 s; 1.5 s waiting + 3 s =
	// 4.5 s; 0.5 s.
	one := predictTTFT(tr, 1, time.Millisecond)
	if one.ttftP50Ms != 2000 || one.ttftP90Ms != 4500 {
		t.Errorf("one server: p50 %g p90 %g, want 2000 and 4500", one.ttftP50Ms, one.ttftP90Ms)
	}
	// 6.5 s of work over 10 s.
	if one.busy != 0.65 {
		t.Errorf("one server busy %g, want 0.65", one.busy)
	}
	// Two servers: the second request takes the idle one; the third waits
	// until 2 s, when both are free. TTFTs 2, 1, 3.5 and 0.5 s.
	two := predictTTFT(tr, 2, time.Millisecond)
	if two.ttftP50Ms != 1000 || two.ttftP90Ms != 3500 || two.busy != 0.325 {
		t.Errorf("two servers: p50 %g p90 %g busy %g, want 1000, 3500 and 0.325", two.ttftP50Ms, two.ttftP90Ms, two.busy)
	}
	if p := predictTTFT(tr, 0, time.Millisecond); p != (prediction{}) {
		t.Errorf("no server: %+v", p)
	}
}

package main

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"mindie.io/deployer/pkg/simulator/mindie"
	"mindie.io/deployer/test/bench/results"
)

func testShape() results.PDTrace {
	return results.PDTrace{Seed: 7, Requests: 400, RatePerSecond: 2, PromptTokensMin: 20, PromptTokensMax: 60, MaxTokens: 16}
}

func TestGenerateTraceIsDeterministic(t *testing.T) {
	a, err := GenerateTrace(testShape())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := GenerateTrace(testShape())
	if !reflect.DeepEqual(a, b) {
		t.Fatal("the same shape and seed gave two traces")
	}
	other := testShape()
	other.Seed = 8
	c, _ := GenerateTrace(other)
	if reflect.DeepEqual(a.Requests, c.Requests) {
		t.Fatal("another seed gave the same trace")
	}
}

func TestGenerateTraceShape(t *testing.T) {
	shape := testShape()
	tr, err := GenerateTrace(shape)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Requests) != shape.Requests {
		t.Fatalf("%d requests, want %d", len(tr.Requests), shape.Requests)
	}
	var sum int64
	seenLength := map[int]bool{}
	firstWords := map[string]bool{}
	var last time.Duration
	for i, r := range tr.Requests {
		// The prompt is as long as the simulator counts it, template included.
		if n := len(mindie.Tokenize("user: " + r.Content + "\n")); n != r.PromptTokens {
			t.Fatalf("request %d: %d tokens recorded, the simulator counts %d", i, r.PromptTokens, n)
		}
		if r.PromptTokens < shape.PromptTokensMin || r.PromptTokens > shape.PromptTokensMax {
			t.Fatalf("request %d: %d prompt tokens, outside %d–%d", i, r.PromptTokens, shape.PromptTokensMin, shape.PromptTokensMax)
		}
		if r.At < last {
			t.Fatalf("request %d at %v, before the one before it (%v)", i, r.At, last)
		}
		last = r.At
		sum += int64(r.PromptTokens)
		seenLength[r.PromptTokens] = true
		first := strings.Fields(r.Content)[0]
		if firstWords[first] {
			t.Fatalf("request %d starts like another one (%q): prompts would share a block", i, first)
		}
		firstWords[first] = true
	}
	if sum != tr.Shape.PromptTokens {
		t.Fatalf("shape says %d prompt tokens, the requests have %d", tr.Shape.PromptTokens, sum)
	}
	// Uniform lengths: both ends of the range turn up among 400 draws.
	if !seenLength[shape.PromptTokensMin] || !seenLength[shape.PromptTokensMax] {
		t.Errorf("prompt lengths never reach %d or %d", shape.PromptTokensMin, shape.PromptTokensMax)
	}
	// Poisson arrivals at 2/s: 400 requests take about 200 s (±15% is
	// over four standard deviations).
	if s := tr.Shape.PlannedSeconds; s < 170 || s > 230 {
		t.Errorf("planned %g s for 400 requests at 2/s", s)
	}
	if got := last.Seconds(); got-tr.Shape.PlannedSeconds > 0.01 || tr.Shape.PlannedSeconds-got > 0.01 {
		t.Errorf("planned seconds %g, last arrival %g", tr.Shape.PlannedSeconds, got)
	}
}

func TestGenerateTraceRefusesBadShapes(t *testing.T) {
	for name, change := range map[string]func(*results.PDTrace){
		"no requests":     func(s *results.PDTrace) { s.Requests = 0 },
		"no rate":         func(s *results.PDTrace) { s.RatePerSecond = 0 },
		"tiny prompts":    func(s *results.PDTrace) { s.PromptTokensMin = 3 },
		"inverted range":  func(s *results.PDTrace) { s.PromptTokensMax = s.PromptTokensMin - 1 },
		"no answer asked": func(s *results.PDTrace) { s.MaxTokens = 0 },
	} {
		shape := testShape()
		change(&shape)
		if _, err := GenerateTrace(shape); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

package main

// This file generates the benchmark's trace: single chat requests with
// long prompts of random words, arriving as a Poisson process. It is a
// pure function of its parameters and seed: the same seed gives the same
// prompts and arrival times on every machine.

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"mindie.io/deployer/pkg/simulator/mindie"
	"mindie.io/deployer/test/bench/measure"
	"mindie.io/deployer/test/bench/results"
)

// chatOverhead is the tokens the simulator's chat template adds to a
// single user message ("user: <content>\n"): "user" and ":".
const chatOverhead = 2

// Request is one request of the trace.
type Request struct {
	// At is when it is sent, from the trace's start (model time).
	At time.Duration
	// Content is its one user message.
	Content string
	// PromptTokens is its prompt's length as the simulator counts it.
	PromptTokens int
}

// Trace is the generated workload.
type Trace struct {
	Shape    results.PDTrace
	Requests []Request
}

// GenerateTrace generates shape.Requests requests: exponential gaps of
// mean 1/RatePerSecond, each prompt of PromptTokensMin–PromptTokensMax
// tokens (uniformly, template included), led by the request's number so
// that no two prompts share a block. It fills in the shape's PromptTokens
// and PlannedSeconds.
func GenerateTrace(shape results.PDTrace) (*Trace, error) {
	switch {
	case shape.Requests <= 0:
		return nil, fmt.Errorf("requests %d: must be positive", shape.Requests)
	case shape.RatePerSecond <= 0:
		return nil, fmt.Errorf("rate %g/s: must be positive", shape.RatePerSecond)
	case shape.PromptTokensMin < chatOverhead+2 || shape.PromptTokensMax < shape.PromptTokensMin:
		return nil, fmt.Errorf("prompt tokens %d–%d: need %d ≤ min ≤ max", shape.PromptTokensMin, shape.PromptTokensMax, chatOverhead+2)
	case shape.MaxTokens < 1:
		return nil, fmt.Errorf("max tokens %d: must be positive", shape.MaxTokens)
	}
	rng := rand.New(rand.NewPCG(shape.Seed, 0x7064747261636500))
	t := &Trace{Shape: shape}
	t.Shape.PromptTokens = 0
	var at time.Duration
	for i := range shape.Requests {
		at += time.Duration(rng.ExpFloat64() / shape.RatePerSecond * float64(time.Second))
		n := shape.PromptTokensMin + rng.IntN(shape.PromptTokensMax-shape.PromptTokensMin+1)
		content := fmt.Sprintf("request%d %s", i, measure.Words(rng, n-chatOverhead-1))
		tokens := len(mindie.Tokenize("user: " + content + "\n"))
		t.Requests = append(t.Requests, Request{At: at, Content: content, PromptTokens: tokens})
		t.Shape.PromptTokens += int64(tokens)
	}
	t.Shape.PlannedSeconds = math.Round(at.Seconds()*100) / 100
	return t, nil
}

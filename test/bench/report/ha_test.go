package main

import (
	"strings"
	"testing"

	"mindie.io/deployer/test/bench/results"
)

func TestRenderHA(t *testing.T) {
	r := &results.HA{
		Version:  results.HAVersion,
		Goals:    results.HAGoals{ActSeconds: 15, MinThroughputRatio: 0.8, MaxOpSeconds: 5, Why: "because"},
		Setup:    results.HASetup{Replicas: 2, Policy: "first", Writers: 4, Readers: 4, PauseMillis: 100, LeaseSeconds: 10, RenewSeconds: 7, RetryPeriodSeconds: 1},
		Baseline: results.HAPhase{Seconds: 25, Ops: 1000, OpsPerSecond: 40, P50Ms: 20, P99Ms: 400, MaxMs: 500},
		Failover: results.HAPhase{Seconds: 25, Ops: 800, OpsPerSecond: 32, P50Ms: 25, P99Ms: 700, MaxMs: 800,
			Retried: map[string]int{"503 ServiceUnavailable": 8, "EOF": 1}, Problems: []string{"get x: not found after it was acknowledged"}},
		Takeover: results.HATakeover{Killed: "mindie-apiserver-0", NewLeader: "mindie-apiserver-1", LeaseSeconds: 11.35, ActSeconds: 12.03},
	}
	r.Derive()
	out := renderHA(r)
	for _, want := range []string{
		"## Two replicas, one killed",
		"| kill → the other replica's controllers act | 12.0 s | ≤ 15 s: met |",
		"| failures that are not retryable, lost or duplicated objects | 1 | ≤ 0: **missed** |",
		"| operations/s after the kill / baseline | 0.80× | ≥ 0.8: met |",
		"8 × 503 ServiceUnavailable, 1 × EOF",
		"- failure: get x: not found after it was acknowledged",
		"The Lease went to `mindie-apiserver-1`",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if !strings.Contains(renderHANotRun(), "HA_BENCH=0") {
		t.Error("the not-run section does not say how to run it")
	}
}

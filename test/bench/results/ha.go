package results

import (
	"encoding/json"
	"fmt"
	"os"
)

// HAVersion is the version of the failover benchmark's format.
const HAVersion = 1

// HA is one run of the failover benchmark (test/bench/habench, run by
// hack/ha-bench.sh on a local cluster of its own with two mindie-apiserver
// replicas behind hack/servicelb): steady writes and reads of InferServers
// through kube-apiserver (test/failover's load), first undisturbed (the
// baseline), then while the replica that leads the controllers and carries
// the traffic is killed with SIGKILL. No simulated part takes part: the
// API servers, etcd and the controllers are the real ones. The last run's
// is committed as docs/bench/ha.json; test/bench/report renders the "Two
// replicas, one killed" section of docs/benchmarks.md from it.
type HA struct {
	Version int       `json:"version"`
	Run     RouterRun `json:"run"`
	Goals   HAGoals   `json:"goals"`
	Setup   HASetup   `json:"setup"`
	// Baseline is the load without a failure; Failover the same load from
	// the kill to its end.
	Baseline HAPhase    `json:"baseline"`
	Failover HAPhase    `json:"failover"`
	Takeover HATakeover `json:"takeover"`
	Summary  HASummary  `json:"summary"`
}

// HAGoals are what the run is held to.
type HAGoals struct {
	// ActSeconds bounds the time from the kill to the other replica's
	// controllers reconciling a server (the 15 s).
	ActSeconds float64 `json:"actSeconds"`
	// MinThroughputRatio is the least share of the baseline's operations a
	// second the load keeps after the kill (ours).
	MinThroughputRatio float64 `json:"minThroughputRatio"`
	// MaxOpSeconds bounds the longest operation after the kill, its
	// retries included (ours).
	MaxOpSeconds float64 `json:"maxOpSeconds"`
	Why          string  `json:"why,omitempty"`
}

// HASetup is how the run was set up.
type HASetup struct {
	Replicas int `json:"replicas"`
	// Policy is servicelb's: first sends every connection to the first
	// ready replica, the one killed.
	Policy  string `json:"policy"`
	Writers int    `json:"writers"`
	Readers int    `json:"readers"`
	// PauseMillis is each client goroutine's pause between operations.
	PauseMillis int `json:"pauseMillis"`
	// The controllers' leader election.
	LeaseSeconds       float64 `json:"leaseSeconds"`
	RenewSeconds       float64 `json:"renewSeconds"`
	RetryPeriodSeconds float64 `json:"retryPeriodSeconds"`
	Note               string  `json:"note,omitempty"`
}

// HAPhase is what the clients saw in one phase.
type HAPhase struct {
	Seconds      float64 `json:"seconds"`
	Ops          int     `json:"ops"`
	Attempts     int     `json:"attempts"`
	OpsPerSecond float64 `json:"opsPerSecond"`
	// Latencies of whole operations, retries included.
	P50Ms float64 `json:"p50Ms"`
	P99Ms float64 `json:"p99Ms"`
	MaxMs float64 `json:"maxMs"`
	// Retried counts the failed attempts that were retried, by error.
	Retried map[string]int `json:"retried,omitempty"`
	// Acknowledged creates of the phase (all of the load's, not only those
	// after the kill).
	Acknowledged int `json:"acknowledged"`
	// Problems are the errors that were not retryable, operations given
	// up, reads that missed an acknowledged server, and what the check of
	// the stored servers found (lost, written twice).
	Problems []string `json:"problems,omitempty"`
}

// HATakeover is how soon the other replica took over.
type HATakeover struct {
	Killed    string `json:"killed"`
	NewLeader string `json:"newLeader"`
	// LeaseSeconds is from the kill to the Lease changing hands;
	// ActSeconds to a server created after the kill reconciled.
	LeaseSeconds float64 `json:"leaseSeconds"`
	ActSeconds   float64 `json:"actSeconds"`
	Error        string  `json:"error,omitempty"`
}

// HASummary holds the goals' checks, derived.
type HASummary struct {
	ThroughputRatio float64     `json:"throughputRatio"`
	Goals           []GoalCheck `json:"goals"`
}

// The goals' names.
const (
	GoalHAAct        = "kill → the other replica's controllers act"
	GoalHAFailures   = "failures that are not retryable, lost or duplicated objects"
	GoalHAThroughput = "operations/s after the kill / baseline"
	GoalHAMaxOp      = "longest operation after the kill, retries included"
)

// Derive computes the summary.
func (r *HA) Derive() {
	s := &r.Summary
	s.ThroughputRatio = 0
	if r.Baseline.OpsPerSecond > 0 {
		s.ThroughputRatio = r.Failover.OpsPerSecond / r.Baseline.OpsPerSecond
	}
	measured := r.Failover.Ops > 0
	s.Goals = []GoalCheck{
		check(GoalHAAct, r.Takeover.ActSeconds, r.Goals.ActSeconds, true, r.Takeover.ActSeconds > 0, false),
		check(GoalHAFailures, float64(len(r.Failover.Problems)+len(r.Baseline.Problems)), 0, true, measured, false),
		check(GoalHAThroughput, s.ThroughputRatio, r.Goals.MinThroughputRatio, false, measured && r.Baseline.Ops > 0, false),
		check(GoalHAMaxOp, r.Failover.MaxMs/1000, r.Goals.MaxOpSeconds, true, measured, false),
	}
}

// LoadHA reads a failover benchmark's results.
func LoadHA(path string) (*HA, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r HA
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.Version != HAVersion {
		return nil, fmt.Errorf("%s: version %d, want %d", path, r.Version, HAVersion)
	}
	r.Derive()
	return &r, nil
}

// Save derives the summary and writes the results to path.
func (r *HA) Save(path string) error {
	r.Derive()
	return saveJSON(path, r)
}

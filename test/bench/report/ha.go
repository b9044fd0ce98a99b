package main

// This file renders the "Two replicas, one killed" section of
// docs/benchmarks.md from the failover benchmark's results
// (docs/bench/ha.json, written by hack/ha-bench.sh and test/bench/habench).

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"mindie.io/deployer/test/bench/results"
)

const haSectionHead = "\n## Two replicas, one killed\n\n"

// renderHANotRun is the section when there are no results.
func renderHANotRun() string {
	return haSectionHead + "The failover benchmark (`hack/ha-bench.sh`: two mindie-apiserver replicas, the leader killed under a steady " +
		"load of InferServer writes and reads) awaits its first run: there is no `docs/bench/ha.json`. `make bench` runs it unless " +
		"`HA_BENCH=0`; alone: `hack/ha-bench.sh`.\n"
}

// haVerdict is a goal's bound and whether it was met.
func haVerdict(g results.GoalCheck, unit string) string {
	op := "≤"
	if !g.AtMost {
		op = "≥"
	}
	bound := fmt.Sprintf("%s %s%s", op, num(g.Bound), unit)
	switch {
	case !g.Measured:
		return bound + ": not measured"
	case g.Met:
		return bound + ": met"
	}
	return bound + ": **missed**"
}

// retried lists the retried errors, most frequent first.
func retried(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := slices.Sorted(maps.Keys(m))
	slices.SortStableFunc(keys, func(a, b string) int { return m[b] - m[a] })
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d × %s", m[k], k))
	}
	return strings.Join(parts, ", ")
}

// renderHA returns the "Two replicas, one killed" section.
func renderHA(r *results.HA) string {
	var sb strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	su, b, f, tk := r.Setup, r.Baseline, r.Failover, r.Takeover

	p(haSectionHead)
	p("Measured by `test/bench/habench`, run by `hack/ha-bench.sh` (which `hack/bench.sh` runs; `HA_BENCH=0` skips it) on a local cluster "+
		"of its own, rendered from `docs/bench/ha.json`. %d mindie-apiserver replicas on one etcd, behind `hack/servicelb` (the stand-in for a "+
		"Service's virtual IP; policy `%s`: every connection goes to the replica that leads the controllers, so the one killed carries all "+
		"traffic, the worst case). %d writers (each creating an InferServer, then updating one of its own, in turn) and %d readers (a GET "+
		"of an acknowledged server, every fifth time a LIST of the run's) pause %d ms between operations and go through kube-apiserver and "+
		"the aggregator as users do; an operation that fails with a retryable error (503, 504, 429, a broken connection) is retried with "+
		"backoff, any other error counts as a failure of the API. The baseline is the same load undisturbed; in the failover run the leading "+
		"replica gets SIGKILL after a few seconds, and both are measured over the same stretch of their run (from the kill on). Then every "+
		"server the load stored is checked against what the API acknowledged. Nothing here is simulated: there are no nodes, the servers' "+
		"pods stay Pending.\n\n", su.Replicas, su.Policy, su.Writers, su.Readers, su.PauseMillis)
	p("- Date: %s; wall time %s\n", orDash(r.Run.Date), secs(r.Run.WallSeconds))
	p("- Go: %s; CPU: %s, %d CPUs, shared by the cluster's processes and the benchmark\n", orDash(r.Run.Go), orDash(r.Run.CPU), r.Run.CPUs)
	p("- Command: `%s`; leader election: lease %s s, renew deadline %s s, retry period %s s (the defaults)\n",
		r.Run.Command, num(su.LeaseSeconds), num(su.RenewSeconds), num(su.RetryPeriodSeconds))
	if su.Note != "" {
		p("- Note: %s\n", su.Note)
	}

	p("\n### Goals\n\n| goal | measured | goal and verdict |\n|---|--:|---|\n")
	for _, g := range r.Summary.Goals {
		value, unit := num(g.Value), ""
		switch g.Name {
		case results.GoalHAAct, results.GoalHAMaxOp:
			value, unit = secs(g.Value), " s"
		case results.GoalHAThroughput:
			value = fmt.Sprintf("%.2f×", g.Value)
		case results.GoalHAFailures:
			value = fmt.Sprintf("%d", int(g.Value))
		}
		if !g.Measured {
			value = "—"
		}
		p("| %s | %s | %s |\n", g.Name, value, haVerdict(g, unit))
	}
	if r.Goals.Why != "" {
		p("\nWhy these bounds: %s\n", r.Goals.Why)
	}

	p("\n### The clients\n\n| | seconds | operations | ops/s | p50 | p99 | longest | attempts | retried | failures |\n|---|--:|--:|--:|--:|--:|--:|--:|---|--:|\n")
	for _, row := range []struct {
		name string
		ph   results.HAPhase
	}{{"baseline (no failure)", b}, {"after the kill", f}} {
		p("| %s | %s | %d | %s | %s ms | %s ms | %s ms | %d | %s | %d |\n", row.name, num(row.ph.Seconds), row.ph.Ops, num(row.ph.OpsPerSecond),
			num(row.ph.P50Ms), num(row.ph.P99Ms), num(row.ph.MaxMs), row.ph.Attempts, retried(row.ph.Retried), len(row.ph.Problems))
	}
	p("\nLatencies are of whole operations, retries included. *Retried* counts the failed attempts of the whole run by error; *failures* " +
		"are errors that were not retryable, operations given up after a minute, reads that missed an acknowledged server and what the " +
		"check of the stored servers found: an acknowledged server missing, one written by another create than the acknowledged one, or " +
		"an acknowledged update missing.\n")
	for _, pr := range append(slices.Clone(b.Problems), f.Problems...) {
		p("- failure: %s\n", pr)
	}

	p("\n### Takeover\n\n")
	switch {
	case tk.Killed == "":
		p("The leader was not killed: %s.\n", orDash(tk.Error))
	default:
		p("`%s` got SIGKILL while leading. The Lease went to `%s` after %s (its duration is %s s; the others look every retry period, "+
			"with jitter); a server created after the kill was reconciled (its status observed) after %s.", tk.Killed, orDash(tk.NewLeader),
			secsOrDash(tk.LeaseSeconds), num(su.LeaseSeconds), secsOrDash(tk.ActSeconds))
		if tk.Error != "" {
			p(" Not all was seen: %s.", tk.Error)
		}
		p(" Until then the API kept answering through the other replica; only the controllers wait for the Lease.\n")
	}
	return sb.String()
}

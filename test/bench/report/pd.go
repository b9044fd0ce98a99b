package main

// This file renders the "Prefill/Decode" section of docs/benchmarks.md from
// the Prefill/Decode benchmark's results (docs/bench/pd.json, written by
// test/bench/pdbench): the same simulated NPUs without roles and in PD
// layouts on one long-prompt trace, each layout read against the baseline,
// the primary one held to goals. Every figure of it comes from the MindIE
// Server simulator's timing model and is labelled so.

import (
	"fmt"
	"strings"

	"mindie.io/deployer/test/bench/results"
)

// pdSectionHead is the section's heading, the same whether it ran or not.
const pdSectionHead = "\n## Prefill/Decode\n\n"

// pdGoalFormat is how a goal of the section is written: a count of
// failures, or a ratio.
func pdGoalFormat(name string) func(float64) string {
	if name == results.GoalPDFailed {
		return func(v float64) string { return fmt.Sprintf("%.0f", v) }
	}
	return func(v float64) string { return fmt.Sprintf("%.2f×", v) }
}

// renderPDNotRun is the section when there are no results. It names
// the results file as the documented run writes it, whatever path the
// renderer looked at, so the document does not depend on where it ran.
func renderPDNotRun() string {
	return pdSectionHead + "The Prefill/Decode benchmark (`test/bench/pdbench`: the same simulated NPUs with and without roles on a " +
		"long-prompt trace) **has not run**: there is no `docs/bench/pd.json`. `make bench` runs it unless `PD_BENCH=0`; alone: " +
		"`go run ./test/bench/pdbench -out docs/bench/pd.json`, then `go run ./test/bench/report`.\n"
}

// renderPD returns the "Prefill/Decode" section of docs/benchmarks.md.
func renderPD(r *results.PD) string {
	var sb strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	sim, tr := r.Simulator, r.Trace
	base := r.RunNamed(r.Goals.Baseline)

	p(pdSectionHead)
	p("Prefill/Decode disaggregation ([pd.md](pd.md)) measured by `test/bench/pdbench` (run by `hack/bench.sh`; `PD_BENCH=0` skips it), " +
		"rendered from `docs/bench/pd.json`: the same simulated NPUs serve one trace of long prompts through `mindie-router`, first as " +
		"instances without roles (the baseline), then as prefill and decode instances with the router in PD mode. " +
		"**Every figure of this section is *simulated*: it comes from the MindIE Server simulator's timing model** ([simulator.md](simulator.md)), " +
		"not from MindIE on an NPU. It shows what taking the prefills off the instances that decode does under that model, " +
		"not how fast a real deployment is.\n\n")
	renderRun(p, r.Run, "the client, the router and the simulators")

	p("\n### Goals\n\n| goal | figure | goal and verdict | source |\n|---|--:|---|---|\n")
	for _, g := range r.Summary.Goals {
		f := pdGoalFormat(g.Name)
		value := "—"
		if g.Measured {
			value = f(g.Value)
		}
		p("| %s | %s | %s | *simulated* |\n", g.Name, value, verdict(g, f))
	}
	if r.Goals.Why != "" {
		p("\nWhy these bounds: %s\n", r.Goals.Why)
	}

	p("\n### The model, the trace, the layouts\n\n")
	meanPrompt := 0.0
	if tr.Requests > 0 {
		meanPrompt = float64(tr.PromptTokens) / float64(tr.Requests)
	}
	p("*Simulated* instance (docs/simulator.md's defaults, an 8B model on one 910B): prefill %.0f µs a prompt token (%.0f tokens/s), "+
		"one request at a time; a decode step %s ms plus %s µs per further request in the batch, one token for each; "+
		"KV transfer to a decode instance %s µs a prompt token (%s for the trace's mean prompt of %.0f tokens), beside the decode steps; "+
		"%d KV blocks of %d tokens, at most %d requests in a batch, prompts up to %d tokens. "+
		"The simulated model's answers end at their natural length, a function of the prompt, of at most %d tokens. "+
		"On an instance without a role a prefill is an iteration like a decode step and goes first, so every prefill that runs while a request "+
		"decodes is added to the wait for that request's next token; a decode instance runs no prefills.",
		sim.PrefillPerTokenMicros, 1e6/sim.PrefillPerTokenMicros, num(sim.DecodePerTokenMs), num(sim.DecodePerBatchedMicros),
		num(sim.KVTransferPerTokenMicros), msec(sim.KVTransferPerTokenMicros*meanPrompt/1000), meanPrompt,
		sim.CacheBlocks, sim.BlockSize, sim.MaxBatch, sim.MaxInputTokens, sim.MaxAnswerTokens)
	if sim.TimeScale != 1 {
		p(" The run plays the model's durations and the trace's arrival times at **%g×** their length, so that it takes minutes; "+
			"every time below is converted back to the model's time (wall time ÷ %g), so the router's and the loopback's own delays count %g times.",
			sim.TimeScale, sim.TimeScale, 1/sim.TimeScale)
	}
	p("\n\n**Trace** (seed %d): %d requests arriving as a Poisson process of %g a second, each one streamed chat message of %d–%d tokens "+
		"(uniformly; random words led by the request's number, so no prompt shares a KV block with another and nothing is found in a prefix cache) "+
		"asking for %d tokens; %d prompt tokens, the last request at %s. "+
		"At the model's prefill rate the prompts take %s of prefill for every second of the trace.\n\n",
		tr.Seed, tr.Requests, tr.RatePerSecond, tr.PromptTokensMin, tr.PromptTokensMax, tr.MaxTokens, tr.PromptTokens, secs(tr.PlannedSeconds),
		secs(float64(tr.PromptTokens)*sim.PrefillPerTokenMicros/1e6/max(tr.PlannedSeconds, 1e-9)))
	p("**Router**: %s. **Layouts** of the same %d instances, each run on fresh simulators and a fresh router:\n\n", r.Router, layoutInstances(r))
	for _, run := range r.Runs {
		role := "the goals hold for it"
		switch run.Layout.Name {
		case r.Goals.Baseline:
			role = "the baseline every figure is read against"
		case r.Goals.Primary:
		default:
			role = "shown beside, without goals"
		}
		p("- `%s`: %s; %s.\n", run.Layout.Name, run.Layout.Describe(), role)
	}

	p("\n### Results (simulated)\n\n")
	p("| layout | prefill busy | TTFT p50 | TTFT p90 | predicted TTFT p50 / p90 | TPOT p50 | TPOT p90 | TPOT p99 | longest gap | interrupted | output tokens/s | failed |\n")
	p("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	gap := 0.0
	for _, run := range r.Runs {
		p("| `%s` | %s | %s | %s | %s / %s | %s | %s | %s | %s | %s | %.0f | %d of %d |\n", run.Layout.Name, pct(run.PrefillBusy),
			msec(run.TTFTP50Ms), msec(run.TTFTP90Ms), msec(run.PredictedTTFTP50Ms), msec(run.PredictedTTFTP90Ms),
			msec(run.TPOTP50Ms), msec(run.TPOTP90Ms), msec(run.TPOTP99Ms), msec(run.MaxGapMs), pct(run.InterruptedShare),
			run.OutputTokensPerSecond, run.Failed, run.Requests)
		gap = max(gap, run.InterruptGapMs)
	}
	p("\nAll figures of this table are *simulated*, in the model's time. *TTFT* runs from sending a request to its first token, at the client. "+
		"*TPOT* is a request's time per output token after the first, (last token's arrival − first token's) ÷ (tokens − 1), at the client, "+
		"over the answers of two tokens or more; *longest gap* the longest wait between two tokens of one request; "+
		"*interrupted* the share of the answered requests that waited more than %s (half the trace's shortest prefill) between "+
		"two of their tokens: those a prefill ran in the middle of. "+
		"*Output tokens/s* is the generated tokens over the time from the first request sent to the last answer's end. "+
		"*Prefill busy* is the share of the prefill instances' time the trace's prefills take; *predicted TTFT* is the timing model's "+
		"prediction without any of the machinery: the trace's prefills alone replayed through the layout's prefill instances, first come "+
		"first served, each request to the instance that is free first (no decode steps, KV transfers or HTTP). "+
		"A request *failed* when it got an error status, a broken stream, a stream whose tokens did not match its usage, or no answer in time.\n\n", msec(gap))
	if base != nil {
		p("Against the baseline (`%s`), in the same run:\n\n", base.Layout.Name)
		p("| layout | TTFT p50 | TTFT p90 | TPOT p50 | TPOT p90 | output tokens/s |\n|---|--:|--:|--:|--:|--:|\n")
		for _, run := range r.Runs {
			if q := run.VsBaseline; q != nil {
				p("| `%s` | %s | %s | %s | %s | %s |\n", run.Layout.Name, ratioCell(q.TTFTP50), ratioCell(q.TTFTP90),
					ratioCell(q.TPOTP50), ratioCell(q.TPOTP90), ratioCell(q.Tokens))
			}
		}
		p("\n")
	}
	p("What each instance did (from the simulators' counters; *longest queue* and *largest batch* sampled every 100 ms of wall time):\n\n")
	p("| layout | instance | role | prefilled | decoded | tokens generated | longest queue | largest batch | preemptions |\n")
	p("|---|---|---|--:|--:|--:|--:|--:|--:|\n")
	for _, run := range r.Runs {
		for _, in := range run.Instances {
			p("| `%s` | %s | %s | %d | %d | %d | %d | %d | %d |\n", run.Layout.Name, in.Name, orDash(in.Role),
				in.Prefilled, in.Decoded, in.GeneratedTokens, in.MaxWaiting, in.MaxRunning, in.Preemptions)
		}
	}
	p("\n%s", pdReading(r))
	return sb.String()
}

// layoutInstances is the instances of the runs' layouts, which are the
// same (0 if they are not).
func layoutInstances(r *results.PD) int {
	n := 0
	for i, run := range r.Runs {
		if i > 0 && run.Layout.Instances() != n {
			return 0
		}
		n = run.Layout.Instances()
	}
	return n
}

// ratioCell is a ratio, or a dash when it was not measured.
func ratioCell(v float64) string {
	if v <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", v)
}

// pdReading says what the figures show, in words, from the figures.
func pdReading(r *results.PD) string {
	base, prim := r.RunNamed(r.Goals.Baseline), r.RunNamed(r.Goals.Primary)
	if base == nil || prim == nil || prim.VsBaseline == nil {
		return "The baseline or the primary layout did not run: there is nothing to compare.\n"
	}
	var sb strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	q := prim.VsBaseline
	step := r.Simulator.DecodePerTokenMs
	p("**What the figures show.** ")
	median := fmt.Sprintf("the median request decodes at about the step, %s of the requests having seen no prefill while they decoded",
		pct(1-base.InterruptedShare))
	if base.TPOTP50Ms > 1.25*step {
		median = "even the median request has prefills run between its tokens"
	}
	p("*Time per output token.* Without roles, TPOT p50 is %s against a decode step of %s ms at batch 1: %s. "+
		"The tail is the %s of requests a prefill interrupted: TPOT p90 %s, p99 %s, and one request waited %s between two of its tokens, "+
		"other requests' prefills running meanwhile. ",
		msec(base.TPOTP50Ms), num(step), median, pct(base.InterruptedShare), msec(base.TPOTP90Ms), msec(base.TPOTP99Ms), msec(base.MaxGapMs))
	p("In `%s` the decode instance runs no prefill (%s of requests interrupted): TPOT p90 is %s (%s the baseline's), the step at the batch it runs plus, "+
		"spread over the answer, the wait for the prompt's KV transfer before the second token; the p50 is %s (%s).\n\n",
		prim.Layout.Name, pct(prim.InterruptedShare), msec(prim.TPOTP90Ms), ratioCell(q.TPOTP90), msec(prim.TPOTP50Ms), ratioCell(q.TPOTP50))

	word, queue := "higher", "longer"
	if q.TTFTP90 < 1 {
		word, queue = "lower", "no longer"
	}
	p("*Time to first token.* `%s` has %d prefill instances where the baseline prefills on all %d, so the same prefills keep them %s busy instead of %s "+
		"and requests queue %s for their prefill: TTFT p90 %s against %s (%s). The replay of the prefills alone predicted %s against %s",
		prim.Layout.Name, prim.Layout.PrefillInstances(), base.Layout.PrefillInstances(), pct(prim.PrefillBusy), pct(base.PrefillBusy),
		queue, msec(prim.TTFTP90Ms), msec(base.TTFTP90Ms), ratioCell(q.TTFTP90), msec(prim.PredictedTTFTP90Ms), msec(base.PredictedTTFTP90Ms))
	if prim.TTFTP90Ms >= prim.PredictedTTFTP90Ms && base.TTFTP90Ms >= base.PredictedTTFTP90Ms {
		p("; what the runs measured above it is the router's least_load choosing by the requests and prompt tokens it has sent each instance " +
			"(it cannot see how far the running prefill has got), the decode step a prefill may wait for on an instance without a role, and, in PD mode, " +
			"the hand-off to the decode instance before the prefill instance answers, which the replay leaves out")
	} else {
		p("; a run measured below its replay: the replay places requests by the work left, the router by its own estimate, and one run's p90 varies")
	}
	p(". With this ratio PD's TTFT is %s: on this trace the NPU given to decoding is an NPU fewer to prefill on.", word)
	for _, run := range r.Runs {
		if run.Layout.Name == base.Layout.Name || run.Layout.Name == prim.Layout.Name || run.VsBaseline == nil {
			continue
		}
		p(" `%s`, %s, leaves %d instances to prefill, %s busy: its TTFT p90 is %s (%s the baseline's, predicted %s) for a TPOT p90 of %s (%s); "+
			"on a prefill-heavy trace the P:D ratio decides what PD costs in TTFT.",
			run.Layout.Name, run.Layout.Describe(), run.Layout.PrefillInstances(), pct(run.PrefillBusy), msec(run.TTFTP90Ms),
			ratioCell(run.VsBaseline.TTFTP90), msec(run.PredictedTTFTP90Ms), msec(run.TPOTP90Ms), ratioCell(run.VsBaseline.TPOTP90))
	}
	p("\n\n*Output tokens/s.* Requests arrive at a fixed rate that every layout keeps up with, so each serves the trace's tokens in about the "+
		"trace's time (%.0f against %.0f tokens/s, %s): the figure says PD loses no throughput at this load, not what either layout "+
		"sustains at most.\n", prim.OutputTokensPerSecond, base.OutputTokensPerSecond, ratioCell(q.Tokens))
	return sb.String()
}

package main

// This file renders the "Router" section of docs/benchmarks.md from the
// router benchmark's results (docs/bench/router.json, written by
// test/bench/routerbench): the router's overhead against a backend reached
// directly, and its routing quality on simulated instances against
// round_robin, each figure with its goal. Every figure measured on the
// MindIE Server simulator is labelled "simulated".

import (
	"fmt"
	"strconv"
	"strings"

	"mindie.io/deployer/test/bench/results"
)

// msec formats milliseconds with three significant digits.
func msec(v float64) string {
	switch {
	case v >= 1000:
		return sig3(v/1000) + " s"
	case v < 0:
		return "−" + msec(-v)
	}
	return sig3(v) + " ms"
}

// pct formats a fraction as a percentage.
func pct(v float64) string { return strconv.FormatFloat(v*100, 'f', 1, 64) + "%" }

// over is a/b as a ratio, or a dash when b is not positive.
func over(a, b float64) string {
	if b <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

// verdict says whether a goal was met and, when it was missed, by how much.
func verdict(g results.GoalCheck, format func(float64) string) string {
	bound := "≥ " + format(g.Bound)
	if g.AtMost {
		bound = "≤ " + format(g.Bound)
	}
	switch {
	case !g.Measured:
		return bound + ": not measured"
	case g.Met:
		return bound + ": met"
	case g.AtMost:
		return fmt.Sprintf("%s: **missed** by %s", bound, format(g.Value-g.Bound))
	}
	return fmt.Sprintf("%s: **missed** by %s", bound, format(g.Bound-g.Value))
}

// goalFormat is how a goal's figure is written.
func goalFormat(name string) func(float64) string {
	if strings.HasPrefix(name, "added latency") {
		return msec
	}
	if strings.Contains(name, "hit rate") {
		return pct
	}
	return func(v float64) string { return fmt.Sprintf("%.2f×", v) }
}

func kib(bytes int) string {
	if bytes >= 1<<10 && bytes%(1<<10) == 0 {
		return fmt.Sprintf("%d KiB", bytes>>10)
	}
	return fmt.Sprintf("%d B", bytes)
}

// renderRun renders the run of a benchmark program (routerbench,
// pdbench): its date and wall time, Go and the CPUs that sharedBy shared
// in one process, its command and note.
func renderRun(p func(string, ...any), run results.RouterRun, sharedBy string) {
	p("- Date: %s; wall time of the whole run %s\n", orDash(run.Date), secs(run.WallSeconds))
	p("- Go: %s; CPU: %s, %d CPUs, shared by %s (one process)\n", orDash(run.Go), orDash(run.CPU), run.CPUs, sharedBy)
	p("- Command: `%s`\n", run.Command)
	if run.Note != "" {
		p("- Note: %s\n", run.Note)
	}
}

// renderRouter returns the "Router" section of docs/benchmarks.md.
func renderRouter(r *results.Router) string {
	var sb strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	sim := r.Quality.Simulator
	p("\n## Router\n\n")
	p("`mindie-router` ([router.md](router.md)) measured by `test/bench/routerbench` (run by `hack/bench.sh`; `ROUTER_BENCH=0` skips it), " +
		"rendered from `docs/bench/router.json`. Every figure is read against a baseline measured in the same run: the overhead against " +
		"the same backend reached directly, the routing quality against `round_robin` and the oracle. " +
		"**Figures marked *simulated* come from the MindIE Server simulator** ([simulator.md](simulator.md)), not from MindIE on an NPU: " +
		"they show what the routing decisions do under the simulator's timing model, not how fast a real instance is.\n\n")
	renderRun(p, r.Run, "the load generator, the router and the backends")

	p("\n### Goals\n\n| goal | figure | goal and verdict | source |\n|---|--:|---|---|\n")
	for _, g := range r.Summary.Goals {
		f := goalFormat(g.Name)
		src := "measured (no simulator)"
		if g.Simulated {
			src = "*simulated*"
		}
		value := "—"
		if g.Measured {
			value = f(g.Value)
		}
		p("| %s | %s | %s | %s |\n", g.Name, value, verdict(g, f), src)
	}

	if len(r.Over.Loads) > 0 {
		p("\n### Overhead\n\n")
		p("Backend: %s. The router runs in the same process (`router.New` and `Serve` on a 127.0.0.1 listener, plain HTTP, `--authentication none`, `--algorithm %s`, "+
			"which parses and hashes every chat). Open loop: requests leave at a fixed rate for %s whatever the answers before them did, "+
			"and each latency runs from the request's planned send time to the end of its answer, first straight to the backend, then through the router. "+
			"*Added* is the routed percentile less the direct one; *failed* counts the direct and the routed requests that got no 200 "+
			"or were not sent because %d were in flight already (an overloaded run ends instead of piling up); "+
			"*router CPU* is the process CPU per answered request of the routed run less the direct run's.\n\n",
			r.Over.Backend, r.Over.Algorithm, secs(r.Over.Loads[0].Seconds), r.Over.MaxInFlight)
		p("| prompt | rate | direct p50 | direct p99 | routed p50 | routed p99 | added p50 | added p99 | p99 ratio | failed | router CPU / request |\n")
		p("|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
		for _, l := range r.Over.Loads {
			p("| %s | %g/s | %s | %s | %s | %s | %s | %s | %s | %d + %d | %.0f µs |\n", kib(l.PromptBytes), l.Rate,
				msec(l.Direct.P50Ms), msec(l.Direct.P99Ms), msec(l.Routed.P50Ms), msec(l.Routed.P99Ms),
				msec(l.AddedP50Ms), msec(l.AddedP99Ms), over(l.Routed.P99Ms, l.Direct.P99Ms),
				l.Direct.Failed, l.Routed.Failed, l.RouterCPUMicros)
		}
		if len(r.Over.Capacity) > 0 {
			p("\nThe most requests/s: a closed loop of clients, each sending its next request when the last is answered, for %s, directly and through the router. "+
				"On two shared cores the load generator and the backend take their part of the CPU on both sides, so the routed rate is what the router sustains "+
				"with them beside it, a lower bound of what it sustains alone.\n\n", secs(r.Over.Capacity[0].Seconds))
			p("| prompt | clients | direct | routed | routed / direct | failed | router CPU / request |\n|--:|--:|--:|--:|--:|--:|--:|\n")
			for _, c := range r.Over.Capacity {
				p("| %s | %d | %.0f/s | %.0f/s | %s | %d | %.0f µs |\n", kib(c.PromptBytes), c.Concurrency,
					c.DirectRate, c.RoutedRate, over(c.RoutedRate, c.DirectRate), c.Failed, c.RouterCPUMicros)
			}
		}
	}

	if len(r.Quality.Traces) > 0 {
		p("\n### Routing quality (simulated)\n\n")
		p("%d in-process MindIE Server simulators on 127.0.0.1 behind the router (%s). Each trace runs once per algorithm on fresh instances (empty caches) and a fresh router. ",
			sim.Instances, r.Quality.Router)
		p("*Simulated* instance: prefill %.0f µs a token (%.0f tokens/s), a decode step %.2f ms plus %.1f µs per further request in the batch, "+
			"%d KV blocks of %d tokens (%d tokens), at most %d requests in the batch, prompts up to %d tokens.",
			sim.PrefillPerTokenMicros, 1e6/sim.PrefillPerTokenMicros, sim.DecodePerTokenMs, sim.DecodePerBatchedMicros,
			sim.CacheBlocks, sim.BlockSize, sim.CacheBlocks*sim.BlockSize, sim.MaxBatch, sim.MaxInputTokens)
		if sim.TimeScale != 1 {
			p(" These are docs/simulator.md's defaults multiplied by **%g**, and the traces' times (arrivals and think times) by the same factor, "+
				"so that the run takes minutes: the engine's work and the traces keep their proportions, and every time below is wall-clock time of the scaled run "+
				"(divide by %g for the model's time at the defaults; ratios are unchanged).", sim.TimeScale, sim.TimeScale)
		}
		p(" %s\n\n", sim.Why)
		p("*Hit rate* is the prompt tokens the instances found in their prefix cache (the answers' `usage.prompt_tokens_details.cached_tokens`) over all prompt tokens; " +
			"the *oracle* is what one instance with an infinite cache would find: for each prompt in the trace's planned order, the leading full blocks an earlier prompt had. " +
			"*TTFT* runs from sending a request to its first token, through the router. *Output tokens/s* is the generated tokens over the time from the first request to the last answer. " +
			"A request *failed* when it got an error status, a broken stream, or no answer before the run's bound (the planned end plus 120 s of model time).\n\n")
		for _, t := range r.Quality.Traces {
			renderTrace(p, &t, sim.TimeScale)
		}
	}
	return sb.String()
}

// renderTrace writes a trace's description and its table.
func renderTrace(p func(string, ...any), t *results.TraceResult, scale float64) {
	s := t.Shape
	switch s.Name {
	case results.TraceChat:
		p("**Chat trace** (seed %d): %d users start a conversation as a Poisson process of %g a second (model time); user *i* belongs to group *i* mod %d "+
			"and its conversation starts with its group's system prompt of %d tokens. A conversation has %d–%d turns; a user message has %d–%d tokens and "+
			"asks for %d–%d tokens of answer (max_tokens; the simulator's answer may stop earlier), uniformly; the next turn carries the whole history and "+
			"is sent an exponential think time (mean %g s) after the last answer ended: a closed loop per user. "+
			"%d requests, %d prompt tokens; oracle hit rate %s.\n\n",
			s.Seed, s.Sessions, s.SessionsPerSecond, s.Groups, s.SystemTokens, s.TurnsMin, s.TurnsMax, s.UserTokensMin, s.UserTokensMax,
			s.AnswerTokensMin, s.AnswerTokensMax, s.ThinkMeanSeconds, s.Requests, s.PromptTokens, pct(s.OracleHitRate))
	case results.TraceNoReuse:
		p("**No-reuse trace** (seed %d): %d single requests, a Poisson process of %g a second (model time), each a prompt of %d–%d random words "+
			"with no system prompt, asking for %d–%d tokens: nothing to reuse (oracle %s). *p90 after %d* leaves out the first %d requests sent, "+
			"the window `cache_affinity` fills before it detects that reuse is low (`--affinity-hit-window`); until then it places new conversations by rendezvous hashing among the instances within one load unit of the least loaded (`--affinity-new-max-imbalance`).\n\n",
			s.Seed, s.Sessions, s.SessionsPerSecond, s.UserTokensMin, s.UserTokensMax, s.AnswerTokensMin, s.AnswerTokensMax,
			pct(s.OracleHitRate), t.WarmupRequests, t.WarmupRequests)
	default:
		p("**%s trace**: %d requests.\n\n", s.Name, s.Requests)
	}
	rr := t.Run(results.AlgorithmRoundRobin)
	p("| algorithm | hit rate | of oracle | TTFT p50 | TTFT p90 | p90 vs round_robin | p90 after %d | output tokens/s | vs round_robin | failed | requests per instance | longest queue | preemptions |\n", t.WarmupRequests)
	p("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|\n")
	for _, run := range t.Runs {
		ofOracle, p90vs, tokVs := "—", "—", "—"
		if s.OracleHitRate > 0 {
			ofOracle = pct(run.HitRate / s.OracleHitRate)
		}
		if rr != nil {
			p90vs = over(run.TTFTP90Ms, rr.TTFTP90Ms)
			tokVs = over(run.OutputTokensPerSecond, rr.OutputTokensPerSecond)
		}
		per := make([]string, len(run.PerInstance))
		for i, n := range run.PerInstance {
			per[i] = strconv.Itoa(n)
		}
		p("| %s | %s | %s | %s | %s | %s | %s | %.0f | %s | %d of %d | %s | %d | %d |\n", run.Algorithm, pct(run.HitRate), ofOracle,
			msec(run.TTFTP50Ms), msec(run.TTFTP90Ms), p90vs, msec(run.TTFTP90AfterWarmupMs), run.OutputTokensPerSecond, tokVs,
			run.Failed, run.Requests, strings.Join(per, " / "), run.MaxWaiting, run.Preemptions)
	}
	p("\nAll figures of this table are *simulated*")
	if scale != 1 {
		p(" (times at the %g time scale)", scale)
	}
	p(". *Longest queue* is the most requests any instance had waiting for their prefill, sampled every 100 ms.\n\n")
}

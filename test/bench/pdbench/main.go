// Command pdbench is the Prefill/Decode benchmark that hack/bench.sh runs
// (PD_BENCH=0 skips it): the same four simulated NPUs serve one trace of
// long prompts through mindie-router, first as four MindIE Server
// simulators without roles (the baseline), then as prefill and decode
// instances given their roles with MindIE's role API, the router in PD
// mode pairing them over MindIE's protocol (req-type/req-id/d-target
// headers, the /dresult streams). Requests are streamed, and the client
// measures each one's time to first token (TTFT), time per output token
// after the first (TPOT) and the output tokens/s of the whole run; every
// PD layout is read against the baseline.
//
// Every figure comes from the simulator's timing model (pkg/simulator/mindie,
// docs/simulator.md), not from MindIE on an NPU: it shows what separating
// prefill from decode does under that model. The model's durations and the
// trace's arrival times are played TimeScale times as fast so that the run
// takes minutes; the results convert every time back to the model's.
//
// It writes JSON in the format of mindie.io/deployer/test/bench/results
// (results.PD), committed as docs/bench/pd.json; test/bench/report renders
// the "Prefill/Decode" section of docs/benchmarks.md from it. It listens on
// and dials only loopback addresses (the router on 127.0.0.1, instance i
// on 127.0.0.<2+i>).
//
//	go run ./test/bench/pdbench -out docs/bench/pd.json
//
// A quick try of one layout, without touching the committed results:
//
//	go run ./test/bench/pdbench -layouts baseline,3p1d -requests 100 -out /tmp/pd.json
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"time"

	"mindie.io/deployer/pkg/router"
	"mindie.io/deployer/pkg/simulator/mindie"
	"mindie.io/deployer/test/bench/measure"
	"mindie.io/deployer/test/bench/results"
)

// The layouts of the four NPUs. The trace is prefill-bound (prompts of
// thousands of tokens, answers of at most 128), so the primary PD layout
// gives three of them to prefill and one to decode; 2x1p1d, the 1:1 ratio
// in two groups, shows what a ratio that does not suit the trace costs.
var (
	baseline = results.PDLayout{Name: "baseline", Plain: 4}
	primary  = results.PDLayout{Name: "3p1d", Groups: 1, PrefillPerGroup: 3, DecodePerGroup: 1}
	second   = results.PDLayout{Name: "2x1p1d", Groups: 2, PrefillPerGroup: 1, DecodePerGroup: 1}
	layouts  = []results.PDLayout{baseline, primary, second}
)

// algorithm is the router's in every run: it sends a plain request, or
// picks a pair's prefill instance, by the least load.
const algorithm = router.LeastLoad

// maxAnswerTokens is the longest answer the simulated model gives (its
// natural lengths are 8–128 tokens: minNaturalLength and naturalSpread in
// pkg/simulator/mindie/model.go); every request asks for that many, so
// each answer runs to its natural end.
const maxAnswerTokens = 128

// The trace. At 1.6 requests/s of prompts of 5,000 tokens on average, the
// prefill work is nominally 1.6 s of every second at the default 5,000
// prefill tokens/s: 40% of four instances without roles, 53% of three
// prefill instances, 80% of two (the results record what the seed's
// trace gives).
var traceShape = results.PDTrace{
	Seed: 1, Requests: 300, RatePerSecond: 1.6,
	PromptTokensMin: 2000, PromptTokensMax: 8000, MaxTokens: maxAnswerTokens,
}

// The simulated instances: docs/simulator.md's defaults (KV cache, block
// size, batch), with room for the trace's prompts.
const maxInputTokens = 8192

// defaultTimeScale plays the model's durations and the trace's times four
// times as fast, so that the three runs take about three minutes on two
// cores; the figures are converted back to the model's time.
const defaultTimeScale = 0.25

// grace is how long, in the model's time, a run may go on after the last
// planned request; requests unanswered then fail.
const grace = 120 * time.Second

// goals are what the primary layout is held to; goalsWhy says where they
// come from.
var goals = results.PDGoals{
	Baseline: baseline.Name, Primary: primary.Name,
	MaxTPOTP90Ratio: 0.5, MinTokensRatio: 0.9, MaxTTFTP90Ratio: 1.5,
	Why: "TPOT p90 at most 0.5× the baseline's: in the model a decode instance's time per token is the step at its batch " +
		"(20 ms and 0.25 ms for each further request: about 21 ms at the few requests this load keeps decoding), while without roles " +
		"many requests (the *interrupted* column) have at least one prefill of 0.4–1.6 s run between two of their tokens, which on an answer of " +
		"8–128 tokens adds from a few to over a hundred milliseconds a token; the p90 lies among those, well above twice the step, so PD " +
		"must at least halve it. Output tokens/s at least 0.9× the baseline's: the arrival rate is below both layouts' capacity " +
		"(the prefills keep three prefill instances a little over half busy: the *prefill busy* column), so both serve the trace's tokens in about the trace's time; 0.9 allows " +
		"for a longer end of the run. TTFT p90 at most 1.5× the baseline's: three prefill instances carry the prefill work four " +
		"carried, so requests wait longer for their prefill; the replay of the prefills alone (*predicted " +
		"TTFT*) puts the p90 at 1.0–1.3× the baseline's over traces of this shape, and the router's estimate of the load adds a little; " +
		"beyond 1.5× PD would cost more time to first token than the model explains.",
}

func main() {
	out := flag.String("out", "docs/bench/pd.json", "where the results go")
	seed := flag.Uint64("seed", traceShape.Seed, "seed of the generated trace")
	requests := flag.Int("requests", traceShape.Requests, "requests of the trace")
	timeScale := flag.Float64("time-scale", defaultTimeScale, "multiplies the simulator's durations and the trace's times (1: the model's own pace)")
	only := flag.String("layouts", "", "comma-separated layouts to run (default: all of "+layoutNames()+"); the goals need baseline and "+primary.Name)
	note := flag.String("note", "", "a note for the results, such as what else used the machine")
	flag.Parse()
	if *timeScale <= 0 {
		fmt.Fprintln(os.Stderr, "pdbench: -time-scale must be positive")
		os.Exit(2)
	}
	selected := layouts
	if *only != "" {
		selected = nil
		names := strings.Split(*only, ",")
		for _, l := range layouts {
			if slices.Contains(names, l.Name) {
				selected = append(selected, l)
			}
		}
		if len(selected) != len(names) {
			fmt.Fprintf(os.Stderr, "pdbench: -layouts %q: known layouts are %s\n", *only, layoutNames())
			os.Exit(2)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	began := time.Now()
	logf := measure.Logger("pdbench", began)
	shape := traceShape
	shape.Seed, shape.Requests = *seed, *requests
	t, err := GenerateTrace(shape)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pdbench: trace:", err)
		os.Exit(2)
	}
	sim := simConfig(*timeScale)
	res := &results.PD{
		Version: results.PDVersion,
		Run: results.RouterRun{
			Command: strings.TrimSpace("go run ./test/bench/pdbench " + strings.Join(os.Args[1:], " ")),
			Go:      runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH,
			CPU:     measure.CPUModel(),
			CPUs:    runtime.GOMAXPROCS(0),
			Note:    *note,
		},
		Goals:     goals,
		Simulator: simSetup(sim, *timeScale),
		Router: fmt.Sprintf("one in-process router a run, its defaults (`DefaultConfig`) with `--algorithm %s`, `--authentication none`, plain HTTP, "+
			"its instances given as a static set (with role, group and MindIE id for PD instances, as `--static-backends` takes them)", algorithm),
		Trace: t.Shape,
	}
	logf("trace: %d requests, %d prompt tokens, planned %.0f s of model time, time scale %g",
		t.Shape.Requests, t.Shape.PromptTokens, t.Shape.PlannedSeconds, *timeScale)
	for _, l := range selected {
		run, err := runLayout(ctx, t, runParams{
			Layout: l, Algorithm: algorithm, Sim: sim, TimeScale: *timeScale, Grace: grace,
			PrefillPerToken: time.Duration(res.Simulator.PrefillPerTokenMicros * float64(time.Microsecond)),
		})
		if err != nil {
			fmt.Fprintf(os.Stderr, "pdbench: %s: %v\n", l.Name, err)
			os.Exit(1)
		}
		logf("%s (%s): %d/%d failed, TTFT p50 %.0f p90 %.0f ms (predicted %.0f, %.0f), TPOT p50 %.1f p90 %.1f ms, %.0f tokens/s (model time)",
			l.Name, l.Describe(), run.Failed, run.Requests, run.TTFTP50Ms, run.TTFTP90Ms, run.PredictedTTFTP50Ms, run.PredictedTTFTP90Ms,
			run.TPOTP50Ms, run.TPOTP90Ms, run.OutputTokensPerSecond)
		res.Runs = append(res.Runs, run)
	}
	res.Run.Date = time.Now().UTC().Format(time.RFC3339)
	res.Run.WallSeconds = measure.Round(time.Since(began).Seconds(), 1)
	if err := res.Save(*out); err != nil {
		fmt.Fprintln(os.Stderr, "pdbench:", err)
		os.Exit(1)
	}
	for _, g := range res.Summary.Goals {
		logf("goal %s: %.3g (bound %g) measured=%t met=%t", g.Name, g.Value, g.Bound, g.Measured, g.Met)
	}
	logf("wrote %s", *out)
}

// simConfig is the simulated instances' configuration: the model's
// defaults with room for the trace's prompts, its durations multiplied by
// scale; the role API answers at once (roles and links are set up before
// the run, not measured).
func simConfig(scale float64) mindie.Config {
	scaled := func(d time.Duration) time.Duration { return max(time.Duration(float64(d)*scale), 1) }
	return mindie.Config{
		LoadTime:                mindie.NoDelay,
		PrefillPerToken:         scaled(mindie.DefaultPrefillPerToken),
		DecodePerToken:          scaled(mindie.DefaultDecodePerToken),
		DecodePerBatchedRequest: scaled(mindie.DefaultDecodePerBatchedRequest),
		KVTransferPerToken:      scaled(mindie.DefaultKVTransferPerToken),
		MaxInputLength:          maxInputTokens,
		MaxTotalTokens:          maxInputTokens + mindie.DefaultMaxOutputLength,
		RoleSwitchTime:          mindie.NoDelay,
		LinkTime:                mindie.NoDelay,
	}
}

// simSetup records the model's parameters: the configuration's durations
// divided by the scale again.
func simSetup(sim mindie.Config, scale float64) results.PDSimulator {
	full := sim.WithDefaults()
	micros := func(d time.Duration) float64 { return measure.Round(float64(d)/float64(time.Microsecond)/scale, 2) }
	return results.PDSimulator{
		TimeScale:                scale,
		PrefillPerTokenMicros:    micros(full.PrefillPerToken),
		DecodePerTokenMs:         measure.Round(micros(full.DecodePerToken)/1000, 3),
		DecodePerBatchedMicros:   micros(full.DecodePerBatchedRequest),
		KVTransferPerTokenMicros: micros(full.KVTransferPerToken),
		BlockSize:                full.BlockSize,
		CacheBlocks:              full.CacheBlocks,
		MaxBatch:                 full.TotalSlots,
		MaxInputTokens:           full.MaxInputLength,
		MaxAnswerTokens:          maxAnswerTokens,
	}
}

func layoutNames() string {
	names := make([]string, len(layouts))
	for i, l := range layouts {
		names[i] = l.Name
	}
	return strings.Join(names, ", ")
}

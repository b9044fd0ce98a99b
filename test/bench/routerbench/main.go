// Command routerbench is the router benchmark that hack/bench.sh runs
// (ROUTER_BENCH=0 skips it). Every figure is read against a baseline
// measured in the same run:
//
//   - overhead: requests sent straight to a backend that answers at once
//     and through an in-process router (plain HTTP, --authentication none)
//     in front of it, open-loop at fixed rates with 1 KB and 200 KB
//     prompts, and closed-loop at full speed; the added latency, the most
//     requests/s and the router's CPU per request;
//   - routing quality (simulated): four in-process MindIE Server
//     simulators behind the router, a generated multi-turn chat trace and
//     a trace with no reuse, each run with cache_affinity, least_load and
//     round_robin on fresh instances; prefix-cache hit rate against the
//     oracle, TTFT, output tokens/s and failures, read against round_robin.
//
// It writes JSON in the format of mindie.io/deployer/test/bench/results
// (results.Router), committed as docs/bench/router.json; test/bench/report
// renders the "Router" section of docs/benchmarks.md from it. It listens
// on and dials only 127.0.0.1.
//
//	go run ./test/bench/routerbench -out docs/bench/router.json
//
// While working on the router, a part alone with other router flags, and a
// profile, without touching the committed results:
//
//	go run ./test/bench/routerbench -parts quality -traces no-reuse -router-flags "--load-decode-weight=0.5" -out /tmp/router.json
//	go run ./test/bench/routerbench -parts overhead -overhead-seconds 2 -cpuprofile /tmp/cpu.prof -out /tmp/router.json
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"mindie.io/deployer/pkg/router"
	"mindie.io/deployer/pkg/simulator/mindie"
	"mindie.io/deployer/test/bench/measure"
	"mindie.io/deployer/test/bench/results"
)

// goals are the targets of issue #11 (item 8).
var goals = results.RouterGoals{
	GoalRate:           1000,
	MaxAddedP50Ms:      1,
	MaxAddedP99Ms:      5,
	MinTTFTP90Speedup:  5,
	MinHitRateOfOracle: 0.9,
	MaxNoReuseRatio:    1.03,
}

// The simulated instances. The KV cache is sized so that one instance
// holds the recent conversations of a quarter of the users with room to
// spare, but not those of all of them: a router that keeps a conversation
// on one instance finds its history there, one that spreads it evicts it.
const (
	instances      = 4
	cacheBlocks    = 5000 // of 16 tokens: 80,000 tokens, 9.8 GiB of KV at 128 KiB a token
	maxInputTokens = 8192
)

// defaultTimeScale multiplies the simulator's default timings and the
// traces' times, so that the quality runs take about two and a half
// minutes on two cores instead of ten; the engine's work and the traces
// keep their proportions, so the ratios hold.
const defaultTimeScale = 0.25

// The traces' shapes: see docs/benchmarks.md's Router section, rendered
// from the results.
var (
	chatShape = results.TraceShape{
		Name: results.TraceChat, Sessions: 240, SessionsPerSecond: 4,
		Groups: 8, SystemTokens: 1000, TurnsMin: 4, TurnsMax: 12,
		UserTokensMin: 30, UserTokensMax: 300, AnswerTokensMin: 32, AnswerTokensMax: 128,
		ThinkMeanSeconds: 2,
	}
	noReuseShape = results.TraceShape{
		Name: results.TraceNoReuse, Sessions: 600, SessionsPerSecond: 15,
		UserTokensMin: 300, UserTokensMax: 1500, AnswerTokensMin: 32, AnswerTokensMax: 128,
	}
)

func main() {
	out := flag.String("out", "docs/bench/router.json", "where the results go")
	seed := flag.Uint64("seed", 1, "seed of the generated traces")
	timeScale := flag.Float64("time-scale", defaultTimeScale, "multiplies the simulator's default timings and the traces' times (1: docs/simulator.md's defaults)")
	sessionsFactor := flag.Float64("sessions", 1, "multiplies the traces' sessions (a quick try: 0.25)")
	overheadSeconds := flag.Float64("overhead-seconds", 5, "length of each open-loop overhead run")
	capSeconds := flag.Float64("capacity-seconds", 3, "length of each closed-loop capacity run")
	concurrency := flag.Int("concurrency", 16, "clients of the capacity runs")
	parts := flag.String("parts", "overhead,quality", "what to run: overhead, quality or both")
	algorithms := flag.String("algorithms", "cache_affinity,least_load,round_robin", "the algorithms the quality runs compare")
	traces := flag.String("traces", "chat,no-reuse", "the traces the quality runs use")
	note := flag.String("note", "", "a note for the results, such as what else used the machine")
	routerFlags := flag.String("router-flags", "", "mindie-router flags the routers of every run take, space-separated (default: none, DefaultConfig)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run (load generator, router and backends: one process) to this file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "routerbench: -cpuprofile:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}

	if err := setRouterFlags(strings.Fields(*routerFlags)); err != nil {
		fmt.Fprintln(os.Stderr, "routerbench: -router-flags:", err)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	began := time.Now()
	logf := measure.Logger("routerbench", began)
	res := &results.Router{
		Version: results.RouterVersion,
		Run: results.RouterRun{
			Command: "go run ./test/bench/routerbench " + strings.Join(os.Args[1:], " "),
			Go:      runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH,
			CPU:     measure.CPUModel(),
			CPUs:    runtime.GOMAXPROCS(0),
			Note:    *note,
		},
		Goals: goals,
	}
	if err := run(ctx, res, *parts, strings.Split(*traces, ","), strings.Split(*algorithms, ","), *seed, *timeScale, *sessionsFactor, overheadParams{
		PromptBytes: []int{1 << 10, 200 << 10},
		Rates:       []float64{100, 1000},
		Seconds:     *overheadSeconds,
		Concurrency: *concurrency,
		CapSeconds:  *capSeconds,
	}, logf); err != nil {
		fmt.Fprintln(os.Stderr, "routerbench:", err)
		os.Exit(1)
	}
	res.Run.Date = time.Now().UTC().Format(time.RFC3339)
	res.Run.WallSeconds = measure.Round(time.Since(began).Seconds(), 1)
	if err := res.Save(*out); err != nil {
		fmt.Fprintln(os.Stderr, "routerbench:", err)
		os.Exit(1)
	}
	for _, g := range res.Summary.Goals {
		logf("goal %s: %.3g (bound %g) met=%t", g.Name, g.Value, g.Bound, g.Met)
	}
	logf("wrote %s", *out)
}

func run(ctx context.Context, res *results.Router, parts string, traces, algorithms []string, seed uint64, timeScale, sessionsFactor float64, op overheadParams, logf func(string, ...any)) error {
	if strings.Contains(parts, "overhead") {
		o, err := measureOverhead(ctx, op, router.CacheAffinity, logf)
		if err != nil {
			return fmt.Errorf("overhead: %w", err)
		}
		res.Over = o
	}
	if !strings.Contains(parts, "quality") {
		return nil
	}
	scaled := func(d time.Duration) time.Duration { return time.Duration(float64(d) * timeScale) }
	sim := mindie.Config{
		LoadTime:                mindie.NoDelay,
		PrefillPerToken:         scaled(mindie.DefaultPrefillPerToken),
		DecodePerToken:          scaled(mindie.DefaultDecodePerToken),
		DecodePerBatchedRequest: scaled(mindie.DefaultDecodePerBatchedRequest),
		CacheBlocks:             cacheBlocks,
		MaxInputLength:          maxInputTokens,
		MaxTotalTokens:          maxInputTokens + mindie.DefaultMaxOutputLength,
	}
	full := sim.WithDefaults()
	res.Quality.Simulator = results.SimulatorSetup{
		Instances:              instances,
		TimeScale:              timeScale,
		PrefillPerTokenMicros:  float64(full.PrefillPerToken) / float64(time.Microsecond),
		DecodePerTokenMs:       float64(full.DecodePerToken) / float64(time.Millisecond),
		DecodePerBatchedMicros: float64(full.DecodePerBatchedRequest) / float64(time.Microsecond),
		BlockSize:              full.BlockSize,
		CacheBlocks:            full.CacheBlocks,
		MaxBatch:               full.TotalSlots,
		MaxInputTokens:         full.MaxInputLength,
		Why: fmt.Sprintf("Why this KV cache and load: %d blocks of %d tokens an instance hold the recent conversations of a quarter of the chat trace's users "+
			"with room to spare, but not those of all of them, so an algorithm that spreads a conversation over the instances evicts its history "+
			"and prefills it again; and the chat trace's load, below the four instances' prefill capacity when prompts hit the cache, is above it "+
			"when they do not, so round_robin's prefill queues grow while cache_affinity's stay short.", full.CacheBlocks, full.BlockSize),
	}
	res.Quality.Router = "the router's defaults (`DefaultConfig`), `--algorithm` set per run, `--authentication none`, plain HTTP"
	if routerFlagsText != "" {
		res.Quality.Router += ", and `" + routerFlagsText + "`"
	}
	for _, shape := range []results.TraceShape{chatShape, noReuseShape} {
		if !slices.Contains(traces, shape.Name) {
			continue
		}
		shape.Seed = seed
		shape.Sessions = max(1, int(float64(shape.Sessions)*sessionsFactor))
		gen := GenerateChat
		if shape.Name == results.TraceNoReuse {
			gen = GenerateNoReuse
		}
		t, err := gen(shape)
		if err != nil {
			return fmt.Errorf("trace %s: %w", shape.Name, err)
		}
		TraceOracle(t, full.BlockSize)
		t.Shape.OracleHitRate = measure.Round(t.Shape.OracleHitRate, 4)
		logf("trace %s: %d requests, %d prompt tokens, oracle hit rate %.3f, planned %.0fs",
			t.Shape.Name, t.Shape.Requests, t.Shape.PromptTokens, t.Shape.OracleHitRate, t.Shape.PlannedSeconds)
		tr := results.TraceResult{Shape: t.Shape, WarmupRequests: router.DefaultAffinityHitWindow}
		for _, name := range algorithms {
			alg := router.Algorithm(name)
			r, err := runTrace(ctx, t, runParams{
				Algorithm: alg, Sim: sim, Instances: instances, TimeScale: timeScale, Grace: scaled(120 * time.Second),
				Warmup: router.DefaultAffinityHitWindow,
			})
			if err != nil {
				return fmt.Errorf("trace %s, %s: %w", shape.Name, alg, err)
			}
			logf("trace %s, %s: %d/%d failed, hit %.3f, TTFT p50 %.0f p90 %.0f ms, %.0f tokens/s, per instance %v, max waiting %d, preemptions %d",
				shape.Name, alg, r.Failed, r.Requests, r.HitRate, r.TTFTP50Ms, r.TTFTP90Ms, r.OutputTokensPerSecond, r.PerInstance, r.MaxWaiting, r.Preemptions)
			tr.Runs = append(tr.Runs, r)
		}
		res.Quality.Traces = append(res.Quality.Traces, tr)
	}
	return nil
}

// routerConfig is the configuration every router of the run starts from:
// DefaultConfig with -router-flags (routerFlagsText).
var (
	routerConfig    = router.DefaultConfig()
	routerFlagsText string
)

// setRouterFlags applies mindie-router flags to routerConfig.
func setRouterFlags(args []string) error {
	fs := flag.NewFlagSet("router", flag.ContinueOnError)
	cfg := router.DefaultConfig()
	cfg.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	routerConfig, routerFlagsText = cfg, strings.Join(args, " ")
	return nil
}

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mindie.io/deployer/test/bench/results"
)

// sampleRouter is a run where the 1 KiB overhead goals are met, the 200 KiB
// ones missed, cache_affinity's TTFT p90 is 4× round_robin's (a miss of
// 1×) and the no-reuse trace is 10% worse than round_robin.
const sampleRouter = `{
  "version": 1,
  "run": {"date": "2026-01-02T03:04:05Z", "command": "go run ./test/bench/routerbench", "go": "go1.26 linux/amd64", "cpu": "Test CPU", "cpus": 2, "wallSeconds": 200},
  "goals": {"goalRate": 1000, "maxAddedP50Ms": 1, "maxAddedP99Ms": 5, "minTTFTP90Speedup": 5, "minHitRateOfOracle": 0.9, "maxNoReuseRatio": 1.03},
  "overhead": {
    "backend": "an echo server", "algorithm": "cache_affinity",
    "loads": [
      {"promptBytes": 1024, "rate": 1000, "seconds": 5,
       "direct": {"requests": 5000, "p50Ms": 0.5, "p99Ms": 1.5, "cpuSeconds": 1},
       "routed": {"requests": 5000, "p50Ms": 0.7, "p99Ms": 2.5, "cpuSeconds": 1.5}},
      {"promptBytes": 204800, "rate": 1000, "seconds": 5,
       "direct": {"requests": 5000, "p50Ms": 0.7, "p99Ms": 3},
       "routed": {"requests": 5000, "failed": 12, "p50Ms": 531, "p99Ms": 957}}
    ],
    "capacity": [{"promptBytes": 1024, "concurrency": 16, "seconds": 3, "directRate": 50000, "routedRate": 12500, "directCPUSeconds": 6, "routedCPUSeconds": 6}]
  },
  "quality": {
    "simulator": {"instances": 4, "timeScale": 0.25, "prefillPerTokenMicros": 50, "decodePerTokenMs": 5, "decodePerBatchedRequestMicros": 62.5,
                  "blockSize": 16, "cacheBlocks": 5000, "maxBatch": 200, "maxInputTokens": 8192, "why": "WHY-THIS-CACHE"},
    "router": "the defaults",
    "traces": [
      {"shape": {"name": "chat", "seed": 1, "sessions": 240, "sessionsPerSecond": 4, "groups": 8, "systemTokens": 1000, "turnsMin": 4, "turnsMax": 12,
                 "userTokensMin": 30, "userTokensMax": 300, "answerTokensMin": 32, "answerTokensMax": 128, "thinkMeanSeconds": 2,
                 "requests": 1956, "promptTokens": 4252587, "oracleSharedTokens": 3759287, "oracleHitRate": 0.884},
       "warmupRequests": 200,
       "runs": [
         {"algorithm": "cache_affinity", "requests": 1956, "hitRate": 0.8619, "ttftP50Ms": 19, "ttftP90Ms": 100, "outputTokensPerSecond": 4000, "perInstance": [1, 2, 3, 4]},
         {"algorithm": "round_robin", "requests": 1956, "failed": 8, "hitRate": 0.598, "ttftP50Ms": 64, "ttftP90Ms": 400, "outputTokensPerSecond": 3000, "perInstance": [5, 6, 7, 8]}
       ]},
      {"shape": {"name": "no-reuse", "seed": 1, "sessions": 600, "sessionsPerSecond": 15, "turnsMin": 1, "turnsMax": 1,
                 "userTokensMin": 300, "userTokensMax": 1500, "answerTokensMin": 32, "answerTokensMax": 128, "requests": 600},
       "warmupRequests": 200,
       "runs": [
         {"algorithm": "cache_affinity", "requests": 600, "ttftP50Ms": 69, "ttftP90Ms": 110, "ttftP90AfterWarmupMs": 95},
         {"algorithm": "round_robin", "requests": 600, "ttftP50Ms": 60, "ttftP90Ms": 100, "ttftP90AfterWarmupMs": 98}
       ]}
    ]
  }
}`

func loadRouter(t *testing.T) *results.Router {
	t.Helper()
	path := filepath.Join(t.TempDir(), "router.json")
	if err := os.WriteFile(path, []byte(sampleRouter), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := results.LoadRouter(path)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRenderRouter(t *testing.T) {
	doc := renderRouter(loadRouter(t))
	for _, want := range []string{
		"\n## Router\n",
		"| added latency p50, 1 KiB prompts at 1000/s | 0.20 ms | ≤ 1.00 ms: met | measured (no simulator) |",
		"| added latency p99, 200 KiB prompts at 1000/s | 954 ms | ≤ 5.00 ms: **missed** by 949 ms | measured (no simulator) |",
		"| chat: round_robin TTFT p90 / cache_affinity TTFT p90 | 4.00× | ≥ 5.00×: **missed** by 1.00× | *simulated* |",
		"| chat: cache_affinity hit rate / oracle | 97.5% | ≥ 90.0%: met | *simulated* |",
		"| no-reuse: cache_affinity TTFT p90 / round_robin TTFT p90 | 1.10× | ≤ 1.03×: **missed** by 0.07× | *simulated* |",
		// The overhead table: added latencies, ratio, failures, CPU per request.
		"| 1 KiB | 1000/s | 0.50 ms | 1.50 ms | 0.70 ms | 2.50 ms | 0.20 ms | 1.00 ms | 1.67× | 0 + 0 | 100 µs |",
		"| 200 KiB | 1000/s |",
		"| 1 KiB | 16 | 50000/s | 12500/s | 0.25× | 0 | 120 µs |",
		"### Routing quality (simulated)",
		"multiplied by **0.25**",
		"WHY-THIS-CACHE",
		"**Chat trace** (seed 1): 240 users",
		"| cache_affinity | 86.2% | 97.5% | 19.0 ms | 100 ms | 0.25× | 0.00 ms | 4000 | 1.33× | 0 of 1956 | 1 / 2 / 3 / 4 |",
		"| round_robin | 59.8% | 67.6% | 64.0 ms | 400 ms | 1.00× |",
		"**No-reuse trace** (seed 1): 600 single requests",
		"| cache_affinity | 0.0% | — | 69.0 ms | 110 ms | 1.10× | 95.0 ms |",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("the section lacks %q", want)
		}
	}
	// Every table of the quality runs says its figures are simulated.
	if n := strings.Count(doc, "All figures of this table are *simulated*"); n != 2 {
		t.Errorf("%d quality tables labelled simulated, want 2", n)
	}
	if t.Failed() {
		t.Log(doc)
	}
}

func TestRenderRouterWithoutQuality(t *testing.T) {
	r := loadRouter(t)
	r.Quality = results.Quality{}
	r.Derive()
	doc := renderRouter(r)
	if strings.Contains(doc, "Routing quality") {
		t.Error("a quality section without quality runs")
	}
	if !strings.Contains(doc, "| chat: cache_affinity hit rate / oracle | — | ≥ 90.0%: not measured | *simulated* |") {
		t.Errorf("an unmeasured goal is not shown as such:\n%s", doc)
	}
}

func TestRunRendersRouterSection(t *testing.T) {
	dir := t.TempDir()
	router := filepath.Join(dir, "router.json")
	if err := os.WriteFile(router, []byte(sampleRouter), 0o644); err != nil {
		t.Fatal(err)
	}
	apiserver := filepath.Join(dir, "apiserver.txt")
	if err := os.WriteFile(apiserver, []byte("date: 2026-01-02 03:04 UTC\nBenchmarkCreateInferServer-2 100 852000 ns/op\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "benchmarks.md")
	if err := run(paths{apiserverIn: apiserver, routerIn: router, benchmarksOut: out}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "\n## Router\n") || !strings.HasPrefix(string(data), "# Benchmarks") {
		t.Fatal("docs/benchmarks.md lacks the Router section")
	}
	// A missing results file renders no section and is no error.
	if err := run(paths{apiserverIn: apiserver, routerIn: filepath.Join(dir, "none.json"), benchmarksOut: out}); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(out); strings.Contains(string(data), "## Router") {
		t.Fatal("a Router section without results")
	}
}

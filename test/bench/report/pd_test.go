package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mindie.io/deployer/test/bench/results"
)

// samplePD is a run where PD's TPOT and throughput goals are met, its TTFT
// goal missed (1.60× against at most 1.5×) and the second layout failed
// two requests, which misses the failures goal.
const samplePD = `{
  "version": 1,
  "run": {"date": "2026-01-02T03:04:05Z", "command": "go run ./test/bench/pdbench", "go": "go1.26 linux/amd64", "cpu": "Test CPU", "cpus": 2, "wallSeconds": 150},
  "goals": {"baseline": "baseline", "primary": "3p1d", "maxTPOTP90Ratio": 0.5, "minTokensRatio": 0.9, "maxTTFTP90Ratio": 1.5, "why": "WHY-THESE-BOUNDS"},
  "simulator": {"timeScale": 0.25, "prefillPerTokenMicros": 200, "decodePerTokenMs": 20, "decodePerBatchedRequestMicros": 250,
                "kvTransferPerTokenMicros": 5.24, "blockSize": 16, "cacheBlocks": 16384, "maxBatch": 200, "maxInputTokens": 8192, "maxAnswerTokens": 128},
  "router": "ROUTER-SETUP",
  "trace": {"seed": 1, "requests": 300, "ratePerSecond": 1.6, "promptTokensMin": 2000, "promptTokensMax": 8000, "maxTokens": 128,
            "promptTokens": 1500000, "plannedSeconds": 187.5},
  "runs": [
    {"layout": {"name": "baseline", "plain": 4}, "algorithm": "least_load", "requests": 300, "completionTokens": 20000,
     "ttftP50Ms": 1000, "ttftP90Ms": 1500, "ttftP99Ms": 2000, "tpotP50Ms": 20.5, "tpotP90Ms": 70, "tpotP99Ms": 300, "tpotRequests": 300,
     "maxGapMs": 6000, "interruptedShare": 0.42, "interruptGapMs": 200, "seconds": 180, "outputTokensPerSecond": 111, "predictedTTFTP50Ms": 990, "predictedTTFTP90Ms": 1450, "prefillBusy": 0.4,
     "instances": [{"name": "sim-0", "prefilled": 75, "decoded": 75, "generatedTokens": 5000, "maxWaiting": 1, "maxRunning": 6}]},
    {"layout": {"name": "3p1d", "groups": 1, "prefillPerGroup": 3, "decodePerGroup": 1}, "algorithm": "least_load", "requests": 300, "completionTokens": 20000,
     "ttftP50Ms": 1200, "ttftP90Ms": 2400, "tpotP50Ms": 21, "tpotP90Ms": 23.1, "tpotP99Ms": 26, "tpotRequests": 300,
     "maxGapMs": 90, "interruptGapMs": 200, "seconds": 180, "outputTokensPerSecond": 110, "predictedTTFTP50Ms": 1150, "predictedTTFTP90Ms": 1850, "prefillBusy": 0.533,
     "instances": [{"name": "g0-p0", "role": "prefill", "prefilled": 100, "generatedTokens": 100, "maxWaiting": 3, "maxRunning": 1},
                   {"name": "g0-d0", "role": "decode", "decoded": 300, "generatedTokens": 19700, "maxRunning": 7}]},
    {"layout": {"name": "2x1p1d", "groups": 2, "prefillPerGroup": 1, "decodePerGroup": 1}, "algorithm": "least_load", "requests": 300, "failed": 2,
     "ttftP50Ms": 1900, "ttftP90Ms": 4500, "tpotP50Ms": 20.7, "tpotP90Ms": 22.3, "outputTokensPerSecond": 108,
     "predictedTTFTP90Ms": 4400, "prefillBusy": 0.8}
  ]
}`

func loadPD(t *testing.T) *results.PD {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pd.json")
	if err := os.WriteFile(path, []byte(samplePD), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := results.LoadPD(path)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRenderPD(t *testing.T) {
	doc := renderPD(loadPD(t))
	for _, want := range []string{
		"\n## Prefill/Decode\n",
		"**Every figure of this section is *simulated*",
		// Goals: met, and missed with by how much, never hidden.
		"| 3p1d TPOT p90 / baseline TPOT p90 | 0.33× | ≤ 0.50×: met | *simulated* |",
		"| 3p1d output tokens/s / baseline output tokens/s | 0.99× | ≥ 0.90×: met | *simulated* |",
		"| 3p1d TTFT p90 / baseline TTFT p90 | 1.60× | ≤ 1.50×: **missed** by 0.10× | *simulated* |",
		"| failed requests, all runs | 2 | ≤ 0: **missed** by 2 | *simulated* |",
		"Why these bounds: WHY-THESE-BOUNDS",
		// The model's parameters and the time scale.
		"prefill 200 µs a prompt token (5000 tokens/s)",
		"a decode step 20 ms plus 250 µs per further request",
		"KV transfer to a decode instance 5.24 µs a prompt token (26.2 ms for the trace's mean prompt of 5000 tokens)",
		"at most 128 tokens",
		"at **0.25×** their length",
		"**Trace** (seed 1): 300 requests arriving as a Poisson process of 1.6 a second",
		"the prompts take 1.60 s of prefill for every second of the trace",
		"**Router**: ROUTER-SETUP",
		"- `baseline`: 4 instances without roles; the baseline every figure is read against.",
		"- `3p1d`: 3 prefill + 1 decode in one group; the goals hold for it.",
		"- `2x1p1d`: 2 groups of 1 prefill + 1 decode; shown beside, without goals.",
		// The results and the ratios.
		"| `baseline` | 40.0% | 1.00 s | 1.50 s | 990 ms / 1.45 s | 20.5 ms | 70.0 ms | 300 ms | 6.00 s | 42.0% | 111 | 0 of 300 |",
		"| `3p1d` | 53.3% | 1.20 s | 2.40 s | 1.15 s / 1.85 s | 21.0 ms | 23.1 ms | 26.0 ms | 90.0 ms | 0.0% | 110 | 0 of 300 |",
		"waited more than 200 ms (half the trace's shortest prefill)",
		"The tail is the 42.0% of requests a prefill interrupted",
		"| `2x1p1d` | 80.0% |",
		"| `3p1d` | 1.20× | 1.60× | 1.02× | 0.33× | 0.99× |",
		"| `2x1p1d` | 1.90× | 3.00× | 1.01× | 0.32× | 0.97× |",
		"| `3p1d` | g0-d0 | decode | 0 | 300 | 19700 | 0 | 7 | 0 |",
		"| `baseline` | sim-0 | — | 75 | 75 | 5000 | 1 | 6 | 0 |",
		// The reading, from the figures.
		"the median request decodes at about the step, 58.0% of the requests having seen no prefill while they decoded",
		"TTFT p90 2.40 s against 1.50 s (1.60×)",
		"With this ratio PD's TTFT is higher",
		"`2x1p1d`, 2 groups of 1 prefill + 1 decode, leaves 2 instances to prefill, 80.0% busy",
		"(110 against 111 tokens/s, 0.99×)",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("the section lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(doc)
	}
}

func TestRenderPDReadsTheFigures(t *testing.T) {
	r := loadPD(t)
	// A baseline whose median request is interrupted, and a PD layout
	// with the lower TTFT: the words follow the figures.
	r.Runs[0].TPOTP50Ms, r.Runs[1].TTFTP90Ms = 40, 1400
	r.Derive()
	doc := renderPD(r)
	for _, want := range []string{"even the median request has prefills run between its tokens", "With this ratio PD's TTFT is lower", "| 3p1d TTFT p90 / baseline TTFT p90 | 0.93× | ≤ 1.50×: met |"} {
		if !strings.Contains(doc, want) {
			t.Errorf("the section lacks %q", want)
		}
	}
	// Without a baseline: no ratios, the goals not measured.
	r.Runs = r.Runs[1:]
	r.Derive()
	doc = renderPD(r)
	if strings.Contains(doc, "Against the baseline") || !strings.Contains(doc, "| 3p1d TPOT p90 / baseline TPOT p90 | — | ≤ 0.50×: not measured |") ||
		!strings.Contains(doc, "nothing to compare") {
		t.Errorf("without a baseline:\n%s", doc)
	}
}

func TestRunRendersPDSection(t *testing.T) {
	dir := t.TempDir()
	apiserver := filepath.Join(dir, "apiserver.txt")
	if err := os.WriteFile(apiserver, []byte("date: 2026-01-02 03:04 UTC\nBenchmarkCreateInferServer-2 100 852000 ns/op\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "benchmarks.md")
	// No pd.json beside apiserver.txt: the section says it has not run.
	if err := run(paths{apiserverIn: apiserver, benchmarksOut: out}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(out)
	if !strings.Contains(string(data), "\n## Prefill/Decode\n") || !strings.Contains(string(data), "**has not run**") {
		t.Fatalf("without results:\n%s", data)
	}
	if err := os.WriteFile(filepath.Join(dir, "pd.json"), []byte(samplePD), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(paths{apiserverIn: apiserver, benchmarksOut: out}); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(out)
	if strings.Contains(string(data), "has not run") || !strings.Contains(string(data), "### Results (simulated)") {
		t.Fatalf("with results:\n%s", data)
	}
	// A results file of another version is an error, not a silent gap.
	if err := os.WriteFile(filepath.Join(dir, "pd.json"), []byte(strings.Replace(samplePD, `"version": 1`, `"version": 2`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(paths{apiserverIn: apiserver, benchmarksOut: out}); err == nil {
		t.Fatal("rendered results of version 2")
	}
}

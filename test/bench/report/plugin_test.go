package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mindie.io/deployer/test/bench/results"
)

// samplePlugin is a run where status meets both goals (median 0.20 s,
// 0.50× its baseline) and get misses both (median 1.20 s, 2.00×).
const samplePlugin = `{
  "version": 1,
  "run": {"date": "2026-01-02T03:04:05Z", "command": "hack/plugin-bench.sh", "go": "go1.26 linux/amd64", "cpu": "Test CPU", "cpus": 2, "wallSeconds": 200},
  "goals": {"statusSeconds": 0.5, "statusRatio": 1, "getSeconds": 1, "getRatio": 1.5, "why": "WHY-THESE-BOUNDS"},
  "setup": {"nodes": 32, "npusPerNode": 8, "instances": 256, "statusServer": "metadata: {name: pb-status}\nspec: {replicas: 256}",
            "servers": 1000, "listServer": "metadata: {name: pb-<i>}\nspec: {replicas: 1, paused: true}", "runs": 3,
            "readySeconds": 61.5, "observedSeconds": 31.2, "kubectl": "v1.36.3"},
  "status": {
    "measured": {"command": "kubectl mindie status pb-status -n plugin-bench", "seconds": [0.3, 0.2, 0.1], "cpuSeconds": [0.1, 0.12, 0.11],
                 "outputBytes": 40960, "outputLines": 540,
                 "requests": ["GET /apis/infer.mindie.io/v1alpha1/namespaces/plugin-bench/inferservers/pb-status 200, 5 ms", "GET /api/v1/namespaces/plugin-bench/events 200, 9 ms"]},
    "baseline": {"command": "kubectl get pods -n plugin-bench -l 'infer.mindie.io/server=pb-status' -o json", "seconds": [0.4, 0.35, 0.5],
                 "cpuSeconds": [0.3, 0.3, 0.3], "outputBytes": 2097152, "outputLines": 60000, "requests": ["GET /api/v1/namespaces/plugin-bench/pods 200, 40 ms"]}
  },
  "get": {
    "measured": {"command": "kubectl mindie get -n plugin-bench-list", "seconds": [1.2, 1.1, 1.3], "cpuSeconds": [0.2, 0.2, 0.2], "outputBytes": 70000, "outputLines": 1001},
    "baseline": {"command": "kubectl get inferservers -n plugin-bench-list", "seconds": [0.6, 0.6, 0.7], "cpuSeconds": [0.1, 0.1, 0.1], "outputBytes": 70000, "outputLines": 1001}
  }
}`

func loadPlugin(t *testing.T, doc string) *results.Plugin {
	t.Helper()
	path := filepath.Join(t.TempDir(), "plugin.json")
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := results.LoadPlugin(path)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRenderPlugin(t *testing.T) {
	doc := renderPlugin(loadPlugin(t, samplePlugin))
	for _, want := range []string{
		"\n## Plugin at scale\n",
		"- Command: `hack/plugin-bench.sh`",
		"; kubectl v1.36.3\n",
		// Goals: met, and missed by how much, in seconds and as ratios.
		"| `kubectl mindie status` of a 256-instance InferServer | 0.20 s | ≤ 0.50 s: met |",
		"| `kubectl mindie status` / `kubectl get pods -o json` of its 256 pods | 0.50× | ≤ 1.00×: met |",
		"| `kubectl mindie get` of 1000 InferServers | 1.20 s | ≤ 1.00 s: **missed** by 0.20 s |",
		"| `kubectl mindie get` / `kubectl get inferservers` of 1000 InferServers | 2.00× | ≤ 1.50×: **missed** by 0.50× |",
		"Why these bounds: WHY-THESE-BOUNDS",
		// The runs.
		"| `kubectl mindie status pb-status -n plugin-bench` (measured) | 3 | 200 ms | 100 ms – 300 ms | 110 ms | 40 KiB, 540 lines | 2 |",
		"| `kubectl get pods -n plugin-bench -l 'infer.mindie.io/server=pb-status' -o json` (baseline; ratio 0.50×) | 3 | 400 ms | 350 ms – 500 ms | 300 ms | 2.0 MiB, 60000 lines | 1 |",
		"| `kubectl mindie get -n plugin-bench-list` (measured) | 3 | 1.20 s | 1.10 s – 1.30 s | 200 ms | 68 KiB, 1001 lines | — |",
		"- `kubectl mindie status pb-status -n plugin-bench`: `GET /apis/infer.mindie.io/v1alpha1/namespaces/plugin-bench/inferservers/pb-status 200, 5 ms`; `GET /api/v1/namespaces/plugin-bench/events 200, 9 ms`\n",
		"- `kubectl mindie get -n plugin-bench-list`: not recorded\n",
		// The method.
		"The cluster has 32 simulated nodes of 8 NPUs. *Status* reads one InferServer of 256 single-NPU instances,\n\n    metadata: {name: pb-status}\n    spec: {replicas: 256}\n",
		"(61.5 s after its create)",
		"    metadata: {name: pb-<i>}\n    spec: {replicas: 1, paused: true}\n",
		"created at once (31.2 s until the controller had observed every one)",
		"then 3 times each, in turn",
		// The reading.
		"`kubectl mindie status` of 256 instances took 200 ms (median; at most 300 ms), within the goal of 500 ms, against 400 ms for `kubectl get pods",
		"`kubectl mindie get` of 1000 InferServers took 1.20 s (median; at most 1.30 s), over the goal of 1.00 s",
		"0.50× the baseline's time, with 110 ms of CPU against 300 ms, 2 against 1 API requests, printing 40 KiB, 540 lines against 2.0 MiB, 60000 lines.",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("the section lacks %q", want)
		}
	}
	if strings.Contains(doc, " \n") {
		t.Error("a line ends in a space")
	}
	if t.Failed() {
		t.Log(doc)
	}
}

func TestRenderPluginPartial(t *testing.T) {
	r := loadPlugin(t, samplePlugin)
	r.Get, r.Setup.Note = nil, "Failed: get: timeout."
	r.Derive()
	doc := renderPlugin(r)
	if !strings.Contains(doc, "| `kubectl mindie get` of 1000 InferServers | — | ≤ 1.00 s: not measured |") ||
		!strings.Contains(doc, "- Note: Failed: get: timeout.") || strings.Contains(doc, "`kubectl mindie get` of 1000 InferServers took") {
		t.Errorf("without get:\n%s", doc)
	}
	// A run over the bound beside a median within it is said.
	r.Status.Measured.Seconds = []float64{0.1, 0.2, 0.7}
	r.Derive()
	if doc := renderPlugin(r); !strings.Contains(doc, "took 200 ms (median; at most 700 ms), within the goal of 500 ms (1 of its 3 runs over it,") {
		t.Errorf("a run over the bound:\n%s", doc)
	}
	r.Status = nil
	r.Derive()
	if doc := renderPlugin(r); !strings.Contains(doc, "| nothing was measured |") || !strings.Contains(doc, "Nothing was measured: there is nothing to read.") {
		t.Errorf("with nothing:\n%s", doc)
	}
}

func TestRunRendersPluginSection(t *testing.T) {
	dir := t.TempDir()
	apiserver := filepath.Join(dir, "apiserver.txt")
	if err := os.WriteFile(apiserver, []byte("date: 2026-01-02 03:04 UTC\nBenchmarkCreateInferServer-2 100 852000 ns/op\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "benchmarks.md")
	// No plugin.json beside apiserver.txt: the section says it has not
	// been run.
	if err := run(paths{apiserverIn: apiserver, benchmarksOut: out}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(out)
	if !strings.Contains(string(data), "\n## Plugin at scale\n") || !strings.Contains(string(data), "**has no results yet**: there is no `docs/bench/plugin.json`") {
		t.Fatalf("without results:\n%s", data)
	}
	if err := os.WriteFile(filepath.Join(dir, "plugin.json"), []byte(samplePlugin), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(paths{apiserverIn: apiserver, benchmarksOut: out}); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(out)
	if strings.Contains(string(data), "has no results yet") || !strings.Contains(string(data), "### Runs\n") {
		t.Fatalf("with results:\n%s", data)
	}
	// A results file of another version is an error, not a silent gap.
	if err := os.WriteFile(filepath.Join(dir, "plugin.json"), []byte(strings.Replace(samplePlugin, `"version": 1`, `"version": 2`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(paths{apiserverIn: apiserver, benchmarksOut: out}); err == nil {
		t.Fatal("rendered results of version 2")
	}
}

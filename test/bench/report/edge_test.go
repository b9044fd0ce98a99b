package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mindie.io/deployer/test/bench/results"
)

// sampleEdge is a run on 1,000 nodes where the job took 2.5 times the
// baseline (missed) and mindie-apiserver grew by 120 MiB (met).
const sampleEdge = `{
  "version": 1,
  "run": {"date": "2026-01-02T03:04:05Z", "command": "hack/edge-bench.sh", "go": "go1.26 linux/amd64", "cpu": "Test CPU", "cpus": 2, "wallSeconds": 300},
  "goals": {"maxJobToDirectRatio": 1.5, "maxRSSGrowthMiB": 150, "why": "WHY-THESE-BOUNDS"},
  "setup": {"nodes": 1000, "architecture": "arm64", "maxConcurrentNodes": 100, "instancesPerNode": 1,
            "job": "kind: EdgeDeployment\nspec:\n  maxConcurrentNodes: 100\n", "creators": 100, "clientQPS": 100, "clientBurst": 200,
            "timeoutSeconds": 900, "sampleMillis": 1000, "progressSeconds": 5, "idleSeconds": 20, "settleSeconds": 15},
  "direct": {"pods": 1000, "createdSeconds": 10.2, "scheduledSeconds": 25, "readySeconds": 40, "deleteSeconds": 12, "peakRSSMiB": 61,
             "progress": [{"seconds": 0, "pods": 0, "scheduled": 0, "ready": 0, "rssMiB": 60},
                          {"seconds": 40, "pods": 1000, "scheduled": 1000, "ready": 1000, "rssMiB": 61}]},
  "job": {"phase": "Succeeded", "targets": 1000, "succeeded": 1000, "nodesSucceeded": 1000, "firstPodSeconds": 0.5,
          "podsReadySeconds": 99, "succeededSeconds": 100, "completionSeconds": 100, "deleteSeconds": 15, "statusBytes": 358400,
          "statusWrites": 240, "statusConflicts": 3, "cpuSeconds": 42, "deleteCPUSeconds": 4,
          "progress": [{"seconds": 0, "pods": 0, "scheduled": 0, "ready": 0, "rssMiB": 60},
                       {"seconds": 50, "pods": 600, "scheduled": 600, "ready": 500, "nodesSucceeded": 480, "nodesDeploying": 100, "rssMiB": 150},
                       {"seconds": 100, "pods": 1000, "scheduled": 1000, "ready": 1000, "nodesSucceeded": 1000, "rssMiB": 180}]},
  "memory": {"idleMiB": 60, "peakMiB": 180, "afterMiB": 90, "hwmMiB": 185, "samples": 200},
  "throttling": [{"component": "ascend-sim", "lines": 30, "medianWaitSeconds": 5, "maxWaitSeconds": 11.8},
                 {"component": "kube-scheduler", "lines": 2, "medianWaitSeconds": 4.1, "maxWaitSeconds": 7.3},
                 {"component": "mindie-apiserver", "lines": 0}]
}`

func loadEdge(t *testing.T, doc string) *results.Edge {
	t.Helper()
	path := filepath.Join(t.TempDir(), "edge.json")
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := results.LoadEdge(path)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRenderEdge(t *testing.T) {
	doc := renderEdge(loadEdge(t, sampleEdge))
	for _, want := range []string{
		"\n## EdgeDeployment at 1,000 nodes\n",
		"**Measured on simulated nodes and pods**",
		"- Command: `hack/edge-bench.sh`",
		// The goals, each with its figure, its bound and the verdict.
		"| job: create → Succeeded / direct: first create → all Ready | 100 s | 40.0 s | 2.50× | ≤ 1.50×: **missed** by 1.00× | *simulated nodes and pods* |",
		"| mindie-apiserver: peak RSS during the job − idle RSS (MiB) | 180.0 MiB peak | 60.0 MiB idle | +120.0 MiB | ≤ +150.0 MiB: met | the real process, on *simulated nodes and pods* |",
		"Why these bounds: WHY-THESE-BOUNDS",
		// The method: the job as YAML, the baseline's client.
		"    kind: EdgeDeployment\n    spec:\n      maxConcurrentNodes: 100\n",
		"100 under way at once, through one client limited to 100 requests/s (burst 200)",
		"from the baseline's start to the end: ascend-sim 30 (waits median 5.00 s, up to 11.8 s); kube-scheduler 2 (waits median 4.10 s, up to 7.30 s); mindie-apiserver none",
		"(30 sampled log lines, waits median 5.00 s, up to 11.8 s): the simulated kubelets' writes",
		"1,000 simulated edge nodes (`mindie.io/edge=true`, arm64",
		// The results.
		"| direct, 1,000 pods | — | 10.2 s | 25.0 s | 40.0 s | — | 12.0 s | 61.0 MiB |",
		"| job, 1,000 nodes, 100 at a time | 0.50 s | — | — | 99.0 s | 100 s | 15.0 s | 180.0 MiB |",
		"The job ended Succeeded with 1,000 targets: 1,000 succeeded, 0 failed, 0 timed out",
		"idle 60.0 MiB, peak during the job 180.0 MiB, 90.0 MiB after its pods were gone (high-water mark of the process 185.0 MiB; 200 samples)",
		"42.0 s from the job's create to Succeeded (42.0 ms a node), 4.0 s during its deletion",
		"350 KiB (one `status.nodes` entry per node); its status was written 240 times from its create to Succeeded, 3 of them refused",
		// The progress.
		"| 50.0 | 480 | 100 | 600 | 500 | 150.0 MiB |",
		"| 40.0 | 1000 | 1000 | 1000 | 61.0 MiB |",
		// The reading, from the figures.
		"The job deployed 1,000 nodes in 100 s (10.0 nodes/s); created directly, the same pods were all Ready in 40.0 s (25.0 pods/s): 2.50× as long, which misses the goal of 1.50×.",
		"With 100 nodes at a time the job needs at least 10 rounds of a pod's startup; it took 10.0 s a round on average",
		"Its last pod was Ready at 99.0 s and the phase was Succeeded at 100 s: 1.00 s for the controller",
		"Deleting the job took 15.0 s until it and its pods were gone, against 12.0 s for the direct pods",
		"(+120.0 MiB, goal +150.0 MiB; 123 KiB a node)",
		"and held 90.0 MiB 15.0 s after the job and its pods were gone (+30.0 MiB over idle",
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

func TestRenderEdgeFailedRun(t *testing.T) {
	// A job that timed out: no ratio, the time goal not measured, the
	// note says why; the memory goal still holds for what was read.
	failed := strings.Replace(sampleEdge, `"phase": "Succeeded", "targets": 1000, "succeeded": 1000, "nodesSucceeded": 1000`,
		`"phase": "TimedOut", "targets": 1000, "succeeded": 700, "timedOut": 300, "nodesSucceeded": 700`, 1)
	failed = strings.Replace(failed, `"succeededSeconds": 100,`, ``, 1)
	failed = strings.Replace(failed, `"memory": {`, `"note": "Failed: job: EdgeDeployment edge-bench ended TimedOut.", "memory": {`, 1)
	doc := renderEdge(loadEdge(t, failed))
	for _, want := range []string{
		"- Note: Failed: job: EdgeDeployment edge-bench ended TimedOut.",
		"| job: create → Succeeded / direct: first create → all Ready | — | 40.0 s | — | ≤ 1.50×: not measured | *simulated nodes and pods* |",
		"≤ +150.0 MiB: met",
		"The job ended TimedOut with 1,000 targets: 700 succeeded, 0 failed, 300 timed out",
		"The job or the baseline was not measured to the end, so there is nothing to compare.",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("the section of a failed run lacks %q", want)
		}
	}
	if strings.Contains(doc, ": met |") && strings.Contains(doc, "2.50×") {
		t.Errorf("a failed run shows a ratio:\n%s", doc)
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 50: "50", 999: "999", 1000: "1,000", 1234567: "1,234,567", -1000: "-1,000"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestRunRendersEdgeSection(t *testing.T) {
	dir := t.TempDir()
	apiserver := filepath.Join(dir, "apiserver.txt")
	if err := os.WriteFile(apiserver, []byte("date: 2026-01-02 03:04 UTC\nBenchmarkCreateInferServer-2 100 852000 ns/op\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "benchmarks.md")
	// No edge.json beside apiserver.txt: the section says it has not
	// been run.
	if err := run(paths{apiserverIn: apiserver, benchmarksOut: out}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(out)
	if !strings.Contains(string(data), "\n## EdgeDeployment at 1,000 nodes\n") || !strings.Contains(string(data), "**has not produced results yet**: there is no `docs/bench/edge.json`") {
		t.Fatalf("without results:\n%s", data)
	}
	if err := os.WriteFile(filepath.Join(dir, "edge.json"), []byte(sampleEdge), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(paths{apiserverIn: apiserver, benchmarksOut: out}); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(out)
	if strings.Contains(string(data), "there is no `docs/bench/edge.json`") || !strings.Contains(string(data), "### Progress (simulated)") {
		t.Fatalf("with results:\n%s", data)
	}
	// -edge elsewhere is read instead.
	other := filepath.Join(t.TempDir(), "other.json")
	if err := os.WriteFile(other, []byte(strings.Replace(sampleEdge, `"architecture": "arm64"`, `"architecture": "riscv64"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(paths{apiserverIn: apiserver, edgeIn: other, benchmarksOut: out}); err != nil {
		t.Fatal(err)
	}
	if data, _ = os.ReadFile(out); !strings.Contains(string(data), "riscv64") {
		t.Fatalf("-edge %s was not rendered", other)
	}
	// Results of another version are an error, not a silent gap.
	if err := os.WriteFile(filepath.Join(dir, "edge.json"), []byte(strings.Replace(sampleEdge, `"version": 1`, `"version": 2`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(paths{apiserverIn: apiserver, benchmarksOut: out}); err == nil {
		t.Fatal("rendered results of version 2")
	}
}

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mindie.io/deployer/test/bench/results"
)

// sampleReconcile is a results file of two sizes: 10 servers of which only
// 7 were observed before the timeout (memory above its goal, errors in the
// log, a deletion that did not finish), and 20 that all were (the ratio
// above its goal, the work queue read, the Events trailing).
const sampleReconcile = `{
  "version": 1,
  "run": {"command": "hack/reconcile-bench.sh", "go": "go version go1.26.8 linux/amd64", "cpu": "AMD EPYC", "cpus": 2,
          "memTotalKiB": 24641536, "workers": 4, "baselineRuns": 3, "timeoutSeconds": 30, "settleSeconds": 5},
  "goals": {"maxRatio": 6, "maxPeakGrowthKiBPerServer": 256},
  "sizes": [
    {"n": 20, "start": "2026-01-02T03:10:00Z", "warmupSeconds": 0.3,
     "baseline": {"seenSeconds": 0.5, "seenRuns": [0.6, 0.4, 0.5], "cpu": {"etcd": 0.1, "kube-apiserver": 0.1}},
     "reconcile": {"createdSeconds": 1, "childrenSeconds": 3.9, "observedSeconds": 4, "children": 20, "observed": 20,
                   "childrenQuantiles": {"p50": 2, "p90": 3.5, "max": 3.9}, "observedQuantiles": {"p50": 2.1, "p90": 3.6, "max": 4},
                   "cpu": {"etcd": 1, "kube-apiserver": 3},
                   "writes": {"InferServer": 60, "Deployment": 30, "Service": 20, "ControllerRevision": 20},
                   "events": {"Normal InstanceCreated": 15}, "eventsLater": {"Normal InstanceCreated": 20, "Normal DeletingChildren": 20},
                   "queue": {"adds": 30, "syncs": 30, "retries": 1, "workSeconds": 6, "queueSeconds": 15, "elapsedSeconds": 4},
                   "progress": PROGRESS},
     "memory": {"beforeKiB": 102400, "peakKiB": 104448, "endKiB": 104000, "hwmKiB": 104448, "samples": 45},
     "delete": {"done": true, "seconds": 2.5}},
    {"n": 10, "start": "2026-01-02T03:04:59Z", "warmupSeconds": 0.25,
     "baseline": {"seenSeconds": 0.5, "seenRuns": [0.5, 0.5, 0.5]},
     "reconcile": {"createdSeconds": 0.5, "childrenSeconds": 20, "observedSeconds": 30, "children": 10, "observed": 7},
     "memory": {"beforeKiB": 102400, "peakKiB": 107520, "endKiB": 107520, "hwmKiB": 107520, "samples": 170},
     "delete": {"done": false, "seconds": 180, "left": 4},
     "log": {"syncErrors": 2, "errorLines": 3, "throttled": 1, "maxThrottle": 1.5, "errorExamples": ["sync srv-N failed"]}}
  ]
}`

// loadSample writes sampleReconcile with 31 progress rows, every 0.2 s,
// and reads it as the renderer does.
func loadSample(t *testing.T) *results.Reconcile {
	t.Helper()
	var rows []string
	for i := 0; i <= 30; i++ {
		rows = append(rows, fmt.Sprintf(`{"t": %.1f, "created": %d, "children": %d, "observed": %d}`, 0.2*float64(i), min(20, i), i*2/3, i*2/3))
	}
	path := filepath.Join(t.TempDir(), "reconcile.json")
	data := strings.Replace(sampleReconcile, "PROGRESS", "["+strings.Join(rows, ",\n")+"]", 1)
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	rc, err := results.LoadReconcile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

func TestRenderReconcile(t *testing.T) {
	md := renderReconcile(loadSample(t))
	for _, want := range []string{
		"from 4 goroutines through the kube-apiserver",
		"the median of 3 runs (with 10: 0.50 s, 0.50 s, 0.50 s; with 20: 0.60 s, 0.40 s, 0.50 s);",
		"until 5.00 s after the last status was observed.",
		// The run started with the first measurement, whatever the order in the file.
		"- Date: 2026-01-02 03:04 UTC\n",
		"- Machine: 2 CPUs (AMD EPYC), 23.5 GiB RAM, shared with other work while it ran\n",
		"- Command: `hack/reconcile-bench.sh`\n",
		// Sorted by N. 10: not every status observed, so no ratio and no
		// rate; 5,120 KiB over 10 servers misses 256 KiB.
		"| 10 | 0.50 s | 20.0 s | not reached (7 of 10) | 0.50 s | — | ≤ 6×: not reached | — | 100 MiB → 105 MiB | 512 KiB | ≤ 256 KiB: **missed** |\n",
		// 20: 4 s over 0.5 s is 8×, above 6×; 20 servers in 4 s; 2,048 KiB over 20.
		"| 20 | 1.00 s | 3.90 s | 4.00 s | 0.50 s | 8.0× | ≤ 6×: **missed** | 5.0 | 100 MiB → 102 MiB | 102 KiB | ≤ 256 KiB: met |\n",
		"Measured 2026-01-02 03:04 UTC on 2 CPUs (AMD EPYC)",
		// What it shows: the queue of the largest N, its CPU, its Events, the logs.
		"With 20 InferServers the time is the controller's work queue: 1.50 syncs per server, 200 ms each on average, 1.50 workers busy on average, " +
			"so 20 × 1.50 × 0.200 s / 1.50 = 4 s of queued work, against 4 s measured until the last status was observed; a server waited 0.5 s in the queue on average.",
		"The cluster's processes used 0.200 CPU s per InferServer meanwhile (4 CPU s in 4 s, 1.00 cores on average of 2, which other work shared), " +
			"20 times the 0.0100 CPU s a ConfigMap of the baseline cost.",
		"5.00 s after the last status was observed 15 of the 20 InstanceCreated events had been written, 20 by the end of the deletion.",
		"mindie-apiserver logged 2 failed syncs, 3 error lines and 1 requests held back by a client-side rate limit (longest 1.5 s) during the measurements; see below.",
		// Details.
		"| 10 | — | — | — | — | — | — | 0.25 s | not within 180 s: 4 left |\n",
		"| 20 | 2.00 | 3.50 | 3.90 | 2.10 | 3.60 | 4.00 | 0.30 s | 2.50 s |\n",
		"| 20 | 100 MiB | 102 MiB | 102 MiB | 102 MiB | 45 |\n",
		"| 10 | reconcile | 30.0 s | — | — | — | — | — | 0.0 | 0.000 |\n",
		"| 20 | reconcile | 4.00 s | 1.0 | 3.0 | — | — | — | 4.0 | 0.200 |\n",
		"| 20 | baseline | 0.50 s | 0.1 | 0.1 | — | — | — | 0.2 | 0.010 |\n",
		"| 10 | — | — | — | — | — |\n",
		"| 20 | 1.50 | 1 | 200 ms | 0.50 s | 1.50 |\n",
		"| 20 | 3.00 | 1.50 | 1.00 | 1.00 | 0 | 0 | 0 (0.0 s) |\n",
		"| 10 | 0.00 | 0.00 | 0.00 | 0.00 | 2 | 3 | 1 (1.5 s) |\n",
		"| 20 | Normal InstanceCreated: 15 | Normal DeletingChildren: 20; Normal InstanceCreated: 20 |\n",
		"Error lines mindie-apiserver logged with N = 10 (distinct ones, first 1):\n\n    sync srv-N failed\n",
		"## Progress with 20 InferServers\n",
		"| 0.0 | 0 | 0 | 0 |\n| 0.4 | 2 | 1 | 1 |\n",
		"| 6.0 | 20 | 20 | 20 |\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("output lacks %q:\n%s", want, md)
		}
	}
	// 31 rows of progress thin out to every second one; the last is kept once.
	if strings.Contains(md, "| 0.2 | 1 |") || strings.Count(md, "| 6.0 | 20 | 20 | 20 |") != 1 {
		t.Errorf("progress not thinned to every second row:\n%s", md)
	}
}

// The results a file holds say whether each measurement meets its goals.
func TestSummaryMeetsGoals(t *testing.T) {
	rc := loadSample(t)
	for _, c := range []struct {
		n           int
		ratio, rate float64
		growth      float64
		meets       bool
		explanation string
	}{
		{10, 0, 0, 512, false, "not every status observed"},
		{20, 8, 5, 102.4, false, "ratio above 6"},
	} {
		i := slicesIndex(rc, c.n)
		if i < 0 {
			t.Fatalf("no N=%d", c.n)
		}
		s := rc.Sizes[i].Summary
		if s.Ratio != c.ratio || s.ServersPerSecond != c.rate || s.PeakGrowthKiBPerServer != c.growth || s.MeetsGoals != c.meets {
			t.Errorf("N=%d (%s): got %+v", c.n, c.explanation, s)
		}
	}
	rc.Goals.MaxRatio = 8
	rc.Derive()
	if s := rc.Sizes[slicesIndex(rc, 20)].Summary; !s.MeetsGoals {
		t.Errorf("N=20 with the ratio at its goal: got %+v, want the goals met", s)
	}
}

func slicesIndex(rc *results.Reconcile, n int) int {
	for i, m := range rc.Sizes {
		if m.N == n {
			return i
		}
	}
	return -1
}

// The committed documents are what the renderer makes of the committed
// results: nobody edited them by hand, and a change to the renderer was
// rendered (`go run ./test/bench/report`).
func TestCommittedDocumentsAreCurrent(t *testing.T) {
	root := filepath.Join("..", "..", "..")
	dir := t.TempDir()
	err := run(paths{
		apiserverIn:   filepath.Join(root, "docs/bench/apiserver.txt"),
		reconcileIn:   filepath.Join(root, "docs/bench/reconcile.json"),
		scaleCheckIn:  filepath.Join(root, "docs/bench/scale-check.json"),
		benchmarksOut: filepath.Join(dir, "benchmarks.md"),
		reconcileOut:  filepath.Join(dir, "reconcile-bench.md"),
		scaleCheckOut: filepath.Join(dir, "scale-check.md"),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"benchmarks.md", "reconcile-bench.md", "scale-check.md"} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		committed, err := os.ReadFile(filepath.Join(root, "docs", name))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(committed) {
			t.Errorf("docs/%s is not what test/bench/report renders from docs/bench/; run `go run ./test/bench/report`", name)
		}
	}
}

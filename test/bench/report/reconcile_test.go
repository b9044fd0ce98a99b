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
// 7 were observed before the timeout (memory above its goals, errors in the
// log, a deletion that did not finish, children unlike the controller's, a
// phase that started before the cluster was quiet), and 20 that all were
// (the ratio and the time above their goals, the work queue and the
// requests read, the Events trailing).
const sampleReconcile = `{
  "version": 2,
  "run": {"command": "hack/reconcile-bench.sh", "go": "go version go1.26.8 linux/amd64", "cpu": "AMD EPYC", "cpus": 2,
          "memTotalKiB": 24641536, "workers": 4, "baselineRuns": 3, "timeoutSeconds": 30, "timeoutPerServerSeconds": 0.1, "settleSeconds": 5,
          "quietCores": 0.3, "quietTimeoutSeconds": 180,
          "apiServerFlags": "--kube-api-qps=10 --kube-api-burst=20", "controller": {"workers": 5, "kubeAPIQPS": 10, "kubeAPIBurst": 20}},
  "goals": {"maxPeakGrowthKiBPerServer": 256, "sizes": [{"n": 20, "maxRatio": 6, "maxObservedSeconds": 3, "maxDeleteSeconds": 2}, {"n": 10, "maxPeakKiB": 104448}, {"n": 30, "maxObservedSeconds": 9}]},
  "sizes": [
    {"n": 20, "start": "2026-01-02T03:10:00Z", "timeoutSeconds": 32, "warmupSeconds": 0.3,
     "baseline": {"objects": 60, "seenSeconds": 0.5, "seenRuns": [0.6, 0.4, 0.5], "deleteSeconds": 0.3, "deleteRuns": [0.3, 0.3, 0.4],
                  "cpu": {"etcd": 0.1, "kube-apiserver": 0.1}, "compared": true, "same": true,
                  "requests": [{"server": "kube-apiserver", "verb": "APPLY", "resource": "apps/deployments", "count": 20, "seconds": 0.2}]},
     "reconcile": {"createdSeconds": 1, "childrenSeconds": 3.9, "observedSeconds": 4, "children": 20, "observed": 20,
                   "childrenQuantiles": {"p50": 2, "p90": 3.5, "max": 3.9}, "observedQuantiles": {"p50": 2.1, "p90": 3.6, "max": 4},
                   "cpu": {"etcd": 1, "kube-apiserver": 3},
                   "writes": {"InferServer": 60, "Deployment": 30, "Service": 20, "ControllerRevision": 20},
                   "events": {"Normal InstanceCreated": 15}, "eventsLater": {"Normal InstanceCreated": 20, "Normal DeletingChildren": 20},
                   "queue": {"adds": 30, "syncs": 30, "retries": 25, "workSeconds": 6, "queueSeconds": 15, "elapsedSeconds": 4},
                   "requests": [{"server": "kube-apiserver", "verb": "APPLY", "resource": "apps/deployments", "count": 20, "seconds": 0.4},
                                {"server": "kube-apiserver", "verb": "APPLY", "resource": "services", "count": 20, "seconds": 0.6},
                                {"server": "kube-apiserver", "verb": "POST", "resource": "apps/controllerrevisions", "count": 20, "seconds": 0.2},
                                {"server": "mindie-apiserver", "verb": "PUT", "resource": "infer.mindie.io/inferservers/status", "count": 25, "seconds": 0.5},
                                {"server": "kube-apiserver", "verb": "PUT", "resource": "coordination.k8s.io/leases", "count": 1, "seconds": 0.01}],
                   "progress": PROGRESS},
     "memory": {"beforeKiB": 102400, "peakKiB": 104448, "endKiB": 104000, "hwmKiB": 104448, "samples": 45, "afterWarmupKiB": 101376, "baselinePeakKiB": 103424, "restarted": true},
     "delete": {"done": true, "seconds": 2.5, "callsSeconds": 0.4, "progress": [{"t": 1, "servers": 12, "children": 30}, {"t": 2, "servers": 2, "children": 6}]},
     "log": {"syncErrors": 1, "syncErrorsReconcile": 1},
     "quiet": [{"before": "the servers", "seconds": 12, "cores": 0.2, "quiet": true}, {"before": "the warm-up", "seconds": 2, "cores": 0.1, "quiet": true}]},
    {"n": 10, "start": "2026-01-02T03:04:59Z", "warmupSeconds": 0.25,
     "baseline": {"objects": 30, "seenSeconds": 0.5, "seenRuns": [0.5, 0.5, 0.5], "compared": true, "difference": "Service: baseline {}, controller {\"a\":1}"},
     "reconcile": {"createdSeconds": 0.5, "childrenSeconds": 20, "observedSeconds": 30, "children": 10, "observed": 7},
     "memory": {"beforeKiB": 102400, "peakKiB": 107520, "endKiB": 107520, "hwmKiB": 107520, "samples": 170},
     "delete": {"done": false, "seconds": 180, "left": 4},
     "log": {"syncErrors": 2, "errorLines": 3, "throttled": 1, "maxThrottle": 1.5, "errorExamples": ["sync srv-N failed"]},
     "quiet": [{"before": "baseline run 2", "seconds": 180, "cores": 0.9, "quiet": false}]}
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
	wantAll(t, "output", md,
		"from 4 goroutines through the kube-apiserver",
		"- **baseline**: in the same run, its runs taking turns with the servers' (a baseline run, then a run of the servers, and so on, so that a drift of the machine's speed falls on both alike), the very children the controller writes on each server's first sync",
		"the median of 3 runs (with 10: 0.50 s, 0.50 s, 0.50 s; with 20: 0.60 s, 0.40 s, 0.50 s).",
		"until 5.00 s after the last status was observed.",
		"processes together use at most 0.30 cores over 2 s (180 s at most)",
		"mindie-apiserver is restarted before each N and before every run of the baseline and of the servers after that (the baseline's children pass through its caches too), so every phase meets a fresh process;",
		"so a process that held them is restarted before the servers; the first two columns are of the processes that ran the baseline (after the first warm-up, and the highest sampled during any run of the baseline):",
		"- **bounds**: each phase may take, for 10 servers, 30.0 s; for 20 servers, 32.0 s (the last run's bound: 30.0 s plus 0.10 s per server).\n",
		// The run started with the first measurement, whatever the order in the file.
		"- Date: 2026-01-02 03:04 UTC\n",
		"- Machine: 2 CPUs (AMD EPYC), 23.5 GiB RAM, shared with other work while it ran.\n",
		"- Command: `hack/reconcile-bench.sh`\n",
		"- The controllers' settings: `--controller-workers=5 --kube-api-qps=10 --kube-api-burst=20` (the run added `--kube-api-qps=10 --kube-api-burst=20`)\n",
		"| InferServers | all created | all children | all observed | baseline: the same children | ratio |",
		// Sorted by N. 10: not every status observed, so no ratio and no rate.
		"| 10 | 0.50 s | 20.0 s | not reached (7 of 10) | 0.50 s | — | — | 100 MiB → 105 MiB | 512 KiB |\n",
		// 20: 4 s over 0.5 s is 8×; 20 servers in 4 s; 2,048 KiB over 20.
		"| 20 | 1.00 s | 3.90 s | 4.00 s | 0.50 s | 8.0× | 5.0 | 100 MiB → 102 MiB | 102 KiB |\n",
		// The goals of each N, with how far off it was.
		"| 10 | mindie-apiserver peak RSS | ≤ 102 MiB | 105 MiB | **missed**: 1.03× the bound |\n",
		"| 10 | peak RSS growth per server | ≤ 256 KiB | 512 KiB | **missed**: 2.0× the bound |\n",
		"| 20 | all observed / baseline | ≤ 6.0× | 8.0× | **missed**: 1.3× the bound |\n",
		"| 20 | all observed | ≤ 3.00 s | 4.00 s | **missed**: 1.3× the bound |\n",
		"| 20 | peak RSS growth per server | ≤ 256 KiB | 102 KiB | met (40% of the bound) |\n",
		"Measured 2026-01-02 03:04 UTC on 2 CPUs (AMD EPYC)",
		// What it shows: the queue of the largest N, the rate limit, its CPU, its Events, the comparison, the logs.
		"With 20 InferServers the time is the controller's work queue: 1.50 syncs per server, 200 ms each on average, 1.50 workers busy on average, "+
			"so 20 × 1.50 × 0.200 s / 1.50 = 4 s of queued work, against 4 s measured until the last status was observed; a server waited 0.5 s in the queue on average.",
		"Its client for the cluster may send 10 requests a second after a burst of 20 (`--kube-api-qps`, `--kube-api-burst`), and the kube-apiserver served 60 creates "+
			"of ControllerRevisions and applies of Deployments and Services meanwhile (3.00 per server), so those writes alone took at least (60 − 20) / 10 = 4.00 s, 100% of the 4.00 s measured.",
		"The cluster's processes used 0.200 CPU s per InferServer meanwhile (4 CPU s in 4 s, 1.00 cores on average of 2, which other work shared; on 2 cores that CPU alone takes at least 2.00 s), "+
			"20 times the 0.0100 CPU s writing one server's children directly cost.",
		"5.00 s after the last status was observed 15 of the 20 InstanceCreated events had been written, 20 by the end of the deletion.",
		// The missed time bound, against the baseline's time.
		"With 20, every status was observed after 4.00 s against a bound of 3.00 s; the baseline, the same children written directly, took 0.50 s, so 3.50 s of it is the controller's own (the ratio above).",
		// The missed memory bound, explained: (102 MiB - 100 MiB) / 10 left a server.
		"With 10, mindie-apiserver's resident memory peaked at 105 MiB against a bound of 102 MiB: 512 KiB a server above the 100 MiB it had before the first create, where the bound leaves 205 KiB.",
		// A size with goals that the run did not measure.
		"| 30 | all observed | ≤ 9.00 s | — | not measured: this run's `RECONCILE_SIZES` left it out |\n",
		"| 30 | peak RSS growth per server | ≤ 256 KiB | — | not measured: this run's `RECONCILE_SIZES` left it out |\n",
		// The missed deletion bound, against the baseline's deletion.
		"| 20 | deletion at the end: all gone | ≤ 2.00 s | 2.50 s | **missed**: 1.2× the bound |\n",
		"With 20, the deletion at the end took 2.50 s against a bound of 2.00 s; deleting only the same children took 0.30 s in the same run (12% of it), and the rest, 2.20 s, is the InferServers' own",
		"With 10, the first server's children differed between the baseline and the controller: Service: baseline {}, controller {\"a\":1}.",
		"With 20, the first server's children, as their field manager owns them, were the same in the baseline and from the controller.",
		"mindie-apiserver logged 3 failed syncs, 3 error lines and 1 requests held back by a client-side rate limit (longest 1.5 s) during the measurements; see below.",
		// Details.
		"| 20 | 2.00 | 3.50 | 3.90 | 2.10 | 3.60 | 4.00 | 0.30 s |\n",
		"| 10 | — | not within 180 s: 4 left | — |\n",
		"| 20 | 0.40 s | 2.50 s | 0.30 s |\n",
		"| 10 | in mindie-apiserver | — | — | 100 MiB | 105 MiB | 105 MiB | 105 MiB | 170 |\n",
		"| 20 | in mindie-apiserver | 99 MiB | 101 MiB | 100 MiB | 102 MiB | 102 MiB | 102 MiB | 45 |\n",
		"| 10 | reconcile | 30.0 s | — | — | — | — | — | 0.0 | 0.0000 | 0.00 |\n",
		"| 20 | reconcile | 4.00 s | 1.0 | 3.0 | — | — | — | 4.0 | 0.2000 | 1.00 |\n",
		"| 20 | baseline | 0.50 s | 0.1 | 0.1 | — | — | — | 0.2 | 0.0100 | 0.40 |\n",
		"busy workers is the time spent in syncs over the elapsed time (of 5 workers). *Requeued* is `workqueue_retries_total`",
		"| 10 | — | — | — | — | — | — |\n",
		"| 20 | 1.50 | 25 | 1 | 200 ms | 0.50 s | 1.50 |\n",
		"| 20 | kube-apiserver | APPLY | apps/deployments | 1.00 | 20 ms | 1.00 | 10 ms |\n",
		"| 20 | mindie-apiserver | PUT | infer.mindie.io/inferservers/status | 1.25 | 20 ms | — | — |\n",
		"| 20 | 3.00 | 1.50 | 1.00 | 1.00 | 1 | 0 | 0 (0.0 s) |\n",
		"| 10 | 0.00 | 0.00 | 0.00 | 0.00 | 2 | 3 | 1 (1.5 s) |\n",
		"| 20 | Normal InstanceCreated: 15 | Normal DeletingChildren: 20; Normal InstanceCreated: 20 |\n",
		"Waits for the cluster to fall quiet before a phase: with 10, baseline run 2 started after 180 s while the cluster still used 0.90 cores; with 20, the servers waited 12.0 s.\n",
		"Error lines mindie-apiserver logged with N = 10 (distinct ones, first 1):\n\n    sync srv-N failed\n",
		"## Progress with 20 InferServers\n",
		"| 0.0 | 0 | 0 | 0 |\n| 0.4 | 2 | 1 | 1 |\n",
		"| 6.0 | 20 | 20 | 20 |\n",
		"Their deletion (servers and children left):\n\n| s | servers | children |\n|--:|--:|--:|\n| 1 | 12 | 30 |\n| 2 | 2 | 6 |\n",
	)
	// 31 rows of progress thin out to every second one; the last is kept once.
	if strings.Contains(md, "| 0.2 | 1 |") || strings.Count(md, "| 6.0 | 20 | 20 | 20 |") != 1 {
		t.Errorf("progress not thinned to every second row:\n%s", md)
	}
	// A request of fewer than one per ten servers is left out.
	if strings.Contains(md, "leases") {
		t.Errorf("the Lease renewals are shown:\n%s", md)
	}
}

// Results of the first format say their baseline was ConfigMaps, and have
// no failed syncs counted apart from the whole run's.
// A size whose controllers ran as mindie-controller shows that process's
// memory beside mindie-apiserver's, and its CPU; the others do not.
func TestRenderReconcileExternalControllers(t *testing.T) {
	rc := loadSample(t)
	m := &rc.Sizes[len(rc.Sizes)-1]
	m.Controllers = results.ControllersExternal
	m.Memory.ControllerBeforeKiB, m.Memory.ControllerPeakKiB, m.Memory.ControllerEndKiB, m.Memory.ControllerHWMKiB = 50<<10, 80<<10, 70<<10, 81<<10
	m.Reconcile.CPU["mindie-controller"] = 2.5
	md := renderReconcile(rc)
	wantAll(t, "output", md,
		"| 20 | mindie-controller | 99 MiB |",
		"| 10 | in mindie-apiserver | — |",
		"that process's memory, sampled alike:",
		// 102 MiB of mindie-apiserver and 80 MiB of mindie-controller.
		"| 20 | 50 MiB | 80 MiB | 70 MiB | 81 MiB | 182 MiB |\n",
		" mindie-apiserver | mindie-controller | all |",
		"| 10 | reconcile | 30.0 s | — | — | — | — | — | — | 0.0 | 0.0000 | 0.00 |\n",
		"| 20 | peak RSS growth per server | ≤ 256 KiB | 102 KiB | met (40% of the bound); the controllers ran apart, in mindie-controller, which peaked at 80 MiB (182 MiB together) |\n",
	)
	if strings.Contains(md, "| 10 | 0 B |") || strings.Count(md, "| 10 | ") != strings.Count(renderReconcile(loadSample(t)), "| 10 | ") {
		t.Errorf("the in-process size got a row of mindie-controller's memory:\n%s", md)
	}
}

// A missed bound on mindie-apiserver's memory is explained by what that
// process held: with the controllers apart, not their informers.
func TestMemoryMissExternalControllers(t *testing.T) {
	rc := loadSample(t)
	m := &rc.Sizes[0]
	m.Controllers = results.ControllersExternal
	m.Memory.ControllerPeakKiB = 80 << 10
	got := strings.Join(memoryMisses(rc.Sizes), "\n")
	wantAll(t, "explanation", got,
		"With 10, mindie-apiserver's resident memory peaked at 105 MiB against a bound of 102 MiB, with the controllers in mindie-controller (which peaked at 80 MiB)",
		"512 KiB a server above the 100 MiB it had before the first create, where the bound leaves 205 KiB; it ended at 105 MiB.",
		"cache consistency check",
	)
	if strings.Contains(got, "controller's informer") {
		t.Errorf("the explanation of a process without the controllers names their informers:\n%s", got)
	}
}

// A met bound on mindie-apiserver's memory with the controllers apart is
// explained (what the process holds, the paged consistency check); one met
// with the controllers in the process, or missed, is not.
func TestMemoryMetExternalControllers(t *testing.T) {
	rc := loadSample(t)
	m := &rc.Sizes[0]
	m.Controllers = results.ControllersExternal
	m.Memory.ControllerPeakKiB = 80 << 10
	if got := externalMemoryMet(rc.Sizes); len(got) != 0 {
		t.Errorf("a missed bound explained as met: %q", got)
	}
	found := false
	for i := range m.Summary.Checks {
		if c := &m.Summary.Checks[i]; c.Goal == results.GoalPeakKiB {
			c.Met, found = true, true
		}
	}
	if !found {
		t.Fatalf("the sample has no %s check", results.GoalPeakKiB)
	}
	got := strings.Join(externalMemoryMet(rc.Sizes), "\n")
	wantAll(t, "explanation", got,
		"With 10, mindie-apiserver's resident memory peaked at 105 MiB, under the bound of 102 MiB, with the controllers in mindie-controller (which peaked at 80 MiB)",
		"500 objects at a time (`apiserver.OwnListPageSize`",
	)
	if !strings.Contains(whatItShows(rc), got) {
		t.Errorf("What it shows leaves out the explanation:\n%s", whatItShows(rc))
	}
	m.Controllers = "" // in mindie-apiserver
	if got := externalMemoryMet(rc.Sizes); len(got) != 0 {
		t.Errorf("a run with the controllers in mindie-apiserver explained as one without: %q", got)
	}
}

func TestRenderReconcileConfigMapBaseline(t *testing.T) {
	rc := loadSample(t)
	rc.Version = results.VersionConfigMapBaseline
	rc.Run.Controller, rc.Run.APIServerFlags = nil, ""
	md := renderReconcile(rc)
	wantAll(t, "output", md,
		"- **baseline**: in the same run, just before, N ConfigMaps",
		"| baseline: N ConfigMaps |",
		"over the time to write as many ConfigMaps",
		"- The controllers' settings: not recorded (results of the first format)\n",
		"| 20 | 1.50 | 25 | not counted apart | 200 ms | 0.50 s | 1.50 |\n",
		"0.0100 CPU s a ConfigMap of the baseline cost",
	)
	if strings.Contains(md, "Its client for the cluster may send") {
		t.Errorf("a rate limit without the controller's settings:\n%s", md)
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
		{20, 8, 5, 102.4, false, "ratio above 6, 4 s above 3 s, deletion 2.5 s above 2 s"},
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
	rc.Goals.Sizes[0].MaxRatio, rc.Goals.Sizes[0].MaxObservedSeconds, rc.Goals.Sizes[0].MaxDeleteSeconds = 8, 4, 2.5
	rc.Derive()
	if s := rc.Sizes[slicesIndex(rc, 20)].Summary; !s.MeetsGoals {
		t.Errorf("N=20 with the ratio and the time at their goals: got %+v, want the goals met", s)
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

// A large N may run its baseline fewer times than the others.
func TestMedianOfRuns(t *testing.T) {
	m := func(n, runs int) results.Measurement {
		r := results.Measurement{N: n}
		r.Baseline.SeenRuns = make([]float64, runs)
		return r
	}
	for _, c := range []struct {
		rs   []results.Measurement
		want string
	}{
		{[]results.Measurement{m(100, 3), m(1000, 3)}, "the median of 3 runs"},
		{[]results.Measurement{m(10000, 1)}, "one run"},
		{[]results.Measurement{m(100, 3), m(1000, 3), m(10000, 1)}, "the median of its runs: 3 runs with 100 and 1000, one run with 10000"},
	} {
		if got := medianOfRuns(c.rs); got != c.want {
			t.Errorf("got %q, want %q", got, c.want)
		}
	}
}

func TestServerRuns(t *testing.T) {
	once := results.Measurement{N: 100}
	if got := serverRuns([]results.Measurement{once}); got != "" {
		t.Errorf("one run: %q, want nothing said", got)
	}
	if got := serverRunsShort([]results.Measurement{once}); got != "" {
		t.Errorf("one run, short: %q, want nothing said", got)
	}
	thrice := results.Measurement{N: 1000}
	thrice.Reconcile.ObservedRuns = []float64{61.2, 55.5, 70}
	thrice.Delete.Runs = []float64{80, 75.5, 90}
	got := serverRuns([]results.Measurement{once, thrice})
	for _, want := range []string{"with 1000, 3 runs: all observed after 61.2 s, 55.5 s, 70.0 s; deleted after 80.0 s, 75.5 s, 90.0 s", "the median"} {
		if !strings.Contains(got, want) {
			t.Errorf("serverRuns = %q, want it to contain %q", got, want)
		}
	}
	if strings.Contains(got, "with 100,") {
		t.Errorf("serverRuns = %q names N=100, which ran once", got)
	}
	if got := serverRunsShort([]results.Measurement{once, thrice}); !strings.Contains(got, "3 runs with 1000") {
		t.Errorf("serverRunsShort = %q, want it to name 3 runs with 1000", got)
	}
}

func TestOtherMachines(t *testing.T) {
	rc := &results.Reconcile{Run: results.Run{CPUs: 2, CPU: "Intel Xeon"}, Sizes: []results.Measurement{
		{N: 100, Machine: "2 CPUs, Intel Xeon"},
		{N: 1000},
		{N: 10000, Machine: "2 CPUs, AMD EPYC", Start: "2026-12-02T04:18:27Z"},
	}}
	got := otherMachines(rc)
	if want := "10000 servers on 2 CPUs, AMD EPYC (2026-12-02 04:18 UTC)"; !strings.Contains(got, want) {
		t.Errorf("otherMachines = %q, want it to contain %q", got, want)
	}
	if strings.Contains(got, "100 servers") || strings.Contains(got, "1000 servers") {
		t.Errorf("otherMachines = %q names a size measured on the run's machine or on an unknown one", got)
	}
	rc.Sizes[0].Start, rc.Sizes[1].Start = "2026-12-02T15:00:00Z", "2026-12-02T15:10:00Z"
	if got, want := runDate(rc), "2026-12-02 15:00 UTC"; got != want {
		t.Errorf("runDate = %q, want %q: the first start on the run's machine", got, want)
	}
	rc.Sizes = rc.Sizes[:2]
	if got := otherMachines(rc); got != "" {
		t.Errorf("every size on the run's machine: %q, want nothing said", got)
	}
}

func TestCommands(t *testing.T) {
	rc := &results.Reconcile{Run: results.Run{Command: "hack/reconcile-bench.sh"}, Sizes: []results.Measurement{
		{N: 100, Command: "B"}, {N: 1000, Command: "B"}, {N: 10000, Command: "A"},
	}}
	if got, want := commands(rc), "`B` (100, 1000 servers); `A` (10000 servers)"; got != want {
		t.Errorf("commands = %q, want %q", got, want)
	}
	rc.Sizes[2].Command = "B"
	if got, want := commands(rc), "`B`"; got != want {
		t.Errorf("one command: %q, want %q", got, want)
	}
	// Measurements that do not record theirs: the run's.
	rc.Sizes = []results.Measurement{{N: 100}}
	if got, want := commands(rc), "`hack/reconcile-bench.sh`"; got != want {
		t.Errorf("none recorded: %q, want %q", got, want)
	}
}

func TestRatioMisses(t *testing.T) {
	m := results.Measurement{N: 1000}
	m.Reconcile.ObservedSeconds, m.Baseline.SeenSeconds = 20, 10
	m.Reconcile.CPU = map[string]float64{"kube-apiserver": 20, "mindie-apiserver": 14, "etcd": 4}
	m.Baseline.CPU = map[string]float64{"kube-apiserver": 14, "mindie-apiserver": 2, "etcd": 3}
	m.Summary.Checks = []results.Check{{Goal: results.GoalRatio, Known: true, Value: 2, Max: 1.5}}
	got := strings.Join(ratioMisses([]results.Measurement{m}, 2), "")
	for _, want := range []string{
		"all observed took 20.0 s, 2.0× the baseline's 10.0 s (bound 1.5×)",
		"1.90 cores on average while the servers were reconciled and 1.90 while the baseline wrote, so both phases were bound by CPU",
		"38.0 CPU s against 19.0 (2.00×)",
		"mindie-apiserver +12.0, kube-apiserver +6.0, etcd +1.0.",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("ratioMisses = %q, want it to contain %q", got, want)
		}
	}
	if got := strings.Join(ratioMisses([]results.Measurement{m}, 8), ""); !strings.Contains(got, "the CPU does not account for the times alone") {
		t.Errorf("on 8 CPUs, 1.9 cores busy: %q, want it not to call the phases bound by CPU", got)
	}
	if strings.Contains(got, "floor") {
		t.Errorf("no floor measured: %q, want none spoken of", got)
	}
	// A floor of 16 s, past the bound on its own.
	m.Floor = &results.Floor{ObservedSeconds: 16, CPU: map[string]float64{"kube-apiserver": 18, "mindie-apiserver": 8}}
	m.Summary.FloorRatio, m.Summary.OverFloor = 1.6, 1.3
	got = strings.Join(ratioMisses([]results.Measurement{m}, 2), "")
	for _, want := range []string{
		"(the floor) took 16.0 s, 1.6× the baseline's time, with 26.0 CPU s",
		"past the bound of 1.5×, so even a controller that cost nothing would miss it on this machine; the controller took 1.3× the floor's time",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("a floor past the bound: %q, want it to contain %q", got, want)
		}
	}
	// A floor of 11 s leaves the controller 1.36× of its own.
	m.Floor.ObservedSeconds, m.Summary.FloorRatio, m.Summary.OverFloor = 11, 1.1, 20.0/11
	got = strings.Join(ratioMisses([]results.Measurement{m}, 2), "")
	if want := "leaves 1.4× of the bound of 1.5×, and the controller took 1.8× the floor's time for its own work (its informers, its queue, its reads), which would have to be within 1.4× to meet it."; !strings.Contains(got, want) {
		t.Errorf("a floor under the bound: %q, want it to contain %q", got, want)
	}
	m.Summary.Checks[0].Value = 1.2
	m.Summary.Checks[0].Met = true
	if got := ratioMisses([]results.Measurement{m}, 2); len(got) != 0 {
		t.Errorf("a met ratio: %q, want nothing said", got)
	}
}

func TestServiceApplies(t *testing.T) {
	m := results.Measurement{N: 1000}
	m.Baseline.Requests = []results.Requests{
		{Server: "kube-apiserver", Verb: "APPLY", Resource: "services", Count: 1000, Seconds: 260},
		{Server: "kube-apiserver", Verb: "APPLY", Resource: "apps/deployments", Count: 1000, Seconds: 20},
	}
	m.Reconcile.Requests = []results.Requests{
		{Server: "kube-apiserver", Verb: "APPLY", Resource: "services", Count: 1000, Seconds: 320},
		{Server: "kube-apiserver", Verb: "APPLY", Resource: "apps/deployments", Count: 1000, Seconds: 40},
		{Server: "mindie-apiserver", Verb: "APPLY", Resource: "services", Count: 1, Seconds: 99},
	}
	ctrl := &results.ControllerSettings{Workers: 16}
	got := serviceApplies([]results.Measurement{m}, 20, ctrl)
	for _, want := range []string{
		"with 1000, a Service apply took 260 ms on average in the baseline (20 writers: one every 13.0 ms, at most 77 a second; a Deployment apply 20 ms)",
		"and 320 ms among the servers (16 workers: one every 20.0 ms, at most 50 a second; a Deployment apply 40 ms)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("serviceApplies = %q, want it to contain %q", got, want)
		}
	}
	m.Reconcile.Requests = nil
	if got := serviceApplies([]results.Measurement{m}, 20, ctrl); got != "" {
		t.Errorf("without the servers' requests: %q, want nothing said", got)
	}
	if got := serviceApplies([]results.Measurement{m}, 20, nil); got != "" {
		t.Errorf("without the controller's settings: %q, want nothing said", got)
	}
}

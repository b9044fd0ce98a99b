package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mindie.io/deployer/test/bench/results"
)

// sampleScaleCheck is a run that went badly: local-up gave up on 3 of the
// 33 nodes, never all were Ready, 40 of the 100 pods were Ready when the
// 60 s bound ran out, and ascend-sim's client was throttled.
const sampleScaleCheck = `{
  "version": 1,
  "run": {"date": "2026-01-02T03:04:05Z", "cpu": "Test CPU", "cpus": 4, "memTotalKiB": 8388608,
          "nodes": 33, "deployments": 2, "replicas": 50, "nodeTimeoutSeconds": 120, "readyTimeoutSeconds": 60,
          "sampleEverySeconds": 0.5, "pollEverySeconds": 2},
  "nodes": {"localUpTimeouts": 3, "maxReady": 30, "readyAtEnd": 29},
  "pods": {"readyAtEnd": 40, "states": {"Running Ready=True": 40, "Pending Ready=<none>": 50, "Running Ready=False": 10}, "unscheduled": 50},
  "processes": [
    {"name": "ascend-sim", "peakRSSKiB": 51200, "applyRSSKiB": 20480, "endRSSKiB": 40960, "cpuSeconds": 10, "applyToEndCPUSeconds": 6, "samples": 120},
    {"name": "kube-apiserver", "peakRSSKiB": 307200, "cpuSeconds": 30, "applyToEndCPUSeconds": 24, "samples": 120},
    {"name": "etcd", "peakRSSKiB": 102400, "cpuSeconds": 5.5, "applyToEndCPUSeconds": 3, "samples": 120}
  ],
  "simulator": {"started": 64, "containersReady": 40, "failedCalls": 17, "throttled": 12, "maxThrottleSeconds": 7.3, "lostStatusWrites": 4},
  "progress": PROGRESS
}`

// loadScaleCheck writes sampleScaleCheck with 26 progress rows, every
// 2.4 s, and reads it as the renderer does.
func loadScaleCheck(t *testing.T) *results.ScaleCheck {
	t.Helper()
	var rows []string
	for i := 0; i <= 25; i++ {
		nodes := 30
		if i == 25 {
			nodes = 29
		}
		rows = append(rows, fmt.Sprintf(`{"t": %.1f, "readyNodes": %d, "created": %d, "ready": %d}`, 2.4*float64(i), nodes, min(100, 8*i), min(40, 2*i)))
	}
	path := filepath.Join(t.TempDir(), "scale-check.json")
	data := strings.Replace(sampleScaleCheck, "PROGRESS", "["+strings.Join(rows, ",\n")+"]", 1)
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := results.LoadScaleCheck(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRenderScaleCheck(t *testing.T) {
	md := renderScaleCheck(loadScaleCheck(t))
	wantAll(t, "output", md,
		"with 33 simulated Ascend nodes", "and 2 Deployments of 50 replicas each: 100 pods", "sampled from /proc every 0.5 s;",
		"- Date: 2026-01-02 03:04 UTC\n",
		"- Machine: 4 CPUs (Test CPU), 8.0 GiB RAM, shared with other work while it ran\n",
		"- `hack/local-up.sh` gave up waiting (its `kubectl wait --timeout=60s`) for 3 of the 33 nodes to be Ready; the check went on\n",
		"- Nodes: 33, **never all Ready at once**: at most 30 within 120 s after `hack/local-up.sh` returned and while the pods were awaited; 29 Ready at the end\n",
		"- Pods: 100\n",
		"- Time to all Ready: **not reached**: 40 of 100 pods were Ready when the 60 s bound ran out\n",
		// Sorted by state, whatever the order in the file.
		"- Pods at the end (phase, Ready condition): Pending Ready=<none>: 50; Running Ready=False: 10; Running Ready=True: 40; unscheduled: 50\n",
		"- ascend-sim log lines reporting a failed or retried API call: 17; requests its client held back over 1 s for client-side throttling: 12 (longest 7.3 s)\n",
		// The processes in the file's order; the simulator's 6 CPU s over 100 pods.
		"|---|--:|--:|--:|--:|\n| ascend-sim | 50 | 10.0 | 6.0 | 0.060 |\n| kube-apiserver | 300 | 30.0 | 24.0 |  |\n| etcd | 100 | 5.5 | 3.0 |  |\n"+
			"| all | 450 | 45.5 | 33.0 | 0.330 |\n",
		// The last poll was 60 s after the apply.
		"\"apply to end\" only the 60 s from `kubectl apply`", "divides by the 100 pods",
		"## What it shows\n\nOn 4 CPUs, 40 of 100 pods on 33 simulated nodes became Ready within the 60 s bound. "+
			"From `kubectl apply` to the end the processes used 33.0 CPU s in 60 s, 0.55 cores on average (of 4), most of it in kube-apiserver (24.0 s).",
		// (40,960 - 20,480) KiB over the 64 pods it started.
		"started 64 pods (40 of their containers passed the readiness probe), peaked at 50 MiB RSS, grew by about 320 KiB per pod it started "+
			"(its informer caches every pod, started or not), and spent 0.060 CPU s per pod created.",
		"ascend-sim held back 12 requests for over a second (up to 7.3 s)", "and 4 of its status writes gave up",
		// 33 nodes × 4 requests / 10 s = 13.2/s, 2.64 times 5/s.
		"so 33 nodes alone ask for 13.2 requests/s, 3 times the limit;",
		// 0.55 of 4 CPUs.
		"These processes kept 4 CPUs only 14% busy on average meanwhile",
		"the full series, every 2 s, is in `docs/bench/scale-check.json`",
		// 26 rows thin out to every second one, and the last.
		"|--:|--:|--:|--:|\n| 0.0 | 30 | 0 | 0 |\n| 4.8 | 30 | 16 | 4 |\n",
		"| 57.6 | 30 | 100 | 40 |\n| 60.0 | 29 | 100 | 40 |\n",
	)
	for _, unwanted := range []string{"| 2.4 | 30 |", "| 55.2 |", "- Note:"} {
		if strings.Contains(md, unwanted) {
			t.Errorf("output has %q:\n%s", unwanted, md)
		}
	}
	if n := strings.Count(md, "| 60.0 | 29 | 100 | 40 |"); n != 1 {
		t.Errorf("the last progress row shown %d times, want once", n)
	}
}

// A run where everything was Ready in time: the times are shown, the
// heartbeats are within the limit, and the limiter is not blamed.
func TestRenderScaleCheckAllReady(t *testing.T) {
	s := loadScaleCheck(t)
	nodes, pods := 5.0, 30.5
	s.Run.Nodes, s.Run.Note = 10, "converted"
	s.Nodes.LocalUpTimeouts, s.Nodes.AllReadySeconds = 0, &nodes
	s.Pods.AllReadySeconds = &pods
	s.Derive()
	md := renderScaleCheck(s)
	wantAll(t, "output", md,
		"- Nodes: 10, all Ready 5 s after `hack/local-up.sh` returned; 29 Ready at the end\n",
		"- Time to all Ready: **30.5 s** after `kubectl apply` of the Deployments\n",
		"- Note: converted\n",
		"100 pods on 10 simulated nodes became Ready 30.5 s after they were created, on 4 CPUs.",
		"so 10 nodes alone ask for 4 requests/s, within the limit;",
	)
	for _, unwanted := range []string{"gave up waiting", "never all Ready", "These processes kept"} {
		if strings.Contains(md, unwanted) {
			t.Errorf("output has %q:\n%s", unwanted, md)
		}
	}

	// Without throttling nothing is said of the limiter; without
	// ascend-sim's samples nothing is said at all.
	s.Simulator.Throttled = 0
	if md := renderScaleCheck(s); strings.Contains(md, "held back 12") || !strings.Contains(md, "## What it shows") {
		t.Errorf("no throttling:\n%s", md)
	}
	s.Processes = s.Processes[1:]
	s.Derive()
	md = renderScaleCheck(s)
	if strings.Contains(md, "## What it shows") || !strings.Contains(md, "| all | 400 | 35.5 | 27.0 | 0.270 |\n") {
		t.Errorf("no ascend-sim:\n%s", md)
	}
}

func TestThin(t *testing.T) {
	rows := func(n int) []results.PodProgress {
		var out []results.PodProgress
		for i := range n {
			out = append(out, results.PodProgress{T: float64(i)})
		}
		return out
	}
	times := func(rs []results.PodProgress) string {
		var out []string
		for _, r := range rs {
			out = append(out, fmt.Sprint(r.T))
		}
		return strings.Join(out, " ")
	}
	for _, c := range []struct {
		n, keep int
		want    string
	}{
		{0, 12, ""},
		{3, 12, "0 1 2"},
		{12, 12, "0 1 2 3 4 5 6 7 8 9 10 11"},
		{13, 6, "0 2 4 6 8 10 12"},
		{14, 6, "0 2 4 6 8 10 12 13"},
		{30, 12, "0 2 4 6 8 10 12 14 16 18 20 22 24 26 28 29"},
	} {
		if got := times(thin(rows(c.n), c.keep)); got != c.want {
			t.Errorf("%d rows, about %d: got %q, want %q", c.n, c.keep, got, c.want)
		}
	}
}

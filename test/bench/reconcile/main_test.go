package main

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"mindie.io/deployer/test/bench/results"
)

func TestMedianAndQuantiles(t *testing.T) {
	// The lower middle of an even count, so that the median is one of the
	// runs and its CPU figures go with it.
	if got := medianOf([]float64{0.4, 0.1, 0.3, 0.2}); got != 0.2 {
		t.Errorf("medianOf: got %v, want 0.2", got)
	}
	m := map[string]time.Duration{}
	for i := 1; i <= 10; i++ {
		m[name("srv", i)] = time.Duration(i) * time.Second
	}
	want := map[string]float64{"p50": 6, "p90": 10, "max": 10}
	if got := quantiles(m); !reflect.DeepEqual(got, want) {
		t.Errorf("quantiles: got %v, want %v", got, want)
	}
	if got := quantiles(nil); got != nil {
		t.Errorf("quantiles of nothing: got %v", got)
	}
}

func TestNewQueueStats(t *testing.T) {
	m0 := map[string]float64{`workqueue_adds_total{name="inferserver"}`: 5, `workqueue_work_duration_seconds_count{name="inferserver"}`: 5,
		`workqueue_work_duration_seconds_sum{name="inferserver"}`: 1, `workqueue_adds_total{name="other"}`: 100}
	m1 := map[string]float64{`workqueue_adds_total{name="inferserver"}`: 25, `workqueue_work_duration_seconds_count{name="inferserver"}`: 27,
		`workqueue_work_duration_seconds_sum{name="inferserver"}`: 9, `workqueue_retries_total{name="inferserver"}`: 2,
		`workqueue_queue_duration_seconds_sum{name="inferserver"}`: 11, `workqueue_adds_total{name="other"}`: 500}
	want := &results.Queue{Adds: 20, Syncs: 22, Retries: 2, WorkSeconds: 8, QueueSeconds: 11, ElapsedSeconds: 4}
	if got := newQueueStats(m0, m1, 4*time.Second); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestSummarizeLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mindie-apiserver.log")
	before := "E0101 00:00:00.000000 1 x.go:1] before the run, not counted\n"
	during := "I0101 00:00:01.000000 1 x.go:1] \"Waited before sending request\" delay=\"1.5s\"\n" +
		"E0101 00:00:02.000000 1 x.go:1] \"Syncing InferServer failed\" key=\"ns/srv-00001\"\n" +
		"E0101 00:00:03.000000 1 x.go:1] \"Syncing InferServer failed\" key=\"ns/srv-00002\"\n" +
		"I0101 00:00:04.000000 1 x.go:1] \"Waited before sending request\" delay=\"800ms\"\n"
	if err := os.WriteFile(path, []byte(before+during), 0o644); err != nil {
		t.Fatal(err)
	}
	var m results.Measurement
	if err := summarizeLog(path, int64(len(before)), &m); err != nil {
		t.Fatal(err)
	}
	want := results.Log{SyncErrors: 2, ErrorLines: 2, Throttled: 2, MaxThrottle: 1.5,
		// Alike errors about other servers count once among the examples.
		ErrorExamples: []string{`"Syncing InferServer failed" key="ns/srv-00001"`}}
	if !reflect.DeepEqual(m.Log, want) {
		t.Errorf("got %+v, want %+v", m.Log, want)
	}
}

// The machine's figures come from /proc, where the benchmark runs.
func TestRunInfo(t *testing.T) {
	r := runInfo(runFlags{command: "c", workers: 20, baselineRuns: 3, timeout: 5 * time.Minute, settle: 5 * time.Second})
	if r.Command != "c" || r.Workers != 20 || r.BaselineRuns != 3 || r.TimeoutSeconds != 300 || r.SettleSeconds != 5 || r.CPUs < 1 || r.Go == "" {
		t.Errorf("got %+v", r)
	}
	if _, err := os.Stat("/proc/meminfo"); err == nil && r.MemTotalKiB <= 0 {
		t.Errorf("MemTotalKiB: got %d, want /proc/meminfo's", r.MemTotalKiB)
	}
}

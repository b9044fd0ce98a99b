package results

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func measurement(n int, observed, baseline float64) Measurement {
	m := Measurement{N: n}
	m.Reconcile.Children, m.Reconcile.Observed, m.Reconcile.ObservedSeconds = n, n, observed
	m.Baseline.SeenSeconds = baseline
	m.Memory.BeforeKiB, m.Memory.PeakKiB = 1000, 1000+int64(100*n)
	return m
}

// Each run of the benchmark puts one N into the file: N is kept sorted,
// a second measurement of an N replaces the first, and a run measured
// otherwise does not mix with it.
func TestPutSaveLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "reconcile.json")
	r, err := LoadReconcile(path, true)
	if err != nil {
		t.Fatal(err)
	}
	run := Run{Command: "hack/reconcile-bench.sh", Workers: 20, BaselineRuns: 3, TimeoutSeconds: 300, SettleSeconds: 5}
	goals := Goals{MaxRatio: 100, MaxPeakGrowthKiBPerServer: 256}
	for _, m := range []Measurement{measurement(1000, 80, 1.6), measurement(100, 8, 0.1), measurement(100, 10, 0.1)} {
		if err := r.Put(run, goals, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := LoadReconcile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Sizes) != 2 || got.Sizes[0].N != 100 || got.Sizes[1].N != 1000 {
		t.Fatalf("sizes: got %+v", got.Sizes)
	}
	if s := got.Sizes[0].Summary; s.Ratio != 100 || s.ServersPerSecond != 10 || s.PeakGrowthKiBPerServer != 100 || !s.MeetsGoals {
		t.Errorf("N=100, the second measurement: got %+v", s)
	}
	if s := got.Sizes[1].Summary; s.Ratio != 50 || !s.MeetsGoals {
		t.Errorf("N=1000: got %+v", s)
	}

	other := run
	other.Workers = 10
	if err := got.Put(other, goals, measurement(10, 1, 0.1)); err == nil || !strings.Contains(err.Error(), "workers 20") {
		t.Errorf("a run with other workers: got %v, want an error naming the file's", err)
	}
}

func TestDerive(t *testing.T) {
	goals := Goals{MaxRatio: 60, MaxPeakGrowthKiBPerServer: 50}
	for _, c := range []struct {
		name string
		m    Measurement
		want Summary
	}{
		{"within the goals", measurement(10, 5, 0.1), Summary{Ratio: 50, ServersPerSecond: 2, PeakGrowthKiBPerServer: 100}},
		{"not every status observed", func() Measurement {
			m := measurement(10, 5, 0.1)
			m.Reconcile.Observed = 9
			return m
		}(), Summary{PeakGrowthKiBPerServer: 100}},
		{"no baseline", measurement(10, 5, 0), Summary{ServersPerSecond: 2, PeakGrowthKiBPerServer: 100}},
	} {
		r := Reconcile{Goals: goals, Sizes: []Measurement{c.m}}
		r.Derive()
		if got := r.Sizes[0].Summary; got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
	// The growth of 100 KiB per server misses 50 KiB; without that goal,
	// the ratio of 50 meets 60.
	r := Reconcile{Goals: Goals{MaxRatio: 60}, Sizes: []Measurement{measurement(10, 5, 0.1)}}
	r.Derive()
	if !r.Sizes[0].Summary.MeetsGoals {
		t.Errorf("ratio 50 under 60, no memory goal: got %+v, want the goals met", r.Sizes[0].Summary)
	}
	r.Goals.MaxPeakGrowthKiBPerServer = 50
	r.Derive()
	if r.Sizes[0].Summary.MeetsGoals {
		t.Errorf("100 KiB per server over 50: got %+v, want the goals missed", r.Sizes[0].Summary)
	}
}

func TestLoadRejects(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string]string{
		"version.json": `{"version": 2, "sizes": []}`,
		"broken.json":  `{"version": 1, "sizes": [`,
	} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadReconcile(path, true); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
	if _, err := LoadReconcile(filepath.Join(dir, "missing.json"), false); err == nil {
		t.Error("a missing file, not allowed: want an error")
	}
}

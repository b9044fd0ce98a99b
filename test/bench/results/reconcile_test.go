package results

import (
	"os"
	"path/filepath"
	"reflect"
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
	if s := got.Sizes[0].Summary; s.Ratio != 100 || s.ServersPerSecond != 10 || s.PeakGrowthKiBPerServer != 100 || !s.MeetsGoals || len(s.Checks) != 2 {
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
	// Fewer baseline runs (a large N's) go with the others.
	other = run
	other.BaselineRuns = 1
	if err := got.Put(other, goals, measurement(10, 1, 0.1)); err != nil {
		t.Errorf("a run with one baseline run: %v", err)
	}
	// Another bound on the phases only says how long the benchmark waited:
	// each measurement keeps its own.
	other = run
	other.TimeoutPerServerSeconds = run.TimeoutPerServerSeconds + 0.15
	if err := got.Put(other, goals, measurement(10, 1, 0.1)); err != nil {
		t.Errorf("a run with another bound per server: %v", err)
	}
	// Other flags of mindie-apiserver make other measurements.
	other = run
	other.APIServerFlags = "--controller-workers=16"
	if err := got.Put(other, goals, measurement(10, 1, 0.1)); err == nil || !strings.Contains(err.Error(), "--controller-workers=16") {
		t.Errorf("a run with other mindie-apiserver flags: got %v, want an error naming them", err)
	}
}

// A measurement keeps the machine it was measured on when a later run on
// another machine puts another N; one put before measurements recorded it
// takes the machine of the run that put the results last.
func TestPutKeepsEachMeasurementsMachine(t *testing.T) {
	run := Run{Workers: 20, CPUs: 2, CPU: "AMD EPYC", Command: "RECONCILE_SIZES=10000 hack/reconcile-bench.sh"}
	r := &Reconcile{Version: Version, Run: run, Sizes: []Measurement{measurement(10000, 1700, 1300)}}
	later := run
	later.CPU, later.Command = "Intel Xeon", "RECONCILE_SIZES=1000 RECONCILE_ADD=1 hack/reconcile-bench.sh"
	if err := r.Put(later, Goals{}, measurement(1000, 60, 40)); err != nil {
		t.Fatal(err)
	}
	got := map[int]string{}
	for _, m := range r.Sizes {
		got[m.N] = m.Machine
	}
	if want := map[int]string{10000: "2 CPUs, AMD EPYC", 1000: "2 CPUs, Intel Xeon"}; !reflect.DeepEqual(got, want) {
		t.Errorf("machines = %v, want %v", got, want)
	}
	if r.Run.CPU != "Intel Xeon" {
		t.Errorf("the results' run is on %q, want the last run's machine", r.Run.CPU)
	}
	cmds := map[int]string{}
	for _, m := range r.Sizes {
		cmds[m.N] = m.Command
	}
	if want := map[int]string{10000: run.Command, 1000: later.Command}; !reflect.DeepEqual(cmds, want) {
		t.Errorf("commands = %v, want %v", cmds, want)
	}
}

// A file of the first format (its baseline N ConfigMaps) is read and
// checked against its own goals, but takes no measurement of this one.
func TestConfigMapBaselineFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "reconcile.json")
	data := `{"version": 1, "run": {"workers": 20, "baselineRuns": 3, "timeoutSeconds": 300, "settleSeconds": 5},
	  "goals": {"maxRatio": 100, "maxPeakGrowthKiBPerServer": 256},
	  "sizes": [{"n": 1000, "baseline": {"seenSeconds": 0.5}, "reconcile": {"observedSeconds": 37.5, "children": 1000, "observed": 1000, "queue": {"retries": 1079, "syncs": 1080}},
	             "memory": {"beforeKiB": 114688, "peakKiB": 247688}}]}`
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := LoadReconcile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	if !r.ConfigMapBaseline() {
		t.Error("version 1: want a ConfigMap baseline")
	}
	m := r.Sizes[0]
	if m.Reconcile.Queue == nil || m.Reconcile.Queue.Requeues != 1079 {
		t.Errorf("the queue's retries read as requeues: got %+v", m.Reconcile.Queue)
	}
	want := []Check{
		{Goal: GoalRatio, Max: 100, Value: 75, Known: true, Met: true},
		{Goal: GoalGrowth, Max: 256, Value: 133, Known: true, Met: true},
	}
	if !reflect.DeepEqual(m.Summary.Checks, want) || !m.Summary.MeetsGoals {
		t.Errorf("checks: got %+v, want %+v", m.Summary, want)
	}
	run := Run{Workers: 20, BaselineRuns: 3, TimeoutSeconds: 300, SettleSeconds: 5}
	if err := r.Put(run, Goals{}, measurement(100, 1, 0.1)); err == nil || !strings.Contains(err.Error(), "version 1") {
		t.Errorf("a measurement of version %d into a file of version 1: got %v, want an error", Version, err)
	}
}

// The goals of a size apply to that N only; the others to every N. A time
// or a ratio that was not measured misses its goal.
func TestDerive(t *testing.T) {
	goals := Goals{MaxRatio: 60, MaxPeakGrowthKiBPerServer: 50,
		Sizes: []SizeGoals{{N: 10, MaxRatio: 40, MaxObservedSeconds: 4, MaxPeakKiB: 2000}}}
	for _, c := range []struct {
		name       string
		m          Measurement
		want       Summary
		wantChecks []Check
	}{
		{"the goals of N=10: a ratio of 50 over 40, 5 s over 4 s, 2,000 KiB at its bound, 100 KiB a server over 50",
			measurement(10, 5, 0.1), Summary{Ratio: 50, ServersPerSecond: 2, PeakGrowthKiBPerServer: 100},
			[]Check{
				{Goal: GoalRatio, Max: 40, Value: 50, Known: true},
				{Goal: GoalObservedSeconds, Max: 4, Value: 5, Known: true},
				{Goal: GoalPeakKiB, Max: 2000, Value: 2000, Known: true, Met: true},
				{Goal: GoalGrowth, Max: 50, Value: 100, Known: true},
			}},
		{"N=20 has only the goals of every N: a ratio of 2.5 under 60",
			func() Measurement {
				m := measurement(20, 5, 2)
				m.Memory.PeakKiB = m.Memory.BeforeKiB + 20*40
				return m
			}(), Summary{Ratio: 2.5, ServersPerSecond: 4, PeakGrowthKiBPerServer: 40, MeetsGoals: true},
			[]Check{
				{Goal: GoalRatio, Max: 60, Value: 2.5, Known: true, Met: true},
				{Goal: GoalGrowth, Max: 50, Value: 40, Known: true, Met: true},
			}},
		{"a floor of 4 s: 40 times the baseline's 0.1 s, and 5 s are 1.25 times it",
			func() Measurement {
				m := measurement(20, 5, 0.1)
				m.Memory.PeakKiB = m.Memory.BeforeKiB
				m.Floor = &Floor{ObservedSeconds: 4}
				return m
			}(), Summary{Ratio: 50, FloorRatio: 40, OverFloor: 1.25, ServersPerSecond: 4, MeetsGoals: true},
			[]Check{
				{Goal: GoalRatio, Max: 60, Value: 50, Known: true, Met: true},
				{Goal: GoalGrowth, Max: 50, Known: true, Met: true},
			}},
		{"not every status observed: no ratio, no time, no rate",
			func() Measurement {
				m := measurement(10, 5, 0.1)
				m.Reconcile.Observed = 9
				m.Floor = &Floor{ObservedSeconds: 4}
				return m
			}(), Summary{PeakGrowthKiBPerServer: 100},
			[]Check{
				{Goal: GoalRatio, Max: 40},
				{Goal: GoalObservedSeconds, Max: 4, Value: 5},
				{Goal: GoalPeakKiB, Max: 2000, Value: 2000, Known: true, Met: true},
				{Goal: GoalGrowth, Max: 50, Value: 100, Known: true},
			}},
		{"no baseline: no ratio", measurement(10, 5, 0), Summary{ServersPerSecond: 2, PeakGrowthKiBPerServer: 100},
			[]Check{
				{Goal: GoalRatio, Max: 40},
				{Goal: GoalObservedSeconds, Max: 4, Value: 5, Known: true},
				{Goal: GoalPeakKiB, Max: 2000, Value: 2000, Known: true, Met: true},
				{Goal: GoalGrowth, Max: 50, Value: 100, Known: true},
			}},
	} {
		r := Reconcile{Goals: goals, Sizes: []Measurement{c.m}}
		r.Derive()
		got := r.Sizes[0].Summary
		checks := got.Checks
		got.Checks = nil
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
		if !reflect.DeepEqual(checks, c.wantChecks) {
			t.Errorf("%s: checks: got %+v, want %+v", c.name, checks, c.wantChecks)
		}
	}
	// Within every goal of its size, N=10 meets them.
	m := measurement(10, 3, 0.1)
	m.Memory.PeakKiB = m.Memory.BeforeKiB + 400
	r := Reconcile{Goals: goals, Sizes: []Measurement{m}}
	r.Derive()
	if s := r.Sizes[0].Summary; !s.MeetsGoals {
		t.Errorf("N=10 within its goals: got %+v, want them met", s)
	}
}

func TestLoadRejects(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string]string{
		"version.json": `{"version": 3, "sizes": []}`,
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

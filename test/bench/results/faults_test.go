package results

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		xs   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{7}, 7},
		{[]float64{9, 1, 5}, 5},
		{[]float64{6, 2}, 4},            // even: the mean of the middle two
		{[]float64{10, 1, 3, 100}, 6.5}, // sorted first
	} {
		xs := append([]float64(nil), c.xs...)
		if got := Median(xs); !near(got, c.want) {
			t.Errorf("Median(%v) = %g, want %g", c.xs, got, c.want)
		}
		for i := range xs {
			if xs[i] != c.xs[i] {
				t.Fatalf("Median reordered its argument: %v", xs)
			}
		}
	}
}

// sampleFaults: a baseline of 5, 6 and 5.5 s (median 5.5); Force met
// (median 6 s ≤ 15.5), Grace with one run that did not recover (missed
// whatever its median), a node loss over its bound (median 80 s > 75.5).
func sampleFaults() Faults {
	return Faults{
		Version: FaultsVersion,
		Goals:   FaultGoals{ForceMarginSeconds: 10, GraceMarginSeconds: 10, NodeLossMarginSeconds: 70},
		Setup:   FaultSetup{TerminationGracePeriodSeconds: 5, NodeLostSeconds: 60},
		Baseline: FaultBaseline{Samples: []StartupSample{
			{Scenario: ScenarioNPUForce, ScheduledToReadySeconds: 5, ScheduledToServingSeconds: 5.2},
			{Scenario: ScenarioNPUGrace, ScheduledToReadySeconds: 6, ScheduledToServingSeconds: 6.2},
			{Scenario: ScenarioNodeLoss, ScheduledToReadySeconds: 5.5, ScheduledToServingSeconds: 5.6},
		}},
		Scenarios: []FaultScenario{
			{Name: ScenarioNPUForce, Runs: []FaultRun{
				{VictimDeleteSeconds: 0.1, ScheduledSeconds: 0.2, ReadySeconds: 5.2, ServingSeconds: 5.5, ReadyReplicasSeconds: 5.6},
				{VictimDeleteSeconds: 0.3, ScheduledSeconds: 0.4, ReadySeconds: 6.4, ServingSeconds: 6.5, ReadyReplicasSeconds: 6.6},
				{VictimDeleteSeconds: 0.2, ScheduledSeconds: 0.3, ReadySeconds: 5.8, ServingSeconds: 6, ReadyReplicasSeconds: 6.1},
			}},
			{Name: ScenarioNPUGrace, Runs: []FaultRun{
				{VictimDeleteSeconds: 0.1, ScheduledSeconds: 0.2, ReadySeconds: 5.2, ServingSeconds: 5.5},
				{VictimDeleteSeconds: 0.1, Error: "no replacement"}, // did not recover
			}},
			{Name: ScenarioNodeLoss, Runs: []FaultRun{
				{VictimDeleteSeconds: 70, ScheduledSeconds: 70.1, ReadySeconds: 75.1, ServingSeconds: 75.2},
				{VictimDeleteSeconds: 80, ScheduledSeconds: 80.1, ReadySeconds: 84.7, ServingSeconds: 84.8},
			}},
		},
	}
}

func TestFaultsDerive(t *testing.T) {
	r := sampleFaults()
	r.Derive()
	if !near(r.Baseline.MedianSeconds, 5.5) || !near(r.Baseline.MedianServingSeconds, 5.6) {
		t.Fatalf("baseline medians %g and %g, want 5.5 and 5.6", r.Baseline.MedianSeconds, r.Baseline.MedianServingSeconds)
	}
	force := r.ScenarioNamed(ScenarioNPUForce).Stats
	if force == nil || force.Runs != 3 || force.Recovered != 3 || !near(force.ServingSeconds, 6) || !near(force.OverBaselineSeconds, 0.5) ||
		!near(force.DeleteSeconds, 0.2) || !near(force.ScheduledSeconds, 0.3) || !near(force.StartupSeconds, 5.5) ||
		!near(force.ReadyReplicasSeconds, 6.1) || !near(force.BoundSeconds, 15.5) {
		t.Fatalf("Force stats %+v", force)
	}
	grace := r.ScenarioNamed(ScenarioNPUGrace).Stats
	// The run that did not recover counts in Runs, not in the medians
	// of the times; its deletion still counts.
	if grace.Runs != 2 || grace.Recovered != 1 || !near(grace.ServingSeconds, 5.5) || !near(grace.DeleteSeconds, 0.1) ||
		!near(grace.BoundSeconds, 5.5+5+10) {
		t.Fatalf("Grace stats %+v", grace)
	}
	node := r.ScenarioNamed(ScenarioNodeLoss).Stats
	if !near(node.ServingSeconds, 80) || !near(node.BoundSeconds, 75.5) || !near(node.StartupSeconds, 4.8) {
		t.Fatalf("node-loss stats %+v", node)
	}
	want := []struct {
		name         string
		value, bound float64
		met          bool
	}{
		{GoalFaultForce, 6, 15.5, true},
		{GoalFaultGrace, 5.5, 20.5, false}, // within the bound, but a run did not recover
		{GoalFaultNode, 80, 75.5, false},   // 80 > 75.5
	}
	if len(r.Summary.Goals) != len(want) {
		t.Fatalf("%d goals, want %d: %+v", len(r.Summary.Goals), len(want), r.Summary.Goals)
	}
	for i, w := range want {
		g := r.Summary.Goals[i]
		if g.Name != w.name || !near(g.Value, w.value) || !near(g.Bound, w.bound) || g.Met != w.met || !g.Measured || !g.AtMost || !g.Simulated {
			t.Errorf("goal %d: %+v, want %+v", i, g, w)
		}
	}
}

func TestFaultsDeriveMissing(t *testing.T) {
	// Without a baseline nothing is measured; a scenario that did not
	// run still shows its goal, not measured.
	r := sampleFaults()
	r.Baseline.Samples = nil
	r.Scenarios = r.Scenarios[:1]
	r.Derive()
	if len(r.Summary.Goals) != 3 {
		t.Fatalf("goals %+v", r.Summary.Goals)
	}
	for _, g := range r.Summary.Goals {
		if g.Measured || g.Met {
			t.Errorf("goal %+v measured without a baseline", g)
		}
	}
	if r.Summary.Goals[1].Name != GoalFaultGrace || r.Summary.Goals[2].Name != GoalFaultNode {
		t.Errorf("goals of the scenarios that did not run: %+v", r.Summary.Goals[1:])
	}
	// No run recovered: measured is false, whatever the baseline.
	r = sampleFaults()
	r.Scenarios = []FaultScenario{{Name: ScenarioNPUForce, Runs: []FaultRun{{Error: "timeout"}}}}
	r.Derive()
	if g := r.Summary.Goals[0]; g.Measured || g.Met {
		t.Errorf("goal with no recovered run: %+v", g)
	}
	// An unknown scenario has statistics and no goal.
	r = sampleFaults()
	r.Scenarios = append(r.Scenarios, FaultScenario{Name: "other", Runs: []FaultRun{{ServingSeconds: 3}}})
	r.Derive()
	if len(r.Summary.Goals) != 3 || r.ScenarioNamed("other").Stats == nil || r.ScenarioNamed("other").Stats.BoundSeconds != 0 {
		t.Errorf("unknown scenario: goals %+v, stats %+v", r.Summary.Goals, r.ScenarioNamed("other").Stats)
	}
}

func TestFaultRunStartup(t *testing.T) {
	if s := (FaultRun{ScheduledSeconds: 1, ReadySeconds: 6.5}).StartupSeconds(); !near(s, 5.5) {
		t.Errorf("startup %g, want 5.5", s)
	}
	if s := (FaultRun{ReadySeconds: 6.5}).StartupSeconds(); s != 0 {
		t.Errorf("startup without a binding %g, want 0", s)
	}
	if (FaultRun{ReadySeconds: 6}).Recovered() || !(FaultRun{ServingSeconds: 6}).Recovered() {
		t.Error("Recovered is whether a replacement answered")
	}
}

func TestFaultsSaveLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "faults.json")
	r := sampleFaults()
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := LoadFaults(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Scenarios) != 3 || len(got.Summary.Goals) != 3 || !got.Summary.Goals[0].Met || got.Summary.Goals[2].Met {
		t.Fatalf("loaded %+v", got.Summary)
	}
	data, _ := os.ReadFile(path)
	if err := os.WriteFile(path, []byte(strings.Replace(string(data), `"version": 1`, `"version": 2`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFaults(path); err == nil || !strings.Contains(err.Error(), "version 2") {
		t.Fatalf("loading version 2: %v", err)
	}
	if err := os.WriteFile(path, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFaults(path); err == nil {
		t.Fatal("loaded a broken file")
	}
}

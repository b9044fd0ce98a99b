package results

import (
	"path/filepath"
	"testing"
)

func TestHADerive(t *testing.T) {
	r := &HA{
		Version:  HAVersion,
		Goals:    HAGoals{ActSeconds: 15, MinThroughputRatio: 0.8, MaxOpSeconds: 5},
		Baseline: HAPhase{Ops: 400, OpsPerSecond: 20, MaxMs: 300},
		Failover: HAPhase{Ops: 450, OpsPerSecond: 18, MaxMs: 6000, Problems: []string{"create x: 500"}},
		Takeover: HATakeover{ActSeconds: 12},
	}
	path := filepath.Join(t.TempDir(), "ha.json")
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := LoadHA(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Summary.ThroughputRatio != 0.9 {
		t.Errorf("throughput ratio %v, want 0.9", got.Summary.ThroughputRatio)
	}
	met := map[string]bool{}
	for _, g := range got.Summary.Goals {
		if !g.Measured {
			t.Errorf("%s not measured", g.Name)
		}
		met[g.Name] = g.Met
	}
	want := map[string]bool{GoalHAAct: true, GoalHAFailures: false, GoalHAThroughput: true, GoalHAMaxOp: false}
	for name, w := range want {
		if met[name] != w {
			t.Errorf("%s: met %t, want %t", name, met[name], w)
		}
	}
	// No takeover seen: the goal is not measured, so not met.
	r.Takeover.ActSeconds = 0
	r.Derive()
	if g := r.Summary.Goals[0]; g.Measured || g.Met {
		t.Errorf("takeover not seen: %+v", g)
	}
}

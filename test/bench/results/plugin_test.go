package results

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// samplePlugin: status's median 0.2 s against a baseline of 0.4 s (both
// goals met); get's median 1.2 s (over 1 s) against 0.6 s (2× > 1.5×).
func samplePlugin() Plugin {
	return Plugin{
		Version: PluginVersion,
		Goals:   PluginGoals{StatusSeconds: 0.5, StatusRatio: 1, GetSeconds: 1, GetRatio: 1.5},
		Setup:   PluginSetup{Instances: 256, Servers: 1000, Runs: 3},
		Status: &PluginComparison{
			Measured: PluginCommand{Seconds: []float64{0.3, 0.2, 0.1}, CPUSeconds: []float64{0.1, 0.2, 0.15}},
			Baseline: PluginCommand{Seconds: []float64{0.4, 0.5, 0.35}},
		},
		Get: &PluginComparison{
			Measured: PluginCommand{Seconds: []float64{1.2, 1.1, 1.3}},
			Baseline: PluginCommand{Seconds: []float64{0.6, 0.6, 0.7}},
		},
	}
}

func TestPluginDerive(t *testing.T) {
	r := samplePlugin()
	r.Derive()
	m := r.Status.Measured
	if !near(m.MedianSeconds, 0.2) || !near(m.MinSeconds, 0.1) || !near(m.MaxSeconds, 0.3) || !near(m.MedianCPUSeconds, 0.15) {
		t.Fatalf("status stats %+v", m)
	}
	if !near(r.Status.Ratio, 0.5) || !near(r.Get.Ratio, 2) {
		t.Fatalf("ratios %g and %g, want 0.5 and 2", r.Status.Ratio, r.Get.Ratio)
	}
	want := []struct {
		name         string
		value, bound float64
		met          bool
	}{
		{fmt.Sprintf(GoalPluginStatus, 256), 0.2, 0.5, true},
		{fmt.Sprintf(GoalPluginStatusRatio, 256), 0.5, 1, true},
		{fmt.Sprintf(GoalPluginGet, 1000), 1.2, 1, false},
		{fmt.Sprintf(GoalPluginGetRatio, 1000), 2, 1.5, false},
	}
	if len(r.Summary.Goals) != len(want) {
		t.Fatalf("%d goals, want %d: %+v", len(r.Summary.Goals), len(want), r.Summary.Goals)
	}
	for i, w := range want {
		g := r.Summary.Goals[i]
		if g.Name != w.name || !near(g.Value, w.value) || !near(g.Bound, w.bound) || g.Met != w.met || !g.Measured || !g.AtMost || g.Simulated {
			t.Errorf("goal %d: %+v, want %+v", i, g, w)
		}
	}
}

func TestPluginDeriveMissing(t *testing.T) {
	// A comparison not run, or one without baseline runs, shows its goals
	// not measured (the time goal still measured when the command ran).
	r := samplePlugin()
	r.Get = nil
	r.Status.Baseline.Seconds = nil
	r.Derive()
	g := r.Summary.Goals
	if len(g) != 4 || !g[0].Measured || g[1].Measured || g[1].Met || g[2].Measured || g[3].Measured || g[2].Met {
		t.Fatalf("goals %+v", g)
	}
	if r.Status.Ratio != 0 || r.Status.Baseline.MaxSeconds != 0 {
		t.Errorf("without baseline runs: ratio %g, max %g", r.Status.Ratio, r.Status.Baseline.MaxSeconds)
	}
}

func TestPluginSaveLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plugin.json")
	r := samplePlugin()
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := LoadPlugin(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status == nil || len(got.Summary.Goals) != 4 || !got.Summary.Goals[0].Met || got.Summary.Goals[2].Met || !near(got.Get.Ratio, 2) {
		t.Fatalf("loaded %+v", got.Summary)
	}
	data, _ := os.ReadFile(path)
	if err := os.WriteFile(path, []byte(strings.Replace(string(data), `"version": 1`, `"version": 2`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPlugin(path); err == nil || !strings.Contains(err.Error(), "version 2") {
		t.Fatalf("loading version 2: %v", err)
	}
	if err := os.WriteFile(path, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPlugin(path); err == nil {
		t.Fatal("loaded a broken file")
	}
}

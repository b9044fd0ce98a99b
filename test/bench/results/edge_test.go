package results

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sampleEdge: 1,000 nodes; the direct pods all Ready in 40 s, the job
// Succeeded in 100 s (2.5×, over the 1.5× bound); mindie-apiserver idle at
// 60 MiB and at most 180 MiB during the job (+120 MiB, within 150).
func sampleEdge() Edge {
	return Edge{
		Version: EdgeVersion,
		Goals:   EdgeGoals{MaxJobToDirectRatio: 1.5, MaxRSSGrowthMiB: 150},
		Setup:   EdgeSetup{Nodes: 1000, MaxConcurrentNodes: 100, InstancesPerNode: 1},
		Direct:  EdgeDirect{Pods: 1000, CreatedSeconds: 10, ScheduledSeconds: 25, ReadySeconds: 40, DeleteSeconds: 12},
		Job: EdgeJob{Phase: "Succeeded", Targets: 1000, Succeeded: 1000, NodesSucceeded: 1000,
			SucceededSeconds: 100, PodsReadySeconds: 99, DeleteSeconds: 15},
		Memory: EdgeMemory{IdleMiB: 60, PeakMiB: 180, AfterMiB: 90},
	}
}

func TestEdgeDerive(t *testing.T) {
	r := sampleEdge()
	r.Derive()
	if !near(r.Summary.Ratio, 2.5) || !near(r.Summary.RSSGrowthMiB, 120) {
		t.Fatalf("ratio %g, growth %g MiB: want 2.5 and 120", r.Summary.Ratio, r.Summary.RSSGrowthMiB)
	}
	want := []GoalCheck{
		{Name: GoalEdgeTime, Value: 2.5, Bound: 1.5, AtMost: true, Measured: true, Met: false, Simulated: true},
		{Name: GoalEdgeMemory, Value: 120, Bound: 150, AtMost: true, Measured: true, Met: true, Simulated: false},
	}
	if len(r.Summary.Goals) != len(want) {
		t.Fatalf("goals %+v", r.Summary.Goals)
	}
	for i, w := range want {
		g := r.Summary.Goals[i]
		if g.Name != w.Name || !near(g.Value, w.Value) || g.Bound != w.Bound || g.AtMost != w.AtMost || g.Measured != w.Measured ||
			g.Met != w.Met || g.Simulated != w.Simulated {
			t.Errorf("goal %d: %+v, want %+v", i, g, w)
		}
	}

	// A fast job meets the time goal; a memory-hungry one misses its own.
	r = sampleEdge()
	r.Job.SucceededSeconds, r.Memory.PeakMiB = 50, 260
	r.Derive()
	if g := r.Summary.Goals; !g[0].Met || g[1].Met || !near(g[1].Value, 200) {
		t.Errorf("job in 50 s, peak 260 MiB: %+v", g)
	}
}

func TestEdgeDeriveNotMeasured(t *testing.T) {
	for name, change := range map[string]func(*Edge){
		"job ended TimedOut":             func(r *Edge) { r.Job.Phase = "TimedOut" },
		"a node did not succeed":         func(r *Edge) { r.Job.Succeeded, r.Job.NodesSucceeded = 999, 999 },
		"fewer targets than nodes":       func(r *Edge) { r.Job.Targets = 999 },
		"the baseline did not get Ready": func(r *Edge) { r.Direct.ReadySeconds = 0 },
		"the job was not timed":          func(r *Edge) { r.Job.SucceededSeconds = 0 },
	} {
		r := sampleEdge()
		change(&r)
		r.Derive()
		if g := r.Summary.Goals[0]; g.Measured || g.Met || r.Summary.Ratio != 0 {
			t.Errorf("%s: time goal %+v, ratio %g: want not measured", name, g, r.Summary.Ratio)
		}
		if g := r.Summary.Goals[1]; !g.Measured {
			t.Errorf("%s: the memory goal should not depend on it: %+v", name, g)
		}
	}
	r := sampleEdge()
	r.Memory.IdleMiB = 0
	r.Derive()
	if g := r.Summary.Goals[1]; g.Measured || g.Met {
		t.Errorf("without an idle RSS: %+v", g)
	}
}

func TestEdgeValidate(t *testing.T) {
	r := sampleEdge()
	if err := r.Validate(); err != nil {
		t.Fatalf("a good run: %v", err)
	}
	for name, c := range map[string]struct {
		change func(*Edge)
		want   string
	}{
		"version":   {func(r *Edge) { r.Version = 2 }, "version 2"},
		"no nodes":  {func(r *Edge) { r.Setup.Nodes = 0 }, "setup.nodes 0"},
		"goals":     {func(r *Edge) { r.Goals.MaxRSSGrowthMiB = 0 }, "must be positive"},
		"too many":  {func(r *Edge) { r.Job.Succeeded = 1001 }, "job.succeeded 1001: want 0 to 1000"},
		"negative":  {func(r *Edge) { r.Direct.ReadySeconds = -1 }, "direct.readySeconds -1: negative"},
		"two pods":  {func(r *Edge) { r.Direct.Pods = 2001 }, "direct.pods 2001: want 0 to 1000"},
		"instances": {func(r *Edge) { r.Setup.InstancesPerNode, r.Direct.Pods = 2, 2000 }, ""},
	} {
		r := sampleEdge()
		c.change(&r)
		err := r.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want an error with %q", name, err, c.want)
		}
	}
}

func TestEdgeSaveLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edge.json")
	r := sampleEdge()
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := LoadEdge(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Setup.Nodes != 1000 || !near(got.Summary.Ratio, 2.5) || got.Summary.Goals[0].Met || !got.Summary.Goals[1].Met {
		t.Fatalf("loaded %+v", got.Summary)
	}
	data, _ := os.ReadFile(path)
	if err := os.WriteFile(path, []byte(strings.Replace(string(data), `"version": 1`, `"version": 2`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadEdge(path); err == nil || !strings.Contains(err.Error(), "version 2") {
		t.Fatalf("loading version 2: %v", err)
	}
	if err := os.WriteFile(path, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadEdge(path); err == nil {
		t.Fatal("loaded a broken file")
	}
	bad := sampleEdge()
	bad.Job.Failed = -1
	if err := bad.Save(path); err == nil || !strings.Contains(err.Error(), "job.failed -1") {
		t.Fatalf("saved results that cannot be true: %v", err)
	}
}

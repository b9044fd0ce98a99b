package results

import (
	"path/filepath"
	"testing"
)

func sampleRouter() Router {
	return Router{
		Version: RouterVersion,
		Goals:   RouterGoals{GoalRate: 1000, MaxAddedP50Ms: 1, MaxAddedP99Ms: 5, MinTTFTP90Speedup: 5, MinHitRateOfOracle: 0.9, MaxNoReuseRatio: 1.03},
		Over: Overhead{
			Loads: []OverheadLoad{
				{PromptBytes: 1024, Rate: 100, Direct: Latency{Requests: 100, P50Ms: 1, P99Ms: 2, CPUSeconds: 0.1}, Routed: Latency{Requests: 100, P50Ms: 9, P99Ms: 99, CPUSeconds: 0.2}},
				{PromptBytes: 1024, Rate: 1000, Direct: Latency{Requests: 1000, P50Ms: 0.5, P99Ms: 2, CPUSeconds: 1}, Routed: Latency{Requests: 1000, P50Ms: 0.75, P99Ms: 4, CPUSeconds: 1.5}},
				{PromptBytes: 200 << 10, Rate: 1000, Direct: Latency{Requests: 1000, P50Ms: 1, P99Ms: 3}, Routed: Latency{Requests: 1000, P50Ms: 500, P99Ms: 900}},
			},
			Capacity: []OverheadCapacity{{PromptBytes: 1024, Seconds: 2, DirectRate: 1000, RoutedRate: 500, DirectCPU: 2, RoutedCPU: 2}},
		},
		Quality: Quality{Traces: []TraceResult{
			{Shape: TraceShape{Name: TraceChat, OracleHitRate: 0.8}, Runs: []AlgorithmRun{
				{Algorithm: AlgorithmCacheAffinity, HitRate: 0.76, TTFTP90Ms: 100},
				{Algorithm: AlgorithmRoundRobin, HitRate: 0.5, TTFTP90Ms: 450},
			}},
			{Shape: TraceShape{Name: TraceNoReuse}, Runs: []AlgorithmRun{
				{Algorithm: AlgorithmCacheAffinity, TTFTP90Ms: 103},
				{Algorithm: AlgorithmRoundRobin, TTFTP90Ms: 100},
			}},
		}},
	}
}

func TestRouterDerive(t *testing.T) {
	r := sampleRouter()
	r.Derive()
	l := r.Over.Loads[1]
	if l.AddedP50Ms != 0.25 || l.AddedP99Ms != 2 || l.RouterCPUMicros != 500 {
		t.Fatalf("load at 1000/s: added %g/%g ms, CPU %g µs; want 0.25/2 ms, 500 µs", l.AddedP50Ms, l.AddedP99Ms, l.RouterCPUMicros)
	}
	// 2 s over 1000 requests routed less 2 s over 2000 direct: 2 ms less 1 ms.
	if c := r.Over.Capacity[0].RouterCPUMicros; c != 1000 {
		t.Fatalf("capacity CPU %g µs, want 1000", c)
	}
	want := map[string]struct {
		value float64
		met   bool
	}{
		"added latency p50, 1 KiB prompts at 1000/s":   {0.25, true},
		"added latency p99, 1 KiB prompts at 1000/s":   {2, true},
		"added latency p50, 200 KiB prompts at 1000/s": {499, false},
		"added latency p99, 200 KiB prompts at 1000/s": {897, false},
		GoalChatTTFTSpeedup:                            {4.5, false},
		GoalChatHitOfOracle:                            {0.95, true},
		GoalNoReuseTTFTRatio:                           {1.03, true},
	}
	if len(r.Summary.Goals) != len(want) {
		t.Fatalf("%d goals, want %d: %+v", len(r.Summary.Goals), len(want), r.Summary.Goals)
	}
	for _, g := range r.Summary.Goals {
		w, ok := want[g.Name]
		if !ok {
			t.Errorf("unexpected goal %q", g.Name)
			continue
		}
		if diff := g.Value - w.value; diff > 1e-9 || diff < -1e-9 || g.Met != w.met || !g.Measured {
			t.Errorf("%s: %g met=%t measured=%t, want %g met=%t", g.Name, g.Value, g.Met, g.Measured, w.value, w.met)
		}
		if g.Simulated != (g.Name == GoalChatTTFTSpeedup || g.Name == GoalChatHitOfOracle || g.Name == GoalNoReuseTTFTRatio) {
			t.Errorf("%s: simulated=%t", g.Name, g.Simulated)
		}
	}
}

func TestRouterDeriveWithoutRuns(t *testing.T) {
	r := Router{Version: RouterVersion, Goals: sampleRouter().Goals}
	r.Derive()
	for _, g := range r.Summary.Goals {
		if g.Measured || g.Met {
			t.Errorf("%s: measured=%t met=%t with nothing measured", g.Name, g.Measured, g.Met)
		}
	}
}

func TestRouterSaveLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "router.json")
	r := sampleRouter()
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := LoadRouter(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Trace(TraceChat).Run(AlgorithmRoundRobin).TTFTP90Ms != 450 || len(got.Summary.Goals) != 7 {
		t.Fatalf("loaded %+v", got)
	}
	if got.Trace("other") != nil || got.Trace(TraceChat).Run("random") != nil {
		t.Fatal("found a trace or run that is not there")
	}
	r.Version = 99
	if err := saveJSON(path, &r); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadRouter(path); err == nil {
		t.Fatal("loaded version 99")
	}
}

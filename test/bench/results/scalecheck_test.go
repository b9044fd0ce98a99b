package results

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func scaleCheck() ScaleCheck {
	return ScaleCheck{
		Run: ScaleRun{Nodes: 10, Deployments: 4, Replicas: 25},
		Processes: []ProcessUsage{
			{Name: "etcd", PeakRSSKiB: 1000, CPUSeconds: 5, ApplyToEndCPUSeconds: 4},
			{Name: SimulatorName, PeakRSSKiB: 3000, ApplyRSSKiB: 1000, EndRSSKiB: 2500, CPUSeconds: 3, ApplyToEndCPUSeconds: 2},
			// As busy as etcd: the first in the order is the busiest.
			{Name: "kube-scheduler", PeakRSSKiB: 500, CPUSeconds: 4.5, ApplyToEndCPUSeconds: 4},
		},
		Simulator: SimulatorLog{Started: 50},
		Progress:  []PodProgress{{T: 1}, {T: 11, Created: 100}, {T: 20, Created: 100, Ready: 100}},
	}
}

func TestScaleCheckDerive(t *testing.T) {
	s := scaleCheck()
	s.Derive()
	want := ScaleSummary{Pods: 100, ApplyToEndSeconds: 20, PeakRSSKiB: 4500, CPUSeconds: 12.5, ApplyToEndCPUSeconds: 10,
		CPUSecondsPerPod: 0.1, Cores: 0.5, Busiest: "etcd", SimulatorGrowthKiBPerPod: 30}
	if s.Summary != want {
		t.Errorf("got %+v, want %+v", s.Summary, want)
	}

	// Nothing started, no progress, no simulator: no division by zero.
	s = scaleCheck()
	s.Simulator.Started, s.Progress = 0, nil
	s.Derive()
	if g := s.Summary; g.SimulatorGrowthKiBPerPod != 1500 || g.Cores != 0 || g.ApplyToEndSeconds != 0 {
		t.Errorf("nothing started, no progress: got %+v", g)
	}
	s.Processes = s.Processes[:1]
	s.Run.Deployments = 0
	s.Derive()
	if g := s.Summary; g.SimulatorGrowthKiBPerPod != 0 || g.CPUSecondsPerPod != 0 || g.Busiest != "etcd" {
		t.Errorf("no simulator, no pods: got %+v", g)
	}
}

func TestScaleCheckSaveLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "scale-check.json")
	s := scaleCheck()
	ready := 12.5
	s.Pods.AllReadySeconds = &ready
	if err := s.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := LoadScaleCheck(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != ScaleCheckVersion || got.Summary.Pods != 100 || got.Nodes.AllReadySeconds != nil {
		t.Errorf("got %+v", got)
	}
	if !reflect.DeepEqual(got, &s) {
		t.Errorf("read back %+v, wrote %+v", got, s)
	}

	for name, data := range map[string]string{
		"version.json": `{"version": 2}`,
		"broken.json":  `{"version": 1, "processes": [`,
	} {
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadScaleCheck(path); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}

package main

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"mindie.io/deployer/test/bench/results"
)

// A work directory as hack/scale-check.sh leaves it, with a few samples of
// each file (tabs as the script writes them).
var workFiles = map[string]string{
	"run.tsv": `date	2026-01-02T03:04:05Z
cpu-model	Test CPU @ 2.0GHz
cpus	2
mem-total-kib	8388608
clk-tck	100
components	ascend-sim etcd kube-apiserver
nodes	3
deployments	2
replicas	5
node-timeout	600
ready-timeout	900
sample-every	2
poll-every	10
localup-node-timeouts	1
nodes-seconds	
max-ready-nodes	3
final-nodes	2
all-ready-seconds	21.4
final-ready	10
`,
	"marks.tsv": "up-start\t990.0\npods-start\t1000.5\npods-end\t1010.5\n",
	// ascend-sim is sampled first only once it runs; kube-apiserver's last
	// samples are missing; kube-scheduler is not a component asked for.
	"samples.tsv": `1000.0	etcd	11	50000	100
1000.0	kube-apiserver	12	200000	300
1000.0	ascend-sim	13	30000	40
1000.0	kube-scheduler	14	9000	10
1005.0	ascend-sim	13	45000	240
1005.0	etcd	11	60000	250
1005.0	kube-apiserver	12	250000	900
1010.0	ascend-sim	13	40000	440
1010.0	etcd	11	55000	400
1012.0	ascend-sim	13	41000	460
1012.0	etcd	11	70000	410
`,
	"progress.tsv": "elapsed_s\tready_nodes\tpods_created\tpods_ready\n1.2\t3\t0\t0\n11.3\t2\t10\t4\n21.4\t2\t10\t10\n",
	"pods.txt": `Running   sim-node-0   True
Running   sim-node-1   True
Pending   <none>       <none>
Running   sim-node-2   False
`,
	"logs/ascend-sim.log": `I0102 03:03:00.000001 pod scale-check/sim-0-a: started on node sim-node-0 with IP 127.77.0.2, NPUs []
I0102 03:03:01.000001 pod scale-check/sim-0-a container server: ready=false
I0102 03:03:11.000001 pod scale-check/sim-0-a container server: ready=true
I0102 03:03:12.000001 pod scale-check/sim-0-b: not found (will retry)
I0102 03:03:13.000001 node sim-node-1: renew lease: context deadline exceeded
I0102 03:03:14.000001 pod scale-check/sim-0-b: status: client rate limiter Wait returned an error: context deadline exceeded (retrying in 1s)
I0102 03:03:15.000001 "Waited before sending request" delay="1.52s" reason="client-side throttling, not priority and fairness" verb="GET" URL="https://127.0.0.1:1/api"
I0102 03:03:16.000001 "Waited before sending request" delay="850ms" reason="client-side throttling, not priority and fairness" verb="PUT" URL="https://127.0.0.1:1/api"
`,
}

func writeWork(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoad(t *testing.T) {
	got, err := load(writeWork(t, workFiles))
	if err != nil {
		t.Fatal(err)
	}
	ready := 21.4
	want := &results.ScaleCheck{
		Version: results.ScaleCheckVersion,
		Run: results.ScaleRun{Date: "2026-01-02T03:04:05Z", CPU: "Test CPU @ 2.0GHz", CPUs: 2, MemTotalKiB: 8388608,
			Nodes: 3, Deployments: 2, Replicas: 5, NodeTimeoutSeconds: 600, ReadyTimeoutSeconds: 900, SampleEverySeconds: 2, PollEverySeconds: 10},
		// nodes-seconds is empty: never all Ready at once.
		Nodes: results.ScaleNodes{LocalUpTimeouts: 1, MaxReady: 3, ReadyAtEnd: 2},
		Pods: results.ScalePods{AllReadySeconds: &ready, ReadyAtEnd: 10,
			States: map[string]int{"Running Ready=True": 2, "Running Ready=False": 1, "Pending Ready=<none>": 1}, Unscheduled: 1},
		// In the order of components. CPU whole run: the last sample's
		// ticks; apply to end: from the last sample at or before the
		// apply (1000.5); VmRSS at the end: the last sample at or before
		// 1010.5, so the later peak of etcd counts but not its VmRSS.
		Processes: []results.ProcessUsage{
			{Name: "ascend-sim", PeakRSSKiB: 45000, ApplyRSSKiB: 30000, EndRSSKiB: 40000, CPUSeconds: 4.6, ApplyToEndCPUSeconds: 4.2, Samples: 4},
			{Name: "etcd", PeakRSSKiB: 70000, ApplyRSSKiB: 50000, EndRSSKiB: 55000, CPUSeconds: 4.1, ApplyToEndCPUSeconds: 3.1, Samples: 4},
			{Name: "kube-apiserver", PeakRSSKiB: 250000, ApplyRSSKiB: 200000, EndRSSKiB: 250000, CPUSeconds: 9, ApplyToEndCPUSeconds: 6, Samples: 2},
		},
		// The lost status write is also a failed call; the longest wait is 1.52 s.
		Simulator: results.SimulatorLog{Started: 1, ContainersReady: 1, FailedCalls: 3, Throttled: 2, MaxThrottleSeconds: 1.52, LostStatusWrites: 1},
		Progress: []results.PodProgress{
			{T: 1.2, ReadyNodes: 3}, {T: 11.3, ReadyNodes: 2, Created: 10, Ready: 4}, {T: 21.4, ReadyNodes: 2, Created: 10, Ready: 10},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%+v\nwant\n%+v", got, want)
	}

	// The results file made from it.
	path := filepath.Join(t.TempDir(), "scale-check.json")
	if err := got.Save(path); err != nil {
		t.Fatal(err)
	}
	s, err := results.LoadScaleCheck(path)
	if err != nil {
		t.Fatal(err)
	}
	// (40,000 - 30,000) KiB over the one pod ascend-sim started; 13.3 CPU s
	// from the apply over 10 pods and over the last poll's 21.4 s.
	sum := s.Summary
	if sum.Pods != 10 || sum.PeakRSSKiB != 365000 || sum.Busiest != "kube-apiserver" || sum.SimulatorGrowthKiBPerPod != 10000 ||
		math.Abs(sum.ApplyToEndCPUSeconds-13.3) > 1e-9 || math.Abs(sum.CPUSecondsPerPod-1.33) > 1e-9 || math.Abs(sum.Cores-13.3/21.4) > 1e-9 {
		t.Errorf("summary: got %+v", sum)
	}
}

// A run that could not list its pods, whose simulator logged nothing and
// where no sample came before the apply: all of its CPU counts from the
// apply, and its VmRSS at the apply is unknown.
func TestLoadMissing(t *testing.T) {
	files := map[string]string{}
	for k, v := range workFiles {
		files[k] = v
	}
	delete(files, "pods.txt")
	delete(files, "logs/ascend-sim.log")
	files["marks.tsv"] = "pods-end\t1010.5\n"
	got, err := load(writeWork(t, files))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Pods.States) != 0 || got.Pods.States == nil || got.Pods.Unscheduled != 0 || got.Simulator != (results.SimulatorLog{}) {
		t.Errorf("pods and log: got %+v, %+v", got.Pods, got.Simulator)
	}
	if p := got.Processes[0]; p.ApplyRSSKiB != 0 || p.ApplyToEndCPUSeconds != p.CPUSeconds || p.EndRSSKiB != 40000 {
		t.Errorf("no sample before the apply: got %+v", p)
	}
}

// A broken file is an error that names the file, and the key or line.
func TestLoadErrors(t *testing.T) {
	for _, c := range []struct {
		file, data, want string
	}{
		{"run.tsv", strings.Replace(workFiles["run.tsv"], "cpus\t2\n", "", 1), "run.tsv: no cpus"},
		{"run.tsv", strings.Replace(workFiles["run.tsv"], "nodes\t3\n", "nodes\tthree\n", 1), `run.tsv: nodes: "three" is not an integer`},
		{"run.tsv", strings.Replace(workFiles["run.tsv"], "all-ready-seconds\t21.4", "all-ready-seconds\tsoon", 1), `all-ready-seconds: "soon" is not a number`},
		{"run.tsv", strings.Replace(workFiles["run.tsv"], "2026-01-02T03:04:05Z", "2026-01-02 03:04 UTC", 1), "date: \"2026-01-02 03:04 UTC\" is not RFC 3339"},
		{"run.tsv", strings.Replace(workFiles["run.tsv"], "clk-tck\t100", "clk-tck\t0", 1), "clk-tck: 0 is not a positive number"},
		{"run.tsv", strings.Replace(workFiles["run.tsv"], "components\tascend-sim etcd kube-apiserver", "components\t", 1), "components: empty"},
		{"run.tsv", workFiles["run.tsv"] + "stray line\n", `line 20: "stray line" is not key<TAB>value`},
		{"samples.tsv", "1000.0\tetcd\t11\t50000\n", "samples.tsv: line 1"},
		{"samples.tsv", "1000.0\tetcd\t11\t50 MiB\t100\n", "samples.tsv: line 1: strconv.ParseInt"},
		{"marks.tsv", "pods-start 1000\n", "marks.tsv: line 1"},
		{"progress.tsv", "elapsed_s\tready_nodes\tpods_created\tpods_ready\n1.2\t3\t0\n", "progress.tsv: line 2"},
		{"pods.txt", "Running sim-node-0\n", "pods.txt: line 1"},
	} {
		files := map[string]string{}
		for k, v := range workFiles {
			files[k] = v
		}
		files[c.file] = c.data
		_, err := load(writeWork(t, files))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %q: got %v, want an error with %q", c.file, c.data, err, c.want)
		}
	}
	files := map[string]string{}
	for k, v := range workFiles {
		files[k] = v
	}
	delete(files, "samples.tsv")
	if _, err := load(writeWork(t, files)); err == nil || !strings.Contains(err.Error(), "samples.tsv") {
		t.Errorf("no samples: got %v, want an error naming samples.tsv", err)
	}
}

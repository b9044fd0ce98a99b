package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/textlogger"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/cmd/server"
	"mindie.io/deployer/pkg/controller/worker"
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
	want := &results.Queue{Adds: 20, Syncs: 22, Requeues: 2, WorkSeconds: 8, QueueSeconds: 11, ElapsedSeconds: 4}
	if got := newQueueStats(m0, m1, 4*time.Second); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestSummarizeLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mindie-apiserver.log")
	before := "E0101 00:00:00.000000 1 x.go:1] before the run, not counted\n"
	warmup := "I0101 00:00:01.000000 1 x.go:1] \"Waited before sending request\" delay=\"1.5s\"\n" +
		"E0101 00:00:02.000000 1 x.go:1] \"Syncing InferServer failed\" err=\"boom\" key=\"ns/srv-00001\"\n"
	servers := "E0101 00:00:03.000000 1 x.go:1] \"Syncing InferServer failed\" err=\"boom\" key=\"ns/srv-00002\"\n" +
		"I0101 00:00:04.000000 1 x.go:1] \"Waited before sending request\" delay=\"800ms\"\n"
	after := "E0101 00:00:05.000000 1 x.go:1] \"Syncing InferServer failed\" err=\"boom\" key=\"ns/srv-00003\"\n"
	if err := os.WriteFile(path, []byte(before+warmup+servers+after), 0o644); err != nil {
		t.Fatal(err)
	}
	var m results.Measurement
	start := int64(len(before + warmup))
	window := logWindow{from: start, to: start + int64(len(servers))}
	if err := summarizeLog(path, int64(len(before)), window, &m); err != nil {
		t.Fatal(err)
	}
	want := results.Log{SyncErrors: 3, SyncErrorsReconcile: 1, ErrorLines: 3, Throttled: 2, MaxThrottle: 1.5,
		// Alike errors about other servers count once among the examples.
		ErrorExamples: []string{`"Syncing InferServer failed" err="boom" key="ns/srv-00001"`}}
	if !reflect.DeepEqual(m.Log, want) {
		t.Errorf("got %+v, want %+v", m.Log, want)
	}
}

// The line the benchmark counts as a failed sync is the one the
// controllers' worker loop logs when a sync of an InferServer fails.
func TestWorkerLogsFailedSync(t *testing.T) {
	var buf syncBuffer
	logger := textlogger.NewLogger(textlogger.NewConfig(textlogger.Output(&buf)))
	ctx, cancel := context.WithCancel(klog.NewContext(context.Background(), logger))
	defer cancel()
	queue := workqueue.NewTypedRateLimitingQueue(workqueue.NewTypedItemExponentialFailureRateLimiter[string](time.Hour, time.Hour))
	defer queue.ShutDown()
	failed := make(chan struct{})
	var once sync.Once
	worker.Run(ctx, queue, 1, "InferServer", func(context.Context, string) (time.Duration, error) {
		defer once.Do(func() { close(failed) })
		return 0, errors.New("boom")
	})
	queue.Add("ns/srv-00001")
	select {
	case <-failed:
	case <-time.After(10 * time.Second):
		t.Fatal("the sync did not run")
	}
	// The worker logs after the sync returned.
	var m results.Measurement
	path := filepath.Join(t.TempDir(), "mindie-apiserver.log")
	if err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		if err := os.WriteFile(path, buf.bytes(), 0o644); err != nil {
			return false, err
		}
		m = results.Measurement{}
		if err := summarizeLog(path, 0, logWindow{from: 0, to: 1 << 40}, &m); err != nil {
			return false, err
		}
		return m.Log.SyncErrors > 0, nil
	}); err != nil {
		t.Fatalf("no failed sync counted in what the worker logged:\n%s", buf.bytes())
	}
	if m.Log.SyncErrors != 1 || m.Log.SyncErrorsReconcile != 1 || m.Log.ErrorLines != 1 {
		t.Errorf("got %+v from:\n%s", m.Log, buf.bytes())
	}
}

// syncBuffer is a bytes.Buffer the logger writes to while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// The baseline writes what the controller would for a server like the
// benchmark's, defaulted, in the baseline's namespace, and owned by nothing.
func TestBaselineChildren(t *testing.T) {
	c, err := baselineChildren("base-0", 7)
	if err != nil {
		t.Fatal(err)
	}
	if c.rev.Namespace != "base-0" || *c.dep.Namespace != "base-0" || *c.svc.Namespace != "base-0" {
		t.Errorf("namespaces: %s, %s, %s", c.rev.Namespace, *c.dep.Namespace, *c.svc.Namespace)
	}
	if *c.dep.Name != "srv-00007" || *c.svc.Name != "srv-00007" || c.rev.Labels[v1alpha1.LabelServer] != "srv-00007" {
		t.Errorf("names: Deployment %s, Service %s, revision labelled %q", *c.dep.Name, *c.svc.Name, c.rev.Labels[v1alpha1.LabelServer])
	}
	if len(c.rev.OwnerReferences)+len(c.dep.OwnerReferences)+len(c.svc.OwnerReferences) != 0 {
		t.Errorf("owner references left: %v %v %v", c.rev.OwnerReferences, c.dep.OwnerReferences, c.svc.OwnerReferences)
	}
	// Defaulted: the Deployment keeps the server's default history.
	if c.dep.Spec == nil || c.dep.Spec.RevisionHistoryLimit == nil || *c.dep.Spec.RevisionHistoryLimit != v1alpha1.DefaultRevisionHistoryLimit {
		t.Errorf("the Deployment's history limit: got %+v, want the default %d", c.dep.Spec, v1alpha1.DefaultRevisionHistoryLimit)
	}
	// Apart from their UIDs, which are not in the children, two servers'
	// children differ by their names only: the template is the same.
	other, err := baselineChildren("base-0", 8)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimPrefix(c.rev.Name, "srv-00007"), strings.TrimPrefix(other.rev.Name, "srv-00008"); got != want {
		t.Errorf("revision hashes: %q and %q", got, want)
	}
}

func TestFirstChildrenDifferences(t *testing.T) {
	read := func() *firstChildren {
		c, err := baselineChildren("ns", 0)
		if err != nil {
			t.Fatal(err)
		}
		c.dep.Namespace, c.svc.Namespace = nil, nil
		return &firstChildren{rev: c.rev, dep: c.dep, svc: c.svc}
	}
	a, b := read(), read()
	if d := a.differences(b); d != "" {
		t.Errorf("alike: got %q", d)
	}
	b.svc.Labels["extra"] = "x"
	if d := a.differences(b); !strings.HasPrefix(d, "Service: baseline ") || !strings.Contains(d, `"extra":"x"`) || strings.Contains(d, "Deployment") {
		t.Errorf("a Service with one more label: got %q", d)
	}
}

func TestWriteRequests(t *testing.T) {
	apply := `apiserver_request_total{code="200",component="apiserver",dry_run="",group="apps",resource="deployments",scope="resource",subresource="",verb="APPLY",version="v1"}`
	apply201 := strings.Replace(apply, `code="200"`, `code="201"`, 1)
	applySecs := `apiserver_request_duration_seconds_sum{component="apiserver",dry_run="",group="apps",resource="deployments",scope="resource",subresource="",verb="APPLY",version="v1"}`
	status := `apiserver_request_total{code="200",component="apiserver",dry_run="",group="infer.mindie.io",resource="inferservers",scope="resource",subresource="status",verb="PUT",version="v1alpha1"}`
	list := `apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="LIST",version="v1"}`
	m0 := map[string]map[string]float64{
		kubeAPIServer:   {apply: 10, applySecs: 1, list: 5},
		mindieAPIServer: {status: 3},
	}
	m1 := map[string]map[string]float64{
		kubeAPIServer:   {apply: 40, apply201: 70, applySecs: 3, list: 500},
		mindieAPIServer: {status: 53},
	}
	want := []results.Requests{
		{Server: kubeAPIServer, Verb: "APPLY", Resource: "apps/deployments", Count: 100, Seconds: 2},
		{Server: mindieAPIServer, Verb: "PUT", Resource: "infer.mindie.io/inferservers/status", Count: 50},
	}
	if got := writeRequests(m0, m1); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

// The controller's settings are read with mindie-apiserver's own flags:
// what the command line leaves out is the server's default.
func TestSettingsFromArgs(t *testing.T) {
	defaults := server.NewOptions(io.Discard, io.Discard).Controllers
	got, err := settingsFromArgs([]string{"mindie-apiserver", "--etcd-servers=http://127.0.0.1:2379", "--controller-workers=16",
		"--kube-api-qps=400", "--audit-log-format=json", "--v=2"})
	if err != nil {
		t.Fatal(err)
	}
	want := &results.ControllerSettings{Workers: 16, KubeAPIQPS: 400, KubeAPIBurst: defaults.KubeAPIBurst}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if err := checkFlags([]string{"mindie-apiserver", "--controller-workers=16"}, " --controller-workers=16  --kube-api-qps=400"); err == nil ||
		!strings.Contains(err.Error(), "--kube-api-qps=400") {
		t.Errorf("a flag that did not reach the server: got %v", err)
	}
	if err := checkFlags([]string{"mindie-apiserver"}, ""); err != nil {
		t.Errorf("no flags wanted: got %v", err)
	}
}

func TestTimeoutFor(t *testing.T) {
	f := runFlags{n: 10000, timeout: 5 * time.Minute, timeoutPerServer: 100 * time.Millisecond}
	if got := f.timeoutFor(); got != 1300*time.Second {
		t.Errorf("got %s, want 21m40s", got)
	}
}

// The machine's figures come from /proc, where the benchmark runs.
func TestRunInfo(t *testing.T) {
	r := runInfo(runFlags{command: "c", workers: 20, baselineRuns: 3, timeout: 5 * time.Minute, timeoutPerServer: 100 * time.Millisecond,
		settle: 5 * time.Second, apiserverFlags: " --controller-workers=16   --kube-api-qps=400 "})
	if r.Command != "c" || r.Workers != 20 || r.BaselineRuns != 3 || r.TimeoutSeconds != 300 || r.TimeoutPerServerSeconds != 0.1 ||
		r.SettleSeconds != 5 || r.APIServerFlags != "--controller-workers=16 --kube-api-qps=400" || r.CPUs < 1 || r.Go == "" {
		t.Errorf("got %+v", r)
	}
	if _, err := os.Stat("/proc/meminfo"); err == nil && r.MemTotalKiB <= 0 {
		t.Errorf("MemTotalKiB: got %d, want /proc/meminfo's", r.MemTotalKiB)
	}
}

func TestMedianRunAndCombineRuns(t *testing.T) {
	run := func(observedSeconds float64, observed int, deleteSeconds float64, done bool) results.Measurement {
		m := results.Measurement{N: 10}
		m.Reconcile.ObservedSeconds, m.Reconcile.Observed = observedSeconds, observed
		m.Delete.Seconds, m.Delete.Done = deleteSeconds, done
		return m
	}
	runs := []results.Measurement{run(30, 10, 50, true), run(10, 10, 70, true), run(20, 10, 60, true)}
	if k := medianRun(runs); k != 2 {
		t.Fatalf("medianRun = %d, want 2 (20 s of 10, 20, 30)", k)
	}
	got := combineRuns(runs, 2)
	if got.Reconcile.ObservedSeconds != 20 || !reflect.DeepEqual(got.Reconcile.ObservedRuns, []float64{30, 10, 20}) {
		t.Errorf("combined: observed %v, runs %v; want 20 and [30 10 20]", got.Reconcile.ObservedSeconds, got.Reconcile.ObservedRuns)
	}
	if got.Delete.Seconds != 60 || !got.Delete.Done || !reflect.DeepEqual(got.Delete.Runs, []float64{50, 70, 60}) {
		t.Errorf("combined deletion: %v s, done %v, runs %v; want the median 60, done, [50 70 60]", got.Delete.Seconds, got.Delete.Done, got.Delete.Runs)
	}
	if runs[2].Reconcile.ObservedRuns != nil {
		t.Error("combineRuns changed the run it started from")
	}

	// A run that did not see every status counts as the slowest, however
	// early its last observed status came; a deletion not done in one run
	// is not done.
	runs = []results.Measurement{run(5, 7, 50, false), run(10, 10, 70, true), run(20, 10, 60, true), run(15, 10, 55, true)}
	if k := medianRun(runs); k != 3 {
		t.Fatalf("medianRun = %d, want 3 (15 s of 10, 15, 20 and the incomplete run)", k)
	}
	if got := combineRuns(runs, 3); got.Delete.Done || got.Delete.Seconds != 55 {
		t.Errorf("combined deletion: %v s, done %v; want 55 (lower middle of 50 55 60 70) and not done", got.Delete.Seconds, got.Delete.Done)
	}

	// One run is that run, untouched.
	one := []results.Measurement{run(12, 10, 40, true)}
	if got := combineRuns(one, medianRun(one)); !reflect.DeepEqual(got, one[0]) {
		t.Errorf("one run combined = %+v, want it unchanged", got)
	}
}

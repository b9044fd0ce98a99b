// Command reconcilebench is the reconcile benchmark that
// hack/reconcile-bench.sh runs on a local cluster of its own: it creates N
// InferServers at once and measures, from a watch, the time until every one
// has its children (a Deployment and a Service named like it and a
// ControllerRevision labelled with its name) and until every status is
// observed (status.observedGeneration == metadata.generation and
// status.updateRevision set), while it samples mindie-apiserver's resident
// memory every 200 ms. Beside it, in the same run, it measures a baseline:
// creating N ConfigMaps, which need no controller, with the same client and
// concurrency, until a watch has seen all of them.
//
//	reconcilebench ports -n 4                  free loopback ports, one line
//	reconcilebench run -n 100 -out r.json ...  one measurement, as JSON
//	reconcilebench report -out doc.md r.json…  docs/reconcile-bench.md
//	reconcilebench section -from doc.md -into docs/benchmarks.md
//	                                           puts the summary in benchmarks.md
//
// It dials only what the kubeconfig and -metrics-url name (the local cluster
// on loopback).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
	clientset "mindie.io/deployer/pkg/generated/clientset/versioned"
	inferinformers "mindie.io/deployer/pkg/generated/informers/externalversions"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: reconcilebench ports|run|report|section [flags]")
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "ports":
		err = ports(args)
	case "run":
		err = run(args)
	case "report":
		err = report(args)
	case "section":
		err = section(args)
	default:
		err = fmt.Errorf("unknown command %q: want ports, run, report or section", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "reconcilebench:", err)
		os.Exit(1)
	}
}

// ports prints n distinct free ports of 127.0.0.1, holding every socket
// open until all are picked.
func ports(args []string) error {
	fs := flag.NewFlagSet("ports", flag.ExitOnError)
	n := fs.Int("n", 4, "how many ports")
	_ = fs.Parse(args)
	var out []string
	for i := 0; i < *n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer func() { _ = l.Close() }()
		out = append(out, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	}
	fmt.Println(strings.Join(out, " "))
	return nil
}

// result is one measurement: N InferServers and their baseline.
type result struct {
	N       int    `json:"n"`
	Workers int    `json:"workers"`
	Start   string `json:"start"`
	// WarmupSeconds is how long one InferServer took to be observed before
	// the measurement (it includes the controller winning its Lease after
	// mindie-apiserver started).
	WarmupSeconds float64 `json:"warmupSeconds"`
	// SettleSeconds is how long memory was sampled after the last status was observed.
	SettleSeconds float64 `json:"settleSeconds"`

	Baseline struct {
		// Medians over the runs: every create returned, the watch saw all N.
		CreatedSeconds float64   `json:"createdSeconds"`
		SeenSeconds    float64   `json:"seenSeconds"`
		SeenRuns       []float64 `json:"seenRuns"` // each run's
		Errors         int       `json:"errors"`   // create calls retried
		// CPU seconds per process in the run whose time is the median.
		CPU map[string]float64 `json:"cpu"`
	} `json:"baseline"`

	Reconcile struct {
		CreatedSeconds  float64 `json:"createdSeconds"`
		ChildrenSeconds float64 `json:"childrenSeconds"` // the last server's children seen
		ObservedSeconds float64 `json:"observedSeconds"` // the last server's status observed
		Children        int     `json:"children"`        // servers that got all children
		Observed        int     `json:"observed"`        // servers whose status was observed
		Errors          int     `json:"errors"`
		// Quantiles, over the servers, of the time from the first create
		// to that server's children, and to its observed status.
		ChildrenQ map[string]float64 `json:"childrenQuantiles"`
		ObservedQ map[string]float64 `json:"observedQuantiles"`
		CPU       map[string]float64 `json:"cpu"`
		// Watch events (adds and updates) seen per kind until every status
		// was observed: the writes of the controller, the controller manager
		// and the scheduler that the benchmark could see.
		Writes map[string]int `json:"writes"`
		// Events the controller recorded, by "type reason", listed when every
		// status was observed (after the settle time) and again after the
		// deletion: the recorder writes them in the background.
		Events      map[string]int `json:"events"`
		EventsLater map[string]int `json:"eventsLater,omitempty"`
		// Queue is what the controller's work queue did meanwhile, from
		// mindie-apiserver's /metrics (nil when not scraped).
		Queue    *queueStats `json:"queue,omitempty"`
		Progress []progress  `json:"progress"`
	} `json:"reconcile"`

	Memory struct {
		BeforeKiB int64 `json:"beforeKiB"` // VmRSS just before the first create
		PeakKiB   int64 `json:"peakKiB"`   // highest VmRSS sampled until the end
		EndKiB    int64 `json:"endKiB"`    // VmRSS at the end of the settle time
		HWMKiB    int64 `json:"hwmKiB"`    // VmHWM at the end (the process's peak since it started)
		Samples   int   `json:"samples"`
	} `json:"memory"`

	Delete struct {
		Done    bool    `json:"done"`
		Seconds float64 `json:"seconds"` // until servers and children were gone
		Left    int     `json:"left"`    // servers and children left at the timeout
	} `json:"delete"`

	// From mindie-apiserver's log, the lines it wrote during the run.
	Log struct {
		SyncErrors    int      `json:"syncErrors"`    // "Syncing InferServer failed"
		ErrorLines    int      `json:"errorLines"`    // klog E lines
		Throttled     int      `json:"throttled"`     // "Waited before sending request"
		MaxThrottle   float64  `json:"maxThrottle"`   // longest such wait, seconds
		ErrorExamples []string `json:"errorExamples"` // a few distinct error lines
	} `json:"log"`
}

// progress is how far the servers were at a moment.
type progress struct {
	T        float64 `json:"t"`
	Created  int     `json:"created"`
	Children int     `json:"children"`
	Observed int     `json:"observed"`
}

type runFlags struct {
	kubeconfig, ns, baselineNS, warmupNS, pids, logPath, out string
	metricsURL, metricsCA                                    string
	n, workers, clkTck, baselineRuns                         int
	timeout, deleteTimeout, settle, quiet                    time.Duration
	del                                                      bool
}

func run(args []string) error {
	var f runFlags
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "admin kubeconfig of the cluster")
	fs.IntVar(&f.n, "n", 100, "InferServers (and baseline ConfigMaps) to create")
	fs.IntVar(&f.workers, "workers", 20, "goroutines that create concurrently")
	fs.IntVar(&f.baselineRuns, "baseline-runs", 3, "runs of the baseline; the median counts")
	fs.StringVar(&f.ns, "namespace", "", "namespace of the InferServers (default reconcile-bench-<n>)")
	fs.StringVar(&f.baselineNS, "baseline-namespace", "", "namespace of the baseline ConfigMaps (default reconcile-baseline-<n>)")
	fs.StringVar(&f.warmupNS, "warmup-namespace", "reconcile-warmup", "namespace of the warm-up InferServer")
	fs.StringVar(&f.pids, "pids", "", "directory of pid files (hack/local-up.sh's $OUT/pids); mindie-apiserver's is sampled")
	fs.StringVar(&f.logPath, "log", "", "mindie-apiserver's log: the lines written during the run are summarized")
	fs.IntVar(&f.clkTck, "clk-tck", 100, "clock ticks per second of /proc/<pid>/stat (getconf CLK_TCK)")
	fs.DurationVar(&f.timeout, "timeout", 5*time.Minute, "how long to wait for every status to be observed")
	fs.DurationVar(&f.settle, "settle", 5*time.Second, "memory is still sampled this long after the last status was observed")
	fs.DurationVar(&f.quiet, "quiet", 3*time.Second, "pause between the phases")
	fs.BoolVar(&f.del, "delete", true, "delete the InferServers at the end and time it")
	fs.DurationVar(&f.deleteTimeout, "delete-timeout", 3*time.Minute, "how long to wait for the deletion")
	fs.StringVar(&f.out, "out", "", "where the JSON result goes (default stdout)")
	fs.StringVar(&f.metricsURL, "metrics-url", "", "mindie-apiserver's /metrics (https://127.0.0.1:<port>/metrics), read with the kubeconfig's client certificate; empty: not read")
	fs.StringVar(&f.metricsCA, "metrics-ca", "", "CA file of mindie-apiserver's serving certificate")
	_ = fs.Parse(args)
	if f.ns == "" {
		f.ns = fmt.Sprintf("reconcile-bench-%d", f.n)
	}
	if f.baselineNS == "" {
		f.baselineNS = fmt.Sprintf("reconcile-baseline-%d", f.n)
	}
	if f.n < 1 || f.workers < 1 || f.baselineRuns < 1 || f.pids == "" {
		return fmt.Errorf("run: -n, -workers and -baseline-runs must be positive and -pids is required")
	}

	cfg, err := clientcmd.BuildConfigFromFlags("", f.kubeconfig)
	if err != nil {
		return err
	}
	// The benchmark's own client must not hold requests back.
	cfg.QPS, cfg.Burst = -1, 0
	cfg.UserAgent = "reconcilebench"
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	infer, err := clientset.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()

	pids, err := readPids(f.pids)
	if err != nil {
		return err
	}
	mindie, ok := pids["mindie-apiserver"]
	if !ok {
		return fmt.Errorf("no mindie-apiserver pid in %s", f.pids)
	}
	var logOffset int64
	if f.logPath != "" {
		if st, err := os.Stat(f.logPath); err == nil {
			logOffset = st.Size()
		}
	}

	var r result
	r.N, r.Workers, r.Start, r.SettleSeconds = f.n, f.workers, time.Now().UTC().Format(time.RFC3339), f.settle.Seconds()
	for _, ns := range []string{f.ns, f.baselineNS, f.warmupNS} {
		if err := ensureNamespace(ctx, kube, ns); err != nil {
			return err
		}
	}
	logf("warming up: one InferServer in %s", f.warmupNS)
	if r.WarmupSeconds, err = warmup(ctx, infer, f.warmupNS, fmt.Sprintf("warmup-%d", f.n)); err != nil {
		return err
	}
	logf("warm-up server observed after %.1fs", r.WarmupSeconds)
	sleep(ctx, f.quiet)

	if err := baseline(ctx, kube, f, pids, &r); err != nil {
		return err
	}
	logf("baseline: %d ConfigMaps created in %.2fs, all seen after %.2fs (medians of %v)", f.n, r.Baseline.CreatedSeconds, r.Baseline.SeenSeconds, r.Baseline.SeenRuns)
	sleep(ctx, f.quiet)

	scrape := func(context.Context) (map[string]float64, error) { return nil, nil }
	if f.metricsURL != "" {
		scrape = metricsScraper(cfg, f.metricsURL, f.metricsCA)
	}
	if err := reconcile(ctx, kube, infer, scrape, f, pids, mindie, &r); err != nil {
		return err
	}
	if f.logPath != "" {
		if err := summarizeLog(f.logPath, logOffset, &r); err != nil {
			logf("reading %s: %v", f.logPath, err)
		}
	}

	data, err := json.MarshalIndent(&r, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	if f.out == "" {
		_, err = os.Stdout.Write(data)
		return err
	}
	return os.WriteFile(f.out, data, 0o644)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "reconcilebench: "+format+"\n", args...)
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// readPids reads the pid files of a directory: name -> pid.
func readPids(dir string) (map[string]int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
			out[e.Name()] = pid
		}
	}
	return out, nil
}

// cpuTicks is utime+stime of a process.
func cpuTicks(pid int) (int64, bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 > len(s) {
		return 0, false
	}
	// After "pid (comm) ": state is field 0, utime 11, stime 12.
	fields := strings.Fields(s[i+2:])
	if len(fields) < 13 {
		return 0, false
	}
	u, err1 := strconv.ParseInt(fields[11], 10, 64)
	st, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return u + st, true
}

// cpuMeter measures the CPU time of the cluster's processes over a phase.
type cpuMeter struct {
	pids  map[string]int
	start map[string]int64
	tck   float64
}

func startCPU(pids map[string]int, clkTck int) *cpuMeter {
	m := &cpuMeter{pids: pids, start: map[string]int64{}, tck: float64(clkTck)}
	for name, pid := range pids {
		if t, ok := cpuTicks(pid); ok {
			m.start[name] = t
		}
	}
	return m
}

func (m *cpuMeter) stop() map[string]float64 {
	out := map[string]float64{}
	for name, t0 := range m.start {
		if t, ok := cpuTicks(m.pids[name]); ok {
			out[name] = float64(t-t0) / m.tck
		}
	}
	return out
}

// memStatus reads VmRSS and VmHWM (KiB) of a process.
func memStatus(pid int) (rss, hwm int64, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = n
		case "VmHWM":
			hwm = n
		}
	}
	return rss, hwm, nil
}

// memSampler samples a process's VmRSS every interval and keeps the peak.
type memSampler struct {
	mu        sync.Mutex
	peak, cur int64
	n         int
	stopCh    chan struct{}
	done      chan struct{}
}

func sampleMemory(pid int, every time.Duration) *memSampler {
	s := &memSampler{stopCh: make(chan struct{}), done: make(chan struct{})}
	tick := func() {
		rss, _, err := memStatus(pid)
		if err != nil {
			return
		}
		s.mu.Lock()
		s.cur, s.n = rss, s.n+1
		s.peak = max(s.peak, rss)
		s.mu.Unlock()
	}
	tick()
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.stopCh:
				tick()
				return
			case <-t.C:
				tick()
			}
		}
	}()
	return s
}

func (s *memSampler) stop() (peak, last int64, n int) {
	close(s.stopCh)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak, s.cur, s.n
}

// ensureNamespace creates ns unless it exists and waits for its default
// ServiceAccount, which the pods of the InferServers need.
func ensureNamespace(ctx context.Context, kube kubernetes.Interface, ns string) error {
	_, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", ns, err)
	}
	return wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := kube.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
}

// serverObject is one single-node InferServer with one instance of one NPU,
// behind a ClusterIP Service (NodePorts would run out).
func serverObject(ns, name string) *v1alpha1.InferServer {
	return &v1alpha1.InferServer{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.InferServerSpec{
			Replicas:         ptr.To[int32](1),
			NodesPerInstance: ptr.To[int32](1),
			Resources: v1alpha1.InferResources{
				CPU:    ptr.To(resource.MustParse("1")),
				Memory: ptr.To(resource.MustParse("1000Mi")),
				NPU:    v1alpha1.NPURequest{Type: v1alpha1.NPUTypeAscend910, Count: ptr.To[int32](1)},
			},
			Service: v1alpha1.InferServiceExposure{Type: corev1.ServiceTypeClusterIP},
		},
	}
}

func observed(s *v1alpha1.InferServer) bool {
	return s.Status.ObservedGeneration > 0 && s.Status.ObservedGeneration == s.Generation && s.Status.UpdateRevision != ""
}

// warmup creates one InferServer and waits until its status is observed:
// the controller runs, holds its Lease and has synced its caches.
func warmup(ctx context.Context, infer clientset.Interface, ns, name string) (float64, error) {
	start := time.Now()
	_, err := infer.InferV1alpha1().InferServers(ns).Create(ctx, serverObject(ns, name), metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return 0, fmt.Errorf("create warm-up server: %w", err)
	}
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		s, err := infer.InferV1alpha1().InferServers(ns).Get(ctx, name, metav1.GetOptions{})
		return err == nil && observed(s), nil
	})
	if err != nil {
		return 0, fmt.Errorf("warm-up server %s/%s not observed within 3m: is the controller running? %w", ns, name, err)
	}
	return time.Since(start).Seconds(), nil
}

// createAll calls create(i) for i in [0, n) from workers goroutines,
// retrying a failed call up to five times. It returns when every call has
// returned, with the number of failed attempts, and calls created(i) as
// each one succeeds.
func createAll(ctx context.Context, n, workers int, create func(context.Context, int) error, created func(int)) (errs int, err error) {
	idx := make(chan int)
	var mu sync.Mutex
	var last error
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range idx {
				for attempt := 0; ; attempt++ {
					cctx, cancel := context.WithTimeout(ctx, time.Minute)
					err := create(cctx, i)
					cancel()
					if err == nil || apierrors.IsAlreadyExists(err) {
						created(i)
						break
					}
					mu.Lock()
					errs++
					if attempt >= 4 || ctx.Err() != nil {
						last = err
						mu.Unlock()
						break
					}
					mu.Unlock()
					sleep(ctx, time.Second)
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		idx <- i
	}
	close(idx)
	wg.Wait()
	return errs, last
}

func name(prefix string, i int) string { return fmt.Sprintf("%s-%05d", prefix, i) }

// baseline creates N ConfigMaps (each holding the JSON of an InferServer's
// spec, so the bytes are alike) and times until a watch has seen them all;
// it does so f.baselineRuns times, with new names each time, and keeps the
// median, as a small N takes only a fraction of a second.
func baseline(ctx context.Context, kube kubernetes.Interface, f runFlags, pids map[string]int, r *result) error {
	spec, err := json.Marshal(serverObject(f.baselineNS, "x").Spec)
	if err != nil {
		return err
	}
	var created, seen []float64
	var cpus []map[string]float64
	for run := 0; run < f.baselineRuns; run++ {
		meter := startCPU(pids, f.clkTck)
		c, s, errs, err := baselineOnce(ctx, kube, f, fmt.Sprintf("cm%d", run), spec)
		r.Baseline.Errors += errs
		if err != nil {
			return err
		}
		cpus = append(cpus, meter.stop())
		created, seen = append(created, c), append(seen, s)
		sleep(ctx, time.Second)
	}
	r.Baseline.CreatedSeconds, r.Baseline.SeenSeconds = medianOf(created), medianOf(seen)
	r.Baseline.SeenRuns = seen
	// The CPU of the run whose time is the median goes in the report.
	r.Baseline.CPU = cpus[slices.Index(seen, r.Baseline.SeenSeconds)]
	return nil
}

// medianOf is the median of xs (the lower middle one of an even count,
// so that it is one of the values).
func medianOf(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	return s[(len(s)-1)/2]
}

// baselineOnce creates N ConfigMaps named <prefix>-<i> and returns the
// seconds until every create returned and until the watch saw them all.
func baselineOnce(ctx context.Context, kube kubernetes.Interface, f runFlags, prefix string, spec []byte) (created, seen float64, errs int, err error) {
	ns := f.baselineNS
	factory := kubeinformers.NewSharedInformerFactoryWithOptions(kube, 0, kubeinformers.WithNamespace(ns))
	inf := factory.Core().V1().ConfigMaps().Informer()
	var mu sync.Mutex
	names := map[string]bool{}
	all := make(chan struct{})
	var start time.Time
	var seenAt time.Duration
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(obj any) {
		cm, ok := obj.(*corev1.ConfigMap)
		if !ok || !strings.HasPrefix(cm.Name, prefix+"-") {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if !names[cm.Name] {
			names[cm.Name] = true
			if len(names) == f.n {
				seenAt = time.Since(start)
				close(all)
			}
		}
	}}); err != nil {
		return 0, 0, 0, err
	}
	stop := make(chan struct{})
	defer func() { close(stop); factory.Shutdown() }()
	factory.Start(stop)
	factory.WaitForCacheSync(stop)

	mu.Lock()
	start = time.Now()
	mu.Unlock()
	errs, err = createAll(ctx, f.n, f.workers, func(ctx context.Context, i int) error {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name(prefix, i), Namespace: ns}, Data: map[string]string{"spec.json": string(spec)}}
		_, err := kube.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
		return err
	}, func(int) {})
	created = time.Since(start).Seconds()
	if err != nil {
		return created, 0, errs, fmt.Errorf("baseline: create ConfigMaps: %w", err)
	}
	select {
	case <-all:
	case <-time.After(f.timeout):
	case <-ctx.Done():
		return created, 0, errs, ctx.Err()
	}
	mu.Lock()
	defer mu.Unlock()
	if len(names) < f.n {
		return created, 0, errs, fmt.Errorf("baseline: the watch saw %d of %d ConfigMaps within %s", len(names), f.n, f.timeout)
	}
	return created, seenAt.Seconds(), errs, nil
}

// tracker records when each server was created, got its children and had
// its status observed.
type tracker struct {
	mu    sync.Mutex
	start time.Time
	n     int
	want  map[string]bool // the servers of this run

	created, childrenAt, observedAt map[string]time.Duration
	dep, svc, rev                   map[string]bool
	writes                          map[string]int
	done                            chan struct{}
	closed                          bool
}

func newTracker(n int) *tracker {
	t := &tracker{n: n, want: map[string]bool{}, created: map[string]time.Duration{}, childrenAt: map[string]time.Duration{},
		observedAt: map[string]time.Duration{}, dep: map[string]bool{}, svc: map[string]bool{}, rev: map[string]bool{},
		writes: map[string]int{}, done: make(chan struct{})}
	for i := 0; i < n; i++ {
		t.want[name("srv", i)] = true
	}
	return t
}

// since is the time from the start; zero before the start.
func (t *tracker) since() time.Duration {
	if t.start.IsZero() {
		return 0
	}
	return time.Since(t.start)
}

func (t *tracker) checkLocked(name string) {
	if _, ok := t.childrenAt[name]; !ok && t.dep[name] && t.svc[name] && t.rev[name] {
		t.childrenAt[name] = t.since()
	}
	if !t.closed && len(t.childrenAt) == t.n && len(t.observedAt) == t.n {
		t.closed = true
		close(t.done)
	}
}

// child notes a child of server `name` of one kind.
func (t *tracker) child(kind string, set map[string]bool, name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.writes[kind]++
	if !t.want[name] {
		return
	}
	set[name] = true
	t.checkLocked(name)
}

func (t *tracker) server(s *v1alpha1.InferServer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.writes["InferServer"]++
	if !t.want[s.Name] {
		return
	}
	if _, ok := t.observedAt[s.Name]; !ok && observed(s) {
		t.observedAt[s.Name] = t.since()
	}
	t.checkLocked(s.Name)
}

func (t *tracker) progress() progress {
	t.mu.Lock()
	defer t.mu.Unlock()
	return progress{T: round(t.since().Seconds(), 1), Created: len(t.created), Children: len(t.childrenAt), Observed: len(t.observedAt)}
}

func round(v float64, digits int) float64 {
	p := 1.0
	for i := 0; i < digits; i++ {
		p *= 10
	}
	return float64(int64(v*p+0.5)) / p
}

// quantiles of the durations: p50, p90, max (seconds).
func quantiles(m map[string]time.Duration) map[string]float64 {
	if len(m) == 0 {
		return nil
	}
	var ds []float64
	for _, d := range m {
		ds = append(ds, d.Seconds())
	}
	sort.Float64s(ds)
	q := func(p float64) float64 { return ds[min(len(ds)-1, int(p*float64(len(ds))))] }
	return map[string]float64{"p50": q(0.5), "p90": q(0.9), "max": ds[len(ds)-1]}
}

func maxOf(m map[string]time.Duration) float64 {
	var out time.Duration
	for _, d := range m {
		out = max(out, d)
	}
	return out.Seconds()
}

// reconcile creates N InferServers at once and watches them and their
// children until every status is observed, sampling mindie-apiserver's
// memory; then it deletes them.
func reconcile(ctx context.Context, kube kubernetes.Interface, infer clientset.Interface,
	scrape func(context.Context) (map[string]float64, error), f runFlags, pids map[string]int, mindie int, r *result) error {
	ns := f.ns
	t := newTracker(f.n)
	kf := kubeinformers.NewSharedInformerFactoryWithOptions(kube, 0, kubeinformers.WithNamespace(ns),
		kubeinformers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = v1alpha1.LabelServer }))
	inff := inferinformers.NewSharedInformerFactoryWithOptions(infer, 0, inferinformers.WithNamespace(ns))
	handler := func(add func(any)) cache.ResourceEventHandlerFuncs {
		return cache.ResourceEventHandlerFuncs{AddFunc: add, UpdateFunc: func(_, n any) { add(n) }}
	}
	deps := kf.Apps().V1().Deployments().Informer()
	svcs := kf.Core().V1().Services().Informer()
	revs := kf.Apps().V1().ControllerRevisions().Informer()
	servers := inff.Infer().V1alpha1().InferServers().Informer()
	for _, reg := range []struct {
		inf cache.SharedIndexInformer
		fn  func(any)
	}{
		{deps, func(o any) {
			if d, ok := o.(*appsv1.Deployment); ok {
				t.child("Deployment", t.dep, d.Name)
			}
		}},
		{svcs, func(o any) {
			if s, ok := o.(*corev1.Service); ok {
				t.child("Service", t.svc, s.Name)
			}
		}},
		{revs, func(o any) {
			if cr, ok := o.(*appsv1.ControllerRevision); ok {
				t.child("ControllerRevision", t.rev, cr.Labels[v1alpha1.LabelServer])
			}
		}},
		{servers, func(o any) {
			if s, ok := o.(*v1alpha1.InferServer); ok {
				t.server(s)
			}
		}},
	} {
		if _, err := reg.inf.AddEventHandler(handler(reg.fn)); err != nil {
			return err
		}
	}
	stop := make(chan struct{})
	defer func() { close(stop); kf.Shutdown(); inff.Shutdown() }()
	kf.Start(stop)
	inff.Start(stop)
	kf.WaitForCacheSync(stop)
	inff.WaitForCacheSync(stop)
	t.mu.Lock()
	clear(t.writes)
	t.mu.Unlock()

	mem := sampleMemory(mindie, 200*time.Millisecond)
	m0, err := scrape(ctx)
	if err != nil {
		logf("reading mindie-apiserver's metrics: %v", err)
	}
	r.Memory.BeforeKiB, _, _ = memStatus(mindie)
	cpu := startCPU(pids, f.clkTck)
	t.mu.Lock()
	t.start = time.Now()
	t.mu.Unlock()

	// Progress every second, while the servers are created and reconciled.
	progDone, progStop := make(chan struct{}), make(chan struct{})
	var prog []progress
	go func() {
		defer close(progDone)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-progStop:
				prog = append(prog, t.progress())
				return
			case <-t.done:
				prog = append(prog, t.progress())
				return
			case <-tick.C:
				p := t.progress()
				prog = append(prog, p)
				if int(p.T)%10 == 0 {
					logf("t=%.0fs: %d created, %d with children, %d observed", p.T, p.Created, p.Children, p.Observed)
				}
			}
		}
	}()

	logf("creating %d InferServers in %s with %d workers", f.n, ns, f.workers)
	errs, err := createAll(ctx, f.n, f.workers, func(ctx context.Context, i int) error {
		_, err := infer.InferV1alpha1().InferServers(ns).Create(ctx, serverObject(ns, name("srv", i)), metav1.CreateOptions{})
		return err
	}, func(i int) {
		t.mu.Lock()
		t.created[name("srv", i)] = t.since()
		t.mu.Unlock()
	})
	r.Reconcile.Errors = errs
	t.mu.Lock()
	r.Reconcile.CreatedSeconds = maxOf(t.created)
	t.mu.Unlock()
	if err != nil {
		logf("some creates failed (%d attempts failed); the last error: %v", errs, err)
	}
	logf("all create calls returned after %.2fs", r.Reconcile.CreatedSeconds)

	timedOut := false
	select {
	case <-t.done:
	case <-time.After(f.timeout - time.Since(t.start)):
		timedOut = true
	case <-ctx.Done():
		return ctx.Err()
	}
	r.Reconcile.CPU = cpu.stop()
	close(progStop)
	if m1, err := scrape(ctx); err != nil {
		logf("reading mindie-apiserver's metrics: %v", err)
	} else if m0 != nil {
		r.Reconcile.Queue = newQueueStats(m0, m1, time.Since(t.start))
	}
	<-progDone
	t.mu.Lock()
	r.Reconcile.Children, r.Reconcile.Observed = len(t.childrenAt), len(t.observedAt)
	r.Reconcile.ChildrenSeconds, r.Reconcile.ObservedSeconds = maxOf(t.childrenAt), maxOf(t.observedAt)
	r.Reconcile.ChildrenQ, r.Reconcile.ObservedQ = quantiles(t.childrenAt), quantiles(t.observedAt)
	r.Reconcile.Writes = maps.Clone(t.writes)
	t.mu.Unlock()
	r.Reconcile.Progress = prog
	if timedOut {
		logf("timed out after %s: %d of %d servers with children, %d observed", f.timeout, r.Reconcile.Children, f.n, r.Reconcile.Observed)
	} else {
		logf("every child after %.2fs, every status observed after %.2fs", r.Reconcile.ChildrenSeconds, r.Reconcile.ObservedSeconds)
	}

	sleep(ctx, f.settle)
	r.Memory.PeakKiB, r.Memory.EndKiB, r.Memory.Samples = mem.stop()
	_, r.Memory.HWMKiB, _ = memStatus(mindie)
	logf("mindie-apiserver VmRSS %d MiB before, %d MiB peak, VmHWM %d MiB", r.Memory.BeforeKiB>>10, r.Memory.PeakKiB>>10, r.Memory.HWMKiB>>10)

	if evs, err := controllerEvents(ctx, kube, ns); err != nil {
		logf("listing events: %v", err)
	} else {
		r.Reconcile.Events = evs
	}

	if f.del {
		deleteAll(ctx, infer, f, servers, deps, svcs, revs, r)
		if evs, err := controllerEvents(ctx, kube, ns); err != nil {
			logf("listing events: %v", err)
		} else {
			r.Reconcile.EventsLater = evs
		}
	}
	return nil
}

// controllerEvents counts the Events mindie-controller recorded in ns, by
// type and reason (an Event seen again counts again).
func controllerEvents(ctx context.Context, kube kubernetes.Interface, ns string) (map[string]int, error) {
	out := map[string]int{}
	cont := ""
	for {
		list, err := kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{Limit: 500, Continue: cont})
		if err != nil {
			return nil, err
		}
		for _, e := range list.Items {
			if e.Source.Component != "mindie-controller" && e.ReportingController != "mindie-controller" {
				continue
			}
			out[e.Type+" "+e.Reason] += int(max(e.Count, 1))
		}
		if cont = list.Continue; cont == "" {
			return out, nil
		}
	}
}

// deleteAll deletes the servers at once and times until they and their
// children are gone (the controller deletes the children behind its
// finalizer, then lets the server go).
func deleteAll(ctx context.Context, infer clientset.Interface, f runFlags, servers, deps, svcs, revs cache.SharedIndexInformer, r *result) {
	logf("deleting the %d InferServers", f.n)
	start := time.Now()
	_, err := createAll(ctx, f.n, f.workers, func(ctx context.Context, i int) error {
		err := infer.InferV1alpha1().InferServers(f.ns).Delete(ctx, name("srv", i), metav1.DeleteOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}, func(int) {})
	if err != nil {
		logf("deleting: %v", err)
	}
	left := func() int {
		return len(servers.GetStore().ListKeys()) + len(deps.GetStore().ListKeys()) + len(svcs.GetStore().ListKeys()) + len(revs.GetStore().ListKeys())
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, f.deleteTimeout, true, func(context.Context) (bool, error) {
		return left() == 0, nil
	})
	r.Delete.Left = left()
	r.Delete.Done = err == nil
	r.Delete.Seconds = time.Since(start).Seconds()
	if r.Delete.Done {
		logf("servers and children gone after %.1fs", r.Delete.Seconds)
	} else {
		logf("after %.0fs, %d servers and children are left", r.Delete.Seconds, r.Delete.Left)
	}
}

var (
	delayRE      = regexp.MustCompile(`delay="([^"]+)"`)
	serverNameRE = regexp.MustCompile(`srv-\d+`)
)

// summarizeLog reads mindie-apiserver's log from offset: failed syncs,
// error lines and requests held back by client-side rate limits.
func summarizeLog(path string, offset int64, r *result) error {
	fh, err := os.Open(path)
	if err != nil {
		return err
	}
	defer func() { _ = fh.Close() }()
	if _, err := fh.Seek(offset, io.SeekStart); err != nil {
		return err
	}
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	seen := map[string]bool{}
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, "Syncing InferServer failed") {
			r.Log.SyncErrors++
		}
		if strings.Contains(line, "Waited before sending request") {
			r.Log.Throttled++
			if m := delayRE.FindStringSubmatch(line); m != nil {
				if d, err := time.ParseDuration(m[1]); err == nil {
					r.Log.MaxThrottle = max(r.Log.MaxThrottle, d.Seconds())
				}
			}
		}
		if strings.HasPrefix(line, "E") {
			r.Log.ErrorLines++
			// The message without the klog header and the object names,
			// so that alike errors count once among the examples.
			msg := line
			if i := strings.Index(msg, "] "); i >= 0 {
				msg = msg[i+2:]
			}
			key := serverNameRE.ReplaceAllString(msg, "srv-N")
			if len(key) > 160 {
				key = key[:160]
			}
			if !seen[key] && len(r.Log.ErrorExamples) < 5 {
				seen[key] = true
				if len(msg) > 300 {
					msg = msg[:300] + "…"
				}
				r.Log.ErrorExamples = append(r.Log.ErrorExamples, msg)
			}
		}
	}
	return sc.Err()
}

// --- report ----------------------------------------------------------------------

const (
	summaryBegin = "<!-- reconcile-bench summary: begin -->"
	summaryEnd   = "<!-- reconcile-bench summary: end -->"
	sectionBegin = "<!-- reconcile-bench section: begin (hack/reconcile-bench.sh writes it from docs/reconcile-bench.md) -->"
	sectionEnd   = "<!-- reconcile-bench section: end -->"
)

type reportFlags struct {
	out, date, cpu, mem, goVersion, command string
	nproc                                   int
}

func report(args []string) error {
	var f reportFlags
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	fs.StringVar(&f.out, "out", "", "where the report goes (default stdout)")
	fs.StringVar(&f.date, "date", "", "when it ran (default: when the first measurement started, from the results)")
	fs.StringVar(&f.cpu, "cpu", "", "CPU model")
	fs.IntVar(&f.nproc, "nproc", 0, "CPUs")
	fs.StringVar(&f.mem, "mem", "", "RAM")
	fs.StringVar(&f.goVersion, "go", "", "go version")
	fs.StringVar(&f.command, "command", "", "the command that ran it")
	_ = fs.Parse(args)
	var rs []result
	for _, path := range fs.Args() {
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var r result
		if err := json.Unmarshal(data, &r); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		rs = append(rs, r)
	}
	if len(rs) == 0 {
		return errors.New("report: no results")
	}
	slices.SortFunc(rs, func(a, b result) int { return a.N - b.N })
	if f.date == "" {
		first := ""
		for _, r := range rs {
			if first == "" || r.Start < first {
				first = r.Start
			}
		}
		if t, err := time.Parse(time.RFC3339, first); err == nil {
			f.date = t.UTC().Format("2006-01-02 15:04 UTC")
		}
	}
	text := render(rs, f)
	if f.out == "" {
		_, err := io.WriteString(os.Stdout, text)
		return err
	}
	if err := os.WriteFile(f.out+".tmp", []byte(text), 0o644); err != nil {
		return err
	}
	return os.Rename(f.out+".tmp", f.out)
}

func mib(kib int64) string { return fmt.Sprintf("%.0f MiB", float64(kib)/1024) }

// secs formats seconds with three significant digits.
func secs(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f s", v)
	case v >= 10:
		return fmt.Sprintf("%.1f s", v)
	}
	return fmt.Sprintf("%.2f s", v)
}

func ratio(a, b float64) string {
	if b <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f×", a/b)
}

// reached is the time every server got there, or how many did.
func reached(v float64, got, n int) string {
	if got < n {
		return fmt.Sprintf("not reached (%d of %d)", got, n)
	}
	return secs(v)
}

func render(rs []result, f reportFlags) string {
	var sb strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	p("# Reconcile benchmark\n\n")
	p("Generated by `hack/reconcile-bench.sh` (run by `hack/bench.sh`, `make bench`, unless `RECONCILE_BENCH=0`); do not edit by hand. "+
		"A local cluster of its own (`hack/local-up.sh` on free loopback ports, with no simulated nodes, so the pods stay Pending and the measurement is about the "+
		"controller and the API servers, not the simulator). For each N, `hack/reconcilebench` creates N single-node InferServers (1 instance, 1 NPU, a ClusterIP Service) "+
		"at once, from %d goroutines through the kube-apiserver (which proxies them to mindie-apiserver), and watches the InferServers, Deployments, Services "+
		"and ControllerRevisions of the namespace. Times count from the first create call:\n\n", rs[0].Workers)
	p("- **all children**: the last server to have its Deployment and Service (named like it) and a ControllerRevision labelled `%s=<name>`;\n", v1alpha1.LabelServer)
	p("- **all observed**: the last server whose `status.observedGeneration` equals `metadata.generation` with `status.updateRevision` set;\n")
	p("- **baseline**: in the same run, just before, N ConfigMaps (each holding the JSON of an InferServer's spec) created with the same client and concurrency, "+
		"until the watch has seen all of them: what writing N objects through the kube-apiserver costs when no controller has to act on them; "+
		"the median of %d runs (%s);\n", len(rs[0].Baseline.SeenRuns), baselineRuns(rs))
	p("- **ratio**: all observed / baseline;\n")
	p("- **memory**: mindie-apiserver's VmRSS sampled from /proc every 200 ms, from just before the first create until %s after the last status was observed. "+
		"mindie-apiserver is restarted before each N (after the previous N's servers are deleted), so each row starts from a fresh process; "+
		"a warm-up InferServer, created and observed before the baseline, makes sure the restarted controller holds its Lease and has synced.\n\n", secs(rs[0].SettleSeconds))
	p("- Date: %s\n", orDash(f.date))
	p("- Machine: %d CPUs (%s), %s RAM, shared with other work while it ran\n", f.nproc, orDash(f.cpu), orDash(f.mem))
	p("- Go: %s\n", orDash(f.goVersion))
	p("- Command: `%s`\n\n", orDash(f.command))

	p("## Results\n\n")
	p("%s\n", summaryBegin)
	p("| InferServers | all created | all children | all observed | baseline: N ConfigMaps | ratio | servers/s | mindie-apiserver RSS before → peak | peak growth per server |\n")
	p("|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range rs {
		rc := r.Reconcile
		rate, rat := "—", "—"
		if rc.Observed == r.N && rc.ObservedSeconds > 0 {
			rate = fmt.Sprintf("%.1f", float64(r.N)/rc.ObservedSeconds)
			rat = ratio(rc.ObservedSeconds, r.Baseline.SeenSeconds)
		}
		p("| %d | %s | %s | %s | %s | %s | %s | %s → %s | %.0f KiB |\n", r.N, secs(rc.CreatedSeconds),
			reached(rc.ChildrenSeconds, rc.Children, r.N), reached(rc.ObservedSeconds, rc.Observed, r.N),
			secs(r.Baseline.SeenSeconds), rat, rate, mib(r.Memory.BeforeKiB), mib(r.Memory.PeakKiB),
			float64(r.Memory.PeakKiB-r.Memory.BeforeKiB)/float64(r.N))
	}
	p("\nMeasured %s on %d CPUs (%s), shared with other work. *Ratio* is the time until every InferServer's status was observed over the time to write and watch "+
		"as many ConfigMaps (the median of %d runs), both in the same run with the same client and %d concurrent creates; compare ratios between runs, not seconds between machines. "+
		"*Servers/s* is N over the time to all observed.\n", orDash(f.date), f.nproc, orDash(f.cpu), len(rs[0].Baseline.SeenRuns), rs[0].Workers)
	p("%s\n\n", summaryEnd)
	p("%s", whatItShows(rs, f))

	p("## Details\n\n")
	p("Per-server times (seconds from the first create; p50 / p90 / max over the servers):\n\n")
	p("| InferServers | children p50 | p90 | max | observed p50 | p90 | max | warm-up server observed | deletion: servers and children gone |\n")
	p("|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range rs {
		c, o := r.Reconcile.ChildrenQ, r.Reconcile.ObservedQ
		del := "not measured"
		switch {
		case r.Delete.Done:
			del = secs(r.Delete.Seconds)
		case r.Delete.Seconds > 0:
			del = fmt.Sprintf("not within %s: %d left", secs(r.Delete.Seconds), r.Delete.Left)
		}
		p("| %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.N, q(c, "p50"), q(c, "p90"), q(c, "max"), q(o, "p50"), q(o, "p90"), q(o, "max"),
			secs(r.WarmupSeconds), del)
	}
	p("\nmindie-apiserver's memory (VmRSS sampled every 200 ms from just before the first create until %s after the last status was observed; VmHWM is the process's own peak since it started):\n\n", secs(rs[0].SettleSeconds))
	p("| InferServers | VmRSS before | peak VmRSS | VmRSS at the end | VmHWM at the end | samples |\n|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range rs {
		m := r.Memory
		p("| %d | %s | %s | %s | %s | %d |\n", r.N, mib(m.BeforeKiB), mib(m.PeakKiB), mib(m.EndKiB), mib(m.HWMKiB), m.Samples)
	}
	p("\nCPU seconds of each process while the N servers were reconciled (first create to last status observed), and while the baseline ran (its median run):\n\n")
	procs := []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "mindie-apiserver"}
	p("| InferServers | phase | seconds |")
	for _, name := range procs {
		p(" %s |", name)
	}
	p(" all | all per object |\n|--:|---|--:|")
	for range procs {
		p("--:|")
	}
	p("--:|--:|\n")
	for _, r := range rs {
		for _, ph := range []struct {
			name string
			secs float64
			cpu  map[string]float64
		}{{"reconcile", r.Reconcile.ObservedSeconds, r.Reconcile.CPU}, {"baseline", r.Baseline.SeenSeconds, r.Baseline.CPU}} {
			p("| %d | %s | %s |", r.N, ph.name, secs(ph.secs))
			var all float64
			for _, name := range procs {
				v, ok := ph.cpu[name]
				if !ok {
					p(" — |")
					continue
				}
				all += v
				p(" %.1f |", v)
			}
			p(" %.1f | %.3f |\n", all, all/float64(r.N))
		}
	}
	p("\nThe controller's work queue while the servers were reconciled, from mindie-apiserver's `/metrics` (`workqueue_*{name=\"inferserver\"}`) " +
		"read just before the first create and when the last status was observed. A sync is one pass of a worker over one InferServer; " +
		"busy workers is the time spent in syncs over the elapsed time (local-up runs the default `--controller-workers=5`):\n\n")
	p("| InferServers | syncs per server | failed syncs (retried) | mean sync | mean wait in the queue | busy workers (mean) |\n")
	p("|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range rs {
		qs := r.Reconcile.Queue
		if qs == nil || qs.Syncs == 0 {
			p("| %d | — | — | — | — | — |\n", r.N)
			continue
		}
		p("| %d | %.2f | %.0f | %.0f ms | %s | %.2f |\n", r.N, qs.Syncs/float64(r.N), qs.Retries,
			1000*qs.WorkSeconds/qs.Syncs, secs(qs.QueueSeconds/qs.Syncs), qs.WorkSeconds/max(qs.ElapsedSeconds, 1e-9))
	}
	p("\nWrites the benchmark's watches saw while the servers were reconciled (adds and updates per server: the controller's, " +
		"the controller manager's and the scheduler's), and what mindie-apiserver logged during the run:\n\n")
	p("| InferServers | InferServer | Deployment | Service | ControllerRevision | failed syncs logged | error lines logged | requests held back by a client-side rate limit (logged, longest) |\n")
	p("|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range rs {
		w := r.Reconcile.Writes
		per := func(k string) string { return fmt.Sprintf("%.2f", float64(w[k])/float64(r.N)) }
		p("| %d | %s | %s | %s | %s | %d | %d | %d (%.1f s) |\n", r.N, per("InferServer"), per("Deployment"), per("Service"), per("ControllerRevision"),
			r.Log.SyncErrors, r.Log.ErrorLines, r.Log.Throttled, r.Log.MaxThrottle)
	}
	p("\nclient-go logs a request its rate limiter held back for over a second at most once every 10 s at the default verbosity, " +
		"so the count above is a lower bound and the longest wait is the telling figure.\n")
	p("\nEvents the controller recorded (type, reason: count), listed %s after the last status was observed and again after the deletion; "+
		"the event recorder writes them in the background, one at a time:\n\n", secs(rs[0].SettleSeconds))
	p("| InferServers | when every status was observed | after the deletion |\n|--:|---|---|\n")
	for _, r := range rs {
		p("| %d | %s | %s |\n", r.N, eventList(r.Reconcile.Events), eventList(r.Reconcile.EventsLater))
	}
	for _, r := range rs {
		if len(r.Log.ErrorExamples) == 0 {
			continue
		}
		p("\nError lines mindie-apiserver logged with N = %d (distinct ones, first %d):\n\n", r.N, len(r.Log.ErrorExamples))
		for _, e := range r.Log.ErrorExamples {
			p("    %s\n", e)
		}
	}

	last := rs[len(rs)-1]
	if len(last.Reconcile.Progress) > 0 {
		p("\n## Progress with %d InferServers\n\n", last.N)
		p("| s | created | with all children | status observed |\n|--:|--:|--:|--:|\n")
		prog := last.Reconcile.Progress
		step := max(1, len(prog)/15)
		var shown []progress
		for i := 0; i < len(prog); i += step {
			shown = append(shown, prog[i])
		}
		if shown[len(shown)-1] != prog[len(prog)-1] {
			shown = append(shown, prog[len(prog)-1])
		}
		for _, pr := range shown {
			p("| %.1f | %d | %d | %d |\n", pr.T, pr.Created, pr.Children, pr.Observed)
		}
	}
	return sb.String()
}

func q(m map[string]float64, k string) string {
	v, ok := m[k]
	if !ok {
		return "—"
	}
	return fmt.Sprintf("%.2f", v)
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// section copies the summary of docs/reconcile-bench.md into
// docs/benchmarks.md, replacing the section an earlier call put there or
// appending it.
func section(args []string) error {
	fs := flag.NewFlagSet("section", flag.ExitOnError)
	from := fs.String("from", "docs/reconcile-bench.md", "the reconcile benchmark's report")
	into := fs.String("into", "docs/benchmarks.md", "the benchmarks' report")
	_ = fs.Parse(args)
	src, err := os.ReadFile(*from)
	if err != nil {
		return err
	}
	_, rest, ok1 := strings.Cut(string(src), summaryBegin+"\n")
	summary, _, ok2 := strings.Cut(rest, summaryEnd)
	if !ok1 || !ok2 {
		return fmt.Errorf("%s has no summary between %q and %q", *from, summaryBegin, summaryEnd)
	}
	dst, err := os.ReadFile(*into)
	if err != nil {
		return err
	}
	text := string(dst)
	if before, rest, ok := strings.Cut(text, sectionBegin); ok {
		_, after, _ := strings.Cut(rest, sectionEnd+"\n")
		text = before + after
	}
	text = strings.TrimRight(text, "\n") + "\n\n"
	rel, err := filepath.Rel(filepath.Dir(*into), *from)
	if err != nil {
		rel = *from
	}
	text += sectionBegin + "\n## Reconcile benchmark\n\n" +
		"N InferServers created at once on a local cluster: the time until every one has its children and its status observed, " +
		"against creating as many ConfigMaps (no controller) in the same run, and mindie-apiserver's memory. " +
		"Method, per-server times, CPU per process and what the server logged are in [" + filepath.Base(rel) + "](" + rel + "), " +
		"written by `hack/reconcile-bench.sh`.\n\n" + summary + sectionEnd + "\n"
	if err := os.WriteFile(*into+".tmp", []byte(text), 0o644); err != nil {
		return err
	}
	return os.Rename(*into+".tmp", *into)
}

// metricsScraper reads a Prometheus text endpoint with the client
// certificate of cfg, trusting the CA in caFile: "name{labels}" -> value.
func metricsScraper(cfg *rest.Config, url, caFile string) func(context.Context) (map[string]float64, error) {
	return func(ctx context.Context) (map[string]float64, error) {
		c := rest.CopyConfig(cfg)
		c.CAData, c.CAFile, c.ServerName = nil, caFile, ""
		hc, err := rest.HTTPClientFor(c)
		if err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		defer func() { _ = resp.Body.Close() }()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		out := map[string]float64{}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
		for sc.Scan() {
			line := sc.Text()
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			i := strings.LastIndexByte(line, ' ')
			if i < 0 {
				continue
			}
			if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
				out[line[:i]] = v
			}
		}
		return out, sc.Err()
	}
}

// queueStats is what the controller's work queue ("inferserver") did
// between two scrapes.
type queueStats struct {
	Adds    float64 `json:"adds"`    // keys queued (a queued key queued again counts again)
	Syncs   float64 `json:"syncs"`   // keys worked on (one sync each)
	Retries float64 `json:"retries"` // syncs that failed and were queued again with backoff
	// WorkSeconds is the time the workers spent in syncs; divided by the
	// elapsed time it is how many workers were busy on average.
	WorkSeconds float64 `json:"workSeconds"`
	// QueueSeconds is the time keys waited in the queue before a worker
	// took them, summed over the syncs.
	QueueSeconds   float64 `json:"queueSeconds"`
	ElapsedSeconds float64 `json:"elapsedSeconds"`
}

func newQueueStats(m0, m1 map[string]float64, elapsed time.Duration) *queueStats {
	d := func(key string) float64 {
		k := key + `{name="inferserver"}`
		return m1[k] - m0[k]
	}
	return &queueStats{
		Adds:           d("workqueue_adds_total"),
		Syncs:          d("workqueue_work_duration_seconds_count"),
		Retries:        d("workqueue_retries_total"),
		WorkSeconds:    d("workqueue_work_duration_seconds_sum"),
		QueueSeconds:   d("workqueue_queue_duration_seconds_sum"),
		ElapsedSeconds: elapsed.Seconds(),
	}
}

func eventList(m map[string]int) string {
	var evs []string
	for k, v := range m {
		evs = append(evs, fmt.Sprintf("%s: %d", k, v))
	}
	sort.Strings(evs)
	return orDash(strings.Join(evs, "; "))
}

// whatItShows reads the results for the report: where the time went for
// the largest N, and anything the logs or the events say.
func whatItShows(rs []result, f reportFlags) string {
	var out []string
	last := rs[len(rs)-1]
	rc := last.Reconcile
	n := float64(last.N)
	if qs := rc.Queue; qs != nil && qs.Syncs > 0 && rc.Observed == last.N {
		sync := qs.WorkSeconds / qs.Syncs
		busy := qs.WorkSeconds / max(qs.ElapsedSeconds, 1e-9)
		out = append(out, fmt.Sprintf("With %d InferServers the time is the controller's work queue: %.2f syncs per server, "+
			"%.0f ms each on average, %.2f workers busy on average, so %d × %.2f × %.3f s / %.2f = %.0f s of queued work, against %.0f s measured "+
			"until the last status was observed; a server waited %.1f s in the queue on average. A sync makes up to five writes one after another "+
			"(finalizer, ControllerRevision, Deployment, Service, status) and waits for each, so its time is the latency of those requests.",
			last.N, qs.Syncs/n, 1000*sync, busy, last.N, qs.Syncs/n, sync, busy, n*(qs.Syncs/n)*sync/busy, rc.ObservedSeconds, qs.QueueSeconds/qs.Syncs))
	}
	var all, base float64
	for _, v := range rc.CPU {
		all += v
	}
	for _, v := range last.Baseline.CPU {
		base += v
	}
	if all > 0 && rc.ObservedSeconds > 0 {
		s := fmt.Sprintf("The cluster's processes used %.3f CPU s per InferServer meanwhile (%.0f CPU s in %.0f s, %.2f cores on average", all/n, all, rc.ObservedSeconds, all/rc.ObservedSeconds)
		if f.nproc > 0 {
			s += fmt.Sprintf(" of %d, which other work shared", f.nproc)
		}
		s += ")"
		if base > 0 {
			s += fmt.Sprintf(", %.0f times the %.4f CPU s a ConfigMap of the baseline cost", (all/n)/(base/n), base/n)
		}
		out = append(out, s+".")
	}
	const created = "Normal InstanceCreated"
	if early, later := rc.Events[created], rc.EventsLater[created]; later > early {
		out = append(out, fmt.Sprintf("The controller's Events trail its work: %s after the last status was observed %d of the %d InstanceCreated events "+
			"had been written, %d by the end of the deletion.", secs(last.SettleSeconds), early, last.N, later))
	}
	var errs, syncs, throttled int
	var longest float64
	for _, r := range rs {
		errs += r.Log.ErrorLines
		syncs += r.Log.SyncErrors
		throttled += r.Log.Throttled
		longest = max(longest, r.Log.MaxThrottle)
	}
	if errs == 0 && syncs == 0 && throttled == 0 {
		out = append(out, "mindie-apiserver logged no failed sync, no error and no request held back over a second by a client-side rate limit during the measurements.")
	} else {
		out = append(out, fmt.Sprintf("mindie-apiserver logged %d failed syncs, %d error lines and %d requests held back by a client-side rate limit (longest %.1f s) during the measurements; see below.",
			syncs, errs, throttled, longest))
	}
	if len(out) == 0 {
		return ""
	}
	return "## What it shows\n\n" + strings.Join(out, " ") + "\n\n"
}

// baselineRuns lists the baseline's run times of each N.
func baselineRuns(rs []result) string {
	var out []string
	for _, r := range rs {
		var runs []string
		for _, x := range r.Baseline.SeenRuns {
			runs = append(runs, secs(x))
		}
		out = append(out, fmt.Sprintf("with %d: %s", r.N, orDash(strings.Join(runs, ", "))))
	}
	return strings.Join(out, "; ")
}

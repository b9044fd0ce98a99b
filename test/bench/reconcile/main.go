// Command reconcile is the reconcile benchmark that hack/reconcile-bench.sh
// runs on a local cluster of its own: it creates N InferServers at once and
// measures, from a watch, the time until every one has its children (a
// Deployment and a Service named like it and a ControllerRevision labelled
// with its name) and until every status is observed
// (status.observedGeneration == metadata.generation and
// status.updateRevision set), while it samples mindie-apiserver's resident
// memory every 200 ms. Beside it, in the same run, it measures a baseline:
// creating N ConfigMaps, which need no controller, with the same client and
// concurrency, until a watch has seen all of them.
//
//	reconcile ports -n 4                 free loopback ports, on one line
//	reconcile run -n 100 -results r.json one measurement, put into r.json
//
// The results file is JSON in the format of mindie.io/deployer/test/bench/results
// (results.Reconcile): the run's parameters and machine, the goals, and one
// measurement per N, each run of `reconcile run` adding or replacing its N.
// test/bench/report renders the documents from it.
//
// It dials only what the kubeconfig and -metrics-url name (the local cluster
// on loopback).
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	clientset "mindie.io/deployer/pkg/generated/clientset/versioned"
	"mindie.io/deployer/test/bench/measure"
	"mindie.io/deployer/test/bench/results"
)

// goals are what each measurement is held to unless flags say otherwise:
// ceilings a little above what the benchmark measured on two shared cores
// (76× and 207 KiB with 100 servers, 51× and 126 KiB with 1,000), so that
// a regression shows as a missed goal.
var goals = results.Goals{MaxRatio: 100, MaxPeakGrowthKiBPerServer: 256}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "-help" || os.Args[1] == "--help" {
		fmt.Fprintln(os.Stderr, "usage: reconcile ports|run [flags]; reconcile <command> -h lists a command's flags")
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "ports":
		err = measure.PortsCommand(args)
	case "run":
		err = run(args)
	default:
		err = fmt.Errorf("unknown command %q: want ports or run", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "reconcile:", err)
		os.Exit(1)
	}
}

type runFlags struct {
	kubeconfig, ns, baselineNS, warmupNS, pids, logPath string
	resultsPath, command, metricsURL, metricsCA         string
	n, workers, clkTck, baselineRuns                    int
	timeout, deleteTimeout, settle, quiet               time.Duration
	del                                                 bool
	goals                                               results.Goals
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
	fs.StringVar(&f.resultsPath, "results", "", "the results file (JSON) the measurement is put into; created if missing")
	fs.StringVar(&f.command, "command", "test/bench/reconcile run", "the command that runs the benchmark, as the documents show it")
	fs.StringVar(&f.metricsURL, "metrics-url", "", "mindie-apiserver's /metrics (https://127.0.0.1:<port>/metrics), read with the kubeconfig's client certificate; empty: not read")
	fs.StringVar(&f.metricsCA, "metrics-ca", "", "CA file of mindie-apiserver's serving certificate")
	fs.Float64Var(&f.goals.MaxRatio, "goal-ratio", goals.MaxRatio, "goal: the time until every status was observed over the baseline's at most this; 0: none")
	fs.Float64Var(&f.goals.MaxPeakGrowthKiBPerServer, "goal-growth-kib", goals.MaxPeakGrowthKiBPerServer, "goal: mindie-apiserver's peak memory growth per server at most this many KiB; 0: none")
	_ = fs.Parse(args)
	if f.ns == "" {
		f.ns = fmt.Sprintf("reconcile-bench-%d", f.n)
	}
	if f.baselineNS == "" {
		f.baselineNS = fmt.Sprintf("reconcile-baseline-%d", f.n)
	}
	switch {
	case f.n < 1 || f.workers < 1 || f.baselineRuns < 1:
		return fmt.Errorf("run: -n %d, -workers %d and -baseline-runs %d must be positive", f.n, f.workers, f.baselineRuns)
	case f.kubeconfig == "":
		return fmt.Errorf("run: -kubeconfig is required: the admin kubeconfig of the local cluster")
	case f.pids == "":
		return fmt.Errorf("run: -pids is required: the directory of the cluster's pid files")
	case f.resultsPath == "":
		return fmt.Errorf("run: -results is required: the JSON file the measurement is put into")
	}
	// Read the results first: a file that cannot take this measurement
	// fails now, not after minutes of measuring.
	res, err := results.LoadReconcile(f.resultsPath, true)
	if err != nil {
		return err
	}
	if err := res.Accepts(runInfo(f)); err != nil {
		return fmt.Errorf("%s: %w", f.resultsPath, err)
	}

	cfg, err := clientcmd.BuildConfigFromFlags("", f.kubeconfig)
	if err != nil {
		return err
	}
	// The benchmark's own client must not hold requests back.
	cfg.QPS, cfg.Burst = -1, 0
	cfg.UserAgent = "reconcile-bench"
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

	r := results.Measurement{N: f.n, Start: time.Now().UTC().Format(time.RFC3339)}
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

	if err := res.Put(runInfo(f), f.goals, r); err != nil {
		return fmt.Errorf("%s: %w", f.resultsPath, err)
	}
	if err := res.Save(f.resultsPath); err != nil {
		return err
	}
	logf("put N=%d into %s", f.n, f.resultsPath)
	return nil
}

// runInfo is the run's parameters and the machine it runs on.
func runInfo(f runFlags) results.Run {
	r := results.Run{
		Command:        f.command,
		Go:             fmt.Sprintf("go version %s %s/%s", runtime.Version(), runtime.GOOS, runtime.GOARCH),
		CPUs:           runtime.NumCPU(),
		Workers:        f.workers,
		BaselineRuns:   f.baselineRuns,
		TimeoutSeconds: f.timeout.Seconds(),
		SettleSeconds:  f.settle.Seconds(),
	}
	r.CPU = procField("/proc/cpuinfo", "model name")
	if v := procField("/proc/meminfo", "MemTotal"); v != "" {
		r.MemTotalKiB, _ = strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(v, "kB")), 10, 64)
	}
	return r
}

// procField is the value of the first "key: value" line of a /proc file
// whose key is key, or "".
func procField(path, key string) string {
	fh, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer func() { _ = fh.Close() }()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "reconcile-bench: "+format+"\n", args...)
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// Command habench is the failover benchmark that hack/ha-bench.sh runs on a
// local cluster of its own: two mindie-apiserver replicas on one etcd
// behind hack/servicelb (MINDIE_REPLICAS=2, policy first: every connection
// to the replica that leads), no simulated nodes. It runs test/failover's
// load of InferServer writes and reads through kube-apiserver twice: once
// undisturbed (the baseline), once while the leading replica is killed with
// SIGKILL a few seconds in (the baseline measured from the same point on); it records what the clients saw after the kill
// beside the baseline, how soon the Lease changed hands and the other
// replica's controllers acted, and what the check of the stored servers
// found.
//
//	habench ports -n 6                  free loopback ports, on one line
//	habench run -kubeconfig k -pids DIR -out r.json
//
// The results are JSON in the format of mindie.io/deployer/test/bench/results
// (results.HA); test/bench/report renders the "Two replicas, one killed"
// section of docs/benchmarks.md from them. It dials only what the
// kubeconfig names (the local cluster on loopback).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/pkg/cmd/server"
	clientset "mindie.io/deployer/pkg/generated/clientset/versioned"
	"mindie.io/deployer/test/bench/measure"
	"mindie.io/deployer/test/bench/results"
	"mindie.io/deployer/test/failover"
)

// goals: the 15 s for the controllers, and ours for the clients.
var goals = results.HAGoals{
	ActSeconds: 15, MinThroughputRatio: 0.8, MaxOpSeconds: 5,
	Why: "The kill → act bound is the issue's: the other replica's controllers act within 15 s. Failures: the issue's: every failed " +
		"request is one the client retries, and no acknowledged object is lost or written twice. The throughput and the longest " +
		"operation are ours: the API answers through the other replica at once, so the clients should keep most of their pace " +
		"(at least 0.8 of the baseline's operations a second over the phase) and no operation, its retries included, should take " +
		"more than 5 s.",
}

const (
	leaseNS, leaseName = "mindie-system", "mindie-controller"
	// victim is the replica killed: the first, which local-up starts
	// first (so it leads) and servicelb's policy first sends all to.
	victim = "mindie-apiserver-0"
)

func main() { measure.Main("habench", run) }

type config struct {
	kubeconfig, pids, out, command string
	warm, after                    time.Duration
	opts                           failover.Options
}

func run(args []string) error {
	var c config
	c.opts = failover.DefaultOptions("", "")
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	fs.StringVar(&c.kubeconfig, "kubeconfig", "", "the local cluster's kubeconfig")
	fs.StringVar(&c.pids, "pids", "", "local-up's pid directory ($OUT/pids)")
	fs.StringVar(&c.out, "out", "ha.json", "where the results go")
	fs.StringVar(&c.command, "command", "hack/ha-bench.sh", "the command line the results record")
	fs.DurationVar(&c.warm, "warm", 5*time.Second, "how long the load runs before the kill (and before the baseline's measured part)")
	fs.DurationVar(&c.after, "after", 25*time.Second, "how long the load runs after the kill (and the baseline's measured part)")
	fs.IntVar(&c.opts.Writers, "writers", c.opts.Writers, "goroutines creating and updating InferServers")
	fs.IntVar(&c.opts.Readers, "readers", c.opts.Readers, "goroutines getting and listing them")
	fs.DurationVar(&c.opts.Pause, "pause", c.opts.Pause, "each goroutine's pause between operations")
	_ = fs.Parse(args)
	if c.kubeconfig == "" || c.pids == "" {
		return fmt.Errorf("-kubeconfig and -pids are required")
	}
	began := time.Now()
	logf := measure.Logger("habench", began)
	cfg, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 200, 400
	kube := kubernetes.NewForConfigOrDie(cfg)
	infer := clientset.NewForConfigOrDie(cfg)
	ctx := context.Background()

	res := results.HA{Version: results.HAVersion, Goals: goals, Setup: results.HASetup{
		Replicas: 2, Policy: "first", Writers: c.opts.Writers, Readers: c.opts.Readers, PauseMillis: int(c.opts.Pause.Milliseconds()),
	}}
	if err := leaseSettings(ctx, kube, &res.Setup); err != nil {
		return err
	}
	if err := waitHolder(ctx, kube, victim, 90*time.Second); err != nil {
		return err
	}

	// The baseline has the failover's shape: the same time under load
	// before and after the point it measures from, so that both phases
	// count and list as many servers.
	logf("baseline: %s of load, measured after %s, no failure", c.warm+c.after, c.warm)
	base, err := phase(ctx, kube, infer, c, "habench-base", "base", func(start time.Time) time.Time {
		time.Sleep(time.Until(start.Add(c.warm + c.after)))
		return start.Add(c.warm)
	})
	if err != nil {
		return err
	}
	res.Baseline = base
	logf("baseline: %.1f ops/s, p99 %.0f ms, problems %d", base.OpsPerSecond, base.P99Ms, len(base.Problems))

	logf("failover: %s of load, then SIGKILL to %s, then %s more", c.warm, victim, c.after)
	var tk results.HATakeover
	fail, err := phase(ctx, kube, infer, c, "habench-fail", "fail", func(start time.Time) time.Time {
		time.Sleep(time.Until(start.Add(c.warm)))
		killed, err := kill(c.pids, victim)
		if err != nil {
			tk.Error = err.Error()
			return start
		}
		tctx, cancel := context.WithTimeout(ctx, c.after)
		defer cancel()
		t, err := failover.WatchTakeover(tctx, kube, infer, leaseNS, leaseName, victim, "habench-fail", "fail", killed)
		tk = results.HATakeover{Killed: victim, NewLeader: t.NewLeader,
			LeaseSeconds: measure.Round(t.Lease.Seconds(), 2), ActSeconds: measure.Round(t.Act.Seconds(), 2)}
		if err != nil {
			tk.Error = err.Error()
		}
		time.Sleep(time.Until(killed.Add(c.after)))
		return killed
	})
	if err != nil {
		return err
	}
	res.Failover, res.Takeover = fail, tk
	logf("failover: %.1f ops/s after the kill, p99 %.0f ms, max %.0f ms, retried %v, problems %d; lease %.2f s, act %.2f s",
		fail.OpsPerSecond, fail.P99Ms, fail.MaxMs, fail.Retried, len(fail.Problems), tk.LeaseSeconds, tk.ActSeconds)

	res.Run = results.RouterRun{
		Date: time.Now().UTC().Format(time.RFC3339), Command: c.command, Go: runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH,
		CPU: measure.CPUModel(), CPUs: runtime.NumCPU(), WallSeconds: measure.Round(time.Since(began).Seconds(), 1),
	}
	if err := res.Save(c.out); err != nil {
		return err
	}
	for _, g := range res.Summary.Goals {
		logf("%s: %.2f (bound %.2f) measured %t met %t", g.Name, g.Value, g.Bound, g.Measured, g.Met)
	}
	logf("wrote %s", c.out)
	return nil
}

// phase runs the load in a namespace of its own while during runs; during
// returns when the load should stop, and from when on it is measured.
func phase(ctx context.Context, kube kubernetes.Interface, infer clientset.Interface, c config, ns, run string, during func(start time.Time) time.Time) (results.HAPhase, error) {
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return results.HAPhase{}, fmt.Errorf("namespace %s: %w", ns, err)
	}
	o := c.opts
	o.Namespace, o.Run = ns, run
	load := failover.Start(ctx, infer, o)
	from := during(load.Started())
	rep := load.Stop()
	st := rep.Window(from, rep.End)
	p := results.HAPhase{
		Seconds: measure.Round(rep.End.Sub(from).Seconds(), 1), Ops: st.Ops, Attempts: st.Attempts,
		OpsPerSecond: measure.Round(st.PerSecond, 1),
		P50Ms:        measure.Round(measure.Ms(st.P50), 1), P99Ms: measure.Round(measure.Ms(st.P99), 1), MaxMs: measure.Round(measure.Ms(st.Max), 1),
		Retried: rep.Retryable, Acknowledged: rep.Acknowledged(), Problems: rep.Problems(),
	}
	vctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	problems, err := rep.Verify(vctx, infer)
	if err != nil {
		p.Problems = append(p.Problems, "checking the stored servers: "+err.Error())
	}
	p.Problems = append(p.Problems, problems...)
	return p, nil
}

// kill sends SIGKILL to the local-up process called name.
func kill(pids, name string) (time.Time, error) {
	data, err := os.ReadFile(filepath.Join(pids, name))
	if err != nil {
		return time.Time{}, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 {
		return time.Time{}, fmt.Errorf("pid file of %s: %q", name, data)
	}
	at := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return time.Time{}, fmt.Errorf("kill %s (%d): %w", name, pid, err)
	}
	return at, nil
}

// waitHolder waits until identity holds the controllers' Lease.
func waitHolder(ctx context.Context, kube kubernetes.Interface, identity string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		l, err := kube.CoordinationV1().Leases(leaseNS).Get(ctx, leaseName, metav1.GetOptions{})
		h := ""
		if err == nil {
			h = ptr.Deref(l.Spec.HolderIdentity, "")
			if h == identity {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lease %s/%s: holder %q, want %s (err %v)", leaseNS, leaseName, h, identity, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// leaseSettings records the election's timing: the defaults the replicas
// run with (local-up sets none), checked against the Lease.
func leaseSettings(ctx context.Context, kube kubernetes.Interface, s *results.HASetup) error {
	d := server.NewOptions(io.Discard, io.Discard).Controllers
	s.LeaseSeconds, s.RenewSeconds, s.RetryPeriodSeconds = d.LeaseDuration.Seconds(), d.RenewDeadline.Seconds(), d.RetryPeriod.Seconds()
	l, err := kube.CoordinationV1().Leases(leaseNS).Get(ctx, leaseName, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("lease %s/%s: %w", leaseNS, leaseName, err)
	}
	if got := float64(ptr.Deref(l.Spec.LeaseDurationSeconds, 0)); got != s.LeaseSeconds {
		return fmt.Errorf("lease %s/%s: duration %v s, but the replicas' default is %v s: were they started with other flags?", leaseNS, leaseName, got, s.LeaseSeconds)
	}
	return nil
}

// Command pluginbench is the plugin benchmark that hack/plugin-bench.sh
// runs on a local cluster of its own (hack/local-up.sh with simulated Ascend
// nodes): it times the real `kubectl mindie` binary, run as a subprocess the
// way a user runs it (kubectl finds kubectl-mindie on PATH), on
//
//   - status: `kubectl mindie status NAME` of one InferServer of -instances
//     single-NPU instances (default 256), once every one is ready, against
//     `kubectl get pods -l <its selector> -o json`, which reads the very
//     pods the status shows;
//   - get: `kubectl mindie get` of a namespace of -servers InferServers
//     (default 1,000; paused, so that they make no pods, each with its
//     status observed by the controller), against `kubectl get
//     inferservers` of the same namespace;
//
// each command and its baseline in turn, -runs times, after an untimed run
// of each that fills kubectl's discovery cache, and once more at -v=6 to
// record the API requests it sends.
//
//	pluginbench ports -n 4     free loopback ports, on one line
//	pluginbench run -kubeconfig k -bin $OUT/bin -out r.json
//
// The results are JSON in the format of mindie.io/deployer/test/bench/results
// (results.Plugin); test/bench/report renders the "Plugin at scale" section
// of docs/benchmarks.md from them.
//
// It and the commands it runs dial only what the kubeconfig names (the
// local cluster on loopback).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"mindie.io/deployer/test/bench/measure"
	"mindie.io/deployer/test/bench/results"
)

// goals are the for the times (status of 256 instances within
// 0.5 s, get of 1,000 InferServers within 1 s) and ours for the ratios.
var goals = results.PluginGoals{
	StatusSeconds: 0.5, StatusRatio: 1,
	GetSeconds: 1, GetRatio: 1.5,
	Why: "the times are issue 15's (item 5, \"Plugin at scale\"). The ratios are ours. Status: at most the baseline, since " +
		"status reads one InferServer whose status the controller keeps as a digest of the pods, where the baseline reads " +
		"the pods themselves. Get: at most 1.5 times the baseline, since both ask mindie-apiserver for the same server-side " +
		"Table of the same objects and the plugin adds only its own process, which kubectl starts in its place, and its printing.",
}

func main() { measure.Main("pluginbench", run) }

// config is what `pluginbench run` is told.
type config struct {
	kubeconfig, bin, home, out, command string
	statusNS, listNS, statusName        string
	parts                               []string
	instances, servers, runs, workers   int
	timeout, settle                     time.Duration
}

// The parts of a run.
const (
	partStatus = "status"
	partGet    = "get"
)

func run(args []string) error {
	var c config
	var parts string
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	fs.StringVar(&c.kubeconfig, "kubeconfig", "", "admin kubeconfig of the local cluster")
	fs.StringVar(&c.bin, "bin", "", "the directory of the kubectl and kubectl-mindie binaries to time ($OUT/bin)")
	fs.StringVar(&c.home, "home", "", "HOME of the timed commands, where kubectl keeps its discovery cache (default: a temporary directory)")
	fs.StringVar(&c.out, "out", "", "where the results (JSON) go")
	fs.StringVar(&c.command, "command", "hack/plugin-bench.sh", "the command that runs the benchmark, as the documents show it")
	fs.StringVar(&parts, "parts", partStatus+","+partGet, "what to measure, in order: status, get or both")
	fs.StringVar(&c.statusNS, "status-namespace", "plugin-bench", "namespace of the InferServer status shows")
	fs.StringVar(&c.statusName, "status-name", "pb-status", "name of the InferServer status shows")
	fs.StringVar(&c.listNS, "get-namespace", "plugin-bench-list", "namespace of the InferServers get lists")
	fs.IntVar(&c.instances, "instances", 256, "instances (of 1 NPU) of the InferServer status shows")
	fs.IntVar(&c.servers, "servers", 1000, "InferServers get lists")
	fs.IntVar(&c.runs, "runs", 15, "timed runs of each command and of its baseline; the median counts")
	fs.IntVar(&c.workers, "workers", 20, "goroutines creating the InferServers get lists")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Minute, "how long to wait for the instances to be ready, or the servers to be observed")
	fs.DurationVar(&c.settle, "settle", 5*time.Second, "how long to let the cluster fall quiet before timing")
	_ = fs.Parse(args)
	c.parts = strings.Split(parts, ",")
	switch {
	case c.kubeconfig == "" || c.bin == "" || c.out == "":
		return fmt.Errorf("run: -kubeconfig, -bin and -out are required")
	case c.instances < 1 || c.servers < 1 || c.runs < 1 || c.workers < 1:
		return fmt.Errorf("run: -instances, -servers, -runs and -workers must be positive")
	}
	for _, p := range c.parts {
		if p != partStatus && p != partGet {
			return fmt.Errorf("run: unknown part %q: want %s or %s", p, partStatus, partGet)
		}
	}
	if c.home == "" {
		dir, err := os.MkdirTemp("", "pluginbench-home-")
		if err != nil {
			return err
		}
		defer func() { _ = os.RemoveAll(dir) }()
		c.home = dir
	}
	var err error
	if c.bin, err = filepath.Abs(c.bin); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	began := time.Now()
	b, err := newBench(ctx, c, measure.Logger("pluginbench", began))
	if err != nil {
		return err
	}

	res := &results.Plugin{Version: results.PluginVersion, Goals: goals}
	res.Setup = results.PluginSetup{
		Nodes: b.nodes, NPUsPerNode: b.npusPerNode, Instances: c.instances, Servers: c.servers, Runs: c.runs,
		StatusServer: serverYAML(c.statusName, statusSpec(c.instances)),
		ListServer:   serverYAML("pb-<i>", listSpec()),
		Kubectl:      b.kubectlVersion(ctx),
	}
	var failed []string
	for _, p := range c.parts {
		var err error
		switch p {
		case partStatus:
			res.Status, err = b.status(ctx, &res.Setup)
		case partGet:
			res.Get, err = b.get(ctx, &res.Setup)
		}
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			b.logf("%s: %v", p, err)
			failed = append(failed, fmt.Sprintf("%s: %v", p, err))
		}
	}
	if len(failed) > 0 {
		res.Setup.Note = "Failed: " + strings.Join(failed, "; ") + "."
	}
	res.Run = results.RouterRun{
		Date: time.Now().UTC().Format(time.RFC3339), Command: c.command, Go: runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH,
		CPU: measure.CPUModel(), CPUs: runtime.NumCPU(), WallSeconds: measure.Round(time.Since(began).Seconds(), 1),
	}
	if err := res.Save(c.out); err != nil {
		return err
	}
	for _, g := range res.Summary.Goals {
		b.logf("%s: %.3f (bound %.3f) measured %t met %t", g.Name, g.Value, g.Bound, g.Measured, g.Met)
	}
	b.logf("wrote %s", c.out)
	if len(failed) > 0 {
		return fmt.Errorf("%d part(s) failed: %s", len(failed), strings.Join(failed, "; "))
	}
	return nil
}

// Command faultbench is the fault-recovery benchmark that
// hack/fault-bench.sh runs on a local cluster of its own (hack/local-up.sh
// with simulated Ascend nodes): it measures the time from a fault to a
// replacement instance that answers a chat, for
//
//   - an NPU fault (`ascend-sim fault npu --level SeparateNPU` on a chip an
//     instance pod holds) with faultRescheduling Force,
//   - the same with Grace (the default),
//   - the loss of a node (`ascend-sim fault node --down=true` on the node of
//     an instance pod),
//
// each on a fresh InferServer of single-node instances with a router,
// created and waited Available first. Beside them, in the same run, it
// measures the baseline: one more instance added to each scenario's server
// and its pod timed from bound to a node to Ready (the simulated model
// load, the probes), then removed again. Between the runs of a scenario the
// fault is undone and the server let recover.
//
//	faultbench ports -n 4               free loopback ports, on one line
//	faultbench run -kubeconfig k -sim ascend-sim -control-addr-file f -out r.json
//
// The results are JSON in the format of mindie.io/deployer/test/bench/results
// (results.Faults); test/bench/report renders the "Fault recovery" section of
// docs/benchmarks.md from them.
//
// It dials only what the kubeconfig names and the pods' IPs, which it
// checks are loopback addresses.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"mindie.io/deployer/pkg/simulator/mindie"
	"mindie.io/deployer/test/bench/measure"
	"mindie.io/deployer/test/bench/results"
)

// goals are the issue's: an NPU fault with Force serving again within the
// load time + 10 s, a node loss within the load time + 70 s (its 60 s of
// nodeLostSeconds and 10 s); Grace is ours: Force's, plus the pod's
// termination grace period.
var goals = results.FaultGoals{
	ForceMarginSeconds: 10, GraceMarginSeconds: 10, NodeLossMarginSeconds: 70,
	Why: "the load time is the baseline measured in the same run (a fresh pod of the same server, bound to Ready). " +
		"Force: issue 13's goal, the load time + 10 s: the controller deletes the pod on the separated chip at once, so a replacement " +
		"should start within seconds. Node loss: issue 13's goal, the load time + 70 s: the node's pods are deleted nodeLostSeconds (60) " +
		"after its last heartbeat, and 10 s are left for noticing it and placing the replacement. Grace: ours, Force's bound plus the " +
		"pods' terminationGracePeriodSeconds, the most the drain may hold the replacement back if it waited for it.",
}

func main() { measure.Main("faultbench", run) }

// config is what `faultbench run` is told.
type config struct {
	kubeconfig, sim, controlFile, namespace, out, command string
	scenarios                                             []string
	repeats, nodeRepeats, instances, npus                 int
	grace                                                 int64
	timeout, poll                                         time.Duration
}

func run(args []string) error {
	var c config
	var scenarios string
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	fs.StringVar(&c.kubeconfig, "kubeconfig", "", "admin kubeconfig of the local cluster")
	fs.StringVar(&c.sim, "sim", "", "the ascend-sim binary (its fault command injects the faults)")
	fs.StringVar(&c.controlFile, "control-addr-file", "", "ascend-sim's --control-addr-file ($OUT/ascend-sim.control)")
	fs.StringVar(&c.namespace, "namespace", "fault-bench", "namespace of the InferServers")
	fs.StringVar(&c.out, "out", "", "where the results (JSON) go")
	fs.StringVar(&c.command, "command", "hack/fault-bench.sh", "the command that runs the benchmark, as the documents show it")
	fs.StringVar(&scenarios, "scenarios", strings.Join([]string{results.ScenarioNPUForce, results.ScenarioNPUGrace, results.ScenarioNodeLoss}, ","),
		"the scenarios to run, in order")
	fs.IntVar(&c.repeats, "repeats", 3, "faults injected per NPU scenario; the median counts")
	fs.IntVar(&c.nodeRepeats, "node-repeats", 3, "nodes lost in the node-loss scenario (each takes over a minute)")
	fs.IntVar(&c.instances, "instances", 2, "instances of each server")
	fs.IntVar(&c.npus, "npus", 8, "NPUs per instance")
	fs.Int64Var(&c.grace, "grace", 5, "the servers' spec.terminationGracePeriodSeconds")
	fs.DurationVar(&c.timeout, "timeout", 3*time.Minute, "how long to wait for a replacement, or for a server to be Available")
	fs.DurationVar(&c.poll, "poll", 200*time.Millisecond, "how often to look for a serving replacement")
	_ = fs.Parse(args)
	c.scenarios = strings.Split(scenarios, ",")
	switch {
	case c.kubeconfig == "" || c.sim == "" || c.controlFile == "" || c.out == "":
		return fmt.Errorf("run: -kubeconfig, -sim, -control-addr-file and -out are required")
	case c.repeats < 1 || c.nodeRepeats < 1 || c.instances < 1 || c.npus < 1 || c.npus > 8:
		return fmt.Errorf("run: -repeats, -node-repeats and -instances must be positive, -npus 1 to 8")
	}
	for _, s := range c.scenarios {
		if _, ok := policies[s]; !ok {
			return fmt.Errorf("run: unknown scenario %q: want %s, %s or %s", s, results.ScenarioNPUForce, results.ScenarioNPUGrace, results.ScenarioNodeLoss)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	began := time.Now()
	b, err := newBench(ctx, c, measure.Logger("faultbench", began))
	if err != nil {
		return err
	}
	defer b.close()

	res := &results.Faults{Version: results.FaultsVersion, Goals: goals}
	res.Setup = results.FaultSetup{
		Nodes: b.nodes, NPUsPerNode: b.npusPerNode, Instances: c.instances, NPUsPerInstance: c.npus,
		NodeLostSeconds: 60, TerminationGracePeriodSeconds: int(c.grace), FaultGraceOverTimeSeconds: 900,
		ConfiguredLoadTimeSeconds: mindie.DefaultLoadTime.Seconds(),
		Server:                    b.serverYAML("<scenario>", ""),
		PollMillis:                int(c.poll / time.Millisecond),
	}
	var failed []string
	for _, name := range c.scenarios {
		sc, samples, err := b.scenario(ctx, name)
		if sc != nil {
			res.Scenarios = append(res.Scenarios, *sc)
		}
		res.Baseline.Samples = append(res.Baseline.Samples, samples...)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			b.logf("%s: %v", name, err)
			failed = append(failed, fmt.Sprintf("%s: %v", name, err))
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
		b.logf("%s: %.1f s (bound %.1f s) measured %t met %t", g.Name, g.Value, g.Bound, g.Measured, g.Met)
	}
	b.logf("wrote %s", c.out)
	if len(failed) > 0 {
		return fmt.Errorf("%d scenario(s) failed: %s", len(failed), strings.Join(failed, "; "))
	}
	return nil
}

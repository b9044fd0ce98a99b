package main

// This file renders the "Plugin at scale" section of docs/benchmarks.md from
// the plugin benchmark's results (docs/bench/plugin.json, written by
// hack/plugin-bench.sh and test/bench/pluginbench): the wall time of
// `kubectl mindie status` of a server of many instances and of `kubectl
// mindie get` of many servers, each against a plain kubectl command that
// reads the same objects in the same run, held to the goals.

import (
	"fmt"
	"strings"

	"mindie.io/deployer/test/bench/results"
)

// pluginSectionHead is the section's heading, the same whether it ran or
// not.
const pluginSectionHead = "\n## Plugin at scale\n\n"

// renderPluginNotRun is the section when there are no results. It names
// the results file as the documented run writes it.
func renderPluginNotRun() string {
	return pluginSectionHead + "The plugin benchmark (`hack/plugin-bench.sh`: `kubectl mindie status` of a 256-instance InferServer and " +
		"`kubectl mindie get` of 1,000 InferServers, each against plain kubectl reading the same objects, on a local cluster of " +
		"simulated nodes) **has no results yet**: there is no `docs/bench/plugin.json`. `make bench` runs it unless `PLUGIN_BENCH=0`; " +
		"alone: `hack/plugin-bench.sh`.\n"
}

// pluginFormat is how a goal's figure is written: seconds, or a ratio.
func pluginFormat(name string) func(float64) string {
	if strings.Contains(name, " / ") {
		return func(v float64) string { return fmt.Sprintf("%.2f×", v) }
	}
	return secs
}

// pluginSecs is a time of a command: milliseconds below 10 s.
func pluginSecs(v float64) string {
	if v <= 0 {
		return "—"
	}
	if v < 10 {
		return msec(v * 1000)
	}
	return secs(v)
}

// outputSize is what a command printed.
func outputSize(c results.PluginCommand) string {
	switch {
	case c.OutputBytes >= 1<<20:
		return fmt.Sprintf("%.1f MiB, %d lines", float64(c.OutputBytes)/(1<<20), c.OutputLines)
	case c.OutputBytes >= 1<<10:
		return fmt.Sprintf("%.0f KiB, %d lines", float64(c.OutputBytes)/(1<<10), c.OutputLines)
	}
	return fmt.Sprintf("%d B, %d lines", c.OutputBytes, c.OutputLines)
}

// requestCount is how many API requests a command sent, or a dash when
// they were not recorded.
func requestCount(c results.PluginCommand) string {
	if len(c.Requests) == 0 {
		return "—"
	}
	return fmt.Sprint(len(c.Requests))
}

// renderPlugin returns the "Plugin at scale" section of docs/benchmarks.md.
func renderPlugin(r *results.Plugin) string {
	var sb strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	su := r.Setup

	p(pluginSectionHead)
	p("`kubectl mindie` ([kubectl-mindie.md](kubectl-mindie.md)) measured by `test/bench/pluginbench`, run by `hack/plugin-bench.sh` " +
		"(which `hack/bench.sh` runs; `PLUGIN_BENCH=0` skips it) on a local cluster of its own, rendered from `docs/bench/plugin.json`: " +
		"the wall time of the real `kubectl` and `kubectl-mindie` binaries run as a user runs them, each command beside a plain kubectl " +
		"command that reads the same objects, timed in the same run. The API servers, the controller and the scheduler are the real ones, " +
		"as loopback processes; the nodes and the servers on them are simulated ([simulator.md](simulator.md)), which changes nothing of " +
		"what the commands read.\n\n")
	p("- Date: %s; wall time of the benchmark (the cluster's start and teardown left out) %s\n", orDash(r.Run.Date), secs(r.Run.WallSeconds))
	p("- Go: %s; CPU: %s, %d CPUs, shared by the cluster's processes and the commands timed; kubectl %s\n",
		orDash(r.Run.Go), orDash(r.Run.CPU), r.Run.CPUs, orDash(su.Kubectl))
	p("- Command: `%s`\n", r.Run.Command)
	if su.Note != "" {
		p("- Note: %s\n", su.Note)
	}

	p("\n### Goals\n\n")
	p("| goal | figure | goal and verdict |\n|---|--:|---|\n")
	for _, g := range r.Summary.Goals {
		f := pluginFormat(g.Name)
		value := "—"
		if g.Measured {
			value = f(g.Value)
		}
		p("| %s | %s | %s |\n", g.Name, value, verdict(g, f))
	}
	p("\n*Figure* is the median of the runs' wall times, or the ratio of the command's median to its baseline's. ")
	if r.Goals.Why != "" {
		p("Why these bounds: %s", r.Goals.Why)
	}
	p("\n")

	p("\n### Runs\n\n")
	p("| command | runs | median | min – max | CPU (median) | output | API requests |\n|---|--:|--:|--:|--:|--:|--:|\n")
	row := func(c results.PluginCommand, role string) {
		p("| `%s` (%s) | %d | %s | %s – %s | %s | %s | %s |\n", c.Command, role, len(c.Seconds), pluginSecs(c.MedianSeconds),
			pluginSecs(c.MinSeconds), pluginSecs(c.MaxSeconds), pluginSecs(c.MedianCPUSeconds), outputSize(c), requestCount(c))
	}
	for _, cmp := range []*results.PluginComparison{r.Status, r.Get} {
		if cmp == nil {
			continue
		}
		row(cmp.Measured, "measured")
		row(cmp.Baseline, fmt.Sprintf("baseline; ratio %s", ratioCell(cmp.Ratio)))
	}
	if r.Status == nil && r.Get == nil {
		p("| nothing was measured | | | | | | |\n")
	}
	p("\n*Median* and *min – max* are wall times from the process's start to its exit, kubectl's own start and, for `kubectl mindie`, " +
		"its exec of `kubectl-mindie` in its place included; *CPU* is the process's user and system time. *API requests* are those of " +
		"one more run at `-v=6`:\n\n")
	for _, cmp := range []*results.PluginComparison{r.Status, r.Get} {
		if cmp == nil {
			continue
		}
		for _, c := range []results.PluginCommand{cmp.Measured, cmp.Baseline} {
			p("- `%s`: ", c.Command)
			if len(c.Requests) == 0 {
				p("not recorded\n")
				continue
			}
			quoted := make([]string, len(c.Requests))
			for i, req := range c.Requests {
				quoted[i] = "`" + req + "`"
			}
			p("%s\n", strings.Join(quoted, "; "))
		}
	}

	p("\n### Method\n\n")
	p("The cluster has %d simulated nodes of %d NPUs. *Status* reads one InferServer of %d single-NPU instances,\n\n", su.Nodes, su.NPUsPerNode, su.Instances)
	for _, line := range strings.Split(su.StatusServer, "\n") {
		p("    %s\n", line)
	}
	p("\ntimed once it was Available with every instance ready (%s after its create). Its baseline, `kubectl get pods -l <the server's "+
		"selector> -o json`, reads the very pods `status` shows: `status` prints every instance and its pod (node, pod IP, NPUs, phase, "+
		"live, ready, restarts) from the InferServer's `status.instances`, which the controller keeps from those pods, and without the "+
		"plugin a user or a script gets the same facts from the pods themselves, in full only with `-o json` (neither the default "+
		"table nor `-o wide` shows the NPUs). The server is deleted, and its pods are gone, before the second part. *Get* lists a namespace "+
		"of %d InferServers, each\n\n", pluginSecs(su.ReadySeconds), su.Servers)
	for _, line := range strings.Split(su.ListServer, "\n") {
		p("    %s\n", line)
	}
	p("\ncreated at once (%s until the controller had observed every one). Paused, a server's Deployment makes no ReplicaSet and no pod, "+
		"so that %d servers fit the cluster, while the controller still writes each one's revision, Deployment, Service and status, "+
		"which `get` prints. Its baseline, `kubectl get inferservers` of the same namespace, asks mindie-apiserver for the same "+
		"server-side Table of the same objects and prints it with the same printer: the difference is what the plugin adds to "+
		"kubectl, and how each asks (kubectl in pages of 500, its `--chunk-size`; the plugin in one request).\n\n", pluginSecs(su.ObservedSeconds), su.Servers)
	p("Each command and its baseline run once untimed first (kubectl fills its discovery cache, in a HOME of the benchmark's own, as "+
		"a user's is warm), then %d times each, in turn, the order swapped every round so that neither always follows the other.\n", su.Runs)
	p("\n%s", pluginReading(r))
	return sb.String()
}

// pluginReading says what the figures show, in words, from the figures.
func pluginReading(r *results.Plugin) string {
	var sb strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	if r.Status == nil && r.Get == nil {
		return "Nothing was measured: there is nothing to read.\n"
	}
	p("**What the figures show.**")
	say := func(cmp *results.PluginComparison, what string, bound float64) {
		m, b := cmp.Measured, cmp.Baseline
		if m.MedianSeconds <= 0 || b.MedianSeconds <= 0 {
			p(" %s was not measured with its baseline.", what)
			return
		}
		within := "within"
		if m.MedianSeconds > bound {
			within = "over"
		}
		over := 0
		for _, v := range m.Seconds {
			if v > bound {
				over++
			}
		}
		p(" %s took %s (median; at most %s), %s the goal of %s", what, pluginSecs(m.MedianSeconds), pluginSecs(m.MaxSeconds), within, pluginSecs(bound))
		if over > 0 && m.MedianSeconds <= bound {
			p(" (%d of its %d runs over it, on two cores shared with the cluster and other work)", over, len(m.Seconds))
		}
		p(", against %s for `%s`: %s the baseline's time, with %s of CPU against %s, %s against %s API requests, printing %s against %s.",
			pluginSecs(b.MedianSeconds), b.Command, ratioCell(cmp.Ratio), pluginSecs(m.MedianCPUSeconds), pluginSecs(b.MedianCPUSeconds),
			requestCount(m), requestCount(b), outputSize(m), outputSize(b))
	}
	if r.Status != nil {
		say(r.Status, fmt.Sprintf("`kubectl mindie status` of %d instances", r.Setup.Instances), r.Goals.StatusSeconds)
	}
	if r.Get != nil {
		say(r.Get, fmt.Sprintf("`kubectl mindie get` of %d InferServers", r.Setup.Servers), r.Goals.GetSeconds)
	}
	p("\n")
	return sb.String()
}

package main

// This file renders docs/reconcile-bench.md from the reconcile benchmark's
// results (test/bench/results.Reconcile), and the summary table that
// docs/benchmarks.md shows too.

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/test/bench/results"
)

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

// boundsText says how long each phase of each N could take: the bound
// each measurement recorded, as runs with other bounds may share a file.
// A measurement of the first format, which recorded none, had the run's
// timeout alone.
func boundsText(run results.Run, rs []results.Measurement) string {
	var each []string
	for _, m := range rs {
		b := m.TimeoutSeconds
		if b <= 0 {
			b = run.TimeoutSeconds
		}
		each = append(each, fmt.Sprintf("%s servers, %s", thousands(m.N), secs(b)))
	}
	if len(each) == 0 {
		return fmt.Sprintf("each phase may take %s plus %s per server", secs(run.TimeoutSeconds), secs(run.TimeoutPerServerSeconds))
	}
	return "each phase may take, for " + strings.Join(each, "; for ") +
		fmt.Sprintf(" (the last run's bound: %s plus %s per server)", secs(run.TimeoutSeconds), secs(run.TimeoutPerServerSeconds))
}

// times is a/b as a ratio, or a dash when it is not known.
func times(v float64) string {
	if v <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f×", v)
}

// reached is the time every server got there, or how many did.
func reached(v float64, got, n int) string {
	if got < n {
		return fmt.Sprintf("not reached (%d of %d)", got, n)
	}
	return secs(v)
}

func metOrMissed(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

// runDate is when the first measurement of the results' machine (the last
// run's) started, or "".
func runDate(rc *results.Reconcile) string {
	first := ""
	for _, m := range rc.Sizes {
		if m.Machine != "" && m.Machine != rc.Run.Machine() {
			// An earlier run's, on another machine (otherMachines).
			continue
		}
		if first == "" || m.Start < first {
			first = m.Start
		}
	}
	t, err := time.Parse(time.RFC3339, first)
	if err != nil {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// otherMachines names the sizes measured on another machine than the
// results' run (results that gathered their sizes over several runs), with
// when: "" where every size was measured on it.
func otherMachines(rc *results.Reconcile) string {
	var out []string
	for _, m := range rc.Sizes {
		if m.Machine == "" || m.Machine == rc.Run.Machine() {
			continue
		}
		when := m.Start
		if t, err := time.Parse(time.RFC3339, m.Start); err == nil {
			when = t.UTC().Format("2006-01-02 15:04 UTC")
		}
		out = append(out, fmt.Sprintf("%d servers on %s (%s)", m.N, m.Machine, when))
	}
	if len(out) == 0 {
		return ""
	}
	return " Measured on another machine by an earlier run: " + strings.Join(out, "; ") +
		"; compare its ratios, not its seconds, with the others'."
}

// commands are the commands that measured the results' sizes, each with
// its sizes where there was more than one (results that gathered their
// sizes over several runs), in the order of the sizes.
func commands(rc *results.Reconcile) string {
	var order []string
	sizes := map[string][]string{}
	for _, m := range rc.Sizes {
		cmd := m.Command
		if cmd == "" {
			cmd = rc.Run.Command
		}
		if _, ok := sizes[cmd]; !ok {
			order = append(order, cmd)
		}
		sizes[cmd] = append(sizes[cmd], strconv.Itoa(m.N))
	}
	switch len(order) {
	case 0:
		return "`" + orDash(rc.Run.Command) + "`"
	case 1:
		return "`" + orDash(order[0]) + "`"
	}
	var out []string
	for _, cmd := range order {
		out = append(out, fmt.Sprintf("`%s` (%s servers)", orDash(cmd), strings.Join(sizes[cmd], ", ")))
	}
	return strings.Join(out, "; ")
}

// controllersWhere names the process the controllers of a measurement ran in.
func controllersWhere(m results.Measurement) string {
	if m.Controllers == results.ControllersExternal {
		return "mindie-controller"
	}
	return "in mindie-apiserver"
}

func gib(kib int64) string {
	if kib <= 0 {
		return ""
	}
	return fmt.Sprintf("%.1f GiB", float64(kib)/(1<<20))
}

// baselineName is the baseline's column header: what it writes.
func baselineName(rc *results.Reconcile) string {
	if rc.ConfigMapBaseline() {
		return "baseline: N ConfigMaps"
	}
	return "baseline: the same children"
}

// baselineWhat says in a sentence what the baseline of rc is.
func baselineWhat(rc *results.Reconcile) string {
	if rc.ConfigMapBaseline() {
		return "as many ConfigMaps (each holding the JSON of an InferServer's spec), which no controller acts on: " +
			"the baseline of the results' first format, not the children the controller writes"
	}
	return "the very children the controller writes on each server's first sync, written directly in a namespace of their own: " +
		"per server its ControllerRevision created, then its Deployment and its Service applied at once with server-side apply as `mindie-controller` " +
		"(`inferserver.FirstChildren` of a server defaulted like the benchmark's, without owner references), 3N objects, " +
		"until a watch has seen them all"
}

// controllerFlags says how the controllers were set up, wherever they ran.
func controllerFlags(run results.Run) string {
	c := run.Controller
	if c == nil {
		return "not recorded (results of the first format)"
	}
	s := fmt.Sprintf("`--controller-workers=%d --kube-api-qps=%g --kube-api-burst=%d`", c.Workers, c.KubeAPIQPS, c.KubeAPIBurst)
	if run.APIServerFlags == "" {
		return s + " (its defaults: the run added no flag)"
	}
	return s + fmt.Sprintf(" (the run added `%s`)", run.APIServerFlags)
}

// goalNames says what each goal bounds, as the goals table shows it.
var goalNames = map[string]string{
	results.GoalRatio:           "all observed / baseline",
	results.GoalObservedSeconds: "all observed",
	results.GoalPeakKiB:         "mindie-apiserver peak RSS",
	results.GoalGrowth:          "peak RSS growth per server",
	results.GoalDeleteSeconds:   "deletion at the end: all gone",
}

// goalValue formats a figure a goal bounds.
func goalValue(goal string, v float64) string {
	switch goal {
	case results.GoalRatio:
		return fmt.Sprintf("%.1f×", v)
	case results.GoalObservedSeconds, results.GoalDeleteSeconds:
		return secs(v)
	case results.GoalPeakKiB:
		return mib(int64(v))
	}
	return fmt.Sprintf("%.0f KiB", v)
}

// distance is how a check fared: met with how much room, missed by how
// much, or not measured.
func distance(c results.Check, m results.Measurement) string {
	d := checkDistance(c, m)
	if c.Known && m.Controllers == results.ControllersExternal && (c.Goal == results.GoalPeakKiB || c.Goal == results.GoalGrowth) {
		d += fmt.Sprintf("; the controllers ran apart, in mindie-controller, which peaked at %s (%s together)",
			mib(m.Memory.ControllerPeakKiB), mib(m.Memory.PeakKiB+m.Memory.ControllerPeakKiB))
	}
	return d
}

// checkDistance is distance without what it adds for controllers run apart.
func checkDistance(c results.Check, m results.Measurement) string {
	switch {
	case !c.Known:
		return fmt.Sprintf("not measured: %d of %d observed", m.Reconcile.Observed, m.N)
	case c.Met:
		return fmt.Sprintf("met (%.0f%% of the bound)", 100*c.Value/c.Max)
	}
	over := c.Value / c.Max
	if over < 1.1 {
		return fmt.Sprintf("**missed**: %.2f× the bound", over)
	}
	return fmt.Sprintf("**missed**: %.1f× the bound", over)
}

// reconcileSummary is the table of the reconcile benchmark's results, the
// goals and how each measurement fared, and what the columns mean: both
// documents show it.
func reconcileSummary(rc *results.Reconcile) string {
	var sb strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	p("| InferServers | all created | all children | all observed | %s | ratio | servers/s | mindie-apiserver RSS before → peak | peak growth per server |\n", baselineName(rc))
	p("|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, m := range rc.Sizes {
		r, s := m.Reconcile, m.Summary
		rate := "—"
		if s.ServersPerSecond > 0 {
			rate = fmt.Sprintf("%.1f", s.ServersPerSecond)
		}
		p("| %d | %s | %s | %s | %s | %s | %s | %s → %s | %.0f KiB |\n", m.N, secs(r.CreatedSeconds),
			reached(r.ChildrenSeconds, r.Children, m.N), reached(r.ObservedSeconds, r.Observed, m.N),
			secs(m.Baseline.SeenSeconds), times(s.Ratio), rate, mib(m.Memory.BeforeKiB), mib(m.Memory.PeakKiB), s.PeakGrowthKiBPerServer)
	}
	p("\n| InferServers | goal | bound | measured | |\n|--:|---|--:|--:|---|\n")
	for _, m := range rc.Sizes {
		for _, c := range m.Summary.Checks {
			measured := "—"
			if c.Known {
				measured = goalValue(c.Goal, c.Value)
			}
			p("| %d | %s | ≤ %s | %s | %s |\n", m.N, goalNames[c.Goal], goalValue(c.Goal, c.Max), measured, distance(c, m))
		}
	}
	for _, g := range rc.Goals.Sizes {
		if slices.ContainsFunc(rc.Sizes, func(m results.Measurement) bool { return m.N == g.N }) {
			continue
		}
		for _, c := range rc.Goals.For(g.N) {
			p("| %d | %s | ≤ %s | — | not measured: this run's `RECONCILE_SIZES` left it out |\n", g.N, goalNames[c.Goal], goalValue(c.Goal, c.Max))
		}
	}
	p("\nMeasured %s on %d CPUs (%s), shared with other work; the controllers' settings: %s. *Ratio* is the time until every InferServer's status was observed "+
		"over the time to write %s (%s), both in the same run with the same client and %d goroutines writing at once; "+
		"compare ratios between runs, not seconds between machines.%s *Servers/s* is N over the time to all observed. "+
		"The goals are those of the issue for 1,000 and 10,000 servers, and a ceiling on the memory growth per server at every N so that a regression shows; "+
		"`test/bench/reconcile` holds them and the results record them.%s\n",
		orDash(runDate(rc)), rc.Run.CPUs, orDash(rc.Run.CPU), controllerFlags(rc.Run), baselineWhat(rc), medianOfRuns(rc.Sizes), rc.Run.Workers, serverRunsShort(rc.Sizes),
		otherMachines(rc))
	if why := missedReasons(rc); len(why) > 0 {
		p("\nWhy the goals above were missed (with the rest of what the run shows in [reconcile-bench.md](reconcile-bench.md), *What it shows*):\n\n")
		for _, w := range why {
			p("- %s\n", w)
		}
	}
	return sb.String()
}

// missedReasons explains every goal the results missed, by kind of goal.
func missedReasons(rc *results.Reconcile) []string {
	return append(ratioMisses(rc.Sizes, rc.Run.CPUs), boundMisses(rc.Sizes)...)
}

// boundMisses explains the missed bounds on time, memory and deletion.
func boundMisses(rs []results.Measurement) []string {
	out := timeMisses(rs)
	out = append(out, memoryMisses(rs)...)
	return append(out, deletionMisses(rs)...)
}

// renderReconcile writes docs/reconcile-bench.md.
func renderReconcile(rc *results.Reconcile) string {
	rs := rc.Sizes
	run := rc.Run
	var sb strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	p("# Reconcile benchmark\n\n")
	p("Generated by `test/bench/report` from `docs/bench/reconcile.json`, the results `hack/reconcile-bench.sh` writes (run by `hack/bench.sh`, `make bench`, unless `RECONCILE_BENCH=0`); do not edit by hand. "+
		"A local cluster of its own (`hack/local-up.sh` on free loopback ports, with no simulated nodes, so the pods stay Pending and the measurement is about the "+
		"controller and the API servers, not the simulator). For each N, `test/bench/reconcile` creates N single-node InferServers (1 instance, 1 NPU, a ClusterIP Service) "+
		"at once, from %d goroutines through the kube-apiserver (which proxies them to mindie-apiserver), and watches the InferServers, Deployments, Services "+
		"and ControllerRevisions of the namespace. Times count from the first create call:\n\n", run.Workers)
	p("- **all children**: the last server to have its Deployment and Service (named like it) and a ControllerRevision labelled `%s=<name>`;\n", v1alpha1.LabelServer)
	p("- **all observed**: the last server whose `status.observedGeneration` equals `metadata.generation` with `status.updateRevision` set;\n")
	if rc.ConfigMapBaseline() {
		p("- **baseline**: in the same run, just before, N ConfigMaps (each holding the JSON of an InferServer's spec) created with the same client and concurrency, "+
			"until the watch has seen all of them: what writing N objects through the kube-apiserver costs when no controller has to act on them; "+
			"%s (%s);\n", medianOfRuns(rs), baselineRuns(rs))
	} else {
		p("- **baseline**: in the same run, its runs taking turns with the servers' (a baseline run, then a run of the servers, and so on, so that a drift of the machine's speed falls on both alike), %s, with the same client and the same %d goroutines; each run in a namespace of its own, its objects deleted after it "+
			"(the deletion timed too); %s (%s). After the servers' phase the first server's children, as their field manager owns them, "+
			"are compared with the baseline's;\n", baselineWhat(rc), run.Workers, medianOfRuns(rs), baselineRuns(rs))
	}
	if runs := serverRuns(rs); runs != "" {
		p("- **servers' runs**: %s;\n", runs)
	}
	if fl := floorRuns(rs); fl != "" {
		p("- **floor**: what a controller that cost nothing would take, measured in the same run, its runs taking turns with the others' "+
			"(baseline, floor, servers, and so on): mindie-apiserver restarted without its controllers, and the benchmark itself makes the writes of every server's first sync, "+
			"each as soon as the server's create returned: the InferServers created as in the servers' phase, and per server, from as many goroutines as the controller has workers, "+
			"its children as the baseline writes them (owned by the server), the status the controller wrote for the warm-up server (its names replaced) and an Event like the controller's, "+
			"timed until a watch saw every status observed; the median of its runs (%s). The servers' phase beyond the floor is the controller's own work "+
			"(its informers, its queue, its reads); the floor beyond the baseline is the InferServers' own (their creates through the aggregator, their statuses, their Events);\n", fl)
	}
	p("- **ratio**: all observed / baseline;\n")
	restarted := len(rs) > 0 && rs[len(rs)-1].Memory.Restarted
	p("- **memory**: mindie-apiserver's VmRSS sampled from /proc every 200 ms, from just before the first create until %s after the last status was observed. ", secs(run.SettleSeconds))
	if restarted {
		p("mindie-apiserver is restarted before each N and before every run of the baseline and of the servers after that (the baseline's children pass through its caches too), " +
			"so every phase meets a fresh process; a warm-up InferServer, created and observed after each restart, makes sure the controller holds its Lease and has synced.\n")
	} else {
		p("mindie-apiserver is restarted before each N (after the previous N's servers are deleted), so each row starts from a fresh process; " +
			"a warm-up InferServer, created and observed before the baseline, makes sure the restarted controller holds its Lease and has synced.\n")
	}
	if !rc.ConfigMapBaseline() {
		p("- **quiet**: before the warm-up, each baseline run and the servers, the benchmark waits until the cluster's processes together use at most %.2f cores over 2 s "+
			"(%s at most), so that what the phase before left to do (the controller manager making and collecting ReplicaSets and pods) is not measured with the next one;\n",
			run.QuietCores, secs(run.QuietTimeoutSeconds))
		p("- **bounds**: %s.\n", boundsText(run, rs))
	}
	p("\n- Date: %s\n", orDash(runDate(rc)))
	p("- Machine: %d CPUs (%s), %s RAM, shared with other work while it ran.%s\n", run.CPUs, orDash(run.CPU), orDash(gib(run.MemTotalKiB)), otherMachines(rc))
	p("- Go: %s\n", orDash(run.Go))
	p("- Command: %s\n", commands(rc))
	p("- The controllers' settings: %s\n", controllerFlags(run))
	if run.Note != "" {
		p("- Note: %s\n", run.Note)
	}
	p("\n## Results\n\n")
	p("%s\n", reconcileSummary(rc))
	p("%s", whatItShows(rc))

	p("## Details\n\n")
	p("Per-server times (seconds from the first create; p50 / p90 / max over the servers):\n\n")
	p("| InferServers | children p50 | p90 | max | observed p50 | p90 | max | warm-up server observed |\n")
	p("|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range rs {
		c, o := r.Reconcile.ChildrenQuantiles, r.Reconcile.ObservedQuantiles
		p("| %d | %s | %s | %s | %s | %s | %s | %s |\n", r.N, q(c, "p50"), q(c, "p90"), q(c, "max"), q(o, "p50"), q(o, "p90"), q(o, "max"), secs(r.WarmupSeconds))
	}
	if run.DeleteBy == "namespace" {
		p("\nThe deletion at the end: the servers' namespace deleted and timed until it is gone (kube-controller-manager's namespace controller " +
			"deletes what it holds, the InferServers through the aggregated API, whose controller sees the namespace terminating and lets them go " +
			"without deleting their children one by one; the children, ReplicaSets, pods and events go with the namespace). Beside it, the " +
			"baseline's: the namespace holding only the same children, deleted alike (the median of its runs):\n\n")
		p("| InferServers | delete call returned | namespace gone | baseline: namespace of the children gone |\n|--:|--:|--:|--:|\n")
	} else {
		p("\nThe deletion at the end: every InferServer deleted from %d goroutines; the controller deletes the children behind its finalizer, then lets the server go. "+
			"Beside it, the baseline's deletion of its children, with the same client and concurrency (the median of its runs):\n\n", run.Workers)
		p("| InferServers | delete calls returned | servers and children gone | baseline: children gone |\n|--:|--:|--:|--:|\n")
	}
	for _, r := range rs {
		del := "not measured"
		switch {
		case r.Delete.Done:
			del = secs(r.Delete.Seconds)
		case r.Delete.Seconds > 0:
			del = fmt.Sprintf("not within %s: %d left", secs(r.Delete.Seconds), r.Delete.Left)
		}
		calls, base := "—", "—"
		if r.Delete.CallsSeconds > 0 {
			calls = secs(r.Delete.CallsSeconds)
		}
		if r.Baseline.DeleteSeconds > 0 {
			base = secs(r.Baseline.DeleteSeconds)
		}
		p("| %d | %s | %s | %s |\n", r.N, calls, del, base)
	}

	p("\nmindie-apiserver's memory (VmRSS sampled every 200 ms from just before the first create until %s after the last status was observed; VmHWM is the process's own peak since it started). "+
		"The baseline's children pass through the controller's informers too (they carry the label they select)", secs(run.SettleSeconds))
	if restarted {
		p(", so a process that held them is restarted before the servers; the first two columns are of the processes that ran the baseline (after the first warm-up, and the highest sampled during any run of the baseline):\n\n")
	} else {
		p(", so the process can be larger after the baseline than after the warm-up:\n\n")
	}
	p("| InferServers | controllers | after the warm-up | peak during the baseline | before the first create | peak | at the end | VmHWM at the end | samples |\n|--:|---|--:|--:|--:|--:|--:|--:|--:|\n")
	external := false
	for _, r := range rs {
		m := r.Memory
		p("| %d | %s | %s | %s | %s | %s | %s | %s | %d |\n", r.N, controllersWhere(r), mibOrDash(m.AfterWarmupKiB), mibOrDash(m.BaselinePeakKiB), mib(m.BeforeKiB), mib(m.PeakKiB), mib(m.EndKiB), mib(m.HWMKiB), m.Samples)
		external = external || r.Controllers == results.ControllersExternal
	}
	if external {
		p("\nWhere the controllers ran as mindie-controller (`RECONCILE_CONTROLLERS=external`), that process's memory, sampled alike:\n\n")
		p("| InferServers | before the first create | peak | at the end | VmHWM at the end | mindie-apiserver and mindie-controller at their peaks |\n|--:|--:|--:|--:|--:|--:|\n")
		for _, r := range rs {
			if m := r.Memory; r.Controllers == results.ControllersExternal {
				p("| %d | %s | %s | %s | %s | %s |\n", r.N, mib(m.ControllerBeforeKiB), mib(m.ControllerPeakKiB), mib(m.ControllerEndKiB), mib(m.ControllerHWMKiB), mib(m.PeakKiB+m.ControllerPeakKiB))
			}
		}
	}
	p("\nCPU seconds of each process while the N servers were reconciled (first create to last status observed), and while the baseline ran (its median run), and the floor where it was measured (its median run):\n\n")
	procs := []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "mindie-apiserver"}
	if external {
		procs = append(procs, "mindie-controller")
	}
	p("| InferServers | phase | seconds |")
	for _, name := range procs {
		p(" %s |", name)
	}
	p(" all | all per server | cores on average |\n|--:|---|--:|")
	for range procs {
		p("--:|")
	}
	p("--:|--:|--:|\n")
	for _, r := range rs {
		type phase struct {
			name string
			secs float64
			cpu  map[string]float64
		}
		phases := []phase{{"reconcile", r.Reconcile.ObservedSeconds, r.Reconcile.CPU}, {"baseline", r.Baseline.SeenSeconds, r.Baseline.CPU}}
		if r.Floor != nil {
			phases = append(phases, phase{"floor", r.Floor.ObservedSeconds, r.Floor.CPU})
		}
		for _, ph := range phases {
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
			cores := "—"
			if ph.secs > 0 {
				cores = fmt.Sprintf("%.2f", all/ph.secs)
			}
			p(" %.1f | %.4f | %s |\n", all, all/float64(r.N), cores)
		}
	}
	workers := "the default `--controller-workers`"
	if run.Controller != nil {
		workers = fmt.Sprintf("%d", run.Controller.Workers)
	}
	p("\nThe controller's work queue while the servers were reconciled, from the `/metrics` of the process the controllers ran in (mindie-apiserver's, or mindie-controller's) (`workqueue_*{name=\"inferserver\"}`) "+
		"read just before the first create and when the last status was observed. A sync is one pass of a worker over one InferServer; "+
		"busy workers is the time spent in syncs over the elapsed time (of %s workers). *Requeued* is `workqueue_retries_total`, which client-go counts on every `AddAfter`: "+
		"a sync that asks to be looked at again later (a server whose pods are not ready yet) as well as a failed one retried with back-off; "+
		"*failed syncs* are the `%s` lines mindie-apiserver logged in the same window:\n\n", workers, "Syncing InferServer failed")
	p("| InferServers | syncs per server | requeued | failed syncs | mean sync | mean wait in the queue | busy workers (mean) |\n")
	p("|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range rs {
		qs := r.Reconcile.Queue
		if qs == nil || qs.Syncs == 0 {
			p("| %d | — | — | — | — | — | — |\n", r.N)
			continue
		}
		failed := fmt.Sprintf("%d", r.Log.SyncErrorsReconcile)
		if rc.ConfigMapBaseline() {
			failed = "not counted apart"
		}
		p("| %d | %.2f | %.0f | %s | %.0f ms | %s | %.2f |\n", r.N, qs.Syncs/float64(r.N), qs.Requeues, failed,
			1000*qs.WorkSeconds/qs.Syncs, secs(qs.QueueSeconds/qs.Syncs), qs.WorkSeconds/max(qs.ElapsedSeconds, 1e-9))
	}
	if hasRequests(rs) {
		p("\nWrite requests the API servers served while the servers were reconciled (their `apiserver_request_total` and `apiserver_request_duration_seconds`, " +
			"read at the same moments; everyone's writes, the controller's, the controller manager's, the scheduler's and the benchmark's creates, " +
			"those of at least one per ten servers), per server, with the server's mean time to answer one, and the same in the baseline's median run:\n\n")
		p("| InferServers | API server | verb | resource | per server | mean time | baseline: per server | mean time |\n|--:|---|---|---|--:|--:|--:|--:|\n")
		for _, r := range rs {
			base := map[[3]string]results.Requests{}
			for _, req := range r.Baseline.Requests {
				base[[3]string{req.Server, req.Verb, req.Resource}] = req
			}
			for _, req := range r.Reconcile.Requests {
				if req.Count < float64(r.N)/10 {
					continue
				}
				bcount, btime := "—", "—"
				if b, ok := base[[3]string{req.Server, req.Verb, req.Resource}]; ok {
					bcount, btime = fmt.Sprintf("%.2f", b.Count/float64(r.N)), fmt.Sprintf("%.0f ms", 1000*b.Seconds/b.Count)
				}
				p("| %d | %s | %s | %s | %.2f | %.0f ms | %s | %s |\n", r.N, req.Server, req.Verb, orDash(req.Resource), req.Count/float64(r.N), 1000*req.Seconds/req.Count, bcount, btime)
			}
		}
	}
	p("\nWrites the benchmark's watches saw while the servers were reconciled (adds and updates per server: the controller's, " +
		"the controller manager's and the scheduler's), and what mindie-apiserver logged during the whole measurement (warm-up, baseline, servers and their deletion):\n\n")
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
		"the event recorder writes them in the background, one at a time:\n\n", secs(run.SettleSeconds))
	p("| InferServers | when every status was observed | after the deletion |\n|--:|---|---|\n")
	for _, r := range rs {
		p("| %d | %s | %s |\n", r.N, eventList(r.Reconcile.Events), eventList(r.Reconcile.EventsLater))
	}
	if s := quietWaits(rs); s != "" {
		p("\n%s", s)
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
		for _, pr := range thinRows(last.Reconcile.Progress, 15) {
			p("| %.1f | %d | %d | %d |\n", pr.T, pr.Created, pr.Children, pr.Observed)
		}
	}
	if len(last.Delete.Progress) > 0 {
		p("\nTheir deletion (servers and children left):\n\n| s | servers | children |\n|--:|--:|--:|\n")
		for _, pr := range thinRows(last.Delete.Progress, 15) {
			p("| %.0f | %d | %d |\n", pr.T, pr.Servers, pr.Children)
		}
	}
	return sb.String()
}

// thinRows keeps about rows of xs, evenly spaced, the last one always.
func thinRows[T comparable](xs []T, rows int) []T {
	step := max(1, len(xs)/rows)
	var out []T
	for i := 0; i < len(xs); i += step {
		out = append(out, xs[i])
	}
	if out[len(out)-1] != xs[len(xs)-1] {
		out = append(out, xs[len(xs)-1])
	}
	return out
}

func mibOrDash(kib int64) string {
	if kib <= 0 {
		return "—"
	}
	return mib(kib)
}

func hasRequests(rs []results.Measurement) bool {
	for _, r := range rs {
		if len(r.Reconcile.Requests) > 0 {
			return true
		}
	}
	return false
}

// quietWaits says how long the phases waited for the cluster to fall
// quiet, when any waited long or gave up.
func quietWaits(rs []results.Measurement) string {
	var out []string
	for _, r := range rs {
		for _, w := range r.Quiet {
			switch {
			case !w.Quiet:
				out = append(out, fmt.Sprintf("with %d, %s started after %s while the cluster still used %.2f cores", r.N, w.Before, secs(w.Seconds), w.Cores))
			case w.Seconds >= 10:
				out = append(out, fmt.Sprintf("with %d, %s waited %s", r.N, w.Before, secs(w.Seconds)))
			}
		}
	}
	if len(out) == 0 {
		return ""
	}
	return "Waits for the cluster to fall quiet before a phase: " + strings.Join(out, "; ") + ".\n"
}

func q(m map[string]float64, k string) string {
	v, ok := m[k]
	if !ok {
		return "—"
	}
	return fmt.Sprintf("%.2f", v)
}

func eventList(m map[string]int) string {
	var evs []string
	for k, v := range m {
		evs = append(evs, fmt.Sprintf("%s: %d", k, v))
	}
	sort.Strings(evs)
	return orDash(strings.Join(evs, "; "))
}

// limitedWrites are the requests the controller makes for a single-node
// server's first sync through its rate-limited client, as the
// kube-apiserver's metrics name them: its ControllerRevision created, its
// Deployment and Service applied. Its status goes to mindie-apiserver
// through the server's own loopback client, which has no limit, and Events
// through a client of their own.
var limitedWrites = []struct{ verb, resource string }{
	{"POST", "apps/controllerrevisions"},
	{"APPLY", "apps/deployments"},
	{"APPLY", "services"},
}

// limitedRequests counts the kube-apiserver's requests of limitedWrites
// among reqs: the controller's, and the baseline's were it measured then.
func limitedRequests(reqs []results.Requests) float64 {
	var n float64
	for _, r := range reqs {
		for _, w := range limitedWrites {
			if r.Server == "kube-apiserver" && r.Verb == w.verb && r.Resource == w.resource {
				n += r.Count
			}
		}
	}
	return n
}

// whatItShows reads the results for the report: where the time went for
// the largest N, and anything the logs or the events say.
func whatItShows(res *results.Reconcile) string {
	rs := res.Sizes
	var out []string
	last := rs[len(rs)-1]
	rc := last.Reconcile
	n := float64(last.N)
	complete := rc.Observed == last.N && rc.ObservedSeconds > 0
	if qs := rc.Queue; qs != nil && qs.Syncs > 0 && complete {
		sync := qs.WorkSeconds / qs.Syncs
		busy := qs.WorkSeconds / max(qs.ElapsedSeconds, 1e-9)
		out = append(out, fmt.Sprintf("With %d InferServers the time is the controller's work queue: %.2f syncs per server, "+
			"%.0f ms each on average, %.2f workers busy on average, so %d × %.2f × %.3f s / %.2f = %.0f s of queued work, against %.0f s measured "+
			"until the last status was observed; a server waited %.1f s in the queue on average. A sync makes its writes "+
			"(ControllerRevision, then Deployment and Service at once, then status) and waits for each, so its time is the latency of those requests, "+
			"including any wait in the controller's client-side rate limiter.",
			last.N, qs.Syncs/n, 1000*sync, busy, last.N, qs.Syncs/n, sync, busy, n*(qs.Syncs/n)*sync/busy, rc.ObservedSeconds, qs.QueueSeconds/qs.Syncs))
	}
	if c := res.Run.Controller; c != nil && complete {
		if w := limitedRequests(rc.Requests); w > 0 {
			bound := math.Max(0, (w-float64(c.KubeAPIBurst))/c.KubeAPIQPS)
			out = append(out, fmt.Sprintf("Its client for the cluster may send %g requests a second after a burst of %d (`--kube-api-qps`, `--kube-api-burst`), "+
				"and the kube-apiserver served %.0f creates of ControllerRevisions and applies of Deployments and Services meanwhile (%.2f per server), "+
				"so those writes alone took at least (%.0f − %d) / %g = %s, %.0f%% of the %s measured.",
				c.KubeAPIQPS, c.KubeAPIBurst, w, w/n, w, c.KubeAPIBurst, c.KubeAPIQPS, secs(bound), 100*bound/rc.ObservedSeconds, secs(rc.ObservedSeconds)))
		}
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
		if res.Run.CPUs > 0 {
			s += fmt.Sprintf(" of %d, which other work shared; on %d cores that CPU alone takes at least %s", res.Run.CPUs, res.Run.CPUs, secs(all/float64(res.Run.CPUs)))
		}
		s += ")"
		if base > 0 {
			what := "a ConfigMap of the baseline"
			if !res.ConfigMapBaseline() {
				what = "writing one server's children directly"
			}
			s += fmt.Sprintf(", %.0f times the %.4f CPU s %s cost", (all/n)/(base/n), base/n, what)
		}
		out = append(out, s+".")
	}
	out = append(out, ratioMisses(rs, res.Run.CPUs)...)
	if s := serviceApplies(rs, res.Run.Workers, res.Run.Controller); s != "" {
		out = append(out, s)
	}
	out = append(out, boundMisses(rs)...)
	out = append(out, externalMemoryMet(rs)...)
	const created = "Normal InstanceCreated"
	if early, later := rc.Events[created], rc.EventsLater[created]; later > early {
		out = append(out, fmt.Sprintf("The controller's Events trail its work: %s after the last status was observed %d of the %d InstanceCreated events "+
			"had been written, %d by the end of the deletion.", secs(res.Run.SettleSeconds), early, last.N, later))
	}
	for _, r := range rs {
		switch {
		case !r.Baseline.Compared:
		case r.Baseline.Same:
			out = append(out, fmt.Sprintf("With %d, the first server's children, as their field manager owns them, were the same in the baseline and from the controller.", r.N))
		default:
			out = append(out, fmt.Sprintf("With %d, the first server's children differed between the baseline and the controller: %s.", r.N, r.Baseline.Difference))
		}
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

// serverRuns says, where the servers' phase of some N ran more than once,
// what counts and each run's times; "" where it ran once.
func serverRuns(rs []results.Measurement) string {
	var out []string
	for _, r := range rs {
		if len(r.Reconcile.ObservedRuns) < 2 {
			continue
		}
		observed := make([]string, len(r.Reconcile.ObservedRuns))
		for i, x := range r.Reconcile.ObservedRuns {
			observed[i] = secs(x)
		}
		deleted := make([]string, len(r.Delete.Runs))
		for i, x := range r.Delete.Runs {
			deleted[i] = secs(x)
		}
		out = append(out, fmt.Sprintf("with %d, %d runs: all observed after %s; deleted after %s",
			r.N, len(r.Reconcile.ObservedRuns), strings.Join(observed, ", "), orDash(strings.Join(deleted, ", "))))
	}
	if len(out) == 0 {
		return ""
	}
	return "the servers' phase ran more than once, each run on a restarted mindie-apiserver and ending with the servers' deletion; " +
		"every figure of an N is that of its run whose time until all were observed is the median (the lower middle one of an even count), " +
		"but for the deletion's time, the median of the runs' (" + strings.Join(out, "; ") + ")"
}

// serverRunsShort is serverRuns' sentence for the summary in
// docs/benchmarks.md: "" where every N's servers ran once.
func serverRunsShort(rs []results.Measurement) string {
	var out []string
	for _, r := range rs {
		if k := len(r.Reconcile.ObservedRuns); k > 1 {
			out = append(out, fmt.Sprintf("%d runs with %d", k, r.N))
		}
	}
	if len(out) == 0 {
		return ""
	}
	return " The servers' figures are those of the run whose time to all observed is the median, the deletion's the median of the runs' (" +
		strings.Join(out, ", ") + "; [reconcile-bench.md](reconcile-bench.md) lists every run)."
}

// floorRuns lists the floor's run times of each N that measured it, with
// the ratios the summary derives; "" when none did.
func floorRuns(rs []results.Measurement) string {
	var out []string
	for _, r := range rs {
		if r.Floor == nil {
			continue
		}
		var runs []string
		for _, x := range r.Floor.Runs {
			runs = append(runs, secs(x))
		}
		out = append(out, fmt.Sprintf("with %d, %d writers: %s; %s the baseline's time, the servers' %s the floor's",
			r.N, r.Floor.Workers, orDash(strings.Join(runs, ", ")), times(r.Summary.FloorRatio), times(r.Summary.OverFloor)))
	}
	return strings.Join(out, "; ")
}

// baselineRuns lists the baseline's run times of each N.
func baselineRuns(rs []results.Measurement) string {
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

// memoryMisses explains each missed bound on mindie-apiserver's peak
// memory: what the process holds for each server, against what the bound
// leaves for one.
func memoryMisses(rs []results.Measurement) []string {
	return eachMissed(rs, results.GoalPeakKiB, func(m results.Measurement, c results.Check) string {
		left := (c.Max - float64(m.Memory.BeforeKiB)) / float64(m.N)
		if m.Controllers == results.ControllersExternal {
			return externalMemoryMiss(m, c, left)
		}
		return fmt.Sprintf("With %d, mindie-apiserver's resident memory peaked at %s against a bound of %s: "+
			"%.0f KiB a server above the %s it had before the first create, where the bound leaves %.0f KiB. "+
			"The process holds every InferServer twice, decoded in the API server's watch cache and in the controller's informer, "+
			"and every child in the controller's informers (Deployments, Services and ConfigMaps as a digest of what the controller applied, "+
			"without their pod templates; pods without what only the kubelet reads; `pkg/controller/cachetrim`), and the Go runtime "+
			"keeps its heap's garbage until the next collection and freed pages until its scavenger returns them, so resident memory runs "+
			"well above the live heap. A heap profile when 2,849 of 3,000 servers had been observed (2026-12-02, after a forced collection) "+
			"found 128 MB live: per server, about 12.8 KiB for the InferServer decoded in the watch cache (3.9 KiB of it its managedFields) "+
			"and 4.2 KiB for the watch cache's indexes and the snapshots it keeps for lists; about 10.4 KiB for its children in the "+
			"controller's informers (the ControllerRevision 2.8 KiB, which keeps the template it records; the Deployment 1.9 KiB); and "+
			"about 2.3 KiB for the InferServer in the controller's informer, which drops its managedFields. So 10,000 servers hold about "+
			"300 MB live even if the runtime kept no garbage: meeting the bound takes the controller's share (the children and its copy "+
			"of the servers) out of this process, a controller of its own, and a memory limit (GOMEMLIMIT) for the runtime to collect "+
			"against. The controller's own copy of the InferServers is the small part: feeding its informer from the API server's storage "+
			"in the same process would not even share the objects, as the watch cache deep-copies every event it sends a watcher "+
			"(k8s.io/apiserver's cacher, getMutableObject and newCachingObject).",
			m.N, mib(m.Memory.PeakKiB), mib(int64(c.Max)), m.Summary.PeakGrowthKiBPerServer, mib(m.Memory.BeforeKiB), left)
	})
}

// externalMemoryMiss explains a missed bound on mindie-apiserver's memory
// in a run whose controllers ran in mindie-controller, where what is left
// in mindie-apiserver is its storage's watch cache and what the bursts of
// writes leave behind.
func externalMemoryMiss(m results.Measurement, c results.Check, left float64) string {
	return externalMemory(m, fmt.Sprintf(" against a bound of %s", mib(int64(c.Max))),
		fmt.Sprintf(", where the bound leaves %.0f KiB", left))
}

// externalMemoryMet says what held mindie-apiserver's memory under its
// bound in the runs whose controllers ran in mindie-controller.
func externalMemoryMet(rs []results.Measurement) []string {
	var out []string
	for _, m := range rs {
		for _, c := range m.Summary.Checks {
			if c.Goal == results.GoalPeakKiB && c.Known && c.Met && m.Controllers == results.ControllersExternal {
				out = append(out, externalMemory(m, fmt.Sprintf(", under the bound of %s", mib(int64(c.Max))), ""))
			}
		}
	}
	return out
}

// externalMemory is the account of mindie-apiserver's memory in a run
// whose controllers ran in mindie-controller: its peak and the bound
// (bound), its growth per server and what the bound left of it (left, or
// nothing), and what the process holds.
func externalMemory(m results.Measurement, bound, left string) string {
	return fmt.Sprintf("With %d, mindie-apiserver's resident memory peaked at %s%s, with the controllers in "+
		"mindie-controller (which peaked at %s) and GOMEMLIMIT set for mindie-apiserver (`RECONCILE_APISERVER_ENV`): %.0f KiB a server "+
		"above the %s it had before the first create%s; it ended at %s. ",
		m.N, mib(m.Memory.PeakKiB), bound, mib(m.Memory.ControllerPeakKiB), m.Summary.PeakGrowthKiBPerServer,
		mib(m.Memory.BeforeKiB), left, mib(m.Memory.EndKiB)) + externalMemoryHeld
}

// externalMemoryHeld is what mindie-apiserver holds without the
// controllers, as measured by hand around the benchmark's runs.
const externalMemoryHeld = "Without the controllers the process holds the InferServers in its storage's watch cache, with the events of the last 75 s " +
	"(k8s.io/apiserver's cacher keeps at least that much history and does not let it be shortened). Sampled every 10 s through a " +
	"run of the same command on 2026-12-03 (10,000 servers), once the creates were done its live heap stayed between 90 and 116 MB " +
	"in every sample but one and its resident memory between 262 and 297 MiB: about 70 MiB of that the process's code, mapped " +
	"from its binary, and the rest the heap with the garbage GOMEMLIMIT lets the runtime keep. Beside the cache, k8s.io/apiserver's " +
	"cache consistency check (the DetectCacheInconsistency feature, on by default since Kubernetes 1.34) lists every InferServer " +
	"from etcd every 5 to 7.5 minutes and compares it with the cache. Kubernetes reads that list 10,000 objects at a time and " +
	"decodes them beside the cache: at 10,000 servers the live heap went from 107 to 166 MB while it ran, and the resident memory " +
	"peaked at 415 MiB (2026-12-02), against 286 MiB with the check turned off. mindie-apiserver has the cache read etcd for itself " +
	"500 objects at a time (`apiserver.OwnListPageSize`, pkg/apiserver/ownlists.go). Sampled every 15 s through two runs of the same " +
	"command on 2026-12-03, each with a check while its 10,002 servers were being reconciled, the check took the resident memory " +
	"from 284 to 295 MiB, then 288 MiB, in one, and left it between 287 and 288 MiB in the other (the run of the 10,000 here). A heap profile " +
	"at the end of an earlier run (2026-12-02, 10,000 servers) found 96 MB live: the decoded InferServers 31.5 MB, their " +
	"managedFields 18 MB (which server-side apply needs), and the watch cache's indexes and list snapshots most of the rest."

// eachMissed is explain of every measurement's check of goal that was
// measured and missed, where explain says something ("" skips it).
func eachMissed(rs []results.Measurement, goal string, explain func(results.Measurement, results.Check) string) []string {
	var out []string
	for _, m := range rs {
		for _, c := range m.Summary.Checks {
			if c.Goal != goal || !c.Known || c.Met {
				continue
			}
			if s := explain(m, c); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// deletionMisses explains each missed bound on the deletion at the end by
// the baseline's deletion of the very children in the same run.
func deletionMisses(rs []results.Measurement) []string {
	return eachMissed(rs, results.GoalDeleteSeconds, func(m results.Measurement, c results.Check) string {
		if m.Baseline.DeleteSeconds <= 0 {
			return ""
		}
		return fmt.Sprintf("With %d, the deletion at the end took %s against a bound of %s; deleting only the same children "+
			"took %s in the same run (%.0f%% of it), and the rest, %s, is the InferServers' own: their deletion through the aggregated "+
			"API and the controller letting each go.", m.N, secs(c.Value), secs(c.Max), secs(m.Baseline.DeleteSeconds),
			100*m.Baseline.DeleteSeconds/c.Value, secs(max(0, c.Value-m.Baseline.DeleteSeconds)))
	})
}

// medianOfRuns says how many baseline runs each N's figure is the median
// of: "the median of 3 runs", or by N when they differ.
func medianOfRuns(rs []results.Measurement) string {
	runs := func(k int) string {
		if k == 1 {
			return "one run"
		}
		return fmt.Sprintf("%d runs", k)
	}
	var order []int
	byRuns := map[int][]string{}
	for _, r := range rs {
		k := len(r.Baseline.SeenRuns)
		if _, ok := byRuns[k]; !ok {
			order = append(order, k)
		}
		byRuns[k] = append(byRuns[k], strconv.Itoa(r.N))
	}
	switch len(order) {
	case 0:
		return "the median of its runs"
	case 1:
		if order[0] == 1 {
			return "one run"
		}
		return "the median of " + runs(order[0])
	}
	var parts []string
	for _, k := range order {
		parts = append(parts, fmt.Sprintf("%s with %s", runs(k), strings.Join(byRuns[k], " and ")))
	}
	return "the median of its runs: " + strings.Join(parts, ", ")
}

// timeMisses explains each missed bound on the time until every status was
// observed by the baseline's time in the same run.
// ratioMisses explains each missed bound on the ratio by the CPU the
// cluster's processes used in the two phases: where both kept the machine
// busy (cpus: the machine's), the time follows the CPU, and the difference
// by process says whose work the InferServers added.
func ratioMisses(rs []results.Measurement, cpus int) []string {
	return eachMissed(rs, results.GoalRatio, func(m results.Measurement, c results.Check) string {
		var srv, base float64
		for _, v := range m.Reconcile.CPU {
			srv += v
		}
		for _, v := range m.Baseline.CPU {
			base += v
		}
		if srv <= 0 || base <= 0 || m.Reconcile.ObservedSeconds <= 0 || m.Baseline.SeenSeconds <= 0 {
			return ""
		}
		names := slices.Sorted(maps.Keys(m.Reconcile.CPU))
		slices.SortStableFunc(names, func(a, b string) int {
			return cmp.Compare(m.Reconcile.CPU[b]-m.Baseline.CPU[b], m.Reconcile.CPU[a]-m.Baseline.CPU[a])
		})
		var more []string
		for _, name := range names {
			if d := m.Reconcile.CPU[name] - m.Baseline.CPU[name]; d >= 0.05 {
				more = append(more, fmt.Sprintf("%s %+.1f", name, d))
			}
		}
		srvCores, baseCores := srv/m.Reconcile.ObservedSeconds, base/m.Baseline.SeenSeconds
		bound := "so both phases were bound by CPU and their times follow it"
		if cpus <= 0 || min(srvCores, baseCores) < 0.8*float64(cpus) {
			bound = "so the CPU does not account for the times alone"
		}
		return fmt.Sprintf("With %d, all observed took %s, %s the baseline's %s (bound %s). The cluster's processes used %.2f cores on average "+
			"while the servers were reconciled and %.2f while the baseline wrote, %s: "+
			"%.1f CPU s against %.1f (%.2f×), the difference, by process in CPU s: %s. The InferServers bring work the baseline does not have: "+
			"their own creates, proxied by kube-apiserver to mindie-apiserver, which stores them with their managed fields; a status write each "+
			"(managed fields again); an Event each, which kube-apiserver stores; and the watch streams that feed the controller's informers. "+
			"A longer phase also takes in more of kube-controller-manager's work on the Deployments (their ReplicaSets and pods), which the "+
			"baseline leaves partly to after its end.",
			m.N, secs(m.Reconcile.ObservedSeconds), times(c.Value), secs(m.Baseline.SeenSeconds), times(c.Max),
			srvCores, baseCores, bound, srv, base, srv/base, strings.Join(more, ", ")) + floorShare(m, c)
	})
}

// floorShare says, where the floor was measured, how much of the ratio a
// controller that cost nothing would have taken, and what is left to the
// controller's own work.
func floorShare(m results.Measurement, c results.Check) string {
	fl := m.Floor
	if fl == nil || m.Summary.FloorRatio <= 0 {
		return ""
	}
	var cpu float64
	for _, v := range fl.CPU {
		cpu += v
	}
	s := fmt.Sprintf(" Without a controller, the same writes made by the benchmark itself as each create returned (the floor) took %s, %s the baseline's time, with %.1f CPU s", secs(fl.ObservedSeconds), times(m.Summary.FloorRatio), cpu)
	if m.Summary.FloorRatio >= c.Max {
		s += fmt.Sprintf(": the InferServers' own API work alone (their creates through the aggregator, their statuses, their Events) takes the cluster past the bound of %s, so even a controller that cost nothing would miss it on this machine; "+
			"the controller took %s the floor's time for its own work.", times(c.Max), times(m.Summary.OverFloor))
	} else {
		s += fmt.Sprintf(": the InferServers' own API work (their creates through the aggregator, their statuses, their Events) leaves %s of the bound of %s, and the controller took %s the floor's time for its own work (its informers, its queue, its reads), which would have to be within %s to meet it.",
			times(c.Max/m.Summary.FloorRatio), times(c.Max), times(m.Summary.OverFloor), times(c.Max/m.Summary.FloorRatio))
	}
	return s
}

// applyLatency is the average latency of kube-apiserver's applies of
// resource in reqs, in seconds, and how many there were.
func applyLatency(reqs []results.Requests, resource string) (float64, float64) {
	for _, r := range reqs {
		if r.Server == "kube-apiserver" && r.Verb == "APPLY" && r.Resource == resource && r.Count > 0 {
			return r.Seconds / r.Count, r.Count
		}
	}
	return 0, 0
}

// serviceApplies says what the Services' applies cost against the
// Deployments' in both phases of each N. kube-apiserver allocates a
// Service's ClusterIP under one lock for all Services (its MetaAllocator
// holds it across the IPAddress object's create and two counts of every
// IPAddress for its metrics), so Service creates go one at a time however
// many clients send them: their latency over the writers in flight is the
// time one allocation held the lock, and its inverse bounds both phases'
// servers a second.
func serviceApplies(rs []results.Measurement, workers int, ctrl *results.ControllerSettings) string {
	if ctrl == nil || workers <= 0 {
		return ""
	}
	var parts []string
	for _, m := range rs {
		bs, bn := applyLatency(m.Baseline.Requests, "services")
		bd, _ := applyLatency(m.Baseline.Requests, "apps/deployments")
		ss, sn := applyLatency(m.Reconcile.Requests, "services")
		sd, _ := applyLatency(m.Reconcile.Requests, "apps/deployments")
		if bn == 0 || sn == 0 || bd == 0 || sd == 0 {
			continue
		}
		bslot, sslot := bs/float64(workers), ss/float64(ctrl.Workers)
		parts = append(parts, fmt.Sprintf("with %d, a Service apply took %.0f ms on average in the baseline (%d writers: one every %.1f ms, at most %.0f a second; "+
			"a Deployment apply %.0f ms) and %.0f ms among the servers (%d workers: one every %.1f ms, at most %.0f a second; a Deployment apply %.0f ms)",
			m.N, 1000*bs, workers, 1000*bslot, 1/bslot, 1000*bd, 1000*ss, ctrl.Workers, 1000*sslot, 1/sslot, 1000*sd))
	}
	if len(parts) == 0 {
		return ""
	}
	return "Both phases wait on Services above all: kube-apiserver allocates a Service's ClusterIP under one lock for all Services " +
		"(Kubernetes 1.36's MetaAllocator holds it across the create of the IPAddress object and two counts of every IPAddress for its metrics, " +
		"so an allocation takes longer the more Services there are and the busier the CPUs), so Services are created one at a time however many " +
		"clients send them, and a Service's latency over the writers in flight is about the time one allocation held the lock: " +
		strings.Join(parts, "; ") + ". Every InferServer of the benchmark has a ClusterIP Service, as its spec asks, so its servers a second cannot pass " +
		"the allocations a second, and whatever else keeps the CPUs busy (the InferServers' own writes, kube-controller-manager's pods) makes each allocation slower."
}

func timeMisses(rs []results.Measurement) []string {
	return eachMissed(rs, results.GoalObservedSeconds, func(m results.Measurement, c results.Check) string {
		if m.Baseline.SeenSeconds <= 0 {
			return ""
		}
		s := fmt.Sprintf("With %d, every status was observed after %s against a bound of %s; the baseline, the same children written directly, took %s",
			m.N, secs(c.Value), secs(c.Max), secs(m.Baseline.SeenSeconds))
		if m.Baseline.SeenSeconds >= c.Max {
			s += ": on this machine the cluster alone, without the controller, takes longer than the bound, so only the ratio says how the controller fares."
		} else {
			s += fmt.Sprintf(", so %s of it is the controller's own (the ratio above).", secs(c.Value-m.Baseline.SeenSeconds))
		}
		return s
	})
}

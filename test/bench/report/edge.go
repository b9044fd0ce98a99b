package main

// This file renders the "EdgeDeployment at 1,000 nodes" section of
// docs/benchmarks.md from the EdgeDeployment benchmark's results
// (docs/bench/edge.json, written by hack/edge-bench.sh and
// test/bench/edgebench): one job to every simulated edge node, paced at
// maxConcurrentNodes, timed to Succeeded against the same pods created
// directly in the same run, and mindie-apiserver's memory meanwhile, each
// held to its goal. The nodes and the apps are ascend-sim's, and the
// section says so beside every figure.

import (
	"fmt"
	"strconv"
	"strings"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/test/bench/results"
)

// edgeProgressRows is about how many rows of each phase's progress the
// section shows; the results keep them all.
const edgeProgressRows = 12

// thousands writes n with a comma between groups of three digits.
func thousands(n int) string {
	s := strconv.Itoa(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// edgeSectionHead is the section's heading for a run on nodes nodes.
func edgeSectionHead(nodes int) string {
	return fmt.Sprintf("\n## EdgeDeployment at %s nodes\n\n", thousands(nodes))
}

// renderEdgeNotRun is the section when there are no results: it is
// headed by what the documented run measures, as many nodes as one job
// may target (EDGE_NODES' default).
func renderEdgeNotRun() string {
	return edgeSectionHead(v1alpha1.MaxEdgeTargets) + "The EdgeDeployment benchmark (`hack/edge-bench.sh`: one EdgeDeployment to " +
		thousands(v1alpha1.MaxEdgeTargets) + " simulated edge nodes, 100 at a time, timed to Succeeded against creating the same pods directly, " +
		"and mindie-apiserver's memory meanwhile) **has not produced results yet**: there is no `docs/bench/edge.json`. `make bench` runs it unless " +
		"`EDGE_BENCH=0`; alone: `hack/edge-bench.sh`.\n"
}

// mibText writes MiB to a tenth, or a dash when not read.
func mibText(v float64) string {
	if v <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f MiB", v)
}

// signedMiB writes a difference of MiB with its sign.
func signedMiB(v float64) string {
	if v < 0 {
		return fmt.Sprintf("−%.1f MiB", -v)
	}
	return fmt.Sprintf("+%.1f MiB", v)
}

// thinEdge keeps about n rows of a progress, evenly spaced, and always
// the last.
func thinEdge(rows []results.EdgeProgress, n int) []results.EdgeProgress {
	if len(rows) == 0 {
		return nil
	}
	step := max(1, len(rows)/n)
	var out []results.EdgeProgress
	for i := 0; i < len(rows); i += step {
		out = append(out, rows[i])
	}
	if (len(rows)-1)%step != 0 {
		out = append(out, rows[len(rows)-1])
	}
	return out
}

// edgeGoalRow is a goal's row of the table: the job's figure, the
// baseline's, the figure held to the goal, the verdict and the source.
func edgeGoalRow(r *results.Edge, g results.GoalCheck) string {
	switch g.Name {
	case results.GoalEdgeTime:
		v := "—"
		if g.Measured {
			v = fmt.Sprintf("%.2f×", g.Value)
		}
		return fmt.Sprintf("| %s | %s | %s | %s | %s | *simulated nodes and pods* |", g.Name, secsOrDash(r.Job.SucceededSeconds),
			secsOrDash(r.Direct.ReadySeconds), v, verdict(g, func(v float64) string { return fmt.Sprintf("%.2f×", v) }))
	case results.GoalEdgeMemory:
		v := "—"
		if g.Measured {
			v = signedMiB(g.Value)
		}
		return fmt.Sprintf("| %s | %s peak | %s idle | %s | %s | the real process, on *simulated nodes and pods* |", g.Name,
			mibText(r.Memory.PeakMiB), mibText(r.Memory.IdleMiB), v, verdict(g, signedMiB))
	}
	return fmt.Sprintf("| %s | — | — | — | not measured | — |", g.Name)
}

// renderEdge returns the "EdgeDeployment at N nodes" section of
// docs/benchmarks.md.
func renderEdge(r *results.Edge) string {
	var sb strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	su, d, j, m := r.Setup, r.Direct, r.Job, r.Memory

	sb.WriteString(edgeSectionHead(su.Nodes))
	p("EdgeDeployments ([edge.md](edge.md)) measured by `test/bench/edgebench`, run by `hack/edge-bench.sh` (which `hack/bench.sh` runs; "+
		"`EDGE_BENCH=0` skips it) on a local cluster of its own, rendered from `docs/bench/edge.json`: one job deploying an app to %s edge "+
		"nodes, at most %d at a time, timed from its creation to `status.phase` Succeeded, against the same pods created directly in the "+
		"same run; and the resident memory of mindie-apiserver, which runs the controller and serves the job. **Measured on simulated nodes "+
		"and pods**: the edge nodes, their kubelets and the app on each are `ascend-sim`'s ([simulator.md](simulator.md); a pod is Ready "+
		"once the simulated app listens and has answered its readiness probe, nothing of the image runs and nothing is pulled); etcd, "+
		"kube-apiserver, kube-scheduler, kube-controller-manager and mindie-apiserver with its EdgeDeployment controller are the real ones, "+
		"as loopback processes on one machine. The times show what the job's pacing and its controller add around a pod's startup, not "+
		"how long an image takes to pull and start on a real edge box.\n\n", thousands(su.Nodes), su.MaxConcurrentNodes)
	p("- Date: %s; wall time of the benchmark (the cluster's start and teardown left out) %s\n", orDash(r.Run.Date), secs(r.Run.WallSeconds))
	p("- Go: %s; CPU: %s, %d CPUs, shared by the cluster's processes (etcd, the API servers, the scheduler, the controller manager, "+
		"`ascend-sim`) and the benchmark\n", orDash(r.Run.Go), orDash(r.Run.CPU), r.Run.CPUs)
	p("- Command: `%s`\n", r.Run.Command)
	if r.Note != "" {
		p("- Note: %s\n", r.Note)
	}

	p("\n### Goals\n\n")
	p("| goal | job | baseline | figure | goal and verdict | source |\n|---|--:|--:|--:|---|---|\n")
	for _, g := range r.Summary.Goals {
		p("%s\n", edgeGoalRow(r, g))
	}
	p("\n*Job* is the time from the EdgeDeployment's create request to its `status.phase` seen Succeeded with every one of the %s nodes "+
		"succeeded; *baseline* the time from the first create request of the direct pods to the last of them seen Running and Ready. "+
		"The memory is mindie-apiserver's VmRSS: its peak from the job's create to its pods gone, against its median while idle.\n", thousands(su.Nodes))
	if r.Goals.Why != "" {
		p("\nWhy these bounds: %s\n", r.Goals.Why)
	}

	p("\n### Method\n\n")
	arch := su.Architecture
	if arch == "" {
		arch = "one architecture"
	}
	p("The cluster has %s simulated edge nodes (`mindie.io/edge=true`, %s, tainted `node-role.kubernetes.io/edge:NoSchedule`), all "+
		"played by one `ascend-sim` process, and no other node. The job, created once the nodes are Ready:\n\n", thousands(su.Nodes), arch)
	for _, line := range strings.Split(strings.TrimRight(su.Job, "\n"), "\n") {
		p("    %s\n", line)
	}
	p("\n*The baseline* comes first, in a namespace of its own: the pods the controller would create (%d per node), made by its own "+
		"`edgedeployment.Pod` from a copy of the job defaulted as the API server defaults it, without the owner reference and with a label "+
		"of the benchmark's in place of the job's (so that the controller neither counts nor deletes them). They are created with one "+
		"request each, %d under way at once, through one client limited to %s requests/s (burst %d): the limits of mindie-apiserver's "+
		"controllers towards kube-apiserver (its `--kube-api-qps` and `--kube-api-burst`, read from its command line), so that both sides "+
		"create pods as fast as their client may. "+
		"Once all are Running and Ready they are deleted the same way, and timed until gone. *The job* follows %s s after: created, timed "+
		"to Succeeded, then deleted (its finalizer has the controller delete its pods) and timed until it and its pods are gone.\n\n",
		su.InstancesPerNode, su.Creators, num(su.ClientQPS), su.ClientBurst, num(su.SettleSeconds))
	p("Times come from the benchmark's own watches: of each namespace's pods (when each was first seen, bound to a node, Running and "+
		"Ready, and gone) and of the job (when each phase was first seen). mindie-apiserver's VmRSS is read from `/proc` every %d ms: "+
		"*idle* is the median over %s s before the baseline, *peak* the highest from the job's create to its pods gone, *after* the "+
		"reading %s s after that. Every wait is bounded by %d s (the job's `timeoutSeconds` too); a job that ends in any phase but "+
		"Succeeded, or with a node that did not succeed, fails the run.\n",
		su.SampleMillis, num(su.IdleSeconds), num(su.SettleSeconds), su.TimeoutSeconds)

	p("\n### Results (simulated nodes and pods)\n\n")
	p("| phase | first pod seen | last create answered | all bound | all Running and Ready | Succeeded | deleted → gone | mindie-apiserver peak RSS |\n" +
		"|---|--:|--:|--:|--:|--:|--:|--:|\n")
	p("| direct, %s pods | — | %s | %s | %s | — | %s | %s |\n", thousands(d.Pods), secsOrDash(d.CreatedSeconds), secsOrDash(d.ScheduledSeconds),
		secsOrDash(d.ReadySeconds), secsOrDash(d.DeleteSeconds), mibText(d.PeakRSSMiB))
	p("| job, %s nodes, %d at a time | %s | — | — | %s | %s | %s | %s |\n", thousands(su.Nodes), su.MaxConcurrentNodes, secsOrDash(j.FirstPodSeconds),
		secsOrDash(j.PodsReadySeconds), secsOrDash(j.SucceededSeconds), secsOrDash(j.DeleteSeconds), mibText(m.PeakMiB))
	p("\nSeconds from the phase's first request (the direct pods' first create, the job's create; for the deletion, its first delete). "+
		"The job ended %s with %s targets: %s succeeded, %s failed, %s timed out", orDash(j.Phase), thousands(j.Targets),
		thousands(j.Succeeded), thousands(j.Failed), thousands(j.TimedOut))
	if j.CompletionSeconds > 0 {
		p("; its own `completionTime` − `startTime` was %s (whole seconds)", secs(j.CompletionSeconds))
	}
	p(".\n\n")
	p("- mindie-apiserver's VmRSS: idle %s, peak during the job %s, %s after its pods were gone (high-water mark of the process %s; "+
		"%d samples)\n", mibText(m.IdleMiB), mibText(m.PeakMiB), mibText(m.AfterMiB), mibText(m.HWMMiB), m.Samples)
	if j.CPUSeconds > 0 {
		p("- mindie-apiserver's CPU time (utime+stime): %.1f s from the job's create to Succeeded", j.CPUSeconds)
		if su.Nodes > 0 {
			p(" (%.1f ms a node)", j.CPUSeconds*1000/float64(su.Nodes))
		}
		p(", %.1f s during its deletion\n", j.DeleteCPUSeconds)
	}
	if j.StatusBytes > 0 {
		p("- The job as JSON when it succeeded: %s KiB (one `status.nodes` entry per node)", strconv.FormatFloat(float64(j.StatusBytes)/1024, 'f', 0, 64))
		if j.StatusWrites >= 0 {
			p("; its status was written %d times from its create to Succeeded, %d of them refused for a conflict (mindie-apiserver's audit log)",
				j.StatusWrites, j.StatusConflicts)
		}
		p("\n")
	}

	if len(r.Throttling) > 0 {
		var parts []string
		for _, t := range r.Throttling {
			if t.Lines == 0 {
				parts = append(parts, fmt.Sprintf("%s none", t.Component))
				continue
			}
			parts = append(parts, fmt.Sprintf("%s %d (waits median %s, up to %s)", t.Component, t.Lines, secs(t.MedianWaitSeconds), secs(t.MaxWaitSeconds)))
		}
		p("- Requests held back over a second by a client's own rate limiter (client-go logs one every 10 s at most, so these are samples), "+
			"from the baseline's start to the end: %s\n", strings.Join(parts, "; "))
	}

	p("\n### Progress (simulated)\n\n")
	p("The job, seconds after its create (the full series, every %s s, is in `docs/bench/edge.json`):\n\n", num(su.ProgressSeconds))
	p("| s | nodes succeeded | nodes deploying | pods seen | pods Ready | mindie-apiserver RSS |\n|--:|--:|--:|--:|--:|--:|\n")
	for _, pt := range thinEdge(j.Progress, edgeProgressRows) {
		p("| %.1f | %d | %d | %d | %d | %s |\n", pt.Seconds, pt.NodesSucceeded, pt.NodesDeploying, pt.Pods, pt.Ready, mibText(pt.RSSMiB))
	}
	p("\nThe direct pods, seconds after the first create:\n\n")
	p("| s | pods seen | bound | Running and Ready | mindie-apiserver RSS |\n|--:|--:|--:|--:|--:|\n")
	for _, pt := range thinEdge(d.Progress, edgeProgressRows) {
		p("| %.1f | %d | %d | %d | %s |\n", pt.Seconds, pt.Pods, pt.Scheduled, pt.Ready, mibText(pt.RSSMiB))
	}

	p("\n**What the figures show.** %s\n", edgeReading(r))
	return strings.ReplaceAll(sb.String(), " \n", "\n")
}

// edgeReading reads the figures: the job's pace against the baseline's,
// where its time went, and what mindie-apiserver held.
func edgeReading(r *results.Edge) string {
	su, d, j, m := r.Setup, r.Direct, r.Job, r.Memory
	var text []string
	add := func(format string, args ...any) { text = append(text, fmt.Sprintf(format, args...)) }
	if r.Summary.Ratio <= 0 {
		add("The job or the baseline was not measured to the end, so there is nothing to compare.")
	} else {
		batches := (su.Nodes + su.MaxConcurrentNodes - 1) / su.MaxConcurrentNodes
		add("The job deployed %s nodes in %s (%.1f nodes/s); created directly, the same pods were all Ready in %s (%.1f pods/s): %.2f× as long, "+
			"which %s the goal of %.2f×.", thousands(su.Nodes), secs(j.SucceededSeconds), float64(su.Nodes)/j.SucceededSeconds,
			secs(d.ReadySeconds), float64(d.Pods)/d.ReadySeconds, r.Summary.Ratio, map[bool]string{true: "meets", false: "misses"}[r.Summary.Goals[0].Met],
			r.Goals.MaxJobToDirectRatio)
		if batches > 1 {
			add("With %d nodes at a time the job needs at least %d rounds of a pod's startup; it took %s a round on average, against %s "+
				"for the whole baseline, whose pods all start together.", su.MaxConcurrentNodes, batches, secs(j.SucceededSeconds/float64(batches)),
				secs(d.ReadySeconds))
		}
		if j.FirstPodSeconds > 0 {
			add("Its first pod appeared %s after the create.", secs(j.FirstPodSeconds))
		}
		if j.PodsReadySeconds > 0 {
			add("Its last pod was Ready at %s and the phase was Succeeded at %s: %s for the controller to see it and write the status.",
				secs(j.PodsReadySeconds), secs(j.SucceededSeconds), secs(max(0, j.SucceededSeconds-j.PodsReadySeconds)))
		}
	}
	if t := r.ThrottlingOf(results.EdgeSimulator); t != nil && t.Lines > 0 && t.MedianWaitSeconds >= 1 {
		add("ascend-sim, which plays the kubelet of every node through one client, had its requests held back by that client's rate "+
			"limiter throughout (%d sampled log lines, waits median %s, up to %s): the simulated kubelets' writes, a pod's Running and Ready "+
			"among them, waited seconds before they reached the API. The baseline waits for that once, the job once a round, "+
			"so the ratio overstates what the pacing costs where every node has a kubelet and a client of its own.",
			t.Lines, secs(t.MedianWaitSeconds), secs(t.MaxWaitSeconds))
	}
	if d.DeleteSeconds > 0 && j.DeleteSeconds > 0 {
		add("Deleting the job took %s until it and its pods were gone, against %s for the direct pods deleted %d at a time.",
			secs(j.DeleteSeconds), secs(d.DeleteSeconds), su.Creators)
	}
	if m.IdleMiB > 0 && m.PeakMiB > 0 {
		add("mindie-apiserver went from %s idle to a peak of %s during the job (%s, goal %s; %s a node)", mibText(m.IdleMiB), mibText(m.PeakMiB),
			signedMiB(m.PeakMiB-m.IdleMiB), signedMiB(r.Goals.MaxRSSGrowthMiB), kibPerNode(m.PeakMiB-m.IdleMiB, su.Nodes))
		if m.AfterMiB > 0 {
			add("and held %s %s after the job and its pods were gone (%s over idle).", mibText(m.AfterMiB), secs(su.SettleSeconds),
				signedMiB(m.AfterMiB-m.IdleMiB))
		} else {
			text[len(text)-1] += "."
		}
		if d.PeakRSSMiB > 0 {
			add("While the direct pods ran it peaked at %s: it does not cache pods that are not a job's.", mibText(d.PeakRSSMiB))
		}
	}
	return strings.Join(text, " ")
}

// kibPerNode is a growth in MiB spread over nodes, in KiB.
func kibPerNode(growthMiB float64, nodes int) string {
	if nodes <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f KiB", growthMiB*1024/float64(nodes))
}

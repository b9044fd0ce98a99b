package main

// This file renders the "Fault recovery" section of docs/benchmarks.md from
// the fault-recovery benchmark's results (docs/bench/faults.json, written by
// hack/fault-bench.sh and test/bench/faultbench): for an NPU fault with
// Force and Grace and for a node loss, the time from the fault to a
// replacement serving, against the startup of a fresh pod measured in the
// same run, each held to its goal. Every time of it is of the simulated
// world (ascend-sim's nodes and servers) and is labelled so.

import (
	"fmt"
	"strings"

	"mindie.io/deployer/test/bench/results"
)

// faultsSectionHead is the section's heading, the same whether it ran or
// not.
const faultsSectionHead = "\n## Fault recovery\n\n"

// renderFaultsNotRun is the section when there are no results. It names
// the results file as the documented run writes it.
func renderFaultsNotRun() string {
	return faultsSectionHead + "The fault-recovery benchmark (`hack/fault-bench.sh`: the time from an NPU fault, with Force and Grace, " +
		"and from a node loss to a replacement instance serving, on a local cluster of simulated nodes) **has not been run**: there is no " +
		"`docs/bench/faults.json`. `make bench` runs it unless `FAULT_BENCH=0`; alone: `hack/fault-bench.sh`.\n"
}

// signed formats a difference of seconds with its sign.
func signed(v float64) string {
	if v < 0 {
		return "−" + secs(-v)
	}
	return "+" + secs(v)
}

// secsOrDash is secs, or a dash for a time not seen (0).
func secsOrDash(v float64) string {
	if v <= 0 {
		return "—"
	}
	return secs(v)
}

// faultMarginText says how a scenario's bound is made.
func faultMarginText(r *results.Faults, name string) string {
	switch name {
	case results.ScenarioNPUForce:
		return fmt.Sprintf("baseline + %s", num(r.Goals.ForceMarginSeconds)+" s")
	case results.ScenarioNPUGrace:
		return fmt.Sprintf("baseline + grace %d s + %s s", r.Setup.TerminationGracePeriodSeconds, num(r.Goals.GraceMarginSeconds))
	case results.ScenarioNodeLoss:
		return fmt.Sprintf("baseline + %s s", num(r.Goals.NodeLossMarginSeconds))
	}
	return ""
}

// faultVerdict is a goal's bound, how it is made and whether it was met.
func faultVerdict(r *results.Faults, sc *results.FaultScenario, g results.GoalCheck) string {
	if sc == nil || !g.Measured {
		return "not measured"
	}
	bound := fmt.Sprintf("≤ %s (%s)", secs(g.Bound), faultMarginText(r, sc.Name))
	switch {
	case g.Met:
		return bound + ": met"
	case sc.Stats != nil && sc.Stats.Recovered < sc.Stats.Runs:
		return fmt.Sprintf("%s: **missed**: %d of %d runs did not recover", bound, sc.Stats.Runs-sc.Stats.Recovered, sc.Stats.Runs)
	}
	return fmt.Sprintf("%s: **missed** by %s", bound, secs(g.Value-g.Bound))
}

// victimFate says what became of the pod the fault hit.
func victimFate(run results.FaultRun) string {
	if !run.VictimDeleted {
		return "not deleted"
	}
	how := "deleted at once"
	if run.VictimGraceSeconds > 0 {
		how = fmt.Sprintf("deleted gracefully (grace %d s)", run.VictimGraceSeconds)
	}
	s := fmt.Sprintf("%s at %s, gone at %s", how, secsOrDash(run.VictimDeleteSeconds), secsOrDash(run.VictimGoneSeconds))
	if run.Action != "" {
		s += "; status.faults: " + run.Action
	}
	return s
}

// renderFaults returns the "Fault recovery" section of docs/benchmarks.md.
func renderFaults(r *results.Faults) string {
	var sb strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	su, base := r.Setup, r.Baseline

	p(faultsSectionHead)
	p("Fault rescheduling ([faults.md](faults.md), [controller.md](controller.md)) measured by `test/bench/faultbench`, run by `hack/fault-bench.sh` "+
		"(which `hack/bench.sh` runs; `FAULT_BENCH=0` skips it) on a local cluster of its own, rendered from `docs/bench/faults.json`: the time "+
		"from a fault to a replacement instance answering a chat, against the startup of a fresh instance pod measured in the same run. "+
		"**Every time of this section is of a *simulated* world**: the InferServer controller, kube-scheduler, kube-controller-manager and the "+
		"API servers are the real ones, as loopback processes; the nodes, their NPUs, kubelets and device plugin and the MindIE Servers are "+
		"`ascend-sim`'s ([simulator.md](simulator.md)), and a pod's startup is the simulator's model load time (LoadTime, %s) and its probes, "+
		"not MindIE loading a model on an NPU. The figures show how long the controller and Kubernetes take to put a new instance in place "+
		"around that startup, not how long a real model takes to load.\n\n", secs(su.ConfiguredLoadTimeSeconds))
	p("- Date: %s; wall time of the benchmark (the cluster's start and teardown left out) %s\n", orDash(r.Run.Date), secs(r.Run.WallSeconds))
	p("- Go: %s; CPU: %s, %d CPUs, shared by the cluster's processes (etcd, the API servers, the controllers, `ascend-sim`) and the benchmark\n",
		orDash(r.Run.Go), orDash(r.Run.CPU), r.Run.CPUs)
	p("- Command: `%s`\n", r.Run.Command)
	if su.Note != "" {
		p("- Note: %s\n", su.Note)
	}

	p("\n### Goals\n\n")
	p("| goal | fault → serving | startup baseline | difference | goal and verdict | runs recovered | source |\n|---|--:|--:|--:|---|--:|---|\n")
	for _, g := range r.Summary.Goals {
		var sc *results.FaultScenario
		for i := range r.Scenarios {
			if _, name, ok := r.Margin(r.Scenarios[i].Name); ok && name == g.Name {
				sc = &r.Scenarios[i]
			}
		}
		value, diff, runs := "—", "—", "did not run"
		if sc != nil && sc.Stats != nil {
			runs = fmt.Sprintf("%d of %d", sc.Stats.Recovered, sc.Stats.Runs)
			if g.Measured {
				value, diff = secs(g.Value), signed(sc.Stats.OverBaselineSeconds)
			}
		}
		p("| %s | %s | %s | %s | %s | %s | *simulated* |\n", g.Name, value, secsOrDash(base.MedianSeconds), diff, faultVerdict(r, sc, g), runs)
	}
	p("\n*Fault → serving* is the median over a scenario's runs of the time from the fault's injection to the first chat answered by a "+
		"replacement pod on its own IP; *startup baseline* the median time a fresh instance pod of the same servers took from bound to a node "+
		"to Ready, in the same run (the simulated load time, configured at %s, and the probes); *difference* the first less the second: "+
		"the part of the recovery that is not the new pod starting. A goal is met when every run recovered and the median is within the bound.\n",
		secs(su.ConfiguredLoadTimeSeconds))
	if r.Goals.Why != "" {
		p("\nWhy these bounds: %s\n", r.Goals.Why)
	}

	p("\n### Method\n\n")
	p("The cluster has %d simulated nodes of %d NPUs. Each scenario creates a fresh InferServer (faultRescheduling set per scenario; "+
		"nodeLostSeconds left at its default, %d s; faultGraceOverTimeSeconds at %d s):\n\n", su.Nodes, su.NPUsPerNode, su.NodeLostSeconds, su.FaultGraceOverTimeSeconds)
	for _, line := range strings.Split(su.Server, "\n") {
		p("    %s\n", line)
	}
	p("\nand waits until it is Available with its %d instances (%d NPUs each) and its router. The baseline comes first: one more instance "+
		"(spec.replicas %d), its pod timed from bound to a node to Ready and to its first answer, then removed again. Then the scenario's fault, "+
		"on the oldest ready instance pod (for a node loss, one whose node runs no router pod):\n\n", su.Instances, su.NPUsPerInstance, su.Instances+1)
	for _, sc := range r.Scenarios {
		policy := "faultRescheduling " + sc.Policy
		if sc.Name == results.ScenarioNodeLoss {
			policy += "; a lost node's pods are deleted at once whatever the policy"
		}
		p("- `%s` (%s): %s.\n", sc.Name, policy, sc.Fault)
	}
	p("\nAfter each run the fault is undone and the benchmark waits until the node is healthy again (Ready and untainted, or every NPU "+
		"allocatable) and the server Available with %d instances before the next. A replacement *serves* when it is Ready and answers "+
		"`POST /v1/chat/completions` on its pod IP (looked for every %d ms). The benchmark's own watch of the pods timestamps, as it sees them, "+
		"each pod's creation, binding to a node, readiness, deletion and removal; *readyReplicas back* is when the server's status counted "+
		"%d ready instances again with the replacement Ready. Chats to the victim's own IP every 500 ms from the fault until its deletion show whether "+
		"the fault hurt it before the controller acted.\n", su.Instances, su.PollMillis, su.Instances)

	p("\n### Baseline: a fresh pod's startup (simulated)\n\n")
	p("| server | pod | node | scale → bound | bound → Ready | bound → answering |\n|---|---|---|--:|--:|--:|\n")
	for _, s := range base.Samples {
		p("| fb-%s | %s | %s | %s | %s | %s |\n", s.Scenario, s.Pod, s.Node, secs(s.RequestToScheduledSeconds), secs(s.ScheduledToReadySeconds), secs(s.ScheduledToServingSeconds))
	}
	p("\nMedian bound → Ready %s, bound → answering %s, against the simulator's configured load time of %s.\n",
		secsOrDash(base.MedianSeconds), secsOrDash(base.MedianServingSeconds), secs(su.ConfiguredLoadTimeSeconds))

	p("\n### Runs (simulated)\n\n")
	p("Times from the fault's injection. *Its startup* is the replacement's own, bound → Ready; *over baseline* is fault → serving less the baseline's median startup.\n\n")
	p("| scenario | run | victim | its fate | → replacement bound | its startup | → serving | over baseline | → readyReplicas back | victim's chats before its deletion |\n")
	p("|---|--:|---|---|--:|--:|--:|--:|--:|---|\n")
	for _, sc := range r.Scenarios {
		for i, run := range sc.Runs {
			victim := fmt.Sprintf("%s on %s", run.Victim, run.Node)
			if run.Chip != "" {
				victim += ", chip " + run.Chip
			}
			if run.HeartbeatAgeSeconds > 0 {
				victim += fmt.Sprintf(" (its last heartbeat %s before the fault)", secs(run.HeartbeatAgeSeconds))
			}
			if run.NodeNotReadySeconds > 0 {
				victim += fmt.Sprintf("; node NotReady at %s", secs(run.NodeNotReadySeconds))
			}
			if run.RouterOnNode {
				victim += "; a router pod on the node too"
			}
			serving, over := "not within the timeout", "—"
			if run.Recovered() {
				serving = secs(run.ServingSeconds)
				if base.MedianSeconds > 0 {
					over = signed(run.ServingSeconds - base.MedianSeconds)
				}
			}
			p("| `%s` | %d | %s | %s | %s | %s | %s | %s | %s | %d answered, %d failed |\n", sc.Name, i+1, victim, victimFate(run),
				secsOrDash(run.ScheduledSeconds), secsOrDash(run.StartupSeconds()), serving, over, secsOrDash(run.ReadyReplicasSeconds),
				run.VictimAnswered, run.VictimFailed)
		}
	}
	p("\n%s", faultsReading(r))
	return sb.String()
}

// faultsReading says what the figures show, in words, from the figures.
func faultsReading(r *results.Faults) string {
	var sb strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	base := r.Baseline.MedianSeconds
	if base <= 0 || len(r.Scenarios) == 0 {
		return "No baseline or no scenario was measured: there is nothing to read.\n"
	}
	p("**What the figures show.** ")
	force, grace, node := r.ScenarioNamed(results.ScenarioNPUForce), r.ScenarioNamed(results.ScenarioNPUGrace), r.ScenarioNamed(results.ScenarioNodeLoss)
	measured := func(sc *results.FaultScenario) bool { return sc != nil && sc.Stats != nil && sc.Stats.Recovered > 0 }
	if measured(force) {
		st := force.Stats
		p("*NPU fault, Force.* The controller deleted the pod on the separated chip %s after the fault (median) and the replacement was bound "+
			"to a node at %s; it served at %s, %s over the baseline", secs(st.DeleteSeconds), secs(st.ScheduledSeconds), secs(st.ServingSeconds),
			signed(st.OverBaselineSeconds))
		if st.OverBaselineSeconds < 1 {
			p(": the recovery is the new pod's own startup (%s) and little else", secs(st.StartupSeconds))
		} else {
			p(", beside the new pod's own startup of %s", secs(st.StartupSeconds))
		}
		p(". ")
	}
	if measured(grace) {
		st := grace.Stats
		gone := positivesMedian(grace.Runs, func(x results.FaultRun) float64 { return x.VictimGoneSeconds })
		p("*NPU fault, Grace.* The pod was deleted gracefully at %s (grace %d s) and was gone at %s; its Deployment makes the replacement as soon as "+
			"the pod is terminating, without waiting for the drain, so the replacement was bound at %s and served at %s (%s over the baseline)",
			secs(st.DeleteSeconds), r.Setup.TerminationGracePeriodSeconds, secsOrDash(gone), secs(st.ScheduledSeconds), secs(st.ServingSeconds),
			signed(st.OverBaselineSeconds))
		if measured(force) {
			p(", %s against Force's", signed(st.ServingSeconds-force.Stats.ServingSeconds))
		}
		p(". ")
		if gone > 0 && gone < float64(r.Setup.TerminationGracePeriodSeconds)/2 {
			p("The drain took milliseconds: the benchmark sends the server no requests but its own chats, so the simulated kubelet ran the " +
				"preStop hook and stopped the server at once; under load the drain lasts until its requests are done, beside the replacement's startup. ")
		}
	}
	if measured(node) {
		st := node.Stats
		age := positivesMedian(node.Runs, func(x results.FaultRun) float64 { return x.HeartbeatAgeSeconds })
		notReady := positivesMedian(node.Runs, func(x results.FaultRun) float64 { return x.NodeNotReadySeconds })
		p("\n\n*Node loss.* The node stopped renewing its Lease at the fault. The controller counts nodeLostSeconds (%d s) from the last renewal", r.Setup.NodeLostSeconds)
		if age > 0 {
			p(", which was %s before the fault (median; the simulated kubelet renews every 10 s), so the pod was deleted at once %s after the fault, "+
				"%s after the last heartbeat", secs(age), secs(st.DeleteSeconds), secs(st.DeleteSeconds+age))
		} else {
			p(", so the pod was deleted at once %s after the fault", secs(st.DeleteSeconds))
		}
		if notReady > 0 {
			p("; kube-controller-manager's node lifecycle controller marked the node NotReady at %s, which the controller did not have to wait for", secs(notReady))
		}
		p(". The replacement was bound at %s and served at %s: %s over the baseline, nearly all of it the wait for nodeLostSeconds. "+
			"As that wait starts at the last heartbeat, the pods of a lost node are deleted between %d s and %d s after it goes down, "+
			"depending on where in the 10 s heartbeat interval it does.", secs(st.ScheduledSeconds), secs(st.ServingSeconds),
			signed(st.OverBaselineSeconds), r.Setup.NodeLostSeconds-10, r.Setup.NodeLostSeconds)
	}
	p("\n\n*The victims.* ")
	for _, sc := range r.Scenarios {
		a, f := 0, 0
		for _, run := range sc.Runs {
			a, f = a+run.VictimAnswered, f+run.VictimFailed
		}
		p("`%s`: of the chats sent to the victims between the fault and their deletion, %d answered and %d failed; %s. ",
			sc.Name, a, f, victimsReading(sc, a, f))
	}
	p("\n")
	// A paragraph may end in the space left for a sentence after it.
	return strings.ReplaceAll(sb.String(), " \n", "\n")
}

// victimsDeletedTooSoon is how soon after the fault a deletion leaves too
// few chats (every 500 ms, one racing the deletion) to tell whether the
// fault stopped the victim serving.
const victimsDeletedTooSoon = 2.0

// victimsReading says what the chats to a scenario's victims show: whether
// the fault stopped them serving before the controller deleted them, when
// they were left long enough to tell.
func victimsReading(sc results.FaultScenario, answered, failed int) string {
	if del := positivesMedian(sc.Runs, func(x results.FaultRun) float64 { return x.VictimDeleteSeconds }); del > 0 && del < victimsDeletedTooSoon {
		return fmt.Sprintf("the controller deleted them %s after the fault (median), too soon to tell whether the fault stopped them serving", secs(del))
	}
	switch {
	case answered == 0 && failed == 0:
		return "no chat reached them"
	case answered == 0:
		return "none answered: the fault stopped them serving before the controller acted"
	case failed == 0:
		return "all answered: the fault did not stop them serving before they were deleted"
	}
	return "some answered, some failed"
}

// positivesMedian is the median of f over the runs where it was seen.
func positivesMedian(runs []results.FaultRun, f func(results.FaultRun) float64) float64 {
	var xs []float64
	for _, run := range runs {
		if v := f(run); v > 0 {
			xs = append(xs, v)
		}
	}
	return results.Median(xs)
}

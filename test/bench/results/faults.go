package results

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
)

// FaultsVersion is the version of the fault-recovery benchmark's format.
const FaultsVersion = 1

// Faults is one run of the fault-recovery benchmark (test/bench/faultbench,
// run by hack/fault-bench.sh on a local cluster of its own with simulated
// Ascend nodes): for an NPU fault under faultRescheduling Force and Grace
// and for the loss of a node, the time from the fault to a replacement
// instance that answers a chat, read against a baseline measured in the
// same run: how long a fresh instance pod of the same server takes from
// scheduled to Ready (the simulated model load and the probes). The
// controller, the scheduler and the API servers are the real ones; the
// nodes, their NPUs and the servers on them are simulated, so every time
// here is of the simulated world. The last run's is committed as
// docs/bench/faults.json; test/bench/report renders the "Fault recovery"
// section of docs/benchmarks.md from it.
type Faults struct {
	Version int `json:"version"`
	// Run is how the benchmark ran and on what machine.
	Run   RouterRun  `json:"run"`
	Goals FaultGoals `json:"goals"`
	Setup FaultSetup `json:"setup"`
	// Baseline is the startup of fresh instance pods, measured in the run.
	Baseline FaultBaseline `json:"baseline"`
	// Scenarios are the faults, in the order they ran.
	Scenarios []FaultScenario `json:"scenarios"`
	// Summary is derived by Derive.
	Summary FaultSummary `json:"summary"`
}

// The scenarios' names.
const (
	ScenarioNPUForce = "npu-force"
	ScenarioNPUGrace = "npu-grace"
	ScenarioNodeLoss = "node-loss"
)

// FaultGoals bound each scenario's median time from the fault to a
// replacement serving: at most the baseline's median startup plus a
// margin (Grace: plus the pods' terminationGracePeriodSeconds too).
type FaultGoals struct {
	ForceMarginSeconds    float64 `json:"forceMarginSeconds"`
	GraceMarginSeconds    float64 `json:"graceMarginSeconds"`
	NodeLossMarginSeconds float64 `json:"nodeLossMarginSeconds"`
	// Why says where each bound comes from.
	Why string `json:"why,omitempty"`
}

// FaultSetup is the cluster and the InferServer every scenario runs on.
type FaultSetup struct {
	// Nodes simulated nodes of NPUsPerNode chips each.
	Nodes       int `json:"nodes"`
	NPUsPerNode int `json:"npusPerNode"`
	// Every scenario creates a fresh server of Instances single-node
	// instances of NPUsPerInstance NPUs each, with a router.
	Instances       int `json:"instances"`
	NPUsPerInstance int `json:"npusPerInstance"`
	// The server's spec.nodeLostSeconds, spec.terminationGracePeriodSeconds
	// and spec.faultGraceOverTimeSeconds.
	NodeLostSeconds               int `json:"nodeLostSeconds"`
	TerminationGracePeriodSeconds int `json:"terminationGracePeriodSeconds"`
	FaultGraceOverTimeSeconds     int `json:"faultGraceOverTimeSeconds"`
	// ConfiguredLoadTimeSeconds is the simulated model load time the
	// MindIE Server simulator is configured with (its LoadTime).
	ConfiguredLoadTimeSeconds float64 `json:"configuredLoadTimeSeconds"`
	// Server is the spec every scenario's InferServer is created with, as
	// YAML (faultRescheduling set per scenario).
	Server string `json:"server"`
	// PollMillis is how often the benchmark looks for a serving
	// replacement (a chat to each new Ready pod).
	PollMillis int `json:"pollMillis"`
	// Note says what a reader of the numbers should know about this run.
	Note string `json:"note,omitempty"`
}

// FaultBaseline is how long fresh instance pods of the same servers took
// to start in this run: one more instance is added to a scenario's
// server (spec.replicas + 1) and its pod timed, then removed again.
type FaultBaseline struct {
	Samples []StartupSample `json:"samples"`
	// Derived: the medians of the samples' ScheduledToReadySeconds and
	// ScheduledToServingSeconds.
	MedianSeconds        float64 `json:"medianSeconds"`
	MedianServingSeconds float64 `json:"medianServingSeconds"`
}

// StartupSample is one fresh pod's startup, as the benchmark's watch saw
// it.
type StartupSample struct {
	Scenario string `json:"scenario"`
	Pod      string `json:"pod"`
	Node     string `json:"node"`
	// From the instance being asked for (the scale) to the pod bound to a
	// node; from bound to Ready; from bound to its first answered chat.
	RequestToScheduledSeconds float64 `json:"requestToScheduledSeconds"`
	ScheduledToReadySeconds   float64 `json:"scheduledToReadySeconds"`
	ScheduledToServingSeconds float64 `json:"scheduledToServingSeconds"`
}

// FaultScenario is one kind of fault, injected Runs times on the same
// server, which is let recover between runs.
type FaultScenario struct {
	Name string `json:"name"`
	// Policy is the server's spec.faultRescheduling in effect ("Grace",
	// the default, is left unset in the spec).
	Policy string `json:"policy"`
	// Fault says what was injected, and how it was undone after each run.
	Fault string      `json:"fault"`
	Runs  []FaultRun  `json:"runs"`
	Stats *FaultStats `json:"stats,omitempty"`
}

// FaultRun is one fault: what happened to the pod it hit, and when its
// replacement came. Times are seconds from the fault's injection (the
// start of the `ascend-sim fault` command); 0 is "not seen".
type FaultRun struct {
	// Victim is the instance pod the fault hit, on Node (chip Chip for an
	// NPU fault); RouterOnNode says a router pod shared its node.
	Victim       string `json:"victim"`
	Node         string `json:"node"`
	Chip         string `json:"chip,omitempty"`
	RouterOnNode bool   `json:"routerOnNode,omitempty"`
	// InjectSeconds is how long the fault command took.
	InjectSeconds float64 `json:"injectSeconds"`
	// A node loss: HeartbeatAgeSeconds is how long before the fault the
	// node had last renewed its Lease (the controller counts
	// nodeLostSeconds from there), NodeNotReadySeconds when the node was
	// first seen not Ready.
	HeartbeatAgeSeconds float64 `json:"heartbeatAgeSeconds,omitempty"`
	NodeNotReadySeconds float64 `json:"nodeNotReadySeconds,omitempty"`
	// The victim's fate: when its deletion was seen requested, with what
	// grace period (VictimGraceSeconds, when VictimDeleted), when it was
	// gone from the API, and the action the controller recorded in
	// status.faults.
	VictimDeleted       bool    `json:"victimDeleted"`
	VictimDeleteSeconds float64 `json:"victimDeleteSeconds,omitempty"`
	VictimGraceSeconds  int64   `json:"victimGraceSeconds,omitempty"`
	VictimGoneSeconds   float64 `json:"victimGoneSeconds,omitempty"`
	Action              string  `json:"action,omitempty"`
	// Chats sent to the victim's own IP after the fault, every 500 ms
	// until its deletion was seen (one still under way then is not
	// counted): answered and failed, and the last answer. They show
	// whether the fault hurt it before the controller acted.
	VictimAnswered          int     `json:"victimAnswered"`
	VictimFailed            int     `json:"victimFailed"`
	VictimLastAnswerSeconds float64 `json:"victimLastAnswerSeconds,omitempty"`
	// The replacement: its pod and node, and when it was first seen
	// created, bound to a node, Ready, and answering a chat on its IP;
	// ReadyReplicasSeconds is when the server's status.readyReplicas was
	// seen back at the instance count with the replacement Ready.
	Replacement          string  `json:"replacement,omitempty"`
	ReplacementNode      string  `json:"replacementNode,omitempty"`
	CreatedSeconds       float64 `json:"createdSeconds,omitempty"`
	ScheduledSeconds     float64 `json:"scheduledSeconds,omitempty"`
	ReadySeconds         float64 `json:"readySeconds,omitempty"`
	ServingSeconds       float64 `json:"servingSeconds,omitempty"`
	ReadyReplicasSeconds float64 `json:"readyReplicasSeconds,omitempty"`
	// Error says why the run did not recover, when it did not.
	Error string `json:"error,omitempty"`
}

// Recovered says a replacement answered.
func (r FaultRun) Recovered() bool { return r.ServingSeconds > 0 }

// StartupSeconds is the replacement's own startup: bound to Ready (0 if
// either was not seen).
func (r FaultRun) StartupSeconds() float64 {
	if r.ScheduledSeconds <= 0 || r.ReadySeconds <= 0 {
		return 0
	}
	return r.ReadySeconds - r.ScheduledSeconds
}

// FaultStats are a scenario's medians over its recovered runs, derived
// by Derive.
type FaultStats struct {
	Runs      int `json:"runs"`
	Recovered int `json:"recovered"`
	// ServingSeconds: fault → a replacement answering, the figure the goal
	// holds for; OverBaselineSeconds is it less the baseline's median
	// startup, the part of the recovery that is not the new pod starting.
	ServingSeconds      float64 `json:"servingSeconds"`
	OverBaselineSeconds float64 `json:"overBaselineSeconds"`
	// The medians of the breakdown: fault → the victim's deletion
	// requested, → the replacement bound to a node, the replacement's own
	// startup (bound → Ready), fault → status.readyReplicas back.
	DeleteSeconds        float64 `json:"deleteSeconds"`
	ScheduledSeconds     float64 `json:"scheduledSeconds"`
	StartupSeconds       float64 `json:"startupSeconds"`
	ReadyReplicasSeconds float64 `json:"readyReplicasSeconds"`
	// BoundSeconds is the goal: the baseline plus the scenario's margin.
	BoundSeconds float64 `json:"boundSeconds"`
}

// FaultSummary is each scenario's goal check, derived by Derive.
type FaultSummary struct {
	Goals []GoalCheck `json:"goals"`
}

// The names of the goals Derive checks.
const (
	GoalFaultForce = "NPU fault, Force: fault → replacement serving"
	GoalFaultGrace = "NPU fault, Grace: fault → replacement serving (our goal)"
	GoalFaultNode  = "node loss: fault → replacement serving"
)

// Median is the median of xs (the mean of the middle two for an even
// count), 0 for none. It leaves xs as it is.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// positives are the values of f over xs that were seen (above 0).
func positives[T any](xs []T, f func(T) float64) []float64 {
	var out []float64
	for _, x := range xs {
		if v := f(x); v > 0 {
			out = append(out, v)
		}
	}
	return out
}

// ScenarioNamed returns the named scenario, or nil.
func (r *Faults) ScenarioNamed(name string) *FaultScenario {
	for i := range r.Scenarios {
		if r.Scenarios[i].Name == name {
			return &r.Scenarios[i]
		}
	}
	return nil
}

// Margin is the seconds a scenario may take beyond the baseline's startup,
// and the goal's name; ok is false for a scenario without a goal.
func (r *Faults) Margin(scenario string) (margin float64, goal string, ok bool) {
	switch scenario {
	case ScenarioNPUForce:
		return r.Goals.ForceMarginSeconds, GoalFaultForce, true
	case ScenarioNPUGrace:
		return r.Goals.GraceMarginSeconds + float64(r.Setup.TerminationGracePeriodSeconds), GoalFaultGrace, true
	case ScenarioNodeLoss:
		return r.Goals.NodeLossMarginSeconds, GoalFaultNode, true
	}
	return 0, "", false
}

// Derive computes the baseline's medians, each scenario's statistics and
// the goal checks. A goal is measured when the baseline and at least one
// run of its scenario were; it is met when every run recovered and the
// median of their times is within the bound. A scenario that did not run
// has its goal not measured.
func (r *Faults) Derive() {
	b := &r.Baseline
	b.MedianSeconds = Median(positives(b.Samples, func(s StartupSample) float64 { return s.ScheduledToReadySeconds }))
	b.MedianServingSeconds = Median(positives(b.Samples, func(s StartupSample) float64 { return s.ScheduledToServingSeconds }))
	var goals []GoalCheck
	for i := range r.Scenarios {
		sc := &r.Scenarios[i]
		st := &FaultStats{Runs: len(sc.Runs)}
		var recovered []FaultRun
		for _, run := range sc.Runs {
			if run.Recovered() {
				recovered = append(recovered, run)
			}
		}
		st.Recovered = len(recovered)
		st.ServingSeconds = Median(positives(recovered, func(x FaultRun) float64 { return x.ServingSeconds }))
		st.DeleteSeconds = Median(positives(sc.Runs, func(x FaultRun) float64 { return x.VictimDeleteSeconds }))
		st.ScheduledSeconds = Median(positives(recovered, func(x FaultRun) float64 { return x.ScheduledSeconds }))
		st.StartupSeconds = Median(positives(recovered, FaultRun.StartupSeconds))
		st.ReadyReplicasSeconds = Median(positives(recovered, func(x FaultRun) float64 { return x.ReadyReplicasSeconds }))
		measured := b.MedianSeconds > 0 && st.Recovered > 0
		if measured {
			st.OverBaselineSeconds = st.ServingSeconds - b.MedianSeconds
		}
		margin, name, ok := r.Margin(sc.Name)
		if ok && b.MedianSeconds > 0 {
			st.BoundSeconds = b.MedianSeconds + margin
		}
		sc.Stats = st
		if !ok {
			continue
		}
		g := check(name, st.ServingSeconds, st.BoundSeconds, true, measured, true)
		g.Met = g.Met && st.Recovered == st.Runs
		goals = append(goals, g)
	}
	// Scenarios that did not run still show their goal, not measured.
	for _, name := range []string{ScenarioNPUForce, ScenarioNPUGrace, ScenarioNodeLoss} {
		if r.ScenarioNamed(name) == nil {
			_, goal, _ := r.Margin(name)
			goals = append(goals, check(goal, 0, 0, true, false, true))
		}
	}
	r.Summary = FaultSummary{Goals: goals}
}

// LoadFaults reads a fault-recovery benchmark's results and derives its
// summary.
func LoadFaults(path string) (*Faults, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Faults
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.Version != FaultsVersion {
		return nil, fmt.Errorf("%s: version %d, want %d", path, r.Version, FaultsVersion)
	}
	r.Derive()
	return &r, nil
}

// Save derives the summary and writes the results to path, through a
// temporary file.
func (r *Faults) Save(path string) error {
	r.Derive()
	return saveJSON(path, r)
}

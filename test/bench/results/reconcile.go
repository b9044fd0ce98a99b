// Package results is the JSON format of the results of the reconcile
// benchmark and of the scale check. test/bench/reconcile writes the
// reconcile benchmark's (Reconcile), one measurement per number of
// InferServers, and test/bench/scalecheck the scale check's (ScaleCheck)
// from what hack/scale-check.sh sampled; test/bench/report renders
// docs/reconcile-bench.md, docs/benchmarks.md and docs/scale-check.md from
// them. The results of the last runs are committed as docs/bench/reconcile.json
// and docs/bench/scale-check.json, so the documents can be rendered again
// without running anything.
package results

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
)

// Version is the version of the reconcile benchmark's format this package
// writes. Version 2 changed what the baseline is: the very children the
// controller writes (ControllerRevision, Deployment, Service), written
// directly. Files of VersionConfigMapBaseline, whose baseline was N
// ConfigMaps, are still read (and rendered as such), never added to.
const (
	Version                  = 2
	VersionConfigMapBaseline = 1
)

// Reconcile is one run of the reconcile benchmark: for each N, N
// InferServers created at once on a local cluster, beside a baseline
// measured in the same run that writes the same children directly with the
// same client and concurrency, with no InferServer and no controller.
type Reconcile struct {
	Version int `json:"version"`
	// Run is how the benchmark ran and on what machine.
	Run Run `json:"run"`
	// Goals are what each measurement is held to.
	Goals Goals `json:"goals"`
	// Sizes holds one measurement per N, in increasing N.
	Sizes []Measurement `json:"sizes"`
}

// ConfigMapBaseline reports whether the baseline of these results is the
// first format's N ConfigMaps rather than the servers' children.
func (r *Reconcile) ConfigMapBaseline() bool { return r.Version == VersionConfigMapBaseline }

// Run is the parameters of a run and the machine it ran on.
type Run struct {
	// Command is the command that ran the benchmark, as the documents show it.
	Command string `json:"command"`
	// Go is the toolchain that built the benchmark ("go version go1.26.8 linux/amd64").
	Go string `json:"go"`
	// CPU is the model name of /proc/cpuinfo, CPUs how many the process could use.
	CPU  string `json:"cpu"`
	CPUs int    `json:"cpus"`
	// MemTotalKiB is MemTotal of /proc/meminfo.
	MemTotalKiB int64 `json:"memTotalKiB"`
	// Workers is how many goroutines create (and delete) at once.
	Workers int `json:"workers"`
	// BaselineRuns is how many times the baseline ran for the N measured
	// last (its median counts); each measurement's Baseline.SeenRuns are
	// its own runs, as a large N may run its baseline fewer times.
	BaselineRuns int `json:"baselineRuns"`
	// TimeoutSeconds and TimeoutPerServerSeconds bound each phase of one N
	// (every status observed, a baseline run, the deletion): TimeoutSeconds
	// plus N times TimeoutPerServerSeconds (zero in results of the first
	// format, where TimeoutSeconds alone bounded the wait for the statuses).
	TimeoutSeconds          float64 `json:"timeoutSeconds"`
	TimeoutPerServerSeconds float64 `json:"timeoutPerServerSeconds,omitempty"`
	// SettleSeconds is how long memory is still sampled after the last
	// status was observed.
	SettleSeconds float64 `json:"settleSeconds"`
	// QuietCores is the CPU (cores, all the cluster's processes together)
	// under which the cluster counts as quiet before a phase, and
	// QuietTimeoutSeconds how long a phase waits for that at most.
	QuietCores          float64 `json:"quietCores,omitempty"`
	QuietTimeoutSeconds float64 `json:"quietTimeoutSeconds,omitempty"`
	// DeleteBy is how the servers (and the baseline's children) are
	// deleted at the end: "namespace", their namespace deleted and timed
	// until it is gone; empty, each deleted on its own and timed until they
	// and their children are gone.
	DeleteBy string `json:"deleteBy,omitempty"`
	// APIServerFlags are the flags the run added to mindie-apiserver's
	// command line (hack/local-up.sh's MINDIE_APISERVER_FLAGS); empty:
	// none.
	APIServerFlags string `json:"apiServerFlags,omitempty"`
	// Controller is the controller's settings as mindie-apiserver ran with
	// them (its command line read with its own flags and defaults); nil in
	// results of the first format.
	Controller *ControllerSettings `json:"controller,omitempty"`
	// Note says anything a reader of the numbers should know, such as
	// figures a converted results file could not recover.
	Note string `json:"note,omitempty"`
}

// ControllersExternal is Measurement.Controllers of controllers run as
// mindie-controller.
const ControllersExternal = "external"

// ControllerSettings are the flags of mindie-apiserver that bound how fast
// its controller can go.
type ControllerSettings struct {
	Workers      int     `json:"workers"`      // --controller-workers
	KubeAPIQPS   float64 `json:"kubeAPIQPS"`   // --kube-api-qps
	KubeAPIBurst int     `json:"kubeAPIBurst"` // --kube-api-burst
}

// sameParameters reports whether two runs measured alike, so that their
// measurements belong in one results file. The bounds on the phases are
// not compared: a bound only says how long the benchmark waits, and each
// measurement keeps its own (Measurement.TimeoutSeconds).
func (r Run) sameParameters(o Run) bool {
	return r.Workers == o.Workers && r.SettleSeconds == o.SettleSeconds &&
		r.APIServerFlags == o.APIServerFlags && r.DeleteBy == o.DeleteBy
}

// Goals are upper bounds on the figures of each measurement; zero is no
// goal. Those of Sizes apply to one N only, the others to every N.
type Goals struct {
	// MaxRatio bounds the time until every status was observed over the
	// baseline's time, at every N without a ratio of its own in Sizes.
	MaxRatio float64 `json:"maxRatio,omitempty"`
	// MaxPeakGrowthKiBPerServer bounds mindie-apiserver's peak VmRSS over
	// its VmRSS before the first create, divided by N.
	MaxPeakGrowthKiBPerServer float64 `json:"maxPeakGrowthKiBPerServer,omitempty"`
	// Sizes are the goals of particular numbers of servers.
	Sizes []SizeGoals `json:"sizes,omitempty"`
}

// SizeGoals are the goals of one N.
type SizeGoals struct {
	N int `json:"n"`
	// MaxRatio bounds all observed over the baseline.
	MaxRatio float64 `json:"maxRatio,omitempty"`
	// MaxObservedSeconds bounds the time until every status was observed.
	MaxObservedSeconds float64 `json:"maxObservedSeconds,omitempty"`
	// MaxPeakKiB bounds mindie-apiserver's peak VmRSS.
	MaxPeakKiB int64 `json:"maxPeakKiB,omitempty"`
	// MaxDeleteSeconds bounds the deletion at the end.
	MaxDeleteSeconds float64 `json:"maxDeleteSeconds,omitempty"`
}

// The figures a goal can bound, as Check.Goal names them.
const (
	GoalRatio           = "ratio"                  // all observed / baseline
	GoalObservedSeconds = "observedSeconds"        // all observed
	GoalPeakKiB         = "peakKiB"                // peak VmRSS
	GoalGrowth          = "peakGrowthKiBPerServer" // peak VmRSS growth per server
	GoalDeleteSeconds   = "deleteSeconds"          // the deletion at the end
)

// Check is one goal of a measurement and how the measurement fared.
type Check struct {
	Goal string  `json:"goal"`
	Max  float64 `json:"max"`
	// Value is the measured figure; Known is false when it could not be
	// measured (a time or a ratio when not every status was observed).
	Value float64 `json:"value"`
	Known bool    `json:"known"`
	Met   bool    `json:"met"`
}

// For is the goals of N, as checks yet to be measured (only Goal and Max
// set), in the order the documents show them.
func (g Goals) For(n int) []Check {
	var size SizeGoals
	for _, s := range g.Sizes {
		if s.N == n {
			size = s
		}
	}
	ratio := g.MaxRatio
	if size.MaxRatio > 0 {
		ratio = size.MaxRatio
	}
	var out []Check
	add := func(goal string, bound float64) {
		if bound > 0 {
			out = append(out, Check{Goal: goal, Max: bound})
		}
	}
	add(GoalRatio, ratio)
	add(GoalObservedSeconds, size.MaxObservedSeconds)
	add(GoalPeakKiB, float64(size.MaxPeakKiB))
	add(GoalGrowth, g.MaxPeakGrowthKiBPerServer)
	add(GoalDeleteSeconds, size.MaxDeleteSeconds)
	return out
}

// Measurement is N InferServers and their baseline. Times are seconds from
// the first create call.
type Measurement struct {
	N int `json:"n"`
	// Start is when the measurement started (RFC 3339, UTC).
	Start string `json:"start"`
	// Machine is what it was measured on (Run.Machine): results that
	// gathered their sizes over several runs (Put) may hold measurements
	// of other machines than the last run's.
	Machine string `json:"machine,omitempty"`
	// Command is the command of the run that measured it (Run.Command),
	// for the same reason.
	Command string `json:"command,omitempty"`
	// Controllers is where the workload controllers ran: empty, in
	// mindie-apiserver; ControllersExternal, in mindie-controller, beside
	// mindie-apiserver --external-controllers (hack/local-up.sh's
	// MINDIE_CONTROLLERS=external).
	Controllers string `json:"controllers,omitempty"`
	// WarmupSeconds is how long one InferServer took to be observed before
	// the measurement (it includes the controller winning its Lease after
	// mindie-apiserver started).
	WarmupSeconds float64 `json:"warmupSeconds"`
	// TimeoutSeconds is the bound on each phase of this N.
	TimeoutSeconds float64 `json:"timeoutSeconds,omitempty"`

	Baseline Baseline `json:"baseline"`
	// Floor is the servers' own writes with their children's, without a
	// controller; nil where it was not measured.
	Floor     *Floor        `json:"floor,omitempty"`
	Reconcile ReconcilePart `json:"reconcile"`
	Memory    Memory        `json:"memory"`
	Delete    Delete        `json:"delete"`
	Log       Log           `json:"log"`
	// Quiet is each wait for the cluster to fall idle before a phase.
	Quiet []QuietWait `json:"quiet,omitempty"`
	// Summary is derived from the rest by Derive.
	Summary Summary `json:"summary"`
}

// QuietWait is a wait before a phase until the cluster's processes used
// little CPU: the aftermath of the phase before (the controller manager
// making or collecting ReplicaSets and pods, the scheduler trying to place
// them) is not measured with the next one.
type QuietWait struct {
	Before  string  `json:"before"`  // the phase that waited
	Seconds float64 `json:"seconds"` // how long it waited
	Cores   float64 `json:"cores"`   // the CPU the processes used in the last window
	Quiet   bool    `json:"quiet"`   // false: it gave up waiting
}

// Baseline is the children of N servers written directly with the same
// client and concurrency as the InferServers, until a watch has seen all
// of them. In results of the first format, it is N ConfigMaps (each
// holding the JSON of an InferServer's spec).
type Baseline struct {
	// Objects is how many objects one run writes (3N; zero in results of
	// the first format, whose runs wrote N).
	Objects int `json:"objects,omitempty"`
	// Medians over the runs: every write returned, the watch saw them all.
	CreatedSeconds float64 `json:"createdSeconds"`
	SeenSeconds    float64 `json:"seenSeconds"`
	// SeenRuns is each run's time until the watch saw them all.
	SeenRuns []float64 `json:"seenRuns"`
	// DeleteSeconds is the median time to delete a run's objects (with the
	// same client and concurrency) until the watch saw them gone, and
	// DeleteRuns each run's.
	DeleteSeconds float64   `json:"deleteSeconds,omitempty"`
	DeleteRuns    []float64 `json:"deleteRuns,omitempty"`
	// Errors counts write calls that failed and were retried.
	Errors int `json:"errors"`
	// CPU is the CPU seconds of each process of the cluster in the run
	// whose time is the median, and Requests the writes the API servers
	// served in it (as ReconcilePart.Requests).
	CPU      map[string]float64 `json:"cpu"`
	Requests []Requests         `json:"requests,omitempty"`
	// Compared is whether the baseline's children of the first server were
	// compared with the controller's, Same whether they were alike but for
	// their namespace and owner references (the fields their field manager
	// owns), and Difference what differed.
	Compared   bool   `json:"compared,omitempty"`
	Same       bool   `json:"same,omitempty"`
	Difference string `json:"difference,omitempty"`
}

// Floor is what a controller that cost nothing would take: mindie-apiserver
// runs without its controllers, and the benchmark itself makes every write
// a server's first sync makes, as soon as the server's create returns: the
// N InferServers created from the same goroutines as the servers' phase,
// and for each, from as many goroutines as the controller has workers, the
// baseline's children (owned by the server), the status the controller
// wrote for the warm-up server, and an Event. Its time runs from the first
// create until a watch of the InferServers saw every status observed, as
// the servers' phase.
type Floor struct {
	// Workers is how many goroutines wrote the servers' children, statuses
	// and Events.
	Workers int `json:"workers"`
	// Medians over the runs: every create returned, every status seen
	// observed.
	CreatedSeconds  float64 `json:"createdSeconds"`
	ObservedSeconds float64 `json:"observedSeconds"`
	// Runs is each run's time until every status was seen observed.
	Runs []float64 `json:"runs"`
	// Errors counts write calls that failed and were retried.
	Errors int `json:"errors"`
	// CPU is the CPU seconds of each process of the cluster in the run
	// whose time is the median.
	CPU map[string]float64 `json:"cpu"`
}

// ReconcilePart is the N InferServers: created at once, watched until each
// has its children and its status observed.
type ReconcilePart struct {
	// CreatedSeconds is when the last create call returned.
	CreatedSeconds float64 `json:"createdSeconds"`
	// ChildrenSeconds is when the last server had its Deployment, Service
	// and ControllerRevision.
	ChildrenSeconds float64 `json:"childrenSeconds"`
	// ObservedSeconds is when the last server's status was observed
	// (status.observedGeneration == metadata.generation, updateRevision set).
	ObservedSeconds float64 `json:"observedSeconds"`
	// ObservedRuns is each run's ObservedSeconds where the servers' phase
	// ran more than once (each on a restarted mindie-apiserver, its servers
	// deleted at its end); the rest of the measurement is that of the run
	// whose time is the median (the lower middle one of an even count, a
	// run that did not see every status counting as the slowest).
	ObservedRuns []float64 `json:"observedRuns,omitempty"`
	// Children and Observed count the servers that got that far.
	Children int `json:"children"`
	Observed int `json:"observed"`
	// Errors counts create calls that failed and were retried.
	Errors int `json:"errors"`
	// ChildrenQuantiles and ObservedQuantiles are p50, p90 and max over the
	// servers of the time to their children and to their observed status.
	ChildrenQuantiles map[string]float64 `json:"childrenQuantiles"`
	ObservedQuantiles map[string]float64 `json:"observedQuantiles"`
	// CPU is the CPU seconds of each process of the cluster from the first
	// create until every status was observed.
	CPU map[string]float64 `json:"cpu"`
	// Writes counts the watch events (adds and updates) seen per kind until
	// every status was observed: the writes of the controller, the
	// controller manager and the scheduler that the benchmark could see.
	Writes map[string]int `json:"writes"`
	// Events counts the Events the controller recorded, by "type reason",
	// listed when every status was observed (after the settle time), and
	// EventsLater again after the deletion: the recorder writes them in the
	// background.
	Events      map[string]int `json:"events"`
	EventsLater map[string]int `json:"eventsLater,omitempty"`
	// Queue is what the controller's work queue did meanwhile, from
	// mindie-apiserver's /metrics; nil when they were not read.
	Queue *Queue `json:"queue,omitempty"`
	// Requests are the writes the API servers served meanwhile, by server,
	// verb and resource, from their /metrics; nil when not read.
	Requests []Requests `json:"requests,omitempty"`
	// Progress is how far the servers were, every second.
	Progress []Progress `json:"progress,omitempty"`
}

// Queue is what the controller's work queue ("inferserver") did between
// two reads of mindie-apiserver's /metrics.
type Queue struct {
	// Adds counts keys queued (a queued key queued again counts again).
	Adds float64 `json:"adds"`
	// Syncs counts keys worked on, one sync each.
	Syncs float64 `json:"syncs"`
	// Requeues is workqueue_retries_total: keys put back to be synced again
	// after a delay. client-go counts every AddAfter, so it counts the
	// syncs that asked to be looked at again later as well as the failed
	// ones retried with back-off (Log.SyncErrorsReconcile counts those).
	Requeues float64 `json:"retries"`
	// WorkSeconds is the time the workers spent in syncs; over the elapsed
	// time it is how many workers were busy on average.
	WorkSeconds float64 `json:"workSeconds"`
	// QueueSeconds is the time keys waited in the queue before a worker
	// took them, summed over the syncs.
	QueueSeconds   float64 `json:"queueSeconds"`
	ElapsedSeconds float64 `json:"elapsedSeconds"`
}

// Requests are the requests of one verb on one resource that one API
// server served in a phase.
type Requests struct {
	Server   string  `json:"server"`   // "kube-apiserver" or "mindie-apiserver"
	Verb     string  `json:"verb"`     // POST, APPLY, PUT, PATCH, DELETE
	Resource string  `json:"resource"` // [group/]resource[/subresource]
	Count    float64 `json:"count"`
	// Seconds is the time the server took to answer them, summed.
	Seconds float64 `json:"seconds"`
}

// Progress is how far the servers were at a moment.
type Progress struct {
	T        float64 `json:"t"`
	Created  int     `json:"created"`
	Children int     `json:"children"`
	Observed int     `json:"observed"`
}

// Memory is mindie-apiserver's memory, sampled from /proc every 200 ms
// from just before the first create until the settle time after the last
// status was observed.
type Memory struct {
	BeforeKiB int64 `json:"beforeKiB"` // VmRSS just before the first create
	PeakKiB   int64 `json:"peakKiB"`   // highest VmRSS sampled
	EndKiB    int64 `json:"endKiB"`    // VmRSS at the end
	HWMKiB    int64 `json:"hwmKiB"`    // VmHWM at the end: the process's peak since it started
	Samples   int   `json:"samples"`
	// AfterWarmupKiB is VmRSS after the first warm-up, before the
	// baseline, and BaselinePeakKiB the highest VmRSS sampled while the
	// baseline ran: its children pass through the controller's caches too
	// (they carry the label its informers select). Zero in results of the
	// first format.
	AfterWarmupKiB  int64 `json:"afterWarmupKiB,omitempty"`
	BaselinePeakKiB int64 `json:"baselinePeakKiB,omitempty"`
	// Restarted is whether mindie-apiserver was restarted (and warmed up
	// again) between the baseline and the servers, so that the figures
	// above from BeforeKiB on are of a process the baseline never touched.
	Restarted bool `json:"restarted,omitempty"`
	// Controller* are the same figures of mindie-controller where the
	// controllers ran as a process of their own (Measurement.Controllers);
	// zero otherwise.
	ControllerBeforeKiB int64 `json:"controllerBeforeKiB,omitempty"`
	ControllerPeakKiB   int64 `json:"controllerPeakKiB,omitempty"`
	ControllerEndKiB    int64 `json:"controllerEndKiB,omitempty"`
	ControllerHWMKiB    int64 `json:"controllerHWMKiB,omitempty"`
}

// Delete is the deletion of the N servers at the end.
type Delete struct {
	Done    bool    `json:"done"`
	Seconds float64 `json:"seconds"` // until the servers and their children were gone
	Left    int     `json:"left"`    // servers and children left at the timeout
	// Runs is each run's Seconds where the servers' phase ran more than
	// once (ReconcilePart.ObservedRuns); Seconds is then their median, Done
	// whether every run's deletion was, and the rest the median run's.
	Runs []float64 `json:"runs,omitempty"`
	// CallsSeconds is when the last delete call returned.
	CallsSeconds float64 `json:"callsSeconds,omitempty"`
	// Progress is what was left every 10 s.
	Progress []DeleteProgress `json:"progress,omitempty"`
}

// DeleteProgress is what was left of the servers and their children at a
// moment of the deletion.
type DeleteProgress struct {
	T        float64 `json:"t"`
	Servers  int     `json:"servers"`
	Children int     `json:"children"`
}

// Log is what mindie-apiserver logged during the measurement: the warm-up,
// the baseline, the servers and their deletion.
type Log struct {
	SyncErrors int `json:"syncErrors"` // "Syncing InferServer failed"
	// SyncErrorsReconcile counts those logged from the first create until
	// every status was observed, the window of the queue's figures.
	SyncErrorsReconcile int      `json:"syncErrorsReconcile,omitempty"`
	ErrorLines          int      `json:"errorLines"`    // klog E lines
	Throttled           int      `json:"throttled"`     // "Waited before sending request"
	MaxThrottle         float64  `json:"maxThrottle"`   // longest such wait, seconds
	ErrorExamples       []string `json:"errorExamples"` // a few distinct error lines
}

// Summary is the figures the documents lead with, derived from a
// measurement and the goals.
type Summary struct {
	// Ratio is ObservedSeconds over the baseline's SeenSeconds; zero when
	// not every status was observed.
	Ratio float64 `json:"ratio"`
	// FloorRatio is the floor's ObservedSeconds over the baseline's
	// SeenSeconds: what the InferServers' own writes add to their
	// children's; OverFloor is ObservedSeconds over the floor's: what the
	// controller adds to a controller that cost nothing. Zero where the
	// floor was not measured or not every status was observed.
	FloorRatio float64 `json:"floorRatio,omitempty"`
	OverFloor  float64 `json:"overFloor,omitempty"`
	// ServersPerSecond is N over ObservedSeconds; zero when not every
	// status was observed.
	ServersPerSecond float64 `json:"serversPerSecond"`
	// PeakGrowthKiBPerServer is the peak VmRSS over the VmRSS before, per server.
	PeakGrowthKiBPerServer float64 `json:"peakGrowthKiBPerServer"`
	// Checks are the goals of this N and how the measurement fared.
	Checks []Check `json:"checks,omitempty"`
	// MeetsGoals is whether every status was observed and every goal met.
	MeetsGoals bool `json:"meetsGoals"`
}

// Complete reports whether every server had its children and its status
// observed.
func (m *Measurement) Complete() bool {
	return m.Reconcile.Observed == m.N && m.Reconcile.Children == m.N && m.N > 0
}

// derive computes the summary of m under goals g.
func (m *Measurement) derive(g Goals) {
	s := Summary{}
	if m.N > 0 {
		s.PeakGrowthKiBPerServer = float64(m.Memory.PeakKiB-m.Memory.BeforeKiB) / float64(m.N)
	}
	complete := m.Complete() && m.Reconcile.ObservedSeconds > 0
	if complete {
		s.ServersPerSecond = float64(m.N) / m.Reconcile.ObservedSeconds
		if m.Baseline.SeenSeconds > 0 {
			s.Ratio = m.Reconcile.ObservedSeconds / m.Baseline.SeenSeconds
		}
		if fl := m.Floor; fl != nil && fl.ObservedSeconds > 0 {
			s.OverFloor = m.Reconcile.ObservedSeconds / fl.ObservedSeconds
			if m.Baseline.SeenSeconds > 0 {
				s.FloorRatio = fl.ObservedSeconds / m.Baseline.SeenSeconds
			}
		}
	}
	s.MeetsGoals = complete
	for _, c := range g.For(m.N) {
		switch c.Goal {
		case GoalRatio:
			c.Value, c.Known = s.Ratio, s.Ratio > 0
		case GoalObservedSeconds:
			c.Value, c.Known = m.Reconcile.ObservedSeconds, complete
		case GoalPeakKiB:
			c.Value, c.Known = float64(m.Memory.PeakKiB), m.Memory.PeakKiB > 0
		case GoalGrowth:
			c.Value, c.Known = s.PeakGrowthKiBPerServer, m.Memory.PeakKiB > 0
		case GoalDeleteSeconds:
			c.Value, c.Known = m.Delete.Seconds, m.Delete.Done
		}
		c.Met = c.Known && c.Value <= c.Max
		s.MeetsGoals = s.MeetsGoals && c.Met
		s.Checks = append(s.Checks, c)
	}
	m.Summary = s
}

// Derive sorts the measurements by N and computes their summaries.
func (r *Reconcile) Derive() {
	slices.SortFunc(r.Sizes, func(a, b Measurement) int { return a.N - b.N })
	for i := range r.Sizes {
		r.Sizes[i].derive(r.Goals)
	}
}

// Accepts reports, as an error, why measurements of run do not belong
// with the results: a run with other parameters measured them, or the
// results are of an older format whose baseline was something else.
func (r *Reconcile) Accepts(run Run) error {
	if len(r.Sizes) == 0 {
		return nil
	}
	if r.Version != Version {
		return fmt.Errorf("the results are of version %d, whose baseline differs from this version's (%d): write to another file", r.Version, Version)
	}
	if !r.Run.sameParameters(run) {
		return fmt.Errorf("the results hold a run with workers %d, settle %gs, deletion by %q and mindie-apiserver flags %q; "+
			"this one has %d, %gs, %q and %q: write it to another file",
			r.Run.Workers, r.Run.SettleSeconds, r.Run.DeleteBy, r.Run.APIServerFlags,
			run.Workers, run.SettleSeconds, run.DeleteBy, run.APIServerFlags)
	}
	return nil
}

// Machine names the machine of a run: "2 CPUs, AMD EPYC".
func (r Run) Machine() string {
	if r.CPU == "" {
		return fmt.Sprintf("%d CPUs", r.CPUs)
	}
	return fmt.Sprintf("%d CPUs, %s", r.CPUs, r.CPU)
}

// Put adds m to the results of run, replacing a measurement of the same N.
// The results must be of a run with the same parameters (Accepts); the
// machine, the command and the goals become those of run and goals.
func (r *Reconcile) Put(run Run, goals Goals, m Measurement) error {
	if err := r.Accepts(run); err != nil {
		return err
	}
	// A measurement put before measurements recorded their machine was
	// made on the machine of the run that put the results last.
	// So was its command.
	for i := range r.Sizes {
		if r.Sizes[i].Machine == "" && r.Run.CPUs > 0 {
			r.Sizes[i].Machine = r.Run.Machine()
		}
		if r.Sizes[i].Command == "" {
			r.Sizes[i].Command = r.Run.Command
		}
	}
	if m.Machine == "" {
		m.Machine = run.Machine()
	}
	if m.Command == "" {
		m.Command = run.Command
	}
	r.Version, r.Run, r.Goals = Version, run, goals
	r.Sizes = slices.DeleteFunc(r.Sizes, func(o Measurement) bool { return o.N == m.N })
	r.Sizes = append(r.Sizes, m)
	r.Derive()
	return nil
}

// LoadReconcile reads a results file and derives its summaries. A file
// that does not exist reads as empty results when missingOK.
func LoadReconcile(path string, missingOK bool) (*Reconcile, error) {
	data, err := os.ReadFile(path)
	if missingOK && errors.Is(err, fs.ErrNotExist) {
		return &Reconcile{Version: Version}, nil
	}
	if err != nil {
		return nil, err
	}
	var r Reconcile
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.Version != Version && r.Version != VersionConfigMapBaseline {
		return nil, fmt.Errorf("%s: version %d, want %d (or %d, whose baseline was ConfigMaps)", path, r.Version, Version, VersionConfigMapBaseline)
	}
	r.Derive()
	return &r, nil
}

// Save writes the results to path, through a temporary file so that a
// reader never sees half of them.
func (r *Reconcile) Save(path string) error { return saveJSON(path, r) }

// saveJSON writes v to path as indented JSON, through a temporary file so
// that a reader never sees half of it.
func saveJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	if err := os.WriteFile(path+".tmp", data, 0o644); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}

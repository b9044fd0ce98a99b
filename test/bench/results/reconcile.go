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

// Version is the version of the format this package reads and writes.
const Version = 1

// Reconcile is one run of the reconcile benchmark: for each N, N
// InferServers created at once on a local cluster, beside a baseline
// measured in the same run (N ConfigMaps written with the same client and
// concurrency, which no controller acts on).
type Reconcile struct {
	Version int `json:"version"`
	// Run is how the benchmark ran and on what machine.
	Run Run `json:"run"`
	// Goals are what each measurement is held to.
	Goals Goals `json:"goals"`
	// Sizes holds one measurement per N, in increasing N.
	Sizes []Measurement `json:"sizes"`
}

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
	// BaselineRuns is how many times the baseline runs for each N; its
	// median counts.
	BaselineRuns int `json:"baselineRuns"`
	// TimeoutSeconds bounds the wait for every status of one N.
	TimeoutSeconds float64 `json:"timeoutSeconds"`
	// SettleSeconds is how long memory is still sampled after the last
	// status was observed.
	SettleSeconds float64 `json:"settleSeconds"`
	// Note says anything a reader of the numbers should know, such as
	// figures a converted results file could not recover.
	Note string `json:"note,omitempty"`
}

// sameParameters reports whether two runs measured alike, so that their
// measurements belong in one results file.
func (r Run) sameParameters(o Run) bool {
	return r.Workers == o.Workers && r.BaselineRuns == o.BaselineRuns &&
		r.TimeoutSeconds == o.TimeoutSeconds && r.SettleSeconds == o.SettleSeconds
}

// Goals are upper bounds on the figures of each measurement; zero is no goal.
type Goals struct {
	// MaxRatio bounds the time until every status was observed over the
	// baseline's time.
	MaxRatio float64 `json:"maxRatio,omitempty"`
	// MaxPeakGrowthKiBPerServer bounds mindie-apiserver's peak VmRSS over
	// its VmRSS before the first create, divided by N.
	MaxPeakGrowthKiBPerServer float64 `json:"maxPeakGrowthKiBPerServer,omitempty"`
}

// Measurement is N InferServers and their baseline. Times are seconds from
// the first create call.
type Measurement struct {
	N int `json:"n"`
	// Start is when the measurement started (RFC 3339, UTC).
	Start string `json:"start"`
	// WarmupSeconds is how long one InferServer took to be observed before
	// the measurement (it includes the controller winning its Lease after
	// mindie-apiserver started).
	WarmupSeconds float64 `json:"warmupSeconds"`

	Baseline  Baseline      `json:"baseline"`
	Reconcile ReconcilePart `json:"reconcile"`
	Memory    Memory        `json:"memory"`
	Delete    Delete        `json:"delete"`
	Log       Log           `json:"log"`
	// Summary is derived from the rest by Derive.
	Summary Summary `json:"summary"`
}

// Baseline is N ConfigMaps (each holding the JSON of an InferServer's
// spec) created with the same client and concurrency, until a watch has
// seen all of them.
type Baseline struct {
	// Medians over the runs: every create returned, the watch saw all N.
	CreatedSeconds float64 `json:"createdSeconds"`
	SeenSeconds    float64 `json:"seenSeconds"`
	// SeenRuns is each run's time until the watch saw all N.
	SeenRuns []float64 `json:"seenRuns"`
	// Errors counts create calls that failed and were retried.
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
	// Retries counts syncs that failed and were queued again with backoff.
	Retries float64 `json:"retries"`
	// WorkSeconds is the time the workers spent in syncs; over the elapsed
	// time it is how many workers were busy on average.
	WorkSeconds float64 `json:"workSeconds"`
	// QueueSeconds is the time keys waited in the queue before a worker
	// took them, summed over the syncs.
	QueueSeconds   float64 `json:"queueSeconds"`
	ElapsedSeconds float64 `json:"elapsedSeconds"`
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
}

// Delete is the deletion of the N servers at the end.
type Delete struct {
	Done    bool    `json:"done"`
	Seconds float64 `json:"seconds"` // until the servers and their children were gone
	Left    int     `json:"left"`    // servers and children left at the timeout
}

// Log is what mindie-apiserver logged during the measurement.
type Log struct {
	SyncErrors    int      `json:"syncErrors"`    // "Syncing InferServer failed"
	ErrorLines    int      `json:"errorLines"`    // klog E lines
	Throttled     int      `json:"throttled"`     // "Waited before sending request"
	MaxThrottle   float64  `json:"maxThrottle"`   // longest such wait, seconds
	ErrorExamples []string `json:"errorExamples"` // a few distinct error lines
}

// Summary is the figures the documents lead with, derived from a
// measurement and the goals.
type Summary struct {
	// Ratio is ObservedSeconds over the baseline's SeenSeconds; zero when
	// not every status was observed.
	Ratio float64 `json:"ratio"`
	// ServersPerSecond is N over ObservedSeconds; zero when not every
	// status was observed.
	ServersPerSecond float64 `json:"serversPerSecond"`
	// PeakGrowthKiBPerServer is the peak VmRSS over the VmRSS before, per server.
	PeakGrowthKiBPerServer float64 `json:"peakGrowthKiBPerServer"`
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
	if m.Complete() && m.Reconcile.ObservedSeconds > 0 {
		s.ServersPerSecond = float64(m.N) / m.Reconcile.ObservedSeconds
		if m.Baseline.SeenSeconds > 0 {
			s.Ratio = m.Reconcile.ObservedSeconds / m.Baseline.SeenSeconds
		}
	}
	s.MeetsGoals = m.Complete() && s.Ratio > 0 && g.RatioMet(s.Ratio) && g.GrowthMet(s.PeakGrowthKiBPerServer)
	m.Summary = s
}

// RatioMet reports whether ratio is within the goal (or there is none).
func (g Goals) RatioMet(ratio float64) bool { return g.MaxRatio == 0 || ratio <= g.MaxRatio }

// GrowthMet reports whether the peak growth per server is within the goal
// (or there is none).
func (g Goals) GrowthMet(kib float64) bool {
	return g.MaxPeakGrowthKiBPerServer == 0 || kib <= g.MaxPeakGrowthKiBPerServer
}

// Derive sorts the measurements by N and computes their summaries.
func (r *Reconcile) Derive() {
	slices.SortFunc(r.Sizes, func(a, b Measurement) int { return a.N - b.N })
	for i := range r.Sizes {
		r.Sizes[i].derive(r.Goals)
	}
}

// Accepts reports, as an error, why measurements of run do not belong
// with the results: a run with other parameters measured them.
func (r *Reconcile) Accepts(run Run) error {
	if len(r.Sizes) > 0 && !r.Run.sameParameters(run) {
		return fmt.Errorf("the results hold a run with workers %d, baseline runs %d, timeout %gs and settle %gs; this one has %d, %d, %gs and %gs: write it to another file",
			r.Run.Workers, r.Run.BaselineRuns, r.Run.TimeoutSeconds, r.Run.SettleSeconds,
			run.Workers, run.BaselineRuns, run.TimeoutSeconds, run.SettleSeconds)
	}
	return nil
}

// Put adds m to the results of run, replacing a measurement of the same N.
// The results must be of a run with the same parameters (Accepts); the
// machine, the command and the goals become those of run and goals.
func (r *Reconcile) Put(run Run, goals Goals, m Measurement) error {
	if err := r.Accepts(run); err != nil {
		return err
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
	if r.Version != Version {
		return nil, fmt.Errorf("%s: version %d, want %d", path, r.Version, Version)
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

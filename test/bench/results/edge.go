package results

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"mindie.io/deployer/apis/infer/v1alpha1"
)

// EdgeVersion is the version of the EdgeDeployment benchmark's format.
const EdgeVersion = 1

// Edge is one run of the EdgeDeployment benchmark (test/bench/edgebench, run
// by hack/edge-bench.sh on a local cluster of its own with simulated edge
// nodes): one job deploying an app to every node, at most
// maxConcurrentNodes at a time, timed from its creation to status.phase
// Succeeded, read against a baseline measured in the same run: the same
// pods created directly, as fast as a client with the controllers' rate
// limits and many creators can, timed to every pod Running and Ready. Beside
// them, the resident memory of mindie-apiserver, which runs the controller
// and serves the job. The API servers, the scheduler, the controller
// manager and mindie-apiserver are the real ones; the nodes and the apps on
// them are ascend-sim's, so every time here is of the simulated world. The
// last run's is committed as docs/bench/edge.json; test/bench/report renders
// the "EdgeDeployment at 1,000 nodes" section of docs/benchmarks.md from it.
type Edge struct {
	Version int `json:"version"`
	// Run is how the benchmark ran and on what machine.
	Run   RouterRun `json:"run"`
	Goals EdgeGoals `json:"goals"`
	Setup EdgeSetup `json:"setup"`
	// Direct is the baseline: the job's pods created directly.
	Direct EdgeDirect `json:"direct"`
	// Job is the EdgeDeployment.
	Job EdgeJob `json:"job"`
	// Memory is mindie-apiserver's resident memory through the run.
	Memory EdgeMemory `json:"memory"`
	// Throttling is what the cluster's components logged of their own
	// clients holding requests back, from the baseline's start to the end
	// of the run.
	Throttling []EdgeThrottling `json:"throttling,omitempty"`
	// Note says what a reader of the numbers should know about this run,
	// and why it failed when it did.
	Note string `json:"note,omitempty"`
	// Summary is derived by Derive.
	Summary EdgeSummary `json:"summary"`
}

// EdgeGoals are what the job is held to.
type EdgeGoals struct {
	// MaxJobToDirectRatio bounds the job's time to Succeeded over the
	// direct creation's time to every pod Ready.
	MaxJobToDirectRatio float64 `json:"maxJobToDirectRatio"`
	// MaxRSSGrowthMiB bounds mindie-apiserver's peak VmRSS during the job
	// over its idle VmRSS.
	MaxRSSGrowthMiB float64 `json:"maxRSSGrowthMiB"`
	// Why says where each bound comes from.
	Why string `json:"why,omitempty"`
}

// EdgeSetup is the cluster, the job and how the benchmark measured.
type EdgeSetup struct {
	// Nodes simulated edge nodes (label mindie.io/edge=true), all of
	// Architecture, every one a target of the job.
	Nodes        int    `json:"nodes"`
	Architecture string `json:"architecture"`
	// MaxConcurrentNodes and InstancesPerNode of the job.
	MaxConcurrentNodes int `json:"maxConcurrentNodes"`
	InstancesPerNode   int `json:"instancesPerNode"`
	// Job is the EdgeDeployment, as YAML.
	Job string `json:"job"`
	// Creators create (and delete) the direct pods at once, through one
	// client limited to ClientQPS and ClientBurst: the limits
	// mindie-apiserver's controllers have towards kube-apiserver.
	Creators    int     `json:"creators"`
	ClientQPS   float64 `json:"clientQPS"`
	ClientBurst int     `json:"clientBurst"`
	// TimeoutSeconds bounds each wait (the job's spec.timeoutSeconds too).
	TimeoutSeconds int `json:"timeoutSeconds"`
	// SampleMillis is the time between samples of mindie-apiserver's
	// VmRSS, ProgressSeconds between progress points.
	SampleMillis    int     `json:"sampleMillis"`
	ProgressSeconds float64 `json:"progressSeconds"`
	// IdleSeconds is how long the idle memory was sampled before the
	// first phase, SettleSeconds how long after the job's pods were gone
	// the memory after deletion was read.
	IdleSeconds   float64 `json:"idleSeconds"`
	SettleSeconds float64 `json:"settleSeconds"`
}

// EdgeDirect is the baseline: one pod per node created directly, from the
// first create request. Times are seconds; 0 is "not seen".
type EdgeDirect struct {
	Pods int `json:"pods"`
	// CreatedSeconds: the last create answered; ScheduledSeconds: the last
	// pod seen bound to its node; ReadySeconds: every pod seen Running and
	// Ready, the figure the ratio divides by.
	CreatedSeconds   float64 `json:"createdSeconds"`
	ScheduledSeconds float64 `json:"scheduledSeconds"`
	ReadySeconds     float64 `json:"readySeconds"`
	// DeleteSeconds: from the first delete request to every pod gone from
	// the API.
	DeleteSeconds float64 `json:"deleteSeconds"`
	// PeakRSSMiB is mindie-apiserver's peak VmRSS meanwhile (it does not
	// cache these pods: a control).
	PeakRSSMiB float64        `json:"peakRSSMiB"`
	Progress   []EdgeProgress `json:"progress"`
}

// EdgeJob is the EdgeDeployment, from its create request. Times are
// seconds; 0 is "not seen".
type EdgeJob struct {
	// Phase is the status.phase it ended in; Targets, Succeeded, Failed and
	// TimedOut are its status.targets and counts then, NodesSucceeded the
	// entries of status.nodes in state Succeeded.
	Phase          string `json:"phase"`
	Targets        int    `json:"targets"`
	Succeeded      int    `json:"succeeded"`
	Failed         int    `json:"failed"`
	TimedOut       int    `json:"timedOut"`
	NodesSucceeded int    `json:"nodesSucceeded"`
	// FirstPodSeconds: its first pod seen; PodsReadySeconds: every pod of
	// the job seen Running and Ready; SucceededSeconds: status.phase seen
	// Succeeded, the figure the ratio divides.
	FirstPodSeconds  float64 `json:"firstPodSeconds"`
	PodsReadySeconds float64 `json:"podsReadySeconds"`
	SucceededSeconds float64 `json:"succeededSeconds"`
	// CompletionSeconds is status.completionTime less status.startTime, as
	// the controller recorded them (to the second).
	CompletionSeconds float64 `json:"completionSeconds"`
	// DeleteSeconds: from the delete request to the job and all its pods
	// gone from the API.
	DeleteSeconds float64 `json:"deleteSeconds"`
	// StatusBytes is the size of the job as JSON when it succeeded.
	StatusBytes int `json:"statusBytes"`
	// StatusWrites counts the status updates mindie-apiserver's audit log
	// recorded for the job, from creation to Succeeded, StatusConflicts
	// those refused for a conflict (-1: not counted).
	StatusWrites    int `json:"statusWrites"`
	StatusConflicts int `json:"statusConflicts"`
	// CPUSeconds is mindie-apiserver's CPU time (utime+stime) from the
	// create to Succeeded, DeleteCPUSeconds during the deletion.
	CPUSeconds       float64        `json:"cpuSeconds"`
	DeleteCPUSeconds float64        `json:"deleteCPUSeconds"`
	Progress         []EdgeProgress `json:"progress"`
}

// EdgeProgress is one point of a phase, seconds from its first request.
type EdgeProgress struct {
	Seconds float64 `json:"seconds"`
	// Pods seen so far, bound to a node, and Running and Ready.
	Pods      int `json:"pods"`
	Scheduled int `json:"scheduled"`
	Ready     int `json:"ready"`
	// The job's status.succeeded and status.running (nodes Deploying).
	NodesSucceeded int `json:"nodesSucceeded,omitempty"`
	NodesDeploying int `json:"nodesDeploying,omitempty"`
	// RSSMiB is mindie-apiserver's VmRSS then.
	RSSMiB float64 `json:"rssMiB"`
}

// EdgeMemory is mindie-apiserver's VmRSS, in MiB.
type EdgeMemory struct {
	// IdleMiB is the median over the idle samples, before the first phase.
	IdleMiB float64 `json:"idleMiB"`
	// PeakMiB is the peak from the job's create to its pods gone.
	PeakMiB float64 `json:"peakMiB"`
	// AfterMiB is read SettleSeconds after the job's pods were gone.
	AfterMiB float64 `json:"afterMiB"`
	// HWMMiB is VmHWM at the end: the peak over the process's life.
	HWMMiB float64 `json:"hwmMiB"`
	// Samples counts the samples taken.
	Samples int `json:"samples"`
}

// EdgeSimulator is the component name of ascend-sim in Throttling: the
// one client of every simulated kubelet.
const EdgeSimulator = "ascend-sim"

// EdgeThrottling is one component's client-side throttling, from its
// log: client-go logs a request its rate limiter held back over a second
// at most once every 10 s, so Lines is a sample (about how many 10 s
// stretches had such a wait), and the waits are those of the sampled
// requests.
type EdgeThrottling struct {
	Component         string  `json:"component"`
	Lines             int     `json:"lines"`
	MedianWaitSeconds float64 `json:"medianWaitSeconds"`
	MaxWaitSeconds    float64 `json:"maxWaitSeconds"`
}

// EdgeSummary is derived by Derive.
type EdgeSummary struct {
	// Ratio is the job's time to Succeeded over the direct pods' time to
	// all Ready (0 if either was not measured); RSSGrowthMiB the job's
	// peak over idle.
	Ratio        float64     `json:"ratio"`
	RSSGrowthMiB float64     `json:"rssGrowthMiB"`
	Goals        []GoalCheck `json:"goals"`
}

// ThrottlingOf returns the throttling of the named component, or nil.
func (r *Edge) ThrottlingOf(component string) *EdgeThrottling {
	for i := range r.Throttling {
		if r.Throttling[i].Component == component {
			return &r.Throttling[i]
		}
	}
	return nil
}

// The names of the goals Derive checks.
const (
	GoalEdgeTime   = "job: create → Succeeded / direct: first create → all Ready"
	GoalEdgeMemory = "mindie-apiserver: peak RSS during the job − idle RSS (MiB)"
)

// SucceededAll says the job ended Succeeded with each of the nodes a
// target that succeeded, in its counts and in its list of nodes.
func (j EdgeJob) SucceededAll(nodes int) bool {
	return j.Phase == string(v1alpha1.EdgePhaseSucceeded) && nodes > 0 && j.Targets == nodes && j.Succeeded == nodes && j.NodesSucceeded == nodes
}

// Derive computes the ratio, the memory growth and the goal checks. The
// time goal is measured when the direct pods all became Ready and the job
// succeeded on every node; the memory goal when the idle and the peak RSS
// were read.
func (r *Edge) Derive() {
	s := EdgeSummary{}
	timed := r.Direct.ReadySeconds > 0 && r.Job.SucceededSeconds > 0 && r.Job.SucceededAll(r.Setup.Nodes)
	if timed {
		s.Ratio = r.Job.SucceededSeconds / r.Direct.ReadySeconds
	}
	sized := r.Memory.IdleMiB > 0 && r.Memory.PeakMiB > 0
	if sized {
		s.RSSGrowthMiB = r.Memory.PeakMiB - r.Memory.IdleMiB
	}
	s.Goals = []GoalCheck{
		check(GoalEdgeTime, s.Ratio, r.Goals.MaxJobToDirectRatio, true, timed, true),
		// The memory is the real process's; only its load is simulated.
		check(GoalEdgeMemory, s.RSSGrowthMiB, r.Goals.MaxRSSGrowthMiB, true, sized, false),
	}
	r.Summary = s
}

// Validate says what in the results cannot be true.
func (r *Edge) Validate() error {
	var errs []error
	if r.Version != EdgeVersion {
		errs = append(errs, fmt.Errorf("version %d, want %d", r.Version, EdgeVersion))
	}
	if r.Setup.Nodes <= 0 {
		errs = append(errs, fmt.Errorf("setup.nodes %d: want at least 1", r.Setup.Nodes))
	}
	if r.Goals.MaxJobToDirectRatio <= 0 || r.Goals.MaxRSSGrowthMiB <= 0 {
		errs = append(errs, fmt.Errorf("goals: maxJobToDirectRatio %g and maxRSSGrowthMiB %g must be positive",
			r.Goals.MaxJobToDirectRatio, r.Goals.MaxRSSGrowthMiB))
	}
	most := r.Setup.Nodes * max(r.Setup.InstancesPerNode, 1)
	for _, c := range []struct {
		name    string
		n, most int
	}{
		{"job.targets", r.Job.Targets, r.Setup.Nodes}, {"job.succeeded", r.Job.Succeeded, r.Setup.Nodes},
		{"job.failed", r.Job.Failed, r.Setup.Nodes}, {"job.timedOut", r.Job.TimedOut, r.Setup.Nodes},
		{"job.nodesSucceeded", r.Job.NodesSucceeded, r.Setup.Nodes}, {"direct.pods", r.Direct.Pods, most},
	} {
		if c.n < 0 || c.n > c.most {
			errs = append(errs, fmt.Errorf("%s %d: want 0 to %d", c.name, c.n, c.most))
		}
	}
	for _, v := range []struct {
		name string
		v    float64
	}{
		{"direct.readySeconds", r.Direct.ReadySeconds}, {"direct.deleteSeconds", r.Direct.DeleteSeconds},
		{"job.succeededSeconds", r.Job.SucceededSeconds}, {"job.deleteSeconds", r.Job.DeleteSeconds},
		{"memory.idleMiB", r.Memory.IdleMiB}, {"memory.peakMiB", r.Memory.PeakMiB}, {"memory.afterMiB", r.Memory.AfterMiB},
	} {
		if v.v < 0 {
			errs = append(errs, fmt.Errorf("%s %g: negative", v.name, v.v))
		}
	}
	return errors.Join(errs...)
}

// LoadEdge reads an EdgeDeployment benchmark's results, checks them and
// derives the summary.
func LoadEdge(path string) (*Edge, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Edge
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r.Derive()
	return &r, nil
}

// Save derives the summary and writes the results to path, through a
// temporary file. Results that cannot be true are not written.
func (r *Edge) Save(path string) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("results for %s: %w", path, err)
	}
	r.Derive()
	return saveJSON(path, r)
}

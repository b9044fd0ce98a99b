package results

import (
	"encoding/json"
	"fmt"
	"os"
)

// ScaleCheckVersion is the version of the scale check's format.
const ScaleCheckVersion = 1

// ScaleCheck is one run of the scale check (hack/scale-check.sh): a local
// cluster of its own with simulated Ascend nodes, one ascend-sim process
// playing kubelet for all of them, and Deployments of pods that ask for no
// NPU, each running a MindIE Server simulator behind a readinessProbe. It
// records the time until every pod was Ready and what each process of the
// cluster used meanwhile, sampled from /proc. test/bench/scalecheck writes
// it from the samples the script keeps; the last run's is committed as
// docs/bench/scale-check.json.
type ScaleCheck struct {
	Version int `json:"version"`
	// Run is how the check ran and on what machine.
	Run ScaleRun `json:"run"`
	// Nodes is how the simulated nodes came up.
	Nodes ScaleNodes `json:"nodes"`
	// Pods is how far the pods got.
	Pods ScalePods `json:"pods"`
	// Processes is what each process of the cluster used, in the order the
	// documents list them.
	Processes []ProcessUsage `json:"processes"`
	// Simulator is what ascend-sim logged during the run.
	Simulator SimulatorLog `json:"simulator"`
	// Progress is the nodes and pods at each poll after the apply.
	Progress []PodProgress `json:"progress"`
	// Summary is derived from the rest by Derive.
	Summary ScaleSummary `json:"summary"`
}

// ScaleRun is the parameters of a run and the machine it ran on.
type ScaleRun struct {
	// Date is when the wait for the pods ended (RFC 3339, UTC).
	Date string `json:"date"`
	// CPU is the model name of /proc/cpuinfo, CPUs what nproc counted.
	CPU  string `json:"cpu"`
	CPUs int    `json:"cpus"`
	// MemTotalKiB is MemTotal of /proc/meminfo.
	MemTotalKiB int64 `json:"memTotalKiB"`
	// Nodes is how many simulated nodes ascend-sim registers.
	Nodes int `json:"nodes"`
	// Deployments of Replicas pods each are created at once.
	Deployments int `json:"deployments"`
	Replicas    int `json:"replicas"`
	// NodeTimeoutSeconds bounds the wait for every node to be Ready,
	// ReadyTimeoutSeconds the wait for every pod.
	NodeTimeoutSeconds  float64 `json:"nodeTimeoutSeconds"`
	ReadyTimeoutSeconds float64 `json:"readyTimeoutSeconds"`
	// SampleEverySeconds is the time between /proc samples,
	// PollEverySeconds between polls of the pods' progress.
	SampleEverySeconds float64 `json:"sampleEverySeconds"`
	PollEverySeconds   float64 `json:"pollEverySeconds"`
	// Note says anything a reader of the numbers should know, such as
	// figures a converted results file could not recover.
	Note string `json:"note,omitempty"`
}

// Pods is how many pods the Deployments ask for.
func (r ScaleRun) Pods() int { return r.Deployments * r.Replicas }

// ScaleNodes is how the simulated nodes came up. Seconds count from when
// hack/local-up.sh returned.
type ScaleNodes struct {
	// LocalUpTimeouts counts the nodes hack/local-up.sh gave up waiting
	// for (its own bound) before the check went on.
	LocalUpTimeouts int `json:"localUpTimeouts"`
	// AllReadySeconds is when every node was Ready at once; nil when that
	// did not happen within NodeTimeoutSeconds.
	AllReadySeconds *float64 `json:"allReadySeconds,omitempty"`
	// MaxReady is the most nodes Ready at one poll, until the end of the
	// wait for the pods; ReadyAtEnd those Ready at its end.
	MaxReady   int `json:"maxReady"`
	ReadyAtEnd int `json:"readyAtEnd"`
}

// ScalePods is how far the pods got. Seconds count from the apply of the
// Deployments.
type ScalePods struct {
	// AllReadySeconds is when every pod was Ready; nil when that did not
	// happen within ReadyTimeoutSeconds.
	AllReadySeconds *float64 `json:"allReadySeconds,omitempty"`
	// ReadyAtEnd is the Deployments' ready replicas at the end of the wait.
	ReadyAtEnd int `json:"readyAtEnd"`
	// States counts the pods at the end by "<phase> Ready=<status of the
	// Ready condition>"; Unscheduled those with no node.
	States      map[string]int `json:"states"`
	Unscheduled int            `json:"unscheduled"`
}

// ProcessUsage is what one process used: VmRSS and utime+stime from
// /proc, sampled every SampleEverySeconds from before the cluster came up
// until a sample after the wait for the pods ended.
type ProcessUsage struct {
	Name string `json:"name"`
	// PeakRSSKiB is the highest VmRSS sampled.
	PeakRSSKiB int64 `json:"peakRSSKiB"`
	// ApplyRSSKiB is the VmRSS of the last sample before the apply,
	// EndRSSKiB of the last before the end of the wait; zero when there
	// was none.
	ApplyRSSKiB int64 `json:"applyRSSKiB"`
	EndRSSKiB   int64 `json:"endRSSKiB"`
	// CPUSeconds is the CPU time from the process's start to the last
	// sample; ApplyToEndCPUSeconds from the last sample before the apply.
	CPUSeconds           float64 `json:"cpuSeconds"`
	ApplyToEndCPUSeconds float64 `json:"applyToEndCPUSeconds"`
	// Samples counts the samples of the process.
	Samples int `json:"samples"`
}

// SimulatorLog is what ascend-sim logged during the run, in lines.
type SimulatorLog struct {
	// Started counts the pods it started, ContainersReady the containers
	// it saw pass their readiness probe.
	Started         int `json:"started"`
	ContainersReady int `json:"containersReady"`
	// FailedCalls counts lines reporting a failed or retried API call.
	FailedCalls int `json:"failedCalls"`
	// Throttled counts requests its client held back over a second for
	// client-side throttling (client-go logs those), MaxThrottleSeconds
	// the longest wait.
	Throttled          int     `json:"throttled"`
	MaxThrottleSeconds float64 `json:"maxThrottleSeconds"`
	// LostStatusWrites counts status writes that gave up when the rate
	// limiter's wait passed their deadline.
	LostStatusWrites int `json:"lostStatusWrites"`
}

// PodProgress is the nodes and pods at one poll, T seconds after the apply.
type PodProgress struct {
	T          float64 `json:"t"`
	ReadyNodes int     `json:"readyNodes"`
	Created    int     `json:"created"`
	Ready      int     `json:"ready"`
}

// ScaleSummary is the figures the document leads with, derived from the
// rest.
type ScaleSummary struct {
	// Pods is Deployments × Replicas.
	Pods int `json:"pods"`
	// ApplyToEndSeconds is the time of the last poll: from the apply to
	// the end of the wait.
	ApplyToEndSeconds float64 `json:"applyToEndSeconds"`
	// PeakRSSKiB is the sum of the processes' peaks (which overstates the
	// peak of the sum); CPUSeconds and ApplyToEndCPUSeconds the sums of
	// their CPU times.
	PeakRSSKiB           int64   `json:"peakRSSKiB"`
	CPUSeconds           float64 `json:"cpuSeconds"`
	ApplyToEndCPUSeconds float64 `json:"applyToEndCPUSeconds"`
	// CPUSecondsPerPod is ApplyToEndCPUSeconds over the pods.
	CPUSecondsPerPod float64 `json:"cpuSecondsPerPod"`
	// Cores is ApplyToEndCPUSeconds over ApplyToEndSeconds: how many CPUs
	// the processes kept busy on average.
	Cores float64 `json:"cores"`
	// Busiest is the process with the most CPU time from the apply to the end.
	Busiest string `json:"busiest"`
	// SimulatorGrowthKiBPerPod is ascend-sim's VmRSS at the end over its
	// VmRSS at the apply, per pod it started.
	SimulatorGrowthKiBPerPod float64 `json:"simulatorGrowthKiBPerPod"`
}

// SimulatorName is ascend-sim's name among the processes.
const SimulatorName = "ascend-sim"

// Process is the usage of the process named name, or nil.
func (s *ScaleCheck) Process(name string) *ProcessUsage {
	for i := range s.Processes {
		if s.Processes[i].Name == name {
			return &s.Processes[i]
		}
	}
	return nil
}

// Derive computes the summary.
func (s *ScaleCheck) Derive() {
	sum := ScaleSummary{Pods: s.Run.Pods()}
	if n := len(s.Progress); n > 0 {
		sum.ApplyToEndSeconds = s.Progress[n-1].T
	}
	var busiest float64
	for _, p := range s.Processes {
		sum.PeakRSSKiB += p.PeakRSSKiB
		sum.CPUSeconds += p.CPUSeconds
		sum.ApplyToEndCPUSeconds += p.ApplyToEndCPUSeconds
		if sum.Busiest == "" || p.ApplyToEndCPUSeconds > busiest {
			sum.Busiest, busiest = p.Name, p.ApplyToEndCPUSeconds
		}
	}
	if sum.Pods > 0 {
		sum.CPUSecondsPerPod = sum.ApplyToEndCPUSeconds / float64(sum.Pods)
	}
	if sum.ApplyToEndSeconds > 0 {
		sum.Cores = sum.ApplyToEndCPUSeconds / sum.ApplyToEndSeconds
	}
	if sim := s.Process(SimulatorName); sim != nil {
		sum.SimulatorGrowthKiBPerPod = float64(sim.EndRSSKiB-sim.ApplyRSSKiB) / float64(max(s.Simulator.Started, 1))
	}
	s.Summary = sum
}

// LoadScaleCheck reads a scale check's results and derives their summary.
func LoadScaleCheck(path string) (*ScaleCheck, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s ScaleCheck
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if s.Version != ScaleCheckVersion {
		return nil, fmt.Errorf("%s: version %d, want %d", path, s.Version, ScaleCheckVersion)
	}
	s.Derive()
	return &s, nil
}

// Save derives the summary and writes the results to path, through a
// temporary file so that a reader never sees half of them.
func (s *ScaleCheck) Save(path string) error {
	s.Version = ScaleCheckVersion
	s.Derive()
	return saveJSON(path, s)
}

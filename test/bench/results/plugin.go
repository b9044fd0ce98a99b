package results

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
)

// PluginVersion is the version of the plugin benchmark's format.
const PluginVersion = 1

// Plugin is one run of the plugin benchmark (test/bench/pluginbench, run by
// hack/plugin-bench.sh on a local cluster of its own with simulated Ascend
// nodes): the wall time of the real `kubectl mindie` binary, run as a user
// runs it, on a large InferServer and on many, each beside a plain kubectl
// command that reads the same objects, timed in the same run:
//
//   - Status: `kubectl mindie status NAME` of one InferServer with many
//     ready single-NPU instances, against `kubectl get pods -l <its
//     selector> -o json`;
//   - Get: `kubectl mindie get` of a namespace of many InferServers,
//     against `kubectl get inferservers` of the same namespace.
//
// The last run's is committed as docs/bench/plugin.json; test/bench/report
// renders the "Plugin at scale" section of docs/benchmarks.md from it.
type Plugin struct {
	Version int `json:"version"`
	// Run is how the benchmark ran and on what machine.
	Run   RouterRun   `json:"run"`
	Goals PluginGoals `json:"goals"`
	Setup PluginSetup `json:"setup"`
	// Status and Get are the two comparisons; nil when not measured.
	Status *PluginComparison `json:"status,omitempty"`
	Get    *PluginComparison `json:"get,omitempty"`
	// Summary is derived by Derive.
	Summary PluginSummary `json:"summary"`
}

// PluginGoals bound the medians: each command's wall time, and its ratio
// to the baseline beside it.
type PluginGoals struct {
	StatusSeconds float64 `json:"statusSeconds"`
	StatusRatio   float64 `json:"statusRatio"`
	GetSeconds    float64 `json:"getSeconds"`
	GetRatio      float64 `json:"getRatio"`
	// Why says where each bound comes from.
	Why string `json:"why,omitempty"`
}

// PluginSetup is the cluster and the InferServers the commands read.
type PluginSetup struct {
	// Nodes simulated nodes of NPUsPerNode chips each.
	Nodes       int `json:"nodes"`
	NPUsPerNode int `json:"npusPerNode"`
	// Instances is the spec.replicas of the server status shows, all of
	// them ready when it is timed; StatusServer is that server as YAML.
	Instances    int    `json:"instances"`
	StatusServer string `json:"statusServer"`
	// Servers is how many InferServers get lists, each created as
	// ListServer (YAML), all observed by the controller when it is timed.
	Servers    int    `json:"servers"`
	ListServer string `json:"listServer"`
	// Runs is how many timed runs each command had, after one untimed
	// run that fills kubectl's discovery cache.
	Runs int `json:"runs"`
	// ReadySeconds is how long the status server took from its create to
	// every instance ready; ObservedSeconds how long the listed servers
	// took from the first create to every status observed.
	ReadySeconds    float64 `json:"readySeconds"`
	ObservedSeconds float64 `json:"observedSeconds"`
	// Kubectl is `kubectl version --client`'s client version.
	Kubectl string `json:"kubectl,omitempty"`
	// Note says what a reader of the numbers should know about this run.
	Note string `json:"note,omitempty"`
}

// PluginComparison is one command of the plugin against its baseline,
// their runs interleaved (measured, baseline, measured, ...).
type PluginComparison struct {
	Measured PluginCommand `json:"measured"`
	Baseline PluginCommand `json:"baseline"`
	// Ratio is the measured median over the baseline's, derived by
	// Derive (0 when either was not measured).
	Ratio float64 `json:"ratio"`
}

// PluginCommand is one command line and its timed runs.
type PluginCommand struct {
	// Command is the command line as a user types it, names filled in.
	Command string `json:"command"`
	// Seconds is the wall time of each run, from the process's start to
	// its exit; CPUSeconds the user and system CPU time of the process
	// and its children (kubectl's plugin runs as a child of kubectl).
	Seconds    []float64 `json:"seconds"`
	CPUSeconds []float64 `json:"cpuSeconds"`
	// OutputBytes and OutputLines are what the last run printed.
	OutputBytes int `json:"outputBytes"`
	OutputLines int `json:"outputLines"`
	// Requests are the API requests of one more run at -v=6, as
	// "METHOD path?query code" in the order they were sent.
	Requests []string `json:"requests,omitempty"`
	// Derived by Derive.
	MedianSeconds    float64 `json:"medianSeconds"`
	MinSeconds       float64 `json:"minSeconds"`
	MaxSeconds       float64 `json:"maxSeconds"`
	MedianCPUSeconds float64 `json:"medianCPUSeconds"`
}

// PluginSummary is the goal checks, derived by Derive.
type PluginSummary struct {
	Goals []GoalCheck `json:"goals"`
}

// The names of the goals Derive checks, the first of each pair with the
// instance count, the second with the server count.
const (
	GoalPluginStatus      = "`kubectl mindie status` of a %d-instance InferServer"
	GoalPluginStatusRatio = "`kubectl mindie status` / `kubectl get pods -o json` of its %d pods"
	GoalPluginGet         = "`kubectl mindie get` of %d InferServers"
	GoalPluginGetRatio    = "`kubectl mindie get` / `kubectl get inferservers` of %d InferServers"
)

func (c *PluginCommand) derive() {
	c.MedianSeconds = Median(c.Seconds)
	c.MedianCPUSeconds = Median(c.CPUSeconds)
	c.MinSeconds, c.MaxSeconds = 0, 0
	if len(c.Seconds) > 0 {
		c.MinSeconds, c.MaxSeconds = slices.Min(c.Seconds), slices.Max(c.Seconds)
	}
}

func (c *PluginComparison) derive() {
	c.Measured.derive()
	c.Baseline.derive()
	c.Ratio = 0
	if c.Measured.MedianSeconds > 0 && c.Baseline.MedianSeconds > 0 {
		c.Ratio = c.Measured.MedianSeconds / c.Baseline.MedianSeconds
	}
}

// comparisonGoals are the two checks of a comparison: its median within
// seconds, its ratio within ratio. A missing comparison has both, not
// measured.
func comparisonGoals(c *PluginComparison, timeName, ratioName string, seconds, ratio float64) []GoalCheck {
	if c == nil {
		return []GoalCheck{check(timeName, 0, seconds, true, false, false), check(ratioName, 0, ratio, true, false, false)}
	}
	c.derive()
	return []GoalCheck{
		check(timeName, c.Measured.MedianSeconds, seconds, true, c.Measured.MedianSeconds > 0, false),
		check(ratioName, c.Ratio, ratio, true, c.Ratio > 0, false),
	}
}

// Derive computes each command's medians, the ratios and the goal checks.
func (r *Plugin) Derive() {
	var goals []GoalCheck
	goals = append(goals, comparisonGoals(r.Status, fmt.Sprintf(GoalPluginStatus, r.Setup.Instances),
		fmt.Sprintf(GoalPluginStatusRatio, r.Setup.Instances), r.Goals.StatusSeconds, r.Goals.StatusRatio)...)
	goals = append(goals, comparisonGoals(r.Get, fmt.Sprintf(GoalPluginGet, r.Setup.Servers),
		fmt.Sprintf(GoalPluginGetRatio, r.Setup.Servers), r.Goals.GetSeconds, r.Goals.GetRatio)...)
	r.Summary = PluginSummary{Goals: goals}
}

// LoadPlugin reads a plugin benchmark's results and derives its summary.
func LoadPlugin(path string) (*Plugin, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Plugin
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.Version != PluginVersion {
		return nil, fmt.Errorf("%s: version %d, want %d", path, r.Version, PluginVersion)
	}
	r.Derive()
	return &r, nil
}

// Save derives the summary and writes the results to path, through a
// temporary file.
func (r *Plugin) Save(path string) error {
	r.Derive()
	return saveJSON(path, r)
}

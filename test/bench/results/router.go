package results

import (
	"encoding/json"
	"fmt"
	"os"
)

// RouterVersion is the version of the router benchmark's format.
const RouterVersion = 1

// The algorithms the routing-quality runs compare, as the router names them.
const (
	AlgorithmCacheAffinity = "cache_affinity"
	AlgorithmLeastLoad     = "least_load"
	AlgorithmRoundRobin    = "round_robin"
)

// Router is one run of the router benchmark (test/bench/routerbench): the
// router's overhead against an instance reached directly, and its routing
// quality on simulated MindIE Server instances against round_robin, every
// figure beside a baseline measured in the same run. The last run's is
// committed as docs/bench/router.json; test/bench/report renders the
// "Router" section of docs/benchmarks.md from it.
type Router struct {
	Version int           `json:"version"`
	Run     RouterRun     `json:"run"`
	Goals   RouterGoals   `json:"goals"`
	Over    Overhead      `json:"overhead"`
	Quality Quality       `json:"quality"`
	Summary RouterVerdict `json:"summary"`
}

// RouterRun is how the benchmark ran and on what machine.
type RouterRun struct {
	// Date is when the run ended (RFC 3339, UTC).
	Date    string `json:"date"`
	Command string `json:"command"`
	Go      string `json:"go"`
	CPU     string `json:"cpu"`
	CPUs    int    `json:"cpus"`
	// WallSeconds is how long the whole run took.
	WallSeconds float64 `json:"wallSeconds"`
	// Note says anything a reader of the numbers should know.
	Note string `json:"note,omitempty"`
}

// RouterGoals are what the figures are held to.
type RouterGoals struct {
	// At GoalRate requests/s, the router may add at most MaxAddedP50Ms and
	// MaxAddedP99Ms to the latency of an instance that answers at once.
	GoalRate      float64 `json:"goalRate"`
	MaxAddedP50Ms float64 `json:"maxAddedP50Ms"`
	MaxAddedP99Ms float64 `json:"maxAddedP99Ms"`
	// On the chat trace, round_robin's TTFT p90 over cache_affinity's is at
	// least MinTTFTP90Speedup, and cache_affinity's hit rate at least
	// MinHitRateOfOracle of the oracle's.
	MinTTFTP90Speedup  float64 `json:"minTTFTP90Speedup"`
	MinHitRateOfOracle float64 `json:"minHitRateOfOracle"`
	// On the no-reuse trace, cache_affinity's TTFT p90 over round_robin's
	// is at most MaxNoReuseRatio.
	MaxNoReuseRatio float64 `json:"maxNoReuseRatio"`
}

// Overhead is the router's cost in front of a backend that answers at once.
type Overhead struct {
	// Backend says what answered: the same one directly and through the
	// router.
	Backend string `json:"backend"`
	// Algorithm is the router's algorithm in these runs.
	Algorithm string `json:"algorithm"`
	// MaxInFlight bounds an open-loop run's requests in flight: one that
	// would exceed it is not sent and counts as failed.
	MaxInFlight int `json:"maxInFlight"`
	// Loads are open-loop runs at a fixed arrival rate, one per prompt size
	// and rate.
	Loads []OverheadLoad `json:"loads"`
	// Capacity is the most requests/s, one per prompt size.
	Capacity []OverheadCapacity `json:"capacity"`
}

// OverheadLoad is one open-loop run: requests sent at a fixed rate for a
// bounded time, straight to the backend (Direct) and through the router
// (Routed), one after the other.
type OverheadLoad struct {
	PromptBytes int     `json:"promptBytes"`
	Rate        float64 `json:"rate"`
	Seconds     float64 `json:"seconds"`
	Direct      Latency `json:"direct"`
	Routed      Latency `json:"routed"`
	// AddedP50Ms and AddedP99Ms are Routed's percentiles less Direct's.
	AddedP50Ms float64 `json:"addedP50Ms"`
	AddedP99Ms float64 `json:"addedP99Ms"`
	// RouterCPUMicros is the process CPU per answered request of the routed
	// run less the direct run's: what the router spent on each.
	RouterCPUMicros float64 `json:"routerCPUMicros"`
}

// Latency is what one side of a run measured. Latencies run from the
// request's planned send time to the end of its answer.
type Latency struct {
	Requests int     `json:"requests"`
	Failed   int     `json:"failed"`
	P50Ms    float64 `json:"p50Ms"`
	P90Ms    float64 `json:"p90Ms"`
	P99Ms    float64 `json:"p99Ms"`
	MaxMs    float64 `json:"maxMs"`
	// Achieved is the requests answered per second of the run.
	Achieved float64 `json:"achieved"`
	// CPUSeconds is the process's CPU time (user and system) over the run:
	// load generator, backend and, when routed, router.
	CPUSeconds float64 `json:"cpuSeconds"`
}

// OverheadCapacity is a closed loop of Concurrency clients for a bounded
// time, directly and through the router.
type OverheadCapacity struct {
	PromptBytes int     `json:"promptBytes"`
	Concurrency int     `json:"concurrency"`
	Seconds     float64 `json:"seconds"`
	DirectRate  float64 `json:"directRate"`
	RoutedRate  float64 `json:"routedRate"`
	DirectCPU   float64 `json:"directCPUSeconds"`
	RoutedCPU   float64 `json:"routedCPUSeconds"`
	Failed      int     `json:"failed"`
	// RouterCPUMicros is the routed run's CPU per request less the direct
	// run's.
	RouterCPUMicros float64 `json:"routerCPUMicros"`
}

// Quality is the routing-quality runs: four simulated instances, each
// trace run once per algorithm on fresh instances and a fresh router.
type Quality struct {
	Simulator SimulatorSetup `json:"simulator"`
	// Router lists the router's settings that are not its defaults.
	Router string        `json:"router"`
	Traces []TraceResult `json:"traces"`
}

// SimulatorSetup is the simulated instances' configuration. Every figure
// of the quality runs is simulated.
type SimulatorSetup struct {
	Instances int `json:"instances"`
	// TimeScale multiplies the simulator's default timings (and the
	// traces' times): 1 is docs/simulator.md's defaults.
	TimeScale              float64 `json:"timeScale"`
	PrefillPerTokenMicros  float64 `json:"prefillPerTokenMicros"`
	DecodePerTokenMs       float64 `json:"decodePerTokenMs"`
	DecodePerBatchedMicros float64 `json:"decodePerBatchedRequestMicros"`
	BlockSize              int     `json:"blockSize"`
	CacheBlocks            int     `json:"cacheBlocks"`
	MaxBatch               int     `json:"maxBatch"`
	MaxInputTokens         int     `json:"maxInputTokens"`
	Why                    string  `json:"why"`
}

// TraceShape describes a generated trace: its parameters (the generator's
// input) and what they produced.
type TraceShape struct {
	Name string `json:"name"`
	Seed uint64 `json:"seed"`
	// Sessions users start as a Poisson process of SessionsPerSecond.
	Sessions          int     `json:"sessions"`
	SessionsPerSecond float64 `json:"sessionsPerSecond"`
	// Groups of users share a system prompt of SystemTokens; 0: none.
	Groups       int `json:"groups"`
	SystemTokens int `json:"systemTokens"`
	// Each session has TurnsMin–TurnsMax turns, uniformly.
	TurnsMin int `json:"turnsMin"`
	TurnsMax int `json:"turnsMax"`
	// A user message has UserTokensMin–UserTokensMax tokens, an answer
	// (max_tokens) AnswerTokensMin–AnswerTokensMax, uniformly.
	UserTokensMin   int `json:"userTokensMin"`
	UserTokensMax   int `json:"userTokensMax"`
	AnswerTokensMin int `json:"answerTokensMin"`
	AnswerTokensMax int `json:"answerTokensMax"`
	// ThinkMeanSeconds is the mean of the exponential wait between an
	// answer's end and the user's next turn.
	ThinkMeanSeconds float64 `json:"thinkMeanSeconds"`

	// What the generator produced: requests, their prompt tokens, and the
	// oracle's shared tokens (leading full blocks an earlier prompt had)
	// and hit rate; PlannedSeconds is the last request's planned send time
	// with answers taking no time.
	Requests           int     `json:"requests"`
	PromptTokens       int64   `json:"promptTokens"`
	OracleSharedTokens int64   `json:"oracleSharedTokens"`
	OracleHitRate      float64 `json:"oracleHitRate"`
	PlannedSeconds     float64 `json:"plannedSeconds"`
}

// TraceResult is one trace and its run under each algorithm.
type TraceResult struct {
	Shape TraceShape `json:"shape"`
	// WarmupRequests is how many requests, in the order sent, the runs'
	// TTFTP90AfterWarmupMs leaves out: the router's reuse window
	// (--affinity-hit-window).
	WarmupRequests int            `json:"warmupRequests"`
	Runs           []AlgorithmRun `json:"runs"`
}

// Run returns the run of an algorithm, or nil.
func (t *TraceResult) Run(algorithm string) *AlgorithmRun {
	for i := range t.Runs {
		if t.Runs[i].Algorithm == algorithm {
			return &t.Runs[i]
		}
	}
	return nil
}

// AlgorithmRun is a trace run through the router with one algorithm.
type AlgorithmRun struct {
	Algorithm string `json:"algorithm"`
	// Requests sent, and those that failed (an error status, a broken
	// stream, or no answer by the run's deadline).
	Requests int `json:"requests"`
	Failed   int `json:"failed"`
	// Tokens of the answered requests, from their usage: prompt, found in
	// the prefix cache (cached_tokens), generated.
	PromptTokens     int64 `json:"promptTokens"`
	CachedTokens     int64 `json:"cachedTokens"`
	CompletionTokens int64 `json:"completionTokens"`
	// HitRate is CachedTokens over PromptTokens.
	HitRate float64 `json:"hitRate"`
	// TTFT is from sending a request to its first token, through the router.
	TTFTP50Ms float64 `json:"ttftP50Ms"`
	TTFTP90Ms float64 `json:"ttftP90Ms"`
	TTFTP99Ms float64 `json:"ttftP99Ms"`
	// TTFTP90AfterWarmupMs is the TTFT p90 of the requests sent after the
	// first WarmupRequests: what cache_affinity does once its reuse
	// detector has seen a full window of chats.
	TTFTP90AfterWarmupMs float64 `json:"ttftP90AfterWarmupMs"`
	// Seconds is from the first request sent to the last answer's end;
	// OutputTokensPerSecond is CompletionTokens over it.
	Seconds               float64 `json:"seconds"`
	OutputTokensPerSecond float64 `json:"outputTokensPerSecond"`
	// PerInstance is the requests each instance answered, and
	// Preemptions and EvictedBlocks the simulators' totals.
	PerInstance   []int  `json:"perInstance"`
	Preemptions   uint64 `json:"preemptions"`
	EvictedBlocks uint64 `json:"evictedBlocks"`
	// MaxWaiting is the longest queue any instance had at a sample (every
	// 100 ms of wall time).
	MaxWaiting int `json:"maxWaiting"`
}

// RouterVerdict is each goal's figure and whether it was met, derived
// from the rest by Derive.
type RouterVerdict struct {
	Goals []GoalCheck `json:"goals"`
}

// GoalCheck is one goal: the figure, its bound and whether it holds.
type GoalCheck struct {
	Name string `json:"name"`
	// Value and Bound are the figure and the goal; AtMost: Value ≤ Bound
	// meets it, else Value ≥ Bound does.
	Value    float64 `json:"value"`
	Bound    float64 `json:"bound"`
	AtMost   bool    `json:"atMost"`
	Measured bool    `json:"measured"`
	Met      bool    `json:"met"`
	// Simulated: the figure comes from the simulator.
	Simulated bool `json:"simulated"`
}

func check(name string, value, bound float64, atMost, measured, simulated bool) GoalCheck {
	met := measured && ((atMost && value <= bound) || (!atMost && value >= bound))
	return GoalCheck{Name: name, Value: value, Bound: bound, AtMost: atMost, Measured: measured, Met: met, Simulated: simulated}
}

// The names of the goals Derive checks.
const (
	GoalAddedP50            = "added latency p50, %d KiB prompts at %g/s"
	GoalAddedP99            = "added latency p99, %d KiB prompts at %g/s"
	GoalChatTTFTSpeedup     = "chat: round_robin TTFT p90 / cache_affinity TTFT p90"
	GoalChatHitOfOracle     = "chat: cache_affinity hit rate / oracle"
	GoalNoReuseTTFTRatio    = "no-reuse: cache_affinity TTFT p90 / round_robin TTFT p90"
	TraceChat, TraceNoReuse = "chat", "no-reuse"
)

// Trace returns the result of the named trace, or nil.
func (r *Router) Trace(name string) *TraceResult {
	for i := range r.Quality.Traces {
		if r.Quality.Traces[i].Shape.Name == name {
			return &r.Quality.Traces[i]
		}
	}
	return nil
}

// Derive computes the overhead runs' differences and the goal checks. The
// added latency goals hold for every prompt size measured at the goal rate.
func (r *Router) Derive() {
	for i := range r.Over.Loads {
		l := &r.Over.Loads[i]
		l.AddedP50Ms = l.Routed.P50Ms - l.Direct.P50Ms
		l.AddedP99Ms = l.Routed.P99Ms - l.Direct.P99Ms
		routed, direct := l.Routed.Requests-l.Routed.Failed, l.Direct.Requests-l.Direct.Failed
		if routed > 0 && direct > 0 {
			l.RouterCPUMicros = (l.Routed.CPUSeconds/float64(routed) - l.Direct.CPUSeconds/float64(direct)) * 1e6
		}
	}
	for i := range r.Over.Capacity {
		c := &r.Over.Capacity[i]
		if c.RoutedRate > 0 && c.DirectRate > 0 && c.Seconds > 0 {
			c.RouterCPUMicros = (c.RoutedCPU/(c.RoutedRate*c.Seconds) - c.DirectCPU/(c.DirectRate*c.Seconds)) * 1e6
		}
	}
	var v RouterVerdict
	for _, l := range r.Over.Loads {
		if l.Rate != r.Goals.GoalRate {
			continue
		}
		measured := l.Routed.Requests > 0 && l.Direct.Requests > 0
		v.Goals = append(v.Goals,
			check(fmt.Sprintf(GoalAddedP50, l.PromptBytes/1024, l.Rate), l.AddedP50Ms, r.Goals.MaxAddedP50Ms, true, measured, false),
			check(fmt.Sprintf(GoalAddedP99, l.PromptBytes/1024, l.Rate), l.AddedP99Ms, r.Goals.MaxAddedP99Ms, true, measured, false))
	}
	speedup, hit, noReuse := 0.0, 0.0, 0.0
	okSpeedup, okHit, okNoReuse := false, false, false
	if t := r.Trace(TraceChat); t != nil {
		ca, rr := t.Run(AlgorithmCacheAffinity), t.Run(AlgorithmRoundRobin)
		if ca != nil && rr != nil && ca.TTFTP90Ms > 0 {
			speedup, okSpeedup = rr.TTFTP90Ms/ca.TTFTP90Ms, true
		}
		if ca != nil && t.Shape.OracleHitRate > 0 {
			hit, okHit = ca.HitRate/t.Shape.OracleHitRate, true
		}
	}
	if t := r.Trace(TraceNoReuse); t != nil {
		ca, rr := t.Run(AlgorithmCacheAffinity), t.Run(AlgorithmRoundRobin)
		if ca != nil && rr != nil && rr.TTFTP90Ms > 0 {
			noReuse, okNoReuse = ca.TTFTP90Ms/rr.TTFTP90Ms, true
		}
	}
	v.Goals = append(v.Goals,
		check(GoalChatTTFTSpeedup, speedup, r.Goals.MinTTFTP90Speedup, false, okSpeedup, true),
		check(GoalChatHitOfOracle, hit, r.Goals.MinHitRateOfOracle, false, okHit, true),
		check(GoalNoReuseTTFTRatio, noReuse, r.Goals.MaxNoReuseRatio, true, okNoReuse, true))
	r.Summary = v
}

// LoadRouter reads a router benchmark's results and derives its summary.
func LoadRouter(path string) (*Router, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Router
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.Version != RouterVersion {
		return nil, fmt.Errorf("%s: version %d, want %d", path, r.Version, RouterVersion)
	}
	r.Derive()
	return &r, nil
}

// Save derives the summary and writes the results to path, through a
// temporary file.
func (r *Router) Save(path string) error {
	r.Derive()
	return saveJSON(path, r)
}

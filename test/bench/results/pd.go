package results

import (
	"encoding/json"
	"fmt"
	"os"
)

// PDVersion is the version of the Prefill/Decode benchmark's format.
const PDVersion = 1

// PD is one run of the Prefill/Decode benchmark (test/bench/pdbench): the
// same simulated NPUs serving one long-prompt trace through mindie-router,
// first as instances without roles (the baseline), then as prefill and
// decode instances in PD mode, in one or more P:D layouts. Every figure of
// it comes from the MindIE Server simulator's timing model, not from an
// NPU. The last run's is committed as docs/bench/pd.json; test/bench/report
// renders the "Prefill/Decode" section of docs/benchmarks.md from it.
type PD struct {
	Version int `json:"version"`
	// Run is how the benchmark ran and on what machine, as the router
	// benchmark records it.
	Run       RouterRun   `json:"run"`
	Goals     PDGoals     `json:"goals"`
	Simulator PDSimulator `json:"simulator"`
	// Router says how the router of every run was set up.
	Router string  `json:"router"`
	Trace  PDTrace `json:"trace"`
	// Runs are the layouts, the baseline first.
	Runs    []PDRun   `json:"runs"`
	Summary PDVerdict `json:"summary"`
}

// PDGoals are what the primary PD layout is held to, against the baseline.
type PDGoals struct {
	// Baseline names the run without roles every run is read against;
	// Primary the PD layout the goals hold for (the others are shown
	// without goals).
	Baseline string `json:"baseline"`
	Primary  string `json:"primary"`
	// The primary layout's TPOT p90 over the baseline's is at most
	// MaxTPOTP90Ratio; its output tokens/s over the baseline's at least
	// MinTokensRatio; its TTFT p90 over the baseline's at most
	// MaxTTFTP90Ratio.
	MaxTPOTP90Ratio float64 `json:"maxTPOTP90Ratio"`
	MinTokensRatio  float64 `json:"minTokensRatio"`
	MaxTTFTP90Ratio float64 `json:"maxTTFTP90Ratio"`
	// Why explains each bound from what the model predicts.
	Why string `json:"why"`
}

// PDSimulator is the simulated instances' timing model, the same in every
// run. Durations are the model's (docs/simulator.md's defaults unless
// said); the run plays them TimeScale times as fast.
type PDSimulator struct {
	// TimeScale multiplies the model's durations and the trace's arrival
	// times in the run, so that it takes minutes; every time in the results
	// is converted back to the model's time (wall time / TimeScale).
	TimeScale                float64 `json:"timeScale"`
	PrefillPerTokenMicros    float64 `json:"prefillPerTokenMicros"`
	DecodePerTokenMs         float64 `json:"decodePerTokenMs"`
	DecodePerBatchedMicros   float64 `json:"decodePerBatchedRequestMicros"`
	KVTransferPerTokenMicros float64 `json:"kvTransferPerTokenMicros"`
	BlockSize                int     `json:"blockSize"`
	CacheBlocks              int     `json:"cacheBlocks"`
	MaxBatch                 int     `json:"maxBatch"`
	MaxInputTokens           int     `json:"maxInputTokens"`
	// MaxAnswerTokens is the longest answer the simulated model gives: an
	// answer ends at its natural length, a function of the prompt, or at
	// max_tokens.
	MaxAnswerTokens int `json:"maxAnswerTokens"`
}

// PDTrace is the generated trace: single requests with long prompts of
// random words (nothing to reuse), arriving as a Poisson process.
type PDTrace struct {
	Seed     uint64 `json:"seed"`
	Requests int    `json:"requests"`
	// RatePerSecond is the arrival rate, in the model's time.
	RatePerSecond float64 `json:"ratePerSecond"`
	// Prompts have PromptTokensMin–PromptTokensMax tokens, uniformly;
	// every request asks for MaxTokens.
	PromptTokensMin int `json:"promptTokensMin"`
	PromptTokensMax int `json:"promptTokensMax"`
	MaxTokens       int `json:"maxTokens"`
	// What the generator produced: the prompts' tokens as the simulator
	// counts them, and the last request's arrival (model time).
	PromptTokens   int64   `json:"promptTokens"`
	PlannedSeconds float64 `json:"plannedSeconds"`
}

// PDLayout is how the NPUs of a run are used: Plain instances without a
// role, or Groups of PrefillPerGroup prefill and DecodePerGroup decode
// instances each.
type PDLayout struct {
	Name            string `json:"name"`
	Plain           int    `json:"plain,omitempty"`
	Groups          int    `json:"groups,omitempty"`
	PrefillPerGroup int    `json:"prefillPerGroup,omitempty"`
	DecodePerGroup  int    `json:"decodePerGroup,omitempty"`
}

// Instances is how many instances (NPUs) the layout uses.
func (l PDLayout) Instances() int {
	return l.Plain + l.Groups*(l.PrefillPerGroup+l.DecodePerGroup)
}

// PrefillInstances is how many instances prefill: all of them without
// roles, the prefill ones with.
func (l PDLayout) PrefillInstances() int {
	return l.Plain + l.Groups*l.PrefillPerGroup
}

// Describe says the layout in words: "4 instances without roles", "3
// prefill + 1 decode in one group", "2 groups of 1 prefill + 1 decode".
func (l PDLayout) Describe() string {
	switch {
	case l.Groups == 0:
		return fmt.Sprintf("%d instances without roles", l.Plain)
	case l.Groups == 1:
		return fmt.Sprintf("%d prefill + %d decode in one group", l.PrefillPerGroup, l.DecodePerGroup)
	}
	return fmt.Sprintf("%d groups of %d prefill + %d decode", l.Groups, l.PrefillPerGroup, l.DecodePerGroup)
}

// PDRun is the trace served by one layout. Times are the model's.
type PDRun struct {
	Layout PDLayout `json:"layout"`
	// Algorithm is the router's --algorithm.
	Algorithm string `json:"algorithm"`
	// Requests sent, and those that failed (an error status, a broken
	// stream, a stream whose tokens do not match its usage, or no answer by
	// the run's deadline).
	Requests int `json:"requests"`
	Failed   int `json:"failed"`
	// Tokens of the answered requests, from their usage.
	PromptTokens     int64 `json:"promptTokens"`
	CompletionTokens int64 `json:"completionTokens"`
	// TTFT runs from sending a request to its first token, at the client.
	TTFTP50Ms float64 `json:"ttftP50Ms"`
	TTFTP90Ms float64 `json:"ttftP90Ms"`
	TTFTP99Ms float64 `json:"ttftP99Ms"`
	// TPOT is a request's time per output token after the first: (last
	// token's arrival − first token's) / (tokens − 1), at the client, over
	// the TPOTRequests answered requests with two tokens or more.
	TPOTP50Ms    float64 `json:"tpotP50Ms"`
	TPOTP90Ms    float64 `json:"tpotP90Ms"`
	TPOTP99Ms    float64 `json:"tpotP99Ms"`
	TPOTRequests int     `json:"tpotRequests"`
	// MaxGapMs is the longest wait between two tokens of one request.
	MaxGapMs float64 `json:"maxGapMs"`
	// InterruptedShare is the share of the answered requests that waited
	// more than InterruptGapMs (half the trace's shortest prefill) between
	// two of their tokens: those a prefill ran in the middle of.
	InterruptedShare float64 `json:"interruptedShare"`
	InterruptGapMs   float64 `json:"interruptGapMs"`
	// Seconds is from the first request sent to the last answer's end;
	// OutputTokensPerSecond is CompletionTokens over it.
	Seconds               float64 `json:"seconds"`
	OutputTokensPerSecond float64 `json:"outputTokensPerSecond"`
	// Instances is what each instance did, in the layout's order.
	Instances []PDInstance `json:"instances"`
	// What the timing model predicts for the layout by a replay of the
	// trace's prefills alone (no decode steps, KV transfers or HTTP)
	// through its prefill instances, first come first served, each
	// request to the instance free first: the TTFT percentiles, and the
	// share of the prefill instances' time the prefills take.
	PredictedTTFTP50Ms float64 `json:"predictedTTFTP50Ms"`
	PredictedTTFTP90Ms float64 `json:"predictedTTFTP90Ms"`
	PrefillBusy        float64 `json:"prefillBusy"`
	// VsBaseline is this run's figures over the baseline's, set by Derive.
	VsBaseline *PDRatios `json:"vsBaseline,omitempty"`
}

// PDInstance is what one simulated instance did in a run, from its
// counters.
type PDInstance struct {
	Name string `json:"name"`
	Role string `json:"role,omitempty"`
	// Prefilled counts the requests it prefilled (every request of an
	// instance without a role), Decoded those handed to it to decode, and
	// GeneratedTokens the tokens it generated.
	Prefilled       uint64 `json:"prefilled"`
	Decoded         uint64 `json:"decoded"`
	GeneratedTokens uint64 `json:"generatedTokens"`
	Preemptions     uint64 `json:"preemptions"`
	// MaxWaiting is its longest prefill queue at a sample (every 100 ms of
	// wall time); MaxRunning its largest batch.
	MaxWaiting int `json:"maxWaiting"`
	MaxRunning int `json:"maxRunning"`
}

// PDRatios are a run's figures over the baseline's.
type PDRatios struct {
	TTFTP50 float64 `json:"ttftP50"`
	TTFTP90 float64 `json:"ttftP90"`
	TPOTP50 float64 `json:"tpotP50"`
	TPOTP90 float64 `json:"tpotP90"`
	Tokens  float64 `json:"outputTokensPerSecond"`
}

// PDVerdict is each goal's figure and whether it was met, derived by
// Derive. Every figure is simulated.
type PDVerdict struct {
	Goals []GoalCheck `json:"goals"`
}

// The names of the goals Derive checks (%s: the primary layout's name).
const (
	GoalPDTPOT   = "%s TPOT p90 / baseline TPOT p90"
	GoalPDTokens = "%s output tokens/s / baseline output tokens/s"
	GoalPDTTFT   = "%s TTFT p90 / baseline TTFT p90"
	GoalPDFailed = "failed requests, all runs"
)

// RunNamed returns the run of the named layout, or nil.
func (r *PD) RunNamed(name string) *PDRun {
	for i := range r.Runs {
		if r.Runs[i].Layout.Name == name {
			return &r.Runs[i]
		}
	}
	return nil
}

// pdRatio is a/b, and whether both were measured.
func pdRatio(a, b float64) (float64, bool) {
	if a <= 0 || b <= 0 {
		return 0, false
	}
	return a / b, true
}

// Derive computes each run's ratios to the baseline and the goal checks.
func (r *PD) Derive() {
	base := r.RunNamed(r.Goals.Baseline)
	for i := range r.Runs {
		run := &r.Runs[i]
		run.VsBaseline = nil
		if base == nil || run == base {
			continue
		}
		q := &PDRatios{}
		q.TTFTP50, _ = pdRatio(run.TTFTP50Ms, base.TTFTP50Ms)
		q.TTFTP90, _ = pdRatio(run.TTFTP90Ms, base.TTFTP90Ms)
		q.TPOTP50, _ = pdRatio(run.TPOTP50Ms, base.TPOTP50Ms)
		q.TPOTP90, _ = pdRatio(run.TPOTP90Ms, base.TPOTP90Ms)
		q.Tokens, _ = pdRatio(run.OutputTokensPerSecond, base.OutputTokensPerSecond)
		run.VsBaseline = q
	}
	var tpot, tokens, ttft float64
	var okTPOT, okTokens, okTTFT bool
	if p := r.RunNamed(r.Goals.Primary); p != nil && base != nil && p != base {
		tpot, okTPOT = pdRatio(p.TPOTP90Ms, base.TPOTP90Ms)
		tokens, okTokens = pdRatio(p.OutputTokensPerSecond, base.OutputTokensPerSecond)
		ttft, okTTFT = pdRatio(p.TTFTP90Ms, base.TTFTP90Ms)
	}
	failed := 0
	for _, run := range r.Runs {
		failed += run.Failed
	}
	r.Summary = PDVerdict{Goals: []GoalCheck{
		check(fmt.Sprintf(GoalPDTPOT, r.Goals.Primary), tpot, r.Goals.MaxTPOTP90Ratio, true, okTPOT, true),
		check(fmt.Sprintf(GoalPDTokens, r.Goals.Primary), tokens, r.Goals.MinTokensRatio, false, okTokens, true),
		check(fmt.Sprintf(GoalPDTTFT, r.Goals.Primary), ttft, r.Goals.MaxTTFTP90Ratio, true, okTTFT, true),
		check(GoalPDFailed, float64(failed), 0, true, len(r.Runs) > 0, true),
	}}
}

// LoadPD reads a Prefill/Decode benchmark's results and derives its
// summary.
func LoadPD(path string) (*PD, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r PD
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.Version != PDVersion {
		return nil, fmt.Errorf("%s: version %d, want %d", path, r.Version, PDVersion)
	}
	r.Derive()
	return &r, nil
}

// Save derives the summary and writes the results to path, through a
// temporary file.
func (r *PD) Save(path string) error {
	r.Derive()
	return saveJSON(path, r)
}

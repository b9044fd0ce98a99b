package main

// This file generates the request traces of the routing-quality runs and
// computes their oracle hit rate. A trace is a pure function of its
// parameters and seed: the same seed gives the same sessions, prompts and
// times on every machine.

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"mindie.io/deployer/pkg/simulator/mindie"
	"mindie.io/deployer/test/bench/measure"
	"mindie.io/deployer/test/bench/results"
)

// Message is one chat message of a request.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Turn is one request of a session.
type Turn struct {
	// User is the user's message of this turn.
	User string
	// Answer is the assistant's answer the next turns carry in their
	// history. The simulator's answer has the same length at most (it may
	// stop earlier); the history carries the planned one, so that the
	// trace does not depend on the run. The simulator caches prompt blocks
	// only, so which answer text the history holds changes no hit.
	Answer string
	// MaxTokens is the request's max_tokens: the planned answer's length.
	MaxTokens int
	// Think is the wait after the previous turn's answer ended (or after
	// the session's start, for the first turn) before this turn is sent.
	Think time.Duration
}

// Session is one user's conversation.
type Session struct {
	ID    int
	Group int // index of its system prompt; -1: none
	// Start is when the session starts, from the trace's start.
	Start  time.Duration
	System string
	Turns  []Turn
}

// Messages returns the messages of turn k (0-based): the system prompt,
// the earlier turns with their planned answers, and turn k's message.
func (s *Session) Messages(k int) []Message {
	msgs := make([]Message, 0, 2*k+2)
	if s.System != "" {
		msgs = append(msgs, Message{"system", s.System})
	}
	for j := range k {
		msgs = append(msgs, Message{"user", s.Turns[j].User}, Message{"assistant", s.Turns[j].Answer})
	}
	return append(msgs, Message{"user", s.Turns[k].User})
}

// Trace is a generated workload.
type Trace struct {
	Shape    results.TraceShape
	Sessions []Session
}

// intRange draws uniformly from [lo, hi].
func intRange(rng *rand.Rand, lo, hi int) int {
	if hi <= lo {
		return lo
	}
	return lo + rng.IntN(hi-lo+1)
}

// exponential draws an exponentially distributed duration of the given mean.
func exponential(rng *rand.Rand, mean time.Duration) time.Duration {
	return time.Duration(rng.ExpFloat64() * float64(mean))
}

// GenerateChat generates a multi-turn chat trace: sessions start as a
// Poisson process; user i belongs to group i mod Groups and starts with
// its group's system prompt; each turn waits an exponential think time
// after the previous answer (a closed loop per user, as people chat).
func GenerateChat(shape results.TraceShape) (*Trace, error) {
	if err := checkShape(shape); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(shape.Seed, 0x636861740a))
	systems := make([]string, shape.Groups)
	for g := range systems {
		// The group's index leads its system prompt, so that no two groups
		// share even their first block by chance.
		systems[g] = fmt.Sprintf("group%d %s", g, measure.Words(rng, shape.SystemTokens-1))
	}
	t := &Trace{Shape: shape}
	var at time.Duration
	for u := range shape.Sessions {
		at += exponential(rng, time.Duration(float64(time.Second)/shape.SessionsPerSecond))
		s := Session{ID: u, Group: u % shape.Groups, Start: at, System: systems[u%shape.Groups]}
		for k := range intRange(rng, shape.TurnsMin, shape.TurnsMax) {
			answer := intRange(rng, shape.AnswerTokensMin, shape.AnswerTokensMax)
			turn := Turn{
				// The session's id leads its first message, so that two
				// sessions never share more than their system prompt.
				User:      fmt.Sprintf("user%d turn%d %s", u, k, measure.Words(rng, intRange(rng, shape.UserTokensMin, shape.UserTokensMax)-2)),
				Answer:    measure.Words(rng, answer),
				MaxTokens: answer,
			}
			if k > 0 {
				turn.Think = exponential(rng, time.Duration(shape.ThinkMeanSeconds*float64(time.Second)))
			}
			s.Turns = append(s.Turns, turn)
		}
		t.Sessions = append(t.Sessions, s)
	}
	return t, nil
}

// GenerateNoReuse generates a trace with nothing to reuse: single requests
// with no system prompt and prompts of random words, arriving as a Poisson
// process.
func GenerateNoReuse(shape results.TraceShape) (*Trace, error) {
	shape.Groups, shape.SystemTokens, shape.TurnsMin, shape.TurnsMax, shape.ThinkMeanSeconds = 0, 0, 1, 1, 0
	if err := checkShape(shape); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(shape.Seed, 0x6e6f7265757365))
	t := &Trace{Shape: shape}
	var at time.Duration
	for u := range shape.Sessions {
		at += exponential(rng, time.Duration(float64(time.Second)/shape.SessionsPerSecond))
		answer := intRange(rng, shape.AnswerTokensMin, shape.AnswerTokensMax)
		t.Sessions = append(t.Sessions, Session{ID: u, Group: -1, Start: at, Turns: []Turn{{
			User:      fmt.Sprintf("request%d %s", u, measure.Words(rng, intRange(rng, shape.UserTokensMin, shape.UserTokensMax)-1)),
			Answer:    measure.Words(rng, answer),
			MaxTokens: answer,
		}}})
	}
	return t, nil
}

func checkShape(s results.TraceShape) error {
	switch {
	case s.Sessions <= 0:
		return fmt.Errorf("sessions %d: must be positive", s.Sessions)
	case s.SessionsPerSecond <= 0:
		return fmt.Errorf("sessions per second %g: must be positive", s.SessionsPerSecond)
	case s.TurnsMin < 1 || s.TurnsMax < s.TurnsMin:
		return fmt.Errorf("turns %d–%d: need 1 ≤ min ≤ max", s.TurnsMin, s.TurnsMax)
	case s.UserTokensMin < 3 || s.UserTokensMax < s.UserTokensMin:
		return fmt.Errorf("user tokens %d–%d: need 3 ≤ min ≤ max", s.UserTokensMin, s.UserTokensMax)
	case s.AnswerTokensMin < 1 || s.AnswerTokensMax < s.AnswerTokensMin:
		return fmt.Errorf("answer tokens %d–%d: need 1 ≤ min ≤ max", s.AnswerTokensMin, s.AnswerTokensMax)
	case s.TurnsMax > 1 && (s.Groups < 1 || s.SystemTokens < 2):
		return fmt.Errorf("a chat trace needs groups (%d) ≥ 1 and system tokens (%d) ≥ 2", s.Groups, s.SystemTokens)
	}
	return nil
}

// PlannedRequest is a request of the trace in the order it is planned to
// be sent, with zero service time.
type PlannedRequest struct {
	Session, Turn int
	At            time.Duration
}

// Planned lists the trace's requests by planned send time: the session's
// start plus its think times, as if every answer came at once.
func (t *Trace) Planned() []PlannedRequest {
	var out []PlannedRequest
	for i := range t.Sessions {
		at := t.Sessions[i].Start
		for k, turn := range t.Sessions[i].Turns {
			at += turn.Think
			out = append(out, PlannedRequest{Session: i, Turn: k, At: at})
		}
	}
	slices.SortStableFunc(out, func(a, b PlannedRequest) int {
		switch {
		case a.At < b.At:
			return -1
		case a.At > b.At:
			return 1
		}
		return 0
	})
	return out
}

// PromptTokens renders messages as the simulator's chat template does (a
// "role: content" line each) and tokenizes them with its tokenizer.
func PromptTokens(msgs []Message) []string {
	var b strings.Builder
	for _, m := range msgs {
		b.WriteString(m.Role)
		b.WriteString(": ")
		b.WriteString(m.Content)
		b.WriteString("\n")
	}
	return mindie.Tokenize(b.String())
}

// Oracle is the prefix reuse a single instance with an infinite cache
// would see: for each prompt in order, the leading full blocks of
// blockSize tokens that an earlier prompt of the sequence already had.
type Oracle struct {
	PromptTokens, SharedTokens int64
}

// HitRate is shared tokens over prompt tokens.
func (o Oracle) HitRate() float64 {
	if o.PromptTokens == 0 {
		return 0
	}
	return float64(o.SharedTokens) / float64(o.PromptTokens)
}

// ComputeOracle runs prompts (token lists, in the order they are sent)
// through an infinite prefix cache of chained block hashes, as the
// simulator's is.
func ComputeOracle(prompts [][]string, blockSize int) Oracle {
	seen := map[uint64]bool{}
	var o Oracle
	for _, p := range prompts {
		o.PromptTokens += int64(len(p))
		var prev uint64
		matching := true
		for i := 0; i+blockSize <= len(p); i += blockSize {
			prev = blockHash(prev, p[i:i+blockSize])
			if matching && seen[prev] {
				o.SharedTokens += int64(blockSize)
				continue
			}
			matching = false
			seen[prev] = true
		}
	}
	return o
}

func blockHash(parent uint64, tokens []string) uint64 {
	h := fnv.New64a()
	var buf [8]byte
	for i := range buf {
		buf[i] = byte(parent >> (8 * i))
	}
	h.Write(buf[:])
	for _, t := range tokens {
		h.Write([]byte{0x1f})
		h.Write([]byte(t))
	}
	return h.Sum64()
}

// TraceOracle is the oracle of t in its planned order, and fills in the
// shape's request and token counts.
func TraceOracle(t *Trace, blockSize int) Oracle {
	planned := t.Planned()
	prompts := make([][]string, len(planned))
	for i, p := range planned {
		prompts[i] = PromptTokens(t.Sessions[p.Session].Messages(p.Turn))
	}
	o := ComputeOracle(prompts, blockSize)
	t.Shape.Requests = len(planned)
	t.Shape.PromptTokens = o.PromptTokens
	t.Shape.OracleSharedTokens = o.SharedTokens
	t.Shape.OracleHitRate = o.HitRate()
	if len(planned) > 0 {
		t.Shape.PlannedSeconds = math.Round(planned[len(planned)-1].At.Seconds()*100) / 100
	}
	return o
}

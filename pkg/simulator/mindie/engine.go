package mindie

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"
)

// apiError is a request failure with the HTTP status it is answered with.
type apiError struct {
	status int
	kind   errorKind
	msg    string
}

type errorKind string

const (
	kindValidation  errorKind = "validation"
	kindNotFound    errorKind = "not_found"
	kindOverloaded  errorKind = "overloaded"
	kindUnavailable errorKind = "unavailable"
	kindEngine      errorKind = "engine_error" // the engine failed the request (NPU fault)
)

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, kind: kindValidation, msg: fmt.Sprintf(format, args...)}
}

func unavailable(format string, args ...any) *apiError {
	return &apiError{status: http.StatusServiceUnavailable, kind: kindUnavailable, msg: fmt.Sprintf(format, args...)}
}

// engineError is a request failure of the engine itself (an NPU fault):
// 500.
func engineError(err error) *apiError {
	return &apiError{status: http.StatusInternalServerError, kind: kindEngine, msg: err.Error()}
}

// errClientGone means the client went away; there is nobody to answer.
var errClientGone = errors.New("the client went away")

// errHealthTimeout means a timed health check ran out of time.
var errHealthTimeout = errors.New("health check timed out")

// job is one generation request in API-neutral form, validated.
type job struct {
	prompt       []string
	leadingSpace bool       // whether the answer continues the prompt's text
	maxTokens    int        // max_tokens after clamping: what out was generated with
	out          completion // the answer, computed up front: it is deterministic
}

// newJob validates a prompt and a requested max_tokens (nil: defaultMax)
// and computes the answer. maxTokens is clamped to MaxOutputLength and to
// what MaxTotalTokens leaves after the prompt, like MindIE does.
func (s *Server) newJob(prompt []string, requested *int, field string, defaultMax int, leadingSpace bool) (*job, *apiError) {
	if len(prompt) == 0 {
		return nil, badRequest("the prompt is empty: it must contain at least one token")
	}
	if limit := s.cfg.maxPromptTokens(); len(prompt) > limit {
		return nil, badRequest("the prompt is %d tokens long; this model accepts at most %d input tokens (maxInputTokenLen %d, maxSeqLen %d)",
			len(prompt), limit, s.cfg.MaxInputLength, s.cfg.MaxTotalTokens)
	}
	maxTokens := defaultMax
	if requested != nil {
		if *requested < 1 {
			return nil, badRequest("%s must be at least 1, got %d", field, *requested)
		}
		maxTokens = *requested
	}
	maxTokens = min(maxTokens, s.cfg.MaxOutputLength, s.cfg.MaxTotalTokens-len(prompt))
	j := &job{prompt: prompt, leadingSpace: leadingSpace, maxTokens: maxTokens, out: generate(s.cfg.ModelID, prompt, maxTokens)}
	if err := s.checkFits(j); err != nil {
		return nil, err
	}
	return j, nil
}

// checkFits refuses a job that could never finish on this instance: at its
// longest a request holds the KV of its prompt and of every generated token
// but the last, and that must fit in the whole cache.
func (s *Server) checkFits(j *job) *apiError {
	if need := (len(j.prompt) + len(j.out.tokens) - 1 + s.cfg.BlockSize - 1) / s.cfg.BlockSize; need > s.cfg.CacheBlocks {
		return badRequest("the prompt (%d tokens) and its answer (%d tokens) need %d KV cache blocks of %d tokens; this instance has %d in all",
			len(j.prompt), len(j.out.tokens), need, s.cfg.BlockSize, s.cfg.CacheBlocks)
	}
	return nil
}

// generation is a finished job's result.
type generation struct {
	completion
	pieces       []string
	promptTokens int
	cachedTokens int // prompt tokens found in the prefix cache
	// By the model's time: when the request arrived and when each token
	// was generated.
	arrived    time.Time
	tokenTimes []time.Time
}

func (g *generation) text() string {
	n := 0
	for _, p := range g.pieces {
		n += len(p)
	}
	b := make([]byte, 0, n)
	for _, p := range g.pieces {
		b = append(b, p...)
	}
	return string(b)
}

// admitSpec says how much of a job the engine runs. The zero value runs
// all of it: a prefill, then decode steps to the end of the answer.
type admitSpec struct {
	// total is the number of the answer's tokens generated once the
	// request is done; 0 means all of them. A PD prefill stops at 1.
	total int
	// handoff marks a request handed over by a prefill instance: its first
	// generated tokens came with it, it is not prefilled but waits for
	// its KV cache (transfer) once it has a slot and blocks, then decodes.
	handoff   bool
	generated int           // tokens generated before it came (handoff)
	transfer  time.Duration // its KV transfer, before the slowdown (handoff)
}

// admit queues j in the engine, or refuses it.
func (s *Server) admit(parent context.Context, j *job, spec admitSpec) (*engineRequest, error) {
	var hashes []uint64
	if !s.cfg.DisablePrefixCache && !spec.handoff {
		hashes = blockHashes(j.prompt, s.cfg.BlockSize)
	}
	total := len(j.out.tokens)
	if spec.total > 0 {
		total = min(spec.total, total)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.phase {
	case phaseCrashed:
		return nil, ErrCrashed
	case phaseStopping, phaseStopped:
		return nil, unavailable("the service is stopping or stopped (/stopService): not accepting new requests")
	}
	if s.npuFailed {
		return nil, engineError(errNPUFailed)
	}
	if !s.loaded() {
		remaining := s.loadTime - s.clock.Now().Sub(s.start)
		return nil, unavailable("the model %s is still loading (about %s left); retry when /v2/health/ready answers 200", s.cfg.ModelID, remaining.Round(time.Millisecond))
	}
	if len(s.batch)+len(s.queue) >= s.cfg.MaxConcurrentRequests {
		return nil, &apiError{status: http.StatusTooManyRequests, kind: kindOverloaded,
			msg: fmt.Sprintf("too many requests in flight: the limit is %d (max_concurrent_requests)", s.cfg.MaxConcurrentRequests)}
	}
	s.nextID++
	ctx, cancel := context.WithCancelCause(parent)
	r := &engineRequest{
		id: s.nextID, ctx: ctx, cancel: cancel, job: j, hashes: hashes,
		total: total, arrived: s.modelNow(), notify: make(chan struct{}, 1),
		handoff: spec.handoff, transfer: spec.transfer, handedOver: spec.generated, generated: spec.generated, prefilled: spec.handoff,
	}
	s.active[r.id] = cancel
	s.queue = append(s.queue, r)
	s.inflight.Add(1)
	s.startTransfers()
	s.kickEngine()
	return r, nil
}

// execute runs a job through the simulated engine (see scheduler.go),
// calling onToken (if not nil) with each token's text once it is
// generated. Its errors are *apiError, ErrCrashed, errClosing or
// errClientGone. It counts the request as succeeded or failed.
func (s *Server) execute(ctx context.Context, j *job, onToken func(i int, piece string) error) (*generation, error) {
	g, err := s.run(ctx, j, admitSpec{}, onToken)
	if err != nil {
		s.failed.Add(1)
		return nil, err
	}
	s.succeeded.Add(1)
	return g, nil
}

// run admits j and follows it to the end of what spec asks for.
func (s *Server) run(parent context.Context, j *job, spec admitSpec, onToken func(i int, piece string) error) (*generation, error) {
	r, err := s.admit(parent, j, spec)
	if err != nil {
		return nil, err
	}
	return s.follow(r, onToken)
}

// errRecompute ends a handed-off request that a decode instance had to
// preempt: its KV is gone, the prefill instance must compute it again.
var errRecompute = errors.New("preempted on the decode instance (KV cache full): the request must be recomputed")

// follow waits for an admitted request's tokens, calling onToken with each
// (from the first one generated here), and withdraws it from the engine
// when it ends. An error of onToken ends it: errDResultOverflow as is,
// anything else as the client going away.
func (s *Server) follow(r *engineRequest, onToken func(i int, piece string) error) (*generation, error) {
	j := r.job
	defer func() {
		s.mu.Lock()
		delete(s.active, r.id)
		s.withdraw(r)
		s.mu.Unlock()
		r.cancel(nil)
		s.inflight.Done()
	}()

	pieces := j.out.pieces(j.leadingSpace)
	sent := r.handedOver // a handed-off request's first tokens were sent by the prefill instance
	for {
		s.mu.Lock()
		generated, state := r.generated, r.state
		s.mu.Unlock()
		for ; sent < generated; sent++ {
			if onToken == nil {
				continue
			}
			if err := onToken(sent, pieces[sent]); err != nil {
				if errors.Is(err, errDResultOverflow) {
					return nil, err
				}
				return nil, s.abortReason(r.ctx, errClientGone)
			}
		}
		if state == stateDone {
			break
		}
		if state == stateRecompute {
			return nil, errRecompute
		}
		select {
		case <-r.notify:
		case <-r.ctx.Done():
			return nil, s.abortReason(r.ctx, r.ctx.Err())
		case <-s.closing:
			return nil, errClosing
		}
	}

	s.mu.Lock()
	times := slices.Clone(r.tokenTimes)
	cached := r.cachedTokens
	s.mu.Unlock()
	if !r.handoff && len(times) > 0 {
		// A handed-off request's first token came from the prefill
		// instance, which records its TTFT.
		s.latency.recordTTFT(times[0].Sub(r.arrived))
	}
	if n := len(times); n > 1 {
		s.latency.recordTBT(times[n-1].Sub(times[0]) / time.Duration(n-1))
	}
	return &generation{
		completion: j.out, pieces: pieces, promptTokens: len(j.prompt), cachedTokens: cached,
		arrived: r.arrived, tokenTimes: times,
	}, nil
}

// abortReason tells why an admitted request stopped early.
func (s *Server) abortReason(ctx context.Context, err error) error {
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, ErrCrashed), errors.Is(err, ErrCrashed):
		return ErrCrashed
	case errors.Is(err, errClosing):
		return errClosing
	case errors.Is(cause, errForceStopped):
		return unavailable("%v", errForceStopped)
	case errors.Is(cause, errRequestFault), errors.Is(cause, errNPUFailed):
		return engineError(cause)
	}
	return errClientGone
}

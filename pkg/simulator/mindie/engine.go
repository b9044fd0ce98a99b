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
)

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, kind: kindValidation, msg: fmt.Sprintf(format, args...)}
}

func unavailable(format string, args ...any) *apiError {
	return &apiError{status: http.StatusServiceUnavailable, kind: kindUnavailable, msg: fmt.Sprintf(format, args...)}
}

// errClientGone means the client went away; there is nobody to answer.
var errClientGone = errors.New("the client went away")

// errHealthTimeout means a timed health check ran out of time.
var errHealthTimeout = errors.New("health check timed out")

// job is one generation request in API-neutral form, validated.
type job struct {
	prompt       []string
	leadingSpace bool       // whether the answer continues the prompt's text
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
	out := generate(s.cfg.ModelID, prompt, maxTokens)
	// At its longest a request holds the KV of its prompt and of every
	// generated token but the last. One that would not fit in the whole
	// cache could never finish.
	if need := (len(prompt) + len(out.tokens) - 1 + s.cfg.BlockSize - 1) / s.cfg.BlockSize; need > s.cfg.CacheBlocks {
		return nil, badRequest("the prompt (%d tokens) and its answer (%d tokens) need %d KV cache blocks of %d tokens; this instance has %d in all",
			len(prompt), len(out.tokens), need, s.cfg.BlockSize, s.cfg.CacheBlocks)
	}
	return &job{prompt: prompt, leadingSpace: leadingSpace, out: out}, nil
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

// admit queues j in the engine, or refuses it.
func (s *Server) admit(parent context.Context, j *job) (*engineRequest, error) {
	var hashes []uint64
	if !s.cfg.DisablePrefixCache {
		hashes = blockHashes(j.prompt, s.cfg.BlockSize)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.phase {
	case phaseCrashed:
		return nil, ErrCrashed
	case phaseStopping, phaseStopped:
		return nil, unavailable("the service is stopping or stopped (/stopService): not accepting new requests")
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
		total: len(j.out.tokens), arrived: s.modelNow(), notify: make(chan struct{}, 1),
	}
	s.active[r.id] = cancel
	s.queue = append(s.queue, r)
	s.inflight.Add(1)
	s.kickEngine()
	return r, nil
}

// execute runs a job through the simulated engine (see scheduler.go),
// calling onToken (if not nil) with each token's text once it is
// generated. Its errors are *apiError, ErrCrashed, errClosing or
// errClientGone. It counts the request as succeeded or failed.
func (s *Server) execute(ctx context.Context, j *job, onToken func(i int, piece string) error) (*generation, error) {
	g, err := s.run(ctx, j, onToken)
	if err != nil {
		s.failed.Add(1)
		return nil, err
	}
	s.succeeded.Add(1)
	return g, nil
}

func (s *Server) run(parent context.Context, j *job, onToken func(i int, piece string) error) (*generation, error) {
	r, err := s.admit(parent, j)
	if err != nil {
		return nil, err
	}
	defer func() {
		s.mu.Lock()
		delete(s.active, r.id)
		s.withdraw(r)
		s.mu.Unlock()
		r.cancel(nil)
		s.inflight.Done()
	}()

	pieces := j.out.pieces(j.leadingSpace)
	sent := 0
	for {
		s.mu.Lock()
		generated, state := r.generated, r.state
		s.mu.Unlock()
		for ; sent < generated; sent++ {
			if onToken == nil {
				continue
			}
			if err := onToken(sent, pieces[sent]); err != nil {
				return nil, s.abortReason(r.ctx, errClientGone)
			}
		}
		if state == stateDone {
			break
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
	ttft := times[0].Sub(r.arrived)
	var tbt time.Duration
	if n := len(times); n > 1 {
		tbt = times[n-1].Sub(times[0]) / time.Duration(n-1)
	}
	s.latency.record(ttft, tbt)
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
	}
	return errClientGone
}

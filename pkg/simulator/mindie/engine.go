package mindie

import (
	"context"
	"errors"
	"fmt"
	"net/http"
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
	return &job{
		prompt:       prompt,
		leadingSpace: leadingSpace,
		out:          generate(s.cfg.ModelID, prompt, maxTokens),
	}, nil
}

// generation is a finished job's result.
type generation struct {
	completion
	pieces       []string
	promptTokens int
	cachedTokens int // prompt tokens found in the prefix cache
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

// admission is an admitted request's claim on the server.
type admission struct {
	id     uint64
	ctx    context.Context
	cancel context.CancelCauseFunc
}

func (s *Server) admit(parent context.Context) (*admission, error) {
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
	if s.running+s.waiting >= s.cfg.MaxConcurrentRequests {
		return nil, &apiError{status: http.StatusTooManyRequests, kind: kindOverloaded,
			msg: fmt.Sprintf("too many requests in flight: the limit is %d (max_concurrent_requests)", s.cfg.MaxConcurrentRequests)}
	}
	s.nextID++
	ctx, cancel := context.WithCancelCause(parent)
	a := &admission{id: s.nextID, ctx: ctx, cancel: cancel}
	s.active[a.id] = cancel
	s.waiting++
	s.inflight.Add(1)
	return a, nil
}

// execute runs a job through the simulated engine: admission, a slot,
// prefill of the uncached prompt tokens, then one decode step per token,
// calling onToken (if not nil) with each token's text as it is generated.
// Its errors are *apiError, ErrCrashed, errClosing or errClientGone. It
// counts the request as succeeded or failed.
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
	a, err := s.admit(parent)
	if err != nil {
		return nil, err
	}
	ctx := a.ctx
	running, blocks := false, 0
	defer func() {
		s.mu.Lock()
		delete(s.active, a.id)
		if running {
			s.running--
			s.usedBlocks -= blocks
		} else {
			s.waiting--
		}
		s.mu.Unlock()
		a.cancel(nil)
		s.inflight.Done()
	}()

	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, s.abortReason(ctx, ctx.Err())
	}
	defer func() { <-s.slots }()
	s.mu.Lock()
	s.waiting--
	s.running++
	running = true
	s.mu.Unlock()

	if err := s.waitWhileHung(ctx, nil); err != nil {
		return nil, s.abortReason(ctx, err)
	}

	// Prefill: only the tokens after the cached prefix cost time.
	var hashes []uint64
	cached := 0
	if !s.cfg.DisablePrefixCache {
		hashes = blockHashes(j.prompt, s.cfg.BlockSize)
		cached = min(s.cache.lookup(hashes)*s.cfg.BlockSize, len(j.prompt))
	}
	s.promptTokens.Add(uint64(len(j.prompt)))
	blocks = s.holdBlocks(blocks, len(j.prompt))
	prefill := s.scale(time.Duration(len(j.prompt)-cached) * s.prefillPerToken)
	if err := s.clock.Sleep(ctx, prefill); err != nil {
		return nil, s.abortReason(ctx, err)
	}
	if hashes != nil {
		s.cache.insert(hashes)
	}

	// Decode, one token at a time.
	pieces := j.out.pieces(j.leadingSpace)
	var ttft, decoding time.Duration
	for i, piece := range pieces {
		if err := s.waitWhileHung(ctx, nil); err != nil {
			return nil, s.abortReason(ctx, err)
		}
		step := s.scale(s.decodePerToken)
		if err := s.clock.Sleep(ctx, step); err != nil {
			return nil, s.abortReason(ctx, err)
		}
		s.generationTokens.Add(1)
		blocks = s.holdBlocks(blocks, len(j.prompt)+i+1)
		if i == 0 {
			ttft = prefill + step
		} else {
			decoding += step
		}
		if onToken != nil {
			if err := onToken(i, piece); err != nil {
				return nil, s.abortReason(ctx, errClientGone)
			}
		}
	}
	var tbt time.Duration
	if len(pieces) > 1 {
		tbt = decoding / time.Duration(len(pieces)-1)
	}
	s.latency.record(ttft, tbt)
	return &generation{completion: j.out, pieces: pieces, promptTokens: len(j.prompt), cachedTokens: cached}, nil
}

// holdBlocks updates the KV blocks a running request holds to cover tokens,
// returning the new count.
func (s *Server) holdBlocks(held, tokens int) int {
	need := (tokens + s.cfg.BlockSize - 1) / s.cfg.BlockSize
	s.mu.Lock()
	s.usedBlocks += need - held
	s.mu.Unlock()
	return need
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

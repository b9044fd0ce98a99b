package mindie

import (
	"context"
	"slices"
	"time"
)

// The scheduler is the simulated engine of one instance: one loop that
// runs iterations on the NPU, one at a time, each taking modelled time on
// the server's clock, like a continuous-batching engine does:
//
//   - a prefill iteration prefills the request at the head of the waiting
//     queue (first come, first served) and produces its first token. It
//     costs PrefillPerToken for each prompt token not found in the prefix
//     cache (at least one: the last prompt token is always computed). The
//     head starts only when the batch has a free slot (TotalSlots) and the
//     KV cache has blocks for its prompt; until then it and everyone behind
//     it wait.
//   - a decode step produces one token for every running request and costs
//     DecodePerToken + (b-1) x DecodePerBatchedRequest for a batch of b.
//
// Waiting prefills go first, as in engines without chunked prefill (vLLM's
// original scheduler).
// A request's time to first token is therefore its wait in the queue
// (earlier requests' prefills, and the decode step under way when it
// arrived) plus its own prefill; a decode step is slower the fuller the
// batch; and a token between two of a request's own is delayed by every
// prefill that runs in between.
//
// A running request holds the KV blocks of its prompt and of the tokens
// generated so far (the newest token's KV is written by the next step).
// When a decode step needs blocks and none are free or evictable, the
// request that started last is preempted: its blocks are released and it
// goes back to the head of the queue, to be prefilled again (prompt and
// tokens generated so far, less what the prefix cache still has) when
// blocks free up, like vLLM's preemption by recomputation.
//
// On a decode instance (PD disaggregation) a request handed over by a
// prefill instance is not prefilled: at the head of the queue it takes a
// slot and the blocks of its prompt like any other, then waits for its KV
// cache to arrive (KVTransferPerToken per prompt token; the transfer runs
// beside the engine's iterations, it does not delay them), then joins the
// decode steps. A handed-off request preempted for lack of blocks cannot be
// recomputed here: it leaves the engine, and the decode instance asks for
// a recompute (retry:).

// requestState is where a request is in the engine.
type requestState int

const (
	stateQueued       requestState = iota // waiting for its (first or next) prefill, or for its KV transfer to start
	stateTransferring                     // handed off: holds a slot and blocks, its KV cache is arriving
	stateRunning                          // holds a slot: prefilling or decoding
	stateDone                             // every token generated
	stateGone                             // withdrawn: aborted or abandoned
	stateRecompute                        // handed off, then preempted: must be recomputed by a prefill instance
)

// engineRequest is an admitted request as the scheduler sees it. The fields
// from state on are guarded by Server.mu.
type engineRequest struct {
	id      uint64
	ctx     context.Context
	cancel  context.CancelCauseFunc
	job     *job
	hashes  []uint64 // the prompt's block hashes; nil with the prefix cache off
	total   int      // tokens to generate
	arrived time.Time
	notify  chan struct{} // signalled (without blocking) on every change
	// A request handed over by a prefill instance (decode role): its KV
	// transfer time before the slowdown, and the tokens the prefill
	// instance generated.
	handoff    bool
	transfer   time.Duration
	handedOver int

	state        requestState
	generated    int
	tokenTimes   []time.Time // when each token was generated, by the model's time
	hold         *kvHold
	cachedTokens int // prompt tokens the first prefill found in the cache
	prefilled    bool
}

func (r *engineRequest) signal() {
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

// iteration is one unit of work of the engine: the prefill of one request
// or a decode step of the batch.
type iteration struct {
	cost    time.Duration // before the slowdown
	prefill *engineRequest
	batch   []*engineRequest
}

// modelNow is the model's current time: the clock's, or the end of the
// last iteration when the clock has not caught up with it (a fake clock
// that returns from sleeps at once). Called with s.mu held.
func (s *Server) modelNow() time.Time {
	now := s.clock.Now()
	if s.engineTime.After(now) {
		return s.engineTime
	}
	return now
}

// kickEngine starts the engine's loop unless it runs. Called with s.mu held.
func (s *Server) kickEngine() {
	if s.engineActive {
		return
	}
	s.engineActive = true
	go s.engineLoop()
}

// catchUpLimit bounds how late an iteration may start on the wall clock and
// still be placed right after the previous one on the model's time line
// (its sleep shortened by the delay), so that timer and scheduling delays
// of a busy host do not pile up into lost engine time. A longer gap is
// real: the model's time jumps to the clock's.
const catchUpLimit = 50 * time.Millisecond

// engineLoop runs iterations until there is nothing to do, the server
// crashes or shuts down. While the server is hung it runs none.
func (s *Server) engineLoop() {
	stop := func() {
		s.mu.Lock()
		s.engineActive = false
		s.mu.Unlock()
	}
	continuing := false // the previous iteration of this run just ended
	for {
		s.mu.Lock()
		hung := s.hung
		s.mu.Unlock()
		if hung {
			continuing = false
			if err := s.waitWhileHung(s.engineCtx, nil); err != nil {
				stop()
				return
			}
		}
		s.mu.Lock()
		it := s.nextIteration()
		if it == nil {
			s.engineActive = false
			s.mu.Unlock()
			return
		}
		d := s.scale(it.cost)
		start, sleep := s.modelNow(), d
		if lag := s.clock.Now().Sub(s.engineTime); continuing && lag > 0 && lag <= catchUpLimit {
			start, sleep = s.engineTime, max(d-lag, 0)
		}
		s.mu.Unlock()

		if err := s.clock.Sleep(s.engineCtx, sleep); err != nil {
			stop()
			return
		}

		s.mu.Lock()
		end := start.Add(d)
		if end.After(s.engineTime) {
			s.engineTime = end
		}
		s.completeIteration(it, end)
		s.mu.Unlock()
		continuing = true
	}
}

// nextIteration plans the next iteration, nil when there is nothing to
// run. Called with s.mu held.
func (s *Server) nextIteration() *iteration {
	s.startTransfers()
	if it := s.startPrefill(); it != nil {
		return it
	}
	return s.startDecodeStep()
}

// startTransfers moves handed-off requests at the head of the queue into
// the batch, with the blocks of their prompts, while a slot and the blocks
// are free, and starts their KV transfers. Called with s.mu held.
func (s *Server) startTransfers() {
	for len(s.queue) > 0 && s.queue[0].handoff && len(s.batch) < s.cfg.TotalSlots {
		r := s.queue[0]
		hold, _, ok := s.kv.acquire(nil, len(r.job.prompt))
		if !ok {
			return // first come, first served
		}
		s.queue = slices.Delete(s.queue, 0, 1)
		s.batch = append(s.batch, r)
		r.state, r.hold = stateTransferring, hold
		go s.transferKV(r, s.scale(r.transfer))
	}
}

// transferKV waits for r's KV cache to arrive, then lets it decode.
func (s *Server) transferKV(r *engineRequest, d time.Duration) {
	if s.clock.Sleep(r.ctx, d) != nil {
		return // withdrawn, crashed: withdraw releases what it holds
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.state == stateTransferring {
		r.state = stateRunning
		s.kickEngine()
	}
}

// startPrefill moves the queue's head into the batch, with its KV blocks,
// if a slot and the blocks are free.
func (s *Server) startPrefill() *iteration {
	if len(s.queue) == 0 || len(s.batch) >= s.cfg.TotalSlots {
		return nil
	}
	r := s.queue[0]
	if r.handoff {
		return nil // it waits for a slot or blocks (startTransfers): so does everyone behind it
	}
	promptLen := len(r.job.prompt)
	ctxTokens := promptLen + r.generated // a preempted request recomputes its tokens too
	hold, matched, ok := s.kv.acquire(r.hashes, ctxTokens)
	if !ok {
		return nil // first come, first served: everyone waits for the head
	}
	s.queue = slices.Delete(s.queue, 0, 1)
	s.batch = append(s.batch, r)
	r.state, r.hold = stateRunning, hold
	cached := min(matched*s.cfg.BlockSize, promptLen)
	if !r.prefilled {
		r.prefilled, r.cachedTokens = true, cached
		s.promptTokens.Add(uint64(promptLen))
	}
	compute := max(ctxTokens-cached, 1)
	return &iteration{prefill: r, cost: time.Duration(compute) * s.prefillPerToken}
}

// startDecodeStep gives every running request the block for the KV its
// next token writes, preempting the latest started ones when the cache
// cannot, and plans a step of the batch.
// Requests whose KV transfer is under way hold their slot and blocks but
// are not in the step.
func (s *Server) startDecodeStep() *iteration {
	decoding := func() []*engineRequest {
		var out []*engineRequest
		for _, r := range s.batch {
			if r.state == stateRunning {
				out = append(out, r)
			}
		}
		return out
	}
	batch := decoding()
	for len(batch) > 0 {
		need := 0
		for _, r := range batch {
			need += s.kv.growth(r.hold, len(r.job.prompt)+r.generated)
		}
		if need <= s.kv.available() {
			break
		}
		s.preempt(s.batch[len(s.batch)-1])
		batch = decoding()
	}
	if len(batch) == 0 {
		return nil
	}
	for _, r := range batch {
		s.kv.grow(r.hold, len(r.job.prompt)+r.generated)
	}
	b := len(batch)
	return &iteration{
		batch: batch,
		cost:  s.decodePerToken + time.Duration(b-1)*s.decodePerBatchedRequest,
	}
}

// preempt sends a running request back to the head of the queue and frees
// its blocks.
// A handed-off request leaves the engine instead, to be recomputed.
func (s *Server) preempt(r *engineRequest) {
	s.kv.release(r.hold)
	r.hold = nil
	s.batch = slices.DeleteFunc(s.batch, func(x *engineRequest) bool { return x == r })
	s.preemptions++
	if r.handoff {
		r.state = stateRecompute
		r.signal()
		return
	}
	s.queue = slices.Insert(s.queue, 0, r)
	r.state = stateQueued
}

// completeIteration hands out the tokens an iteration produced, at end.
func (s *Server) completeIteration(it *iteration, end time.Time) {
	if r := it.prefill; r != nil {
		if r.state != stateRunning {
			return // withdrawn during its prefill
		}
		if r.hashes != nil {
			s.kv.publish(r.hold, r.hashes)
		}
		s.emit(r, end)
		return
	}
	for _, r := range it.batch {
		if r.state == stateRunning {
			s.emit(r, end)
		}
	}
}

// emit gives r its next token.
func (s *Server) emit(r *engineRequest, at time.Time) {
	r.generated++
	r.tokenTimes = append(r.tokenTimes, at)
	s.generationTokens.Add(1)
	if r.handoff {
		s.pdDecodeTokens.Add(1)
	}
	if r.generated >= r.total {
		s.kv.release(r.hold)
		r.hold = nil
		s.batch = slices.DeleteFunc(s.batch, func(x *engineRequest) bool { return x == r })
		r.state = stateDone
	}
	r.signal()
}

// withdraw takes an unfinished request out of the engine and frees what it
// holds. Called with s.mu held.
func (s *Server) withdraw(r *engineRequest) {
	switch r.state {
	case stateQueued:
		s.queue = slices.DeleteFunc(s.queue, func(x *engineRequest) bool { return x == r })
	case stateRunning, stateTransferring:
		s.kv.release(r.hold)
		r.hold = nil
		s.batch = slices.DeleteFunc(s.batch, func(x *engineRequest) bool { return x == r })
	default:
		return
	}
	r.state = stateGone
	if len(s.queue) > 0 {
		s.kickEngine() // the slot or blocks may be what the queue's head waits for
	}
}

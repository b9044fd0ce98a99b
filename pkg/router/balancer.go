package router

import (
	"errors"
	"time"
)

// Why a pick failed.
var (
	// errNoInstance: no instance is routable (503).
	errNoInstance = errors.New("no instance is ready to serve")
	// errAllBusy: every routable instance has its maximum of requests in
	// flight (429).
	errAllBusy = errors.New("every instance has its maximum of requests in flight")
	// errTriedAll: every routable instance was tried already for this request.
	errTriedAll = errors.New("every instance failed this request")
)

// Reasons of a decision, the label of decisions_total.
const (
	reasonRoundRobin    = "round_robin"   // the next unsaturated instance in turn
	reasonLeastLoad     = "least_load"    // the least-loaded unsaturated instance
	reasonAllSaturated  = "all_saturated" // every instance saturated: the least-loaded one
	reasonAffinity      = "affinity"      // the instance holding the longest prefix
	reasonRehome        = "rehome"        // the prefix's instance saturated: least-loaded, re-homed
	reasonRendezvous    = "rendezvous"    // no instance holds the prefix: rendezvous on the conversation
	reasonMissLeastLoad = "miss_overload" // no prefix, and the rendezvous instance is busier than others: the best-scoring of those
	reasonLowReuse      = "low_reuse"     // recent chats show no reuse: least-loaded
	reasonNotChat       = "not_chat"      // cache_affinity for a request that is not a chat: least-loaded
)

// Results of a cache_affinity lookup, the label of affinity_lookups_total.
const (
	lookupHit      = "hit"
	lookupMiss     = "miss"
	lookupRehomed  = "rehomed"
	lookupBalanced = "balanced"
)

// affinityCounts are cache_affinity's outcomes since the router started
// (the same counts as the affinity_* series), for the routes report.
type affinityCounts struct {
	lookups                 map[string]int64 // by lookupHit, lookupMiss, ...
	promptBlocks, hitBlocks int64
}

// choice is a routing decision.
type choice struct {
	b      *backend
	reason string
	// hitBlocks: the prompt blocks the chosen instance is expected to hold;
	// uncached estimates the prompt tokens it still has to prefill.
	hitBlocks int
	uncached  int
	// lookup is the cache_affinity outcome, "" for other algorithms.
	lookup string
}

// pick chooses an instance for a request among the routable ones not in
// tried, and books the request on it. first is false on retries, which do
// not count in the hit-rate window. Callers hold no lock.
func (r *Router) pick(p *prompt, tried map[*backend]bool, first bool) (*attempt, error) {
	return r.pickPlain(p, tried, first, false)
}

// pickPlain is pick for a request sent to one instance. Instances with a
// Prefill/Decode role are served in pairs (pickPair) and left out, unless
// anyRole: a request any instance answers alone (models, tokenizer) may go
// to one whose role is ready.
func (r *Router) pickPlain(p *prompt, tried map[*backend]bool, first, anyRole bool) (*attempt, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	var candidates []*backend
	routable := 0
	full := 0
	for _, b := range r.order {
		if !b.routable(now) || (b.inst.Role != "" && !(anyRole && b.roleReady())) {
			continue
		}
		routable++
		if tried[b] {
			continue
		}
		if b.inflight >= r.cfg.MaxInflightPerInstance {
			full++
			continue
		}
		candidates = append(candidates, b)
	}
	if len(candidates) == 0 {
		switch {
		case routable == 0:
			return nil, errNoInstance
		case full > 0:
			return nil, errAllBusy
		default:
			return nil, errTriedAll
		}
	}
	return r.bookLocked(r.decideLocked(candidates, p, first), p, first), nil
}

// decideLocked chooses among candidates by the algorithm.
func (r *Router) decideLocked(candidates []*backend, p *prompt, first bool) choice {
	switch r.cfg.Algorithm {
	case RoundRobin:
		return r.pickRoundRobin(candidates)
	case LeastLoad:
		return r.pickLeastLoad(candidates, reasonLeastLoad)
	default:
		return r.pickAffinity(candidates, p, first)
	}
}

// bookLocked books a request on the instance chosen: it is in flight there,
// waiting for its first byte, until finish.
func (r *Router) bookLocked(c choice, p *prompt, first bool) *attempt {
	if c.lookup != lookupHit {
		c.uncached = p.tokens
	}
	b := c.b
	b.inflight++
	b.prefilling++
	b.pendingPrefill += c.uncached
	b.sincePoll++
	r.metrics.decisions.WithLabelValues(string(r.cfg.Algorithm), c.reason).Inc()
	if c.lookup != "" {
		r.metrics.affinityLookups.WithLabelValues(c.lookup).Inc()
		r.affinity.lookups[c.lookup]++
		if first {
			r.metrics.affinityPromptBlocks.Add(float64(len(p.blocks)))
			r.metrics.affinityHitBlocks.Add(float64(c.hitBlocks))
			r.affinity.promptBlocks += int64(len(p.blocks))
			r.affinity.hitBlocks += int64(c.hitBlocks)
		}
	}
	return &attempt{choice: c, epoch: b.statusEpoch}
}

// unsaturated returns the candidates that are not saturated, or all of them
// when every one is (an instance queues what it cannot run yet).
func (r *Router) unsaturated(candidates []*backend) ([]*backend, bool) {
	var out []*backend
	for _, b := range candidates {
		if !b.saturated(r.cfg.SlotsThreshold, r.cfg.BlocksThreshold) {
			out = append(out, b)
		}
	}
	if len(out) == 0 {
		return candidates, false
	}
	return out, true
}

// pickRoundRobin is MindIE Coordinator's round_robin: advance the cursor
// first (so the first request goes to the second instance, as there), walk
// the ring once and take the first instance that is not saturated. When
// all are, the Coordinator queues the request until one frees up; the
// router sends it to the least-loaded one instead, which queues it itself.
func (r *Router) pickRoundRobin(candidates []*backend) choice {
	ok := make(map[*backend]bool, len(candidates))
	for _, b := range candidates {
		ok[b] = true
	}
	n := len(r.order)
	for i := 0; i < n; i++ {
		r.cursor = (r.cursor + 1) % n
		b := r.order[r.cursor]
		if ok[b] && !b.saturated(r.cfg.SlotsThreshold, r.cfg.BlocksThreshold) {
			return choice{b: b, reason: reasonRoundRobin}
		}
	}
	return r.pickLeastLoad(candidates, reasonAllSaturated)
}

// pickLeastLoad takes the unsaturated candidate with the least load, ties
// broken at random.
func (r *Router) pickLeastLoad(candidates []*backend, reason string) choice {
	pool, ok := r.unsaturated(candidates)
	if !ok {
		reason = reasonAllSaturated
	}
	return choice{b: r.leastLoaded(pool), reason: reason}
}

func (r *Router) leastLoaded(pool []*backend) *backend {
	var best *backend
	var bestLoad float64
	ties := 0
	for _, b := range pool {
		l := b.load(&r.cfg)
		switch {
		case best == nil || l < bestLoad:
			best, bestLoad, ties = b, l, 1
		case l == bestLoad:
			// Reservoir sampling keeps each tied instance with equal chance.
			ties++
			if r.rand.IntN(ties) == 0 {
				best = b
			}
		}
	}
	return best
}

// pickAffinity is cache_affinity: sticky until saturated.
//
//   - Not a chat: least-loaded.
//   - Recent chats show no reuse: least-loaded (no affinity to lose, and
//     affinity would only skew the load).
//   - Some unsaturated instance holds a prefix of the chat worth following
//     (this conversation's own turns, or a shared prefix such as a system
//     prompt making at least AffinityMinMatch of the prompt) and its load is
//     within AffinityMaxImbalance of the least-loaded one's: the one holding
//     the longest prefix (ties: least-loaded).
//   - Instances hold a prefix but all are saturated or overloaded: the
//     least-loaded one; the conversation is re-homed there.
//   - Nobody holds a prefix: rendezvous hashing of the conversation over
//     the unsaturated instances within AffinityNewMaxImbalance of the
//     least load, so that router replicas that never saw it agree while
//     the load is even, and a first turn never queues behind a busy
//     instance it gains nothing from.
func (r *Router) pickAffinity(candidates []*backend, p *prompt, first bool) choice {
	if p == nil || p.blocks == nil {
		return r.pickLeastLoad(candidates, reasonNotChat)
	}
	depth := r.index.match(p.blocks)
	if first {
		best := 0
		for _, d := range depth {
			best = max(best, d)
		}
		r.index.observe(best, len(p.blocks))
	}
	pool, _ := r.unsaturated(candidates)
	if r.index.lowReuse(r.cfg.AffinityMinHitRate) {
		c := r.pickLeastLoad(candidates, reasonLowReuse)
		c.lookup = lookupBalanced
		c.hitBlocks = depth[c.b.inst.Name]
		return c
	}
	minLoad := r.leastLoaded(pool).load(&r.cfg)
	limit := minLoad + r.cfg.AffinityMaxImbalance
	var warm *backend
	warmDepth := 0
	var warmLoad float64
	worthy := func(d int) bool {
		return d > p.conversationBlock ||
			float64(p.blockEnds[d-1]) >= r.cfg.AffinityMinMatch*float64(p.blockEnds[len(p.blockEnds)-1])
	}
	held := false
	for _, b := range pool {
		d := depth[b.inst.Name]
		if d == 0 || !worthy(d) {
			continue
		}
		l := b.load(&r.cfg)
		if l > limit {
			continue
		}
		if warm == nil || d > warmDepth || (d == warmDepth && l < warmLoad) {
			warm, warmDepth, warmLoad = b, d, l
		}
	}
	if warm != nil {
		hitChars := p.blockEnds[warmDepth-1]
		return choice{b: warm, reason: reasonAffinity, lookup: lookupHit, hitBlocks: warmDepth,
			uncached: max(p.tokens-estimateTokens(hitChars), 0)}
	}
	for _, d := range depth {
		held = held || worthy(d)
	}
	if held {
		c := r.pickLeastLoad(candidates, reasonRehome)
		c.lookup = lookupRehomed
		return c
	}
	// A new conversation: rendezvous hashing among the instances about as
	// little loaded as the least-loaded one. While the load is even, that
	// is every instance, and router replicas agree on the instance without
	// sharing state; an instance busier than that by more than
	// AffinityNewMaxImbalance is passed over, for the best-scoring
	// instance among the others (a first turn placed on a busy instance
	// waits for nothing it gains from).
	nearLimit := minLoad + r.cfg.AffinityNewMaxImbalance
	var home, near *backend
	var homeScore, nearScore uint64
	for _, b := range pool {
		s := rendezvousScore(p.conversation, b.inst.Name)
		if home == nil || s > homeScore {
			home, homeScore = b, s
		}
		if b.load(&r.cfg) <= nearLimit && (near == nil || s > nearScore) {
			near, nearScore = b, s
		}
	}
	if near != home {
		return choice{b: near, reason: reasonMissLeastLoad, lookup: lookupMiss}
	}
	return choice{b: home, reason: reasonRendezvous, lookup: lookupMiss}
}

// attempt is one sending of a request to an instance, booked on it until
// finished.
type attempt struct {
	choice
	epoch     uint64 // the instance's status epoch when booked
	firstByte bool
}

// gotFirstByte notes that the instance answered: its prefill is done.
func (r *Router) gotFirstByte(a *attempt) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !a.firstByte {
		a.firstByte = true
		a.b.prefilling--
		a.b.pendingPrefill -= a.uncached
	}
}

// verdict is what an attempt says about its instance, for the breaker.
type verdict int

const (
	verdictNone  verdict = iota // nothing (overload, the client left)
	verdictOK                   // the instance answered
	verdictFault                // connect error, 5xx, no first byte in time
)

// finish releases an attempt and feeds the circuit breaker.
func (r *Router) finish(a *attempt, v verdict) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := a.b
	b.inflight--
	if !a.firstByte {
		a.firstByte = true
		b.prefilling--
		b.pendingPrefill -= a.uncached
	}
	if a.epoch == b.statusEpoch && b.sincePoll > 0 {
		b.sincePoll--
	}
	switch v {
	case verdictFault:
		b.faults++
		if b.failed(time.Now(), r.cfg.BreakerFailures, r.cfg.BreakerBackoff, r.cfg.BreakerMaxBackoff) {
			r.metrics.breakerTrips.WithLabelValues(b.inst.Name).Inc()
			r.log.Info("instance taken out after repeated failures", "instance", b.inst.Name, "until", b.openUntil)
		}
	case verdictOK:
		b.served++
		b.succeeded()
	}
}

package mindie

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ErrCrashed is what Serve returns after Crash, and what requests caught by
// the crash fail with.
var ErrCrashed = errors.New("mindie simulator crashed (injected fault)")

// errClosing stops requests blocked by a hang when Serve shuts down.
var errClosing = errors.New("mindie simulator is shutting down")

// errForceStopped is the cause of requests aborted by a forced stop.
var errForceStopped = errors.New("request aborted: the service was stopped with mode=Force")

// errRequestFault is the cause of the requests FailRunning fails.
var errRequestFault = errors.New("request failed: NPU fault (RestartRequest) while it ran on the NPU; the request may be retried")

// errNPUFailed is the cause of the requests failed by SetNPUFailed, and
// why new ones are refused while the NPUs are unusable.
var errNPUFailed = errors.New("request failed: the NPU is unusable (NPU fault)")

// State is the simulated server's lifecycle state.
type State string

// The states, in the order a server goes through them (or to crashed from
// any of them).
const (
	StateLoading  State = "loading"  // the model is loading: neither live nor ready
	StateReady    State = "ready"    // serving
	StateStopping State = "stopping" // /stopService: draining running requests
	StateStopped  State = "stopped"  // stopped: no longer live
	StateCrashed  State = "crashed"  // Crash: no longer answering at all
)

type phase int

const (
	phaseServing phase = iota // loading or ready, depending on the clock
	phaseStopping
	phaseStopped
	phaseCrashed
)

// Option configures a Server.
type Option func(*Server)

// WithClock makes the server read the time and spend modelled time through
// c instead of the wall clock.
func WithClock(c Clock) Option { return func(s *Server) { s.clock = c } }

// WithLogWriter sends the server's log (one line per request and lifecycle
// event) to w. The default discards it.
func WithLogWriter(w io.Writer) Option { return func(s *Server) { s.logw = w } }

// WithDrainTimeout bounds, in wall time, how long Serve waits for running
// requests to finish when its context ends before it aborts them. The
// default is 30 seconds.
func WithDrainTimeout(d time.Duration) Option { return func(s *Server) { s.drainTimeout = d } }

// Server is a simulated MindIE Server. Its methods are safe for concurrent
// use.
type Server struct {
	cfg   Config
	clock Clock
	// The modelled durations, NoDelay resolved to zero.
	loadTime, prefillPerToken, decodePerToken, decodePerBatchedRequest time.Duration
	roleSwitchTime, linkTime, kvTransferPerToken, dresultKeepAlive     time.Duration
	logw                                                               io.Writer
	logMu                                                              sync.Mutex
	drainTimeout                                                       time.Duration
	start                                                              time.Time
	latency                                                            latencyWindow
	// PD disaggregation (pd.go, dresult.go).
	pdClient *http.Client
	dresult  dresultHub
	// engineCtx ends when the server crashes or shuts down: the engine
	// stops running iterations.
	engineCtx  context.Context
	stopEngine context.CancelFunc

	mu          sync.Mutex
	phase       phase
	role        Role
	roleReadyAt time.Time // RoleSwitching until then (and until loaded)
	localID     *uint64   // this instance's id, from the last role POST that gave one
	links       []*kvLink // KV links to the peers of the last role POST
	hung        bool
	unhung      chan struct{}                      // closed when the current hang is cleared
	npuFailed   bool                               // SetNPUFailed: the NPUs are unusable
	active      map[uint64]context.CancelCauseFunc // admitted requests
	nextID      uint64
	serving     bool
	infAddr     net.Addr
	mgmtAddr    net.Addr
	listening   chan struct{} // closed once Serve has bound its listeners
	// The engine (scheduler.go).
	queue        []*engineRequest // waiting for a prefill, first come first served
	batch        []*engineRequest // running (holding a slot), in the order they started
	kv           *kvCache
	engineActive bool      // the engine's loop runs
	engineTime   time.Time // the end of the engine's last iteration
	preemptions  uint64

	inflight    sync.WaitGroup // admitted requests, for Stop to wait on
	crashed     chan struct{}
	closing     chan struct{} // closed when Serve shuts down
	closeOnce   sync.Once
	readyOnce   sync.Once
	hungWaiters atomic.Int64 // requests blocked by the hang right now

	slowdown         atomic.Uint64 // math.Float64bits of the factor
	received         atomic.Uint64
	succeeded        atomic.Uint64
	failed           atomic.Uint64
	promptTokens     atomic.Uint64
	generationTokens atomic.Uint64
	// PD counters and injected faults.
	pdPrefills, pdRecomputes, pdDecodes, pdDecodeTokens atomic.Uint64
	failDecodes, recomputeDecodes                       atomic.Int64
}

// New returns a simulated MindIE Server whose model starts loading now (by
// its clock). cfg's zero fields take the defaults; an invalid cfg is an
// error.
func New(cfg Config, opts ...Option) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:                     cfg,
		loadTime:                max(cfg.LoadTime, 0),
		prefillPerToken:         max(cfg.PrefillPerToken, 0),
		decodePerToken:          max(cfg.DecodePerToken, 0),
		decodePerBatchedRequest: max(cfg.DecodePerBatchedRequest, 0),
		roleSwitchTime:          max(cfg.RoleSwitchTime, 0),
		linkTime:                max(cfg.LinkTime, 0),
		kvTransferPerToken:      max(cfg.KVTransferPerToken, 0),
		dresultKeepAlive:        max(cfg.DResultKeepAlive, 0),
		pdClient:                newPDClient(),
		dresult:                 dresultHub{limit: DResultBufferLimit},
		clock:                   RealClock{},
		logw:                    io.Discard,
		drainTimeout:            30 * time.Second,
		kv:                      newKVCache(cfg.BlockSize, cfg.CacheBlocks),
		latency:                 newLatencyWindow(1000),
		role:                    cfg.Role,
		active:                  make(map[uint64]context.CancelCauseFunc),
		listening:               make(chan struct{}),
		crashed:                 make(chan struct{}),
		closing:                 make(chan struct{}),
	}
	s.engineCtx, s.stopEngine = context.WithCancel(context.Background())
	for _, opt := range opts {
		opt(s)
	}
	if s.logw == nil {
		s.logw = io.Discard
	}
	s.slowdown.Store(math.Float64bits(1))
	s.start = s.clock.Now()
	s.roleReadyAt = s.start // the configured role is ready once the model is
	s.logf("starting MindIE Server SIMULATOR %s: no model and no NPU, answers are deterministic filler, timings are modelled; "+
		"model=%s load_time=%s prefill_per_token=%s decode_per_token=%s decode_per_batched_request=%s block_size=%d cache_blocks=%d "+
		"slots=%d max_concurrent_requests=%d prefix_cache=%t role=%s role_switch_time=%s link_time=%s kv_transfer_per_token=%s",
		cfg.Version, cfg.ModelID, s.loadTime, s.prefillPerToken, s.decodePerToken, s.decodePerBatchedRequest, cfg.BlockSize,
		cfg.CacheBlocks, cfg.TotalSlots, cfg.MaxConcurrentRequests, !cfg.DisablePrefixCache, cfg.Role.statusName(),
		s.roleSwitchTime, s.linkTime, s.kvTransferPerToken)
	s.loaded() // logs "ready" at once when there is nothing to load
	return s, nil
}

// Config returns the server's configuration, defaults filled in (see
// Config.WithDefaults).
func (s *Server) Config() Config { return s.cfg }

func (s *Server) logf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	s.logMu.Lock()
	defer s.logMu.Unlock()
	fmt.Fprintf(s.logw, "%s mindie-simulator: %s\n", s.clock.Now().UTC().Format("2006-01-02T15:04:05.000Z"), line)
}

// loaded reports whether LoadTime has passed since New, and logs the moment
// it is first seen to have.
func (s *Server) loaded() bool {
	if s.clock.Now().Sub(s.start) < s.loadTime {
		return false
	}
	s.readyOnce.Do(func() { s.logf("model %s loaded (simulated, %s): ready", s.cfg.ModelID, s.loadTime) })
	return true
}

// Ready reports whether the server accepts inference requests: the model is
// loaded, the server neither stopped nor crashed, and its NPUs are usable.
func (s *Server) Ready() bool {
	s.mu.Lock()
	ph, failed := s.phase, s.npuFailed
	s.mu.Unlock()
	return ph == phaseServing && !failed && s.loaded()
}

// NPUFailed reports whether the server's NPUs are unusable (SetNPUFailed).
func (s *Server) NPUFailed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.npuFailed
}

// State returns the server's lifecycle state.
func (s *Server) State() State {
	s.mu.Lock()
	ph := s.phase
	s.mu.Unlock()
	switch ph {
	case phaseStopping:
		return StateStopping
	case phaseStopped:
		return StateStopped
	case phaseCrashed:
		return StateCrashed
	}
	if !s.loaded() {
		return StateLoading
	}
	return StateReady
}

// SetHung makes the server stop answering (true) or resume (false). While
// hung, every request blocks until the hang is cleared or its client gives
// up, running requests produce no tokens, and /health/timed-<N> answers 500
// after its N seconds.
func (s *Server) SetHung(hung bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if hung == s.hung {
		return
	}
	s.hung = hung
	if hung {
		s.unhung = make(chan struct{})
		s.logf("HANG injected: requests block until the hang is cleared")
	} else {
		close(s.unhung)
		s.logf("hang cleared: answering again")
	}
}

// Crash simulates the process dying: running requests are dropped, every
// connection is closed without an answer, and Serve closes its listeners
// and returns ErrCrashed. A crashed server stays crashed; make a new one to
// simulate a restart.
func (s *Server) Crash() {
	s.mu.Lock()
	if s.phase == phaseCrashed {
		s.mu.Unlock()
		return
	}
	s.phase = phaseCrashed
	close(s.crashed)
	s.stopEngine()
	for _, cancel := range s.active {
		cancel(ErrCrashed)
	}
	s.mu.Unlock()
	s.logf("CRASH injected: dropping all requests and connections")
}

// FailRunning fails the requests running on the NPU right now, as an NPU
// fault of level RestartRequest does to a real engine: every request
// holding a slot of the batch (being prefilled or decoded, or, on a decode
// instance, receiving its KV cache) ends with a 500 engine error. A client
// still waiting for its answer gets the error as the response (OpenAI
// {"error":{"type":"server_error",...}}, else {"error","error_type":
// "engine_error"}); a stream already under way gets it as its last event
// and ends without its end marker; a request handed over by a prefill
// instance gets error: on /dresult. Tokens generated before the fault were
// sent. Waiting requests and new ones are served as usual. It returns the
// number of requests it failed.
func (s *Server) FailRunning() int {
	s.mu.Lock()
	running := slices.Clone(s.batch)
	for _, r := range running {
		r.cancel(errRequestFault)
		s.withdraw(r) // at once: the engine gives it no further token
	}
	s.mu.Unlock()
	s.logf("NPU FAULT injected (RestartRequest): %d running requests failed", len(running))
	return len(running)
}

// SetNPUFailed makes the server's NPUs unusable (true), as an NPU fault
// of level SeparateNPU does, or usable again (false). While they are
// unusable, every request in flight (running or waiting) fails as with
// FailRunning, new generation requests (and PD hand-offs) are refused with
// a 500 engine error, and the health checks fail: /v2/health/live,
// /v2/health/ready, /health and /health/timed-<N> answer 503. The process
// still runs: /v1/status, /info, /metrics and the other endpoints answer.
// Once usable again the server serves as before (its prefix cache is
// kept).
func (s *Server) SetNPUFailed(failed bool) {
	s.mu.Lock()
	if failed == s.npuFailed {
		s.mu.Unlock()
		return
	}
	s.npuFailed = failed
	var inFlight []*engineRequest
	if failed {
		inFlight = append(slices.Clone(s.batch), s.queue...)
		for _, r := range inFlight {
			r.cancel(errNPUFailed)
			s.withdraw(r)
		}
	}
	s.mu.Unlock()
	if failed {
		s.logf("NPU FAILURE (injected): %d requests in flight failed; health checks and new requests fail until it is cleared", len(inFlight))
	} else {
		s.logf("NPU failure cleared: the NPUs are usable again")
	}
}

// SetSlowdown multiplies every modelled request duration (prefill, decode,
// the timed health check's inference) by factor, from the next iteration
// of the engine on.
// A factor that is not a positive number resets it to 1.
func (s *Server) SetSlowdown(factor float64) {
	if !(factor > 0) || math.IsInf(factor, 0) {
		factor = 1
	}
	s.slowdown.Store(math.Float64bits(factor))
	s.logf("slowdown set to %gx", factor)
}

func (s *Server) slowdownFactor() float64 { return math.Float64frombits(s.slowdown.Load()) }

// scale applies the slowdown to a modelled duration.
func (s *Server) scale(d time.Duration) time.Duration {
	f := float64(d) * s.slowdownFactor()
	if f >= math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(f)
}

// SetRole assigns the instance's PD role as POST /v1/role/<role> with no
// peers does: a different role switches (RoleSwitching for
// Config.RoleSwitchTime) and drops the links; the same role drops them.
func (s *Server) SetRole(role Role) error {
	return s.applyRole(role, nil, nil)
}

// Stop stops the service the way GET /stopService does: new requests are
// refused, running and waiting ones finish (or, with force, are aborted),
// and then the server is stopped and no longer live. It returns when the
// server has stopped, or with ctx's error if ctx ends first.
func (s *Server) Stop(ctx context.Context, force bool) error {
	_, err := s.stop(ctx, force)
	return err
}

func (s *Server) stop(ctx context.Context, force bool) (aborted int, err error) {
	mode := "graceful"
	if force {
		mode = "force"
	}
	s.mu.Lock()
	switch s.phase {
	case phaseCrashed:
		s.mu.Unlock()
		return 0, ErrCrashed
	case phaseServing:
		s.phase = phaseStopping
		s.logf("stopping (%s): refusing new requests; %d running, %d waiting", mode, len(s.batch), len(s.queue))
	}
	if force && s.phase == phaseStopping {
		for _, cancel := range s.active {
			cancel(errForceStopped)
			aborted++
		}
	}
	s.mu.Unlock()

	drained := make(chan struct{})
	go func() {
		s.inflight.Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-s.crashed:
		return aborted, ErrCrashed
	case <-ctx.Done():
		return aborted, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.phase == phaseStopping {
		s.phase = phaseStopped
		s.logf("stopped (%s, %d requests aborted): no longer live", mode, aborted)
	}
	return aborted, nil
}

// waitWhileHung blocks while the server is hung. It returns nil once it is
// not, ctx's error if ctx ends first, errHealthTimeout if timeout fires
// first, and ErrCrashed or errClosing if the server crashes or shuts down.
func (s *Server) waitWhileHung(ctx context.Context, timeout <-chan struct{}) error {
	for {
		s.mu.Lock()
		if !s.hung {
			s.mu.Unlock()
			return nil
		}
		unhung := s.unhung
		s.mu.Unlock()

		s.hungWaiters.Add(1)
		var err error
		select {
		case <-unhung:
		case <-ctx.Done():
			err = ctx.Err()
		case <-timeout:
			err = errHealthTimeout
		case <-s.crashed:
			err = ErrCrashed
		case <-s.closing:
			err = errClosing
		}
		s.hungWaiters.Add(-1)
		if err != nil {
			return err
		}
	}
}

// Stats is a snapshot of the server's state and counters.
type Stats struct {
	State     State
	Hung      bool
	NPUFailed bool // SetNPUFailed made the NPUs unusable
	Slowdown  float64
	Role      Role
	// RoleStatus is RoleUnknown, RoleSwitching or RoleReady; Peers are the
	// KV links to the peers of the last role POST.
	RoleStatus string
	Peers      []PeerStatus

	// Generation requests received, completed, and failed (invalid,
	// refused, aborted or abandoned by their client).
	RequestsReceived  uint64
	RequestsSucceeded uint64
	RequestsFailed    uint64
	// Tokens of the prompts prefilled (cached or not) and tokens generated.
	PromptTokens     uint64
	GenerationTokens uint64
	// Prefix cache lookups, in blocks (one per prefill, so a preempted
	// request's second prefill counts again), the blocks it holds
	// (published blocks, held by requests or not) and the blocks evicted.
	PrefixCacheHits   uint64
	PrefixCacheMisses uint64
	CachedBlocks      int
	EvictedBlocks     uint64
	// Preemptions counts running requests sent back to the queue because
	// the KV cache was full.
	Preemptions uint64

	// Running requests hold a slot (they are being prefilled or decoded);
	// waiting ones are queued for their prefill.
	Running    int
	Waiting    int
	FreeSlots  int
	TotalSlots int
	// FreeBlocks are the KV blocks no running request holds (cached blocks
	// nobody holds are reclaimable, so they count as free).
	FreeBlocks  int
	TotalBlocks int

	// PD disaggregation. A prefill instance counts the PD requests it
	// prefilled and answered (PDRecomputes of them with is-recompute:
	// true); a decode instance counts the requests handed to it that it
	// accepted and the tokens it generated for them (its GenerationTokens
	// include them). DResultBuffered messages wait for a /dresult consumer;
	// DResultConnected says whether one is connected.
	PDPrefillRequests uint64
	PDRecomputes      uint64
	PDDecodeRequests  uint64
	PDDecodeTokens    uint64
	DResultBuffered   int
	DResultConnected  bool
}

// Stats returns a snapshot of the server's state and counters.
func (s *Server) Stats() Stats {
	st := Stats{
		State:             s.State(),
		Slowdown:          s.slowdownFactor(),
		RequestsReceived:  s.received.Load(),
		RequestsSucceeded: s.succeeded.Load(),
		RequestsFailed:    s.failed.Load(),
		PromptTokens:      s.promptTokens.Load(),
		GenerationTokens:  s.generationTokens.Load(),
		TotalSlots:        s.cfg.TotalSlots,
		TotalBlocks:       s.cfg.CacheBlocks,
	}
	st.PDPrefillRequests, st.PDRecomputes = s.pdPrefills.Load(), s.pdRecomputes.Load()
	st.PDDecodeRequests, st.PDDecodeTokens = s.pdDecodes.Load(), s.pdDecodeTokens.Load()
	st.DResultBuffered, st.DResultConnected = s.dresult.state()
	s.mu.Lock()
	st.Hung = s.hung
	st.NPUFailed = s.npuFailed
	st.Role = s.role
	st.RoleStatus = s.roleStatus()
	st.Peers = s.peerStatuses()
	st.Running = len(s.batch)
	st.Waiting = len(s.queue)
	st.FreeSlots = s.cfg.TotalSlots - len(s.batch)
	st.FreeBlocks = s.kv.total - s.kv.held
	st.PrefixCacheHits, st.PrefixCacheMisses = s.kv.hits, s.kv.misses
	st.CachedBlocks = len(s.kv.cached)
	st.EvictedBlocks = s.kv.evictions
	st.Preemptions = s.preemptions
	s.mu.Unlock()
	return st
}

// latencyWindow keeps the modelled time to first token and time between
// tokens of the last requests, for /metrics-json's moving averages. A
// request with a single token has no TBT; a request handed over by a
// prefill instance has no TTFT here (its prefill instance records it).
type latencyWindow struct {
	mu        sync.Mutex
	ttft, tbt ring
}

// ring is a fixed-size window of durations.
type ring struct {
	values     []time.Duration
	next, size int
}

func (r *ring) add(d time.Duration) {
	r.values[r.next] = d
	r.next = (r.next + 1) % len(r.values)
	r.size = min(r.size+1, len(r.values))
}

func (r *ring) mean() time.Duration {
	if r.size == 0 {
		return 0
	}
	var sum time.Duration
	for _, v := range r.values[:r.size] {
		sum += v
	}
	return sum / time.Duration(r.size)
}

func newLatencyWindow(size int) latencyWindow {
	return latencyWindow{ttft: ring{values: make([]time.Duration, size)}, tbt: ring{values: make([]time.Duration, size)}}
}

func (w *latencyWindow) recordTTFT(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ttft.add(d)
}

func (w *latencyWindow) recordTBT(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.tbt.add(d)
}

// averages returns the mean TTFT and TBT over the window, zero when empty.
func (w *latencyWindow) averages() (ttft, tbt time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ttft.mean(), w.tbt.mean()
}

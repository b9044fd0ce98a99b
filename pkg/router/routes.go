package router

import (
	"encoding/json"
	"net/http"
	"os"
	"time"
)

// RoutesPath is the route of the routes report (RoutesReport), for `kubectl
// mindie routes` through the API server. It takes the same authentication
// as the inference routes.
const RoutesPath = "/router/routes"

// RoutesReport is the answer of GET /router/routes: the router's
// instances as it routes to them now, and cache_affinity's figures. The
// API server decodes it; fields are only ever added.
type RoutesReport struct {
	// Router names this router: its pod (the environment's POD_NAME, from
	// the downward API) or else the machine's host name.
	Router    string    `json:"router"`
	Algorithm Algorithm `json:"algorithm"`
	// Time is when the report was made.
	Time time.Time `json:"time"`
	// Ready is what /readyz answers; ShuttingDown is set from SIGTERM on
	// (not ready, still serving during --shutdown-delay).
	Ready        bool `json:"ready"`
	ShuttingDown bool `json:"shuttingDown,omitempty"`
	// InFlight counts the client requests in the router.
	InFlight int `json:"inFlight"`
	// Instances in the Source's order (round_robin's ring).
	Instances []InstanceReport `json:"instances"`
	// Affinity is set under cache_affinity only.
	Affinity *AffinityReport `json:"affinity,omitempty"`
	// PD is set while the Source has Prefill/Decode instances.
	PD *PDReport `json:"pd,omitempty"`
}

// InstanceReport is one instance in a RoutesReport.
type InstanceReport struct {
	Name       string `json:"name"`
	Inference  string `json:"inference"`
	Management string `json:"management,omitempty"`
	// Routable: the instance may get a new request (ready, not draining,
	// status read, breaker closed). Saturated: its free slots or KV blocks
	// are at or below the thresholds, so it gets requests only while every
	// other instance is saturated too.
	Routable  bool `json:"routable"`
	Saturated bool `json:"saturated"`
	// Why lists what keeps the instance from new requests (Why* constants):
	// empty when it is routable and not saturated.
	Why []string `json:"why,omitempty"`
	// BreakerOpenUntil is the end of the circuit breaker's back-off, while
	// it runs.
	BreakerOpenUntil *time.Time `json:"breakerOpenUntil,omitempty"`
	// StatusError is the last failed /v1/status read's error, while reads
	// fail; StatusTime the last successful read's time.
	StatusError string     `json:"statusError,omitempty"`
	StatusTime  *time.Time `json:"statusTime,omitempty"`
	// InFlight counts the requests the router has on the instance,
	// Prefilling those of them still without a first byte, PrefillTokens
	// the prompt tokens it estimates the instance still has to prefill for
	// them (released at each answer's first byte); Load is the figure
	// least_load and cache_affinity compare (see docs/router.md).
	InFlight      int     `json:"inFlight"`
	Prefilling    int     `json:"prefilling"`
	PrefillTokens int     `json:"prefillTokens"`
	Load          float64 `json:"load"`
	// From the last /v1/status read (zero before one): free and total
	// slots and KV blocks (totals the most ever seen free when the instance
	// reports none, as MindIE does), requests waiting and running.
	FreeSlots   int `json:"freeSlots"`
	TotalSlots  int `json:"totalSlots"`
	FreeBlocks  int `json:"freeBlocks"`
	TotalBlocks int `json:"totalBlocks"`
	Waiting     int `json:"waiting"`
	Running     int `json:"running"`
	// Requests counts the attempts the instance answered, Failures those it
	// failed (connect errors, 5xx, no first byte in time), since the
	// router started.
	Requests uint64 `json:"requests"`
	Failures uint64 `json:"failures"`
	// Prefill/Decode instances only: the role, group and MindIE instance
	// id (Instance), the role status and current role of the last
	// /v1/status, the peers (by id) whose KV link is ok, and for a decode
	// instance the state of the router's /dresult stream from it
	// (DresultConnected, DresultConnecting, DresultDown, DresultStandby)
	// with its last error.
	Role         string   `json:"role,omitempty"`
	Group        string   `json:"group,omitempty"`
	ID           *uint64  `json:"id,omitempty"`
	RoleStatus   string   `json:"roleStatus,omitempty"`
	CurrentRole  string   `json:"currentRole,omitempty"`
	LinkedPeers  []uint64 `json:"linkedPeers,omitempty"`
	Dresult      string   `json:"dresult,omitempty"`
	DresultError string   `json:"dresultError,omitempty"`
}

// What keeps an instance from new requests, in InstanceReport.Why.
const (
	WhyUnready       = "unready"        // its Source says it is not ready (the pod's Ready condition)
	WhyDraining      = "draining"       // going away (the pod is being deleted)
	WhyStatusPending = "status_pending" // /v1/status not read yet
	WhyStatusFailing = "status_failing" // the last --status-failures reads of /v1/status failed
	WhyBreakerOpen   = "breaker_open"   // backing off after failures, until BreakerOpenUntil
	WhySaturated     = "saturated"      // routable, but skipped while another instance is not saturated
)

// AffinityReport is cache_affinity's part of a RoutesReport. The counts run
// since the router started (the affinity_* metrics).
type AffinityReport struct {
	// Lookups of chats by outcome: Hits went where their prefix is, Misses
	// found it nowhere, Rehomed left a saturated or overloaded instance,
	// Balanced were balanced on load while reuse was low.
	Hits     int64 `json:"hits"`
	Misses   int64 `json:"misses"`
	Rehomed  int64 `json:"rehomed"`
	Balanced int64 `json:"balanced"`
	// PromptBlocks of the chats routed, and ExpectedHitBlocks of them in the
	// chosen instance's cache by the index; ExpectedHitRate is their ratio.
	PromptBlocks      int64   `json:"promptBlocks"`
	ExpectedHitBlocks int64   `json:"expectedHitBlocks"`
	ExpectedHitRate   float64 `json:"expectedHitRate"`
	// WindowHitRate is the share of prompt blocks found in the index (on
	// any instance) over the last WindowChats chats, at most
	// --affinity-hit-window.
	WindowHitRate float64 `json:"windowHitRate"`
	WindowChats   int     `json:"windowChats"`
	// LowReuse: the window is full and its hit rate below
	// --affinity-min-hit-rate, so chats are balanced on load.
	LowReuse bool `json:"lowReuse"`
	// IndexEntries are the prefix blocks the index holds, of IndexCapacity.
	IndexEntries  int `json:"indexEntries"`
	IndexCapacity int `json:"indexCapacity"`
}

// routerName is the pod's name from the downward API (POD_NAME), or the
// machine's.
func routerName() string {
	if n := os.Getenv("POD_NAME"); n != "" {
		return n
	}
	if n, err := os.Hostname(); err == nil {
		return n
	}
	return ""
}

// Routes reports the instances as the router routes to them now.
func (r *Router) Routes() RoutesReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	rep := RoutesReport{
		Router:       r.name,
		Algorithm:    r.cfg.Algorithm,
		Time:         now,
		ShuttingDown: r.stopping.Load(),
		InFlight:     r.inflight,
		Instances:    make([]InstanceReport, 0, len(r.order)),
	}
	for _, b := range r.order {
		ir := b.report(now, r.cfg)
		r.pdReportLocked(b, now, &ir)
		rep.Instances = append(rep.Instances, ir)
	}
	rep.Ready, _ = r.readinessLocked()
	rep.PD = r.pdRouterReportLocked()
	if r.cfg.Algorithm == CacheAffinity {
		a := &AffinityReport{
			Hits:              r.affinity.lookups[lookupHit],
			Misses:            r.affinity.lookups[lookupMiss],
			Rehomed:           r.affinity.lookups[lookupRehomed],
			Balanced:          r.affinity.lookups[lookupBalanced],
			PromptBlocks:      r.affinity.promptBlocks,
			ExpectedHitBlocks: r.affinity.hitBlocks,
			WindowHitRate:     r.index.hitRate(),
			WindowChats:       r.index.filled,
			LowReuse:          r.index.lowReuse(r.cfg.AffinityMinHitRate),
			IndexEntries:      r.index.len(),
			IndexCapacity:     r.index.capacity,
		}
		if a.PromptBlocks > 0 {
			a.ExpectedHitRate = float64(a.ExpectedHitBlocks) / float64(a.PromptBlocks)
		}
		rep.Affinity = a
	}
	return rep
}

// report is the instance's part of the routes report. Called with
// Router.mu held.
func (b *backend) report(now time.Time, cfg Config) InstanceReport {
	slots, blocks := b.totals()
	ir := InstanceReport{
		Name:          b.inst.Name,
		Inference:     b.inst.Inference,
		Management:    b.inst.Management,
		Routable:      b.routable(now),
		Saturated:     b.saturated(cfg.SlotsThreshold, cfg.BlocksThreshold),
		InFlight:      b.inflight,
		Prefilling:    b.prefilling,
		PrefillTokens: b.pendingPrefill,
		Load:          b.load(&cfg),
		FreeSlots:     b.status.AvailSlots,
		TotalSlots:    slots,
		FreeBlocks:    b.status.AvailBlocks,
		TotalBlocks:   blocks,
		Waiting:       b.status.Waiting,
		Running:       b.status.Running,
		Requests:      b.served,
		Failures:      b.faults,
	}
	if !b.inst.Ready {
		ir.Why = append(ir.Why, WhyUnready)
	}
	if b.inst.Draining {
		ir.Why = append(ir.Why, WhyDraining)
	}
	if b.inst.Management != "" && !b.statusOK {
		if b.statusFails == 0 {
			ir.Why = append(ir.Why, WhyStatusPending)
		} else {
			ir.Why = append(ir.Why, WhyStatusFailing)
		}
	}
	if b.statusErr != "" {
		ir.StatusError = b.statusErr
	}
	if !b.statusAt.IsZero() {
		t := b.statusAt
		ir.StatusTime = &t
	}
	if now.Before(b.openUntil) {
		t := b.openUntil
		ir.BreakerOpenUntil = &t
		ir.Why = append(ir.Why, WhyBreakerOpen)
	}
	if ir.Saturated {
		ir.Why = append(ir.Why, WhySaturated)
	}
	return ir
}

// serveRoutes answers GET /router/routes, after the same authentication
// as the inference routes.
func (r *Router) serveRoutes(w http.ResponseWriter, req *http.Request) {
	if r.admit(w, req, plainErrors) != 0 {
		return
	}
	data, err := json.Marshal(r.Routes())
	if err != nil {
		writeError(w, plainErrors, &routerError{status: http.StatusInternalServerError, kind: kindUpstream, msg: err.Error()})
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.Write(append(data, '\n'))
}

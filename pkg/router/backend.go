package router

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// backend is the router's state of one instance. Every field but the
// immutable ones is guarded by Router.mu.
type backend struct {
	inst      Instance
	inference *url.URL

	// present: in the Source's latest set. A removed backend lives on only
	// in the requests it still serves.
	present bool
	// stopPoll ends the status poller.
	stopPoll context.CancelFunc

	// The last /v1/status read.
	status      instanceStatus
	statusOK    bool // read, and not failed StatusFailures times since
	statusFails int  // failed reads in a row
	statusErr   string
	statusAt    time.Time // of the last successful read
	// maxSlots and maxBlocks stand for the totals when /v1/status has none
	// (MindIE's own answer carries only the free counts): the most ever seen
	// free.
	maxSlots, maxBlocks int
	// statusEpoch counts status reads; sincePoll is how many requests were
	// sent since the last one and are still in flight, so that the free
	// slots between two reads are not overbooked.
	statusEpoch uint64
	sincePoll   int

	// The router's own count of work in flight: the requests, those of
	// them without a first byte yet (waiting for or in their prefill), and
	// the prompt tokens those still have to prefill (estimated).
	inflight       int
	prefilling     int
	pendingPrefill int

	// What the instance did with the attempts sent to it: answered
	// (verdictOK) or failed (verdictFault), since the router started.
	served, faults uint64

	// The circuit breaker.
	failures  int       // failures in a row
	trips     int       // trips in a row, for the doubling back-off
	openUntil time.Time // out of routing until then

	// pd is the Prefill/Decode state of an instance with a role (pd.go).
	pd pdBackend
}

// instanceStatus is what the router takes from /v1/status.
type instanceStatus struct {
	AvailSlots, AvailBlocks int
	TotalSlots, TotalBlocks int
	Waiting, Running        int
	// PD servers' (pd.go): the role status and the KV links to peers.
	pd pdStatus
}

// statusDocument is MindIE Server's /v1/status (and the simulator's, which
// adds totalSlotsNum and totalBlockNum).
type statusDocument struct {
	Resource struct {
		AvailSlotsNum     *int `json:"availSlotsNum"`
		AvailBlockNum     *int `json:"availBlockNum"`
		TotalSlotsNum     int  `json:"totalSlotsNum"`
		TotalBlockNum     int  `json:"totalBlockNum"`
		WaitingRequestNum int  `json:"waitingRequestNum"`
		RunningRequestNum int  `json:"runningRequestNum"`
	} `json:"resource"`
	Service    pdServiceDocument `json:"service"`
	LinkStatus pdLinkDocument    `json:"linkStatus"`
}

// readStatus reads an instance's /v1/status.
func readStatus(ctx context.Context, client *http.Client, management string) (instanceStatus, error) {
	var st instanceStatus
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, management+statusPath, nil)
	if err != nil {
		return st, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, statusBodyLimit))
	if err != nil {
		return st, fmt.Errorf("read %s: %w", statusPath, err)
	}
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("%s answered %d", statusPath, resp.StatusCode)
	}
	var doc statusDocument
	if err := json.Unmarshal(body, &doc); err != nil {
		return st, fmt.Errorf("%s: %w", statusPath, err)
	}
	r := doc.Resource
	if r.AvailSlotsNum == nil || r.AvailBlockNum == nil {
		return st, fmt.Errorf("%s has no resource.availSlotsNum or resource.availBlockNum", statusPath)
	}
	st = instanceStatus{
		AvailSlots: *r.AvailSlotsNum, AvailBlocks: *r.AvailBlockNum,
		TotalSlots: r.TotalSlotsNum, TotalBlocks: r.TotalBlockNum,
		Waiting: r.WaitingRequestNum, Running: r.RunningRequestNum,
		pd: readPDStatus(doc.Service, doc.LinkStatus),
	}
	return st, nil
}

// setStatus records a successful status read at now.
func (b *backend) setStatus(st instanceStatus, now time.Time) {
	b.status = st
	b.statusAt = now
	b.statusOK = true
	b.statusFails = 0
	b.statusErr = ""
	b.maxSlots = max(b.maxSlots, st.AvailSlots, st.TotalSlots)
	b.maxBlocks = max(b.maxBlocks, st.AvailBlocks, st.TotalBlocks)
	b.statusEpoch++
	b.sincePoll = 0
}

// statusFailed records a failed status read.
func (b *backend) statusFailed(err error, failuresToDown int) {
	b.statusFails++
	b.statusErr = err.Error()
	if b.statusFails >= failuresToDown {
		b.statusOK = false
	}
}

// totals are the instance's slots and KV blocks, reported or inferred.
func (b *backend) totals() (slots, blocks int) {
	slots, blocks = b.status.TotalSlots, b.status.TotalBlocks
	if slots <= 0 {
		slots = b.maxSlots
	}
	if blocks <= 0 {
		blocks = b.maxBlocks
	}
	return slots, blocks
}

// routable: the instance may get a new request now.
func (b *backend) routable(now time.Time) bool {
	return b.present && b.inst.Ready && !b.inst.Draining &&
		(b.inst.Management == "" || b.statusOK) && !now.Before(b.openUntil)
}

// saturated: by its last status, less the requests sent since, the
// instance's free slots or free KV blocks are at or below the thresholds.
// An instance without status is never saturated.
func (b *backend) saturated(slotsThreshold, blocksThreshold float64) bool {
	if b.inst.Management == "" || !b.statusOK {
		return false
	}
	slots, blocks := b.totals()
	freeSlots := b.status.AvailSlots - b.sincePoll
	if slots <= 0 || float64(freeSlots) <= slotsThreshold*float64(slots) {
		return true
	}
	return blocks <= 0 || float64(b.status.AvailBlocks) <= blocksThreshold*float64(blocks)
}

// load is the router's own measure of the work ahead of a new request on
// the instance, what delays its first token: the prompt tokens still to
// prefill (LoadPrefillTokens of them make one load unit) and the requests
// waiting for their first byte (one unit each: a prefill's fixed cost); a
// request already answering (decoding) weighs LoadDecodeWeight only, since
// an engine runs the prefills waiting before the next decode step and the
// decoding batch costs a new request little more than the step under way.
func (b *backend) load(cfg *Config) float64 {
	decoding := b.inflight - b.prefilling
	return float64(b.prefilling) + cfg.LoadDecodeWeight*float64(decoding) +
		float64(b.pendingPrefill)/float64(cfg.LoadPrefillTokens)
}

// succeeded closes the breaker.
func (b *backend) succeeded() {
	b.failures = 0
	b.trips = 0
}

// failed counts a failure and opens the breaker after threshold of them in
// a row, for a back-off doubling with each trip; it reports a trip. After a
// trip the instance is on probation: until it succeeds, one failure trips
// it again.
func (b *backend) failed(now time.Time, threshold int, backoff, maxBackoff time.Duration) bool {
	b.failures++
	if b.failures < threshold && b.trips == 0 {
		return false
	}
	d := backoff
	for i := 0; i < b.trips && d < maxBackoff; i++ {
		d *= 2
	}
	d = min(d, maxBackoff)
	b.trips++
	b.failures = 0
	b.openUntil = now.Add(d)
	return true
}

package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"

	"mindie.io/deployer/apis/infer/v1alpha1"
)

// Prefill/Decode (PD) mode. A server whose instances have roles is served
// in pairs, as MindIE Motor's Coordinator does (mindie-coordinator.md §3):
// the request goes to a prefill instance P with the headers req-type,
// req-id, d-target and d-port; P answers the first token (or the whole
// answer) and hands the request to the decode instance D; D sends the rest
// on the one long-lived GET /dresult stream the router holds from it,
// tagged with the request's id. This file holds the instances' roles and
// links, the choice of a pair, the /dresult streams and the requests
// waiting on them; pdproxy.go serves a request through a pair, pdframe.go
// reads /dresult, pdlease.go makes one router replica the active one.

// Instance roles (Instance.Role).
const (
	RolePrefill = "prefill"
	RoleDecode  = "decode"
)

// The pod labels and annotation a Prefill/Decode instance is read from
// (PodSource) are v1alpha1.LabelRole, v1alpha1.LabelGroup and
// v1alpha1.AnnotationPDID; the controller (pkg/controller/inferserver)
// sets them on the pods of each member of a PD server.

// MindIE's PD protocol.
const (
	// The headers of the request to the prefill instance.
	headerReqType   = "req-type"
	headerReqID     = "req-id"
	headerDTarget   = "d-target"
	headerDPort     = "d-port"
	headerRecompute = "is-recompute"
	reqTypePrefill  = "prefill"
	// dresultPath is the decode instance's result stream.
	dresultPath = "/dresult"
	// roleStatusReady is /v1/status service.roleStatus of an instance that
	// took its role; linkOK a peer's linkStatus link when the KV link is up.
	roleStatusReady = "RoleReady"
	linkOK          = "ok"
	// DecodeInstanceHeader names, on a PD answer, the decode instance; the
	// prefill instance is in InstanceHeader.
	DecodeInstanceHeader = "X-Mindie-Decode-Instance"
)

// PD constants that are not flags.
const (
	// pdLeaseJitter is client-go leader election's JitterFactor: the renew
	// deadline must exceed this many retry periods.
	pdLeaseJitter = 1.2
	// dresultMinBackoff and dresultMaxBackoff bound the wait before
	// reconnecting a /dresult stream; it doubles while connections fail or
	// end within dresultStableAfter.
	dresultMinBackoff  = 100 * time.Millisecond
	dresultMaxBackoff  = 5 * time.Second
	dresultStableAfter = 5 * time.Second
	// pdMessageLimit bounds one /dresult message and a prefill answer (a
	// non-streamed answer comes whole in one).
	pdMessageLimit = 64 << 20
	// pdInboxLimit bounds what a request may have queued from its decode
	// instance while its client reads slowly.
	pdInboxLimit = 64 << 20
)

// What keeps a PD instance from new requests, in InstanceReport.Why, on top
// of the Why* of every instance.
const (
	WhyRoleNotReady    = "role_not_ready"    // /v1/status: not RoleReady, or currentRole is not its role
	WhyNoLinkedDecode  = "no_linked_decode"  // prefill: no routable decode instance of its group with link ok
	WhyDresultDown     = "dresult_down"      // decode: the router has no /dresult stream from it
	WhyStandby         = "standby"           // another router replica holds the PD lease
	WhyNoManagementURL = "no_management_url" // role and links cannot be read
)

// InstanceReport.Dresult values.
const (
	DresultConnected  = "connected"
	DresultConnecting = "connecting"
	DresultDown       = "down"
	DresultStandby    = "standby"
)

// Why a pair could not be picked (besides errAllBusy, errTriedAll).
var (
	errNoPair     = errors.New("no prefill instance with a linked, reachable decode instance of its group is routable")
	errStandby    = errors.New("this router replica is a standby: another one holds the Prefill/Decode lease")
	errLeaseLost  = errors.New("this router replica lost the Prefill/Decode lease while the request was decoding")
	errDecodeGone = errors.New("the decode instance was removed while the request was decoding")
	errInboxFull  = errors.New("the client read too slowly: more than 64 MiB of the decode instance's answer was waiting")
)

// PDElector makes one router replica the active one of a Prefill/Decode
// server: a MindIE decode instance serves one /dresult consumer at a time.
// LeaseElector is the Kubernetes one.
type PDElector interface {
	// Run campaigns until ctx ends, calling lead (in a goroutine of its
	// own) each time this replica becomes the active one, with a context
	// that ends when it stops being so.
	Run(ctx context.Context, lead func(ctx context.Context))
	// Holder names the replica last seen holding the lease, "" if unknown.
	Holder() string
	// Describe names the lock ("Lease team-a/llama-router-pd").
	Describe() string
}

// WithPDElector makes the router campaign with e, while its Source has
// Prefill/Decode instances, for the right to hold their /dresult streams;
// a standby serves no PD request and is not ready. Without it (a router
// over --static-backends) the router is always the active one.
func WithPDElector(e PDElector) Option { return func(r *Router) { r.pd.elector = e } }

// pdStatus is what /v1/status says of a PD instance.
type pdStatus struct {
	roleStatus, currentRole string
	// links maps a peer's MindIE id to its link state ("ok", "linking",
	// "failed").
	links map[uint64]string
}

// pdServiceDocument and pdLinkDocument are /v1/status's "service" and
// "linkStatus", read apart and leniently: a server without roles may
// answer anything there, and its status must still read.
type pdServiceDocument = json.RawMessage
type pdLinkDocument = json.RawMessage

func readPDStatus(service, links json.RawMessage) pdStatus {
	var st pdStatus
	var svc struct {
		RoleStatus  string `json:"roleStatus"`
		CurrentRole string `json:"currentRole"`
	}
	if json.Unmarshal(service, &svc) == nil {
		st.roleStatus, st.currentRole = svc.RoleStatus, svc.CurrentRole
	}
	var ls struct {
		Peers []struct {
			Target json.RawMessage `json:"target"`
			Link   string          `json:"link"`
		} `json:"peers"`
	}
	if json.Unmarshal(links, &ls) == nil {
		for _, p := range ls.Peers {
			id, err := strconv.ParseUint(strings.Trim(string(p.Target), `"`), 10, 64)
			if err != nil {
				continue
			}
			if st.links == nil {
				st.links = map[uint64]string{}
			}
			st.links[id] = p.Link
		}
	}
	return st
}

// pdBackend is the PD state of an instance, guarded by Router.mu.
type pdBackend struct {
	// cancel stops the /dresult consumer of a decode instance; nil while
	// none runs. gen tells a consumer stopped from the current one.
	cancel context.CancelFunc
	gen    uint64
	// connected: the stream is open now (a decode instance is routable only
	// then); err is why it is not, since.
	connected bool
	err       string
	since     time.Time
}

// pdState is the router's PD state.
type pdState struct {
	elector PDElector

	// Guarded by Router.mu:
	// present: the Source's set has instances with a role.
	present bool
	// active: this replica may hold the /dresult streams and serve PD
	// requests (it leads, or there is no elector); activeCtx ends when it
	// stops being so.
	active        bool
	activeCtx     context.Context
	electorCancel context.CancelFunc
	closed        bool // Run ended: start nothing more
	wg            sync.WaitGroup

	// idPrefix makes the req-ids of this process unique among replicas;
	// ids counts them.
	idPrefix uint64
	ids      atomic.Uint64

	// mu guards the requests waiting for decode messages; open is active,
	// for registrations (set under both locks).
	mu   sync.Mutex
	open bool
	reqs map[string]*pdPending
}

func (r *Router) initPD() {
	r.pd.idPrefix = rand.Uint64()
	r.pd.reqs = map[string]*pdPending{}
}

// newReqID is a req-id: hex digits, unique in this process and, by the
// random prefix, among router replicas.
func (r *Router) newReqID() string {
	return fmt.Sprintf("%016x%016x", r.pd.idPrefix, r.pd.ids.Add(1))
}

// roleReady: the instance has its role and reads ready in it.
func (b *backend) roleReady() bool {
	return b.inst.Role != "" && b.inst.Management != "" && b.statusOK &&
		b.status.pd.roleStatus == roleStatusReady && b.status.pd.currentRole == b.inst.Role
}

// decodeUsableLocked: a decode instance may take a new request now.
func (r *Router) decodeUsableLocked(d *backend, now time.Time) bool {
	return d.inst.Role == RoleDecode && d.routable(now) && d.roleReady() && r.pd.active && d.pd.connected
}

// linkedDecodesLocked are the decode instances a prefill instance may hand
// a request to now: same group, routable, and linked (link ok in P's
// linkStatus). room: with fewer than MaxInflightPerInstance requests.
func (r *Router) linkedDecodesLocked(p *backend, now time.Time, room bool) []*backend {
	var out []*backend
	for _, d := range r.order {
		if d.inst.Role != RoleDecode || d.inst.Group != p.inst.Group || !r.decodeUsableLocked(d, now) ||
			p.status.pd.links[d.inst.ID] != linkOK || (room && d.inflight >= r.cfg.MaxInflightPerInstance) {
			continue
		}
		out = append(out, d)
	}
	return out
}

// prefillRoutableLocked: a prefill instance may take a new request now.
func (r *Router) prefillRoutableLocked(p *backend, now time.Time) bool {
	return p.inst.Role == RolePrefill && p.routable(now) && p.roleReady() && r.pd.active &&
		len(r.linkedDecodesLocked(p, now, false)) > 0
}

// routableNowLocked: the instance may get a new request now (the routes
// report's and the metrics' routable).
func (r *Router) routableNowLocked(b *backend, now time.Time) bool {
	switch b.inst.Role {
	case "":
		return b.routable(now)
	case RolePrefill:
		return r.prefillRoutableLocked(b, now)
	case RoleDecode:
		return r.decodeUsableLocked(b, now)
	}
	return false
}

// servableLocked: a request may be served through this instance now (for
// readiness: a decode instance alone serves nothing).
func (r *Router) servableLocked(b *backend, now time.Time) bool {
	return b.inst.Role != RoleDecode && r.routableNowLocked(b, now)
}

// pdStandbyLocked is why the router is not ready as a standby, or "".
func (r *Router) pdStandbyLocked() string {
	if r.pd.elector == nil || !r.pd.present || r.pd.active {
		return ""
	}
	why := "standby: another router replica holds " + r.pd.elector.Describe()
	if h := r.pd.elector.Holder(); h != "" {
		why += " (" + h + ")"
	}
	return why
}

// pdWanted: the Source has PD instances, so generating requests go to pairs.
func (r *Router) pdWanted() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pd.present
}

// plainRoutable: some instance without a role is routable (a mixed set
// falls back to them when no pair is usable).
func (r *Router) plainRoutable() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	for _, b := range r.order {
		if b.inst.Role == "" && b.routable(now) {
			return true
		}
	}
	return false
}

// pdAttempt is one sending of a request to a (prefill, decode) pair.
type pdAttempt struct {
	p      *attempt // booked on the prefill instance until it answers
	d      *backend // booked on the decode instance until the request ends
	dEpoch uint64
	dDone  bool
	// The instances as they were when picked (Source updates rewrite
	// backend.inst under Router.mu), and D's d-target and d-port.
	pInst, dInst Instance
	dHost, dPort string
}

// pickPair chooses a (prefill, decode) pair and books the request on both.
// The prefill instance is chosen among those not in tried that have a
// linked decode instance with room, by the algorithm (least_load by the
// router's own count of prefill work; round_robin and cache_affinity as
// for single instances); then, among its linked decode instances of its
// group, the unsaturated one with the fewest requests decoding (ties at
// random).
func (r *Router) pickPair(p *prompt, tried map[*backend]bool, first bool) (*pdAttempt, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pd.elector != nil && !r.pd.active {
		return nil, errStandby
	}
	now := time.Now()
	routable, full := 0, 0
	var prefills []*backend
	decodes := map[*backend][]*backend{}
	for _, b := range r.order {
		if !r.prefillRoutableLocked(b, now) {
			continue
		}
		routable++
		if tried[b] {
			continue
		}
		ds := r.linkedDecodesLocked(b, now, true)
		if b.inflight >= r.cfg.MaxInflightPerInstance || len(ds) == 0 {
			full++
			continue
		}
		prefills = append(prefills, b)
		decodes[b] = ds
	}
	if len(prefills) == 0 {
		switch {
		case routable == 0:
			return nil, errNoPair
		case full > 0:
			return nil, errAllBusy
		default:
			return nil, errTriedAll
		}
	}
	c := r.decideLocked(prefills, p, first)
	pool, _ := r.unsaturated(decodes[c.b])
	d := r.leastDecoding(pool)
	a := r.bookLocked(c, p, first)
	d.inflight++
	d.sincePoll++
	host, port := decodeTarget(d)
	return &pdAttempt{p: a, d: d, dEpoch: d.statusEpoch, pInst: c.b.inst, dInst: d.inst, dHost: host, dPort: port}, nil
}

// leastDecoding is the decode instance with the fewest requests, ties at
// random.
func (r *Router) leastDecoding(pool []*backend) *backend {
	var best *backend
	ties := 0
	for _, d := range pool {
		switch {
		case best == nil || d.inflight < best.inflight:
			best, ties = d, 1
		case d.inflight == best.inflight:
			ties++
			if r.rand.IntN(ties) == 0 {
				best = d
			}
		}
	}
	return best
}

// releaseDecode ends the request's booking on its decode instance.
func (r *Router) releaseDecode(a *pdAttempt, served bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if a.dDone {
		return
	}
	a.dDone = true
	d := a.d
	d.inflight--
	if a.dEpoch == d.statusEpoch && d.sincePoll > 0 {
		d.sincePoll--
	}
	if served {
		d.served++
	}
}

// pdSyncLocked follows the instance set and the lease: it campaigns while
// the set has PD instances (with an elector), and holds a /dresult stream
// from every decode instance while active.
func (r *Router) pdSyncLocked() {
	if r.pollCtx == nil || r.pd.closed || r.pollCtx.Err() != nil {
		return
	}
	present := false
	for _, b := range r.order {
		present = present || b.inst.Role != ""
	}
	if present != r.pd.present {
		r.pd.present = present
		r.log.Info("Prefill/Decode instances", "present", present)
	}
	switch {
	case r.pd.elector == nil:
		if !r.pd.active {
			r.setActiveLocked(true, r.pollCtx)
			return
		}
	case present && r.pd.electorCancel == nil:
		ctx, cancel := context.WithCancel(r.pollCtx)
		r.pd.electorCancel = cancel
		r.pd.wg.Add(1)
		r.log.Info("campaigning for the Prefill/Decode lease", "lock", r.pd.elector.Describe())
		go func() {
			defer r.pd.wg.Done()
			r.pd.elector.Run(ctx, r.lead)
		}()
	case !present && r.pd.electorCancel != nil:
		r.log.Info("no Prefill/Decode instance left: giving up the lease", "lock", r.pd.elector.Describe())
		r.pd.electorCancel()
		r.pd.electorCancel = nil
	}
	r.syncStreamsLocked()
}

// syncStreamsLocked starts and stops the /dresult consumers.
func (r *Router) syncStreamsLocked() {
	for _, b := range r.order {
		want := r.pd.active && b.present && b.inst.Role == RoleDecode
		switch {
		case want && b.pd.cancel == nil:
			r.startDresultLocked(b)
		case !want && b.pd.cancel != nil:
			r.stopDresultLocked(b)
		}
	}
}

// lead is the elector's callback: this replica is the active one until ctx
// ends.
func (r *Router) lead(ctx context.Context) {
	r.mu.Lock()
	if r.pd.closed || ctx.Err() != nil {
		r.mu.Unlock()
		return
	}
	r.log.Info("holding the Prefill/Decode lease: serving PD requests", "lock", r.pd.elector.Describe())
	r.setActiveLocked(true, ctx)
	r.mu.Unlock()
	<-ctx.Done()
	r.mu.Lock()
	if r.pd.activeCtx == ctx {
		r.log.Info("lost the Prefill/Decode lease: standby, the PD requests in flight fail", "lock", r.pd.elector.Describe())
		r.setActiveLocked(false, nil)
	}
	r.mu.Unlock()
}

// setActiveLocked makes the replica active under ctx, or a standby.
// Becoming a standby fails the requests waiting for decode messages: the
// streams are another replica's now.
func (r *Router) setActiveLocked(active bool, ctx context.Context) {
	r.pd.active, r.pd.activeCtx = active, ctx
	for _, b := range r.order {
		if b.pd.cancel != nil {
			r.stopDresultLocked(b) // restarted under the new context below
		}
	}
	r.pd.mu.Lock()
	r.pd.open = active
	if !active {
		r.pd.failLocked(func(*pdPending) bool { return true }, errLeaseLost)
	}
	r.pd.mu.Unlock()
	r.syncStreamsLocked()
}

// pdRemovedLocked: a removed decode instance's stream stops and the
// requests waiting on it fail (they cannot finish elsewhere).
func (r *Router) pdRemovedLocked(b *backend) {
	if b.pd.cancel != nil {
		r.stopDresultLocked(b)
	}
	if b.inst.Role == RoleDecode {
		r.pd.mu.Lock()
		r.pd.failLocked(func(p *pdPending) bool { return p.d == b }, errDecodeGone)
		r.pd.mu.Unlock()
	}
}

func (r *Router) startDresultLocked(b *backend) {
	ctx, cancel := context.WithCancel(r.pd.activeCtx)
	b.pd.cancel = cancel
	b.pd.gen++
	b.pd.connected = false
	b.pd.err = ""
	gen, inst := b.pd.gen, b.inst
	r.pd.wg.Add(1)
	go func() {
		defer r.pd.wg.Done()
		r.runDresult(ctx, b, inst, gen)
	}()
}

func (r *Router) stopDresultLocked(b *backend) {
	b.pd.cancel()
	b.pd.cancel = nil
	b.pd.gen++
	b.pd.connected = false
}

// waitPD, when Run ends, stops campaigning (releasing the lease) and waits
// for the elector and the streams.
func (r *Router) waitPD() {
	r.mu.Lock()
	r.pd.closed = true
	if r.pd.electorCancel != nil {
		r.pd.electorCancel()
		r.pd.electorCancel = nil
	}
	r.mu.Unlock()
	r.pd.wg.Wait()
}

// pdPending is a request waiting for its decode instance's messages.
type pdPending struct {
	id string
	d  *backend

	mu     sync.Mutex
	msgs   []dmsg
	size   int
	err    error // no more messages will come: why
	notify chan struct{}
}

// dmsg is a /dresult message for a request, with when it came.
type dmsg struct {
	kind    string
	payload []byte
	at      time.Time
}

func (p *pdPending) signal() {
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

func (p *pdPending) push(m dmsg) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return
	}
	p.size += len(m.payload)
	if p.size > pdInboxLimit {
		p.err = errInboxFull
	} else {
		p.msgs = append(p.msgs, m)
	}
	p.signal()
}

func (p *pdPending) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = err
	}
	p.signal()
}

// take returns the messages queued, and the error that ends the queue once
// they are handled.
func (p *pdPending) take() ([]dmsg, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	msgs := p.msgs
	p.msgs, p.size = nil, 0
	return msgs, p.err
}

// register makes a request ready for d's messages, before it goes to the
// prefill instance (d may answer before P does).
func (r *Router) register(d *backend) (*pdPending, error) {
	p := &pdPending{id: r.newReqID(), d: d, notify: make(chan struct{}, 1)}
	r.pd.mu.Lock()
	defer r.pd.mu.Unlock()
	if !r.pd.open {
		return nil, errStandby
	}
	r.pd.reqs[p.id] = p
	return p, nil
}

func (r *Router) unregister(p *pdPending) {
	r.pd.mu.Lock()
	delete(r.pd.reqs, p.id)
	r.pd.mu.Unlock()
}

// failLocked fails the waiting requests that match. Called with pd.mu held.
func (s *pdState) failLocked(match func(*pdPending) bool, err error) {
	for _, p := range s.reqs {
		if match(p) {
			p.fail(err)
		}
	}
}

// deliver hands a message of d's stream to the request id.
func (r *Router) deliver(d *backend, id, kind string, payload []byte) {
	r.pd.mu.Lock()
	p := r.pd.reqs[id]
	r.pd.mu.Unlock()
	if p == nil || p.d != d {
		// A request that ended (timed out, client gone), or another
		// replica's (its ids have another prefix): nobody to tell.
		r.metrics.pd.dropped.WithLabelValues("unknown_request").Inc()
		r.log.V(2).Info("dropping a /dresult message for no request of this router", "reqId", id, "kind", kind)
		return
	}
	p.push(dmsg{kind: kind, payload: append([]byte(nil), payload...), at: time.Now()})
}

// checkStaticRole checks the PD fields of a --static-backends entry.
func checkStaticRole(e staticBackend, field func(string) string) []error {
	var errs []error
	switch e.Role {
	case "":
		if e.Group != "" {
			errs = append(errs, fmt.Errorf("%s=%q: only with role (prefill or decode)", field("group"), e.Group))
		}
		if e.ID != nil {
			errs = append(errs, fmt.Errorf("%s=%d: only with role (prefill or decode)", field("id"), *e.ID))
		}
	case RolePrefill, RoleDecode:
		if e.ID == nil {
			errs = append(errs, fmt.Errorf("%s: required with role %s: the MindIE instance id its peers' linkStatus names", field("id"), e.Role))
		}
		if e.Management == "" {
			errs = append(errs, fmt.Errorf("%s: required with role %s: /v1/status says whether the role is ready and its links up", field("management"), e.Role))
		}
	default:
		errs = append(errs, fmt.Errorf("%s=%q: expected prefill, decode or nothing", field("role"), e.Role))
	}
	return errs
}

// podPDRole reads a pod's PD labels and annotation, or why the pod is no
// instance yet.
func podPDRole(p *corev1.Pod) (role, group string, id uint64, why string) {
	role, ok := p.Labels[v1alpha1.LabelRole]
	if !ok {
		return "", "", 0, ""
	}
	if role != RolePrefill && role != RoleDecode {
		return "", "", 0, fmt.Sprintf("label %s=%q: expected %s or %s", v1alpha1.LabelRole, role, RolePrefill, RoleDecode)
	}
	raw, ok := p.Annotations[v1alpha1.AnnotationPDID]
	if !ok {
		return "", "", 0, fmt.Sprintf("a %s instance without its MindIE id (annotation %s) yet", role, v1alpha1.AnnotationPDID)
	}
	id, err := strconv.ParseUint(strings.TrimSpace(raw), 10, 64)
	if err != nil {
		return "", "", 0, fmt.Sprintf("annotation %s=%q: expected a decimal id", v1alpha1.AnnotationPDID, raw)
	}
	return role, p.Labels[v1alpha1.LabelGroup], id, ""
}

// PDReport is the Prefill/Decode part of a RoutesReport.
type PDReport struct {
	// Active: this replica holds the decode instances' /dresult streams and
	// serves PD requests (it holds the lease, or there is none).
	Active bool `json:"active"`
	// Lease names the lock and Holder the replica last seen holding it
	// (with --server).
	Lease  string `json:"lease,omitempty"`
	Holder string `json:"holder,omitempty"`
	// Decoding counts the requests waiting for decode messages.
	Decoding int `json:"decoding"`
}

// pdReportLocked fills the PD fields of an instance's report.
func (r *Router) pdReportLocked(b *backend, now time.Time, ir *InstanceReport) {
	if b.inst.Role == "" {
		return
	}
	id := b.inst.ID
	ir.Role, ir.Group, ir.ID = b.inst.Role, b.inst.Group, &id
	ir.RoleStatus, ir.CurrentRole = b.status.pd.roleStatus, b.status.pd.currentRole
	for peer, link := range b.status.pd.links {
		if link == linkOK {
			ir.LinkedPeers = append(ir.LinkedPeers, peer)
		}
	}
	slices.Sort(ir.LinkedPeers)
	ir.Routable = r.routableNowLocked(b, now)
	why := func(w string) {
		if !slices.Contains(ir.Why, w) {
			ir.Why = append(ir.Why, w)
		}
	}
	switch {
	case b.inst.Management == "":
		why(WhyNoManagementURL)
	case b.statusOK && !b.roleReady():
		why(WhyRoleNotReady)
	}
	if r.pd.elector != nil && !r.pd.active {
		why(WhyStandby)
	}
	switch b.inst.Role {
	case RoleDecode:
		switch {
		case !r.pd.active:
			ir.Dresult = DresultStandby
		case b.pd.connected:
			ir.Dresult = DresultConnected
		case b.pd.err == "":
			ir.Dresult = DresultConnecting
			why(WhyDresultDown)
		default:
			ir.Dresult = DresultDown
			why(WhyDresultDown)
		}
		ir.DresultError = b.pd.err
	case RolePrefill:
		if r.pd.active && b.roleReady() && len(r.linkedDecodesLocked(b, now, false)) == 0 {
			why(WhyNoLinkedDecode)
		}
	}
}

// pdRouterReportLocked is the router's PD report, nil without PD instances.
func (r *Router) pdRouterReportLocked() *PDReport {
	if !r.pd.present {
		return nil
	}
	rep := &PDReport{Active: r.pd.active}
	if r.pd.elector != nil {
		rep.Lease, rep.Holder = r.pd.elector.Describe(), r.pd.elector.Holder()
	}
	r.pd.mu.Lock()
	rep.Decoding = len(r.pd.reqs)
	r.pd.mu.Unlock()
	return rep
}

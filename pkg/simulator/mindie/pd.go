package mindie

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Prefill/decode (PD) disaggregation, as MindIE Server does it (see doc.go
// for the protocol): role assignment and KV links, the prefill instance's
// side of a request, the hand-off to the decode instance (a loopback HTTP
// call standing in for MindIE's gRPC) and the decode instance's side.
// dresult.go has the decode instance's /dresult stream.

// HandoffPath is the simulator's own endpoint, on a decode instance's
// inference port, that a prefill instance hands a request over to. MindIE
// uses gRPC on the inter-comm port for this; the simulator has no such
// port. It is internal to the simulator: routers do not call it.
const HandoffPath = "/mindie-sim/pd/decode"

// The headers MindIE's Coordinator adds to a request it sends to a prefill
// instance.
const (
	HeaderReqType     = "req-type"     // "prefill"
	HeaderReqID       = "req-id"       // hex digits, at most 1024
	HeaderDTarget     = "d-target"     // the decode instance: "<ip>" or "<ip>;<port>"
	HeaderDPort       = "d-port"       // the decode instance's inference port
	HeaderIsRecompute = "is-recompute" // "true" or "false", optional
)

// Role statuses and link states, as /v1/status reports them.
const (
	RoleStatusUnknown   = "RoleUnknown"
	RoleStatusSwitching = "RoleSwitching"
	RoleStatusReady     = "RoleReady"

	LinkOK      = "ok"
	LinkLinking = "linking"
	LinkFailed  = "failed"
)

// DefaultManagementPort is the management port a peer is dialled on when
// its role entry has no mgmt_port and this server does not serve on a TCP
// port of its own (handlers used without Serve).
const DefaultManagementPort = 1026

// linkRetryInterval is how often, in wall time, an unreachable peer is
// dialled again.
const linkRetryInterval = 200 * time.Millisecond

// maxReqIDLength is the longest req-id MindIE Server accepts.
const maxReqIDLength = 1024

// DPInstanceIDs is how many data-parallel instance ids an instance
// reserves in role API v2: a server's dp_inst_id is the instance's id times
// DPInstanceIDs plus the data-parallel instance's index, and the instance
// id is read back as dp_inst_id / DPInstanceIDs (MindIE Motor's
// DP_GROUP_NUM; MindIE Server's linkStatus names instances so).
const DPInstanceIDs = 10000

// kvLink is this instance's KV link to a peer, set up after a role POST.
// Its fields from reachable on are guarded by Server.mu.
type kvLink struct {
	id     uint64
	ip     string // the peer's server_ip
	port   int    // the peer's management port, dialled to check it is up
	cancel context.CancelFunc

	since     time.Time // when the link was requested, by the clock
	reachable bool      // the peer's management port accepted a connection
}

// linkState is l's state at now: ok once LinkTime has passed since it was
// requested and the peer has answered, failed when the peer has not
// answered within LinkFailTimeout, linking otherwise. Called with s.mu held.
func (s *Server) linkState(l *kvLink, now time.Time) string {
	waited := now.Sub(l.since)
	switch {
	case l.reachable && waited >= s.linkTime:
		return LinkOK
	case !l.reachable && waited >= LinkFailTimeout:
		return LinkFailed
	}
	return LinkLinking
}

// roleStatus is the instance's role status. Called with s.mu held.
func (s *Server) roleStatus() string {
	switch {
	case s.role == RoleNone:
		return RoleStatusUnknown
	case s.phase != phaseServing || !s.loaded() || s.clock.Now().Before(s.roleReadyAt):
		return RoleStatusSwitching
	}
	return RoleStatusReady
}

// PeerStatus is one peer's KV link, as /v1/status reports it.
type PeerStatus struct {
	Target uint64 `json:"target"`
	Link   string `json:"link"`
}

// peerStatuses are the links' states, in the order the role POST listed
// them. Called with s.mu held.
func (s *Server) peerStatuses() []PeerStatus {
	now := s.clock.Now()
	out := make([]PeerStatus, 0, len(s.links))
	for _, l := range s.links {
		out = append(out, PeerStatus{Target: l.id, Link: s.linkState(l, now)})
	}
	return out
}

// roleServer is a server entry of a role POST's local or peers: v1's
// {"id", "server_ip", ...}, or v2's {"server_ip", "host_ip",
// "dp_inst_list": [{"dp_inst_id", "device"}]}, whose instance id is its
// first dp_inst_id / DPInstanceIDs.
type roleServer struct {
	ID         *uint64         `json:"id"`
	ServerIP   string          `json:"server_ip"`
	MgmtPort   json.RawMessage `json:"mgmt_port"` // a number or a string of digits
	DPInstList []struct {
		DPInstID *uint64 `json:"dp_inst_id"`
	} `json:"dp_inst_list"`
}

// instanceID is the id of the instance the server entry is of: its id,
// else the one its first dp_inst_id names; nil when it names none.
func (r roleServer) instanceID() *uint64 {
	if r.ID != nil {
		return r.ID
	}
	if len(r.DPInstList) > 0 && r.DPInstList[0].DPInstID != nil {
		id := *r.DPInstList[0].DPInstID / DPInstanceIDs
		return &id
	}
	return nil
}

// rolePeer is a peer to link to.
type rolePeer struct {
	id   uint64
	ip   string
	port int // 0: this server's management port
}

// parseRoleBody reads a role POST's body: {"local": {...} or [{...}],
// "peers": [{...} or [{...}, ...], ...]} (role API v1 or v2: in v2 local
// is the servers of this instance, and each peer the servers of one
// instance). It returns the local id (nil if none) and the peers, one per
// server entry (a peer instance's servers all name its id: applyRole
// links it once, through its first server); a peer server without an id
// (or dp_inst_list), a v2 peer whose servers name different instances,
// or a bad mgmt_port is an error.
func parseRoleBody(raw []byte) (*uint64, []rolePeer, *apiError) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil, nil
	}
	var body struct {
		Local json.RawMessage   `json:"local"`
		Peers []json.RawMessage `json:"peers"`
	}
	if err := unmarshalBody(raw, &body); err != nil {
		return nil, nil, err
	}
	servers := func(raw json.RawMessage) ([]roleServer, error) {
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 || string(raw) == "null" {
			return nil, nil
		}
		if raw[0] == '[' {
			var many []roleServer
			err := json.Unmarshal(raw, &many)
			return many, err
		}
		var one roleServer
		err := json.Unmarshal(raw, &one)
		return []roleServer{one}, err
	}
	var local *uint64
	locals, err := servers(body.Local)
	if err != nil {
		return nil, nil, badRequest("local: %s", describeJSONError(body.Local, err))
	}
	for _, l := range locals {
		if id := l.instanceID(); id != nil {
			local = id
			break
		}
	}
	var peers []rolePeer
	for i, raw := range body.Peers {
		list, err := servers(raw)
		if err != nil {
			return nil, nil, badRequest("peers[%d]: %s", i, describeJSONError(raw, err))
		}
		var first *uint64
		for j, p := range list {
			id := p.instanceID()
			if id == nil {
				return nil, nil, badRequest("peers[%d]: id (or dp_inst_list[0].dp_inst_id) is required", i)
			}
			if first == nil {
				first = id
			} else if *id != *first {
				return nil, nil, badRequest("peers[%d][%d]: names instance %d, but peers[%d][0] names %d: the servers of one peer are one instance", i, j, *id, i, *first)
			}
			port, err := parsePort(p.MgmtPort)
			if err != nil {
				return nil, nil, badRequest("peers[%d].mgmt_port: %v", i, err)
			}
			peers = append(peers, rolePeer{id: *id, ip: strings.TrimSpace(p.ServerIP), port: port})
		}
	}
	return local, peers, nil
}

// parsePort reads a port given as a JSON number or string; absent is 0.
func parsePort(raw json.RawMessage) (int, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	var text string
	if json.Unmarshal(raw, &text) != nil {
		text = string(raw)
	}
	port, err := strconv.Atoi(strings.TrimSpace(text))
	if err != nil || port < 1 || port > 65535 {
		return 0, fmt.Errorf("must be a port number (1-65535), got %s", raw)
	}
	return port, nil
}

// applyRole assigns a role, as a role POST does. A different role than the
// current one switches: RoleSwitching for RoleSwitchTime, and every link
// is built again. The same role updates the peers: new ones start
// linking, absent ones are dropped, the others keep their links (a failed
// one starts over).
func (s *Server) applyRole(role Role, local *uint64, peers []rolePeer) error {
	if role == RoleNone || !role.valid() {
		return fmt.Errorf("role %q is not one of %q, %q, %q", role, RolePrefill, RoleDecode, RoleFlex)
	}
	now := s.clock.Now()
	s.mu.Lock()
	switching := role != s.role
	if switching {
		s.role = role
		s.roleReadyAt = now.Add(s.roleSwitchTime)
		for _, l := range s.links {
			l.cancel()
		}
		s.links = nil
	}
	if local != nil {
		id := *local
		s.localID = &id
	}
	old := make(map[uint64]*kvLink, len(s.links))
	for _, l := range s.links {
		old[l.id] = l
	}
	links := make([]*kvLink, 0, len(peers))
	var started []*kvLink
	for _, p := range peers {
		if slices.ContainsFunc(links, func(l *kvLink) bool { return l.id == p.id }) {
			continue // listed twice
		}
		port := p.port
		if port == 0 {
			port = s.ownManagementPort()
		}
		if l, ok := old[p.id]; ok && l.ip == p.ip && l.port == port {
			if s.linkState(l, now) == LinkFailed {
				l.since = now
			}
			links = append(links, l)
			delete(old, p.id)
			continue
		}
		ctx, cancel := context.WithCancel(s.engineCtx)
		l := &kvLink{id: p.id, ip: p.ip, port: port, cancel: cancel, since: now}
		links = append(links, l)
		started = append(started, l)
		go s.dialPeer(ctx, l)
	}
	for _, l := range old {
		l.cancel()
	}
	s.links = links
	s.mu.Unlock()

	ids := make([]string, len(links))
	for i, l := range links {
		ids[i] = strconv.FormatUint(l.id, 10)
	}
	if switching {
		s.logf("role set to %s: RoleSwitching for %s (simulated), peers [%s]", role.statusName(), s.roleSwitchTime, strings.Join(ids, " "))
	} else {
		s.logf("role %s confirmed: peers [%s] (%d new)", role.statusName(), strings.Join(ids, " "), len(started))
	}
	return nil
}

// ownManagementPort is the port this server's management API listens on,
// or DefaultManagementPort when it does not serve on TCP. Called with s.mu
// held.
func (s *Server) ownManagementPort() int {
	if a, ok := s.mgmtAddr.(*net.TCPAddr); ok && a.Port != 0 {
		return a.Port
	}
	return DefaultManagementPort
}

// dialPeer checks that a peer is up by connecting to its management port,
// again every linkRetryInterval until it answers or the link is dropped.
// Only loopback addresses are dialled: a peer elsewhere never links.
func (s *Server) dialPeer(ctx context.Context, l *kvLink) {
	if l.ip == "" {
		s.logf("peer %d has no server_ip: its KV link cannot come up", l.id)
		return
	}
	addr := net.JoinHostPort(l.ip, strconv.Itoa(l.port))
	if err := CheckLoopbackAddr(addr); err != nil {
		s.logf("peer %d: not dialling %s (%v): its KV link cannot come up", l.id, addr, err)
		return
	}
	d := net.Dialer{Timeout: time.Second}
	warned := false
	for {
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			conn.Close()
			s.mu.Lock()
			l.reachable = true
			s.mu.Unlock()
			s.logf("peer %d: management port %s answers: KV link ok %s after it was requested (simulated)", l.id, addr, s.linkTime)
			return
		}
		if ctx.Err() != nil {
			return
		}
		if !warned {
			warned = true
			s.logf("peer %d: management port %s does not answer (%v): KV link linking, dialling again every %s", l.id, addr, err, linkRetryInterval)
		}
		t := time.NewTimer(linkRetryInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// peerLinked reports whether the peer with that id has an ok link. Called
// with s.mu held.
func (s *Server) peerLinked(id uint64) bool {
	now := s.clock.Now()
	for _, l := range s.links {
		if l.id == id && s.linkState(l, now) == LinkOK {
			return true
		}
	}
	return false
}

// ---- The prefill instance ----

// pdRequest is a prefill request's PD headers, checked, and its body.
type pdRequest struct {
	reqID     string
	dHost     string // the decode instance's IP
	dPort     int    // its inference port: d-target's ";port", else d-port
	recompute bool
	body      []byte // the request body as received: retry: sends it back
}

type generationKey struct{}

// generationInfo is what the generation middleware hands its handler.
type generationInfo struct {
	seq uint64     // the request's number on this instance (its OpenAI id)
	pd  *pdRequest // nil: a plain request
}

// generation wraps the handler of a generation route: it counts the
// request and checks that it may be served here, given the instance's PD
// role and the request's PD headers.
func (s *Server) generation(style errorStyle, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		seq := s.received.Add(1)
		pd, apiErr := s.checkPD(r)
		if apiErr != nil {
			s.reject(w, style, apiErr)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), generationKey{}, &generationInfo{seq: seq, pd: pd})))
	}
}

func requestSeq(r *http.Request) uint64 {
	if gi, ok := r.Context().Value(generationKey{}).(*generationInfo); ok {
		return gi.seq
	}
	return 0
}

func pdOf(r *http.Request) *pdRequest {
	if gi, ok := r.Context().Value(generationKey{}).(*generationInfo); ok {
		return gi.pd
	}
	return nil
}

// checkPD decides how a generation request is served: plainly (nil), as
// a PD prefill request, or not at all. Without a role an instance serves
// plain requests and refuses req-type; a prefill instance serves only
// requests with valid PD headers; a flex instance serves both; a decode
// instance serves none (it gets its requests from prefill instances).
func (s *Server) checkPD(r *http.Request) (*pdRequest, *apiError) {
	reqTypes, hasType := r.Header[http.CanonicalHeaderKey(HeaderReqType)]
	reqType := ""
	if hasType {
		reqType = strings.TrimSpace(reqTypes[0])
	}
	s.mu.Lock()
	role := s.role
	s.mu.Unlock()
	switch role {
	case RoleNone:
		if hasType {
			return nil, badRequest("header %s: %q sent to an instance without a PD role (currentRole none): it serves plain requests only", HeaderReqType, reqType)
		}
		return nil, nil
	case RoleDecode:
		return nil, badRequest("this is a decode instance: it serves no requests of its own; send them to a prefill instance with the headers %s: prefill, %s, %s and %s",
			HeaderReqType, HeaderReqID, HeaderDTarget, HeaderDPort)
	case RoleFlex:
		if !hasType {
			return nil, nil // a flex instance also serves requests alone
		}
	case RolePrefill:
		if !hasType {
			return nil, badRequest("missing header %s: a prefill instance serves only PD requests, with the headers %s: prefill, %s, %s and %s",
				HeaderReqType, HeaderReqType, HeaderReqID, HeaderDTarget, HeaderDPort)
		}
	}
	if reqType != "prefill" {
		return nil, badRequest("header %s must be \"prefill\", got %q", HeaderReqType, reqType)
	}
	pd := &pdRequest{reqID: strings.TrimSpace(r.Header.Get(HeaderReqID))}
	if !validReqID(pd.reqID) {
		return nil, badRequest("header %s must be 1 to %d hex digits, got %q", HeaderReqID, maxReqIDLength, pd.reqID)
	}
	if v, ok := r.Header[http.CanonicalHeaderKey(HeaderIsRecompute)]; ok {
		switch strings.TrimSpace(v[0]) {
		case "true":
			pd.recompute = true
		case "false":
		default:
			return nil, badRequest("header %s must be true or false, got %q", HeaderIsRecompute, v[0])
		}
	}
	target := strings.TrimSpace(r.Header.Get(HeaderDTarget))
	host, portText, hasPort := strings.Cut(target, ";")
	host = strings.TrimSpace(host)
	ip := net.ParseIP(host)
	if ip == nil {
		return nil, badRequest("header %s must be \"<ip>\" or \"<ip>;<port>\" with <ip> an IP address, got %q", HeaderDTarget, target)
	}
	pd.dHost = ip.String()
	if hasPort {
		port, err := strconv.Atoi(strings.TrimSpace(portText))
		if err != nil || port < 1 || port > 65535 {
			return nil, badRequest("header %s: the port after \";\" must be 1-65535, got %q", HeaderDTarget, target)
		}
		pd.dPort = port
	}
	if v := strings.TrimSpace(r.Header.Get(HeaderDPort)); v != "" {
		port, err := strconv.Atoi(v)
		if err != nil || port < 1 || port > 65535 {
			return nil, badRequest("header %s must be a port number (1-65535), got %q", HeaderDPort, v)
		}
		if pd.dPort == 0 {
			pd.dPort = port
		}
	}
	if pd.dPort == 0 {
		return nil, badRequest("missing header %s: the decode instance's inference port (or give it in %s as \"<ip>;<port>\")", HeaderDPort, HeaderDTarget)
	}

	s.mu.Lock()
	status := s.roleStatus()
	now := s.clock.Now()
	var peers []string
	state := ""
	for _, l := range s.links {
		peers = append(peers, fmt.Sprintf("%d=%s", l.id, l.ip))
		if lip := net.ParseIP(l.ip); (lip != nil && lip.Equal(ip)) || l.ip == host {
			if st := s.linkState(l, now); state != LinkOK {
				state = st
			}
		}
	}
	s.mu.Unlock()
	switch {
	case status != RoleStatusReady:
		return nil, unavailable("the %s role is not ready (%s): retry when /v1/status says RoleReady", role.statusName(), status)
	case state == "":
		return nil, badRequest("header %s: %s is not a peer of this %s instance (its peers: [%s])", HeaderDTarget, host, role.statusName(), strings.Join(peers, " "))
	case state != LinkOK:
		return nil, unavailable("header %s: the KV link to %s is %s, not ok", HeaderDTarget, host, state)
	}
	body, apiErr := readBody(r)
	if apiErr != nil {
		return nil, apiErr
	}
	pd.body = body
	r.Body = io.NopCloser(bytes.NewReader(body))
	return pd, nil
}

func validReqID(id string) bool {
	if id == "" || len(id) > maxReqIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// prefillReply is a prefill instance's answer to a PD request.
type prefillReply struct {
	ReqID      string `json:"reqId"`
	IsStream   bool   `json:"isStream"`
	IsLastResp bool   `json:"isLastResp"`
	Output     string `json:"output"`
}

// prefillForPD serves a PD request on a prefill instance: it prefills the
// prompt (the first token), hands the rest to the decode instance unless
// the answer ends there, and answers with the prefill reply.
func (s *Server) prefillForPD(w http.ResponseWriter, r *http.Request, style errorStyle, j *job, f *answerFormat, pd *pdRequest) {
	g, err := s.run(r.Context(), j, admitSpec{total: 1}, nil)
	if err != nil {
		s.failed.Add(1)
		answerFailure(w, style, err)
		return
	}
	ended := len(j.out.tokens) == 1
	var out []byte
	switch {
	case f.Stream:
		payloads := append(f.streamHead(), f.streamEvent(j.out, g.pieces, 0))
		if ended {
			payloads = append(payloads, f.streamTail(g)...)
		}
		out, err = sseEvents(payloads...)
	case ended:
		out, err = jsonLine(f.body(g))
	}
	if err != nil {
		s.failed.Add(1)
		writeAPIError(w, style, &apiError{status: http.StatusInternalServerError, kind: kindUnavailable, msg: "encoding the answer: " + err.Error()})
		return
	}
	if !ended {
		if apiErr := s.handOff(r.Context(), pd, j, f, g); apiErr != nil {
			s.failed.Add(1)
			s.logf("req-id %s: %v", pd.reqID, apiErr)
			writeAPIError(w, style, apiErr)
			return
		}
	}
	s.succeeded.Add(1)
	s.pdPrefills.Add(1)
	if pd.recompute {
		s.pdRecomputes.Add(1)
	}
	writeJSON(w, http.StatusOK, prefillReply{ReqID: pd.reqID, IsStream: f.Stream, IsLastResp: ended, Output: string(out)})
}

// handoff is what a prefill instance sends the decode instance: all it
// needs to generate the rest of the answer exactly as a single instance
// would have (the answer is a function of the model, the prompt's tokens
// and max_tokens; format has the rest).
type handoff struct {
	ReqID        string       `json:"reqId"`
	PrefillID    *uint64      `json:"prefillId,omitempty"` // the prefill instance's local id (role POST)
	Format       answerFormat `json:"format"`
	Prompt       []string     `json:"prompt"` // its tokens
	LeadingSpace bool         `json:"leadingSpace"`
	MaxTokens    int          `json:"maxTokens"` // after clamping
	Generated    int          `json:"generated"` // tokens the prefill instance generated (1)
	CachedTokens int          `json:"cachedTokens"`
	Body         string       `json:"body"` // the request body, for retry:
}

// handOff gives the request to the decode instance and waits for it to
// accept it (not for the answer).
func (s *Server) handOff(ctx context.Context, pd *pdRequest, j *job, f *answerFormat, g *generation) *apiError {
	s.mu.Lock()
	local := s.localID
	s.mu.Unlock()
	body, err := json.Marshal(handoff{
		ReqID: pd.reqID, PrefillID: local, Format: *f, Prompt: j.prompt, LeadingSpace: j.leadingSpace,
		MaxTokens: j.maxTokens, Generated: 1, CachedTokens: g.cachedTokens, Body: string(pd.body),
	})
	if err != nil {
		return &apiError{status: http.StatusInternalServerError, kind: kindUnavailable, msg: "encoding the hand-off: " + err.Error()}
	}
	addr := net.JoinHostPort(pd.dHost, strconv.Itoa(pd.dPort))
	if err := CheckLoopbackAddr(addr); err != nil {
		return badRequest("header %s: %v", HeaderDTarget, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+HandoffPath, bytes.NewReader(body))
	if err != nil {
		return badRequest("header %s: %v", HeaderDTarget, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.pdClient.Do(req)
	if err != nil {
		return unavailable("handing the request over to the decode instance %s (%s) failed: %v", addr, HeaderDTarget, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	var plain struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(msg, &plain) == nil && plain.Error != "" {
		msg = []byte(plain.Error)
	}
	e := unavailable("the decode instance %s (%s) refused the request: %d: %s", addr, HeaderDTarget, resp.StatusCode, bytes.TrimSpace(msg))
	if resp.StatusCode == http.StatusTooManyRequests {
		e.status, e.kind = http.StatusTooManyRequests, kindOverloaded
	}
	return e
}

// newPDClient is the HTTP client of hand-offs: loopback addresses only, no
// proxy.
func newPDClient() *http.Client {
	d := &net.Dialer{Timeout: 2 * time.Second}
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy: nil,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				if err := CheckLoopbackAddr(addr); err != nil {
					return nil, err
				}
				return d.DialContext(ctx, network, addr)
			},
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     30 * time.Second,
		},
	}
}

// ---- The decode instance ----

// handleHandoff serves POST HandoffPath on a decode (or flex) instance: it
// checks the hand-off, queues the request in the engine and answers 200
// at once; the answer goes out on /dresult.
func (s *Server) handleHandoff(w http.ResponseWriter, r *http.Request) {
	var h handoff
	if err := decodeJSON(r, &h); err != nil {
		writeAPIError(w, plainErrors, err)
		return
	}
	s.mu.Lock()
	role, status := s.role, s.roleStatus()
	linked := h.PrefillID == nil || s.peerLinked(*h.PrefillID)
	s.mu.Unlock()
	switch {
	case role != RoleDecode && role != RoleFlex:
		writeAPIError(w, plainErrors, unavailable("this instance is not a decode instance (currentRole %s): it takes no hand-offs", role.statusName()))
		return
	case status != RoleStatusReady:
		writeAPIError(w, plainErrors, unavailable("the %s role is not ready (%s)", role.statusName(), status))
		return
	case !linked:
		writeAPIError(w, plainErrors, unavailable("the prefill instance %d is not a peer with an ok KV link", *h.PrefillID))
		return
	}
	j, apiErr := s.handoffJob(&h)
	if apiErr != nil {
		writeAPIError(w, plainErrors, apiErr)
		return
	}
	switch {
	case takeFault(&s.failDecodes):
		s.pdDecodes.Add(1)
		writeJSON(w, http.StatusOK, map[string]string{"result": "ok"})
		s.logf("req-id %s: decode FAILED (injected fault): error: on /dresult", h.ReqID)
		s.dresult.send(h.ReqID, msgError, []byte("decode failed (injected fault)"), true)
		return
	case takeFault(&s.recomputeDecodes):
		s.pdDecodes.Add(1)
		writeJSON(w, http.StatusOK, map[string]string{"result": "ok"})
		s.logf("req-id %s: RECOMPUTE asked (injected fault): retry: on /dresult", h.ReqID)
		s.dresult.send(h.ReqID, msgRetry, []byte(h.Body), true)
		return
	}
	er, err := s.startHandoff(j, &h)
	if err != nil {
		answerFailure(w, plainErrors, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"result": "ok"})
	go s.decodeHandoff(er, &h)
}

// handoffJob validates a hand-off and makes its job.
func (s *Server) handoffJob(h *handoff) (*job, *apiError) {
	switch h.Format.API {
	case apiChat, apiCompletions, apiTGI, apiVLLM, apiTriton:
	default:
		return nil, badRequest("format.api %q is not one of chat, completions, tgi, vllm, triton", h.Format.API)
	}
	switch {
	case !validReqID(h.ReqID):
		return nil, badRequest("reqId must be 1 to %d hex digits, got %q", maxReqIDLength, h.ReqID)
	case h.Format.Model != s.cfg.ModelID:
		return nil, badRequest("the request is for the model %q; this instance serves %q", h.Format.Model, s.cfg.ModelID)
	case len(h.Prompt) == 0:
		return nil, badRequest("prompt is empty")
	case h.MaxTokens < 1:
		return nil, badRequest("maxTokens must be at least 1, got %d", h.MaxTokens)
	}
	j := &job{prompt: h.Prompt, leadingSpace: h.LeadingSpace, maxTokens: h.MaxTokens, out: generate(s.cfg.ModelID, h.Prompt, h.MaxTokens)}
	if h.Generated < 1 || h.Generated >= len(j.out.tokens) {
		return nil, badRequest("generated is %d of %d tokens: nothing is left to decode", h.Generated, len(j.out.tokens))
	}
	if err := s.checkFits(j); err != nil {
		return nil, err
	}
	return j, nil
}

// startHandoff queues a handed-off request in the engine: it waits for a
// slot and the blocks of its prompt, for its KV transfer, then decodes.
func (s *Server) startHandoff(j *job, h *handoff) (*engineRequest, error) {
	r, err := s.admit(context.Background(), j, admitSpec{
		handoff: true, generated: h.Generated, transfer: time.Duration(len(j.prompt)) * s.kvTransferPerToken,
	})
	if err != nil {
		return nil, err
	}
	s.pdDecodes.Add(1)
	return r, nil
}

// decodeHandoff follows a handed-off request to its end and writes its
// answer on /dresult: a data: message per token, then lastData: with the
// last token's event and the stream's end (streams), or lastData: with the
// whole answer (the others). It returns what follow returned.
func (s *Server) decodeHandoff(r *engineRequest, h *handoff) (*generation, error) {
	j, f := r.job, &h.Format
	g := &generation{completion: j.out, pieces: j.out.pieces(j.leadingSpace), promptTokens: len(j.prompt), cachedTokens: h.CachedTokens}
	last := len(j.out.tokens) - 1
	done, err := s.follow(r, func(i int, _ string) error {
		var payload []byte
		var err error
		switch {
		case i < last && !f.Stream:
			return nil
		case i < last:
			if payload, err = sseEvent(f.streamEvent(j.out, g.pieces, i)); err != nil {
				return err
			}
			return s.dresult.send(h.ReqID, msgData, payload, false)
		case f.Stream:
			payload, err = sseEvents(append([]any{f.streamEvent(j.out, g.pieces, i)}, f.streamTail(g)...)...)
		default:
			payload, err = jsonLine(f.body(g))
		}
		if err != nil {
			return err
		}
		return s.dresult.send(h.ReqID, msgLastData, payload, false)
	})
	switch {
	case err == nil:
	case errors.Is(err, ErrCrashed):
		// A dead process sends nothing.
	case errors.Is(err, errRecompute):
		s.logf("req-id %s: preempted (KV cache full): retry: on /dresult", h.ReqID)
		s.dresult.send(h.ReqID, msgRetry, []byte(h.Body), true)
	case errors.Is(err, errDResultOverflow):
		s.logf("req-id %s: failed: /dresult buffer full", h.ReqID)
		s.dresult.send(h.ReqID, msgError, fmt.Appendf(nil, "decode output dropped: %d messages are waiting for a /dresult consumer", s.dresult.limit), true)
	default:
		s.dresult.send(h.ReqID, msgError, []byte(err.Error()), true)
	}
	return done, err
}

// takeFault consumes one of an injected fault's remaining occurrences.
func takeFault(c *atomic.Int64) bool {
	for {
		v := c.Load()
		if v <= 0 {
			return false
		}
		if c.CompareAndSwap(v, v-1) {
			return true
		}
	}
}

// FailNextDecode makes this (decode) instance fail the next n requests
// handed to it: it accepts each, then writes error: for it on /dresult
// instead of decoding it. n <= 0 clears the fault.
func (s *Server) FailNextDecode(n int) {
	s.failDecodes.Store(int64(max(n, 0)))
	s.logf("fault injected: the next %d handed-off requests fail (error: on /dresult)", max(n, 0))
}

// RecomputeNextDecode makes this (decode) instance ask for the recompute
// of the next n requests handed to it: it accepts each, then writes
// retry:<the original request body> on /dresult instead of decoding it.
// n <= 0 clears the fault.
func (s *Server) RecomputeNextDecode(n int) {
	s.recomputeDecodes.Store(int64(max(n, 0)))
	s.logf("fault injected: the next %d handed-off requests ask for a recompute (retry: on /dresult)", max(n, 0))
}

// DropDResult closes the current /dresult connection abruptly, without
// close:, as a broken connection would. It reports whether a consumer was
// connected. Messages not yet written wait for the next consumer.
func (s *Server) DropDResult() bool {
	dropped := s.dresult.drop()
	s.logf("fault injected: /dresult connection dropped (consumer connected: %t)", dropped)
	return dropped
}

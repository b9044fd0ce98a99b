package router

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Fake MindIE PD servers implementing the router's contract (docs/router.md,
// Prefill/Decode): a prefill instance answers {reqId, isStream, isLastResp,
// output} and has its decode instance (found by d-port) send the rest on
// its /dresult stream; a decode instance serves one /dresult consumer at a
// time. Both serve /v1/status with a role and links. On 127.0.0.1.

// pdCluster finds the fake decode instances by port, as d-port does.
type pdCluster struct {
	mu     sync.Mutex
	byPort map[string]*fakePD
}

func newPDCluster() *pdCluster { return &pdCluster{byPort: map[string]*fakePD{}} }

func (c *pdCluster) decodeAt(port string) *fakePD {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byPort[port]
}

// pdCall is a request a fake prefill instance received.
type pdCall struct {
	path   string
	header http.Header
	body   string
}

// prefillHandler answers a prefill request; the default is pdModel.
type prefillHandler func(f *fakePD, w http.ResponseWriter, call pdCall, d *fakePD)

type fakePD struct {
	c     *pdCluster
	name  string
	role  string
	group string
	id    uint64
	srv   *httptest.Server
	hits  atomic.Int64 // inference requests

	mu          sync.Mutex
	roleStatus  string
	currentRole string
	links       map[uint64]string
	handler     prefillHandler
	calls       []pdCall
	// decode side
	consumer    *fakeConsumer
	connects    int
	dresultCode int
}

// fakeConsumer is a /dresult connection: what to write, and a way to drop it.
type fakeConsumer struct {
	msgs chan []byte
	drop chan struct{}
}

func newFakePD(t *testing.T, c *pdCluster, name, role, group string, id uint64) *fakePD {
	t.Helper()
	f := &fakePD{c: c, name: name, role: role, group: group, id: id, roleStatus: roleStatusReady, currentRole: role,
		links: map[uint64]string{}, dresultCode: http.StatusOK}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", f.status)
	mux.HandleFunc("GET /dresult", f.dresult)
	mux.HandleFunc("/", f.inference)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	if role == RoleDecode {
		u, _ := url.Parse(f.srv.URL)
		c.mu.Lock()
		c.byPort[u.Port()] = f
		c.mu.Unlock()
	}
	return f
}

func (f *fakePD) instance() Instance {
	return Instance{Name: f.name, Inference: f.srv.URL, Management: f.srv.URL, Ready: true, Role: f.role, Group: f.group, ID: f.id}
}

// link sets the link state to peers (prefill side).
func (f *fakePD) link(state string, peers ...*fakePD) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range peers {
		f.links[p.id] = state
	}
}

func (f *fakePD) setRole(status, current string) {
	f.mu.Lock()
	f.roleStatus, f.currentRole = status, current
	f.mu.Unlock()
}

func (f *fakePD) setHandler(h prefillHandler) {
	f.mu.Lock()
	f.handler = h
	f.mu.Unlock()
}

func (f *fakePD) takeCalls() []pdCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

func (f *fakePD) connections() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.connects
}

func (f *fakePD) status(w http.ResponseWriter, _ *http.Request) {
	f.mu.Lock()
	type peer struct {
		Target uint64 `json:"target"`
		Link   string `json:"link"`
	}
	var peers []peer
	for id, l := range f.links {
		peers = append(peers, peer{id, l})
	}
	doc := map[string]any{
		"service":    map[string]any{"roleStatus": f.roleStatus, "currentRole": f.currentRole},
		"resource":   map[string]any{"availSlotsNum": 100, "availBlockNum": 1000, "totalSlotsNum": 100, "totalBlockNum": 1000},
		"linkStatus": map[string]any{"peers": peers},
	}
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(doc)
}

// dresult serves the one consumer: a new connection closes the old one
// with close:, as MindIE does.
func (f *fakePD) dresult(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	if f.role != RoleDecode || f.dresultCode != http.StatusOK {
		code := f.dresultCode
		f.mu.Unlock()
		if code == http.StatusOK {
			code = http.StatusNotFound
		}
		http.Error(w, "no /dresult here", code)
		return
	}
	c := &fakeConsumer{msgs: make(chan []byte, 1024), drop: make(chan struct{})}
	if old := f.consumer; old != nil {
		old.msgs <- []byte("close:\x00")
	}
	f.consumer = c
	f.connects++
	f.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	rc.Flush()
	for {
		select {
		case m := <-c.msgs:
			w.Write(m)
			rc.Flush()
			if string(m) == "close:\x00" {
				return
			}
		case <-c.drop:
			panic(http.ErrAbortHandler)
		case <-r.Context().Done():
			return
		}
	}
}

// sendRaw writes bytes on the current /dresult stream (false: none).
func (f *fakePD) sendRaw(b []byte) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.consumer == nil {
		return false
	}
	f.consumer.msgs <- b
	return true
}

// send writes messages ("kind:payload", NUL added) as one chunk.
func (f *fakePD) send(msgs ...string) bool {
	var b []byte
	for _, m := range msgs {
		b = append(append(b, m...), 0)
	}
	return f.sendRaw(b)
}

// forRequest sends kind:payload for request id, reqId first.
func (f *fakePD) forRequest(id string, kvs ...string) bool {
	var msgs []string
	for i := 0; i+1 < len(kvs); i += 2 {
		msgs = append(msgs, "reqId:"+id, kvs[i]+":"+kvs[i+1])
	}
	return f.send(msgs...)
}

// dropStream breaks the current /dresult connection without close:.
func (f *fakePD) dropStream() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.consumer != nil {
		close(f.consumer.drop)
		f.consumer = nil
	}
}

var hexID = regexp.MustCompile(`^[0-9a-f]{1,1000}$`)

func (f *fakePD) inference(w http.ResponseWriter, r *http.Request) {
	f.hits.Add(1)
	body, _ := io.ReadAll(r.Body)
	call := pdCall{path: r.URL.Path, header: r.Header.Clone(), body: string(body)}
	f.mu.Lock()
	f.calls = append(f.calls, call)
	h := f.handler
	f.mu.Unlock()
	if f.role != RolePrefill {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"served_by":%q}`, f.name)
		return
	}
	if r.URL.Path == "/v1/models" {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"object":"list","data":[{"id":"m"}],"served_by":%q}`, f.name)
		return
	}
	// MindIE's checks (mindie-coordinator.md §3.1 step 2).
	id := r.Header.Get(headerReqID)
	if r.Header.Get(headerReqType) != reqTypePrefill || !hexID.MatchString(id) || r.Header.Get(headerDTarget) != "127.0.0.1" {
		http.Error(w, `{"error":"not a prefill request"}`, http.StatusBadRequest)
		return
	}
	d := f.c.decodeAt(r.Header.Get(headerDPort))
	f.mu.Lock()
	linked := d != nil && f.links[d.id] == linkOK
	f.mu.Unlock()
	if !linked {
		http.Error(w, `{"error":"no link to d-target"}`, http.StatusInternalServerError)
		return
	}
	if h == nil {
		h = pdModel
	}
	h(f, w, call, d)
}

// The fake model's answer: these tokens, the first from the prefill
// instance, the rest from the decode instance.
var pdTokens = []string{"Hel", "lo", " wor", "ld"}

// pdStream says whether a request streams: the body's "stream", or a
// *_stream route.
func pdStream(call pdCall) bool {
	var b struct {
		Stream bool `json:"stream"`
	}
	json.Unmarshal([]byte(call.body), &b)
	return b.Stream || strings.HasSuffix(call.path, "_stream")
}

// pdEvent is one streamed token in the route's format; last adds the end.
func pdEvent(path, tok string, last bool) string {
	var ev string
	switch {
	case path == "/v1/chat/completions":
		ev = `data: {"choices":[{"index":0,"delta":{"content":` + quote(tok) + `}}]}` + "\n\n"
	case path == "/v1/completions":
		ev = `data: {"choices":[{"index":0,"text":` + quote(tok) + `}]}` + "\n\n"
	case path == "/infer":
		ev = `data: {"text":` + quote(tok) + `}` + "\n\n"
	default: // TGI, Triton
		ev = `data:{"token":{"text":` + quote(tok) + `}}` + "\n\n"
	}
	if last && strings.HasPrefix(path, "/v1/") {
		ev += "data: [DONE]\n\n"
	}
	return ev
}

// pdWhole is the non-streamed answer in the route's format.
func pdWhole(path, text string) string {
	switch path {
	case "/v1/chat/completions":
		return `{"choices":[{"index":0,"message":{"role":"assistant","content":` + quote(text) + `}}]}`
	case "/v1/completions":
		return `{"choices":[{"index":0,"text":` + quote(text) + `}]}`
	case "/infer":
		return `{"text":[` + quote(text) + `]}`
	default:
		return `{"generated_text":` + quote(text) + `}`
	}
}

// pdExpected is what the client should get for the fake model.
func pdExpected(path string, stream bool) string {
	if !stream {
		return pdWhole(path, strings.Join(pdTokens, ""))
	}
	var s string
	for i, tok := range pdTokens {
		s += pdEvent(path, tok, i == len(pdTokens)-1)
	}
	return s
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// prefillAnswerJSON is P's JSON answer.
func prefillAnswerJSON(id string, stream, last bool, output string) string {
	b, _ := json.Marshal(map[string]any{"reqId": id, "isStream": stream, "isLastResp": last, "output": output})
	return string(b)
}

// pdModel is the fake model: P answers the first token (streams) or
// nothing (non-streamed), then D sends the rest.
func pdModel(f *fakePD, w http.ResponseWriter, call pdCall, d *fakePD) {
	id := call.header.Get(headerReqID)
	stream := pdStream(call)
	w.Header().Set("Content-Type", "application/json")
	if stream {
		io.WriteString(w, prefillAnswerJSON(id, true, false, pdEvent(call.path, pdTokens[0], false)))
	} else {
		io.WriteString(w, prefillAnswerJSON(id, false, false, ""))
	}
	w.(http.Flusher).Flush()
	go pdDecodeRest(d, id, call.path, stream)
}

// pdDecodeRest is the decode side of pdModel.
func pdDecodeRest(d *fakePD, id, path string, stream bool) {
	if !stream {
		d.forRequest(id, dmLastData, pdWhole(path, strings.Join(pdTokens, "")))
		return
	}
	for i := 1; i < len(pdTokens); i++ {
		kind := dmData
		if i == len(pdTokens)-1 {
			kind = dmLastData
		}
		d.forRequest(id, kind, pdEvent(path, pdTokens[i], i == len(pdTokens)-1))
	}
}

// startPDRouter runs a router over the instances (no elector) and waits
// until want prefill instances are routable.
func startPDRouter(t *testing.T, cfg Config, opts []Option, want int, instances ...*fakePD) *testRouter {
	t.Helper()
	insts := make([]Instance, len(instances))
	for i, f := range instances {
		insts[i] = f.instance()
	}
	tr := runTestRouter(t, cfg, opts, insts)
	tr.waitPrefills(t, want)
	return tr
}

// waitPrefills waits until n prefill instances are routable.
func (tr *testRouter) waitPrefills(t *testing.T, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d routable prefill instances", n), func() bool { return tr.routablePrefills() == n })
}

func (r *Router) routablePrefills() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, b := range r.order {
		if r.prefillRoutableLocked(b, time.Now()) {
			n++
		}
	}
	return n
}

// pdPair is one linked prefill and decode instance in group "0".
func pdPair(t *testing.T) (*pdCluster, *fakePD, *fakePD) {
	t.Helper()
	c := newPDCluster()
	p := newFakePD(t, c, "p0", RolePrefill, "0", 0)
	d := newFakePD(t, c, "d0", RoleDecode, "0", 1)
	p.link(linkOK, d)
	return c, p, d
}

// pdTestConfig is testConfig with least_load, so that choices are by load.
// Its timeouts are short, so that a request the router fails to finish
// fails the test in seconds.
func pdTestConfig() Config {
	cfg := testConfig(LeastLoad)
	cfg.FirstTokenTimeout = 10 * time.Second
	cfg.RequestTimeout = 10 * time.Second
	return cfg
}

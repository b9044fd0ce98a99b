package router

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"

	"mindie.io/deployer/apis/infer/v1alpha1"
)

// pairBackend is an instance of the pairing table: its role, group, id,
// the links it reports (prefill) and the router's state of it.
type pairBackend struct {
	name, role, group string
	id                uint64
	links             map[uint64]string
	prefilling        int  // prefill: requests waiting for their first byte
	inflight          int  // requests on it
	down              bool // decode: no /dresult stream
	notReady          bool // roleStatus RoleSwitching
}

// pairRouter is a router whose state is set by hand: statuses read, the
// streams of decode instances open unless down.
func pairRouter(t *testing.T, cfg Config, bs []pairBackend) *Router {
	t.Helper()
	r, err := New(cfg, StaticSource{}, WithLogger(logr.Discard()), WithRandSeed(1))
	if err != nil {
		t.Fatal(err)
	}
	var insts []Instance
	for _, b := range bs {
		insts = append(insts, Instance{Name: b.name, Inference: "http://127.0.0.1:1", Management: "http://127.0.0.1:2",
			Ready: true, Role: b.role, Group: b.group, ID: b.id})
	}
	r.update(insts)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pd.active = true
	for _, pb := range bs {
		b := r.backends[pb.name]
		st := instanceStatus{AvailSlots: 100, TotalSlots: 100, AvailBlocks: 1000, TotalBlocks: 1000,
			pd: pdStatus{roleStatus: roleStatusReady, currentRole: pb.role, links: pb.links}}
		if pb.notReady {
			st.pd.roleStatus = "RoleSwitching"
		}
		b.setStatus(st, time.Now())
		b.pd.connected = !pb.down
		b.prefilling = pb.prefilling
		b.inflight = pb.inflight + pb.prefilling
	}
	return r
}

func TestPickPair(t *testing.T) {
	ok := func(ids ...uint64) map[uint64]string {
		m := map[uint64]string{}
		for _, id := range ids {
			m[id] = linkOK
		}
		return m
	}
	cases := []struct {
		name     string
		backends []pairBackend
		tried    []string
		standby  bool
		wantP    string
		wantD    string
		wantErr  error
	}{
		{"one pair", []pairBackend{
			{name: "p", role: RolePrefill, group: "0", id: 0, links: ok(1)},
			{name: "d", role: RoleDecode, group: "0", id: 1},
		}, nil, false, "p", "d", nil},
		{"same group only: a linked decode of another group is not paired", []pairBackend{
			{name: "p", role: RolePrefill, group: "0", id: 0, links: ok(1, 2)},
			{name: "d-other-group", role: RoleDecode, group: "1", id: 2},
			{name: "d", role: RoleDecode, group: "0", id: 1, inflight: 5},
		}, nil, false, "p", "d", nil},
		{"linked only: linking and failed links are not usable", []pairBackend{
			{name: "p", role: RolePrefill, group: "0", id: 0, links: map[uint64]string{1: "linking", 2: "failed", 3: linkOK}},
			{name: "d1", role: RoleDecode, group: "0", id: 1},
			{name: "d2", role: RoleDecode, group: "0", id: 2},
			{name: "d3", role: RoleDecode, group: "0", id: 3, inflight: 9},
		}, nil, false, "p", "d3", nil},
		{"least-loaded prefill", []pairBackend{
			{name: "p1", role: RolePrefill, group: "0", id: 0, links: ok(9), prefilling: 2},
			{name: "p2", role: RolePrefill, group: "0", id: 1, links: ok(9)},
			{name: "p3", role: RolePrefill, group: "0", id: 2, links: ok(9), prefilling: 1},
			{name: "d", role: RoleDecode, group: "0", id: 9},
		}, nil, false, "p2", "d", nil},
		{"least-loaded decode among the prefill's linked ones", []pairBackend{
			{name: "p", role: RolePrefill, group: "0", id: 0, links: ok(1, 2, 3)},
			{name: "d1", role: RoleDecode, group: "0", id: 1, inflight: 3},
			{name: "d2", role: RoleDecode, group: "0", id: 2, inflight: 1},
			{name: "d3", role: RoleDecode, group: "0", id: 3, inflight: 2},
			{name: "d4-unlinked", role: RoleDecode, group: "0", id: 4},
		}, nil, false, "p", "d2", nil},
		{"a prefill with no linked decode gets nothing, however idle", []pairBackend{
			{name: "p-idle", role: RolePrefill, group: "0", id: 0, links: ok(7)},
			{name: "p-busy", role: RolePrefill, group: "0", id: 1, links: ok(2), prefilling: 5},
			{name: "d", role: RoleDecode, group: "0", id: 2},
		}, nil, false, "p-busy", "d", nil},
		{"a prefill whose only decode has no /dresult stream gets nothing", []pairBackend{
			{name: "p", role: RolePrefill, group: "0", id: 0, links: ok(1)},
			{name: "d", role: RoleDecode, group: "0", id: 1, down: true},
		}, nil, false, "", "", errNoPair},
		{"a decode whose role is not ready is not paired", []pairBackend{
			{name: "p", role: RolePrefill, group: "0", id: 0, links: ok(1)},
			{name: "d", role: RoleDecode, group: "0", id: 1, notReady: true},
		}, nil, false, "", "", errNoPair},
		{"a prefill whose role is not ready gets nothing", []pairBackend{
			{name: "p", role: RolePrefill, group: "0", id: 0, links: ok(1), notReady: true},
			{name: "d", role: RoleDecode, group: "0", id: 1},
		}, nil, false, "", "", errNoPair},
		{"no prefill at all", []pairBackend{
			{name: "d", role: RoleDecode, group: "0", id: 1},
		}, nil, false, "", "", errNoPair},
		{"groups pair apart", []pairBackend{
			{name: "p0", role: RolePrefill, group: "0", id: 0, links: ok(1), prefilling: 1},
			{name: "d0", role: RoleDecode, group: "0", id: 1},
			{name: "p1", role: RolePrefill, group: "1", id: 10, links: ok(11)},
			{name: "d1", role: RoleDecode, group: "1", id: 11, inflight: 5},
		}, nil, false, "p1", "d1", nil},
		{"a prefill tried already is skipped", []pairBackend{
			{name: "p1", role: RolePrefill, group: "0", id: 0, links: ok(2)},
			{name: "p2", role: RolePrefill, group: "0", id: 1, links: ok(2), prefilling: 3},
			{name: "d", role: RoleDecode, group: "0", id: 2},
		}, []string{"p1"}, false, "p2", "d", nil},
		{"every prefill tried", []pairBackend{
			{name: "p1", role: RolePrefill, group: "0", id: 0, links: ok(2)},
			{name: "d", role: RoleDecode, group: "0", id: 2},
		}, []string{"p1"}, false, "", "", errTriedAll},
		{"the only decode is full", []pairBackend{
			{name: "p", role: RolePrefill, group: "0", id: 0, links: ok(1)},
			{name: "d", role: RoleDecode, group: "0", id: 1, inflight: 10},
		}, nil, false, "", "", errAllBusy},
		{"a standby picks nothing", []pairBackend{
			{name: "p", role: RolePrefill, group: "0", id: 0, links: ok(1)},
			{name: "d", role: RoleDecode, group: "0", id: 1},
		}, nil, true, "", "", errStandby},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := pdTestConfig()
			cfg.MaxInflightPerInstance = 10
			r := pairRouter(t, cfg, c.backends)
			if c.standby {
				r.pd.elector = standbyElector{}
				r.pd.active = false
			}
			tried := map[*backend]bool{}
			for _, n := range c.tried {
				tried[r.backends[n]] = true
			}
			a, err := r.pickPair(&prompt{tokens: 10}, tried, true)
			if !errors.Is(err, c.wantErr) {
				t.Fatalf("error %v, want %v", err, c.wantErr)
			}
			if err != nil {
				return
			}
			if a.p.b.inst.Name != c.wantP || a.d.inst.Name != c.wantD {
				t.Fatalf("picked (%s, %s), want (%s, %s)", a.p.b.inst.Name, a.d.inst.Name, c.wantP, c.wantD)
			}
			// Booked on both sides: P until its answer, D until the end.
			r.mu.Lock()
			pIn, pPre, dIn := a.p.b.inflight, a.p.b.prefilling, a.d.inflight
			r.mu.Unlock()
			r.finish(a.p, verdictOK)
			r.releaseDecode(a, true)
			r.mu.Lock()
			defer r.mu.Unlock()
			if a.p.b.inflight != pIn-1 || a.p.b.prefilling != pPre-1 || a.d.inflight != dIn-1 {
				t.Errorf("bookings not released: prefill %d/%d, decode %d", a.p.b.inflight, a.p.b.prefilling, a.d.inflight)
			}
		})
	}
}

// The least-loaded sides take turns: successive picks spread over the
// prefill instances by their waiting prefills and over the decode
// instances by their requests.
func TestPickPairSpreadsLoad(t *testing.T) {
	r := pairRouter(t, pdTestConfig(), []pairBackend{
		{name: "p1", role: RolePrefill, group: "0", id: 0, links: map[uint64]string{2: linkOK, 3: linkOK}},
		{name: "p2", role: RolePrefill, group: "0", id: 1, links: map[uint64]string{2: linkOK, 3: linkOK}},
		{name: "d1", role: RoleDecode, group: "0", id: 2},
		{name: "d2", role: RoleDecode, group: "0", id: 3},
	})
	count := map[string]int{}
	for range 8 {
		a, err := r.pickPair(&prompt{tokens: 10}, nil, true)
		if err != nil {
			t.Fatal(err)
		}
		count[a.p.b.inst.Name]++
		count[a.d.inst.Name]++
	}
	for _, n := range []string{"p1", "p2", "d1", "d2"} {
		if count[n] != 4 {
			t.Errorf("%s got %d of 8 requests, want 4: %v", n, count[n], count)
		}
	}
}

// chunkReader returns its chunks one read each.
type chunkReader struct{ chunks [][]byte }

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	c.chunks[0] = c.chunks[0][n:]
	if len(c.chunks[0]) == 0 {
		c.chunks = c.chunks[1:]
	}
	return n, nil
}

func TestDresultReader(t *testing.T) {
	stream := "reqId:ab12\x00data:data: {\"x\":1}\n\n\x00ka:\x00lastData:{\"a\":[1,2]}\x00close\x00"
	want := []string{"reqId=ab12", "data=data: {\"x\":1}\n\n", "ka=", "lastData={\"a\":[1,2]}", "close="}
	readers := map[string]func() io.Reader{
		"one read":        func() io.Reader { return strings.NewReader(stream) },
		"one byte a read": func() io.Reader { return iotest.OneByteReader(strings.NewReader(stream)) },
		"split in keyword": func() io.Reader {
			return &chunkReader{[][]byte{[]byte(stream[:3]), []byte(stream[3:20]), []byte(stream[20:])}}
		},
		"split at NULs": func() io.Reader {
			var cs [][]byte
			for _, part := range strings.SplitAfter(stream, "\x00") {
				cs = append(cs, []byte(part))
			}
			return &chunkReader{cs}
		},
	}
	for name, mk := range readers {
		t.Run(name, func(t *testing.T) {
			d := newDresultReader(mk(), 1<<10)
			var got []string
			for {
				k, p, err := d.next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, k+"="+string(p))
			}
			if strings.Join(got, "|") != strings.Join(want, "|") {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
	t.Run("ends inside a message", func(t *testing.T) {
		d := newDresultReader(strings.NewReader("ka:\x00data:partial"), 1<<10)
		if k, _, err := d.next(); k != "ka" || err != nil {
			t.Fatalf("first: %q %v", k, err)
		}
		if _, _, err := d.next(); err != io.ErrUnexpectedEOF {
			t.Fatalf("got %v, want io.ErrUnexpectedEOF", err)
		}
	})
	t.Run("message beyond the limit", func(t *testing.T) {
		big := "lastData:" + strings.Repeat("x", 200*1024) + "\x00"
		d := newDresultReader(strings.NewReader(big), 100*1024)
		if _, _, err := d.next(); !errors.Is(err, errMessageTooLarge) {
			t.Fatalf("got %v, want errMessageTooLarge", err)
		}
		d = newDresultReader(strings.NewReader(big), 300*1024)
		if k, p, err := d.next(); err != nil || k != "lastData" || len(p) != 200*1024 {
			t.Fatalf("a large message under the limit: %q, %d bytes, %v", k, len(p), err)
		}
	})
}

// The stream's messages reach their requests: interleaved, with a reqId
// before each or one reqId for several, unknown keywords and requests
// skipped.
func TestDresultDispatch(t *testing.T) {
	c := newPDCluster()
	p := newFakePD(t, c, "p", RolePrefill, "0", 0)
	d := newFakePD(t, c, "d", RoleDecode, "0", 1)
	p.link(linkOK, d)
	tr := startPDRouter(t, pdTestConfig(), nil, 1, p, d)
	tr.mu.Lock()
	db := tr.backends["d"]
	tr.mu.Unlock()
	a, err := tr.register(db)
	if err != nil {
		t.Fatal(err)
	}
	b, err := tr.register(db)
	if err != nil {
		t.Fatal(err)
	}
	stream := "reqId:" + a.id + "\x00data:a1\x00reqId:" + b.id + "\x00data:b1\x00" +
		"bogus:ignored\x00ka:\x00data:b2\x00" + // a reqId for several messages
		"reqId:" + strings.ToUpper(a.id) + "\x00lastData:a2\x00" +
		"reqId:ffff\x00data:nobody\x00" +
		"reqId:" + b.id + "\x00error:out of memory\x00"
	// Split anywhere: each byte a chunk of its own.
	for i := range len(stream) {
		if !d.sendRaw([]byte{stream[i]}) {
			t.Fatal("no /dresult consumer")
		}
	}
	collect := func(p *pdPending, n int) string {
		var got []string
		waitFor(t, fmt.Sprintf("%d messages", n), func() bool {
			msgs, _ := p.take()
			for _, m := range msgs {
				got = append(got, m.kind+"="+string(m.payload))
			}
			return len(got) >= n
		})
		return strings.Join(got, "|")
	}
	if got := collect(a, 2); got != "data=a1|lastData=a2" {
		t.Errorf("request a got %s", got)
	}
	if got := collect(b, 3); got != "data=b1|data=b2|error=out of memory" {
		t.Errorf("request b got %s", got)
	}
	m := tr.metricsText(t)
	for series, want := range map[string]float64{
		`mindie_router_pd_dresult_dropped_messages_total{reason="unknown_keyword"}`: 1,
		`mindie_router_pd_dresult_dropped_messages_total{reason="unknown_request"}`: 1,
	} {
		if v := metricValue(m, series); v != want {
			t.Errorf("%s = %v, want %v", series, v, want)
		}
	}
}

// Streaming and non-streaming OpenAI, TGI, Triton and MindIE requests go
// through a pair: P gets MindIE's headers, the client P's first token and
// then D's.
func TestPDRoutes(t *testing.T) {
	_, p, d := pdPair(t)
	tr := startPDRouter(t, pdTestConfig(), nil, 1, p, d)
	dPort := strings.TrimPrefix(d.srv.URL, "http://127.0.0.1:")
	cases := []struct {
		path, body string
		stream     bool
	}{
		{"/v1/chat/completions", `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`, true},
		{"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, false},
		{"/v1/completions", `{"model":"m","stream":true,"prompt":"hi"}`, true},
		{"/v1/completions", `{"model":"m","prompt":"hi"}`, false},
		{"/generate", `{"inputs":"hi"}`, false},
		{"/generate_stream", `{"inputs":"hi"}`, true},
		{"/v2/models/m/generate_stream", `{"text_input":"hi"}`, true},
		{"/infer", `{"inputs":"hi","stream":true}`, true},
		{"/infer", `{"inputs":"hi"}`, false},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s stream=%v", c.path, c.stream), func(t *testing.T) {
			a := send(t, http.MethodPost, tr.url+c.path, c.body)
			if a.status != http.StatusOK || a.body != pdExpected(c.path, c.stream) {
				t.Fatalf("got %d %q, want 200 %q", a.status, a.body, pdExpected(c.path, c.stream))
			}
			wantType := "application/json"
			if c.stream {
				wantType = "text/event-stream"
			}
			if a.header.Get("Content-Type") != wantType || a.instance != "p0" || a.header.Get(DecodeInstanceHeader) != "d0" {
				t.Errorf("headers %v: want Content-Type %s, %s p0, %s d0", a.header, wantType, InstanceHeader, DecodeInstanceHeader)
			}
			calls := p.takeCalls()
			if len(calls) != 1 {
				t.Fatalf("prefill got %d requests, want 1", len(calls))
			}
			h := calls[0].header
			if h.Get(headerReqType) != "prefill" || !hexID.MatchString(h.Get(headerReqID)) || h.Get(headerDTarget) != "127.0.0.1" ||
				h.Get(headerDPort) != dPort || h.Get(headerRecompute) != "" || calls[0].body != c.body || calls[0].path != c.path {
				t.Errorf("prefill request %s %v %q", calls[0].path, h, calls[0].body)
			}
		})
	}
	if d.hits.Load() != 0 {
		t.Errorf("the decode instance got %d inference requests, want none", d.hits.Load())
	}
	m := tr.metricsText(t)
	if v := metricValue(m, `mindie_router_pd_requests_total{outcome="ok"}`); v != float64(len(cases)) {
		t.Errorf("pd_requests_total{ok} = %v, want %d", v, len(cases))
	}
	if v := metricValue(m, `mindie_router_pd_decode_first_data_seconds_count`); v != float64(len(cases)) {
		t.Errorf("pd_decode_first_data_seconds_count = %v, want %d", v, len(cases))
	}
	// Each req-id is new.
	seen := map[string]bool{}
	for range 3 {
		send(t, http.MethodPost, tr.url+"/generate", `{"inputs":"hi"}`)
		id := p.takeCalls()[0].header.Get(headerReqID)
		if seen[id] {
			t.Errorf("req-id %s sent twice", id)
		}
		seen[id] = true
	}
}

// D's messages that come before P's answer are held and follow P's output.
func TestPDRelayOrdering(t *testing.T) {
	_, p, d := pdPair(t)
	p.setHandler(func(f *fakePD, w http.ResponseWriter, call pdCall, d *fakePD) {
		id := call.header.Get(headerReqID)
		pdDecodeRest(d, id, call.path, true) // all of D's first, lastData included
		time.Sleep(50 * time.Millisecond)    // the router has them queued
		io.WriteString(w, prefillAnswerJSON(id, true, false, pdEvent(call.path, pdTokens[0], false)))
	})
	tr := startPDRouter(t, pdTestConfig(), nil, 1, p, d)
	for _, path := range []string{"/v1/chat/completions", "/generate_stream"} {
		a := send(t, http.MethodPost, tr.url+path, `{"stream":true,"messages":[{"role":"user","content":"hi"}]}`)
		if a.status != http.StatusOK || a.body != pdExpected(path, true) {
			t.Errorf("%s: got %d %q, want %q", path, a.status, a.body, pdExpected(path, true))
		}
	}
	m := tr.metricsText(t)
	if v := metricValue(m, `mindie_router_pd_decode_first_data_seconds_bucket{le="0.001"}`); v != 2 {
		t.Errorf("first data before the prefill's answer should count 0 s: bucket le=0.001 = %v", v)
	}
}

// A prefill answer that says the request is complete ends it at P.
func TestPDPrefillLastResponse(t *testing.T) {
	_, p, d := pdPair(t)
	p.setHandler(func(f *fakePD, w http.ResponseWriter, call pdCall, d *fakePD) {
		id := call.header.Get(headerReqID)
		if pdStream(call) {
			io.WriteString(w, prefillAnswerJSON(id, true, true, pdEvent(call.path, "one", true)))
			return
		}
		io.WriteString(w, prefillAnswerJSON(id, false, true, pdWhole(call.path, "one")))
	})
	tr := startPDRouter(t, pdTestConfig(), nil, 1, p, d)
	a := send(t, http.MethodPost, tr.url+"/v1/chat/completions", `{"messages":[]}`)
	if a.status != 200 || a.body != pdWhole("/v1/chat/completions", "one") || a.header.Get("Content-Type") != "application/json" {
		t.Errorf("non-streamed: %d %q %v", a.status, a.body, a.header)
	}
	a = send(t, http.MethodPost, tr.url+"/generate_stream", `{}`)
	if a.status != 200 || a.body != pdEvent("/generate_stream", "one", true) {
		t.Errorf("streamed: %d %q", a.status, a.body)
	}
}

func TestPDDecodeErrors(t *testing.T) {
	cases := []struct {
		name       string
		path, body string
		stream     bool
		wantStatus int
		wantBody   []string // substrings
	}{
		{"non-streamed OpenAI: 502 in OpenAI's shape", "/v1/chat/completions", `{"messages":[]}`, false, 502,
			[]string{`{"error":{"code":502,"message":"decode instance d0: KV cache lost","param":null,"type":"upstream_error"}}`}},
		{"non-streamed TGI: 502 in the plain shape", "/generate", `{}`, false, 502,
			[]string{`{"error":"decode instance d0: KV cache lost","error_type":"upstream_error"}`}},
		{"streamed: the first token, then an error event", "/v1/chat/completions", `{"stream":true}`, true, 200,
			[]string{pdEvent("/v1/chat/completions", pdTokens[0], false) + pdEvent("/v1/chat/completions", pdTokens[1], false) +
				`data: {"error":{"code":502,"message":"decode instance d0: KV cache lost"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, p, d := pdPair(t)
			p.setHandler(func(f *fakePD, w http.ResponseWriter, call pdCall, d *fakePD) {
				id := call.header.Get(headerReqID)
				if c.stream {
					io.WriteString(w, prefillAnswerJSON(id, true, false, pdEvent(call.path, pdTokens[0], false)))
					d.forRequest(id, dmData, pdEvent(call.path, pdTokens[1], false), dmError, "KV cache lost")
					return
				}
				io.WriteString(w, prefillAnswerJSON(id, false, false, ""))
				d.forRequest(id, dmError, "KV cache lost")
			})
			tr := startPDRouter(t, pdTestConfig(), nil, 1, p, d)
			a := send(t, http.MethodPost, tr.url+c.path, c.body)
			if a.status != c.wantStatus {
				t.Fatalf("status %d %q, want %d", a.status, a.body, c.wantStatus)
			}
			for _, w := range c.wantBody {
				if !strings.Contains(a.body, w) {
					t.Errorf("body %q lacks %q", a.body, w)
				}
			}
			if v := metricValue(tr.metricsText(t), `mindie_router_pd_requests_total{outcome="decode_error"}`); v != 1 {
				t.Errorf("pd_requests_total{decode_error} = %v, want 1", v)
			}
		})
	}
}

// retry: sends the request again, with D's body and is-recompute: true,
// and the answer goes on; beyond --max-retries it fails.
func TestPDRecompute(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			_, p, d := pdPair(t)
			recomputeBody := `{"inputs":"hi","recompute":["Hel"]}`
			p.setHandler(func(f *fakePD, w http.ResponseWriter, call pdCall, d *fakePD) {
				id := call.header.Get(headerReqID)
				if call.header.Get(headerRecompute) == "true" {
					if stream { // go on after the first token
						io.WriteString(w, prefillAnswerJSON(id, true, false, pdEvent(call.path, pdTokens[1], false)))
						d.forRequest(id, dmData, pdEvent(call.path, pdTokens[2], false), dmLastData, pdEvent(call.path, pdTokens[3], true))
					} else {
						io.WriteString(w, prefillAnswerJSON(id, false, false, ""))
						d.forRequest(id, dmLastData, pdWhole(call.path, strings.Join(pdTokens, "")))
					}
					return
				}
				if stream {
					io.WriteString(w, prefillAnswerJSON(id, true, false, pdEvent(call.path, pdTokens[0], false)))
				} else {
					io.WriteString(w, prefillAnswerJSON(id, false, false, ""))
				}
				d.forRequest(id, dmRetry, recomputeBody)
			})
			tr := startPDRouter(t, pdTestConfig(), nil, 1, p, d)
			path := "/generate"
			if stream {
				path = "/generate_stream"
			}
			a := send(t, http.MethodPost, tr.url+path, `{"inputs":"hi"}`)
			if a.status != 200 || a.body != pdExpected(path, stream) {
				t.Fatalf("got %d %q, want %q", a.status, a.body, pdExpected(path, stream))
			}
			calls := p.takeCalls()
			if len(calls) != 2 || calls[1].header.Get(headerRecompute) != "true" || calls[1].body != recomputeBody ||
				calls[0].header.Get(headerReqID) == calls[1].header.Get(headerReqID) {
				t.Fatalf("prefill calls %+v: want the second with is-recompute: true, D's body and a new req-id", calls)
			}

			// Recomputing for ever ends at --max-retries.
			p.setHandler(func(f *fakePD, w http.ResponseWriter, call pdCall, d *fakePD) {
				id := call.header.Get(headerReqID)
				io.WriteString(w, prefillAnswerJSON(id, false, false, ""))
				d.forRequest(id, dmRetry, recomputeBody)
			})
			a = send(t, http.MethodPost, tr.url+"/generate", `{"inputs":"hi"}`)
			if a.status != http.StatusBadGateway || !strings.Contains(a.body, "no retry is left (--max-retries=2)") {
				t.Errorf("endless recompute: %d %q", a.status, a.body)
			}
			if n := len(p.takeCalls()); n != 3 {
				t.Errorf("%d prefill requests, want 3 (--max-retries=2)", n)
			}
			m := tr.metricsText(t)
			if v := metricValue(m, `mindie_router_pd_requests_total{outcome="retries_exhausted"}`); v != 1 {
				t.Errorf("pd_requests_total{retries_exhausted} = %v", v)
			}
		})
	}
}

// close: and a dropped stream make the router reconnect; a decode instance
// it cannot reach is out of routing, and so its prefill instances.
func TestPDDresultReconnects(t *testing.T) {
	_, p, d := pdPair(t)
	tr := startPDRouter(t, pdTestConfig(), nil, 1, p, d)
	chat := `{"stream":true,"messages":[]}`
	check := func(what string) {
		t.Helper()
		a := send(t, http.MethodPost, tr.url+"/v1/chat/completions", chat)
		if a.status != 200 || a.body != pdExpected("/v1/chat/completions", true) {
			t.Fatalf("%s: %d %q", what, a.status, a.body)
		}
	}
	check("first")
	if !d.send("close:") {
		t.Fatal("no consumer")
	}
	waitFor(t, "a second /dresult connection", func() bool { return d.connections() == 2 })
	tr.waitPrefills(t, 1)
	check("after close:")
	d.dropStream()
	waitFor(t, "a third /dresult connection", func() bool { return d.connections() == 3 })
	tr.waitPrefills(t, 1)
	check("after a drop")
	m := tr.metricsText(t)
	for _, reason := range []string{"close", "drop"} {
		if v := metricValue(m, `mindie_router_pd_dresult_reconnects_total{instance="d0",reason="`+reason+`"}`); v != 1 {
			t.Errorf("reconnects{%s} = %v, want 1", reason, v)
		}
	}

	// Unreachable: not routable, nor is P; a PD request is refused 503.
	d.mu.Lock()
	d.dresultCode = http.StatusServiceUnavailable
	d.mu.Unlock()
	d.dropStream()
	tr.waitPrefills(t, 0)
	a := send(t, http.MethodPost, tr.url+"/v1/chat/completions", chat)
	if a.status != http.StatusServiceUnavailable || !strings.Contains(a.body, errNoPair.Error()) {
		t.Errorf("without a decode stream: %d %q", a.status, a.body)
	}
	var rep RoutesReport
	waitFor(t, "the reconnections refused", func() bool {
		rep = tr.routes(t)
		return strings.Contains(instanceReport(t, rep, "d0").DresultError, "503")
	})
	if rep.Ready || rep.PD == nil || !rep.PD.Active {
		t.Errorf("report %+v: want not ready, PD active", rep)
	}
	dr, pr := instanceReport(t, rep, "d0"), instanceReport(t, rep, "p0")
	if dr.Routable || dr.Dresult != DresultDown || !strings.Contains(dr.DresultError, "503") || !contains(dr.Why, WhyDresultDown) {
		t.Errorf("decode report %+v", dr)
	}
	if pr.Routable || !contains(pr.Why, WhyNoLinkedDecode) || len(pr.LinkedPeers) != 1 || pr.LinkedPeers[0] != 1 {
		t.Errorf("prefill report %+v", pr)
	}
	if resp := send(t, http.MethodGet, tr.url+"/readyz", ""); resp.status != 503 {
		t.Errorf("/readyz %d, want 503", resp.status)
	}
	// Back: routable again.
	d.mu.Lock()
	d.dresultCode = http.StatusOK
	d.mu.Unlock()
	tr.waitPrefills(t, 1)
	check("back")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// A prefill instance's failures: 5xx and connection errors go to another
// pair, a 4xx is relayed, an answer that is not MindIE's is 502.
func TestPDPrefillFailures(t *testing.T) {
	fails := func(code int, body string) prefillHandler {
		return func(f *fakePD, w http.ResponseWriter, call pdCall, d *fakePD) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			io.WriteString(w, body)
		}
	}
	cases := []struct {
		name       string
		bad        prefillHandler
		path       string
		wantStatus int
		wantBody   string
		wantBadHit bool
	}{
		{"500: another pair", fails(500, `{"error":"boom"}`), "/generate", 200, pdExpected("/generate", false), true},
		{"connection dropped: another pair", func(f *fakePD, w http.ResponseWriter, call pdCall, d *fakePD) {
			abortConnection(w, nil)
		}, "/generate", 200, pdExpected("/generate", false), true},
		{"400: relayed", fails(400, `{"error":"bad input"}`), "/generate", 400, `{"error":"bad input"}`, true},
		{"not JSON: 502", fails(200, `hello`), "/v1/completions", 502, `"type":"upstream_error"`, true},
		{"another reqId: 502", func(f *fakePD, w http.ResponseWriter, call pdCall, d *fakePD) {
			io.WriteString(w, prefillAnswerJSON("abc", false, true, "{}"))
		}, "/generate", 502, `"error":"prefill instance bad gave no valid answer to request`, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cl := newPDCluster()
			bad := newFakePD(t, cl, "bad", RolePrefill, "0", 0)
			good := newFakePD(t, cl, "good", RolePrefill, "0", 1)
			d := newFakePD(t, cl, "d", RoleDecode, "0", 2)
			bad.link(linkOK, d)
			good.link(linkOK, d)
			bad.setHandler(c.bad)
			cfg := pdTestConfig()
			cfg.Algorithm = RoundRobin // the first pick is the second instance in the ring: bad
			tr := startPDRouter(t, cfg, nil, 2, good, bad, d)
			a := send(t, http.MethodPost, tr.url+c.path, `{"inputs":"hi"}`)
			if a.status != c.wantStatus || !strings.Contains(a.body, c.wantBody) {
				t.Fatalf("got %d %q, want %d with %q", a.status, a.body, c.wantStatus, c.wantBody)
			}
			if got := bad.hits.Load() == 1; got != c.wantBadHit {
				t.Errorf("bad got %d requests", bad.hits.Load())
			}
		})
	}
}

// Timeouts: no prefill answer within --first-token-timeout is 504; a
// decode instance that never finishes is cut at --request-timeout.
func TestPDTimeouts(t *testing.T) {
	_, p, d := pdPair(t)
	cfg := pdTestConfig()
	cfg.FirstTokenTimeout = 200 * time.Millisecond
	cfg.RequestTimeout = 400 * time.Millisecond
	tr := startPDRouter(t, cfg, nil, 1, p, d)

	p.setHandler(func(f *fakePD, w http.ResponseWriter, call pdCall, d *fakePD) { time.Sleep(time.Second) })
	a := send(t, http.MethodPost, tr.url+"/generate", `{}`)
	if a.status != http.StatusGatewayTimeout || !strings.Contains(a.body, "--first-token-timeout") || a.instance != "p0" {
		t.Errorf("prefill silent: %d %q from %q", a.status, a.body, a.instance)
	}

	p.setHandler(func(f *fakePD, w http.ResponseWriter, call pdCall, d *fakePD) { // D never finishes
		io.WriteString(w, prefillAnswerJSON(call.header.Get(headerReqID), pdStream(call), false, pdEvent(call.path, "x", false)))
	})
	a = send(t, http.MethodPost, tr.url+"/generate", `{}`)
	if a.status != http.StatusGatewayTimeout || !strings.Contains(a.body, "--request-timeout") {
		t.Errorf("decode silent, not streamed: %d %q", a.status, a.body)
	}
	a = send(t, http.MethodPost, tr.url+"/generate_stream", `{}`)
	if a.status != 200 || !strings.HasPrefix(a.body, pdEvent("/generate_stream", "x", false)) || !strings.Contains(a.body, `"error_type":"timeout_error"`) {
		t.Errorf("decode silent, streamed: %d %q", a.status, a.body)
	}
	m := tr.metricsText(t)
	if v := metricValue(m, `mindie_router_pd_requests_total{outcome="timeout"}`); v != 3 {
		t.Errorf("pd_requests_total{timeout} = %v, want 3", v)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, b := range tr.order {
		if b.inflight != 0 || b.prefilling != 0 {
			t.Errorf("%s: %d in flight, %d prefilling after the requests", b.inst.Name, b.inflight, b.prefilling)
		}
	}
	if n := len(tr.pd.reqs); n != 0 {
		t.Errorf("%d requests still registered", n)
	}
}

// A removed decode instance fails the requests waiting on it at once.
func TestPDDecodeRemoved(t *testing.T) {
	_, p, d := pdPair(t)
	p.setHandler(func(f *fakePD, w http.ResponseWriter, call pdCall, d *fakePD) {
		io.WriteString(w, prefillAnswerJSON(call.header.Get(headerReqID), true, false, pdEvent(call.path, "x", false)))
	})
	tr := startPDRouter(t, pdTestConfig(), nil, 1, p, d)
	done := make(chan answer, 1)
	go func() {
		a, _ := trySend(http.MethodPost, tr.url+"/generate_stream", `{}`)
		done <- a
	}()
	waitFor(t, "a request decoding", func() bool {
		tr.pd.mu.Lock()
		defer tr.pd.mu.Unlock()
		return len(tr.pd.reqs) == 1
	})
	tr.src.set(p.instance())
	select {
	case a := <-done:
		if !strings.Contains(a.body, errDecodeGone.Error()) {
			t.Errorf("got %d %q", a.status, a.body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the request was not failed")
	}
}

// Without a usable pair a mixed set falls back to the instances without a
// role; requests that do not generate go to any instance whose role is
// ready.
func TestPDMixedAndPlainRoutes(t *testing.T) {
	_, p, d := pdPair(t)
	tr := startPDRouter(t, pdTestConfig(), nil, 1, p, d)
	a := send(t, http.MethodGet, tr.url+"/v1/models", "")
	if a.status != 200 || a.instance == "" || !strings.Contains(a.body, `"served_by":"`+a.instance+`"`) {
		t.Errorf("/v1/models: %d %q from %q", a.status, a.body, a.instance)
	}
	if len(p.takeCalls())+int(d.hits.Load()) != 1 {
		t.Errorf("/v1/models went to %d instances", len(p.takeCalls())+int(d.hits.Load()))
	}
	plain := newFakeBackend(t, "plain")
	p.link("failed", d)
	tr.src.set(p.instance(), d.instance(), plain.instance())
	tr.waitPrefills(t, 0)
	waitFor(t, "plain routable", func() bool { return tr.plainRoutable() })
	a = send(t, http.MethodPost, tr.url+"/generate", `{}`)
	if a.status != 200 || a.instance != "plain" {
		t.Errorf("fallback: %d %q from %q", a.status, a.body, a.instance)
	}
	p.link(linkOK, d)
	tr.waitPrefills(t, 1)
	a = send(t, http.MethodPost, tr.url+"/generate", `{}`)
	if a.status != 200 || a.instance != "p0" || plain.hits.Load() != 1 {
		t.Errorf("a usable pair first: %d %q from %q; plain got %d", a.status, a.body, a.instance, plain.hits.Load())
	}
}

func TestPDStaticBackends(t *testing.T) {
	got, err := ParseStaticBackends([]byte(`
- {name: p, inference: "http://127.0.0.2:1025", management: "http://127.0.0.2:1026", role: prefill, group: "0", id: 0}
- {name: d, inference: "http://127.0.0.3:1025", management: "http://127.0.0.3:1026", role: decode, group: "0", id: 7}
- {name: plain, inference: "http://127.0.0.4:1025"}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := StaticSource{
		{Name: "p", Inference: "http://127.0.0.2:1025", Management: "http://127.0.0.2:1026", Ready: true, Role: RolePrefill, Group: "0", ID: 0},
		{Name: "d", Inference: "http://127.0.0.3:1025", Management: "http://127.0.0.3:1026", Ready: true, Role: RoleDecode, Group: "0", ID: 7},
		{Name: "plain", Inference: "http://127.0.0.4:1025", Ready: true},
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	for doc, wantErr := range map[string]string{
		`[{name: p, inference: "http://h:1", management: "http://h:2", role: prefill}]`:         "[0].id: required with role prefill",
		`[{name: p, inference: "http://h:1", role: decode, id: 1}]`:                             "[0].management: required with role decode",
		`[{name: p, inference: "http://h:1", management: "http://h:2", role: flex, id: 1}]`:     `[0].role="flex": expected prefill, decode or nothing`,
		`[{name: p, inference: "http://h:1", group: "1"}]`:                                      `[0].group="1": only with role`,
		`[{name: p, inference: "http://h:1", id: 3}]`:                                           `[0].id=3: only with role`,
		`[{name: p, inference: "http://h:1", management: "http://h:2", role: prefill, id: -1}]`: "cannot unmarshal",
	} {
		if _, err := ParseStaticBackends([]byte(doc)); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%s: got %v, want %q", doc, err, wantErr)
		}
	}
}

func TestPDPodInstance(t *testing.T) {
	pd := func(role, group, id string) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.Labels[v1alpha1.LabelRole] = role
			if group != "" {
				p.Labels[v1alpha1.LabelGroup] = group
			}
			if id != "" {
				p.Annotations = map[string]string{v1alpha1.AnnotationPDID: id}
			}
		}
	}
	inst, why := podInstance(testPod("llama-p", pd("prefill", "2", "5")), "llama")
	if why != "" || inst.Role != RolePrefill || inst.Group != "2" || inst.ID != 5 {
		t.Errorf("prefill pod: %+v %q", inst, why)
	}
	inst, why = podInstance(testPod("llama-n"), "llama")
	if why != "" || inst.Role != "" || inst.Group != "" || inst.ID != 0 {
		t.Errorf("a pod without roles: %+v %q", inst, why)
	}
	for _, c := range []struct {
		change func(*corev1.Pod)
		why    string
	}{
		{pd("decode", "0", ""), "without its MindIE id"},
		{pd("decode", "0", "x"), "expected a decimal id"},
		{pd("flex", "0", "1"), `infer.mindie.io/role="flex"`},
	} {
		if _, why := podInstance(testPod("llama-x", c.change), "llama"); !strings.Contains(why, c.why) {
			t.Errorf("why %q, want %q", why, c.why)
		}
	}
}

func TestPDLeaseFlags(t *testing.T) {
	cfg := DefaultConfig()
	if cfg.PDLeaseDuration != 10*time.Second || cfg.PDLeaseRenewDeadline != 5*time.Second || cfg.PDLeaseRetryPeriod != 2*time.Second {
		t.Errorf("defaults %v %v %v", cfg.PDLeaseDuration, cfg.PDLeaseRenewDeadline, cfg.PDLeaseRetryPeriod)
	}
	cfg.PDLeaseDuration = 5 * time.Second
	cfg.PDLeaseRetryPeriod = 5 * time.Second
	err := cfg.Validate()
	cfg.PDLeaseDuration = 1500 * time.Millisecond
	err = errors.Join(err, cfg.Validate())
	for _, want := range []string{"--pd-lease-duration=5s: expected more than --pd-lease-renew-deadline (5s)",
		"--pd-lease-duration=1.5s: expected whole seconds",
		"--pd-lease-renew-deadline=5s: expected more than 1.2 × --pd-lease-retry-period (5s)"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

// standbyElector never leads: another replica holds the lease.
type standbyElector struct{}

func (standbyElector) Run(ctx context.Context, _ func(context.Context)) { <-ctx.Done() }
func (standbyElector) Holder() string                                   { return "router-b_1" }
func (standbyElector) Describe() string                                 { return "Lease infer/llama-router-pd" }

// The routes report of a pair: role, group, id, role status, links, the
// /dresult stream; a prefill instance switching roles is not routable.
func TestPDRoutesReport(t *testing.T) {
	_, p, d := pdPair(t)
	tr := startPDRouter(t, pdTestConfig(), nil, 1, p, d)
	rep := tr.routes(t)
	if !rep.Ready || rep.PD == nil || !rep.PD.Active || rep.PD.Lease != "" || rep.PD.Decoding != 0 {
		t.Fatalf("report %+v %+v", rep, rep.PD)
	}
	pr, dr := instanceReport(t, rep, "p0"), instanceReport(t, rep, "d0")
	if !pr.Routable || pr.Role != RolePrefill || pr.Group != "0" || pr.ID == nil || *pr.ID != 0 || pr.RoleStatus != roleStatusReady ||
		pr.CurrentRole != RolePrefill || len(pr.LinkedPeers) != 1 || pr.LinkedPeers[0] != 1 || pr.Dresult != "" || len(pr.Why) != 0 {
		t.Errorf("prefill %+v", pr)
	}
	if !dr.Routable || dr.Role != RoleDecode || dr.ID == nil || *dr.ID != 1 || dr.Dresult != DresultConnected || len(dr.Why) != 0 {
		t.Errorf("decode %+v", dr)
	}
	m := tr.metricsText(t)
	for series, want := range map[string]float64{
		`mindie_router_pd_active`:                           1,
		`mindie_router_pd_dresult_connected{instance="d0"}`: 1,
		`mindie_router_instance_routable{instance="p0"}`:    1,
		`mindie_router_instance_routable{instance="d0"}`:    1,
		`mindie_router_pd_decoding_requests`:                0,
	} {
		if v := metricValue(m, series); v != want {
			t.Errorf("%s = %v, want %v", series, v, want)
		}
	}

	p.setRole("RoleSwitching", "none")
	tr.waitPrefills(t, 0)
	rep = tr.routes(t)
	if pr := instanceReport(t, rep, "p0"); pr.Routable || !contains(pr.Why, WhyRoleNotReady) || pr.RoleStatus != "RoleSwitching" {
		t.Errorf("switching prefill %+v", pr)
	}
	if rep.Ready {
		t.Error("ready without a routable prefill instance")
	}
	p.setRole(roleStatusReady, RolePrefill)
	tr.waitPrefills(t, 1)
	d.setRole(roleStatusReady, RolePrefill) // the wrong role
	tr.waitPrefills(t, 0)
	if dr := instanceReport(t, tr.routes(t), "d0"); dr.Routable || !contains(dr.Why, WhyRoleNotReady) {
		t.Errorf("decode in the wrong role %+v", dr)
	}
}

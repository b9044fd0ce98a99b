package mindie

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The PD tests run a prefill instance (id 1) on 127.0.0.2 and a decode
// instance (id 2) on 127.0.0.3, on real loopback ports, their management
// ports on the same port number (so that a peer without mgmt_port is
// dialled on it), sharing a fake clock that stands still: every modelled
// duration takes no time, and role switching waits for the test to move
// the clock. A reference instance without a role, on the same clock, says
// what a single instance answers.
const (
	pIP = "127.0.0.2"
	dIP = "127.0.0.3"
)

type pdCluster struct {
	clock  *fakeClock
	p, d   *serving
	ref    *Server
	refURL string
	dPort  string // the decode instance's inference port
	client *http.Client
}

// listenSamePort listens on the same free port on every ip.
func listenSamePort(t *testing.T, ips ...string) []net.Listener {
	t.Helper()
	for range 50 {
		first, err := net.Listen("tcp", ips[0]+":0")
		if err != nil {
			t.Fatal(err)
		}
		port := strconv.Itoa(first.Addr().(*net.TCPAddr).Port)
		lns := []net.Listener{first}
		for _, ip := range ips[1:] {
			ln, err := net.Listen("tcp", net.JoinHostPort(ip, port))
			if err != nil {
				break
			}
			lns = append(lns, ln)
		}
		if len(lns) == len(ips) {
			return lns
		}
		for _, ln := range lns {
			ln.Close()
		}
	}
	t.Fatalf("no port free on all of %v", ips)
	return nil
}

func listen(t *testing.T, ip string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// newPDCluster starts the cluster and assigns the roles: prefill to 1 with
// peer 2, decode to 2 with peer 1, neither giving mgmt_port.
func newPDCluster(t *testing.T, cfg Config) *pdCluster {
	t.Helper()
	c := &pdCluster{clock: newFakeClock(), client: &http.Client{Timeout: 20 * time.Second}}
	mgmt := listenSamePort(t, pIP, dIP)
	c.p = startServingOn(t, cfg, listen(t, pIP), mgmt[0], WithClock(c.clock))
	c.d = startServingOn(t, cfg, listen(t, dIP), mgmt[1], WithClock(c.clock))
	inf, _ := c.d.srv.Addrs()
	c.dPort = strconv.Itoa(inf.(*net.TCPAddr).Port)
	ref, err := New(cfg, WithClock(c.clock))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(ref.InferenceHandler())
	t.Cleanup(ts.Close)
	c.ref, c.refURL = ref, ts.URL

	c.postRole(t, c.p.mgmt, "prefill", `{"local": {"id": 1, "server_ip": "127.0.0.2"}, "peers": [{"id": 2, "server_ip": "127.0.0.3"}]}`)
	c.postRole(t, c.d.mgmt, "decode", `{"local": {"id": 2, "server_ip": "127.0.0.3"}, "peers": [{"id": 1, "server_ip": "127.0.0.2"}]}`)
	for _, s := range []*serving{c.p, c.d} {
		if st := s.srv.Stats(); st.RoleStatus != "RoleSwitching" || len(st.Peers) != 1 || st.Peers[0].Link != "linking" {
			t.Fatalf("right after the role POST: %s %+v, want RoleSwitching and a linking peer", st.RoleStatus, st.Peers)
		}
	}
	waitReachable(t, c.p.srv, 2)
	waitReachable(t, c.d.srv, 1)
	c.clock.Advance(DefaultRoleSwitchTime) // > DefaultLinkTime
	for _, tc := range []struct {
		s    *serving
		role string
		peer uint64
	}{{c.p, "prefill", 2}, {c.d, "decode", 1}} {
		st := c.status(t, tc.s)
		if st.Service.RoleStatus != "RoleReady" || st.Service.CurrentRole != tc.role || !cmp.Equal(st.LinkStatus.Peers, []PeerStatus{{tc.peer, "ok"}}) {
			t.Fatalf("%s after RoleSwitchTime: %+v %+v", tc.role, st.Service, st.LinkStatus)
		}
	}
	return c
}

func (c *pdCluster) postRole(t *testing.T, mgmt, role, body string) {
	t.Helper()
	resp, err := c.client.Post(mgmt+"/v1/role/"+role, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /v1/role/%s: %d %s", role, resp.StatusCode, b)
	}
}

func (c *pdCluster) status(t *testing.T, s *serving) statusBody {
	t.Helper()
	code, body := httpGet(t, s.mgmt+"/v1/status")
	if code != http.StatusOK {
		t.Fatalf("/v1/status: %d %s", code, body)
	}
	var st statusBody
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// pdHeaders are valid PD headers sending reqID's decode to the decode
// instance.
func (c *pdCluster) pdHeaders(reqID string) map[string]string {
	return map[string]string{"req-type": "prefill", "req-id": reqID, "d-target": dIP, "d-port": c.dPort}
}

func (c *pdCluster) send(t *testing.T, url, body string, headers map[string]string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// prefill sends a PD request to the prefill instance and decodes its
// prefill reply.
func (c *pdCluster) prefill(t *testing.T, path, body, reqID string) prefillReply {
	t.Helper()
	r := c.send(t, c.p.inf+path, body, c.pdHeaders(reqID))
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("PD request %s to the prefill instance: %d %s", reqID, r.status, r.body)
	}
	var reply prefillReply
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&reply); err != nil {
		t.Fatalf("prefill reply %s: %v", r.body, err)
	}
	if reply.ReqID != reqID {
		t.Errorf("prefill reply for req-id %s says reqId %q", reqID, reply.ReqID)
	}
	return reply
}

// dresultReader reads a /dresult stream's messages.
type dresultReader struct {
	msgs chan dmsg
	err  error // why the stream ended, once msgs is closed
}

type dmsg struct{ keyword, payload string }

func openDResult(t *testing.T, inferenceURL string) *dresultReader {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, inferenceURL+"/dresult", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /dresult: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /dresult: %d", resp.StatusCode)
	}
	r := &dresultReader{msgs: make(chan dmsg, 1000)}
	go func() {
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		for {
			b, err := br.ReadBytes(0)
			if err != nil {
				if len(b) > 0 && err == io.EOF {
					err = io.ErrUnexpectedEOF // a message cut short
				}
				r.err = err
				close(r.msgs)
				return
			}
			kw, payload, ok := strings.Cut(string(b[:len(b)-1]), ":")
			if !ok {
				r.err = fmt.Errorf("message without a keyword: %q", b)
				close(r.msgs)
				return
			}
			r.msgs <- dmsg{kw, payload}
		}
	}()
	return r
}

// next returns the next message, false when the stream has ended.
func (r *dresultReader) next(t *testing.T) (dmsg, bool) {
	t.Helper()
	select {
	case m, ok := <-r.msgs:
		return m, ok
	case <-time.After(10 * time.Second):
		t.Fatal("no /dresult message within 10s")
		return dmsg{}, false
	}
}

// request reads reqID's messages up to its last one (lastData, error or
// retry), each after its own reqId: message, and returns them without the
// reqId: messages. It fails on any other request's message; it skips ka:.
func (r *dresultReader) request(t *testing.T, reqID string) []dmsg {
	t.Helper()
	var out []dmsg
	for {
		m, ok := r.next(t)
		if !ok {
			t.Fatalf("/dresult ended (%v) before the end of %s, after %q", r.err, reqID, out)
		}
		if m.keyword == "ka" {
			continue
		}
		if m.keyword != "reqId" || m.payload != reqID {
			t.Fatalf("want reqId:%s, got %s:%q", reqID, m.keyword, m.payload)
		}
		m, ok = r.next(t)
		if !ok {
			t.Fatalf("/dresult ended after reqId:%s", reqID)
		}
		out = append(out, m)
		switch m.keyword {
		case "data":
		case "lastData", "error", "retry":
			return out
		default:
			t.Fatalf("unexpected message %s:%q after reqId:%s", m.keyword, m.payload, reqID)
		}
	}
}

func TestPDRequestsAnswerAsASingleInstanceDoes(t *testing.T) {
	cfg := testConfig()
	cfg.DResultKeepAlive = NoDelay
	c := newPDCluster(t, cfg)
	dresult := openDResult(t, c.d.inf)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("prefill log:\n%s\ndecode log:\n%s", c.p.log, c.d.log)
		}
	})
	model := DefaultModelID
	chat := func(extra map[string]any) string { return chatBody(t, conversation, extra) }
	cases := []struct {
		name, path, body  string
		stream, handedOff bool
	}{
		{"chat stream with usage", "/v1/chat/completions", chat(map[string]any{"max_tokens": 12, "stream": true, "stream_options": map[string]any{"include_usage": true}}), true, true},
		// The same prompt again: both prefix caches hit; usage says so.
		{"chat", "/v1/chat/completions", chat(map[string]any{"max_tokens": 12}), false, true},
		{"completions stream", "/v1/completions", jsonBody(t, map[string]any{"prompt": words(0, 30), "max_tokens": 9, "stream": true}), true, true},
		{"completions", "/v1/completions", jsonBody(t, map[string]any{"prompt": words(100, 30), "max_tokens": 9}), false, true},
		{"TGI stream", "/generate_stream", `{"inputs": "My name is Olivier and I", "parameters": {"max_new_tokens": 7, "return_full_text": true}}`, true, true},
		{"TGI with details", "/generate", `{"inputs": "What is MindIE?", "parameters": {"max_new_tokens": 6, "details": true}}`, false, true},
		{"infer stream", "/infer", `{"inputs": "What is MindIE?", "stream": true, "parameters": {"max_new_tokens": 6}}`, true, true},
		{"vLLM", "/generate", `{"prompt": "Tell me about PD", "max_tokens": 5}`, false, true},
		{"triton stream", "/v2/models/" + model + "/generate_stream", `{"text_input": "Hello", "parameters": {"max_tokens": 5}}`, true, true},
		{"triton", "/v2/models/" + model + "/generate", `{"text_input": "Hello there", "parameters": {"max_tokens": 5}}`, false, true},
		// Generation ends at the prefill: nothing goes to the decode instance.
		{"chat ending at prefill", "/v1/chat/completions", chat(map[string]any{"max_tokens": 1}), false, false},
		{"chat stream ending at prefill", "/v1/chat/completions", chat(map[string]any{"max_tokens": 1, "stream": true}), true, false},
	}
	var handedOff, decodeTokens uint64
	for i, tc := range cases {
		reqID := fmt.Sprintf("%x", 0xa0+i)
		before := c.ref.Stats().GenerationTokens
		want := c.send(t, c.refURL+tc.path, tc.body, nil)
		if want.status != http.StatusOK {
			t.Fatalf("%s: the reference answered %d %s", tc.name, want.status, want.body)
		}
		tokens := int(c.ref.Stats().GenerationTokens - before)
		reply := c.prefill(t, tc.path, tc.body, reqID)
		if reply.IsStream != tc.stream || reply.IsLastResp == tc.handedOff {
			t.Errorf("%s: isStream %t isLastResp %t, want %t %t", tc.name, reply.IsStream, reply.IsLastResp, tc.stream, !tc.handedOff)
		}
		got := reply.Output
		if tc.handedOff {
			msgs := dresult.request(t, reqID)
			data := 0
			for _, m := range msgs {
				got += m.payload
				if m.keyword == "data" {
					data++
				}
			}
			if msgs[len(msgs)-1].keyword != "lastData" {
				t.Fatalf("%s: the request ended with %s:%q", tc.name, msgs[len(msgs)-1].keyword, msgs[len(msgs)-1].payload)
			}
			if !tc.stream && (reply.Output != "" || data != 0) {
				t.Errorf("%s: not streamed, yet output %q and %d data: messages", tc.name, reply.Output, data)
			}
			if tc.stream {
				// One event per token: the first from the prefill
				// instance, the last in lastData:, the others in data:.
				if data != tokens-2 {
					t.Errorf("%s: %d data: messages for %d tokens", tc.name, data, tokens)
				}
				if sseData(t, []byte(reply.Output)) == nil {
					t.Errorf("%s: output %q is not whole events", tc.name, reply.Output)
				}
			}
			handedOff++
			decodeTokens += uint64(tokens - 1)
		}
		// Byte for byte: the same ids, timestamps (the clocks agree) and
		// cached tokens (the prefix caches saw the same prompts).
		if got != string(want.body) {
			t.Errorf("%s: prefill output + /dresult messages differ from a single instance's answer:\n got %q\nwant %q", tc.name, got, want.body)
		}
	}
	p, d := c.p.srv.Stats(), c.d.srv.Stats()
	if p.PDPrefillRequests != uint64(len(cases)) || p.GenerationTokens != uint64(len(cases)) || p.RequestsSucceeded != uint64(len(cases)) {
		t.Errorf("prefill instance: %d PD requests, %d tokens, %d succeeded; want %d of each", p.PDPrefillRequests, p.GenerationTokens, p.RequestsSucceeded, len(cases))
	}
	if d.PDDecodeRequests != handedOff || d.PDDecodeTokens != decodeTokens || d.GenerationTokens != decodeTokens || d.PromptTokens != 0 {
		t.Errorf("decode instance: %d requests, %d decode tokens, %d tokens, %d prompt tokens; want %d requests and %d tokens, no prompt",
			d.PDDecodeRequests, d.PDDecodeTokens, d.GenerationTokens, d.PromptTokens, handedOff, decodeTokens)
	}
	if r := c.ref.Stats(); r.GenerationTokens != p.GenerationTokens+d.GenerationTokens || r.PrefixCacheHits != p.PrefixCacheHits {
		t.Errorf("tokens: reference %d, prefill %d + decode %d; prefix cache hits: reference %d, prefill %d",
			r.GenerationTokens, p.GenerationTokens, d.GenerationTokens, r.PrefixCacheHits, p.PrefixCacheHits)
	}
	// The counters are in /metrics-json and /metrics.
	if _, body := httpGet(t, c.d.mgmt+"/metrics-json"); !strings.Contains(body, fmt.Sprintf(`"pdDecodeTokens","job":"node","instance":"%s"}],"value":"%d"`, strings.TrimPrefix(c.d.mgmt, "http://"), decodeTokens)) {
		t.Errorf("/metrics-json of the decode instance lacks pdDecodeTokens %d: %s", decodeTokens, body)
	}
	if _, body := httpGet(t, c.p.inf+"/metrics"); !strings.Contains(body, fmt.Sprintf(`pd_prefill_requests_total{model_name="%s"} %d`, model, len(cases))) {
		t.Errorf("/metrics of the prefill instance lacks pd_prefill_requests_total: %s", body)
	}
}

func TestPDRequestsAreChecked(t *testing.T) {
	cfg := testConfig()
	cfg.DResultKeepAlive = NoDelay
	c := newPDCluster(t, cfg)
	dresult := openDResult(t, c.d.inf)
	body := chatBody(t, conversation, map[string]any{"max_tokens": 4})
	with := func(changes map[string]string) map[string]string {
		h := c.pdHeaders("1f")
		for k, v := range changes {
			if v == "" {
				delete(h, k)
			} else {
				h[k] = v
			}
		}
		return h
	}
	cases := []struct {
		name    string
		url     string
		headers map[string]string
		status  int
		want    string
	}{
		{"no PD headers", c.p.inf, nil, 400, "missing header req-type: a prefill instance serves only PD requests"},
		{"wrong req-type", c.p.inf, with(map[string]string{"req-type": "decode"}), 400, `header req-type must be \"prefill\"`},
		{"req-id not hex", c.p.inf, with(map[string]string{"req-id": "req-1"}), 400, "header req-id must be 1 to 1024 hex digits"},
		{"req-id too long", c.p.inf, with(map[string]string{"req-id": strings.Repeat("a", 1025)}), 400, "header req-id must be 1 to 1024 hex digits"},
		{"no req-id", c.p.inf, with(map[string]string{"req-id": ""}), 400, "header req-id"},
		{"bad is-recompute", c.p.inf, with(map[string]string{"is-recompute": "maybe"}), 400, "header is-recompute must be true or false"},
		{"d-target not an ip", c.p.inf, with(map[string]string{"d-target": "decoder"}), 400, "header d-target must be"},
		{"d-target bad port", c.p.inf, with(map[string]string{"d-target": dIP + ";0"}), 400, "header d-target: the port"},
		{"d-target not a peer", c.p.inf, with(map[string]string{"d-target": "127.0.0.9"}), 400, "header d-target: 127.0.0.9 is not a peer of this prefill instance (its peers: [2=127.0.0.3])"},
		{"no d-port", c.p.inf, with(map[string]string{"d-port": ""}), 400, "missing header d-port"},
		{"bad d-port", c.p.inf, with(map[string]string{"d-port": "x"}), 400, "header d-port must be a port number"},
		{"plain request to the decode instance", c.d.inf, nil, 400, "this is a decode instance: it serves no requests of its own"},
		{"PD request to the decode instance", c.d.inf, c.pdHeaders("1f"), 400, "this is a decode instance"},
		{"PD request to an instance without a role", c.refURL, c.pdHeaders("1f"), 400, `header req-type: \"prefill\" sent to an instance without a PD role`},
	}
	for _, tc := range cases {
		r := c.send(t, tc.url+"/v1/chat/completions", body, tc.headers)
		if r.status != tc.status || !strings.Contains(string(r.body), tc.want) {
			t.Errorf("%s: %d %s, want %d and %q", tc.name, r.status, r.body, tc.status, tc.want)
		}
		var e struct {
			Error struct {
				Message, Type string
			}
		}
		if json.Unmarshal(r.body, &e) != nil || e.Error.Type != "invalid_request_error" {
			t.Errorf("%s: not an OpenAI error: %s", tc.name, r.body)
		}
	}
	if st := c.p.srv.Stats(); st.RequestsFailed != 11 || st.PDPrefillRequests != 0 {
		t.Errorf("prefill instance: %d failed, %d PD requests; want 11 and none", st.RequestsFailed, st.PDPrefillRequests)
	}

	// The decode instance's port in d-target; is-recompute: true is counted.
	r := c.send(t, c.p.inf+"/v1/chat/completions", body, with(map[string]string{"d-target": dIP + ";" + c.dPort, "d-port": "", "is-recompute": "true"}))
	if r.status != http.StatusOK {
		t.Fatalf("d-target with its port: %d %s", r.status, r.body)
	}
	dresult.request(t, "1f")
	if st := c.p.srv.Stats(); st.PDPrefillRequests != 1 || st.PDRecomputes != 1 {
		t.Errorf("PD requests %d, recomputes %d; want 1 and 1", st.PDPrefillRequests, st.PDRecomputes)
	}
	// A vLLM stream cannot travel in /dresult messages.
	if r := c.send(t, c.p.inf+"/generate", `{"prompt": "hi", "stream": true}`, c.pdHeaders("2f")); r.status != 400 || !strings.Contains(string(r.body), "cannot be streamed with PD headers") {
		t.Errorf("vLLM stream: %d %s", r.status, r.body)
	}

	// A peer whose link is not up is refused with 503.
	c.postRole(t, c.p.mgmt, "prefill", fmt.Sprintf(`{"peers": [{"id": 2, "server_ip": "127.0.0.3"}, {"id": 5, "server_ip": "127.0.0.5", "mgmt_port": %d}]}`, closedPort(t)))
	r = c.send(t, c.p.inf+"/v1/chat/completions", body, with(map[string]string{"d-target": "127.0.0.5"}))
	if r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "header d-target: the KV link to 127.0.0.5 is linking, not ok") {
		t.Errorf("d-target with its link linking: %d %s", r.status, r.body)
	}
	// A decode instance that no longer has the prefill instance as a peer
	// refuses the hand-off; the prefill instance says so with 503.
	c.postRole(t, c.d.mgmt, "decode", `{"peers": []}`)
	r = c.send(t, c.p.inf+"/v1/chat/completions", body, c.pdHeaders("3f"))
	if r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "refused the request: 503: the prefill instance 1 is not a peer with an ok KV link") {
		t.Errorf("hand-off to a decode instance not linked back: %d %s", r.status, r.body)
	}
	// A role switch: the prefill instance is not ready.
	c.postRole(t, c.p.mgmt, "flex", `{"peers": [{"id": 2, "server_ip": "127.0.0.3"}]}`)
	r = c.send(t, c.p.inf+"/v1/chat/completions", body, c.pdHeaders("4f"))
	if r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "the flex role is not ready (RoleSwitching)") {
		t.Errorf("PD request while switching: %d %s", r.status, r.body)
	}
	// A flex instance also serves plain requests.
	if r := c.send(t, c.p.inf+"/v1/chat/completions", body, nil); r.status != http.StatusOK {
		t.Errorf("plain request to a flex instance: %d %s", r.status, r.body)
	}
}

func TestDResultConsumersAndDecodeFaults(t *testing.T) {
	cfg := testConfig()
	cfg.DResultKeepAlive = NoDelay
	c := newPDCluster(t, cfg)
	first := openDResult(t, c.d.inf)
	waitUntil(t, "the consumer connects", func() bool { return c.d.srv.Stats().DResultConnected })
	stream := chatBody(t, conversation, map[string]any{"max_tokens": 6, "stream": true})
	last := func(msgs []dmsg) dmsg { return msgs[len(msgs)-1] }

	c.d.srv.FailNextDecode(1)
	c.prefill(t, "/v1/chat/completions", stream, "b1")
	if m := first.request(t, "b1"); len(m) != 1 || m[0] != (dmsg{"error", "decode failed (injected fault)"}) {
		t.Errorf("FailNextDecode: %q, want a single error: message", m)
	}
	c.d.srv.RecomputeNextDecode(1)
	c.prefill(t, "/v1/chat/completions", stream, "b2")
	if m := first.request(t, "b2"); len(m) != 1 || m[0] != (dmsg{"retry", stream}) {
		t.Errorf("RecomputeNextDecode: %q, want retry:<the request body>", m)
	}
	c.prefill(t, "/v1/chat/completions", stream, "b3")
	if m := first.request(t, "b3"); last(m).keyword != "lastData" {
		t.Errorf("after the faults: %q, want a normal answer", m)
	}

	// A second consumer takes over: the first gets close: and its stream
	// ends cleanly.
	second := openDResult(t, c.d.inf)
	if m, ok := first.next(t); !ok || m != (dmsg{"close", ""}) {
		t.Errorf("the replaced consumer got %q (%t), want close:", m, ok)
	}
	if _, ok := first.next(t); ok || first.err != io.EOF {
		t.Errorf("the replaced consumer's stream should end cleanly, got %v", first.err)
	}
	c.prefill(t, "/v1/chat/completions", stream, "b4")
	if m := second.request(t, "b4"); last(m).keyword != "lastData" {
		t.Errorf("the new consumer: %q", m)
	}

	// DropDResult cuts the connection: no close:, the chunked stream does
	// not end properly.
	if !c.d.srv.DropDResult() {
		t.Fatal("DropDResult found no consumer")
	}
	if m, ok := second.next(t); ok {
		t.Errorf("after DropDResult the consumer got %q", m)
	}
	if second.err == nil || second.err == io.EOF {
		t.Errorf("a dropped /dresult should end with an error, got %v", second.err)
	}
	if c.d.srv.DropDResult() {
		t.Error("DropDResult with no consumer reported one")
	}

	// With no consumer the messages wait, and go to the next one.
	c.prefill(t, "/v1/chat/completions", stream, "b5")
	waitUntil(t, "the decode instance finishes", func() bool {
		st := c.d.srv.Stats()
		return st.Running == 0 && st.Waiting == 0 && st.DResultBuffered > 0
	})
	want := c.d.srv.Stats().DResultBuffered
	third := openDResult(t, c.d.inf)
	if m := third.request(t, "b5"); len(m) != want || last(m).keyword != "lastData" {
		t.Errorf("buffered messages: %q, want %d ending in lastData:", m, want)
	}
	if st := c.d.srv.Stats(); st.PDDecodeRequests != 5 {
		t.Errorf("%d hand-offs counted, want 5 (faults included)", st.PDDecodeRequests)
	}
}

func TestDResultKeepAlive(t *testing.T) {
	h := newHarness(t, func() Config { cfg := testConfig(); cfg.DResultKeepAlive = 20 * time.Millisecond; return cfg }())
	r := openDResult(t, h.inf.URL)
	for range 2 {
		if m, ok := r.next(t); !ok || m != (dmsg{"ka", ""}) {
			t.Fatalf("an idle /dresult: %q (%t), want ka:", m, ok)
		}
	}
}

var handoffSeq atomic.Uint64

// submitHandoff hands a completion-style request over to h's server as a
// prefill instance would (its first token generated) and follows it in
// the background.
func (h *harness) submitHandoff(prompt string, maxTokens int, stream bool) (*submitted, *handoff) {
	h.t.Helper()
	hf := &handoff{
		ReqID:  fmt.Sprintf("%x", 0xd000+handoffSeq.Add(1)),
		Format: answerFormat{API: apiCompletions, Stream: stream, ID: "cmpl-sim-1", Model: h.srv.cfg.ModelID},
		Prompt: Tokenize(prompt), LeadingSpace: true, MaxTokens: maxTokens, Generated: 1,
		Body: jsonBody(h.t, map[string]any{"prompt": prompt, "max_tokens": maxTokens}),
	}
	j, apiErr := h.srv.handoffJob(hf)
	if apiErr != nil {
		h.t.Fatalf("handoffJob: %v", apiErr)
	}
	r, err := h.srv.startHandoff(j, hf)
	if err != nil {
		h.t.Fatalf("startHandoff: %v", err)
	}
	s := &submitted{done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.gen, s.err = h.srv.decodeHandoff(r, hf)
	}()
	return s, hf
}

// queued returns the /dresult messages waiting for a consumer.
func (h *harness) queued() []dmsg {
	h.srv.dresult.mu.Lock()
	defer h.srv.dresult.mu.Unlock()
	var out []dmsg
	for _, e := range h.srv.dresult.queue {
		for _, m := range bytes.Split(bytes.TrimSuffix(e, []byte{0}), []byte{0}) {
			kw, payload, _ := strings.Cut(string(m), ":")
			out = append(out, dmsg{kw, payload})
		}
	}
	return out
}

func TestKVTransferTimeScalesWithThePrompt(t *testing.T) {
	cfg := testConfig() // 1s decode steps
	cfg.KVTransferPerToken = time.Millisecond
	for _, n := range []int{100, 400} {
		h := blockingHarness(t, cfg)
		s, _ := h.submitHandoff(words(0, n), 3, false)
		h.wait(s)
		// Its KV arrives, then a decode step produces its second token.
		if want := time.Duration(n)*time.Millisecond + time.Second; s.ttft() != want {
			t.Errorf("%d prompt tokens: first decoded token after %v, want %v", n, s.ttft(), want)
		}
		if got := s.intervals(); !slices.Equal(got, []time.Duration{time.Second}) {
			t.Errorf("%d prompt tokens: intervals %v, want [1s]", n, got)
		}
		if st := h.srv.Stats(); st.PDDecodeTokens != 2 || st.PromptTokens != 0 || st.PrefixCacheMisses != 0 {
			t.Errorf("decode instance: %d tokens, %d prompt tokens, %d cache lookups; want 2, no prefill", st.PDDecodeTokens, st.PromptTokens, st.PrefixCacheMisses)
		}
	}
}

func TestDecodeInstanceQueuesForBlocks(t *testing.T) {
	cfg := testConfig() // blocks of 4 tokens, 1s decode steps
	cfg.CacheBlocks = 30
	cfg.KVTransferPerToken = time.Millisecond
	h := blockingHarness(t, cfg)
	a, _ := h.submitHandoff(words(0, 80), 10, false) // 20 blocks, 23 with its answer
	waitUntil(t, "a's transfer", func() bool { return h.clock.sleepers() == 1 })
	b, _ := h.submitHandoff(words(1000, 48), 5, false) // 12 blocks: only 10 are left
	if st := h.srv.Stats(); st.Running != 1 || st.Waiting != 1 {
		t.Errorf("running %d waiting %d, want b waiting for blocks", st.Running, st.Waiting)
	}
	h.wait(a, b)
	// a: 80ms of transfer, 9 steps; then b: 48ms of transfer, a step.
	if want := 80*time.Millisecond + 9*time.Second + 48*time.Millisecond + time.Second; b.ttft() != want {
		t.Errorf("b's first decoded token after %v, want %v", b.ttft(), want)
	}
}

// answerOf finds a prompt of n tokens whose answer is at least min tokens
// long, the first from words(start, n) on.
func answerOf(t *testing.T, start, n, min int) string {
	t.Helper()
	for k := range 1000 {
		p := words(start+k*1000, n)
		if len(generate(DefaultModelID, Tokenize(p), min).tokens) == min {
			return p
		}
	}
	t.Fatalf("no prompt of %d tokens with an answer of %d", n, min)
	return ""
}

func TestDecodeInstancePreemptionAsksForRecompute(t *testing.T) {
	cfg := testConfig() // blocks of 4 tokens
	cfg.CacheBlocks = 12
	h := blockingHarness(t, cfg)
	// Each fits alone (16 + 30 tokens: 12 blocks), not both.
	a, _ := h.submitHandoff(answerOf(t, 0, 16, 30), 30, false)
	b, hb := h.submitHandoff(answerOf(t, 500_000, 16, 30), 30, false)
	h.runUntil("both end", func() bool { return a.finished() && b.finished() })
	if a.err != nil || !errors.Is(b.err, errRecompute) {
		t.Fatalf("a: %v, b: %v; want a done and b sent back for a recompute", a.err, b.err)
	}
	msgs := h.queued()
	if !slices.Contains(msgs, dmsg{"retry", hb.Body}) {
		t.Errorf("no retry:<body> for b among %q", msgs)
	}
	if st := h.srv.Stats(); st.Preemptions != 1 || st.Running != 0 || st.FreeBlocks != 12 {
		t.Errorf("preemptions %d running %d free blocks %d; want 1, 0, 12", st.Preemptions, st.Running, st.FreeBlocks)
	}
}

func TestDResultBufferIsBounded(t *testing.T) {
	h := newHarness(t, testConfig())
	h.srv.dresult.limit = 5
	s, hf := h.submitHandoff(answerOf(t, 0, 10, 12), 12, true)
	<-s.done
	if !errors.Is(s.err, errDResultOverflow) {
		t.Fatalf("err %v, want errDResultOverflow", s.err)
	}
	msgs := h.queued()
	want := []dmsg{{"reqId", hf.ReqID}, {"error", "decode output dropped: 5 messages are waiting for a /dresult consumer"}}
	if len(msgs) != 12 || !slices.Equal(msgs[10:], want) {
		t.Errorf("queued %q, want 5 data: messages then %q", msgs, want)
	}
	if st := h.srv.Stats(); st.Running != 0 || st.FreeBlocks != st.TotalBlocks {
		t.Errorf("the dropped request still runs: %+v", st)
	}
}

// TestPrefillInterferesWithDecodeUnlessDisaggregated measures, with the
// default timings, the time per output token of a request that is
// decoding when four 2,000-token prompts arrive: on a single instance
// their prefills stall it; on a decode instance (their prefills on a
// prefill instance) its steps only grow with the batch. The numbers are in
// docs/simulator.md (simulated).
func TestPrefillInterferesWithDecodeUnlessDisaggregated(t *testing.T) {
	cfg := Config{LoadTime: NoDelay}
	const longPrompt, longs = 2000, 4
	stats := func(iv []time.Duration) (mean, maxTPOT time.Duration) {
		var sum time.Duration
		for _, d := range iv {
			sum += d
			maxTPOT = max(maxTPOT, d)
		}
		return sum / time.Duration(len(iv)), maxTPOT
	}

	// runTo runs h's engine, one iteration at a time, until it has
	// generated n tokens; it is then in its next iteration.
	runTo := func(h *harness, n uint64, generated func() uint64) {
		for {
			waitUntil(t, "the engine sleeps", func() bool { return h.clock.sleepers() == 1 })
			if generated() >= n {
				return
			}
			h.clock.step()
		}
	}
	prompt := answerOf(t, 0, 100, 40)

	mixed := blockingHarness(t, cfg)
	r := mixed.submit(prompt, 40)
	runTo(mixed, 5, func() uint64 { return mixed.srv.Stats().GenerationTokens })
	subs := []*submitted{r}
	for k := range longs {
		subs = append(subs, mixed.submit(words((k+1)*10000, longPrompt), 10))
	}
	waitUntil(t, "the long prompts queue", func() bool { return mixed.srv.Stats().Waiting == longs })
	mixed.wait(subs...)
	mixedMean, mixedMax := stats(r.intervals())

	pd := blockingHarness(t, cfg)
	if err := pd.srv.SetRole(RoleDecode); err != nil {
		t.Fatal(err)
	}
	d, _ := pd.submitHandoff(prompt, 40, false)
	runTo(pd, 4, func() uint64 { return pd.srv.Stats().PDDecodeTokens }) // tokens 2 to 5
	subs = []*submitted{d}
	for k := range longs {
		s, _ := pd.submitHandoff(words((k+1)*10000, longPrompt), 10, false)
		subs = append(subs, s)
	}
	pd.wait(subs...)
	pdMean, pdMax := stats(d.intervals())

	prefill := time.Duration(longPrompt) * DefaultPrefillPerToken
	step5 := DefaultDecodePerToken + longs*DefaultDecodePerBatchedRequest
	t.Logf("simulated, defaults: single instance TPOT mean %v max %v; decode instance TPOT mean %v max %v; KV transfer of %d tokens %v",
		mixedMean, mixedMax, pdMean, pdMax, longPrompt, longPrompt*DefaultKVTransferPerToken)
	if mixedMax != longs*prefill+step5 {
		t.Errorf("single instance: longest gap %v, want the %d prefills (%v) and a step of 5 (%v)", mixedMax, longs, longs*prefill, step5)
	}
	if pdMax != step5 {
		t.Errorf("decode instance: longest gap %v, want a step of 5 (%v): no prefill, no transfer in it", pdMax, step5)
	}
	if mixedMean < 2*pdMean {
		t.Errorf("mean TPOT: single instance %v, decode instance %v: the prefills should show", mixedMean, pdMean)
	}
}

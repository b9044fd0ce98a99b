package router

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"mindie.io/deployer/pkg/simulator/mindie"
)

// simServer is a MindIE simulator serving on ip (loopback), both ports.
type simServer struct {
	srv       *mindie.Server
	inference string
	mgmt      string
	mgmtPort  int
}

func startSim(t *testing.T, ip string, cfg mindie.Config) *simServer {
	t.Helper()
	srv, err := mindie.New(cfg, mindie.WithLogWriter(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	inf, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	mgmt, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.ServeListeners(ctx, inf, mgmt)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	<-srv.Listening()
	return &simServer{srv: srv, inference: "http://" + inf.Addr().String(), mgmt: "http://" + mgmt.Addr().String(),
		mgmtPort: mgmt.Addr().(*net.TCPAddr).Port}
}

func postJSON(t *testing.T, url, body string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %d %s", url, resp.StatusCode, b)
	}
}

// generatedText is the text of an answer: an OpenAI chat's content, or the
// concatenated deltas of its stream.
func generatedText(t *testing.T, body string, stream bool) string {
	t.Helper()
	type choice struct {
		Message struct{ Content string } `json:"message"`
		Delta   struct{ Content string } `json:"delta"`
	}
	var doc struct{ Choices []choice }
	if !stream {
		if err := json.Unmarshal([]byte(body), &doc); err != nil || len(doc.Choices) != 1 {
			t.Fatalf("not a chat answer: %v %q", err, body)
		}
		return doc.Choices[0].Message.Content
	}
	var text strings.Builder
	for _, line := range strings.Split(body, "\n") {
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		doc.Choices = nil
		if err := json.Unmarshal([]byte(data), &doc); err != nil {
			t.Fatalf("event %q: %v", data, err)
		}
		for _, c := range doc.Choices {
			text.WriteString(c.Delta.Content)
		}
	}
	if !strings.HasSuffix(body, "data: [DONE]\n\n") {
		t.Fatalf("stream without its end: %q", body)
	}
	return text.String()
}

// simPD starts a simulator without roles (the reference) on 127.0.0.1, a
// prefill one on 127.0.0.2 and a decode one on 127.0.0.3, gives them their
// roles and peers with the role API, and a router over the pair.
func simPD(t *testing.T, decodePerToken time.Duration) (ref, p, d *simServer, tr *testRouter) {
	t.Helper()
	cfg := mindie.Config{
		LoadTime:         mindie.NoDelay,
		PrefillPerToken:  50 * time.Microsecond,
		DecodePerToken:   decodePerToken,
		RoleSwitchTime:   50 * time.Millisecond,
		LinkTime:         50 * time.Millisecond,
		DResultKeepAlive: 100 * time.Millisecond,
	}
	ref = startSim(t, "127.0.0.1", cfg)
	p = startSim(t, "127.0.0.2", cfg)
	d = startSim(t, "127.0.0.3", cfg)
	postJSON(t, p.mgmt+"/v1/role/prefill", fmt.Sprintf(
		`{"local":{"id":1,"server_ip":"127.0.0.2"},"peers":[{"id":2,"server_ip":"127.0.0.3","mgmt_port":%d}]}`, d.mgmtPort))
	postJSON(t, d.mgmt+"/v1/role/decode", fmt.Sprintf(
		`{"local":{"id":2,"server_ip":"127.0.0.3"},"peers":[{"id":1,"server_ip":"127.0.0.2","mgmt_port":%d}]}`, p.mgmtPort))

	src := &fakeSource{current: []Instance{
		{Name: "sim-p", Inference: p.inference, Management: p.mgmt, Ready: true, Role: RolePrefill, Group: "0", ID: 1},
		{Name: "sim-d", Inference: d.inference, Management: d.mgmt, Ready: true, Role: RoleDecode, Group: "0", ID: 2},
	}}
	tr = runRouterOn(t, pdTestConfig(), src)
	tr.waitPrefills(t, 1)
	return ref, p, d, tr
}

func simChat(stream bool, maxTokens int, content string) string {
	b, _ := json.Marshal(map[string]any{"model": mindie.DefaultModelID, "stream": stream, "max_tokens": maxTokens,
		"messages": []map[string]string{{"role": "user", "content": content}}})
	return string(b)
}

// Real simulator servers as P and D, given their roles with the role API:
// chats through the router answer the same text as a server without PD.
func TestPDWithTheSimulator(t *testing.T) {
	ref, _, d, tr := simPD(t, time.Millisecond)
	chat := simChat
	cases := []struct {
		name   string
		body   string
		stream bool
	}{
		{"chat", chat(false, 12, "What is prefill/decode disaggregation?"), false},
		{"chat stream", chat(true, 12, "Tell me about KV caches."), true},
		{"chat ending at the prefill", chat(false, 1, "Hi"), false},
		{"chat stream ending at the prefill", chat(true, 1, "Hello"), true},
		{"long chat stream", chat(true, 40, "Write a long answer about routers."), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := send(t, http.MethodPost, ref.inference+"/v1/chat/completions", c.body)
			got := send(t, http.MethodPost, tr.url+"/v1/chat/completions", c.body)
			if want.status != 200 || got.status != 200 {
				t.Fatalf("reference %d %q, router %d %q", want.status, want.body, got.status, got.body)
			}
			if got.instance != "sim-p" || got.header.Get(DecodeInstanceHeader) != "sim-d" {
				t.Errorf("served by %q and %q", got.instance, got.header.Get(DecodeInstanceHeader))
			}
			wt, gt := generatedText(t, want.body, c.stream), generatedText(t, got.body, c.stream)
			if wt == "" || wt != gt {
				t.Errorf("through the router %q, a server without PD %q", gt, wt)
			}
		})
	}
	// The other routes too: the same answer, bar the ids and times.
	for _, c := range []struct{ path, body string }{
		{"/generate", `{"inputs":"What is MindIE?","parameters":{"max_new_tokens":6}}`},
		{"/generate_stream", `{"inputs":"What is MindIE?","parameters":{"max_new_tokens":6}}`},
		{"/infer", `{"inputs":"What is MindIE?","stream":false,"parameters":{"max_new_tokens":6}}`},
		{"/infer", `{"inputs":"What is MindIE?","stream":true,"parameters":{"max_new_tokens":6}}`},
	} {
		want := send(t, http.MethodPost, ref.inference+c.path, c.body)
		got := send(t, http.MethodPost, tr.url+c.path, c.body)
		if want.status != 200 || got.status != 200 || got.body != want.body {
			t.Errorf("%s %s: router %d %q, a server without PD %d %q", c.path, c.body, got.status, got.body, want.status, want.body)
		}
	}
	st := d.srv.Stats()
	if st.PDDecodeRequests == 0 {
		t.Errorf("the decode simulator decoded nothing: %+v", st)
	}
	rep := tr.routes(t)
	if ir := instanceReport(t, rep, "sim-p"); !ir.Routable || ir.RoleStatus != roleStatusReady || ir.CurrentRole != RolePrefill ||
		len(ir.LinkedPeers) != 1 || ir.LinkedPeers[0] != 2 {
		t.Errorf("prefill report %+v", ir)
	}
	if ir := instanceReport(t, rep, "sim-d"); !ir.Routable || ir.Dresult != DresultConnected {
		t.Errorf("decode report %+v", ir)
	}
}

// runRouterOn runs a router over src and serves it on 127.0.0.1.
func runRouterOn(t *testing.T, cfg Config, src *fakeSource) *testRouter {
	t.Helper()
	tr := startPDRouter(t, cfg, nil, 0)
	tr.src.set(src.current...)
	return tr
}

// The simulator's decode faults through the router: a recompute (retry:)
// is sent again and answers the same text, error: is relayed, and a /dresult
// connection dropped mid-answer is reopened and the answer completes.
func TestPDSimulatorFaults(t *testing.T) {
	ref, p, d, tr := simPD(t, 2*time.Millisecond)
	same := func(what, body string, stream bool) {
		t.Helper()
		want := send(t, http.MethodPost, ref.inference+"/v1/chat/completions", body)
		got := send(t, http.MethodPost, tr.url+"/v1/chat/completions", body)
		if got.status != 200 || generatedText(t, got.body, stream) != generatedText(t, want.body, stream) {
			t.Errorf("%s: router %d %q, a server without PD %q", what, got.status, got.body, want.body)
		}
	}
	d.srv.RecomputeNextDecode(1)
	same("recompute", simChat(false, 12, "Recompute me."), false)
	if st := p.srv.Stats(); st.PDRecomputes != 1 {
		t.Errorf("prefill recomputes %d, want 1", st.PDRecomputes)
	}

	d.srv.FailNextDecode(1)
	a := send(t, http.MethodPost, tr.url+"/v1/chat/completions", simChat(false, 12, "Fail me."))
	if a.status != http.StatusBadGateway || !strings.Contains(a.body, "decode instance sim-d: ") {
		t.Errorf("decode error: %d %q", a.status, a.body)
	}

	body := simChat(true, 60, "A long answer, while the stream breaks.")
	before := d.srv.Stats().PDDecodeTokens
	done := make(chan answer, 1)
	go func() {
		a, _ := trySend(http.MethodPost, tr.url+"/v1/chat/completions", body)
		done <- a
	}()
	waitFor(t, "the request decoding", func() bool { return d.srv.Stats().PDDecodeTokens > before+5 })
	if !d.srv.DropDResult() {
		t.Fatal("no /dresult consumer to drop")
	}
	got := <-done
	want := send(t, http.MethodPost, ref.inference+"/v1/chat/completions", body)
	if got.status != 200 || generatedText(t, got.body, true) != generatedText(t, want.body, true) {
		t.Errorf("across a dropped stream: %d %q, want the text of %q", got.status, got.body, want.body)
	}
	if v := metricValue(tr.metricsText(t), `mindie_router_pd_dresult_reconnects_total{instance="sim-d",reason="drop"}`); v != 1 {
		t.Errorf("reconnects{drop} = %v, want 1", v)
	}
}

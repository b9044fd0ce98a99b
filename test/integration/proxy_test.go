package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	restclient "k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
	clientset "mindie.io/deployer/pkg/generated/clientset/versioned"
	"mindie.io/deployer/pkg/simulator/mindie"
)

// proxyPath is the URL of path on the proxy subresource of an InferServer.
func proxyPath(namespace, name, path string) string {
	return "/apis/infer.mindie.io/v1alpha1/namespaces/" + namespace + "/inferservers/" + name + "/proxy" + path
}

// loopbackIPs returns n distinct loopback addresses 127.77.x.y, varying
// from run to run so that concurrent test processes do not meet.
func loopbackIPs(n int) []string {
	base := time.Now().UnixNano()
	ips := make([]string, n)
	for i := range ips {
		v := (base + int64(i)) % (250 * 250)
		ips[i] = fmt.Sprintf("127.77.%d.%d", v/250+1, v%250+1)
	}
	return ips
}

// startSimulators starts a MindIE simulator on each ip, all on the same
// free inference port (≥ 1024), and returns the port. They stop when the
// test ends.
func startSimulators(t *testing.T, cfg mindie.Config, ips ...string) (int32, []*mindie.Server) {
	t.Helper()
	var listeners []net.Listener
	for attempt := 0; ; attempt++ {
		listeners = listeners[:0]
		first, err := net.Listen("tcp", net.JoinHostPort(ips[0], "0"))
		if err != nil {
			t.Fatal(err)
		}
		listeners = append(listeners, first)
		port := first.Addr().(*net.TCPAddr).Port
		ok := true
		for _, ip := range ips[1:] {
			l, err := net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(port)))
			if err != nil {
				ok = false
				break
			}
			listeners = append(listeners, l)
		}
		if ok && port >= 1024 {
			break
		}
		for _, l := range listeners {
			l.Close()
		}
		if attempt == 10 {
			t.Fatalf("no port free on all of %v", ips)
		}
	}
	port := int32(listeners[0].Addr().(*net.TCPAddr).Port)
	ctx, cancel := context.WithCancel(context.Background())
	var sims []*mindie.Server
	done := make(chan error, len(ips))
	for i, ip := range ips {
		mgmt, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			t.Fatal(err)
		}
		sim, err := mindie.New(cfg, mindie.WithDrainTimeout(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		go func() { done <- sim.ServeListeners(ctx, listeners[i], mgmt) }()
		<-sim.Listening()
		sims = append(sims, sim)
	}
	t.Cleanup(func() {
		cancel()
		for range ips {
			if err := <-done; err != nil {
				t.Errorf("simulator: %v", err)
			}
		}
	})
	return port, sims
}

// readyStatus is the status a controller writes for instances each served
// by one pod at the given IPs; the first `ready` of them are ready.
func proxyStatus(s *v1alpha1.InferServer, ready int, ips ...string) v1alpha1.InferServerStatus {
	st := v1alpha1.InferServerStatus{
		ObservedGeneration: s.Generation,
		Replicas:           int32(len(ips)),
		UpdatedReplicas:    int32(len(ips)),
		ReadyReplicas:      int32(ready),
		AvailableReplicas:  int32(ready),
		Selector:           "infer.mindie.io/server=" + s.Name,
	}
	for i, ip := range ips {
		inst := fmt.Sprintf("%s-%d", s.Name, i)
		podName := inst + "-0"
		st.Instances = append(st.Instances, v1alpha1.InstanceStatus{
			Name: inst, Ready: i < ready, Master: podName,
			Pods: []v1alpha1.InstancePodStatus{{Name: podName, Node: "node-1", PodIP: ip, Phase: "Running", Live: true, Ready: i < ready}},
		})
	}
	return st
}

// serveThroughProxy creates an InferServer on port whose instances are the
// pods at ips, the first `ready` of them ready.
func (e *env) serveThroughProxy(name string, port int32, ready int, ips ...string) {
	e.t.Helper()
	s := e.create(newServer(name, replicas(int32(len(ips))), func(s *v1alpha1.InferServer) {
		s.Spec.Ports.Inference = ptr.To(port)
	}))
	e.setProxyStatus(s, ready, ips...)
}

func (e *env) setProxyStatus(s *v1alpha1.InferServer, ready int, ips ...string) {
	e.t.Helper()
	s = e.get(s.Namespace, s.Name)
	s.Status = proxyStatus(s, ready, ips...)
	if _, err := e.client.InferV1alpha1().InferServers(s.Namespace).UpdateStatus(e.ctx, s, metav1.UpdateOptions{}); err != nil {
		e.t.Fatalf("update status of %s: %v", s.Name, err)
	}
}

func chatBody(stream bool, maxTokens int) []byte {
	b, _ := json.Marshal(map[string]any{
		"model":      "",
		"messages":   []any{map[string]any{"role": "user", "content": "Say hello through the API server."}},
		"max_tokens": maxTokens,
		"stream":     stream,
	})
	return b
}

func TestProxy(t *testing.T) {
	dir := t.TempDir()
	pki := newProxyPKI(t, dir)
	e := newEnv(t, "--client-ca-file="+pki.caFile)
	rc := e.client.InferV1alpha1().RESTClient()

	ips := loopbackIPs(3)
	port, sims := startSimulators(t, mindie.Config{
		LoadTime: mindie.NoDelay, PrefillPerToken: mindie.NoDelay, DecodePerToken: 100 * time.Millisecond,
	}, ips[0])
	e.serveThroughProxy("llm", port, 1, ips[0])
	sim := sims[0]

	t.Run("chat", func(t *testing.T) {
		raw, err := rc.Post().AbsPath(proxyPath("default", "llm", "/v1/chat/completions")).
			SetHeader("Content-Type", "application/json").Body(chatBody(false, 3)).DoRaw(e.ctx)
		if err != nil {
			t.Fatalf("chat: %v: %s", err, raw)
		}
		var answer struct {
			Object  string `json:"object"`
			Model   string `json:"model"`
			Choices []struct {
				Message struct{ Role, Content string } `json:"message"`
			} `json:"choices"`
			Usage struct {
				CompletionTokens int `json:"completion_tokens"`
			} `json:"usage"`
		}
		if err := json.Unmarshal(raw, &answer); err != nil {
			t.Fatalf("answer %s: %v", raw, err)
		}
		if answer.Object != "chat.completion" || answer.Model != mindie.DefaultModelID || len(answer.Choices) != 1 ||
			answer.Choices[0].Message.Role != "assistant" || answer.Choices[0].Message.Content == "" || answer.Usage.CompletionTokens != 3 {
			t.Fatalf("unexpected answer: %s", raw)
		}
	})

	t.Run("stream", func(t *testing.T) {
		// 10 tokens at 100ms each: the generation lasts a second.
		body, err := rc.Post().AbsPath(proxyPath("default", "llm", "/v1/chat/completions")).
			SetHeader("Content-Type", "application/json").SetHeader("Accept", "text/event-stream").
			Body(chatBody(true, 10)).Stream(e.ctx)
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		defer body.Close()
		events := readEvents(bufio.NewReader(body))
		first, ok := <-events
		if !ok || !strings.HasPrefix(first, "data: {") {
			t.Fatalf("first event: %q", first)
		}
		// The first chunk is here while the simulator is still generating:
		// the proxy did not wait for the end of the response.
		if running := sim.Stats().Running; running != 1 {
			t.Fatalf("first chunk arrived with %d requests running in the simulator, want 1 (still generating)", running)
		}
		all := []string{first}
		for ev := range events {
			all = append(all, ev)
		}
		if len(all) < 5 || all[len(all)-1] != "data: [DONE]" {
			t.Fatalf("stream of %d events, want the head, 10 tokens and [DONE]: %q", len(all), all)
		}
		var content strings.Builder
		for _, ev := range all[:len(all)-1] {
			var chunk struct {
				Object  string `json:"object"`
				Choices []struct {
					Delta struct{ Content string } `json:"delta"`
				} `json:"choices"`
			}
			if err := json.Unmarshal([]byte(strings.TrimPrefix(ev, "data: ")), &chunk); err != nil || chunk.Object != "chat.completion.chunk" {
				t.Fatalf("event %q: %v", ev, err)
			}
			for _, c := range chunk.Choices {
				content.WriteString(c.Delta.Content)
			}
		}
		if content.Len() == 0 {
			t.Fatal("the stream carried no content")
		}
	})

	t.Run("models", func(t *testing.T) {
		raw, err := rc.Get().AbsPath(proxyPath("default", "llm", "/v1/models")).DoRaw(e.ctx)
		if err != nil {
			t.Fatalf("models: %v: %s", err, raw)
		}
		var models struct {
			Object string                `json:"object"`
			Data   []struct{ ID string } `json:"data"`
		}
		if err := json.Unmarshal(raw, &models); err != nil || models.Object != "list" || len(models.Data) != 1 || models.Data[0].ID != mindie.DefaultModelID {
			t.Fatalf("models: %s (%v)", raw, err)
		}
	})

	t.Run("errors", func(t *testing.T) {
		err := rc.Get().AbsPath(proxyPath("default", "missing", "/v1/models")).Do(e.ctx).Error()
		if !apierrors.IsNotFound(err) {
			t.Errorf("missing server: want 404, got %v", err)
		}
		s := e.create(newServer("down", replicas(2)))
		e.setProxyStatus(s, 0, ips[1], ips[2])
		err = rc.Get().AbsPath(proxyPath("default", "down", "/v1/models")).Do(e.ctx).Error()
		if !apierrors.IsServiceUnavailable(err) || !strings.Contains(err.Error(), `inferserver "down" has no ready instance (0 of 2 ready)`) {
			t.Errorf("no ready instance: want 503, got %v", err)
		}
		// The status says ready, but nothing listens there: a path the
		// proxy forwards itself fails with a Status, an inference route
		// (routed by pkg/router) with an OpenAI error an SDK reads.
		e.setProxyStatus(s, 1, ips[1])
		err = rc.Get().AbsPath(proxyPath("default", "down", "/info")).Do(e.ctx).Error()
		if !apierrors.IsServiceUnavailable(err) || !strings.Contains(err.Error(), "cannot reach instance") {
			t.Errorf("unreachable instance: want 503, got %v", err)
		}
		raw, err := rc.Get().AbsPath(proxyPath("default", "down", "/v1/models")).DoRaw(e.ctx)
		var openAIErr struct {
			Error struct{ Message, Type string } `json:"error"`
		}
		if err == nil || json.Unmarshal(raw, &openAIErr) != nil || !strings.Contains(openAIErr.Error.Message, "failed before answering") {
			t.Errorf("unreachable instance on an inference route: want an OpenAI error, got %v: %s", err, raw)
		}
	})

	t.Run("authorization", func(t *testing.T) {
		// Standalone, only system:masters is authorized: a tenant's
		// certificate authenticates but may not use the proxy.
		tenant := certClient(t, e.config, pki.tenantCert, pki.tenantKey)
		err := tenant.Post().AbsPath(proxyPath("default", "llm", "/v1/chat/completions")).
			SetHeader("Content-Type", "application/json").Body(chatBody(false, 1)).Do(e.ctx).Error()
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `User "tenant-a" cannot create resource "inferservers/proxy"`) {
			t.Errorf("tenant: want 403 naming inferservers/proxy, got %v", err)
		}
		err = tenant.Get().AbsPath(proxyPath("default", "llm", "/v1/models")).Do(e.ctx).Error()
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `cannot get resource "inferservers/proxy"`) {
			t.Errorf("tenant GET: want 403, got %v", err)
		}
		// The same kind of certificate in system:masters is let through.
		admin := certClient(t, e.config, pki.adminCert, pki.adminKey)
		if raw, err := admin.Get().AbsPath(proxyPath("default", "llm", "/v1/models")).DoRaw(e.ctx); err != nil {
			t.Errorf("admin: %v: %s", err, raw)
		}
	})
}

// TestProxyRoutesConversations: without a router of its own, a server's
// chats are routed by pkg/router in the API server: distinct conversations
// spread over the ready instances, and a conversation's next turn returns
// to the instance of its first.
func TestProxyRoutesConversations(t *testing.T) {
	e := newEnv(t)
	ips := loopbackIPs(3)
	port, sims := startSimulators(t, mindie.Config{
		LoadTime: mindie.NoDelay, PrefillPerToken: mindie.NoDelay, DecodePerToken: mindie.NoDelay,
	}, ips[0], ips[1])
	// Three instances, two ready: the third (not ready) is never chosen.
	e.create(newServer("rr", replicas(3), func(s *v1alpha1.InferServer) { s.Spec.Ports.Inference = ptr.To(port) }))
	s := e.get("default", "rr")
	s.Status = proxyStatus(s, 3, ips[0], ips[1], ips[2])
	s.Status.Instances[2].Ready = false
	s.Status.ReadyReplicas, s.Status.AvailableReplicas = 2, 2
	if _, err := e.client.InferV1alpha1().InferServers("default").UpdateStatus(e.ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	hc, err := restclient.HTTPClientFor(e.config)
	if err != nil {
		t.Fatal(err)
	}
	// chat sends one chat and returns the instance that served it.
	chat := func(messages ...string) string {
		var msgs []any
		for i, m := range messages {
			role := "user"
			if i%2 == 1 {
				role = "assistant"
			}
			msgs = append(msgs, map[string]any{"role": role, "content": m})
		}
		body, _ := json.Marshal(map[string]any{"model": "", "messages": msgs, "max_tokens": 1})
		resp, err := hc.Post(e.config.Host+proxyPath("default", "rr", "/v1/chat/completions"), "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("chat %v: %d %s", messages, resp.StatusCode, raw)
		}
		return resp.Header.Get("X-Mindie-Instance")
	}
	served := map[string]int{}
	const conversations = 12
	for i := range conversations {
		first := fmt.Sprintf("Conversation %d: tell me about NPUs, in enough words to make a block of its own.", i)
		at := chat(first)
		if next := chat(first, "NPUs are accelerators.", "And then?"); next != at || at == "" {
			t.Errorf("conversation %d: turn 1 at %q, turn 2 at %q", i, at, next)
		}
		served[at]++
	}
	t.Logf("conversations by instance: %v", served)
	total := 0
	for i, sim := range sims {
		got := int(sim.Stats().RequestsSucceeded)
		total += got
		if got < 4 {
			t.Errorf("instance %d answered %d of %d requests: distinct conversations must spread", i, got, 2*conversations)
		}
	}
	if total != 2*conversations {
		t.Errorf("the ready instances answered %d of %d requests", total, 2*conversations)
	}
}

// TestProxyRequestTimeout: a generation longer than the request timeout
// (here ?timeout=1s, which shortens the server's 60s for requests that are
// not long-running) completes, because the proxy subresource counts as
// long-running.
func TestProxyRequestTimeout(t *testing.T) {
	e := newEnv(t)
	ips := loopbackIPs(1)
	port, _ := startSimulators(t, mindie.Config{
		LoadTime: mindie.NoDelay, PrefillPerToken: mindie.NoDelay, DecodePerToken: 150 * time.Millisecond,
	}, ips[0])
	e.serveThroughProxy("slow", port, 1, ips[0])
	start := time.Now()
	// 15 tokens at 150ms: 2.25s.
	body, err := e.client.InferV1alpha1().RESTClient().Post().AbsPath(proxyPath("default", "slow", "/v1/chat/completions")).
		Param("timeout", "1s").SetHeader("Content-Type", "application/json").Body(chatBody(true, 15)).Stream(e.ctx)
	var events []string
	if err == nil {
		for ev := range readEvents(bufio.NewReader(body)) {
			events = append(events, ev)
		}
		body.Close()
	}
	complete := err == nil && len(events) > 0 && events[len(events)-1] == "data: [DONE]"
	t.Logf("after %s: %d events, complete %t, error %v", time.Since(start).Round(time.Millisecond), len(events), complete, err)
	// The proxy subresource is long-running: the request timeout does not cut a generation.
	if !complete {
		t.Fatalf("a 2.25s stream was cut by ?timeout=1s: inferservers/proxy must be long-running")
	}
}

// readEvents sends the non-empty lines of a server-sent event stream until it ends.
func readEvents(r *bufio.Reader) <-chan string {
	out := make(chan string)
	go func() {
		defer close(out)
		for {
			line, err := r.ReadString('\n')
			if line = strings.TrimRight(line, "\r\n"); line != "" {
				out <- line
			}
			if err != nil {
				return
			}
		}
	}()
	return out
}

// certClient is a REST client of the group that authenticates with a
// client certificate instead of the loopback token.
func certClient(t *testing.T, base *restclient.Config, cert, key []byte) restclient.Interface {
	t.Helper()
	cfg := restclient.AnonymousClientConfig(base)
	cfg.CertData, cfg.KeyData = cert, key
	cs, err := clientset.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs.InferV1alpha1().RESTClient()
}

// proxyPKI is a client CA with certificates for an admin (system:masters)
// and a tenant (no privileged group).
type proxyPKI struct {
	caFile                string
	adminCert, adminKey   []byte
	tenantCert, tenantKey []byte
}

func newProxyPKI(t *testing.T, dir string) *proxyPKI {
	t.Helper()
	p := &proxyPKI{caFile: filepath.Join(dir, "proxy-client-ca.crt")}
	ca := newClientCA(t, "mindie-proxy-test-ca", p.caFile)
	p.adminCert, p.adminKey = clientCert(t, ca, "proxy-admin", "system:masters")
	p.tenantCert, p.tenantKey = clientCert(t, ca, "tenant-a", "tenants")
	return p
}

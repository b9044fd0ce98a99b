package inferserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer"
)

// routedServer is an InferServer with a router whose pods are the given
// TLS backends on 127.0.0.1 (all on one port, the inference port).
func routedServer(t *testing.T, name string, auth infer.RouterAuthentication, routers map[string]*httptest.Server, ready map[string]bool) *infer.InferServer {
	t.Helper()
	port := 0
	s := proxyServer(name, 0, instance(name+"-0", name+"-0-0", true, pod(name+"-0-0", "127.0.0.2", true)))
	s.Spec.Router = &infer.RouterSpec{Replicas: ptr.To[int32](int32(len(routers))), Authentication: auth}
	s.Status.Router = &infer.RouterStatus{}
	for podName, srv := range routers {
		u, err := url.Parse(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := strconv.Atoi(u.Port())
		if port != 0 && p != port {
			t.Fatalf("routers must share a port")
		}
		port = p
		s.Status.Router.Pods = append(s.Status.Router.Pods, infer.RouterPodStatus{Name: podName, PodIP: u.Hostname(), Ready: ready[podName]})
	}
	s.Spec.Ports.Inference = ptr.To(int32(port))
	return s
}

// TestProxyToRouter: with a router the proxy reaches a ready router pod
// over HTTPS, with the API server's token instead of the caller's
// credentials, and a named router pod when asked.
func TestProxyToRouter(t *testing.T) {
	type seen struct{ auth, podHeader, path string }
	got := make(chan seen, 4)
	router := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Header.Get("Authorization"), r.Header.Get(RouterPodHeader), r.URL.Path}
		w.Header().Set("X-Mindie-Instance", "llm-0-0")
		io.WriteString(w, "routed")
	}))
	defer router.Close()
	s := routedServer(t, "llm", infer.RouterAuthenticationKubernetes, map[string]*httptest.Server{"llm-router-a": router}, map[string]bool{"llm-router-a": true})
	rest := NewProxyREST(fakeServers{"llm": s})
	proxyURL := serveProxy(t, rest).URL + proxyPrefix + "llm/proxy/v1/models"

	// No token source: the router cannot be reached, and the error says why.
	resp, err := http.Get(proxyURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !contains(string(body), "no service account token") {
		t.Fatalf("without a token source: %d %s", resp.StatusCode, body)
	}

	var calls atomic.Int32
	rest.SetRouterToken(func(context.Context) (string, error) { calls.Add(1); return "apiserver-token", nil })
	req, _ := http.NewRequest(http.MethodGet, proxyURL, nil)
	req.Header.Set("Authorization", "Bearer caller-secret")
	req.Header.Set(RouterPodHeader, "llm-router-a")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "routed" || resp.Header.Get("X-Mindie-Instance") != "llm-0-0" {
		t.Fatalf("through the router: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if g := <-got; g.auth != "Bearer apiserver-token" || g.podHeader != "" || g.path != "/v1/models" {
		t.Errorf("the router saw %+v", g)
	}

	// A router pod that is not there, or none ready: 503 naming it.
	req.Header.Set(RouterPodHeader, "llm-router-z")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !contains(string(body), `no ready router pod \"llm-router-z\"`) {
		t.Errorf("unknown router pod: %d %s", resp.StatusCode, body)
	}
	s.Status.Router.Pods[0].Ready = false
	resp, err = http.Get(proxyURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !contains(string(body), "no ready router pod (1 listed in status, 1 wanted)") {
		t.Errorf("no ready router: %d %s", resp.StatusCode, body)
	}

	// A router without authentication gets no token; a failing token
	// source is a 503, not a request without credentials.
	s.Status.Router.Pods[0].Ready = true
	s.Spec.Router.Authentication = infer.RouterAuthenticationNone
	before := calls.Load()
	if resp, err = http.Get(proxyURL); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if g := <-got; g.auth != "" || calls.Load() != before {
		t.Errorf("authentication None: the router saw %+v", g)
	}
	s.Spec.Router.Authentication = infer.RouterAuthenticationKubernetes
	rest.SetRouterToken(func(context.Context) (string, error) { return "", errors.New("forbidden") })
	if resp, err = http.Get(proxyURL); err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !contains(string(body), "a token for its router: forbidden") {
		t.Errorf("failing token source: %d %s", resp.StatusCode, body)
	}
}

func TestChooseRouterRoundRobin(t *testing.T) {
	a := httptest.NewTLSServer(http.NotFoundHandler())
	defer a.Close()
	s := routedServer(t, "llm", infer.RouterAuthenticationNone, map[string]*httptest.Server{"r-a": a}, map[string]bool{"r-a": true})
	s.Status.Router.Pods = append(s.Status.Router.Pods,
		infer.RouterPodStatus{Name: "r-b", PodIP: "127.0.0.9", Ready: true},
		infer.RouterPodStatus{Name: "r-c", PodIP: "127.0.0.10", Ready: false})
	next := new(atomic.Uint64)
	var names []string
	for range 4 {
		target, err := chooseRouter(s, "", next)
		if err != nil {
			t.Fatal(err)
		}
		if target.URL.Scheme != "https" {
			t.Errorf("router reached over %s", target.URL.Scheme)
		}
		names = append(names, target.Pod)
	}
	if got := names[0] + names[1] + names[2] + names[3]; got != "r-ar-br-ar-b" {
		t.Errorf("rotation %v", names)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// listenPair listens on the same port of 127.0.0.2 and 127.0.0.3, as two
// pods' inference ports.
func listenPair(t *testing.T) (net.Listener, net.Listener, int) {
	t.Helper()
	for range 20 {
		a, err := net.Listen("tcp", "127.0.0.2:0")
		if err != nil {
			t.Fatal(err)
		}
		port := a.Addr().(*net.TCPAddr).Port
		b, err := net.Listen("tcp", net.JoinHostPort("127.0.0.3", strconv.Itoa(port)))
		if err == nil {
			return a, b, port
		}
		a.Close()
	}
	t.Fatal("no port free on both 127.0.0.2 and 127.0.0.3")
	return nil, nil, 0
}

// TestProxyLocalRouter: without spec.router, inference requests are routed
// by pkg/router in the API server: a chat's next turn goes to the instance
// of its first, and a refused instance is retried on the other.
func TestProxyLocalRouter(t *testing.T) {
	a, b, port := listenPair(t)
	serve := func(ln net.Listener, name string) {
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"served_by":"`+name+`"}`)
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
	}
	serve(a, "a")
	serve(b, "b")
	s := proxyServer("llm", int32(port),
		instance("llm-a", "pa", true, pod("pa", "127.0.0.2", true)),
		instance("llm-b", "pb", true, pod("pb", "127.0.0.3", true)))
	servers := fakeServers{"llm": s}
	proxyURL := serveProxy(t, NewProxyREST(servers)).URL + proxyPrefix + "llm/proxy/v1/chat/completions"
	post := func(body string) (int, string) {
		resp, err := http.Post(proxyURL, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header.Get("X-Mindie-Instance")
	}
	for i := range 6 {
		first := fmt.Sprintf(`{"messages":[{"role":"user","content":"conversation %d opens with a question long enough to fill a block of its own, and more"}]}`, i)
		code, at := post(first)
		if code != http.StatusOK || (at != "pa" && at != "pb") {
			t.Fatalf("turn 1 of conversation %d: %d at %q", i, code, at)
		}
		next := fmt.Sprintf(`{"messages":[{"role":"user","content":"conversation %d opens with a question long enough to fill a block of its own, and more"},{"role":"assistant","content":"an answer"},{"role":"user","content":"and then?"}]}`, i)
		if code, again := post(next); code != http.StatusOK || again != at {
			t.Errorf("turn 2 of conversation %d went to %q (%d), turn 1 to %q", i, again, code, at)
		}
	}

	// Instance b stops listening: every request still succeeds, on a.
	b.Close()
	for i := range 6 {
		if code, at := post(fmt.Sprintf(`{"messages":[{"role":"user","content":"after b left %d"}]}`, i)); code != http.StatusOK || at != "pa" {
			t.Errorf("request %d with b gone: %d at %q", i, code, at)
		}
	}
}

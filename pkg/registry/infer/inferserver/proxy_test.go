package inferserver

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	genericfilters "k8s.io/apiserver/pkg/server/filters"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer"
	"mindie.io/deployer/apis/infer/v1alpha1"
)

// ---- fixtures ----

// proxyServer is a stored InferServer: defaulted as the API server
// defaults every object it stores, with the inference port when not 0.
func proxyServer(name string, port int32, instances ...infer.InstanceStatus) *infer.InferServer {
	ext := &v1alpha1.InferServer{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)},
		Spec:       v1alpha1.InferServerSpec{Replicas: ptr.To[int32](2)},
	}
	if port != 0 {
		ext.Spec.Ports.Inference = ptr.To(port)
	}
	v1alpha1.SetObjectDefaults_InferServer(ext)
	s := &infer.InferServer{}
	if err := v1alpha1.Convert_v1alpha1_InferServer_To_infer_InferServer(ext, s, nil); err != nil {
		panic(err)
	}
	s.Status.Instances = instances
	return s
}

func instance(name, master string, ready bool, pods ...infer.InstancePodStatus) infer.InstanceStatus {
	return infer.InstanceStatus{Name: name, Master: master, Ready: ready, Pods: pods}
}

func pod(name, ip string, ready bool) infer.InstancePodStatus {
	return infer.InstancePodStatus{Name: name, PodIP: ip, Ready: ready, Live: ready}
}

// wantStatus fails unless err is an API status error with the code and a
// message containing want.
func wantStatus(t *testing.T, err error, code int32, want string) {
	t.Helper()
	status, ok := err.(apierrors.APIStatus)
	if !ok {
		t.Fatalf("want a %d status error, got %v", code, err)
	}
	if status.Status().Code != code || !strings.Contains(status.Status().Message, want) {
		t.Fatalf("want %d %q, got %d %q", code, want, status.Status().Code, status.Status().Message)
	}
}

// ---- target selection ----

func TestChooseTargetNoInstance(t *testing.T) {
	_, err := chooseTarget(proxyServer("llm", 0), new(atomic.Uint64))
	wantStatus(t, err, http.StatusServiceUnavailable, `inferserver "llm" has no ready instance (0 of 2 ready)`)
	if !apierrors.IsServiceUnavailable(err) {
		t.Errorf("want reason ServiceUnavailable, got %v", err)
	}
}

func TestChooseTargetNoneReady(t *testing.T) {
	s := proxyServer("llm", 0,
		instance("llm-0", "llm-0-0", false, pod("llm-0-0", "127.0.0.2", false)),
		instance("llm-1", "llm-1-0", false, pod("llm-1-0", "127.0.0.3", true)),
	)
	_, err := chooseTarget(s, new(atomic.Uint64))
	wantStatus(t, err, http.StatusServiceUnavailable, `inferserver "llm" has no ready instance (0 of 2 ready)`)
}

func TestChooseTargetRoundRobin(t *testing.T) {
	s := proxyServer("llm", 0,
		instance("llm-0", "llm-0-0", true, pod("llm-0-0", "127.0.0.2", true)),
		instance("llm-1", "llm-1-0", false, pod("llm-1-0", "127.0.0.3", false)),
		instance("llm-2", "llm-2-0", true, pod("llm-2-0", "127.0.0.4", true)),
	)
	next := new(atomic.Uint64)
	var got []string
	for range 5 {
		target, err := chooseTarget(s, next)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, target.Instance+"="+target.URL.String())
	}
	want := []string{
		"llm-0=http://127.0.0.2:1025", "llm-2=http://127.0.0.4:1025",
		"llm-0=http://127.0.0.2:1025", "llm-2=http://127.0.0.4:1025",
		"llm-0=http://127.0.0.2:1025",
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("round robin: got %v, want %v", got, want)
	}
}

// TestProxyCountersPerServer: each server has its own rotation, and a
// server recreated under the same name starts a new one.
func TestProxyCountersPerServer(t *testing.T) {
	r := NewProxyREST(nil)
	a, b := proxyServer("a", 0), proxyServer("b", 0)
	if r.counterFor(a) == r.counterFor(b) {
		t.Fatal("two servers share a counter")
	}
	ca := r.counterFor(a)
	ca.Add(3)
	if r.counterFor(a).Load() != 3 {
		t.Fatal("a server's counter is not kept")
	}
	a.UID = "recreated"
	if r.counterFor(a).Load() != 0 {
		t.Fatal("a recreated server kept its predecessor's counter")
	}
}

func TestChooseTargetMasterFallback(t *testing.T) {
	for _, tc := range []struct {
		name     string
		inst     infer.InstanceStatus
		wantPod  string
		wantHost string
	}{{
		name:    "master",
		inst:    instance("i", "i-1", true, pod("i-0", "127.0.0.2", true), pod("i-1", "127.0.0.3", true)),
		wantPod: "i-1", wantHost: "127.0.0.3:1025",
	}, {
		name:    "master not listed: first ready pod",
		inst:    instance("i", "gone", true, pod("i-0", "127.0.0.2", false), pod("i-1", "127.0.0.3", true), pod("i-2", "127.0.0.4", true)),
		wantPod: "i-1", wantHost: "127.0.0.3:1025",
	}, {
		name:    "no master named: first ready pod",
		inst:    instance("i", "", true, pod("i-0", "127.0.0.2", true)),
		wantPod: "i-0", wantHost: "127.0.0.2:1025",
	}, {
		name:    "master without an IP: first ready pod",
		inst:    instance("i", "i-0", true, pod("i-0", "", true), pod("i-1", "::1", true)),
		wantPod: "i-1", wantHost: "[::1]:1025",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			target, err := chooseTarget(proxyServer("llm", 0, tc.inst), new(atomic.Uint64))
			if err != nil {
				t.Fatal(err)
			}
			if target.Pod != tc.wantPod || target.URL.Host != tc.wantHost {
				t.Fatalf("got pod %s at %s, want %s at %s", target.Pod, target.URL.Host, tc.wantPod, tc.wantHost)
			}
		})
	}
}

// TestChooseTargetUnusableIP: only pod IPs are dialled, never names nor
// addresses no pod has; an instance without a usable pod is skipped, and
// the error says why.
func TestChooseTargetUnusableIP(t *testing.T) {
	s := proxyServer("llm", 0,
		instance("llm-0", "a", true, pod("a", "metadata.internal", true)),
		instance("llm-1", "b", true, pod("b", "169.254.169.254", true)),
		instance("llm-2", "c", true, pod("c", "0.0.0.0", true)),
	)
	s.Spec.Replicas = ptr.To[int32](3)
	_, err := chooseTarget(s, new(atomic.Uint64))
	wantStatus(t, err, http.StatusServiceUnavailable, `inferserver "llm" has no ready instance (3 of 3 ready): instance "llm-0": no ready pod with a pod IP`)
}

func TestChooseTargetTLSAndPort(t *testing.T) {
	s := proxyServer("llm", 31000, instance("llm-0", "p", true, pod("p", "127.0.0.2", true)))
	target, err := chooseTarget(s, new(atomic.Uint64))
	if err != nil {
		t.Fatal(err)
	}
	if got := target.URL.String(); got != "http://127.0.0.2:31000" {
		t.Fatalf("without TLS: %s", got)
	}
	s.Spec.TLS.Enabled = true
	target, err = chooseTarget(s, new(atomic.Uint64))
	if err != nil {
		t.Fatal(err)
	}
	if got := target.URL.String(); got != "https://127.0.0.2:31000" {
		t.Fatalf("with TLS: %s", got)
	}
}

// ---- the handler, against backends on loopback ----

type fakeServers map[string]*infer.InferServer

func (f fakeServers) Get(_ context.Context, name string, _ *metav1.GetOptions) (runtime.Object, error) {
	if s, ok := f[name]; ok {
		return s, nil
	}
	return nil, apierrors.NewNotFound(infer.Resource("inferservers"), name)
}

// testResponder writes errors as the API server does: a Status with its code.
type testResponder struct{ w http.ResponseWriter }

func (r testResponder) Object(code int, obj runtime.Object) {
	r.w.WriteHeader(code)
	json.NewEncoder(r.w).Encode(obj)
}

func (r testResponder) Error(err error) { writeError(r.w, err) }

func writeError(w http.ResponseWriter, err error) {
	status := apierrors.NewInternalError(err).ErrStatus
	if s, ok := err.(apierrors.APIStatus); ok {
		status = s.Status()
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(int(status.Code))
	json.NewEncoder(w).Encode(status)
}

// serveProxy serves the proxy subresource the way the API server's connect
// handler does: the request info from the URL, then Connect, then its handler.
func serveProxy(t *testing.T, r *ProxyREST) *httptest.Server {
	t.Helper()
	factory := &genericapirequest.RequestInfoFactory{APIPrefixes: sets.NewString("api", "apis"), GrouplessAPIPrefixes: sets.NewString("api")}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		info, err := factory.NewRequestInfo(req)
		if err != nil {
			writeError(w, err)
			return
		}
		ctx := genericapirequest.WithRequestInfo(req.Context(), info)
		ctx = genericapirequest.WithNamespace(ctx, info.Namespace)
		h, err := r.Connect(ctx, info.Name, nil, testResponder{w})
		if err != nil {
			writeError(w, err)
			return
		}
		h.ServeHTTP(w, req.WithContext(ctx))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// backendServer returns an InferServer whose one ready instance is the
// backend, listening on 127.0.0.1.
func backendServer(t *testing.T, name string, backend *httptest.Server) *infer.InferServer {
	t.Helper()
	u, err := url.Parse(backend.URL)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	s := proxyServer(name, int32(port), instance(name+"-0", name+"-0-0", true, pod(name+"-0-0", u.Hostname(), true)))
	s.Spec.TLS.Enabled = u.Scheme == "https"
	return s
}

const proxyPrefix = "/apis/infer.mindie.io/v1alpha1/namespaces/default/inferservers/"

func TestProxyForwards(t *testing.T) {
	type seen struct {
		method, path, query, body string
		header                    http.Header
	}
	got := make(chan seen, 1)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.URL.Path, r.URL.RawQuery, string(body), r.Header.Clone()}
		w.Header().Set("X-Backend", "yes")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"ok":true}`)
	}))
	defer backend.Close()
	proxy := serveProxy(t, NewProxyREST(fakeServers{"llm": backendServer(t, "llm", backend)}))

	req, _ := http.NewRequest(http.MethodPost, proxy.URL+proxyPrefix+"llm/proxy/v1/chat/completions?a=1&b=two", strings.NewReader(`{"stream":false}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer secret")
	req.Header.Set("Proxy-Authorization", "Basic secret")
	req.Header.Set("X-Remote-User", "alice")
	req.Header.Set("X-Remote-Group", "system:masters")
	req.Header.Set("X-Remote-Extra-Scopes", "all")
	req.Header.Set("Impersonate-User", "admin")
	req.Header.Set("X-Request-Id", "r-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || string(body) != `{"ok":true}` || resp.Header.Get("X-Backend") != "yes" {
		t.Fatalf("answer: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	s := <-got
	if s.method != "POST" || s.path != "/v1/chat/completions" || s.query != "a=1&b=two" || s.body != `{"stream":false}` {
		t.Fatalf("backend saw %s %s?%s %q", s.method, s.path, s.query, s.body)
	}
	for _, h := range []string{"Authorization", "Proxy-Authorization", "X-Remote-User", "X-Remote-Group", "X-Remote-Extra-Scopes", "Impersonate-User"} {
		if v := s.header.Get(h); v != "" {
			t.Errorf("header %s forwarded: %q", h, v)
		}
	}
	if s.header.Get("Content-Type") != "application/json" || s.header.Get("X-Request-Id") != "r-1" {
		t.Errorf("ordinary headers not forwarded: %v", s.header)
	}
	if s.header.Get("X-Forwarded-For") == "" {
		t.Errorf("no X-Forwarded-For: %v", s.header)
	}
}

func TestProxyPaths(t *testing.T) {
	paths := make(chan string, 1)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths <- r.URL.Path
	}))
	defer backend.Close()
	proxy := serveProxy(t, NewProxyREST(fakeServers{"llm": backendServer(t, "llm", backend)}))
	for suffix, want := range map[string]string{
		"llm/proxy":            "/",
		"llm/proxy/":           "/",
		"llm/proxy/v1/models":  "/v1/models",
		"llm/proxy/v1/models/": "/v1/models/",
	} {
		resp, err := http.Get(proxy.URL + proxyPrefix + suffix)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := <-paths; got != want {
			t.Errorf("%s: backend saw %q, want %q", suffix, got, want)
		}
	}
}

func TestProxyErrors(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("backend reached: %s", r.URL)
	}))
	defer backend.Close()
	// A closed port on loopback: dialling it is refused.
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := int32(closed.Addr().(*net.TCPAddr).Port)
	closed.Close()

	servers := fakeServers{
		"llm":      backendServer(t, "llm", backend),
		"notready": proxyServer("notready", 0, instance("notready-0", "p", false, pod("p", "127.0.0.2", false))),
		"refused":  proxyServer("refused", closedPort, instance("refused-0", "p", true, pod("p", "127.0.0.1", true))),
	}
	proxy := serveProxy(t, NewProxyREST(servers))
	for _, tc := range []struct {
		path string
		code int32
		want string
	}{
		{"missing/proxy/v1/models", 404, `inferservers.infer.mindie.io "missing" not found`},
		{"notready/proxy/v1/models", 503, `inferserver "notready" has no ready instance (0 of 2 ready)`},
		{"refused/proxy/info", 503, `inferserver "refused": cannot reach instance "refused-0" (pod "p" at 127.0.0.1:`},
		{"llm/proxy/v1/../../secret", 400, `the segments "." and ".." are not allowed`},
		{"llm/proxy/v1/./models", 400, `the segments "." and ".." are not allowed`},
		{"llm/proxy/v1/%00", 400, `control characters are not allowed`},
	} {
		// An http.Request keeps the path as given: the client does not clean it.
		req, _ := http.NewRequest(http.MethodGet, proxy.URL, nil)
		req.URL.Opaque = proxyPrefix + tc.path
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var status metav1.Status
		if err := json.NewDecoder(resp.Body).Decode(&status); err != nil {
			t.Fatalf("%s: not a Status: %v", tc.path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != int(tc.code) || status.Code != tc.code || !strings.Contains(status.Message, tc.want) {
			t.Errorf("%s: got %d %q, want %d %q", tc.path, resp.StatusCode, status.Message, tc.code, tc.want)
		}
	}
}

// TestProxyInferenceErrorsAreOpenAIShaped: an inference route goes through
// pkg/router, whose errors an OpenAI SDK reads.
func TestProxyInferenceErrorsAreOpenAIShaped(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := int32(closed.Addr().(*net.TCPAddr).Port)
	closed.Close()
	servers := fakeServers{"refused": proxyServer("refused", closedPort, instance("refused-0", "p", true, pod("p", "127.0.0.1", true)))}
	proxy := serveProxy(t, NewProxyREST(servers))
	resp, err := http.Get(proxy.URL + proxyPrefix + "refused/proxy/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct {
		Error struct{ Message, Type string } `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || resp.StatusCode < 500 || e.Error.Message == "" || e.Error.Type == "" {
		t.Errorf("got %d %+v (%v), want a 5xx OpenAI error", resp.StatusCode, e, err)
	}
	t.Logf("%d %+v", resp.StatusCode, e)
}

func TestProxyTLS(t *testing.T) {
	backend := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "over "+r.Proto+" tls="+strconv.FormatBool(r.TLS != nil))
	}))
	defer backend.Close()
	s := backendServer(t, "secure", backend)
	if !s.Spec.TLS.Enabled {
		t.Fatal("fixture: TLS not enabled")
	}
	proxy := serveProxy(t, NewProxyREST(fakeServers{"secure": s}))
	resp, err := http.Get(proxy.URL + proxyPrefix + "secure/proxy/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "tls=true") {
		t.Fatalf("through TLS: %d %q", resp.StatusCode, body)
	}
	// Without spec.tls.enabled the proxy speaks HTTP, which the TLS server refuses.
	s.Spec.TLS.Enabled = false
	resp, err = http.Get(proxy.URL + proxyPrefix + "secure/proxy/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain HTTP to a TLS server: got %d, want the server's 400", resp.StatusCode)
	}
}

func TestProxyRedirects(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/relative":
			http.Redirect(w, r, "/v1/models?x=1", http.StatusFound)
		case "/same-host":
			http.Redirect(w, r, "http://"+r.Host+"/v1/models", http.StatusMovedPermanently)
		case "/elsewhere":
			http.Redirect(w, r, "http://127.0.0.9:8080/steal", http.StatusFound)
		}
	}))
	defer backend.Close()
	proxy := serveProxy(t, NewProxyREST(fakeServers{"llm": backendServer(t, "llm", backend)}))
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for path, want := range map[string]string{
		"/relative":  proxyPrefix + "llm/proxy/v1/models?x=1",
		"/same-host": proxyPrefix + "llm/proxy/v1/models",
		"/elsewhere": "",
	} {
		resp, err := noFollow.Get(proxy.URL + proxyPrefix + "llm/proxy" + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want == "" {
			if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "another host") {
				t.Errorf("%s: got %d %s, want 502", path, resp.StatusCode, body)
			}
			continue
		}
		if resp.StatusCode/100 != 3 || resp.Header.Get("Location") != want {
			t.Errorf("%s: got %d Location %q, want %q", path, resp.StatusCode, resp.Header.Get("Location"), want)
		}
	}
}

// TestProxyStreams: each server-sent event reaches the client when the
// backend flushes it, not when the response ends.
func TestProxyStreams(t *testing.T) {
	release := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-time.After(30 * time.Second):
		}
		io.WriteString(w, "data: [DONE]\n\n")
	}))
	defer backend.Close()
	proxy := serveProxy(t, NewProxyREST(fakeServers{"llm": backendServer(t, "llm", backend)}))
	resp, err := http.Post(proxy.URL+proxyPrefix+"llm/proxy/v1/chat/completions", "application/json", strings.NewReader(`{"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	lines := bufio.NewReader(resp.Body)
	first, err := lines.ReadString('\n')
	if err != nil || first != "data: first\n" {
		t.Fatalf("first event: %q, %v", first, err)
	}
	close(release) // the backend finishes only once the first event has arrived
	rest, _ := io.ReadAll(lines)
	if string(rest) != "\ndata: [DONE]\n\n" {
		t.Fatalf("rest of the stream: %q", rest)
	}
}

func TestLongRunningRequestCheck(t *testing.T) {
	factory := &genericapirequest.RequestInfoFactory{APIPrefixes: sets.NewString("api", "apis"), GrouplessAPIPrefixes: sets.NewString("api")}
	// The generic API server's default check.
	base := genericfilters.BasicLongRunningRequestCheck(sets.NewString("watch"), sets.NewString())
	check := LongRunningRequestCheck(base)
	for path, want := range map[string]bool{
		proxyPrefix + "llm/proxy/v1/chat/completions":            true,
		proxyPrefix + "llm/proxy":                                true,
		proxyPrefix + "llm":                                      false,
		proxyPrefix + "llm/status":                               false,
		"/api/v1/namespaces/default/pods/p/proxy/x":              false, // not ours
		"/apis/infer.mindie.io/v1alpha1/inferservers?watch=true": true,
	} {
		req := httptest.NewRequest(http.MethodPost, path, nil)
		if strings.Contains(path, "watch") {
			req.Method = http.MethodGet
		}
		info, err := factory.NewRequestInfo(req)
		if err != nil {
			t.Fatal(err)
		}
		if got := check(req, info); got != want {
			t.Errorf("%s: long-running %t, want %t", path, got, want)
		}
		if IsProxyRequest(info) && base(req, info) {
			t.Errorf("%s: the generic default already counts the proxy as long-running; LongRunningRequestCheck may be unnecessary", path)
		}
	}
}

package kubelet

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// logTestServer serves the kubelet API of a simulator whose pod default/p
// has a container c with log clog (and previous log prev when not nil).
func logTestServer(t *testing.T, clog, prev *containerLog) *httptest.Server {
	t.Helper()
	s := &Simulator{pods: map[string]*podState{}}
	s.pods["default/p"] = &podState{key: "default/p", namespace: "default", name: "p",
		containers: []*containerState{{log: clog, prevLog: prev}}}
	s.pods["default/p"].containers[0].spec.Name = "c"
	srv := httptest.NewUnstartedServer(s.kubeletHandler())
	srv.EnableHTTP2 = false
	srv.StartTLS() // httptest listens on 127.0.0.1
	t.Cleanup(srv.Close)
	return srv
}

func getLogs(t *testing.T, srv *httptest.Server, query string) (int, string) {
	t.Helper()
	client := srv.Client()
	resp, err := client.Get(srv.URL + "/containerLogs/default/p/c" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestContainerLogEndpoint(t *testing.T) {
	clog := newContainerLog(5)
	for i := range 7 { // the ring keeps the last 5
		fmt.Fprintf(clog, "line %d\n", i)
	}
	fmt.Fprint(clog, "partial")
	prev := newContainerLog(0)
	prev.printf("old run")
	prev.close()
	srv := logTestServer(t, clog, prev)
	if !strings.HasPrefix(srv.URL, "https://127.0.0.1:") {
		t.Fatalf("test server on %s, want loopback TLS", srv.URL)
	}

	code, body := getLogs(t, srv, "")
	if code != http.StatusOK || body != "line 2\nline 3\nline 4\nline 5\nline 6\n" {
		t.Errorf("all: %d %q", code, body)
	}
	if _, body = getLogs(t, srv, "?tailLines=2"); body != "line 5\nline 6\n" {
		t.Errorf("tailLines=2: %q", body)
	}
	if _, body = getLogs(t, srv, "?tailLines=0"); body != "" {
		t.Errorf("tailLines=0: %q", body)
	}
	if _, body = getLogs(t, srv, "?limitBytes=10"); body != "line 2\nlin" {
		t.Errorf("limitBytes=10: %q", body)
	}
	_, body = getLogs(t, srv, "?timestamps=true&tailLines=1")
	ts, rest, _ := strings.Cut(body, " ")
	if at, err := time.Parse(time.RFC3339Nano, ts); err != nil || time.Since(at) > time.Minute || rest != "line 6\n" {
		t.Errorf("timestamps: %q (%v)", body, err)
	}
	if _, body = getLogs(t, srv, "?previous=true"); body != "ascend-sim kubelet: old run\n" {
		t.Errorf("previous: %q", body)
	}
	// sinceSeconds: lines older than that are left out.
	clog.mu.Lock()
	for i := range clog.lines[:3] {
		clog.lines[i].at = time.Now().Add(-time.Hour)
	}
	clog.mu.Unlock()
	if _, body = getLogs(t, srv, "?sinceSeconds=60"); body != "line 5\nline 6\n" {
		t.Errorf("sinceSeconds=60: %q", body)
	}
	for _, q := range []string{"?tailLines=x", "?follow=maybe", "?sinceSeconds=-1"} {
		if code, body := getLogs(t, srv, q); code != http.StatusBadRequest {
			t.Errorf("%s: %d %q, want 400", q, code, body)
		}
	}
	for _, path := range []string{"/containerLogs/default/nope/c", "/containerLogs/default/p/nope"} {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, resp.StatusCode)
		}
	}
}

func TestContainerLogFollow(t *testing.T) {
	clog := newContainerLog(3)
	fmt.Fprintln(clog, "before")
	srv := logTestServer(t, clog, nil)
	resp, err := srv.Client().Get(srv.URL + "/containerLogs/default/p/c?follow=true")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func() (string, bool) {
		select {
		case l, ok := <-lines:
			return l, ok
		case <-time.After(5 * time.Second):
			t.Fatal("no line within 5s")
			return "", false
		}
	}
	if l, _ := next(); l != "before" {
		t.Fatalf("first line %q", l)
	}
	// More lines than the ring holds arrive in one go: the follower still
	// sees the ones kept, in order, without repeats.
	fmt.Fprint(clog, "a\nb\nc\nd\n")
	got := []string{}
	for len(got) < 3 {
		l, _ := next()
		got = append(got, l)
	}
	if strings.Join(got, ",") != "b,c,d" {
		t.Errorf("followed %v, want b,c,d", got)
	}
	fmt.Fprint(clog, "e\n")
	if l, _ := next(); l != "e" {
		t.Errorf("got %q, want e", l)
	}
	// Closing the log (the container stopped) ends the stream.
	clog.printf("stopped")
	clog.close()
	if l, _ := next(); l != "ascend-sim kubelet: stopped" {
		t.Errorf("got %q", l)
	}
	if l, ok := next(); ok {
		t.Errorf("stream goes on after close: %q", l)
	}
}

// A running simulator publishes its kubelet port on every node and serves
// the logs of its pods' containers, the kubelet's own lines included.
func TestKubeletLogsOfSimulatedPod(t *testing.T) {
	sim, client, _ := startSim(t, 1)
	ctx := context.Background()
	eventually(t, "kubelet port published", func() (bool, string) {
		n, err := client.CoreV1().Nodes().Get(ctx, "ascend-0", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		addr := sim.KubeletAddr()
		return addr != nil && n.Status.DaemonEndpoints.KubeletEndpoint.Port == int32(addr.Port),
			fmt.Sprint(n.Status.DaemonEndpoints, addr)
	})
	if ip := sim.KubeletAddr().IP; !ip.IsLoopback() {
		t.Fatalf("kubelet API on %s", ip)
	}
	if _, err := client.CoreV1().Pods("default").Create(ctx, testPod("lp", "ascend-0", 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	client2 := &http.Client{Transport: &http.Transport{DialContext: DialLoopback,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // self-signed test server
	url := fmt.Sprintf("https://%s/containerLogs/default/lp/mindie", sim.KubeletAddr())
	eventually(t, "container log", func() (bool, string) {
		resp, err := client2.Get(url)
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), "ascend-sim kubelet: container mindie started") &&
			strings.Contains(string(b), "fake workload: serving on"), string(b)
	})
}

// The kubelet API's certificate names every address it is served on, ::1
// and localhost, and nothing else.
func TestSelfSignedCert(t *testing.T) {
	ips := []string{"127.0.0.1", "127.77.0.3"}
	pair, err := selfSignedCert(ips)
	if err != nil {
		t.Fatal(err)
	}
	if len(ips) != 2 {
		t.Errorf("selfSignedCert changed its argument to %v", ips)
	}
	roots := x509.NewCertPool()
	roots.AddCert(pair.Leaf)
	for _, host := range append(ips, "::1", "localhost") {
		if _, err := pair.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: host}); err != nil {
			t.Errorf("%s: %v", host, err)
		}
	}
	if _, err := pair.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "127.77.0.4"}); err == nil {
		t.Error("the certificate is valid for 127.77.0.4 too")
	}
}

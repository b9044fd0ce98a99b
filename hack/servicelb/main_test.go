package main

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// echoServer answers each line with its own name and the line.
func echoServer(t *testing.T, name string) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewScanner(c)
				for r.Scan() {
					_, _ = c.Write([]byte(name + ":" + r.Text() + "\n"))
				}
			}()
		}
	}()
	return l
}

func ask(t *testing.T, addr, line string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		t.Fatal(err)
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("reading through the balancer: %v", err)
	}
	return strings.TrimSpace(got)
}

func TestSpreadsAndSkipsDeadBackend(t *testing.T) {
	a, b := echoServer(t, "a"), echoServer(t, "b")
	defer b.Close()
	lb := newBalancer([]string{a.Addr().String(), b.Addr().String()}, time.Second)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = lb.serve(ctx, l) }()
	defer l.Close()

	seen := map[string]int{}
	for range 4 {
		seen[strings.SplitN(ask(t, l.Addr().String(), "x"), ":", 2)[0]]++
	}
	if seen["a"] != 2 || seen["b"] != 2 {
		t.Fatalf("connections by backend: %v, want 2 each", seen)
	}

	// a dies: every new connection reaches b, the first one included,
	// and a is no longer tried first.
	a.Close()
	for range 3 {
		if got := ask(t, l.Addr().String(), "y"); got != "b:y" {
			t.Fatalf("after a died: %q, want b:y", got)
		}
	}
	if lb.ready[0].Load() {
		t.Error("a is still marked ready after a failed dial")
	}
}

func TestProbe(t *testing.T) {
	var notReady atomic.Bool
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" || notReady.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	probe, err := prober("")
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(srv.URL, "https://")
	if err := probe(addr); err != nil {
		t.Fatalf("ready server: %v", err)
	}
	notReady.Store(true)
	if err := probe(addr); err == nil {
		t.Fatal("a server answering 503 passed the probe")
	}
}

func TestRefusesNonLoopback(t *testing.T) {
	if err := run("127.0.0.1:0", []string{"10.0.0.1:443"}, policyRoundRobin, "", time.Second, time.Second); err == nil || !strings.Contains(err.Error(), "not a loopback") {
		t.Fatalf("got %v", err)
	}
}

func TestPolicyFirst(t *testing.T) {
	a, b := echoServer(t, "a"), echoServer(t, "b")
	defer b.Close()
	lb := newBalancer([]string{a.Addr().String(), b.Addr().String()}, time.Second)
	lb.first = true
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = lb.serve(ctx, l) }()
	for range 3 {
		if got := ask(t, l.Addr().String(), "x"); got != "a:x" {
			t.Fatalf("policy first: %q, want a:x", got)
		}
	}
	a.Close()
	if got := ask(t, l.Addr().String(), "y"); got != "b:y" {
		t.Fatalf("policy first after a died: %q, want b:y", got)
	}
}

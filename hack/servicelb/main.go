// Command servicelb stands in, on the local cluster, for what a Service's
// virtual IP and kube-proxy give replicas of mindie-apiserver in a real
// cluster: one address (the one the APIService names) in front of several
// replicas, new connections spread over the replicas that are ready, none
// sent to one that is not. It forwards TCP connections as they are (TLS ends
// at the replicas), checks each replica's /readyz every -probe-interval, and
// when a connection to a replica fails it tries the next ready one, as a
// client retrying another endpoint would. Connections that were open when a
// replica died break, as they do behind kube-proxy.
//
//	servicelb -listen 127.0.0.1:18443 -backend 127.0.0.1:18444 -backend 127.0.0.1:18445 [-cacert FILE] [-policy first]
//
// With -policy first, the first ready backend takes every connection and
// the next only when it fails: not what a Service does, but the worst case
// for a test of failover, where the replica that dies carries all traffic.
//
// It listens on and dials loopback addresses only.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type backends []string

func (b *backends) String() string { return strings.Join(*b, ",") }
func (b *backends) Set(v string) error {
	*b = append(*b, v)
	return nil
}

func main() {
	var bs backends
	listen := flag.String("listen", "", "loopback host:port to listen on")
	flag.Var(&bs, "backend", "loopback host:port of a replica (repeat for each)")
	caFile := flag.String("cacert", "", "PEM file of the CA that signed the replicas' serving certificates, for the readiness probe")
	interval := flag.Duration("probe-interval", 500*time.Millisecond, "how often each replica's /readyz is checked")
	dialTimeout := flag.Duration("dial-timeout", time.Second, "how long connecting to one replica may take before the next is tried")
	policy := flag.String("policy", policyRoundRobin, "which ready replica a new connection goes to: round-robin, or first (the first ready one in -backend order)")
	flag.Parse()
	if err := run(*listen, bs, *policy, *caFile, *interval, *dialTimeout); err != nil {
		fmt.Fprintf(os.Stderr, "servicelb: %v\n", err)
		os.Exit(1)
	}
}

// The values of -policy.
const (
	policyRoundRobin = "round-robin"
	policyFirst      = "first"
)

func run(listen string, bs []string, policy, caFile string, interval, dialTimeout time.Duration) error {
	if len(bs) == 0 {
		return errors.New("-backend: at least one is required")
	}
	if policy != policyRoundRobin && policy != policyFirst {
		return fmt.Errorf("-policy %q: must be %s or %s", policy, policyRoundRobin, policyFirst)
	}
	for _, a := range append([]string{listen}, bs...) {
		if err := loopback(a); err != nil {
			return err
		}
	}
	probe, err := prober(caFile)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	lb := newBalancer(bs, dialTimeout)
	lb.first = policy == policyFirst
	go lb.probeLoop(ctx, probe, interval)
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	go func() { <-ctx.Done(); l.Close() }()
	log.Printf("servicelb: %s -> %s", listen, strings.Join(bs, ", "))
	return lb.serve(ctx, l)
}

// loopback fails unless addr is host:port on a loopback address.
func loopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("%q is not a loopback address", addr)
	}
	return nil
}

// balancer hands each new connection to the next ready backend.
type balancer struct {
	addrs       []string
	ready       []atomic.Bool
	next        atomic.Uint64
	dialTimeout time.Duration
	first       bool       // every connection to the first ready backend
	mu          sync.Mutex // guards logging of state changes
}

func newBalancer(addrs []string, dialTimeout time.Duration) *balancer {
	b := &balancer{addrs: addrs, ready: make([]atomic.Bool, len(addrs)), dialTimeout: dialTimeout}
	// Until the first probe, every backend is worth a try.
	for i := range b.ready {
		b.ready[i].Store(true)
	}
	return b
}

func (b *balancer) setReady(i int, ok bool, why string) {
	if b.ready[i].Swap(ok) != ok {
		b.mu.Lock()
		log.Printf("servicelb: %s ready=%t %s", b.addrs[i], ok, why)
		b.mu.Unlock()
	}
}

// dial connects to a ready backend, trying the others when one fails, and
// then to those not ready (a probe may lag a replica that came back).
func (b *balancer) dial() (net.Conn, error) {
	start := int((b.next.Add(1) - 1) % uint64(len(b.addrs)))
	if b.first {
		start = 0
	}
	var errs []error
	for _, wantReady := range []bool{true, false} {
		for k := range b.addrs {
			i := (start + k) % len(b.addrs)
			if b.ready[i].Load() != wantReady {
				continue
			}
			c, err := net.DialTimeout("tcp", b.addrs[i], b.dialTimeout)
			if err == nil {
				return c, nil
			}
			b.setReady(i, false, err.Error())
			errs = append(errs, err)
		}
	}
	return nil, errors.Join(errs...)
}

func (b *balancer) serve(ctx context.Context, l net.Listener) error {
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go b.forward(c)
	}
}

func (b *balancer) forward(client net.Conn) {
	defer client.Close()
	backend, err := b.dial()
	if err != nil {
		log.Printf("servicelb: no replica for %s: %v", client.RemoteAddr(), err)
		return
	}
	defer backend.Close()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		// Half-close so the other direction can finish; a dead peer
		// ends both.
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(backend, client)
	go pipe(client, backend)
	<-done
	<-done
}

// prober returns a readiness check of one backend: GET /readyz over TLS.
func prober(caFile string) (func(addr string) error, error) {
	// The replicas' serving certificates name localhost, whichever
	// loopback address they listen on.
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: "localhost"}
	if caFile == "" {
		tlsCfg.InsecureSkipVerify = true //nolint:gosec // loopback readiness probe without a CA given
	} else {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-cacert %s: no certificates", caFile)
		}
		tlsCfg.RootCAs = pool
	}
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: tlsCfg, DisableKeepAlives: true},
	}
	return func(addr string) error {
		resp, err := client.Get("https://" + addr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz: %s", resp.Status)
		}
		return nil
	}, nil
}

func (b *balancer) probeLoop(ctx context.Context, probe func(string) error, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		var wg sync.WaitGroup
		for i, a := range b.addrs {
			wg.Go(func() {
				if err := probe(a); err != nil {
					b.setReady(i, false, err.Error())
				} else {
					b.setReady(i, true, "")
				}
			})
		}
		wg.Wait()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

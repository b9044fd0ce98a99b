package kubelet

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"mindie.io/deployer/pkg/pki"
)

// DefaultLogLines is how many lines each container's log keeps.
const DefaultLogLines = 10000

// kubeletCertValidity is how long the kubelet API's self-signed serving
// certificate is valid.
const kubeletCertValidity = 10 * 365 * 24 * time.Hour

// logLine is one line of a container's log.
type logLine struct {
	seq  uint64 // 1, 2, ... in the order written
	at   time.Time
	text string // without the trailing newline
}

// containerLog is the bounded in-memory log of one run of a container: the
// workload's log plus the simulated kubelet's own lines. It is an
// io.Writer; writes are split into lines.
type containerLog struct {
	mu      sync.Mutex
	max     int
	lines   []logLine
	seq     uint64 // of the last line written
	partial []byte
	closed  bool
	changed chan struct{} // closed and replaced on every append and on close
}

func newContainerLog(maxLines int) *containerLog {
	if maxLines <= 0 {
		maxLines = DefaultLogLines
	}
	return &containerLog{max: maxLines, changed: make(chan struct{})}
}

func (l *containerLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return len(p), nil
	}
	now := time.Now()
	buf := append(l.partial, p...)
	added := false
	for {
		i := indexNewline(buf)
		if i < 0 {
			break
		}
		l.appendLocked(logLine{at: now, text: string(buf[:i])})
		buf = buf[i+1:]
		added = true
	}
	l.partial = append([]byte(nil), buf...)
	if added {
		close(l.changed)
		l.changed = make(chan struct{})
	}
	return len(p), nil
}

func indexNewline(b []byte) int {
	for i, c := range b {
		if c == '\n' {
			return i
		}
	}
	return -1
}

func (l *containerLog) appendLocked(line logLine) {
	l.seq++
	line.seq = l.seq
	if len(l.lines) >= l.max {
		// Drop the oldest; copy down now and then rather than on every line.
		if cap(l.lines) > 2*l.max {
			l.lines = append(make([]logLine, 0, 2*l.max), l.lines[len(l.lines)-l.max+1:]...)
		} else {
			l.lines = l.lines[1:]
		}
	}
	l.lines = append(l.lines, line)
}

// printf appends one line written by the simulated kubelet itself.
func (l *containerLog) printf(format string, args ...any) {
	_, _ = fmt.Fprintf(l, "ascend-sim kubelet: "+format+"\n", args...)
}

// close flushes a partial last line and ends followers.
func (l *containerLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	if len(l.partial) > 0 {
		l.appendLocked(logLine{at: time.Now(), text: string(l.partial)})
		l.partial = nil
	}
	l.closed = true
	close(l.changed)
}

// snapshot returns the lines held, whether the log is closed, and a
// channel closed when either changes.
func (l *containerLog) snapshot() (lines []logLine, closed bool, changed <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]logLine(nil), l.lines...), l.closed, l.changed
}

// logOptions are the kubelet's containerLogs query parameters.
type logOptions struct {
	follow     bool
	timestamps bool
	tailLines  int64 // -1: all
	since      time.Time
	limitBytes int64 // 0: no limit
	previous   bool
}

func parseLogOptions(r *http.Request) (logOptions, error) {
	q := r.URL.Query()
	o := logOptions{tailLines: -1}
	var err error
	parseBool := func(name string) bool {
		v := q.Get(name)
		if v == "" || err != nil {
			return false
		}
		b, e := strconv.ParseBool(v)
		if e != nil {
			err = fmt.Errorf("invalid %s %q", name, v)
		}
		return b
	}
	parseInt := func(name string, dflt int64) int64 {
		v := q.Get(name)
		if v == "" || err != nil {
			return dflt
		}
		n, e := strconv.ParseInt(v, 10, 64)
		if e != nil || n < 0 {
			err = fmt.Errorf("invalid %s %q", name, v)
		}
		return n
	}
	o.follow = parseBool("follow")
	o.timestamps = parseBool("timestamps")
	o.previous = parseBool("previous")
	o.tailLines = parseInt("tailLines", -1)
	o.limitBytes = parseInt("limitBytes", 0)
	if s := parseInt("sinceSeconds", 0); s > 0 {
		o.since = time.Now().Add(-time.Duration(s) * time.Second)
	}
	if v := q.Get("sinceTime"); v != "" && err == nil {
		t, e := time.Parse(time.RFC3339, v)
		if e != nil {
			err = fmt.Errorf("invalid sinceTime %q", v)
		}
		o.since = t
	}
	return o, err
}

// findLog returns the log of a container of a pod this simulator runs.
func (s *Simulator) findLog(namespace, pod, container string, previous bool) (*containerLog, int, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := s.pods[namespace+"/"+pod]
	if ps == nil {
		return nil, http.StatusNotFound, fmt.Sprintf("pod %s/%s is not running on a simulated node", namespace, pod)
	}
	for _, cs := range ps.containers {
		if cs.spec.Name != container {
			continue
		}
		if previous {
			if cs.prevLog == nil {
				return nil, http.StatusBadRequest, fmt.Sprintf("previous terminated container %q in pod %q not found", container, pod)
			}
			return cs.prevLog, 0, ""
		}
		if cs.log == nil {
			return nil, http.StatusBadRequest, fmt.Sprintf("container %q in pod %q is waiting to start", container, pod)
		}
		return cs.log, 0, ""
	}
	return nil, http.StatusNotFound, fmt.Sprintf("container %q is not in pod %s/%s", container, namespace, pod)
}

// limitedWriter stops writing after n bytes (n <= 0: no limit).
type limitedWriter struct {
	w    io.Writer
	n    int64
	full bool
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		if int64(len(p)) >= l.n {
			p = p[:l.n]
			l.full = true
		}
		l.n -= int64(len(p))
	}
	return l.w.Write(p)
}

// serveContainerLogs answers the kubelet's
// GET /containerLogs/{namespace}/{pod}/{container}.
func (s *Simulator) serveContainerLogs(w http.ResponseWriter, r *http.Request) {
	opts, err := parseLogOptions(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	clog, code, msg := s.findLog(r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container"), opts.previous)
	if clog == nil {
		http.Error(w, msg, code)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	bw := bufio.NewWriter(w)
	lw := &limitedWriter{w: bw, n: opts.limitBytes}
	write := func(lines []logLine) bool {
		for _, ln := range lines {
			if opts.timestamps {
				_, _ = lw.Write([]byte(ln.at.UTC().Format(time.RFC3339Nano) + " "))
			}
			_, err := lw.Write([]byte(ln.text + "\n"))
			if err != nil || lw.full {
				return false
			}
		}
		return true
	}
	lines, closed, changed := clog.snapshot()
	first := lines
	if !opts.since.IsZero() {
		i := 0
		for i < len(first) && first[i].at.Before(opts.since) {
			i++
		}
		first = first[i:]
	}
	if opts.tailLines >= 0 && int64(len(first)) > opts.tailLines {
		first = first[int64(len(first))-opts.tailLines:]
	}
	var next uint64 = 1 // seq of the first line not yet sent
	if len(lines) > 0 {
		next = lines[len(lines)-1].seq + 1
	}
	ok := write(first)
	_ = bw.Flush()
	if flusher != nil {
		flusher.Flush()
	}
	for ok && opts.follow && !closed {
		select {
		case <-r.Context().Done():
			return
		case <-changed:
		}
		lines, closed, changed = clog.snapshot()
		i := 0
		for i < len(lines) && lines[i].seq < next {
			i++
		}
		if i == len(lines) {
			continue
		}
		next = lines[len(lines)-1].seq + 1
		ok = write(lines[i:])
		_ = bw.Flush()
		if flusher != nil {
			flusher.Flush()
		}
	}
}

// kubeletHandler serves the simulated kubelets' HTTPS API (container
// logs only).
func (s *Simulator) kubeletHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", s.serveContainerLogs)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	return mux
}

// startKubeletServer listens on 127.0.0.1:<KubeletPort> with a self-signed
// certificate and serves the kubelet API until ctx ends; on the same port
// of every other node address too (the edge nodes'), which is where the
// API server reaches a node's kubelet (its InternalIP).
func (s *Simulator) startKubeletServer(ctx context.Context) error {
	ips := []string{NodeIP}
	for _, name := range s.nodeNames {
		if ip := s.nodes[name].hostIP; !slices.Contains(ips, ip) {
			ips = append(ips, ip)
		}
	}
	cert, err := selfSignedCert(ips)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(NodeIP, strconv.Itoa(s.cfg.KubeletPort)))
	if err != nil {
		return fmt.Errorf("kubelet API listener: %w", err)
	}
	lns := []net.Listener{ln}
	port := ln.Addr().(*net.TCPAddr).Port
	for _, ip := range ips[1:] {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
		if err != nil {
			for _, l := range lns {
				_ = l.Close()
			}
			return fmt.Errorf("kubelet API listener of %s: %w", ip, err)
		}
		lns = append(lns, l)
	}
	srv := &http.Server{Handler: s.kubeletHandler(), ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	s.mu.Lock()
	s.kubeletAddr = ln.Addr().(*net.TCPAddr)
	s.mu.Unlock()
	if len(ips) > 1 {
		s.logf("kubelet API (container logs) on https://%s and port %d of %s", ln.Addr(), port, strings.Join(ips[1:], ", "))
	} else {
		s.logf("kubelet API (container logs) on https://%s", ln.Addr())
	}
	for _, l := range lns {
		go func() {
			if err := srv.ServeTLS(l, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.logf("kubelet API: %v", err)
			}
		}()
	}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	return nil
}

// KubeletAddr returns the address of the kubelet API once Run has started
// it, nil before.
func (s *Simulator) KubeletAddr() *net.TCPAddr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.kubeletAddr
}

// selfSignedCert is a serving certificate for the addresses ips, ::1 and
// localhost.
func selfSignedCert(ips []string) (tls.Certificate, error) {
	pair, err := pki.SelfSigned(pki.Request{
		CommonName: "ascend-sim kubelet",
		Usage:      x509.ExtKeyUsageServerAuth,
		Hosts:      append(slices.Clone(ips), net.IPv6loopback.String(), "localhost"),
		NotAfter:   time.Now().Add(kubeletCertValidity),
	})
	if err != nil {
		return tls.Certificate{}, err
	}
	return pair.TLSCertificate(), nil
}

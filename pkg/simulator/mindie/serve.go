package mindie

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"time"
)

// CheckLoopbackAddr returns an error unless addr ("host:port") names a
// loopback host: an address in 127.0.0.0/8, ::1, or "localhost". This
// project never listens on or dials anything else.
func CheckLoopbackAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	switch {
	case host == "localhost":
		return nil
	case host == "":
		return fmt.Errorf("address %q has no host, which means every interface: only loopback hosts (127.0.0.0/8, ::1, localhost) are allowed", addr)
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return fmt.Errorf("address %q: host %q is not an IP address: only loopback hosts (127.0.0.0/8, ::1, localhost) are allowed", addr, host)
	}
	if !ip.IsLoopback() {
		return fmt.Errorf("address %q is not a loopback address: only 127.0.0.0/8, ::1 and localhost are allowed", addr)
	}
	return nil
}

// Serve listens on the two loopback addresses (port 0 picks a free port)
// and serves the inference and management APIs until ctx ends or the
// server crashes. When ctx ends it stops gracefully, as SIGTERM does: new
// requests are refused, running ones get up to the drain timeout to
// finish, then the listeners close and Serve returns nil. After Crash it
// closes everything at once and returns ErrCrashed. A Server serves once:
// a crashed or stopped server is not restarted, a new one is made.
func (s *Server) Serve(ctx context.Context, inferenceAddr, managementAddr string) error {
	if err := CheckLoopbackAddr(inferenceAddr); err != nil {
		return fmt.Errorf("inference %w", err)
	}
	if err := CheckLoopbackAddr(managementAddr); err != nil {
		return fmt.Errorf("management %w", err)
	}
	var lc net.ListenConfig
	inf, err := lc.Listen(ctx, "tcp", inferenceAddr)
	if err != nil {
		return fmt.Errorf("listen on the inference address: %w", err)
	}
	mgmt, err := lc.Listen(ctx, "tcp", managementAddr)
	if err != nil {
		inf.Close()
		return fmt.Errorf("listen on the management address: %w", err)
	}
	return s.ServeListeners(ctx, inf, mgmt)
}

// ServeListeners is Serve on listeners the caller made; they must be TCP
// listeners on loopback addresses. It closes them when it returns.
func (s *Server) ServeListeners(ctx context.Context, inference, management net.Listener) error {
	for name, ln := range map[string]net.Listener{"inference": inference, "management": management} {
		if err := checkLoopbackListener(ln); err != nil {
			inference.Close()
			management.Close()
			return fmt.Errorf("%s listener: %w", name, err)
		}
	}
	s.mu.Lock()
	if s.serving {
		s.mu.Unlock()
		inference.Close()
		management.Close()
		return errors.New("the simulator is already serving: Serve may be called once per Server")
	}
	s.serving = true
	s.infAddr, s.mgmtAddr = inference.Addr(), management.Addr()
	close(s.listening)
	s.mu.Unlock()

	errorLog := log.New(logWriter{s}, "", 0)
	infSrv := &http.Server{Handler: s.InferenceHandler(), ReadHeaderTimeout: 30 * time.Second, ErrorLog: errorLog}
	mgmtSrv := &http.Server{Handler: s.ManagementHandler(), ReadHeaderTimeout: 30 * time.Second, ErrorLog: errorLog}
	serveErr := make(chan error, 2)
	go func() { serveErr <- infSrv.Serve(inference) }()
	go func() { serveErr <- mgmtSrv.Serve(management) }()
	s.logf("listening: inference=http://%s management=http://%s", inference.Addr(), management.Addr())

	// Log "ready" when the model has loaded even if nobody asks.
	announceCtx, stopAnnouncing := context.WithCancel(ctx)
	defer stopAnnouncing()
	go func() {
		if s.clock.Sleep(announceCtx, s.loadTime-s.clock.Now().Sub(s.start)) == nil {
			s.loaded()
		}
	}()

	running := 2 // serving goroutines
	closeAll := func() {
		s.shutDown()
		infSrv.Close()
		mgmtSrv.Close()
		// Close the listeners here too: a Serve goroutine that has not
		// started yet would only close its listener when it gets to run.
		inference.Close()
		management.Close()
		for ; running > 0; running-- {
			<-serveErr
		}
	}
	select {
	case <-s.crashed:
		closeAll()
		s.logf("listeners closed (crashed)")
		return ErrCrashed
	case err := <-serveErr:
		running--
		closeAll()
		s.logf("serving failed: %v", err)
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	s.logf("shutting down: draining running requests (up to %s)", s.drainTimeout)
	drainCtx, cancelDrain := context.WithTimeout(context.Background(), s.drainTimeout)
	err := s.Stop(drainCtx, false)
	cancelDrain()
	if errors.Is(err, context.DeadlineExceeded) {
		s.logf("drain timeout: aborting the requests still running")
		abortCtx, cancelAbort := context.WithTimeout(context.Background(), 5*time.Second)
		err = s.Stop(abortCtx, true)
		cancelAbort()
	}
	// Requests still blocked (by a hang) are dropped; idle connections close.
	s.shutDown()
	shutdownCtx, cancelShutdown := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelShutdown()
	infSrv.Shutdown(shutdownCtx)
	mgmtSrv.Shutdown(shutdownCtx)
	closeAll()
	if errors.Is(err, ErrCrashed) {
		return ErrCrashed
	}
	s.logf("listeners closed: simulator stopped")
	return nil
}

func checkLoopbackListener(ln net.Listener) error {
	addr, ok := ln.Addr().(*net.TCPAddr)
	if !ok {
		return fmt.Errorf("%s is not a TCP address", ln.Addr())
	}
	if !addr.IP.IsLoopback() {
		return fmt.Errorf("%s is not a loopback address: only 127.0.0.0/8 and ::1 are allowed", addr)
	}
	return nil
}

// Listening is closed once Serve has bound its listeners; Addrs is then
// valid.
func (s *Server) Listening() <-chan struct{} { return s.listening }

// Addrs returns the addresses Serve listens on, or nils before it does.
func (s *Server) Addrs() (inference, management net.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.infAddr, s.mgmtAddr
}

// logWriter sends net/http's own error log to the server's log.
type logWriter struct{ s *Server }

func (w logWriter) Write(p []byte) (int, error) {
	w.s.logf("http: %s", trimNewline(string(p)))
	return len(p), nil
}

func trimNewline(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	return s
}

// shutDown tells requests blocked by a hang and the engine that Serve is
// shutting down.
func (s *Server) shutDown() {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.stopEngine()
	})
}

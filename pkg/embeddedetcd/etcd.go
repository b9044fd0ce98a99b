// Package embeddedetcd runs an etcd member inside mindie-apiserver, for
// installations that give it no --etcd-servers. Its data lives in a
// directory of its own and survives restarts; writes are fsynced before they
// are acknowledged, as with any etcd.
package embeddedetcd

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// Options configure the embedded member.
type Options struct {
	// DataDir holds the member's data; created if missing.
	DataDir string
	// ClientPort is the loopback port clients use; 0 picks a free one.
	ClientPort int
	// PeerPort is the loopback port of the (unused) peer listener; 0 picks a free one.
	PeerPort int
	// StartTimeout bounds the wait for the member to become ready.
	StartTimeout time.Duration
	// LogLevel of etcd's own logger (debug, info, warn, error).
	LogLevel string
}

// Server is a running embedded etcd member.
type Server struct {
	etcd *embed.Etcd
	// ClientURL is the address to give an etcd client.
	ClientURL string
}

// Start starts the member and waits until it serves.
func Start(o Options) (*Server, error) {
	if o.DataDir == "" {
		return nil, fmt.Errorf("embedded etcd: a data directory is required")
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded etcd: create data directory: %w", err)
	}
	// A port picked free may be taken by another process before etcd
	// listens on it: then etcd starts again on other free ports (when
	// both were picked, so that the port taken is one of them).
	var e *embed.Etcd
	var cfg *embed.Config
	var clientURL url.URL
	for attempt := 1; ; attempt++ {
		var err error
		cfg, clientURL, err = config(o)
		if err != nil {
			return nil, err
		}
		e, err = embed.StartEtcd(cfg)
		if err == nil {
			break
		}
		if attempt < startAttempts && o.ClientPort == 0 && o.PeerPort == 0 && addressInUse(err) {
			continue
		}
		return nil, fmt.Errorf("embedded etcd: start in %s: %w", cfg.Dir, err)
	}
	timeout := o.StartTimeout
	if timeout == 0 {
		timeout = time.Minute
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd: %w", err)
	case <-time.After(timeout):
		e.Server.Stop()
		e.Close()
		return nil, fmt.Errorf("embedded etcd: not ready after %s", timeout)
	}
	return &Server{etcd: e, ClientURL: clientURL.String()}, nil
}

// Err reports a fatal error of the running member.
func (s *Server) Err() <-chan error { return s.etcd.Err() }

// Close stops the member, flushing its data.
func (s *Server) Close() { s.etcd.Close() }

// startAttempts bounds the starts on ports picked free that another
// process took first.
const startAttempts = 5

// config is the member's configuration, on o's ports or on free ones.
func config(o Options) (*embed.Config, url.URL, error) {
	clientPort, err := portOrFree(o.ClientPort)
	if err != nil {
		return nil, url.URL{}, err
	}
	peerPort, err := portOrFree(o.PeerPort)
	if err != nil {
		return nil, url.URL{}, err
	}
	clientURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", fmt.Sprint(clientPort))}
	peerURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", fmt.Sprint(peerPort))}

	cfg := embed.NewConfig()
	cfg.Name = "mindie-apiserver"
	cfg.Dir = filepath.Join(o.DataDir, "etcd")
	cfg.ListenClientUrls = []url.URL{clientURL}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	cfg.ListenPeerUrls = []url.URL{peerURL}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = o.LogLevel
	if cfg.LogLevel == "" {
		cfg.LogLevel = "error"
	}
	cfg.LogOutputs = []string{"stderr"}
	// Keep history bounded without operator action.
	cfg.AutoCompactionMode = "periodic"
	cfg.AutoCompactionRetention = "1h"
	return cfg, clientURL, nil
}

// addressInUse says whether err is a listen on a port already taken.
func addressInUse(err error) bool {
	return errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use")
}

func portOrFree(port int) (int, error) {
	if port != 0 {
		return port, nil
	}
	return freePort()
}

// freePort is a loopback port free when asked; a variable for tests.
var freePort = func() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("embedded etcd: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

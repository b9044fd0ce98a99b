// Command mindie-router routes inference requests to MindIE Server
// instances (see package mindie.io/deployer/pkg/router and docs/router.md):
// round_robin as MindIE's Coordinator does it, cache_affinity on chained
// prefix hashes of chats, or least_load. It serves plain HTTP, reads its
// instances from --static-backends, logs to stderr, and on SIGTERM or
// SIGINT stops accepting and lets the requests in flight finish.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/klog/v2"

	"mindie.io/deployer/pkg/router"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stderr, nil))
}

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // serving failed, or the grace period ran out
	exitUsage = 2 // bad flags or configuration
)

// parseFlags reads the command line into a router configuration.
func parseFlags(args []string, stderr io.Writer) (router.Config, error) {
	cfg := router.DefaultConfig()
	fs := flag.NewFlagSet("mindie-router", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: mindie-router --static-backends FILE [flags]\n\n"+
			"Routes inference requests (OpenAI, TGI, vLLM, Triton, MindIE) to MindIE Server instances.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	cfg.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q: mindie-router takes only flags", fs.Args())
	}
	if cfg.StaticBackends == "" {
		return cfg, errors.New("--static-backends is required: a JSON or YAML list of {name, inference, management} (Kubernetes discovery comes later)")
	}
	return cfg, cfg.Validate()
}

// run is the command; listening, if not nil, is told the address served
// (tests listen on port 0).
func run(ctx context.Context, args []string, stderr io.Writer, listening func(net.Addr)) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "mindie-router: %v\n", err)
		return exitUsage
	}
	src, err := router.LoadStaticBackends(cfg.StaticBackends)
	if err != nil {
		fmt.Fprintf(stderr, "mindie-router: %v\n", err)
		return exitUsage
	}
	r, err := router.New(cfg, src)
	if err != nil {
		fmt.Fprintf(stderr, "mindie-router: %v\n", err)
		return exitUsage
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		fmt.Fprintf(stderr, "mindie-router: --listen: %v\n", err)
		return exitError
	}
	klog.InfoS("mindie-router serving", "address", ln.Addr().String(), "algorithm", cfg.Algorithm, "instances", len(src))
	if listening != nil {
		listening(ln.Addr())
	}
	if err := r.Serve(ctx, ln); err != nil {
		fmt.Fprintf(stderr, "mindie-router: %v\n", err)
		return exitError
	}
	klog.InfoS("mindie-router stopped")
	klog.Flush()
	return exitOK
}

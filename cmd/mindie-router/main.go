// Command mindie-router routes inference requests to MindIE Server
// instances (see package mindie.io/deployer/pkg/router and docs/router.md):
// round_robin as MindIE's Coordinator does it, cache_affinity on chained
// prefix hashes of chats, or least_load. It reads its instances from
// --static-backends or from the pods of an InferServer (--server), serves
// HTTPS (plain HTTP with --insecure-http), authenticates clients with
// Kubernetes tokens if asked (--authentication=kubernetes), logs to stderr,
// and on SIGTERM or SIGINT turns not ready, goes on serving for
// --shutdown-delay, then stops accepting and lets the requests in flight
// finish within --shutdown-grace; a second signal ends it at once.
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

	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"mindie.io/deployer/pkg/router"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	// After the first signal, the next one has its default effect: the
	// process ends at once, without the shutdown delay and grace.
	context.AfterFunc(ctx, stop)
	os.Exit(run(ctx, os.Args[1:], env{stderr: os.Stderr, kubernetesClient: router.KubernetesClient}))
}

// env is what run needs from outside; tests swap the Kubernetes client.
type env struct {
	stderr io.Writer
	// listening, if not nil, is told the address served (tests listen on
	// port 0).
	listening func(net.Addr)
	// kubernetesClient returns a client and the namespace to use
	// (router.KubernetesClient).
	kubernetesClient func(kubeconfig, namespace string) (kubernetes.Interface, string, error)
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
		fmt.Fprintf(fs.Output(), "Usage: mindie-router (--static-backends FILE | --server NAME) [flags]\n\n"+
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
	switch {
	case cfg.StaticBackends == "" && cfg.Server == "":
		return cfg, errors.New("no instances: expected --static-backends FILE (a JSON or YAML list of {name, inference, management}) or --server NAME (an InferServer's pods)")
	case cfg.StaticBackends != "" && cfg.Server != "":
		return cfg, fmt.Errorf("--static-backends=%s and --server=%s: expected one of them, not both", cfg.StaticBackends, cfg.Server)
	case cfg.Server == "" && (cfg.Namespace != "" || cfg.Kubeconfig != ""):
		return cfg, fmt.Errorf("--namespace=%q and --kubeconfig=%q: only with --server, they say where its pods are", cfg.Namespace, cfg.Kubeconfig)
	}
	return cfg, cfg.Validate()
}

// run is the command.
func run(ctx context.Context, args []string, e env) int {
	stderr := e.stderr
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "mindie-router: %v\n", err)
		return exitUsage
	}
	src, opts, err := setUp(cfg, e)
	if err != nil {
		fmt.Fprintf(stderr, "mindie-router: %v\n", err)
		return exitUsage
	}
	r, err := router.New(cfg, src, opts...)
	if err != nil {
		fmt.Fprintf(stderr, "mindie-router: %v\n", err)
		return exitUsage
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		fmt.Fprintf(stderr, "mindie-router: --listen: %v\n", err)
		return exitError
	}
	klog.InfoS("mindie-router serving", "address", ln.Addr().String(), "https", !cfg.InsecureHTTP,
		"algorithm", cfg.Algorithm, "authentication", cfg.Authentication)
	if e.listening != nil {
		e.listening(ln.Addr())
	}
	if err := r.Serve(ctx, ln); err != nil {
		fmt.Fprintf(stderr, "mindie-router: %v\n", err)
		return exitError
	}
	klog.InfoS("mindie-router stopped")
	klog.Flush()
	return exitOK
}

// setUp makes the instance source and, for Kubernetes authentication, the
// authenticator.
func setUp(cfg router.Config, e env) (router.Source, []router.Option, error) {
	if cfg.StaticBackends != "" {
		src, err := router.LoadStaticBackends(cfg.StaticBackends)
		if err != nil {
			return nil, nil, err
		}
		klog.InfoS("instances from a file", "file", cfg.StaticBackends, "instances", len(src))
		return src, nil, nil
	}
	client, namespace, err := e.kubernetesClient(cfg.Kubeconfig, cfg.Namespace)
	if err != nil {
		return nil, nil, err
	}
	klog.InfoS("instances from the pods of an InferServer", "namespace", namespace, "server", cfg.Server)
	// A Prefill/Decode server's routers are active/standby behind a Lease
	// (campaigning only while the server's pods have roles).
	opts := []router.Option{router.WithPDElector(router.NewLeaseElector(client, namespace, cfg.Server, cfg))}
	if cfg.Authentication == router.AuthKubernetes {
		opts = append(opts, router.WithAuthenticator(router.NewKubernetesAuthenticator(client, namespace, cfg.Server,
			cfg.AuthCacheTTL, cfg.AuthCacheDeniedTTL)))
	}
	return router.NewPodSource(client, namespace, cfg.Server), opts, nil
}

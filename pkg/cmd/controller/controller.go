// Package controller holds mindie-controller's command line: the workload
// controllers in a process of their own, reaching InferServers and
// EdgeDeployments through kube-apiserver like any other client, with its
// health checks and metrics on a port of its own.
package controller

import (
	"context"
	"errors"
	goflag "flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/server/healthz"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/component-base/metrics/legacyregistry"
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // the clients', work queues' and leader election's metrics
	"k8s.io/klog/v2"

	"mindie.io/deployer/pkg/controller/manager"
	"mindie.io/deployer/pkg/generated/clientset/versioned"
)

// Options are everything mindie-controller can be told on its command line.
type Options struct {
	// Kubeconfig reaches the cluster's kube-apiserver, which serves
	// infer.mindie.io through mindie-apiserver's APIService; empty means
	// the in-cluster configuration.
	Kubeconfig string
	// HealthBindAddress serves /healthz, /readyz and /metrics over HTTP.
	HealthBindAddress string
	// Controllers configures the controllers.
	Controllers manager.Config

	Out, ErrOut io.Writer
}

// NewOptions returns the default options.
func NewOptions(out, errOut io.Writer) *Options {
	return &Options{
		HealthBindAddress: ":10361",
		Controllers:       manager.DefaultConfig(),
		Out:               out,
		ErrOut:            errOut,
	}
}

// NewCommand returns the mindie-controller command.
func NewCommand(ctx context.Context, o *Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mindie-controller",
		Short: "Run mindie's workload controllers in a process of their own",
		Long: `mindie-controller turns InferServers into Deployments, pods, Services and
ConfigMaps, and EdgeDeployments into pods on edge nodes, and writes their
status. It is what mindie-apiserver runs in-process by default; run it
separately with mindie-apiserver --external-controllers, so that the API
server's memory holds the API's objects only. Replicas take turns through a
Lease (the same one mindie-apiserver's in-process controllers use).`,
		SilenceUsage: true,
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.Validate(args); err != nil {
				return err
			}
			return o.Run(c.Context())
		},
	}
	cmd.SetContext(ctx)
	fs := cmd.Flags()
	klogFlags := goflag.NewFlagSet("klog", goflag.ContinueOnError)
	klog.InitFlags(klogFlags)
	fs.AddGoFlagSet(klogFlags)
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "kubeconfig of the cluster's kube-apiserver, which serves infer.mindie.io through mindie-apiserver; empty: the in-cluster configuration.")
	fs.StringVar(&o.HealthBindAddress, "health-bind-address", o.HealthBindAddress, "HOST:PORT serving /healthz, /readyz and /metrics over plain HTTP (no secrets are served); port 0 picks a free one.")
	o.Controllers.AddFlags(fs)
	return cmd
}

// Validate checks the options; each error names the flag and the value.
func (o *Options) Validate(args []string) error {
	var errs []error
	if len(args) > 0 {
		errs = append(errs, fmt.Errorf("no arguments are accepted, got %q", strings.Join(args, " ")))
	}
	if _, port, err := net.SplitHostPort(o.HealthBindAddress); err != nil || port == "" {
		errs = append(errs, fmt.Errorf("--health-bind-address: %q: must be HOST:PORT (HOST may be empty)", o.HealthBindAddress))
	}
	errs = append(errs, o.Controllers.Validate()...)
	return utilerrors.NewAggregate(errs)
}

// restConfig is the client configuration of --kubeconfig or the cluster.
func (o *Options) restConfig() (*restclient.Config, error) {
	if o.Kubeconfig == "" {
		cfg, err := restclient.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig is empty and the in-cluster configuration is not available: %w", err)
		}
		return cfg, nil
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig=%s: %w", o.Kubeconfig, err)
	}
	return cfg, nil
}

// Run serves the health checks and runs the controllers until ctx is done.
func (o *Options) Run(ctx context.Context) error {
	kubeConfig, err := o.restConfig()
	if err != nil {
		return err
	}
	kubeConfig.UserAgent = "mindie-controller"
	inferConfig := restclient.CopyConfig(kubeConfig)
	inferConfig.QPS, inferConfig.Burst = o.Controllers.KubeAPIQPS, o.Controllers.KubeAPIBurst
	infer, err := versioned.NewForConfig(inferConfig)
	if err != nil {
		return fmt.Errorf("infer.mindie.io client: %w", err)
	}
	m, err := manager.New(o.Controllers, kubeConfig, infer)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", o.HealthBindAddress)
	if err != nil {
		return fmt.Errorf("--health-bind-address=%s: %w", o.HealthBindAddress, err)
	}
	mux := http.NewServeMux()
	live := []healthz.HealthChecker{healthz.PingHealthz}
	if m.LeaderHealth != nil {
		live = append(live, m.LeaderHealth)
	}
	healthz.InstallHandler(mux, live...)
	healthz.InstallLivezHandler(mux, live...)
	healthz.InstallReadyzHandler(mux, append(live, healthz.NamedCheck("inferserver-informer-synced", func(*http.Request) error {
		if !m.ServersSynced() {
			return errors.New("informer has not synced yet")
		}
		return nil
	}))...)
	mux.Handle("/metrics", legacyregistry.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	klog.InfoS("Serving health checks and metrics", "address", ln.Addr().String(), "identity", m.Identity())

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m.StartInformers(ctx.Done())
	runErr := make(chan error, 1)
	go func() { runErr <- m.Run(ctx) }()
	select {
	case err = <-serveErr:
		err = fmt.Errorf("health and metrics server: %w", err)
		cancel()
		<-runErr
	case err = <-runErr:
	case <-ctx.Done():
		// The controllers stop and, holding the Lease, give it up.
		err = <-runErr
	}
	shutdownCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	_ = srv.Shutdown(shutdownCtx)
	return err
}

// Main runs the command with the process's arguments and signal handling,
// and returns the exit code.
func Main() int {
	ctx := genericapiserver.SetupSignalContext()
	cmd := NewCommand(ctx, NewOptions(os.Stdout, os.Stderr))
	if err := cmd.Execute(); err != nil {
		return 1
	}
	return 0
}

// Package server holds mindie-apiserver's command line: its options, how
// they become a server configuration, and the run loop.
package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apiserver/pkg/endpoints/openapi"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/server/healthz"
	genericoptions "k8s.io/apiserver/pkg/server/options"
	"k8s.io/apiserver/pkg/util/compatibility"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/client-go/kubernetes"
	restclient "k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	netutils "k8s.io/utils/net"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/apiserver"
	"mindie.io/deployer/pkg/controller/manager"
	"mindie.io/deployer/pkg/embeddedetcd"
	generatedopenapi "mindie.io/deployer/pkg/generated/openapi"
	"mindie.io/deployer/pkg/registry/infer/inferserver"
)

// etcdPathPrefix is where InferServers live in etcd.
const etcdPathPrefix = "/registry/infer.mindie.io"

// Options are everything mindie-apiserver can be told on its command line.
type Options struct {
	RecommendedOptions *genericoptions.RecommendedOptions

	// DataDir holds the embedded etcd's data when no --etcd-servers are given.
	DataDir string
	// EmbeddedEtcdClientPort and EmbeddedEtcdPeerPort are loopback ports of
	// the embedded etcd; 0 picks free ones.
	EmbeddedEtcdClientPort int
	EmbeddedEtcdPeerPort   int
	// Standalone serves without a kube-apiserver: no delegated
	// authentication, authorization or admission. Client certificates still
	// authenticate, and only system:masters is authorized. For tests and
	// development.
	Standalone bool
	// AlternateDNS are extra names in a self-signed serving certificate.
	AlternateDNS []string
	// RouterClientServiceAccount is the NAMESPACE/NAME of the service account
	// whose tokens the proxy subresource presents to routers with Kubernetes
	// authentication: this server's own.
	RouterClientServiceAccount string

	// RunControllers runs the workload controllers in this process (never
	// with --standalone).
	RunControllers bool
	// ExternalControllers says the workload controllers run in
	// mindie-controller processes of their own: this server does not run
	// them but puts their cleanup finalizers on new objects.
	ExternalControllers bool
	// Controllers configures the workload controllers run in this process.
	Controllers manager.Config

	// embeddedEtcd is set by Complete when the embedded etcd is to be started.
	embeddedEtcd bool

	Out, ErrOut io.Writer
}

// NewOptions returns the default options.
func NewOptions(out, errOut io.Writer) *Options {
	o := &Options{
		RecommendedOptions: genericoptions.NewRecommendedOptions(etcdPathPrefix,
			apiserver.StorageCodec(v1alpha1.SchemeGroupVersion)),
		DataDir:                    "/var/lib/mindie-apiserver",
		RouterClientServiceAccount: "mindie-system/mindie-apiserver",
		AlternateDNS: []string{
			"mindie-apiserver", "mindie-apiserver.mindie-system", "mindie-apiserver.mindie-system.svc",
		},
		RunControllers: true,
		Controllers:    manager.DefaultConfig(),
		Out:            out,
		ErrOut:         errOut,
	}
	// A namespace's deletion deletes its InferServers with one
	// DeleteCollection; eight at a time instead of one by one.
	o.RecommendedOptions.Etcd.DeleteCollectionWorkers = 8
	o.RecommendedOptions.Etcd.StorageConfig.EncodeVersioner = runtime.NewMultiGroupVersioner(
		v1alpha1.SchemeGroupVersion, schema.GroupKind{Group: v1alpha1.GroupName})
	return o
}

// NewCommand returns the mindie-apiserver command.
func NewCommand(ctx context.Context, o *Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mindie-apiserver",
		Short: "Serve the infer.mindie.io API as a Kubernetes aggregated API server",
		Long: `mindie-apiserver serves InferServers (group infer.mindie.io) behind a
kube-apiserver that registers it with an APIService. Authentication and
authorization are delegated to the kube-apiserver. Objects are stored in etcd:
the one given by --etcd-servers, or an embedded one under --data-dir.`,
		SilenceUsage: true,
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.Complete(); err != nil {
				return err
			}
			if err := o.Validate(args); err != nil {
				return err
			}
			return o.Run(c.Context())
		},
	}
	cmd.SetContext(ctx)
	o.AddFlags(cmd)
	return cmd
}

// AddFlags adds the generic API server flags and mindie-apiserver's own.
func (o *Options) AddFlags(cmd *cobra.Command) {
	fs := cmd.Flags()
	o.RecommendedOptions.AddFlags(fs)
	// --feature-gates, Kubernetes' own, for the generic server's features
	// (such as DetectCacheInconsistency; README.md).
	utilfeature.DefaultMutableFeatureGate.AddFlag(fs)
	fs.StringVar(&o.DataDir, "data-dir", o.DataDir, "Directory of the embedded etcd's data, used when no --etcd-servers are given.")
	fs.IntVar(&o.EmbeddedEtcdClientPort, "embedded-etcd-client-port", 0, "Loopback client port of the embedded etcd; 0 picks a free one.")
	fs.IntVar(&o.EmbeddedEtcdPeerPort, "embedded-etcd-peer-port", 0, "Loopback peer port of the embedded etcd; 0 picks a free one.")
	fs.BoolVar(&o.Standalone, "standalone", false, "Serve without a kube-apiserver: no delegated authentication, authorization or admission. Client certificates signed by --client-ca-file authenticate, and only the group system:masters (and the server's own loopback client) is authorized. For tests and development only.")
	fs.BoolVar(&o.RunControllers, "controllers", o.RunControllers, "Run the workload controllers that turn InferServers into Deployments, pods, Services and ConfigMaps in the cluster of --kubeconfig (or in-cluster). Never with --standalone.")
	fs.BoolVar(&o.ExternalControllers, "external-controllers", o.ExternalControllers, "The workload controllers run in mindie-controller processes of their own: do not run them here (implies --controllers=false), but put their cleanup finalizers on new InferServers and EdgeDeployments as if they ran here.")
	o.Controllers.AddFlags(fs)
	fs.StringVar(&o.RouterClientServiceAccount, "router-client-service-account", o.RouterClientServiceAccount, "NAMESPACE/NAME of the service account (this server's own) whose TokenRequest tokens the proxy subresource presents to InferServer routers with Kubernetes authentication; RBAC must let it create inferservers/proxy and its own serviceaccounts/token.")
	fs.StringSliceVar(&o.AlternateDNS, "self-signed-cert-dns-names", o.AlternateDNS, "Names put in the self-signed serving certificate made when no --tls-cert-file is given.")
}

// Complete fills in what the flags leave open.
func (o *Options) Complete() error {
	if o.Standalone {
		o.RecommendedOptions.CoreAPI = nil
		o.RecommendedOptions.Admission = nil
		// Priority and fairness reads its configuration from the kube-apiserver.
		o.RecommendedOptions.Features.EnablePriorityAndFairness = false
		o.RecommendedOptions.Authentication.RemoteKubeConfigFileOptional = true
		o.RecommendedOptions.Authentication.SkipInClusterLookup = true
		o.RecommendedOptions.Authorization.RemoteKubeConfigFileOptional = true
		o.RunControllers = false
	}
	if o.ExternalControllers {
		o.RunControllers = false
	}
	if len(o.RecommendedOptions.Etcd.StorageConfig.Transport.ServerList) == 0 {
		o.embeddedEtcd = true
		// The real address is known once the member is started; this one
		// only satisfies the etcd options' validation.
		o.RecommendedOptions.Etcd.StorageConfig.Transport.ServerList = []string{"http://127.0.0.1:0"}
	}
	return nil
}

// Validate checks the options.
func (o *Options) Validate(args []string) error {
	var errs []error
	if len(args) > 0 {
		errs = append(errs, fmt.Errorf("no arguments are accepted, got %q", strings.Join(args, " ")))
	}
	errs = append(errs, o.RecommendedOptions.Validate()...)
	if o.ExternalControllers && o.Standalone {
		errs = append(errs, fmt.Errorf("--external-controllers: cannot be used with --standalone: without a cluster no controller runs, and the finalizers would never be removed"))
	}
	if o.RunControllers {
		errs = append(errs, o.Controllers.Validate()...)
	}
	if o.embeddedEtcd && o.DataDir == "" {
		errs = append(errs, fmt.Errorf("--data-dir: must name a directory when no --etcd-servers are given"))
	}
	for name, port := range map[string]int{"--embedded-etcd-client-port": o.EmbeddedEtcdClientPort, "--embedded-etcd-peer-port": o.EmbeddedEtcdPeerPort} {
		if port < 0 || port > 65535 {
			errs = append(errs, fmt.Errorf("%s: %d: must be between 0 and 65535", name, port))
		}
	}
	return utilerrors.NewAggregate(errs)
}

// Config turns the options into a server configuration.
func (o *Options) Config() (*apiserver.Config, error) {
	if err := o.RecommendedOptions.SecureServing.MaybeDefaultWithSelfSignedCerts("localhost", o.AlternateDNS,
		[]net.IP{netutils.ParseIPSloppy("127.0.0.1"), netutils.ParseIPSloppy("::1")}); err != nil {
		return nil, fmt.Errorf("create self-signed certificates: %w", err)
	}
	cfg := genericapiserver.NewRecommendedConfig(apiserver.Codecs)
	// A proxied generation lasts as long as the model writes; the request
	// timeout must not cut it.
	cfg.LongRunningFunc = inferserver.LongRunningRequestCheck(cfg.LongRunningFunc)
	// Watches (the aggregator relays the garbage collector's and every
	// informer's) end when shutdown begins, drained within this period;
	// with 0 they would hold the server until its 60s shutdown timeout.
	cfg.ShutdownWatchTerminationGracePeriod = 5 * time.Second
	namer := openapi.NewDefinitionNamer(apiserver.Scheme)
	cfg.OpenAPIConfig = genericapiserver.DefaultOpenAPIConfig(generatedopenapi.GetOpenAPIDefinitions, namer)
	cfg.OpenAPIConfig.Info.Title = "mindie-apiserver"
	cfg.OpenAPIConfig.Info.Version = v1alpha1.SchemeGroupVersion.Version
	cfg.OpenAPIV3Config = genericapiserver.DefaultOpenAPIV3Config(generatedopenapi.GetOpenAPIDefinitions, namer)
	cfg.OpenAPIV3Config.Info.Title = "mindie-apiserver"
	cfg.OpenAPIV3Config.Info.Version = v1alpha1.SchemeGroupVersion.Version
	cfg.FeatureGate = utilfeature.DefaultFeatureGate
	cfg.EffectiveVersion = compatibility.DefaultBuildEffectiveVersion()
	if err := o.RecommendedOptions.ApplyTo(cfg); err != nil {
		return nil, err
	}
	cfg.RESTOptionsGetter = apiserver.PageOwnLists(cfg.RESTOptionsGetter, apiserver.OwnListPageSize)
	// The delegating authorizer caches kube-apiserver's answers by object
	// name; asked without the name first, the reads of many objects by a
	// user allowed them all share one answer instead of a review each.
	if cfg.Authorization.Authorizer != nil {
		cfg.Authorization.Authorizer = apiserver.AnyNameFirst(cfg.Authorization.Authorizer)
	}
	// The front proxy (kube-apiserver) presents the same client certificate
	// on every request it relays; its chain is verified once, not on each.
	if cfg.Authentication.Authenticator != nil && cfg.Authentication.RequestHeaderConfig != nil {
		cfg.Authentication.Authenticator = apiserver.FrontProxyFirst(cfg.Authentication.RequestHeaderConfig, cfg.Authentication.Authenticator)
	}
	// Until the front proxy's CA bundle is loaded, requests it relays
	// would be anonymous: they get a 503 to retry, and /readyz fails.
	if rh := cfg.Authentication.RequestHeaderConfig; rh != nil {
		gate := apiserver.NewFrontProxyCAGate(rh)
		build := cfg.BuildHandlerChainFunc
		cfg.BuildHandlerChainFunc = func(handler http.Handler, c *genericapiserver.Config) http.Handler {
			return gate.Wrap(build(handler, c))
		}
		cfg.AddReadyzChecks(healthz.NamedCheck("front-proxy-ca", gate.Ready))
	}
	return &apiserver.Config{GenericConfig: cfg, Finalize: o.finalizes()}, nil
}

// finalizes reports whether new objects get the controllers' cleanup
// finalizers: whenever controllers run, here or elsewhere.
func (o *Options) finalizes() bool { return o.RunControllers || o.ExternalControllers }

// NewServer starts the embedded etcd if one is needed and builds the
// server. The returned stop function closes what NewServer started; call it
// after the server has stopped. etcdErr reports a failure of the embedded
// etcd (it is nil with an external etcd).
func (o *Options) NewServer() (server *apiserver.Server, etcdErr <-chan error, stop func(), err error) {
	stop = func() {}
	if o.embeddedEtcd {
		etcd, err := embeddedetcd.Start(embeddedetcd.Options{
			DataDir:    o.DataDir,
			ClientPort: o.EmbeddedEtcdClientPort,
			PeerPort:   o.EmbeddedEtcdPeerPort,
		})
		if err != nil {
			return nil, nil, stop, err
		}
		stop = etcd.Close
		etcdErr = etcd.Err()
		klog.InfoS("Started embedded etcd", "dataDir", filepath.Clean(o.DataDir), "clientURL", etcd.ClientURL)
		o.RecommendedOptions.Etcd.StorageConfig.Transport.ServerList = []string{etcd.ClientURL}
	}
	config, err := o.Config()
	if err != nil {
		return nil, nil, stop, err
	}
	server, err = config.Complete().New()
	if err != nil {
		return nil, nil, stop, err
	}
	if err := o.setRouterToken(server, config.GenericConfig.ClientConfig); err != nil {
		return nil, nil, stop, err
	}
	if o.RunControllers {
		if _, err := startControllers(server, o.Controllers, config.GenericConfig.ClientConfig); err != nil {
			return nil, nil, stop, err
		}
	}
	return server, etcdErr, stop, nil
}

// setRouterToken gives the proxy subresource tokens of
// --router-client-service-account to present to routers. Without a
// cluster (standalone) there are none, and routers with Kubernetes
// authentication cannot be reached through the proxy.
func (o *Options) setRouterToken(server *apiserver.Server, kubeConfig *restclient.Config) error {
	if o.Standalone || kubeConfig == nil {
		return nil
	}
	ns, name, ok := strings.Cut(o.RouterClientServiceAccount, "/")
	if !ok || ns == "" || name == "" {
		return fmt.Errorf("--router-client-service-account=%q: expected NAMESPACE/NAME", o.RouterClientServiceAccount)
	}
	kube, err := kubernetes.NewForConfig(kubeConfig)
	if err != nil {
		return fmt.Errorf("router tokens: kube client: %w", err)
	}
	server.Proxy.SetRouterToken(inferserver.NewServiceAccountToken(kube, ns, name).Token)
	return nil
}

// Run serves until ctx is done or the embedded etcd fails, then shuts down
// cleanly: the API server first, then the embedded etcd.
func (o *Options) Run(ctx context.Context) error {
	server, etcdErr, stop, err := o.NewServer()
	defer stop()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case err := <-etcdErr:
			klog.ErrorS(err, "Embedded etcd failed; shutting down")
			cancel()
		case <-ctx.Done():
		}
	}()
	return server.Run(ctx)
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

// Package manager runs mindie's workload controllers (InferServers and
// EdgeDeployments): their clients, informers, event recorder and leader
// election. mindie-apiserver runs it in-process on its loopback client;
// mindie-controller runs it as a process of its own that reaches the
// InferServers through kube-apiserver, as every other client does.
package manager

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/uuid"
	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/controller/cachetrim"
	"mindie.io/deployer/pkg/controller/edgedeployment"
	"mindie.io/deployer/pkg/controller/inferserver"
	"mindie.io/deployer/pkg/generated/clientset/versioned"
	informers "mindie.io/deployer/pkg/generated/informers/externalversions"
	inferinformers "mindie.io/deployer/pkg/generated/informers/externalversions/infer/v1alpha1"
)

// informerResync is the resync period of the controllers' informers.
const informerResync = 10 * time.Minute

// EventComponent is the source component of the controllers' Events.
const EventComponent = "mindie-controller"

// Config configures the workload controllers, wherever they run.
type Config struct {
	// Workers is how many InferServers are reconciled at once.
	Workers int
	// KubeAPIQPS and KubeAPIBurst bound the controllers' requests to the
	// cluster's API server (reads of informers, writes of children);
	// Events go through a client of their own with the same bounds, so
	// that they never hold a reconcile back.
	KubeAPIQPS   float32
	KubeAPIBurst int
	// LeaderElect makes replicas take turns through a Lease, so only one
	// acts at a time.
	LeaderElect bool
	// LeaseNamespace and LeaseName name the Lease.
	LeaseNamespace, LeaseName string
	// LeaseDuration, RenewDeadline and RetryPeriod tune the election.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// Identity of this replica in the Lease and in Events; empty means
	// hostname_uuid.
	Identity string
	// ModelInfoInterval is how often a server's GET /info is read.
	ModelInfoInterval time.Duration
	// FillRanktables makes the controller complete cross-node ranktables.
	FillRanktables bool
}

// DefaultConfig is the controllers' configuration when no flag says
// otherwise.
func DefaultConfig() Config {
	return Config{
		// Sized by the reconcile benchmark (docs/reconcile-bench.md): a
		// first sync makes three writes to kube-apiserver; with 5 workers
		// and 100 QPS, 1,000 new servers waited on the rate limit (34.7 s,
		// 2.9x writing their children directly), with 16 workers and 400
		// QPS they took 21.0 s (1.8x) on two cores. kube-apiserver's
		// priority and fairness still guard it.
		Workers:        16,
		KubeAPIQPS:     400,
		KubeAPIBurst:   800,
		LeaderElect:    true,
		LeaseNamespace: "mindie-system",
		LeaseName:      "mindie-controller",
		// A replica killed while leading is replaced within LeaseDuration
		// plus two RetryPeriods (the candidates poll every RetryPeriod
		// with up to 1.2x jitter): about 12 s.
		LeaseDuration:     10 * time.Second,
		RenewDeadline:     7 * time.Second,
		RetryPeriod:       time.Second,
		ModelInfoInterval: 30 * time.Second,
		FillRanktables:    true,
	}
}

// AddFlags adds the controllers' flags, the same in every binary that runs
// them.
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	fs.IntVar(&c.Workers, "controller-workers", c.Workers, "InferServers reconciled at once.")
	fs.Float32Var(&c.KubeAPIQPS, "kube-api-qps", c.KubeAPIQPS, "Requests per second the controllers send to the cluster's API server at most (Events have a budget of their own, the same).")
	fs.IntVar(&c.KubeAPIBurst, "kube-api-burst", c.KubeAPIBurst, "Requests the controllers may send at once above --kube-api-qps.")
	fs.BoolVar(&c.LeaderElect, "leader-elect", c.LeaderElect, "Take turns with other replicas through a Lease so that only one runs the controllers.")
	fs.StringVar(&c.LeaseNamespace, "leader-elect-resource-namespace", c.LeaseNamespace, "Namespace of the leader-election Lease.")
	fs.StringVar(&c.LeaseName, "leader-elect-resource-name", c.LeaseName, "Name of the leader-election Lease.")
	fs.DurationVar(&c.LeaseDuration, "leader-elect-lease-duration", c.LeaseDuration, "How long a replica that stopped renewing keeps the lease before another takes over.")
	fs.DurationVar(&c.RenewDeadline, "leader-elect-renew-deadline", c.RenewDeadline, "How long the leader retries renewing before it gives up leading.")
	fs.DurationVar(&c.RetryPeriod, "leader-elect-retry-period", c.RetryPeriod, "How often replicas try to acquire or renew the lease.")
	fs.StringVar(&c.Identity, "leader-elect-identity", c.Identity, "This replica's name in the Lease and in Events; empty means <hostname>_<uuid>.")
	fs.DurationVar(&c.ModelInfoInterval, "model-info-interval", c.ModelInfoInterval, "How often each InferServer's GET /info is read for status.model.")
	fs.BoolVar(&c.FillRanktables, "fill-ranktables", c.FillRanktables, "Complete cross-node instances' HCCL ranktables from the pods' NPU annotations. Turn off where the Ascend Operator writes them.")
}

// Validate checks the configuration; each error names the flag and the
// value.
func (c *Config) Validate() []error {
	var errs []error
	if c.Workers < 1 {
		errs = append(errs, fmt.Errorf("--controller-workers: %d: must be at least 1", c.Workers))
	}
	if !(c.KubeAPIQPS > 0) {
		errs = append(errs, fmt.Errorf("--kube-api-qps: %g: must be positive", c.KubeAPIQPS))
	}
	if c.KubeAPIBurst < 1 {
		errs = append(errs, fmt.Errorf("--kube-api-burst: %d: must be at least 1", c.KubeAPIBurst))
	}
	if c.LeaderElect && !(c.RetryPeriod > 0 && c.RenewDeadline > c.RetryPeriod && c.LeaseDuration > c.RenewDeadline) {
		errs = append(errs, fmt.Errorf("--leader-elect-*: lease duration %s, renew deadline %s, retry period %s: must satisfy lease duration > renew deadline > retry period > 0",
			c.LeaseDuration, c.RenewDeadline, c.RetryPeriod))
	}
	if c.ModelInfoInterval < time.Second {
		errs = append(errs, fmt.Errorf("--model-info-interval: %s: must be at least 1s", c.ModelInfoInterval))
	}
	return errs
}

// Manager holds the controllers' clients and shared informers until it runs
// them.
type Manager struct {
	cfg         Config
	kube        kubernetes.Interface
	eventClient kubernetes.Interface
	infer       versioned.Interface
	informers   informers.SharedInformerFactory
	servers     inferinformers.InferServerInformer
	// LeaderHealth, when leader election is on, reports a leader that
	// stopped renewing its Lease (a /healthz check).
	LeaderHealth *leaderelection.HealthzAdaptor
}

// New builds the controllers' clients of the cluster of kubeConfig (rate
// limited by cfg) and the InferServer informer on infer. An empty
// cfg.Identity becomes hostname_uuid.
func New(cfg Config, kubeConfig *restclient.Config, infer versioned.Interface) (*Manager, error) {
	if kubeConfig == nil {
		return nil, fmt.Errorf("controllers need a kubeconfig of the cluster that runs the workloads (--kubeconfig or in-cluster)")
	}
	if cfg.Identity == "" {
		host, _ := os.Hostname()
		cfg.Identity = host + "_" + string(uuid.NewUUID())
	}
	kubeCfg := restclient.CopyConfig(kubeConfig)
	kubeCfg.QPS, kubeCfg.Burst = cfg.KubeAPIQPS, cfg.KubeAPIBurst
	// The cluster's objects travel as protobuf, cheaper than JSON to
	// encode in kube-apiserver and to decode here (decoding JSON, the
	// watches' and the answers', was an eighth of mindie-apiserver's CPU
	// while 1,000 new InferServers were reconciled); applies still send
	// their patches as apply YAML.
	kubeCfg.ContentType = runtime.ContentTypeProtobuf
	kubeCfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	kube, err := kubernetes.NewForConfig(kubeCfg)
	if err != nil {
		return nil, fmt.Errorf("controllers: kube client: %w", err)
	}
	// A clientset of its own: its own rate limiter.
	eventClient, err := kubernetes.NewForConfig(kubeCfg)
	if err != nil {
		return nil, fmt.Errorf("controllers: event client: %w", err)
	}
	// The controllers never apply InferServers or EdgeDeployments: they are
	// cached without their managedFields.
	f := informers.NewSharedInformerFactoryWithOptions(infer, informerResync, informers.WithTransform(cachetrim.ManagedFields))
	m := &Manager{cfg: cfg, kube: kube, eventClient: eventClient, infer: infer, informers: f,
		servers: f.Infer().V1alpha1().InferServers()}
	if cfg.LeaderElect {
		// A leader whose renewals have failed for this long past its
		// Lease's expiry is stuck: /healthz fails and it is restarted.
		m.LeaderHealth = leaderelection.NewLeaderHealthzAdaptor(20 * time.Second)
	}
	// Registered now, so that StartInformers starts it.
	m.servers.Informer()
	return m, nil
}

// Identity is the replica's name in the Lease and in Events.
func (m *Manager) Identity() string { return m.cfg.Identity }

// ServersSynced reports whether the InferServer informer has listed: a
// readiness check.
func (m *Manager) ServersSynced() bool { return m.servers.Informer().HasSynced() }

// StartInformers starts the InferServer informer (whether or not this
// replica leads: it decides readiness), until stop is closed.
func (m *Manager) StartInformers(stop <-chan struct{}) { m.informers.Start(stop) }

// Run records Events and runs the controllers until ctx is done: at once,
// or while this replica holds the Lease when leader election is on (a
// replica that loses it stops its controllers and stands again).
func (m *Manager) Run(ctx context.Context) error {
	cfg := m.cfg
	eventScheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(eventScheme))
	utilruntime.Must(v1alpha1.AddToScheme(eventScheme))
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	defer broadcaster.Shutdown()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: m.eventClient.CoreV1().Events("")})
	recorder := broadcaster.NewRecorder(eventScheme, corev1.EventSource{Component: EventComponent, Host: cfg.Identity})
	if !cfg.LeaderElect {
		m.runControllers(ctx, recorder)
		return nil
	}
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, cfg.LeaseNamespace, cfg.LeaseName,
		m.kube.CoreV1(), m.kube.CoordinationV1(), resourcelock.ResourceLockConfig{Identity: cfg.Identity, EventRecorder: recorder})
	if err != nil {
		return fmt.Errorf("controllers: leader election lock: %w", err)
	}
	for ctx.Err() == nil {
		leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   cfg.LeaseDuration,
			RenewDeadline:   cfg.RenewDeadline,
			RetryPeriod:     cfg.RetryPeriod,
			ReleaseOnCancel: true,
			Name:            cfg.LeaseName,
			WatchDog:        m.LeaderHealth,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(leaderCtx context.Context) {
					klog.InfoS("Leading: running controllers", "identity", cfg.Identity, "lease", cfg.LeaseNamespace+"/"+cfg.LeaseName)
					m.runControllers(leaderCtx, recorder)
				},
				OnStoppedLeading: func() {
					klog.InfoS("Not leading: controllers stopped", "identity", cfg.Identity)
				},
				OnNewLeader: func(id string) {
					if id != cfg.Identity {
						klog.InfoS("Another replica leads the controllers", "leader", id)
					}
				},
			},
		})
	}
	return nil
}

// runControllers builds the controllers and their informers of the
// cluster, runs them until ctx is done, and shuts the informers down.
func (m *Manager) runControllers(ctx context.Context, recorder record.EventRecorder) {
	cfg, kube := m.cfg, m.kube
	written := cachetrim.NewWritten()
	kubeInformers := inferserver.NewKubeInformers(kube, informerResync, written)
	routerInformers := inferserver.NewRouterInformers(kube, informerResync)
	faultInformers := inferserver.NewFaultInformers(kube, informerResync)
	leaseInformers := inferserver.NewNodeLeaseInformers(kube, informerResync)
	namespaceInformers := kubeinformers.NewSharedInformerFactoryWithOptions(kube, informerResync, kubeinformers.WithTransform(cachetrim.ManagedFields))
	c, err := inferserver.New(inferserver.Config{
		Kube:              kube,
		Infer:             m.infer,
		Servers:           m.servers,
		KubeInformers:     kubeInformers,
		Written:           written,
		RouterInformers:   routerInformers,
		FaultInformers:    faultInformers,
		LeaseInformers:    leaseInformers,
		Namespaces:        namespaceInformers.Core().V1().Namespaces(),
		Recorder:          recorder,
		ModelInfoInterval: cfg.ModelInfoInterval,
		FillRanktables:    cfg.FillRanktables,
	})
	if err != nil {
		klog.ErrorS(err, "Cannot build the InferServer controller")
		return
	}
	edgePods, edgeNodes := edgedeployment.NewKubeInformers(kube, informerResync)
	edge, err := edgedeployment.New(edgedeployment.Config{
		Kube:     kube,
		Infer:    m.infer,
		Jobs:     m.informers.Infer().V1alpha1().EdgeDeployments(),
		Pods:     edgePods,
		Nodes:    edgeNodes,
		Recorder: recorder,
	})
	if err != nil {
		klog.ErrorS(err, "Cannot build the EdgeDeployment controller")
		return
	}
	kubeInformers.Start(ctx.Done())
	routerInformers.Start(ctx.Done())
	faultInformers.Start(ctx.Done())
	leaseInformers.Start(ctx.Done())
	namespaceInformers.Start(ctx.Done())
	edgePods.Start(ctx.Done())
	edgeNodes.Start(ctx.Done())
	m.informers.Start(ctx.Done())
	edgeDone := make(chan struct{})
	go func() {
		defer close(edgeDone)
		if err := edge.Run(ctx, cfg.Workers); err != nil {
			klog.ErrorS(err, "EdgeDeployment controller stopped")
		}
	}()
	if err := c.Run(ctx, cfg.Workers); err != nil {
		klog.ErrorS(err, "InferServer controller stopped")
	}
	<-edgeDone
	edgePods.Shutdown()
	edgeNodes.Shutdown()
	kubeInformers.Shutdown()
	routerInformers.Shutdown()
	faultInformers.Shutdown()
	leaseInformers.Shutdown()
	namespaceInformers.Shutdown()
}

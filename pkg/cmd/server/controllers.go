package server

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/uuid"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/server/healthz"
	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/apiserver"
	"mindie.io/deployer/pkg/controller/cachetrim"
	"mindie.io/deployer/pkg/controller/edgedeployment"
	"mindie.io/deployer/pkg/controller/inferserver"
	informers "mindie.io/deployer/pkg/generated/informers/externalversions"
)

// informerResync is the resync period of the controllers' informers.
const informerResync = 10 * time.Minute

// ControllerConfig configures the workload controllers mindie-apiserver runs.
type ControllerConfig struct {
	// Enabled runs the controllers. They need KubeConfig.
	Enabled bool
	// KubeConfig reaches the cluster that runs the workloads.
	KubeConfig *restclient.Config
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

// startControllers adds the workload controllers to server: an informer of
// InferServers (on the server's loopback client) with its readiness check,
// and a post-start hook that runs the controllers, under leader election
// when asked. It returns the replica's identity; it does nothing when the
// controllers are not enabled.
func startControllers(server *apiserver.Server, cfg ControllerConfig) (string, error) {
	if !cfg.Enabled {
		return "", nil
	}
	if cfg.KubeConfig == nil {
		return "", fmt.Errorf("controllers need a kubeconfig of the cluster that runs the workloads (--kubeconfig or in-cluster)")
	}
	if cfg.Identity == "" {
		host, _ := os.Hostname()
		cfg.Identity = host + "_" + string(uuid.NewUUID())
	}
	kubeCfg := restclient.CopyConfig(cfg.KubeConfig)
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
		return "", fmt.Errorf("controllers: kube client: %w", err)
	}
	// A clientset of its own: its own rate limiter.
	eventClient, err := kubernetes.NewForConfig(kubeCfg)
	if err != nil {
		return "", fmt.Errorf("controllers: event client: %w", err)
	}
	// The controllers never apply InferServers or EdgeDeployments: they are
	// cached without their managedFields.
	inferInformers := informers.NewSharedInformerFactoryWithOptions(server.Client, informerResync, informers.WithTransform(cachetrim.ManagedFields))
	servers := inferInformers.Infer().V1alpha1().InferServers()
	// Not ready before the controllers' cache has listed every InferServer;
	// a readiness check only: a server whose cache is behind is taken out
	// of rotation, not restarted.
	if err := server.GenericAPIServer.AddReadyzChecks(informerSynced("inferserver-informer-synced", servers.Informer().HasSynced)); err != nil {
		return "", err
	}
	server.GenericAPIServer.AddPostStartHookOrDie("start-mindie-informers", func(ctx genericapiserver.PostStartHookContext) error {
		inferInformers.Start(ctx.Done())
		return nil
	})

	eventScheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(eventScheme))
	utilruntime.Must(v1alpha1.AddToScheme(eventScheme))

	server.GenericAPIServer.AddPostStartHookOrDie("start-mindie-controllers", func(hookCtx genericapiserver.PostStartHookContext) error {
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			<-hookCtx.Done()
			cancel()
		}()
		broadcaster := record.NewBroadcaster(record.WithContext(ctx))
		broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: eventClient.CoreV1().Events("")})
		recorder := broadcaster.NewRecorder(eventScheme, corev1.EventSource{Component: "mindie-controller", Host: cfg.Identity})
		run := func(ctx context.Context) {
			kubeInformers := inferserver.NewKubeInformers(kube, 10*time.Minute)
			routerInformers := inferserver.NewRouterInformers(kube, 10*time.Minute)
			faultInformers := inferserver.NewFaultInformers(kube, 10*time.Minute)
			leaseInformers := inferserver.NewNodeLeaseInformers(kube, 10*time.Minute)
			namespaceInformers := kubeinformers.NewSharedInformerFactoryWithOptions(kube, 10*time.Minute, kubeinformers.WithTransform(cachetrim.ManagedFields))
			c, err := inferserver.New(inferserver.Config{
				Kube:              kube,
				Infer:             server.Client,
				Servers:           servers,
				KubeInformers:     kubeInformers,
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
			edgePods, edgeNodes := edgedeployment.NewKubeInformers(kube, 10*time.Minute)
			edge, err := edgedeployment.New(edgedeployment.Config{
				Kube:     kube,
				Infer:    server.Client,
				Jobs:     inferInformers.Infer().V1alpha1().EdgeDeployments(),
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
			inferInformers.Start(ctx.Done())
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
		if !cfg.LeaderElect {
			go func() {
				defer broadcaster.Shutdown()
				run(ctx)
			}()
			return nil
		}
		lock, err := resourcelock.New(resourcelock.LeasesResourceLock, cfg.LeaseNamespace, cfg.LeaseName,
			kube.CoreV1(), kube.CoordinationV1(), resourcelock.ResourceLockConfig{Identity: cfg.Identity, EventRecorder: recorder})
		if err != nil {
			cancel()
			return fmt.Errorf("controllers: leader election lock: %w", err)
		}
		go func() {
			defer broadcaster.Shutdown()
			// A replica that loses the lease stops its controllers and
			// stands for election again, until the server shuts down.
			for ctx.Err() == nil {
				leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
					Lock:            lock,
					LeaseDuration:   cfg.LeaseDuration,
					RenewDeadline:   cfg.RenewDeadline,
					RetryPeriod:     cfg.RetryPeriod,
					ReleaseOnCancel: true,
					Name:            cfg.LeaseName,
					Callbacks: leaderelection.LeaderCallbacks{
						OnStartedLeading: func(leaderCtx context.Context) {
							klog.InfoS("Leading: running controllers", "identity", cfg.Identity, "lease", cfg.LeaseNamespace+"/"+cfg.LeaseName)
							run(leaderCtx)
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
		}()
		return nil
	})
	return cfg.Identity, nil
}

// informerSynced is a readiness check that passes once an informer has listed.
func informerSynced(name string, synced cache.InformerSynced) healthz.HealthChecker {
	return healthz.NamedCheck(name, func(*http.Request) error {
		if !synced() {
			return fmt.Errorf("informer has not synced yet")
		}
		return nil
	})
}

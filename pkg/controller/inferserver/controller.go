// Package inferserver is the workload controller of InferServers. It turns
// each InferServer into the Kubernetes objects that run it and reports
// what it observes in the InferServer's status:
//
//   - a single-node InferServer (nodesPerInstance 1) becomes a Deployment
//     with one pod per instance, which rolls out within the spec's maxSurge
//     and maxUnavailable;
//   - a cross-node InferServer (2 or 4 nodes per instance) becomes, per
//     instance, one pod per node (pods of an instance on distinct nodes) and
//     a ranktable ConfigMap in the Ascend Operator's hccl.json format, filled
//     by the controller from the pods' NPU annotations; the controller rolls
//     these out instance by instance and recreates a whole instance when one
//     of its pods fails;
//   - both get a Service in front of the serving pods, a ConfigMap for an
//     inline config.json, and ControllerRevisions recording every template
//     rolled out, so a rollout can be listed and undone.
//
// Children are owned by the InferServer (ownerReferences) and also removed
// by the controller behind a finalizer, so deletion does not depend on the
// garbage collector reaching this aggregated API. Children are written with
// server-side apply; a hand edit to a field the controller owns is reverted.
package inferserver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	kubeinformers "k8s.io/client-go/informers"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	coordlisters "k8s.io/client-go/listers/coordination/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	rbaclisters "k8s.io/client-go/listers/rbac/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/controller/cachetrim"
	"mindie.io/deployer/pkg/controller/worker"
	clientset "mindie.io/deployer/pkg/generated/clientset/versioned"
	inferinformers "mindie.io/deployer/pkg/generated/informers/externalversions/infer/v1alpha1"
	inferlisters "mindie.io/deployer/pkg/generated/listers/infer/v1alpha1"
)

// FieldManager is the field manager of everything the controller applies.
const FieldManager = "mindie-controller"

// Event reasons.
const (
	ReasonRevisionCreated    = "RevisionCreated"
	ReasonRolloutStarted     = "RolloutStarted"
	ReasonRolloutComplete    = "RolloutComplete"
	ReasonInstanceCreated    = "InstanceCreated"
	ReasonInstanceDeleted    = "InstanceDeleted"
	ReasonInstanceFailed     = "InstanceFailed"
	ReasonRanktableCompleted = "RanktableCompleted"
	ReasonScaled             = "Scaled"
	ReasonReverted           = "Reverted"
	ReasonFailedCreate       = "FailedCreate"
	ReasonFailedUpdate       = "FailedUpdate"
	ReasonFailedDelete       = "FailedDelete"
	ReasonCleanup            = "DeletingChildren"
	ReasonInvalidSpec        = "InvalidSpec"
	ReasonRouterCreated      = "RouterCreated"
	ReasonRouterDeleted      = "RouterDeleted"
)

// Config is what the controller needs.
type Config struct {
	// Kube talks to the cluster that runs the workloads.
	Kube kubernetes.Interface
	// Infer talks to the infer.mindie.io API.
	Infer clientset.Interface
	// Servers is the InferServer informer.
	Servers inferinformers.InferServerInformer
	// KubeInformers watch the children; NewKubeInformers makes a factory
	// restricted to objects labelled with v1alpha1.LabelServer.
	KubeInformers kubeinformers.SharedInformerFactory
	// Written is the record of the KubeInformers' transform that
	// NewKubeInformers was given: the controller records there what it
	// applies, so that its informers need not extract it again from the
	// events of its own writes. Nil: they extract every object.
	Written *cachetrim.Written
	// RouterInformers watch the router pods; NewRouterInformers makes a
	// factory restricted to them (labelled v1alpha1.LabelRouter). Nil: the
	// router pods are not reported in status.
	RouterInformers kubeinformers.SharedInformerFactory
	// FaultInformers (NewFaultInformers) watch the nodes and the device
	// plugin's ConfigMaps; without them the controller sees no fault.
	FaultInformers kubeinformers.SharedInformerFactory
	// LeaseInformers (NewNodeLeaseInformers) watch the nodes' heartbeats:
	// a node whose kubelet stops renewing its Lease is lost sooner than
	// its Ready condition says (the node lifecycle controller waits its
	// grace period first).
	LeaseInformers kubeinformers.SharedInformerFactory
	// Namespaces watches the namespaces: an InferServer deleted with its
	// namespace leaves its children to the namespace controller. Nil: its
	// children are always deleted one by one.
	Namespaces coreinformers.NamespaceInformer
	// Recorder records Events on InferServers.
	Recorder record.EventRecorder
	// ModelInfoInterval is how often each server's GET /info is read; 0 means 30s.
	ModelInfoInterval time.Duration
	// ModelInfoTimeout bounds one read; 0 means 5s.
	ModelInfoTimeout time.Duration
	// RoleInterval is how often the roles of Prefill/Decode members are
	// checked (GET /v1/status) until and after they are linked; 0 means 2s.
	// A role POST or read is bounded by ModelInfoTimeout.
	RoleInterval time.Duration
	// FillRanktables makes the controller write cross-node ranktables from
	// the pods' NPU annotations. Turn it off where an Ascend Operator does.
	FillRanktables bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// NewKubeInformers returns an informer factory that sees only the objects
// the controller makes (those labelled v1alpha1.LabelServer), cached
// without what the controller never reads, so that its memory grows less
// with the number of servers:
//
//   - the children it applies (Deployments, Services, ConfigMaps) through
//     cachetrim.Applied: what it owns in them as a digest, which applyChild
//     compares with what it would apply; a Deployment also without its pod
//     template (the controller reads the pods instead);
//   - pods without managedFields and without what is only the kubelet's
//     business (trimPod);
//   - ControllerRevisions without managedFields (it creates them and never
//     applies them).
//
// written (nil: none) is where the controller records what it applies
// (Config.Written): the children's transforms take the digests of the
// controller's own writes from there.
func NewKubeInformers(kube kubernetes.Interface, resync time.Duration, written *cachetrim.Written) kubeinformers.SharedInformerFactory {
	var deployments cache.Store
	f := kubeinformers.NewSharedInformerFactoryWithOptions(kube, resync,
		kubeinformers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = v1alpha1.LabelServer }),
		kubeinformers.WithTransform(kubeCacheTransform(func(namespace, name string) (metav1.Object, bool) {
			o, ok, _ := deployments.GetByKey(namespace + "/" + name)
			if !ok {
				return nil, false
			}
			m, ok := o.(metav1.Object)
			return m, ok
		}, written)))
	// Set before the informers start, and so before the transform runs.
	deployments = f.Apps().V1().Deployments().Informer().GetStore()
	return f
}

// kubeCacheTransform is NewKubeInformers' transform; deployments looks up
// a cached Deployment, whose digest a status write keeps (nil: none), and
// written holds the digests of the controller's own writes (nil: none).
func kubeCacheTransform(deployments cachetrim.Prior, written *cachetrim.Written) cache.TransformFunc {
	cachedDeployment := cachetrim.Applied(FieldManager, appsv1ac.ExtractDeployment, func(d *appsv1.Deployment) {
		d.Spec.Template = corev1.PodTemplateSpec{}
	}, deployments, written)
	cachedService := cachetrim.Applied(FieldManager, corev1ac.ExtractService, nil, nil, written)
	cachedConfigMap := cachetrim.Applied(FieldManager, corev1ac.ExtractConfigMap, nil, nil, written)
	return func(obj any) (any, error) {
		switch o := obj.(type) {
		case *appsv1.Deployment:
			return cachedDeployment(o)
		case *corev1.Service:
			return cachedService(o)
		case *corev1.ConfigMap:
			return cachedConfigMap(o)
		case *corev1.Pod:
			trimPod(o)
			return cachetrim.ManagedFields(o)
		case *appsv1.ControllerRevision:
			return cachetrim.ManagedFields(o)
		}
		return obj, nil
	}
}

// trimPod drops from a cached pod what the kubelet needs to run it and the
// controller never reads: volumes and, of every container, its command,
// environment, mounts, probes and lifecycle hooks. Names, ports,
// resources, the node, labels, annotations, owners and status stay.
func trimPod(p *corev1.Pod) {
	p.Spec.Volumes = nil
	for _, cs := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for i := range cs {
			c := &cs[i]
			c.Command, c.Args, c.Env, c.EnvFrom = nil, nil, nil, nil
			c.VolumeMounts, c.VolumeDevices = nil, nil
			c.LivenessProbe, c.ReadinessProbe, c.StartupProbe, c.Lifecycle = nil, nil, nil, nil
		}
	}
}

// NewRouterInformers returns an informer factory that sees only router
// pods (those labelled v1alpha1.LabelRouter), which do not carry
// v1alpha1.LabelServer.
func NewRouterInformers(kube kubernetes.Interface, resync time.Duration) kubeinformers.SharedInformerFactory {
	return kubeinformers.NewSharedInformerFactoryWithOptions(kube, resync,
		kubeinformers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = v1alpha1.LabelRouter }),
		kubeinformers.WithTransform(cachetrim.ManagedFields))
}

// Controller reconciles InferServers.
type Controller struct {
	kube     kubernetes.Interface
	infer    clientset.Interface
	recorder record.EventRecorder
	now      func() time.Time
	fill     bool
	// written: see Config.Written.
	written *cachetrim.Written

	servers     inferlisters.InferServerLister
	deployments appslisters.DeploymentLister
	pods        corelisters.PodLister
	services    corelisters.ServiceLister
	configMaps  corelisters.ConfigMapLister
	revisions   appslisters.ControllerRevisionLister
	// The router's objects (spec.router).
	serviceAccounts     corelisters.ServiceAccountLister
	roles               rbaclisters.RoleLister
	roleBindings        rbaclisters.RoleBindingLister
	clusterRoleBindings rbaclisters.ClusterRoleBindingLister
	// What faults are read from (nil without FaultInformers): the nodes,
	// the device plugin's ConfigMaps, and the pods by node.
	nodes      corelisters.NodeLister
	nodeLeases coordlisters.LeaseLister    // nil without LeaseInformers
	namespaces corelisters.NamespaceLister // nil without Config.Namespaces
	deviceInfo corelisters.ConfigMapLister
	podIndex   cache.Indexer
	synced     []cache.InformerSynced
	// The children by server (byServer), which syncs read instead of
	// listing their namespace.
	children childrenIndexes

	queue   workqueue.TypedRateLimitingInterface[string]
	info    *modelInfoPoller
	pdRoles *roleAssigner
	track   *tracker

	// serverInformer is shared with the API server and outlives the
	// controller: Run removes the handler it registered there.
	serverInformer     cache.SharedIndexInformer
	serverRegistration cache.ResourceEventHandlerRegistration
}

// New builds a controller and registers its event handlers. Start the
// informers, then call Run.
func New(cfg Config) (*Controller, error) {
	if cfg.Kube == nil || cfg.Infer == nil || cfg.Servers == nil || cfg.KubeInformers == nil || cfg.Recorder == nil {
		return nil, fmt.Errorf("inferserver controller: Kube, Infer, Servers, KubeInformers and Recorder are required")
	}
	if cfg.ModelInfoInterval <= 0 {
		cfg.ModelInfoInterval = 30 * time.Second
	}
	if cfg.ModelInfoTimeout <= 0 {
		cfg.ModelInfoTimeout = 5 * time.Second
	}
	if cfg.RoleInterval <= 0 {
		cfg.RoleInterval = 2 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Controller{
		kube:     cfg.Kube,
		infer:    cfg.Infer,
		recorder: cfg.Recorder,
		now:      cfg.Now,
		fill:     cfg.FillRanktables,
		written:  cfg.Written,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "inferserver"}),
		track: newTracker(),
	}
	c.info = newModelInfoPoller(cfg.ModelInfoTimeout, cfg.ModelInfoInterval, c.queue.Add)
	c.pdRoles = newRoleAssigner(cfg.ModelInfoTimeout, cfg.RoleInterval, c.queue.Add)

	si := cfg.Servers.Informer()
	c.servers = cfg.Servers.Lister()
	c.serverInformer = si
	var err error
	if c.serverRegistration, err = si.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueueServer,
		UpdateFunc: func(_, n any) { c.enqueueServer(n) },
		DeleteFunc: c.enqueueServer,
	}); err != nil {
		return nil, err
	}
	children := cache.ResourceEventHandlerFuncs{
		AddFunc: c.enqueueOwner,
		UpdateFunc: func(o, n any) {
			if o.(metav1.Object).GetResourceVersion() != n.(metav1.Object).GetResourceVersion() {
				c.enqueueOwner(n)
			}
		},
		DeleteFunc: c.enqueueOwner,
	}
	f := cfg.KubeInformers
	informers := []cache.SharedIndexInformer{
		f.Apps().V1().Deployments().Informer(),
		f.Core().V1().Pods().Informer(),
		f.Core().V1().Services().Informer(),
		f.Core().V1().ConfigMaps().Informer(),
		f.Apps().V1().ControllerRevisions().Informer(),
		f.Core().V1().ServiceAccounts().Informer(),
		f.Rbac().V1().Roles().Informer(),
		f.Rbac().V1().RoleBindings().Informer(),
		f.Rbac().V1().ClusterRoleBindings().Informer(),
	}
	for _, inf := range informers {
		if _, err := inf.AddEventHandler(children); err != nil {
			return nil, err
		}
		c.synced = append(c.synced, inf.HasSynced)
	}
	for _, ix := range []struct {
		to  *cache.Indexer
		inf cache.SharedIndexInformer
	}{
		{&c.children.deployments, f.Apps().V1().Deployments().Informer()},
		{&c.children.pods, f.Core().V1().Pods().Informer()},
		{&c.children.services, f.Core().V1().Services().Informer()},
		{&c.children.configMaps, f.Core().V1().ConfigMaps().Informer()},
		{&c.children.revisions, f.Apps().V1().ControllerRevisions().Informer()},
	} {
		if *ix.to, err = indexByServer(ix.inf, v1alpha1.LabelServer); err != nil {
			return nil, err
		}
	}
	if cfg.RouterInformers != nil {
		inf := cfg.RouterInformers.Core().V1().Pods().Informer()
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    c.enqueueRouted,
			UpdateFunc: func(_, n any) { c.enqueueRouted(n) },
			DeleteFunc: c.enqueueRouted,
		}); err != nil {
			return nil, err
		}
		c.synced = append(c.synced, inf.HasSynced)
		if c.children.routerPods, err = indexByServer(inf, v1alpha1.LabelRouter); err != nil {
			return nil, err
		}
	}
	if cfg.FaultInformers != nil {
		if err := c.watchFaults(cfg.FaultInformers, cfg.LeaseInformers, f.Core().V1().Pods().Informer()); err != nil {
			return nil, err
		}
	}
	if cfg.Namespaces != nil {
		c.namespaces = cfg.Namespaces.Lister()
		c.synced = append(c.synced, cfg.Namespaces.Informer().HasSynced)
	}
	c.synced = append(c.synced, si.HasSynced)
	c.deployments = f.Apps().V1().Deployments().Lister()
	c.pods = f.Core().V1().Pods().Lister()
	c.services = f.Core().V1().Services().Lister()
	c.configMaps = f.Core().V1().ConfigMaps().Lister()
	c.revisions = f.Apps().V1().ControllerRevisions().Lister()
	c.serviceAccounts = f.Core().V1().ServiceAccounts().Lister()
	c.roles = f.Rbac().V1().Roles().Lister()
	c.roleBindings = f.Rbac().V1().RoleBindings().Lister()
	c.clusterRoleBindings = f.Rbac().V1().ClusterRoleBindings().Lister()
	return c, nil
}

func (c *Controller) enqueueServer(obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		utilruntime.HandleError(err)
		return
	}
	c.queue.Add(key)
}

// enqueueOwner queues the InferServer a child belongs to, by its label.
func (c *Controller) enqueueOwner(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	m, ok := obj.(metav1.Object)
	if !ok {
		return
	}
	ns := m.GetNamespace()
	if ns == "" {
		// A cluster-scoped child names its server's namespace in a label.
		ns = m.GetLabels()[v1alpha1.LabelNamespace]
	}
	if name := m.GetLabels()[v1alpha1.LabelServer]; name != "" && ns != "" {
		c.queue.Add(ns + "/" + name)
	}
}

// enqueueRouted queues the InferServer of a router pod.
func (c *Controller) enqueueRouted(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if m, ok := obj.(metav1.Object); ok && m.GetLabels()[v1alpha1.LabelRouter] != "" {
		c.queue.Add(m.GetNamespace() + "/" + m.GetLabels()[v1alpha1.LabelRouter])
	}
}

// Run works until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) error {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()
	defer func() { _ = c.serverInformer.RemoveEventHandler(c.serverRegistration) }()
	logger := klog.FromContext(ctx)
	logger.Info("Starting InferServer controller")
	defer logger.Info("Stopped InferServer controller")
	if !cache.WaitForNamedCacheSync("inferserver", ctx.Done(), c.synced...) {
		return fmt.Errorf("inferserver controller: caches did not sync")
	}
	go c.info.run(ctx, 4)
	go c.pdRoles.run(ctx, 4)
	worker.Run(ctx, c.queue, workers, "InferServer", c.sync)
	<-ctx.Done()
	return nil
}

// sync reconciles one InferServer. It returns how soon to look again when
// something is expected to change without an event (0: on events only).
func (c *Controller) sync(ctx context.Context, key string) (time.Duration, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, nil
	}
	cached, err := c.servers.InferServers(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.info.want(key, nil)
		c.pdRoles.want(key, nil)
		c.track.forget(key)
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	s := cached.DeepCopy()
	if s.DeletionTimestamp != nil {
		return c.finalize(ctx, s)
	}
	// In a namespace being deleted nothing new may be created, and the
	// namespace controller deletes the children and then the server: a
	// sync would only try to put back what it just deleted, fail and retry
	// (thousands of failed writes while a namespace of 1,000 servers goes).
	if c.namespaceTerminating(ns) {
		return 0, nil
	}
	if !hasFinalizer(s) {
		s.Finalizers = append(s.Finalizers, v1alpha1.FinalizerCleanup)
		updated, err := c.infer.InferV1alpha1().InferServers(ns).Update(ctx, s, metav1.UpdateOptions{FieldManager: FieldManager})
		if err != nil {
			return 0, fmt.Errorf("add finalizer: %w", err)
		}
		s = updated
	}

	st := &syncState{server: s, key: key, faults: append([]v1alpha1.FaultRecord(nil), s.Status.Faults...), openFaults: map[string]bool{}}
	if err := c.syncRevisions(ctx, st); err != nil {
		return 0, err
	}
	// The Service and the inline configuration depend on nothing the
	// instances' writes do, nor they on them: they are written at the same
	// time, so a sync waits for the longest write, not for their sum.
	var side sync.WaitGroup
	var configErr, serviceErr error
	if s.Spec.ServerConfig.Inline != "" {
		side.Go(func() {
			_, _, configErr = applyChild(ctx, c, s, c.configMapChild(ns), inlineConfigName(s.Name), inlineConfig(s))
		})
	}
	side.Go(func() {
		_, _, serviceErr = applyChild(ctx, c, s, c.serviceChild(ns), s.Name, service(s))
	})
	var errs []error
	if crossNode(s) || isPD(s) {
		if err := c.syncInstances(ctx, st); err != nil {
			errs = append(errs, err)
		}
	} else if err := c.syncDeployment(ctx, st); err != nil {
		errs = append(errs, err)
	}
	if err := c.syncRouter(ctx, st); err != nil {
		errs = append(errs, err)
	}
	side.Wait()
	for _, err := range []error{configErr, serviceErr} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	for _, e := range errs {
		st.failures = append(st.failures, e.Error())
	}
	if err := c.updateStatus(ctx, st); err != nil {
		errs = append(errs, err)
	}
	if st.rolloutDone {
		if err := c.pruneRevisions(ctx, st); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return 0, errs[0]
	}
	return st.requeue, nil
}

// syncState carries what one sync learns from step to step.
type syncState struct {
	server *v1alpha1.InferServer
	key    string

	// revisions of the server, oldest first, and the one being rolled out.
	revisions []*appsv1.ControllerRevision
	update    *appsv1.ControllerRevision
	// target is the revision new instances get: update, unless a
	// cross-node rollout is paused midway.
	target string

	pods      []*corev1.Pod
	instances []v1alpha1.InstanceStatus
	// counts of instances
	total, updated, ready int32
	// recreated are the instances this sync found broken and deleted.
	recreated []string
	// membersRecreated are the PD groups (once for each member) whose
	// members this sync found failed and deleted.
	membersRecreated []string
	// faults is the fault history being written: the last status's, with
	// this sync's faults; openFaults the keys of the faults seen now.
	faults     []v1alpha1.FaultRecord
	openFaults map[string]bool
	// inPlace says why the rollout goes in place (its surge does not fit
	// the free NPUs); empty when it does not.
	inPlace string
	// failures are errors of this sync worth a Degraded condition.
	failures []string
	// router is the router's state when spec.router is set.
	router *v1alpha1.RouterStatus
	// degraded is the most telling problem seen on the pods.
	degradedReason, degradedMessage string
	rolloutDone                     bool
	requeue                         time.Duration
}

func (st *syncState) requeueAfter(d time.Duration) {
	if st.requeue == 0 || d < st.requeue {
		st.requeue = d
	}
}

func hasFinalizer(s *v1alpha1.InferServer) bool {
	for _, f := range s.Finalizers {
		if f == v1alpha1.FinalizerCleanup {
			return true
		}
	}
	return false
}

// owned keeps the objects whose controller is s.
func owned[T metav1.Object](s *v1alpha1.InferServer, objs []T) []T {
	var out []T
	for _, o := range objs {
		if ref := metav1.GetControllerOfNoCopy(o); ref != nil && ref.UID == s.UID {
			out = append(out, o)
		}
	}
	return out
}

func serverSelector(s *v1alpha1.InferServer) labels.Selector {
	return labels.SelectorFromSet(labels.Set{v1alpha1.LabelServer: s.Name})
}

// finalize cleans up after a deleted InferServer in one pass: it deletes
// every child at once (the router's objects included; what is already
// being deleted is left to finish), and drops the finalizer as soon as the
// API server has accepted every deletion: the children no longer need
// their owner, and waiting for the informers to see them go would cost a
// second pass. In a namespace being deleted, the namespace controller
// removes the children itself: only the router's cluster-scoped binding
// is deleted here.
func (c *Controller) finalize(ctx context.Context, s *v1alpha1.InferServer) (time.Duration, error) {
	key := s.Namespace + "/" + s.Name
	c.info.want(key, nil)
	c.pdRoles.want(key, nil)
	if !hasFinalizer(s) {
		return 0, nil
	}
	ns := s.Namespace
	var deletions []func() error
	if c.namespaceTerminating(ns) {
		deletions = append(deletions, func() error { return c.deleteRouterBinding(ctx, s) })
	} else {
		deletions = append(deletions, func() error { return c.removeRouter(ctx, s) })
		deletions = append(deletions, c.childDeletions(ctx, s)...)
	}
	errs := make([]error, len(deletions))
	var wg sync.WaitGroup
	for i, del := range deletions {
		wg.Go(func() { errs[i] = del() })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	if n := len(deletions) - 1; n > 0 {
		c.recorder.Eventf(s, corev1.EventTypeNormal, ReasonCleanup, "Deleted %d objects of the InferServer", n)
	}
	var keep []string
	for _, f := range s.Finalizers {
		if f != v1alpha1.FinalizerCleanup {
			keep = append(keep, f)
		}
	}
	s.Finalizers = keep
	if _, err := c.infer.InferV1alpha1().InferServers(ns).Update(ctx, s, metav1.UpdateOptions{FieldManager: FieldManager}); err != nil && !apierrors.IsNotFound(err) {
		return 0, fmt.Errorf("remove finalizer: %w", err)
	}
	c.track.forget(key)
	return 0, nil
}

// childDeletions are the deletions of s's children (but the router's) that
// are not being deleted already, read from the informers' caches.
func (c *Controller) childDeletions(ctx context.Context, s *v1alpha1.InferServer) []func() error {
	ns := s.Namespace
	bg := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{PropagationPolicy: &bg}
	var out []func() error
	add := func(kind string, o metav1.Object, del func(context.Context, string, metav1.DeleteOptions) error) {
		if o.GetDeletionTimestamp() != nil {
			return
		}
		name := o.GetName()
		out = append(out, func() error {
			if err := del(ctx, name, opts); err != nil && !apierrors.IsNotFound(err) {
				c.recorder.Eventf(s, corev1.EventTypeWarning, ReasonFailedDelete, "Deleting %s %s: %v", kind, name, err)
				return fmt.Errorf("delete %s %s: %w", kind, name, err)
			}
			return nil
		})
	}
	deps := labelled[*appsv1.Deployment](c.children.deployments, s)
	for _, o := range owned(s, deps) {
		add("deployment", o, c.kube.AppsV1().Deployments(ns).Delete)
	}
	pods := labelled[*corev1.Pod](c.children.pods, s)
	for _, o := range owned(s, pods) {
		add("pod", o, c.kube.CoreV1().Pods(ns).Delete)
	}
	svcs := labelled[*corev1.Service](c.children.services, s)
	for _, o := range owned(s, svcs) {
		add("service", o, c.kube.CoreV1().Services(ns).Delete)
	}
	cms := labelled[*corev1.ConfigMap](c.children.configMaps, s)
	for _, o := range owned(s, cms) {
		add("configmap", o, c.kube.CoreV1().ConfigMaps(ns).Delete)
	}
	revs := labelled[*appsv1.ControllerRevision](c.children.revisions, s)
	for _, o := range owned(s, revs) {
		add("controllerrevision", o, c.kube.AppsV1().ControllerRevisions(ns).Delete)
	}
	return out
}

// namespaceTerminating says whether the namespace ns is being deleted, as
// the namespace informer last saw it (false without one).
func (c *Controller) namespaceTerminating(ns string) bool {
	if c.namespaces == nil {
		return false
	}
	n, err := c.namespaces.Get(ns)
	return err == nil && n.DeletionTimestamp != nil
}

// The children the controller applies, each read from its informer's cache.

func (c *Controller) deploymentChild(ns string) child[appsv1.Deployment, *appsv1.Deployment, *appsv1ac.DeploymentApplyConfiguration] {
	return child[appsv1.Deployment, *appsv1.Deployment, *appsv1ac.DeploymentApplyConfiguration]{
		kind: "deployment", get: c.deployments.Deployments(ns).Get,
		extract: appsv1ac.ExtractDeployment, apply: c.kube.AppsV1().Deployments(ns).Apply,
		written: c.written,
	}
}

func (c *Controller) serviceChild(ns string) child[corev1.Service, *corev1.Service, *corev1ac.ServiceApplyConfiguration] {
	return child[corev1.Service, *corev1.Service, *corev1ac.ServiceApplyConfiguration]{
		kind: "service", get: c.services.Services(ns).Get,
		extract: corev1ac.ExtractService, apply: c.kube.CoreV1().Services(ns).Apply,
		written: c.written,
	}
}

func (c *Controller) configMapChild(ns string) child[corev1.ConfigMap, *corev1.ConfigMap, *corev1ac.ConfigMapApplyConfiguration] {
	return child[corev1.ConfigMap, *corev1.ConfigMap, *corev1ac.ConfigMapApplyConfiguration]{
		kind: "configmap", get: c.configMaps.ConfigMaps(ns).Get,
		extract: corev1ac.ExtractConfigMap, apply: c.kube.CoreV1().ConfigMaps(ns).Apply,
		written: c.written,
	}
}

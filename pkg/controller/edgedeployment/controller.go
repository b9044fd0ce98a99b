// Package edgedeployment runs EdgeDeployments: batch jobs that deploy one
// container application to many edge nodes, as IEF's batch application
// deployment does.
//
// A job resolves its target nodes once (the nodes named and those matching
// the selector), records them in status.targets and refuses the job when
// they are none, too many, or of several architectures. It then deploys
// node by node, at most spec.maxConcurrentNodes at a time: each node gets
// spec.instancesPerNode pods pinned to it (a node selector on its host name
// and a toleration of the edge taint, so that the scheduler still checks
// the node's resources and says why a pod cannot run). A node's task
// succeeds when all its pods run and are ready, fails when one cannot run
// (image pull, crash loop, exit under restart policy Never or OnFailure,
// unschedulable, its node not ready, a missing Secret or ConfigMap), and
// times out with the run. spec.stopped stops dispatching (pods already made
// stay) and continues; a larger spec.retryGeneration re-runs the failed
// and timed-out nodes only, with a fresh timeout. Deleting the job deletes
// its pods (the controller's finalizer: the garbage collector need not
// reach this aggregated API).
package edgedeployment

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
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

// Event reasons.
const (
	ReasonStarted       = "Started"
	ReasonRefused       = "Refused"
	ReasonNodeDeploying = "NodeDeploying"
	ReasonNodeSucceeded = "NodeSucceeded"
	ReasonNodeFailed    = "NodeFailed"
	ReasonPhase         = "PhaseChanged"
	ReasonRetrying      = "Retrying"
	ReasonFailedCreate  = "FailedCreate"
)

// NewKubeInformers returns the informer factory of the job's pods (those
// labelled LabelJob) and of the nodes.
func NewKubeInformers(kube kubernetes.Interface, resync time.Duration) (pods, nodes kubeinformers.SharedInformerFactory) {
	return kubeinformers.NewSharedInformerFactoryWithOptions(kube, resync,
			kubeinformers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = LabelJob }),
			kubeinformers.WithTransform(cachetrim.ManagedFields)),
		kubeinformers.NewSharedInformerFactoryWithOptions(kube, resync, kubeinformers.WithTransform(cachetrim.ManagedFields))
}

// Config is what New needs.
type Config struct {
	Kube  kubernetes.Interface
	Infer clientset.Interface
	Jobs  inferinformers.EdgeDeploymentInformer
	// Pods and Nodes: NewKubeInformers.
	Pods, Nodes kubeinformers.SharedInformerFactory
	Recorder    record.EventRecorder
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// StatusInterval is the least time between two writes of a job's
	// status that only report progress (a phase change, a spec or retry
	// observed is written at once): a job to many nodes changes with each
	// pod, and every write is the whole status. 0 means
	// DefaultStatusInterval; negative writes every change at once.
	StatusInterval time.Duration
}

// DefaultStatusInterval is Config.StatusInterval's default.
const DefaultStatusInterval = time.Second

// Controller runs EdgeDeployments.
type Controller struct {
	kube     kubernetes.Interface
	infer    clientset.Interface
	recorder record.EventRecorder
	now      func() time.Time
	jobs     inferlisters.EdgeDeploymentLister
	pods     corelisters.PodLister
	nodes    corelisters.NodeLister
	queue    workqueue.TypedRateLimitingInterface[string]
	synced   []cache.InformerSynced

	// written is, per job key, the job as this controller last wrote its
	// status, and the resourceVersion it was written over: while the
	// informer's cache still holds that version, the job is synced from
	// what was written (syncing from the cache would only conflict).
	mu      sync.Mutex
	written map[string]writtenJob
	// wroteAt is when each job's status was last written.
	wroteAt        map[string]time.Time
	statusInterval time.Duration
}

type writtenJob struct {
	over string
	job  *v1alpha1.EdgeDeployment
}

// latest is the freshest known state of job key: what this controller
// wrote if the cache has not caught up with it, else cached.
func (c *Controller) latest(key string, cached *v1alpha1.EdgeDeployment) *v1alpha1.EdgeDeployment {
	c.mu.Lock()
	defer c.mu.Unlock()
	w, ok := c.written[key]
	if ok && w.over != "" && w.over == cached.ResourceVersion {
		return w.job
	}
	delete(c.written, key)
	return cached
}

// writeWait is how long the status cur of job key should wait before it
// is written: 0 unless it only reports progress over old and the last
// write was less than the status interval ago.
func (c *Controller) writeWait(key string, old, cur *v1alpha1.EdgeDeploymentStatus) time.Duration {
	if c.statusInterval < 0 || old.Phase != cur.Phase || old.ObservedGeneration != cur.ObservedGeneration ||
		old.ObservedRetryGeneration != cur.ObservedRetryGeneration {
		return 0
	}
	c.mu.Lock()
	last, ok := c.wroteAt[key]
	c.mu.Unlock()
	if !ok {
		return 0
	}
	return max(0, c.statusInterval-c.now().Sub(last))
}

func (c *Controller) remember(key, over string, job *v1alpha1.EdgeDeployment) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if job == nil {
		delete(c.written, key)
		delete(c.wroteAt, key)
		return
	}
	c.written[key] = writtenJob{over: over, job: job}
}

// New builds the controller and registers its event handlers.
func New(cfg Config) (*Controller, error) {
	if cfg.Kube == nil || cfg.Infer == nil || cfg.Jobs == nil || cfg.Pods == nil || cfg.Nodes == nil || cfg.Recorder == nil {
		return nil, fmt.Errorf("edgedeployment controller: Kube, Infer, Jobs, Pods, Nodes and Recorder are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.StatusInterval == 0 {
		cfg.StatusInterval = DefaultStatusInterval
	}
	c := &Controller{kube: cfg.Kube, infer: cfg.Infer, recorder: cfg.Recorder, now: cfg.Now, written: map[string]writtenJob{},
		wroteAt: map[string]time.Time{}, statusInterval: cfg.StatusInterval,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "edgedeployment"})}
	jobs := cfg.Jobs.Informer()
	if _, err := jobs.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: c.enqueue, UpdateFunc: func(_, n any) { c.enqueue(n) }, DeleteFunc: c.enqueue}); err != nil {
		return nil, err
	}
	pods := cfg.Pods.Core().V1().Pods().Informer()
	byLabel := func(obj any) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		if m, ok := obj.(metav1.Object); ok && m.GetLabels()[LabelJob] != "" {
			c.queue.Add(m.GetNamespace() + "/" + m.GetLabels()[LabelJob])
		}
	}
	if _, err := pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: byLabel, UpdateFunc: func(_, n any) { byLabel(n) }, DeleteFunc: byLabel}); err != nil {
		return nil, err
	}
	nodes := cfg.Nodes.Core().V1().Nodes().Informer()
	// A node's readiness decides its task: look at every running job.
	if _, err := nodes.AddEventHandler(cache.ResourceEventHandlerFuncs{UpdateFunc: func(o, n any) {
		if nodeReady(o.(*corev1.Node)) != nodeReady(n.(*corev1.Node)) {
			c.enqueueAll()
		}
	}}); err != nil {
		return nil, err
	}
	c.jobs = cfg.Jobs.Lister()
	c.pods = cfg.Pods.Core().V1().Pods().Lister()
	c.nodes = cfg.Nodes.Core().V1().Nodes().Lister()
	c.synced = []cache.InformerSynced{jobs.HasSynced, pods.HasSynced, nodes.HasSynced}
	return c, nil
}

func (c *Controller) enqueue(obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		utilruntime.HandleError(err)
		return
	}
	c.queue.Add(key)
}

func (c *Controller) enqueueAll() {
	jobs, err := c.jobs.List(labels.Everything())
	if err != nil {
		return
	}
	for _, j := range jobs {
		c.queue.Add(j.Namespace + "/" + j.Name)
	}
}

// Run works until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) error {
	defer utilruntime.HandleCrash()
	defer c.queue.ShutDown()
	logger := klog.FromContext(ctx)
	logger.Info("Starting EdgeDeployment controller")
	defer logger.Info("Stopped EdgeDeployment controller")
	if !cache.WaitForNamedCacheSync("edgedeployment", ctx.Done(), c.synced...) {
		return fmt.Errorf("edgedeployment controller: caches did not sync")
	}
	worker.Run(ctx, c.queue, workers, "EdgeDeployment", c.sync)
	<-ctx.Done()
	return nil
}

// sync brings one job forward and writes its status; it returns when to
// look again (a timeout to come), 0 for never.
func (c *Controller) sync(ctx context.Context, key string) (time.Duration, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, err
	}
	cached, err := c.jobs.EdgeDeployments(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.remember(key, "", nil)
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	e := c.latest(key, cached).DeepCopy()
	if e.DeletionTimestamp != nil {
		return 0, c.finalize(ctx, e)
	}
	if !hasFinalizer(e) {
		e.Finalizers = append(e.Finalizers, v1alpha1.FinalizerEdgeCleanup)
		updated, err := c.infer.InferV1alpha1().EdgeDeployments(ns).Update(ctx, e, metav1.UpdateOptions{})
		if err != nil {
			return 0, fmt.Errorf("add finalizer: %w", err)
		}
		e = updated.DeepCopy()
	}
	old := e.Status.DeepCopy()
	requeue, err := c.run(ctx, e)
	if err != nil {
		return 0, err
	}
	e.Status.ObservedGeneration = e.Generation
	e.Status.CountNodes()
	if !statusEqual(old, &e.Status) {
		if wait := c.writeWait(key, old, &e.Status); wait > 0 {
			// Progress only, and the last write is recent: the next sync
			// writes it (and adopts the pods this one made).
			if requeue <= 0 || wait < requeue {
				requeue = wait
			}
			return requeue, nil
		}
		over := e.ResourceVersion
		updated, err := c.infer.InferV1alpha1().EdgeDeployments(ns).UpdateStatus(ctx, e, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			// The job changed meanwhile (a user's edit): its new version,
			// on its way through the informer, queues it again, and that
			// sync adopts the pods this one created.
			c.remember(key, "", nil)
			return 0, nil
		}
		if err != nil {
			return 0, fmt.Errorf("update status: %w", err)
		}
		c.remember(key, over, updated)
		c.mu.Lock()
		c.wroteAt[key] = c.now()
		c.mu.Unlock()
	}
	// Recorded once the status that says so is written, so that a sync
	// whose write failed records nothing twice.
	c.recordTransitions(e, old)
	return requeue, nil
}

func hasFinalizer(e *v1alpha1.EdgeDeployment) bool {
	for _, f := range e.Finalizers {
		if f == v1alpha1.FinalizerEdgeCleanup {
			return true
		}
	}
	return false
}

// finalize deletes the job's pods, then lets the job go.
func (c *Controller) finalize(ctx context.Context, e *v1alpha1.EdgeDeployment) error {
	if !hasFinalizer(e) {
		return nil
	}
	pods, err := c.jobPods(e)
	if err != nil {
		return err
	}
	for _, p := range pods {
		if err := c.deletePod(ctx, p); err != nil {
			return err
		}
	}
	var keep []string
	for _, f := range e.Finalizers {
		if f != v1alpha1.FinalizerEdgeCleanup {
			keep = append(keep, f)
		}
	}
	e.Finalizers = keep
	_, err = c.infer.InferV1alpha1().EdgeDeployments(e.Namespace).Update(ctx, e, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func (c *Controller) deletePod(ctx context.Context, p *corev1.Pod) error {
	if p.DeletionTimestamp != nil {
		return nil
	}
	err := c.kube.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("delete pod %s: %w", p.Name, err)
	}
	return nil
}

// jobPods are the pods of the job it controls.
func (c *Controller) jobPods(e *v1alpha1.EdgeDeployment) ([]*corev1.Pod, error) {
	all, err := c.pods.Pods(e.Namespace).List(labels.SelectorFromSet(labels.Set{LabelJob: e.Name}))
	if err != nil {
		return nil, err
	}
	var out []*corev1.Pod
	for _, p := range all {
		if ref := metav1.GetControllerOfNoCopy(p); ref != nil && ref.UID == e.UID {
			out = append(out, p)
		}
	}
	return out, nil
}

// recordTransitions emits an event for each node and phase change.
func (c *Controller) recordTransitions(e *v1alpha1.EdgeDeployment, old *v1alpha1.EdgeDeploymentStatus) {
	st := &e.Status
	switch {
	case len(old.Targets) == 0 && len(st.Targets) > 0:
		c.recorder.Eventf(e, corev1.EventTypeNormal, ReasonStarted, "Deploying to %d %s nodes, at most %d at a time: %s",
			len(st.Targets), st.Architecture, *e.Spec.MaxConcurrentNodes, summarize(st.Targets))
	case len(st.Targets) == 0 && st.Phase == v1alpha1.EdgePhaseFailed && old.Phase != v1alpha1.EdgePhaseFailed:
		if cond := meta.FindStatusCondition(st.Conditions, v1alpha1.EdgeConditionFailed); cond != nil {
			c.recorder.Eventf(e, corev1.EventTypeWarning, ReasonRefused, "%s: %s", cond.Reason, cond.Message)
		}
	}
	before := map[string]v1alpha1.EdgeNodeState{}
	for _, n := range old.Nodes {
		before[n.Node] = n.State
	}
	if st.ObservedRetryGeneration > old.ObservedRetryGeneration {
		var again []string
		for _, n := range st.Nodes {
			if was := before[n.Node]; (was == v1alpha1.EdgeNodeFailed || was == v1alpha1.EdgeNodeTimedOut) && n.RetryGeneration == st.ObservedRetryGeneration {
				again = append(again, n.Node)
			}
		}
		if len(again) > 0 {
			c.recorder.Eventf(e, corev1.EventTypeNormal, ReasonRetrying, "Retry %d: deploying again to %d nodes: %s", st.ObservedRetryGeneration, len(again), summarize(again))
		}
	}
	for _, n := range e.Status.Nodes {
		if before[n.Node] == n.State {
			continue
		}
		switch n.State {
		case v1alpha1.EdgeNodeDeploying:
			c.recorder.Eventf(e, corev1.EventTypeNormal, ReasonNodeDeploying, "Deploying to node %s: %s", n.Node, strings.Join(n.Pods, ", "))
		case v1alpha1.EdgeNodeSucceeded:
			c.recorder.Eventf(e, corev1.EventTypeNormal, ReasonNodeSucceeded, "Node %s succeeded: %s", n.Node, strings.Join(n.Pods, ", "))
		case v1alpha1.EdgeNodeFailed, v1alpha1.EdgeNodeTimedOut:
			c.recorder.Eventf(e, corev1.EventTypeWarning, ReasonNodeFailed, "Node %s %s: %s: %s", n.Node, strings.ToLower(string(n.State)), n.Reason, n.Message)
		}
	}
	if old.Phase != e.Status.Phase {
		kind := corev1.EventTypeNormal
		if e.Status.Phase == v1alpha1.EdgePhaseFailed || e.Status.Phase == v1alpha1.EdgePhaseTimedOut || e.Status.Phase == v1alpha1.EdgePhasePartiallySucceeded {
			kind = corev1.EventTypeWarning
		}
		c.recorder.Eventf(e, kind, ReasonPhase, "Job %s (was %s): %d of %d nodes succeeded, %d failed, %d timed out",
			e.Status.Phase, orNone(string(old.Phase)), e.Status.Succeeded, len(e.Status.Targets), e.Status.Failed, e.Status.TimedOut)
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func statusEqual(a, b *v1alpha1.EdgeDeploymentStatus) bool {
	x, y := a.DeepCopy(), b.DeepCopy()
	for _, s := range []*v1alpha1.EdgeDeploymentStatus{x, y} {
		for i := range s.Conditions {
			s.Conditions[i].LastTransitionTime = metav1.Time{}
		}
	}
	return fmt.Sprintf("%+v", *x) == fmt.Sprintf("%+v", *y)
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// setCondition sets a condition of the job.
func setCondition(e *v1alpha1.EdgeDeployment, typ string, status bool, reason, msg string, now time.Time) {
	s := metav1.ConditionFalse
	if status {
		s = metav1.ConditionTrue
	}
	meta.SetStatusCondition(&e.Status.Conditions, metav1.Condition{Type: typ, Status: s, Reason: reason, Message: msg,
		ObservedGeneration: e.Generation, LastTransitionTime: metav1.NewTime(now)})
}

// sortedKeys are the keys of m, sorted.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"mindie.io/deployer/apis/infer/v1alpha1"
	clientset "mindie.io/deployer/pkg/generated/clientset/versioned"
	inferinformers "mindie.io/deployer/pkg/generated/informers/externalversions"
)

// wake wakes whoever waits on ch, without blocking: ch holds one
// pending wake-up at most.
func wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// podTimes is when the watch first saw a pod, bound to a node, Running
// and Ready, and gone; zero when not (yet) seen.
type podTimes struct {
	seen, scheduled, ready, gone time.Time
}

// podWatch records the pods of one namespace as an informer reports
// them, and signals changed on every event.
type podWatch struct {
	mu      sync.Mutex
	pods    map[types.UID]*podTimes
	changed chan struct{}
}

func newPodWatch() *podWatch {
	return &podWatch{pods: map[types.UID]*podTimes{}, changed: make(chan struct{}, 1)}
}

// runningReady says the pod runs and is Ready, and is not being deleted.
func runningReady(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// record notes what p shows for the first time, at now; the caller holds
// mu.
func (w *podWatch) record(p *corev1.Pod, now time.Time) *podTimes {
	t := w.pods[p.UID]
	if t == nil {
		t = &podTimes{seen: now}
		w.pods[p.UID] = t
	}
	if p.Spec.NodeName != "" && t.scheduled.IsZero() {
		t.scheduled = now
	}
	if runningReady(p) && t.ready.IsZero() {
		t.ready = now
	}
	return t
}

func (w *podWatch) update(o any) {
	p, ok := o.(*corev1.Pod)
	if !ok {
		return
	}
	now := time.Now()
	w.mu.Lock()
	w.record(p, now)
	w.mu.Unlock()
	wake(w.changed)
}

func (w *podWatch) remove(o any) {
	if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	p, ok := o.(*corev1.Pod)
	if !ok {
		return
	}
	now := time.Now()
	w.mu.Lock()
	if t := w.record(p, now); t.gone.IsZero() {
		t.gone = now
	}
	w.mu.Unlock()
	wake(w.changed)
}

// podCounts are how many pods the watch has seen, bound, Ready (at some
// time) and still in the API.
type podCounts struct {
	seen, scheduled, ready, live int
}

func (w *podWatch) counts() podCounts {
	w.mu.Lock()
	defer w.mu.Unlock()
	var c podCounts
	for _, t := range w.pods {
		c.seen++
		if !t.scheduled.IsZero() {
			c.scheduled++
		}
		if !t.ready.IsZero() {
			c.ready++
		}
		if t.gone.IsZero() {
			c.live++
		}
	}
	return c
}

// latest is the latest of f over the pods; the earliest when first is
// set. Zero if no pod has it.
func (w *podWatch) latest(f func(*podTimes) time.Time, first bool) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out time.Time
	for _, t := range w.pods {
		v := f(t)
		if v.IsZero() {
			continue
		}
		if out.IsZero() || (!first && v.After(out)) || (first && v.Before(out)) {
			out = v
		}
	}
	return out
}

// startPodWatch starts an informer of the pods of namespace feeding a
// podWatch, and waits for its first list.
func startPodWatch(ctx context.Context, kube kubernetes.Interface, namespace string) (*podWatch, error) {
	w := newPodWatch()
	f := informers.NewSharedInformerFactoryWithOptions(kube, 0, informers.WithNamespace(namespace))
	inf := f.Core().V1().Pods().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: w.update, UpdateFunc: func(_, o any) { w.update(o) }, DeleteFunc: w.remove,
	}); err != nil {
		return nil, err
	}
	f.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return nil, fmt.Errorf("the pods of namespace %s did not sync", namespace)
	}
	return w, nil
}

// jobWatch records one EdgeDeployment as an informer reports it: its
// latest state, when each phase was first seen and when it was gone.
type jobWatch struct {
	mu      sync.Mutex
	name    string
	job     *v1alpha1.EdgeDeployment
	phases  map[v1alpha1.EdgeDeploymentPhase]time.Time
	gone    time.Time
	changed chan struct{}
}

func (w *jobWatch) update(o any) {
	e, ok := o.(*v1alpha1.EdgeDeployment)
	if !ok || e.Name != w.name {
		return
	}
	now := time.Now()
	w.mu.Lock()
	w.job = e
	if _, seen := w.phases[e.Status.Phase]; !seen {
		w.phases[e.Status.Phase] = now
	}
	w.mu.Unlock()
	wake(w.changed)
}

func (w *jobWatch) remove(o any) {
	if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	if e, ok := o.(*v1alpha1.EdgeDeployment); !ok || e.Name != w.name {
		return
	}
	now := time.Now()
	w.mu.Lock()
	if w.gone.IsZero() {
		w.gone = now
	}
	w.mu.Unlock()
	wake(w.changed)
}

// state returns the latest copy of the job (nil before it was seen),
// when it reached phase (zero if not yet) and when it was gone.
func (w *jobWatch) state(phase v1alpha1.EdgeDeploymentPhase) (job *v1alpha1.EdgeDeployment, reached, gone time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.job, w.phases[phase], w.gone
}

// startJobWatch starts an informer of the EdgeDeployments of namespace
// feeding a jobWatch of the one named, and waits for its first list.
func startJobWatch(ctx context.Context, infer clientset.Interface, namespace, name string) (*jobWatch, error) {
	w := &jobWatch{name: name, phases: map[v1alpha1.EdgeDeploymentPhase]time.Time{}, changed: make(chan struct{}, 1)}
	f := inferinformers.NewSharedInformerFactoryWithOptions(infer, 0, inferinformers.WithNamespace(namespace))
	inf := f.Infer().V1alpha1().EdgeDeployments().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: w.update, UpdateFunc: func(_, o any) { w.update(o) }, DeleteFunc: w.remove,
	}); err != nil {
		return nil, err
	}
	f.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return nil, fmt.Errorf("the EdgeDeployments of namespace %s did not sync", namespace)
	}
	return w, nil
}

// waitFor returns once cond holds, looking whenever changed is signalled
// (and every second, for what no event announces), or fails when timeout
// passes or ctx ends; the error names what was awaited and cond's last
// word on it.
func waitFor(ctx context.Context, changed <-chan struct{}, timeout time.Duration, what string, cond func() (bool, string)) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		ok, msg := cond()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w; last: %s", what, ctx.Err(), msg)
		case <-deadline.C:
			return fmt.Errorf("%s: not within %s; last: %s", what, timeout, msg)
		case <-changed:
		case <-tick.C:
		}
	}
}

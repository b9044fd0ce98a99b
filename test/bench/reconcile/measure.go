package main

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
	clientset "mindie.io/deployer/pkg/generated/clientset/versioned"
	inferinformers "mindie.io/deployer/pkg/generated/informers/externalversions"
	"mindie.io/deployer/test/bench/results"
)

// ensureNamespace creates ns unless it exists and waits for its default
// ServiceAccount, which the pods of the InferServers need.
func ensureNamespace(ctx context.Context, kube kubernetes.Interface, ns string) error {
	_, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", ns, err)
	}
	return wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := kube.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
}

// serverObject is one single-node InferServer with one instance of one NPU,
// behind a ClusterIP Service (NodePorts would run out).
func serverObject(ns, name string) *v1alpha1.InferServer {
	return &v1alpha1.InferServer{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.InferServerSpec{
			Replicas:         ptr.To[int32](1),
			NodesPerInstance: ptr.To[int32](1),
			Resources: v1alpha1.InferResources{
				CPU:    ptr.To(resource.MustParse("1")),
				Memory: ptr.To(resource.MustParse("1000Mi")),
				NPU:    v1alpha1.NPURequest{Type: v1alpha1.NPUTypeAscend910, Count: ptr.To[int32](1)},
			},
			Service: v1alpha1.InferServiceExposure{Type: corev1.ServiceTypeClusterIP},
		},
	}
}

func observed(s *v1alpha1.InferServer) bool {
	return s.Status.ObservedGeneration > 0 && s.Status.ObservedGeneration == s.Generation && s.Status.UpdateRevision != ""
}

// warmedUp is the warm-up server as observed, and how long that took.
type warmedUp struct {
	server  *v1alpha1.InferServer
	seconds float64
}

// warmup creates one InferServer and waits until its status is observed:
// the controller runs, holds its Lease and has synced its caches.
func warmup(ctx context.Context, infer clientset.Interface, ns, name string) (warmedUp, error) {
	var out warmedUp
	start := time.Now()
	_, err := infer.InferV1alpha1().InferServers(ns).Create(ctx, serverObject(ns, name), metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return out, fmt.Errorf("create warm-up server: %w", err)
	}
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		s, err := infer.InferV1alpha1().InferServers(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil || !observed(s) {
			return false, nil
		}
		out.server = s
		return true, nil
	})
	if err != nil {
		return out, fmt.Errorf("warm-up server %s/%s not observed within 3m: is the controller running? %w", ns, name, err)
	}
	out.seconds = time.Since(start).Seconds()
	return out, nil
}

// createAll calls create(i) for i in [0, n) from workers goroutines,
// retrying a failed call up to five times. It returns when every call has
// returned, with the number of failed attempts, and calls created(i) as
// each one succeeds.
func createAll(ctx context.Context, n, workers int, create func(context.Context, int) error, created func(int)) (errs int, err error) {
	idx := make(chan int)
	var mu sync.Mutex
	var last error
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range idx {
				n, err := retried(ctx, func(ctx context.Context) error { return create(ctx, i) })
				if err == nil {
					created(i)
				}
				mu.Lock()
				errs += n
				if err != nil {
					last = err
				}
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < n; i++ {
		idx <- i
	}
	close(idx)
	wg.Wait()
	return errs, last
}

// retried calls call, each attempt bounded by a minute, until it succeeds
// or finds its object there already, five attempts at most a second
// apart; it returns the failed attempts and the last error when none
// succeeded.
func retried(ctx context.Context, call func(context.Context) error) (errs int, err error) {
	for attempt := 0; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := call(cctx)
		cancel()
		if err == nil || apierrors.IsAlreadyExists(err) {
			return errs, nil
		}
		errs++
		if attempt >= 4 || ctx.Err() != nil {
			return errs, err
		}
		sleep(ctx, time.Second)
	}
}

func name(prefix string, i int) string { return fmt.Sprintf("%s-%05d", prefix, i) }

// tracker records when each server was created, got its children and had
// its status observed.
type tracker struct {
	mu    sync.Mutex
	start time.Time
	n     int
	want  map[string]bool // the servers of this run

	created, childrenAt, observedAt map[string]time.Duration
	dep, svc, rev                   map[string]bool
	writes                          map[string]int
	done                            chan struct{}
	closed                          bool
}

func newTracker(n int) *tracker {
	t := &tracker{n: n, want: map[string]bool{}, created: map[string]time.Duration{}, childrenAt: map[string]time.Duration{},
		observedAt: map[string]time.Duration{}, dep: map[string]bool{}, svc: map[string]bool{}, rev: map[string]bool{},
		writes: map[string]int{}, done: make(chan struct{})}
	for i := 0; i < n; i++ {
		t.want[name("srv", i)] = true
	}
	return t
}

// since is the time from the start; zero before the start.
func (t *tracker) since() time.Duration {
	if t.start.IsZero() {
		return 0
	}
	return time.Since(t.start)
}

func (t *tracker) checkLocked(name string) {
	if _, ok := t.childrenAt[name]; !ok && t.dep[name] && t.svc[name] && t.rev[name] {
		t.childrenAt[name] = t.since()
	}
	if !t.closed && len(t.childrenAt) == t.n && len(t.observedAt) == t.n {
		t.closed = true
		close(t.done)
	}
}

// child notes a child of server `name` of one kind.
func (t *tracker) child(kind string, set map[string]bool, name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.writes[kind]++
	if !t.want[name] {
		return
	}
	set[name] = true
	t.checkLocked(name)
}

func (t *tracker) server(s *v1alpha1.InferServer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.writes["InferServer"]++
	if !t.want[s.Name] {
		return
	}
	if _, ok := t.observedAt[s.Name]; !ok && observed(s) {
		t.observedAt[s.Name] = t.since()
	}
	t.checkLocked(s.Name)
}

func (t *tracker) progress() results.Progress {
	t.mu.Lock()
	defer t.mu.Unlock()
	return results.Progress{T: round(t.since().Seconds(), 1), Created: len(t.created), Children: len(t.childrenAt), Observed: len(t.observedAt)}
}

func round(v float64, digits int) float64 {
	p := 1.0
	for i := 0; i < digits; i++ {
		p *= 10
	}
	return float64(int64(v*p+0.5)) / p
}

// quantiles of the durations: p50, p90, max (seconds).
func quantiles(m map[string]time.Duration) map[string]float64 {
	if len(m) == 0 {
		return nil
	}
	var ds []float64
	for _, d := range m {
		ds = append(ds, d.Seconds())
	}
	sort.Float64s(ds)
	q := func(p float64) float64 { return ds[min(len(ds)-1, int(p*float64(len(ds))))] }
	return map[string]float64{"p50": q(0.5), "p90": q(0.9), "max": ds[len(ds)-1]}
}

func maxOf(m map[string]time.Duration) float64 {
	var out time.Duration
	for _, d := range m {
		out = max(out, d)
	}
	return out.Seconds()
}

// logWindow is where in mindie-apiserver's log the servers' phase began
// and ended: file offsets, since it appends.
type logWindow struct{ from, to int64 }

// reconcile creates N InferServers at once and watches them and their
// children until every status is observed, sampling mindie-apiserver's
// memory and reading the API servers' metrics before and after; then it
// compares the first server's children with the baseline's and deletes
// the servers.
func reconcile(ctx context.Context, c *cluster, f runFlags, base *firstChildren, r *results.Measurement) (logWindow, error) {
	var lw logWindow
	ns := f.ns
	t := newTracker(f.n)
	kf := kubeinformers.NewSharedInformerFactoryWithOptions(c.kube, 0, kubeinformers.WithNamespace(ns),
		kubeinformers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = v1alpha1.LabelServer }))
	inff := inferinformers.NewSharedInformerFactoryWithOptions(c.infer, 0, inferinformers.WithNamespace(ns))
	handler := func(add func(any)) cache.ResourceEventHandlerFuncs {
		return cache.ResourceEventHandlerFuncs{AddFunc: add, UpdateFunc: func(_, n any) { add(n) }}
	}
	deps := kf.Apps().V1().Deployments().Informer()
	svcs := kf.Core().V1().Services().Informer()
	revs := kf.Apps().V1().ControllerRevisions().Informer()
	servers := inff.Infer().V1alpha1().InferServers().Informer()
	for _, reg := range []struct {
		inf cache.SharedIndexInformer
		fn  func(any)
	}{
		{deps, func(o any) {
			if d, ok := o.(*appsv1.Deployment); ok {
				t.child("Deployment", t.dep, d.Name)
			}
		}},
		{svcs, func(o any) {
			if s, ok := o.(*corev1.Service); ok {
				t.child("Service", t.svc, s.Name)
			}
		}},
		{revs, func(o any) {
			if cr, ok := o.(*appsv1.ControllerRevision); ok {
				t.child("ControllerRevision", t.rev, cr.Labels[v1alpha1.LabelServer])
			}
		}},
		{servers, func(o any) {
			if s, ok := o.(*v1alpha1.InferServer); ok {
				t.server(s)
			}
		}},
	} {
		if _, err := reg.inf.AddEventHandler(handler(reg.fn)); err != nil {
			return lw, err
		}
	}
	stop := make(chan struct{})
	defer func() { close(stop); kf.Shutdown(); inff.Shutdown() }()
	kf.Start(stop)
	inff.Start(stop)
	kf.WaitForCacheSync(stop)
	inff.WaitForCacheSync(stop)
	t.mu.Lock()
	clear(t.writes)
	t.mu.Unlock()

	mem := sampleMemory(c.mindie, memoryEvery)
	var ctrlMem *memSampler
	if c.controller != 0 {
		r.Controllers = results.ControllersExternal
		ctrlMem = sampleMemory(c.controller, memoryEvery)
		r.Memory.ControllerBeforeKiB, _, _ = memStatus(c.controller)
	}
	m0 := c.scrape(ctx)
	r.Memory.BeforeKiB, _, _ = memStatus(c.mindie)
	cpu := startCPU(c.pids, f.clkTck)
	lw.from = c.logSize()
	t.mu.Lock()
	t.start = time.Now()
	t.mu.Unlock()

	// Progress every second, while the servers are created and reconciled.
	progDone, progStop := make(chan struct{}), make(chan struct{})
	var prog []results.Progress
	go func() {
		defer close(progDone)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-progStop:
				prog = append(prog, t.progress())
				return
			case <-t.done:
				prog = append(prog, t.progress())
				return
			case <-tick.C:
				p := t.progress()
				prog = append(prog, p)
				if int(p.T)%10 == 0 {
					logf("t=%.0fs: %d created, %d with children, %d observed", p.T, p.Created, p.Children, p.Observed)
				}
			}
		}
	}()

	logf("creating %d InferServers in %s with %d workers", f.n, ns, f.workers)
	errs, err := createAll(ctx, f.n, f.workers, func(ctx context.Context, i int) error {
		_, err := c.infer.InferV1alpha1().InferServers(ns).Create(ctx, serverObject(ns, name("srv", i)), metav1.CreateOptions{})
		return err
	}, func(i int) {
		t.mu.Lock()
		t.created[name("srv", i)] = t.since()
		t.mu.Unlock()
	})
	r.Reconcile.Errors = errs
	t.mu.Lock()
	r.Reconcile.CreatedSeconds = maxOf(t.created)
	t.mu.Unlock()
	if err != nil {
		logf("some creates failed (%d attempts failed); the last error: %v", errs, err)
	}
	logf("all create calls returned after %.2fs", r.Reconcile.CreatedSeconds)

	timedOut := false
	select {
	case <-t.done:
	case <-time.After(f.timeoutFor() - time.Since(t.start)):
		timedOut = true
	case <-ctx.Done():
		return lw, ctx.Err()
	}
	r.Reconcile.CPU = cpu.stop()
	lw.to = c.logSize()
	elapsed := time.Since(t.start)
	close(progStop)
	if m1 := c.scrape(ctx); m0 != nil && m1 != nil {
		queue := mindieAPIServer
		if c.controller != 0 {
			queue = mindieController
		}
		r.Reconcile.Queue = newQueueStats(m0[queue], m1[queue], elapsed)
		r.Reconcile.Requests = writeRequests(m0, m1)
	}
	<-progDone
	t.mu.Lock()
	r.Reconcile.Children, r.Reconcile.Observed = len(t.childrenAt), len(t.observedAt)
	r.Reconcile.ChildrenSeconds, r.Reconcile.ObservedSeconds = maxOf(t.childrenAt), maxOf(t.observedAt)
	r.Reconcile.ChildrenQuantiles, r.Reconcile.ObservedQuantiles = quantiles(t.childrenAt), quantiles(t.observedAt)
	r.Reconcile.Writes = maps.Clone(t.writes)
	t.mu.Unlock()
	r.Reconcile.Progress = prog
	if timedOut {
		logf("timed out after %s: %d of %d servers with children, %d observed", f.timeoutFor(), r.Reconcile.Children, f.n, r.Reconcile.Observed)
	} else {
		logf("every child after %.2fs, every status observed after %.2fs", r.Reconcile.ChildrenSeconds, r.Reconcile.ObservedSeconds)
	}

	sleep(ctx, f.settle)
	r.Memory.PeakKiB, r.Memory.EndKiB, r.Memory.Samples = mem.stop()
	_, r.Memory.HWMKiB, _ = memStatus(c.mindie)
	logf("mindie-apiserver VmRSS %d MiB before, %d MiB peak, VmHWM %d MiB", r.Memory.BeforeKiB>>10, r.Memory.PeakKiB>>10, r.Memory.HWMKiB>>10)
	if ctrlMem != nil {
		r.Memory.ControllerPeakKiB, r.Memory.ControllerEndKiB, _ = ctrlMem.stop()
		_, r.Memory.ControllerHWMKiB, _ = memStatus(c.controller)
		logf("mindie-controller VmRSS %d MiB before, %d MiB peak, VmHWM %d MiB", r.Memory.ControllerBeforeKiB>>10, r.Memory.ControllerPeakKiB>>10, r.Memory.ControllerHWMKiB>>10)
	}

	if evs, err := controllerEvents(ctx, c.kube, ns); err != nil {
		logf("listing events: %v", err)
	} else {
		r.Reconcile.Events = evs
	}
	compareBaseline(ctx, c.kube, ns, base, r)

	if f.del {
		deleteAll(ctx, c.kube, c.infer, f, servers, deps, svcs, revs, r)
		// The namespace's events went with it.
		if f.deleteBy != deleteByNamespace {
			if evs, err := controllerEvents(ctx, c.kube, ns); err != nil {
				logf("listing events: %v", err)
			} else {
				r.Reconcile.EventsLater = evs
			}
		}
	}
	return lw, nil
}

// controllerEvents counts the Events mindie-controller recorded in ns, by
// type and reason (an Event seen again counts again).
func controllerEvents(ctx context.Context, kube kubernetes.Interface, ns string) (map[string]int, error) {
	out := map[string]int{}
	cont := ""
	for {
		list, err := kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{Limit: 500, Continue: cont})
		if err != nil {
			return nil, err
		}
		for _, e := range list.Items {
			if e.Source.Component != "mindie-controller" && e.ReportingController != "mindie-controller" {
				continue
			}
			out[e.Type+" "+e.Reason] += int(max(e.Count, 1))
		}
		if cont = list.Continue; cont == "" {
			return out, nil
		}
	}
}

// deleteAll deletes the servers at once and times until they and their
// children are gone (the controller deletes the children behind its
// finalizer, then lets the server go), or with -delete-by namespace deletes
// their namespace and times until it is gone; it notes what is left every
// 10 s.
func deleteAll(ctx context.Context, kube kubernetes.Interface, infer clientset.Interface, f runFlags, servers, deps, svcs, revs cache.SharedIndexInformer, r *results.Measurement) {
	logf("deleting the %d InferServers", f.n)
	start := time.Now()
	left := func() results.DeleteProgress {
		return results.DeleteProgress{
			T:        round(time.Since(start).Seconds(), 1),
			Servers:  len(servers.GetStore().ListKeys()),
			Children: len(deps.GetStore().ListKeys()) + len(svcs.GetStore().ListKeys()) + len(revs.GetStore().ListKeys()),
		}
	}
	progStop, progDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(progDone)
		tick := time.NewTicker(deleteProgressEvery)
		defer tick.Stop()
		for {
			select {
			case <-progStop:
				return
			case <-tick.C:
				p := left()
				r.Delete.Progress = append(r.Delete.Progress, p)
				logf("deleting, t=%.0fs: %d servers and %d children left", p.T, p.Servers, p.Children)
			}
		}
	}()
	var err error
	if f.deleteBy == deleteByNamespace {
		var called float64
		called, err = deleteNamespace(ctx, kube, f.ns, f.timeoutFor())
		r.Delete.CallsSeconds = called
	} else {
		_, err = createAll(ctx, f.n, f.workers, func(ctx context.Context, i int) error {
			err := infer.InferV1alpha1().InferServers(f.ns).Delete(ctx, name("srv", i), metav1.DeleteOptions{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			return err
		}, func(int) {})
		r.Delete.CallsSeconds = time.Since(start).Seconds()
		if err != nil {
			logf("deleting: %v", err)
		}
		err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, f.timeoutFor(), true, func(context.Context) (bool, error) {
			p := left()
			return p.Servers+p.Children == 0, nil
		})
	}
	close(progStop)
	<-progDone
	p := left()
	r.Delete.Left = p.Servers + p.Children
	r.Delete.Done = err == nil
	r.Delete.Seconds = time.Since(start).Seconds()
	if r.Delete.Done {
		logf("servers and children gone after %.1fs (the delete calls returned after %.1fs)", r.Delete.Seconds, r.Delete.CallsSeconds)
	} else {
		logf("after %.0fs, %d servers and %d children are left", r.Delete.Seconds, p.Servers, p.Children)
	}
}

// deleteNamespace deletes ns and waits until it is gone; it returns when
// the delete call returned, in seconds from its start.
func deleteNamespace(ctx context.Context, kube kubernetes.Interface, ns string, timeout time.Duration) (float64, error) {
	start := time.Now()
	if err := kube.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		return 0, fmt.Errorf("delete namespace %s: %w", ns, err)
	}
	called := time.Since(start).Seconds()
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		_, err := kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		return called, fmt.Errorf("namespace %s still there %s after its deletion: %w", ns, timeout, err)
	}
	return called, nil
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/controller/inferserver"
	"mindie.io/deployer/pkg/controller/manager"
	clientset "mindie.io/deployer/pkg/generated/clientset/versioned"
	inferinformers "mindie.io/deployer/pkg/generated/informers/externalversions"
	"mindie.io/deployer/test/bench/results"
)

// The floor: what a controller that cost nothing would take. mindie-apiserver
// runs without its controllers (restarted with --external-controllers and
// no mindie-controller), and the benchmark makes the writes of every
// server's first sync itself, each as soon as the server's create returned,
// from as many goroutines as the controller has workers: the servers'
// children (the baseline's, owned by the server), the status the controller
// wrote for the warm-up server, and an Event. The InferServers are created
// as in the servers' phase. What the servers' phase takes beyond the floor
// is the controller's own work (its informers, its queue, its reads); what
// the floor takes beyond the baseline is the InferServers' own API work.

// statusTemplate is the status the controller wrote for the warm-up server,
// from which the floor makes each server's.
type statusTemplate struct {
	server, revision string
	status           []byte // JSON
}

// newStatusTemplate takes s's status, which the controller wrote.
func newStatusTemplate(s *v1alpha1.InferServer) (*statusTemplate, error) {
	b, err := json.Marshal(s.Status)
	if err != nil {
		return nil, err
	}
	return &statusTemplate{server: s.Name, revision: s.Status.UpdateRevision, status: b}, nil
}

// forServer is the template's status as the controller would write it for
// s at revision rev: the names of the warm-up server and of its revision
// replaced, observedGeneration s's.
func (t *statusTemplate) forServer(s *v1alpha1.InferServer, rev string) (v1alpha1.InferServerStatus, error) {
	b := strings.ReplaceAll(string(t.status), t.revision, rev)
	b = strings.ReplaceAll(b, t.server, s.Name)
	var st v1alpha1.InferServerStatus
	if err := json.Unmarshal([]byte(b), &st); err != nil {
		return st, err
	}
	st.ObservedGeneration = s.Generation
	for i := range st.Conditions {
		st.Conditions[i].ObservedGeneration = s.Generation
	}
	return st, nil
}

// floorNamespace is the namespace of one run of the floor.
func floorNamespace(f runFlags, run int) string { return fmt.Sprintf("%s-%d", f.floorNS, run) }

// statusClient is how the controllers' process writes statuses: where they
// run in mindie-apiserver, straight to it (as its loopback client does);
// where they run in mindie-controller, through kube-apiserver.
func statusClient(cfg *rest.Config, f runFlags) (clientset.Interface, error) {
	if f.external || f.metricsURL == "" {
		return clientset.NewForConfig(cfg)
	}
	u, err := url.Parse(f.metricsURL)
	if err != nil {
		return nil, fmt.Errorf("-metrics-url %q: %w", f.metricsURL, err)
	}
	c := rest.CopyConfig(cfg)
	c.Host = u.Scheme + "://" + u.Host
	if f.metricsCA != "" {
		c.CAData, c.CAFile, c.ServerName = nil, f.metricsCA, ""
	}
	return clientset.NewForConfig(c)
}

// floorRuns gathers the runs of the floor; done puts their medians into a
// measurement.
type floorRuns struct {
	created, observed []float64
	cpus              []map[string]float64
	errs              int
}

// firstSync makes the writes of s's first sync: its revision created, its
// Deployment and Service applied at once, its status written, an Event.
func firstSync(ctx context.Context, c *cluster, tmpl *statusTemplate, s *v1alpha1.InferServer) error {
	rev, dep, svc, err := inferserver.FirstChildren(s)
	if err != nil {
		return err
	}
	if err := (children{rev: rev, dep: dep, svc: svc}).write(ctx, c.kube); err != nil {
		return err
	}
	st, err := tmpl.forServer(s, rev.Name)
	if err != nil {
		return err
	}
	s = s.DeepCopy()
	s.Status = st
	if _, err := c.status.InferV1alpha1().InferServers(s.Namespace).UpdateStatus(ctx, s, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update status of %s: %w", s.Name, err)
	}
	now := metav1.Now()
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: s.Name + ".", Namespace: s.Namespace},
		InvolvedObject: corev1.ObjectReference{
			Kind: "InferServer", APIVersion: v1alpha1.SchemeGroupVersion.String(),
			Namespace: s.Namespace, Name: s.Name, UID: s.UID, ResourceVersion: s.ResourceVersion,
		},
		Reason:  inferserver.ReasonInstanceCreated,
		Message: fmt.Sprintf("Created deployment %s for 1 instances (revision %s)", s.Name, rev.Name),
		Type:    corev1.EventTypeNormal, Count: 1, FirstTimestamp: now, LastTimestamp: now,
		Source: corev1.EventSource{Component: manager.EventComponent},
	}
	if _, err := c.kube.CoreV1().Events(s.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create event of %s: %w", s.Name, err)
	}
	return nil
}

// run measures the floor once, as run number run (from 0), in a namespace
// of its own, which it deletes afterwards (the servers' finalizers
// removed first: no controller runs to remove them).
func (fl *floorRuns) run(ctx context.Context, c *cluster, f runFlags, run int, tmpl *statusTemplate) error {
	ns := floorNamespace(f, run)
	if err := ensureNamespace(ctx, c.kube, ns); err != nil {
		return err
	}
	var mu sync.Mutex
	observedAt := map[string]time.Duration{}
	all := make(chan struct{})
	var start time.Time
	note := func(obj any) {
		s, ok := obj.(*v1alpha1.InferServer)
		if !ok || !observed(s) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if _, seen := observedAt[s.Name]; seen || start.IsZero() {
			return
		}
		observedAt[s.Name] = time.Since(start)
		if len(observedAt) == f.n {
			close(all)
		}
	}
	factory := inferinformers.NewSharedInformerFactoryWithOptions(c.infer, 0, inferinformers.WithNamespace(ns))
	inf := factory.Infer().V1alpha1().InferServers().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    note,
		UpdateFunc: func(_, obj any) { note(obj) },
	}); err != nil {
		return err
	}
	stop := make(chan struct{})
	defer func() { close(stop); factory.Shutdown() }()
	factory.Start(stop)
	factory.WaitForCacheSync(stop)

	waitQuiet(ctx, c.pids, f, fmt.Sprintf("floor run %d", run+1))
	meter := startCPU(c.pids, f.clkTck)
	mu.Lock()
	start = time.Now()
	mu.Unlock()
	created := make(chan *v1alpha1.InferServer, f.n)
	var wg sync.WaitGroup
	var syncErrs int
	var syncErr error
	for range f.controller.Workers {
		wg.Go(func() {
			for s := range created {
				errs, err := retried(ctx, func(ctx context.Context) error { return firstSync(ctx, c, tmpl, s) })
				mu.Lock()
				syncErrs += errs
				if err != nil {
					syncErr = err
				}
				mu.Unlock()
			}
		})
	}
	errs, err := createAll(ctx, f.n, f.workers, func(ctx context.Context, i int) error {
		s, err := c.infer.InferV1alpha1().InferServers(ns).Create(ctx, serverObject(ns, name("srv", i)), metav1.CreateOptions{})
		if err == nil {
			created <- s
		}
		return err
	}, func(int) {})
	createdSecs := time.Since(start).Seconds()
	close(created)
	wg.Wait()
	fl.errs += errs + syncErrs
	if err == nil {
		err = syncErr
	}
	if err != nil {
		meter.stop()
		return fmt.Errorf("floor: %w", err)
	}
	timeout := f.timeoutFor()
	select {
	case <-all:
	case <-time.After(timeout - time.Since(start)):
	case <-ctx.Done():
		return ctx.Err()
	}
	cpu := meter.stop()
	mu.Lock()
	seen := len(observedAt)
	var last time.Duration
	for _, d := range observedAt {
		last = max(last, d)
	}
	mu.Unlock()
	if seen < f.n {
		return fmt.Errorf("floor: the watch saw %d of %d statuses observed within %s", seen, f.n, timeout)
	}
	fl.created, fl.observed, fl.cpus = append(fl.created, createdSecs), append(fl.observed, last.Seconds()), append(fl.cpus, cpu)
	logf("floor run %d: %d servers created in %.2fs, every status observed after %.2fs", run+1, f.n, createdSecs, last.Seconds())

	// No controller removes the finalizer the servers were created with.
	if _, err := createAll(ctx, f.n, f.workers, func(ctx context.Context, i int) error {
		_, err := c.infer.InferV1alpha1().InferServers(ns).Patch(ctx, name("srv", i), types.MergePatchType,
			[]byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
		return err
	}, func(int) {}); err != nil {
		return fmt.Errorf("floor: removing the finalizers: %w", err)
	}
	if _, err := deleteNamespace(ctx, c.kube, ns, timeout); err != nil {
		return fmt.Errorf("floor: %w", err)
	}
	return nil
}

// done puts the medians of the runs into r; the CPU is that of the run
// whose time is the median.
func (fl *floorRuns) done(r *results.Measurement, workers int) {
	if len(fl.observed) == 0 {
		return
	}
	median := medianOf(fl.observed)
	r.Floor = &results.Floor{
		Workers:         workers,
		CreatedSeconds:  medianOf(fl.created),
		ObservedSeconds: median,
		Runs:            fl.observed,
		Errors:          fl.errs,
		CPU:             fl.cpus[slices.Index(fl.observed, median)],
	}
}

// floorWarmup creates one InferServer and deletes it again, its finalizer
// removed: mindie-apiserver, restarted without its controllers, serves
// writes through the aggregator.
func floorWarmup(ctx context.Context, infer clientset.Interface, ns, name string) (float64, error) {
	start := time.Now()
	if _, err := infer.InferV1alpha1().InferServers(ns).Create(ctx, serverObject(ns, name), metav1.CreateOptions{}); err != nil {
		return 0, fmt.Errorf("create warm-up server: %w", err)
	}
	if _, err := infer.InferV1alpha1().InferServers(ns).Patch(ctx, name, types.MergePatchType,
		[]byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{}); err != nil {
		return 0, fmt.Errorf("remove the warm-up server's finalizer: %w", err)
	}
	if err := infer.InferV1alpha1().InferServers(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		return 0, fmt.Errorf("delete warm-up server: %w", err)
	}
	return time.Since(start).Seconds(), nil
}

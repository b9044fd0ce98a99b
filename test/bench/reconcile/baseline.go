package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/controller/inferserver"
	"mindie.io/deployer/test/bench/results"
)

// children are the objects the controller writes on the first sync of one
// single-node InferServer, as the baseline writes them.
type children struct {
	rev *appsv1.ControllerRevision
	dep *appsv1ac.DeploymentApplyConfiguration
	svc *corev1ac.ServiceApplyConfiguration
}

// childrenPerServer is how many objects the baseline writes per server.
const childrenPerServer = 3

// baselineChildren is what the controller would write for server i of the
// benchmark were it in namespace ns: the children of a server like the
// benchmark's, defaulted as mindie-apiserver defaults it, with a made-up
// UID, and without owner references (there is no InferServer to own them,
// and the garbage collector would delete the children of a missing owner).
func baselineChildren(ns string, i int) (children, error) {
	s := serverObject(ns, name("srv", i))
	s.UID = types.UID(fmt.Sprintf("00000000-0000-4000-8000-%012d", i))
	s.Generation = 1
	v1alpha1.SetObjectDefaults_InferServer(s)
	rev, dep, svc, err := inferserver.FirstChildren(s)
	if err != nil {
		return children{}, fmt.Errorf("children of %s: %w", s.Name, err)
	}
	rev.OwnerReferences = nil
	dep.OwnerReferences = nil
	svc.OwnerReferences = nil
	return children{rev: rev, dep: dep, svc: svc}, nil
}

// write writes c as the controller does on a server's first sync: it
// creates the ControllerRevision, then applies the Deployment and the
// Service at the same time. A retry after a partial failure finds the
// revision there and applies again.
func (c children) write(ctx context.Context, kube kubernetes.Interface) error {
	ns := c.rev.Namespace
	_, err := kube.AppsV1().ControllerRevisions(ns).Create(ctx, c.rev, metav1.CreateOptions{FieldManager: inferserver.FieldManager})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create controllerrevision %s: %w", c.rev.Name, err)
	}
	apply := metav1.ApplyOptions{FieldManager: inferserver.FieldManager, Force: true}
	var wg sync.WaitGroup
	var depErr, svcErr error
	wg.Go(func() {
		if _, err := kube.AppsV1().Deployments(ns).Apply(ctx, c.dep, apply); err != nil {
			depErr = fmt.Errorf("apply deployment %s: %w", *c.dep.Name, err)
		}
	})
	wg.Go(func() {
		if _, err := kube.CoreV1().Services(ns).Apply(ctx, c.svc, apply); err != nil {
			svcErr = fmt.Errorf("apply service %s: %w", *c.svc.Name, err)
		}
	})
	wg.Wait()
	if depErr != nil {
		return depErr
	}
	return svcErr
}

// remove deletes c (the Deployment's ReplicaSets and pods are left to the
// garbage collector).
func (c children) remove(ctx context.Context, kube kubernetes.Interface) error {
	ns := c.rev.Namespace
	bg := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{PropagationPolicy: &bg}
	for _, del := range []func() error{
		func() error { return kube.AppsV1().Deployments(ns).Delete(ctx, *c.dep.Name, opts) },
		func() error { return kube.CoreV1().Services(ns).Delete(ctx, *c.svc.Name, opts) },
		func() error { return kube.AppsV1().ControllerRevisions(ns).Delete(ctx, c.rev.Name, opts) },
	} {
		if err := del(); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// baselineNamespace is the namespace of one baseline run: each run has its
// own, so that a ReplicaSet the garbage collector has not yet removed
// never meets a Deployment of the same name.
func baselineNamespace(f runFlags, run int) string { return fmt.Sprintf("%s-%d", f.baselineNS, run) }

// childrenSeen is what a baseline run's watch saw: the objects of each kind
// by name, and when it had seen them all.
type childrenSeen struct {
	mu    sync.Mutex
	want  int
	names map[string]bool // kind/name
	start time.Time
	at    time.Duration
	all   chan struct{}
}

func (s *childrenSeen) add(kind, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.names[kind+"/"+name] {
		return
	}
	s.names[kind+"/"+name] = true
	if len(s.names) == s.want {
		s.at = time.Since(s.start)
		close(s.all)
	}
}

// baselineRuns gathers the runs of the baseline, which take turns with
// the servers' runs; done puts their medians into a measurement.
type baselineRuns struct {
	created, seen []float64
	cpus          []map[string]float64
	requests      [][]results.Requests
	// first is the first server's children as the first run wrote them.
	first *firstChildren
}

// run writes the children of N servers once, as run number run (from 0),
// into a namespace of its own; after it, its objects are deleted (and
// timed). It waits for the cluster to fall quiet first.
func (b *baselineRuns) run(ctx context.Context, c *cluster, f runFlags, run int, r *results.Measurement) error {
	kube, pids := c.kube, c.pids
	r.Baseline.Objects = childrenPerServer * f.n
	ns := baselineNamespace(f, run)
	if err := ensureNamespace(ctx, kube, ns); err != nil {
		return err
	}
	objs := make([]children, f.n)
	for i := range objs {
		var err error
		if objs[i], err = baselineChildren(ns, i); err != nil {
			return err
		}
	}
	r.Quiet = append(r.Quiet, waitQuiet(ctx, pids, f, fmt.Sprintf("baseline run %d", run+1)))
	m0 := c.scrape(ctx)
	meter := startCPU(pids, f.clkTck)
	res, err := baselineOnce(ctx, kube, f, ns, objs, func() {
		b.cpus = append(b.cpus, meter.stop())
		if m1 := c.scrape(ctx); m0 != nil && m1 != nil {
			b.requests = append(b.requests, writeRequests(m0, m1))
		} else {
			b.requests = append(b.requests, nil)
		}
	})
	r.Baseline.Errors += res.errs
	if err != nil {
		return err
	}
	b.created, b.seen = append(b.created, res.created), append(b.seen, res.seen)
	r.Baseline.DeleteRuns = append(r.Baseline.DeleteRuns, res.deleted)
	if b.first == nil {
		b.first = res.first
	}
	logf("baseline run %d: %d objects written in %.2fs, all seen after %.2fs, deleted after %.2fs",
		run+1, len(objs)*childrenPerServer, res.created, res.seen, res.deleted)
	return nil
}

// done puts the medians of the runs into r, a small N taking only a
// fraction of a second a run; the CPU and the requests are those of the
// run whose time is the median.
func (b *baselineRuns) done(r *results.Measurement) {
	r.Baseline.CreatedSeconds, r.Baseline.SeenSeconds = medianOf(b.created), medianOf(b.seen)
	r.Baseline.SeenRuns = b.seen
	r.Baseline.DeleteSeconds = medianOf(r.Baseline.DeleteRuns)
	median := slices.Index(b.seen, r.Baseline.SeenSeconds)
	r.Baseline.CPU, r.Baseline.Requests = b.cpus[median], b.requests[median]
}

// medianOf is the median of xs (the lower middle one of an even count,
// so that it is one of the values).
func medianOf(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	return s[(len(s)-1)/2]
}

// baselineRun is what one baseline run measured: seconds until every write
// returned, until the watch saw every object, and until it saw them gone
// after the deletion; the failed write attempts; and the first server's
// children as written.
type baselineRun struct {
	created, seen, deleted float64
	errs                   int
	first                  *firstChildren
}

// baselineOnce writes objs from f.workers goroutines and times it until a
// watch of the namespace has seen all of them, when it calls seenAll; then
// it deletes them and times that until the watch saw them gone.
func baselineOnce(ctx context.Context, kube kubernetes.Interface, f runFlags, ns string, objs []children, seenAll func()) (baselineRun, error) {
	var out baselineRun
	factory := kubeinformers.NewSharedInformerFactoryWithOptions(kube, 0, kubeinformers.WithNamespace(ns))
	deps := factory.Apps().V1().Deployments().Informer()
	svcs := factory.Core().V1().Services().Informer()
	revs := factory.Apps().V1().ControllerRevisions().Informer()
	seen := &childrenSeen{want: childrenPerServer * len(objs), names: map[string]bool{}, all: make(chan struct{})}
	for _, reg := range []struct {
		inf  cache.SharedIndexInformer
		kind string
	}{{deps, "Deployment"}, {svcs, "Service"}, {revs, "ControllerRevision"}} {
		kind := reg.kind
		if _, err := reg.inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(obj any) {
			if m, ok := obj.(metav1.Object); ok {
				seen.add(kind, m.GetName())
			}
		}}); err != nil {
			return out, err
		}
	}
	stop := make(chan struct{})
	defer func() { close(stop); factory.Shutdown() }()
	factory.Start(stop)
	factory.WaitForCacheSync(stop)

	timeout := f.timeoutFor()
	seen.mu.Lock()
	seen.start = time.Now()
	seen.mu.Unlock()
	errs, err := createAll(ctx, len(objs), f.workers, func(ctx context.Context, i int) error {
		return objs[i].write(ctx, kube)
	}, func(int) {})
	out.errs = errs
	out.created = time.Since(seen.start).Seconds()
	if err != nil {
		return out, fmt.Errorf("baseline: write children: %w", err)
	}
	select {
	case <-seen.all:
	case <-time.After(timeout - time.Since(seen.start)):
	case <-ctx.Done():
		return out, ctx.Err()
	}
	seen.mu.Lock()
	got, at := len(seen.names), seen.at
	seen.mu.Unlock()
	if got < seen.want {
		return out, fmt.Errorf("baseline: the watch saw %d of %d objects within %s", got, seen.want, timeout)
	}
	seenAll()
	out.seen = at.Seconds()
	if out.first, err = readFirstChildren(ctx, kube, ns); err != nil {
		logf("baseline: reading the first server's children: %v", err)
	}

	start := time.Now()
	if f.deleteBy == deleteByNamespace {
		if _, err := deleteNamespace(ctx, kube, ns, timeout); err != nil {
			return out, fmt.Errorf("baseline: %w", err)
		}
	} else if _, err := createAll(ctx, len(objs), f.workers, func(ctx context.Context, i int) error {
		return objs[i].remove(ctx, kube)
	}, func(int) {}); err != nil {
		return out, fmt.Errorf("baseline: delete children: %w", err)
	}
	left := func() int {
		return len(deps.GetStore().ListKeys()) + len(svcs.GetStore().ListKeys()) + len(revs.GetStore().ListKeys())
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		return left() == 0, nil
	})
	if err != nil {
		return out, fmt.Errorf("baseline: %d objects left %s after the deletion: %w", left(), timeout, err)
	}
	out.deleted = time.Since(start).Seconds()
	return out, nil
}

// firstChildren is what the controller's field manager owns of the first
// server's children, or the baseline's, without their namespace and
// owner references: what the comparison of the two looks at.
type firstChildren struct {
	rev *appsv1.ControllerRevision
	dep *appsv1ac.DeploymentApplyConfiguration
	svc *corev1ac.ServiceApplyConfiguration
}

// readFirstChildren reads the children of server 0 in ns.
func readFirstChildren(ctx context.Context, kube kubernetes.Interface, ns string) (*firstChildren, error) {
	srv := name("srv", 0)
	revs, err := kube.AppsV1().ControllerRevisions(ns).List(ctx, metav1.ListOptions{LabelSelector: v1alpha1.LabelServer + "=" + srv})
	if err != nil {
		return nil, err
	}
	if len(revs.Items) != 1 {
		return nil, fmt.Errorf("%d ControllerRevisions of %s/%s, want 1", len(revs.Items), ns, srv)
	}
	dep, err := kube.AppsV1().Deployments(ns).Get(ctx, srv, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	svc, err := kube.CoreV1().Services(ns).Get(ctx, srv, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	out := &firstChildren{}
	if out.dep, err = appsv1ac.ExtractDeployment(dep, inferserver.FieldManager); err != nil {
		return nil, err
	}
	if out.svc, err = corev1ac.ExtractService(svc, inferserver.FieldManager); err != nil {
		return nil, err
	}
	out.dep.Namespace, out.dep.OwnerReferences = nil, nil
	out.svc.Namespace, out.svc.OwnerReferences = nil, nil
	// A revision is created, not applied: what matters is what it holds.
	rev := revs.Items[0]
	out.rev = &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{Name: rev.Name, Labels: rev.Labels, Annotations: rev.Annotations},
		Data:       rev.Data, Revision: rev.Revision,
	}
	return out, nil
}

// differences names the children that differ between a and b, with both
// versions of each.
func (a *firstChildren) differences(b *firstChildren) string {
	var out []string
	for _, c := range []struct {
		kind string
		x, y any
	}{{"ControllerRevision", a.rev, b.rev}, {"Deployment", a.dep, b.dep}, {"Service", a.svc, b.svc}} {
		if apiequality.Semantic.DeepEqual(c.x, c.y) {
			continue
		}
		x, _ := json.Marshal(c.x)
		y, _ := json.Marshal(c.y)
		if string(x) == string(y) {
			// Semantically unequal but alike in JSON: raw bytes differing
			// only in form.
			continue
		}
		out = append(out, fmt.Sprintf("%s: baseline %s, controller %s", c.kind, x, y))
	}
	return strings.Join(out, "; ")
}

// compareBaseline compares the baseline's children of the first server
// with those the controller wrote for the first InferServer in ns.
func compareBaseline(ctx context.Context, kube kubernetes.Interface, ns string, base *firstChildren, r *results.Measurement) {
	if base == nil {
		return
	}
	ctrl, err := readFirstChildren(ctx, kube, ns)
	if err != nil {
		logf("comparing the baseline's children with the controller's: %v", err)
		return
	}
	r.Baseline.Compared = true
	r.Baseline.Difference = base.differences(ctrl)
	r.Baseline.Same = r.Baseline.Difference == ""
	if r.Baseline.Same {
		logf("the baseline wrote the same children as the controller (first server compared)")
	} else {
		logf("the baseline's children differ from the controller's: %s", r.Baseline.Difference)
	}
}

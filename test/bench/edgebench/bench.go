package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"mindie.io/deployer/apis/infer/v1alpha1"
	clientset "mindie.io/deployer/pkg/generated/clientset/versioned"
	"mindie.io/deployer/pkg/simulator/kubelet"
	"mindie.io/deployer/test/bench/measure"
	"mindie.io/deployer/test/bench/results"
)

// benchQPS and benchBurst limit the benchmark's own client (its watches,
// the namespaces, the job), kept apart from the baseline's so that
// neither holds the other back.
const (
	benchQPS   = 50
	benchBurst = 100
)

// bench holds the clients and the memory sampling of one run.
type bench struct {
	c    config
	logf func(string, ...any)
	// kube and infer are the benchmark's own clients; limited is the
	// baseline's, limited as the controllers' client is.
	kube    kubernetes.Interface
	limited kubernetes.Interface
	infer   clientset.Interface
	pid     int
	mem     *memory
	// qps and burst limit the baseline's client: the controllers' limits.
	qps   float32
	burst int
}

func newBench(ctx context.Context, c config, logf func(string, ...any)) (*bench, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", c.kubeconfig, err)
	}
	b := &bench{c: c, logf: logf}
	if b.pid, err = readPid(c.pidFile); err != nil {
		return nil, err
	}
	args, err := readCmdline(b.pid)
	if err != nil {
		return nil, fmt.Errorf("mindie-apiserver's command line: %w", err)
	}
	if b.qps, b.burst, err = controllerLimits(args); err != nil {
		return nil, err
	}
	own := rest.CopyConfig(cfg)
	own.QPS, own.Burst, own.UserAgent = benchQPS, benchBurst, "edgebench"
	if b.kube, err = kubernetes.NewForConfig(own); err != nil {
		return nil, err
	}
	if b.infer, err = clientset.NewForConfig(own); err != nil {
		return nil, err
	}
	limited := rest.CopyConfig(cfg)
	limited.QPS, limited.Burst, limited.UserAgent = b.qps, b.burst, "edgebench-direct"
	if b.limited, err = kubernetes.NewForConfig(limited); err != nil {
		return nil, err
	}
	if b.mem, err = sampleMemory(ctx, b.pid, c.sample); err != nil {
		return nil, err
	}
	return b, nil
}

// run measures everything in order: the nodes, mindie-apiserver idle, the
// baseline, the job, the memory after. What it could not measure stays
// zero in the results it returns, beside the error.
func (b *bench) run(ctx context.Context) (res *results.Edge, err error) {
	res = &results.Edge{Version: results.EdgeVersion, Goals: goals}
	job := newJob(b.c.jobNamespace, b.c.maxConcurrent, int32(b.c.timeout/time.Second))
	y, err := jobYAML(job)
	if err != nil {
		return res, err
	}
	res.Setup = results.EdgeSetup{
		Nodes: b.c.nodes, MaxConcurrentNodes: b.c.maxConcurrent, InstancesPerNode: instancesPerNode(job), Job: y,
		Creators: b.c.creators, ClientQPS: float64(b.qps), ClientBurst: b.burst, TimeoutSeconds: int(b.c.timeout / time.Second),
		SampleMillis: int(b.c.sample / time.Millisecond), ProgressSeconds: b.c.progress.Seconds(),
		IdleSeconds: b.c.idle.Seconds(), SettleSeconds: b.c.settle.Seconds(),
	}
	res.Job.StatusWrites, res.Job.StatusConflicts = -1, -1

	nodes, arch, err := b.waitNodes(ctx)
	if err != nil {
		return res, err
	}
	res.Setup.Architecture = arch
	for _, ns := range []string{b.c.directNamespace, b.c.jobNamespace} {
		if err := b.ensureNamespace(ctx, ns); err != nil {
			return res, err
		}
	}

	b.logf("sampling mindie-apiserver (pid %d) idle for %s", b.pid, b.c.idle)
	idleFrom := time.Now()
	if err := pause(ctx, b.c.idle); err != nil {
		return res, err
	}
	res.Memory.IdleMiB = measure.Round(b.mem.medianMiB(idleFrom, time.Time{}), 1)
	b.logf("idle: VmRSS %.1f MiB (median of %d samples)", res.Memory.IdleMiB, len(b.mem.window(idleFrom, time.Time{})))

	from := time.Now()
	// The components' throttling over both phases, however far they got.
	defer func() {
		if b.c.logsDir == "" {
			return
		}
		var terr error
		if res.Throttling, terr = readThrottling(b.c.logsDir, from, time.Now()); terr != nil {
			b.logf("reading the client-side throttling in %s: %v", b.c.logsDir, terr)
		}
		for _, t := range res.Throttling {
			b.logf("%s: %d log lines of client-side throttling, waits median %.2f s, max %.2f s", t.Component, t.Lines, t.MedianWaitSeconds, t.MaxWaitSeconds)
		}
	}()
	if res.Direct, err = b.direct(ctx, job, nodes); err != nil {
		return res, fmt.Errorf("baseline: %w", err)
	}
	if err := pause(ctx, b.c.settle); err != nil {
		return res, err
	}
	var jobFrom, jobUntil time.Time
	res.Job, jobFrom, jobUntil, err = b.job(ctx, job)
	if !jobFrom.IsZero() {
		res.Memory.PeakMiB = measure.Round(b.mem.peakMiB(jobFrom, jobUntil), 1)
	}
	if err != nil {
		return res, fmt.Errorf("job: %w", err)
	}
	b.logf("job: peak VmRSS %.1f MiB; waiting %s before reading it after the deletion", res.Memory.PeakMiB, b.c.settle)
	if err := pause(ctx, b.c.settle); err != nil {
		return res, err
	}
	if err := b.mem.sample(); err != nil {
		return res, fmt.Errorf("mindie-apiserver after the job: %w", err)
	}
	res.Memory.AfterMiB = measure.Round(b.mem.lastMiB(), 1)
	if _, hwm, err := procStatus(b.pid); err == nil {
		res.Memory.HWMMiB = measure.Round(mib(hwm), 1)
	}
	res.Memory.Samples = b.mem.count()
	b.logf("memory: idle %.1f MiB, peak during the job %.1f MiB, after %.1f MiB, high-water mark %.1f MiB",
		res.Memory.IdleMiB, res.Memory.PeakMiB, res.Memory.AfterMiB, res.Memory.HWMMiB)
	return res, b.mem.failed()
}

// pause waits d, or until ctx ends.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func secs(d time.Duration) float64 { return measure.Round(d.Seconds(), 3) }

// since is t − t0 in seconds, 0 when t was not seen.
func since(t0, t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return secs(t.Sub(t0))
}

// nodeSchedulable says the node is Ready and carries no taint but the
// edge nodes' own: the node lifecycle controller removes the not-ready
// taint of a node some time after it turns Ready, and at 1,000 nodes
// that lag would be measured as the baseline's scheduling.
func nodeSchedulable(n *corev1.Node) bool {
	for _, t := range n.Spec.Taints {
		if t.Key != kubelet.EdgeTaintKey {
			return false
		}
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// waitNodes waits until exactly -nodes edge nodes are registered,
// Ready and schedulable, and returns their names, sorted, and their one architecture.
func (b *bench) waitNodes(ctx context.Context) ([]string, string, error) {
	var names []string
	var arch string
	sel := kubelet.EdgeLabel + "=true"
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	deadline := time.Now().Add(b.c.nodeTimeout)
	for {
		list, err := b.kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: sel})
		msg := ""
		if err != nil {
			msg = err.Error()
		} else {
			names = names[:0]
			archs := map[string]int{}
			for _, n := range list.Items {
				if nodeSchedulable(&n) {
					names = append(names, n.Name)
				}
				archs[n.Labels[corev1.LabelArchStable]]++
			}
			switch {
			case len(list.Items) > b.c.nodes:
				return nil, "", fmt.Errorf("%d nodes labelled %s, want %d: the job targets them all", len(list.Items), sel, b.c.nodes)
			case len(archs) > 1:
				return nil, "", fmt.Errorf("the nodes labelled %s have several architectures %v: the job would be refused", sel, archs)
			case len(names) == b.c.nodes:
				for a := range archs {
					arch = a
				}
				slices.Sort(names)
				b.logf("%d edge nodes Ready and schedulable (%s)", len(names), arch)
				return names, arch, nil
			}
			msg = fmt.Sprintf("%d nodes labelled %s, %d Ready and schedulable", len(list.Items), sel, len(names))
		}
		if time.Now().After(deadline) {
			return nil, "", fmt.Errorf("%d edge nodes Ready: not within %s; last: %s", b.c.nodes, b.c.nodeTimeout, msg)
		}
		select {
		case <-ctx.Done():
			return nil, "", ctx.Err()
		case <-tick.C:
		}
	}
}

// ensureNamespace creates namespace unless it is there, checks it holds
// no pods, and waits for its default service account, without which a
// pod is refused.
func (b *bench) ensureNamespace(ctx context.Context, ns string) error {
	_, err := b.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", ns, err)
	}
	pods, err := b.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		return fmt.Errorf("list the pods of namespace %s: %w", ns, err)
	}
	if len(pods.Items) > 0 {
		return fmt.Errorf("namespace %s holds pods (%s, ...) of an earlier run: use a fresh cluster", ns, pods.Items[0].Name)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := b.kube.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the default service account of namespace %s: not within a minute: %w", ns, err)
		}
		if err := pause(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

// forAll calls f on every pod, b.c.creators at a time, and returns when
// the last call returned; the error counts the calls that failed and
// gives the first.
func (b *bench) forAll(ctx context.Context, pods []*corev1.Pod, what string, f func(context.Context, *corev1.Pod) error) (time.Time, error) {
	work := make(chan *corev1.Pod)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed int
	var first error
	for range b.c.creators {
		wg.Go(func() {
			for p := range work {
				if err := f(ctx, p); err != nil {
					mu.Lock()
					if failed++; first == nil {
						first = fmt.Errorf("%s %s: %w", what, p.Name, err)
					}
					mu.Unlock()
				}
			}
		})
	}
feed:
	for _, p := range pods {
		select {
		case work <- p:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	done := time.Now()
	if err := ctx.Err(); err != nil {
		return done, err
	}
	if failed > 0 {
		return done, fmt.Errorf("%d of %d: %w", failed, len(pods), first)
	}
	return done, nil
}

// track samples a phase's progress every b.c.progress from t0 until the
// function it returns is called; that takes one last point and returns
// them all. jw is nil for the baseline.
func (b *bench) track(ctx context.Context, t0 time.Time, pw *podWatch, jw *jobWatch) func() []results.EdgeProgress {
	var mu sync.Mutex
	var points []results.EdgeProgress
	point := func() {
		c := pw.counts()
		p := results.EdgeProgress{Seconds: measure.Round(time.Since(t0).Seconds(), 1), Pods: c.seen, Scheduled: c.scheduled, Ready: c.ready,
			RSSMiB: measure.Round(b.mem.lastMiB(), 1)}
		if jw != nil {
			if j, _, _ := jw.state(""); j != nil {
				p.NodesSucceeded, p.NodesDeploying = int(j.Status.Succeeded), int(j.Status.Running)
			}
		}
		mu.Lock()
		points = append(points, p)
		mu.Unlock()
	}
	pctx, cancel := context.WithCancel(ctx)
	done := measure.Sample(pctx, b.c.progress, point)
	return func() []results.EdgeProgress {
		cancel()
		<-done
		point()
		return points
	}
}

// direct is the baseline: the job's pods created directly, one create
// request per pod, timed from the first to every pod Running and Ready;
// then deleted, timed until every one is gone.
func (b *bench) direct(ctx context.Context, job *v1alpha1.EdgeDeployment, nodes []string) (results.EdgeDirect, error) {
	ns := b.c.directNamespace
	pw, err := startPodWatch(ctx, b.kube, ns)
	if err != nil {
		return results.EdgeDirect{}, err
	}
	pods := directPods(job, nodes, ns)
	res := results.EdgeDirect{Pods: len(pods)}
	b.logf("direct: creating %d pods in namespace %s, %d at a time, through a client limited as mindie-apiserver's controllers are: %g requests/s (burst %d)",
		len(pods), ns, b.c.creators, b.qps, b.burst)
	t0 := time.Now()
	_ = b.mem.sample() // a reading at each end of the phase, however short
	stopTrack := b.track(ctx, t0, pw, nil)
	created, err := b.forAll(ctx, pods, "create pod", func(ctx context.Context, p *corev1.Pod) error {
		_, err := b.limited.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		return err
	})
	res.CreatedSeconds = secs(created.Sub(t0))
	if err != nil {
		res.Progress = stopTrack()
		return res, err
	}
	b.logf("direct: %d pods created in %.2f s", len(pods), res.CreatedSeconds)
	err = waitFor(ctx, pw.changed, b.c.timeout, "every pod created directly Running and Ready", func() (bool, string) {
		c := pw.counts()
		return c.ready >= len(pods), fmt.Sprintf("%d of %d pods seen, %d bound, %d Running and Ready", c.seen, len(pods), c.scheduled, c.ready)
	})
	res.Progress = stopTrack()
	res.ScheduledSeconds = since(t0, pw.latest(func(t *podTimes) time.Time { return t.scheduled }, false))
	if err != nil {
		return res, err
	}
	readyAt := pw.latest(func(t *podTimes) time.Time { return t.ready }, false)
	res.ReadySeconds = since(t0, readyAt)
	b.logf("direct: every pod bound at %.2f s, Running and Ready at %.2f s", res.ScheduledSeconds, res.ReadySeconds)

	t1 := time.Now()
	if _, err := b.forAll(ctx, pods, "delete pod", func(ctx context.Context, p *corev1.Pod) error {
		err := b.limited.CoreV1().Pods(ns).Delete(ctx, p.Name, metav1.DeleteOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}); err != nil {
		return res, err
	}
	err = waitFor(ctx, pw.changed, b.c.timeout, "every pod created directly gone", func() (bool, string) {
		c := pw.counts()
		return c.live == 0, fmt.Sprintf("%d pods left", c.live)
	})
	if err != nil {
		return res, err
	}
	res.DeleteSeconds = since(t1, pw.latest(func(t *podTimes) time.Time { return t.gone }, false))
	_ = b.mem.sample()
	res.PeakRSSMiB = measure.Round(b.mem.peakMiB(t0, time.Time{}), 1)
	b.logf("direct: deleted, every pod gone in %.2f s; mindie-apiserver's peak VmRSS meanwhile %.1f MiB", res.DeleteSeconds, res.PeakRSSMiB)
	return res, nil
}

// ended says the job's run is over: any phase but the first and Running.
func ended(p v1alpha1.EdgeDeploymentPhase) bool {
	return p != "" && p != v1alpha1.EdgePhaseQueued && p != v1alpha1.EdgePhaseRunning
}

// failedNodes describes up to n nodes of the job that did not succeed.
func failedNodes(e *v1alpha1.EdgeDeployment, n int) string {
	var out []string
	for _, node := range e.Status.Nodes {
		if node.State == v1alpha1.EdgeNodeSucceeded {
			continue
		}
		if len(out) == n {
			out = append(out, "...")
			break
		}
		s := fmt.Sprintf("%s %s", node.Node, node.State)
		if node.Reason != "" {
			s += " (" + node.Reason + ": " + node.Message + ")"
		}
		out = append(out, s)
	}
	return strings.Join(out, "; ")
}

// job creates the EdgeDeployment and times it to Succeeded, checks every
// node succeeded, then deletes it and times until it and its pods are
// gone. It returns when the job was created and, once created, when the
// phase ended (for the memory's peak between the two).
func (b *bench) job(ctx context.Context, job *v1alpha1.EdgeDeployment) (res results.EdgeJob, t0, until time.Time, err error) {
	res.StatusWrites, res.StatusConflicts = -1, -1
	ns := job.Namespace
	pw, err := startPodWatch(ctx, b.kube, ns)
	if err != nil {
		return res, t0, until, err
	}
	jw, err := startJobWatch(ctx, b.infer, ns, job.Name)
	if err != nil {
		return res, t0, until, err
	}
	b.logf("job: creating EdgeDeployment %s/%s: %d nodes, at most %d at a time", ns, job.Name, b.c.nodes, b.c.maxConcurrent)
	cpu0, cpuErr := cpuTicks(b.pid)
	t0 = time.Now()
	_ = b.mem.sample() // a reading at each end of the phase, however short
	// Whatever happens from here on, the memory is read up to its end.
	defer func() {
		_ = b.mem.sample()
		until = time.Now()
	}()
	stopTrack := b.track(ctx, t0, pw, jw)
	if _, err := b.infer.InferV1alpha1().EdgeDeployments(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
		res.Progress = stopTrack()
		return res, t0, until, fmt.Errorf("create EdgeDeployment %s: %w", job.Name, err)
	}
	// The job times out on its own at spec.timeoutSeconds: a little
	// longer, so that its TimedOut phase is what ends the wait.
	err = waitFor(ctx, jw.changed, b.c.timeout+30*time.Second, "EdgeDeployment "+job.Name+" ended", func() (bool, string) {
		j, _, _ := jw.state("")
		if j == nil {
			return false, "not seen yet"
		}
		st := j.Status
		return ended(st.Phase), fmt.Sprintf("phase %s: %d queued, %d deploying, %d succeeded, %d failed, %d timed out",
			st.Phase, st.Queued, st.Running, st.Succeeded, st.Failed, st.TimedOut)
	})
	res.Progress = stopTrack()
	final, succeededAt, _ := jw.state(v1alpha1.EdgePhaseSucceeded)
	cpu1, cpuErr1 := cpuTicks(b.pid)
	if cpuErr == nil && cpuErr1 == nil {
		res.CPUSeconds = measure.Round(float64(cpu1-cpu0)/float64(b.c.clkTck), 2)
	}
	res.FirstPodSeconds = since(t0, pw.latest(func(t *podTimes) time.Time { return t.seen }, true))
	if c := pw.counts(); c.ready >= b.c.nodes*instancesPerNode(job) {
		res.PodsReadySeconds = since(t0, pw.latest(func(t *podTimes) time.Time { return t.ready }, false))
	}
	if final != nil {
		st := final.Status
		res.Phase, res.Targets = string(st.Phase), len(st.Targets)
		res.Succeeded, res.Failed, res.TimedOut = int(st.Succeeded), int(st.Failed), int(st.TimedOut)
		for _, n := range st.Nodes {
			if n.State == v1alpha1.EdgeNodeSucceeded {
				res.NodesSucceeded++
			}
		}
		if st.StartTime != nil && st.CompletionTime != nil {
			res.CompletionSeconds = secs(st.CompletionTime.Sub(st.StartTime.Time))
		}
		if data, jerr := json.Marshal(final); jerr == nil {
			res.StatusBytes = len(data)
		}
	}
	if b.c.auditLog != "" {
		if w, c, aerr := countStatusWrites(b.c.auditLog, ns, job.Name); aerr != nil {
			b.logf("job: counting the status writes in %s: %v", b.c.auditLog, aerr)
		} else {
			res.StatusWrites, res.StatusConflicts = w, c
		}
	}
	if err != nil {
		return res, t0, until, err
	}
	if res.Phase != string(v1alpha1.EdgePhaseSucceeded) || !res.SucceededAll(b.c.nodes) {
		return res, t0, until, fmt.Errorf("EdgeDeployment %s ended %s after %.1f s with %d targets, %d of %d nodes succeeded, %d failed, %d timed out: %s",
			job.Name, res.Phase, time.Since(t0).Seconds(), res.Targets, res.Succeeded, b.c.nodes, res.Failed, res.TimedOut, failedNodes(final, 5))
	}
	res.SucceededSeconds = since(t0, succeededAt)
	b.logf("job: first pod at %.2f s, every pod Ready at %.2f s, Succeeded at %.2f s (status: %.0f s from start to completion); "+
		"status %d bytes, %d status writes (%d conflicts); mindie-apiserver used %.2f CPU s",
		res.FirstPodSeconds, res.PodsReadySeconds, res.SucceededSeconds, res.CompletionSeconds, res.StatusBytes, res.StatusWrites,
		res.StatusConflicts, res.CPUSeconds)

	cpu2, cpuErr2 := cpuTicks(b.pid)
	t1 := time.Now()
	if err := b.infer.InferV1alpha1().EdgeDeployments(ns).Delete(ctx, job.Name, metav1.DeleteOptions{}); err != nil {
		return res, t0, until, fmt.Errorf("delete EdgeDeployment %s: %w", job.Name, err)
	}
	err = waitFor(ctx, pw.changed, b.c.timeout, "EdgeDeployment "+job.Name+" and its pods gone", func() (bool, string) {
		_, _, gone := jw.state("")
		c := pw.counts()
		return !gone.IsZero() && c.live == 0, fmt.Sprintf("job gone %t, %d pods left", !gone.IsZero(), c.live)
	})
	if err != nil {
		return res, t0, until, err
	}
	_, _, jobGone := jw.state("")
	podsGone := pw.latest(func(t *podTimes) time.Time { return t.gone }, false)
	res.DeleteSeconds = since(t1, latest(jobGone, podsGone))
	if cpu3, err := cpuTicks(b.pid); err == nil && cpuErr2 == nil {
		res.DeleteCPUSeconds = measure.Round(float64(cpu3-cpu2)/float64(b.c.clkTck), 2)
	}
	b.logf("job: deleted, the job and its pods gone in %.2f s (mindie-apiserver used %.2f CPU s)", res.DeleteSeconds, res.DeleteCPUSeconds)
	return res, t0, until, nil
}

// latest is the later of two times.
func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

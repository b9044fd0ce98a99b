package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/ascend"
	clientset "mindie.io/deployer/pkg/generated/clientset/versioned"
	"mindie.io/deployer/pkg/podstatus"
	"mindie.io/deployer/test/bench/results"
)

const (
	npuType        = "Ascend910"
	simulatedLabel = "mindie.io/simulated" // kubelet.SimulatedLabel
	inferencePort  = "1025"                // spec.ports.inference's default
)

// policies are each scenario's spec.faultRescheduling ("": the default,
// Grace).
var policies = map[string]v1alpha1.FaultReschedulingPolicy{
	results.ScenarioNPUForce: v1alpha1.FaultReschedulingForce,
	results.ScenarioNPUGrace: "",
	results.ScenarioNodeLoss: "",
}

// bench holds the clients and the watch of one run.
type bench struct {
	c                  config
	kube               kubernetes.Interface
	infer              clientset.Interface
	logf               func(string, ...any)
	nodes, npusPerNode int
	tr                 *tracker
	stopWatch          context.CancelFunc
	http               *http.Client
}

func newBench(ctx context.Context, c config, logf func(string, ...any)) (*bench, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 50, 100
	cfg.UserAgent = "faultbench"
	cfg.WarningHandler = &onceWarnings{logf: logf, seen: map[string]bool{}}
	b := &bench{c: c, logf: logf, tr: &tracker{pods: map[types.UID]*podState{}},
		// A fresh connection for every chat: a pod that went away must not
		// answer through a connection kept from before.
		http: &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
	if b.kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, err
	}
	if b.infer, err = clientset.NewForConfig(cfg); err != nil {
		return nil, err
	}
	nodes, err := b.kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: simulatedLabel + "=true"})
	if err != nil {
		return nil, err
	}
	b.nodes = len(nodes.Items)
	for _, n := range nodes.Items {
		if q, ok := n.Status.Capacity[ascend.ResourceName(npuType)]; ok {
			b.npusPerNode = max(b.npusPerNode, int(q.Value()))
		}
	}
	// A replacement and the baseline's extra instance need room beside
	// the instances.
	if need := c.instances + 1; b.nodes < need || b.npusPerNode < c.npus {
		return nil, fmt.Errorf("%d simulated nodes of %d NPUs: want at least %d of %d", b.nodes, b.npusPerNode, need, c.npus)
	}
	_, err = b.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: c.namespace}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, err
	}
	wctx, cancel := context.WithCancel(ctx)
	b.stopWatch = cancel
	f := informers.NewSharedInformerFactoryWithOptions(b.kube, 0, informers.WithNamespace(c.namespace))
	pods := f.Core().V1().Pods().Informer()
	if _, err := pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { b.tr.update(o) },
		UpdateFunc: func(_, o any) { b.tr.update(o) },
		DeleteFunc: func(o any) { b.tr.remove(o) },
	}); err != nil {
		cancel()
		return nil, err
	}
	f.Start(wctx.Done())
	if !cache.WaitForCacheSync(wctx.Done(), pods.HasSynced) {
		cancel()
		return nil, fmt.Errorf("the pods of namespace %s did not sync", c.namespace)
	}
	logf("%d simulated nodes of %d NPUs; namespace %s", b.nodes, b.npusPerNode, c.namespace)
	return b, nil
}

func (b *bench) close() { b.stopWatch() }

// onceWarnings logs each distinct warning of the API servers once.
type onceWarnings struct {
	mu   sync.Mutex
	logf func(string, ...any)
	seen map[string]bool
}

func (w *onceWarnings) HandleWarningHeader(_ int, _ string, message string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.seen[message] {
		w.seen[message] = true
		w.logf("API warning (shown once): %s", message)
	}
}

// podState is what the watch saw of a pod, each moment when first seen.
type podState struct {
	uid                                       types.UID
	name, node, ip                            string
	server, router                            string
	chips                                     []string
	created, scheduled, ready, deleting, gone time.Time
	grace                                     int64
}

// instance says the pod is an instance pod (not a router pod) of server.
func (p *podState) instance(server string) bool { return p.server == server && p.router == "" }

// live says the pod is in the API and not being deleted.
func (p *podState) live() bool { return p.gone.IsZero() && p.deleting.IsZero() }

// tracker records when the watch first saw each pod created, bound,
// Ready, deleting and gone.
type tracker struct {
	mu   sync.Mutex
	pods map[types.UID]*podState
}

// state returns the pod's record, made if new; the caller holds mu.
func (t *tracker) state(p *corev1.Pod, now time.Time) *podState {
	s := t.pods[p.UID]
	if s == nil {
		s = &podState{uid: p.UID, name: p.Name, created: now}
		t.pods[p.UID] = s
	}
	s.server, s.router = p.Labels[v1alpha1.LabelServer], p.Labels[v1alpha1.LabelRouter]
	if p.Spec.NodeName != "" && s.scheduled.IsZero() {
		s.scheduled, s.node = now, p.Spec.NodeName
	}
	if p.Status.PodIP != "" {
		s.ip = p.Status.PodIP
	}
	if chips := ascend.PodChips(p, npuType); len(chips) > 0 {
		s.chips = chips
	}
	if podstatus.Ready(p) && s.ready.IsZero() && p.DeletionTimestamp == nil {
		s.ready = now
	}
	if p.DeletionTimestamp != nil && s.deleting.IsZero() {
		s.deleting, s.grace = now, ptr.Deref(p.DeletionGracePeriodSeconds, 0)
	}
	return s
}

func (t *tracker) update(o any) {
	p, ok := o.(*corev1.Pod)
	if !ok {
		return
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.state(p, now)
}

func (t *tracker) remove(o any) {
	if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	p, ok := o.(*corev1.Pod)
	if !ok {
		return
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.state(p, now)
	if s.deleting.IsZero() {
		// Deleted with no grace period: gone as soon as asked.
		s.deleting = now
	}
	s.gone = now
}

// get returns a copy of the pod's record.
func (t *tracker) get(uid types.UID) (podState, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.pods[uid]
	if !ok {
		return podState{}, false
	}
	return *s, true
}

// select returns copies of the records keep accepts, oldest first.
func (t *tracker) selectPods(keep func(*podState) bool) []podState {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []podState
	for _, s := range t.pods {
		if keep(s) {
			out = append(out, *s)
		}
	}
	slices.SortFunc(out, func(a, b podState) int {
		if c := a.created.Compare(b.created); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	return out
}

// uids is the set of every pod the watch has seen.
func (t *tracker) uids() map[types.UID]bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[types.UID]bool{}
	for uid := range t.pods {
		out[uid] = true
	}
	return out
}

// answers says a chat to the server at ip (a loopback address) was
// answered.
func (b *bench) answers(ctx context.Context, ip string) bool {
	if a := net.ParseIP(ip); a == nil || !a.IsLoopback() {
		return false
	}
	body := `{"messages":[{"role":"user","content":"Are you serving?"}],"max_tokens":4}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+net.JoinHostPort(ip, inferencePort)+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.http.Do(req)
	if err != nil {
		return false
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(resp.Body)
	return err == nil && resp.StatusCode == http.StatusOK && bytes.Contains(data, []byte(`"choices"`))
}

// fault runs `ascend-sim fault <args>`.
func (b *bench) fault(ctx context.Context, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	args = append(append([]string{"fault"}, args...), "--control-addr-file="+b.c.controlFile)
	out, err := exec.CommandContext(ctx, b.c.sim, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ascend-sim %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// serverYAML is the InferServer a scenario creates, as YAML.
func (b *bench) serverYAML(name string, policy v1alpha1.FaultReschedulingPolicy) string {
	s := fmt.Sprintf("{replicas: %d, resources: {npu: {count: %d}}, router: {}, terminationGracePeriodSeconds: %d",
		b.c.instances, b.c.npus, b.c.grace)
	if policy != "" {
		s += ", faultRescheduling: " + string(policy)
	}
	return fmt.Sprintf("metadata: {name: %s}\nspec: %s}", name, s)
}

func (b *bench) create(ctx context.Context, name string, policy v1alpha1.FaultReschedulingPolicy) error {
	s := &v1alpha1.InferServer{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: b.c.namespace},
		Spec: v1alpha1.InferServerSpec{
			Replicas:                      ptr.To(int32(b.c.instances)),
			Resources:                     v1alpha1.InferResources{NPU: v1alpha1.NPURequest{Count: ptr.To(int32(b.c.npus))}},
			Router:                        &v1alpha1.RouterSpec{},
			TerminationGracePeriodSeconds: ptr.To(b.c.grace),
			FaultRescheduling:             policy,
		},
	}
	_, err := b.infer.InferV1alpha1().InferServers(b.c.namespace).Create(ctx, s, metav1.CreateOptions{})
	return err
}

// scale sets the server's spec.replicas.
func (b *bench) scale(ctx context.Context, name string, n int) error {
	patch := fmt.Sprintf(`{"spec":{"replicas":%d}}`, n)
	_, err := b.infer.InferV1alpha1().InferServers(b.c.namespace).Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	return err
}

// poll calls cond every interval until it is true, ctx ends or timeout
// passes; the error then says what and cond's last message.
func poll(ctx context.Context, interval, timeout time.Duration, what string, cond func() (bool, string)) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		ok, msg := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %s; last: %s", what, timeout, msg)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// waitAvailable waits until the server is Available with n ready
// instances and a ready router, and exactly n instance pods are in the
// API, none being deleted.
func (b *bench) waitAvailable(ctx context.Context, name string, n int) error {
	return poll(ctx, 250*time.Millisecond, b.c.timeout, "InferServer "+name+" Available with "+strconv.Itoa(n)+" instances", func() (bool, string) {
		s, err := b.infer.InferV1alpha1().InferServers(b.c.namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		pods := b.tr.selectPods(func(p *podState) bool { return p.instance(name) && p.gone.IsZero() })
		ready := 0
		for _, p := range pods {
			if p.live() && !p.ready.IsZero() {
				ready++
			}
		}
		st := s.Status
		ok := st.ObservedGeneration == s.Generation && meta.IsStatusConditionTrue(st.Conditions, v1alpha1.ConditionAvailable) &&
			int(st.ReadyReplicas) == n && int(st.Replicas) == n && st.Router != nil && st.Router.ReadyReplicas >= 1 &&
			len(pods) == n && ready == n
		return ok, fmt.Sprintf("readyReplicas %d, replicas %d, %d instance pods (%d ready, live)", st.ReadyReplicas, st.Replicas, len(pods), ready)
	})
}

// remove deletes the server and waits until its pods are gone.
func (b *bench) remove(ctx context.Context, name string) error {
	err := b.infer.InferV1alpha1().InferServers(b.c.namespace).Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	return poll(ctx, 250*time.Millisecond, b.c.timeout, "InferServer "+name+" and its pods gone", func() (bool, string) {
		_, err := b.infer.InferV1alpha1().InferServers(b.c.namespace).Get(ctx, name, metav1.GetOptions{})
		left := b.tr.selectPods(func(p *podState) bool { return (p.server == name || p.router == name) && p.gone.IsZero() })
		return apierrors.IsNotFound(err) && len(left) == 0, fmt.Sprintf("%d pods left (get: %v)", len(left), err)
	})
}

// scenario runs one scenario on a fresh server: the baseline (one more
// instance timed), then its faults, each undone and recovered from
// before the next. The server is deleted at the end.
func (b *bench) scenario(ctx context.Context, name string) (_ *results.FaultScenario, samples []results.StartupSample, err error) {
	server := "fb-" + name
	policy := policies[name]
	sc := &results.FaultScenario{Name: name, Policy: string(policy)}
	if policy == "" {
		sc.Policy = string(v1alpha1.FaultReschedulingGrace)
	}
	switch name {
	case results.ScenarioNodeLoss:
		sc.Fault = "`ascend-sim fault node --node <the victim's node> --down=true`; undone with `--down=false`"
	default:
		sc.Fault = "`ascend-sim fault npu --node <the victim's node> --chip <its first chip> --level SeparateNPU`; undone with `--level ''`"
	}
	b.logf("%s: creating InferServer %s (%s)", name, server, b.serverYAML(server, policy))
	if err := b.create(ctx, server, policy); err != nil {
		return nil, nil, err
	}
	defer func() {
		if rerr := b.remove(ctx, server); rerr != nil && err == nil {
			err = rerr
		}
	}()
	if err := b.waitAvailable(ctx, server, b.c.instances); err != nil {
		return sc, nil, err
	}
	sample, err := b.baseline(ctx, name, server)
	if err != nil {
		return sc, nil, fmt.Errorf("baseline: %w", err)
	}
	samples = append(samples, sample)
	b.logf("%s: baseline: pod %s bound → Ready %.2f s, → answering %.2f s", name, sample.Pod, sample.ScheduledToReadySeconds, sample.ScheduledToServingSeconds)
	n := b.c.repeats
	if name == results.ScenarioNodeLoss {
		n = b.c.nodeRepeats
	}
	for i := range n {
		run, err := b.faultRun(ctx, name, server)
		sc.Runs = append(sc.Runs, run)
		if err != nil {
			return sc, samples, fmt.Errorf("run %d: %w", i+1, err)
		}
		b.logf("%s: run %d: victim %s on %s (%s, grace %d s, deleted at %.2f s), replacement %s on %s: bound %.2f s, Ready %.2f s, answering %.2f s, readyReplicas %.2f s; the victim answered %d and failed %d chats after the fault",
			name, i+1, run.Victim, run.Node, run.Action, run.VictimGraceSeconds, run.VictimDeleteSeconds, run.Replacement, run.ReplacementNode,
			run.ScheduledSeconds, run.ReadySeconds, run.ServingSeconds, run.ReadyReplicasSeconds, run.VictimAnswered, run.VictimFailed)
	}
	return sc, samples, nil
}

// baseline adds one instance to the server, times its pod from bound to
// Ready and to its first answer, and removes it again.
func (b *bench) baseline(ctx context.Context, scenario, server string) (results.StartupSample, error) {
	before := b.tr.uids()
	t0 := time.Now()
	if err := b.scale(ctx, server, b.c.instances+1); err != nil {
		return results.StartupSample{}, err
	}
	var sample results.StartupSample
	err := poll(ctx, b.c.poll, b.c.timeout, "the added instance answering", func() (bool, string) {
		for _, p := range b.tr.selectPods(func(p *podState) bool { return p.instance(server) && !before[p.uid] && p.live() && !p.ready.IsZero() }) {
			if b.answers(ctx, p.ip) {
				now := time.Now()
				sample = results.StartupSample{Scenario: scenario, Pod: p.name, Node: p.node,
					RequestToScheduledSeconds: secs(p.scheduled.Sub(t0)), ScheduledToReadySeconds: secs(p.ready.Sub(p.scheduled)),
					ScheduledToServingSeconds: secs(now.Sub(p.scheduled))}
				return true, ""
			}
		}
		return false, "no new instance pod ready and answering"
	})
	if err != nil {
		return sample, err
	}
	if err := b.scale(ctx, server, b.c.instances); err != nil {
		return sample, err
	}
	return sample, b.waitAvailable(ctx, server, b.c.instances)
}

func secs(d time.Duration) float64 { return float64(d.Round(time.Millisecond)) / float64(time.Second) }

// pickVictim chooses the instance pod to hit: the oldest ready one, and
// for a node loss one whose node runs no router pod when there is one
// (the measurement is of the instance, not of the router's own recovery).
func pickVictim(pods []podState, routerNodes map[string]bool, avoidRouter bool) (podState, bool) {
	var candidates []podState
	for _, p := range pods {
		if p.live() && !p.ready.IsZero() && p.node != "" && p.ip != "" {
			candidates = append(candidates, p)
		}
	}
	if len(candidates) == 0 {
		return podState{}, false
	}
	if avoidRouter {
		for _, p := range candidates {
			if !routerNodes[p.node] {
				return p, true
			}
		}
	}
	return candidates[0], true
}

// victimProbe chats with the victim after the fault, every 500 ms until
// its deletion is seen, to show whether the fault hurt it before the
// controller acted. A chat still under way when the deletion is seen is
// not counted.
type victimProbe struct {
	answered, failed int
	lastAnswer       time.Duration
}

func (v *victimProbe) run(ctx context.Context, b *bench, uid types.UID, t0 time.Time) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		p, ok := b.tr.get(uid)
		if !ok || !p.live() {
			return
		}
		if p.ip != "" {
			ok := b.answers(ctx, p.ip)
			// A chat counts only if the victim was not being deleted when
			// it ended either: one that raced the deletion says nothing
			// of the fault.
			if after, found := b.tr.get(uid); !found || !after.live() || ctx.Err() != nil {
				return
			}
			if ok {
				v.answered++
				v.lastAnswer = time.Since(t0)
			} else {
				v.failed++
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// faultRun injects one fault into the server, measures until a
// replacement answers and status.readyReplicas is back, undoes the fault
// and waits until the server has recovered.
func (b *bench) faultRun(ctx context.Context, scenario, server string) (results.FaultRun, error) {
	n := b.c.instances
	pods := b.tr.selectPods(func(p *podState) bool { return p.instance(server) })
	routerNodes := map[string]bool{}
	for _, p := range b.tr.selectPods(func(p *podState) bool { return p.router == server && p.gone.IsZero() }) {
		routerNodes[p.node] = true
	}
	v, ok := pickVictim(pods, routerNodes, scenario == results.ScenarioNodeLoss)
	if !ok {
		return results.FaultRun{}, fmt.Errorf("no ready instance pod to hit")
	}
	run := results.FaultRun{Victim: v.name, Node: v.node, RouterOnNode: routerNodes[v.node]}
	var inject, undo []string
	if scenario == results.ScenarioNodeLoss {
		inject = []string{"node", "--node", v.node, "--down=true"}
		undo = []string{"node", "--node", v.node, "--down=false"}
	} else {
		if len(v.chips) == 0 {
			return run, fmt.Errorf("pod %s holds no chips (annotation %s)", v.name, ascend.ChipListAnnotation(npuType))
		}
		_, idx, err := ascend.ParseChipName(v.chips[0])
		if err != nil {
			return run, err
		}
		run.Chip = v.chips[0]
		inject = []string{"npu", "--node", v.node, "--chip", strconv.Itoa(idx), "--level", "SeparateNPU"}
		undo = []string{"npu", "--node", v.node, "--chip", strconv.Itoa(idx), "--level", ""}
	}
	before := b.tr.uids()
	var renewed time.Time
	if scenario == results.ScenarioNodeLoss {
		if l, err := b.kube.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, v.node, metav1.GetOptions{}); err == nil && l.Spec.RenewTime != nil {
			renewed = l.Spec.RenewTime.Time
		}
	}

	t0 := time.Now()
	if !renewed.IsZero() {
		run.HeartbeatAgeSeconds = secs(t0.Sub(renewed))
	}
	if err := b.fault(ctx, inject...); err != nil {
		return run, err
	}
	run.InjectSeconds = secs(time.Since(t0))
	vctx, stopVictim := context.WithCancel(ctx)
	var vp victimProbe
	victimDone := make(chan struct{})
	go func() { defer close(victimDone); vp.run(vctx, b, v.uid, t0) }()

	var replacement types.UID
	err := poll(ctx, b.c.poll, b.c.timeout, "a replacement answering and status.readyReplicas back", func() (bool, string) {
		if scenario == results.ScenarioNodeLoss && run.NodeNotReadySeconds == 0 {
			if node, err := b.kube.CoreV1().Nodes().Get(ctx, v.node, metav1.GetOptions{}); err == nil && !nodeReady(node) {
				run.NodeNotReadySeconds = secs(time.Since(t0))
			}
		}
		newPods := b.tr.selectPods(func(p *podState) bool { return p.instance(server) && !before[p.uid] })
		if replacement == "" {
			for _, p := range newPods {
				if p.live() && !p.ready.IsZero() && b.answers(ctx, p.ip) {
					run.ServingSeconds = secs(time.Since(t0))
					replacement = p.uid
					break
				}
			}
		}
		anyReady := false
		for _, p := range newPods {
			anyReady = anyReady || (p.live() && !p.ready.IsZero())
		}
		if anyReady && run.ReadyReplicasSeconds == 0 {
			if s, err := b.infer.InferV1alpha1().InferServers(b.c.namespace).Get(ctx, server, metav1.GetOptions{}); err == nil && int(s.Status.ReadyReplicas) >= n {
				run.ReadyReplicasSeconds = secs(time.Since(t0))
			}
		}
		return replacement != "" && run.ReadyReplicasSeconds > 0, fmt.Sprintf("%d new instance pods, serving %t, readyReplicas back %t",
			len(newPods), replacement != "", run.ReadyReplicasSeconds > 0)
	})
	if err != nil {
		if ctx.Err() != nil {
			stopVictim()
			return run, err
		}
		run.Error = err.Error()
		b.logf("%s: %v", scenario, err)
	}
	if p, ok := b.tr.get(replacement); ok {
		run.Replacement, run.ReplacementNode = p.name, p.node
		run.CreatedSeconds, run.ScheduledSeconds, run.ReadySeconds = since(t0, p.created), since(t0, p.scheduled), since(t0, p.ready)
	}

	if err := b.fault(ctx, undo...); err != nil {
		stopVictim()
		return run, err
	}
	recovered := b.waitHealthy(ctx, scenario, v.node)
	if recovered == nil {
		recovered = b.waitAvailable(ctx, server, n)
	}
	stopVictim()
	<-victimDone
	run.VictimAnswered, run.VictimFailed = vp.answered, vp.failed
	if vp.lastAnswer > 0 {
		run.VictimLastAnswerSeconds = secs(vp.lastAnswer)
	}
	if p, ok := b.tr.get(v.uid); ok && !p.deleting.IsZero() {
		run.VictimDeleted, run.VictimDeleteSeconds, run.VictimGraceSeconds = true, since(t0, p.deleting), p.grace
		run.VictimGoneSeconds = since(t0, p.gone)
	}
	if s, err := b.infer.InferV1alpha1().InferServers(b.c.namespace).Get(ctx, server, metav1.GetOptions{}); err == nil {
		for _, f := range s.Status.Faults {
			if f.Pod == v.name {
				run.Action = string(f.Action)
			}
		}
	}
	if recovered != nil {
		return run, fmt.Errorf("recovering after the fault was undone: %w", recovered)
	}
	return run, nil
}

// since is t − t0 in seconds, 0 when t was not seen.
func since(t0, t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return secs(t.Sub(t0))
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// waitHealthy waits until the node the fault hit is well again: Ready
// and without taints of an unready node after a node loss, every NPU
// allocatable after an NPU fault.
func (b *bench) waitHealthy(ctx context.Context, scenario, node string) error {
	return poll(ctx, 250*time.Millisecond, b.c.timeout, "node "+node+" healthy again", func() (bool, string) {
		n, err := b.kube.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		if scenario == results.ScenarioNodeLoss {
			for _, t := range n.Spec.Taints {
				if t.Key == corev1.TaintNodeNotReady || t.Key == corev1.TaintNodeUnreachable {
					return false, "tainted " + t.Key
				}
			}
			return nodeReady(n), "not Ready"
		}
		q := n.Status.Allocatable[ascend.ResourceName(npuType)]
		return int(q.Value()) == b.npusPerNode, fmt.Sprintf("%d NPUs allocatable", q.Value())
	})
}

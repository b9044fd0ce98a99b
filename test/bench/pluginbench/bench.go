package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/ascend"
	clientset "mindie.io/deployer/pkg/generated/clientset/versioned"
	"mindie.io/deployer/test/bench/measure"
	"mindie.io/deployer/test/bench/results"
)

const (
	npuType        = "Ascend910"
	simulatedLabel = "mindie.io/simulated" // kubelet.SimulatedLabel
	// pollEvery is how often the benchmark looks at the servers while it
	// waits for them.
	pollEvery = time.Second
)

// bench holds the clients of one run.
type bench struct {
	c                  config
	kube               kubernetes.Interface
	infer              clientset.Interface
	logf               func(string, ...any)
	nodes, npusPerNode int
}

func newBench(ctx context.Context, c config, logf func(string, ...any)) (*bench, error) {
	for _, name := range []string{"kubectl", "kubectl-mindie"} {
		if _, err := os.Stat(filepath.Join(c.bin, name)); err != nil {
			return nil, fmt.Errorf("-bin %s: %w", c.bin, err)
		}
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 200, 400
	cfg.UserAgent = "pluginbench"
	b := &bench{c: c, logf: logf}
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
	for _, n := range nodes.Items {
		if q, ok := n.Status.Capacity[ascend.ResourceName(npuType)]; ok && q.Value() > 0 {
			b.nodes++
			b.npusPerNode = max(b.npusPerNode, int(q.Value()))
		}
	}
	if slices := b.nodes * b.npusPerNode; slices < c.instances && contains(c.parts, partStatus) {
		return nil, fmt.Errorf("%d simulated nodes of %d NPUs hold %d single-NPU instances, not %d: start the cluster with SIM_NODES=%d",
			b.nodes, b.npusPerNode, slices, c.instances, (c.instances+7)/8)
	}
	logf("%d simulated nodes of %d NPUs", b.nodes, b.npusPerNode)
	return b, nil
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// resources are every InferServer's: one NPU, and CPU and memory small
// enough that 8 pods fit a simulated node (the defaults, 32 CPUs and
// 250 GiB a pod, would not).
func resources() v1alpha1.InferResources {
	return v1alpha1.InferResources{
		CPU:    ptr.To(resource.MustParse("1")),
		Memory: ptr.To(resource.MustParse("1000Mi")),
		NPU:    v1alpha1.NPURequest{Type: v1alpha1.NPUTypeAscend910, Count: ptr.To[int32](1)},
	}
}

// statusSpec is the server status shows: instances single-NPU instances
// behind a ClusterIP Service, quick to delete.
func statusSpec(instances int) v1alpha1.InferServerSpec {
	return v1alpha1.InferServerSpec{
		Replicas:                      ptr.To(int32(instances)),
		NodesPerInstance:              ptr.To[int32](1),
		Resources:                     resources(),
		Service:                       v1alpha1.InferServiceExposure{Type: corev1.ServiceTypeClusterIP},
		TerminationGracePeriodSeconds: ptr.To[int64](1),
	}
}

// listSpec is each server get lists: one instance, paused, so that its
// Deployment makes no ReplicaSet and no pod, while the controller still
// writes its revision, Deployment, Service and status.
func listSpec() v1alpha1.InferServerSpec {
	return v1alpha1.InferServerSpec{
		Replicas:         ptr.To[int32](1),
		NodesPerInstance: ptr.To[int32](1),
		Resources:        resources(),
		Service:          v1alpha1.InferServiceExposure{Type: corev1.ServiceTypeClusterIP},
		Paused:           true,
	}
}

// serverYAML is an InferServer as the documents show it.
func serverYAML(name string, spec v1alpha1.InferServerSpec) string {
	s := fmt.Sprintf("{replicas: %d, resources: {cpu: %s, memory: %s, npu: {type: %s, count: %d}}, service: {type: %s}",
		*spec.Replicas, spec.Resources.CPU, spec.Resources.Memory, spec.Resources.NPU.Type, *spec.Resources.NPU.Count, spec.Service.Type)
	if g := spec.TerminationGracePeriodSeconds; g != nil {
		s += fmt.Sprintf(", terminationGracePeriodSeconds: %d", *g)
	}
	if spec.Paused {
		s += ", paused: true"
	}
	return fmt.Sprintf("metadata: {name: %s}\nspec: %s}", name, s)
}

func (b *bench) ensureNamespace(ctx context.Context, ns string) error {
	_, err := b.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", ns, err)
	}
	return nil
}

// poll calls cond every interval until it is true, ctx ends or timeout
// passes; the error then says what and cond's last message.
func poll(ctx context.Context, interval, timeout time.Duration, what string, cond func() (bool, string)) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	last := ""
	for {
		ok, msg := cond()
		if ok {
			return nil
		}
		last = msg
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %s; last: %s", what, timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// status creates the server status shows, waits until every instance is
// ready, times status against the baseline and deletes the server again.
func (b *bench) status(ctx context.Context, setup *results.PluginSetup) (cmp *results.PluginComparison, err error) {
	c := b.c
	if err := b.ensureNamespace(ctx, c.statusNS); err != nil {
		return nil, err
	}
	servers := b.infer.InferV1alpha1().InferServers(c.statusNS)
	b.logf("status: creating InferServer %s/%s with %d instances", c.statusNS, c.statusName, c.instances)
	t0 := time.Now()
	_, err = servers.Create(ctx, &v1alpha1.InferServer{ObjectMeta: metav1.ObjectMeta{Name: c.statusName}, Spec: statusSpec(c.instances)}, metav1.CreateOptions{})
	if err != nil {
		return nil, err
	}
	defer func() {
		if derr := b.removeStatusServer(ctx); derr != nil && err == nil {
			err = derr
		}
	}()
	var selector string
	err = poll(ctx, pollEvery, c.timeout, fmt.Sprintf("InferServer %s Available with %d ready instances", c.statusName, c.instances), func() (bool, string) {
		s, err := servers.Get(ctx, c.statusName, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		st := s.Status
		selector = st.Selector
		ready := 0
		for _, in := range st.Instances {
			if in.Ready {
				ready++
			}
		}
		ok := st.ObservedGeneration == s.Generation && meta.IsStatusConditionTrue(st.Conditions, v1alpha1.ConditionAvailable) &&
			int(st.ReadyReplicas) == c.instances && len(st.Instances) == c.instances && ready == c.instances
		return ok, fmt.Sprintf("readyReplicas %d, %d instances in status, %d ready", st.ReadyReplicas, len(st.Instances), ready)
	})
	if err != nil {
		return nil, err
	}
	setup.ReadySeconds = measure.Round(time.Since(t0).Seconds(), 1)
	b.logf("status: %d instances ready in %.1f s; selector %q", c.instances, setup.ReadySeconds, selector)
	if selector == "" {
		selector = v1alpha1.LabelServer + "=" + c.statusName
	}
	sleep(ctx, c.settle)
	measured := []string{"mindie", "status", c.statusName, "-n", c.statusNS}
	baseline := []string{"get", "pods", "-n", c.statusNS, "-l", selector, "-o", "json"}
	cmp, err = b.compare(ctx, "status", measured, baseline)
	if err != nil {
		return cmp, err
	}
	// Every instance's pod is in what each printed.
	if lines := cmp.Measured.OutputLines; lines < c.instances {
		return cmp, fmt.Errorf("status printed %d lines, fewer than its %d instances", lines, c.instances)
	}
	return cmp, nil
}

// removeStatusServer deletes the server status showed and waits until its
// pods are gone, so that they do not run beside what comes next.
func (b *bench) removeStatusServer(ctx context.Context) error {
	c := b.c
	err := b.infer.InferV1alpha1().InferServers(c.statusNS).Delete(ctx, c.statusName, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	return poll(ctx, pollEvery, c.timeout, "InferServer "+c.statusName+" and its pods gone", func() (bool, string) {
		pods, err := b.kube.CoreV1().Pods(c.statusNS).List(ctx, metav1.ListOptions{LabelSelector: v1alpha1.LabelServer + "=" + c.statusName})
		if err != nil {
			return false, err.Error()
		}
		return len(pods.Items) == 0, fmt.Sprintf("%d pods left", len(pods.Items))
	})
}

// get creates the servers get lists, waits until the controller has
// observed every one, and times get against the baseline. The servers are
// left: the cluster is purged after the run.
func (b *bench) get(ctx context.Context, setup *results.PluginSetup) (*results.PluginComparison, error) {
	c := b.c
	if err := b.ensureNamespace(ctx, c.listNS); err != nil {
		return nil, err
	}
	servers := b.infer.InferV1alpha1().InferServers(c.listNS)
	b.logf("get: creating %d InferServers in %s, %d at a time", c.servers, c.listNS, c.workers)
	t0 := time.Now()
	if err := createAll(ctx, c.servers, c.workers, func(ctx context.Context, i int) error {
		_, err := servers.Create(ctx, &v1alpha1.InferServer{ObjectMeta: metav1.ObjectMeta{Name: listName(i)}, Spec: listSpec()}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return err
	}); err != nil {
		return nil, err
	}
	b.logf("get: %d created in %.1f s", c.servers, time.Since(t0).Seconds())
	err := poll(ctx, 2*pollEvery, c.timeout, fmt.Sprintf("%d InferServers observed", c.servers), func() (bool, string) {
		list, err := servers.List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		observed := 0
		for i := range list.Items {
			s := &list.Items[i]
			if s.Status.ObservedGeneration > 0 && s.Status.ObservedGeneration == s.Generation {
				observed++
			}
		}
		return observed >= c.servers, fmt.Sprintf("%d of %d observed", observed, len(list.Items))
	})
	if err != nil {
		return nil, err
	}
	setup.ObservedSeconds = measure.Round(time.Since(t0).Seconds(), 1)
	pods, err := b.kube.CoreV1().Pods(c.listNS).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	b.logf("get: %d InferServers observed in %.1f s; %d pods in %s", c.servers, setup.ObservedSeconds, len(pods.Items), c.listNS)
	sleep(ctx, c.settle)
	cmp, err := b.compare(ctx, "get", []string{"mindie", "get", "-n", c.listNS}, []string{"get", "inferservers", "-n", c.listNS})
	if err != nil {
		return cmp, err
	}
	// A header and a row for each server, from both.
	for _, cmd := range []results.PluginCommand{cmp.Measured, cmp.Baseline} {
		if cmd.OutputLines != c.servers+1 {
			return cmp, fmt.Errorf("%s printed %d lines, want %d", cmd.Command, cmd.OutputLines, c.servers+1)
		}
	}
	return cmp, nil
}

func listName(i int) string { return fmt.Sprintf("pb-%04d", i) }

// createAll calls create(i) for i in [0, n) from workers goroutines,
// trying each up to three times, and returns the last error.
func createAll(ctx context.Context, n, workers int, create func(context.Context, int) error) error {
	idx := make(chan int)
	var mu sync.Mutex
	var last error
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range idx {
				for attempt := 0; ; attempt++ {
					err := create(ctx, i)
					if err == nil {
						break
					}
					if attempt >= 2 || ctx.Err() != nil {
						mu.Lock()
						last = err
						mu.Unlock()
						break
					}
					sleep(ctx, time.Second)
				}
			}
		})
	}
	for i := range n {
		idx <- i
	}
	close(idx)
	wg.Wait()
	return last
}

// compare runs the measured command and the baseline once each untimed
// (kubectl fills its discovery cache, the page cache holds the binaries),
// then -runs times each in turn, the order swapped every round, and once
// more each at -v=6 for the requests they send.
func (b *bench) compare(ctx context.Context, what string, measured, baseline []string) (*results.PluginComparison, error) {
	cmp := &results.PluginComparison{
		Measured: results.PluginCommand{Command: commandLine(measured)},
		Baseline: results.PluginCommand{Command: commandLine(baseline)},
	}
	for _, args := range [][]string{measured, baseline} {
		if _, err := b.kubectl(ctx, args); err != nil {
			return cmp, err
		}
	}
	sides := []struct {
		args []string
		cmd  *results.PluginCommand
	}{{measured, &cmp.Measured}, {baseline, &cmp.Baseline}}
	for i := range b.c.runs {
		for j := range sides {
			side := sides[(i+j)%2]
			r, err := b.kubectl(ctx, side.args)
			if err != nil {
				return cmp, err
			}
			side.cmd.Seconds = append(side.cmd.Seconds, measure.Round(r.wall.Seconds(), 4))
			side.cmd.CPUSeconds = append(side.cmd.CPUSeconds, measure.Round(r.cpu.Seconds(), 4))
			side.cmd.OutputBytes, side.cmd.OutputLines = len(r.stdout), bytes.Count(r.stdout, []byte("\n"))
		}
	}
	for _, side := range sides {
		r, err := b.kubectl(ctx, append(append([]string(nil), side.args...), "-v=6"))
		if err != nil {
			return cmp, err
		}
		side.cmd.Requests = requestsOf(r.stderr)
	}
	b.logf("%s: %s: median %.3f s (max %.3f s), %d requests; %s: median %.3f s (max %.3f s), %d requests", what,
		cmp.Measured.Command, results.Median(cmp.Measured.Seconds), maxOf(cmp.Measured.Seconds), len(cmp.Measured.Requests),
		cmp.Baseline.Command, results.Median(cmp.Baseline.Seconds), maxOf(cmp.Baseline.Seconds), len(cmp.Baseline.Requests))
	return cmp, nil
}

func maxOf(xs []float64) float64 {
	m := 0.0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

// commandLine is a kubectl command as a user types it.
func commandLine(args []string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " =\"'") && !strings.HasPrefix(a, "-") {
			a = "'" + a + "'"
		}
		quoted[i] = a
	}
	return "kubectl " + strings.Join(quoted, " ")
}

// ran is one run of a command.
type ran struct {
	wall, cpu      time.Duration
	stdout, stderr []byte
}

// kubectl runs $bin/kubectl with args, as a user with $bin on PATH would,
// and fails if it does.
func (b *bench) kubectl(ctx context.Context, args []string) (ran, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(b.c.bin, "kubectl"), args...)
	cmd.Env = commandEnv(os.Environ(), b.c.bin, b.c.home, b.c.kubeconfig)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := ran{wall: time.Since(start), stdout: stdout.Bytes(), stderr: stderr.Bytes()}
	if cmd.ProcessState != nil {
		// kubectl runs a plugin in its own place (exec), so this is the
		// plugin's CPU too.
		r.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	if err != nil {
		return r, fmt.Errorf("%s: %v: %s", commandLine(args), err, lastLines(stderr.String(), 5))
	}
	return r, nil
}

// commandEnv is the environment of the timed commands: the benchmark's,
// with the binaries first on PATH (kubectl finds kubectl-mindie there),
// the cluster's kubeconfig and a HOME of their own for kubectl's cache.
func commandEnv(env []string, bin, home, kubeconfig string) []string {
	path := bin
	var out []string
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "PATH":
			if v != "" {
				path += string(os.PathListSeparator) + v
			}
		case "HOME", "KUBECONFIG", "KUBECACHEDIR":
		default:
			out = append(out, kv)
		}
	}
	return append(out, "PATH="+path, "HOME="+home, "KUBECONFIG="+kubeconfig)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// kubectlVersion is the client version of $bin/kubectl, or "".
func (b *bench) kubectlVersion(ctx context.Context) string {
	r, err := b.kubectl(ctx, []string{"version", "--client", "-o", "json"})
	if err != nil {
		return ""
	}
	var v struct {
		ClientVersion struct {
			GitVersion string `json:"gitVersion"`
		} `json:"clientVersion"`
	}
	if json.Unmarshal(r.stdout, &v) != nil {
		return ""
	}
	return v.ClientVersion.GitVersion
}

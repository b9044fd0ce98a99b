package kubelet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mindie.io/deployer/test/testutil"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/pkg/ascend"
)

// fakeApp is the state of one container's fake workload, shared by its
// restarts.
type fakeApp struct {
	ready   atomic.Bool   // /ready answers 200 when true, 503 otherwise
	live    atomic.Bool   // /live answers 200 when true; every start sets it
	starts  atomic.Int32  // workload starts
	preStop atomic.Int32  // /prestop hits
	slow    atomic.Uint64 // math.Float64bits of the last SetSlowdown
	// decode faults asked for: requests to fail, to recompute, drops
	decodeErrors, recomputes, drops atomic.Int32

	mu       sync.Mutex
	cur      *fakeWorkload // the last started
	startsAt []time.Time   // when each start began
	exitsAt  []time.Time   // when each exit was asked for
}

// exit makes the running workload exit on its own with code.
func (a *fakeApp) exit(t *testing.T, code int32) {
	t.Helper()
	a.mu.Lock()
	w := a.cur
	a.cur = nil
	if w != nil {
		a.exitsAt = append(a.exitsAt, time.Now())
	}
	a.mu.Unlock()
	if w == nil {
		t.Fatal("exit: no running fake workload")
	}
	w.code.Store(code)
	_ = w.srv.Close()
}

// times returns the start and exit times so far.
func (a *fakeApp) times() (starts, exits []time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]time.Time(nil), a.startsAt...), append([]time.Time(nil), a.exitsAt...)
}

type fakeWorkloads struct {
	mu   sync.Mutex
	apps map[string]*fakeApp // by pod name for container "mindie", else "<pod>/<container>"
}

func (f *fakeWorkloads) app(pod string) *fakeApp {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.apps[pod] == nil {
		f.apps[pod] = &fakeApp{}
	}
	return f.apps[pod]
}

type fakeWorkload struct {
	srv  *http.Server
	done chan struct{}
	app  *fakeApp
	log  io.Writer
	code atomic.Int32 // exit code when it exits on its own; 1 (a crash) unless set by exit
}

func (w *fakeWorkload) Done() <-chan struct{} { return w.done }
func (w *fakeWorkload) ExitCode() int32       { return w.code.Load() }
func (w *fakeWorkload) Stop(ctx context.Context) error {
	err := w.srv.Shutdown(ctx)
	<-w.done
	return err
}

// start is a WorkloadStarter: a tiny HTTP server on podIP:<first port>.
func (f *fakeWorkloads) start(_ context.Context, spec WorkloadSpec) (Workload, error) {
	key := spec.Pod.Name
	if spec.Container.Name != "mindie" {
		key += "/" + spec.Container.Name
	}
	app := f.app(key)
	app.mu.Lock()
	app.startsAt = append(app.startsAt, time.Now())
	app.mu.Unlock()
	app.starts.Add(1)
	app.live.Store(true)
	ln, err := net.Listen("tcp", net.JoinHostPort(spec.PodIP, strconv.Itoa(int(spec.Container.Ports[0].ContainerPort))))
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	answer := func(b *atomic.Bool, bad int) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			if b.Load() {
				w.WriteHeader(http.StatusOK)
			} else {
				w.WriteHeader(bad)
			}
		}
	}
	mux.Handle("/ready", answer(&app.ready, http.StatusServiceUnavailable))
	mux.Handle("/live", answer(&app.live, http.StatusInternalServerError))
	mux.HandleFunc("/prestop", func(http.ResponseWriter, *http.Request) { app.preStop.Add(1) })
	mux.HandleFunc("/work", func(http.ResponseWriter, *http.Request) { fmt.Fprintf(spec.Log, "fake workload: handled /work\n") })
	w := &fakeWorkload{srv: &http.Server{Handler: mux}, done: make(chan struct{}), app: app, log: spec.Log}
	w.code.Store(1)
	app.mu.Lock()
	app.cur = w
	app.mu.Unlock()
	fmt.Fprintf(spec.Log, "fake workload: serving on %s\n", ln.Addr())
	go func() {
		_ = w.srv.Serve(ln)
		close(w.done)
	}()
	return w, nil
}

// testCIDR is a /24 of 127.1.0.0/16 chosen at random, so that tests run
// in parallel on one machine rarely share pod IPs.
func testCIDR() string { return fmt.Sprintf("127.1.%d.0/24", 100+rand.IntN(150)) }

func startSim(t *testing.T, nodes int) (*Simulator, *fake.Clientset, *fakeWorkloads) {
	t.Helper()
	return startSimConfig(t, Config{NodeCount: nodes})
}

// startSimConfig runs a simulator with cfg, whose zero Client, PodCIDR,
// LeaseInterval, StartWorkload, ProbeSecond and Log get test values (a new
// fake clientset, fake workloads, 50ms ProbeSeconds).
func startSimConfig(t *testing.T, cfg Config) (*Simulator, *fake.Clientset, *fakeWorkloads) {
	t.Helper()
	if cfg.Client == nil {
		cfg.Client = fake.NewClientset()
	}
	client := cfg.Client.(*fake.Clientset)
	fw := &fakeWorkloads{apps: map[string]*fakeApp{}}
	var logs testutil.SyncBuffer
	if cfg.PodCIDR == "" {
		cfg.PodCIDR = testCIDR()
	}
	if cfg.LeaseInterval == 0 {
		cfg.LeaseInterval = 100 * time.Millisecond
	}
	if cfg.StartWorkload == nil {
		cfg.StartWorkload = fw.start
	}
	if cfg.ProbeSecond == 0 {
		cfg.ProbeSecond = 50 * time.Millisecond
	}
	if cfg.Log == nil {
		cfg.Log = &logs
	}
	sim, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sim.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return after cancel")
		}
		if b, ok := cfg.Log.(*testutil.SyncBuffer); ok && t.Failed() {
			t.Logf("simulator log:\n%s", b.String())
		}
	})
	return sim, client, fw
}

// eventually polls cond every 20ms for up to 10s.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s; last state: %s", what, last)
}

func nodeCondition(n *corev1.Node, typ corev1.NodeConditionType) corev1.ConditionStatus {
	for _, c := range n.Status.Conditions {
		if c.Type == typ {
			return c.Status
		}
	}
	return ""
}

// readyHeartbeat is the lastHeartbeatTime of the node's Ready condition.
func readyHeartbeat(n *corev1.Node) time.Time {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.LastHeartbeatTime.Time
		}
	}
	return time.Time{}
}

func podCondition(p *corev1.Pod, typ corev1.PodConditionType) corev1.ConditionStatus {
	for _, c := range p.Status.Conditions {
		if c.Type == typ {
			return c.Status
		}
	}
	return ""
}

func TestNodeRegistrationAndLease(t *testing.T) {
	sim, client, _ := startSim(t, 2)
	ctx := context.Background()
	eventually(t, "node ascend-1 Ready", func() (bool, string) {
		n, err := client.CoreV1().Nodes().Get(ctx, "ascend-1", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return nodeCondition(n, corev1.NodeReady) == corev1.ConditionTrue, fmt.Sprint(n.Status.Conditions)
	})
	n, _ := client.CoreV1().Nodes().Get(ctx, "ascend-0", metav1.GetOptions{})
	for k, v := range map[string]string{"accelerator": "huawei-Ascend910", "node.kubernetes.io/npu.chip.name": "Ascend910",
		"workerselector": "dls-worker-node", "kubernetes.io/hostname": "ascend-0", SimulatedLabel: "true"} {
		if n.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, n.Labels[k], v)
		}
	}
	for res, want := range map[corev1.ResourceName]string{"cpu": "192", "memory": "1536Gi", "pods": "110", "huawei.com/Ascend910": "8"} {
		if q := n.Status.Capacity[res]; q.Cmp(resource.MustParse(want)) != 0 {
			t.Errorf("capacity %s = %s, want %s", res, q.String(), want)
		}
		if q := n.Status.Allocatable[res]; q.Cmp(resource.MustParse(want)) != 0 {
			t.Errorf("allocatable %s = %s, want %s", res, q.String(), want)
		}
	}
	if len(n.Status.Addresses) != 2 || n.Status.Addresses[0] != (corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}) ||
		n.Status.Addresses[1] != (corev1.NodeAddress{Type: corev1.NodeHostName, Address: "ascend-0"}) {
		t.Errorf("addresses = %v", n.Status.Addresses)
	}
	for _, typ := range []corev1.NodeConditionType{corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure} {
		if s := nodeCondition(n, typ); s != corev1.ConditionFalse {
			t.Errorf("condition %s = %q, want False", typ, s)
		}
	}

	lease, err := client.CoordinationV1().Leases(LeaseNamespace).Get(ctx, "ascend-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ptr.Deref(lease.Spec.HolderIdentity, "") != "ascend-0" || lease.Spec.RenewTime == nil {
		t.Fatalf("lease spec = %+v", lease.Spec)
	}
	first := lease.Spec.RenewTime.Time
	eventually(t, "lease renewal", func() (bool, string) {
		l, err := client.CoordinationV1().Leases(LeaseNamespace).Get(ctx, "ascend-0", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return l.Spec.RenewTime.After(first), l.Spec.RenewTime.String()
	})

	// Fault injection: the node's lease and status stop; nothing marks it
	// NotReady but Kubernetes' node lifecycle controller (not here).
	if err := sim.SetNodeDown("ascend-0", true); err != nil {
		t.Fatal(err)
	}
	n1, _ := client.CoreV1().Nodes().Get(ctx, "ascend-0", metav1.GetOptions{})
	l1, _ := client.CoordinationV1().Leases(LeaseNamespace).Get(ctx, "ascend-0", metav1.GetOptions{})
	// ascend-1 keeps heartbeating: wait for two of its renewals, then check
	// that ascend-0's lease did not move.
	l, _ := client.CoordinationV1().Leases(LeaseNamespace).Get(ctx, "ascend-1", metav1.GetOptions{})
	for i := 0; i < 2; i++ {
		prev := l.Spec.RenewTime.Time
		eventually(t, "ascend-1 renewal", func() (bool, string) {
			l, _ = client.CoordinationV1().Leases(LeaseNamespace).Get(ctx, "ascend-1", metav1.GetOptions{})
			return l.Spec.RenewTime.After(prev), ""
		})
	}
	l2, _ := client.CoordinationV1().Leases(LeaseNamespace).Get(ctx, "ascend-0", metav1.GetOptions{})
	if !l2.Spec.RenewTime.Equal(l1.Spec.RenewTime) {
		t.Errorf("lease of a down node renewed: %s -> %s", l1.Spec.RenewTime, l2.Spec.RenewTime)
	}
	n2, _ := client.CoreV1().Nodes().Get(ctx, "ascend-0", metav1.GetOptions{})
	if h1, h2 := readyHeartbeat(n1), readyHeartbeat(n2); !h2.Equal(h1) {
		t.Errorf("status of a down node written: heartbeat %s -> %s", h1, h2)
	}
	if err := sim.SetNodeDown("ascend-0", false); err != nil {
		t.Fatal(err)
	}
	n, _ = client.CoreV1().Nodes().Get(ctx, "ascend-0", metav1.GetOptions{})
	l3, _ := client.CoordinationV1().Leases(LeaseNamespace).Get(ctx, "ascend-0", metav1.GetOptions{})
	if s := nodeCondition(n, corev1.NodeReady); s != corev1.ConditionTrue || !readyHeartbeat(n).After(readyHeartbeat(n2)) ||
		!l3.Spec.RenewTime.After(l2.Spec.RenewTime.Time) {
		t.Fatalf("after recovery: Ready = %q, heartbeat %s (was %s), lease renewed %t; want True, a new heartbeat, true",
			s, readyHeartbeat(n), readyHeartbeat(n2), l3.Spec.RenewTime.After(l2.Spec.RenewTime.Time))
	}
}

func testPod(name, node string, npus int64) *corev1.Pod {
	httpProbe := func(path string, failures int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("http")}},
			PeriodSeconds: 1, TimeoutSeconds: 1, FailureThreshold: failures,
		}
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-default-" + name)},
		Spec: corev1.PodSpec{
			NodeName: node,
			Containers: []corev1.Container{{
				Name: "mindie", Image: "mindie:sim",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 18080}, {Name: "mgmt", ContainerPort: 18081}},
				Resources: corev1.ResourceRequirements{
					Limits: corev1.ResourceList{"huawei.com/Ascend910": *resource.NewQuantity(npus, resource.DecimalSI)},
				},
				ReadinessProbe: httpProbe("/ready", 1),
				LivenessProbe:  httpProbe("/live", 2),
				Lifecycle: &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{
					HTTPGet: &corev1.HTTPGetAction{Path: "/prestop", Port: intstr.FromInt32(18080)}}},
			}},
		},
	}
}

func TestPodLifecycle(t *testing.T) {
	sim, client, fw := startSim(t, 1)
	ctx := context.Background()
	pods := client.CoreV1().Pods("default")
	if _, err := pods.Create(ctx, testPod("p1", "ascend-0", 2), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Another node's pod is left alone.
	if _, err := pods.Create(ctx, testPod("other", "real-node", 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	var pod *corev1.Pod
	eventually(t, "p1 Running", func() (bool, string) {
		var err error
		pod, err = pods.Get(ctx, "p1", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return pod.Status.Phase == corev1.PodRunning && len(pod.Status.ContainerStatuses) == 1 &&
			pod.Status.ContainerStatuses[0].State.Running != nil, fmt.Sprintf("%+v", pod.Status)
	})
	ip := pod.Status.PodIP
	if !strings.HasPrefix(ip, "127.1.") || len(pod.Status.PodIPs) != 1 || pod.Status.PodIPs[0].IP != ip {
		t.Errorf("podIP %q podIPs %v", ip, pod.Status.PodIPs)
	}
	if pod.Status.HostIP != "127.0.0.1" || pod.Status.StartTime == nil {
		t.Errorf("hostIP %q startTime %v", pod.Status.HostIP, pod.Status.StartTime)
	}
	if got := pod.Annotations["huawei.com/Ascend910"]; got != "Ascend910-0,Ascend910-1" {
		t.Errorf("NPU annotation = %q", got)
	}
	cs := pod.Status.ContainerStatuses[0]
	if cs.Image != "mindie:sim" || cs.RestartCount != 0 || !ptr.Deref(cs.Started, false) {
		t.Errorf("container status %+v", cs)
	}
	if podCondition(pod, corev1.PodScheduled) != corev1.ConditionTrue || podCondition(pod, corev1.PodInitialized) != corev1.ConditionTrue {
		t.Errorf("conditions %v", pod.Status.Conditions)
	}
	app := fw.app("p1")
	// Not ready until the readiness probe passes: it has been failing.
	eventually(t, "a failed readiness probe", func() (bool, string) {
		return strings.Contains(sim.cfg.Log.(*testutil.SyncBuffer).String(), "p1 container mindie: readiness probe failed"), ""
	})
	pod, _ = pods.Get(ctx, "p1", metav1.GetOptions{})
	if podCondition(pod, corev1.PodReady) != corev1.ConditionFalse || pod.Status.ContainerStatuses[0].Ready {
		t.Fatalf("pod Ready before its readiness probe passed: %v", pod.Status.Conditions)
	}
	app.ready.Store(true)
	eventually(t, "p1 Ready", func() (bool, string) {
		pod, _ = pods.Get(ctx, "p1", metav1.GetOptions{})
		return podCondition(pod, corev1.PodReady) == corev1.ConditionTrue && podCondition(pod, corev1.ContainersReady) == corev1.ConditionTrue &&
			pod.Status.ContainerStatuses[0].Ready, fmt.Sprint(pod.Status.Conditions)
	})

	// Liveness failure: the container restarts once (each start is live).
	app.live.Store(false)
	eventually(t, "restartCount 1 and Ready again", func() (bool, string) {
		pod, _ = pods.Get(ctx, "p1", metav1.GetOptions{})
		cs := pod.Status.ContainerStatuses[0]
		return cs.RestartCount == 1 && cs.Ready && cs.State.Running != nil, fmt.Sprintf("%+v", cs)
	})
	cs = pod.Status.ContainerStatuses[0]
	if cs.LastTerminationState.Terminated == nil || cs.LastTerminationState.Terminated.ExitCode != 137 ||
		cs.LastTerminationState.Terminated.Reason != "Error" {
		t.Errorf("lastState = %+v", cs.LastTerminationState)
	}
	if n := app.starts.Load(); n != 2 {
		t.Errorf("workload started %d times, want 2", n)
	}
	if pod.Status.PodIP != ip {
		t.Errorf("pod IP changed on restart: %s -> %s", ip, pod.Status.PodIP)
	}

	// Graceful deletion, as the API server does it: deletionTimestamp set.
	pod.DeletionTimestamp = ptr.To(metav1.Now())
	pod.DeletionGracePeriodSeconds = ptr.To[int64](30)
	if _, err := pods.Update(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "p1 deleted", func() (bool, string) {
		_, err := pods.Get(ctx, "p1", metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	if app.preStop.Load() != 1 {
		t.Errorf("preStop hook ran %d times, want 1", app.preStop.Load())
	}
	sim.mu.Lock()
	for i, c := range sim.nodes["ascend-0"].chips {
		if c.owner != "" {
			t.Errorf("chip %d still owned by %s", i, c.owner)
		}
	}
	if len(sim.ips.used) != 0 || len(sim.pods) != 0 {
		t.Errorf("IPs %v pods %v not released", sim.ips.used, sim.pods)
	}
	sim.mu.Unlock()
	// The freed chips are allocatable again: a pod may take all eight.
	if _, err := pods.Create(ctx, testPod("p8", "ascend-0", 8), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "p8 annotated with all chips", func() (bool, string) {
		p, err := pods.Get(ctx, "p8", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		a := p.Annotations["huawei.com/Ascend910"]
		return a == "Ascend910-0,Ascend910-1,Ascend910-2,Ascend910-3,Ascend910-4,Ascend910-5,Ascend910-6,Ascend910-7", a
	})
	other, _ := pods.Get(ctx, "other", metav1.GetOptions{})
	if other.Status.Phase != "" || other.Annotations != nil {
		t.Errorf("pod of another node touched: %+v", other.Status)
	}
}

func TestDeviceInfoAndFault(t *testing.T) {
	sim, client, _ := startSim(t, 1)
	ctx := context.Background()
	cmName := "mindx-dl-deviceinfo-ascend-0"
	read := func() (map[string]string, int64) {
		t.Helper()
		cm, err := client.CoreV1().ConfigMaps("kube-system").Get(ctx, cmName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			DeviceInfo json.RawMessage
			CheckCode  string
		}
		if err := json.Unmarshal([]byte(cm.Data["DeviceInfoCfg"]), &doc); err != nil {
			t.Fatalf("DeviceInfoCfg %q: %v", cm.Data["DeviceInfoCfg"], err)
		}
		sum := sha256.Sum256(doc.DeviceInfo)
		if doc.CheckCode != hex.EncodeToString(sum[:]) {
			t.Errorf("CheckCode %s is not the sha256 of %s", doc.CheckCode, doc.DeviceInfo)
		}
		var info struct {
			DeviceList map[string]string
			UpdateTime int64
		}
		if err := json.Unmarshal(doc.DeviceInfo, &info); err != nil {
			t.Fatal(err)
		}
		return info.DeviceList, info.UpdateTime
	}
	eventually(t, "node registered", func() (bool, string) {
		_, err := client.CoreV1().ConfigMaps("kube-system").Get(ctx, cmName, metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})
	list, updated := read()
	want := map[string]string{
		"huawei.com/Ascend910":                  "Ascend910-0,Ascend910-1,Ascend910-2,Ascend910-3,Ascend910-4,Ascend910-5,Ascend910-6,Ascend910-7",
		"huawei.com/Ascend910-Unhealthy":        "",
		"huawei.com/Ascend910-NetworkUnhealthy": "",
		"huawei.com/Ascend910-Fault":            "[]",
	}
	if fmt.Sprint(list) != fmt.Sprint(want) {
		t.Errorf("DeviceList = %v, want %v", list, want)
	}
	if d := time.Since(time.Unix(updated, 0)); d < -time.Minute || d > time.Minute {
		t.Errorf("UpdateTime %d is not now", updated)
	}

	if err := sim.SetNPUFault("ascend-0", 3, ascend.FaultSeparateNPU); err != nil {
		t.Fatal(err)
	}
	list, _ = read()
	if list["huawei.com/Ascend910"] != "Ascend910-0,Ascend910-1,Ascend910-2,Ascend910-4,Ascend910-5,Ascend910-6,Ascend910-7" ||
		list["huawei.com/Ascend910-Unhealthy"] != "Ascend910-3" {
		t.Errorf("after fault: %v", list)
	}
	var faults []ascend.FaultInfo
	if err := json.Unmarshal([]byte(list["huawei.com/Ascend910-Fault"]), &faults); err != nil || len(faults) != 1 ||
		faults[0].NPUName != "Ascend910-3" || faults[0].FaultLevel != ascend.FaultSeparateNPU {
		t.Errorf("fault list %q (%v)", list["huawei.com/Ascend910-Fault"], err)
	}
	n, _ := client.CoreV1().Nodes().Get(ctx, "ascend-0", metav1.GetOptions{})
	if q := n.Status.Allocatable["huawei.com/Ascend910"]; q.Value() != 7 {
		t.Errorf("allocatable NPUs = %s, want 7", q.String())
	}
	// A faulty chip is not allocated.
	pods := client.CoreV1().Pods("default")
	if _, err := pods.Create(ctx, testPod("p4", "ascend-0", 4), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "p4 annotated", func() (bool, string) {
		p, _ := pods.Get(ctx, "p4", metav1.GetOptions{})
		a := p.Annotations["huawei.com/Ascend910"]
		return a == "Ascend910-0,Ascend910-1,Ascend910-2,Ascend910-4", a
	})
	if err := sim.SetNPUFault("ascend-0", 3, ""); err != nil {
		t.Fatal(err)
	}
	list, _ = read()
	if list["huawei.com/Ascend910-Unhealthy"] != "" || list["huawei.com/Ascend910-Fault"] != "[]" {
		t.Errorf("after clearing: %v", list)
	}
}

func TestDialLoopbackRefusesOtherHosts(t *testing.T) {
	for _, addr := range []string{"10.0.0.1:80", "192.168.1.1:443", "example.com:80"} {
		if _, err := DialLoopback(context.Background(), "tcp", addr); err == nil || !strings.Contains(err.Error(), "only loopback") {
			t.Errorf("DialLoopback(%s) = %v, want a refusal", addr, err)
		}
	}
	if _, err := New(Config{Client: fake.NewClientset(), PodCIDR: "10.1.0.0/16"}); err == nil {
		t.Error("a non-loopback pod CIDR was accepted")
	}
}

// The default workload is a MindIE simulator on podIP:<first port>.
func TestMindIEWorkloadServesOnPodIP(t *testing.T) {
	ip := fmt.Sprintf("127.1.%d.%d", 100+rand.IntN(150), 2+rand.IntN(200))
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "m", Namespace: "default"}}
	spec := WorkloadSpec{Pod: pod, PodIP: ip, NPUs: []string{"Ascend910-0"}, Log: &testutil.SyncBuffer{},
		Container: corev1.Container{Name: "mindie", Env: []corev1.EnvVar{{Name: ServerConfigEnv, Value: `{}`}}}}
	w, err := MindIEWorkload(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	srv := w.(*mindieWorkload).srv
	inf, mgmt := srv.Addrs()
	for _, a := range []net.Addr{inf, mgmt} {
		if host, _, _ := net.SplitHostPort(a.String()); host != ip {
			t.Errorf("listening on %s, want host %s", a, ip)
		}
		c, err := DialLoopback(context.Background(), "tcp", a.String())
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.Stop(ctx); err != nil {
		t.Errorf("Stop: %v", err)
	}
	select {
	case <-w.Done():
	default:
		t.Error("Done not closed after Stop")
	}
}

// The heartbeats' budget grows with the nodes: at 1,000 nodes renewing
// every 10 s, 100 Lease updates and 33 status reads and writes a second,
// with half as much again to spare.
func TestHeartbeatQPS(t *testing.T) {
	if got := HeartbeatQPS(1000, 10*time.Second); got < 199 || got > 201 {
		t.Errorf("1,000 nodes: %g", got)
	}
	if got := HeartbeatQPS(3, 10*time.Second); got != 20 {
		t.Errorf("3 nodes: %g, want the floor 20", got)
	}
}

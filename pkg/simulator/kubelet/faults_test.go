package kubelet

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/pkg/ascend"
	"mindie.io/deployer/pkg/simulator/mindie"
	"mindie.io/deployer/test/testutil"
)

// The MindIE Server simulator of these tests: loaded at once, 20ms decode
// steps (a 100-token answer streams for 2s).
var fastMindIE = mindie.Config{LoadTime: mindie.NoDelay, PrefillPerToken: 10 * time.Microsecond, DecodePerToken: 20 * time.Millisecond}

// Ports of mindiePod's container.
const (
	infPort  = 18080
	mgmtPort = 18081
)

// startMindIESim runs a simulator whose containers are real MindIE Server
// simulators (fastMindIE), with 100ms CrashLoopBackOffs.
func startMindIESim(t *testing.T, cfg Config) (*Simulator, *fake.Clientset) {
	t.Helper()
	if cfg.NodeCount == 0 && cfg.NodeNames == nil {
		cfg.NodeCount = 1
	}
	cfg.StartWorkload = func(_ context.Context, spec WorkloadSpec) (Workload, error) { return startMindIE(spec, fastMindIE) }
	if cfg.CrashLoopBackOff == 0 {
		cfg.CrashLoopBackOff = 100 * time.Millisecond
	}
	sim, client, _ := startSimConfig(t, cfg)
	eventually(t, "nodes registered", func() (bool, string) {
		for _, n := range sim.NodeNames() {
			if _, err := client.CoordinationV1().Leases(LeaseNamespace).Get(context.Background(), n, metav1.GetOptions{}); err != nil {
				return false, err.Error()
			}
		}
		return true, ""
	})
	return sim, client
}

// mindiePod is a pod whose MindIE Server container asks for npus chips,
// serves inference on infPort and management on mgmtPort, and is probed
// as the controller probes it: readiness on /v2/health/ready, liveness on
// /v2/health/live (every ProbeSecond, killed after 2 failures).
func mindiePod(name, node string, npus int64) *corev1.Pod {
	probe := func(path string, failures int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("mgmt")}},
			PeriodSeconds: 1, TimeoutSeconds: 1, FailureThreshold: failures,
		}
	}
	p := testPod(name, node, npus)
	c := &p.Spec.Containers[0]
	c.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: infPort}, {Name: "mgmt", ContainerPort: mgmtPort}}
	c.ReadinessProbe, c.LivenessProbe, c.Lifecycle = probe("/v2/health/ready", 1), probe("/v2/health/live", 2), nil
	p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](1)
	return p
}

// ready reports whether the pod is Running and Ready.
func ready(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodRunning && podCondition(p, corev1.PodReady) == corev1.ConditionTrue
}

// restarts is the restart count of the pod's "mindie" container.
func restarts(p *corev1.Pod) int32 { return containerStatus(p, "mindie").RestartCount }

// podHTTP dials pod IPs (loopback only), without keep-alives: every
// request is a new connection, as a router's after a failure.
var podHTTP = &http.Client{Timeout: 10 * time.Second,
	Transport: &http.Transport{Proxy: nil, DialContext: DialLoopback, DisableKeepAlives: true}}

// complete sends a small completion to the pod at ip.
func complete(ip string) (int, string, error) {
	resp, err := podHTTP.Post(fmt.Sprintf("http://%s/v1/completions", net.JoinHostPort(ip, fmt.Sprint(infPort))),
		"application/json", strings.NewReader(`{"prompt": "hello there", "max_tokens": 2}`))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// streamResult is what a client of a streamed chat completion got.
type streamResult struct {
	status int
	body   string
	err    error // reading the stream failed (the connection dropped)
}

// startStream starts a streamed chat completion of maxTokens tokens on the
// pod at ip. first is closed when its first event has arrived.
func startStream(t *testing.T, ip string, maxTokens int) (first <-chan struct{}, done <-chan streamResult) {
	t.Helper()
	firstCh, doneCh := make(chan struct{}), make(chan streamResult, 1)
	go func() {
		body := fmt.Sprintf(`{"messages":[{"role":"user","content":"tell me a long story"}],"stream":true,"max_tokens":%d}`, maxTokens)
		resp, err := podHTTP.Post(fmt.Sprintf("http://%s/v1/chat/completions", net.JoinHostPort(ip, fmt.Sprint(infPort))),
			"application/json", strings.NewReader(body))
		if err != nil {
			close(firstCh)
			doneCh <- streamResult{err: err}
			return
		}
		defer resp.Body.Close()
		var sb strings.Builder
		rd := bufio.NewReader(resp.Body)
		once := sync.OnceFunc(func() { close(firstCh) })
		defer once()
		for {
			line, err := rd.ReadString('\n')
			sb.WriteString(line)
			if strings.HasPrefix(line, "data: ") {
				once()
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				doneCh <- streamResult{status: resp.StatusCode, body: sb.String(), err: err}
				return
			}
		}
	}()
	select {
	case <-firstCh:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream's first event never came")
	}
	return firstCh, doneCh
}

func receiveStream(t *testing.T, done <-chan streamResult) streamResult {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("the stream never ended")
		return streamResult{}
	}
}

// completed reports whether a stream ended normally.
func (r streamResult) completed() bool {
	return r.err == nil && r.status == http.StatusOK && strings.Contains(r.body, "data: [DONE]") && !strings.Contains(r.body, `"error"`)
}

// devices reads node's device info ConfigMap.
func devices(t *testing.T, client *fake.Clientset, node string) (ascend.DeviceInfo, []ascend.FaultInfo, map[string]string) {
	t.Helper()
	cm, err := client.CoreV1().ConfigMaps(ascend.DeviceInfoNamespace).Get(context.Background(), ascend.DeviceInfoConfigMapName(node), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var cfg ascend.DeviceInfoCfg
	decodeStrict(t, "device info", cm.Data[ascend.DeviceInfoKey], &cfg)
	if err := cfg.Verify(); err != nil {
		t.Error(err)
	}
	var faults []ascend.FaultInfo
	decodeStrict(t, "faults", cfg.DeviceInfo.DeviceList[ascend.FaultKey(DefaultNPUType)], &faults)
	return cfg.DeviceInfo, faults, cm.Data
}

// allocatable is node's allocatable NPU count.
func allocatable(t *testing.T, client *fake.Clientset, node string) int64 {
	t.Helper()
	n, err := client.CoreV1().Nodes().Get(context.Background(), node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	q := n.Status.Allocatable[ascend.ResourceName(DefaultNPUType)]
	return q.Value()
}

// createReady creates a mindiePod and waits until it is Ready.
func createReady(t *testing.T, pods typedcorev1.PodInterface, name, node string, npus int64) *corev1.Pod {
	t.Helper()
	if _, err := pods.Create(context.Background(), mindiePod(name, node, npus), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return waitPod(t, pods, name, "Ready", ready)
}

// The levels that spare the pod: a running request completes, nothing
// restarts, the chip stays healthy; the fault is published with its code
// and time.
func TestNPUFaultsThatSparePods(t *testing.T) {
	sim, client := startMindIESim(t, Config{})
	pods := client.CoreV1().Pods("default")
	pod := createReady(t, pods, "p", "ascend-0", 2)
	if a := pod.Annotations["huawei.com/Ascend910"]; a != "Ascend910-0,Ascend910-1" {
		t.Fatalf("chips %q", a)
	}
	for _, level := range []string{ascend.FaultNotHandle, ascend.FaultSubHealth} {
		_, done := startStream(t, pod.Status.PodIP, 30)
		before := time.Now()
		if err := sim.SetNPUFault("ascend-0", 1, level); err != nil {
			t.Fatal(err)
		}
		if r := receiveStream(t, done); !r.completed() {
			t.Errorf("%s: a running stream should complete: %+v", level, r)
		}
		info, faults, _ := devices(t, client, "ascend-0")
		l, _ := faultLevel(level)
		if len(faults) != 1 || faults[0].NPUName != "Ascend910-1" || faults[0].FaultHandling != level || faults[0].FaultCode != l.code {
			t.Errorf("%s: faults %+v", level, faults)
		} else if tl, ok := faults[0].FaultTimeAndLevelMap[l.code]; !ok || tl.FaultLevel != level ||
			tl.FaultTime < before.UnixMilli() || tl.FaultTime > time.Now().UnixMilli() {
			t.Errorf("%s: fault_time_and_level_map %+v, want {%s: {now, %s}}", level, faults[0].FaultTimeAndLevelMap, l.code, level)
		}
		if u := info.UnhealthyChips(DefaultNPUType); u != nil || allocatable(t, client, "ascend-0") != 8 {
			t.Errorf("%s: unhealthy %v, allocatable %d; want none and 8", level, u, allocatable(t, client, "ascend-0"))
		}
		p, _ := pods.Get(context.Background(), "p", metav1.GetOptions{})
		if !ready(p) || restarts(p) != 0 {
			t.Errorf("%s: pod ready %t, restarts %d", level, ready(p), restarts(p))
		}
		if code, body, err := complete(pod.Status.PodIP); err != nil || code != http.StatusOK {
			t.Errorf("%s: a new request: %d %s %v", level, code, body, err)
		}
	}
	if err := sim.SetNPUFault("ascend-0", 1, ""); err != nil {
		t.Fatal(err)
	}
	if _, faults, _ := devices(t, client, "ascend-0"); len(faults) != 0 {
		t.Errorf("faults after clearing: %+v", faults)
	}
}

// RestartRequest fails the requests running on the pod holding the chip,
// and only them; the chip is unhealthy until cleared.
func TestNPUFaultRestartRequestFailsRunningRequests(t *testing.T) {
	sim, client := startMindIESim(t, Config{})
	pods := client.CoreV1().Pods("default")
	p := createReady(t, pods, "p", "ascend-0", 2)
	q := createReady(t, pods, "q", "ascend-0", 2) // chips 2 and 3
	_, pDone := startStream(t, p.Status.PodIP, 100)
	_, qDone := startStream(t, q.Status.PodIP, 30)
	if err := sim.SetNPUFault("ascend-0", 1, ascend.FaultRestartRequest); err != nil {
		t.Fatal(err)
	}
	r := receiveStream(t, pDone)
	if r.err != nil || r.status != http.StatusOK || strings.Contains(r.body, "[DONE]") ||
		!strings.Contains(r.body, `"type":"server_error"`) || !strings.Contains(r.body, "NPU fault (RestartRequest)") {
		t.Errorf("the stream of the pod holding the chip should end with an engine error event: %+v", r)
	}
	if r := receiveStream(t, qDone); !r.completed() {
		t.Errorf("another pod's stream should complete: %+v", r)
	}
	if code, body, err := complete(p.Status.PodIP); err != nil || code != http.StatusOK {
		t.Errorf("a new request after the fault: %d %s %v", code, body, err)
	}
	p, _ = pods.Get(context.Background(), "p", metav1.GetOptions{})
	if !ready(p) || restarts(p) != 0 {
		t.Errorf("the pod should run on: ready %t, restarts %d", ready(p), restarts(p))
	}
	// Unhealthy, as every level but NormalNPU, NotHandleFault and
	// SubHealthFault (and PreSeparateNPU in use).
	info, faults, _ := devices(t, client, "ascend-0")
	if u := info.UnhealthyChips(DefaultNPUType); !slices.Equal(u, []string{"Ascend910-1"}) || allocatable(t, client, "ascend-0") != 7 ||
		len(faults) != 1 || faults[0].FaultCode != "80C98008" {
		t.Errorf("unhealthy %v, allocatable %d, faults %+v", u, allocatable(t, client, "ascend-0"), faults)
	}
	if err := sim.SetNPUFault("ascend-0", 1, ""); err != nil {
		t.Fatal(err)
	}
	if a := allocatable(t, client, "ascend-0"); a != 8 {
		t.Errorf("allocatable after clearing: %d", a)
	}
}

// RestartBusiness, FreeRestartNPU and RestartNPU crash the server: its
// connections drop and its container restarts.
func TestNPUFaultsThatRestartTheServer(t *testing.T) {
	sim, client := startMindIESim(t, Config{})
	pods := client.CoreV1().Pods("default")
	p := createReady(t, pods, "p", "ascend-0", 1)
	other := createReady(t, pods, "other", "ascend-0", 1)
	for i, level := range []string{ascend.FaultRestartBusiness, ascend.FaultFreeRestartNPU, ascend.FaultRestartNPU} {
		_, done := startStream(t, p.Status.PodIP, 100)
		if err := sim.SetNPUFault("ascend-0", 0, level); err != nil {
			t.Fatal(err)
		}
		if r := receiveStream(t, done); r.err == nil {
			t.Errorf("%s: the stream should be cut, got %+v", level, r)
		}
		got := waitPod(t, pods, "p", fmt.Sprintf("restarted (%s)", level), func(p *corev1.Pod) bool { return ready(p) && restarts(p) == int32(i+1) })
		if last := containerStatus(got, "mindie").LastTerminationState.Terminated; last == nil || last.ExitCode != 1 || last.Reason != "Error" {
			t.Errorf("%s: lastState %+v, want a crash (exit code 1)", level, last)
		}
		if code, body, err := complete(p.Status.PodIP); err != nil || code != http.StatusOK {
			t.Errorf("%s: a request after the restart: %d %s %v", level, code, body, err)
		}
		if a := allocatable(t, client, "ascend-0"); a != 7 {
			t.Errorf("%s: allocatable %d, want 7", level, a)
		}
		if err := sim.SetNPUFault("ascend-0", 0, ""); err != nil {
			t.Fatal(err)
		}
		if a := allocatable(t, client, "ascend-0"); a != 8 {
			t.Errorf("%s: allocatable after clearing %d", level, a)
		}
	}
	if o, _ := pods.Get(context.Background(), "other", metav1.GetOptions{}); restarts(o) != 0 || !ready(o) {
		t.Errorf("the pod on another chip restarted: %d", restarts(o))
	}
	_ = other
}

// PreSeparateNPU, SeparateNPU and ManuallySeparateNPU make the chip
// unusable: the pod holding it fails its probes and requests (its
// restarted servers too) until the fault is cleared; a new pod on healthy
// chips is fine.
func TestNPUFaultsThatMakeTheChipUnusable(t *testing.T) {
	for _, level := range []string{ascend.FaultPreSeparateNPU, ascend.FaultSeparateNPU, ascend.FaultManuallySeparateNPU} {
		t.Run(level, func(t *testing.T) {
			sim, client := startMindIESim(t, Config{})
			ctx := context.Background()
			pods := client.CoreV1().Pods("default")
			victim := createReady(t, pods, "victim", "ascend-0", 2)
			ip := victim.Status.PodIP
			_, done := startStream(t, ip, 100)
			if err := sim.SetNPUFault("ascend-0", 1, level); err != nil {
				t.Fatal(err)
			}
			if r := receiveStream(t, done); r.err != nil || !strings.Contains(r.body, "the NPU is unusable") || strings.Contains(r.body, "[DONE]") {
				t.Errorf("the running stream should end with an engine error event: %+v", r)
			}
			waitPod(t, pods, "victim", "not ready", func(p *corev1.Pod) bool { return !ready(p) })
			// The liveness probe kills it; the restarted server fails too.
			waitPod(t, pods, "victim", "restarted by its liveness probe", func(p *corev1.Pod) bool { return restarts(p) >= 1 })
			eventually(t, "a restarted server refusing a request with an engine error", func() (bool, string) {
				code, body, err := complete(ip)
				return code == http.StatusInternalServerError && strings.Contains(body, `"type":"server_error"`) &&
					strings.Contains(body, "the NPU is unusable"), fmt.Sprint(code, body, err)
			})
			waitPod(t, pods, "victim", "restarted again", func(p *corev1.Pod) bool { return restarts(p) >= 2 && !ready(p) })

			info, faults, data := devices(t, client, "ascend-0")
			wantAlloc, wantUnhealthy := int64(7), []string{"Ascend910-1"}
			if level == ascend.FaultPreSeparateNPU { // healthy while in use
				wantAlloc, wantUnhealthy = 8, nil
			}
			if u := info.UnhealthyChips(DefaultNPUType); !slices.Equal(u, wantUnhealthy) || allocatable(t, client, "ascend-0") != wantAlloc ||
				len(faults) != 1 || faults[0].FaultHandling != level {
				t.Errorf("unhealthy %v, allocatable %d, faults %+v; want %v, %d", u, allocatable(t, client, "ascend-0"), faults, wantUnhealthy, wantAlloc)
			}
			wantManual := ""
			if level == ascend.FaultManuallySeparateNPU {
				wantManual = "Ascend910-1"
			}
			if got, ok := data["ManuallySeparateNPU"]; !ok || got != wantManual {
				t.Errorf("ManuallySeparateNPU key %q (present %t), want %q", got, ok, wantManual)
			}

			// A new pod gets healthy chips and is fine.
			fresh := createReady(t, pods, "fresh", "ascend-0", 2)
			if a := fresh.Annotations["huawei.com/Ascend910"]; a != "Ascend910-2,Ascend910-3" {
				t.Errorf("chips of a new pod: %q", a)
			}
			if code, body, err := complete(fresh.Status.PodIP); err != nil || code != http.StatusOK {
				t.Errorf("a request to the new pod: %d %s %v", code, body, err)
			}

			if level == ascend.FaultPreSeparateNPU {
				// Once the pod lets go of it, the chip is unhealthy.
				victim, _ = pods.Get(ctx, "victim", metav1.GetOptions{})
				victim.DeletionTimestamp = ptr.To(metav1.Now())
				victim.DeletionGracePeriodSeconds = ptr.To[int64](0)
				if _, err := pods.Update(ctx, victim, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
				eventually(t, "the chip unhealthy once free", func() (bool, string) {
					info, _, _ := devices(t, client, "ascend-0")
					u := info.UnhealthyChips(DefaultNPUType)
					a := allocatable(t, client, "ascend-0")
					return slices.Equal(u, []string{"Ascend910-1"}) && a == 7, fmt.Sprint(u, a)
				})
				if err := sim.SetNPUFault("ascend-0", 1, ""); err != nil {
					t.Fatal(err)
				}
				if a := allocatable(t, client, "ascend-0"); a != 8 {
					t.Errorf("allocatable after clearing: %d", a)
				}
				return
			}

			// Cleared: the pod holding the chip recovers.
			if err := sim.SetNPUFault("ascend-0", 1, ""); err != nil {
				t.Fatal(err)
			}
			if a := allocatable(t, client, "ascend-0"); a != 8 {
				t.Errorf("allocatable after clearing: %d", a)
			}
			got := waitPod(t, pods, "victim", "Ready again", ready)
			if code, body, err := complete(ip); err != nil || code != http.StatusOK {
				t.Errorf("a request after clearing: %d %s %v", code, body, err)
			}
			n := restarts(got)
			time.Sleep(20 * sim.cfg.ProbeSecond) // ten liveness periods
			if p, _ := pods.Get(ctx, "victim", metav1.GetOptions{}); !ready(p) || restarts(p) != n {
				t.Errorf("after clearing: ready %t, restarts %d -> %d", ready(p), n, restarts(p))
			}
		})
	}
}

// A fault on a chip nobody holds touches no pod.
func TestNPUFaultOnAFreeChip(t *testing.T) {
	sim, client := startMindIESim(t, Config{})
	pods := client.CoreV1().Pods("default")
	p := createReady(t, pods, "p", "ascend-0", 1)
	_, done := startStream(t, p.Status.PodIP, 30)
	for _, level := range []string{ascend.FaultRestartRequest, ascend.FaultRestartNPU, ascend.FaultSeparateNPU} {
		if err := sim.SetNPUFault("ascend-0", 5, level); err != nil {
			t.Fatal(err)
		}
	}
	if r := receiveStream(t, done); !r.completed() {
		t.Errorf("a stream on another chip: %+v", r)
	}
	if p, _ := pods.Get(context.Background(), "p", metav1.GetOptions{}); !ready(p) || restarts(p) != 0 {
		t.Errorf("pod: ready %t, restarts %d", ready(p), restarts(p))
	}
	if err := sim.SetNPUFault("ascend-0", 5, "Broken"); err == nil {
		t.Error("an unknown level was accepted")
	}
}

// writeCounter counts the API writes that concern a node: its status,
// lease and device info, its pods' status and annotations, and pod
// deletions with a UID precondition (the kubelet's).
type writeCounter struct {
	node  string
	pods  func(name string) bool // the pods on the node
	count atomic.Int32
	mu    sync.Mutex
	what  []string
}

func (w *writeCounter) react(a k8stesting.Action) (bool, runtime.Object, error) {
	var name string
	switch a := a.(type) {
	case k8stesting.CreateAction: // updates too: an UpdateAction is one
		if o, ok := a.GetObject().(metav1.Object); ok {
			name = o.GetName()
		}
	case k8stesting.PatchAction:
		name = a.GetName()
	case k8stesting.DeleteAction:
		if opts := a.GetDeleteOptions(); opts.Preconditions == nil || opts.Preconditions.UID == nil {
			return false, nil, nil // the test's own deletions
		}
		name = a.GetName()
	default:
		return false, nil, nil
	}
	res := a.GetResource().Resource
	mine := false
	switch res {
	case "nodes", "leases":
		mine = name == w.node
	case "configmaps":
		mine = name == ascend.DeviceInfoConfigMapName(w.node)
	case "pods": // not the test's own updates
		mine = w.pods(name) && (a.GetVerb() != "update" || a.GetSubresource() == "status")
	}
	if mine {
		w.count.Add(1)
		w.mu.Lock()
		w.what = append(w.what, a.GetVerb()+" "+res+"/"+name+" "+a.GetSubresource())
		w.mu.Unlock()
	}
	return false, nil, nil
}

func (w *writeCounter) since(n int32) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.what[n:])
}

// A node that goes down stops everything on it: its pods' servers refuse
// connections, its probes stop, and nothing about it is written; back up,
// deleted pods are cleaned up, pods being deleted are deleted, the others'
// containers start again, and the node and device info are written again.
func TestNodeDownAndBack(t *testing.T) {
	client := fake.NewClientset()
	onNode0 := map[string]bool{"stays": true, "gone": true, "leaving": true}
	wc := &writeCounter{node: "ascend-0", pods: func(n string) bool { return onNode0[n] }}
	for _, verb := range []string{"update", "create", "patch", "delete"} {
		client.PrependReactor(verb, "*", wc.react)
	}
	sim, _ := startMindIESim(t, Config{Client: client, NodeCount: 2})
	ctx := context.Background()
	pods := client.CoreV1().Pods("default")
	stays := createReady(t, pods, "stays", "ascend-0", 2)
	gone := createReady(t, pods, "gone", "ascend-0", 2)
	leaving := createReady(t, pods, "leaving", "ascend-0", 2)
	elsewhere := createReady(t, pods, "elsewhere", "ascend-1", 2)
	_, elsewhereStream := startStream(t, elsewhere.Status.PodIP, 60)
	_, stream := startStream(t, stays.Status.PodIP, 200)
	probeLines := func() int {
		return strings.Count(sim.cfg.Log.(*testutil.SyncBuffer).String(), "pod default/stays container mindie: readiness probe failed")
	}

	if err := sim.SetNodeDown("ascend-0", true); err != nil {
		t.Fatal(err)
	}
	mark := wc.count.Load()
	node0, _ := client.CoreV1().Nodes().Get(ctx, "ascend-0", metav1.GetOptions{})
	lease0, _ := client.CoordinationV1().Leases(LeaseNamespace).Get(ctx, "ascend-0", metav1.GetOptions{})
	// Its servers are gone: connections are refused at once.
	if r := receiveStream(t, stream); r.err == nil {
		t.Errorf("a stream to a down node's pod should be cut: %+v", r)
	}
	for _, p := range []*corev1.Pod{stays, gone, leaving} {
		for _, port := range []int{infPort, mgmtPort} {
			start := time.Now()
			_, err := DialLoopback(ctx, "tcp", net.JoinHostPort(p.Status.PodIP, fmt.Sprint(port)))
			if !errors.Is(err, syscall.ECONNREFUSED) || time.Since(start) > time.Second {
				t.Errorf("dialling %s:%d of a down node: %v after %s, want connection refused at once", p.Name, port, err, time.Since(start))
			}
		}
	}
	// While down: deletions in the API and an NPU fault wait for it.
	if err := pods.Delete(ctx, "gone", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	l, _ := pods.Get(ctx, "leaving", metav1.GetOptions{})
	l.DeletionTimestamp = ptr.To(metav1.Now())
	l.DeletionGracePeriodSeconds = ptr.To[int64](30)
	if _, err := pods.Update(ctx, l, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := sim.SetNPUFault("ascend-0", 7, ascend.FaultSeparateNPU); err != nil {
		t.Fatal(err)
	}
	probes := probeLines()
	time.Sleep(10*sim.cfg.LeaseInterval/2 + 20*sim.cfg.ProbeSecond) // five lease intervals, twenty probe periods
	if n := wc.count.Load(); n != mark {
		t.Errorf("%d writes about the down node: %v", n-mark, wc.since(mark))
	}
	if n := probeLines(); n != probes {
		t.Errorf("probes ran on a down node: %d more failures logged", n-probes)
	}
	if r := receiveStream(t, elsewhereStream); !r.completed() {
		t.Errorf("a stream on another node: %+v", r)
	}
	p, _ := pods.Get(ctx, "stays", metav1.GetOptions{})
	if !ready(p) || restarts(p) != 0 {
		t.Errorf("the simulator rewrote a down node's pod: ready %t, restarts %d", ready(p), restarts(p))
	}
	if _, err := pods.Get(ctx, "leaving", metav1.GetOptions{}); err != nil {
		t.Errorf("a pod being deleted on a down node is deleted only once it is back: %v", err)
	}
	if n, _ := client.CoreV1().Nodes().Get(ctx, "ascend-0", metav1.GetOptions{}); !readyHeartbeat(n).Equal(readyHeartbeat(node0)) {
		t.Errorf("a down node's status was written")
	}
	if l, _ := client.CoordinationV1().Leases(LeaseNamespace).Get(ctx, "ascend-0", metav1.GetOptions{}); !l.Spec.RenewTime.Equal(lease0.Spec.RenewTime) {
		t.Errorf("a down node's lease was renewed")
	}

	// Back up.
	if err := sim.SetNodeDown("ascend-0", false); err != nil {
		t.Fatal(err)
	}
	got := waitPod(t, pods, "stays", "restarted and Ready", func(p *corev1.Pod) bool { return ready(p) && restarts(p) == 1 })
	if last := containerStatus(got, "mindie").LastTerminationState.Terminated; last == nil || last.ExitCode != 255 || last.Reason != "Unknown" {
		t.Errorf("lastState after the node came back: %+v", last)
	}
	if got.Status.PodIP != stays.Status.PodIP {
		t.Errorf("pod IP changed: %s -> %s", stays.Status.PodIP, got.Status.PodIP)
	}
	if code, body, err := complete(got.Status.PodIP); err != nil || code != http.StatusOK {
		t.Errorf("a request after the node came back: %d %s %v", code, body, err)
	}
	eventually(t, "the pod being deleted deleted", func() (bool, string) {
		_, err := pods.Get(ctx, "leaving", metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	eventually(t, "the deleted pods forgotten and their chips freed", func() (bool, string) {
		sim.mu.Lock()
		defer sim.mu.Unlock()
		owned := 0
		for _, c := range sim.nodes["ascend-0"].chips {
			if c.owner != "" {
				owned++
			}
		}
		_, g := sim.pods["default/gone"]
		_, l := sim.pods["default/leaving"]
		return owned == 2 && !g && !l, fmt.Sprintf("%d chips owned, gone %t, leaving %t", owned, g, l)
	})
	for _, p := range []*corev1.Pod{gone, leaving} {
		if _, err := DialLoopback(ctx, "tcp", net.JoinHostPort(p.Status.PodIP, fmt.Sprint(infPort))); err == nil {
			t.Errorf("pod %s deleted while its node was down serves again", p.Name)
		}
	}
	if n, _ := client.CoreV1().Nodes().Get(ctx, "ascend-0", metav1.GetOptions{}); !readyHeartbeat(n).After(readyHeartbeat(node0)) ||
		nodeCondition(n, corev1.NodeReady) != corev1.ConditionTrue {
		t.Errorf("the node's status is not written again")
	}
	if info, _, _ := devices(t, client, "ascend-0"); !slices.Equal(info.UnhealthyChips(DefaultNPUType), []string{"Ascend910-7"}) {
		t.Errorf("the fault injected while down is not published: %v", info.DeviceList)
	}
	if a := allocatable(t, client, "ascend-0"); a != 7 {
		t.Errorf("allocatable %d, want 7", a)
	}
}

// A restartPolicy Never pod does not survive its node going down.
func TestNodeDownFailsRestartPolicyNeverPods(t *testing.T) {
	sim, client := startMindIESim(t, Config{})
	pods := client.CoreV1().Pods("default")
	p := mindiePod("once", "ascend-0", 1)
	p.Spec.RestartPolicy = corev1.RestartPolicyNever
	if _, err := pods.Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPod(t, pods, "once", "Ready", ready)
	if err := sim.SetNodeDown("ascend-0", true); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * sim.cfg.ProbeSecond)
	if p, _ := pods.Get(context.Background(), "once", metav1.GetOptions{}); p.Status.Phase != corev1.PodRunning {
		t.Errorf("phase %s written while the node is down", p.Status.Phase)
	}
	if err := sim.SetNodeDown("ascend-0", false); err != nil {
		t.Fatal(err)
	}
	got := waitPod(t, pods, "once", "Failed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	if term := containerStatus(got, "mindie").State.Terminated; term == nil || term.ExitCode != 255 || term.Reason != "Unknown" {
		t.Errorf("state %+v", containerStatus(got, "mindie").State)
	}
	checkReleased(t, sim, "ascend-0")
}

// The simulated device plugin's levels are package ascend's, and each
// hurts the pod as the controller expects of its level.
func TestNPUFaultLevelsMatchPackageAscend(t *testing.T) {
	if !slices.Equal(NPUFaultLevels, ascend.FaultLevels) {
		t.Errorf("NPUFaultLevels %v, ascend.FaultLevels %v", NPUFaultLevels, ascend.FaultLevels)
	}
	codes := map[string]bool{}
	for _, l := range npuFaultLevels {
		if (l.effect == effectChipUnusable) != ascend.SeparatesChip(l.name) || (l.effect == effectCrash) != ascend.RestartsProcess(l.name) {
			t.Errorf("%s: effect %d, but ascend.SeparatesChip %t, RestartsProcess %t", l.name, l.effect, ascend.SeparatesChip(l.name), ascend.RestartsProcess(l.name))
		}
		if len(l.code) != 8 || strings.ToUpper(l.code) != l.code || codes[l.code] {
			t.Errorf("%s: fault code %q is not 8 upper-case hex digits of its own", l.name, l.code)
		}
		codes[l.code] = true
	}
}

package kubelet

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/pkg/ascend"
)

// plainPod is a pod without probes or hooks whose first container
// ("mindie") asks for npus chips; each extra container name adds a
// container listening on its own port.
func plainPod(name, node string, npus int64, policy corev1.RestartPolicy, extra ...string) *corev1.Pod {
	p := testPod(name, node, npus)
	p.Spec.RestartPolicy = policy
	c := &p.Spec.Containers[0]
	c.ReadinessProbe, c.LivenessProbe, c.Lifecycle = nil, nil, nil
	for i, n := range extra {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: n, Image: "side:sim",
			Ports: []corev1.ContainerPort{{ContainerPort: int32(18090 + i)}}})
	}
	return p
}

func containerStatus(p *corev1.Pod, name string) corev1.ContainerStatus {
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == name {
			return cs
		}
	}
	return corev1.ContainerStatus{}
}

func podConditionReason(p *corev1.Pod, typ corev1.PodConditionType) string {
	for _, c := range p.Status.Conditions {
		if c.Type == typ {
			return c.Reason
		}
	}
	return ""
}

// waitPod polls pod name until cond holds and returns it.
func waitPod(t *testing.T, pods typedcorev1.PodInterface, name, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	eventually(t, name+" "+what, func() (bool, string) {
		p, err := pods.Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		pod = p
		return cond(p), fmt.Sprintf("phase %s containers %+v", p.Status.Phase, p.Status.ContainerStatuses)
	})
	return pod
}

// running reports whether the pod is Running with all named containers
// running.
func running(names ...string) func(*corev1.Pod) bool {
	return func(p *corev1.Pod) bool {
		if p.Status.Phase != corev1.PodRunning {
			return false
		}
		for _, n := range names {
			if containerStatus(p, n).State.Running == nil {
				return false
			}
		}
		return true
	}
}

// checkReleased fails unless no chip of node and no pod IP is held.
func checkReleased(t *testing.T, sim *Simulator, node string) {
	t.Helper()
	sim.mu.Lock()
	defer sim.mu.Unlock()
	for i, c := range sim.nodes[node].chips {
		if c.owner != "" {
			t.Errorf("chip %d still owned by %s", i, c.owner)
		}
	}
	if len(sim.ips.used) != 0 {
		t.Errorf("pod IPs %v not released", sim.ips.used)
	}
}

func TestRestartPolicyNever(t *testing.T) {
	sim, client, fw := startSim(t, 1)
	ctx := context.Background()
	pods := client.CoreV1().Pods("default")
	if _, err := pods.Create(ctx, plainPod("never", "ascend-0", 2, corev1.RestartPolicyNever), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := waitPod(t, pods, "never", "Running", running("mindie"))
	ip := pod.Status.PodIP
	app := fw.app("never")
	app.exit(t, 3)
	pod = waitPod(t, pods, "never", "Failed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	cs := containerStatus(pod, "mindie")
	term := cs.State.Terminated
	if term == nil || term.ExitCode != 3 || term.Reason != "Error" || term.StartedAt.IsZero() || term.FinishedAt.Before(&term.StartedAt) {
		t.Fatalf("state of the failed container: %+v", cs.State)
	}
	if cs.Ready || ptr.Deref(cs.Started, true) || cs.RestartCount != 0 || cs.LastTerminationState.Terminated != nil {
		t.Errorf("status of the failed container: %+v", cs)
	}
	for _, typ := range []corev1.PodConditionType{corev1.PodReady, corev1.ContainersReady} {
		if podCondition(pod, typ) != corev1.ConditionFalse {
			t.Errorf("condition %s of the failed pod: %v", typ, pod.Status.Conditions)
		}
	}
	if pod.Status.PodIP != ip {
		t.Errorf("a terminated pod keeps its IP in its status: %q, was %q", pod.Status.PodIP, ip)
	}
	checkReleased(t, sim, "ascend-0")
	// Not restarted and not deleted, well past a back-off.
	time.Sleep(2 * sim.cfg.CrashLoopBackOff)
	if n := app.starts.Load(); n != 1 {
		t.Errorf("a restartPolicy Never container started %d times", n)
	}
	if p, err := pods.Get(ctx, "never", metav1.GetOptions{}); err != nil || p.Status.Phase != corev1.PodFailed {
		t.Fatalf("failed pod: %v, phase %v", err, p.Status.Phase)
	}

	// A liveness failure kills the container with 137; its NPUs (all eight:
	// the failed pod's two were freed) are released again.
	live := testPod("never-live", "ascend-0", 8)
	live.Spec.RestartPolicy = corev1.RestartPolicyNever
	if _, err := pods.Create(ctx, live, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod = waitPod(t, pods, "never-live", "Running", running("mindie"))
	if a := pod.Annotations["huawei.com/Ascend910"]; a != "Ascend910-0,Ascend910-1,Ascend910-2,Ascend910-3,Ascend910-4,Ascend910-5,Ascend910-6,Ascend910-7" {
		t.Errorf("NPUs of a pod after a failed pod's: %q", a)
	}
	fw.app("never-live").live.Store(false)
	pod = waitPod(t, pods, "never-live", "Failed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	if term := containerStatus(pod, "mindie").State.Terminated; term == nil || term.ExitCode != 137 || term.Reason != "Error" {
		t.Errorf("state of a container killed by its liveness probe: %+v", containerStatus(pod, "mindie").State)
	}
	checkReleased(t, sim, "ascend-0")

	// Deleting a terminated pod removes it without running hooks.
	pod.DeletionTimestamp = ptr.To(metav1.Now())
	pod.DeletionGracePeriodSeconds = ptr.To[int64](30)
	if _, err := pods.Update(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "never-live deleted", func() (bool, string) {
		_, err := pods.Get(ctx, "never-live", metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	if n := fw.app("never-live").preStop.Load(); n != 0 {
		t.Errorf("preStop hook of a terminated container ran %d times", n)
	}
}

func TestRestartPolicyOnFailure(t *testing.T) {
	sim, client, fw := startSim(t, 1)
	ctx := context.Background()
	pods := client.CoreV1().Pods("default")
	if _, err := pods.Create(ctx, plainPod("of", "ascend-0", 1, corev1.RestartPolicyOnFailure, "side"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPod(t, pods, "of", "Running", running("mindie", "side"))
	main, side := fw.app("of"), fw.app("of/side")

	// Exit 0: terminated Completed, not restarted; the pod runs on.
	main.exit(t, 0)
	pod := waitPod(t, pods, "of", "with mindie Completed", func(p *corev1.Pod) bool {
		return containerStatus(p, "mindie").State.Terminated != nil
	})
	if term := containerStatus(pod, "mindie").State.Terminated; term.ExitCode != 0 || term.Reason != "Completed" ||
		pod.Status.Phase != corev1.PodRunning || containerStatus(pod, "side").State.Running == nil {
		t.Fatalf("after mindie exited 0: phase %s, statuses %+v", pod.Status.Phase, pod.Status.ContainerStatuses)
	}
	if podCondition(pod, corev1.PodReady) != corev1.ConditionFalse {
		t.Errorf("Ready with a terminated container: %v", pod.Status.Conditions)
	}

	// Non-zero exit: restarted.
	side.exit(t, 2)
	pod = waitPod(t, pods, "of", "with side restarted", func(p *corev1.Pod) bool {
		cs := containerStatus(p, "side")
		return cs.RestartCount == 1 && cs.State.Running != nil
	})
	if last := containerStatus(pod, "side").LastTerminationState.Terminated; last == nil || last.ExitCode != 2 || last.Reason != "Error" {
		t.Errorf("lastState of the restarted container: %+v", last)
	}

	// Exit 0 of the last running container: Succeeded.
	side.exit(t, 0)
	pod = waitPod(t, pods, "of", "Succeeded", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
	for _, n := range []string{"mindie", "side"} {
		if cs := containerStatus(pod, n); cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 0 || cs.Ready {
			t.Errorf("container %s of the succeeded pod: %+v", n, cs)
		}
	}
	for _, typ := range []corev1.PodConditionType{corev1.PodReady, corev1.ContainersReady} {
		if podCondition(pod, typ) != corev1.ConditionFalse || podConditionReason(pod, typ) != "PodCompleted" {
			t.Errorf("condition %s of the succeeded pod: %v", typ, pod.Status.Conditions)
		}
	}
	if n := main.starts.Load(); n != 1 {
		t.Errorf("a container that exited 0 under OnFailure started %d times", n)
	}
	checkReleased(t, sim, "ascend-0")
}

func TestCrashLoopBackOff(t *testing.T) {
	sim, client, fw := startSim(t, 1) // 50ms ProbeSeconds: base 500ms
	ctx := context.Background()
	pods := client.CoreV1().Pods("default")
	if _, err := pods.Create(ctx, plainPod("cl", "ascend-0", 1, ""), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPod(t, pods, "cl", "Running", running("mindie"))
	app := fw.app("cl")
	base := sim.cfg.CrashLoopBackOff
	if base != 500*time.Millisecond {
		t.Fatalf("default CrashLoopBackOff = %s, want 10 ProbeSeconds", base)
	}
	for i, tc := range []struct {
		code   int32
		reason string
		delay  string
	}{{0, "Completed", "500ms"}, {1, "Error", "1s"}, {137, "Error", "2s"}} {
		app.exit(t, tc.code) // restartPolicy Always restarts even a Completed container
		pod := waitPod(t, pods, "cl", "in CrashLoopBackOff", func(p *corev1.Pod) bool {
			w := containerStatus(p, "mindie").State.Waiting
			return w != nil && w.Reason == "CrashLoopBackOff"
		})
		cs := containerStatus(pod, "mindie")
		wantMsg := fmt.Sprintf("back-off %s restarting failed container=mindie pod=cl_default(uid-default-cl)", tc.delay)
		if cs.State.Waiting.Message != wantMsg || cs.Ready || cs.RestartCount != int32(i) || pod.Status.Phase != corev1.PodRunning {
			t.Errorf("restart %d: phase %s, status %+v; want message %q", i+1, pod.Status.Phase, cs, wantMsg)
		}
		if last := cs.LastTerminationState.Terminated; last == nil || last.ExitCode != tc.code || last.Reason != tc.reason {
			t.Errorf("restart %d: lastState %+v, want exit code %d reason %s", i+1, last, tc.code, tc.reason)
		}
		waitPod(t, pods, "cl", "restarted", func(p *corev1.Pod) bool {
			cs := containerStatus(p, "mindie")
			return cs.State.Running != nil && cs.RestartCount == int32(i+1)
		})
		starts, exits := app.times()
		delay, _ := time.ParseDuration(tc.delay)
		if gap := starts[i+1].Sub(exits[i]); gap < delay {
			t.Errorf("restart %d came %s after the exit, before the %s back-off", i+1, gap, delay)
		}
	}
}

// The back-off doubles up to 300 ProbeSeconds and starts again from the
// base after a run of 600 ProbeSeconds.
func TestCrashLoopBackOffCapAndReset(t *testing.T) {
	ps := 2 * time.Millisecond // base 20ms, cap 600ms, reset after 1.2s
	_, client, fw := startSimConfig(t, Config{NodeCount: 1, ProbeSecond: ps})
	if _, err := client.CoreV1().Pods("default").Create(context.Background(), plainPod("cap", "ascend-0", 1, ""), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	app := fw.app("cap")
	waitStarts := func(n int32) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for app.starts.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for start %d", n)
			}
			time.Sleep(2 * time.Millisecond)
		}
		time.Sleep(5 * time.Millisecond) // let the simulator see the start
	}
	gap := func(i int) time.Duration {
		starts, exits := app.times()
		return starts[i+1].Sub(exits[i])
	}
	want := []time.Duration{20, 40, 80, 160, 320, 600, 600}
	for i, d := range want {
		d *= time.Millisecond
		waitStarts(int32(i + 1))
		app.exit(t, 1)
		waitStarts(int32(i + 2))
		g := gap(i)
		if g < d {
			t.Errorf("restart %d came %s after the exit, before the %s back-off", i+1, g, d)
		}
		if i == len(want)-1 && g > 1100*time.Millisecond {
			t.Errorf("restart %d came %s after the exit: the back-off is not capped at 600ms", i+1, g)
		}
	}
	time.Sleep(CrashLoopBackOffResetSeconds*ps + 100*time.Millisecond)
	app.exit(t, 1)
	waitStarts(int32(len(want) + 2))
	if g := gap(len(want)); g < 20*time.Millisecond || g > 450*time.Millisecond {
		t.Errorf("restart after a long run came %s after the exit, want the 20ms base", g)
	}
}

// Failed status writes are retried until they succeed, conflicts
// re-reading the pod.
func TestStatusWriteRetried(t *testing.T) {
	client := fake.NewClientset()
	var failing atomic.Bool
	failing.Store(true)
	var failures, conflicts, conflictGets atomic.Int32
	var conflictsLeft atomic.Int32
	conflictsLeft.Store(8) // more than one RetryOnConflict round
	client.PrependReactor("update", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "status" {
			return false, nil, nil
		}
		switch pod := a.(k8stesting.UpdateAction).GetObject().(*corev1.Pod); pod.Name {
		case "stale":
			if failing.Load() {
				failures.Add(1)
				return true, nil, apierrors.NewInternalError(errors.New("injected"))
			}
		case "conflict":
			if conflictsLeft.Add(-1) >= 0 {
				conflicts.Add(1)
				return true, nil, apierrors.NewConflict(schema.GroupResource{Resource: "pods"}, pod.Name, errors.New("injected"))
			}
		}
		return false, nil, nil
	})
	client.PrependReactor("get", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.(k8stesting.GetAction).GetName() == "conflict" {
			conflictGets.Add(1)
		}
		return false, nil, nil
	})
	_, _, _ = startSimConfig(t, Config{Client: client, NodeCount: 1})
	ctx := context.Background()
	pods := client.CoreV1().Pods("default")
	if _, err := pods.Create(ctx, plainPod("stale", "ascend-0", 1, ""), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Nothing but the retries writes the status again (no probes).
	eventually(t, "four failed status writes", func() (bool, string) { return failures.Load() >= 4, fmt.Sprint(failures.Load()) })
	if p, _ := pods.Get(ctx, "stale", metav1.GetOptions{}); p.Status.Phase != "" {
		t.Fatalf("status written while every write fails: %+v", p.Status)
	}
	failing.Store(false)
	waitPod(t, pods, "stale", "Running after the API recovered", running("mindie"))

	if _, err := pods.Create(ctx, plainPod("conflict", "ascend-0", 1, ""), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPod(t, pods, "conflict", "Running despite conflicts", running("mindie"))
	if conflicts.Load() != 8 || conflictGets.Load() < 9 {
		t.Errorf("%d conflicts, %d reads of the pod: every write must re-read it", conflicts.Load(), conflictGets.Load())
	}
}

func TestAscendConfigurationAnnotation(t *testing.T) {
	_, client, _ := startSim(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pods := client.CoreV1().Pods("default")
	w, err := pods.Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	// Every version of a pod the API shows with its IP already has both
	// device plugin annotations.
	withIP := map[string]bool{}
	watchUntil := func(name string) {
		t.Helper()
		for !withIP[name] {
			select {
			case <-ctx.Done():
				t.Fatalf("pod %s never showed its IP", name)
			case ev := <-w.ResultChan():
				p, ok := ev.Object.(*corev1.Pod)
				if !ok || (p.Status.PodIP == "" && p.Status.Phase != corev1.PodRunning) {
					continue
				}
				withIP[p.Name] = true
				if npus := p.Spec.Containers[0].Resources.Limits["huawei.com/Ascend910"]; npus.IsZero() {
					continue
				}
				if p.Annotations["huawei.com/Ascend910"] == "" || p.Annotations[ascend.AnnotationAscend910Configuration] == "" {
					t.Fatalf("pod %s shows IP %q (phase %s) without its NPU annotations: %v", p.Name, p.Status.PodIP, p.Status.Phase, p.Annotations)
				}
			}
		}
	}
	if _, err := pods.Create(ctx, plainPod("a4", "ascend-1", 4, ""), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	watchUntil("a4")
	if _, err := pods.Create(ctx, plainPod("a2", "ascend-1", 2, ""), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	watchUntil("a2")
	if _, err := pods.Create(ctx, plainPod("a0", "ascend-1", 0, ""), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	watchUntil("a0")

	p, _ := pods.Get(ctx, "a2", metav1.GetOptions{})
	want := `{"pod_name":"a2","server_id":"127.0.0.1","host_ip":"127.0.0.1","devices":[` +
		`{"device_id":"4","device_ip":"127.254.1.4"},{"device_id":"5","device_ip":"127.254.1.5"}]}`
	if got := p.Annotations[ascend.AnnotationAscend910Configuration]; got != want || p.Annotations["huawei.com/Ascend910"] != "Ascend910-4,Ascend910-5" {
		t.Errorf("annotations of a2:\n%v\nwant\n%s", p.Annotations, want)
	}
	p, _ = pods.Get(ctx, "a4", metav1.GetOptions{})
	if got := p.Annotations[ascend.AnnotationAscend910Configuration]; !strings.Contains(got, `"devices":[{"device_id":"0","device_ip":"127.254.1.0"},`+
		`{"device_id":"1","device_ip":"127.254.1.1"},{"device_id":"2","device_ip":"127.254.1.2"},{"device_id":"3","device_ip":"127.254.1.3"}]`) ||
		!strings.Contains(got, `"server_id":"`+p.Status.HostIP+`"`) {
		t.Errorf("annotation of a4 (hostIP %s): %s", p.Status.HostIP, got)
	}
	p, _ = pods.Get(ctx, "a0", metav1.GetOptions{})
	if _, ok := p.Annotations[ascend.AnnotationAscend910Configuration]; ok {
		t.Errorf("a pod without NPUs got %s", ascend.AnnotationAscend910Configuration)
	}
}

func TestDeviceIPCIDR(t *testing.T) {
	client := fake.NewClientset()
	for _, tc := range []struct {
		cidr, pod, err string
	}{
		{"10.0.0.0/16", "", "not an IPv4 loopback range"},
		{"::1/128", "", "not an IPv4 loopback range"},
		{"127.1.5.0/24", "127.1.0.0/16", "overlaps the pod CIDR"},
		{"127.0.0.0/8", "127.1.0.0/16", "overlaps the pod CIDR"},
		{"127.254.0.0/28", "", "4 nodes of 8 chips need 32"},
	} {
		_, err := New(Config{Client: client, DeviceIPCIDR: tc.cidr, PodCIDR: tc.pod})
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("device IP CIDR %s: %v, want an error with %q", tc.cidr, err, tc.err)
		}
	}
	for _, tc := range []struct {
		cidr        string
		node, chip  int
		want        string
		nodes, npus int
	}{
		{"", 3, 7, "127.254.3.7", 4, 8},
		{"127.253.0.0/16", 1, 2, "127.253.1.2", 4, 8},
		{"127.254.0.0/24", 2, 3, "127.254.0.19", 4, 8},     // 8 addresses per node
		{"127.254.0.0/16", 1, 15, "127.254.0.31", 300, 16}, // 300 nodes: 16 per node
	} {
		sim, err := New(Config{Client: client, DeviceIPCIDR: tc.cidr, NodeCount: tc.nodes, NPUsPerNode: tc.npus})
		if err != nil {
			t.Errorf("device IP CIDR %q: %v", tc.cidr, err)
			continue
		}
		if got := sim.devIPs.ip(tc.node, tc.chip); got != tc.want {
			t.Errorf("device IP CIDR %q: node %d chip %d has %s, want %s", tc.cidr, tc.node, tc.chip, got, tc.want)
		}
	}
	sim, err := New(Config{Client: client, NPUsPerNode: 8, ProbeSecond: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if sim.cfg.CrashLoopBackOff != 10*time.Second || sim.cfg.DeviceIPCIDR != DefaultDeviceIPCIDR {
		t.Errorf("defaults: CrashLoopBackOff %s DeviceIPCIDR %s", sim.cfg.CrashLoopBackOff, sim.cfg.DeviceIPCIDR)
	}
}

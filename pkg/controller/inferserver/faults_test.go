package inferserver

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/ascend"
)

// deletions records the pods deleted and the grace period each was
// deleted with (-1: the pod's own).
type deletions struct {
	mu    sync.Mutex
	grace map[string]int64
}

func (f *fixture) watchDeletions() *deletions {
	d := &deletions{grace: map[string]int64{}}
	f.kube.PrependReactor("delete", "pods", func(a clienttesting.Action) (bool, runtime.Object, error) {
		da := a.(clienttesting.DeleteActionImpl)
		d.mu.Lock()
		d.grace[da.Name] = ptr.Deref(da.DeleteOptions.GracePeriodSeconds, -1)
		d.mu.Unlock()
		return false, nil, nil
	})
	return d
}

func (d *deletions) of(pod string) (int64, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	g, ok := d.grace[pod]
	return g, ok
}

// addNPUNode adds a ready node of 8 chips and its device info, with chip
// faulty at level (none when level is "").
func (f *fixture) setNode(name string, ready corev1.ConditionStatus, since time.Time, chip, level string) {
	f.t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{
		{Type: corev1.NodeReady, Status: ready, Reason: "KubeletReady", LastTransitionTime: metav1.NewTime(since)}}}}
	if _, err := f.kube.CoreV1().Nodes().Update(f.ctx, n, metav1.UpdateOptions{}); err != nil {
		if _, err := f.kube.CoreV1().Nodes().Create(f.ctx, n, metav1.CreateOptions{}); err != nil {
			f.t.Fatal(err)
		}
	}
	var faults []ascend.FaultInfo
	if level != "" {
		faults = append(faults, ascend.FaultInfo{FaultType: "CardUnhealthy", NPUName: chip, FaultHandling: level, FaultCode: "80E01801"})
	}
	raw, _ := json.Marshal(faults)
	doc, err := ascend.FormatDeviceInfoCfg(ascend.DeviceInfo{DeviceList: map[string]string{ascend.FaultKey("Ascend910"): string(raw)}})
	if err != nil {
		f.t.Fatal(err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: ascend.DeviceInfoConfigMapName(name), Namespace: ascend.DeviceInfoNamespace},
		Data: map[string]string{ascend.DeviceInfoKey: doc}}
	if _, err := f.kube.CoreV1().ConfigMaps(ascend.DeviceInfoNamespace).Update(f.ctx, cm, metav1.UpdateOptions{}); err != nil {
		if _, err := f.kube.CoreV1().ConfigMaps(ascend.DeviceInfoNamespace).Create(f.ctx, cm, metav1.CreateOptions{}); err != nil {
			f.t.Fatal(err)
		}
	}
	f.refresh()
}

// faultyServer is a single-node server with one ready pod "llama-a" on
// node "node-llama-a", whose chip Ascend910-3 has a fault of level.
func faultyServer(t *testing.T, level string, mutate func(*v1alpha1.InferServer)) (*fixture, *deletions) {
	f := newFixture(t, newServer("llama", func(s *v1alpha1.InferServer) {
		s.Spec.Replicas = ptr.To[int32](1)
		if mutate != nil {
			mutate(s)
		}
	}))
	f.sync("llama")
	rev := f.server("llama").Status.UpdateRevision
	f.deploymentPod("llama-a", rev)
	f.sync("llama")
	if s := f.server("llama"); s.Status.ReadyReplicas != 1 {
		t.Fatalf("status %+v", s.Status)
	}
	d := f.watchDeletions()
	f.setNode("node-llama-a", corev1.ConditionTrue, testNow.Add(-time.Hour), "Ascend910-3", level)
	return f, d
}

func lastFault(s *v1alpha1.InferServer) v1alpha1.FaultRecord {
	if len(s.Status.Faults) == 0 {
		return v1alpha1.FaultRecord{}
	}
	return s.Status.Faults[len(s.Status.Faults)-1]
}

func TestNPUFaultPolicies(t *testing.T) {
	for _, tc := range []struct {
		name      string
		level     string
		mutate    func(*v1alpha1.InferServer)
		grace     int64 // of the deletion; -2: no deletion
		action    v1alpha1.FaultAction
		ready     bool
		degraded  string
		eventPart string
	}{
		{"force", ascend.FaultSeparateNPU, func(s *v1alpha1.InferServer) { s.Spec.FaultRescheduling = v1alpha1.FaultReschedulingForce },
			0, v1alpha1.FaultActionDeleted, false, ReasonNPUFault, "the pod was deleted at once"},
		{"grace", ascend.FaultPreSeparateNPU, nil, -1, v1alpha1.FaultActionDrained, false, ReasonNPUFault, "the pod drains"},
		{"off", ascend.FaultManuallySeparateNPU, func(s *v1alpha1.InferServer) { s.Spec.FaultRescheduling = v1alpha1.FaultReschedulingOff },
			-2, v1alpha1.FaultActionReported, false, ReasonNPUFault, "faultRescheduling is Off: nothing moved"},
		{"volcano", ascend.FaultSeparateNPU, func(s *v1alpha1.InferServer) { s.Spec.Scheduler = v1alpha1.SchedulerVolcano },
			-2, v1alpha1.FaultActionLeftToVolcano, false, ReasonNPUFault, "scheduler volcano moves the pod"},
		{"restart in place", ascend.FaultRestartNPU, func(s *v1alpha1.InferServer) { s.Spec.FaultRescheduling = v1alpha1.FaultReschedulingForce },
			-2, v1alpha1.FaultActionNone, true, "", "the server restarts in place"},
		{"not handled", ascend.FaultNotHandle, func(s *v1alpha1.InferServer) { s.Spec.FaultRescheduling = v1alpha1.FaultReschedulingForce },
			-2, v1alpha1.FaultActionNone, true, "", "the level needs no action"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, d := faultyServer(t, tc.level, tc.mutate)
			f.events()
			f.sync("llama")
			g, deleted := d.of("llama-a")
			if (tc.grace == -2 && deleted) || (tc.grace != -2 && (!deleted || g != tc.grace)) {
				t.Errorf("deleted %v with grace %d, want grace %d (-2: kept)", deleted, g, tc.grace)
			}
			s := f.server("llama")
			r := lastFault(s)
			if r.Kind != v1alpha1.FaultNPU || r.Pod != "llama-a" || r.Instance != "llama-a" || r.Node != "node-llama-a" || r.Chip != "Ascend910-3" ||
				r.Level != tc.level || r.Code != "80E01801" || r.Action != tc.action || !strings.Contains(r.Message, tc.eventPart) || r.RecoveredTime != nil {
				t.Errorf("fault %+v", r)
			}
			if len(s.Status.Instances) == 1 && s.Status.Instances[0].Ready != tc.ready {
				t.Errorf("instance ready %v, want %v", s.Status.Instances[0].Ready, tc.ready)
			}
			dc := condition(s, v1alpha1.ConditionDegraded)
			if tc.degraded != "" && (dc == nil || dc.Reason != tc.degraded || !strings.Contains(dc.Message, "pod llama-a")) {
				t.Errorf("degraded %+v", dc)
			}
			ev := f.events()
			if count(ev, "Warning NPUFault pod llama-a on node node-llama-a: chip Ascend910-3 "+tc.level+" (code 80E01801)") != 1 {
				t.Errorf("events %v", ev)
			}
			// Seen again, the same fault is not recorded twice.
			f.sync("llama")
			if n := len(f.server("llama").Status.Faults); n != 1 {
				t.Errorf("%d records after a second sync: %+v", n, f.server("llama").Status.Faults)
			}
			if ev := f.events(); has(ev, "NPUFault") {
				t.Errorf("events again %v", ev)
			}
		})
	}
}

// TestGraceForcedAfterOverTime: a pod drained for longer than
// faultGraceOverTimeSeconds is deleted at once.
func TestGraceForcedAfterOverTime(t *testing.T) {
	f, d := faultyServer(t, ascend.FaultSeparateNPU, func(s *v1alpha1.InferServer) { s.Spec.FaultGraceOverTimeSeconds = ptr.To[int32](30) })
	f.sync("llama")
	if g, ok := d.of("llama-a"); !ok || g != -1 {
		t.Fatalf("not drained: %v %d", ok, g)
	}
	// The fake deletes at once: put the pod back, terminating since 31 s.
	f.deploymentPod("llama-a", f.server("llama").Status.UpdateRevision)
	f.editPod("llama-a", func(p *corev1.Pod) {
		p.DeletionTimestamp = ptr.To(metav1.NewTime(testNow.Add(-1 * time.Second)))
		p.DeletionGracePeriodSeconds = ptr.To[int64](30)
	})
	f.sync("llama")
	if g, ok := d.of("llama-a"); !ok || g != 0 {
		t.Errorf("not forced: %v %d", ok, g)
	}
	if r := lastFault(f.server("llama")); r.Action != v1alpha1.FaultActionForced || !strings.Contains(r.Message, "faultGraceOverTimeSeconds (30s)") {
		t.Errorf("fault %+v", r)
	}
}

// TestRestartRequestMovesAfter60s: a RestartRequest fault moves nothing
// for 60 s, then the pod goes.
func TestRestartRequestMovesAfter60s(t *testing.T) {
	f, d := faultyServer(t, ascend.FaultRestartRequest, func(s *v1alpha1.InferServer) { s.Spec.FaultRescheduling = v1alpha1.FaultReschedulingForce })
	requeue, _ := f.sync("llama")
	if _, ok := d.of("llama-a"); ok {
		t.Fatal("moved at once")
	}
	if r := lastFault(f.server("llama")); r.Action != v1alpha1.FaultActionNone || !f.server("llama").Status.Instances[0].Ready {
		t.Errorf("fault %+v", r)
	}
	if requeue <= 0 || requeue > restartRequestMoveAfter+2*time.Second {
		t.Errorf("requeue in %v", requeue)
	}
	f.now = f.now.Add(restartRequestMoveAfter)
	f.sync("llama")
	if g, ok := d.of("llama-a"); !ok || g != 0 {
		t.Errorf("not moved after 60 s: %v %d", ok, g)
	}
	s := f.server("llama")
	if len(s.Status.Faults) != 1 || lastFault(s).Action != v1alpha1.FaultActionDeleted || !strings.Contains(lastFault(s).Message, "lasting 1m0s") {
		t.Errorf("faults %+v", s.Status.Faults)
	}
}

// TestNodeLost: a node NotReady is not ready at once, and lost after
// nodeLostSeconds: its pod is deleted at once whatever the policy; the
// fault closes once the server serves again.
func TestNodeLost(t *testing.T) {
	f, d := faultyServer(t, "", func(s *v1alpha1.InferServer) { s.Spec.FaultRescheduling = v1alpha1.FaultReschedulingOff })
	f.setNode("node-llama-a", corev1.ConditionUnknown, testNow.Add(-30*time.Second), "", "")
	f.sync("llama")
	s := f.server("llama")
	if _, ok := d.of("llama-a"); ok || s.Status.ReadyReplicas != 0 {
		t.Fatalf("deleted %v, ready %d", ok, s.Status.ReadyReplicas)
	}
	if dc := condition(s, v1alpha1.ConditionDegraded); dc == nil || dc.Reason != ReasonNodeLost || !strings.Contains(dc.Message, "node node-llama-a is unreachable") {
		t.Errorf("degraded %+v", dc)
	}
	f.now = f.now.Add(31 * time.Second)
	f.sync("llama")
	if g, ok := d.of("llama-a"); !ok || g != 0 {
		t.Fatalf("not deleted after nodeLostSeconds: %v %d", ok, g)
	}
	if r := lastFault(f.server("llama")); r.Kind != v1alpha1.FaultNodeLost || r.Action != v1alpha1.FaultActionDeleted {
		t.Errorf("fault %+v", r)
	}
	// The Deployment's replacement serves on another node: over.
	f.deploymentPod("llama-b", f.server("llama").Status.UpdateRevision)
	f.sync("llama")
	if r := lastFault(f.server("llama")); r.RecoveredTime == nil {
		t.Errorf("fault not closed: %+v", r)
	}
	if ev := f.events(); !has(ev, "FaultRecovered pod llama-a on node node-llama-a: NodeLost fault over") {
		t.Errorf("events %v", ev)
	}
}

// TestCrossNodeNPUFaultRecreatesWhole: a fault on the second pod of a
// cross-node instance deletes that pod at once (Force), and the instance
// is made again whole.
func TestCrossNodeNPUFaultRecreatesWhole(t *testing.T) {
	f := newFixture(t, crossNodeServer("llama", 1, func(s *v1alpha1.InferServer) { s.Spec.FaultRescheduling = v1alpha1.FaultReschedulingForce }))
	f.sync("llama")
	f.readyInstances()
	f.sync("llama")
	d := f.watchDeletions()
	f.setNode("node-llama-0-1", corev1.ConditionTrue, testNow.Add(-time.Hour), "Ascend910-0", ascend.FaultSeparateNPU)
	f.sync("llama")
	if g, ok := d.of("llama-0-1"); !ok || g != 0 {
		t.Fatalf("rank 1 not deleted at once: %v %d", ok, g)
	}
	_, writes := f.sync("llama")
	if !has(writes, "delete pods llama-0-0") {
		t.Errorf("the instance was not recreated whole: %v", writes)
	}
	if ev := f.events(); !has(ev, "Recreating instance llama-0: pod llama-0-1 (rank 1) is gone") {
		t.Errorf("events %v", ev)
	}
}

// TestProcessCrashRecorded: a restart count that grows is a crash in the
// history, closed once the pod serves again.
func TestProcessCrashRecorded(t *testing.T) {
	f, _ := faultyServer(t, "", nil)
	f.sync("llama")
	f.editPod("llama-a", func(p *corev1.Pod) { p.Status.ContainerStatuses[0].RestartCount = 1 })
	f.sync("llama")
	r := lastFault(f.server("llama"))
	if r.Kind != v1alpha1.FaultProcessCrash || r.Pod != "llama-a" || r.Action != v1alpha1.FaultActionNone {
		t.Fatalf("fault %+v", f.server("llama").Status.Faults)
	}
	f.sync("llama")
	if r := lastFault(f.server("llama")); r.RecoveredTime == nil {
		t.Errorf("not closed while serving: %+v", r)
	}
}

// TestNodeLostByHeartbeat: a node whose kubelet stopped renewing its Lease
// is not serving once the Lease expires, and lost nodeLostSeconds after
// its last renewal, before its Ready condition changes.
func TestNodeLostByHeartbeat(t *testing.T) {
	f, d := faultyServer(t, "", nil)
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "node-llama-a", Namespace: corev1.NamespaceNodeLease},
		Spec: coordinationv1.LeaseSpec{RenewTime: ptr.To(metav1.NewMicroTime(testNow.Add(-45 * time.Second))), LeaseDurationSeconds: ptr.To[int32](40)}}
	if _, err := f.kube.CoordinationV1().Leases(corev1.NamespaceNodeLease).Create(f.ctx, lease, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.refresh()
	f.sync("llama")
	s := f.server("llama")
	if _, ok := d.of("llama-a"); ok || s.Status.ReadyReplicas != 0 || lastFault(s).Kind != v1alpha1.FaultNodeLost ||
		!strings.Contains(lastFault(s).Message, "has not renewed its heartbeat (Lease) since") {
		t.Fatalf("deleted %v, status %+v", ok, s.Status)
	}
	f.now = f.now.Add(15 * time.Second)
	f.sync("llama")
	if g, ok := d.of("llama-a"); !ok || g != 0 {
		t.Errorf("not deleted 60 s after the last heartbeat: %v %d", ok, g)
	}
}

// TestFaultStart: the device plugin's fault time is the fault's start;
// without it, when the controller first saw it, forgotten once gone.
func TestFaultStart(t *testing.T) {
	fi := ascend.FaultInfo{FaultTimeAndLevelMap: map[string]ascend.FaultTimeAndLevel{
		"80C98008": {FaultTime: testNow.Add(-90 * time.Second).UnixMilli()}, "80E01801": {FaultTime: testNow.Add(-30 * time.Second).UnixMilli()}}}
	if got := faultStart(fi, func() time.Time { return testNow }); !got.Equal(testNow.Add(-90 * time.Second)) {
		t.Errorf("start %v", got)
	}
	tr := newTracker()
	if got := tr.faultSeen("n/c/l", testNow); !got.Equal(testNow) {
		t.Errorf("first seen %v", got)
	}
	if got := tr.faultSeen("n/c/l", testNow.Add(time.Minute)); !got.Equal(testNow) {
		t.Errorf("seen again %v", got)
	}
	later := testNow.Add(time.Minute + faultForgetAfter + time.Second)
	if got := tr.faultSeen("n/c/l", later); !got.Equal(later) {
		t.Errorf("a fault gone for long is a new one: %v", got)
	}
}

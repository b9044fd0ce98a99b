package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/ascend"
)

// NPU faults, lost nodes and crashes on the local cluster: the simulated
// device plugin reports a faulty chip (ascend-sim fault npu), the
// simulated server holding it suffers as on hardware, and the controller
// moves the pod by the server's faultRescheduling; a simulated node goes
// down (ascend-sim fault node) and its pods are replaced elsewhere.

// faultServer creates a single-node server of replicas instances of 8
// NPUs (a whole node each) behind one router, with extra spec, waits until
// it is Available and returns a client and the address of its router.
func faultServer(t *testing.T, name string, replicas int, extra string) (*v1alpha1.InferServer, string) {
	t.Helper()
	waitNoServerPods(t)
	createInferServer(t, "tenant-a-editor", routerNS, name, replicas,
		`terminationGracePeriodSeconds: 5, router: {replicas: 1}, `+extra)
	s := waitRouted(t, routerNS, name, int32(replicas), 1)
	return s, readyRouter(t, s)
}

// podOf is the pod of an instance, its node and chips.
func podOf(t *testing.T, ns, pod string) corev1.Pod {
	t.Helper()
	for _, p := range listJSON[corev1.Pod](t, "pods", "-n", ns, "--field-selector", "metadata.name="+pod) {
		return p
	}
	t.Fatalf("no pod %s", pod)
	return corev1.Pod{}
}

// chipIndex is the index of a pod's first chip ("Ascend910-5" -> 5).
func chipIndex(t *testing.T, p corev1.Pod) (string, int) {
	t.Helper()
	chips := ascend.PodChips(&p, "Ascend910")
	if len(chips) == 0 {
		t.Fatalf("pod %s has no chips: %v", p.Name, p.Annotations)
	}
	_, i, err := ascend.ParseChipName(chips[0])
	if err != nil {
		t.Fatal(err)
	}
	return chips[0], i
}

// waitFault waits for a record of the fault on pod with action, and
// returns it.
func waitFault(t *testing.T, name, pod string, kind v1alpha1.FaultKind, action v1alpha1.FaultAction, recovered bool) v1alpha1.FaultRecord {
	t.Helper()
	var rec v1alpha1.FaultRecord
	eventually(t, 3*time.Minute, time.Second, fmt.Sprintf("a %s fault of %s, %s, recovered %v", kind, pod, action, recovered), func() (bool, string) {
		s := typedServer(t, routerNS, name)
		for _, r := range s.Status.Faults {
			if r.Pod == pod && r.Kind == kind && r.Action == action && (r.RecoveredTime != nil) == recovered {
				rec = r
				return true, ""
			}
		}
		return false, fmt.Sprintf("faults %+v", s.Status.Faults)
	})
	return rec
}

// replacedAway waits until pod is gone and the server has replicas ready
// instances again, none of them on a chip of bad (node/chip).
func replacedAway(t *testing.T, name, pod string, replicas int32, badNode, badChip string) {
	t.Helper()
	waitServer(t, routerNS, name, 3*time.Minute, "the instance replaced on healthy chips", func(s *v1alpha1.InferServer) (bool, string) {
		if s.Status.ReadyReplicas != replicas || len(s.Status.Instances) != int(replicas) {
			return false, fmt.Sprintf("%+v", s.Status.Instances)
		}
		for _, in := range s.Status.Instances {
			for _, p := range in.Pods {
				if p.Name == pod || (p.Node == badNode && slices.Contains(p.NPUs, badChip)) {
					return false, fmt.Sprintf("pod %s on %s %v", p.Name, p.Node, p.NPUs)
				}
			}
		}
		return true, ""
	})
}

func TestNPUFaultForce(t *testing.T) {
	name := uniqueName("npuforce")
	token := serviceAccountToken(t, routerNS, uniqueName("npuforce-chatter"), "edit")
	s, addr := faultServer(t, name, 2, `faultRescheduling: Force, resources: {npu: {count: 8}}`)
	client, _ := routerClient(t, addr)
	victim := podOf(t, routerNS, s.Status.Instances[0].Pods[0].Name)
	chip, idx := chipIndex(t, victim)
	t.Cleanup(func() {
		fault(t, "npu", "--node", victim.Spec.NodeName, "--chip", fmt.Sprint(idx), "--level", "")
	})

	tr := startTraffic(client, "https://"+addr, token, 3)
	time.Sleep(time.Second)
	fault(t, "npu", "--node", victim.Spec.NodeName, "--chip", fmt.Sprint(idx), "--level", ascend.FaultSeparateNPU)
	rec := waitFault(t, name, victim.Name, v1alpha1.FaultNPU, v1alpha1.FaultActionDeleted, false)
	if rec.Chip != chip || rec.Level != ascend.FaultSeparateNPU || rec.Node != victim.Spec.NodeName || rec.Code == "" {
		t.Errorf("fault record %+v", rec)
	}
	replacedAway(t, name, victim.Name, 2, victim.Spec.NodeName, chip)
	waitFault(t, name, victim.Name, v1alpha1.FaultNPU, v1alpha1.FaultActionDeleted, true)
	time.Sleep(time.Second)
	t.Logf("Force under traffic: %d answered, %d failed", tr.ok.Load(), tr.failed.Load())
	// Only the requests running on the faulty instance when it was deleted
	// may fail: at most one per client.
	if tr.failed.Load() > 3 || tr.ok.Load() < 5 {
		t.Errorf("Force: %d failed (%v), %d answered", tr.failed.Load(), tr.failures, tr.ok.Load())
	}
	failedBefore := tr.failed.Load()
	out := mustMindie(t, "", "", "status", name, "-n", routerNS)
	if !strings.Contains(out, "NPUFault") || !strings.Contains(out, victim.Name) || !strings.Contains(out, "Deleted") {
		t.Errorf("kubectl mindie status lacks the fault:\n%s", out)
	}

	// A short RestartRequest fails the requests running on the chip and
	// moves nothing.
	other := podOf(t, routerNS, typedServer(t, routerNS, name).Status.Instances[1].Pods[0].Name)
	_, oidx := chipIndex(t, other)
	fault(t, "npu", "--node", other.Spec.NodeName, "--chip", fmt.Sprint(oidx), "--level", ascend.FaultRestartRequest)
	waitFault(t, name, other.Name, v1alpha1.FaultNPU, v1alpha1.FaultActionNone, false)
	fault(t, "npu", "--node", other.Spec.NodeName, "--chip", fmt.Sprint(oidx), "--level", "")
	waitFault(t, name, other.Name, v1alpha1.FaultNPU, v1alpha1.FaultActionNone, true)
	if now := podOf(t, routerNS, other.Name); now.UID != other.UID {
		t.Errorf("pod %s was replaced for a short RestartRequest", other.Name)
	}

	// RestartNPU crashes the server, which restarts in place: an NPU fault
	// that moves nothing and a crash, both over once it serves again.
	fault(t, "npu", "--node", other.Spec.NodeName, "--chip", fmt.Sprint(oidx), "--level", ascend.FaultRestartNPU)
	waitFault(t, name, other.Name, v1alpha1.FaultProcessCrash, v1alpha1.FaultActionNone, true)
	waitFault(t, name, other.Name, v1alpha1.FaultNPU, v1alpha1.FaultActionNone, false)
	fault(t, "npu", "--node", other.Spec.NodeName, "--chip", fmt.Sprint(oidx), "--level", "")
	if now := podOf(t, routerNS, other.Name); now.UID != other.UID {
		t.Errorf("pod %s was replaced for a RestartNPU fault", other.Name)
	}
	tr.finish()
	// The RestartRequest and the crash may each fail the requests running
	// on that instance: at most one per client.
	t.Logf("RestartRequest and crash under traffic: %d answered, %d failed", tr.ok.Load(), tr.failed.Load()-failedBefore)
	if tr.failed.Load()-failedBefore > 6 {
		t.Errorf("RestartRequest and crash: %d failed (%v)", tr.failed.Load()-failedBefore, tr.failures)
	}
}

func TestNPUFaultGraceAndOff(t *testing.T) {
	name := uniqueName("npugrace")
	token := serviceAccountToken(t, routerNS, uniqueName("npugrace-chatter"), "edit")
	s, addr := faultServer(t, name, 2, `resources: {npu: {count: 8}}`)
	if s.Spec.FaultRescheduling != v1alpha1.FaultReschedulingGrace {
		t.Fatalf("default policy %q", s.Spec.FaultRescheduling)
	}
	client, _ := routerClient(t, addr)
	victim := podOf(t, routerNS, s.Status.Instances[0].Pods[0].Name)
	chip, idx := chipIndex(t, victim)
	t.Cleanup(func() { fault(t, "npu", "--node", victim.Spec.NodeName, "--chip", fmt.Sprint(idx), "--level", "") })

	tr := startTraffic(client, "https://"+addr, token, 3)
	time.Sleep(time.Second)
	fault(t, "npu", "--node", victim.Spec.NodeName, "--chip", fmt.Sprint(idx), "--level", ascend.FaultSeparateNPU)
	waitFault(t, name, victim.Name, v1alpha1.FaultNPU, v1alpha1.FaultActionDrained, false)
	replacedAway(t, name, victim.Name, 2, victim.Spec.NodeName, chip)
	time.Sleep(time.Second)
	tr.finish()
	t.Logf("Grace under traffic: %d answered, %d failed", tr.ok.Load(), tr.failed.Load())
	if tr.failed.Load() != 0 || tr.ok.Load() < 5 {
		t.Errorf("Grace: %d failed (%v), %d answered", tr.failed.Load(), tr.failures, tr.ok.Load())
	}
	fault(t, "npu", "--node", victim.Spec.NodeName, "--chip", fmt.Sprint(idx), "--level", "")
	deleteServerAndWait(t, routerNS, name)

	// Off: reported, nothing moved, never counted ready.
	name = uniqueName("npuoff")
	s, _ = faultServer(t, name, 1, `faultRescheduling: "Off", resources: {npu: {count: 8}}`)
	victim = podOf(t, routerNS, s.Status.Instances[0].Pods[0].Name)
	_, idx = chipIndex(t, victim)
	t.Cleanup(func() { fault(t, "npu", "--node", victim.Spec.NodeName, "--chip", fmt.Sprint(idx), "--level", "") })
	fault(t, "npu", "--node", victim.Spec.NodeName, "--chip", fmt.Sprint(idx), "--level", ascend.FaultManuallySeparateNPU)
	waitFault(t, name, victim.Name, v1alpha1.FaultNPU, v1alpha1.FaultActionReported, false)
	waitServer(t, routerNS, name, time.Minute, "Degraded NPUFault, no instance ready", func(s *v1alpha1.InferServer) (bool, string) {
		d := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionDegraded)
		return s.Status.ReadyReplicas == 0 && d != nil && d.Reason == "NPUFault", fmt.Sprintf("%+v", s.Status)
	})
	time.Sleep(3 * time.Second)
	if now := podOf(t, routerNS, victim.Name); now.UID != victim.UID || now.DeletionTimestamp != nil {
		t.Errorf("faultRescheduling Off moved pod %s", victim.Name)
	}
	deleteServerAndWait(t, routerNS, name)
}

// TestNodeLoss: a node goes down under traffic; its pod is never counted
// ready meanwhile, and is replaced elsewhere nodeLostSeconds after the
// node's last heartbeat; the node comes back.
func TestNodeLoss(t *testing.T) {
	name := uniqueName("nodeloss")
	token := serviceAccountToken(t, routerNS, uniqueName("nodeloss-chatter"), "edit")
	s, addr := faultServer(t, name, 2, `nodeLostSeconds: 15, resources: {npu: {count: 8}}`)
	client, _ := routerClient(t, addr)
	victim := podOf(t, routerNS, s.Status.Instances[0].Pods[0].Name)
	t.Cleanup(func() { fault(t, "node", "--node", victim.Spec.NodeName, "--down=false") })

	tr := startTraffic(client, "https://"+addr, token, 3)
	time.Sleep(time.Second)
	fault(t, "node", "--node", victim.Spec.NodeName, "--down=true")
	down := time.Now()
	rec := waitFault(t, name, victim.Name, v1alpha1.FaultNodeLost, v1alpha1.FaultActionDeleted, false)
	t.Logf("pod %s on lost node %s deleted %s after the node went down: %s", victim.Name, victim.Spec.NodeName, time.Since(down).Round(time.Second), rec.Message)
	replacedAway(t, name, victim.Name, 2, victim.Spec.NodeName, "")
	tr.finish()
	t.Logf("node loss under traffic: %d answered, %d failed", tr.ok.Load(), tr.failed.Load())
	if tr.failed.Load() > 3 || tr.ok.Load() < 5 {
		t.Errorf("node loss: %d failed (%v), %d answered", tr.failed.Load(), tr.failures, tr.ok.Load())
	}
	for _, in := range typedServer(t, routerNS, name).Status.Instances {
		for _, p := range in.Pods {
			if p.Node == victim.Spec.NodeName {
				t.Errorf("an instance is still on the lost node: %+v", in)
			}
		}
	}
	fault(t, "node", "--node", victim.Spec.NodeName, "--down=false")
	eventually(t, time.Minute, time.Second, "the node back", func() (bool, string) {
		r := kubectl(t, "", "get", "node", victim.Spec.NodeName, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		return r.stdout == "True", r.stdout
	})
	// The router still answers.
	if code, _, body, err := routerChat(client, "https://"+addr, token, "Still there?"); err != nil || code != http.StatusOK {
		t.Errorf("chat after the node came back: %d %v %s", code, err, body)
	}
}

// TestCrossNodeNPUFault: a fault on the second pod of a cross-node
// instance (Force) brings the whole instance back on healthy chips.
func TestCrossNodeNPUFault(t *testing.T) {
	waitNoServerPods(t)
	name := uniqueName("xfault")
	createInferServer(t, "tenant-a-editor", routerNS, name, 1,
		`nodesPerInstance: 2, faultRescheduling: Force, terminationGracePeriodSeconds: 2, resources: {npu: {count: 8}}`)
	s := waitServer(t, routerNS, name, 3*time.Minute, "the cross-node instance ready", rolledOut(1))
	in := s.Status.Instances[0]
	if len(in.Pods) != 2 {
		t.Fatalf("instance %+v", in)
	}
	before := map[string]string{}
	for _, p := range in.Pods {
		before[p.Name] = string(podOf(t, routerNS, p.Name).UID)
	}
	victim := podOf(t, routerNS, in.Pods[1].Name)
	chip, idx := chipIndex(t, victim)
	t.Cleanup(func() { fault(t, "npu", "--node", victim.Spec.NodeName, "--chip", fmt.Sprint(idx), "--level", "") })
	fault(t, "npu", "--node", victim.Spec.NodeName, "--chip", fmt.Sprint(idx), "--level", ascend.FaultSeparateNPU)
	waitFault(t, name, victim.Name, v1alpha1.FaultNPU, v1alpha1.FaultActionDeleted, false)
	s = waitServer(t, routerNS, name, 3*time.Minute, "the instance made again whole", func(s *v1alpha1.InferServer) (bool, string) {
		if s.Status.ReadyReplicas != 1 || len(s.Status.Instances) != 1 || len(s.Status.Instances[0].Pods) != 2 {
			return false, fmt.Sprintf("%+v", s.Status.Instances)
		}
		for _, p := range s.Status.Instances[0].Pods {
			if string(podOf(t, routerNS, p.Name).UID) == before[p.Name] || (p.Node == victim.Spec.NodeName && slices.Contains(p.NPUs, chip)) {
				return false, "pod " + p.Name + " not replaced or on the faulty chip"
			}
		}
		return s.Status.Instances[0].Ranktable == "completed", "ranktable " + s.Status.Instances[0].Ranktable
	})
	// The instance was recreated whole: the event says so (its count in
	// status is checked by the controller's tests).
	if ev := mustKubectl(t, "", "-n", routerNS, "get", "events", "--field-selector", "involvedObject.name="+name, "-o", "jsonpath={.items[*].message}"); !strings.Contains(ev, "Recreating instance "+in.Name) {
		t.Errorf("no event of instance %s recreated (recreations %d): %s", in.Name, s.Status.Instances[0].Recreations, ev)
	}
	deleteServerAndWait(t, routerNS, name)
}

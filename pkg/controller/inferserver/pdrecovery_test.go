package inferserver

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
)

// TestPDMemberRecreatedAlone fails a decode member of a linked 2P1D group:
// only its pod goes and comes back, the prefill members keep theirs and
// are told their new peer, and the group is ready again. A prefill pod
// deleted by hand is made again alone too.
func TestPDMemberRecreatedAlone(t *testing.T) {
	fm := newFakeManagement(t, 4)
	fm.setLinked(true)
	f := newFixture(t, pdServer("llama", 1, 2, 1, func(s *v1alpha1.InferServer) { s.Spec.Ports.Management = ptr.To(fm.port) }))
	f.sync("llama")
	f.readyPD(fm, "llama")
	f.sync("llama")
	if s := f.server("llama"); s.Status.ReadyReplicas != 1 {
		t.Fatalf("status %+v", s.Status)
	}
	uids := map[string]string{}
	for _, p := range f.pods() {
		uids[p.Name] = string(p.UID)
	}

	f.editPod("llama-0-d0", func(p *corev1.Pod) {
		p.Status.Phase = corev1.PodFailed
		p.Status.ContainerStatuses[0].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Error", ExitCode: 3}}
	})
	_, writes := f.sync("llama")
	if !has(writes, "delete pods llama-0-d0") || has(writes, "delete pods llama-0-p") {
		t.Fatalf("writes %v", writes)
	}
	s := f.server("llama")
	is := s.Status.Instances[0]
	if is.Ready || is.Recreations != 1 || !strings.HasPrefix(is.Message, "recreating: member d0: pod llama-0-d0 (rank 2) failed: Error, exit code 3") {
		t.Errorf("group %+v", is)
	}
	if d := condition(s, v1alpha1.ConditionDegraded); d == nil || d.Reason != ReasonInstanceRecreating || !strings.Contains(d.Message, "member d0") {
		t.Errorf("degraded %+v", d)
	}
	if ev := f.events(); count(ev, "Recreating member d0 (decode) of group llama-0: pod llama-0-d0 (rank 2) failed") != 1 {
		t.Errorf("events %v", ev)
	}

	// Its pod gone, the member is made again, alone, under its name.
	_, writes = f.sync("llama")
	if !has(writes, "create pods llama-0-d0") || count(writes, "create pods") != 1 || has(writes, "delete pods") {
		t.Fatalf("writes %v", writes)
	}
	// It comes up on another address: its peers are told.
	fm.ips["llama-0-d0"] = "127.0.0.4"
	f.readyPD(fm, "llama")
	f.c.pdRoles.step(f.ctx, "ns/llama")
	f.sync("llama")
	for _, p := range []string{"llama-0-p0", "llama-0-p1"} {
		if _, b, ok := fm.body(p); !ok || len(b.Peers) != 1 || b.Peers[0].ServerIP != "127.0.0.4" {
			t.Errorf("%s was not told its new peer: %+v", p, b)
		}
	}
	s = f.server("llama")
	if is := s.Status.Instances[0]; !is.Ready || is.Message != "" || is.Recreations != 1 || s.Status.ReadyReplicas != 1 {
		t.Errorf("group %+v", is)
	}
	if d := condition(s, v1alpha1.ConditionDegraded); d != nil && d.Status == metav1.ConditionTrue {
		t.Errorf("degraded %+v", d)
	}
	for _, p := range f.pods() {
		if p.Name != "llama-0-d0" && uids[p.Name] != string(p.UID) {
			t.Errorf("pod %s was replaced", p.Name)
		}
	}

	// A prefill pod deleted by hand is made again alone.
	f.deletePod("llama-0-p1")
	_, writes = f.sync("llama")
	if !has(writes, "create pods llama-0-p1") || count(writes, "create pods") != 1 || has(writes, "delete pods") {
		t.Errorf("writes %v", writes)
	}
}

// TestPDUnschedulableMemberNamed: a decode member that finds no NPUs is
// named, with its role's NPU count, in the Degraded condition.
func TestPDUnschedulableMemberNamed(t *testing.T) {
	f := newFixture(t, pdServer("llama", 1, 1, 1, func(s *v1alpha1.InferServer) {
		roleSpec(s, v1alpha1.RoleDecode).Resources = &v1alpha1.InferResources{NPU: v1alpha1.NPURequest{Count: ptr.To[int32](4)}}
		v1alpha1.SetObjectDefaults_InferServer(s)
	}))
	f.sync("llama")
	f.editPod("llama-0-d0", func(p *corev1.Pod) {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable,
			Message: "0/4 nodes are available: 4 Insufficient huawei.com/Ascend910."}}
	})
	f.sync("llama")
	d := condition(f.server("llama"), v1alpha1.ConditionDegraded)
	if d == nil || d.Reason != "InsufficientNPU" ||
		!strings.HasPrefix(d.Message, "decode instance d0 of group llama-0 (pod llama-0-d0) needs 4 huawei.com/Ascend910 on a node with") {
		t.Errorf("degraded %+v", d)
	}
}

package status

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/inferstatus"
	"mindie.io/deployer/plugin/options/fake"
)

// fullStatus gives s two instances, a model and revisions.
func fullStatus(s *v1alpha1.InferServer) {
	fake.Available(s)
	now := metav1.NewTime(time.Now().Add(-30 * time.Second))
	s.Status.CurrentRevision, s.Status.UpdateRevision = "llama-abc", "llama-abc"
	s.Status.Instances = []v1alpha1.InstanceStatus{
		{Name: "llama-0", Revision: "llama-abc", Ready: true, Master: "llama-0", Pods: []v1alpha1.InstancePodStatus{
			{Name: "llama-0", Node: "sim-node-0", PodIP: "127.2.0.5", NPUs: []string{"Ascend910-0", "Ascend910-1"}, Phase: corev1.PodRunning, Live: true, Ready: true, Restarts: 0},
		}},
		{Name: "llama-1", Revision: "llama-abc", Ready: false, Master: "llama-1", Ranktable: "initializing", Pods: []v1alpha1.InstancePodStatus{
			{Name: "llama-1", Node: "sim-node-1", PodIP: "127.2.0.6", Phase: corev1.PodRunning, Live: true, Ready: false, Restarts: 2, Message: "readiness probe failed"},
		}},
	}
	s.Status.Model = &v1alpha1.ModelInfo{Version: "2.0.RC1", MaxInputLength: 4096, MaxBatchTotalTokens: 8192, MaxConcurrentRequests: 200,
		Models: []v1alpha1.ModelEntry{{ID: "llama3-8b", DType: "float16", DeviceType: "npu", MaxTotalTokens: 8192}}, Instance: "llama-0", LastUpdateTime: &now}
}

func event(s *v1alpha1.InferServer, reason, msg string, count int32, ago time.Duration) *corev1.Event {
	t := metav1.NewTime(time.Now().Add(-ago))
	return &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: s.Name + "." + reason, Namespace: s.Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "InferServer", Name: s.Name, Namespace: s.Namespace, UID: s.UID, APIVersion: "infer.mindie.io/v1alpha1"},
		Reason:         reason, Message: msg, Type: corev1.EventTypeNormal, Count: count,
		FirstTimestamp: metav1.NewTime(time.Now().Add(-ago - 10*time.Minute)), LastTimestamp: t,
		Source: corev1.EventSource{Component: "inferserver-controller"},
	}
}

func TestStatusWholePicture(t *testing.T) {
	s := fake.InferServer("default", "llama", fullStatus)
	other := fake.InferServer("default", "other")
	f := fake.New(t, NewCmdStatus, s,
		fake.ControllerRevision(s, "llama-abc", 3, "", s.Spec),
		event(s, "ScalingUp", "created instance llama-1", 1, time.Minute),
		event(s, "RolloutComplete", "all instances at llama-abc", 4, 2*time.Minute),
		event(other, "Unrelated", "not about llama", 1, time.Minute))
	out := squash(f.MustRun(t, "", "status", "llama"))
	for _, want := range []string{
		"Name:", "llama", "Replicas: 2 desired, 1 node per instance", "8 x Ascend910 per pod, 8 per instance", "Image:      mindie:server",
		"Revision:   llama-abc (#3)", "2/2 updated, 2/2 ready, 2/2 available; complete",
		"Available    True    MinimumInstancesAvailable", "Degraded     False   AsExpected",
		"llama-1    false  llama-abc (#3)  llama-1  initializing",
		"llama-0    llama-0  sim-node-0  127.2.0.5  Ascend910-0,Ascend910-1  Running  true   true   0",
		"llama-1    llama-1  sim-node-1  127.2.0.6  -", "2         readiness probe failed",
		"Server version:  2.0.RC1", "Read from:       instance llama-0, 30s ago",
		"max input length 4096, max batch total tokens 8192, max concurrent requests 200",
		"llama3-8b  float16  8192", "RolloutComplete  2m (x4 over 12m)  inferserver-controller  all instances at llama-abc",
		"ScalingUp        60s", "created instance llama-1",
	} {
		if !strings.Contains(out, squash(want)) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Unrelated") {
		t.Errorf("status shows another object's event:\n%s", out)
	}
	if i, j := strings.Index(out, "RolloutComplete 2m"), strings.Index(out, "ScalingUp"); i > j {
		t.Errorf("events not oldest first:\n%s", out)
	}
	lists := fake.Actions(f.Kube, "list", "events")
	if len(lists) != 1 {
		t.Fatalf("%d event lists, want 1", len(lists))
	}
	sel := lists[0].(clienttesting.ListActionImpl).ListOptions.FieldSelector
	if sel != "involvedObject.kind=InferServer,involvedObject.name=llama,involvedObject.namespace=default" {
		t.Errorf("events listed with field selector %q", sel)
	}
}

func TestStatusEmptyAndForbiddenEvents(t *testing.T) {
	f := fake.New(t, NewCmdStatus, fake.InferServer("team-a", "new"))
	f.Kube.PrependReactor("list", "events", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "events"}, "", nil)
	})
	out := squash(f.MustRun(t, "", "status", "new", "-n", "team-a"))
	for _, want := range []string{"Conditions:\n  <none> (the controller has not reported yet)", "Instances:\n  <none>",
		"Model:\n  <none> (no instance has reported yet)", "Revision:   <none>", "0/2 updated, 0/2 ready, 0/2 available, 0 instances exist",
		"Events: not shown: you may not list events in namespace team-a\n"} {
		if !strings.Contains(out, squash(want)) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	f.FailRun(t, "", []string{"status", "nope"}, `inferservers.infer.mindie.io "nope" not found`)
	f.FailRun(t, "", []string{"status"}, "NAME is required")

	out = f.MustRun(t, "", "status", "new", "-n", "team-a", "-o", "json")
	if !strings.Contains(out, `"kind": "InferServer"`) || strings.Contains(out, "Conditions:") {
		t.Errorf("status -o json:\n%s", out)
	}
}

func TestStatusWatchUntilAvailable(t *testing.T) {
	s := fake.InferServer("default", "llama", func(s *v1alpha1.InferServer) { s.Generation = 2 })
	f := fake.New(t, NewCmdStatus, s)
	step1 := s.DeepCopy()
	step1.Status.ObservedGeneration = 2
	step1.Status.UpdatedReplicas = 1
	step2 := fake.InferServer("default", "llama", func(s *v1alpha1.InferServer) { s.Generation = 2 }, fullStatus)
	// The states come one after the other once the watch runs.
	w := watch.NewFake()
	f.Infer.PrependWatchReactor("inferservers", clienttesting.DefaultWatchReactor(w, nil))
	go func() {
		w.Modify(step1)
		time.Sleep(300 * time.Millisecond)
		w.Modify(step2)
	}()
	out := squash(f.MustRun(t, "", "status", "llama", "-w", "--timeout=20s"))
	for _, want := range []string{"updated 0/2, ready 0/2, available 0/2, generation 2 not yet observed",
		"updated 1/2, ready 0/2, available 0/2\n",
		"updated 2/2, ready 2/2, available 2/2, Available=True (MinimumInstancesAvailable), Progressing=True (RolloutComplete), Degraded=False (AsExpected)",
		"llama3-8b  float16"} {
		if !strings.Contains(out, squash(want)) {
			t.Errorf("status -w lacks %q:\n%s", want, out)
		}
	}
}

func TestStatusWatchAlreadyAvailable(t *testing.T) {
	f := fake.New(t, NewCmdStatus, fake.InferServer("default", "llama", fullStatus))
	out := f.MustRun(t, "", "status", "llama", "-w")
	if strings.Count(out, "Name:") != 1 {
		t.Errorf("status -w of an available InferServer prints the picture %d times:\n%s", strings.Count(out, "Name:"), out)
	}
	if n := len(fake.Actions(f.Infer, "watch", "inferservers")); n != 0 {
		t.Errorf("status -w of an available InferServer watched")
	}
	out = f.MustRun(t, "", "status", "llama", "-w", "-o", "name")
	if out != "inferserver.infer.mindie.io/llama\n" {
		t.Errorf("status -w -o name: %q", out)
	}
}

func TestStatusWatchDegradedAndTimeout(t *testing.T) {
	s := fake.InferServer("default", "llama")
	f := fake.New(t, NewCmdStatus, s)
	degraded := fake.InferServer("default", "llama", fullStatus)
	degraded.Status.Conditions[2] = metav1.Condition{Type: v1alpha1.ConditionDegraded, Status: metav1.ConditionTrue, Reason: "CrashLoopBackOff", Message: "pod llama-1 crashes"}
	f.WatchWith(degraded)
	f.FailRun(t, "", []string{"status", "llama", "-w"}, `InferServer "llama" is available but Degraded: CrashLoopBackOff: pod llama-1 crashes`)

	f = fake.New(t, NewCmdStatus, s)
	f.WatchWith()
	start := time.Now()
	r := f.FailRun(t, "", []string{"status", "llama", "-w", "--timeout=1s"}, `timed out after 1s waiting for InferServer "llama" to become available (updated 0/2`)
	if time.Since(start) > 10*time.Second {
		t.Errorf("the timeout took %v", time.Since(start))
	}
	if !strings.Contains(r.Stdout, "Name:") {
		t.Errorf("status -w prints no picture before waiting:\n%s", r.Stdout)
	}

	// Deleted while watched.
	f = fake.New(t, NewCmdStatus, s)
	w := watch.NewFakeWithChanSize(1, false)
	w.Delete(s)
	f.Infer.PrependWatchReactor("inferservers", clienttesting.DefaultWatchReactor(w, nil))
	f.FailRun(t, "", []string{"status", "llama", "-w"}, `InferServer "llama" was deleted`)
}

func TestStatusWatchCancelled(t *testing.T) {
	f := fake.New(t, NewCmdStatus, fake.InferServer("default", "llama"))
	f.WatchWith()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	r := f.RunContext(t, ctx, "", "status", "llama", "-w")
	if r.Code != 1 {
		t.Errorf("status -w interrupted: exit %d, want 1", r.Code)
	}
}

// squash collapses the runs of spaces of every line (tabwriter padding).
func squash(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lead := ""
		if strings.HasPrefix(l, "  ") {
			lead = "  "
		}
		lines[i] = lead + strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}

// TestStatusWatchEndsWhenAvailable checks that -w follows the status
// contract: it ends as soon as the controller reports the current
// generation Available, with a rollout still under way, and not while the
// Available condition is about an older generation.
func TestStatusWatchEndsWhenAvailable(t *testing.T) {
	rolling := func(s *v1alpha1.InferServer) {
		fullStatus(s)
		s.Status.UpdatedReplicas = 1
		s.Status.Conditions[1] = metav1.Condition{Type: v1alpha1.ConditionProgressing, Status: metav1.ConditionTrue, Reason: inferstatus.ReasonRolloutInProgress}
	}
	f := fake.New(t, NewCmdStatus, fake.InferServer("default", "llama", rolling))
	out := f.MustRun(t, "", "status", "llama", "-w", "--timeout=10s")
	if strings.Count(out, "Name:") != 1 || !strings.Contains(squash(out), "1/2 updated, 2/2 ready, 2/2 available\n") {
		t.Errorf("status -w of an available InferServer that rolls out:\n%s", out)
	}
	if n := len(fake.Actions(f.Infer, "watch", "inferservers")); n != 0 {
		t.Errorf("status -w of an available InferServer watched")
	}

	unobserved := fake.InferServer("default", "llama", fullStatus, func(s *v1alpha1.InferServer) { s.Generation = 2 })
	f = fake.New(t, NewCmdStatus, unobserved)
	observed := unobserved.DeepCopy()
	observed.Status.ObservedGeneration = 2
	f.WatchWith(observed)
	out = squash(f.MustRun(t, "", "status", "llama", "-w", "--timeout=10s"))
	for _, want := range []string{"generation 2 not yet observed (observed 1)", "2/2 updated, 2/2 ready, 2/2 available; complete"} {
		if !strings.Contains(out, want) {
			t.Errorf("status -w of an unobserved generation lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "Name:") != 2 {
		t.Errorf("status -w of an unobserved generation did not wait for the watch:\n%s", out)
	}
}

// TestStatusRolloutComplete checks that the summary calls a rollout
// complete only when the controller reports it so at the current
// generation.
func TestStatusRolloutComplete(t *testing.T) {
	for _, tc := range []struct {
		name     string
		mutate   func(*v1alpha1.InferServer)
		complete bool
	}{
		{"reported complete", func(*v1alpha1.InferServer) {}, true},
		{"counts full, still in progress", func(s *v1alpha1.InferServer) {
			s.Status.Conditions[1] = metav1.Condition{Type: v1alpha1.ConditionProgressing, Status: metav1.ConditionTrue, Reason: inferstatus.ReasonRolloutInProgress}
		}, false},
		{"an old instance left", func(s *v1alpha1.InferServer) { s.Status.Replicas = 3 }, false},
	} {
		f := fake.New(t, NewCmdStatus, fake.InferServer("default", "llama", fullStatus, tc.mutate))
		out := f.MustRun(t, "", "status", "llama")
		if got := strings.Contains(out, "; complete"); got != tc.complete {
			t.Errorf("%s: summary says complete %v, want %v:\n%s", tc.name, got, tc.complete, out)
		}
	}
}

// TestStatusRouter checks the Router section: shown with spec.router, from
// what status.router reports, and absent without a router.
func TestStatusRouter(t *testing.T) {
	routed := func(s *v1alpha1.InferServer) {
		fullStatus(s)
		s.Spec.Router = &v1alpha1.RouterSpec{Algorithm: v1alpha1.RouterLeastLoad, Replicas: ptr.To(int32(3))}
		s.Status.Router = &v1alpha1.RouterStatus{Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 1, Algorithm: v1alpha1.RouterLeastLoad,
			Endpoint: "https://llama-router.default.svc:1025", NodePort: 31025, Pods: []v1alpha1.RouterPodStatus{
				{Name: "llama-router-5d8f-a", Node: "sim-node-0", PodIP: "127.3.0.1", Ready: true},
				{Name: "llama-router-5d8f-b", Node: "sim-node-1", Ready: false},
			}}
		s.Status.Conditions[0] = metav1.Condition{Type: v1alpha1.ConditionAvailable, Status: metav1.ConditionFalse, Reason: inferstatus.ReasonRouterUnavailable, Message: "no router pod is ready"}
	}
	f := fake.New(t, NewCmdStatus, fake.InferServer("default", "llama", routed))
	out := squash(f.MustRun(t, "", "status", "llama"))
	want := squash(`Router:
  Algorithm:       least_load
  Authentication:  Kubernetes
  Replicas:        1/3 ready, 2/3 updated, 2 pods exist
  Thresholds:      free slots 5%, free KV blocks 5%
  Limits:          10000 in flight (1000 per instance), 2 retries, first token 600s, request 600s
  Endpoint:        https://llama-router.default.svc:1025
  Node port:       31025
  POD                  NODE        POD IP     READY
  llama-router-5d8f-a  sim-node-0  127.3.0.1  true
  llama-router-5d8f-b  sim-node-1  -          false
`)
	if !strings.Contains(out, want) {
		t.Errorf("status lacks the router section\n%s\n:\n%s", want, out)
	}
	if !strings.Contains(out, "Available False RouterUnavailable") {
		t.Errorf("status lacks the RouterUnavailable condition:\n%s", out)
	}
	if i, j, k := strings.Index(out, "Pods:"), strings.Index(out, "Router:"), strings.Index(out, "Model:"); i > j || j > k {
		t.Errorf("the router section is not between the pods and the model:\n%s", out)
	}

	// Not reported yet; a routing change under way.
	f = fake.New(t, NewCmdStatus, fake.InferServer("default", "fresh", func(s *v1alpha1.InferServer) {
		s.Spec.Router = &v1alpha1.RouterSpec{Authentication: v1alpha1.RouterAuthenticationNone}
	}), fake.InferServer("default", "switching", routed, func(s *v1alpha1.InferServer) {
		s.Spec.Router.Algorithm = v1alpha1.RouterRoundRobin
		s.Status.Router.Pods, s.Status.Router.NodePort = nil, 0
	}))
	out = squash(f.MustRun(t, "", "status", "fresh"))
	for _, w := range []string{"Algorithm: cache_affinity\n", "Authentication: None\n", "Replicas: 2 desired\n",
		"  <none> (the controller has not reported the router yet)\n"} {
		if !strings.Contains(out, w) {
			t.Errorf("status of a router not reported yet lacks %q:\n%s", w, out)
		}
	}
	out = squash(f.MustRun(t, "", "status", "switching"))
	for _, w := range []string{"Algorithm: round_robin (the routers run least_load)\n", "Node port: <none>\n", "Pods: <none>\n"} {
		if !strings.Contains(out, w) {
			t.Errorf("status of a router changing algorithm lacks %q:\n%s", w, out)
		}
	}

	f = fake.New(t, NewCmdStatus, fake.InferServer("default", "plain", fullStatus))
	if out := f.MustRun(t, "", "status", "plain"); strings.Contains(out, "Router:") {
		t.Errorf("status of an InferServer without router shows a router section:\n%s", out)
	}
}

// TestStatusFaults: the fault history, newest first, with what was done
// and when the instance served again.
func TestStatusFaults(t *testing.T) {
	at := metav1.NewTime(time.Now().Add(-10 * time.Minute))
	back := metav1.NewTime(at.Add(45 * time.Second))
	s := fake.InferServer("default", "llama3", func(s *v1alpha1.InferServer) {
		s.Status.Faults = []v1alpha1.FaultRecord{
			{Time: at, Kind: v1alpha1.FaultNPU, Instance: "llama3-7d9-x", Pod: "llama3-7d9-x", Node: "ascend-2", Chip: "Ascend910-1",
				Level: "SeparateNPU", Action: v1alpha1.FaultActionDrained, Message: "the chip is separated", RecoveredTime: &back},
			{Time: at, Kind: v1alpha1.FaultNodeLost, Instance: "llama3-7d9-y", Pod: "llama3-7d9-y", Node: "ascend-3",
				Action: v1alpha1.FaultActionNone, Message: "node ascend-3 is unreachable"},
		}
	})
	f := fake.New(t, NewCmdStatus, s)
	out := squash(f.MustRun(t, "", "status", "llama3"))
	want := squash(`Faults (policy Grace, node lost after 60s, grace-over-time 900s):
  AGE  KIND      INSTANCE      POD           NODE      CHIP         LEVEL        ACTION   RECOVERED  MESSAGE
  10m  NodeLost  llama3-7d9-y  llama3-7d9-y  ascend-3  -            -            None     no         node ascend-3 is unreachable
  10m  NPUFault  llama3-7d9-x  llama3-7d9-x  ascend-2  Ascend910-1  SeparateNPU  Drained  after 45s  the chip is separated
`)
	if !strings.Contains(out, want) {
		t.Errorf("status lacks\n%s\n:\n%s", want, out)
	}
	if out := squash(fake.New(t, NewCmdStatus, fake.InferServer("default", "calm")).MustRun(t, "", "status", "calm")); !strings.Contains(out, "Faults (policy Grace, node lost after 60s, grace-over-time 900s):\n  <none>\n") {
		t.Errorf("status of a server without faults:\n%s", out)
	}
}

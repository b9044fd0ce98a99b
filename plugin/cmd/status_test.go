package cmd

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	clienttesting "k8s.io/client-go/testing"

	"mindie.io/deployer/apis/infer/v1alpha1"
)

// fullStatus gives s two instances, a model and revisions.
func fullStatus(s *v1alpha1.InferServer) {
	available(s)
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

func revisionObject(s *v1alpha1.InferServer, name string, number int64, cause string, tmpl v1alpha1.InferServerSpec) *appsv1.ControllerRevision {
	cr := &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.Namespace, Labels: map[string]string{v1alpha1.LabelServer: s.Name},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "infer.mindie.io/v1alpha1", Kind: "InferServer", Name: s.Name, UID: s.UID, Controller: ptrTrue()}}},
		Revision: number,
		Data:     runtime.RawExtension{Raw: jsonMarshal(map[string]any{"spec": tmpl})},
	}
	if cause != "" {
		cr.Annotations = map[string]string{v1alpha1.AnnotationChangeCause: cause}
	}
	return cr
}

func ptrTrue() *bool { b := true; return &b }

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
	s := server("default", "llama", fullStatus)
	other := server("default", "other")
	f := newTestFactory(t, s,
		revisionObject(s, "llama-abc", 3, "", s.Spec),
		event(s, "ScalingUp", "created instance llama-1", 1, time.Minute),
		event(s, "RolloutComplete", "all instances at llama-abc", 4, 2*time.Minute),
		event(other, "Unrelated", "not about llama", 1, time.Minute))
	out := squash(f.mustRun(t, "", "status", "llama"))
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
	lists := actions(f.kube, "list", "events")
	if len(lists) != 1 {
		t.Fatalf("%d event lists, want 1", len(lists))
	}
	sel := lists[0].(clienttesting.ListActionImpl).ListOptions.FieldSelector
	if sel != "involvedObject.kind=InferServer,involvedObject.name=llama,involvedObject.namespace=default" {
		t.Errorf("events listed with field selector %q", sel)
	}
}

func TestStatusEmptyAndForbiddenEvents(t *testing.T) {
	f := newTestFactory(t, server("team-a", "new"))
	f.kube.PrependReactor("list", "events", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "events"}, "", nil)
	})
	out := squash(f.mustRun(t, "", "status", "new", "-n", "team-a"))
	for _, want := range []string{"Conditions:\n  <none> (the controller has not reported yet)", "Instances:\n  <none>",
		"Model:\n  <none> (no instance has reported yet)", "Revision:   <none>", "0/2 updated, 0/2 ready, 0/2 available, 0 instances exist",
		"Events: not shown: you may not list events in namespace team-a\n"} {
		if !strings.Contains(out, squash(want)) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	f.failRun(t, "", []string{"status", "nope"}, `inferservers.infer.mindie.io "nope" not found`)
	f.failRun(t, "", []string{"status"}, "NAME is required")

	out = f.mustRun(t, "", "status", "new", "-n", "team-a", "-o", "json")
	if !strings.Contains(out, `"kind": "InferServer"`) || strings.Contains(out, "Conditions:") {
		t.Errorf("status -o json:\n%s", out)
	}
}

// watchWith makes the fake clientset answer watches of InferServers with
// the given states, one after the other.
func watchWith(f *testFactory, states ...*v1alpha1.InferServer) {
	w := watch.NewFakeWithChanSize(len(states), false)
	for _, s := range states {
		w.Modify(s)
	}
	f.infer.PrependWatchReactor("inferservers", clienttesting.DefaultWatchReactor(w, nil))
}

func TestStatusWatchUntilAvailable(t *testing.T) {
	s := server("default", "llama", func(s *v1alpha1.InferServer) { s.Generation = 2 })
	f := newTestFactory(t, s)
	step1 := s.DeepCopy()
	step1.Status.ObservedGeneration = 2
	step1.Status.UpdatedReplicas = 1
	step2 := server("default", "llama", func(s *v1alpha1.InferServer) { s.Generation = 2 }, fullStatus)
	// The states come one after the other once the watch runs.
	w := watch.NewFake()
	f.infer.PrependWatchReactor("inferservers", clienttesting.DefaultWatchReactor(w, nil))
	go func() {
		w.Modify(step1)
		time.Sleep(300 * time.Millisecond)
		w.Modify(step2)
	}()
	out := squash(f.mustRun(t, "", "status", "llama", "-w", "--timeout=20s"))
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
	f := newTestFactory(t, server("default", "llama", fullStatus))
	out := f.mustRun(t, "", "status", "llama", "-w")
	if strings.Count(out, "Name:") != 1 {
		t.Errorf("status -w of an available InferServer prints the picture %d times:\n%s", strings.Count(out, "Name:"), out)
	}
	if n := len(actions(f.infer, "watch", "inferservers")); n != 0 {
		t.Errorf("status -w of an available InferServer watched")
	}
	out = f.mustRun(t, "", "status", "llama", "-w", "-o", "name")
	if out != "inferserver.infer.mindie.io/llama\n" {
		t.Errorf("status -w -o name: %q", out)
	}
}

func TestStatusWatchDegradedAndTimeout(t *testing.T) {
	s := server("default", "llama")
	f := newTestFactory(t, s)
	degraded := server("default", "llama", fullStatus)
	degraded.Status.Conditions[2] = metav1.Condition{Type: v1alpha1.ConditionDegraded, Status: metav1.ConditionTrue, Reason: "CrashLoopBackOff", Message: "pod llama-1 crashes"}
	watchWith(f, degraded)
	f.failRun(t, "", []string{"status", "llama", "-w"}, `InferServer "llama" is available but Degraded: CrashLoopBackOff: pod llama-1 crashes`)

	f = newTestFactory(t, s)
	watchWith(f)
	start := time.Now()
	r := f.failRun(t, "", []string{"status", "llama", "-w", "--timeout=1s"}, `timed out after 1s waiting for InferServer "llama" to become available and up to date (updated 0/2`)
	if time.Since(start) > 10*time.Second {
		t.Errorf("the timeout took %v", time.Since(start))
	}
	if !strings.Contains(r.stdout, "Name:") {
		t.Errorf("status -w prints no picture before waiting:\n%s", r.stdout)
	}

	// Deleted while watched.
	f = newTestFactory(t, s)
	w := watch.NewFakeWithChanSize(1, false)
	w.Delete(s)
	f.infer.PrependWatchReactor("inferservers", clienttesting.DefaultWatchReactor(w, nil))
	f.failRun(t, "", []string{"status", "llama", "-w"}, `InferServer "llama" was deleted`)
}

func TestStatusWatchCancelled(t *testing.T) {
	f := newTestFactory(t, server("default", "llama"))
	watchWith(f)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	r := f.runContext(t, ctx, "", "status", "llama", "-w")
	if r.code != 1 {
		t.Errorf("status -w interrupted: exit %d, want 1", r.code)
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

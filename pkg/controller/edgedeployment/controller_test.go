package edgedeployment

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	kubeinformers "k8s.io/client-go/informers"
	kubefake "k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
	inferfake "mindie.io/deployer/pkg/generated/clientset/versioned/fake"
	inferinformers "mindie.io/deployer/pkg/generated/informers/externalversions"
)

const ns = "edge"

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

type fixture struct {
	t        *testing.T
	ctx      context.Context
	kube     *kubefake.Clientset
	infer    *inferfake.Clientset
	pods     kubeinformers.SharedInformerFactory
	nodes    kubeinformers.SharedInformerFactory
	inferInf inferinformers.SharedInformerFactory
	recorder *record.FakeRecorder
	c        *Controller
	now      time.Time
	// statusInterval is the controller's StatusInterval.
	statusInterval time.Duration
}

func edgeNode(name, arch string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		"mindie.io/edge": "true", corev1.LabelArchStable: arch, corev1.LabelHostname: name}},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
}

// job is a defaulted EdgeDeployment to the nodes labelled mindie.io/edge.
func job(name string, mutate func(*v1alpha1.EdgeDeployment)) *v1alpha1.EdgeDeployment {
	e := &v1alpha1.EdgeDeployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID("uid-" + name), Generation: 1,
		CreationTimestamp: metav1.NewTime(t0)},
		Spec: v1alpha1.EdgeDeploymentSpec{
			Targets:   v1alpha1.EdgeTargets{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"mindie.io/edge": "true"}}},
			Container: v1alpha1.EdgeContainer{Image: "example/app:1"},
		}}
	if mutate != nil {
		mutate(e)
	}
	v1alpha1.SetObjectDefaults_EdgeDeployment(e)
	return e
}

func newFixture(t *testing.T, objs ...runtime.Object) *fixture {
	return newFixtureWith(t, -1, objs...)
}

// newFixtureWith is newFixture with the controller's StatusInterval.
func newFixtureWith(t *testing.T, statusInterval time.Duration, objs ...runtime.Object) *fixture {
	var kubeObjs, inferObjs []runtime.Object
	for _, o := range objs {
		if _, ok := o.(*v1alpha1.EdgeDeployment); ok {
			inferObjs = append(inferObjs, o)
		} else {
			kubeObjs = append(kubeObjs, o)
		}
	}
	f := &fixture{t: t, ctx: context.Background(), kube: kubefake.NewClientset(kubeObjs...), infer: inferfake.NewClientset(inferObjs...),
		recorder: record.NewFakeRecorder(1000), now: t0.Add(time.Second), statusInterval: statusInterval}
	f.pods, f.nodes = NewKubeInformers(f.kube, 0)
	f.inferInf = inferinformers.NewSharedInformerFactory(f.infer, 0)
	c, err := New(Config{Kube: f.kube, Infer: f.infer, Jobs: f.inferInf.Infer().V1alpha1().EdgeDeployments(),
		Pods: f.pods, Nodes: f.nodes, Recorder: f.recorder, Now: func() time.Time { return f.now }, StatusInterval: f.statusInterval})
	if err != nil {
		t.Fatal(err)
	}
	f.c = c
	f.refresh()
	return f
}

// refresh fills the caches with what the fake clusters hold.
func (f *fixture) refresh() {
	f.t.Helper()
	pods, _ := f.kube.CoreV1().Pods(ns).List(f.ctx, metav1.ListOptions{})
	var items []any
	for i := range pods.Items {
		items = append(items, &pods.Items[i])
	}
	must(f.t, f.pods.Core().V1().Pods().Informer().GetIndexer().Replace(items, ""))
	nodes, _ := f.kube.CoreV1().Nodes().List(f.ctx, metav1.ListOptions{})
	items = nil
	for i := range nodes.Items {
		items = append(items, &nodes.Items[i])
	}
	must(f.t, f.nodes.Core().V1().Nodes().Informer().GetIndexer().Replace(items, ""))
	jobs, _ := f.infer.InferV1alpha1().EdgeDeployments(ns).List(f.ctx, metav1.ListOptions{})
	items = nil
	for i := range jobs.Items {
		items = append(items, &jobs.Items[i])
	}
	must(f.t, f.inferInf.Infer().V1alpha1().EdgeDeployments().Informer().GetIndexer().Replace(items, ""))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) sync(name string) time.Duration {
	f.t.Helper()
	requeue, err := f.c.sync(f.ctx, ns+"/"+name)
	if err != nil {
		f.t.Fatalf("sync: %v", err)
	}
	f.refresh()
	return requeue
}

func (f *fixture) job(name string) *v1alpha1.EdgeDeployment {
	f.t.Helper()
	e, err := f.infer.InferV1alpha1().EdgeDeployments(ns).Get(f.ctx, name, metav1.GetOptions{})
	must(f.t, err)
	return e
}

func (f *fixture) update(name string, mutate func(*v1alpha1.EdgeDeployment)) {
	e := f.job(name)
	mutate(e)
	e.Generation++
	_, err := f.infer.InferV1alpha1().EdgeDeployments(ns).Update(f.ctx, e, metav1.UpdateOptions{})
	must(f.t, err)
	f.refresh()
}

func (f *fixture) podNames() []string {
	pods, _ := f.kube.CoreV1().Pods(ns).List(f.ctx, metav1.ListOptions{})
	var out []string
	for _, p := range pods.Items {
		out = append(out, p.Name)
	}
	return out
}

// run makes a pod run, ready or with its container waiting for reason.
func (f *fixture) setPod(name string, waiting string) {
	f.t.Helper()
	p, err := f.kube.CoreV1().Pods(ns).Get(f.ctx, name, metav1.GetOptions{})
	must(f.t, err)
	p.Status.Phase = corev1.PodRunning
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: containerName, Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
	if waiting != "" {
		p.Status.Phase = corev1.PodPending
		p.Status.Conditions = nil
		p.Status.ContainerStatuses[0].Ready = false
		p.Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: waiting, Message: "back-off pulling image"}}
	}
	_, err = f.kube.CoreV1().Pods(ns).UpdateStatus(f.ctx, p, metav1.UpdateOptions{})
	must(f.t, err)
	f.refresh()
}

func nodeStates(e *v1alpha1.EdgeDeployment) string {
	var out []string
	for _, n := range e.Status.Nodes {
		s := n.Node + "=" + string(n.State)
		if n.Reason != "" {
			s += "(" + n.Reason + ")"
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

func TestMixedArchitecturesRefused(t *testing.T) {
	f := newFixture(t, edgeNode("a", "arm64"), edgeNode("b", "amd64"), edgeNode("c", "arm64"), job("app", nil))
	f.sync("app")
	e := f.job("app")
	c := findCondition(e, v1alpha1.EdgeConditionFailed)
	if e.Status.Phase != v1alpha1.EdgePhaseFailed || c == nil || c.Reason != v1alpha1.EdgeReasonMixedArchitectures ||
		!strings.Contains(c.Message, "amd64: b; arm64: a, c") || len(f.podNames()) != 0 {
		t.Errorf("status %+v, pods %v", e.Status, f.podNames())
	}
	if ev := f.events(); len(ev) != 2 || !strings.HasPrefix(ev[0], "Warning Refused MixedArchitectures: the target nodes do not share") || !strings.HasPrefix(ev[1], "Warning PhaseChanged Job Failed") {
		t.Errorf("events %q", ev)
	}
	// Looked at again: nothing new to say.
	f.sync("app")
	if ev := f.events(); len(ev) != 0 {
		t.Errorf("events %q", ev)
	}
}

// events drains the events recorded so far.
func (f *fixture) events() []string {
	var out []string
	for {
		select {
		case e := <-f.recorder.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func findCondition(e *v1alpha1.EdgeDeployment, typ string) *metav1.Condition {
	for i := range e.Status.Conditions {
		if e.Status.Conditions[i].Type == typ {
			return &e.Status.Conditions[i]
		}
	}
	return nil
}

// TestPacedJobPartialRetry: one node at a time; a node whose image cannot
// be pulled fails, the others succeed (PartiallySucceeded); a retry deploys
// only that node again, and the job succeeds.
func TestPacedJobPartialRetry(t *testing.T) {
	f := newFixture(t, edgeNode("a", "arm64"), edgeNode("b", "arm64"), edgeNode("c", "arm64"),
		job("app", func(e *v1alpha1.EdgeDeployment) { e.Spec.MaxConcurrentNodes = ptr.To[int32](1) }))
	f.sync("app")
	e := f.job("app")
	if e.Status.Phase != v1alpha1.EdgePhaseRunning || strings.Join(e.Status.Targets, ",") != "a,b,c" || e.Status.Architecture != "arm64" ||
		nodeStates(e) != "a=Deploying b=Queued c=Queued" || strings.Join(f.podNames(), ",") != "app-a-0" || len(e.Finalizers) != 1 {
		t.Fatalf("status %+v, pods %v", e.Status, f.podNames())
	}
	p, _ := f.kube.CoreV1().Pods(ns).Get(f.ctx, "app-a-0", metav1.GetOptions{})
	if p.Spec.NodeSelector[corev1.LabelHostname] != "a" || p.Spec.Tolerations[0].Key != EdgeTaintKey || p.Spec.RestartPolicy != corev1.RestartPolicyAlways ||
		p.Spec.Containers[0].Image != "example/app:1" || p.Labels[LabelJob] != "app" {
		t.Errorf("pod %+v", p)
	}
	f.setPod("app-a-0", "")
	f.sync("app")
	if e := f.job("app"); nodeStates(e) != "a=Succeeded b=Deploying c=Queued" || e.Status.Succeeded != 1 || e.Status.Running != 1 || e.Status.Queued != 1 {
		t.Fatalf("nodes %s, status %+v", nodeStates(e), e.Status)
	}
	if ev := strings.Join(f.events(), "\n"); !strings.Contains(ev, "Normal Started Deploying to 3 arm64 nodes, at most 1 at a time: a, b, c") ||
		!strings.Contains(ev, "Normal NodeSucceeded Node a succeeded") {
		t.Errorf("events:\n%s", ev)
	}
	f.setPod("app-b-0", "ImagePullBackOff")
	f.sync("app")
	f.setPod("app-c-0", "")
	f.sync("app")
	e = f.job("app")
	if e.Status.Phase != v1alpha1.EdgePhasePartiallySucceeded || nodeStates(e) != "a=Succeeded b=Failed(ImagePullFailed) c=Succeeded" ||
		e.Status.CompletionTime == nil || findCondition(e, v1alpha1.EdgeConditionFailed).Status != metav1.ConditionTrue {
		t.Fatalf("nodes %s, status %+v", nodeStates(e), e.Status)
	}

	// Retry: only b again.
	f.events()
	f.update("app", func(e *v1alpha1.EdgeDeployment) { e.Spec.RetryGeneration = 1 })
	f.sync("app") // deletes b's pod
	if ev := strings.Join(f.events(), "\n"); !strings.Contains(ev, "Normal Retrying Retry 1: deploying again to 1 nodes: b") {
		t.Errorf("events:\n%s", ev)
	}
	f.sync("app") // makes it again
	e = f.job("app")
	if nodeStates(e) != "a=Succeeded b=Deploying c=Succeeded" || e.Status.ObservedRetryGeneration != 1 || e.Status.Phase != v1alpha1.EdgePhaseRunning {
		t.Fatalf("nodes %s, status %+v", nodeStates(e), e.Status)
	}
	f.setPod("app-b-0", "")
	f.sync("app")
	e = f.job("app")
	if e.Status.Phase != v1alpha1.EdgePhaseSucceeded || findCondition(e, v1alpha1.EdgeConditionComplete).Status != metav1.ConditionTrue || e.Status.Nodes[1].Attempts != 2 {
		t.Errorf("status %+v", e.Status)
	}
}

func TestStopContinueAndTimeout(t *testing.T) {
	f := newFixture(t, edgeNode("a", "arm64"), edgeNode("b", "arm64"),
		job("app", func(e *v1alpha1.EdgeDeployment) {
			e.Spec.MaxConcurrentNodes = ptr.To[int32](1)
			e.Spec.TimeoutSeconds = ptr.To[int32](60)
		}))
	f.sync("app")
	f.update("app", func(e *v1alpha1.EdgeDeployment) { e.Spec.Stopped = true })
	f.sync("app")
	if e := f.job("app"); e.Status.Phase != v1alpha1.EdgePhaseStopping || nodeStates(e) != "a=Deploying b=Stopped(JobStopped)" {
		t.Fatalf("nodes %s, phase %s", nodeStates(e), e.Status.Phase)
	}
	f.setPod("app-a-0", "")
	f.sync("app")
	if e := f.job("app"); e.Status.Phase != v1alpha1.EdgePhaseStopped || nodeStates(e) != "a=Succeeded b=Stopped(JobStopped)" || len(f.podNames()) != 1 {
		t.Fatalf("nodes %s, phase %s", nodeStates(e), e.Status.Phase)
	}
	f.now = t0.Add(30 * time.Second)
	f.update("app", func(e *v1alpha1.EdgeDeployment) { e.Spec.Stopped = false })
	requeue := f.sync("app")
	if e := f.job("app"); e.Status.Phase != v1alpha1.EdgePhaseRunning || nodeStates(e) != "a=Succeeded b=Deploying" || requeue <= 0 {
		t.Fatalf("nodes %s, phase %s, requeue %v", nodeStates(e), e.Status.Phase, requeue)
	}
	// b never gets ready: the run times out 60 s after it was continued.
	f.now = t0.Add(89 * time.Second)
	f.sync("app")
	if e := f.job("app"); e.Status.Phase != v1alpha1.EdgePhaseRunning {
		t.Fatalf("timed out before 60 s after the continue: %s", e.Status.Phase)
	}
	f.now = t0.Add(91 * time.Second)
	f.sync("app")
	e := f.job("app")
	if e.Status.Phase != v1alpha1.EdgePhaseTimedOut || nodeStates(e) != "a=Succeeded b=TimedOut(TimedOut)" || e.Status.TimedOut != 1 {
		t.Errorf("nodes %s, status %+v", nodeStates(e), e.Status)
	}
}

func TestDeletionRemovesPods(t *testing.T) {
	f := newFixture(t, edgeNode("a", "arm64"), job("app", nil))
	f.sync("app")
	if len(f.podNames()) != 1 {
		t.Fatalf("pods %v", f.podNames())
	}
	e := f.job("app")
	e.DeletionTimestamp = ptr.To(metav1.NewTime(f.now))
	_, err := f.infer.InferV1alpha1().EdgeDeployments(ns).Update(f.ctx, e, metav1.UpdateOptions{})
	must(t, err)
	f.refresh()
	f.sync("app")
	if len(f.podNames()) != 0 || len(f.job("app").Finalizers) != 0 {
		t.Errorf("pods %v, finalizers %v", f.podNames(), f.job("app").Finalizers)
	}
}

// TestPodsOfAFailedStatusWriteAdopted: pods a sync made before its status
// write failed belong to their node on the next sync.
func TestPodsOfAFailedStatusWriteAdopted(t *testing.T) {
	f := newFixture(t, edgeNode("a", "arm64"), job("app", nil))
	e := f.job("app")
	p := Pod(e, "a", 0)
	_, err := f.kube.CoreV1().Pods(ns).Create(f.ctx, p, metav1.CreateOptions{})
	must(t, err)
	f.refresh()
	f.sync("app")
	if e := f.job("app"); nodeStates(e) != "a=Deploying" || len(e.Status.Nodes[0].Pods) != 1 || len(f.podNames()) != 1 {
		t.Errorf("nodes %s, pods %v", nodeStates(e), f.podNames())
	}
}

// TestCrashLoopFailsAfterRestarts: one restart in back-off is not a
// failure; three are.
func TestCrashLoopFailsAfterRestarts(t *testing.T) {
	e := job("app", nil)
	p := Pod(e, "a", 0)
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: containerName, RestartCount: 1,
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}}}
	if _, _, failed := podFailure(e, p); failed {
		t.Error("failed after one restart")
	}
	p.Status.ContainerStatuses[0].RestartCount = crashLoopRestarts
	if reason, _, failed := podFailure(e, p); !failed || reason != "CrashLoopBackOff" {
		t.Errorf("not failed after %d restarts: %s", crashLoopRestarts, reason)
	}
}

// Until the cache holds the version a status was written over no more,
// the job is synced from what was written; a newer version in the cache
// (the write itself, or a user's edit) wins and the memory goes.
func TestLatestPrefersTheWrittenStatusOverAStaleCache(t *testing.T) {
	f := newFixture(t)
	stale := &v1alpha1.EdgeDeployment{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns, ResourceVersion: "10"}}
	written := stale.DeepCopy()
	written.ResourceVersion, written.Status.Phase = "11", v1alpha1.EdgePhaseRunning
	f.c.remember(ns+"/app", "10", written)
	if got := f.c.latest(ns+"/app", stale); got != written {
		t.Errorf("a stale cache won over the status written: %+v", got)
	}
	newer := stale.DeepCopy()
	newer.ResourceVersion = "12"
	if got := f.c.latest(ns+"/app", newer); got != newer {
		t.Errorf("the written status won over a newer cache: %+v", got)
	}
	if got := f.c.latest(ns+"/app", stale); got != stale {
		t.Errorf("the memory outlived the cache catching up: %+v", got)
	}
}

// A status write that conflicts (the job changed meanwhile) is no error
// and records no event: the next sync, from the newer job, adopts the pods
// made and records the transitions once.
func TestStatusConflictIsNoErrorAndRecordsNothing(t *testing.T) {
	f := newFixture(t, edgeNode("a", "arm64"), job("app", nil))
	f.infer.PrependReactor("update", "edgedeployments", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "status" {
			return false, nil, nil
		}
		return true, nil, apierrors.NewConflict(v1alpha1.Resource("edgedeployments"), "app", errors.New("the object has been modified"))
	})
	if _, err := f.c.sync(f.ctx, ns+"/app"); err != nil {
		t.Fatalf("sync: %v", err)
	}
	if n := len(f.recorder.Events); n != 0 {
		t.Errorf("%d events recorded for a status that was not written", n)
	}
}

// A node's instances are created at once; one that the API refuses keeps
// the node Queued (the sync fails, to be retried), and the next sync
// creates only what is missing.
func TestDispatchCreatesInstancesAtOnce(t *testing.T) {
	f := newFixture(t, edgeNode("a", "arm64"), edgeNode("b", "arm64"),
		job("app", func(e *v1alpha1.EdgeDeployment) { e.Spec.InstancesPerNode = ptr.To[int32](3) }))
	refuse := true
	f.kube.PrependReactor("create", "pods", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if p := a.(clienttesting.CreateAction).GetObject().(*corev1.Pod); refuse && p.Name == "app-b-1" {
			return true, nil, apierrors.NewInternalError(errors.New("etcd is slow"))
		}
		return false, nil, nil
	})
	if _, err := f.c.sync(f.ctx, ns+"/app"); err == nil || !strings.Contains(err.Error(), "create pod app-b-1") {
		t.Fatalf("sync: %v", err)
	}
	f.refresh()
	if got := strings.Join(f.podNames(), ","); got != "app-a-0,app-a-1,app-a-2,app-b-0,app-b-2" {
		t.Fatalf("pods %s", got)
	}
	refuse = false
	f.kube.ClearActions()
	f.sync("app")
	var created []string
	for _, a := range f.kube.Actions() {
		if a.GetVerb() == "create" {
			created = append(created, a.(clienttesting.CreateAction).GetObject().(*corev1.Pod).Name)
		}
	}
	if e := f.job("app"); nodeStates(e) != "a=Deploying b=Deploying" || strings.Join(created, ",") != "app-b-1" {
		t.Errorf("nodes %s, created %v", nodeStates(e), created)
	}
}

// Progress is written at most once a StatusInterval; a phase change at
// once.
func TestProgressWritesAreCoalesced(t *testing.T) {
	f := newFixtureWith(t, time.Second, edgeNode("a", "arm64"), edgeNode("b", "arm64"), job("app", nil))
	f.sync("app") // Running: written
	f.setPod("app-a-0", "")
	f.infer.ClearActions()
	requeue := f.sync("app") // a succeeded: progress, written 0 s ago
	n := 0
	for _, a := range f.infer.Actions() {
		if a.GetVerb() == "update" {
			n++
		}
	}
	if n != 0 || requeue <= 0 || requeue > time.Second {
		t.Fatalf("%d writes, requeue %v: want none, and a look again within a second", n, requeue)
	}
	if e := f.job("app"); nodeStates(e) != "a=Deploying b=Deploying" {
		t.Errorf("nodes %s", nodeStates(e))
	}
	f.now = f.now.Add(time.Second)
	f.sync("app")
	if e := f.job("app"); nodeStates(e) != "a=Succeeded b=Deploying" || e.Status.Nodes[0].Attempts != 1 {
		t.Errorf("nodes %s, %+v", nodeStates(e), e.Status.Nodes)
	}
	f.setPod("app-b-0", "")
	f.sync("app") // Succeeded: a phase change, written at once
	if e := f.job("app"); e.Status.Phase != v1alpha1.EdgePhaseSucceeded {
		t.Errorf("phase %s", e.Status.Phase)
	}
}

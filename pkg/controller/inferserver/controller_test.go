package inferserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	kubeinformers "k8s.io/client-go/informers"
	kubefake "k8s.io/client-go/kubernetes/fake"
	core "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/ascend"
	"mindie.io/deployer/pkg/controller/cachetrim"
	inferfake "mindie.io/deployer/pkg/generated/clientset/versioned/fake"
	inferinformers "mindie.io/deployer/pkg/generated/informers/externalversions"
	"mindie.io/deployer/pkg/inferstatus"
	"mindie.io/deployer/pkg/revision"
)

// The controller's unit tests, in the manner of the Deployment controller's
// "fixture": fake clientsets hold the cluster, the informers' indexers are
// filled from them by hand, and a test runs c.sync and looks at the
// clients' actions, the objects and the events.

const testNS = "ns"

var testNow = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

type fixture struct {
	t        *testing.T
	ctx      context.Context
	kube     *kubefake.Clientset
	infer    *inferfake.Clientset
	recorder *record.FakeRecorder
	kubeInf  kubeinformers.SharedInformerFactory
	routeInf kubeinformers.SharedInformerFactory
	faultInf kubeinformers.SharedInformerFactory
	leaseInf kubeinformers.SharedInformerFactory
	nsInf    kubeinformers.SharedInformerFactory
	inferInf inferinformers.SharedInformerFactory
	c        *Controller
	// written is where the controller records its writes (Config.Written).
	written *cachetrim.Written
	// now is the controller's clock; tests move it.
	now time.Time
}

func newFixture(t *testing.T, objects ...runtime.Object) *fixture {
	t.Helper()
	var kubeObjs, inferObjs []runtime.Object
	for _, o := range objects {
		if _, ok := o.(*v1alpha1.InferServer); ok {
			inferObjs = append(inferObjs, o)
		} else {
			kubeObjs = append(kubeObjs, o)
		}
	}
	f := &fixture{t: t, ctx: context.Background(), recorder: record.NewFakeRecorder(1000), now: testNow}
	f.kube = kubefake.NewClientset(kubeObjs...)
	f.infer = inferfake.NewClientset(inferObjs...)
	f.written = cachetrim.NewWritten()
	f.kubeInf = NewKubeInformers(f.kube, 0, f.written)
	f.routeInf = NewRouterInformers(f.kube, 0)
	f.faultInf = NewFaultInformers(f.kube, 0)
	f.leaseInf = NewNodeLeaseInformers(f.kube, 0)
	f.nsInf = kubeinformers.NewSharedInformerFactory(f.kube, 0)
	f.inferInf = inferinformers.NewSharedInformerFactory(f.infer, 0)
	c, err := New(Config{
		Kube: f.kube, Infer: f.infer, Recorder: f.recorder,
		Servers:         f.inferInf.Infer().V1alpha1().InferServers(),
		KubeInformers:   f.kubeInf,
		Written:         f.written,
		RouterInformers: f.routeInf,
		FaultInformers:  f.faultInf,
		LeaseInformers:  f.leaseInf,
		Namespaces:      f.nsInf.Core().V1().Namespaces(),
		FillRanktables:  true,
		Now:             func() time.Time { return f.now },
	})
	if err != nil {
		t.Fatal(err)
	}
	f.c = c
	f.refresh()
	return f
}

// refresh fills the informers' caches with what the fake clusters hold,
// as the informers would, and forgets the clients' actions so far.
func (f *fixture) refresh() {
	f.t.Helper()
	fill := func(inf cache.SharedIndexInformer, objs []runtime.Object) {
		var items []any
		for _, o := range objs {
			items = append(items, o)
		}
		if inf.GetIndexer() == f.kubeInf.Apps().V1().Deployments().Informer().GetIndexer() ||
			inf.GetIndexer() == f.kubeInf.Core().V1().Pods().Informer().GetIndexer() ||
			inf.GetIndexer() == f.kubeInf.Core().V1().Services().Informer().GetIndexer() ||
			inf.GetIndexer() == f.kubeInf.Core().V1().ConfigMaps().Informer().GetIndexer() ||
			inf.GetIndexer() == f.kubeInf.Apps().V1().ControllerRevisions().Informer().GetIndexer() {
			// What NewKubeInformers' informers would cache.
			for i, o := range objs {
				t, err := kubeCacheTransform(nil, nil)(o.DeepCopyObject())
				if err != nil {
					f.t.Fatal(err)
				}
				items[i] = t
			}
		}
		if err := inf.GetIndexer().Replace(items, ""); err != nil {
			f.t.Fatal(err)
		}
	}
	list := func(resource, ns string) []runtime.Object {
		kinds := map[string]string{"deployments": "Deployment", "controllerrevisions": "ControllerRevision", "pods": "Pod", "nodes": "Node", "leases": "Lease",
			"services": "Service", "configmaps": "ConfigMap", "serviceaccounts": "ServiceAccount", "roles": "Role",
			"rolebindings": "RoleBinding", "clusterrolebindings": "ClusterRoleBinding", "namespaces": "Namespace"}
		gvr := schema.GroupVersionResource{Version: "v1", Resource: resource}
		switch resource {
		case "deployments", "controllerrevisions":
			gvr.Group = "apps"
		case "roles", "rolebindings", "clusterrolebindings":
			gvr.Group = "rbac.authorization.k8s.io"
		case "leases":
			gvr.Group = "coordination.k8s.io"
		}
		objs, err := f.kube.Tracker().List(gvr, gvr.GroupVersion().WithKind(kinds[resource]), ns)
		if err != nil {
			f.t.Fatal(err)
		}
		items, err := meta.ExtractList(objs)
		if err != nil {
			f.t.Fatal(err)
		}
		return items
	}
	fill(f.kubeInf.Apps().V1().Deployments().Informer(), list("deployments", testNS))
	var instancePods, routerPods []runtime.Object
	for _, o := range list("pods", testNS) {
		if o.(metav1.Object).GetLabels()[v1alpha1.LabelRouter] != "" {
			routerPods = append(routerPods, o)
		} else {
			instancePods = append(instancePods, o)
		}
	}
	fill(f.kubeInf.Core().V1().Pods().Informer(), instancePods)
	fill(f.routeInf.Core().V1().Pods().Informer(), routerPods)
	fill(f.kubeInf.Core().V1().Services().Informer(), list("services", testNS))
	fill(f.kubeInf.Core().V1().ConfigMaps().Informer(), list("configmaps", testNS))
	fill(f.kubeInf.Apps().V1().ControllerRevisions().Informer(), list("controllerrevisions", testNS))
	fill(f.kubeInf.Core().V1().ServiceAccounts().Informer(), list("serviceaccounts", testNS))
	fill(f.kubeInf.Rbac().V1().Roles().Informer(), list("roles", testNS))
	fill(f.kubeInf.Rbac().V1().RoleBindings().Informer(), list("rolebindings", testNS))
	fill(f.kubeInf.Rbac().V1().ClusterRoleBindings().Informer(), list("clusterrolebindings", ""))
	fill(f.faultInf.Core().V1().Nodes().Informer(), list("nodes", ""))
	fill(f.faultInf.Core().V1().ConfigMaps().Informer(), list("configmaps", ascend.DeviceInfoNamespace))
	fill(f.leaseInf.Coordination().V1().Leases().Informer(), list("leases", corev1.NamespaceNodeLease))
	fill(f.nsInf.Core().V1().Namespaces().Informer(), list("namespaces", ""))
	servers, _ := f.infer.InferV1alpha1().InferServers(testNS).List(f.ctx, metav1.ListOptions{})
	var objs []runtime.Object
	for i := range servers.Items {
		objs = append(objs, &servers.Items[i])
	}
	fill(f.inferInf.Infer().V1alpha1().InferServers().Informer(), objs)
	f.kube.ClearActions()
	f.infer.ClearActions()
}

// sync runs one sync of the server and then refreshes the caches; it
// returns the writes the sync made ("verb resource[/subresource] name").
func (f *fixture) sync(name string) (time.Duration, []string) {
	f.t.Helper()
	requeue, err := f.c.sync(f.ctx, testNS+"/"+name)
	if err != nil {
		f.t.Fatalf("sync %s: %v", name, err)
	}
	writes := f.writes()
	f.refresh()
	return requeue, writes
}

// syncErr is sync for a sync that is to fail.
func (f *fixture) syncErr(name string) ([]string, error) {
	f.t.Helper()
	_, err := f.c.sync(f.ctx, testNS+"/"+name)
	writes := f.writes()
	f.refresh()
	return writes, err
}

func (f *fixture) writes() []string {
	var out []string
	for _, a := range append(f.infer.Actions(), f.kube.Actions()...) {
		if a.GetVerb() == "get" || a.GetVerb() == "list" || a.GetVerb() == "watch" {
			continue
		}
		res := a.GetResource().Resource
		if a.GetSubresource() != "" {
			res += "/" + a.GetSubresource()
		}
		name := ""
		switch a := a.(type) {
		case interface{ GetObject() runtime.Object }: // create, update
			name = a.GetObject().(metav1.Object).GetName()
		case interface{ GetName() string }: // patch, delete
			name = a.GetName()
		}
		out = append(out, a.GetVerb()+" "+res+" "+name)
	}
	return out
}

// events drains the recorded events.
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

func (f *fixture) server(name string) *v1alpha1.InferServer {
	f.t.Helper()
	s, err := f.infer.InferV1alpha1().InferServers(testNS).Get(f.ctx, name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

// update changes a server as a user would, and refreshes the caches.
func (f *fixture) update(name string, mutate func(*v1alpha1.InferServer)) {
	f.t.Helper()
	s := f.server(name)
	mutate(s)
	s.Generation++
	v1alpha1.SetObjectDefaults_InferServer(s)
	if _, err := f.infer.InferV1alpha1().InferServers(testNS).Update(f.ctx, s, metav1.UpdateOptions{}); err != nil {
		f.t.Fatal(err)
	}
	f.refresh()
}

func (f *fixture) deployment(name string) *appsv1.Deployment {
	f.t.Helper()
	d, err := f.kube.AppsV1().Deployments(testNS).Get(f.ctx, name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return d
}

func (f *fixture) pods() []corev1.Pod {
	list, _ := f.kube.CoreV1().Pods(testNS).List(f.ctx, metav1.ListOptions{})
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	return list.Items
}

func (f *fixture) revisions() []appsv1.ControllerRevision {
	list, _ := f.kube.AppsV1().ControllerRevisions(testNS).List(f.ctx, metav1.ListOptions{})
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Revision < list.Items[j].Revision })
	return list.Items
}

func (f *fixture) configMap(name string) *corev1.ConfigMap {
	f.t.Helper()
	cm, err := f.kube.CoreV1().ConfigMaps(testNS).Get(f.ctx, name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return cm
}

// editPod changes a pod in the cluster as the kubelet or a user would.
func (f *fixture) editPod(name string, mutate func(*corev1.Pod)) {
	f.t.Helper()
	p, err := f.kube.CoreV1().Pods(testNS).Get(f.ctx, name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	mutate(p)
	if _, err := f.kube.CoreV1().Pods(testNS).Update(f.ctx, p, metav1.UpdateOptions{}); err != nil {
		f.t.Fatal(err)
	}
	f.refresh()
}

func (f *fixture) deletePod(name string) {
	f.t.Helper()
	if err := f.kube.CoreV1().Pods(testNS).Delete(f.ctx, name, metav1.DeleteOptions{}); err != nil {
		f.t.Fatal(err)
	}
	f.refresh()
}

// newServer is a defaulted InferServer named name.
func newServer(name string, mutate func(*v1alpha1.InferServer)) *v1alpha1.InferServer {
	s := &v1alpha1.InferServer{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS, UID: types.UID("uid-" + name), Generation: 1}}
	if mutate != nil {
		mutate(s)
	}
	v1alpha1.SetObjectDefaults_InferServer(s)
	return s
}

func crossNodeServer(name string, replicas int32, mutate func(*v1alpha1.InferServer)) *v1alpha1.InferServer {
	return newServer(name, func(s *v1alpha1.InferServer) {
		s.Spec.Replicas = ptr.To(replicas)
		s.Spec.NodesPerInstance = ptr.To[int32](2)
		if mutate != nil {
			mutate(s)
		}
	})
}

// runPod makes a pod running and ready on a node, with its NPUs annotated
// as the device plugin does.
func runPod(p *corev1.Pod) {
	n := strings.Count(p.Name, "-") // distinct addresses per pod
	p.Spec.NodeName = "node-" + p.Name
	p.Status.Phase = corev1.PodRunning
	p.Status.HostIP = fmt.Sprintf("127.0.%d.%d", n, len(p.Name))
	p.Status.PodIP = fmt.Sprintf("127.1.%d.%d", n, int(p.Name[len(p.Name)-1]))
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: containerName, Ready: true, Started: ptr.To(true),
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(testNow.Add(-time.Hour))}}}}
	if p.Annotations == nil {
		p.Annotations = map[string]string{}
	}
	var chips []string
	cfg := ascend.PodConfiguration{PodName: p.Name, ServerID: p.Status.HostIP, HostIP: p.Status.HostIP}
	for i := 0; i < 8; i++ {
		chips = append(chips, ascend.ChipName("Ascend910", i))
		cfg.Devices = append(cfg.Devices, ascend.PodDevice{DeviceID: fmt.Sprint(i), DeviceIP: fmt.Sprintf("127.9.%d.%d", n, i)})
	}
	p.Annotations[ascend.ChipListAnnotation("Ascend910")] = ascend.FormatChipList(chips)
	p.Annotations[ascend.AnnotationAscend910Configuration] = ascend.FormatPodConfiguration(cfg)
}

func has(list []string, want string) bool {
	for _, s := range list {
		if strings.Contains(s, want) {
			return true
		}
	}
	return false
}

func count(list []string, want string) int {
	n := 0
	for _, s := range list {
		if strings.Contains(s, want) {
			n++
		}
	}
	return n
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func condition(s *v1alpha1.InferServer, typ string) *metav1.Condition {
	return meta.FindStatusCondition(s.Status.Conditions, typ)
}

func TestSingleNodeCreatesTheDeployment(t *testing.T) {
	f := newFixture(t, newServer("llama", func(s *v1alpha1.InferServer) {
		s.Spec.Replicas = ptr.To[int32](2)
		s.Spec.Image = "mindie:v1"
		s.Spec.Resources.NPU.Count = ptr.To[int32](1)
		s.Spec.Health.StartupSeconds = ptr.To[int32](30)
		s.Spec.ServerConfig.Inline = `{"x":1}`
	}))
	_, writes := f.sync("llama")
	for _, want := range []string{"update inferservers llama", "create controllerrevisions llama-", "patch deployments llama",
		"patch services llama", "patch configmaps llama-config", "update inferservers/status llama"} {
		if !has(writes, want) {
			t.Errorf("no %q in %v", want, writes)
		}
	}
	s := f.server("llama")
	if !containsString(s.Finalizers, v1alpha1.FinalizerCleanup) {
		t.Errorf("finalizers %v", s.Finalizers)
	}
	revs := f.revisions()
	if len(revs) != 1 || revs[0].Revision != 1 || s.Status.UpdateRevision != revs[0].Name {
		t.Fatalf("revisions %v, update revision %s", revs, s.Status.UpdateRevision)
	}
	d := f.deployment("llama")
	c := d.Spec.Template.Spec.Containers[0]
	npu := c.Resources.Requests["huawei.com/Ascend910"]
	if *d.Spec.Replicas != 2 || c.Image != "mindie:v1" || npu.Value() != 1 || c.StartupProbe.FailureThreshold != 30 ||
		d.Spec.Template.Labels[v1alpha1.LabelRevision] != revs[0].Name || *d.Spec.ProgressDeadlineSeconds != *s.Spec.ProgressDeadlineSeconds ||
		d.Spec.Strategy.RollingUpdate.MaxSurge.String() != "50%" || metav1.GetControllerOf(d).UID != s.UID {
		t.Errorf("deployment does not carry the spec: %+v", d.Spec)
	}
	if svc, err := f.kube.CoreV1().Services(testNS).Get(f.ctx, "llama", metav1.GetOptions{}); err != nil ||
		svc.Spec.Type != corev1.ServiceTypeNodePort || svc.Spec.Selector[v1alpha1.LabelMaster] != "true" || svc.Spec.Ports[0].Port != 1025 {
		t.Errorf("service %+v: %v", svc, err)
	}
	if cm := f.configMap("llama-config"); cm.Data[inlineConfigKey] != `{"x":1}` {
		t.Errorf("inline config %v", cm.Data)
	}
	ev := f.events()
	if has(ev, "RevisionCreated") || !has(ev, "InstanceCreated Created deployment llama for 2 instances (revision "+revs[0].Name+")") {
		t.Errorf("events %v", ev)
	}
	if p := condition(s, v1alpha1.ConditionProgressing); s.Status.Replicas != 0 || s.Status.ObservedGeneration != 1 || p == nil || p.Reason != inferstatus.ReasonRolloutInProgress {
		t.Errorf("status %+v", s.Status)
	}

	// The cache holds the Deployment as a digest of what the controller
	// owns, without the pod template; the API's object carries neither.
	cached, err := f.kubeInf.Apps().V1().Deployments().Lister().Deployments(testNS).Get("llama")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cachetrim.AppliedDigest(cached); !ok || len(cached.Spec.Template.Spec.Containers) != 0 || *cached.Spec.Replicas != 2 {
		t.Errorf("cached deployment: annotations %v, template %+v", cached.Annotations, cached.Spec.Template)
	}
	for _, e := range cached.ManagedFields {
		if e.Manager == FieldManager {
			t.Errorf("cached deployment keeps the controller's managedFields: %+v", e)
		}
	}
	if _, ok := cachetrim.AppliedDigest(d); ok {
		t.Errorf("the stored deployment carries the cache's digest: %v", d.Annotations)
	}

	// Steady state: the same sync again writes nothing.
	if _, writes := f.sync("llama"); len(writes) != 0 {
		t.Errorf("a second sync wrote %v", writes)
	}
	if ev := f.events(); len(ev) != 0 {
		t.Errorf("a second sync recorded %v", ev)
	}
}

// The controller records what it applies, with the resourceVersion the
// API server answered, and its informers' transform takes the digest of
// that very version from the record instead of extracting it.
func TestOwnWritesAreRecordedForTheInformers(t *testing.T) {
	f := newFixture(t, newServer("llama", nil))
	// The fake clients keep no resourceVersions: the answers to applies
	// get some, as an API server's carry them.
	answered := map[string]runtime.Object{}
	rv := 100
	f.kube.PrependReactor("patch", "*", func(a core.Action) (bool, runtime.Object, error) {
		handled, obj, err := core.ObjectReaction(f.kube.Tracker())(a)
		if err != nil || obj == nil {
			return handled, obj, err
		}
		rv++
		m := obj.(metav1.Object)
		m.SetResourceVersion(fmt.Sprint(rv))
		m.SetUID(types.UID("uid-" + a.GetResource().Resource + "-" + m.GetName()))
		answered[a.GetResource().Resource] = obj.DeepCopyObject()
		return handled, obj, nil
	})
	f.sync("llama")
	if f.written.Len() != 2 || answered["deployments"] == nil || answered["services"] == nil {
		t.Fatalf("%d records of the writes %v, want the Deployment's and the Service's", f.written.Len(), answered)
	}
	for _, kind := range []string{"deployments", "services"} {
		out, err := kubeCacheTransform(nil, f.written)(answered[kind].DeepCopyObject())
		if err != nil {
			t.Fatal(err)
		}
		got, _ := cachetrim.AppliedDigest(out.(metav1.Object))
		var desired any
		if kind == "deployments" {
			desired, err = appsv1ac.ExtractDeployment(answered[kind].(*appsv1.Deployment), FieldManager)
		} else {
			desired, err = corev1ac.ExtractService(answered[kind].(*corev1.Service), FieldManager)
		}
		if err != nil {
			t.Fatal(err)
		}
		if want, _ := cachetrim.Digest(desired); got != want {
			t.Errorf("%s: the cached digest %q is not that of what was applied, %q", kind, got, want)
		}
	}
	if f.written.Len() != 0 {
		t.Errorf("%d records left once their events were seen", f.written.Len())
	}
}

func TestSingleNodeScales(t *testing.T) {
	f := newFixture(t, newServer("llama", nil))
	f.sync("llama")
	f.events()
	f.update("llama", func(s *v1alpha1.InferServer) { s.Spec.Replicas = ptr.To[int32](5) })
	_, writes := f.sync("llama")
	if !has(writes, "patch deployments llama") || has(writes, "create controllerrevisions") {
		t.Errorf("writes %v", writes)
	}
	if d := f.deployment("llama"); *d.Spec.Replicas != 5 {
		t.Errorf("replicas %d", *d.Spec.Replicas)
	}
	if ev := f.events(); !has(ev, "Scaled Scaled from 1 to 5 instances") {
		t.Errorf("events %v", ev)
	}
}

// TestHandEditReverted: a field the controller owns that another manager
// changed is applied back, with a Reverted event; a field the controller
// does not own is left alone.
func TestHandEditReverted(t *testing.T) {
	f := newFixture(t, newServer("llama", nil))
	f.sync("llama")
	f.events()

	d := f.deployment("llama")
	d.Spec.Template.Spec.Containers[0].Image = "hand:edit"
	if _, err := f.kube.AppsV1().Deployments(testNS).Update(f.ctx, d, metav1.UpdateOptions{FieldManager: "kubectl-set"}); err != nil {
		t.Fatal(err)
	}
	f.refresh()
	_, writes := f.sync("llama")
	if !has(writes, "patch deployments llama") {
		t.Errorf("the hand edit was not applied back: %v", writes)
	}
	if img := f.deployment("llama").Spec.Template.Spec.Containers[0].Image; img != v1alpha1.DefaultImage {
		t.Errorf("image %s after the revert", img)
	}
	if ev := f.events(); !has(ev, `Reverted Reverted a change to deployment llama made by "kubectl-set"`) {
		t.Errorf("events %v", ev)
	}
	if _, writes := f.sync("llama"); len(writes) != 0 {
		t.Errorf("the sync after the revert wrote %v", writes)
	}

	// An annotation of someone else's is not the controller's business.
	d = f.deployment("llama")
	d.Annotations = map[string]string{"team": "search"}
	if _, err := f.kube.AppsV1().Deployments(testNS).Update(f.ctx, d, metav1.UpdateOptions{FieldManager: "kubectl-annotate"}); err != nil {
		t.Fatal(err)
	}
	f.refresh()
	if _, writes := f.sync("llama"); len(writes) != 0 {
		t.Errorf("an unowned annotation made the sync write %v", writes)
	}
	// A spec change is applied without a Reverted event.
	f.update("llama", func(s *v1alpha1.InferServer) { s.Spec.Replicas = ptr.To[int32](2) })
	f.sync("llama")
	if ev := f.events(); has(ev, "Reverted") || f.deployment("llama").Annotations["team"] != "search" {
		t.Errorf("events %v, annotations %v", ev, f.deployment("llama").Annotations)
	}
}

func TestChildNotOwnedIsRefused(t *testing.T) {
	foreign := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "llama", Namespace: testNS,
		Labels: map[string]string{v1alpha1.LabelServer: "llama"}}}
	f := newFixture(t, newServer("llama", nil), foreign)
	writes, err := f.syncErr("llama")
	if err == nil || !strings.Contains(err.Error(), "service llama exists and is not owned by this InferServer") {
		t.Errorf("error %v", err)
	}
	if has(writes, "patch services") {
		t.Errorf("the foreign service was written: %v", writes)
	}
	if ev := f.events(); !has(ev, "FailedCreate") {
		t.Errorf("events %v", ev)
	}
	d := condition(f.server("llama"), v1alpha1.ConditionDegraded)
	if d == nil || d.Status != metav1.ConditionTrue || d.Reason != inferstatus.ReasonReconcileError {
		t.Errorf("Degraded %+v", d)
	}
}

func TestDeletionCleansUp(t *testing.T) {
	f := newFixture(t, crossNodeServer("llama", 1, nil))
	f.sync("llama")
	if len(f.pods()) != 2 {
		t.Fatalf("pods %v", f.pods())
	}
	s := f.server("llama")
	s.DeletionTimestamp = ptr.To(metav1.NewTime(testNow))
	if _, err := f.infer.InferV1alpha1().InferServers(testNS).Update(f.ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.refresh()
	f.events()
	requeue, writes := f.sync("llama")
	for _, want := range []string{"delete pods llama-0-0", "delete pods llama-0-1", "delete services llama",
		"delete configmaps rings-config-llama-0", "delete controllerrevisions llama-"} {
		if !has(writes, want) {
			t.Errorf("no %q in %v", want, writes)
		}
	}
	// One pass: the finalizer goes once every deletion is accepted.
	if !has(writes, "update inferservers llama") || requeue != 0 {
		t.Errorf("the finalizer stayed after the children were deleted: %v, requeue %v", writes, requeue)
	}
	if fin := f.server("llama").Finalizers; containsString(fin, v1alpha1.FinalizerCleanup) {
		t.Errorf("finalizers %v", fin)
	}
	if ev := f.events(); !has(ev, "DeletingChildren") {
		t.Errorf("events %v", ev)
	}
}

// A deletion the API refuses keeps the finalizer, and the sync fails (to
// be retried).
func TestDeletionKeepsTheFinalizerOnAFailure(t *testing.T) {
	f := newFixture(t, newServer("llama", nil))
	f.sync("llama")
	s := f.server("llama")
	s.DeletionTimestamp = ptr.To(metav1.NewTime(testNow))
	if _, err := f.infer.InferV1alpha1().InferServers(testNS).Update(f.ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.refresh()
	f.kube.PrependReactor("delete", "services", func(core.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewInternalError(errors.New("etcd is down"))
	})
	writes, err := f.syncErr("llama")
	if err == nil || !strings.Contains(err.Error(), "delete service llama") {
		t.Errorf("sync error %v", err)
	}
	if has(writes, "update inferservers llama") || !containsString(f.server("llama").Finalizers, v1alpha1.FinalizerCleanup) {
		t.Errorf("the finalizer went although a deletion failed: %v", writes)
	}
}

// In a namespace being deleted the namespace controller removes the
// children: the finalizer goes at once, with no deletion of them.
func TestDeletionInATerminatingNamespace(t *testing.T) {
	// The finalizer as the API server sets it at create.
	server := newServer("llama", nil)
	server.Finalizers = []string{v1alpha1.FinalizerCleanup}
	f := newFixture(t, server, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testNS,
		DeletionTimestamp: ptr.To(metav1.NewTime(testNow)), Finalizers: []string{"kubernetes"}}})
	s := f.server("llama")
	s.DeletionTimestamp = ptr.To(metav1.NewTime(testNow))
	if _, err := f.infer.InferV1alpha1().InferServers(testNS).Update(f.ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.refresh()
	_, writes := f.sync("llama")
	if len(writes) != 1 || writes[0] != "update inferservers llama" {
		t.Errorf("writes %v, want only the finalizer's removal", writes)
	}
}

// A server not yet deleted in a namespace being deleted is left alone:
// its children are not put back as the namespace controller deletes them.
func TestNoWritesInATerminatingNamespace(t *testing.T) {
	f := newFixture(t, newServer("llama", nil), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testNS,
		DeletionTimestamp: ptr.To(metav1.NewTime(testNow)), Finalizers: []string{"kubernetes"}}})
	if _, writes := f.sync("llama"); len(writes) != 0 {
		t.Errorf("writes %v in a terminating namespace, want none", writes)
	}
}

func TestDeletedServerIsForgotten(t *testing.T) {
	f := newFixture(t)
	f.c.track.setRecreating(testNS+"/gone", "gone-0", "why")
	if _, writes := f.sync("gone"); len(writes) != 0 {
		t.Errorf("writes %v", writes)
	}
	if _, ok := f.c.track.recreatingWhy(testNS+"/gone", "gone-0"); ok {
		t.Error("a deleted server is remembered")
	}
}

func TestCrossNodeCreatesInstances(t *testing.T) {
	f := newFixture(t, crossNodeServer("llama", 2, nil))
	_, writes := f.sync("llama")
	for _, want := range []string{"create configmaps rings-config-llama-0", "create configmaps rings-config-llama-1",
		"create pods llama-0-0", "create pods llama-0-1", "create pods llama-1-0", "create pods llama-1-1"} {
		if !has(writes, want) {
			t.Errorf("no %q in %v", want, writes)
		}
	}
	if has(writes, "deployments") {
		t.Errorf("a cross-node server got a deployment: %v", writes)
	}
	pods := f.pods()
	if len(pods) != 4 {
		t.Fatalf("%d pods", len(pods))
	}
	for _, p := range pods {
		rank := p.Name[len(p.Name)-1:]
		instance := strings.TrimSuffix(p.Name, "-"+rank)
		terms := p.Spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution
		if p.Labels[v1alpha1.LabelRank] != rank || p.Labels[v1alpha1.LabelInstance] != instance ||
			(p.Labels[v1alpha1.LabelMaster] == "true") != (rank == "0") || p.Spec.RestartPolicy != corev1.RestartPolicyNever ||
			len(terms) != 1 || terms[0].LabelSelector.MatchLabels[v1alpha1.LabelInstance] != instance ||
			metav1.GetControllerOf(&p) == nil {
			t.Errorf("pod %s: labels %v, spec %+v", p.Name, p.Labels, p.Spec)
		}
	}
	rt, err := parseRanktable(f.configMap("rings-config-llama-0"))
	if err != nil || rt.Status != ascend.RanktableInitializing {
		t.Errorf("ranktable %+v: %v", rt, err)
	}
	s := f.server("llama")
	if len(s.Status.Instances) != 2 || s.Status.Instances[0].Name != "llama-0" || s.Status.Instances[0].Message != "waiting for the ranktable" ||
		s.Status.Instances[0].Ranktable != ascend.RanktableInitializing {
		t.Errorf("instances %+v", s.Status.Instances)
	}
	if ev := f.events(); count(ev, "InstanceCreated") != 2 {
		t.Errorf("events %v", ev)
	}
	// Nothing changed: nothing written.
	if _, writes := f.sync("llama"); len(writes) != 0 {
		t.Errorf("a second sync wrote %v", writes)
	}
}

// readyInstances brings every pod up, with IPs and NPUs.
func (f *fixture) readyInstances() {
	for _, p := range f.pods() {
		f.editPod(p.Name, runPod)
	}
}

func TestRanktableCompletedFromPods(t *testing.T) {
	f := newFixture(t, crossNodeServer("llama", 1, nil))
	f.sync("llama")
	f.events()
	f.readyInstances()
	_, writes := f.sync("llama")
	if !has(writes, "update configmaps rings-config-llama-0") {
		t.Fatalf("writes %v", writes)
	}
	cm := f.configMap("rings-config-llama-0")
	rt, err := parseRanktable(cm)
	if err != nil || rt.Status != ascend.RanktableCompleted || rt.ServerCount != "2" || len(rt.ServerList) != 2 ||
		len(rt.ServerList[1].Device) != 8 || rt.ServerList[1].Device[0].RankID != "8" || rt.ServerList[0].Device[0].DeviceIP == "" {
		t.Errorf("ranktable %+v: %v", rt, err)
	}
	pods := f.pods()
	if cm.Annotations[annotationRanktablePods] != string(pods[0].UID)+","+string(pods[1].UID) {
		t.Errorf("ranktable pods %q", cm.Annotations[annotationRanktablePods])
	}
	if ev := f.events(); !has(ev, "RanktableCompleted Ranktable of instance llama-0 completed: 2 servers") {
		t.Errorf("events %v", ev)
	}
	s := f.server("llama")
	st := s.Status
	if st.Replicas != 1 || st.ReadyReplicas != 1 || st.UpdatedReplicas != 1 || st.AvailableReplicas != 1 || st.UnavailableReplicas != 0 ||
		st.CurrentRevision != st.UpdateRevision || len(st.Instances) != 1 || st.Instances[0].Ranktable != ascend.RanktableCompleted ||
		len(st.Instances[0].Pods) != 2 || !st.Instances[0].Pods[1].Ready || st.Instances[0].Pods[0].PodIP == "" {
		t.Errorf("status %+v", st)
	}
	if a := condition(s, v1alpha1.ConditionAvailable); a == nil || a.Status != metav1.ConditionTrue {
		t.Errorf("Available %+v", a)
	}
	if p := condition(s, v1alpha1.ConditionProgressing); p == nil || p.Reason != inferstatus.ReasonRolloutComplete {
		t.Errorf("Progressing %+v", p)
	}
	// Written for these pods: left alone.
	if _, writes := f.sync("llama"); len(writes) != 0 {
		t.Errorf("writes %v", writes)
	}
}

func TestRanktableLeftToTheAscendOperator(t *testing.T) {
	f := newFixture(t, crossNodeServer("llama", 1, nil))
	f.c.fill = false
	f.sync("llama")
	f.readyInstances()
	if _, writes := f.sync("llama"); has(writes, "configmaps") {
		t.Errorf("writes %v", writes)
	}
}

func TestBrokenInstanceRecreated(t *testing.T) {
	f := newFixture(t, crossNodeServer("llama", 2, nil))
	f.sync("llama")
	f.readyInstances()
	f.sync("llama")
	f.events()
	f.editPod("llama-1-1", func(p *corev1.Pod) {
		p.Status.Phase = corev1.PodFailed
		p.Status.ContainerStatuses[0].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Error", ExitCode: 3}}
	})
	_, writes := f.sync("llama")
	for _, want := range []string{"delete pods llama-1-0", "delete pods llama-1-1", "delete configmaps rings-config-llama-1"} {
		if !has(writes, want) {
			t.Errorf("no %q in %v", want, writes)
		}
	}
	if has(writes, "llama-0-") || has(writes, "create pods") {
		t.Errorf("writes %v", writes)
	}
	if ev := f.events(); !has(ev, "InstanceFailed Recreating instance llama-1: pod llama-1-1 (rank 1) failed: Error, exit code 3") {
		t.Errorf("events %v", ev)
	}
	s := f.server("llama")
	var inst *v1alpha1.InstanceStatus
	for i := range s.Status.Instances {
		if s.Status.Instances[i].Name == "llama-1" {
			inst = &s.Status.Instances[i]
		}
	}
	if inst == nil || inst.Recreations != 1 || !strings.HasPrefix(inst.Message, "recreating: pod llama-1-1 (rank 1) failed") {
		t.Fatalf("instances %+v", s.Status.Instances)
	}
	if d := condition(s, v1alpha1.ConditionDegraded); d == nil || d.Reason != inferstatus.ReasonInstanceRecreating {
		t.Errorf("Degraded %+v", d)
	}

	// The fake deletes the pods at once: the instance comes back under its name.
	_, writes = f.sync("llama")
	if !has(writes, "create pods llama-1-0") || !has(writes, "create pods llama-1-1") || !has(writes, "create configmaps rings-config-llama-1") {
		t.Errorf("writes %v", writes)
	}
	s = f.server("llama")
	if inst := s.Status.Instances[1]; inst.Name != "llama-1" || inst.Recreations != 1 || !strings.HasPrefix(inst.Message, "recreating: ") {
		t.Errorf("instance %+v", inst)
	}
	f.readyInstances()
	f.sync("llama")
	s = f.server("llama")
	if inst := s.Status.Instances[1]; inst.Recreations != 1 || inst.Message != "" || !inst.Ready {
		t.Errorf("instance %+v", inst)
	}
	if d := condition(s, v1alpha1.ConditionDegraded); d == nil || d.Status != metav1.ConditionFalse {
		t.Errorf("Degraded %+v", d)
	}
}

// TestMissingPodBreaksInstance: a pod deleted by hand (gone from the cache)
// breaks its running instance; a pod the controller just created does not.
func TestMissingPodBreaksInstance(t *testing.T) {
	f := newFixture(t, crossNodeServer("llama", 1, nil))
	f.sync("llama")
	f.readyInstances()
	f.sync("llama")
	f.events()
	f.deletePod("llama-0-1")
	_, writes := f.sync("llama")
	if !has(writes, "delete pods llama-0-0") {
		t.Errorf("writes %v", writes)
	}
	if ev := f.events(); !has(ev, "pod llama-0-1 (rank 1) is gone") {
		t.Errorf("events %v", ev)
	}
}

// TestInstanceCompleted: a rank whose creation failed is created on the
// next sync.
func TestInstanceCompleted(t *testing.T) {
	f := newFixture(t, crossNodeServer("llama", 1, nil))
	f.kube.PrependReactor("create", "pods", func(a core.Action) (bool, runtime.Object, error) {
		if a.(core.CreateAction).GetObject().(*corev1.Pod).Name == "llama-0-1" {
			return true, nil, fmt.Errorf("quota exceeded")
		}
		return false, nil, nil
	})
	if _, err := f.syncErr("llama"); err == nil || !strings.Contains(err.Error(), "create pod llama-0-1") {
		t.Fatalf("error %v", err)
	}
	f.kube.ReactionChain = f.kube.ReactionChain[1:]
	_, writes := f.sync("llama")
	if len(writes) < 1 || !has(writes, "create pods llama-0-1") || has(writes, "create pods llama-0-0") {
		t.Errorf("writes %v", writes)
	}
}

func TestCrossNodeRollout(t *testing.T) {
	f := newFixture(t, crossNodeServer("llama", 2, func(s *v1alpha1.InferServer) {
		s.Spec.Strategy.RollingUpdate = &v1alpha1.RollingUpdateInferServer{
			MaxSurge: ptr.To(intstr.FromInt32(0)), MaxUnavailable: ptr.To(intstr.FromInt32(1))}
	}))
	f.sync("llama")
	f.readyInstances()
	f.sync("llama")
	first := f.server("llama").Status.UpdateRevision
	f.events()
	f.update("llama", func(s *v1alpha1.InferServer) { s.Spec.Image = "mindie:v2" })
	_, writes := f.sync("llama")
	// maxSurge 0, maxUnavailable 1: instance 1 goes first, and comes back
	// once its pods are gone.
	if !has(writes, "delete pods llama-1-0") || has(writes, "llama-0-") || has(writes, "create pods") {
		t.Fatalf("writes %v", writes)
	}
	s := f.server("llama")
	if p := condition(s, v1alpha1.ConditionProgressing); s.Status.UpdateRevision == first || p.Reason != inferstatus.ReasonRolloutInProgress {
		t.Errorf("status %+v", s.Status)
	}
	for i := 0; i < 10 && f.server("llama").Status.UpdatedReplicas != 2; i++ {
		f.sync("llama")
		f.readyInstances()
	}
	f.sync("llama")
	s = f.server("llama")
	if s.Status.UpdatedReplicas != 2 || s.Status.ReadyReplicas != 2 || s.Status.CurrentRevision != s.Status.UpdateRevision {
		t.Fatalf("status %+v", s.Status)
	}
	for _, p := range f.pods() {
		if p.Spec.Containers[0].Image != "mindie:v2" {
			t.Errorf("pod %s runs %s", p.Name, p.Spec.Containers[0].Image)
		}
	}
	if ev := f.events(); !has(ev, "RolloutComplete") || !has(ev, "InstanceDeleted") {
		t.Errorf("events %v", ev)
	}
}

func TestRecreateStrategy(t *testing.T) {
	f := newFixture(t, crossNodeServer("llama", 2, func(s *v1alpha1.InferServer) {
		s.Spec.Strategy = v1alpha1.InferServerStrategy{Type: v1alpha1.RecreateInferServerStrategyType}
	}))
	f.sync("llama")
	f.readyInstances()
	f.sync("llama")
	f.update("llama", func(s *v1alpha1.InferServer) { s.Spec.Image = "mindie:v2" })
	// Every old pod goes at once, terminating for a while.
	f.kube.PrependReactor("delete", "pods", func(a core.Action) (bool, runtime.Object, error) {
		name := a.(core.DeleteAction).GetName()
		p, err := f.kube.Tracker().Get(corev1.SchemeGroupVersion.WithResource("pods"), testNS, name)
		if err != nil {
			return true, nil, err
		}
		pod := p.(*corev1.Pod)
		pod.DeletionTimestamp = ptr.To(metav1.NewTime(testNow))
		return true, nil, f.kube.Tracker().Update(corev1.SchemeGroupVersion.WithResource("pods"), pod, testNS)
	})
	_, writes := f.sync("llama")
	if count(writes, "delete pods") != 4 || has(writes, "create pods") {
		t.Fatalf("writes %v", writes)
	}
	requeue, writes := f.sync("llama")
	if has(writes, "create pods") || requeue == 0 {
		t.Errorf("created while old pods terminate: %v, requeue %v", writes, requeue)
	}
	f.kube.ReactionChain = f.kube.ReactionChain[1:]
	for _, p := range f.pods() {
		if err := f.kube.Tracker().Delete(corev1.SchemeGroupVersion.WithResource("pods"), testNS, p.Name); err != nil {
			t.Fatal(err)
		}
	}
	f.refresh()
	_, writes = f.sync("llama")
	if count(writes, "create pods") != 4 {
		t.Errorf("writes %v", writes)
	}
	for _, p := range f.pods() {
		if p.Spec.Containers[0].Image != "mindie:v2" {
			t.Errorf("pod %s runs %s", p.Name, p.Spec.Containers[0].Image)
		}
	}
}

func TestPausedScalesOnly(t *testing.T) {
	f := newFixture(t, crossNodeServer("llama", 1, nil))
	f.sync("llama")
	f.readyInstances()
	f.sync("llama")
	first := f.server("llama").Status.UpdateRevision
	f.update("llama", func(s *v1alpha1.InferServer) {
		s.Spec.Paused = true
		s.Spec.Image = "mindie:paused"
	})
	_, writes := f.sync("llama")
	if has(writes, "pods") || !has(writes, "create controllerrevisions") {
		t.Errorf("paused: %v", writes)
	}
	s := f.server("llama")
	if p := condition(s, v1alpha1.ConditionProgressing); p == nil || p.Reason != inferstatus.ReasonRolloutPaused || s.Status.UpdatedReplicas != 0 {
		t.Errorf("status %+v", s.Status)
	}
	// Scaling while paused creates instances of the revision running.
	f.update("llama", func(s *v1alpha1.InferServer) { s.Spec.Replicas = ptr.To[int32](2) })
	_, writes = f.sync("llama")
	if !has(writes, "create pods llama-1-0") {
		t.Fatalf("writes %v", writes)
	}
	for _, p := range f.pods() {
		if p.Labels[v1alpha1.LabelRevision] != first || p.Spec.Containers[0].Image != v1alpha1.DefaultImage {
			t.Errorf("pod %s of revision %s runs %s", p.Name, p.Labels[v1alpha1.LabelRevision], p.Spec.Containers[0].Image)
		}
	}
}

func TestSingleNodePausedAndRecreate(t *testing.T) {
	f := newFixture(t, newServer("llama", func(s *v1alpha1.InferServer) {
		s.Spec.Paused = true
		s.Spec.Strategy = v1alpha1.InferServerStrategy{Type: v1alpha1.RecreateInferServerStrategyType}
	}))
	f.sync("llama")
	d := f.deployment("llama")
	if !d.Spec.Paused || d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType || d.Spec.Strategy.RollingUpdate != nil {
		t.Errorf("deployment %+v", d.Spec)
	}
}

// deploymentPod is a ready pod of the server's Deployment at revision rev.
func (f *fixture) deploymentPod(name, rev string) {
	f.t.Helper()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS,
		Labels:          map[string]string{v1alpha1.LabelServer: "llama", v1alpha1.LabelRevision: rev},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "llama-" + rev, UID: "rs", Controller: ptr.To(true)}}}}
	runPod(p)
	if _, err := f.kube.CoreV1().Pods(testNS).Create(f.ctx, p, metav1.CreateOptions{}); err != nil {
		f.t.Fatal(err)
	}
	f.refresh()
}

func TestRevisionsRenumberedAndPruned(t *testing.T) {
	f := newFixture(t, newServer("llama", func(s *v1alpha1.InferServer) {
		s.Spec.RevisionHistoryLimit = ptr.To[int32](1)
		s.Annotations = map[string]string{v1alpha1.AnnotationChangeCause: "first"}
	}))
	f.sync("llama")
	image := func(img, cause string) func(*v1alpha1.InferServer) {
		return func(s *v1alpha1.InferServer) {
			s.Spec.Image = img
			s.Annotations[v1alpha1.AnnotationChangeCause] = cause
		}
	}
	f.update("llama", image("mindie:v2", "second"))
	f.sync("llama")
	f.update("llama", image("mindie:v3", "third"))
	f.sync("llama")
	revs := f.revisions()
	if len(revs) != 3 || revs[2].Revision != 3 || revs[2].Annotations[v1alpha1.AnnotationChangeCause] != "third" {
		t.Fatalf("revisions %+v", revs)
	}
	first := revs[0].Name
	// The first revision is named by the InstanceCreated event; those of
	// the updates have events of their own.
	if ev := f.events(); count(ev, "RevisionCreated") != 2 || !has(ev, "Created revision 2 ") || !has(ev, "Created revision 3 ") || !has(ev, "(revision "+first+")") {
		t.Errorf("events %v", ev)
	}

	// Undo to the first template: its revision is renumbered.
	spec, err := revision.Decode(&revs[0])
	if err != nil {
		t.Fatal(err)
	}
	f.update("llama", func(s *v1alpha1.InferServer) {
		revision.Restore(&s.Spec, spec)
		s.Annotations[v1alpha1.AnnotationChangeCause] = "undo"
	})
	_, writes := f.sync("llama")
	if !has(writes, "update controllerrevisions "+first) || has(writes, "create controllerrevisions") {
		t.Errorf("writes %v", writes)
	}
	revs = f.revisions()
	if last := revs[len(revs)-1]; last.Name != first || last.Revision != 4 || last.Annotations[v1alpha1.AnnotationChangeCause] != "undo" {
		t.Errorf("revisions %+v", revs)
	}
	if ev := f.events(); !has(ev, "is revision 4 again") {
		t.Errorf("events %v", ev)
	}

	// The rollout completes: old revisions beyond the limit go, the oldest first.
	f.deploymentPod("llama-a", first)
	_, writes = f.sync("llama")
	if count(writes, "delete controllerrevisions") != 1 {
		t.Errorf("writes %v", writes)
	}
	revs = f.revisions()
	if len(revs) != 2 || revs[1].Name != first || revs[0].Annotations[v1alpha1.AnnotationChangeCause] != "third" {
		t.Errorf("revisions after pruning %+v", revs)
	}
	s := f.server("llama")
	if s.Status.ReadyReplicas != 1 || s.Status.CurrentRevision != first || s.Status.Instances[0].Name != "llama-a" {
		t.Errorf("status %+v", s.Status)
	}
}

func TestFinalizerAdded(t *testing.T) {
	f := newFixture(t, newServer("llama", func(s *v1alpha1.InferServer) { s.Finalizers = []string{"other"} }))
	f.sync("llama")
	if fin := f.server("llama").Finalizers; len(fin) != 2 || fin[1] != v1alpha1.FinalizerCleanup {
		t.Errorf("finalizers %v", fin)
	}
}

func TestRunSyncsThroughInformers(t *testing.T) {
	f := newFixture(t, newServer("llama", nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.kubeInf.Start(ctx.Done())
	f.routeInf.Start(ctx.Done())
	f.faultInf.Start(ctx.Done())
	f.leaseInf.Start(ctx.Done())
	f.nsInf.Start(ctx.Done())
	f.inferInf.Start(ctx.Done())
	done := make(chan error)
	go func() { done <- f.c.Run(ctx, 1) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := f.kube.AppsV1().Deployments(testNS).Get(ctx, "llama", metav1.GetOptions{}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no deployment made by the running controller")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
}

// FirstChildren are the objects a first sync writes: the same revision,
// and the Deployment and Service the controller applies.
func TestFirstChildrenAreWhatTheFirstSyncWrites(t *testing.T) {
	f := newFixture(t, newServer("bench", func(s *v1alpha1.InferServer) { s.Spec.Service.Type = corev1.ServiceTypeClusterIP }))
	f.sync("bench")
	rev, dep, svc, err := FirstChildren(f.server("bench"))
	if err != nil {
		t.Fatal(err)
	}
	revs := f.revisions()
	if len(revs) != 1 || revs[0].Name != rev.Name || !bytes.Equal(revs[0].Data.Raw, rev.Data.Raw) {
		t.Errorf("revision %s, the sync created %+v", rev.Name, revs)
	}
	d := f.deployment("bench")
	if want, err := appsv1ac.ExtractDeployment(d, FieldManager); err != nil || !equality.Semantic.DeepEqual(want, dep) {
		t.Errorf("the Deployment applied differs from FirstChildren's (%v):\n%s", err, cmp.Diff(want, dep))
	}
	live, err := f.kube.CoreV1().Services(testNS).Get(f.ctx, "bench", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want, err := corev1ac.ExtractService(live, FieldManager); err != nil || !equality.Semantic.DeepEqual(want, svc) {
		t.Errorf("the Service applied differs from FirstChildren's (%v):\n%s", err, cmp.Diff(want, svc))
	}
}

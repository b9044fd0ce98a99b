package inferserver_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/generic"
	genericregistrytest "k8s.io/apiserver/pkg/registry/generic/testing"
	"k8s.io/apiserver/pkg/registry/rest"
	etcd3testing "k8s.io/apiserver/pkg/storage/etcd3/testing"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer"
	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/apiserver"
	"mindie.io/deployer/pkg/registry/infer/inferserver"
)

// testNamespace is the namespace the generic registry tester works in.
const testNamespace = "test"

// newStorage builds the inferservers stores on a fresh embedded etcd that
// lives as long as the test. Objects are stored as v1alpha1, as the server does.
func newStorage(t *testing.T) inferserver.Storage {
	t.Helper()
	_, config := etcd3testing.NewUnsecuredEtcd3TestClientServer(t)
	config.Codec = apiserver.StorageCodec(v1alpha1.SchemeGroupVersion)
	config.EncodeVersioner = v1alpha1.SchemeGroupVersion
	opts := generic.RESTOptions{
		StorageConfig:           config.ForResource(infer.Resource("inferservers")),
		Decorator:               generic.UndecoratedStorage,
		ResourcePrefix:          "inferservers",
		DeleteCollectionWorkers: 1,
	}
	s, err := inferserver.NewStorage(apiserver.Scheme, opts, false)
	if err != nil {
		t.Fatalf("NewStorage: %v", err)
	}
	t.Cleanup(s.InferServer.DestroyFunc)
	return s
}

// newServer returns a defaulted internal InferServer in the test namespace.
// The mutations apply to the v1alpha1 object before defaulting, as a
// request body would.
func newServer(name string, mutate ...func(*v1alpha1.InferServer)) *infer.InferServer {
	in := &v1alpha1.InferServer{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNamespace}}
	for _, m := range mutate {
		m(in)
	}
	apiserver.Scheme.Default(in)
	out := &infer.InferServer{}
	if err := apiserver.Scheme.Convert(in, out, nil); err != nil {
		panic("convert v1alpha1 InferServer to internal: " + err.Error())
	}
	return out
}

func withReplicas(n int32) func(*v1alpha1.InferServer) {
	return func(s *v1alpha1.InferServer) { s.Spec.Replicas = ptr.To(n) }
}

func withNodesPerInstance(n int32) func(*v1alpha1.InferServer) {
	return func(s *v1alpha1.InferServer) { s.Spec.NodesPerInstance = ptr.To(n) }
}

func withScheduler(sched v1alpha1.SchedulerType) func(*v1alpha1.InferServer) {
	return func(s *v1alpha1.InferServer) { s.Spec.Scheduler = sched }
}

func withNPU(t v1alpha1.NPUType, count int32) func(*v1alpha1.InferServer) {
	return func(s *v1alpha1.InferServer) {
		s.Spec.Resources.NPU = v1alpha1.NPURequest{Type: t, Count: ptr.To(count)}
	}
}

func withLabels(l map[string]string) func(*v1alpha1.InferServer) {
	return func(s *v1alpha1.InferServer) { s.Labels = l }
}

func withStatus(st v1alpha1.InferServerStatus) func(*v1alpha1.InferServer) {
	return func(s *v1alpha1.InferServer) { s.Status = st }
}

func testContext() context.Context {
	return genericapirequest.WithNamespace(genericapirequest.NewContext(), testNamespace)
}

// create creates s through the registry, as a POST would.
func create(t *testing.T, store *inferserver.REST, s *infer.InferServer) *infer.InferServer {
	t.Helper()
	obj, err := store.Create(testContext(), s, rest.ValidateAllObjectFunc, &metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create %s: %v", s.Name, err)
	}
	return obj.(*infer.InferServer)
}

func get(t *testing.T, store *inferserver.REST, name string) *infer.InferServer {
	t.Helper()
	obj, err := store.Get(testContext(), name, &metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get %s: %v", name, err)
	}
	return obj.(*infer.InferServer)
}

// updater is the Update method shared by the main store and the status subresource.
type updater interface {
	Update(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, createValidation rest.ValidateObjectFunc, updateValidation rest.ValidateObjectUpdateFunc, forceAllowCreate bool, options *metav1.UpdateOptions) (runtime.Object, bool, error)
}

// update sends s as the new object, as a PUT would.
func update(u updater, s *infer.InferServer) (*infer.InferServer, error) {
	obj, _, err := u.Update(testContext(), s.Name, rest.DefaultUpdatedObjectInfo(s),
		rest.ValidateAllObjectFunc, rest.ValidateAllObjectUpdateFunc, false, &metav1.UpdateOptions{})
	if err != nil {
		return nil, err
	}
	return obj.(*infer.InferServer), nil
}

func updateScale(s *inferserver.ScaleREST, ctx context.Context, scale *autoscalingv1.Scale) (*autoscalingv1.Scale, error) {
	obj, _, err := s.Update(ctx, scale.Name, rest.DefaultUpdatedObjectInfo(scale),
		rest.ValidateAllObjectFunc, rest.ValidateAllObjectUpdateFunc, false, &metav1.UpdateOptions{})
	if err != nil {
		return nil, err
	}
	return obj.(*autoscalingv1.Scale), nil
}

// readyStatus is a status a controller could write for three instances.
func readyStatus() infer.InferServerStatus {
	return infer.InferServerStatus{
		ObservedGeneration: 1,
		Replicas:           3,
		UpdatedReplicas:    3,
		ReadyReplicas:      2,
		AvailableReplicas:  2,
		Selector:           inferserver.Selector("foo").String(),
		Conditions: []metav1.Condition{{
			Type: infer.ConditionAvailable, Status: metav1.ConditionTrue, Reason: "MinimumInstancesReady",
			LastTransitionTime: metav1.Now(),
		}},
		Model: &infer.ModelInfo{Models: []infer.ModelEntry{{ID: "llama3-8b"}}},
	}
}

// requireInvalid fails unless err is a 422 Invalid error whose message has every want.
func requireInvalid(t *testing.T, err error, want ...string) {
	t.Helper()
	if !apierrors.IsInvalid(err) {
		t.Fatalf("want an Invalid error, got %v", err)
	}
	var status apierrors.APIStatus
	if s, ok := err.(apierrors.APIStatus); ok {
		status = s
	}
	if status == nil || status.Status().Code != http.StatusUnprocessableEntity {
		t.Errorf("want HTTP status 422, got %#v", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

func TestCreate(t *testing.T) {
	storage := newStorage(t)
	test := genericregistrytest.New(t, storage.InferServer.Store)
	valid := newServer("")
	valid.ObjectMeta = metav1.ObjectMeta{}
	test.TestCreate(
		valid,
		newServer("zero-replicas", withReplicas(0)),
		newServer("too-many-replicas", withReplicas(257)),
		newServer("three-nodes", withNodesPerInstance(3)),
		newServer("cross-node-310p", withNodesPerInstance(2), withNPU(v1alpha1.NPUTypeAscend310P, 8)),
		newServer("bad-scheduler", withScheduler("kube-batch")),
		newServer("this-name-is-far-too-long-for-an-inferserver-name-x"),
	)
}

func TestCreateRejectsReplicasOutOfRange(t *testing.T) {
	storage := newStorage(t)
	for _, n := range []int32{0, 257} {
		_, err := storage.InferServer.Create(testContext(), newServer("foo", withReplicas(n)), rest.ValidateAllObjectFunc, &metav1.CreateOptions{})
		requireInvalid(t, err, "spec.replicas", "must be between 1 and 256")
	}
}

func TestUpdate(t *testing.T) {
	storage := newStorage(t)
	test := genericregistrytest.New(t, storage.InferServer.Store)
	test.TestUpdate(
		newServer("foo"),
		// valid: a new image and more instances
		func(obj runtime.Object) runtime.Object {
			s := obj.(*infer.InferServer)
			s.Spec.Image = "mindie:2.0"
			s.Spec.Replicas = ptr.To[int32](4)
			return s
		},
		// invalid: nodesPerInstance is immutable
		func(obj runtime.Object) runtime.Object {
			s := obj.(*infer.InferServer)
			s.Spec.NodesPerInstance = ptr.To[int32](2)
			return s
		},
		// invalid: replicas out of range
		func(obj runtime.Object) runtime.Object {
			s := obj.(*infer.InferServer)
			s.Spec.Replicas = ptr.To[int32](0)
			return s
		},
		// invalid: no image
		func(obj runtime.Object) runtime.Object {
			s := obj.(*infer.InferServer)
			s.Spec.Image = ""
			return s
		},
	)
}

func TestUpdateRejectsNodesPerInstanceChange(t *testing.T) {
	storage := newStorage(t)
	s := create(t, storage.InferServer, newServer("foo"))
	s.Spec.NodesPerInstance = ptr.To[int32](2)
	_, err := update(storage.InferServer, s)
	requireInvalid(t, err, "spec.nodesPerInstance", "cannot change nodes per instance")
}

func TestDelete(t *testing.T) {
	storage := newStorage(t)
	test := genericregistrytest.New(t, storage.InferServer.Store)
	test.TestDelete(newServer("foo"))
}

func TestGet(t *testing.T) {
	storage := newStorage(t)
	test := genericregistrytest.New(t, storage.InferServer.Store)
	test.TestGet(newServer("foo"))
}

func TestList(t *testing.T) {
	storage := newStorage(t)
	test := genericregistrytest.New(t, storage.InferServer.Store)
	test.TestList(newServer("foo"))
}

func TestWatch(t *testing.T) {
	storage := newStorage(t)
	test := genericregistrytest.New(t, storage.InferServer.Store)
	test.TestWatch(
		newServer("foo",
			withLabels(map[string]string{"app": "llm"}),
			withScheduler(v1alpha1.SchedulerVolcano),
			withNodesPerInstance(2)),
		// matching labels
		[]labels.Set{
			{},
			{"app": "llm"},
		},
		// not matching labels
		[]labels.Set{
			{"app": "chat"},
			{"foo": "bar"},
		},
		// matching fields
		[]fields.Set{
			{"metadata.name": "foo"},
			{"metadata.namespace": testNamespace},
			{v1alpha1.FieldSelectorScheduler: "volcano"},
			{v1alpha1.FieldSelectorNodesPerInstance: "2"},
			{v1alpha1.FieldSelectorNPUType: "Ascend910"},
			{"metadata.name": "foo", v1alpha1.FieldSelectorScheduler: "volcano", v1alpha1.FieldSelectorNodesPerInstance: "2"},
		},
		// not matching fields
		[]fields.Set{
			{"metadata.name": "bar"},
			{"name": "foo"},
			{v1alpha1.FieldSelectorScheduler: "default"},
			{v1alpha1.FieldSelectorNodesPerInstance: "1"},
			{v1alpha1.FieldSelectorNPUType: "Ascend310P"},
			{v1alpha1.FieldSelectorScheduler: "volcano", v1alpha1.FieldSelectorNodesPerInstance: "4"},
		},
	)
}

func TestListWithFieldSelector(t *testing.T) {
	storage := newStorage(t)
	create(t, storage.InferServer, newServer("plain"))
	create(t, storage.InferServer, newServer("batch", withScheduler(v1alpha1.SchedulerVolcano)))
	create(t, storage.InferServer, newServer("cross", withScheduler(v1alpha1.SchedulerVolcano), withNodesPerInstance(4)))
	create(t, storage.InferServer, newServer("small", withNPU(v1alpha1.NPUTypeAscend310P, 2)))

	for _, tc := range []struct {
		selector string
		want     []string
	}{
		{"spec.scheduler=volcano", []string{"batch", "cross"}},
		{"spec.scheduler!=volcano", []string{"plain", "small"}},
		{"spec.nodesPerInstance=4", []string{"cross"}},
		{"spec.nodesPerInstance=1,spec.scheduler=volcano", []string{"batch"}},
		{"spec.resources.npu.type=Ascend310P", []string{"small"}},
		{"metadata.name=plain", []string{"plain"}},
		{"spec.scheduler=default,spec.resources.npu.type=Ascend910", []string{"plain"}},
	} {
		t.Run(tc.selector, func(t *testing.T) {
			sel, err := fields.ParseSelector(tc.selector)
			if err != nil {
				t.Fatal(err)
			}
			obj, err := storage.InferServer.List(testContext(), &metainternalversion.ListOptions{FieldSelector: sel})
			if err != nil {
				t.Fatalf("list: %v", err)
			}
			var got []string
			for _, s := range obj.(*infer.InferServerList).Items {
				got = append(got, s.Name)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCreateResetsStatusAndGeneration(t *testing.T) {
	storage := newStorage(t)
	sent := newServer("foo", withStatus(v1alpha1.InferServerStatus{
		ObservedGeneration: 7, Replicas: 5, ReadyReplicas: 5, Selector: "app=other",
	}))
	sent.Generation = 9

	created := create(t, storage.InferServer, sent)
	for _, s := range []*infer.InferServer{created, get(t, storage.InferServer, "foo")} {
		if s.Generation != 1 {
			t.Errorf("generation = %d, want 1", s.Generation)
		}
		want := infer.InferServerStatus{Selector: "infer.mindie.io/server=foo"}
		if !apiequality.Semantic.DeepEqual(s.Status, want) {
			t.Errorf("status = %+v, want %+v", s.Status, want)
		}
	}
}

func TestCreateWithGenerateNameSelectsGeneratedName(t *testing.T) {
	storage := newStorage(t)
	s := newServer("")
	s.GenerateName = "llm-"
	created := create(t, storage.InferServer, s)
	if !strings.HasPrefix(created.Name, "llm-") || created.Name == "llm-" {
		t.Fatalf("name = %q, want a name generated from llm-", created.Name)
	}
	if want := v1alpha1.LabelServer + "=" + created.Name; created.Status.Selector != want {
		t.Errorf("status.selector = %q, want %q", created.Status.Selector, want)
	}
}

// setStatus writes st through the status subresource.
func setStatus(t *testing.T, storage inferserver.Storage, name string, st infer.InferServerStatus) *infer.InferServer {
	t.Helper()
	s := get(t, storage.InferServer, name)
	s.Status = st
	updated, err := update(storage.Status, s)
	if err != nil {
		t.Fatalf("update status of %s: %v", name, err)
	}
	return updated
}

func TestUpdateKeepsStatusAndBumpsGenerationOnSpecChange(t *testing.T) {
	storage := newStorage(t)
	create(t, storage.InferServer, newServer("foo", withReplicas(3)))
	status := setStatus(t, storage, "foo", readyStatus()).Status

	// A spec change bumps the generation; the status sent is ignored.
	s := get(t, storage.InferServer, "foo")
	s.Spec.Image = "mindie:2.0"
	s.Status = infer.InferServerStatus{Replicas: 42, Selector: "x=y"}
	updated, err := update(storage.InferServer, s)
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	stored := get(t, storage.InferServer, "foo")
	for _, got := range []*infer.InferServer{updated, stored} {
		if got.Generation != 2 {
			t.Errorf("generation after spec change = %d, want 2", got.Generation)
		}
		if got.Spec.Image != "mindie:2.0" {
			t.Errorf("spec.image = %q, want mindie:2.0", got.Spec.Image)
		}
		if !apiequality.Semantic.DeepEqual(got.Status, status) {
			t.Errorf("status changed by an update of the main resource:\ngot  %+v\nwant %+v", got.Status, status)
		}
	}

	// Metadata-only changes do not.
	stored.Labels = map[string]string{"team": "nlp"}
	stored.Annotations = map[string]string{"note": "x"}
	updated, err = update(storage.InferServer, stored)
	if err != nil {
		t.Fatalf("update labels: %v", err)
	}
	if updated.Generation != 2 {
		t.Errorf("generation after a label change = %d, want 2", updated.Generation)
	}
	if updated.Labels["team"] != "nlp" {
		t.Errorf("labels = %v, want team=nlp", updated.Labels)
	}

	// Neither does an update that sends the same spec back.
	updated, err = update(storage.InferServer, updated)
	if err != nil {
		t.Fatalf("no-op update: %v", err)
	}
	if updated.Generation != 2 {
		t.Errorf("generation after a no-op update = %d, want 2", updated.Generation)
	}
}

func TestStatusUpdate(t *testing.T) {
	storage := newStorage(t)
	created := create(t, storage.InferServer, newServer("foo", withReplicas(3), withLabels(map[string]string{"app": "llm"})))

	s := get(t, storage.InferServer, "foo")
	s.Status = readyStatus()
	s.Spec.Replicas = ptr.To[int32](7)
	s.Spec.Image = "mindie:2.0"
	s.Labels = map[string]string{"app": "hijacked"}
	updated, err := update(storage.Status, s)
	if err != nil {
		t.Fatalf("update status: %v", err)
	}

	stored := get(t, storage.InferServer, "foo")
	for _, got := range []*infer.InferServer{updated, stored} {
		if !apiequality.Semantic.DeepEqual(got.Spec, created.Spec) {
			t.Errorf("spec changed by a status update:\ngot  %+v\nwant %+v", got.Spec, created.Spec)
		}
		if got.Labels["app"] != "llm" || len(got.Labels) != 1 {
			t.Errorf("labels = %v, want app=llm", got.Labels)
		}
		if got.Generation != 1 {
			t.Errorf("generation = %d after a status update, want 1", got.Generation)
		}
		if got.Status.ReadyReplicas != 2 || got.Status.Replicas != 3 || got.Status.Model == nil || got.Status.Model.Models[0].ID != "llama3-8b" {
			t.Errorf("status not written: %+v", got.Status)
		}
	}
}

func TestStatusUpdateRejectsInvalidStatus(t *testing.T) {
	storage := newStorage(t)
	create(t, storage.InferServer, newServer("foo", withReplicas(3)))

	s := get(t, storage.InferServer, "foo")
	s.Status = infer.InferServerStatus{Replicas: 3, ReadyReplicas: 4}
	_, err := update(storage.Status, s)
	requireInvalid(t, err, "status.readyReplicas", "cannot be greater than status.replicas")

	if got := get(t, storage.InferServer, "foo"); got.Status.ReadyReplicas != 0 {
		t.Errorf("refused status was stored: %+v", got.Status)
	}
}

func TestStatusUpdateOfMissingServer(t *testing.T) {
	storage := newStorage(t)
	_, err := update(storage.Status, newServer("ghost"))
	if !apierrors.IsNotFound(err) {
		t.Errorf("want NotFound, got %v", err)
	}
}

func TestScaleGet(t *testing.T) {
	storage := newStorage(t)
	create(t, storage.InferServer, newServer("foo", withReplicas(3)))
	server := setStatus(t, storage, "foo", readyStatus())

	obj, err := storage.Scale.Get(testContext(), "foo", &metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get scale: %v", err)
	}
	got, ok := obj.(*autoscalingv1.Scale)
	if !ok {
		t.Fatalf("scale subresource returned %T, want *autoscalingv1.Scale", obj)
	}
	want := &autoscalingv1.Scale{
		ObjectMeta: metav1.ObjectMeta{
			Name:              "foo",
			Namespace:         testNamespace,
			UID:               server.UID,
			ResourceVersion:   server.ResourceVersion,
			CreationTimestamp: server.CreationTimestamp,
		},
		Spec:   autoscalingv1.ScaleSpec{Replicas: 3},
		Status: autoscalingv1.ScaleStatus{Replicas: 3, Selector: "infer.mindie.io/server=foo"},
	}
	if !apiequality.Semantic.DeepEqual(got, want) {
		t.Errorf("scale:\ngot  %+v\nwant %+v", got, want)
	}
	if gvk := storage.Scale.GroupVersionKind(v1alpha1.SchemeGroupVersion); gvk != autoscalingv1.SchemeGroupVersion.WithKind("Scale") {
		t.Errorf("scale kind = %v, want autoscaling/v1 Scale", gvk)
	}
	if _, err := storage.Scale.Get(testContext(), "ghost", &metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("scale of a missing InferServer: want NotFound, got %v", err)
	}
}

func TestScaleUpdate(t *testing.T) {
	storage := newStorage(t)
	create(t, storage.InferServer, newServer("foo", withReplicas(3)))
	status := setStatus(t, storage, "foo", readyStatus()).Status

	obj, err := storage.Scale.Get(testContext(), "foo", &metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get scale: %v", err)
	}
	before := obj.(*autoscalingv1.Scale)

	scale := before.DeepCopy()
	scale.Spec.Replicas = 5
	got, err := updateScale(storage.Scale, testContext(), scale)
	if err != nil {
		t.Fatalf("update scale: %v", err)
	}
	if got.Spec.Replicas != 5 {
		t.Errorf("returned scale has spec.replicas %d, want 5", got.Spec.Replicas)
	}
	if got.ResourceVersion == before.ResourceVersion {
		t.Errorf("returned scale kept the old resourceVersion %s", got.ResourceVersion)
	}
	s := get(t, storage.InferServer, "foo")
	if *s.Spec.Replicas != 5 {
		t.Errorf("spec.replicas = %d, want 5", *s.Spec.Replicas)
	}
	if s.Generation != 2 {
		t.Errorf("generation = %d, want 2", s.Generation)
	}
	if !apiequality.Semantic.DeepEqual(s.Status, status) {
		t.Errorf("status changed by a scale:\ngot  %+v\nwant %+v", s.Status, status)
	}

	// The Scale read before the update is stale now.
	stale := before.DeepCopy()
	stale.Spec.Replicas = 6
	if _, err := updateScale(storage.Scale, testContext(), stale); !apierrors.IsConflict(err) {
		t.Errorf("stale resourceVersion: want Conflict, got %v", err)
	}
	if s := get(t, storage.InferServer, "foo"); *s.Spec.Replicas != 5 {
		t.Errorf("spec.replicas = %d after a conflicting scale, want 5", *s.Spec.Replicas)
	}
}

func TestScaleUpdateRejectsReplicasOutOfRange(t *testing.T) {
	storage := newStorage(t)
	create(t, storage.InferServer, newServer("foo", withReplicas(3)))

	for _, n := range []int32{0, 257} {
		scale := &autoscalingv1.Scale{
			ObjectMeta: metav1.ObjectMeta{Name: "foo", Namespace: testNamespace},
			Spec:       autoscalingv1.ScaleSpec{Replicas: n},
		}
		_, err := updateScale(storage.Scale, testContext(), scale)
		requireInvalid(t, err, "spec.replicas", "must be between 1 and 256")
	}
	s := get(t, storage.InferServer, "foo")
	if *s.Spec.Replicas != 3 || s.Generation != 1 {
		t.Errorf("refused scale changed the InferServer: replicas %d, generation %d", *s.Spec.Replicas, s.Generation)
	}
}

func TestScaleUpdateOfMissingServer(t *testing.T) {
	storage := newStorage(t)
	// Even a Scale that would be refused is about an object that does not exist.
	for _, n := range []int32{2, 0} {
		scale := &autoscalingv1.Scale{
			ObjectMeta: metav1.ObjectMeta{Name: "ghost", Namespace: testNamespace},
			Spec:       autoscalingv1.ScaleSpec{Replicas: n},
		}
		if _, err := updateScale(storage.Scale, testContext(), scale); !apierrors.IsNotFound(err) {
			t.Errorf("replicas %d: want NotFound, got %v", n, err)
		}
	}
}

// TestScaleUpdateManagedFields checks that the owner of replicas set through
// the Scale is recorded on the InferServer against its own API version,
// whether or not the request carries request info.
func TestScaleUpdateManagedFields(t *testing.T) {
	for name, ctx := range map[string]context.Context{
		"no request info": testContext(),
		"request info": genericapirequest.WithRequestInfo(testContext(), &genericapirequest.RequestInfo{
			IsResourceRequest: true, Verb: "update", APIGroup: v1alpha1.GroupName, APIVersion: "v1alpha1",
			Resource: "inferservers", Subresource: "scale", Namespace: testNamespace, Name: "foo",
		}),
	} {
		t.Run(name, func(t *testing.T) {
			storage := newStorage(t)
			create(t, storage.InferServer, newServer("foo"))
			scale := &autoscalingv1.Scale{
				ObjectMeta: metav1.ObjectMeta{Name: "foo", Namespace: testNamespace, ManagedFields: []metav1.ManagedFieldsEntry{{
					Manager:    "autoscaler",
					Operation:  metav1.ManagedFieldsOperationUpdate,
					APIVersion: "autoscaling/v1",
					FieldsType: "FieldsV1",
					FieldsV1:   metav1.NewFieldsV1(`{"f:spec":{"f:replicas":{}}}`),
				}}},
				Spec: autoscalingv1.ScaleSpec{Replicas: 2},
			}
			if _, err := updateScale(storage.Scale, ctx, scale); err != nil {
				t.Fatalf("update scale: %v", err)
			}
			s := get(t, storage.InferServer, "foo")
			if len(s.ManagedFields) != 1 {
				t.Fatalf("managedFields = %+v, want one entry for the autoscaler", s.ManagedFields)
			}
			mf := s.ManagedFields[0]
			if mf.Manager != "autoscaler" || mf.APIVersion != v1alpha1.SchemeGroupVersion.String() ||
				mf.FieldsV1 == nil || mf.FieldsV1.GetRawString() != `{"f:spec":{"f:replicas":{}}}` {
				t.Errorf("managedFields entry = %+v (fields %s), want autoscaler owning spec.replicas in %s",
					mf, fieldsOf(mf), v1alpha1.SchemeGroupVersion)
			}
		})
	}
}

func fieldsOf(mf metav1.ManagedFieldsEntry) string {
	if mf.FieldsV1 == nil {
		return "<nil>"
	}
	return mf.FieldsV1.GetRawString()
}

func TestShortNamesAndCategories(t *testing.T) {
	storage := newStorage(t)
	if got := storage.InferServer.ShortNames(); strings.Join(got, ",") != "isvc" {
		t.Errorf("short names = %v, want [isvc]", got)
	}
	if got := storage.InferServer.Categories(); strings.Join(got, ",") != "all,mindie" {
		t.Errorf("categories = %v, want [all mindie]", got)
	}
}

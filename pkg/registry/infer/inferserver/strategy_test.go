package inferserver_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"mindie.io/deployer/apis/infer"
	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/apiserver"
	"mindie.io/deployer/pkg/registry/infer/inferserver"
)

func TestPrepareForCreate(t *testing.T) {
	s := newServer("foo", withStatus(v1alpha1.InferServerStatus{
		ObservedGeneration: 3, Replicas: 2, ReadyReplicas: 2, Selector: "app=other",
		Conditions: []metav1.Condition{{Type: infer.ConditionAvailable, Status: metav1.ConditionTrue}},
	}))
	s.Generation = 5

	inferserver.NewStrategy(apiserver.Scheme).PrepareForCreate(context.Background(), s)

	if s.Generation != 1 {
		t.Errorf("generation = %d, want 1", s.Generation)
	}
	want := infer.InferServerStatus{Selector: "infer.mindie.io/server=foo"}
	if !apiequality.Semantic.DeepEqual(s.Status, want) {
		t.Errorf("status = %+v, want %+v", s.Status, want)
	}
	if len(s.Finalizers) != 0 {
		t.Errorf("finalizers %v from a strategy without one", s.Finalizers)
	}
	// Where the controllers run, the cleanup finalizer comes with the
	// create, once.
	st := inferserver.NewStrategy(apiserver.Scheme)
	st.Finalizer = v1alpha1.FinalizerCleanup
	s.Finalizers = []string{"example.com/other"}
	st.PrepareForCreate(context.Background(), s)
	st.PrepareForCreate(context.Background(), s)
	if want := []string{"example.com/other", v1alpha1.FinalizerCleanup}; !slices.Equal(s.Finalizers, want) {
		t.Errorf("finalizers %v, want %v", s.Finalizers, want)
	}
}

func TestPrepareForUpdate(t *testing.T) {
	strategy := inferserver.NewStrategy(apiserver.Scheme)
	old := newServer("foo", withStatus(v1alpha1.InferServerStatus{Replicas: 1, ReadyReplicas: 1}))
	old.Generation = 4

	for _, tc := range []struct {
		name           string
		change         func(*infer.InferServer)
		wantGeneration int64
	}{
		{"spec change", func(s *infer.InferServer) { s.Spec.Replicas = ptr.To[int32](2) }, 5},
		{"label change", func(s *infer.InferServer) { s.Labels = map[string]string{"a": "b"} }, 4},
		{"annotation change", func(s *infer.InferServer) { s.Annotations = map[string]string{"a": "b"} }, 4},
		{"status change", func(s *infer.InferServer) { s.Status.Replicas = 9 }, 4},
		{"no change", func(*infer.InferServer) {}, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := old.DeepCopy()
			tc.change(s)
			strategy.PrepareForUpdate(context.Background(), s, old)
			if s.Generation != tc.wantGeneration {
				t.Errorf("generation = %d, want %d", s.Generation, tc.wantGeneration)
			}
			if !apiequality.Semantic.DeepEqual(s.Status, old.Status) {
				t.Errorf("status = %+v, want the old %+v", s.Status, old.Status)
			}
		})
	}
}

func TestStatusPrepareForUpdate(t *testing.T) {
	strategy := inferserver.NewStatusStrategy(inferserver.NewStrategy(apiserver.Scheme))
	old := newServer("foo", withLabels(map[string]string{"app": "llm"}))
	old.Generation = 2

	s := old.DeepCopy()
	s.Spec.Image = "mindie:2.0"
	s.Labels = nil
	s.Annotations = map[string]string{"note": "kept"}
	s.Status.Replicas = 1
	strategy.PrepareForUpdate(context.Background(), s, old)

	if !apiequality.Semantic.DeepEqual(s.Spec, old.Spec) {
		t.Errorf("spec changed: got image %q", s.Spec.Image)
	}
	if s.Labels["app"] != "llm" {
		t.Errorf("labels = %v, want the old ones", s.Labels)
	}
	if s.Annotations["note"] != "kept" {
		t.Errorf("annotations = %v, want the new ones", s.Annotations)
	}
	if s.Status.Replicas != 1 {
		t.Errorf("status.replicas = %d, want 1", s.Status.Replicas)
	}
	if s.Generation != 2 {
		t.Errorf("generation = %d, want 2", s.Generation)
	}
}

func TestStrategyScope(t *testing.T) {
	s := inferserver.NewStrategy(apiserver.Scheme)
	if !s.NamespaceScoped() {
		t.Error("InferServers must be namespaced")
	}
	if s.AllowCreateOnUpdate() {
		t.Error("an update must not create an InferServer")
	}
	if !s.AllowUnconditionalUpdate() {
		t.Error("updates without a resourceVersion must be allowed")
	}
}

func TestGetResetFields(t *testing.T) {
	version := fieldpath.APIVersion(v1alpha1.SchemeGroupVersion.String())
	status := fieldpath.MakePathOrDie("status")
	spec := fieldpath.MakePathOrDie("spec")

	main := inferserver.NewStrategy(apiserver.Scheme)
	mainFields := main.GetResetFields()[version]
	if mainFields == nil || !mainFields.Has(status) {
		t.Errorf("main strategy reset fields %v do not contain status", mainFields)
	} else if mainFields.Has(spec) {
		t.Errorf("main strategy reset fields %v contain spec", mainFields)
	}

	statusFields := inferserver.NewStatusStrategy(main).GetResetFields()[version]
	if statusFields == nil || !statusFields.Has(spec) {
		t.Errorf("status strategy reset fields %v do not contain spec", statusFields)
	} else if statusFields.Has(status) {
		t.Errorf("status strategy reset fields %v contain status", statusFields)
	}
}

func TestSubresourceResetFields(t *testing.T) {
	storage := newStorage(t)
	version := fieldpath.APIVersion(v1alpha1.SchemeGroupVersion.String())
	if f := storage.InferServer.GetResetFields()[version]; f == nil || !f.Has(fieldpath.MakePathOrDie("status")) {
		t.Errorf("inferservers reset fields %v do not contain status", f)
	}
	if f := storage.Status.GetResetFields()[version]; f == nil || !f.Has(fieldpath.MakePathOrDie("spec")) {
		t.Errorf("inferservers/status reset fields %v do not contain spec", f)
	}
}

func TestSelectableFields(t *testing.T) {
	s := newServer("foo",
		withScheduler(v1alpha1.SchedulerVolcano),
		withNodesPerInstance(2),
		withLabels(map[string]string{"app": "llm"}))

	want := fields.Set{
		"metadata.name":                        "foo",
		"metadata.namespace":                   testNamespace,
		v1alpha1.FieldSelectorScheduler:        "volcano",
		v1alpha1.FieldSelectorNPUType:          "Ascend910",
		v1alpha1.FieldSelectorNodesPerInstance: "2",
	}
	if got := inferserver.SelectableFields(s); !apiequality.Semantic.DeepEqual(got, want) {
		t.Errorf("SelectableFields = %v, want %v", got, want)
	}

	gotLabels, gotFields, err := inferserver.GetAttrs(s)
	if err != nil {
		t.Fatalf("GetAttrs: %v", err)
	}
	if !apiequality.Semantic.DeepEqual(gotLabels, labels.Set{"app": "llm"}) || !apiequality.Semantic.DeepEqual(gotFields, want) {
		t.Errorf("GetAttrs = %v, %v", gotLabels, gotFields)
	}
	if _, _, err := inferserver.GetAttrs(&infer.InferServerList{}); err == nil {
		t.Error("GetAttrs accepted an InferServerList")
	}
}

func TestSelectableFieldsWithoutNodesPerInstance(t *testing.T) {
	s := &infer.InferServer{ObjectMeta: metav1.ObjectMeta{Name: "foo", Namespace: testNamespace}}
	if got := inferserver.SelectableFields(s)[v1alpha1.FieldSelectorNodesPerInstance]; got != "" {
		t.Errorf("spec.nodesPerInstance = %q for an unset field, want empty", got)
	}
}

func TestMatchInferServer(t *testing.T) {
	s := newServer("foo", withScheduler(v1alpha1.SchedulerVolcano), withLabels(map[string]string{"app": "llm"}))
	for _, tc := range []struct {
		label, field string
		want         bool
	}{
		{"", "", true},
		{"app=llm", "spec.scheduler=volcano", true},
		{"", "spec.scheduler=default", false},
		{"app=chat", "", false},
		{"", "spec.nodesPerInstance=1,spec.resources.npu.type=Ascend910", true},
		{"", "spec.nodesPerInstance=2", false},
	} {
		label, err := labels.Parse(tc.label)
		if err != nil {
			t.Fatal(err)
		}
		field, err := fields.ParseSelector(tc.field)
		if err != nil {
			t.Fatal(err)
		}
		predicate := inferserver.MatchInferServer(label, field)
		got, err := predicate.Matches(s)
		if err != nil {
			t.Fatalf("%q %q: %v", tc.label, tc.field, err)
		}
		if got != tc.want {
			t.Errorf("labels %q fields %q: match = %v, want %v", tc.label, tc.field, got, tc.want)
		}
	}
}

func TestSelector(t *testing.T) {
	if got := inferserver.Selector("foo").String(); got != "infer.mindie.io/server=foo" {
		t.Errorf("Selector(foo) = %q", got)
	}
}

func TestConvertFieldLabel(t *testing.T) {
	gvk := v1alpha1.SchemeGroupVersion.WithKind("InferServer")
	for _, label := range []string{
		"metadata.name", "metadata.namespace",
		v1alpha1.FieldSelectorScheduler, v1alpha1.FieldSelectorNPUType, v1alpha1.FieldSelectorNodesPerInstance,
	} {
		gotLabel, gotValue, err := apiserver.Scheme.ConvertFieldLabel(gvk, label, "x")
		if err != nil {
			t.Errorf("%s: %v", label, err)
			continue
		}
		if gotLabel != label || gotValue != "x" {
			t.Errorf("%s=x converted to %s=%s", label, gotLabel, gotValue)
		}
	}

	_, _, err := apiserver.Scheme.ConvertFieldLabel(gvk, "spec.image", "mindie:server")
	if err == nil {
		t.Fatal("spec.image was accepted as a field selector")
	}
	for _, want := range []string{
		`"spec.image"`, "metadata.name", "metadata.namespace",
		v1alpha1.FieldSelectorScheduler, v1alpha1.FieldSelectorNPUType, v1alpha1.FieldSelectorNodesPerInstance,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestWarnings(t *testing.T) {
	strategy := inferserver.NewStrategy(apiserver.Scheme)
	withFault := func(p v1alpha1.FaultReschedulingPolicy) func(*v1alpha1.InferServer) {
		return func(s *v1alpha1.InferServer) { s.Spec.FaultRescheduling = p }
	}
	for _, tc := range []struct {
		name string
		s    *infer.InferServer
		want string
	}{
		{"force without volcano", newServer("foo", withFault(v1alpha1.FaultReschedulingForce)), ""},
		{"grace cut short", newServer("foo", func(s *v1alpha1.InferServer) { s.Spec.FaultGraceOverTimeSeconds = ptr.To[int32](30) }),
			`spec.faultGraceOverTimeSeconds: 30 is shorter than spec.terminationGracePeriodSeconds (60): a pod drained off a faulty NPU is deleted at once before its grace period ends`},
		{"force with volcano", newServer("foo", withFault(v1alpha1.FaultReschedulingForce), withScheduler(v1alpha1.SchedulerVolcano)), ""},
		{"off without volcano", newServer("foo", withFault(v1alpha1.FaultReschedulingOff)), ""},
		{"defaulted grace without volcano", newServer("foo"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for verb, got := range map[string][]string{
				"create": strategy.WarningsOnCreate(context.Background(), tc.s),
				"update": strategy.WarningsOnUpdate(context.Background(), tc.s, tc.s),
			} {
				if strings.Join(got, "\n") != tc.want {
					t.Errorf("warnings on %s = %q, want %q", verb, got, tc.want)
				}
			}
		})
	}
	status := inferserver.NewStatusStrategy(strategy)
	if got := status.WarningsOnUpdate(context.Background(), newServer("foo", withFault(v1alpha1.FaultReschedulingForce)), newServer("foo")); len(got) != 0 {
		t.Errorf("status update warned: %q", got)
	}
}

package cachetrim

import (
	"errors"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

func TestManagedFields(t *testing.T) {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{"a": "b"},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}}}
	out, err := ManagedFields(p)
	if err != nil || out.(*corev1.Pod).ManagedFields != nil || out.(*corev1.Pod).Labels["a"] != "b" {
		t.Errorf("ManagedFields: %+v, %v", out, err)
	}
	// A tombstone is not an object: it passes as it is.
	tomb := cache.DeletedFinalStateUnknown{Key: "ns/p", Obj: p}
	if out, err := ManagedFields(tomb); err != nil || out != any(tomb) {
		t.Errorf("tombstone: %+v, %v", out, err)
	}
}

func TestApplied(t *testing.T) {
	fields := metav1.NewFieldsV1
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "d", Namespace: "ns", ManagedFields: []metav1.ManagedFieldsEntry{
			{Manager: "ctl", Operation: metav1.ManagedFieldsOperationApply, APIVersion: "apps/v1", FieldsType: "FieldsV1", FieldsV1: fields(`{"f:spec":{"f:replicas":{}}}`)},
			{Manager: "kubectl-edit", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "apps/v1", FieldsType: "FieldsV1", FieldsV1: fields(`{"f:spec":{"f:paused":{}}}`)},
			{Manager: "kcm", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "apps/v1", FieldsType: "FieldsV1", Subresource: "status", FieldsV1: fields(`{"f:status":{"f:replicas":{}}}`)},
		}},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](3), Paused: true,
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}},
	}
	want, err := Digest(appsv1ac.Deployment("d", "ns").WithSpec(appsv1ac.DeploymentSpec().WithReplicas(3)))
	if err != nil {
		t.Fatal(err)
	}
	trimmed := false
	transform := Applied("ctl", appsv1ac.ExtractDeployment, func(d *appsv1.Deployment) { trimmed = true; d.Spec.Template = corev1.PodTemplateSpec{} }, nil, nil)
	out, err := transform(d.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*appsv1.Deployment)
	if digest, ok := AppliedDigest(got); !ok || digest != want {
		t.Errorf("digest %q (%v), want %q", digest, ok, want)
	}
	if len(got.ManagedFields) != 1 || got.ManagedFields[0].Manager != "kubectl-edit" {
		t.Errorf("managedFields kept: %+v", got.ManagedFields)
	}
	if !trimmed || len(got.Spec.Template.Spec.Containers) != 0 || *got.Spec.Replicas != 3 {
		t.Errorf("trim ran %v: %+v", trimmed, got.Spec)
	}
	// A different value the manager owns, a different digest.
	other := d.DeepCopy()
	other.Spec.Replicas = ptr.To[int32](4)
	if out, _ := transform(other); out.(*appsv1.Deployment).Annotations[AppliedDigestAnnotation] == want {
		t.Error("replicas 4 has the digest of replicas 3")
	}
	// An object the manager's fields cannot be extracted from stays whole.
	failing := Applied("ctl", func(*appsv1.Deployment, string) (*appsv1ac.DeploymentApplyConfiguration, error) {
		return nil, errors.New("no")
	}, func(d *appsv1.Deployment) { d.Spec.Template = corev1.PodTemplateSpec{} }, nil, nil)
	out, err = failing(d.DeepCopy())
	if got := out.(*appsv1.Deployment); err != nil || len(got.ManagedFields) != 3 || len(got.Spec.Template.Spec.Containers) != 1 {
		t.Errorf("not extractable: %+v, %v", got, err)
	}
	if _, ok := AppliedDigest(out.(*appsv1.Deployment)); ok {
		t.Error("a digest without an extraction")
	}
	// A tombstone passes as it is.
	tomb := cache.DeletedFinalStateUnknown{Key: "ns/d", Obj: d}
	if out, err := transform(tomb); err != nil || out != any(tomb) {
		t.Errorf("tombstone: %+v, %v", out, err)
	}
}

func TestAppliedReusesTheCachedDigest(t *testing.T) {
	store := cache.NewStore(cache.MetaNamespaceKeyFunc)
	prior := func(namespace, name string) (metav1.Object, bool) {
		o, ok, _ := store.GetByKey(namespace + "/" + name)
		if !ok {
			return nil, false
		}
		return o.(metav1.Object), true
	}
	extracted := 0
	transform := Applied("ctl", func(d *appsv1.Deployment, m string) (*appsv1ac.DeploymentApplyConfiguration, error) {
		extracted++
		return appsv1ac.ExtractDeployment(d, m)
	}, nil, prior, nil)
	at := func(sec int64) *metav1.Time { t := metav1.Unix(sec, 0); return &t }
	ours := func(time *metav1.Time, fields string) metav1.ManagedFieldsEntry {
		return metav1.ManagedFieldsEntry{Manager: "ctl", Operation: metav1.ManagedFieldsOperationApply, APIVersion: "apps/v1",
			Time: time, FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(fields)}
	}
	status := func() metav1.ManagedFieldsEntry {
		return metav1.ManagedFieldsEntry{Manager: "kcm", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "apps/v1",
			Subresource: "status", FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(`{"f:status":{"f:replicas":{}}}`)}
	}
	owned := `{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:replicas":{}}}`
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "d", Namespace: "ns", UID: "u1", Generation: 1, Labels: map[string]string{"app": "a"},
			ManagedFields: []metav1.ManagedFieldsEntry{ours(at(100), owned)}},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](3)},
	}
	digestOf := func(o any) string { return o.(*appsv1.Deployment).Annotations[AppliedDigestAnnotation] }
	// step transforms the next version of d, caches it as the informer
	// would, and says whether it was extracted.
	step := func(what string, next *appsv1.Deployment, wantExtract bool) string {
		t.Helper()
		before := extracted
		out, err := transform(next.DeepCopy())
		if err != nil {
			t.Fatal(err)
		}
		if got := extracted > before; got != wantExtract {
			t.Errorf("%s: extracted %v, want %v", what, got, wantExtract)
		}
		if err := store.Update(out); err != nil {
			t.Fatal(err)
		}
		return digestOf(out)
	}
	first := step("first sight", d, true)

	// A status write: another manager's entry, the status, the
	// resourceVersion change; the digest is the cached one.
	st := d.DeepCopy()
	st.ResourceVersion, st.Status.Replicas = "7", 3
	st.ManagedFields = append(st.ManagedFields, status())
	if got := step("status write", st, false); got != first {
		t.Errorf("status write: digest %q, want %q", got, first)
	}
	// Another manager's annotation and label (kube-controller-manager's
	// revision): the manager's values are the same.
	st = st.DeepCopy()
	st.ResourceVersion = "8"
	st.Annotations = map[string]string{"deployment.kubernetes.io/revision": "1"}
	st.Labels["other"] = "x"
	if got := step("another manager's annotation", st, false); got != first {
		t.Errorf("another manager's annotation: digest %q, want %q", got, first)
	}

	// Each of what the manager's values depend on makes it extract again.
	for _, tc := range []struct {
		what   string
		change func(*appsv1.Deployment)
	}{
		{"a new spec", func(d *appsv1.Deployment) {
			d.Generation, d.Spec.Replicas = 2, ptr.To[int32](4)
			d.ManagedFields[0] = ours(at(101), owned)
		}},
		{"a label changed in the second of the last apply", func(d *appsv1.Deployment) { d.Labels["app"] = "b" }},
		{"a field taken over", func(d *appsv1.Deployment) {
			d.ManagedFields[0] = ours(d.ManagedFields[0].Time, `{"f:metadata":{"f:labels":{"f:app":{}}}}`)
		}},
		{"recreated under the same name", func(d *appsv1.Deployment) { d.UID = "u2" }},
	} {
		next := st.DeepCopy()
		tc.change(next)
		if got := step(tc.what, next, true); tc.what == "a new spec" && got == first {
			t.Errorf("%s: the digest of the old spec", tc.what)
		}
		// The version just cached is the one the next case starts from.
		st = next
	}

	// Without a generation (a Service, a ConfigMap), always extracted.
	noGen := st.DeepCopy()
	noGen.Generation = 0
	step("no generation", noGen, true)
	step("no generation, again", noGen, true)
}

func TestAppliedTakesTheDigestOfItsOwnWrite(t *testing.T) {
	written := NewWritten()
	extracted := 0
	transform := Applied("ctl", func(s *corev1.Service, m string) (*corev1ac.ServiceApplyConfiguration, error) {
		extracted++
		return corev1ac.ExtractService(s, m)
	}, nil, nil, written)
	owned := metav1.ManagedFieldsEntry{Manager: "ctl", Operation: metav1.ManagedFieldsOperationApply, APIVersion: "v1",
		FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(`{"f:spec":{"f:type":{}}}`)}
	version := func(rv string, typ corev1.ServiceType) *corev1.Service {
		return &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns", UID: "u1", ResourceVersion: rv,
				ManagedFields: []metav1.ManagedFieldsEntry{owned}},
			Spec: corev1.ServiceSpec{Type: typ},
		}
	}
	// see transforms o and says whether it was extracted, and its digest.
	see := func(o *corev1.Service) (bool, string) {
		t.Helper()
		before := extracted
		out, err := transform(o)
		if err != nil {
			t.Fatal(err)
		}
		return extracted > before, out.(*corev1.Service).Annotations[AppliedDigestAnnotation]
	}
	_, want := see(version("5", corev1.ServiceTypeClusterIP))

	// The controller wrote version 9: its event is not extracted, and
	// carries the digest recorded, even where extracting would differ
	// (here the recorded one is made up, to tell them apart).
	written.Record(version("9", corev1.ServiceTypeClusterIP), "recorded", version("5", corev1.ServiceTypeClusterIP))
	if ex, d := see(version("8", corev1.ServiceTypeClusterIP)); !ex || d != want {
		t.Errorf("an older version: extracted %v, digest %q; want extracted, %q", ex, d, want)
	}
	if written.Len() != 1 {
		t.Fatalf("an older version took the record of a later write: %d left", written.Len())
	}
	if ex, d := see(version("9", corev1.ServiceTypeClusterIP)); ex || d != "recorded" {
		t.Errorf("the write's own event: extracted %v, digest %q; want the record", ex, d)
	}
	if written.Len() != 0 {
		t.Errorf("%d records left once taken", written.Len())
	}
	if ex, _ := see(version("9", corev1.ServiceTypeClusterIP)); !ex {
		t.Error("a record was taken twice")
	}

	// A write whose event was missed (a relist shows a later version):
	// the record goes, the later version is extracted.
	written.Record(version("11", corev1.ServiceTypeClusterIP), "recorded", nil)
	if ex, d := see(version("12", corev1.ServiceTypeNodePort)); !ex || d == "recorded" {
		t.Errorf("a later version: extracted %v, digest %q; want extracted", ex, d)
	}
	if written.Len() != 0 {
		t.Errorf("%d records left after a later version", written.Len())
	}

	// Another object (another UID) never takes it; an object without a
	// numeric resourceVersion is not recorded.
	written.Record(version("13", corev1.ServiceTypeClusterIP), "recorded", nil)
	other := version("13", corev1.ServiceTypeClusterIP)
	other.UID = "u2"
	if ex, _ := see(other); !ex {
		t.Error("another object took the record")
	}
	written.Record(version("x", corev1.ServiceTypeClusterIP), "recorded", nil)
	if written.Len() != 1 {
		t.Errorf("%d records, want the one of version 13 alone", written.Len())
	}
	// The informer has seen the write already (its event came before the
	// answer): nothing to record; a copy of another object (a UID of
	// before a recreation) does not count.
	written = NewWritten()
	written.Record(version("15", corev1.ServiceTypeClusterIP), "recorded", version("15", corev1.ServiceTypeClusterIP))
	written.Record(version("16", corev1.ServiceTypeClusterIP), "recorded", version("17", corev1.ServiceTypeClusterIP))
	if written.Len() != 0 {
		t.Errorf("%d records of writes the informer had seen", written.Len())
	}
	recreated := version("20", corev1.ServiceTypeClusterIP)
	recreated.UID = "u3"
	written.Record(recreated, "recorded", version("21", corev1.ServiceTypeClusterIP))
	if written.Len() != 1 {
		t.Errorf("the copy of another object kept a write from being recorded: %d records", written.Len())
	}
	var none *Written
	none.Record(version("14", corev1.ServiceTypeClusterIP), "recorded", nil)
	if _, ok := none.take(version("14", corev1.ServiceTypeClusterIP)); ok || none.Len() != 0 {
		t.Error("a nil Written recorded")
	}
}

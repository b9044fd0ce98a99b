package apiserver

import (
	"bytes"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer"
	"mindie.io/deployer/apis/infer/v1alpha1"
)

// storedObjects are internal objects as the registry hands them to storage.
func storedObjects() []runtime.Object {
	server := &v1alpha1.InferServer{
		ObjectMeta: metav1.ObjectMeta{Name: "llama", Namespace: "team-a", UID: "u-1", Labels: map[string]string{"app": "x"}},
		Spec:       v1alpha1.InferServerSpec{Replicas: ptr.To[int32](2)},
	}
	edge := &v1alpha1.EdgeDeployment{ObjectMeta: metav1.ObjectMeta{Name: "rollout", Namespace: "team-a"}}
	var out []runtime.Object
	for _, obj := range []runtime.Object{server, edge} {
		Scheme.Default(obj)
		internal, err := Scheme.ConvertToVersion(obj, runtime.InternalGroupVersioner)
		if err != nil {
			panic(err)
		}
		out = append(out, internal)
	}
	return out
}

// TestStorageCodecMatchesLegacyCodec: the same bytes in etcd, and the same
// objects read back, as the codec factory's.
func TestStorageCodecMatchesLegacyCodec(t *testing.T) {
	ours, legacy := StorageCodec(v1alpha1.SchemeGroupVersion), Codecs.LegacyCodec(v1alpha1.SchemeGroupVersion)
	for _, obj := range storedObjects() {
		var a, b bytes.Buffer
		if err := ours.Encode(obj.DeepCopyObject(), &a); err != nil {
			t.Fatal(err)
		}
		if err := legacy.Encode(obj.DeepCopyObject(), &b); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Fatalf("stored bytes differ:\nours   %s\nlegacy %s", a.Bytes(), b.Bytes())
		}
		if !bytes.HasPrefix(a.Bytes(), kindPrefix) {
			t.Errorf("stored bytes do not start as storedTypeMeta reads them: %.60s", a.Bytes())
		}
		gotOurs, gvkOurs, err := ours.Decode(a.Bytes(), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		gotLegacy, gvkLegacy, err := legacy.Decode(a.Bytes(), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if *gvkOurs != *gvkLegacy || !equality.Semantic.DeepEqual(gotOurs, gotLegacy) {
			t.Errorf("decoded %v %#v, the codec factory's codec %v %#v", gvkOurs, gotOurs, gvkLegacy, gotLegacy)
		}
		if _, ok := gotOurs.(*infer.InferServer); !ok {
			if _, ok := gotOurs.(*infer.EdgeDeployment); !ok {
				t.Errorf("decoded a %T, want an internal object", gotOurs)
			}
		}
	}
}

// TestStoredTypeMeta: what the default meta factory reads, for bytes in the
// encoder's shape and in every other.
func TestStoredTypeMeta(t *testing.T) {
	for _, data := range []string{
		`{"kind":"InferServer","apiVersion":"infer.mindie.io/v1alpha1","metadata":{"name":"a"}}`,
		`{"kind":"InferServer","apiVersion":"infer.mindie.io/v1alpha1"}`,
		`{"kind":"Status","apiVersion":"v1","status":"Failure"}`,
		`{"apiVersion":"infer.mindie.io/v1alpha1","kind":"InferServer"}`,
		`{ "kind":"InferServer","apiVersion":"infer.mindie.io/v1alpha1"}`,
		`{"kind":"Infer\u0053erver","apiVersion":"infer.mindie.io/v1alpha1"}`,
		`{"kind":"InferServer","apiVersion":"infer.mindie.io\/v1alpha1"}`,
		`{"kind":"InferServer","metadata":{}}`,
		`{"kind":"InferServer","apiVersion":"infer.mindie.io/v1alpha1"  }`,
		`{"Kind":"InferServer","apiVersion":"infer.mindie.io/v1alpha1"}`,
		`{"metadata":{"name":"a"}}`,
		`{}`,
	} {
		want, wantErr := json.DefaultMetaFactory.Interpret([]byte(data))
		got, err := storedTypeMeta{}.Interpret([]byte(data))
		if (err != nil) != (wantErr != nil) || (err == nil && *got != *want) {
			t.Errorf("%s: got %v, %v; the default meta factory: %v, %v", data, got, err, want, wantErr)
		}
	}
	for _, data := range []string{`{"kind":"InferServer","apiVersion":"a/b/c"}`, `{"kind":1}`, `not json`, ``} {
		if got, err := (storedTypeMeta{}).Interpret([]byte(data)); err == nil {
			t.Errorf("%q: got %v, want an error as the default meta factory gives", data, got)
		}
	}
	// The encoder's shape is read from its front, without a pass over the
	// rest (which the decoding after it checks).
	got, err := storedTypeMeta{}.Interpret([]byte(`{"kind":"InferServer","apiVersion":"infer.mindie.io/v1alpha1",` + "\x00"))
	if want := (schema.GroupVersionKind{Group: "infer.mindie.io", Version: "v1alpha1", Kind: "InferServer"}); err != nil || *got != want {
		t.Errorf("front of an object: got %v, %v; want %v", got, err, want)
	}
}

func BenchmarkStoredTypeMeta(b *testing.B) {
	var buf bytes.Buffer
	if err := StorageCodec(v1alpha1.SchemeGroupVersion).Encode(storedObjects()[0], &buf); err != nil {
		b.Fatal(err)
	}
	for name, meta := range map[string]json.MetaFactory{"stored": storedTypeMeta{}, "default": json.DefaultMetaFactory} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := meta.Interpret(buf.Bytes()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

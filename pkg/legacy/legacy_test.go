package legacy

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer"
	"mindie.io/deployer/apis/infer/install"
	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/apis/infer/validation"
)

// repoCrossNode is the MindIE Motor repository's config/infer_server.json
// (case C-valid-repo-default of docs/original-deployer-objects.md). The seed
// document 001 prints it with server_type mindie_single_node, memory 500000
// (out of the original's own range) and a missing comma; the Deployment the
// original made from the repository file requests 256000Mi.
const repoCrossNode = `{
    "server_name": "mindie-server",
    "replicas": 1,
    "service_port": 31005,
    "cross_node_num": 2,
    "service_type": "NodePort",
    "server_type": "mindie_cross_node",
    "scheduler": "default",
    "init_delay": 180,
    "detect_server_inner_error": true,
    "liveness_timeout": 10,
    "liveness_failure_threshold": 1,
    "readiness_timeout": 10,
    "readiness_failure_threshold": 1,
    "resource_requests": {
        "memory": 256000,
        "cpu_core": 32000,
        "npu_type": "Ascend910",
        "npu_chip_num": 8
    },
    "mindie_server_config": {
        "mies_install_path": "/usr/local/Ascend/mindie/latest/mindie-service",
        "infer_port": 1025,
        "management_port": 1026,
        "enable_tls": true
    },
    "npu_fault_reschedule": true,
    "termination_grace_period_seconds": 30,
    "max_unavailable": "50%",
    "max_surge": "50%"
}`

// repoSingleNode is the same file with server_type mindie_single_node
// (case S-valid-repo-default), as the single-node guide tells the user to edit it.
var repoSingleNode = strings.Replace(repoCrossNode, `"mindie_cross_node"`, `"mindie_single_node"`, 1)

// seedDocumentExample is the file exactly as seed document 001 prints it
// (step 4 of the single-node guide).
const seedDocumentExample = `{
   "server_name": "mindie-server",                                         
    "replicas": 1,       
    "service_port": 31005,
    "cross_node_num":2,
    "service_type": "NodePort",  
    "server_type":"mindie_single_node",                                        
    "scheduler": "default",
    "init_delay": 180,
    "detect_server_inner_error": true,
    "liveness_timeout": 10,
    "liveness_failure_threshold": 1,
    "readiness_timeout": 10, 
    "readiness_failure_threshold": 1,
    "resource_requests": {                                             
        "memory":   500000,                                              
        "cpu_core" : 32000,                                              
        "npu_type": "Ascend910",                                       
        "npu_chip_num": 8                                              
    },
    "mindie_server_config": {
        "mies_install_path": "/usr/local/Ascend/mindie/latest/mindie-service",
        "infer_port" : 1025,
        "management_port":1026,
        "enable_tls":true
    },
    "npu_fault_reschedule": true
    "termination_grace_period_seconds": 30,
    "max_unavailable": "50%",
    "max_surge": "50%"
}`

const testNamespace = "team-a"

var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	install.Install(s)
	return s
}()

// apiErrors defaults obj and validates it as mindie-apiserver does on create.
func apiErrors(t *testing.T, obj *v1alpha1.InferServer) []string {
	t.Helper()
	in := obj.DeepCopy()
	scheme.Default(in)
	out := &infer.InferServer{}
	if err := scheme.Convert(in, out, nil); err != nil {
		t.Fatalf("converting to the internal version: %v", err)
	}
	var msgs []string
	for _, e := range validation.ValidateInferServer(out) {
		msgs = append(msgs, e.Error())
	}
	return msgs
}

// mustConvert converts data, which must be accepted, and checks that the
// InferServer passes the API's own validation.
func mustConvert(t *testing.T, data []byte) *v1alpha1.InferServer {
	t.Helper()
	obj, err := Convert(data, testNamespace)
	if err != nil {
		t.Fatalf("Convert refused a file the original accepted:\n%v\nfile: %s", err, data)
	}
	if errs := apiErrors(t, obj); len(errs) > 0 {
		t.Fatalf("the converted InferServer fails API validation:\n%s", strings.Join(errs, "\n"))
	}
	return obj
}

// wantErrors converts data, which must be refused with exactly these error
// lines, in this order.
func wantErrors(t *testing.T, data []byte, want ...string) {
	t.Helper()
	obj, err := Convert(data, testNamespace)
	if err == nil {
		t.Fatalf("Convert accepted the file, want errors:\n%s\ngot %+v", strings.Join(want, "\n"), obj)
	}
	var invalid *InvalidFileError
	if !errors.As(err, &invalid) {
		t.Fatalf("error is %T, want *InvalidFileError: %v", err, err)
	}
	if obj != nil {
		t.Errorf("Convert returned an object with its error")
	}
	var got []string
	for _, fe := range invalid.Errors() {
		got = append(got, fe.Error())
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
	if err.Error() != strings.Join(got, "\n") {
		t.Errorf("Error() is not one line per problem:\n%s", err.Error())
	}
}

// change sets a key path ("a.b") of a file to raw JSON, or removes it.
type change struct {
	key    string
	raw    string
	remove bool
}

func set(key, raw string) change { return change{key: key, raw: raw} }
func del(key string) change      { return change{key: key, remove: true} }

// edit applies changes to a JSON file; numbers keep their text, so that
// set("replicas", "10.0") really writes 10.0.
func edit(t *testing.T, base string, changes ...change) []byte {
	t.Helper()
	var top map[string]json.RawMessage
	if err := json.Unmarshal([]byte(base), &top); err != nil {
		t.Fatalf("base file: %v", err)
	}
	for _, ch := range changes {
		editPath(t, top, strings.Split(ch.key, "."), ch)
	}
	out, err := json.Marshal(top)
	if err != nil {
		t.Fatalf("writing the edited file: %v", err)
	}
	return out
}

func editPath(t *testing.T, m map[string]json.RawMessage, parts []string, ch change) {
	t.Helper()
	if len(parts) == 1 {
		if ch.remove {
			delete(m, parts[0])
		} else {
			m[parts[0]] = json.RawMessage(ch.raw)
		}
		return
	}
	var sub map[string]json.RawMessage
	if err := json.Unmarshal(m[parts[0]], &sub); err != nil {
		t.Fatalf("%s is not an object: %v", parts[0], err)
	}
	editPath(t, sub, parts[1:], ch)
	b, err := json.Marshal(sub)
	if err != nil {
		t.Fatalf("%s: %v", parts[0], err)
	}
	m[parts[0]] = b
}

var quantityEqual = cmp.Comparer(func(a, b resource.Quantity) bool { return a.Cmp(b) == 0 })

func cmpDiff(want, got any) string { return cmp.Diff(want, got, quantityEqual) }

func quantity(s string) *resource.Quantity { return ptr.To(resource.MustParse(s)) }

func TestConvertRepositoryExample(t *testing.T) {
	meta := metav1.ObjectMeta{
		Name:        "mindie-server",
		Namespace:   testNamespace,
		Annotations: map[string]string{"infer.mindie.io/converted-from": "infer_server.json"},
	}
	typeMeta := metav1.TypeMeta{APIVersion: "infer.mindie.io/v1alpha1", Kind: "InferServer"}
	common := func() v1alpha1.InferServerSpec {
		return v1alpha1.InferServerSpec{
			Replicas:    ptr.To[int32](1),
			InstallPath: "/usr/local/Ascend/mindie/latest/mindie-service",
			Resources: v1alpha1.InferResources{
				CPU:    quantity("32000m"),
				Memory: quantity("256000Mi"),
				NPU:    v1alpha1.NPURequest{Type: v1alpha1.NPUTypeAscend910, Count: ptr.To[int32](8)},
			},
			Ports:   v1alpha1.InferPorts{Inference: ptr.To[int32](1025), Management: ptr.To[int32](1026)},
			TLS:     v1alpha1.InferTLS{Enabled: true},
			Service: v1alpha1.InferServiceExposure{Type: corev1.ServiceTypeNodePort, NodePort: 31005},
			Health: v1alpha1.HealthSpec{
				StartupSeconds:    ptr.To[int32](180),
				DetectInnerErrors: ptr.To(true),
				Liveness:          v1alpha1.ProbeSpec{TimeoutSeconds: ptr.To[int32](10), FailureThreshold: ptr.To[int32](1)},
				Readiness:         v1alpha1.ProbeSpec{TimeoutSeconds: ptr.To[int32](10), FailureThreshold: ptr.To[int32](1)},
			},
			Scheduler: v1alpha1.SchedulerDefault,
		}
	}
	single := common()
	single.NodesPerInstance = ptr.To[int32](1)
	single.FaultRescheduling = v1alpha1.FaultReschedulingGrace
	single.TerminationGracePeriodSeconds = ptr.To[int64](30)
	single.Strategy = v1alpha1.InferServerStrategy{
		Type: v1alpha1.RollingUpdateInferServerStrategyType,
		RollingUpdate: &v1alpha1.RollingUpdateInferServer{
			MaxUnavailable: ptr.To(intstr.FromString("50%")),
			MaxSurge:       ptr.To(intstr.FromString("50%")),
		},
	}
	// Cross-node: npu_fault_reschedule, termination_grace_period_seconds,
	// max_unavailable and max_surge were never read, so they stay unset.
	cross := common()
	cross.NodesPerInstance = ptr.To[int32](2)

	cases := []struct {
		name string
		file string
		want v1alpha1.InferServerSpec
	}{
		{"single-node (S-valid-repo-default)", repoSingleNode, single},
		{"cross-node (C-valid-repo-default)", repoCrossNode, cross},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := mustConvert(t, []byte(tc.file))
			want := &v1alpha1.InferServer{TypeMeta: typeMeta, ObjectMeta: meta, Spec: tc.want}
			if diff := cmp.Diff(want, got, quantityEqual); diff != "" {
				t.Errorf("InferServer (-want +got):\n%s", diff)
			}
			// The units of the legacy keys: MiB and millicores.
			if got.Spec.Resources.Memory.Value() != 256000*1024*1024 {
				t.Errorf("memory = %s, want 256000 MiB", got.Spec.Resources.Memory)
			}
			if got.Spec.Resources.CPU.MilliValue() != 32000 {
				t.Errorf("cpu = %s, want 32000 millicores", got.Spec.Resources.CPU)
			}
		})
	}
}

// TestConvertUpperBoundsVariant is the other valid file of
// original-deployer-objects.md (S-valid-upper-bounds): volcano, Ascend310P,
// no graceful fault rescheduling, no inner-error detection.
func TestConvertUpperBoundsVariant(t *testing.T) {
	got := mustConvert(t, edit(t, repoSingleNode,
		set("scheduler", `"volcano"`),
		set("resource_requests.npu_type", `"Ascend310P"`),
		set("npu_fault_reschedule", "false"),
		set("detect_server_inner_error", "false"),
		set("mindie_server_config.enable_tls", "false"),
	))
	if got.Spec.Scheduler != v1alpha1.SchedulerVolcano {
		t.Errorf("scheduler = %q, want volcano", got.Spec.Scheduler)
	}
	if got.Spec.Resources.NPU.Type != v1alpha1.NPUTypeAscend310P {
		t.Errorf("npu type = %q, want Ascend310P", got.Spec.Resources.NPU.Type)
	}
	if got.Spec.FaultRescheduling != v1alpha1.FaultReschedulingOff {
		t.Errorf("faultRescheduling = %q, want Off for npu_fault_reschedule false", got.Spec.FaultRescheduling)
	}
	if d := got.Spec.Health.DetectInnerErrors; d == nil || *d {
		t.Errorf("detectInnerErrors = %v, want an explicit false", d)
	}
	if got.Spec.TLS.Enabled {
		t.Errorf("tls.enabled = true, want false")
	}
}

func TestConvertSeedDocumentExample(t *testing.T) {
	t.Run("as printed: the missing comma", func(t *testing.T) {
		wantErrors(t, []byte(seedDocumentExample),
			`infer_server.json: is not valid JSON: line 28, column 5: invalid character '"' after object key:value pair`)
	})
	fixedComma := strings.Replace(seedDocumentExample, `"npu_fault_reschedule": true`, `"npu_fault_reschedule": true,`, 1)
	t.Run("comma fixed: memory beyond the original's range", func(t *testing.T) {
		wantErrors(t, []byte(fixedComma), `resource_requests.memory: 500000: must be between 1000 and 256000`)
	})
	t.Run("memory fixed", func(t *testing.T) {
		got := mustConvert(t, []byte(strings.Replace(fixedComma, "500000", "256000", 1)))
		if *got.Spec.NodesPerInstance != 1 || got.Spec.TerminationGracePeriodSeconds == nil {
			t.Errorf("want a single-node InferServer, got %+v", got.Spec)
		}
	})
}

func TestConvertNamespaceAndName(t *testing.T) {
	got, err := Convert(edit(t, repoSingleNode, set("server_name", `"0llama-3"`)), "other")
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "0llama-3" || got.Namespace != "other" {
		t.Errorf("name/namespace = %s/%s, want other/0llama-3", got.Namespace, got.Name)
	}
	if got.Annotations[AnnotationConvertedFrom] != ConvertedFromLegacyFile {
		t.Errorf("annotations = %v", got.Annotations)
	}
}

func TestConvertedObjectRoundTripsThroughJSON(t *testing.T) {
	// kubectl mindie convert prints the object; what it prints must read back the same.
	for _, file := range []string{repoSingleNode, repoCrossNode} {
		obj := mustConvert(t, []byte(file))
		b, err := json.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		back := &v1alpha1.InferServer{}
		if err := json.Unmarshal(b, back); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(obj, back, quantityEqual); diff != "" {
			t.Errorf("round trip (-converted +read back):\n%s", diff)
		}
		if IsLegacy(b) {
			t.Errorf("IsLegacy is true for the converted InferServer: %s", b)
		}
	}
}

func TestIsLegacy(t *testing.T) {
	cases := []struct {
		name string
		data string
		want bool
	}{
		{"repository file, cross-node", repoCrossNode, true},
		{"repository file, single-node", repoSingleNode, true},
		{"seed document example with its syntax error", seedDocumentExample, true},
		{"byte order mark", "\xef\xbb\xbf" + repoSingleNode, true},
		{"server_name and server_type only", `{"server_name": "x", "server_type": "mindie_single_node"}`, true},
		{"server_name and resource_requests", `{"server_name": "x", "resource_requests": {}}`, true},
		{"server_name and mindie_server_config", ` {"server_name": 1, "mindie_server_config": null}`, true},
		{"truncated after the keys", `{"server_name": "x", "server_type": "mindie_single_node", "replicas": `, true},
		{"server_name alone", `{"server_name": "x", "replicas": 1}`, false},
		{"no server_name", `{"server_type": "mindie_single_node", "resource_requests": {}}`, true},
		{"server_type alone", `{"server_type": "mindie_single_node", "replicas": 1}`, false},
		{"resource_requests and mindie_server_config", `{"resource_requests": {}, "mindie_server_config": {}}`, true},
		{"keys only nested", `{"spec": {"server_name": "x", "server_type": "mindie_single_node"}}`, false},
		{"key names as values", `{"a": "server_name", "b": "server_type"}`, false},
		{"with apiVersion", `{"apiVersion": "v1", "server_name": "x", "server_type": "mindie_single_node"}`, false},
		{"with kind", `{"kind": "InferServer", "server_name": "x", "server_type": "mindie_single_node"}`, false},
		{"InferServer JSON", `{"apiVersion": "infer.mindie.io/v1alpha1", "kind": "InferServer", "metadata": {"name": "llama"}, "spec": {"replicas": 2}}`, false},
		{"InferServer YAML", "apiVersion: infer.mindie.io/v1alpha1\nkind: InferServer\nmetadata: {name: llama3-8b}\nspec:\n  replicas: 2\n", false},
		{"YAML with the legacy keys", "server_name: x\nserver_type: mindie_single_node\n", false},
		{"YAML flow mapping", `{server_name: x, server_type: mindie_single_node}`, false},
		{"JSON array", `[{"server_name": "x", "server_type": "mindie_single_node"}]`, false},
		{"empty", ``, false},
		{"not JSON", `hello`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsLegacy([]byte(tc.data)); got != tc.want {
				t.Errorf("IsLegacy = %v, want %v for:\n%s", got, tc.want, tc.data)
			}
		})
	}
}

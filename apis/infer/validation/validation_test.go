package validation

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer"
	"mindie.io/deployer/apis/infer/install"
	"mindie.io/deployer/apis/infer/v1alpha1"
)

// Default paths of v1alpha1, repeated here as documented so that a changed
// default shows up in these tests too.
const (
	modelPath     = "/mnt/mindie-service/ms/model"
	writablePath  = "/mnt/mindie-service/ms/writable-data"
	runScriptPath = "/mnt/mindie-service/ms/run/run.sh"
)

var scheme = newScheme()

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	install.Install(s)
	return s
}

// validInferServer is an InferServer with only a name and namespace, defaulted
// by the scheme and converted to the internal version, as the API server
// sees a minimal create request.
func validInferServer(t *testing.T) *infer.InferServer {
	t.Helper()
	in := &v1alpha1.InferServer{ObjectMeta: metav1.ObjectMeta{Name: "llama", Namespace: "default"}}
	scheme.Default(in)
	out := &infer.InferServer{}
	if err := scheme.Convert(in, out, nil); err != nil {
		t.Fatalf("converting the defaulted InferServer: %v", err)
	}
	return out
}

// wantErr is one expected validation error: its type, its field path and
// substrings of its message (the bad value, the allowed range or values).
type wantErr struct {
	typ      field.ErrorType
	path     string
	contains []string
}

func invalid(path string, contains ...string) wantErr {
	return wantErr{field.ErrorTypeInvalid, path, contains}
}

func required(path string, contains ...string) wantErr {
	return wantErr{field.ErrorTypeRequired, path, contains}
}

func forbidden(path string, contains ...string) wantErr {
	return wantErr{field.ErrorTypeForbidden, path, contains}
}

func duplicate(path string, contains ...string) wantErr {
	return wantErr{field.ErrorTypeDuplicate, path, contains}
}

func notFound(path string, contains ...string) wantErr {
	return wantErr{field.ErrorTypeNotFound, path, contains}
}

func tooLong(path string, contains ...string) wantErr {
	return wantErr{field.ErrorTypeTooLong, path, contains}
}

// notSupported expects the bad value and every supported value in the message.
func notSupported(path, value string, supported ...string) wantErr {
	contains := []string{strconv.Quote(value)}
	for _, s := range supported {
		contains = append(contains, strconv.Quote(s))
	}
	return wantErr{field.ErrorTypeNotSupported, path, contains}
}

// badInt is the text of an Invalid error about an integer value.
func badInt[T int32 | int64](v T) string { return fmt.Sprintf("Invalid value: %d", v) }

// badString is the text of an Invalid error about a string value.
func badString(v string) string { return "Invalid value: " + strconv.Quote(v) }

func between(lo, hi int64) string { return fmt.Sprintf("between %d and %d, inclusive", lo, hi) }

// testCase mutates a valid InferServer; want lists every error expected, and
// an empty want means the mutated object must still be valid.
type testCase struct {
	name   string
	mutate func(*infer.InferServer)
	want   []wantErr
}

func valid(name string, mutate func(*infer.InferServer)) testCase {
	return testCase{name: name, mutate: mutate}
}

func bad(name string, mutate func(*infer.InferServer), want ...wantErr) testCase {
	return testCase{name: name, mutate: mutate, want: want}
}

func runCases(t *testing.T, cases []testCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := validInferServer(t)
			tc.mutate(s)
			expectErrors(t, ValidateInferServer(s), tc.want)
		})
	}
}

// expectErrors checks that got holds exactly the wanted errors, in any order.
func expectErrors(t *testing.T, got field.ErrorList, want []wantErr) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%s", len(got), len(want), formatErrors(got))
	}
	matched := make([]bool, len(got))
	for _, w := range want {
		i := findError(got, matched, w)
		if i < 0 {
			t.Errorf("no %s error at %s; got:\n%s", w.typ, w.path, formatErrors(got))
			continue
		}
		matched[i] = true
		msg := got[i].Error()
		for _, s := range w.contains {
			if !strings.Contains(msg, s) {
				t.Errorf("error %q does not mention %q", msg, s)
			}
		}
	}
}

func findError(got field.ErrorList, matched []bool, w wantErr) int {
	for i, e := range got {
		if !matched[i] && e.Type == w.typ && e.Field == w.path {
			return i
		}
	}
	return -1
}

func formatErrors(errs field.ErrorList) string {
	var b strings.Builder
	for _, e := range errs {
		fmt.Fprintf(&b, "  %s (%s)\n", e.Error(), e.Type)
	}
	return b.String()
}

// int32Range returns the cases of an *int32 spec field documented as lo..hi:
// both bounds are valid, one past either bound is Invalid and, since
// defaulting always sets it, nil is Required.
func int32Range(path string, lo, hi int32, fld func(*infer.InferServerSpec) **int32) []testCase {
	set := func(v *int32) func(*infer.InferServer) {
		return func(s *infer.InferServer) { *fld(&s.Spec) = v }
	}
	name := func(v int32) string { return fmt.Sprintf("%s=%d", path, v) }
	allowed := between(int64(lo), int64(hi))
	return []testCase{
		valid(name(lo), set(ptr.To(lo))),
		valid(name(hi), set(ptr.To(hi))),
		bad(name(lo-1), set(ptr.To(lo-1)), invalid(path, badInt(lo-1), allowed)),
		bad(name(hi+1), set(ptr.To(hi+1)), invalid(path, badInt(hi+1), allowed)),
		bad(path+" unset", set(nil), required(path, allowed)),
	}
}

// enumCases returns the cases of a string enum spec field: every supported
// value is valid, an unknown one is NotSupported and the empty one Required.
func enumCases(path string, supported []string, set func(*infer.InferServerSpec, string)) []testCase {
	to := func(v string) func(*infer.InferServer) {
		return func(s *infer.InferServer) { set(&s.Spec, v) }
	}
	var cases []testCase
	for _, v := range supported {
		cases = append(cases, valid(path+"="+v, to(v)))
	}
	quoted := make([]string, len(supported))
	for i, v := range supported {
		quoted[i] = strconv.Quote(v)
	}
	return append(cases,
		bad(path+"=Bogus", to("Bogus"), notSupported(path, "Bogus", supported...)),
		bad(path+" wrong case", to(otherCase(supported[0])), notSupported(path, otherCase(supported[0]), supported...)),
		bad(path+" empty", to(""), required(path, quoted...)),
	)
}

// otherCase is v in upper case, or in lower case if it already is upper case.
func otherCase(v string) string {
	if u := strings.ToUpper(v); u != v {
		return u
	}
	return strings.ToLower(v)
}

func concat(groups ...[]testCase) []testCase {
	var all []testCase
	for _, g := range groups {
		all = append(all, g...)
	}
	return all
}

func qty(s string) *resource.Quantity { return ptr.To(resource.MustParse(s)) }

func TestDefaultedInferServerIsValid(t *testing.T) {
	s := validInferServer(t)
	if errs := ValidateInferServer(s); len(errs) != 0 {
		t.Fatalf("a defaulted InferServer must be valid, got:\n%s", formatErrors(errs))
	}
}

func TestValidateName(t *testing.T) {
	setName := func(name string) func(*infer.InferServer) {
		return func(s *infer.InferServer) { s.Name = name }
	}
	long48, long49 := strings.Repeat("a", 48), strings.Repeat("a", 49)
	runCases(t, []testCase{
		valid("single character", setName("a")),
		valid("48 characters", setName(long48)),
		valid("digits and dashes", setName("qwen-72b-2")),
		bad("49 characters", setName(long49),
			invalid("metadata.name", badString(long49), "must be no more than 48 characters")),
		// Only the 48-character limit is reported, not the DNS label's 63 as well.
		bad("64 characters", setName(strings.Repeat("a", 64)),
			invalid("metadata.name", "must be no more than 48 characters")),
		bad("uppercase", setName("Llama"), invalid("metadata.name", badString("Llama"), "RFC 1123 label")),
		bad("underscore", setName("my_server"), invalid("metadata.name", badString("my_server"), "RFC 1123 label")),
		bad("dot", setName("llama.v2"), invalid("metadata.name", badString("llama.v2"), "must not contain dots")),
		bad("trailing dash", setName("llama-"), invalid("metadata.name", badString("llama-"), "RFC 1123 label")),
		bad("empty", setName(""), required("metadata.name")),
		bad("no namespace", func(s *infer.InferServer) { s.Namespace = "" }, required("metadata.namespace")),
	})
}

func TestValidateReplicasAndCounters(t *testing.T) {
	runCases(t, concat(
		int32Range("spec.replicas", 1, 256, func(s *infer.InferServerSpec) **int32 { return &s.Replicas }),
		int32Range("spec.revisionHistoryLimit", 0, 100, func(s *infer.InferServerSpec) **int32 { return &s.RevisionHistoryLimit }),
		int32Range("spec.progressDeadlineSeconds", 1, 86400, func(s *infer.InferServerSpec) **int32 { return &s.ProgressDeadlineSeconds }),
		int32Range("spec.faultGraceOverTimeSeconds", 2, 3600, func(s *infer.InferServerSpec) **int32 { return &s.FaultGraceOverTimeSeconds }),
		int32Range("spec.nodeLostSeconds", 0, 3600, func(s *infer.InferServerSpec) **int32 { return &s.NodeLostSeconds }),
	))
}

func TestValidateTerminationGracePeriod(t *testing.T) {
	const path = "spec.terminationGracePeriodSeconds"
	set := func(v *int64) func(*infer.InferServer) {
		return func(s *infer.InferServer) { s.Spec.TerminationGracePeriodSeconds = v }
	}
	runCases(t, []testCase{
		valid("0", set(ptr.To[int64](0))),
		valid("3600", set(ptr.To[int64](3600))),
		bad("-1", set(ptr.To[int64](-1)), invalid(path, badInt[int64](-1), between(0, 3600))),
		bad("3601", set(ptr.To[int64](3601)), invalid(path, badInt[int64](3601), between(0, 3600))),
		bad("unset", set(nil), required(path, between(0, 3600))),
	})
}

func TestValidateNodesPerInstance(t *testing.T) {
	const path = "spec.nodesPerInstance"
	set := func(v *int32) func(*infer.InferServer) {
		return func(s *infer.InferServer) { s.Spec.NodesPerInstance = v }
	}
	var cases []testCase
	for _, n := range []int32{1, 2, 4} {
		cases = append(cases, valid(fmt.Sprint(n), set(ptr.To(n))))
	}
	for _, n := range []int32{-1, 0, 3, 5, 8} {
		cases = append(cases, bad(fmt.Sprint(n), set(ptr.To(n)), invalid(path, badInt(n), "must be 1 (single-node), 2 or 4 (cross-node)")))
	}
	cases = append(cases, bad("unset", set(nil), required(path, "must be 1, 2 or 4")))
	runCases(t, cases)
}

func TestValidateNPU(t *testing.T) {
	const countPath, typePath = "spec.resources.npu.count", "spec.resources.npu.type"
	npu := func(nodes int32, typ infer.NPUType, count int32) func(*infer.InferServer) {
		return func(s *infer.InferServer) {
			s.Spec.NodesPerInstance = ptr.To(nodes)
			s.Spec.Resources.NPU = infer.NPURequest{Type: typ, Count: ptr.To(count)}
		}
	}
	var cases []testCase
	for n := int32(1); n <= 8; n++ {
		cases = append(cases,
			valid(fmt.Sprintf("Ascend910 x%d", n), npu(1, infer.NPUTypeAscend910, n)),
			valid(fmt.Sprintf("Ascend310P x%d", n), npu(1, infer.NPUTypeAscend310P, n)))
	}
	crossNodeType := "cross-node instances (spec.nodesPerInstance 2 or 4) support only Ascend910"
	crossNodeCount := "must be 8"
	cases = append(cases,
		bad("count 0", npu(1, infer.NPUTypeAscend910, 0), invalid(countPath, badInt[int32](0), between(1, 8))),
		bad("count 9", npu(1, infer.NPUTypeAscend910, 9), invalid(countPath, badInt[int32](9), between(1, 8))),
		bad("count unset", func(s *infer.InferServer) { s.Spec.Resources.NPU.Count = nil }, required(countPath, between(1, 8))),
		valid("2 nodes Ascend910 x8", npu(2, infer.NPUTypeAscend910, 8)),
		valid("4 nodes Ascend910 x8", npu(4, infer.NPUTypeAscend910, 8)),
		bad("2 nodes x4", npu(2, infer.NPUTypeAscend910, 4), invalid(countPath, badInt[int32](4), crossNodeCount)),
		bad("4 nodes x1", npu(4, infer.NPUTypeAscend910, 1), invalid(countPath, badInt[int32](1), crossNodeCount)),
		bad("2 nodes Ascend310P", npu(2, infer.NPUTypeAscend310P, 8), invalid(typePath, badString("Ascend310P"), crossNodeType)),
		// An unknown type is reported once, as unsupported, not also as not Ascend910.
		bad("2 nodes unknown type", npu(2, "Ascend950", 8), notSupported(typePath, "Ascend950", "Ascend910", "Ascend310P")),
		bad("4 nodes Ascend310P x4", npu(4, infer.NPUTypeAscend310P, 4),
			invalid(typePath, badString("Ascend310P"), crossNodeType),
			invalid(countPath, badInt[int32](4), crossNodeCount)),
		// Out of range is reported once, not also as "must be 8".
		bad("2 nodes x9", npu(2, infer.NPUTypeAscend910, 9), invalid(countPath, badInt[int32](9), between(1, 8))),
	)
	cases = append(cases, enumCases(typePath, []string{"Ascend910", "Ascend310P"},
		func(s *infer.InferServerSpec, v string) { s.Resources.NPU.Type = infer.NPUType(v) })...)
	runCases(t, cases)
}

func TestValidateCPUAndMemory(t *testing.T) {
	const cpuPath, memPath = "spec.resources.cpu", "spec.resources.memory"
	const cpuRange, memRange = "between 1 and 256 cores (1000m to 256000m)", "between 1000Mi and 256000Mi"
	res := func(f func(r *infer.InferResources)) func(*infer.InferServer) {
		return func(s *infer.InferServer) { f(&s.Spec.Resources) }
	}
	cpu := func(v string) func(*infer.InferServer) {
		return res(func(r *infer.InferResources) { r.CPU = qty(v) })
	}
	mem := func(v string) func(*infer.InferServer) {
		return res(func(r *infer.InferResources) { r.Memory = qty(v) })
	}
	var cases []testCase
	for _, v := range []string{"1", "256", "1000m", "256000m", "1.5"} {
		cases = append(cases, valid("cpu "+v, cpu(v)))
	}
	for _, v := range []string{"999m", "257", "256001m", "0"} {
		cases = append(cases, bad("cpu "+v, cpu(v), invalid(cpuPath, badString(v), cpuRange)))
	}
	for _, v := range []string{"1000Mi", "256000Mi", "64Gi"} {
		cases = append(cases, valid("memory "+v, mem(v)))
	}
	for _, v := range []string{"999Mi", "256001Mi", "1G", "300Gi"} {
		cases = append(cases, bad("memory "+v, mem(v), invalid(memPath, badString(v), memRange)))
	}
	cases = append(cases,
		bad("cpu unset", res(func(r *infer.InferResources) { r.CPU = nil }), required(cpuPath, cpuRange)),
		bad("memory unset", res(func(r *infer.InferResources) { r.Memory = nil }), required(memPath, memRange)),
		valid("cpuLimit equal to cpu", res(func(r *infer.InferResources) { r.CPU, r.CPULimit = qty("8"), qty("8000m") })),
		valid("cpuLimit above cpu", res(func(r *infer.InferResources) { r.CPU, r.CPULimit = qty("8"), qty("512") })),
		bad("cpuLimit below cpu", res(func(r *infer.InferResources) { r.CPU, r.CPULimit = qty("8"), qty("7999m") }),
			invalid("spec.resources.cpuLimit", badString("7999m"), "must be at least spec.resources.cpu (8)")),
		valid("memoryLimit equal to memory", res(func(r *infer.InferResources) { r.Memory, r.MemoryLimit = qty("64Gi"), qty("65536Mi") })),
		bad("memoryLimit below memory", res(func(r *infer.InferResources) { r.Memory, r.MemoryLimit = qty("64Gi"), qty("65535Mi") }),
			invalid("spec.resources.memoryLimit", badString("65535Mi"), "must be at least spec.resources.memory (64Gi)")),
	)
	runCases(t, cases)
}

func TestValidatePorts(t *testing.T) {
	ports := func(inference, management int32) func(*infer.InferServer) {
		return func(s *infer.InferServer) {
			s.Spec.Ports = infer.InferPorts{Inference: &inference, Management: &management}
		}
	}
	const differ = "must differ from spec.ports.inference"
	runCases(t, concat(
		int32Range("spec.ports.inference", 1024, 65535, func(s *infer.InferServerSpec) **int32 { return &s.Ports.Inference }),
		int32Range("spec.ports.management", 1024, 65535, func(s *infer.InferServerSpec) **int32 { return &s.Ports.Management }),
		[]testCase{
			valid("distinct ports", ports(8080, 8081)),
			bad("same ports", ports(2000, 2000), invalid("spec.ports.management", badInt[int32](2000), differ)),
			bad("inference on the default management port", func(s *infer.InferServer) { s.Spec.Ports.Inference = ptr.To[int32](1026) },
				invalid("spec.ports.management", badInt[int32](1026), differ)),
		},
	))
}

func TestValidateService(t *testing.T) {
	const path = "spec.service.nodePort"
	svc := func(typ corev1.ServiceType, nodePort int32) func(*infer.InferServer) {
		return func(s *infer.InferServer) { s.Spec.Service = infer.InferServiceExposure{Type: typ, NodePort: nodePort} }
	}
	nodePortRange := between(30000, 32767)
	nodePortOnly := "may be set only when spec.service.type is NodePort"
	runCases(t, []testCase{
		valid("NodePort auto", svc(corev1.ServiceTypeNodePort, 0)),
		valid("NodePort 30000", svc(corev1.ServiceTypeNodePort, 30000)),
		valid("NodePort 32767", svc(corev1.ServiceTypeNodePort, 32767)),
		valid("ClusterIP", svc(corev1.ServiceTypeClusterIP, 0)),
		bad("NodePort 29999", svc(corev1.ServiceTypeNodePort, 29999), invalid(path, badInt[int32](29999), nodePortRange, "or 0 to let Kubernetes choose")),
		bad("NodePort 32768", svc(corev1.ServiceTypeNodePort, 32768), invalid(path, badInt[int32](32768), nodePortRange)),
		bad("NodePort -1", svc(corev1.ServiceTypeNodePort, -1), invalid(path, badInt[int32](-1), nodePortRange)),
		bad("ClusterIP with nodePort", svc(corev1.ServiceTypeClusterIP, 30000), forbidden(path, nodePortOnly)),
		bad("ClusterIP with bad nodePort", svc(corev1.ServiceTypeClusterIP, 80),
			forbidden(path, nodePortOnly), invalid(path, badInt[int32](80), nodePortRange)),
		bad("LoadBalancer", svc(corev1.ServiceTypeLoadBalancer, 0),
			notSupported("spec.service.type", "LoadBalancer", "NodePort", "ClusterIP")),
		bad("LoadBalancer with nodePort", svc(corev1.ServiceTypeLoadBalancer, 30000),
			notSupported("spec.service.type", "LoadBalancer", "NodePort", "ClusterIP"), forbidden(path, nodePortOnly)),
		bad("ExternalName", svc(corev1.ServiceTypeExternalName, 0),
			notSupported("spec.service.type", "ExternalName", "NodePort", "ClusterIP")),
		bad("type unset", svc("", 0), required("spec.service.type", `"NodePort"`, `"ClusterIP"`)),
	})
}

func TestValidateHealth(t *testing.T) {
	cases := int32Range("spec.health.startupSeconds", 10, 1800, func(s *infer.InferServerSpec) **int32 { return &s.Health.StartupSeconds })
	probes := map[string]func(*infer.InferServerSpec) *infer.ProbeSpec{
		"liveness":  func(s *infer.InferServerSpec) *infer.ProbeSpec { return &s.Health.Liveness },
		"readiness": func(s *infer.InferServerSpec) *infer.ProbeSpec { return &s.Health.Readiness },
	}
	for name, probe := range probes {
		p := "spec.health." + name
		cases = append(cases, concat(
			int32Range(p+".timeoutSeconds", 1, 600, func(s *infer.InferServerSpec) **int32 { return &probe(s).TimeoutSeconds }),
			int32Range(p+".failureThreshold", 1, 10, func(s *infer.InferServerSpec) **int32 { return &probe(s).FailureThreshold }),
			int32Range(p+".periodSeconds", 1, 3600, func(s *infer.InferServerSpec) **int32 { return &probe(s).PeriodSeconds }),
		)...)
	}
	cases = append(cases,
		valid("detectInnerErrors false", func(s *infer.InferServer) { s.Spec.Health.DetectInnerErrors = ptr.To(false) }),
		bad("detectInnerErrors unset", func(s *infer.InferServer) { s.Spec.Health.DetectInnerErrors = nil },
			required("spec.health.detectInnerErrors", "must be true or false")),
	)
	runCases(t, cases)
}

func TestValidateRollingUpdate(t *testing.T) {
	const surgePath, unavailPath = "spec.strategy.rollingUpdate.maxSurge", "spec.strategy.rollingUpdate.maxUnavailable"
	rolling := func(surge, unavailable *intstr.IntOrString) func(*infer.InferServer) {
		return func(s *infer.InferServer) {
			s.Spec.Strategy.RollingUpdate = &infer.RollingUpdateInferServer{MaxSurge: surge, MaxUnavailable: unavailable}
		}
	}
	num := func(v int32) *intstr.IntOrString { return ptr.To(intstr.FromInt32(v)) }
	pct := func(v string) *intstr.IntOrString { return ptr.To(intstr.FromString(v)) }
	half := pct("50%")
	const nonNegative = "must be a non-negative integer or a percentage"
	const percentRange = `from "0%" to "100%"`
	var cases []testCase
	fields := []struct {
		path string
		set  func(v *intstr.IntOrString) func(*infer.InferServer)
	}{
		{surgePath, func(v *intstr.IntOrString) func(*infer.InferServer) { return rolling(v, half) }},
		{unavailPath, func(v *intstr.IntOrString) func(*infer.InferServer) { return rolling(half, v) }},
	}
	for _, f := range fields {
		for _, v := range []*intstr.IntOrString{num(0), num(1), num(300), pct("0%"), pct("1%"), pct("100%")} {
			cases = append(cases, valid(fmt.Sprintf("%s=%s", f.path, v), f.set(v)))
		}
		cases = append(cases,
			bad(f.path+"=-1", f.set(num(-1)), invalid(f.path, badInt[int32](-1), nonNegative)),
			bad(f.path+" unset", f.set(nil), required(f.path, nonNegative)),
		)
		for _, v := range []string{"101%", "-1%"} {
			cases = append(cases, bad(f.path+"="+v, f.set(pct(v)), invalid(f.path, badString(v), percentRange)))
		}
		for _, v := range []string{"abc", "50", "", "%", "50%%", "5.5%", " 5%"} {
			cases = append(cases, bad(fmt.Sprintf("%s=%q", f.path, v), f.set(pct(v)), invalid(f.path, badString(v), nonNegative, percentRange)))
		}
	}
	const neverProgress = "may not be 0 when maxSurge is 0"
	cases = append(cases,
		bad("both int 0", rolling(num(0), num(0)), invalid(unavailPath, neverProgress)),
		bad(`both "0%"`, rolling(pct("0%"), pct("0%")), invalid(unavailPath, badString("0%"), neverProgress)),
		bad(`maxSurge 0, maxUnavailable "0%"`, rolling(num(0), pct("0%")), invalid(unavailPath, badString("0%"), neverProgress)),
		bad(`maxSurge "0%", maxUnavailable 0`, rolling(pct("0%"), num(0)), invalid(unavailPath, neverProgress)),
		valid("maxSurge 0, maxUnavailable 1", rolling(num(0), num(1))),
		valid(`maxSurge "1%", maxUnavailable 0`, rolling(pct("1%"), num(0))),
	)
	runCases(t, cases)
}

func TestValidateStrategyType(t *testing.T) {
	strategy := func(typ infer.InferServerStrategyType, ru *infer.RollingUpdateInferServer) func(*infer.InferServer) {
		return func(s *infer.InferServer) { s.Spec.Strategy = infer.InferServerStrategy{Type: typ, RollingUpdate: ru} }
	}
	ru := &infer.RollingUpdateInferServer{MaxSurge: ptr.To(intstr.FromInt32(1)), MaxUnavailable: ptr.To(intstr.FromInt32(0))}
	supported := []string{"RollingUpdate", "Recreate"}
	runCases(t, []testCase{
		valid("RollingUpdate", strategy(infer.RollingUpdateInferServerStrategyType, ru)),
		valid("Recreate", strategy(infer.RecreateInferServerStrategyType, nil)),
		bad("Recreate with rollingUpdate", strategy(infer.RecreateInferServerStrategyType, ru),
			forbidden("spec.strategy.rollingUpdate", "may not be set when spec.strategy.type is Recreate")),
		bad("RollingUpdate without rollingUpdate", strategy(infer.RollingUpdateInferServerStrategyType, nil),
			required("spec.strategy.rollingUpdate", "must be set when spec.strategy.type is RollingUpdate")),
		bad("unknown type", strategy("BlueGreen", nil), notSupported("spec.strategy.type", "BlueGreen", supported...)),
		bad("unknown type with rollingUpdate", strategy("OnDelete", ru), notSupported("spec.strategy.type", "OnDelete", supported...)),
		bad("type unset", strategy("", nil), required("spec.strategy.type", `"RollingUpdate"`, `"Recreate"`)),
	})
}

func TestValidateEnums(t *testing.T) {
	runCases(t, concat(
		enumCases("spec.scheduler", []string{"default", "volcano"},
			func(s *infer.InferServerSpec, v string) { s.Scheduler = infer.SchedulerType(v) }),
		enumCases("spec.faultRescheduling", []string{"Grace", "Force", "Off"},
			func(s *infer.InferServerSpec, v string) { s.FaultRescheduling = infer.FaultReschedulingPolicy(v) }),
		enumCases("spec.imagePullPolicy", []string{"Always", "IfNotPresent", "Never"},
			func(s *infer.InferServerSpec, v string) { s.ImagePullPolicy = corev1.PullPolicy(v) }),
	))
}

func TestValidateImageCommandAndAccounts(t *testing.T) {
	spec := func(f func(*infer.InferServerSpec)) func(*infer.InferServer) {
		return func(s *infer.InferServer) { f(&s.Spec) }
	}
	runCases(t, []testCase{
		valid("image with registry and digest", spec(func(s *infer.InferServerSpec) {
			s.Image = "registry.example.com/mindie/server@sha256:" + strings.Repeat("a", 64)
		})),
		bad("image empty", spec(func(s *infer.InferServerSpec) { s.Image = "" }), required("spec.image")),
		bad("image blank", spec(func(s *infer.InferServerSpec) { s.Image = "  " }), required("spec.image")),
		bad("image with whitespace", spec(func(s *infer.InferServerSpec) { s.Image = " mindie:server" }),
			invalid("spec.image", badString(" mindie:server"), "leading or trailing whitespace")),
		valid("pull secret", spec(func(s *infer.InferServerSpec) {
			s.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}}
		})),
		bad("bad pull secret", spec(func(s *infer.InferServerSpec) {
			s.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}, {Name: "Reg_Cred"}}
		}), invalid("spec.imagePullSecrets[1].name", badString("Reg_Cred"))),
		valid("own command", spec(func(s *infer.InferServerSpec) { s.Command = []string{"python3", "-m", "server"} })),
		bad("command empty", spec(func(s *infer.InferServerSpec) { s.Command = nil }), required("spec.command")),
		valid("serviceAccountName", spec(func(s *infer.InferServerSpec) { s.ServiceAccountName = "mindie" })),
		bad("bad serviceAccountName", spec(func(s *infer.InferServerSpec) { s.ServiceAccountName = "Mindie_SA" }),
			invalid("spec.serviceAccountName", badString("Mindie_SA"))),
	})
}

func TestValidateInstallPath(t *testing.T) {
	const path = "spec.installPath"
	set := func(v string) func(*infer.InferServer) {
		return func(s *infer.InferServer) { s.Spec.InstallPath = v }
	}
	runCases(t, []testCase{
		valid("absolute", set("/opt/mindie")),
		valid("dots inside a name", set("/opt/mindie..2/x..")),
		bad("relative", set("usr/local/mindie"), invalid(path, badString("usr/local/mindie"), "must be an absolute path")),
		bad("dot relative", set("./mindie"), invalid(path, badString("./mindie"), "must be an absolute path")),
		bad("parent directory", set("/usr/local/../mindie"), invalid(path, badString("/usr/local/../mindie"), "must not contain '..'")),
		bad("trailing parent directory", set("/usr/local/.."), invalid(path, badString("/usr/local/.."), "must not contain '..'")),
		bad("empty", set(""), required(path, "must be an absolute path")),
	})
}

func TestValidateServerConfig(t *testing.T) {
	const path = "spec.serverConfig"
	cfg := func(c infer.ServerConfigSource) func(*infer.InferServer) {
		return func(s *infer.InferServer) { s.Spec.ServerConfig = c }
	}
	cm := func(name, key string) *infer.ConfigMapKeyReference {
		return &infer.ConfigMapKeyReference{Name: name, Key: key}
	}
	inline := func(doc string) func(*infer.InferServer) { return cfg(infer.ServerConfigSource{Inline: doc}) }
	notObject := invalid(path+".inline", "must be a JSON object")
	huge := `{"a":"` + strings.Repeat("x", 512*1024) + `"}`
	onlyOne := "may set only one of configMap, inline or hostPath"
	runCases(t, []testCase{
		valid("hostPath", cfg(infer.ServerConfigSource{HostPath: "/etc/mindie/config.json"})),
		valid("configMap", cfg(infer.ServerConfigSource{ConfigMap: cm("mindie-config", "config.json")})),
		valid("configMap other key", cfg(infer.ServerConfigSource{ConfigMap: cm("mindie-config", "server.json")})),
		valid(`inline {"a":1}`, inline(`{"a":1}`)),
		valid("inline {}", inline(`{}`)),
		valid("inline nested", inline(`{"ServerConfig":{"port":1025,"ipAddress":"0.0.0.0"},"BackendConfig":{"npuDeviceIds":[[0,1]]}}`)),
		bad("none set", cfg(infer.ServerConfigSource{}), required(path, "must set one of configMap, inline or hostPath")),
		bad("inline and hostPath", cfg(infer.ServerConfigSource{Inline: `{}`, HostPath: "/etc/config.json"}), forbidden(path, onlyOne)),
		bad("configMap and inline", cfg(infer.ServerConfigSource{ConfigMap: cm("c", "config.json"), Inline: `{}`}), forbidden(path, onlyOne)),
		bad("all three", cfg(infer.ServerConfigSource{ConfigMap: cm("c", "config.json"), Inline: `{}`, HostPath: "/etc/config.json"}),
			forbidden(path, onlyOne)),
		bad("inline array", inline(`[1,2]`), notObject),
		bad("inline string", inline(`"config"`), notObject),
		bad("inline number", inline(`1`), notObject),
		bad("inline null", inline(`null`), notObject),
		bad("inline not JSON", inline(`port: 1025`), notObject),
		bad("inline trailing data", inline(`{"a":1} {}`), notObject),
		bad("inline too long", inline(huge), tooLong(path+".inline", "may not be more than 524288 bytes")),
		bad("configMap bad name", cfg(infer.ServerConfigSource{ConfigMap: cm("Bad_Name", "config.json")}),
			invalid(path+".configMap.name", badString("Bad_Name"))),
		bad("configMap bad key", cfg(infer.ServerConfigSource{ConfigMap: cm("mindie-config", "conf/config.json")}),
			invalid(path+".configMap.key", badString("conf/config.json"))),
		bad("configMap empty key", cfg(infer.ServerConfigSource{ConfigMap: cm("mindie-config", "")}),
			invalid(path+".configMap.key", badString(""))),
		bad("hostPath relative", cfg(infer.ServerConfigSource{HostPath: "config.json"}),
			invalid(path+".hostPath", badString("config.json"), "must be an absolute path")),
		bad("hostPath with ..", cfg(infer.ServerConfigSource{HostPath: "/etc/../config.json"}),
			invalid(path+".hostPath", badString("/etc/../config.json"), "must not contain '..'")),
	})
}

func TestValidateStorage(t *testing.T) {
	storage := func(f func(*infer.InferStorage)) func(*infer.InferServer) {
		return func(s *infer.InferServer) { f(&s.Spec.Storage) }
	}
	pvc := func(claim string) corev1.VolumeSource {
		return corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}
	}
	const oneSource = "must set exactly one volume source"
	runCases(t, []testCase{
		valid("model on a PVC", storage(func(st *infer.InferStorage) {
			st.Model = &infer.InferVolume{MountPath: "/models", VolumeSource: pvc("models")}
		})),
		valid("writable on emptyDir", storage(func(st *infer.InferStorage) {
			st.Writable = &infer.InferVolume{MountPath: "/data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
		})),
		valid("run script from a ConfigMap", storage(func(st *infer.InferStorage) {
			st.RunScript = &infer.InferVolume{MountPath: "/scripts", VolumeSource: corev1.VolumeSource{
				ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "run"}},
			}}
		})),
		bad("model without source", storage(func(st *infer.InferStorage) { st.Model.VolumeSource = corev1.VolumeSource{} }),
			required("spec.storage.model", oneSource)),
		bad("model with two sources", storage(func(st *infer.InferStorage) {
			st.Model.VolumeSource.EmptyDir = &corev1.EmptyDirVolumeSource{}
		}), forbidden("spec.storage.model.emptyDir", "may not be set together with hostPath")),
		bad("writable with two sources", storage(func(st *infer.InferStorage) {
			st.Writable.VolumeSource = pvc("data")
			st.Writable.VolumeSource.NFS = &corev1.NFSVolumeSource{Server: "nfs", Path: "/data"}
		}), forbidden("spec.storage.writable.persistentVolumeClaim", "may not be set together with nfs")),
		bad("writable relative mountPath", storage(func(st *infer.InferStorage) { st.Writable.MountPath = "data" }),
			invalid("spec.storage.writable.mountPath", badString("data"), "must be an absolute path")),
		bad("runScript mountPath with ..", storage(func(st *infer.InferStorage) { st.RunScript.MountPath = "/mnt/../run.sh" }),
			invalid("spec.storage.runScript.mountPath", badString("/mnt/../run.sh"), "must not contain '..'")),
		bad("runScript mountPath empty", storage(func(st *infer.InferStorage) { st.RunScript.MountPath = "" }),
			required("spec.storage.runScript.mountPath", "must be an absolute path")),
		bad("model relative hostPath", storage(func(st *infer.InferStorage) { st.Model.HostPath.Path = "mnt/model" }),
			invalid("spec.storage.model.hostPath.path", badString("mnt/model"), "must be an absolute path")),
		bad("writable PVC without claim", storage(func(st *infer.InferStorage) {
			st.Writable = &infer.InferVolume{MountPath: "/data", VolumeSource: pvc("")}
		}), required("spec.storage.writable.persistentVolumeClaim.claimName")),
		bad("model unset", storage(func(st *infer.InferStorage) { st.Model = nil }), required("spec.storage.model")),
		bad("writable mounted where the model is", storage(func(st *infer.InferStorage) { st.Writable.MountPath = st.Model.MountPath + "/" }),
			invalid("spec.storage.writable.mountPath", "is already the mount path of spec.storage.model")),
		bad("shared memory 0", storage(func(st *infer.InferStorage) { st.SharedMemorySize = qty("0") }),
			invalid("spec.storage.sharedMemorySize", badString("0"), "must be greater than zero")),
		bad("shared memory negative", storage(func(st *infer.InferStorage) { st.SharedMemorySize = qty("-1Gi") }),
			invalid("spec.storage.sharedMemorySize", badString("-1Gi"), "must be greater than zero")),
		bad("shared memory unset", storage(func(st *infer.InferStorage) { st.SharedMemorySize = nil }),
			required("spec.storage.sharedMemorySize")),
	})
}

func TestValidateEnv(t *testing.T) {
	env := func(vars ...corev1.EnvVar) func(*infer.InferServer) {
		return func(s *infer.InferServer) { s.Spec.Env = vars }
	}
	v := func(name, value string) corev1.EnvVar { return corev1.EnvVar{Name: name, Value: value} }
	fromField := &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}
	runCases(t, []testCase{
		valid("plain variables", env(v("LOG_LEVEL", "debug"), v("ASCEND_RT_VISIBLE_DEVICES", "0,1"))),
		valid("lowercase mies_ prefix", env(v("mies_debug", "1"))),
		valid("valueFrom", env(corev1.EnvVar{Name: "POD_NAME", ValueFrom: fromField})),
		bad("MIES_ prefix", env(v("MIES_CONTAINER_IP", "1.2.3.4")),
			invalid("spec.env[0].name", badString("MIES_CONTAINER_IP"), `"MIES_"`, "set by the controller")),
		bad("duplicate", env(v("LOG_LEVEL", "debug"), v("OTHER", "x"), v("LOG_LEVEL", "info")),
			duplicate("spec.env[2].name", `Duplicate value: "LOG_LEVEL"`)),
		bad("empty name", env(v("", "x")), required("spec.env[0].name")),
		bad("name with =", env(v("A=B", "x")), invalid("spec.env[0].name", badString("A=B"))),
		bad("value and valueFrom", env(corev1.EnvVar{Name: "POD_NAME", Value: "x", ValueFrom: fromField}),
			invalid("spec.env[0].valueFrom", "may not be set together with value")),
	})
}

func TestValidatePodMetadataAndNodeSelector(t *testing.T) {
	labels := func(m map[string]string) func(*infer.InferServer) {
		return func(s *infer.InferServer) { s.Spec.PodMetadata.Labels = m }
	}
	nodeSelector := func(m map[string]string) func(*infer.InferServer) {
		return func(s *infer.InferServer) { s.Spec.NodeSelector = m }
	}
	reserved := `keys under "infer.mindie.io/" are reserved for the controller`
	runCases(t, []testCase{
		valid("labels", labels(map[string]string{"app": "llama", "team.example.com/owner": "ai"})),
		valid("annotations", func(s *infer.InferServer) {
			s.Spec.PodMetadata.Annotations = map[string]string{"prometheus.io/scrape": "true"}
		}),
		bad("reserved label", labels(map[string]string{"infer.mindie.io/server": "x"}),
			invalid("spec.podMetadata.labels[infer.mindie.io/server]", badString("infer.mindie.io/server"), reserved)),
		bad("other reserved label", labels(map[string]string{"app": "llama", "infer.mindie.io/instance": "0"}),
			invalid("spec.podMetadata.labels[infer.mindie.io/instance]", badString("infer.mindie.io/instance"), reserved)),
		bad("bad label key", labels(map[string]string{"bad key": "x"}),
			invalid("spec.podMetadata.labels[bad key]", badString("bad key"))),
		bad("bad label value", labels(map[string]string{"app": "not valid!"}),
			invalid("spec.podMetadata.labels[app]", badString("not valid!"))),
		bad("bad annotation key", func(s *infer.InferServer) {
			s.Spec.PodMetadata.Annotations = map[string]string{"bad key": "x"}
		}, invalid("spec.podMetadata.annotations", badString("bad key"))),
		valid("nodeSelector", nodeSelector(map[string]string{"kubernetes.io/hostname": "node-1"})),
		bad("nodeSelector accelerator", nodeSelector(map[string]string{"accelerator": "huawei-Ascend910"}),
			forbidden("spec.nodeSelector[accelerator]", "is set from spec.resources.npu.type")),
		bad("nodeSelector bad key", nodeSelector(map[string]string{"bad key": "x"}),
			invalid("spec.nodeSelector[bad key]", badString("bad key"))),
	})
}

func TestValidateExtraVolumes(t *testing.T) {
	emptyDir := corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}
	vol := func(name string) corev1.Volume { return corev1.Volume{Name: name, VolumeSource: emptyDir} }
	mount := func(name, path string) corev1.VolumeMount { return corev1.VolumeMount{Name: name, MountPath: path} }
	extra := func(vols []corev1.Volume, mounts ...corev1.VolumeMount) func(*infer.InferServer) {
		return func(s *infer.InferServer) { s.Spec.Volumes, s.Spec.VolumeMounts = vols, mounts }
	}
	cache := []corev1.Volume{vol("cache")}
	cases := []testCase{
		valid("volume and mount", extra(cache, mount("cache", "/cache"))),
		valid("two mounts of one volume", extra(cache, mount("cache", "/cache"), mount("cache", "/tmp/cache"))),
		valid("mount below the model", extra(cache, mount("cache", modelPath+"/cache"))),
		valid("unmounted volume", extra(cache)),
		bad("duplicate volume", extra([]corev1.Volume{vol("cache"), vol("cache")}),
			duplicate("spec.volumes[1].name", `"cache"`)),
		bad("bad volume name", extra([]corev1.Volume{vol("Cache")}), invalid("spec.volumes[0].name", badString("Cache"))),
		bad("volume without source", extra([]corev1.Volume{{Name: "cache"}}),
			required("spec.volumes[0]", "must set exactly one volume source")),
		bad("volume with two sources", extra([]corev1.Volume{{Name: "cache", VolumeSource: corev1.VolumeSource{
			HostPath: &corev1.HostPathVolumeSource{Path: "/cache"}, EmptyDir: &corev1.EmptyDirVolumeSource{},
		}}}), forbidden("spec.volumes[0].emptyDir", "may not be set together with hostPath")),
		bad("mount of an unknown volume", extra(cache, mount("missing", "/missing")),
			notFound("spec.volumeMounts[0].name", `Not found: "missing"`)),
		bad("mount of a controller volume", extra(nil, mount("model", "/other")),
			notFound("spec.volumeMounts[0].name", `"model"`)),
		bad("relative mount", extra(cache, mount("cache", "cache")),
			invalid("spec.volumeMounts[0].mountPath", badString("cache"), "must be an absolute path")),
		bad("two mounts at one path", extra(cache, mount("cache", "/cache"), mount("cache", "/cache/")),
			duplicate("spec.volumeMounts[1].mountPath", `"/cache/"`)),
	}
	for _, p := range []string{modelPath, modelPath + "/", writablePath, runScriptPath} {
		cases = append(cases, bad("mount at "+p, extra(cache, mount("cache", p)),
			duplicate("spec.volumeMounts[0].mountPath", strconv.Quote(p))))
	}
	cases = append(cases, bad("mount at a moved model path", func(s *infer.InferServer) {
		s.Spec.Storage.Model.MountPath = "/models"
		extra(cache, mount("cache", "/models"))(s)
	}, duplicate("spec.volumeMounts[0].mountPath", `"/models"`)))
	reservedNames := []string{"dshm", "model", "ranktable", "run-script", "server-config", "tls", "writable-data"}
	for _, name := range reservedNames {
		cases = append(cases, bad("reserved volume "+name, extra([]corev1.Volume{vol(name)}),
			invalid("spec.volumes[0].name", append([]string{badString(name), "is used by the controller"}, reservedNames...)...)))
	}
	runCases(t, cases)
}

func TestValidateTLS(t *testing.T) {
	tls := func(enabled bool, secret string) func(*infer.InferServer) {
		return func(s *infer.InferServer) { s.Spec.TLS = infer.InferTLS{Enabled: enabled, SecretName: secret} }
	}
	runCases(t, []testCase{
		valid("enabled without secret", tls(true, "")),
		valid("enabled with secret", tls(true, "mindie-tls")),
		bad("secret without enabled", tls(false, "mindie-tls"),
			forbidden("spec.tls.secretName", "may be set only when spec.tls.enabled is true")),
		bad("bad secret name", tls(true, "Mindie_TLS"), invalid("spec.tls.secretName", badString("Mindie_TLS"))),
		bad("bad secret name without enabled", tls(false, "Mindie_TLS"),
			forbidden("spec.tls.secretName"), invalid("spec.tls.secretName", badString("Mindie_TLS"))),
	})
}

func TestValidateTolerations(t *testing.T) {
	tolerate := func(ts ...corev1.Toleration) func(*infer.InferServer) {
		return func(s *infer.InferServer) { s.Spec.Tolerations = ts }
	}
	exists := corev1.Toleration{Key: "huawei.com/Ascend910", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}
	runCases(t, []testCase{
		valid("Exists", tolerate(exists)),
		valid("Equal with NoExecute seconds", tolerate(corev1.Toleration{
			Key: "node.kubernetes.io/unreachable", Operator: corev1.TolerationOpEqual, Value: "x",
			Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](30),
		})),
		valid("operator and effect unset", tolerate(corev1.Toleration{Key: "dedicated", Value: "ai"})),
		bad("bad operator", tolerate(exists, corev1.Toleration{Key: "k", Operator: "Maybe"}),
			notSupported("spec.tolerations[1].operator", "Maybe", "Equal", "Exists")),
		bad("Exists with value", tolerate(corev1.Toleration{Key: "k", Operator: corev1.TolerationOpExists, Value: "v"}),
			invalid("spec.tolerations[0].value", badString("v"), "must be empty when operator is Exists")),
		bad("bad effect", tolerate(corev1.Toleration{Key: "k", Effect: "Sometimes"}),
			notSupported("spec.tolerations[0].effect", "Sometimes", "NoSchedule", "PreferNoSchedule", "NoExecute")),
		bad("seconds without NoExecute", tolerate(corev1.Toleration{Key: "k", Effect: corev1.TaintEffectNoSchedule, TolerationSeconds: ptr.To[int64](5)}),
			forbidden("spec.tolerations[0].tolerationSeconds", "may be set only with effect NoExecute")),
		bad("bad key", tolerate(corev1.Toleration{Key: "bad key", Operator: corev1.TolerationOpExists}),
			invalid("spec.tolerations[0].key", badString("bad key"))),
	})
}

func TestValidateReportsAllErrors(t *testing.T) {
	s := validInferServer(t)
	s.Spec.Replicas = ptr.To[int32](0)
	s.Spec.Resources.NPU.Count = ptr.To[int32](9)
	s.Spec.Ports.Inference = ptr.To[int32](80)
	errs := ValidateInferServer(s)
	expectErrors(t, errs, []wantErr{
		invalid("spec.replicas", badInt[int32](0), between(1, 256)),
		invalid("spec.resources.npu.count", badInt[int32](9), between(1, 8)),
		invalid("spec.ports.inference", badInt[int32](80), between(1024, 65535)),
	})
	paths := sets.New[string]()
	for _, e := range errs {
		paths.Insert(e.Field)
	}
	if paths.Len() != 3 {
		t.Errorf("want 3 distinct paths, got %v", sets.List(paths))
	}

	// Errors from every part of the object come back together too.
	s = validInferServer(t)
	s.Name = "Bad_Name"
	s.Spec.Scheduler = "kube"
	s.Spec.Storage.Model.MountPath = "model"
	s.Spec.Health.Liveness.TimeoutSeconds = ptr.To[int32](601)
	s.Spec.Health.Readiness.PeriodSeconds = ptr.To[int32](0)
	s.Spec.Env = []corev1.EnvVar{{Name: "MIES_X"}}
	s.Spec.Strategy.RollingUpdate.MaxSurge = ptr.To(intstr.FromString("abc"))
	expectErrors(t, ValidateInferServer(s), []wantErr{
		invalid("metadata.name", badString("Bad_Name")),
		notSupported("spec.scheduler", "kube", "default", "volcano"),
		invalid("spec.storage.model.mountPath", badString("model")),
		invalid("spec.health.liveness.timeoutSeconds", badInt[int32](601), between(1, 600)),
		invalid("spec.health.readiness.periodSeconds", badInt[int32](0), between(1, 3600)),
		invalid("spec.env[0].name", badString("MIES_X")),
		invalid("spec.strategy.rollingUpdate.maxSurge", badString("abc")),
	})
}

// updatable returns a valid stored InferServer; updates need a resourceVersion.
func updatable(t *testing.T) *infer.InferServer {
	t.Helper()
	s := validInferServer(t)
	s.ResourceVersion = "7"
	return s
}

func TestValidateInferServerUpdate(t *testing.T) {
	const recreate = "create a new InferServer"
	cases := []struct {
		name   string
		old    func(*infer.InferServerSpec)
		update func(*infer.InferServerSpec)
		want   []wantErr
	}{
		{name: "no change"},
		{name: "scale", update: func(s *infer.InferServerSpec) { s.Replicas = ptr.To[int32](12) }},
		{name: "new image", update: func(s *infer.InferServerSpec) { s.Image = "mindie:2.0" }},
		{name: "new image and replicas and ports", update: func(s *infer.InferServerSpec) {
			s.Image, s.Replicas = "registry.local/mindie:2.0", ptr.To[int32](256)
			s.Ports.Inference, s.Ports.Management = ptr.To[int32](8080), ptr.To[int32](8081)
		}},
		{
			name:   "nodesPerInstance 1 to 2",
			update: func(s *infer.InferServerSpec) { s.NodesPerInstance = ptr.To[int32](2) },
			want:   []wantErr{forbidden("spec.nodesPerInstance", recreate, "cannot change nodes per instance")},
		},
		{
			name:   "nodesPerInstance 2 to 4",
			old:    func(s *infer.InferServerSpec) { s.NodesPerInstance = ptr.To[int32](2) },
			update: func(s *infer.InferServerSpec) { s.NodesPerInstance = ptr.To[int32](4) },
			want:   []wantErr{forbidden("spec.nodesPerInstance", recreate)},
		},
		{
			name:   "nodesPerInstance 4 to 1",
			old:    func(s *infer.InferServerSpec) { s.NodesPerInstance = ptr.To[int32](4) },
			update: func(s *infer.InferServerSpec) { s.NodesPerInstance = ptr.To[int32](1) },
			want:   []wantErr{forbidden("spec.nodesPerInstance", recreate)},
		},
		{
			name:   "nodesPerInstance to an invalid value",
			update: func(s *infer.InferServerSpec) { s.NodesPerInstance = ptr.To[int32](3) },
			want: []wantErr{
				invalid("spec.nodesPerInstance", badInt[int32](3)),
				forbidden("spec.nodesPerInstance", recreate),
			},
		},
		{
			name:   "the new spec is validated",
			update: func(s *infer.InferServerSpec) { s.Replicas = ptr.To[int32](0) },
			want:   []wantErr{invalid("spec.replicas", badInt[int32](0), between(1, 256))},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			oldObj := updatable(t)
			if tc.old != nil {
				tc.old(&oldObj.Spec)
			}
			newObj := oldObj.DeepCopy()
			if tc.update != nil {
				tc.update(&newObj.Spec)
			}
			expectErrors(t, ValidateInferServerUpdate(newObj, oldObj), tc.want)
		})
	}

	t.Run("metadata", func(t *testing.T) {
		oldObj := updatable(t)
		newObj := oldObj.DeepCopy()
		newObj.Name = "other"
		expectErrors(t, ValidateInferServerUpdate(newObj, oldObj), []wantErr{invalid("metadata.name", "field is immutable")})
	})
}

func TestValidateInferServerStatusUpdate(t *testing.T) {
	cond := func(typ string, status metav1.ConditionStatus) metav1.Condition {
		return metav1.Condition{Type: typ, Status: status, Reason: "Test", LastTransitionTime: metav1.Now()}
	}
	nonNegative := "must be greater than or equal to 0"
	cases := []struct {
		name   string
		status infer.InferServerStatus
		want   []wantErr
	}{
		{name: "empty"},
		{name: "rolling out", status: infer.InferServerStatus{
			ObservedGeneration: 3, Replicas: 4, UpdatedReplicas: 2, ReadyReplicas: 3, AvailableReplicas: 3, UnavailableReplicas: 1,
			Conditions: []metav1.Condition{
				cond("Available", metav1.ConditionTrue),
				cond("Progressing", metav1.ConditionUnknown),
				cond("Degraded", metav1.ConditionFalse),
			},
		}},
		{name: "all ready", status: infer.InferServerStatus{Replicas: 2, ReadyReplicas: 2, AvailableReplicas: 2}},
		{
			name:   "negative observedGeneration",
			status: infer.InferServerStatus{ObservedGeneration: -1},
			want:   []wantErr{invalid("status.observedGeneration", badInt[int64](-1), nonNegative)},
		},
		{
			name:   "negative replicas",
			status: infer.InferServerStatus{Replicas: -1},
			want: []wantErr{
				invalid("status.replicas", badInt[int64](-1), nonNegative),
				invalid("status.readyReplicas", "cannot be greater than status.replicas"),
			},
		},
		{
			name:   "negative updatedReplicas",
			status: infer.InferServerStatus{UpdatedReplicas: -2},
			want:   []wantErr{invalid("status.updatedReplicas", badInt[int64](-2), nonNegative)},
		},
		{
			name:   "negative readyReplicas",
			status: infer.InferServerStatus{ReadyReplicas: -1},
			want: []wantErr{
				invalid("status.readyReplicas", badInt[int64](-1), nonNegative),
				invalid("status.availableReplicas", "cannot be greater than status.readyReplicas"),
			},
		},
		{
			name:   "negative availableReplicas",
			status: infer.InferServerStatus{AvailableReplicas: -1},
			want:   []wantErr{invalid("status.availableReplicas", badInt[int64](-1), nonNegative)},
		},
		{
			name:   "negative unavailableReplicas",
			status: infer.InferServerStatus{Replicas: 1, UnavailableReplicas: -1},
			want:   []wantErr{invalid("status.unavailableReplicas", badInt[int64](-1), nonNegative)},
		},
		{
			name:   "readyReplicas above replicas",
			status: infer.InferServerStatus{Replicas: 2, ReadyReplicas: 3},
			want:   []wantErr{invalid("status.readyReplicas", badInt[int32](3), "cannot be greater than status.replicas")},
		},
		{
			name:   "availableReplicas above readyReplicas",
			status: infer.InferServerStatus{Replicas: 3, ReadyReplicas: 1, AvailableReplicas: 2},
			want:   []wantErr{invalid("status.availableReplicas", badInt[int32](2), "cannot be greater than status.readyReplicas")},
		},
		{
			name: "duplicate condition",
			status: infer.InferServerStatus{Conditions: []metav1.Condition{
				cond("Available", metav1.ConditionTrue), cond("Progressing", metav1.ConditionTrue), cond("Available", metav1.ConditionFalse),
			}},
			want: []wantErr{duplicate("status.conditions[2].type", `Duplicate value: "Available"`)},
		},
		{
			name:   "condition status outside True/False/Unknown",
			status: infer.InferServerStatus{Conditions: []metav1.Condition{cond("Available", "Maybe")}},
			want:   []wantErr{notSupported("status.conditions[0].status", "Maybe", "True", "False", "Unknown")},
		},
		{
			name:   "condition status lowercase",
			status: infer.InferServerStatus{Conditions: []metav1.Condition{cond("Available", "true")}},
			want:   []wantErr{notSupported("status.conditions[0].status", "true", "True", "False", "Unknown")},
		},
		{
			name:   "condition without type",
			status: infer.InferServerStatus{Conditions: []metav1.Condition{cond("", metav1.ConditionTrue)}},
			want:   []wantErr{required("status.conditions[0].type")},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			oldObj := updatable(t)
			newObj := oldObj.DeepCopy()
			newObj.Status = tc.status
			expectErrors(t, ValidateInferServerStatusUpdate(newObj, oldObj), tc.want)
		})
	}

	t.Run("spec is not validated", func(t *testing.T) {
		oldObj := updatable(t)
		oldObj.Spec.Replicas = ptr.To[int32](0)
		newObj := oldObj.DeepCopy()
		newObj.Status.Replicas = 1
		expectErrors(t, ValidateInferServerStatusUpdate(newObj, oldObj), nil)
	})
}

// routed gives the valid InferServer a defaulted router, then applies mutate.
func routed(mutate func(*infer.RouterSpec)) func(*infer.InferServer) {
	return func(s *infer.InferServer) {
		in := &v1alpha1.RouterSpec{}
		v1alpha1.SetDefaults_RouterSpec(in)
		s.Spec.Router = &infer.RouterSpec{}
		if err := scheme.Convert(in, s.Spec.Router, nil); err != nil {
			panic(err)
		}
		mutate(s.Spec.Router)
	}
}

func TestValidateRouter(t *testing.T) {
	q := resource.MustParse
	runCases(t, []testCase{
		valid("defaulted", routed(func(*infer.RouterSpec) {})),
		valid("least_load, one replica, no auth", routed(func(r *infer.RouterSpec) {
			r.Algorithm, r.Replicas, r.Authentication = infer.RouterLeastLoad, ptr.To[int32](1), infer.RouterAuthenticationNone
		})),
		valid("thresholds 0 and 100", routed(func(r *infer.RouterSpec) {
			r.SlotsThresholdPercent, r.BlocksThresholdPercent = ptr.To[int32](0), ptr.To[int32](100)
		})),
		bad("unknown algorithm", routed(func(r *infer.RouterSpec) { r.Algorithm = "random" }),
			notSupported("spec.router.algorithm", "random", "round_robin", "cache_affinity", "least_load")),
		bad("replicas 0", routed(func(r *infer.RouterSpec) { r.Replicas = ptr.To[int32](0) }),
			invalid("spec.router.replicas", badInt[int32](0), between(1, 64))),
		bad("authentication lower case", routed(func(r *infer.RouterSpec) { r.Authentication = "none" }),
			notSupported("spec.router.authentication", "none", "Kubernetes", "None")),
		bad("image blank", routed(func(r *infer.RouterSpec) { r.Image = " " }), required("spec.router.image", "container image")),
		bad("secret name", routed(func(r *infer.RouterSpec) { r.TLSSecretName = "Bad_Name" }),
			invalid("spec.router.tlsSecretName", badString("Bad_Name"))),
		bad("threshold 101", routed(func(r *infer.RouterSpec) { r.BlocksThresholdPercent = ptr.To[int32](101) }),
			invalid("spec.router.blocksThresholdPercent", badInt[int32](101), between(0, 100))),
		bad("retries 11", routed(func(r *infer.RouterSpec) { r.MaxRetries = ptr.To[int32](11) }),
			invalid("spec.router.maxRetries", badInt[int32](11), between(0, 10))),
		bad("body 2Gi", routed(func(r *infer.RouterSpec) { r.MaxBodySize = ptr.To(q("2Gi")) }),
			invalid("spec.router.maxBodySize", `"2Gi"`, "1Ki and 1Gi")),
		bad("per-instance above total", routed(func(r *infer.RouterSpec) {
			r.MaxInflight, r.MaxInflightPerInstance = ptr.To[int32](10), ptr.To[int32](11)
		}), invalid("spec.router.maxInflightPerInstance", badInt[int32](11), "at most spec.router.maxInflight (10)")),
		bad("request timeout below first token", routed(func(r *infer.RouterSpec) {
			r.FirstTokenTimeoutSeconds, r.RequestTimeoutSeconds = ptr.To[int32](60), ptr.To[int32](30)
		}), invalid("spec.router.requestTimeoutSeconds", badInt[int32](30), "at least spec.router.firstTokenTimeoutSeconds (60)")),
		bad("resources", routed(func(r *infer.RouterSpec) {
			r.Resources.Requests[corev1.ResourceCPU] = q("4")
			r.Resources.Limits["nvidia.com/gpu"] = q("1")
		}), invalid("spec.router.resources.requests[cpu]", `"4"`, "at most the limit 2"),
			notSupported("spec.router.resources.limits[nvidia.com/gpu]", "nvidia.com/gpu", "cpu", "memory")),
		bad("pods' account is the router's", func(s *infer.InferServer) {
			routed(func(*infer.RouterSpec) {})(s)
			s.Spec.ServiceAccountName = s.Name + "-router"
		}, invalid("spec.serviceAccountName", badString("llama-router"), "router's own service account")),
		valid("account named like a router without one", func(s *infer.InferServer) { s.Spec.ServiceAccountName = s.Name + "-router" }),
	})
}

// pd gives the valid InferServer a router and the roles, defaulted as the
// API server would.
func pd(prefill, decode int32, mutate func(*infer.InferServerSpec)) func(*infer.InferServer) {
	return func(s *infer.InferServer) {
		ext := &v1alpha1.InferServer{Spec: v1alpha1.InferServerSpec{
			Router: &v1alpha1.RouterSpec{},
			Roles: []v1alpha1.InferRole{
				{Name: v1alpha1.RolePrefill, Instances: ptr.To(prefill)},
				{Name: v1alpha1.RoleDecode, Instances: ptr.To(decode)},
			},
		}}
		scheme.Default(ext)
		var spec infer.InferServerSpec
		if err := scheme.Convert(&ext.Spec, &spec, nil); err != nil {
			panic(err)
		}
		s.Spec = spec
		if mutate != nil {
			mutate(&s.Spec)
		}
	}
}

func TestValidateRoles(t *testing.T) {
	runCases(t, []testCase{
		valid("2P1D", pd(2, 1, nil)),
		valid("15P1D", pd(15, 1, nil)),
		valid("2-node prefill, 1-node decode", pd(1, 1, func(s *infer.InferServerSpec) { s.Roles[0].NodesPerInstance = ptr.To[int32](2) })),
		valid("4-node decode", pd(2, 1, func(s *infer.InferServerSpec) { s.Roles[1].NodesPerInstance = ptr.To[int32](4) })),
		valid("cross-node roles by spec.nodesPerInstance", pd(1, 1, func(s *infer.InferServerSpec) {
			s.NodesPerInstance = ptr.To[int32](2)
			s.Roles[0].NodesPerInstance, s.Roles[1].NodesPerInstance = ptr.To[int32](2), ptr.To[int32](4)
		})),
		valid("15 members of 4 nodes", pd(14, 1, func(s *infer.InferServerSpec) {
			s.Roles[0].NodesPerInstance, s.Roles[1].NodesPerInstance = ptr.To[int32](4), ptr.To[int32](4)
		})),
		bad("cross-node role inheriting 4 NPUs", pd(1, 1, func(s *infer.InferServerSpec) {
			s.Resources.NPU.Count = ptr.To[int32](4)
			s.Roles[1].NodesPerInstance = ptr.To[int32](2)
		}), invalid("spec.roles[1].nodesPerInstance", badInt[int32](2), "inherits spec.resources.npu.count 4", "spec.roles[1].resources", "npu.count 8")),
		bad("cross-node role inheriting Ascend310P", pd(1, 1, func(s *infer.InferServerSpec) {
			s.Resources.NPU.Type = infer.NPUTypeAscend310P
			s.Roles[0].NodesPerInstance = ptr.To[int32](4)
		}), invalid("spec.roles[0].nodesPerInstance", badInt[int32](4), "only Ascend910", "npu.type Ascend310P")),
		bad("no router", pd(1, 1, func(s *infer.InferServerSpec) { s.Router = nil }),
			required("spec.router", "needs a router")),
		bad("cache_affinity", pd(1, 1, func(s *infer.InferServerSpec) { s.Router.Algorithm = infer.RouterCacheAffinity }),
			invalid("spec.router.algorithm", `"cache_affinity"`, "does not apply with spec.roles")),
		bad("17 in a group", pd(9, 8, nil),
			invalid("spec.roles", "Invalid value: 17", "at most 16 instances")),
		bad("zero decode", pd(1, 0, nil),
			invalid("spec.roles[1].instances", badInt[int32](0), between(1, 15))),
		bad("decode missing", pd(1, 1, func(s *infer.InferServerSpec) { s.Roles = s.Roles[:1] }),
			required("spec.roles", "a decode role")),
		bad("unknown role", pd(1, 1, func(s *infer.InferServerSpec) { s.Roles[1].Name = "flex" }),
			notSupported("spec.roles[1].name", "flex", "prefill", "decode"), required("spec.roles", "a decode role")),
		bad("duplicate", pd(1, 1, func(s *infer.InferServerSpec) { s.Roles[1].Name = infer.RolePrefill }),
			duplicate("spec.roles[1].name"), required("spec.roles", "a decode role")),
		bad("three nodes", pd(1, 1, func(s *infer.InferServerSpec) { s.Roles[0].NodesPerInstance = ptr.To[int32](3) }),
			invalid("spec.roles[0].nodesPerInstance", badInt[int32](3), "must be 1 (single-node), 2 or 4")),
		bad("cross-node role with 4 NPUs", pd(1, 1, func(s *infer.InferServerSpec) {
			s.Roles[1].NodesPerInstance = ptr.To[int32](2)
			r := s.Resources
			r.NPU.Count = ptr.To[int32](4)
			s.Roles[1].Resources = &r
		}), invalid("spec.roles[1].resources.npu.count", badInt[int32](4), "must be 8")),
	})
}

func TestValidateRolesUpdate(t *testing.T) {
	old := validInferServer(t)
	pd(1, 1, nil)(old)
	plain := validInferServer(t)
	plain.ResourceVersion, old.ResourceVersion = "1", "1"
	expectErrors(t, ValidateInferServerUpdate(plain, old), []wantErr{forbidden("spec.roles", "cannot add or remove roles in place")})
	expectErrors(t, ValidateInferServerUpdate(old, plain), []wantErr{forbidden("spec.roles", "cannot add or remove roles in place")})
	changed := old.DeepCopy()
	changed.Spec.Roles[0].NodesPerInstance = ptr.To[int32](2)
	changed.Spec.Roles[0].Resources = &infer.InferResources{}
	*changed.Spec.Roles[0].Resources = old.Spec.Resources
	changed.Spec.Roles[0].Resources.NPU.Count = ptr.To[int32](8)
	expectErrors(t, ValidateInferServerUpdate(changed, old), []wantErr{forbidden("spec.roles[0].nodesPerInstance", "cannot change nodes per instance")})
	more := old.DeepCopy()
	more.Spec.Roles[0].Instances = ptr.To[int32](3)
	expectErrors(t, ValidateInferServerUpdate(more, old), nil)
}

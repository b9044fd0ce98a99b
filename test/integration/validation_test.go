package integration

import (
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
)

type specMutation func(*v1alpha1.InferServer)

func replicas(n int32) specMutation {
	return func(s *v1alpha1.InferServer) { s.Spec.Replicas = ptr.To(n) }
}
func nodes(n int32) specMutation {
	return func(s *v1alpha1.InferServer) { s.Spec.NodesPerInstance = ptr.To(n) }
}
func npus(n int32) specMutation {
	return func(s *v1alpha1.InferServer) { s.Spec.Resources.NPU.Count = ptr.To(n) }
}
func npuType(t v1alpha1.NPUType) specMutation {
	return func(s *v1alpha1.InferServer) { s.Spec.Resources.NPU.Type = t }
}
func cpu(q string) specMutation {
	return func(s *v1alpha1.InferServer) { s.Spec.Resources.CPU = ptr.To(resource.MustParse(q)) }
}
func memory(q string) specMutation {
	return func(s *v1alpha1.InferServer) { s.Spec.Resources.Memory = ptr.To(resource.MustParse(q)) }
}
func inferencePort(p int32) specMutation {
	return func(s *v1alpha1.InferServer) { s.Spec.Ports.Inference = ptr.To(p) }
}
func nodePort(p int32) specMutation {
	return func(s *v1alpha1.InferServer) { s.Spec.Service.NodePort = p }
}
func startup(n int32) specMutation {
	return func(s *v1alpha1.InferServer) { s.Spec.Health.StartupSeconds = ptr.To(n) }
}
func livenessTimeout(n int32) specMutation {
	return func(s *v1alpha1.InferServer) { s.Spec.Health.Liveness.TimeoutSeconds = ptr.To(n) }
}
func readinessThreshold(n int32) specMutation {
	return func(s *v1alpha1.InferServer) { s.Spec.Health.Readiness.FailureThreshold = ptr.To(n) }
}
func grace(n int64) specMutation {
	return func(s *v1alpha1.InferServer) { s.Spec.TerminationGracePeriodSeconds = ptr.To(n) }
}
func rolling(surge, unavailable intstr.IntOrString) specMutation {
	return func(s *v1alpha1.InferServer) {
		s.Spec.Strategy.RollingUpdate = &v1alpha1.RollingUpdateInferServer{MaxSurge: &surge, MaxUnavailable: &unavailable}
	}
}

// TestValidationThroughTheAPI checks each rule at its bounds and just
// outside, as a client sees it: a 422 Invalid whose causes name the field,
// the value and what is allowed. Creates are dry runs, so nothing is stored.
func TestValidationThroughTheAPI(t *testing.T) {
	e := newEnv(t)
	pct := intstr.FromString
	num := intstr.FromInt32
	cases := []struct {
		name   string
		mutate specMutation
		// field is the path of the expected error; empty means valid.
		field string
		// mentions are strings the error must contain.
		mentions []string
	}{
		{"replicas 1", replicas(1), "", nil},
		{"replicas 256", replicas(256), "", nil},
		{"replicas 0", replicas(0), "spec.replicas", []string{"0", "between 1 and 256"}},
		{"replicas 257", replicas(257), "spec.replicas", []string{"257", "between 1 and 256"}},
		{"nodes 2", nodes(2), "", nil},
		{"nodes 4", nodes(4), "", nil},
		{"nodes 3", nodes(3), "spec.nodesPerInstance", []string{"3", "1", "2 or 4"}},
		{"npus 1", npus(1), "", nil},
		{"npus 8", npus(8), "", nil},
		{"npus 0", npus(0), "spec.resources.npu.count", []string{"between 1 and 8"}},
		{"npus 9", npus(9), "spec.resources.npu.count", []string{"9", "between 1 and 8"}},
		{"npu type 310P", npuType(v1alpha1.NPUTypeAscend310P), "", nil},
		{"npu type unknown", npuType("Ascend950"), "spec.resources.npu.type", []string{"Ascend950", "Ascend910", "Ascend310P"}},
		{"cross-node 310P", func(s *v1alpha1.InferServer) { nodes(2)(s); npuType(v1alpha1.NPUTypeAscend310P)(s) }, "spec.resources.npu.type", []string{"only Ascend910"}},
		{"cross-node 4 npus", func(s *v1alpha1.InferServer) { nodes(4)(s); npus(4)(s) }, "spec.resources.npu.count", []string{"must be 8"}},
		{"cpu 1", cpu("1"), "", nil},
		{"cpu 256000m", cpu("256000m"), "", nil},
		{"cpu 999m", cpu("999m"), "spec.resources.cpu", []string{"999m", "1 and 256 cores"}},
		{"cpu 257", cpu("257"), "spec.resources.cpu", []string{"257", "1 and 256 cores"}},
		{"memory 1000Mi", memory("1000Mi"), "", nil},
		{"memory 256000Mi", memory("256000Mi"), "", nil},
		{"memory 999Mi", memory("999Mi"), "spec.resources.memory", []string{"999Mi", "1000Mi and 256000Mi"}},
		{"memory 256001Mi", memory("256001Mi"), "spec.resources.memory", []string{"256001Mi"}},
		{"port 1024", inferencePort(1024), "", nil},
		{"port 65535", inferencePort(65535), "", nil},
		{"port 1023", inferencePort(1023), "spec.ports.inference", []string{"1023", "between 1024 and 65535"}},
		{"port 65536", inferencePort(65536), "spec.ports.inference", []string{"65536"}},
		{"port equals management", inferencePort(1026), "spec.ports.management", []string{"must differ"}},
		{"nodePort 30000", nodePort(30000), "", nil},
		{"nodePort 32767", nodePort(32767), "", nil},
		{"nodePort 29999", nodePort(29999), "spec.service.nodePort", []string{"29999", "between 30000 and 32767"}},
		{"nodePort 32768", nodePort(32768), "spec.service.nodePort", []string{"32768"}},
		{"startup 10", startup(10), "", nil},
		{"startup 1800", startup(1800), "", nil},
		{"startup 9", startup(9), "spec.health.startupSeconds", []string{"9", "between 10 and 1800"}},
		{"startup 1801", startup(1801), "spec.health.startupSeconds", []string{"1801"}},
		{"liveness timeout 1", livenessTimeout(1), "", nil},
		{"liveness timeout 600", livenessTimeout(600), "", nil},
		{"liveness timeout 0", livenessTimeout(0), "spec.health.liveness.timeoutSeconds", []string{"between 1 and 600"}},
		{"liveness timeout 601", livenessTimeout(601), "spec.health.liveness.timeoutSeconds", []string{"601"}},
		{"readiness threshold 10", readinessThreshold(10), "", nil},
		{"readiness threshold 11", readinessThreshold(11), "spec.health.readiness.failureThreshold", []string{"11", "between 1 and 10"}},
		{"grace 0", grace(0), "", nil},
		{"grace 3600", grace(3600), "", nil},
		{"grace 3601", grace(3601), "spec.terminationGracePeriodSeconds", []string{"3601", "between 0 and 3600"}},
		{"grace -1", grace(-1), "spec.terminationGracePeriodSeconds", []string{"-1"}},
		{"surge 0 unavailable 1", rolling(num(0), num(1)), "", nil},
		{"surge 100% unavailable 0%", rolling(pct("100%"), pct("0%")), "", nil},
		{"surge 0 unavailable 0%", rolling(num(0), pct("0%")), "spec.strategy.rollingUpdate.maxUnavailable", []string{"may not be 0 when maxSurge is 0"}},
		{"surge 101%", rolling(pct("101%"), num(1)), "spec.strategy.rollingUpdate.maxSurge", []string{"101%"}},
		{"surge not a percentage", rolling(pct("half"), num(1)), "spec.strategy.rollingUpdate.maxSurge", []string{"half"}},
		{"scheduler volcano", func(s *v1alpha1.InferServer) { s.Spec.Scheduler = v1alpha1.SchedulerVolcano }, "", nil},
		{"scheduler unknown", func(s *v1alpha1.InferServer) { s.Spec.Scheduler = "kube-batch" }, "spec.scheduler", []string{"kube-batch", "default", "volcano"}},
		{"relative install path", func(s *v1alpha1.InferServer) { s.Spec.InstallPath = "opt/mindie" }, "spec.installPath", []string{"opt/mindie", "absolute"}},
		{"inline config not JSON", func(s *v1alpha1.InferServer) { s.Spec.ServerConfig.Inline = "{oops" }, "spec.serverConfig.inline", []string{"JSON object"}},
		{"reserved env", func(s *v1alpha1.InferServer) {
			s.Spec.Env = append(s.Spec.Env, envVar("MIES_CONTAINER_IP", "1"))
		}, "spec.env[0].name", []string{"MIES_CONTAINER_IP"}},
		{"name 48 chars", func(s *v1alpha1.InferServer) { s.Name = strings.Repeat("a", 48) }, "", nil},
		{"name 49 chars", func(s *v1alpha1.InferServer) { s.Name = strings.Repeat("a", 49) }, "metadata.name", []string{"no more than 48 characters"}},
		{"name with underscore", func(s *v1alpha1.InferServer) { s.Name = "llama_70b" }, "metadata.name", []string{"llama_70b", "RFC 1123"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer("v", tc.mutate)
			_, err := e.client.InferV1alpha1().InferServers("default").Create(e.ctx, s, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if tc.field == "" {
				if err != nil {
					t.Fatalf("want accepted, got %v", err)
				}
				return
			}
			if !apierrors.IsInvalid(err) {
				t.Fatalf("want 422 Invalid, got %v", err)
			}
			cause := findCause(err, tc.field)
			if cause == nil {
				t.Fatalf("no error names %s: %v", tc.field, err)
			}
			for _, m := range tc.mentions {
				if !strings.Contains(cause.Message, m) {
					t.Errorf("error for %s %q does not mention %q", tc.field, cause.Message, m)
				}
			}
		})
	}
	// Dry runs stored nothing.
	list, err := e.client.InferV1alpha1().InferServers("default").List(e.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 0 {
		t.Fatalf("dry-run creates stored %v", names(list.Items))
	}
}

// TestAllErrorsAtOnce: one request, every error, nothing created.
func TestAllErrorsAtOnce(t *testing.T) {
	e := newEnv(t)
	s := newServer("many", replicas(0), npus(9), inferencePort(80), startup(5))
	_, err := e.client.InferV1alpha1().InferServers("default").Create(e.ctx, s, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) {
		t.Fatalf("want 422 Invalid, got %v", err)
	}
	for _, f := range []string{"spec.replicas", "spec.resources.npu.count", "spec.ports.inference", "spec.health.startupSeconds"} {
		if findCause(err, f) == nil {
			t.Errorf("the error does not name %s: %v", f, err)
		}
	}
	if _, err := e.client.InferV1alpha1().InferServers("default").Get(e.ctx, "many", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a refused create left an object behind: %v", err)
	}
}

func TestNodesPerInstanceIsImmutable(t *testing.T) {
	e := newEnv(t)
	s := e.create(newServer("fixed", nodes(2)))
	s.Spec.NodesPerInstance = ptr.To[int32](4)
	_, err := e.client.InferV1alpha1().InferServers("default").Update(e.ctx, s, metav1.UpdateOptions{})
	if !apierrors.IsInvalid(err) {
		t.Fatalf("want 422 Invalid, got %v", err)
	}
	cause := findCause(err, "spec.nodesPerInstance")
	if cause == nil || !strings.Contains(cause.Message, "create a new InferServer") {
		t.Fatalf("the refusal does not say why and what to do: %v", err)
	}
}

func findCause(err error, fieldPath string) *metav1.StatusCause {
	status, ok := err.(apierrors.APIStatus)
	if !ok || status.Status().Details == nil {
		return nil
	}
	for _, c := range status.Status().Details.Causes {
		if c.Field == fieldPath {
			return &c
		}
	}
	return nil
}

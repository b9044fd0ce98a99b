package v1alpha1

import (
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// testScheme has this version's defaulting functions, as AddToScheme
// registers them. It is built on first use: the functions are added to the
// scheme builder by init functions, which run after package variables are
// initialized.
var testScheme = sync.OnceValue(func() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := AddToScheme(s); err != nil {
		panic(err)
	}
	return s
})

// defaulted runs the scheme's defaulting on an InferServer with the given spec.
func defaulted(spec InferServerSpec) *InferServer {
	obj := &InferServer{ObjectMeta: metav1.ObjectMeta{Name: "llama", Namespace: "default"}, Spec: spec}
	testScheme().Default(obj)
	return obj
}

func qty(s string) *resource.Quantity { return ptr.To(resource.MustParse(s)) }

// quantityEqual compares quantities by value for cmp.Diff.
var quantityEqual = cmp.Comparer(func(a, b resource.Quantity) bool { return a.Cmp(b) == 0 })

func expectSpec(t *testing.T, got, want InferServerSpec) {
	t.Helper()
	if !apiequality.Semantic.DeepEqual(got, want) {
		t.Errorf("spec differs (-want +got):\n%s", cmp.Diff(want, got, quantityEqual))
	}
}

func hostPathVolume(path string, typ corev1.HostPathType) *InferVolume {
	return &InferVolume{
		MountPath:    path,
		VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: path, Type: ptr.To(typ)}},
	}
}

// The documented defaults, written out rather than taken from the package's
// constants so that a changed constant fails the test.
func documentedDefaults() InferServerSpec {
	return InferServerSpec{
		Replicas:         ptr.To[int32](1),
		NodesPerInstance: ptr.To[int32](1),
		Image:            "mindie:server",
		ImagePullPolicy:  corev1.PullIfNotPresent,
		Command:          []string{"/bin/bash", "-c", "/mnt/mindie-service/ms/run/run.sh"},
		InstallPath:      "/usr/local/Ascend/mindie/latest/mindie-service",
		ServerConfig:     ServerConfigSource{HostPath: "/mnt/mindie-service/ms/config/config.json"},
		Storage: InferStorage{
			Model:            hostPathVolume("/mnt/mindie-service/ms/model", corev1.HostPathDirectory),
			Writable:         hostPathVolume("/mnt/mindie-service/ms/writable-data", corev1.HostPathDirectory),
			RunScript:        hostPathVolume("/mnt/mindie-service/ms/run/run.sh", corev1.HostPathFile),
			SharedMemorySize: qty("1Gi"),
		},
		Resources: InferResources{
			CPU:    qty("32"),
			Memory: qty("256000Mi"),
			NPU:    NPURequest{Type: NPUTypeAscend910, Count: ptr.To[int32](8)},
		},
		Ports:   InferPorts{Inference: ptr.To[int32](1025), Management: ptr.To[int32](1026)},
		Service: InferServiceExposure{Type: corev1.ServiceTypeNodePort},
		Health: HealthSpec{
			StartupSeconds:    ptr.To[int32](180),
			DetectInnerErrors: ptr.To(true),
			Liveness:          ProbeSpec{TimeoutSeconds: ptr.To[int32](10), FailureThreshold: ptr.To[int32](1), PeriodSeconds: ptr.To[int32](3)},
			Readiness:         ProbeSpec{TimeoutSeconds: ptr.To[int32](10), FailureThreshold: ptr.To[int32](1), PeriodSeconds: ptr.To[int32](5)},
		},
		Scheduler:                     SchedulerDefault,
		FaultRescheduling:             FaultReschedulingGrace,
		TerminationGracePeriodSeconds: ptr.To[int64](60),
		FaultGraceOverTimeSeconds:     ptr.To[int32](900),
		NodeLostSeconds:               ptr.To[int32](60),
		Strategy: InferServerStrategy{
			Type: RollingUpdateInferServerStrategyType,
			RollingUpdate: &RollingUpdateInferServer{
				MaxSurge:       ptr.To(intstr.FromString("50%")),
				MaxUnavailable: ptr.To(intstr.FromString("50%")),
			},
		},
		RevisionHistoryLimit:    ptr.To[int32](10),
		ProgressDeadlineSeconds: ptr.To[int32](780),
	}
}

// The progress deadline follows the startup budget, given or defaulted,
// and a given deadline is kept.
func TestDefaultProgressDeadline(t *testing.T) {
	if got := *defaulted(InferServerSpec{Health: HealthSpec{StartupSeconds: ptr.To[int32](1800)}}).Spec.ProgressDeadlineSeconds; got != 2400 {
		t.Errorf("startupSeconds 1800: progressDeadlineSeconds = %d, want 2400", got)
	}
	if got := *defaulted(InferServerSpec{ProgressDeadlineSeconds: ptr.To[int32](30)}).Spec.ProgressDeadlineSeconds; got != 30 {
		t.Errorf("given 30: progressDeadlineSeconds = %d", got)
	}
}

func TestDefaultsOfEmptyInferServer(t *testing.T) {
	obj := defaulted(InferServerSpec{})
	expectSpec(t, obj.Spec, documentedDefaults())

	// Fields without a default stay empty.
	if obj.Spec.TLS.Enabled || obj.Spec.TLS.SecretName != "" || obj.Spec.Paused || obj.Spec.Service.NodePort != 0 {
		t.Errorf("fields without a default were set: tls=%+v paused=%v nodePort=%d", obj.Spec.TLS, obj.Spec.Paused, obj.Spec.Service.NodePort)
	}
	if obj.Spec.Resources.CPULimit != nil || obj.Spec.Resources.MemoryLimit != nil {
		t.Errorf("limits must stay unset, got cpuLimit=%v memoryLimit=%v", obj.Spec.Resources.CPULimit, obj.Spec.Resources.MemoryLimit)
	}
}

// TestDefaultConstants keeps the exported constants in step with the documentation.
func TestDefaultConstants(t *testing.T) {
	want := documentedDefaults()
	checks := []struct {
		name      string
		got, want any
	}{
		{"DefaultReplicas", DefaultReplicas, *want.Replicas},
		{"DefaultNodesPerInstance", DefaultNodesPerInstance, *want.NodesPerInstance},
		{"DefaultImage", DefaultImage, want.Image},
		{"DefaultCommand", DefaultCommand(), want.Command},
		{"DefaultInstallPath", DefaultInstallPath, want.InstallPath},
		{"DefaultConfigPath", DefaultConfigPath, want.ServerConfig.HostPath},
		{"DefaultModelPath", DefaultModelPath, want.Storage.Model.MountPath},
		{"DefaultWritablePath", DefaultWritablePath, want.Storage.Writable.MountPath},
		{"DefaultRunScriptPath", DefaultRunScriptPath, want.Storage.RunScript.MountPath},
		{"DefaultNPUCount", DefaultNPUCount, *want.Resources.NPU.Count},
		{"DefaultInferencePort", DefaultInferencePort, *want.Ports.Inference},
		{"DefaultManagementPort", DefaultManagementPort, *want.Ports.Management},
		{"DefaultStartupSeconds", DefaultStartupSeconds, *want.Health.StartupSeconds},
		{"DefaultTerminationGracePeriodSeconds", DefaultTerminationGracePeriodSeconds, *want.TerminationGracePeriodSeconds},
		{"DefaultRevisionHistoryLimit", DefaultRevisionHistoryLimit, *want.RevisionHistoryLimit},
	}
	for _, c := range checks {
		if !apiequality.Semantic.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, documented %v", c.name, c.got, c.want)
		}
	}
}

func TestDefaultsKeepUserValues(t *testing.T) {
	defaults := documentedDefaults()
	cases := []struct {
		name string
		set  func(*InferServerSpec)
		get  func(*InferServerSpec) any
	}{
		{"replicas", func(s *InferServerSpec) { s.Replicas = ptr.To[int32](3) }, func(s *InferServerSpec) any { return s.Replicas }},
		{"nodesPerInstance", func(s *InferServerSpec) { s.NodesPerInstance = ptr.To[int32](2) }, func(s *InferServerSpec) any { return s.NodesPerInstance }},
		{"image", func(s *InferServerSpec) { s.Image = "registry.local/mindie:2.0" }, func(s *InferServerSpec) any { return s.Image }},
		{"imagePullPolicy", func(s *InferServerSpec) { s.ImagePullPolicy = corev1.PullAlways }, func(s *InferServerSpec) any { return s.ImagePullPolicy }},
		{"command", func(s *InferServerSpec) { s.Command = []string{"python3", "-m", "server"} }, func(s *InferServerSpec) any { return s.Command }},
		{"installPath", func(s *InferServerSpec) { s.InstallPath = "/opt/mindie" }, func(s *InferServerSpec) any { return s.InstallPath }},
		{"serverConfig hostPath", func(s *InferServerSpec) { s.ServerConfig.HostPath = "/etc/mindie.json" }, func(s *InferServerSpec) any { return s.ServerConfig }},
		{"serverConfig inline", func(s *InferServerSpec) { s.ServerConfig.Inline = `{"a":1}` }, func(s *InferServerSpec) any { return s.ServerConfig }},
		{"serverConfig configMap key", func(s *InferServerSpec) {
			s.ServerConfig.ConfigMap = &ConfigMapKeyReference{Name: "cfg", Key: "server.json"}
		}, func(s *InferServerSpec) any { return s.ServerConfig }},
		{"model volume", func(s *InferServerSpec) {
			s.Storage.Model = &InferVolume{MountPath: "/models", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "models", ReadOnly: true},
			}}
		}, func(s *InferServerSpec) any { return s.Storage.Model }},
		{"writable volume", func(s *InferServerSpec) {
			s.Storage.Writable = &InferVolume{MountPath: "/data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
		}, func(s *InferServerSpec) any { return s.Storage.Writable }},
		{"run script volume", func(s *InferServerSpec) {
			s.Storage.RunScript = hostPathVolume("/opt/run.sh", corev1.HostPathFileOrCreate)
		},
			func(s *InferServerSpec) any { return s.Storage.RunScript }},
		{"sharedMemorySize", func(s *InferServerSpec) { s.Storage.SharedMemorySize = qty("16Gi") }, func(s *InferServerSpec) any { return s.Storage.SharedMemorySize }},
		{"cpu", func(s *InferServerSpec) { s.Resources.CPU = qty("8") }, func(s *InferServerSpec) any { return s.Resources.CPU }},
		{"memory", func(s *InferServerSpec) { s.Resources.Memory = qty("64Gi") }, func(s *InferServerSpec) any { return s.Resources.Memory }},
		{"npu type", func(s *InferServerSpec) { s.Resources.NPU.Type = NPUTypeAscend310P }, func(s *InferServerSpec) any { return s.Resources.NPU.Type }},
		{"npu count", func(s *InferServerSpec) { s.Resources.NPU.Count = ptr.To[int32](1) }, func(s *InferServerSpec) any { return s.Resources.NPU.Count }},
		{"inference port", func(s *InferServerSpec) { s.Ports.Inference = ptr.To[int32](8080) }, func(s *InferServerSpec) any { return s.Ports.Inference }},
		{"management port", func(s *InferServerSpec) { s.Ports.Management = ptr.To[int32](8081) }, func(s *InferServerSpec) any { return s.Ports.Management }},
		{"service type", func(s *InferServerSpec) { s.Service.Type = corev1.ServiceTypeClusterIP }, func(s *InferServerSpec) any { return s.Service.Type }},
		{"startupSeconds", func(s *InferServerSpec) { s.Health.StartupSeconds = ptr.To[int32](600) }, func(s *InferServerSpec) any { return s.Health.StartupSeconds }},
		{"detectInnerErrors false", func(s *InferServerSpec) { s.Health.DetectInnerErrors = ptr.To(false) }, func(s *InferServerSpec) any { return s.Health.DetectInnerErrors }},
		{"liveness", func(s *InferServerSpec) {
			s.Health.Liveness = ProbeSpec{TimeoutSeconds: ptr.To[int32](30), FailureThreshold: ptr.To[int32](3), PeriodSeconds: ptr.To[int32](10)}
		}, func(s *InferServerSpec) any { return s.Health.Liveness }},
		{"readiness", func(s *InferServerSpec) {
			s.Health.Readiness = ProbeSpec{TimeoutSeconds: ptr.To[int32](1), FailureThreshold: ptr.To[int32](10), PeriodSeconds: ptr.To[int32](1)}
		}, func(s *InferServerSpec) any { return s.Health.Readiness }},
		{"scheduler", func(s *InferServerSpec) { s.Scheduler = SchedulerVolcano }, func(s *InferServerSpec) any { return s.Scheduler }},
		{"faultRescheduling", func(s *InferServerSpec) { s.FaultRescheduling = FaultReschedulingOff }, func(s *InferServerSpec) any { return s.FaultRescheduling }},
		{"terminationGracePeriodSeconds 0", func(s *InferServerSpec) { s.TerminationGracePeriodSeconds = ptr.To[int64](0) },
			func(s *InferServerSpec) any { return s.TerminationGracePeriodSeconds }},
		{"revisionHistoryLimit 0", func(s *InferServerSpec) { s.RevisionHistoryLimit = ptr.To[int32](0) }, func(s *InferServerSpec) any { return s.RevisionHistoryLimit }},
		{"rollingUpdate ints", func(s *InferServerSpec) {
			s.Strategy.RollingUpdate = &RollingUpdateInferServer{MaxSurge: ptr.To(intstr.FromInt32(0)), MaxUnavailable: ptr.To(intstr.FromInt32(1))}
		}, func(s *InferServerSpec) any { return s.Strategy.RollingUpdate }},
		{"rollingUpdate percentages", func(s *InferServerSpec) {
			s.Strategy.RollingUpdate = &RollingUpdateInferServer{MaxSurge: ptr.To(intstr.FromString("0%")), MaxUnavailable: ptr.To(intstr.FromString("25%"))}
		}, func(s *InferServerSpec) any { return s.Strategy.RollingUpdate }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var spec InferServerSpec
			tc.set(&spec)
			want := tc.get(spec.DeepCopy())
			if apiequality.Semantic.DeepEqual(want, tc.get(&defaults)) {
				t.Fatalf("the case sets the default value %v; pick another one", want)
			}
			obj := defaulted(spec)
			if got := tc.get(&obj.Spec); !apiequality.Semantic.DeepEqual(got, want) {
				t.Errorf("defaulting overwrote the user's value (-want +got):\n%s", cmp.Diff(want, got, quantityEqual))
			}
		})
	}
}

func TestDefaultStrategy(t *testing.T) {
	surge := func(v intstr.IntOrString) *RollingUpdateInferServer { return &RollingUpdateInferServer{MaxSurge: &v} }
	unavailable := func(v intstr.IntOrString) *RollingUpdateInferServer {
		return &RollingUpdateInferServer{MaxUnavailable: &v}
	}
	both := func(s, u intstr.IntOrString) *RollingUpdateInferServer {
		return &RollingUpdateInferServer{MaxSurge: &s, MaxUnavailable: &u}
	}
	half := intstr.FromString("50%")
	cases := []struct {
		name string
		in   InferServerStrategy
		want InferServerStrategy
	}{
		{"empty", InferServerStrategy{}, InferServerStrategy{Type: RollingUpdateInferServerStrategyType, RollingUpdate: both(half, half)}},
		{"Recreate gets no rollingUpdate", InferServerStrategy{Type: RecreateInferServerStrategyType},
			InferServerStrategy{Type: RecreateInferServerStrategyType}},
		{"Recreate keeps a given rollingUpdate for validation to refuse",
			InferServerStrategy{Type: RecreateInferServerStrategyType, RollingUpdate: surge(intstr.FromInt32(1))},
			InferServerStrategy{Type: RecreateInferServerStrategyType, RollingUpdate: surge(intstr.FromInt32(1))}},
		{"RollingUpdate without bounds", InferServerStrategy{Type: RollingUpdateInferServerStrategyType},
			InferServerStrategy{Type: RollingUpdateInferServerStrategyType, RollingUpdate: both(half, half)}},
		{"only maxSurge", InferServerStrategy{RollingUpdate: surge(intstr.FromInt32(0))},
			InferServerStrategy{Type: RollingUpdateInferServerStrategyType, RollingUpdate: both(intstr.FromInt32(0), half)}},
		{"only maxUnavailable", InferServerStrategy{RollingUpdate: unavailable(intstr.FromString("10%"))},
			InferServerStrategy{Type: RollingUpdateInferServerStrategyType, RollingUpdate: both(half, intstr.FromString("10%"))}},
		{"unknown type is left for validation", InferServerStrategy{Type: "BlueGreen"}, InferServerStrategy{Type: "BlueGreen"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := defaulted(InferServerSpec{Strategy: tc.in})
			if !apiequality.Semantic.DeepEqual(obj.Spec.Strategy, tc.want) {
				t.Errorf("strategy (-want +got):\n%s", cmp.Diff(tc.want, obj.Spec.Strategy))
			}
		})
	}
}

func TestDefaultServerConfig(t *testing.T) {
	cases := []struct {
		name string
		in   ServerConfigSource
		want ServerConfigSource
	}{
		{"none", ServerConfigSource{}, ServerConfigSource{HostPath: "/mnt/mindie-service/ms/config/config.json"}},
		{"configMap without key", ServerConfigSource{ConfigMap: &ConfigMapKeyReference{Name: "cfg"}},
			ServerConfigSource{ConfigMap: &ConfigMapKeyReference{Name: "cfg", Key: "config.json"}}},
		{"configMap with key", ServerConfigSource{ConfigMap: &ConfigMapKeyReference{Name: "cfg", Key: "mindie.json"}},
			ServerConfigSource{ConfigMap: &ConfigMapKeyReference{Name: "cfg", Key: "mindie.json"}}},
		{"inline", ServerConfigSource{Inline: `{}`}, ServerConfigSource{Inline: `{}`}},
		{"hostPath", ServerConfigSource{HostPath: "/etc/c.json"}, ServerConfigSource{HostPath: "/etc/c.json"}},
		{"configMap and inline are left for validation",
			ServerConfigSource{ConfigMap: &ConfigMapKeyReference{Name: "cfg"}, Inline: `{}`},
			ServerConfigSource{ConfigMap: &ConfigMapKeyReference{Name: "cfg", Key: "config.json"}, Inline: `{}`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := defaulted(InferServerSpec{ServerConfig: tc.in})
			if !apiequality.Semantic.DeepEqual(obj.Spec.ServerConfig, tc.want) {
				t.Errorf("serverConfig (-want +got):\n%s", cmp.Diff(tc.want, obj.Spec.ServerConfig))
			}
		})
	}
}

func TestDefaultVolumeMountPaths(t *testing.T) {
	pvc := corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "c"}}
	cases := []struct {
		name string
		fld  func(*InferStorage) **InferVolume
		path string
	}{
		{"model", func(s *InferStorage) **InferVolume { return &s.Model }, "/mnt/mindie-service/ms/model"},
		{"writable", func(s *InferStorage) **InferVolume { return &s.Writable }, "/mnt/mindie-service/ms/writable-data"},
		{"runScript", func(s *InferStorage) **InferVolume { return &s.RunScript }, "/mnt/mindie-service/ms/run/run.sh"},
	}
	for _, tc := range cases {
		t.Run(tc.name+" without mountPath", func(t *testing.T) {
			var spec InferServerSpec
			*tc.fld(&spec.Storage) = &InferVolume{VolumeSource: *pvc.DeepCopy()}
			obj := defaulted(spec)
			want := &InferVolume{MountPath: tc.path, VolumeSource: pvc}
			if got := *tc.fld(&obj.Spec.Storage); !apiequality.Semantic.DeepEqual(got, want) {
				t.Errorf("volume (-want +got):\n%s", cmp.Diff(want, got))
			}
		})
		t.Run(tc.name+" without source", func(t *testing.T) {
			// A volume given without a source is not filled in; validation refuses it.
			var spec InferServerSpec
			*tc.fld(&spec.Storage) = &InferVolume{MountPath: "/x"}
			obj := defaulted(spec)
			want := &InferVolume{MountPath: "/x"}
			if got := *tc.fld(&obj.Spec.Storage); !apiequality.Semantic.DeepEqual(got, want) {
				t.Errorf("volume (-want +got):\n%s", cmp.Diff(want, got))
			}
		})
	}
}

func TestDefaultingIsIdempotent(t *testing.T) {
	for _, spec := range []InferServerSpec{
		{},
		{Strategy: InferServerStrategy{Type: RecreateInferServerStrategyType}},
		{ServerConfig: ServerConfigSource{ConfigMap: &ConfigMapKeyReference{Name: "cfg"}}},
	} {
		once := defaulted(spec)
		twice := once.DeepCopy()
		testScheme().Default(twice)
		if !apiequality.Semantic.DeepEqual(once, twice) {
			t.Errorf("defaulting twice changed the object (-once +twice):\n%s", cmp.Diff(once, twice, quantityEqual))
		}
	}
}

// TestDefaultsAreNotShared makes sure two defaulted objects share no slice or
// pointer, so changing one does not change the other.
func TestDefaultsAreNotShared(t *testing.T) {
	a, b := defaulted(InferServerSpec{}), defaulted(InferServerSpec{})
	a.Spec.Command[0] = "changed"
	*a.Spec.Replicas = 99
	a.Spec.Storage.Model.HostPath.Path = "/changed"
	*a.Spec.Storage.Model.HostPath.Type = corev1.HostPathSocket
	a.Spec.Storage.SharedMemorySize.Add(resource.MustParse("1Gi"))
	*a.Spec.Strategy.RollingUpdate.MaxSurge = intstr.FromInt32(7)
	*a.Spec.Health.DetectInnerErrors = false
	expectSpec(t, b.Spec, documentedDefaults())
	if got := DefaultCommand(); got[0] != "/bin/bash" {
		t.Errorf("DefaultCommand() = %v after changing a defaulted command", got)
	}
}

func TestDefaultInferServerList(t *testing.T) {
	list := &InferServerList{Items: make([]InferServer, 3)}
	list.Items[1].Spec.Replicas = ptr.To[int32](5)
	testScheme().Default(list)
	for i, item := range list.Items {
		want := documentedDefaults()
		if i == 1 {
			want.Replicas = ptr.To[int32](5)
		}
		t.Run(fmt.Sprintf("item %d", i), func(t *testing.T) { expectSpec(t, item.Spec, want) })
	}
}

func TestDefaultRouter(t *testing.T) {
	r := &RouterSpec{}
	SetDefaults_RouterSpec(r)
	if r.Algorithm != RouterCacheAffinity || *r.Replicas != 2 || r.Authentication != RouterAuthenticationKubernetes ||
		*r.SlotsThresholdPercent != 5 || *r.BlocksThresholdPercent != 5 || *r.MaxRetries != 2 ||
		r.MaxBodySize.String() != "8Mi" || *r.MaxInflight != 10000 || *r.MaxInflightPerInstance != 1000 ||
		*r.FirstTokenTimeoutSeconds != 600 || *r.RequestTimeoutSeconds != 600 || r.Image != "mindie:router" {
		t.Errorf("defaulted router = %+v", r)
	}
	cpu := r.Resources.Requests[corev1.ResourceCPU]
	mem := r.Resources.Limits[corev1.ResourceMemory]
	if cpu.String() != "500m" || mem.String() != "1Gi" {
		t.Errorf("resources = %+v", r.Resources)
	}

	// Values given stay; defaults bend around them so the pair stays valid.
	r = &RouterSpec{
		MaxInflight:              ptr.To[int32](10),
		FirstTokenTimeoutSeconds: ptr.To[int32](900),
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")},
		},
	}
	SetDefaults_RouterSpec(r)
	if *r.MaxInflightPerInstance != 10 || *r.RequestTimeoutSeconds != 900 {
		t.Errorf("per instance %d, request timeout %d: want 10 and 900", *r.MaxInflightPerInstance, *r.RequestTimeoutSeconds)
	}
	cpuLimit, memRequest := r.Resources.Limits[corev1.ResourceCPU], r.Resources.Requests[corev1.ResourceMemory]
	if cpuLimit.String() != "4" || memRequest.String() != "128Mi" {
		t.Errorf("cpu limit %s (want 4, the request), memory request %s (want 128Mi, the limit)", cpuLimit.String(), memRequest.String())
	}

	// A server without a router gets none.
	s := &InferServer{}
	SetObjectDefaults_InferServer(s)
	if s.Spec.Router != nil {
		t.Errorf("router defaulted on a server without one: %+v", s.Spec.Router)
	}
}

func TestDefaultRoles(t *testing.T) {
	s := &InferServer{Spec: InferServerSpec{
		NodesPerInstance: ptr.To[int32](2),
		Router:           &RouterSpec{},
		Roles:            []InferRole{{Name: RolePrefill}, {Name: RoleDecode, Instances: ptr.To[int32](3), NodesPerInstance: ptr.To[int32](4)}},
	}}
	SetObjectDefaults_InferServer(s)
	p, d := s.Spec.Roles[0], s.Spec.Roles[1]
	if *p.Instances != 1 || *p.NodesPerInstance != 2 || *d.Instances != 3 || *d.NodesPerInstance != 4 || p.Resources != nil {
		t.Errorf("roles defaulted to %+v %+v", p, d)
	}
	if s.Spec.Router.Algorithm != RouterLeastLoad {
		t.Errorf("router algorithm with roles %q, want least_load", s.Spec.Router.Algorithm)
	}
}

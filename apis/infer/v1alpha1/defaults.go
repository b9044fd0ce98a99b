package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// The defaults are the values the original MindIE Motor deployer used.
const (
	DefaultReplicas                      int32 = 1
	DefaultNodesPerInstance              int32 = 1
	DefaultImage                               = "mindie:server"
	DefaultRunScriptPath                       = "/mnt/mindie-service/ms/run/run.sh"
	DefaultInstallPath                         = "/usr/local/Ascend/mindie/latest/mindie-service"
	DefaultConfigPath                          = "/mnt/mindie-service/ms/config/config.json"
	DefaultConfigMapKey                        = "config.json"
	DefaultModelPath                           = "/mnt/mindie-service/ms/model"
	DefaultWritablePath                        = "/mnt/mindie-service/ms/writable-data"
	DefaultCPU                                 = "32"
	DefaultMemory                              = "256000Mi"
	DefaultSharedMemory                        = "1Gi"
	DefaultNPUCount                      int32 = 8
	DefaultInferencePort                 int32 = 1025
	DefaultManagementPort                int32 = 1026
	DefaultStartupSeconds                int32 = 180
	DefaultProbeTimeoutSeconds           int32 = 10
	DefaultProbeFailureThreshold         int32 = 1
	DefaultLivenessPeriodSeconds         int32 = 3
	DefaultReadinessPeriodSeconds        int32 = 5
	DefaultTerminationGracePeriodSeconds int64 = 60
	// DefaultFaultGraceOverTimeSeconds is Volcano's grace-over-time.
	DefaultFaultGraceOverTimeSeconds int32 = 900
	DefaultNodeLostSeconds           int32 = 60
	DefaultMaxSurge                        = "50%"
	DefaultMaxUnavailable                  = "50%"
	DefaultRevisionHistoryLimit      int32 = 10
	// ProgressDeadlineMarginSeconds is added to the startup budget to make
	// the default progress deadline: time to schedule, pull and load.
	ProgressDeadlineMarginSeconds int32 = 600
)

// The router's defaults; mindie-router's flags default to the same values.
// Where MindIE Motor's Coordinator has the knob, its default is kept.
const (
	DefaultRouterAlgorithm = RouterCacheAffinity
	// DefaultPDRouterAlgorithm is the router's algorithm for a server with
	// roles: prefill instances are placed by load (as MindIE's Coordinator
	// allows only round_robin and load_balance in PD mode).
	DefaultPDRouterAlgorithm              = RouterLeastLoad
	DefaultRoleInstances            int32 = 1
	DefaultRouterReplicas           int32 = 2
	DefaultRouterImage                    = "mindie:router"
	DefaultRouterAuthentication           = RouterAuthenticationKubernetes
	DefaultRouterThresholdPercent   int32 = 5 // slots_thresh, block_thresh
	DefaultRouterMaxRetries         int32 = 2
	DefaultRouterMaxBodyBytes       int64 = 8 << 20
	DefaultRouterMaxInflight        int32 = 10000 // max_requests
	DefaultRouterMaxInflightPerInst int32 = 1000  // single_node_max_requests
	DefaultRouterTimeoutSeconds     int32 = 600
	DefaultRouterCPU                      = "500m"
	DefaultRouterMemory                   = "256Mi"
	DefaultRouterCPULimit                 = "2"
	DefaultRouterMemoryLimit              = "1Gi"
)

// DefaultCommand is the container entrypoint when none is given.
func DefaultCommand() []string { return []string{"/bin/bash", "-c", DefaultRunScriptPath} }

func addDefaultingFuncs(scheme *runtime.Scheme) error {
	return RegisterDefaults(scheme)
}

// SetDefaults_InferServerSpec fills every optional field of the spec.
func SetDefaults_InferServerSpec(s *InferServerSpec) {
	if s.Replicas == nil {
		s.Replicas = ptr.To(DefaultReplicas)
	}
	if s.NodesPerInstance == nil {
		s.NodesPerInstance = ptr.To(DefaultNodesPerInstance)
	}
	for i := range s.Roles {
		r := &s.Roles[i]
		if r.Instances == nil {
			r.Instances = ptr.To(DefaultRoleInstances)
		}
		if r.NodesPerInstance == nil {
			r.NodesPerInstance = ptr.To(*s.NodesPerInstance)
		}
	}
	if len(s.Roles) > 0 && s.Router != nil && s.Router.Algorithm == "" {
		s.Router.Algorithm = DefaultPDRouterAlgorithm
	}
	if s.Image == "" {
		s.Image = DefaultImage
	}
	if s.ImagePullPolicy == "" {
		s.ImagePullPolicy = corev1.PullIfNotPresent
	}
	if len(s.Command) == 0 {
		s.Command = DefaultCommand()
	}
	if s.InstallPath == "" {
		s.InstallPath = DefaultInstallPath
	}
	if s.Scheduler == "" {
		s.Scheduler = SchedulerDefault
	}
	if s.FaultRescheduling == "" {
		s.FaultRescheduling = FaultReschedulingGrace
	}
	if s.TerminationGracePeriodSeconds == nil {
		s.TerminationGracePeriodSeconds = ptr.To(DefaultTerminationGracePeriodSeconds)
	}
	if s.FaultGraceOverTimeSeconds == nil {
		s.FaultGraceOverTimeSeconds = ptr.To(DefaultFaultGraceOverTimeSeconds)
	}
	if s.NodeLostSeconds == nil {
		s.NodeLostSeconds = ptr.To(DefaultNodeLostSeconds)
	}
	if s.RevisionHistoryLimit == nil {
		s.RevisionHistoryLimit = ptr.To(DefaultRevisionHistoryLimit)
	}
	if s.ProgressDeadlineSeconds == nil {
		// The deadline follows the startup budget, which is defaulted first.
		SetDefaults_HealthSpec(&s.Health)
		s.ProgressDeadlineSeconds = ptr.To(*s.Health.StartupSeconds + ProgressDeadlineMarginSeconds)
	}
}

// SetDefaults_RouterSpec fills every optional field of the router.
func SetDefaults_RouterSpec(r *RouterSpec) {
	if r.Algorithm == "" {
		r.Algorithm = DefaultRouterAlgorithm
	}
	if r.Replicas == nil {
		r.Replicas = ptr.To(DefaultRouterReplicas)
	}
	if r.Image == "" {
		r.Image = DefaultRouterImage
	}
	if r.ImagePullPolicy == "" {
		r.ImagePullPolicy = corev1.PullIfNotPresent
	}
	if r.Authentication == "" {
		r.Authentication = DefaultRouterAuthentication
	}
	for _, p := range []**int32{&r.SlotsThresholdPercent, &r.BlocksThresholdPercent} {
		if *p == nil {
			*p = ptr.To(DefaultRouterThresholdPercent)
		}
	}
	if r.MaxRetries == nil {
		r.MaxRetries = ptr.To(DefaultRouterMaxRetries)
	}
	if r.MaxBodySize == nil {
		r.MaxBodySize = resource.NewQuantity(DefaultRouterMaxBodyBytes, resource.BinarySI)
	}
	if r.MaxInflight == nil {
		r.MaxInflight = ptr.To(DefaultRouterMaxInflight)
	}
	if r.MaxInflightPerInstance == nil {
		r.MaxInflightPerInstance = ptr.To(min(DefaultRouterMaxInflightPerInst, *r.MaxInflight))
	}
	if r.FirstTokenTimeoutSeconds == nil {
		r.FirstTokenTimeoutSeconds = ptr.To(DefaultRouterTimeoutSeconds)
	}
	if r.RequestTimeoutSeconds == nil {
		r.RequestTimeoutSeconds = ptr.To(max(DefaultRouterTimeoutSeconds, *r.FirstTokenTimeoutSeconds))
	}
	defaultResources(&r.Resources, corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse(DefaultRouterCPU),
		corev1.ResourceMemory: resource.MustParse(DefaultRouterMemory),
	}, corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse(DefaultRouterCPULimit),
		corev1.ResourceMemory: resource.MustParse(DefaultRouterMemoryLimit),
	})
}

// defaultResources sets each request and limit not given, keeping them
// consistent: a default request is lowered to a limit given below it, and a
// default limit raised to a request given above it, as Kubernetes refuses a
// request above its limit.
func defaultResources(r *corev1.ResourceRequirements, requests, limits corev1.ResourceList) {
	if r.Requests == nil {
		r.Requests = corev1.ResourceList{}
	}
	if r.Limits == nil {
		r.Limits = corev1.ResourceList{}
	}
	for name, q := range requests {
		if _, ok := r.Requests[name]; ok {
			continue
		}
		if l, ok := r.Limits[name]; ok && l.Cmp(q) < 0 {
			q = l
		}
		r.Requests[name] = q
	}
	for name, q := range limits {
		if _, ok := r.Limits[name]; ok {
			continue
		}
		if req := r.Requests[name]; req.Cmp(q) > 0 {
			q = req
		}
		r.Limits[name] = q
	}
}

// SetDefaults_ServerConfigSource mounts the original host file when no source is given.
func SetDefaults_ServerConfigSource(c *ServerConfigSource) {
	if c.ConfigMap == nil && c.Inline == "" && c.HostPath == "" {
		c.HostPath = DefaultConfigPath
	}
	if c.ConfigMap != nil && c.ConfigMap.Key == "" {
		c.ConfigMap.Key = DefaultConfigMapKey
	}
}

// SetDefaults_InferStorage mounts the original host paths for volumes not given.
func SetDefaults_InferStorage(s *InferStorage) {
	s.Model = defaultVolume(s.Model, DefaultModelPath, corev1.HostPathDirectory)
	s.Writable = defaultVolume(s.Writable, DefaultWritablePath, corev1.HostPathDirectory)
	s.RunScript = defaultVolume(s.RunScript, DefaultRunScriptPath, corev1.HostPathFile)
	if s.SharedMemorySize == nil {
		s.SharedMemorySize = ptr.To(resource.MustParse(DefaultSharedMemory))
	}
}

func defaultVolume(v *InferVolume, path string, hostPathType corev1.HostPathType) *InferVolume {
	if v == nil {
		return &InferVolume{
			MountPath:    path,
			VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: path, Type: ptr.To(hostPathType)}},
		}
	}
	if v.MountPath == "" {
		v.MountPath = path
	}
	return v
}

// SetDefaults_InferResources requests what the original deployer requested.
func SetDefaults_InferResources(r *InferResources) {
	if r.CPU == nil {
		r.CPU = ptr.To(resource.MustParse(DefaultCPU))
	}
	if r.Memory == nil {
		r.Memory = ptr.To(resource.MustParse(DefaultMemory))
	}
	if r.NPU.Type == "" {
		r.NPU.Type = NPUTypeAscend910
	}
	if r.NPU.Count == nil {
		r.NPU.Count = ptr.To(DefaultNPUCount)
	}
}

// SetDefaults_InferPorts uses MindIE Server's own default ports.
func SetDefaults_InferPorts(p *InferPorts) {
	if p.Inference == nil {
		p.Inference = ptr.To(DefaultInferencePort)
	}
	if p.Management == nil {
		p.Management = ptr.To(DefaultManagementPort)
	}
}

// SetDefaults_InferServiceExposure exposes the instances on a NodePort, as the original.
func SetDefaults_InferServiceExposure(s *InferServiceExposure) {
	if s.Type == "" {
		s.Type = corev1.ServiceTypeNodePort
	}
}

// SetDefaults_HealthSpec uses the original probe settings.
func SetDefaults_HealthSpec(h *HealthSpec) {
	if h.StartupSeconds == nil {
		h.StartupSeconds = ptr.To(DefaultStartupSeconds)
	}
	if h.DetectInnerErrors == nil {
		h.DetectInnerErrors = ptr.To(true)
	}
	defaultProbe(&h.Liveness, DefaultLivenessPeriodSeconds)
	defaultProbe(&h.Readiness, DefaultReadinessPeriodSeconds)
}

func defaultProbe(p *ProbeSpec, period int32) {
	if p.TimeoutSeconds == nil {
		p.TimeoutSeconds = ptr.To(DefaultProbeTimeoutSeconds)
	}
	if p.FailureThreshold == nil {
		p.FailureThreshold = ptr.To(DefaultProbeFailureThreshold)
	}
	if p.PeriodSeconds == nil {
		p.PeriodSeconds = ptr.To(period)
	}
}

// SetDefaults_InferServerStrategy rolls out within 50% surge and 50% unavailability.
func SetDefaults_InferServerStrategy(s *InferServerStrategy) {
	if s.Type == "" {
		s.Type = RollingUpdateInferServerStrategyType
	}
	if s.Type != RollingUpdateInferServerStrategyType {
		return
	}
	if s.RollingUpdate == nil {
		s.RollingUpdate = &RollingUpdateInferServer{}
	}
	if s.RollingUpdate.MaxSurge == nil {
		s.RollingUpdate.MaxSurge = ptr.To(intstr.FromString(DefaultMaxSurge))
	}
	if s.RollingUpdate.MaxUnavailable == nil {
		s.RollingUpdate.MaxUnavailable = ptr.To(intstr.FromString(DefaultMaxUnavailable))
	}
}

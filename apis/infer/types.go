package infer

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// InferServer is a set of identical MindIE Server inference instances. An
// instance is the smallest unit that serves a model: one pod on one node, or
// (nodesPerInstance 2 or 4) several pods on distinct nodes that share an HCCL
// ranktable. The controller runs the instances and reports their health and
// the model they serve in status.
type InferServer struct {
	metav1.TypeMeta `json:",inline"`
	// Standard object metadata. The name is a DNS-1123 label of at most 48
	// characters so that the names of the objects derived from it stay valid.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the desired state of the inference service.
	// +optional
	Spec InferServerSpec `json:"spec,omitempty"`
	// Status is the observed state, written by the controller only.
	// +optional
	Status InferServerStatus `json:"status,omitempty"`
}

// NPUType names the kind of Ascend NPU an instance requests. It is also the
// suffix of the extended resource (huawei.com/<type>) the device plugin
// advertises and of the node label value accelerator=huawei-<type>.
// +enum
type NPUType string

const (
	// NPUTypeAscend910 is an Atlas 800/900 training or inference card (910, 910B).
	NPUTypeAscend910 NPUType = "Ascend910"
	// NPUTypeAscend310P is an Atlas 300I inference card.
	NPUTypeAscend310P NPUType = "Ascend310P"
)

// SchedulerType selects the pod scheduler.
// +enum
type SchedulerType string

const (
	// SchedulerDefault uses the cluster's default kube-scheduler.
	SchedulerDefault SchedulerType = "default"
	// SchedulerVolcano uses Volcano, which is required for NPU fault rescheduling.
	SchedulerVolcano SchedulerType = "volcano"
)

// FaultReschedulingPolicy says how pods on a failed NPU are moved by Volcano.
// +enum
type FaultReschedulingPolicy string

const (
	// FaultReschedulingGrace deletes the affected pod gracefully (forced after 15 minutes).
	FaultReschedulingGrace FaultReschedulingPolicy = "Grace"
	// FaultReschedulingForce deletes the affected pod at once.
	FaultReschedulingForce FaultReschedulingPolicy = "Force"
	// FaultReschedulingOff leaves pods on faulty NPUs where they are.
	FaultReschedulingOff FaultReschedulingPolicy = "Off"
)

// InferServerStrategyType is how a change of the instance template is rolled out.
// +enum
type InferServerStrategyType string

const (
	// RollingUpdateInferServerStrategyType replaces instances gradually within maxSurge and maxUnavailable.
	RollingUpdateInferServerStrategyType InferServerStrategyType = "RollingUpdate"
	// RecreateInferServerStrategyType removes every old instance before creating new ones.
	RecreateInferServerStrategyType InferServerStrategyType = "Recreate"
)

// InferServerSpec is the desired state of an InferServer. Every key of the
// legacy MindIE Motor infer_server.json has a field here (see
// docs/legacy-mapping.md); the top-level fields describe one instance and
// are meant to become the default template of per-role settings when
// Prefill/Decode roles are added.
type InferServerSpec struct {
	// Replicas is the number of inference instances (legacy "replicas").
	// Between 1 and 256. Defaults to 1.
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// NodesPerInstance is how many nodes one instance spans (legacy
	// "cross_node_num"): 1 for a single-node instance, 2 or 4 for a cross-node
	// instance whose pods share an HCCL ranktable. Defaults to 1. Immutable.
	// +optional
	NodesPerInstance *int32 `json:"nodesPerInstance,omitempty"`

	// Image is the MindIE Server container image. Defaults to "mindie:server".
	// +optional
	Image string `json:"image,omitempty"`
	// ImagePullPolicy of the server container. Defaults to IfNotPresent.
	// +optional
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`
	// ImagePullSecrets used to pull Image.
	// +optional
	// +listType=atomic
	ImagePullSecrets []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`
	// Command is the container entrypoint. Defaults to
	// ["/bin/bash", "-c", "/mnt/mindie-service/ms/run/run.sh"], the original
	// deployer's start script.
	// +optional
	// +listType=atomic
	Command []string `json:"command,omitempty"`
	// Args are the arguments to Command.
	// +optional
	// +listType=atomic
	Args []string `json:"args,omitempty"`
	// InstallPath is where MindIE is installed inside the image (legacy
	// "mies_install_path"), exported as MIES_INSTALL_PATH. Must be absolute.
	// Defaults to "/usr/local/Ascend/mindie/latest/mindie-service".
	// +optional
	InstallPath string `json:"installPath,omitempty"`

	// ServerConfig is where the server's config.json comes from. Defaults to
	// the host path the original deployer mounted.
	// +optional
	ServerConfig ServerConfigSource `json:"serverConfig,omitempty"`
	// Storage holds the model, writable-data and run-script volumes.
	// +optional
	Storage InferStorage `json:"storage,omitempty"`
	// Resources requested by every pod of an instance.
	// +optional
	Resources InferResources `json:"resources,omitempty"`
	// Ports the server listens on.
	// +optional
	Ports InferPorts `json:"ports,omitempty"`
	// TLS says whether the server speaks HTTPS on its ports.
	// +optional
	TLS InferTLS `json:"tls,omitempty"`
	// Service exposes the server: the instances' inference port, or the
	// router's when Router is set (its NodePort then reaches the router).
	// +optional
	Service InferServiceExposure `json:"service,omitempty"`
	// Roles makes the server Prefill/Decode disaggregated (MindIE's PD
	// deployment): each group runs prefill instances and decode instances
	// linked for KV-cache transfer, and replicas counts groups, so scaling
	// keeps the P:D ratio. Both roles are required, with spec.router (it
	// plays MindIE's Coordinator). Unset, every instance serves whole
	// requests, as MindIE's single-node deployment. Cannot be added or
	// removed on an existing server.
	// +optional
	// +listType=map
	// +listMapKey=name
	Roles []InferRole `json:"roles,omitempty"`
	// Router puts mindie-router replicas between the Service and the
	// instances: they pick an instance for each request (round_robin,
	// cache_affinity or least_load), retry failures and apply limits. Unset,
	// the Service reaches the instances directly.
	// +optional
	Router *RouterSpec `json:"router,omitempty"`
	// Health configures the startup, readiness and liveness probes.
	// +optional
	Health HealthSpec `json:"health,omitempty"`

	// Scheduler picks the pod scheduler: "default" or "volcano". Defaults to "default".
	// +optional
	Scheduler SchedulerType `json:"scheduler,omitempty"`
	// FaultRescheduling is what happens to a pod whose NPU fails with a
	// fault that needs a move (legacy "npu_fault_reschedule"): Force deletes
	// it at once, Grace drains it (deleted gracefully, forced after
	// faultGraceOverTimeSeconds), Off only reports it. Its instance (a
	// cross-node instance whole, a Prefill/Decode member alone) is made again
	// on healthy NPUs. With scheduler "volcano" Volcano moves the pods and
	// the controller only reports. Defaults to Grace.
	// +optional
	FaultRescheduling FaultReschedulingPolicy `json:"faultRescheduling,omitempty"`
	// FaultGraceOverTimeSeconds bounds the drain of a pod moved off a faulty
	// NPU with faultRescheduling Grace: still there after this long, it is
	// deleted at once (Volcano's grace-over-time). 2 to 3600. Defaults to
	// 900. Not part of the instance template: changing it restarts nothing.
	// +optional
	FaultGraceOverTimeSeconds *int32 `json:"faultGraceOverTimeSeconds,omitempty"`
	// NodeLostSeconds is how long a node may be NotReady or unreachable
	// before the pods on it are deleted at once and their instances made
	// again elsewhere (Kubernetes alone waits 300 s). 0 to 3600. Defaults
	// to 60. Not part of the instance template.
	// +optional
	NodeLostSeconds *int32 `json:"nodeLostSeconds,omitempty"`
	// TerminationGracePeriodSeconds is how long a stopping server may drain
	// (legacy "termination_grace_period_seconds"). 0 to 3600. Defaults to 60.
	// +optional
	TerminationGracePeriodSeconds *int64 `json:"terminationGracePeriodSeconds,omitempty"`

	// Strategy is how changes roll out to the instances.
	// +optional
	Strategy InferServerStrategy `json:"strategy,omitempty"`
	// Paused stops a rollout where it stands; scaling still happens.
	// +optional
	Paused bool `json:"paused,omitempty"`
	// RevisionHistoryLimit is how many old revisions are kept for rollback.
	// 0 to 100. Defaults to 10.
	// +optional
	RevisionHistoryLimit *int32 `json:"revisionHistoryLimit,omitempty"`
	// ProgressDeadlineSeconds is how long a rollout or scale may go without
	// progress (an instance created, updated, deleted or becoming ready)
	// before the Progressing condition turns False with reason
	// ProgressDeadlineExceeded. The rollout goes on; the condition is for
	// people and tools that wait. Between 1 and 86400; keep it above
	// health.startupSeconds, or a server still loading within its budget
	// counts as stuck. Defaults to health.startupSeconds + 600.
	// +optional
	ProgressDeadlineSeconds *int32 `json:"progressDeadlineSeconds,omitempty"`

	// PodMetadata adds labels and annotations to every pod.
	// +optional
	PodMetadata PodMetadata `json:"podMetadata,omitempty"`
	// ServiceAccountName the pods run as. Empty means the namespace's default.
	// +optional
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
	// NodeSelector is added to the accelerator selector
	// (accelerator=huawei-<npu type>) that every pod gets.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// Tolerations of every pod.
	// +optional
	// +listType=atomic
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`
	// Affinity of every pod. Cross-node instances also get an anti-affinity
	// that keeps the pods of one instance on distinct nodes.
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`
	// Env is added to the environment the server container gets (HOST_IP,
	// MIES_CONTAINER_IP, MIES_CONTAINER_MANAGEMENT_IP, MIES_CONFIG_JSON_PATH,
	// MIES_INSTALL_PATH, MINDIE_USE_HTTPS). Names may not start with "MIES_".
	// +optional
	// +listType=map
	// +listMapKey=name
	Env []corev1.EnvVar `json:"env,omitempty"`
	// Volumes are extra pod volumes, mounted by VolumeMounts.
	// +optional
	// +listType=map
	// +listMapKey=name
	Volumes []corev1.Volume `json:"volumes,omitempty"`
	// VolumeMounts are extra mounts into the server container.
	// +optional
	// +listType=map
	// +listMapKey=mountPath
	VolumeMounts []corev1.VolumeMount `json:"volumeMounts,omitempty"`
}

// ServerConfigSource is where MindIE Server's config.json comes from. At most
// one of configMap, inline and hostPath is set; with none,
// hostPath defaults to /mnt/mindie-service/ms/config/config.json.
type ServerConfigSource struct {
	// ConfigMap selects a key of a ConfigMap in the InferServer's namespace.
	// +optional
	ConfigMap *ConfigMapKeyReference `json:"configMap,omitempty"`
	// Inline is the whole config.json document; it must be a JSON object. The
	// controller stores it in a ConfigMap it owns.
	// +optional
	Inline string `json:"inline,omitempty"`
	// HostPath is a file on every node, mounted read-only.
	// +optional
	HostPath string `json:"hostPath,omitempty"`
}

// ConfigMapKeyReference names one key of a ConfigMap in the same namespace.
type ConfigMapKeyReference struct {
	// Name of the ConfigMap.
	Name string `json:"name"`
	// Key holding config.json. Defaults to "config.json".
	// +optional
	Key string `json:"key,omitempty"`
}

// InferStorage holds the volumes MindIE Server reads and writes.
type InferStorage struct {
	// Model holds the model weights, mounted read-only. Defaults to the host
	// directory /mnt/mindie-service/ms/model at the same path.
	// +optional
	Model *InferVolume `json:"model,omitempty"`
	// Writable is the server's writable data directory. Defaults to the host
	// directory /mnt/mindie-service/ms/writable-data at the same path.
	// +optional
	Writable *InferVolume `json:"writable,omitempty"`
	// RunScript is the start script, mounted read-only. Defaults to the host
	// file /mnt/mindie-service/ms/run/run.sh at the same path.
	// +optional
	RunScript *InferVolume `json:"runScript,omitempty"`
	// SharedMemorySize is the size of the memory-backed /dev/shm. Defaults to 1Gi.
	// +optional
	SharedMemorySize *resource.Quantity `json:"sharedMemorySize,omitempty"`
}

// InferVolume is one volume of any source mounted at a path.
type InferVolume struct {
	// MountPath inside the container. Must be absolute. Defaults to the path
	// the original deployer used for this volume.
	// +optional
	MountPath string `json:"mountPath,omitempty"`
	// VolumeSource is any pod volume source: hostPath, persistentVolumeClaim,
	// configMap, nfs, ... Exactly one must be set.
	corev1.VolumeSource `json:",inline"`
}

// InferResources is what every pod of an instance requests.
type InferResources struct {
	// CPU request (legacy "cpu_core", in millicores). Between 1 and 256 cores.
	// Defaults to 32. The limit is twice the request unless CPULimit is set.
	// +optional
	CPU *resource.Quantity `json:"cpu,omitempty"`
	// Memory request (legacy "memory", in MiB). Between 1000Mi and 256000Mi.
	// Defaults to 256000Mi. The limit is twice the request unless MemoryLimit is set.
	// +optional
	Memory *resource.Quantity `json:"memory,omitempty"`
	// CPULimit overrides the default CPU limit. At least CPU.
	// +optional
	CPULimit *resource.Quantity `json:"cpuLimit,omitempty"`
	// MemoryLimit overrides the default memory limit. At least Memory.
	// +optional
	MemoryLimit *resource.Quantity `json:"memoryLimit,omitempty"`
	// NPU is the accelerator request of every pod.
	// +optional
	NPU NPURequest `json:"npu,omitempty"`
}

// NPURequest is a number of NPUs of one type.
type NPURequest struct {
	// Type of NPU (legacy "npu_type"): Ascend910 or Ascend310P. Defaults to Ascend910.
	// +optional
	Type NPUType `json:"type,omitempty"`
	// Count of NPUs per pod (legacy "npu_chip_num"). Between 1 and 8.
	// Defaults to 8. Cross-node instances use all 8 NPUs of each node.
	// +optional
	Count *int32 `json:"count,omitempty"`
}

// InferPorts are the server's listening ports.
type InferPorts struct {
	// Inference port (legacy "infer_port"), OpenAI / TGI / Triton APIs.
	// Between 1024 and 65535. Defaults to 1025.
	// +optional
	Inference *int32 `json:"inference,omitempty"`
	// Management port (legacy "management_port"): health, /info, /stopService.
	// Between 1024 and 65535, distinct from Inference. Defaults to 1026.
	// +optional
	Management *int32 `json:"management,omitempty"`
}

// InferTLS configures HTTPS on the server's ports.
type InferTLS struct {
	// Enabled turns HTTPS on (legacy "enable_tls"), exported as
	// MINDIE_USE_HTTPS; probes then use HTTPS. Defaults to false.
	// +optional
	Enabled bool `json:"enabled,omitempty"`
	// SecretName is a kubernetes.io/tls Secret mounted at
	// <installPath>/security/certs. Empty means the image brings its own.
	// +optional
	SecretName string `json:"secretName,omitempty"`
}

// InferServiceExposure is the Service in front of the instances.
type InferServiceExposure struct {
	// Type of the Service: NodePort (the original's only choice) or ClusterIP.
	// Defaults to NodePort.
	// +optional
	Type corev1.ServiceType `json:"type,omitempty"`
	// NodePort (legacy "service_port") for type NodePort. Between 30000 and
	// 32767; 0 or unset lets Kubernetes choose.
	// +optional
	NodePort int32 `json:"nodePort,omitempty"`
}

// RoleName is the part an instance plays in a Prefill/Decode group.
// +enum
type RoleName string

const (
	// RolePrefill instances compute prompts and hand each request to a decode instance.
	RolePrefill RoleName = "prefill"
	// RoleDecode instances generate the tokens of requests a prefill instance handed over.
	RoleDecode RoleName = "decode"
)

// InferRole is one role of a Prefill/Decode InferServer: how many
// instances of it a group has and, where they differ from the top-level
// fields, their shape.
type InferRole struct {
	// Name of the role: prefill or decode.
	Name RoleName `json:"name"`
	// Instances of this role in one group. At least 1; the two roles
	// together at most 16 (what MindIE links in one group). Defaults to 1.
	// +optional
	Instances *int32 `json:"instances,omitempty"`
	// NodesPerInstance of this role's instances: 1, 2 or 4. Defaults to
	// spec.nodesPerInstance. Immutable.
	// +optional
	NodesPerInstance *int32 `json:"nodesPerInstance,omitempty"`
	// Resources of this role's pods. Unset: spec.resources.
	// +optional
	Resources *InferResources `json:"resources,omitempty"`
	// ServerConfig of this role's servers. Unset: spec.serverConfig.
	// +optional
	ServerConfig *ServerConfigSource `json:"serverConfig,omitempty"`
}

// RouterAlgorithm is how a router picks the instance of a request.
// +enum
type RouterAlgorithm string

const (
	// RouterRoundRobin takes the instances in turn, skipping those whose free
	// slots or KV blocks are at or below the thresholds (MindIE Motor's
	// Coordinator round_robin).
	RouterRoundRobin RouterAlgorithm = "round_robin"
	// RouterCacheAffinity sends a chat's next turn to the instance holding
	// its earlier turns' prefix cache while that instance is not saturated;
	// other requests go least-loaded.
	RouterCacheAffinity RouterAlgorithm = "cache_affinity"
	// RouterLeastLoad picks the instance with the least work in flight.
	RouterLeastLoad RouterAlgorithm = "least_load"
)

// RouterAuthentication is how a router authenticates its callers.
// +enum
type RouterAuthentication string

const (
	// RouterAuthenticationKubernetes checks the caller's bearer token with a
	// TokenReview and requires create on this server's inferservers/proxy
	// (SubjectAccessReview): the RBAC that lets a tenant chat through the API
	// lets it call the router.
	RouterAuthenticationKubernetes RouterAuthentication = "Kubernetes"
	// RouterAuthenticationNone admits every caller that reaches the router.
	RouterAuthenticationNone RouterAuthentication = "None"
)

// RouterSpec configures the mindie-router replicas in front of an
// InferServer. The router serves HTTPS on the inference port
// (spec.ports.inference) and reads the instances from the server's pods.
type RouterSpec struct {
	// Algorithm picks the instance of each request: round_robin,
	// cache_affinity or least_load. Defaults to cache_affinity.
	// +optional
	Algorithm RouterAlgorithm `json:"algorithm,omitempty"`
	// Replicas is the number of router pods, all active. Between 1 and 64.
	// Defaults to 2.
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`
	// Image holding the mindie-router binary. Defaults to "mindie:router".
	// +optional
	Image string `json:"image,omitempty"`
	// ImagePullPolicy of the router container. Defaults to IfNotPresent.
	// +optional
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`
	// Authentication is Kubernetes (a bearer token allowed to create this
	// server's inferservers/proxy) or None, which must be asked for.
	// Defaults to Kubernetes.
	// +optional
	Authentication RouterAuthentication `json:"authentication,omitempty"`
	// TLSSecretName is a kubernetes.io/tls Secret with the router's serving
	// certificate. Empty: each router pod makes a self-signed one.
	// +optional
	TLSSecretName string `json:"tlsSecretName,omitempty"`
	// SlotsThresholdPercent: an instance whose free slots are at or below
	// this share of its slots gets no new request while another has room
	// (the Coordinator's slots_thresh). Between 0 and 100. Defaults to 5.
	// +optional
	SlotsThresholdPercent *int32 `json:"slotsThresholdPercent,omitempty"`
	// BlocksThresholdPercent: the same for free KV cache blocks (the
	// Coordinator's block_thresh). Between 0 and 100. Defaults to 5.
	// +optional
	BlocksThresholdPercent *int32 `json:"blocksThresholdPercent,omitempty"`
	// MaxRetries is how many other instances a request that fails before
	// its first byte is tried on. Between 0 and 10. Defaults to 2.
	// +optional
	MaxRetries *int32 `json:"maxRetries,omitempty"`
	// MaxBodySize is the largest request body; larger ones get 413.
	// Between 1Ki and 1Gi. Defaults to 8Mi.
	// +optional
	MaxBodySize *resource.Quantity `json:"maxBodySize,omitempty"`
	// MaxInflight is how many requests one router pod has in flight at
	// most; more get 429. Between 1 and 1000000. Defaults to 10000.
	// +optional
	MaxInflight *int32 `json:"maxInflight,omitempty"`
	// MaxInflightPerInstance is how many requests one router pod has in
	// flight on one instance at most. Between 1 and 1000000, at most
	// MaxInflight. Defaults to 1000.
	// +optional
	MaxInflightPerInstance *int32 `json:"maxInflightPerInstance,omitempty"`
	// FirstTokenTimeoutSeconds bounds the wait for an answer's first byte
	// (504). Between 1 and 86400. Defaults to 600.
	// +optional
	FirstTokenTimeoutSeconds *int32 `json:"firstTokenTimeoutSeconds,omitempty"`
	// RequestTimeoutSeconds bounds a whole request, streaming included.
	// Between 1 and 86400, at least FirstTokenTimeoutSeconds. Defaults to 600.
	// +optional
	RequestTimeoutSeconds *int32 `json:"requestTimeoutSeconds,omitempty"`
	// Resources of the router container. Defaults to requests of 500m CPU
	// and 256Mi memory, limits of 2 CPUs and 1Gi.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`
}

// HealthSpec configures how instance health is probed on the management port.
type HealthSpec struct {
	// StartupSeconds is the budget a server has to come up (legacy
	// "init_delay"): the startup probe runs every second and gives up after
	// this many failures. Between 10 and 1800. Defaults to 180.
	// +optional
	StartupSeconds *int32 `json:"startupSeconds,omitempty"`
	// DetectInnerErrors probes with /health/timed-<timeout>, which runs a tiny
	// inference, instead of /v2/health/{ready,live} (legacy
	// "detect_server_inner_error"). Defaults to true.
	// +optional
	DetectInnerErrors *bool `json:"detectInnerErrors,omitempty"`
	// Liveness restarts a server that stops answering.
	// +optional
	Liveness ProbeSpec `json:"liveness,omitempty"`
	// Readiness takes a busy or broken server out of its Service.
	// +optional
	Readiness ProbeSpec `json:"readiness,omitempty"`
}

// ProbeSpec tunes one probe.
type ProbeSpec struct {
	// TimeoutSeconds of one probe (legacy "liveness_timeout" /
	// "readiness_timeout"). Between 1 and 600. Defaults to 10.
	// +optional
	TimeoutSeconds *int32 `json:"timeoutSeconds,omitempty"`
	// FailureThreshold is how many failures in a row count (legacy
	// "*_failure_threshold"). Between 1 and 10. Defaults to 1.
	// +optional
	FailureThreshold *int32 `json:"failureThreshold,omitempty"`
	// PeriodSeconds between probes. Between 1 and 3600. Defaults to 3 for
	// liveness and 5 for readiness, as the original.
	// +optional
	PeriodSeconds *int32 `json:"periodSeconds,omitempty"`
}

// InferServerStrategy is how a new revision replaces the old one.
type InferServerStrategy struct {
	// Type is RollingUpdate or Recreate. Defaults to RollingUpdate.
	// +optional
	Type InferServerStrategyType `json:"type,omitempty"`
	// RollingUpdate tunes a RollingUpdate; only with type RollingUpdate.
	// +optional
	RollingUpdate *RollingUpdateInferServer `json:"rollingUpdate,omitempty"`
}

// RollingUpdateInferServer bounds a rolling update, counted in instances.
type RollingUpdateInferServer struct {
	// MaxUnavailable is how many instances may be unavailable during the
	// update: a number, or a percentage of replicas rounded down (legacy
	// "max_unavailable"). Defaults to 50%. Not 0 when MaxSurge is 0.
	// +optional
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`
	// MaxSurge is how many instances may exist above replicas during the
	// update: a number, or a percentage rounded up (legacy "max_surge").
	// Defaults to 50%.
	// +optional
	MaxSurge *intstr.IntOrString `json:"maxSurge,omitempty"`
}

// PodMetadata is extra metadata for every pod.
type PodMetadata struct {
	// Labels added to every pod. Keys under infer.mindie.io/ are reserved.
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// Annotations added to every pod.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Condition types of an InferServer.
const (
	// ConditionAvailable is True when at least replicas - maxUnavailable instances are ready.
	ConditionAvailable = "Available"
	// ConditionProgressing is True while a rollout or scale is under way or has just completed.
	ConditionProgressing = "Progressing"
	// ConditionDegraded is True when something keeps instances from running as asked.
	ConditionDegraded = "Degraded"
)

// InferServerStatus is the observed state of an InferServer.
type InferServerStatus struct {
	// ObservedGeneration is the generation the controller last acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Replicas is the number of instances that exist, old and new.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`
	// UpdatedReplicas is the number of instances at the current revision.
	// +optional
	UpdatedReplicas int32 `json:"updatedReplicas,omitempty"`
	// ReadyReplicas is the number of instances whose every pod is ready.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`
	// AvailableReplicas is the number of ready instances that serve.
	// +optional
	AvailableReplicas int32 `json:"availableReplicas,omitempty"`
	// UnavailableReplicas is replicas minus available instances.
	// +optional
	UnavailableReplicas int32 `json:"unavailableReplicas,omitempty"`
	// Selector is the label selector of the pods, in string form, for the
	// scale subresource and HorizontalPodAutoscalers.
	// +optional
	Selector string `json:"selector,omitempty"`
	// CurrentRevision is the revision the stable instances run.
	// +optional
	CurrentRevision string `json:"currentRevision,omitempty"`
	// UpdateRevision is the revision being rolled out.
	// +optional
	UpdateRevision string `json:"updateRevision,omitempty"`
	// LastProgressTime is when the rollout last made progress: when the
	// generation, the revision being rolled out, or the number of existing,
	// updated or ready instances last changed. The progress deadline counts
	// from it.
	// +optional
	LastProgressTime *metav1.Time `json:"lastProgressTime,omitempty"`
	// Conditions are Available, Progressing and Degraded.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Instances lists every instance and its pods.
	// +optional
	// +listType=map
	// +listMapKey=name
	Instances []InstanceStatus `json:"instances,omitempty"`
	// Roles is the state of each role of a Prefill/Decode server, counted
	// over the groups of the revision being rolled out.
	Roles []InferRoleStatus `json:"roles,omitempty"`
	// Faults are the server's recent faults, oldest first, at most
	// MaxFaultHistory.
	Faults []FaultRecord `json:"faults,omitempty"`
	// Router is the state of the router, when spec.router is set.
	// +optional
	Router *RouterStatus `json:"router,omitempty"`
	// Model is what the servers report from GET /info on the management port.
	// +optional
	Model *ModelInfo `json:"model,omitempty"`
}

// RouterStatus is the observed state of an InferServer's router.
type RouterStatus struct {
	// Replicas is the number of router pods that exist.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`
	// UpdatedReplicas is the number of router pods at the current spec.
	// +optional
	UpdatedReplicas int32 `json:"updatedReplicas,omitempty"`
	// ReadyReplicas is the number of router pods that serve.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`
	// Algorithm the routers run.
	// +optional
	Algorithm RouterAlgorithm `json:"algorithm,omitempty"`
	// Endpoint is the in-cluster URL of the router's Service.
	// +optional
	Endpoint string `json:"endpoint,omitempty"`
	// NodePort is the port on every node that reaches the routers, when the
	// Service is of type NodePort.
	// +optional
	NodePort int32 `json:"nodePort,omitempty"`
	// Pods are the router pods that are not being deleted.
	// +optional
	// +listType=map
	// +listMapKey=name
	Pods []RouterPodStatus `json:"pods,omitempty"`
}

// RouterPodStatus is the observed state of one router pod.
type RouterPodStatus struct {
	// Name of the pod.
	Name string `json:"name"`
	// Node the pod runs on.
	// +optional
	Node string `json:"node,omitempty"`
	// PodIP of the pod.
	// +optional
	PodIP string `json:"podIP,omitempty"`
	// Ready is true when the pod passes its readiness probe.
	// +optional
	Ready bool `json:"ready,omitempty"`
}

// InstanceStatus is the observed state of one instance.
type InstanceStatus struct {
	// Name of the instance (also the name of its workload).
	Name string `json:"name"`
	// Revision the instance runs.
	// +optional
	Revision string `json:"revision,omitempty"`
	// Ready is true when every pod of the instance is ready.
	// +optional
	Ready bool `json:"ready,omitempty"`
	// Master is the pod that serves the instance (the first of the
	// ranktable for a cross-node instance).
	// +optional
	Master string `json:"master,omitempty"`
	// Ranktable is the state of a cross-node instance's HCCL ranktable:
	// initializing or completed.
	// +optional
	Ranktable string `json:"ranktable,omitempty"`
	// Recreations counts how often the controller recreated the whole
	// instance because one of its pods failed (cross-node instances).
	// +optional
	Recreations int32 `json:"recreations,omitempty"`
	// Message explains an instance that is not ready, such as why it is
	// being recreated.
	// +optional
	Message string `json:"message,omitempty"`
	// Pods of the instance.
	// +optional
	// +listType=map
	// +listMapKey=name
	Pods []InstancePodStatus `json:"pods,omitempty"`
	// Members of a Prefill/Decode group (spec.roles): the instance is then
	// a group, ready when every member serves its role linked to every
	// peer (the other role's members of the group).
	// +optional
	// +listType=map
	// +listMapKey=name
	Members []GroupMemberStatus `json:"members,omitempty"`
}

// FaultKind is the kind of a recorded fault.
type FaultKind string

// FaultAction is what the controller did about a fault.
type FaultAction string

// FaultRecord is one fault of an instance.
type FaultRecord struct {
	Time          metav1.Time  `json:"time"`
	Kind          FaultKind    `json:"kind"`
	Instance      string       `json:"instance,omitempty"`
	Pod           string       `json:"pod,omitempty"`
	Node          string       `json:"node,omitempty"`
	Chip          string       `json:"chip,omitempty"`
	Level         string       `json:"level,omitempty"`
	Code          string       `json:"code,omitempty"`
	Action        FaultAction  `json:"action,omitempty"`
	Message       string       `json:"message,omitempty"`
	RecoveredTime *metav1.Time `json:"recoveredTime,omitempty"`
}

// InferRoleStatus is the state of one role of a Prefill/Decode server.
type InferRoleStatus struct {
	Name      RoleName `json:"name"`
	Instances int32    `json:"instances,omitempty"`
	Updated   int32    `json:"updated,omitempty"`
	Ready     int32    `json:"ready,omitempty"`
	Linked    int32    `json:"linked,omitempty"`
}

// GroupMemberStatus is the observed state of one member (a prefill or a
// decode instance) of a Prefill/Decode group.
type GroupMemberStatus struct {
	// Name of the member in its group: p<i> or d<i>.
	Name string `json:"name"`
	// Role of the member: prefill or decode.
	// +optional
	Role RoleName `json:"role,omitempty"`
	// PDID is the MindIE instance id the controller gave the member (the
	// role API's local.id; its peers' linkStatus name it).
	// +optional
	PDID int64 `json:"pdID,omitempty"`
	// Pod that serves the member.
	// +optional
	Pod string `json:"pod,omitempty"`
	// RoleStatus is what the member's GET /v1/status last said of its role
	// (RoleUnknown, RoleSwitching, RoleReady); empty before its role was
	// posted.
	// +optional
	RoleStatus string `json:"roleStatus,omitempty"`
	// LinkedPeers counts the peers whose link the member reports ok.
	// +optional
	LinkedPeers int32 `json:"linkedPeers,omitempty"`
	// Peers counts the peers the member was told to link to.
	// +optional
	Peers int32 `json:"peers,omitempty"`
	// Message says what the member waits for, or the last error of the
	// role API.
	// +optional
	Message string `json:"message,omitempty"`
}

// InstancePodStatus is the observed state of one pod of an instance.
type InstancePodStatus struct {
	// Name of the pod.
	Name string `json:"name"`
	// Node the pod runs on.
	// +optional
	Node string `json:"node,omitempty"`
	// PodIP of the pod.
	// +optional
	PodIP string `json:"podIP,omitempty"`
	// NPUs the device plugin gave the pod (its huawei.com/<type> annotation).
	// +optional
	// +listType=atomic
	NPUs []string `json:"npus,omitempty"`
	// Phase of the pod.
	// +optional
	Phase corev1.PodPhase `json:"phase,omitempty"`
	// Live is true when the server process runs and passes its liveness probe.
	// +optional
	Live bool `json:"live,omitempty"`
	// Ready is true when the pod passes its readiness probe.
	// +optional
	Ready bool `json:"ready,omitempty"`
	// Restarts of the server container.
	// +optional
	Restarts int32 `json:"restarts,omitempty"`
	// Message explains a pod that is not ready (a waiting reason, a failing probe).
	// +optional
	Message string `json:"message,omitempty"`
}

// ModelInfo is the model information a MindIE Server reports on GET /info.
type ModelInfo struct {
	// Version of the MindIE Server.
	// +optional
	Version string `json:"version,omitempty"`
	// MaxInputLength in tokens.
	// +optional
	MaxInputLength int64 `json:"maxInputLength,omitempty"`
	// MaxBatchTotalTokens the server batches at most.
	// +optional
	MaxBatchTotalTokens int64 `json:"maxBatchTotalTokens,omitempty"`
	// MaxConcurrentRequests the server accepts.
	// +optional
	MaxConcurrentRequests int64 `json:"maxConcurrentRequests,omitempty"`
	// Models served.
	// +optional
	// +listType=atomic
	Models []ModelEntry `json:"models,omitempty"`
	// Instance the information was read from.
	// +optional
	Instance string `json:"instance,omitempty"`
	// LastUpdateTime is when the information was read.
	// +optional
	LastUpdateTime *metav1.Time `json:"lastUpdateTime,omitempty"`
}

// ModelEntry is one model of GET /info.
type ModelEntry struct {
	// ID of the model (model_id).
	ID string `json:"id"`
	// DType of the weights (model_dtype).
	// +optional
	DType string `json:"dtype,omitempty"`
	// DeviceType the model runs on (model_device_type), "npu".
	// +optional
	DeviceType string `json:"deviceType,omitempty"`
	// PipelineTag (model_pipeline_tag), such as text-generation.
	// +optional
	PipelineTag string `json:"pipelineTag,omitempty"`
	// MaxTotalTokens of one sequence (max_total_tokens).
	// +optional
	MaxTotalTokens int64 `json:"maxTotalTokens,omitempty"`
	// SHA of the weights (model_sha).
	// +optional
	SHA string `json:"sha,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// InferServerList is a list of InferServers.
type InferServerList struct {
	metav1.TypeMeta `json:",inline"`
	// Standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items is the list of InferServers.
	Items []InferServer `json:"items"`
}

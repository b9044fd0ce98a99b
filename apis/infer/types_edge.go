package infer

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// EdgeDeployment is the IEF "batch application deployment" job in
// Kubernetes terms (docs/edge.md has the form field by field).
//
// Choices made, and why:
//   - A batch, not a DaemonSet: the target nodes (spec.targets) are resolved
//     once, when the job starts, and recorded in status.targets; a node that
//     joins later, or gains a matching label, is not deployed to. So
//     spec.targets is immutable.
//   - One template for every node: like a Job's pod template, what is
//     deployed (spec.namePrefix, instancesPerNode, restartPolicy, hostPID,
//     imagePullSecrets, container, network) is immutable, so that every node
//     of the job, retried ones included, runs the same thing. To deploy
//     something else, create another EdgeDeployment.
//   - Job control stays mutable: spec.stopped (stop and continue),
//     spec.retryGeneration (re-run the failed and timed-out nodes; it may
//     only grow), spec.maxConcurrentNodes, spec.timeoutSeconds and
//     spec.description.
//   - The nodes must share one kubernetes.io/arch: which architecture the
//     targets have is only known from the nodes, so the controller checks it
//     and refuses the job (condition Failed, reason MixedArchitectures,
//     naming the nodes of each architecture); the API checks the shape only.
//   - At most 1000 nodes per job (MaxEdgeTargets), so that the per-node
//     status fits in one object; split bigger fleets into several
//     EdgeDeployments.
//
// The API server sets status.phase to Queued on creation; everything else
// in status is written by a controller through the status subresource.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
type EdgeDeployment struct {
	metav1.TypeMeta `json:",inline"`
	// Standard object metadata. The name is a DNS-1123 label of at most 48
	// characters.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the application and how the job deploys it.
	// +optional
	Spec EdgeDeploymentSpec `json:"spec,omitempty"`
	// Status is the state of the job, written by the controller only.
	// +optional
	Status EdgeDeploymentStatus `json:"status,omitempty"`
}

// EdgeDeploymentSpec is the IEF batch deployment form: the target nodes,
// the application (one container, its volumes and its network) and the
// job's control.
type EdgeDeploymentSpec struct {
	// Description of the job (the form's description), at most 255
	// characters.
	// +optional
	Description string `json:"description,omitempty"`

	// Targets are the nodes to deploy to: the nodes named and the nodes
	// matching the selector, together. Resolved once when the job starts
	// (status.targets); immutable.
	Targets EdgeTargets `json:"targets"`

	// NamePrefix starts the name of every pod of the job; the controller
	// appends the node and the instance. A DNS-1123 label of at most 48
	// characters. Empty means metadata.name. Immutable.
	// +optional
	NamePrefix string `json:"namePrefix,omitempty"`
	// InstancesPerNode is how many instances (pods) of the application run
	// on each target node. Between 1 and 64. Defaults to 1. More than 1 is
	// refused with host port mappings, which two instances on one node
	// cannot share. Immutable.
	// +optional
	InstancesPerNode *int32 `json:"instancesPerNode,omitempty"`
	// RestartPolicy of the container: Always restarts it whenever it exits,
	// OnFailure only when it exits with an error, Never not at all.
	// Defaults to Always. Immutable.
	// +optional
	RestartPolicy corev1.RestartPolicy `json:"restartPolicy,omitempty"`
	// HostPID shares the node's process ID namespace with the container.
	// Immutable.
	// +optional
	HostPID bool `json:"hostPID,omitempty"`
	// ImagePullSecrets used to pull the image from a private registry.
	// Immutable.
	// +optional
	// +listType=atomic
	ImagePullSecrets []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`
	// Container is the application. Immutable.
	Container EdgeContainer `json:"container"`
	// Network is how the container is reached: port mappings or the node's
	// network. Immutable.
	// +optional
	Network EdgeNetwork `json:"network,omitempty"`

	// MaxConcurrentNodes is how many nodes are deployed to at once; the
	// others wait in state Queued. Between 1 and 1000. Defaults to 100, so
	// that a big fleet does not pull the image all at the same time.
	// +optional
	MaxConcurrentNodes *int32 `json:"maxConcurrentNodes,omitempty"`
	// TimeoutSeconds bounds a run of the job, queueing included, as IEF's
	// "update timed out": counted from status.startTime (the creation for
	// the first run, else the retry or the continue after a stop); the nodes
	// not done by then are TimedOut, and so is the job. Between 1 and 86400. Defaults to 600
	// (IEF's 10 minutes).
	// +optional
	TimeoutSeconds *int32 `json:"timeoutSeconds,omitempty"`
	// Stopped stops the job: no node is started any more, the nodes being
	// deployed finish (phase Stopping), the waiting ones become Stopped, and
	// what was deployed stays. Setting it back to false continues the job
	// with the Stopped nodes.
	// +optional
	Stopped bool `json:"stopped,omitempty"`
	// RetryGeneration is raised to run the job again on its Failed and
	// TimedOut nodes only, once the current run has ended;
	// status.observedRetryGeneration says which retry the controller acted
	// on. May only grow. Not negative.
	// +optional
	RetryGeneration int64 `json:"retryGeneration,omitempty"`
}

// EdgeTargets selects the nodes of a job: the nodes named, the nodes
// matching the selector, or both (their union). At least one is given.
type EdgeTargets struct {
	// Nodes by name, at most 1000, each once.
	// +optional
	// +listType=set
	Nodes []string `json:"nodes,omitempty"`
	// Selector matches nodes by their labels (the form's label search). It
	// must have at least one requirement: an empty selector would match
	// every node of the cluster.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
}

// EdgeContainer is the one container of the application.
type EdgeContainer struct {
	// Image of the container, with its version as the tag (the form's image
	// and image version). It must be built for the architecture of the
	// target nodes. An image with the tag "latest" or no tag is accepted
	// with a warning: which version runs then depends on when each node
	// pulled, and there is no going back to the previous one.
	Image string `json:"image"`
	// ImagePullPolicy: Always, IfNotPresent or Never. Defaults to Always for
	// an image tagged latest or untagged and to IfNotPresent otherwise, as
	// Kubernetes does.
	// +optional
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`
	// Resources of the container: CPU, memory and Ascend NPUs.
	// +optional
	Resources EdgeResources `json:"resources,omitempty"`
	// Command replaces the image's ENTRYPOINT; Args replace its CMD. Unset,
	// the image's own is used:
	//   image ENTRYPOINT [touch], CMD [/root/test]:
	//   command unset,   args unset        -> touch /root/test
	//   command [mkdir], args unset        -> mkdir (the CMD is dropped too)
	//   command unset,   args [/opt/test]  -> touch /opt/test
	//   command [mkdir], args [/opt/test]  -> mkdir /opt/test
	// Each element is one argument, never split on spaces; to run several
	// commands, use a shell: ["/bin/sh", "-c", "a && b"].
	// +optional
	// +listType=atomic
	Command []string `json:"command,omitempty"`
	// Args are the arguments: they replace the image's CMD (see Command).
	// +optional
	// +listType=atomic
	Args []string `json:"args,omitempty"`
	// Privileged runs the container with root privileges on the node, with
	// access to its devices.
	// +optional
	Privileged bool `json:"privileged,omitempty"`
	// Env is the container's environment. Each variable has a value, or
	// valueFrom with exactly one of secretKeyRef (a key of a Secret),
	// configMapKeyRef (a key of a ConfigMap) or fieldRef with fieldPath
	// status.hostIP (the node's IP address). Values are stored as they are,
	// not encrypted: put sensitive ones in a Secret.
	// +optional
	// +listType=map
	// +listMapKey=name
	Env []corev1.EnvVar `json:"env,omitempty"`
	// Volumes are the volumes of the container, each mounted at its
	// mountPath.
	// +optional
	// +listType=map
	// +listMapKey=name
	Volumes []EdgeVolume `json:"volumes,omitempty"`
	// LivenessProbe restarts the container when it fails.
	// +optional
	LivenessProbe *EdgeProbe `json:"livenessProbe,omitempty"`
	// ReadinessProbe says when the application is ready to serve: a node
	// is not Succeeded before its instances are ready.
	// +optional
	ReadinessProbe *EdgeProbe `json:"readinessProbe,omitempty"`
}

// EdgeNPUType is the kind of Ascend NPU an edge container requests; the
// extended resource is huawei.com/<type>.
// +enum
type EdgeNPUType string

const (
	// EdgeNPUAscend310 is the Ascend 310 (Atlas 200, Atlas 500, Atlas 300I).
	EdgeNPUAscend310 EdgeNPUType = "Ascend310"
	// EdgeNPUAscend310P is the Ascend 310P (Atlas 300I Pro, Atlas 300V).
	EdgeNPUAscend310P EdgeNPUType = "Ascend310P"
	// EdgeNPUAscend910 is the Ascend 910 (Atlas 800, Atlas 900).
	EdgeNPUAscend910 EdgeNPUType = "Ascend910"
)

// EdgeResources are the container's requests and limits.
type EdgeResources struct {
	// CPU request, between 1m and 256 cores. Defaults to 250m.
	// +optional
	CPU *resource.Quantity `json:"cpu,omitempty"`
	// CPULimit, at least CPU. Defaults to CPU.
	// +optional
	CPULimit *resource.Quantity `json:"cpuLimit,omitempty"`
	// Memory request, between 6Mi (the container runtime's least) and
	// 1Ti. Defaults to 512Mi.
	// +optional
	Memory *resource.Quantity `json:"memory,omitempty"`
	// MemoryLimit, at least Memory. Defaults to Memory.
	// +optional
	MemoryLimit *resource.Quantity `json:"memoryLimit,omitempty"`
	// NPU requests Ascend NPUs of one kind: a container uses one kind of
	// Ascend chip only. Unset, none.
	// +optional
	NPU *EdgeNPU `json:"npu,omitempty"`
}

// EdgeNPU is a number of Ascend NPUs of one type (huawei.com/<type>,
// request = limit).
type EdgeNPU struct {
	// Type: Ascend310, Ascend310P or Ascend910.
	Type EdgeNPUType `json:"type"`
	// Count of NPUs, between 1 and 32. Defaults to 1.
	// +optional
	Count *int32 `json:"count,omitempty"`
}

// EdgeVolume is one volume and where it is mounted in the container.
// Exactly one of hostPath, emptyDir, configMap and secret is set.
//
// A volume may not be mounted on a system directory of the container (/,
// /bin, /boot, /dev, /etc, /lib, /lib64, /proc, /run, /sbin, /sys, /usr,
// /var, /var/run), which would break it, nor, with an NPU, on or under
// /var/dlog, which the Ascend runtime mounts for the NPU's logs.
type EdgeVolume struct {
	// Name of the volume, a DNS-1123 label, unique in the container.
	Name string `json:"name"`
	// MountPath in the container: absolute, without "..", unique.
	MountPath string `json:"mountPath"`
	// ReadOnly mounts the volume read-only.
	// +optional
	ReadOnly bool `json:"readOnly,omitempty"`

	// HostPath is a directory or file of the node; what the application
	// writes there outlives it. Mounting a sensitive host directory (/,
	// /etc, /var/run, ...) is accepted with a warning: run the container as
	// a user without privileges then. For logs, /var/IEF/app/log/<name> is
	// IEF's convention.
	// +optional
	HostPath *corev1.HostPathVolumeSource `json:"hostPath,omitempty"`
	// EmptyDir is an empty directory on the node's disk or in memory that
	// lives as long as the pod.
	// +optional
	EmptyDir *EdgeEmptyDir `json:"emptyDir,omitempty"`
	// ConfigMap mounts the keys of a ConfigMap of the namespace as files.
	// +optional
	ConfigMap *corev1.ConfigMapVolumeSource `json:"configMap,omitempty"`
	// Secret mounts the keys of a Secret of the namespace as files.
	// +optional
	Secret *corev1.SecretVolumeSource `json:"secret,omitempty"`
}

// EdgeStorageMedium is where an emptyDir lives.
// +enum
type EdgeStorageMedium string

const (
	// EdgeStorageDisk keeps an emptyDir on the node's disk.
	EdgeStorageDisk EdgeStorageMedium = "Disk"
	// EdgeStorageMemory keeps an emptyDir in memory (tmpfs); it counts
	// against the container's memory.
	EdgeStorageMemory EdgeStorageMedium = "Memory"
)

// EdgeEmptyDir is a scratch directory.
type EdgeEmptyDir struct {
	// Medium: Disk or Memory. Defaults to Disk.
	// +optional
	Medium EdgeStorageMedium `json:"medium,omitempty"`
	// SizeLimit caps the directory's size; greater than zero when set.
	// +optional
	SizeLimit *resource.Quantity `json:"sizeLimit,omitempty"`
}

// EdgeProbe is a health check: an HTTP GET or a command, exactly one.
type EdgeProbe struct {
	// HTTPGet succeeds when the container answers a GET with a status from
	// 200 to 399.
	// +optional
	HTTPGet *EdgeHTTPGet `json:"httpGet,omitempty"`
	// Exec succeeds when a command run in the container exits with 0.
	// +optional
	Exec *EdgeExec `json:"exec,omitempty"`
	// InitialDelaySeconds before the first check, between 0 and 3600.
	// +optional
	InitialDelaySeconds int32 `json:"initialDelaySeconds,omitempty"`
	// TimeoutSeconds of one check, between 1 and 600. Defaults to 1.
	// +optional
	TimeoutSeconds *int32 `json:"timeoutSeconds,omitempty"`
	// PeriodSeconds between checks, between 1 and 3600. Defaults to 10.
	// +optional
	PeriodSeconds *int32 `json:"periodSeconds,omitempty"`
	// FailureThreshold is how many failed checks in a row count as a
	// failure, between 1 and 100. Defaults to 3.
	// +optional
	FailureThreshold *int32 `json:"failureThreshold,omitempty"`
}

// EdgeHTTPGet is an HTTP health check on a container port.
type EdgeHTTPGet struct {
	// Path of the request, starting with "/". Defaults to "/".
	// +optional
	Path string `json:"path,omitempty"`
	// Port of the container, between 1 and 65535.
	Port int32 `json:"port"`
	// Scheme: HTTP or HTTPS (whose certificate is not verified). Defaults
	// to HTTP.
	// +optional
	Scheme corev1.URIScheme `json:"scheme,omitempty"`
}

// EdgeExec is a command health check.
type EdgeExec struct {
	// Command to run, not through a shell: use ["/bin/sh", "-c", "..."]
	// for one.
	// +listType=atomic
	Command []string `json:"command"`
}

// EdgeNetwork is the form's access configuration.
type EdgeNetwork struct {
	// HostNetwork puts the container in the node's network: it shares the
	// node's IP and binds the node's ports itself. Ports are then ignored
	// (with a warning).
	// +optional
	HostNetwork bool `json:"hostNetwork,omitempty"`
	// Ports map ports of the node to ports of the container: traffic to
	// the node's hostPort reaches the container's containerPort. Each
	// container port and protocol once, each host port and protocol once.
	// +optional
	// +listType=atomic
	Ports []EdgePortMapping `json:"ports,omitempty"`
}

// EdgePortMapping maps a host port to a container port.
type EdgePortMapping struct {
	// ContainerPort the application listens on, between 1 and 65535.
	ContainerPort int32 `json:"containerPort"`
	// HostPort of the node, between 1 and 65535.
	HostPort int32 `json:"hostPort"`
	// Protocol: TCP or UDP. Defaults to TCP.
	// +optional
	Protocol corev1.Protocol `json:"protocol,omitempty"`
	// HostIP binds the host port on one IPv4 address of the node (the
	// form's choice of network card) instead of all of them. IPv6 is not
	// supported, as in IEF.
	// +optional
	HostIP string `json:"hostIP,omitempty"`
}

// EdgeDeploymentPhase is the state of a job, IEF's eight states.
// +enum
type EdgeDeploymentPhase string

const (
	// EdgePhaseQueued: the job waits to be executed (set on creation).
	EdgePhaseQueued EdgeDeploymentPhase = "Queued"
	// EdgePhaseRunning: the job is being executed.
	EdgePhaseRunning EdgeDeploymentPhase = "Running"
	// EdgePhaseSucceeded: every target node succeeded.
	EdgePhaseSucceeded EdgeDeploymentPhase = "Succeeded"
	// EdgePhasePartiallySucceeded: the run ended, some nodes succeeded and
	// some failed or timed out.
	EdgePhasePartiallySucceeded EdgeDeploymentPhase = "PartiallySucceeded"
	// EdgePhaseFailed: the run ended and no node succeeded, or the job was
	// refused (mixed architectures, no or too many target nodes).
	EdgePhaseFailed EdgeDeploymentPhase = "Failed"
	// EdgePhaseStopping: spec.stopped is set and nodes are still being
	// deployed.
	EdgePhaseStopping EdgeDeploymentPhase = "Stopping"
	// EdgePhaseStopped: spec.stopped is set and no node is being deployed.
	EdgePhaseStopped EdgeDeploymentPhase = "Stopped"
	// EdgePhaseTimedOut: the run passed spec.timeoutSeconds before every
	// node was done.
	EdgePhaseTimedOut EdgeDeploymentPhase = "TimedOut"
)

// EdgeNodeState is the state of the job's task on one node.
// +enum
type EdgeNodeState string

const (
	// EdgeNodeQueued: waiting for a slot under spec.maxConcurrentNodes.
	EdgeNodeQueued EdgeNodeState = "Queued"
	// EdgeNodeDeploying: the node's pods are being made and started.
	EdgeNodeDeploying EdgeNodeState = "Deploying"
	// EdgeNodeSucceeded: every instance on the node runs (and is ready,
	// with a readiness probe).
	EdgeNodeSucceeded EdgeNodeState = "Succeeded"
	// EdgeNodeFailed: an instance on the node could not be deployed.
	EdgeNodeFailed EdgeNodeState = "Failed"
	// EdgeNodeTimedOut: the run's timeout passed before the node was done.
	EdgeNodeTimedOut EdgeNodeState = "TimedOut"
	// EdgeNodeStopped: the job was stopped before the node was started.
	EdgeNodeStopped EdgeNodeState = "Stopped"
)

// Condition types of an EdgeDeployment, so that "kubectl wait
// --for=condition=Complete" works as for a Job.
const (
	// EdgeConditionComplete is True when a run ended with every target
	// node Succeeded.
	EdgeConditionComplete = "Complete"
	// EdgeConditionFailed is True when a run ended with nodes Failed or
	// TimedOut, or the job was refused; the reason says which.
	EdgeConditionFailed = "Failed"
)

// Reasons of the Failed condition when the job is refused before any node
// is deployed.
const (
	// EdgeReasonMixedArchitectures: the target nodes do not share one
	// kubernetes.io/arch; the message names the nodes of each.
	EdgeReasonMixedArchitectures = "MixedArchitectures"
	// EdgeReasonNoTargets: the targets resolve to no node.
	EdgeReasonNoTargets = "NoTargets"
	// EdgeReasonTooManyTargets: the targets resolve to more than
	// v1alpha1.MaxEdgeTargets nodes.
	EdgeReasonTooManyTargets = "TooManyTargets"
)

// EdgeDeploymentStatus is the observed state of a job.
type EdgeDeploymentStatus struct {
	// Phase of the job: Queued, Running, Succeeded, PartiallySucceeded,
	// Failed, Stopping, Stopped or TimedOut.
	// +optional
	Phase EdgeDeploymentPhase `json:"phase,omitempty"`
	// ObservedGeneration is the generation the controller last acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// ObservedRetryGeneration is the spec.retryGeneration the controller
	// last acted on; a retry is pending while it is smaller.
	// +optional
	ObservedRetryGeneration int64 `json:"observedRetryGeneration,omitempty"`
	// StartTime is when the current run started: the creation of the
	// EdgeDeployment for the first run (so that time spent Queued counts,
	// as in IEF), else when the last retry or the last continue after a
	// stop was acted on. spec.timeoutSeconds counts from it.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// CompletionTime is when the current run ended; unset while it goes on.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// Targets are the names of the nodes spec.targets resolved to when the
	// job started, recorded once and never changed.
	// +optional
	// +listType=set
	Targets []string `json:"targets,omitempty"`
	// Architecture (kubernetes.io/arch) the target nodes share.
	// +optional
	Architecture string `json:"architecture,omitempty"`

	// Queued counts the target nodes in state Queued.
	// +optional
	Queued int32 `json:"queued,omitempty"`
	// Running counts the target nodes in state Deploying.
	// +optional
	Running int32 `json:"running,omitempty"`
	// Succeeded counts the target nodes in state Succeeded.
	// +optional
	Succeeded int32 `json:"succeeded,omitempty"`
	// Failed counts the target nodes in state Failed.
	// +optional
	Failed int32 `json:"failed,omitempty"`
	// TimedOut counts the target nodes in state TimedOut.
	// +optional
	TimedOut int32 `json:"timedOut,omitempty"`
	// Stopped counts the target nodes in state Stopped.
	// +optional
	Stopped int32 `json:"stopped,omitempty"`

	// Nodes is the task of each target node.
	// +optional
	// +listType=map
	// +listMapKey=node
	Nodes []EdgeNodeStatus `json:"nodes,omitempty"`
	// Conditions are Complete and Failed.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// EdgeNodeStatus is the job's task on one node.
type EdgeNodeStatus struct {
	// Node name, one of status.targets.
	Node string `json:"node"`
	// State: Queued, Deploying, Succeeded, Failed, TimedOut or Stopped.
	State EdgeNodeState `json:"state"`
	// Reason is a CamelCase word for the state, such as ImagePullBackOff.
	// +optional
	Reason string `json:"reason,omitempty"`
	// Message says what happened, for people.
	// +optional
	Message string `json:"message,omitempty"`
	// Pods of the job on the node.
	// +optional
	// +listType=set
	Pods []string `json:"pods,omitempty"`
	// Since is when the node entered its state.
	// +optional
	Since *metav1.Time `json:"since,omitempty"`
	// Attempts counts the runs that deployed to the node: 1, plus one per
	// retry that re-ran it.
	// +optional
	Attempts int32 `json:"attempts,omitempty"`
	// RetryGeneration is the spec.retryGeneration of the last attempt.
	// +optional
	RetryGeneration int64 `json:"retryGeneration,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// EdgeDeploymentList is a list of EdgeDeployments.
type EdgeDeploymentList struct {
	metav1.TypeMeta `json:",inline"`
	// Standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items is the list of EdgeDeployments.
	Items []EdgeDeployment `json:"items"`
}

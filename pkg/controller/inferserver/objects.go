package inferserver

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/ascend"
)

// Names and paths of what the controller puts into pods.
const (
	containerName       = "mindie-server"
	portInference       = "inference"
	portManagement      = "management"
	volumeSharedMemory  = "dshm"
	volumeConfig        = "server-config"
	volumeModel         = "model"
	volumeWritable      = "writable-data"
	volumeRunScript     = "run-script"
	volumeTLS           = "tls"
	volumeRanktable     = "ranktable"
	inlineConfigKey     = "config.json"
	ranktableFileMode   = int32(0o640)
	crossNodeFSGroup    = int64(1001)
	hostnameTopologyKey = "kubernetes.io/hostname"
)

// The builders below read the InferServer as the API server stores it:
// defaulted (apis/infer/v1alpha1/defaults.go) in every field they read. A
// nil pointer here is a bug of the caller, not a value to default again.

// npuResource is the extended resource of the server's NPU type.
func npuResource(s *v1alpha1.InferServer) corev1.ResourceName {
	return ascend.ResourceName(string(npuType(s)))
}

func npuType(s *v1alpha1.InferServer) v1alpha1.NPUType { return s.Spec.Resources.NPU.Type }

func npuCount(s *v1alpha1.InferServer) int32 { return *s.Spec.Resources.NPU.Count }

func nodesPerInstance(s *v1alpha1.InferServer) int32 { return *s.Spec.NodesPerInstance }

// crossNode says whether the instances of s span nodes and share a
// ranktable. The instances of a Prefill/Decode server are its groups,
// whose members have a ranktable each when they span nodes
// (member.multiNode).
func crossNode(s *v1alpha1.InferServer) bool { return nodesPerInstance(s) > 1 && !isPD(s) }

func replicas(s *v1alpha1.InferServer) int32 { return *s.Spec.Replicas }

func inferencePort(s *v1alpha1.InferServer) int32 { return *s.Spec.Ports.Inference }

func managementPort(s *v1alpha1.InferServer) int32 { return *s.Spec.Ports.Management }

// configPath is where config.json is mounted and what MIES_CONFIG_JSON_PATH
// says: the host file itself, or, for a ConfigMap or inline source, the path
// the original deployer mounted it at.
func configPath(s *v1alpha1.InferServer) string {
	if h := s.Spec.ServerConfig.HostPath; h != "" {
		return h
	}
	return v1alpha1.DefaultConfigPath
}

// inlineConfigName is the ConfigMap holding spec.serverConfig.inline.
func inlineConfigName(server string) string { return server + "-config" }

// ranktableName is the ConfigMap of a cross-node instance's HCCL ranktable,
// named as the Ascend Operator names it for a workload.
func ranktableName(instance string) string { return ascend.RanktableConfigMapName(instance) }

// ringController is the ring-controller.atlas label value the Ascend
// Operator and Volcano use to recognise NPU workloads, for pods that span
// nodes and share a ranktable (multiNode) or not.
func ringController(s *v1alpha1.InferServer, multiNode bool) string {
	if multiNode {
		return ascend.RingControllerAscend910B
	}
	if npuType(s) == v1alpha1.NPUTypeAscend310P {
		return ascend.RingControllerAscend310P
	}
	return ascend.RingControllerAscend910
}

// ownerRef makes s the controller of a child the controller creates.
func ownerRef(s *v1alpha1.InferServer) metav1.OwnerReference {
	return metav1.OwnerReference{
		APIVersion: v1alpha1.SchemeGroupVersion.String(),
		Kind:       "InferServer",
		Name:       s.Name,
		UID:        s.UID,
		Controller: ptr.To(true),
	}
}

// ownerRefApply makes s the controller of a child the controller applies.
func ownerRefApply(s *v1alpha1.InferServer) *metav1ac.OwnerReferenceApplyConfiguration {
	return metav1ac.OwnerReference().
		WithAPIVersion(v1alpha1.SchemeGroupVersion.String()).
		WithKind("InferServer").
		WithName(s.Name).
		WithUID(s.UID).
		WithController(true)
}

// serverLabels are the labels of every child of s.
func serverLabels(s *v1alpha1.InferServer) map[string]string {
	return map[string]string{v1alpha1.LabelServer: s.Name}
}

// childMeta is the metadata of a child the controller creates (pods,
// ranktables).
func childMeta(s *v1alpha1.InferServer, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:            name,
		Namespace:       s.Namespace,
		Labels:          serverLabels(s),
		OwnerReferences: []metav1.OwnerReference{ownerRef(s)},
	}
}

// podIdentity says which pod a template is for: the revision, and for a
// cross-node pod its instance and rank.
type podIdentity struct {
	revision string
	instance string // cross-node and PD only
	rank     int    // cross-node and PD only
	pd       *pdIdentity
}

// pdIdentity says which member of which Prefill/Decode group a pod is of.
type pdIdentity struct {
	role       v1alpha1.RoleName
	group      int
	member     string // p<i> or d<i>
	memberRank int    // 0: the member's serving pod
	nodes      int    // the member's pods: more than 1 spans nodes
	id         int64  // the MindIE instance id
}

// ranktable is the ranktable ConfigMap the pod waits for and mounts: its
// cross-node instance's, or its Prefill/Decode member's when the member
// spans nodes; "" for none.
func (id podIdentity) ranktable() string {
	switch {
	case id.pd != nil && id.pd.nodes > 1:
		return ranktableName(memberInstance(id.instance, id.pd.member))
	case id.pd == nil && id.instance != "":
		return ranktableName(id.instance)
	}
	return ""
}

// ranktabled says whether the pod is a rank of a cross-node instance or of
// a Prefill/Decode member of several nodes: it waits for and mounts the
// ranktable, and lives and dies with the other ranks.
func (id podIdentity) ranktabled() bool { return id.ranktable() != "" }

func probeScheme(s *v1alpha1.InferServer) corev1.URIScheme {
	if s.Spec.TLS.Enabled {
		return corev1.URISchemeHTTPS
	}
	return corev1.URISchemeHTTP
}

// managementGet is a GET of path on the management port.
func managementGet(s *v1alpha1.InferServer, path string) *corev1ac.HTTPGetActionApplyConfiguration {
	return corev1ac.HTTPGetAction().
		WithPath(path).
		WithPort(intstr.FromString(portManagement)).
		WithScheme(probeScheme(s))
}

// healthPath is /health/timed-<timeout> with inner-error detection, else plain.
func healthPath(s *v1alpha1.InferServer, timeout int32, plain string) string {
	if *s.Spec.Health.DetectInnerErrors {
		return "/health/timed-" + strconv.Itoa(int(timeout))
	}
	return plain
}

func probes(s *v1alpha1.InferServer) (startup, readiness, liveness *corev1ac.ProbeApplyConfiguration) {
	h := s.Spec.Health
	startup = corev1ac.Probe().
		WithHTTPGet(managementGet(s, "/v2/health/live")).
		WithPeriodSeconds(1).
		WithTimeoutSeconds(1).
		WithFailureThreshold(*h.StartupSeconds)
	probe := func(p v1alpha1.ProbeSpec, plain string) *corev1ac.ProbeApplyConfiguration {
		return corev1ac.Probe().
			WithHTTPGet(managementGet(s, healthPath(s, *p.TimeoutSeconds, plain))).
			WithPeriodSeconds(*p.PeriodSeconds).
			WithTimeoutSeconds(*p.TimeoutSeconds).
			WithFailureThreshold(*p.FailureThreshold)
	}
	return startup, probe(h.Readiness, "/v2/health/ready"), probe(h.Liveness, "/v2/health/live")
}

// fieldEnv is an environment variable from a field of the pod. The field
// selector is atomic for server-side apply and the API server defaults its
// apiVersion, so it is given: otherwise the selector read back differs from
// the one applied, and every sync applies the workload again.
func fieldEnv(name, path string) *corev1ac.EnvVarApplyConfiguration {
	return corev1ac.EnvVar().WithName(name).
		WithValueFrom(corev1ac.EnvVarSource().WithFieldRef(corev1ac.ObjectFieldSelector().WithAPIVersion("v1").WithFieldPath(path)))
}

func valueEnv(name, value string) *corev1ac.EnvVarApplyConfiguration {
	return corev1ac.EnvVar().WithName(name).WithValue(value)
}

func env(s *v1alpha1.InferServer, id podIdentity) []*corev1ac.EnvVarApplyConfiguration {
	out := []*corev1ac.EnvVarApplyConfiguration{
		fieldEnv("HOST_IP", "status.hostIP"),
		fieldEnv("POD_IP", "status.podIP"),
		fieldEnv("MIES_CONTAINER_IP", "status.podIP"),
		fieldEnv("MIES_CONTAINER_MANAGEMENT_IP", "status.podIP"),
		valueEnv("MIES_CONFIG_JSON_PATH", configPath(s)),
		valueEnv("MIES_INSTALL_PATH", s.Spec.InstallPath),
		valueEnv("MINDIE_USE_HTTPS", strconv.FormatBool(s.Spec.TLS.Enabled)),
	}
	if s.Spec.Scheduler == v1alpha1.SchedulerVolcano {
		out = append(out, fieldEnv("ASCEND_VISIBLE_DEVICES", "metadata.annotations['"+string(npuResource(s))+"']"))
	}
	if id.ranktabled() {
		out = append(out,
			valueEnv("MINDIE_SERVER_DISTRIBUTE", "1"),
			valueEnv("RANK_TABLE_FILE", ascend.RanktableMountPath+"/"+ascend.RanktableFile),
		)
	}
	return append(out, applyConfigsOf[corev1.EnvVar, corev1ac.EnvVarApplyConfiguration](s.Spec.Env)...)
}

// crossNodeCommand waits, as the original deployer's containers did, until
// the ranktable is complete before it runs the start command.
func crossNodeCommand(command []string) []string {
	wait := `until grep -q '"status": *"completed"' "$RANK_TABLE_FILE" 2>/dev/null; do sleep 1; done; `
	if len(command) == 3 && command[0] == "/bin/bash" && command[1] == "-c" {
		return []string{"/bin/bash", "-c", wait + command[2]}
	}
	return append([]string{"/bin/bash", "-c", wait + `exec "$@"`, "--"}, command...)
}

func resources(s *v1alpha1.InferServer) *corev1ac.ResourceRequirementsApplyConfiguration {
	r := s.Spec.Resources
	cpu, mem := r.CPU.DeepCopy(), r.Memory.DeepCopy()
	cpuLimit, memLimit := double(cpu), double(mem)
	if r.CPULimit != nil {
		cpuLimit = r.CPULimit.DeepCopy()
	}
	if r.MemoryLimit != nil {
		memLimit = r.MemoryLimit.DeepCopy()
	}
	npus := *resource.NewQuantity(int64(npuCount(s)), resource.DecimalSI)
	return corev1ac.ResourceRequirements().
		WithRequests(corev1.ResourceList{corev1.ResourceCPU: cpu, corev1.ResourceMemory: mem, npuResource(s): npus}).
		WithLimits(corev1.ResourceList{corev1.ResourceCPU: cpuLimit, corev1.ResourceMemory: memLimit, npuResource(s): npus.DeepCopy()})
}

func double(q resource.Quantity) resource.Quantity {
	d := q.DeepCopy()
	d.Add(q)
	return d
}

// applyConfigOf turns a typed fragment of the spec that the controller
// passes through (a user's volume source, env var, toleration, affinity)
// into its apply configuration. Both share one JSON form, and the typed
// fragment came from JSON; marshalling plain API structs cannot fail.
func applyConfigOf[AC any](typed any) *AC {
	data, err := json.Marshal(typed)
	if err != nil {
		panic(err)
	}
	ac := new(AC)
	if err := json.Unmarshal(data, ac); err != nil {
		panic(err)
	}
	return ac
}

func applyConfigsOf[T, AC any](items []T) []*AC {
	out := make([]*AC, 0, len(items))
	for i := range items {
		out = append(out, applyConfigOf[AC](&items[i]))
	}
	return out
}

// storageVolume turns an InferVolume into a pod volume and its mount.
func storageVolume(name string, v *v1alpha1.InferVolume, readOnly bool) (*corev1ac.VolumeApplyConfiguration, *corev1ac.VolumeMountApplyConfiguration) {
	vol := applyConfigOf[corev1ac.VolumeApplyConfiguration](v.VolumeSource).WithName(name)
	mount := corev1ac.VolumeMount().WithName(name).WithMountPath(v.MountPath)
	if readOnly {
		// Never false: an omitempty field at its zero value is not in the
		// object, so it never shows in what the controller owns.
		mount.WithReadOnly(true)
	}
	return vol, mount
}

func volumes(s *v1alpha1.InferServer, id podIdentity) ([]*corev1ac.VolumeApplyConfiguration, []*corev1ac.VolumeMountApplyConfiguration) {
	vols := []*corev1ac.VolumeApplyConfiguration{corev1ac.Volume().WithName(volumeSharedMemory).
		WithEmptyDir(corev1ac.EmptyDirVolumeSource().WithMedium(corev1.StorageMediumMemory).WithSizeLimit(*s.Spec.Storage.SharedMemorySize))}
	mounts := []*corev1ac.VolumeMountApplyConfiguration{corev1ac.VolumeMount().WithName(volumeSharedMemory).WithMountPath("/dev/shm")}

	cfg := s.Spec.ServerConfig
	configMount := corev1ac.VolumeMount().WithName(volumeConfig).WithMountPath(configPath(s)).WithReadOnly(true)
	switch {
	case cfg.ConfigMap != nil:
		vols = append(vols, corev1ac.Volume().WithName(volumeConfig).WithConfigMap(corev1ac.ConfigMapVolumeSource().
			WithName(cfg.ConfigMap.Name).
			WithItems(corev1ac.KeyToPath().WithKey(cfg.ConfigMap.Key).WithPath(inlineConfigKey))))
		configMount.WithSubPath(inlineConfigKey)
	case cfg.Inline != "":
		vols = append(vols, corev1ac.Volume().WithName(volumeConfig).WithConfigMap(corev1ac.ConfigMapVolumeSource().
			WithName(inlineConfigName(s.Name))))
		configMount.WithSubPath(inlineConfigKey)
	default:
		vols = append(vols, corev1ac.Volume().WithName(volumeConfig).WithHostPath(corev1ac.HostPathVolumeSource().
			WithPath(configPath(s)).WithType(corev1.HostPathFile)))
	}
	mounts = append(mounts, configMount)
	st := s.Spec.Storage
	for _, v := range []struct {
		name     string
		vol      *v1alpha1.InferVolume
		readOnly bool
	}{
		{volumeModel, st.Model, true},
		{volumeRunScript, st.RunScript, true},
		{volumeWritable, st.Writable, false},
	} {
		vol, mount := storageVolume(v.name, v.vol, v.readOnly)
		vols, mounts = append(vols, vol), append(mounts, mount)
	}
	if s.Spec.TLS.Enabled && s.Spec.TLS.SecretName != "" {
		vols = append(vols, corev1ac.Volume().WithName(volumeTLS).WithSecret(corev1ac.SecretVolumeSource().WithSecretName(s.Spec.TLS.SecretName)))
		mounts = append(mounts, corev1ac.VolumeMount().WithName(volumeTLS).WithMountPath(s.Spec.InstallPath+"/security/certs").WithReadOnly(true))
	}
	if id.ranktabled() {
		vols = append(vols, corev1ac.Volume().WithName(volumeRanktable).WithConfigMap(corev1ac.ConfigMapVolumeSource().
			WithName(id.ranktable()).WithDefaultMode(ranktableFileMode)))
		mounts = append(mounts, corev1ac.VolumeMount().WithName(volumeRanktable).WithMountPath(ascend.RanktableMountPath).WithReadOnly(true))
	}
	vols = append(vols, applyConfigsOf[corev1.Volume, corev1ac.VolumeApplyConfiguration](s.Spec.Volumes)...)
	mounts = append(mounts, applyConfigsOf[corev1.VolumeMount, corev1ac.VolumeMountApplyConfiguration](s.Spec.VolumeMounts)...)
	return vols, mounts
}

// podLabels are the labels every pod of s gets, for the given identity.
func podLabels(s *v1alpha1.InferServer, id podIdentity) map[string]string {
	l := map[string]string{}
	for k, v := range s.Spec.PodMetadata.Labels {
		l[k] = v
	}
	l[v1alpha1.LabelServer] = s.Name
	l[v1alpha1.LabelRevision] = id.revision
	l[ascend.LabelRingController] = ringController(s, id.ranktabled())
	switch s.Spec.FaultRescheduling {
	case v1alpha1.FaultReschedulingForce:
		l[ascend.LabelFaultScheduling], l[ascend.LabelPodRescheduling] = ascend.FaultSchedulingForce, ascend.PodReschedulingOn
	case v1alpha1.FaultReschedulingGrace:
		l[ascend.LabelFaultScheduling], l[ascend.LabelPodRescheduling] = ascend.FaultSchedulingGrace, ascend.PodReschedulingOn
	}
	if id.pd != nil {
		l[v1alpha1.LabelInstance] = id.instance
		l[v1alpha1.LabelRank] = strconv.Itoa(id.rank)
		l[v1alpha1.LabelRole] = string(id.pd.role)
		l[v1alpha1.LabelGroup] = strconv.Itoa(id.pd.group)
		l[v1alpha1.LabelMember] = id.pd.member
		if id.pd.memberRank == 0 {
			l[v1alpha1.LabelMaster] = "true"
		}
	} else if id.instance != "" {
		l[v1alpha1.LabelInstance] = id.instance
		l[v1alpha1.LabelRank] = strconv.Itoa(id.rank)
		if id.rank == 0 {
			l[v1alpha1.LabelMaster] = "true"
		}
	} else {
		l[v1alpha1.LabelMaster] = "true"
	}
	return l
}

// podNodeSelector is the node selector of the server's pods: the nodes
// of its NPU type, and those of spec.nodeSelector.
func podNodeSelector(s *v1alpha1.InferServer) map[string]string {
	sel := map[string]string{ascend.LabelAccelerator: ascend.AcceleratorValue(string(npuType(s)))}
	for k, v := range s.Spec.NodeSelector {
		sel[k] = v
	}
	return sel
}

// podTemplate is the pod of one instance (single-node) or of one rank of a
// cross-node instance.
func podTemplate(s *v1alpha1.InferServer, id podIdentity) *corev1ac.PodTemplateSpecApplyConfiguration {
	startup, readiness, liveness := probes(s)
	vols, mounts := volumes(s, id)
	command := s.Spec.Command
	if id.ranktabled() {
		command = crossNodeCommand(command)
	}
	nodeSelector := podNodeSelector(s)
	container := corev1ac.Container().
		WithName(containerName).
		WithImage(s.Spec.Image).
		WithImagePullPolicy(s.Spec.ImagePullPolicy).
		WithCommand(command...).
		WithArgs(s.Spec.Args...).
		WithPorts(
			corev1ac.ContainerPort().WithName(portInference).WithContainerPort(inferencePort(s)).WithProtocol(corev1.ProtocolTCP),
			corev1ac.ContainerPort().WithName(portManagement).WithContainerPort(managementPort(s)).WithProtocol(corev1.ProtocolTCP),
		).
		WithEnv(env(s, id)...).
		WithResources(resources(s)).
		WithVolumeMounts(mounts...).
		WithStartupProbe(startup).
		WithReadinessProbe(readiness).
		WithLivenessProbe(liveness).
		WithLifecycle(corev1ac.Lifecycle().WithPreStop(corev1ac.LifecycleHandler().WithHTTPGet(managementGet(s, "/stopService")))).
		WithSecurityContext(restrictedContext())
	spec := corev1ac.PodSpec().
		WithContainers(container).
		WithVolumes(vols...).
		WithNodeSelector(nodeSelector).
		WithAutomountServiceAccountToken(false).
		WithTerminationGracePeriodSeconds(*s.Spec.TerminationGracePeriodSeconds).
		WithImagePullSecrets(applyConfigsOf[corev1.LocalObjectReference, corev1ac.LocalObjectReferenceApplyConfiguration](s.Spec.ImagePullSecrets)...).
		WithTolerations(applyConfigsOf[corev1.Toleration, corev1ac.TolerationApplyConfiguration](s.Spec.Tolerations)...).
		WithRestartPolicy(corev1.RestartPolicyAlways)
	if s.Spec.ServiceAccountName != "" {
		spec.WithServiceAccountName(s.Spec.ServiceAccountName)
	}
	if s.Spec.Affinity != nil {
		spec.WithAffinity(applyConfigOf[corev1ac.AffinityApplyConfiguration](s.Spec.Affinity))
	}
	if s.Spec.Scheduler == v1alpha1.SchedulerVolcano {
		spec.WithSchedulerName("volcano")
	}
	if id.ranktabled() {
		// A restarted rank cannot rejoin its HCCL group: a failed container
		// fails the pod, and the controller recreates the whole instance.
		spec.WithRestartPolicy(corev1.RestartPolicyNever).
			WithSecurityContext(corev1ac.PodSecurityContext().WithFSGroup(crossNodeFSGroup))
		if spec.Affinity == nil {
			spec.WithAffinity(corev1ac.Affinity())
		}
		if spec.Affinity.PodAntiAffinity == nil {
			spec.Affinity.WithPodAntiAffinity(corev1ac.PodAntiAffinity())
		}
		// The ranks on distinct nodes: a cross-node instance's, or a
		// Prefill/Decode member's.
		spread := map[string]string{v1alpha1.LabelServer: s.Name, v1alpha1.LabelInstance: id.instance}
		if id.pd != nil {
			spread[v1alpha1.LabelMember] = id.pd.member
		}
		spec.Affinity.PodAntiAffinity.WithRequiredDuringSchedulingIgnoredDuringExecution(corev1ac.PodAffinityTerm().
			WithLabelSelector(metav1ac.LabelSelector().WithMatchLabels(spread)).
			WithTopologyKey(hostnameTopologyKey))
	}
	annotations := s.Spec.PodMetadata.Annotations
	if id.pd != nil {
		annotations = map[string]string{}
		for k, v := range s.Spec.PodMetadata.Annotations {
			annotations[k] = v
		}
		annotations[v1alpha1.AnnotationPDID] = strconv.FormatInt(id.pd.id, 10)
	}
	return corev1ac.PodTemplateSpec().
		WithLabels(podLabels(s, id)).
		WithAnnotations(annotations).
		WithSpec(spec)
}

// restrictedContext is the security context of every container the
// controller runs: no privilege escalation, no capability, the runtime's
// default seccomp profile.
func restrictedContext() *corev1ac.SecurityContextApplyConfiguration {
	return corev1ac.SecurityContext().
		WithAllowPrivilegeEscalation(false).
		WithCapabilities(corev1ac.Capabilities().WithDrop("ALL")).
		WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault))
}

// deployment is the workload of a single-node InferServer: one pod per instance.
func deployment(s *v1alpha1.InferServer, rev string) *appsv1ac.DeploymentApplyConfiguration {
	strategy := appsv1ac.DeploymentStrategy().WithType(appsv1.RecreateDeploymentStrategyType)
	if s.Spec.Strategy.Type != v1alpha1.RecreateInferServerStrategyType {
		surge, unavailable := rollingBounds(s)
		strategy = appsv1ac.DeploymentStrategy().WithType(appsv1.RollingUpdateDeploymentStrategyType).
			WithRollingUpdate(appsv1ac.RollingUpdateDeployment().WithMaxSurge(surge).WithMaxUnavailable(unavailable))
	}
	spec := appsv1ac.DeploymentSpec()
	if s.Spec.Paused {
		// Never paused: false: an omitempty field at its zero value is not in
		// the object, so it would never show in what the controller owns and
		// every sync would apply again. Unpausing drops the field.
		spec.WithPaused(true)
	}
	return appsv1ac.Deployment(s.Name, s.Namespace).
		WithLabels(serverLabels(s)).
		WithOwnerReferences(ownerRefApply(s)).
		WithSpec(spec.
			WithReplicas(replicas(s)).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(serverLabels(s))).
			WithTemplate(podTemplate(s, podIdentity{revision: rev})).
			WithStrategy(strategy).
			// The InferServer's revisions are the history; the Deployment
			// keeps the same number of old ReplicaSets so an undo reuses one.
			WithRevisionHistoryLimit(*s.Spec.RevisionHistoryLimit).
			WithProgressDeadlineSeconds(*s.Spec.ProgressDeadlineSeconds))
}

// serviceSelector selects the router pods when the server has a router,
// else the serving pod (the master) of each instance.
func serviceSelector(s *v1alpha1.InferServer) map[string]string {
	if s.Spec.Router != nil {
		return routerPodLabels(s)
	}
	return map[string]string{v1alpha1.LabelServer: s.Name, v1alpha1.LabelMaster: "true"}
}

// service exposes the inference port of the router pods, or of every
// serving pod (the master of each instance) when there is no router.
func service(s *v1alpha1.InferServer) *corev1ac.ServiceApplyConfiguration {
	port := corev1ac.ServicePort().
		WithName(portInference).
		WithProtocol(corev1.ProtocolTCP).
		WithPort(inferencePort(s)).
		WithTargetPort(intstr.FromString(portInference))
	if s.Spec.Service.Type == corev1.ServiceTypeNodePort && s.Spec.Service.NodePort != 0 {
		port.WithNodePort(s.Spec.Service.NodePort)
	}
	return corev1ac.Service(s.Name, s.Namespace).
		WithLabels(serverLabels(s)).
		WithOwnerReferences(ownerRefApply(s)).
		WithSpec(corev1ac.ServiceSpec().
			WithType(s.Spec.Service.Type).
			WithSelector(serviceSelector(s)).
			WithPorts(port))
}

// inlineConfig is the ConfigMap of spec.serverConfig.inline.
func inlineConfig(s *v1alpha1.InferServer) *corev1ac.ConfigMapApplyConfiguration {
	return corev1ac.ConfigMap(inlineConfigName(s.Name), s.Namespace).
		WithLabels(serverLabels(s)).
		WithOwnerReferences(ownerRefApply(s)).
		WithData(map[string]string{inlineConfigKey: s.Spec.ServerConfig.Inline})
}

// crossNodePod is rank `rank` of a cross-node instance. Pods are created,
// not applied (an instance lives and dies whole), so the pod template is
// turned into a typed pod.
//
// For a Prefill/Decode server the instance is a group and the rank picks
// its member (memberOfRank); the pod gets the member's role, resources and
// server config.
func crossNodePod(s *v1alpha1.InferServer, rev, instance string, rank int) *corev1.Pod {
	id := podIdentity{revision: rev, instance: instance, rank: rank}
	at := s
	if isPD(s) {
		m, r, _ := memberOfRank(s, rank)
		g, _ := instanceIndex(s.Name, instance)
		id.pd = &pdIdentity{role: m.role, group: g, member: m.name(), memberRank: r, nodes: m.nodes, id: pdID(g, m.ordinal)}
		at = roleServer(s, m.role)
	}
	t := podTemplate(at, id)
	pod := &corev1.Pod{ObjectMeta: childMeta(s, podName(s, instance, rank))}
	pod.Labels, pod.Annotations = t.Labels, t.Annotations
	data, err := json.Marshal(t.Spec)
	if err == nil {
		err = json.Unmarshal(data, &pod.Spec)
	}
	if err != nil {
		// An apply configuration and its type share one JSON form.
		panic(fmt.Sprintf("pod %s: %v", pod.Name, err))
	}
	return pod
}

// instanceIndex parses "<server>-<i>" into i.
func instanceIndex(server, instance string) (int, bool) {
	rest, ok := strings.CutPrefix(instance, server+"-")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(rest)
	return i, err == nil && i >= 0
}

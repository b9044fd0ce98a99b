package inferserver

import (
	"fmt"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
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
	ranktableMountPath  = "/user/serverid/devindex/config"
	ranktableKey        = "hccl.json"
	inlineConfigKey     = "config.json"
	ranktableFileMode   = int32(0o640)
	crossNodeFSGroup    = int64(1001)
	labelRingController = "ring-controller.atlas"
	labelFaultSchedule  = "fault-scheduling"
	labelPodReschedule  = "pod-rescheduling"
	labelAccelerator    = "accelerator"
	hostnameTopologyKey = "kubernetes.io/hostname"
)

// npuResource is the extended resource of the server's NPU type.
func npuResource(s *v1alpha1.InferServer) corev1.ResourceName {
	return corev1.ResourceName("huawei.com/" + string(npuType(s)))
}

func npuType(s *v1alpha1.InferServer) v1alpha1.NPUType {
	if s.Spec.Resources.NPU.Type == "" {
		return v1alpha1.NPUTypeAscend910
	}
	return s.Spec.Resources.NPU.Type
}

func npuCount(s *v1alpha1.InferServer) int32 {
	return ptr.Deref(s.Spec.Resources.NPU.Count, v1alpha1.DefaultNPUCount)
}

func nodesPerInstance(s *v1alpha1.InferServer) int32 {
	return ptr.Deref(s.Spec.NodesPerInstance, 1)
}

func crossNode(s *v1alpha1.InferServer) bool { return nodesPerInstance(s) > 1 }

func replicas(s *v1alpha1.InferServer) int32 { return ptr.Deref(s.Spec.Replicas, 1) }

func inferencePort(s *v1alpha1.InferServer) int32 {
	return ptr.Deref(s.Spec.Ports.Inference, v1alpha1.DefaultInferencePort)
}

func managementPort(s *v1alpha1.InferServer) int32 {
	return ptr.Deref(s.Spec.Ports.Management, v1alpha1.DefaultManagementPort)
}

func installPath(s *v1alpha1.InferServer) string {
	if s.Spec.InstallPath == "" {
		return v1alpha1.DefaultInstallPath
	}
	return s.Spec.InstallPath
}

// configPath is where config.json is mounted and what MIES_CONFIG_JSON_PATH says.
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
func ranktableName(instance string) string { return "rings-config-" + instance }

// ringController is the ring-controller.atlas label value the Ascend
// Operator and Volcano use to recognise NPU workloads.
func ringController(s *v1alpha1.InferServer) string {
	if crossNode(s) {
		return "ascend-910b"
	}
	if npuType(s) == v1alpha1.NPUTypeAscend310P {
		return "ascend-310P"
	}
	return "ascend-910"
}

// ownerRef makes s the controller of a child.
func ownerRef(s *v1alpha1.InferServer) metav1.OwnerReference {
	return metav1.OwnerReference{
		APIVersion: v1alpha1.SchemeGroupVersion.String(),
		Kind:       "InferServer",
		Name:       s.Name,
		UID:        s.UID,
		Controller: ptr.To(true),
	}
}

func childMeta(s *v1alpha1.InferServer, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:            name,
		Namespace:       s.Namespace,
		Labels:          map[string]string{v1alpha1.LabelServer: s.Name},
		OwnerReferences: []metav1.OwnerReference{ownerRef(s)},
	}
}

// podIdentity says which pod a template is for: the revision, and for a
// cross-node pod its instance and rank.
type podIdentity struct {
	revision string
	instance string // cross-node only
	rank     int    // cross-node only
}

func probeScheme(s *v1alpha1.InferServer) corev1.URIScheme {
	if s.Spec.TLS.Enabled {
		return corev1.URISchemeHTTPS
	}
	return corev1.URISchemeHTTP
}

func httpProbe(s *v1alpha1.InferServer, path string) corev1.ProbeHandler {
	return corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
		Path:   path,
		Port:   intstr.FromString(portManagement),
		Scheme: probeScheme(s),
	}}
}

// healthPath is /health/timed-<timeout> with inner-error detection, else plain.
func healthPath(s *v1alpha1.InferServer, timeout int32, plain string) string {
	if ptr.Deref(s.Spec.Health.DetectInnerErrors, true) {
		return "/health/timed-" + strconv.Itoa(int(timeout))
	}
	return plain
}

func probes(s *v1alpha1.InferServer) (startup, readiness, liveness *corev1.Probe) {
	h := s.Spec.Health
	startup = &corev1.Probe{
		ProbeHandler:     httpProbe(s, "/v2/health/live"),
		PeriodSeconds:    1,
		TimeoutSeconds:   1,
		FailureThreshold: ptr.Deref(h.StartupSeconds, v1alpha1.DefaultStartupSeconds),
	}
	rt := ptr.Deref(h.Readiness.TimeoutSeconds, v1alpha1.DefaultProbeTimeoutSeconds)
	readiness = &corev1.Probe{
		ProbeHandler:     httpProbe(s, healthPath(s, rt, "/v2/health/ready")),
		PeriodSeconds:    ptr.Deref(h.Readiness.PeriodSeconds, v1alpha1.DefaultReadinessPeriodSeconds),
		TimeoutSeconds:   rt,
		FailureThreshold: ptr.Deref(h.Readiness.FailureThreshold, v1alpha1.DefaultProbeFailureThreshold),
	}
	lt := ptr.Deref(h.Liveness.TimeoutSeconds, v1alpha1.DefaultProbeTimeoutSeconds)
	liveness = &corev1.Probe{
		ProbeHandler:     httpProbe(s, healthPath(s, lt, "/v2/health/live")),
		PeriodSeconds:    ptr.Deref(h.Liveness.PeriodSeconds, v1alpha1.DefaultLivenessPeriodSeconds),
		TimeoutSeconds:   lt,
		FailureThreshold: ptr.Deref(h.Liveness.FailureThreshold, v1alpha1.DefaultProbeFailureThreshold),
	}
	return startup, readiness, liveness
}

func fieldEnv(name, path string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
}

func env(s *v1alpha1.InferServer) []corev1.EnvVar {
	https := "false"
	if s.Spec.TLS.Enabled {
		https = "true"
	}
	out := []corev1.EnvVar{
		fieldEnv("HOST_IP", "status.hostIP"),
		fieldEnv("POD_IP", "status.podIP"),
		fieldEnv("MIES_CONTAINER_IP", "status.podIP"),
		fieldEnv("MIES_CONTAINER_MANAGEMENT_IP", "status.podIP"),
		{Name: "MIES_CONFIG_JSON_PATH", Value: configPath(s)},
		{Name: "MIES_INSTALL_PATH", Value: installPath(s)},
		{Name: "MINDIE_USE_HTTPS", Value: https},
	}
	if s.Spec.Scheduler == v1alpha1.SchedulerVolcano {
		out = append(out, fieldEnv("ASCEND_VISIBLE_DEVICES", "metadata.annotations['"+string(npuResource(s))+"']"))
	}
	if crossNode(s) {
		out = append(out,
			corev1.EnvVar{Name: "MINDIE_SERVER_DISTRIBUTE", Value: "1"},
			corev1.EnvVar{Name: "RANK_TABLE_FILE", Value: ranktableMountPath + "/" + ranktableKey},
		)
	}
	return append(out, s.Spec.Env...)
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

func resources(s *v1alpha1.InferServer) corev1.ResourceRequirements {
	r := s.Spec.Resources
	cpu := quantityOr(r.CPU, v1alpha1.DefaultCPU)
	mem := quantityOr(r.Memory, v1alpha1.DefaultMemory)
	cpuLimit := double(cpu)
	if r.CPULimit != nil {
		cpuLimit = r.CPULimit.DeepCopy()
	}
	memLimit := double(mem)
	if r.MemoryLimit != nil {
		memLimit = r.MemoryLimit.DeepCopy()
	}
	npus := *resource.NewQuantity(int64(npuCount(s)), resource.DecimalSI)
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: cpu, corev1.ResourceMemory: mem, npuResource(s): npus},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: cpuLimit, corev1.ResourceMemory: memLimit, npuResource(s): npus.DeepCopy()},
	}
}

func quantityOr(q *resource.Quantity, def string) resource.Quantity {
	if q != nil {
		return q.DeepCopy()
	}
	return resource.MustParse(def)
}

func double(q resource.Quantity) resource.Quantity {
	d := q.DeepCopy()
	d.Add(q)
	return d
}

// storageVolume turns an InferVolume into a pod volume and its mount.
func storageVolume(name string, v *v1alpha1.InferVolume, def string, readOnly bool) (corev1.Volume, corev1.VolumeMount) {
	path := def
	src := corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: def}}
	if v != nil {
		if v.MountPath != "" {
			path = v.MountPath
		}
		src = *v.VolumeSource.DeepCopy()
	}
	return corev1.Volume{Name: name, VolumeSource: src}, corev1.VolumeMount{Name: name, MountPath: path, ReadOnly: readOnly}
}

func volumes(s *v1alpha1.InferServer, id podIdentity) ([]corev1.Volume, []corev1.VolumeMount) {
	shm := quantityOr(s.Spec.Storage.SharedMemorySize, v1alpha1.DefaultSharedMemory)
	vols := []corev1.Volume{{Name: volumeSharedMemory, VolumeSource: corev1.VolumeSource{
		EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: &shm}}}}
	mounts := []corev1.VolumeMount{{Name: volumeSharedMemory, MountPath: "/dev/shm"}}

	cfg := s.Spec.ServerConfig
	switch {
	case cfg.ConfigMap != nil:
		key := cfg.ConfigMap.Key
		if key == "" {
			key = v1alpha1.DefaultConfigMapKey
		}
		vols = append(vols, corev1.Volume{Name: volumeConfig, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: cfg.ConfigMap.Name},
			Items:                []corev1.KeyToPath{{Key: key, Path: inlineConfigKey}}}}})
		mounts = append(mounts, corev1.VolumeMount{Name: volumeConfig, MountPath: configPath(s), SubPath: inlineConfigKey, ReadOnly: true})
	case cfg.Inline != "":
		vols = append(vols, corev1.Volume{Name: volumeConfig, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: inlineConfigName(s.Name)}}}})
		mounts = append(mounts, corev1.VolumeMount{Name: volumeConfig, MountPath: configPath(s), SubPath: inlineConfigKey, ReadOnly: true})
	default:
		vols = append(vols, corev1.Volume{Name: volumeConfig, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{
			Path: configPath(s), Type: ptr.To(corev1.HostPathFile)}}})
		mounts = append(mounts, corev1.VolumeMount{Name: volumeConfig, MountPath: configPath(s), ReadOnly: true})
	}
	st := s.Spec.Storage
	for _, v := range []struct {
		name     string
		vol      *v1alpha1.InferVolume
		def      string
		readOnly bool
	}{
		{volumeModel, st.Model, v1alpha1.DefaultModelPath, true},
		{volumeRunScript, st.RunScript, v1alpha1.DefaultRunScriptPath, true},
		{volumeWritable, st.Writable, v1alpha1.DefaultWritablePath, false},
	} {
		vol, mount := storageVolume(v.name, v.vol, v.def, v.readOnly)
		vols, mounts = append(vols, vol), append(mounts, mount)
	}
	if s.Spec.TLS.Enabled && s.Spec.TLS.SecretName != "" {
		vols = append(vols, corev1.Volume{Name: volumeTLS, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: s.Spec.TLS.SecretName}}})
		mounts = append(mounts, corev1.VolumeMount{Name: volumeTLS, MountPath: installPath(s) + "/security/certs", ReadOnly: true})
	}
	if id.instance != "" {
		vols = append(vols, corev1.Volume{Name: volumeRanktable, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: ranktableName(id.instance)},
			DefaultMode:          ptr.To(ranktableFileMode)}}})
		mounts = append(mounts, corev1.VolumeMount{Name: volumeRanktable, MountPath: ranktableMountPath, ReadOnly: true})
	}
	vols = append(vols, s.Spec.Volumes...)
	mounts = append(mounts, s.Spec.VolumeMounts...)
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
	l[labelRingController] = ringController(s)
	switch s.Spec.FaultRescheduling {
	case v1alpha1.FaultReschedulingOff:
	case v1alpha1.FaultReschedulingForce:
		l[labelFaultSchedule], l[labelPodReschedule] = "force", "on"
	default:
		l[labelFaultSchedule], l[labelPodReschedule] = "grace", "on"
	}
	if id.instance != "" {
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

// podTemplate is the pod of one instance (single-node) or of one rank of a
// cross-node instance.
func podTemplate(s *v1alpha1.InferServer, id podIdentity) corev1.PodTemplateSpec {
	startup, readiness, liveness := probes(s)
	vols, mounts := volumes(s, id)
	command := s.Spec.Command
	if len(command) == 0 {
		command = v1alpha1.DefaultCommand()
	}
	if id.instance != "" {
		command = crossNodeCommand(command)
	}
	var annotations map[string]string
	if len(s.Spec.PodMetadata.Annotations) > 0 {
		annotations = map[string]string{}
		for k, v := range s.Spec.PodMetadata.Annotations {
			annotations[k] = v
		}
	}
	nodeSelector := map[string]string{labelAccelerator: "huawei-" + string(npuType(s))}
	for k, v := range s.Spec.NodeSelector {
		nodeSelector[k] = v
	}
	container := corev1.Container{
		Name:            containerName,
		Image:           s.Spec.Image,
		ImagePullPolicy: s.Spec.ImagePullPolicy,
		Command:         command,
		Args:            s.Spec.Args,
		Ports: []corev1.ContainerPort{
			{Name: portInference, ContainerPort: inferencePort(s), Protocol: corev1.ProtocolTCP},
			{Name: portManagement, ContainerPort: managementPort(s), Protocol: corev1.ProtocolTCP},
		},
		Env:            env(s),
		Resources:      resources(s),
		VolumeMounts:   mounts,
		StartupProbe:   startup,
		ReadinessProbe: readiness,
		LivenessProbe:  liveness,
		Lifecycle: &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: "/stopService", Port: intstr.FromString(portManagement), Scheme: probeScheme(s)}}},
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr.To(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}
	spec := corev1.PodSpec{
		Containers:                    []corev1.Container{container},
		Volumes:                       vols,
		NodeSelector:                  nodeSelector,
		ServiceAccountName:            s.Spec.ServiceAccountName,
		AutomountServiceAccountToken:  ptr.To(false),
		TerminationGracePeriodSeconds: ptr.To(ptr.Deref(s.Spec.TerminationGracePeriodSeconds, v1alpha1.DefaultTerminationGracePeriodSeconds)),
		ImagePullSecrets:              s.Spec.ImagePullSecrets,
		Tolerations:                   s.Spec.Tolerations,
		Affinity:                      s.Spec.Affinity.DeepCopy(),
		RestartPolicy:                 corev1.RestartPolicyAlways,
	}
	if s.Spec.Scheduler == v1alpha1.SchedulerVolcano {
		spec.SchedulerName = "volcano"
	}
	if id.instance != "" {
		// A restarted rank cannot rejoin its HCCL group: a failed container
		// fails the pod, and the controller recreates the whole instance.
		spec.RestartPolicy = corev1.RestartPolicyNever
		spec.SecurityContext = &corev1.PodSecurityContext{FSGroup: ptr.To(crossNodeFSGroup)}
		if spec.Affinity == nil {
			spec.Affinity = &corev1.Affinity{}
		}
		if spec.Affinity.PodAntiAffinity == nil {
			spec.Affinity.PodAntiAffinity = &corev1.PodAntiAffinity{}
		}
		spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution = append(
			spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution,
			corev1.PodAffinityTerm{
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{
					v1alpha1.LabelServer: s.Name, v1alpha1.LabelInstance: id.instance}},
				TopologyKey: hostnameTopologyKey,
			})
	}
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: podLabels(s, id), Annotations: annotations},
		Spec:       spec,
	}
}

// deployment is the workload of a single-node InferServer: one pod per instance.
func deployment(s *v1alpha1.InferServer, rev string) *appsv1.Deployment {
	d := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: childMeta(s, s.Name),
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas(s)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{v1alpha1.LabelServer: s.Name}},
			Template: podTemplate(s, podIdentity{revision: rev}),
			Paused:   s.Spec.Paused,
			// The InferServer's revisions are the history; the Deployment
			// keeps the same number of old ReplicaSets so an undo reuses one.
			RevisionHistoryLimit: ptr.To(ptr.Deref(s.Spec.RevisionHistoryLimit, v1alpha1.DefaultRevisionHistoryLimit)),
			ProgressDeadlineSeconds: ptr.To(max(int32(600),
				2*ptr.Deref(s.Spec.Health.StartupSeconds, v1alpha1.DefaultStartupSeconds))),
		},
	}
	if s.Spec.Strategy.Type == v1alpha1.RecreateInferServerStrategyType {
		d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	} else {
		surge, unavailable := rollingBounds(s)
		d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
			RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &unavailable}}
	}
	return d
}

// rollingBounds are the spec's maxSurge and maxUnavailable, defaulted.
func rollingBounds(s *v1alpha1.InferServer) (surge, unavailable intstr.IntOrString) {
	surge, unavailable = intstr.FromString(v1alpha1.DefaultMaxSurge), intstr.FromString(v1alpha1.DefaultMaxUnavailable)
	if ru := s.Spec.Strategy.RollingUpdate; ru != nil {
		if ru.MaxSurge != nil {
			surge = *ru.MaxSurge
		}
		if ru.MaxUnavailable != nil {
			unavailable = *ru.MaxUnavailable
		}
	}
	return surge, unavailable
}

// resolveBounds turns maxSurge and maxUnavailable into instance counts, as
// Deployments do: surge rounds up, unavailability down, and when both come
// out 0 one instance may be unavailable so that the rollout can progress.
func resolveBounds(s *v1alpha1.InferServer) (surge, unavailable int32, err error) {
	if s.Spec.Strategy.Type == v1alpha1.RecreateInferServerStrategyType {
		return 0, replicas(s), nil
	}
	su, un := rollingBounds(s)
	n := int(replicas(s))
	sv, err := intstr.GetScaledValueFromIntOrPercent(&su, n, true)
	if err != nil {
		return 0, 0, fmt.Errorf("spec.strategy.rollingUpdate.maxSurge: %w", err)
	}
	uv, err := intstr.GetScaledValueFromIntOrPercent(&un, n, false)
	if err != nil {
		return 0, 0, fmt.Errorf("spec.strategy.rollingUpdate.maxUnavailable: %w", err)
	}
	if sv == 0 && uv == 0 {
		uv = 1
	}
	if uv > n {
		uv = n
	}
	return int32(sv), int32(uv), nil
}

// service exposes the inference port of every serving pod (the master of
// each instance).
func service(s *v1alpha1.InferServer) *corev1.Service {
	typ := s.Spec.Service.Type
	if typ == "" {
		typ = corev1.ServiceTypeNodePort
	}
	port := corev1.ServicePort{Name: portInference, Protocol: corev1.ProtocolTCP, Port: inferencePort(s),
		TargetPort: intstr.FromString(portInference)}
	if typ == corev1.ServiceTypeNodePort {
		port.NodePort = s.Spec.Service.NodePort
	}
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: childMeta(s, s.Name),
		Spec: corev1.ServiceSpec{
			Type:     typ,
			Selector: map[string]string{v1alpha1.LabelServer: s.Name, v1alpha1.LabelMaster: "true"},
			Ports:    []corev1.ServicePort{port},
		},
	}
}

// inlineConfig is the ConfigMap of spec.serverConfig.inline.
func inlineConfig(s *v1alpha1.InferServer) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: childMeta(s, inlineConfigName(s.Name)),
		Data:       map[string]string{inlineConfigKey: s.Spec.ServerConfig.Inline},
	}
}

// crossNodePod is rank `rank` of a cross-node instance.
func crossNodePod(s *v1alpha1.InferServer, rev, instance string, rank int) *corev1.Pod {
	t := podTemplate(s, podIdentity{revision: rev, instance: instance, rank: rank})
	meta := childMeta(s, instance+"-"+strconv.Itoa(rank))
	meta.Labels, meta.Annotations = t.Labels, t.Annotations
	return &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: meta, Spec: t.Spec}
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

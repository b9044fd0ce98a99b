// Package validation checks InferServers: the ranges the original MindIE
// Motor deployer enforced on infer_server.json, plus Kubernetes' own rules.
// Every error names its field path, the value and what is allowed.
package validation

import (
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"reflect"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"mindie.io/deployer/apis/infer"
	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/ascend"
)

// Bounds of the InferServer API. The legacy ranges are inclusive.
const (
	MaxNameLength              = 48
	MinReplicas                = 1
	MaxReplicas                = 256
	MinNPUs                    = 1
	MaxNPUs                    = 8
	CrossNodeNPUs              = 8
	MinPort                    = 1024
	MaxPort                    = 65535
	MinNodePort                = 30000
	MaxNodePort                = 32767
	MinStartupSeconds          = 10
	MaxStartupSeconds          = 1800
	MinProbeTimeoutSeconds     = 1
	MaxProbeTimeoutSeconds     = 600
	MinFailureThreshold        = 1
	MaxFailureThreshold        = 10
	MinProbePeriodSeconds      = 1
	MaxProbePeriodSeconds      = 3600
	MaxTerminationGracePeriod  = 3600
	MinFaultGraceOverTime      = 2
	MaxFaultGraceOverTime      = 3600
	MaxNodeLostSeconds         = 3600
	MaxRevisionHistoryLimit    = 100
	MaxProgressDeadlineSeconds = 86400
	MinRouterReplicas          = 1
	MaxRouterReplicas          = 64
	MaxRouterRetries           = 10
	MaxRouterInflight          = 1000000
	MaxRouterTimeoutSeconds    = 86400
	// MaxGroupInstances is how many instances MindIE links in one
	// Prefill/Decode group (its Controller's limit).
	MaxGroupInstances             = 16
	ReservedLabelPrefix           = "infer.mindie.io/"
	ReservedEnvPrefix             = "MIES_"
	percentSuffix                 = "%"
	maxInlineConfigBytes          = 512 * 1024
	nodesPerInstanceUpdateMessage = "cannot change nodes per instance in place: every instance would need a new shape and ranktable; create a new InferServer and delete this one"
)

var (
	minCPU    = resource.MustParse("1")
	maxCPU    = resource.MustParse("256")
	minMemory = resource.MustParse("1000Mi")
	maxMemory = resource.MustParse("256000Mi")

	validNPUTypes      = []string{string(infer.NPUTypeAscend910), string(infer.NPUTypeAscend310P)}
	validSchedulers    = []string{string(infer.SchedulerDefault), string(infer.SchedulerVolcano)}
	validFaultPolicies = []string{string(infer.FaultReschedulingGrace), string(infer.FaultReschedulingForce), string(infer.FaultReschedulingOff)}
	validStrategies    = []string{string(infer.RollingUpdateInferServerStrategyType), string(infer.RecreateInferServerStrategyType)}
	validServiceTypes  = []string{string(corev1.ServiceTypeNodePort), string(corev1.ServiceTypeClusterIP)}
	validPullPolicies  = []string{string(corev1.PullAlways), string(corev1.PullIfNotPresent), string(corev1.PullNever)}
	validAlgorithms    = []string{string(infer.RouterRoundRobin), string(infer.RouterCacheAffinity), string(infer.RouterLeastLoad)}
	validRoles         = []string{string(infer.RolePrefill), string(infer.RoleDecode)}
	validRouterAuth    = []string{string(infer.RouterAuthenticationKubernetes), string(infer.RouterAuthenticationNone)}

	minRouterBody = resource.MustParse("1Ki")
	maxRouterBody = resource.MustParse("1Gi")
)

// ValidateName allows DNS-1123 labels of at most 48 characters, short enough
// that the names derived from it (workloads, pods, ConfigMaps) stay valid.
func ValidateName(name string, prefix bool) []string {
	msgs := apimachineryvalidation.NameIsDNSLabel(name, prefix)
	if prefix || len(name) <= MaxNameLength {
		return msgs
	}
	// The 48-character limit is the one that matters; drop the DNS label's
	// own (larger) length limit so the user sees one length message.
	out := []string{fmt.Sprintf("must be no more than %d characters", MaxNameLength)}
	for _, m := range msgs {
		if !strings.Contains(m, "no more than") {
			out = append(out, m)
		}
	}
	return out
}

// ValidateInferServer checks a new InferServer.
func ValidateInferServer(s *infer.InferServer) field.ErrorList {
	allErrs := apimachineryvalidation.ValidateObjectMeta(&s.ObjectMeta, true, ValidateName, field.NewPath("metadata"))
	allErrs = append(allErrs, ValidateInferServerSpec(&s.Spec, field.NewPath("spec"))...)
	allErrs = append(allErrs, validateRouterName(s)...)
	return allErrs
}

// validateRouterName keeps the pods' service account apart from the one
// the controller makes for the router.
func validateRouterName(s *infer.InferServer) field.ErrorList {
	if s.Spec.Router == nil || s.Spec.ServiceAccountName != s.Name+v1alpha1.RouterNameSuffix {
		return nil
	}
	return field.ErrorList{field.Invalid(field.NewPath("spec", "serviceAccountName"), s.Spec.ServiceAccountName,
		"is the router's own service account while spec.router is set; name another one")}
}

// ValidateInferServerUpdate checks an update of the spec and metadata.
func ValidateInferServerUpdate(newObj, oldObj *infer.InferServer) field.ErrorList {
	allErrs := apimachineryvalidation.ValidateObjectMetaUpdate(&newObj.ObjectMeta, &oldObj.ObjectMeta, field.NewPath("metadata"))
	allErrs = append(allErrs, ValidateInferServerSpec(&newObj.Spec, field.NewPath("spec"))...)
	allErrs = append(allErrs, validateRouterName(newObj)...)
	if !reflect.DeepEqual(newObj.Spec.NodesPerInstance, oldObj.Spec.NodesPerInstance) {
		allErrs = append(allErrs, field.Forbidden(field.NewPath("spec", "nodesPerInstance"), nodesPerInstanceUpdateMessage))
	}
	if (len(newObj.Spec.Roles) == 0) != (len(oldObj.Spec.Roles) == 0) {
		allErrs = append(allErrs, field.Forbidden(field.NewPath("spec", "roles"),
			"cannot add or remove roles in place: every instance would change kind; create a new InferServer and delete this one"))
	}
	for i, r := range newObj.Spec.Roles {
		for _, o := range oldObj.Spec.Roles {
			if o.Name == r.Name && !reflect.DeepEqual(o.NodesPerInstance, r.NodesPerInstance) {
				allErrs = append(allErrs, field.Forbidden(field.NewPath("spec", "roles").Index(i).Child("nodesPerInstance"), nodesPerInstanceUpdateMessage))
			}
		}
	}
	return allErrs
}

// ValidateInferServerStatusUpdate checks an update of the status subresource.
func ValidateInferServerStatusUpdate(newObj, oldObj *infer.InferServer) field.ErrorList {
	allErrs := apimachineryvalidation.ValidateObjectMetaUpdate(&newObj.ObjectMeta, &oldObj.ObjectMeta, field.NewPath("metadata"))
	st := newObj.Status
	p := field.NewPath("status")
	allErrs = append(allErrs, apimachineryvalidation.ValidateNonnegativeField(st.ObservedGeneration, p.Child("observedGeneration"))...)
	counts := []struct {
		name  string
		value int32
	}{
		{"replicas", st.Replicas}, {"updatedReplicas", st.UpdatedReplicas}, {"readyReplicas", st.ReadyReplicas},
		{"availableReplicas", st.AvailableReplicas}, {"unavailableReplicas", st.UnavailableReplicas},
	}
	for _, c := range counts {
		allErrs = append(allErrs, apimachineryvalidation.ValidateNonnegativeField(int64(c.value), p.Child(c.name))...)
	}
	if st.ReadyReplicas > st.Replicas {
		allErrs = append(allErrs, field.Invalid(p.Child("readyReplicas"), st.ReadyReplicas, "cannot be greater than status.replicas"))
	}
	if st.AvailableReplicas > st.ReadyReplicas {
		allErrs = append(allErrs, field.Invalid(p.Child("availableReplicas"), st.AvailableReplicas, "cannot be greater than status.readyReplicas"))
	}
	seen := sets.New[string]()
	for i, c := range st.Conditions {
		cp := p.Child("conditions").Index(i)
		if c.Type == "" {
			allErrs = append(allErrs, field.Required(cp.Child("type"), "must name the condition"))
		} else if seen.Has(c.Type) {
			allErrs = append(allErrs, field.Duplicate(cp.Child("type"), c.Type))
		}
		seen.Insert(c.Type)
		if c.Status != "True" && c.Status != "False" && c.Status != "Unknown" {
			allErrs = append(allErrs, field.NotSupported(cp.Child("status"), c.Status, []string{"True", "False", "Unknown"}))
		}
	}
	return allErrs
}

// ValidateInferServerSpec checks a spec after defaulting.
func ValidateInferServerSpec(s *infer.InferServerSpec, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	allErrs = append(allErrs, int32InRange(s.Replicas, MinReplicas, MaxReplicas, p.Child("replicas"))...)
	crossNode := false
	if s.NodesPerInstance == nil {
		allErrs = append(allErrs, field.Required(p.Child("nodesPerInstance"), "must be 1, 2 or 4"))
	} else {
		switch *s.NodesPerInstance {
		case 1:
		case 2, 4:
			crossNode = true
		default:
			allErrs = append(allErrs, field.Invalid(p.Child("nodesPerInstance"), *s.NodesPerInstance, "must be 1 (single-node), 2 or 4 (cross-node)"))
		}
	}
	allErrs = append(allErrs, validateImage(s.Image, p.Child("image"))...)
	allErrs = append(allErrs, oneOf(string(s.ImagePullPolicy), validPullPolicies, p.Child("imagePullPolicy"))...)
	for i, ref := range s.ImagePullSecrets {
		for _, msg := range apimachineryvalidation.NameIsDNSSubdomain(ref.Name, false) {
			allErrs = append(allErrs, field.Invalid(p.Child("imagePullSecrets").Index(i).Child("name"), ref.Name, msg))
		}
	}
	if len(s.Command) == 0 {
		allErrs = append(allErrs, field.Required(p.Child("command"), "must give the container entrypoint"))
	}
	allErrs = append(allErrs, absolutePath(s.InstallPath, p.Child("installPath"))...)
	allErrs = append(allErrs, validateServerConfig(&s.ServerConfig, p.Child("serverConfig"))...)
	allErrs = append(allErrs, validateStorage(&s.Storage, p.Child("storage"))...)
	allErrs = append(allErrs, validateResources(&s.Resources, crossNode, p.Child("resources"))...)
	allErrs = append(allErrs, validatePorts(&s.Ports, p.Child("ports"))...)
	allErrs = append(allErrs, validateTLS(&s.TLS, p.Child("tls"))...)
	allErrs = append(allErrs, validateService(&s.Service, p.Child("service"))...)
	if s.Router != nil {
		allErrs = append(allErrs, validateRouter(s.Router, p.Child("router"))...)
	}
	if len(s.Roles) > 0 {
		allErrs = append(allErrs, validateRoles(s, p)...)
	}
	allErrs = append(allErrs, validateHealth(&s.Health, p.Child("health"))...)
	allErrs = append(allErrs, oneOf(string(s.Scheduler), validSchedulers, p.Child("scheduler"))...)
	allErrs = append(allErrs, oneOf(string(s.FaultRescheduling), validFaultPolicies, p.Child("faultRescheduling"))...)
	if s.TerminationGracePeriodSeconds == nil {
		allErrs = append(allErrs, field.Required(p.Child("terminationGracePeriodSeconds"), rangeMessage(0, MaxTerminationGracePeriod)))
	} else if v := *s.TerminationGracePeriodSeconds; v < 0 || v > MaxTerminationGracePeriod {
		allErrs = append(allErrs, field.Invalid(p.Child("terminationGracePeriodSeconds"), v, rangeMessage(0, MaxTerminationGracePeriod)))
	}
	allErrs = append(allErrs, int32InRange(s.FaultGraceOverTimeSeconds, MinFaultGraceOverTime, MaxFaultGraceOverTime, p.Child("faultGraceOverTimeSeconds"))...)
	allErrs = append(allErrs, int32InRange(s.NodeLostSeconds, 0, MaxNodeLostSeconds, p.Child("nodeLostSeconds"))...)
	allErrs = append(allErrs, validateStrategy(&s.Strategy, p.Child("strategy"))...)
	allErrs = append(allErrs, int32InRange(s.RevisionHistoryLimit, 0, MaxRevisionHistoryLimit, p.Child("revisionHistoryLimit"))...)
	allErrs = append(allErrs, int32InRange(s.ProgressDeadlineSeconds, 1, MaxProgressDeadlineSeconds, p.Child("progressDeadlineSeconds"))...)
	allErrs = append(allErrs, validatePodMetadata(&s.PodMetadata, p.Child("podMetadata"))...)
	if s.ServiceAccountName != "" {
		for _, msg := range apimachineryvalidation.NameIsDNSSubdomain(s.ServiceAccountName, false) {
			allErrs = append(allErrs, field.Invalid(p.Child("serviceAccountName"), s.ServiceAccountName, msg))
		}
	}
	allErrs = append(allErrs, labelMap(s.NodeSelector, p.Child("nodeSelector"))...)
	if _, ok := s.NodeSelector[ascend.LabelAccelerator]; ok {
		allErrs = append(allErrs, field.Forbidden(p.Child("nodeSelector").Key(ascend.LabelAccelerator), "is set from spec.resources.npu.type"))
	}
	allErrs = append(allErrs, validateTolerations(s.Tolerations, p.Child("tolerations"))...)
	allErrs = append(allErrs, validateEnv(s.Env, p.Child("env"))...)
	allErrs = append(allErrs, validateExtraVolumes(s, p)...)
	return allErrs
}

func validateServerConfig(c *infer.ServerConfigSource, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	set := 0
	if c.ConfigMap != nil {
		set++
		for _, msg := range apimachineryvalidation.NameIsDNSSubdomain(c.ConfigMap.Name, false) {
			allErrs = append(allErrs, field.Invalid(p.Child("configMap", "name"), c.ConfigMap.Name, msg))
		}
		for _, msg := range utilvalidation.IsConfigMapKey(c.ConfigMap.Key) {
			allErrs = append(allErrs, field.Invalid(p.Child("configMap", "key"), c.ConfigMap.Key, msg))
		}
	}
	if c.Inline != "" {
		set++
		if len(c.Inline) > maxInlineConfigBytes {
			allErrs = append(allErrs, field.TooLong(p.Child("inline"), "", maxInlineConfigBytes))
		} else if msg := jsonObjectError(c.Inline); msg != "" {
			allErrs = append(allErrs, field.Invalid(p.Child("inline"), "<config.json>", msg))
		}
	}
	if c.HostPath != "" {
		set++
		allErrs = append(allErrs, absolutePath(c.HostPath, p.Child("hostPath"))...)
	}
	switch {
	case set == 0:
		allErrs = append(allErrs, field.Required(p, "must set one of configMap, inline or hostPath"))
	case set > 1:
		allErrs = append(allErrs, field.Forbidden(p, "may set only one of configMap, inline or hostPath"))
	}
	return allErrs
}

// jsonObjectError says why doc is not a JSON object, or returns "" if it is.
// JSON null decodes into a map without error, so it is refused explicitly.
func jsonObjectError(doc string) string {
	var obj map[string]any
	if err := json.Unmarshal([]byte(doc), &obj); err != nil {
		return fmt.Sprintf("must be a JSON object: %v", err)
	}
	if obj == nil {
		return "must be a JSON object, not null"
	}
	return ""
}

func validateStorage(s *infer.InferStorage, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	volumes := []struct {
		name   string
		volume *infer.InferVolume
	}{{"model", s.Model}, {"writable", s.Writable}, {"runScript", s.RunScript}}
	mountedAt := map[string]string{}
	for _, nv := range volumes {
		v, vp := nv.volume, p.Child(nv.name)
		if v == nil {
			allErrs = append(allErrs, field.Required(vp, "must give a volume"))
			continue
		}
		allErrs = append(allErrs, absolutePath(v.MountPath, vp.Child("mountPath"))...)
		if other, taken := mountedAt[path.Clean(v.MountPath)]; taken && v.MountPath != "" {
			allErrs = append(allErrs, field.Invalid(vp.Child("mountPath"), v.MountPath, fmt.Sprintf("is already the mount path of spec.storage.%s", other)))
		}
		mountedAt[path.Clean(v.MountPath)] = nv.name
		allErrs = append(allErrs, validateVolumeSource(&v.VolumeSource, vp)...)
	}
	if s.SharedMemorySize == nil {
		allErrs = append(allErrs, field.Required(p.Child("sharedMemorySize"), "must give the size of /dev/shm"))
	} else if s.SharedMemorySize.Sign() <= 0 {
		allErrs = append(allErrs, field.Invalid(p.Child("sharedMemorySize"), s.SharedMemorySize.String(), "must be greater than zero"))
	}
	return allErrs
}

// validateVolumeSource requires exactly one source, and a well-formed host
// path for hostPath; the kubelet and the Deployment validate the rest.
func validateVolumeSource(src *corev1.VolumeSource, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	var set []string
	v := reflect.ValueOf(src).Elem()
	for i := 0; i < v.NumField(); i++ {
		if !v.Field(i).IsNil() {
			set = append(set, jsonName(v.Type().Field(i)))
		}
	}
	switch len(set) {
	case 0:
		allErrs = append(allErrs, field.Required(p, "must set exactly one volume source (hostPath, persistentVolumeClaim, configMap, nfs, ...)"))
	case 1:
	default:
		allErrs = append(allErrs, field.Forbidden(p.Child(set[1]), fmt.Sprintf("may not be set together with %s: a volume has exactly one source", set[0])))
	}
	if src.HostPath != nil {
		allErrs = append(allErrs, absolutePath(src.HostPath.Path, p.Child("hostPath", "path"))...)
	}
	if src.PersistentVolumeClaim != nil && src.PersistentVolumeClaim.ClaimName == "" {
		allErrs = append(allErrs, field.Required(p.Child("persistentVolumeClaim", "claimName"), "must name a PersistentVolumeClaim"))
	}
	return allErrs
}

func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	return name
}

func validateResources(r *infer.InferResources, crossNode bool, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	allErrs = append(allErrs, quantityInRange(r.CPU, minCPU, maxCPU, "1 and 256 cores (1000m to 256000m)", p.Child("cpu"))...)
	allErrs = append(allErrs, quantityInRange(r.Memory, minMemory, maxMemory, "1000Mi and 256000Mi", p.Child("memory"))...)
	if r.CPULimit != nil && r.CPU != nil && r.CPULimit.Cmp(*r.CPU) < 0 {
		allErrs = append(allErrs, field.Invalid(p.Child("cpuLimit"), r.CPULimit.String(), fmt.Sprintf("must be at least spec.resources.cpu (%s)", r.CPU.String())))
	}
	if r.MemoryLimit != nil && r.Memory != nil && r.MemoryLimit.Cmp(*r.Memory) < 0 {
		allErrs = append(allErrs, field.Invalid(p.Child("memoryLimit"), r.MemoryLimit.String(), fmt.Sprintf("must be at least spec.resources.memory (%s)", r.Memory.String())))
	}
	np := p.Child("npu")
	allErrs = append(allErrs, oneOf(string(r.NPU.Type), validNPUTypes, np.Child("type"))...)
	allErrs = append(allErrs, int32InRange(r.NPU.Count, MinNPUs, MaxNPUs, np.Child("count"))...)
	if crossNode {
		if r.NPU.Type == infer.NPUTypeAscend310P {
			allErrs = append(allErrs, field.Invalid(np.Child("type"), r.NPU.Type, "cross-node instances (spec.nodesPerInstance 2 or 4) support only Ascend910"))
		}
		if r.NPU.Count != nil && *r.NPU.Count != CrossNodeNPUs && *r.NPU.Count >= MinNPUs && *r.NPU.Count <= MaxNPUs {
			allErrs = append(allErrs, field.Invalid(np.Child("count"), *r.NPU.Count, "cross-node instances (spec.nodesPerInstance 2 or 4) use all 8 NPUs of each node: must be 8"))
		}
	}
	return allErrs
}

func validateImage(image string, p *field.Path) field.ErrorList {
	if strings.TrimSpace(image) == "" {
		return field.ErrorList{field.Required(p, "must name a container image")}
	}
	if image != strings.TrimSpace(image) {
		return field.ErrorList{field.Invalid(p, image, "must not have leading or trailing whitespace")}
	}
	return nil
}

func validatePorts(ports *infer.InferPorts, p *field.Path) field.ErrorList {
	allErrs := int32InRange(ports.Inference, MinPort, MaxPort, p.Child("inference"))
	allErrs = append(allErrs, int32InRange(ports.Management, MinPort, MaxPort, p.Child("management"))...)
	if ports.Inference != nil && ports.Management != nil && *ports.Inference == *ports.Management {
		allErrs = append(allErrs, field.Invalid(p.Child("management"), *ports.Management, "must differ from spec.ports.inference"))
	}
	return allErrs
}

func validateTLS(t *infer.InferTLS, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if t.SecretName == "" {
		return nil
	}
	if !t.Enabled {
		allErrs = append(allErrs, field.Forbidden(p.Child("secretName"), "may be set only when spec.tls.enabled is true"))
	}
	for _, msg := range apimachineryvalidation.NameIsDNSSubdomain(t.SecretName, false) {
		allErrs = append(allErrs, field.Invalid(p.Child("secretName"), t.SecretName, msg))
	}
	return allErrs
}

func validateService(s *infer.InferServiceExposure, p *field.Path) field.ErrorList {
	allErrs := oneOf(string(s.Type), validServiceTypes, p.Child("type"))
	if s.NodePort == 0 {
		return allErrs
	}
	if s.Type != corev1.ServiceTypeNodePort {
		allErrs = append(allErrs, field.Forbidden(p.Child("nodePort"), "may be set only when spec.service.type is NodePort"))
	}
	if s.NodePort < MinNodePort || s.NodePort > MaxNodePort {
		allErrs = append(allErrs, field.Invalid(p.Child("nodePort"), s.NodePort, rangeMessage(MinNodePort, MaxNodePort)+" (or 0 to let Kubernetes choose)"))
	}
	return allErrs
}

func validateRouter(r *infer.RouterSpec, p *field.Path) field.ErrorList {
	allErrs := oneOf(string(r.Algorithm), validAlgorithms, p.Child("algorithm"))
	allErrs = append(allErrs, int32InRange(r.Replicas, MinRouterReplicas, MaxRouterReplicas, p.Child("replicas"))...)
	allErrs = append(allErrs, validateImage(r.Image, p.Child("image"))...)
	allErrs = append(allErrs, oneOf(string(r.ImagePullPolicy), validPullPolicies, p.Child("imagePullPolicy"))...)
	allErrs = append(allErrs, oneOf(string(r.Authentication), validRouterAuth, p.Child("authentication"))...)
	if r.TLSSecretName != "" {
		for _, msg := range apimachineryvalidation.NameIsDNSSubdomain(r.TLSSecretName, false) {
			allErrs = append(allErrs, field.Invalid(p.Child("tlsSecretName"), r.TLSSecretName, msg))
		}
	}
	allErrs = append(allErrs, int32InRange(r.SlotsThresholdPercent, 0, 100, p.Child("slotsThresholdPercent"))...)
	allErrs = append(allErrs, int32InRange(r.BlocksThresholdPercent, 0, 100, p.Child("blocksThresholdPercent"))...)
	allErrs = append(allErrs, int32InRange(r.MaxRetries, 0, MaxRouterRetries, p.Child("maxRetries"))...)
	allErrs = append(allErrs, quantityInRange(r.MaxBodySize, minRouterBody, maxRouterBody, "1Ki and 1Gi", p.Child("maxBodySize"))...)
	allErrs = append(allErrs, int32InRange(r.MaxInflight, 1, MaxRouterInflight, p.Child("maxInflight"))...)
	allErrs = append(allErrs, int32InRange(r.MaxInflightPerInstance, 1, MaxRouterInflight, p.Child("maxInflightPerInstance"))...)
	if r.MaxInflight != nil && r.MaxInflightPerInstance != nil && *r.MaxInflightPerInstance > *r.MaxInflight {
		allErrs = append(allErrs, field.Invalid(p.Child("maxInflightPerInstance"), *r.MaxInflightPerInstance,
			fmt.Sprintf("must be at most spec.router.maxInflight (%d)", *r.MaxInflight)))
	}
	allErrs = append(allErrs, int32InRange(r.FirstTokenTimeoutSeconds, 1, MaxRouterTimeoutSeconds, p.Child("firstTokenTimeoutSeconds"))...)
	allErrs = append(allErrs, int32InRange(r.RequestTimeoutSeconds, 1, MaxRouterTimeoutSeconds, p.Child("requestTimeoutSeconds"))...)
	if r.FirstTokenTimeoutSeconds != nil && r.RequestTimeoutSeconds != nil && *r.RequestTimeoutSeconds < *r.FirstTokenTimeoutSeconds {
		allErrs = append(allErrs, field.Invalid(p.Child("requestTimeoutSeconds"), *r.RequestTimeoutSeconds,
			fmt.Sprintf("must be at least spec.router.firstTokenTimeoutSeconds (%d)", *r.FirstTokenTimeoutSeconds)))
	}
	allErrs = append(allErrs, validateContainerResources(&r.Resources, p.Child("resources"))...)
	return allErrs
}

// validateRoles checks a Prefill/Decode server: both roles, each with at
// least one instance, at most MaxGroupInstances in a group, a router that
// does not place by prefix.
func validateRoles(s *infer.InferServerSpec, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	rp := p.Child("roles")
	if s.Router == nil {
		allErrs = append(allErrs, field.Required(p.Child("router"),
			"a server with spec.roles needs a router: it sends each request to a prefill instance and relays the decode instance's tokens, as MindIE's Coordinator"))
	} else if s.Router.Algorithm == infer.RouterCacheAffinity {
		allErrs = append(allErrs, field.Invalid(p.Child("router", "algorithm"), s.Router.Algorithm,
			"cache_affinity does not apply with spec.roles: prefill instances are placed by load (use least_load or round_robin; MindIE's Coordinator refuses it in PD mode too)"))
	}
	seen := map[infer.RoleName]bool{}
	total := int32(0)
	for i := range s.Roles {
		r := &s.Roles[i]
		ip := rp.Index(i)
		switch {
		case !slices.Contains(validRoles, string(r.Name)):
			allErrs = append(allErrs, field.NotSupported(ip.Child("name"), r.Name, validRoles))
		case seen[r.Name]:
			allErrs = append(allErrs, field.Duplicate(ip.Child("name"), r.Name))
		}
		seen[r.Name] = true
		allErrs = append(allErrs, int32InRange(r.Instances, 1, MaxGroupInstances-1, ip.Child("instances"))...)
		if r.Instances != nil {
			total += *r.Instances
		}
		crossNode := false
		if r.NodesPerInstance == nil {
			allErrs = append(allErrs, field.Required(ip.Child("nodesPerInstance"), "must be 1, 2 or 4"))
		} else {
			switch *r.NodesPerInstance {
			case 1:
			case 2, 4:
				// A cross-node member: one HCCL ranktable per member, its
				// servers in the global ranktable, its role by /v2/role.
				crossNode = true
			default:
				allErrs = append(allErrs, field.Invalid(ip.Child("nodesPerInstance"), *r.NodesPerInstance, "must be 1 (single-node), 2 or 4 (cross-node)"))
			}
		}
		if r.Resources != nil {
			allErrs = append(allErrs, validateResources(r.Resources, crossNode, ip.Child("resources"))...)
		} else if crossNode {
			allErrs = append(allErrs, inheritedCrossNodeResources(s, *r.NodesPerInstance, ip)...)
		}
		if r.ServerConfig != nil {
			allErrs = append(allErrs, validateServerConfig(r.ServerConfig, ip.Child("serverConfig"))...)
		}
	}
	for _, name := range validRoles {
		if !seen[infer.RoleName(name)] {
			allErrs = append(allErrs, field.Required(rp, fmt.Sprintf("a %s role: a Prefill/Decode group needs both prefill and decode instances", name)))
		}
	}
	if total > MaxGroupInstances {
		allErrs = append(allErrs, field.Invalid(rp, total,
			fmt.Sprintf("the roles' instances make %d per group: MindIE links at most %d instances in one group", total, MaxGroupInstances)))
	}
	return allErrs
}

// inheritedCrossNodeResources checks the spec.resources a cross-node role
// without resources of its own inherits: a cross-node member, like a
// cross-node instance, takes every NPU of its nodes. (With spec.nodesPerInstance
// 2 or 4 spec.resources was checked for that already.)
func inheritedCrossNodeResources(s *infer.InferServerSpec, nodes int32, ip *field.Path) field.ErrorList {
	if s.NodesPerInstance != nil && *s.NodesPerInstance > 1 {
		return nil
	}
	var allErrs field.ErrorList
	npu := s.Resources.NPU
	if npu.Type == infer.NPUTypeAscend310P {
		allErrs = append(allErrs, field.Invalid(ip.Child("nodesPerInstance"), nodes,
			fmt.Sprintf("a cross-node role (2 or 4 nodes) supports only Ascend910, and it inherits spec.resources.npu.type %s: set %s with Ascend910, or use 1 node",
				npu.Type, ip.Child("resources"))))
	}
	if npu.Count != nil && *npu.Count != CrossNodeNPUs {
		allErrs = append(allErrs, field.Invalid(ip.Child("nodesPerInstance"), nodes,
			fmt.Sprintf("a cross-node role (2 or 4 nodes) uses all %d NPUs of each node, and it inherits spec.resources.npu.count %d: set %s with npu.count %d, or use 1 node",
				CrossNodeNPUs, *npu.Count, ip.Child("resources"), CrossNodeNPUs)))
	}
	return allErrs
}

// validateContainerResources allows cpu and memory requests and limits,
// non-negative, each request at most its limit.
func validateContainerResources(r *corev1.ResourceRequirements, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	allowed := []string{string(corev1.ResourceCPU), string(corev1.ResourceMemory)}
	for _, list := range []struct {
		name string
		rl   corev1.ResourceList
	}{{"requests", r.Requests}, {"limits", r.Limits}} {
		for _, name := range slices.Sorted(maps.Keys(list.rl)) {
			q := list.rl[name]
			fp := p.Child(list.name).Key(string(name))
			if !slices.Contains(allowed, string(name)) {
				allErrs = append(allErrs, field.NotSupported(fp, name, allowed))
			} else if q.Sign() < 0 {
				allErrs = append(allErrs, field.Invalid(fp, q.String(), "must not be negative"))
			}
		}
	}
	for name, req := range r.Requests {
		if l, ok := r.Limits[name]; ok && req.Cmp(l) > 0 {
			allErrs = append(allErrs, field.Invalid(p.Child("requests").Key(string(name)), req.String(),
				fmt.Sprintf("must be at most the limit %s", l.String())))
		}
	}
	return allErrs
}

func validateHealth(h *infer.HealthSpec, p *field.Path) field.ErrorList {
	allErrs := int32InRange(h.StartupSeconds, MinStartupSeconds, MaxStartupSeconds, p.Child("startupSeconds"))
	if h.DetectInnerErrors == nil {
		allErrs = append(allErrs, field.Required(p.Child("detectInnerErrors"), "must be true or false"))
	}
	probes := []struct {
		name  string
		probe *infer.ProbeSpec
	}{{"liveness", &h.Liveness}, {"readiness", &h.Readiness}}
	for _, np := range probes {
		probe, pp := np.probe, p.Child(np.name)
		allErrs = append(allErrs, int32InRange(probe.TimeoutSeconds, MinProbeTimeoutSeconds, MaxProbeTimeoutSeconds, pp.Child("timeoutSeconds"))...)
		allErrs = append(allErrs, int32InRange(probe.FailureThreshold, MinFailureThreshold, MaxFailureThreshold, pp.Child("failureThreshold"))...)
		allErrs = append(allErrs, int32InRange(probe.PeriodSeconds, MinProbePeriodSeconds, MaxProbePeriodSeconds, pp.Child("periodSeconds"))...)
	}
	return allErrs
}

func validateStrategy(s *infer.InferServerStrategy, p *field.Path) field.ErrorList {
	allErrs := oneOf(string(s.Type), validStrategies, p.Child("type"))
	if s.Type == infer.RecreateInferServerStrategyType {
		if s.RollingUpdate != nil {
			allErrs = append(allErrs, field.Forbidden(p.Child("rollingUpdate"), "may not be set when spec.strategy.type is Recreate"))
		}
		return allErrs
	}
	if s.Type != infer.RollingUpdateInferServerStrategyType {
		return allErrs
	}
	rp := p.Child("rollingUpdate")
	if s.RollingUpdate == nil {
		return append(allErrs, field.Required(rp, "must be set when spec.strategy.type is RollingUpdate"))
	}
	ru := s.RollingUpdate
	allErrs = append(allErrs, intOrPercent(ru.MaxSurge, rp.Child("maxSurge"))...)
	allErrs = append(allErrs, intOrPercent(ru.MaxUnavailable, rp.Child("maxUnavailable"))...)
	if len(allErrs) == 0 && isZero(ru.MaxSurge) && isZero(ru.MaxUnavailable) {
		allErrs = append(allErrs, field.Invalid(rp.Child("maxUnavailable"), ru.MaxUnavailable.String(), "may not be 0 when maxSurge is 0: the rollout could never make progress"))
	}
	return allErrs
}

// intOrPercent accepts a non-negative integer or "<n>%" with n in 0..100.
func intOrPercent(v *intstr.IntOrString, p *field.Path) field.ErrorList {
	if v == nil {
		return field.ErrorList{field.Required(p, "must be a non-negative integer or a percentage such as \"25%\"")}
	}
	if v.Type == intstr.Int {
		if v.IntVal < 0 {
			return field.ErrorList{field.Invalid(p, v.IntVal, "must be a non-negative integer or a percentage from 0% to 100%")}
		}
		return nil
	}
	n, err := parsePercent(v.StrVal)
	if err != nil {
		return field.ErrorList{field.Invalid(p, v.StrVal, "must be a non-negative integer or a percentage from \"0%\" to \"100%\"")}
	}
	if n < 0 || n > 100 {
		return field.ErrorList{field.Invalid(p, v.StrVal, "a percentage must be from \"0%\" to \"100%\"")}
	}
	return nil
}

func parsePercent(s string) (int, error) {
	if !strings.HasSuffix(s, percentSuffix) {
		return 0, fmt.Errorf("no %% suffix")
	}
	return strconv.Atoi(strings.TrimSuffix(s, percentSuffix))
}

func isZero(v *intstr.IntOrString) bool {
	if v == nil {
		return false
	}
	if v.Type == intstr.Int {
		return v.IntVal == 0
	}
	n, err := parsePercent(v.StrVal)
	return err == nil && n == 0
}

func validatePodMetadata(m *infer.PodMetadata, p *field.Path) field.ErrorList {
	allErrs := labelMap(m.Labels, p.Child("labels"))
	for k := range m.Labels {
		if strings.HasPrefix(k, ReservedLabelPrefix) {
			allErrs = append(allErrs, field.Invalid(p.Child("labels").Key(k), k, fmt.Sprintf("keys under %q are reserved for the controller", ReservedLabelPrefix)))
		}
	}
	allErrs = append(allErrs, apimachineryvalidation.ValidateAnnotations(m.Annotations, p.Child("annotations"))...)
	return allErrs
}

func labelMap(m map[string]string, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for k, v := range m {
		for _, msg := range utilvalidation.IsQualifiedName(k) {
			allErrs = append(allErrs, field.Invalid(p.Key(k), k, msg))
		}
		for _, msg := range utilvalidation.IsValidLabelValue(v) {
			allErrs = append(allErrs, field.Invalid(p.Key(k), v, msg))
		}
	}
	return allErrs
}

func validateTolerations(ts []corev1.Toleration, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	ops := []string{string(corev1.TolerationOpEqual), string(corev1.TolerationOpExists)}
	effects := []string{string(corev1.TaintEffectNoSchedule), string(corev1.TaintEffectPreferNoSchedule), string(corev1.TaintEffectNoExecute)}
	for i, t := range ts {
		tp := p.Index(i)
		if t.Key != "" {
			for _, msg := range utilvalidation.IsQualifiedName(t.Key) {
				allErrs = append(allErrs, field.Invalid(tp.Child("key"), t.Key, msg))
			}
		}
		if t.Operator != "" {
			allErrs = append(allErrs, oneOf(string(t.Operator), ops, tp.Child("operator"))...)
		}
		if t.Operator == corev1.TolerationOpExists && t.Value != "" {
			allErrs = append(allErrs, field.Invalid(tp.Child("value"), t.Value, "must be empty when operator is Exists"))
		}
		if t.Effect != "" {
			allErrs = append(allErrs, oneOf(string(t.Effect), effects, tp.Child("effect"))...)
		}
		if t.TolerationSeconds != nil && t.Effect != corev1.TaintEffectNoExecute {
			allErrs = append(allErrs, field.Forbidden(tp.Child("tolerationSeconds"), "may be set only with effect NoExecute"))
		}
	}
	return allErrs
}

func validateEnv(env []corev1.EnvVar, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	seen := sets.New[string]()
	for i, e := range env {
		ep := p.Index(i)
		if e.Name == "" {
			allErrs = append(allErrs, field.Required(ep.Child("name"), "must name the variable"))
			continue
		}
		for _, msg := range utilvalidation.IsEnvVarName(e.Name) {
			allErrs = append(allErrs, field.Invalid(ep.Child("name"), e.Name, msg))
		}
		if strings.HasPrefix(e.Name, ReservedEnvPrefix) {
			allErrs = append(allErrs, field.Invalid(ep.Child("name"), e.Name, fmt.Sprintf("names starting with %q are set by the controller from the spec", ReservedEnvPrefix)))
		}
		if seen.Has(e.Name) {
			allErrs = append(allErrs, field.Duplicate(ep.Child("name"), e.Name))
		}
		seen.Insert(e.Name)
		if e.Value != "" && e.ValueFrom != nil {
			allErrs = append(allErrs, field.Invalid(ep.Child("valueFrom"), "", "may not be set together with value"))
		}
	}
	return allErrs
}

// Volume names the controller gives the volumes it adds itself.
var reservedVolumeNames = sets.New("dshm", "server-config", "model", "writable-data", "run-script", "tls", "ranktable")

func validateExtraVolumes(s *infer.InferServerSpec, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	names := sets.New[string]()
	for i, v := range s.Volumes {
		vp := p.Child("volumes").Index(i)
		for _, msg := range utilvalidation.IsDNS1123Label(v.Name) {
			allErrs = append(allErrs, field.Invalid(vp.Child("name"), v.Name, msg))
		}
		if reservedVolumeNames.Has(v.Name) {
			allErrs = append(allErrs, field.Invalid(vp.Child("name"), v.Name, fmt.Sprintf("is used by the controller; reserved names are %s", strings.Join(sets.List(reservedVolumeNames), ", "))))
		}
		if names.Has(v.Name) {
			allErrs = append(allErrs, field.Duplicate(vp.Child("name"), v.Name))
		}
		names.Insert(v.Name)
		allErrs = append(allErrs, validateVolumeSource(&v.VolumeSource, vp)...)
	}
	mounted := sets.New[string]()
	for _, v := range []*infer.InferVolume{s.Storage.Model, s.Storage.Writable, s.Storage.RunScript} {
		if v != nil {
			mounted.Insert(path.Clean(v.MountPath))
		}
	}
	for i, m := range s.VolumeMounts {
		mp := p.Child("volumeMounts").Index(i)
		if !names.Has(m.Name) {
			allErrs = append(allErrs, field.NotFound(mp.Child("name"), m.Name))
		}
		allErrs = append(allErrs, absolutePath(m.MountPath, mp.Child("mountPath"))...)
		if m.MountPath != "" && mounted.Has(path.Clean(m.MountPath)) {
			allErrs = append(allErrs, field.Duplicate(mp.Child("mountPath"), m.MountPath))
		}
		mounted.Insert(path.Clean(m.MountPath))
	}
	return allErrs
}

func absolutePath(v string, p *field.Path) field.ErrorList {
	if v == "" {
		return field.ErrorList{field.Required(p, "must be an absolute path")}
	}
	if !path.IsAbs(v) {
		return field.ErrorList{field.Invalid(p, v, "must be an absolute path")}
	}
	for _, part := range strings.Split(v, "/") {
		if part == ".." {
			return field.ErrorList{field.Invalid(p, v, "must not contain '..'")}
		}
	}
	return nil
}

func int32InRange(v *int32, lo, hi int32, p *field.Path) field.ErrorList {
	if v == nil {
		return field.ErrorList{field.Required(p, rangeMessage(int64(lo), int64(hi)))}
	}
	if *v < lo || *v > hi {
		return field.ErrorList{field.Invalid(p, *v, rangeMessage(int64(lo), int64(hi)))}
	}
	return nil
}

func quantityInRange(q *resource.Quantity, lo, hi resource.Quantity, allowed string, p *field.Path) field.ErrorList {
	if q == nil {
		return field.ErrorList{field.Required(p, "must be between "+allowed)}
	}
	if q.Cmp(lo) < 0 || q.Cmp(hi) > 0 {
		return field.ErrorList{field.Invalid(p, q.String(), "must be between "+allowed)}
	}
	return nil
}

func oneOf(v string, allowed []string, p *field.Path) field.ErrorList {
	if v == "" {
		return field.ErrorList{field.Required(p, "supported values: \""+strings.Join(allowed, "\", \"")+"\"")}
	}
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return field.ErrorList{field.NotSupported(p, v, allowed)}
}

func rangeMessage(lo, hi int64) string {
	return fmt.Sprintf("must be between %d and %d, inclusive", lo, hi)
}

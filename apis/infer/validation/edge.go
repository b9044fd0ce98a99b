package validation

import (
	"fmt"
	"path"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/sets"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	netutils "k8s.io/utils/net"

	"mindie.io/deployer/apis/infer"
	"mindie.io/deployer/apis/infer/v1alpha1"
)

// Bounds of the EdgeDeployment API, inclusive.
const (
	MaxEdgeDescriptionLength = 255
	MaxEdgeInstancesPerNode  = 64
	MaxEdgeNPUs              = 32
	MaxEdgeTimeoutSeconds    = 86400
	MaxEdgeInitialDelay      = 3600
	MaxEdgeProbeFailures     = 100
	MaxEdgeFileMode          = 0o777
	// EdgeNPULogDir is where the Ascend runtime mounts the NPU's logs into
	// a container that uses NPUs (IEF: do not mount on /var/dlog with an
	// Atlas 500 or another NPU).
	EdgeNPULogDir = "/var/dlog"
)

var (
	minEdgeCPU    = resource.MustParse("1m")
	maxEdgeCPU    = resource.MustParse("256")
	minEdgeMemory = resource.MustParse("6Mi")
	maxEdgeMemory = resource.MustParse("1Ti")

	validRestartPolicies = []string{string(corev1.RestartPolicyAlways), string(corev1.RestartPolicyOnFailure), string(corev1.RestartPolicyNever)}
	validEdgeNPUTypes    = []string{string(infer.EdgeNPUAscend310), string(infer.EdgeNPUAscend310P), string(infer.EdgeNPUAscend910)}
	validEdgeMedia       = []string{string(infer.EdgeStorageDisk), string(infer.EdgeStorageMemory)}
	validEdgeSchemes     = []string{string(corev1.URISchemeHTTP), string(corev1.URISchemeHTTPS)}
	validEdgeProtocols   = []string{string(corev1.ProtocolTCP), string(corev1.ProtocolUDP)}
	validHostPathTypes   = []string{string(corev1.HostPathUnset), string(corev1.HostPathDirectoryOrCreate), string(corev1.HostPathDirectory),
		string(corev1.HostPathFileOrCreate), string(corev1.HostPathFile), string(corev1.HostPathSocket),
		string(corev1.HostPathCharDev), string(corev1.HostPathBlockDev)}
	validEdgePhases = []string{string(infer.EdgePhaseQueued), string(infer.EdgePhaseRunning), string(infer.EdgePhaseSucceeded),
		string(infer.EdgePhasePartiallySucceeded), string(infer.EdgePhaseFailed), string(infer.EdgePhaseStopping),
		string(infer.EdgePhaseStopped), string(infer.EdgePhaseTimedOut)}
	validEdgeNodeStates = []string{string(infer.EdgeNodeQueued), string(infer.EdgeNodeDeploying), string(infer.EdgeNodeSucceeded),
		string(infer.EdgeNodeFailed), string(infer.EdgeNodeTimedOut), string(infer.EdgeNodeStopped)}

	// EdgeSystemDirs are the directories of a container a volume may not
	// be mounted on: hiding what the image has there breaks the container
	// (IEF: never mount on "/", "/var/run" and the like). Below them is
	// allowed.
	EdgeSystemDirs = []string{"/", "/bin", "/boot", "/etc", "/lib", "/lib64", "/proc", "/run", "/sbin", "/sys", "/usr", "/var", "/var/run"}
)

const (
	edgeTargetsImmutable  = "is immutable: the nodes are chosen once, when the job starts (status.targets); create another EdgeDeployment for other nodes"
	edgeTemplateImmutable = "is immutable: every node of the job, retried ones included, runs the same application; create another EdgeDeployment to deploy a different one"
)

// ValidateEdgeDeployment checks a new EdgeDeployment.
func ValidateEdgeDeployment(e *infer.EdgeDeployment) field.ErrorList {
	allErrs := apimachineryvalidation.ValidateObjectMeta(&e.ObjectMeta, true, ValidateName, field.NewPath("metadata"))
	return append(allErrs, ValidateEdgeDeploymentSpec(&e.Spec, field.NewPath("spec"))...)
}

// ValidateEdgeDeploymentUpdate checks an update of the spec and metadata:
// only the job's control (stopped, retryGeneration, maxConcurrentNodes,
// timeoutSeconds, description) may change, and retryGeneration only grow.
func ValidateEdgeDeploymentUpdate(newObj, oldObj *infer.EdgeDeployment) field.ErrorList {
	allErrs := apimachineryvalidation.ValidateObjectMetaUpdate(&newObj.ObjectMeta, &oldObj.ObjectMeta, field.NewPath("metadata"))
	p := field.NewPath("spec")
	allErrs = append(allErrs, ValidateEdgeDeploymentSpec(&newObj.Spec, p)...)
	n, o := &newObj.Spec, &oldObj.Spec
	if !apiequality.Semantic.DeepEqual(n.Targets, o.Targets) {
		allErrs = append(allErrs, field.Forbidden(p.Child("targets"), edgeTargetsImmutable))
	}
	template := []struct {
		name     string
		new, old any
	}{
		{"namePrefix", n.NamePrefix, o.NamePrefix},
		{"instancesPerNode", n.InstancesPerNode, o.InstancesPerNode},
		{"restartPolicy", n.RestartPolicy, o.RestartPolicy},
		{"hostPID", n.HostPID, o.HostPID},
		{"imagePullSecrets", n.ImagePullSecrets, o.ImagePullSecrets},
		{"container", n.Container, o.Container},
		{"network", n.Network, o.Network},
	}
	for _, f := range template {
		if !apiequality.Semantic.DeepEqual(f.new, f.old) {
			allErrs = append(allErrs, field.Forbidden(p.Child(f.name), edgeTemplateImmutable))
		}
	}
	if n.RetryGeneration < o.RetryGeneration {
		allErrs = append(allErrs, field.Invalid(p.Child("retryGeneration"), n.RetryGeneration,
			fmt.Sprintf("may not decrease (it was %d): raise it to retry the failed and timed-out nodes", o.RetryGeneration)))
	}
	return allErrs
}

// ValidateEdgeDeploymentSpec checks a spec after defaulting.
func ValidateEdgeDeploymentSpec(s *infer.EdgeDeploymentSpec, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if len(s.Description) > MaxEdgeDescriptionLength {
		allErrs = append(allErrs, field.TooLong(p.Child("description"), "", MaxEdgeDescriptionLength))
	}
	allErrs = append(allErrs, validateEdgeTargets(&s.Targets, p.Child("targets"))...)
	if s.NamePrefix != "" {
		for _, msg := range ValidateName(s.NamePrefix, false) {
			allErrs = append(allErrs, field.Invalid(p.Child("namePrefix"), s.NamePrefix, msg))
		}
	}
	allErrs = append(allErrs, int32InRange(s.InstancesPerNode, 1, MaxEdgeInstancesPerNode, p.Child("instancesPerNode"))...)
	if s.InstancesPerNode != nil && *s.InstancesPerNode > 1 && len(s.Network.Ports) > 0 && !s.Network.HostNetwork {
		allErrs = append(allErrs, field.Invalid(p.Child("instancesPerNode"), *s.InstancesPerNode,
			"must be 1 with host port mappings (spec.network.ports): two instances on one node cannot bind the same host port"))
	}
	allErrs = append(allErrs, oneOf(string(s.RestartPolicy), validRestartPolicies, p.Child("restartPolicy"))...)
	for i, ref := range s.ImagePullSecrets {
		for _, msg := range apimachineryvalidation.NameIsDNSSubdomain(ref.Name, false) {
			allErrs = append(allErrs, field.Invalid(p.Child("imagePullSecrets").Index(i).Child("name"), ref.Name, msg))
		}
	}
	allErrs = append(allErrs, validateEdgeContainer(&s.Container, p.Child("container"))...)
	allErrs = append(allErrs, validateEdgeNetwork(&s.Network, p.Child("network"))...)
	allErrs = append(allErrs, int32InRange(s.MaxConcurrentNodes, 1, v1alpha1.MaxEdgeTargets, p.Child("maxConcurrentNodes"))...)
	allErrs = append(allErrs, int32InRange(s.TimeoutSeconds, 1, MaxEdgeTimeoutSeconds, p.Child("timeoutSeconds"))...)
	allErrs = append(allErrs, apimachineryvalidation.ValidateNonnegativeField(s.RetryGeneration, p.Child("retryGeneration"))...)
	return allErrs
}

func validateEdgeTargets(t *infer.EdgeTargets, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if len(t.Nodes) == 0 && t.Selector == nil {
		return field.ErrorList{field.Required(p, "must name nodes (nodes), select them by label (selector), or both")}
	}
	allErrs = append(allErrs, validateNodeNames(t.Nodes, p.Child("nodes"))...)
	if sel := t.Selector; sel != nil {
		sp := p.Child("selector")
		if len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0 {
			allErrs = append(allErrs, field.Invalid(sp, "{}", "must have at least one requirement (matchLabels or matchExpressions): an empty selector matches every node of the cluster"))
		}
		allErrs = append(allErrs, metav1validation.ValidateLabelSelector(sel, metav1validation.LabelSelectorValidationOptions{}, sp)...)
	}
	return allErrs
}

// validateNodeNames checks a list of node names: at most MaxEdgeTargets,
// each a DNS subdomain, each once.
func validateNodeNames(nodes []string, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if len(nodes) > v1alpha1.MaxEdgeTargets {
		allErrs = append(allErrs, field.TooMany(p, len(nodes), v1alpha1.MaxEdgeTargets))
	}
	seen := sets.New[string]()
	for i, n := range nodes {
		for _, msg := range apimachineryvalidation.NameIsDNSSubdomain(n, false) {
			allErrs = append(allErrs, field.Invalid(p.Index(i), n, msg))
		}
		if seen.Has(n) {
			allErrs = append(allErrs, field.Duplicate(p.Index(i), n))
		}
		seen.Insert(n)
	}
	return allErrs
}

func validateEdgeContainer(c *infer.EdgeContainer, p *field.Path) field.ErrorList {
	allErrs := validateImage(c.Image, p.Child("image"))
	allErrs = append(allErrs, oneOf(string(c.ImagePullPolicy), validPullPolicies, p.Child("imagePullPolicy"))...)
	allErrs = append(allErrs, validateEdgeResources(&c.Resources, p.Child("resources"))...)
	allErrs = append(allErrs, validateEdgeEnv(c.Env, p.Child("env"))...)
	allErrs = append(allErrs, validateEdgeVolumes(c.Volumes, c.Resources.NPU != nil, p.Child("volumes"))...)
	if c.LivenessProbe != nil {
		allErrs = append(allErrs, validateEdgeProbe(c.LivenessProbe, p.Child("livenessProbe"))...)
	}
	if c.ReadinessProbe != nil {
		allErrs = append(allErrs, validateEdgeProbe(c.ReadinessProbe, p.Child("readinessProbe"))...)
	}
	return allErrs
}

func validateEdgeResources(r *infer.EdgeResources, p *field.Path) field.ErrorList {
	const cpuRange, memoryRange = "1m and 256 cores", "6Mi and 1Ti"
	allErrs := quantityInRange(r.CPU, minEdgeCPU, maxEdgeCPU, cpuRange, p.Child("cpu"))
	allErrs = append(allErrs, quantityInRange(r.CPULimit, minEdgeCPU, maxEdgeCPU, cpuRange, p.Child("cpuLimit"))...)
	allErrs = append(allErrs, quantityInRange(r.Memory, minEdgeMemory, maxEdgeMemory, memoryRange, p.Child("memory"))...)
	allErrs = append(allErrs, quantityInRange(r.MemoryLimit, minEdgeMemory, maxEdgeMemory, memoryRange, p.Child("memoryLimit"))...)
	if r.CPU != nil && r.CPULimit != nil && r.CPULimit.Cmp(*r.CPU) < 0 {
		allErrs = append(allErrs, field.Invalid(p.Child("cpuLimit"), r.CPULimit.String(), fmt.Sprintf("must be at least the request %s (%s)", p.Child("cpu"), r.CPU)))
	}
	if r.Memory != nil && r.MemoryLimit != nil && r.MemoryLimit.Cmp(*r.Memory) < 0 {
		allErrs = append(allErrs, field.Invalid(p.Child("memoryLimit"), r.MemoryLimit.String(), fmt.Sprintf("must be at least the request %s (%s)", p.Child("memory"), r.Memory)))
	}
	if r.NPU != nil {
		np := p.Child("npu")
		allErrs = append(allErrs, oneOf(string(r.NPU.Type), validEdgeNPUTypes, np.Child("type"))...)
		allErrs = append(allErrs, int32InRange(r.NPU.Count, 1, MaxEdgeNPUs, np.Child("count"))...)
	}
	return allErrs
}

// validateEdgeEnv allows the four kinds of variable of the IEF form: a
// value, a Secret's key, a ConfigMap's key and the node's IP.
func validateEdgeEnv(env []corev1.EnvVar, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	seen := sets.New[string]()
	for i, e := range env {
		ep := p.Index(i)
		if e.Name == "" {
			allErrs = append(allErrs, field.Required(ep.Child("name"), "must name the variable"))
		} else {
			for _, msg := range utilvalidation.IsEnvVarName(e.Name) {
				allErrs = append(allErrs, field.Invalid(ep.Child("name"), e.Name, msg))
			}
			if seen.Has(e.Name) {
				allErrs = append(allErrs, field.Duplicate(ep.Child("name"), e.Name))
			}
			seen.Insert(e.Name)
		}
		if e.ValueFrom == nil {
			continue
		}
		vp := ep.Child("valueFrom")
		if e.Value != "" {
			allErrs = append(allErrs, field.Invalid(vp, "", "may not be set together with value"))
		}
		from := e.ValueFrom
		var set []string
		if ref := from.SecretKeyRef; ref != nil {
			set = append(set, "secretKeyRef")
			allErrs = append(allErrs, validateKeyRef(ref.Name, ref.Key, vp.Child("secretKeyRef"))...)
		}
		if ref := from.ConfigMapKeyRef; ref != nil {
			set = append(set, "configMapKeyRef")
			allErrs = append(allErrs, validateKeyRef(ref.Name, ref.Key, vp.Child("configMapKeyRef"))...)
		}
		if ref := from.FieldRef; ref != nil {
			set = append(set, "fieldRef")
			if ref.FieldPath != "status.hostIP" {
				allErrs = append(allErrs, field.NotSupported(vp.Child("fieldRef", "fieldPath"), ref.FieldPath, []string{"status.hostIP"}))
			}
			if ref.APIVersion != "" && ref.APIVersion != "v1" {
				allErrs = append(allErrs, field.NotSupported(vp.Child("fieldRef", "apiVersion"), ref.APIVersion, []string{"v1"}))
			}
		}
		if from.ResourceFieldRef != nil {
			allErrs = append(allErrs, field.Forbidden(vp.Child("resourceFieldRef"), "is not supported: use value, secretKeyRef, configMapKeyRef or fieldRef (status.hostIP)"))
		}
		if from.FileKeyRef != nil {
			allErrs = append(allErrs, field.Forbidden(vp.Child("fileKeyRef"), "is not supported: use value, secretKeyRef, configMapKeyRef or fieldRef (status.hostIP)"))
		}
		switch {
		case len(set) == 0 && from.ResourceFieldRef == nil && from.FileKeyRef == nil:
			allErrs = append(allErrs, field.Required(vp, "must set one of secretKeyRef, configMapKeyRef or fieldRef (status.hostIP)"))
		case len(set) > 1:
			allErrs = append(allErrs, field.Forbidden(vp.Child(set[1]), fmt.Sprintf("may not be set together with %s: a variable has one source", set[0])))
		}
	}
	return allErrs
}

func validateKeyRef(name, key string, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for _, msg := range apimachineryvalidation.NameIsDNSSubdomain(name, false) {
		allErrs = append(allErrs, field.Invalid(p.Child("name"), name, msg))
	}
	for _, msg := range utilvalidation.IsConfigMapKey(key) {
		allErrs = append(allErrs, field.Invalid(p.Child("key"), key, msg))
	}
	return allErrs
}

func validateEdgeVolumes(volumes []infer.EdgeVolume, npu bool, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	names, mounts := sets.New[string](), sets.New[string]()
	for i := range volumes {
		v := &volumes[i]
		vp := p.Index(i)
		for _, msg := range utilvalidation.IsDNS1123Label(v.Name) {
			allErrs = append(allErrs, field.Invalid(vp.Child("name"), v.Name, msg))
		}
		if names.Has(v.Name) {
			allErrs = append(allErrs, field.Duplicate(vp.Child("name"), v.Name))
		}
		names.Insert(v.Name)

		mp := vp.Child("mountPath")
		if errs := absolutePath(v.MountPath, mp); len(errs) > 0 {
			allErrs = append(allErrs, errs...)
		} else {
			clean := path.Clean(v.MountPath)
			switch {
			case slices.Contains(EdgeSystemDirs, clean):
				allErrs = append(allErrs, field.Invalid(mp, v.MountPath, fmt.Sprintf(
					"is a system directory of the container: mounting over it breaks the container (refused: %s); mount on an empty directory such as /data",
					strings.Join(EdgeSystemDirs, ", "))))
			case npu && (clean == EdgeNPULogDir || strings.HasPrefix(clean, EdgeNPULogDir+"/")):
				allErrs = append(allErrs, field.Invalid(mp, v.MountPath, fmt.Sprintf(
					"is where the Ascend runtime mounts the NPU's logs (%s), and spec.container.resources.npu is set: mount elsewhere", EdgeNPULogDir)))
			case mounts.Has(clean):
				allErrs = append(allErrs, field.Duplicate(mp, v.MountPath))
			}
			mounts.Insert(clean)
		}
		allErrs = append(allErrs, validateEdgeVolumeSource(v, vp)...)
	}
	return allErrs
}

func validateEdgeVolumeSource(v *infer.EdgeVolume, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	var set []string
	if s := v.HostPath; s != nil {
		set = append(set, "hostPath")
		allErrs = append(allErrs, absolutePath(s.Path, p.Child("hostPath", "path"))...)
		if s.Type != nil && !slices.Contains(validHostPathTypes, string(*s.Type)) {
			allErrs = append(allErrs, field.NotSupported(p.Child("hostPath", "type"), *s.Type, validHostPathTypes))
		}
	}
	if s := v.EmptyDir; s != nil {
		set = append(set, "emptyDir")
		allErrs = append(allErrs, oneOf(string(s.Medium), validEdgeMedia, p.Child("emptyDir", "medium"))...)
		if s.SizeLimit != nil && s.SizeLimit.Sign() <= 0 {
			allErrs = append(allErrs, field.Invalid(p.Child("emptyDir", "sizeLimit"), s.SizeLimit.String(), "must be greater than zero"))
		}
	}
	if s := v.ConfigMap; s != nil {
		set = append(set, "configMap")
		cp := p.Child("configMap")
		for _, msg := range apimachineryvalidation.NameIsDNSSubdomain(s.Name, false) {
			allErrs = append(allErrs, field.Invalid(cp.Child("name"), s.Name, msg))
		}
		allErrs = append(allErrs, validateKeyFiles(s.Items, s.DefaultMode, cp)...)
	}
	if s := v.Secret; s != nil {
		set = append(set, "secret")
		sp := p.Child("secret")
		for _, msg := range apimachineryvalidation.NameIsDNSSubdomain(s.SecretName, false) {
			allErrs = append(allErrs, field.Invalid(sp.Child("secretName"), s.SecretName, msg))
		}
		allErrs = append(allErrs, validateKeyFiles(s.Items, s.DefaultMode, sp)...)
	}
	switch len(set) {
	case 0:
		allErrs = append(allErrs, field.Required(p, "must set exactly one of hostPath, emptyDir, configMap or secret"))
	case 1:
	default:
		allErrs = append(allErrs, field.Forbidden(p.Child(set[1]), fmt.Sprintf("may not be set together with %s: a volume has exactly one source", set[0])))
	}
	return allErrs
}

// validateKeyFiles checks the keys of a ConfigMap or Secret volume and the
// files they become.
func validateKeyFiles(items []corev1.KeyToPath, defaultMode *int32, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if defaultMode != nil && (*defaultMode < 0 || *defaultMode > MaxEdgeFileMode) {
		allErrs = append(allErrs, field.Invalid(p.Child("defaultMode"), *defaultMode, "must be a file mode between 0 and 0777 (511), inclusive"))
	}
	for i, it := range items {
		ip := p.Child("items").Index(i)
		for _, msg := range utilvalidation.IsConfigMapKey(it.Key) {
			allErrs = append(allErrs, field.Invalid(ip.Child("key"), it.Key, msg))
		}
		switch {
		case it.Path == "":
			allErrs = append(allErrs, field.Required(ip.Child("path"), "must be a relative file path"))
		case path.IsAbs(it.Path) || slices.Contains(strings.Split(it.Path, "/"), ".."):
			allErrs = append(allErrs, field.Invalid(ip.Child("path"), it.Path, "must be a relative path without '..'"))
		}
		if it.Mode != nil && (*it.Mode < 0 || *it.Mode > MaxEdgeFileMode) {
			allErrs = append(allErrs, field.Invalid(ip.Child("mode"), *it.Mode, "must be a file mode between 0 and 0777 (511), inclusive"))
		}
	}
	return allErrs
}

func validateEdgeProbe(pr *infer.EdgeProbe, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	switch {
	case pr.HTTPGet == nil && pr.Exec == nil:
		allErrs = append(allErrs, field.Required(p, "must set one of httpGet or exec"))
	case pr.HTTPGet != nil && pr.Exec != nil:
		allErrs = append(allErrs, field.Forbidden(p.Child("exec"), "may not be set together with httpGet: a probe checks one way"))
	}
	if h := pr.HTTPGet; h != nil {
		hp := p.Child("httpGet")
		if !strings.HasPrefix(h.Path, "/") {
			allErrs = append(allErrs, field.Invalid(hp.Child("path"), h.Path, "must start with '/'"))
		}
		allErrs = append(allErrs, portInRange(h.Port, hp.Child("port"))...)
		allErrs = append(allErrs, oneOf(string(h.Scheme), validEdgeSchemes, hp.Child("scheme"))...)
	}
	if x := pr.Exec; x != nil && len(x.Command) == 0 {
		allErrs = append(allErrs, field.Required(p.Child("exec", "command"), "must give the command to run"))
	}
	if pr.InitialDelaySeconds < 0 || pr.InitialDelaySeconds > MaxEdgeInitialDelay {
		allErrs = append(allErrs, field.Invalid(p.Child("initialDelaySeconds"), pr.InitialDelaySeconds, rangeMessage(0, MaxEdgeInitialDelay)))
	}
	allErrs = append(allErrs, int32InRange(pr.TimeoutSeconds, MinProbeTimeoutSeconds, MaxProbeTimeoutSeconds, p.Child("timeoutSeconds"))...)
	allErrs = append(allErrs, int32InRange(pr.PeriodSeconds, MinProbePeriodSeconds, MaxProbePeriodSeconds, p.Child("periodSeconds"))...)
	allErrs = append(allErrs, int32InRange(pr.FailureThreshold, 1, MaxEdgeProbeFailures, p.Child("failureThreshold"))...)
	return allErrs
}

func validateEdgeNetwork(n *infer.EdgeNetwork, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	type key struct {
		port     int32
		protocol corev1.Protocol
	}
	containerPorts, hostPorts := sets.New[key](), sets.New[key]()
	for i, m := range n.Ports {
		mp := p.Child("ports").Index(i)
		allErrs = append(allErrs, portInRange(m.ContainerPort, mp.Child("containerPort"))...)
		allErrs = append(allErrs, portInRange(m.HostPort, mp.Child("hostPort"))...)
		allErrs = append(allErrs, oneOf(string(m.Protocol), validEdgeProtocols, mp.Child("protocol"))...)
		if m.HostIP != "" {
			if ip := netutils.ParseIPSloppy(m.HostIP); ip == nil || ip.To4() == nil {
				allErrs = append(allErrs, field.Invalid(mp.Child("hostIP"), m.HostIP, "must be an IPv4 address of the node (IPv6 is not supported)"))
			}
		}
		if c := (key{m.ContainerPort, m.Protocol}); containerPorts.Has(c) {
			allErrs = append(allErrs, field.Duplicate(mp.Child("containerPort"), fmt.Sprintf("%d/%s", m.ContainerPort, m.Protocol)))
		} else {
			containerPorts.Insert(c)
		}
		if h := (key{m.HostPort, m.Protocol}); hostPorts.Has(h) {
			allErrs = append(allErrs, field.Duplicate(mp.Child("hostPort"), fmt.Sprintf("%d/%s", m.HostPort, m.Protocol)))
		} else {
			hostPorts.Insert(h)
		}
	}
	return allErrs
}

func portInRange(port int32, p *field.Path) field.ErrorList {
	if port < 1 || port > MaxPort {
		return field.ErrorList{field.Invalid(p, port, rangeMessage(1, MaxPort))}
	}
	return nil
}

// ValidateEdgeDeploymentStatusUpdate checks what a controller writes to
// the status subresource: known phases and states, counts that add up to
// no more than the targets, nodes among the targets, targets recorded once,
// and no retry observed before it was asked for.
func ValidateEdgeDeploymentStatusUpdate(newObj, oldObj *infer.EdgeDeployment) field.ErrorList {
	allErrs := apimachineryvalidation.ValidateObjectMetaUpdate(&newObj.ObjectMeta, &oldObj.ObjectMeta, field.NewPath("metadata"))
	st, p := &newObj.Status, field.NewPath("status")
	retry := newObj.Spec.RetryGeneration
	allErrs = append(allErrs, oneOf(string(st.Phase), validEdgePhases, p.Child("phase"))...)
	allErrs = append(allErrs, apimachineryvalidation.ValidateNonnegativeField(st.ObservedGeneration, p.Child("observedGeneration"))...)
	if st.ObservedRetryGeneration < 0 || st.ObservedRetryGeneration > retry {
		allErrs = append(allErrs, field.Invalid(p.Child("observedRetryGeneration"), st.ObservedRetryGeneration,
			fmt.Sprintf("must be between 0 and spec.retryGeneration (%d), inclusive", retry)))
	}
	allErrs = append(allErrs, validateNodeNames(st.Targets, p.Child("targets"))...)
	if len(oldObj.Status.Targets) > 0 && !slices.Equal(st.Targets, oldObj.Status.Targets) {
		allErrs = append(allErrs, field.Forbidden(p.Child("targets"), "is recorded once, when the job starts, and may not change"))
	}
	for _, msg := range utilvalidation.IsValidLabelValue(st.Architecture) {
		allErrs = append(allErrs, field.Invalid(p.Child("architecture"), st.Architecture, msg))
	}
	counts := []struct {
		name  string
		value int32
	}{{"queued", st.Queued}, {"running", st.Running}, {"succeeded", st.Succeeded}, {"failed", st.Failed}, {"timedOut", st.TimedOut}, {"stopped", st.Stopped}}
	var sum int64
	for _, c := range counts {
		allErrs = append(allErrs, apimachineryvalidation.ValidateNonnegativeField(int64(c.value), p.Child(c.name))...)
		sum += int64(c.value)
	}
	if sum > int64(len(st.Targets)) {
		allErrs = append(allErrs, field.Invalid(p, sum,
			fmt.Sprintf("the nodes counted by state (queued, running, succeeded, failed, timedOut, stopped) add up to more than the %d of status.targets", len(st.Targets))))
	}
	targets := sets.New(st.Targets...)
	seen := sets.New[string]()
	for i, n := range st.Nodes {
		np := p.Child("nodes").Index(i)
		switch {
		case n.Node == "":
			allErrs = append(allErrs, field.Required(np.Child("node"), "must name one of status.targets"))
		case !targets.Has(n.Node):
			allErrs = append(allErrs, field.Invalid(np.Child("node"), n.Node, "must be one of status.targets"))
		case seen.Has(n.Node):
			allErrs = append(allErrs, field.Duplicate(np.Child("node"), n.Node))
		}
		seen.Insert(n.Node)
		allErrs = append(allErrs, oneOf(string(n.State), validEdgeNodeStates, np.Child("state"))...)
		allErrs = append(allErrs, apimachineryvalidation.ValidateNonnegativeField(int64(n.Attempts), np.Child("attempts"))...)
		if n.RetryGeneration < 0 || n.RetryGeneration > retry {
			allErrs = append(allErrs, field.Invalid(np.Child("retryGeneration"), n.RetryGeneration,
				fmt.Sprintf("must be between 0 and spec.retryGeneration (%d), inclusive", retry)))
		}
	}
	allErrs = append(allErrs, metav1validation.ValidateConditions(st.Conditions, p.Child("conditions"))...)
	return allErrs
}

package v1alpha1

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
)

// The defaults of an EdgeDeployment. The timeout is IEF's; the resources
// are small, as edge nodes are; the probe settings are Kubernetes' own.
const (
	DefaultEdgeInstancesPerNode      int32 = 1
	DefaultEdgeMaxConcurrentNodes    int32 = 100
	DefaultEdgeTimeoutSeconds        int32 = 600
	DefaultEdgeCPU                         = "250m"
	DefaultEdgeMemory                      = "512Mi"
	DefaultEdgeNPUCount              int32 = 1
	DefaultEdgeProbeTimeoutSeconds   int32 = 1
	DefaultEdgeProbePeriodSeconds    int32 = 10
	DefaultEdgeProbeFailureThreshold int32 = 3
	DefaultEdgeProbePath                   = "/"
	// LatestTag is the tag an image without one stands for.
	LatestTag = "latest"
)

// SetDefaults_EdgeDeploymentSpec fills the job's optional fields.
func SetDefaults_EdgeDeploymentSpec(s *EdgeDeploymentSpec) {
	if s.InstancesPerNode == nil {
		s.InstancesPerNode = ptr.To(DefaultEdgeInstancesPerNode)
	}
	if s.RestartPolicy == "" {
		s.RestartPolicy = corev1.RestartPolicyAlways
	}
	if s.MaxConcurrentNodes == nil {
		s.MaxConcurrentNodes = ptr.To(DefaultEdgeMaxConcurrentNodes)
	}
	if s.TimeoutSeconds == nil {
		s.TimeoutSeconds = ptr.To(DefaultEdgeTimeoutSeconds)
	}
}

// SetDefaults_EdgeContainer pulls a floating image (latest or untagged)
// every time and a pinned one only when missing, as Kubernetes does.
func SetDefaults_EdgeContainer(c *EdgeContainer) {
	if c.ImagePullPolicy == "" {
		if FloatingImage(c.Image) {
			c.ImagePullPolicy = corev1.PullAlways
		} else {
			c.ImagePullPolicy = corev1.PullIfNotPresent
		}
	}
}

// SetDefaults_EdgeResources requests a quarter CPU and 512Mi, with limits
// equal to the requests unless given.
func SetDefaults_EdgeResources(r *EdgeResources) {
	if r.CPU == nil {
		r.CPU = ptr.To(resource.MustParse(DefaultEdgeCPU))
	}
	if r.CPULimit == nil {
		r.CPULimit = ptr.To(r.CPU.DeepCopy())
	}
	if r.Memory == nil {
		r.Memory = ptr.To(resource.MustParse(DefaultEdgeMemory))
	}
	if r.MemoryLimit == nil {
		r.MemoryLimit = ptr.To(r.Memory.DeepCopy())
	}
	if r.NPU != nil && r.NPU.Count == nil {
		r.NPU.Count = ptr.To(DefaultEdgeNPUCount)
	}
}

// SetDefaults_EdgeEmptyDir keeps an emptyDir on disk.
func SetDefaults_EdgeEmptyDir(e *EdgeEmptyDir) {
	if e.Medium == "" {
		e.Medium = EdgeStorageDisk
	}
}

// SetDefaults_EdgeProbe uses Kubernetes' probe defaults.
func SetDefaults_EdgeProbe(p *EdgeProbe) {
	if p.TimeoutSeconds == nil {
		p.TimeoutSeconds = ptr.To(DefaultEdgeProbeTimeoutSeconds)
	}
	if p.PeriodSeconds == nil {
		p.PeriodSeconds = ptr.To(DefaultEdgeProbePeriodSeconds)
	}
	if p.FailureThreshold == nil {
		p.FailureThreshold = ptr.To(DefaultEdgeProbeFailureThreshold)
	}
}

// SetDefaults_EdgeHTTPGet checks "/" over HTTP.
func SetDefaults_EdgeHTTPGet(h *EdgeHTTPGet) {
	if h.Path == "" {
		h.Path = DefaultEdgeProbePath
	}
	if h.Scheme == "" {
		h.Scheme = corev1.URISchemeHTTP
	}
}

// SetDefaults_EdgePortMapping maps TCP.
func SetDefaults_EdgePortMapping(p *EdgePortMapping) {
	if p.Protocol == "" {
		p.Protocol = corev1.ProtocolTCP
	}
}

// FloatingImage is true for an image reference whose content can change
// under the same name: tagged "latest", or with neither tag nor digest
// (which means latest). "registry:5000/app" has no tag: a tag is only
// looked for in the last path element.
func FloatingImage(image string) bool {
	_, tag, digest := SplitImage(image)
	return digest == "" && (tag == "" || tag == LatestTag)
}

// SplitImage splits an image reference into its name, tag and digest
// (each without its separator), any of which may be empty.
func SplitImage(image string) (name, tag, digest string) {
	name, digest, _ = strings.Cut(image, "@")
	slash := strings.LastIndex(name, "/")
	if colon := strings.LastIndex(name, ":"); colon > slash {
		name, tag = name[:colon], name[colon+1:]
	}
	return name, tag, digest
}

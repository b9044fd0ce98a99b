package edgedeployment

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
)

// Labels and annotations of the pods of an EdgeDeployment.
const (
	// LabelJob names the EdgeDeployment a pod belongs to.
	LabelJob = "infer.mindie.io/edge-deployment"
	// LabelNode names the target node the pod is pinned to.
	LabelNode = "infer.mindie.io/edge-node"
	// LabelInstance is the pod's instance number on its node.
	LabelInstance = "infer.mindie.io/edge-instance"
	// AnnotationRetryGeneration is the spec.retryGeneration the pod was
	// made for.
	AnnotationRetryGeneration = "infer.mindie.io/retry-generation"
)

// EdgeTaintKey is the taint that keeps ordinary pods off edge nodes
// (node-role.kubernetes.io/edge:NoSchedule, as KubeEdge and IEF clusters
// set it); the job's pods tolerate it.
const EdgeTaintKey = "node-role.kubernetes.io/edge"

// containerName is the name of the application's container.
const containerName = "app"

// npuResources are the extended resources of the NPU types.
func npuResource(t v1alpha1.EdgeNPUType) corev1.ResourceName {
	return corev1.ResourceName("huawei.com/" + string(t))
}

// podName is the pod of instance i on node: <prefix>-<node>-<i>, with a
// hash of the node name instead of the name when it would be too long.
func podName(e *v1alpha1.EdgeDeployment, node string, i int) string {
	prefix := e.Spec.NamePrefix
	if prefix == "" {
		prefix = e.Name
	}
	name := fmt.Sprintf("%s-%s-%d", prefix, node, i)
	if len(name) <= 253 {
		return name
	}
	sum := sha256.Sum256([]byte(node))
	return fmt.Sprintf("%s-%s-%d", prefix, hex.EncodeToString(sum[:])[:16], i)
}

// Pod is instance i of the application on node: the pod the controller
// creates (test/bench/edgebench creates the same pods directly as its
// baseline).
func Pod(e *v1alpha1.EdgeDeployment, node string, i int) *corev1.Pod {
	c := e.Spec.Container
	res := corev1.ResourceRequirements{Requests: corev1.ResourceList{}, Limits: corev1.ResourceList{}}
	set := func(list corev1.ResourceList, name corev1.ResourceName, q *resource.Quantity) {
		if q != nil {
			list[name] = *q
		}
	}
	set(res.Requests, corev1.ResourceCPU, c.Resources.CPU)
	set(res.Requests, corev1.ResourceMemory, c.Resources.Memory)
	set(res.Limits, corev1.ResourceCPU, c.Resources.CPULimit)
	set(res.Limits, corev1.ResourceMemory, c.Resources.MemoryLimit)
	if n := c.Resources.NPU; n != nil {
		q := *resource.NewQuantity(int64(ptr.Deref(n.Count, 1)), resource.DecimalSI)
		res.Requests[npuResource(n.Type)], res.Limits[npuResource(n.Type)] = q, q
	}
	container := corev1.Container{
		Name:            containerName,
		Image:           c.Image,
		ImagePullPolicy: c.ImagePullPolicy,
		Command:         c.Command,
		Args:            c.Args,
		Env:             c.Env,
		Resources:       res,
		LivenessProbe:   probe(c.LivenessProbe),
		ReadinessProbe:  probe(c.ReadinessProbe),
	}
	if c.Privileged {
		container.SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(true)}
	}
	for _, p := range e.Spec.Network.Ports {
		container.Ports = append(container.Ports, corev1.ContainerPort{ContainerPort: p.ContainerPort, HostPort: p.HostPort, Protocol: p.Protocol, HostIP: p.HostIP})
	}
	var volumes []corev1.Volume
	for _, v := range c.Volumes {
		vol := corev1.Volume{Name: v.Name}
		switch {
		case v.HostPath != nil:
			vol.HostPath = v.HostPath
		case v.EmptyDir != nil:
			vol.EmptyDir = &corev1.EmptyDirVolumeSource{SizeLimit: v.EmptyDir.SizeLimit}
			if v.EmptyDir.Medium == v1alpha1.EdgeStorageMemory {
				vol.EmptyDir.Medium = corev1.StorageMediumMemory
			}
		case v.ConfigMap != nil:
			vol.ConfigMap = v.ConfigMap
		case v.Secret != nil:
			vol.Secret = v.Secret
		}
		volumes = append(volumes, vol)
		container.VolumeMounts = append(container.VolumeMounts, corev1.VolumeMount{Name: v.Name, MountPath: v.MountPath, ReadOnly: v.ReadOnly})
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:      podName(e, node, i),
			Namespace: e.Namespace,
			Labels:    map[string]string{LabelJob: e.Name, LabelNode: node, LabelInstance: strconv.Itoa(i)},
			Annotations: map[string]string{
				AnnotationRetryGeneration: strconv.FormatInt(e.Spec.RetryGeneration, 10),
			},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: v1alpha1.SchemeGroupVersion.String(), Kind: "EdgeDeployment",
				Name: e.Name, UID: e.UID, Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}},
		},
		Spec: corev1.PodSpec{
			// Pinned to its node through the scheduler, which checks the
			// node's resources (its NPUs) and says why a pod cannot run.
			NodeSelector:     map[string]string{corev1.LabelHostname: node},
			Tolerations:      []corev1.Toleration{{Key: EdgeTaintKey, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
			RestartPolicy:    e.Spec.RestartPolicy,
			HostPID:          e.Spec.HostPID,
			HostNetwork:      e.Spec.Network.HostNetwork,
			ImagePullSecrets: e.Spec.ImagePullSecrets,
			Containers:       []corev1.Container{container},
			Volumes:          volumes,
		},
	}
}

// probe is the container probe of an application check.
func probe(p *v1alpha1.EdgeProbe) *corev1.Probe {
	if p == nil {
		return nil
	}
	out := &corev1.Probe{
		InitialDelaySeconds: p.InitialDelaySeconds,
		TimeoutSeconds:      ptr.Deref(p.TimeoutSeconds, 0),
		PeriodSeconds:       ptr.Deref(p.PeriodSeconds, 0),
		FailureThreshold:    ptr.Deref(p.FailureThreshold, 0),
	}
	switch {
	case p.HTTPGet != nil:
		out.HTTPGet = &corev1.HTTPGetAction{Path: p.HTTPGet.Path, Port: intstr.FromInt32(p.HTTPGet.Port), Scheme: p.HTTPGet.Scheme}
	case p.Exec != nil:
		out.Exec = &corev1.ExecAction{Command: p.Exec.Command}
	}
	return out
}

// Package podstatus reads what the controllers, the router and the
// benchmarks ask of a pod's status.
package podstatus

import corev1 "k8s.io/api/core/v1"

// Ready reports whether the pod's Ready condition is True.
func Ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Serving reports whether the pod is Ready and not being deleted: a pod
// on its way out no longer counts for the controllers, whatever its
// condition still says.
func Serving(p *corev1.Pod) bool {
	return p.DeletionTimestamp == nil && Ready(p)
}

// Container is the status of the pod's container name, nil when it has
// none yet.
func Container(p *corev1.Pod, name string) *corev1.ContainerStatus {
	for i := range p.Status.ContainerStatuses {
		if p.Status.ContainerStatuses[i].Name == name {
			return &p.Status.ContainerStatuses[i]
		}
	}
	return nil
}

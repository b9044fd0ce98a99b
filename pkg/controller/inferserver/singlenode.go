package inferserver

import (
	"context"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mindie.io/deployer/apis/infer/v1alpha1"
)

// syncDeployment runs a single-node InferServer as a Deployment and reads
// its instances (one pod each) back.
func (c *Controller) syncDeployment(ctx context.Context, st *syncState) error {
	s := st.server
	desired := deployment(s, st.target)
	live, wrote, err := applyChild(ctx, c, s, c.deploymentChild(s.Namespace), s.Name, desired)
	if err != nil {
		return err
	}
	switch {
	case wrote && live == nil:
		c.recorder.Eventf(s, corev1.EventTypeNormal, ReasonInstanceCreated, "Created deployment %s for %d instances (revision %s)", s.Name, replicas(s), st.target)
	case wrote && live.Spec.Replicas != nil && *live.Spec.Replicas != replicas(s):
		c.recorder.Eventf(s, corev1.EventTypeNormal, ReasonScaled, "Scaled from %d to %d instances", *live.Spec.Replicas, replicas(s))
	}

	pods := podsOfDeployment(s, labelled[*corev1.Pod](c.children.pods, s))
	sort.Slice(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
	st.pods = pods
	if err := c.handleFaults(ctx, st, pods); err != nil {
		return err
	}
	for _, p := range pods {
		if p.DeletionTimestamp != nil || isTerminal(p) {
			continue
		}
		ps := c.podStatus(s, p)
		inst := v1alpha1.InstanceStatus{
			Name:     p.Name,
			Revision: p.Labels[v1alpha1.LabelRevision],
			Ready:    ps.Ready,
			Master:   p.Name,
			Pods:     []v1alpha1.InstancePodStatus{ps},
		}
		st.instances = append(st.instances, inst)
		st.total++
		if inst.Revision == st.update.Name {
			st.updated++
		}
		if inst.Ready {
			st.ready++
		}
		c.notePodProblem(s, st, p)
	}
	return nil
}

// podsOfDeployment keeps the labelled pods that belong to the server's
// Deployment: those controlled by one of its ReplicaSets (named after it).
func podsOfDeployment(s *v1alpha1.InferServer, pods []*corev1.Pod) []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range pods {
		ref := metav1.GetControllerOfNoCopy(p)
		if ref != nil && ref.Kind == "ReplicaSet" && strings.HasPrefix(ref.Name, s.Name+"-") {
			out = append(out, p)
		}
	}
	return out
}

func isTerminal(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded
}

package inferserver

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/ascend"
)

// annotationRanktablePods records, on a completed ranktable, the UIDs of
// the pods it was written for; a ranktable of other pods is stale.
const annotationRanktablePods = "infer.mindie.io/ranktable-pods"

// initialRanktable is the ConfigMap a new instance starts with.
func initialRanktable(s *v1alpha1.InferServer, instance string) *corev1.ConfigMap {
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: childMeta(s, ascend.RanktableConfigMapName(instance)),
		Data:       map[string]string{ascend.RanktableFile: ascend.FormatRanktable(ascend.Ranktable{Status: ascend.RanktableInitializing})},
	}
	cm.Labels[v1alpha1.LabelInstance] = instance
	cm.Labels[ascend.LabelRingController] = ringController(s)
	return cm
}

// parseRanktable reads a ranktable ConfigMap.
func parseRanktable(cm *corev1.ConfigMap) (ascend.Ranktable, error) {
	rt, err := ascend.ParseRanktable(cm.Data[ascend.RanktableFile])
	if err != nil {
		return rt, fmt.Errorf("configmap %s: %w", cm.Name, err)
	}
	return rt, nil
}

// podUIDs lists the pods' UIDs in rank order, comma-separated.
func podUIDs(pods []*corev1.Pod) string {
	ids := make([]string, len(pods))
	for i, p := range pods {
		ids[i] = string(p.UID)
	}
	return strings.Join(ids, ",")
}

// buildRanktable fills the ranktable of an instance from its pods, which
// must be given in rank order, as the Ascend Operator would.
func buildRanktable(s *v1alpha1.InferServer, pods []*corev1.Pod) (ascend.Ranktable, error) {
	return ascend.BuildRanktable(string(npuType(s)), pods)
}

// chipsOf is the device plugin's chip list of a pod ("Ascend910-0", ...),
// sorted by chip number.
func chipsOf(s *v1alpha1.InferServer, p *corev1.Pod) []string {
	return ascend.PodChips(p, string(npuType(s)))
}

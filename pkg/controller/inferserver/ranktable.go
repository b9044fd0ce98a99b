package inferserver

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/ascend"
)

// annotationRanktablePods records, on a completed ranktable, the UIDs of
// the pods it was written for; a ranktable of other pods is stale.
const annotationRanktablePods = "infer.mindie.io/ranktable-pods"

// initialRanktable is the ConfigMap a new instance starts with: a
// cross-node instance, or a Prefill/Decode member of several nodes (named
// memberInstance), labelled with its group and member.
func initialRanktable(s *v1alpha1.InferServer, instance string) *corev1.ConfigMap {
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: childMeta(s, ascend.RanktableConfigMapName(instance)),
		Data:       map[string]string{ascend.RanktableFile: ascend.FormatRanktable(ascend.Ranktable{Status: ascend.RanktableInitializing})},
	}
	cm.Labels[v1alpha1.LabelInstance] = instance
	if group, member, ok := splitMemberInstance(s, instance); ok {
		cm.Labels[v1alpha1.LabelInstance], cm.Labels[v1alpha1.LabelMember] = group, member
	}
	cm.Labels[ascend.LabelRingController] = ringController(s, true)
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

// Ranktables of Prefill/Decode members. A member of several nodes is one
// MindIE instance across them, as a cross-node instance is: its pods share
// the HCCL ranktable rings-config-<group>-<member>, made fresh with its
// group (createInstance), filled by syncRanktable as a cross-node
// instance's is, reset while its pods are replaced (a failed member is
// recreated whole), and deleted with its group (deleteInstance). A
// single-node member has none.

// memberView is a member of several nodes of a group seen as a cross-node
// instance of its own, for syncRanktable: named memberInstance, its pods
// by rank in the member (sharing the group's slice, so pods the sync
// creates show in both).
func memberView(in *instance, m member) *instance {
	v := &instance{instanceView: instanceView{name: memberInstance(in.name, m.name()), index: in.index, revision: in.revision}, shape: in.shape}
	if end := m.firstRank + m.nodes; end <= len(in.pods) {
		v.pods = in.pods[m.firstRank:end]
	} else {
		v.pods = make([]*corev1.Pod, m.nodes)
	}
	return v
}

// groupShapeOf is the server a group was made from (its revision's).
func groupShapeOf(s *v1alpha1.InferServer, in *instance) *v1alpha1.InferServer {
	if in.shape != nil {
		return in.shape
	}
	return s
}

// resetMemberRanktables makes the fresh ranktables of a new group's
// members of several nodes, and says their state ("" when it has none).
func (c *Controller) resetMemberRanktables(ctx context.Context, s *v1alpha1.InferServer, group string) (string, error) {
	state := ""
	for _, m := range groupMembers(s) {
		if !m.multiNode() {
			continue
		}
		if err := c.resetRanktable(ctx, roleServer(s, m.role), memberInstance(group, m.name())); err != nil {
			return "", err
		}
		state = ascend.RanktableInitializing
	}
	return state, nil
}

// deleteMemberRanktables deletes the ranktables of a group's members.
func (c *Controller) deleteMemberRanktables(ctx context.Context, s *v1alpha1.InferServer, in *instance) error {
	for _, m := range groupMembers(groupShapeOf(s, in)) {
		if !m.multiNode() {
			continue
		}
		name := ranktableName(memberInstance(in.name, m.name()))
		if err := c.kube.CoreV1().ConfigMaps(s.Namespace).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete ranktable %s: %w", name, err)
		}
	}
	return nil
}

// syncMemberRanktables brings the ranktables of a group's members of
// several nodes up to date, and records their state on the group:
// completed once every one is, initializing before ("" without such
// members).
func (c *Controller) syncMemberRanktables(ctx context.Context, s *v1alpha1.InferServer, in *instance) error {
	shape := groupShapeOf(s, in)
	state := ""
	for _, m := range groupMembers(shape) {
		if !m.multiNode() {
			continue
		}
		v := memberView(in, m)
		at := roleServer(shape, m.role)
		if err := c.resetStaleRanktable(ctx, at, v); err != nil {
			return err
		}
		if v.ranktable == "" {
			if err := c.syncRanktable(ctx, at, v); err != nil {
				return err
			}
		}
		if v.ranktable == "" {
			v.ranktable = ascend.RanktableInitializing
			if cm, err := c.configMaps.ConfigMaps(s.Namespace).Get(ranktableName(v.name)); err == nil {
				if rt, err := parseRanktable(cm); err == nil {
					v.ranktable = rt.Status
				}
			}
		}
		if state == "" || v.ranktable != ascend.RanktableCompleted {
			state = v.ranktable
		}
	}
	in.ranktable = state
	return nil
}

// resetStaleRanktable puts a member's ranktable that this controller
// completed back to initializing while the member's pods are replaced
// (one is missing, being deleted or failed, or it was written for other
// pods that cannot fill it yet), so that pods made again wait for a
// ranktable of their own rather than start with their predecessors'
// addresses. A ranktable completed by someone else (an Ascend Operator) is
// left alone, as with --fill-ranktables=false.
func (c *Controller) resetStaleRanktable(ctx context.Context, s *v1alpha1.InferServer, v *instance) error {
	if !c.fill {
		return nil
	}
	cm, err := c.configMaps.ConfigMaps(s.Namespace).Get(ranktableName(v.name))
	if err != nil {
		return nil // none yet: syncRanktable makes it
	}
	filledFor, ours := cm.Annotations[annotationRanktablePods]
	if rt, err := parseRanktable(cm); err != nil || rt.Status != ascend.RanktableCompleted || !ours {
		return nil
	}
	whole := true
	for _, p := range v.pods {
		if p == nil || p.DeletionTimestamp != nil || isTerminal(p) {
			whole = false
		}
	}
	if whole {
		if filledFor == podUIDs(v.pods) {
			return nil
		}
		if _, err := buildRanktable(s, v.pods); err == nil {
			return nil // syncRanktable writes the new pods' ranktable
		}
	}
	cp := cm.DeepCopy()
	cp.Data = initialRanktable(s, v.name).Data
	delete(cp.Annotations, annotationRanktablePods)
	if _, err := c.kube.CoreV1().ConfigMaps(s.Namespace).Update(ctx, cp, metav1.UpdateOptions{FieldManager: FieldManager}); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("reset ranktable %s: %w", cm.Name, err)
	}
	v.ranktable = ascend.RanktableInitializing
	return nil
}

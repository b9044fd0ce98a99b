package inferserver

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"mindie.io/deployer/apis/infer/v1alpha1"
)

// A failed member of a Prefill/Decode group (its pod failed, was deleted
// or is gone) is recreated alone: its pods are deleted, and made again
// once every one of them is gone, so a member of several nodes comes back
// whole. The rest of the group keeps its pods and its roles; the role
// assigner tells the member's peers about the new pods (their addresses
// and NPUs change), and the router sends the group's traffic to the pairs
// still linked meanwhile.

// memberKey names a member in the tracker's record of what is being
// recreated: <group>/<member>, never an instance name.
func memberKey(group string, m member) string { return group + "/" + m.name() }

// recreateMembers deletes the pods of the group's failed members, saying
// why once per failure.
func (c *Controller) recreateMembers(ctx context.Context, st *syncState, in *instance) error {
	s := st.server
	key := serverKey(s)
	for _, f := range in.failed {
		mk := memberKey(in.name, f.member)
		if _, ok := c.track.recreatingWhy(key, mk); !ok {
			c.recorder.Eventf(s, corev1.EventTypeWarning, ReasonInstanceFailed, "Recreating member %s (%s) of group %s: %s",
				f.member.name(), f.member.role, in.name, f.why)
			c.track.setRecreating(key, mk, f.why)
			st.membersRecreated = append(st.membersRecreated, in.name)
		}
		if err := c.deletePods(ctx, s, in.memberPods(f.member)); err != nil {
			return err
		}
	}
	return nil
}

// membersRecreating is what the status says of a group's members being
// recreated ("" when none is), and forgets them once the group is ready.
func (c *Controller) membersRecreating(key string, in *instance, ready bool) string {
	if !isPD(in.shape) {
		return ""
	}
	var msg string
	for _, m := range groupMembers(in.shape) {
		mk := memberKey(in.name, m)
		why, ok := c.track.recreatingWhy(key, mk)
		switch {
		case !ok:
		case ready:
			c.track.doneRecreating(key, mk)
		case msg == "":
			msg = fmt.Sprintf("recreating: member %s: %s", m.name(), why)
		}
	}
	return msg
}

// roleStatuses counts each role's instances over the groups of the update
// revision (nil for a server without roles).
func roleStatuses(s *v1alpha1.InferServer, groups []v1alpha1.InstanceStatus, update string) []v1alpha1.InferRoleStatus {
	if !isPD(s) {
		return nil
	}
	var out []v1alpha1.InferRoleStatus
	for _, name := range roleOrder {
		r := roleSpec(s, name)
		if r == nil {
			continue
		}
		rs := v1alpha1.InferRoleStatus{Name: name, Instances: *r.Instances * replicas(s)}
		for _, g := range groups {
			if g.Revision != update {
				continue
			}
			ready := map[string]bool{}
			for _, p := range g.Pods {
				ready[p.Name] = p.Ready
			}
			for _, m := range g.Members {
				if m.Role != name {
					continue
				}
				rs.Updated++
				if ready[m.Pod] && m.RoleStatus == roleStatusReady {
					rs.Ready++
				}
				if m.Peers > 0 && m.LinkedPeers == m.Peers {
					rs.Linked++
				}
			}
		}
		out = append(out, rs)
	}
	return out
}

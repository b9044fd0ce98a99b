package inferserver

import (
	"strconv"
	"strings"

	"mindie.io/deployer/apis/infer/v1alpha1"
)

// Prefill/Decode servers (spec.roles). Each group is one planner instance
// (plan.go): created, rolled out and deleted whole, one revision for all
// its members. A group's pods are ranks 0..podsPerInstance-1 for the
// cross-node machinery (crossnode.go): the prefill members' pods first,
// then the decode members', each member its role's nodesPerInstance pods
// (1, 2 or 4). A member of several nodes is one MindIE instance across
// them, as a cross-node instance is: its pods are <group>-<member>-<rank
// in member>, share the HCCL ranktable rings-config-<group>-<member>
// (memberRanktables in ranktable.go) and are told their role through
// MindIE's role API v2 on the member's first pod (roles.go).

// groupSlots is how many MindIE instance ids a group reserves: the most
// members MindIE links in one group. Member i of group g is id g*16+i.
const groupSlots = 16

// roleOrder is the order of the roles' members in a group.
var roleOrder = []v1alpha1.RoleName{v1alpha1.RolePrefill, v1alpha1.RoleDecode}

// isPD says whether s is a Prefill/Decode server.
func isPD(s *v1alpha1.InferServer) bool { return len(s.Spec.Roles) > 0 }

// roleSpec is the role of that name, or nil.
func roleSpec(s *v1alpha1.InferServer, name v1alpha1.RoleName) *v1alpha1.InferRole {
	for i := range s.Spec.Roles {
		if s.Spec.Roles[i].Name == name {
			return &s.Spec.Roles[i]
		}
	}
	return nil
}

// member is one prefill or decode instance of a group.
type member struct {
	role v1alpha1.RoleName
	// index among the members of its role; ordinal among all the group's
	// members (prefill first).
	index, ordinal int
	// nodes is how many pods the member has; firstRank the rank of its
	// serving pod in the group.
	nodes, firstRank int
}

// name is the member's name in its group: p<i> or d<i>.
func (m member) name() string { return string(m.role[0]) + strconv.Itoa(m.index) }

// multiNode says whether the member spans nodes: one MindIE instance on
// several pods, with a ranktable of its own.
func (m member) multiNode() bool { return m.nodes > 1 }

// memberInstance is the name of a member (p<i>, d<i>) of a group as a
// MindIE instance of its own: <group>-<member>. A member of several nodes
// has its pods (<group>-<member>-<rank in member>) and its ranktable named
// after it.
func memberInstance(group, member string) string { return group + "-" + member }

// splitMemberInstance reads a memberInstance name of a group of s back
// into the group and the member's name.
func splitMemberInstance(s *v1alpha1.InferServer, name string) (group, member string, ok bool) {
	if !isPD(s) {
		return "", "", false
	}
	rest, ok := strings.CutPrefix(name, s.Name+"-")
	if !ok {
		return "", "", false
	}
	idx, member, ok := strings.Cut(rest, "-")
	if _, err := strconv.Atoi(idx); err != nil || !ok || member == "" {
		return "", "", false
	}
	return s.Name + "-" + idx, member, true
}

// multiNodeMembers says whether any member of a group of s spans nodes.
// MindIE's Controller then runs in its multi-node mode for every instance
// (role API v2, /v2/status).
func multiNodeMembers(s *v1alpha1.InferServer) bool {
	for _, m := range groupMembers(s) {
		if m.multiNode() {
			return true
		}
	}
	return false
}

// groupMembers are the members of every group of s, in rank order.
func groupMembers(s *v1alpha1.InferServer) []member {
	var out []member
	rank := 0
	for _, name := range roleOrder {
		r := roleSpec(s, name)
		if r == nil {
			continue
		}
		nodes := 1
		if r.NodesPerInstance != nil {
			nodes = int(*r.NodesPerInstance)
		}
		for i := 0; i < int(*r.Instances); i++ {
			out = append(out, member{role: name, index: i, ordinal: len(out), nodes: nodes, firstRank: rank})
			rank += nodes
		}
	}
	return out
}

// memberOfRank is the member a rank of a group belongs to and the pod's
// rank within the member (0: its serving pod).
func memberOfRank(s *v1alpha1.InferServer, rank int) (member, int, bool) {
	for _, m := range groupMembers(s) {
		if rank >= m.firstRank && rank < m.firstRank+m.nodes {
			return m, rank - m.firstRank, true
		}
	}
	return member{}, 0, false
}

// podsPerInstance is how many pods one instance (a group, for a PD
// server) has.
func podsPerInstance(s *v1alpha1.InferServer) int {
	if !isPD(s) {
		return int(nodesPerInstance(s))
	}
	n := 0
	for _, m := range groupMembers(s) {
		n += m.nodes
	}
	return n
}

// pdID is the MindIE instance id of a group's member.
func pdID(group, ordinal int) int64 { return int64(group*groupSlots + ordinal) }

// podName is the pod of an instance's rank: <instance>-<rank>, or for a
// PD group <group>-<member> (<group>-<member>-<rank in member> for a
// member of several nodes).
func podName(s *v1alpha1.InferServer, instance string, rank int) string {
	if isPD(s) {
		if m, r, ok := memberOfRank(s, rank); ok {
			if m.multiNode() {
				return memberInstance(instance, m.name()) + "-" + strconv.Itoa(r)
			}
			return memberInstance(instance, m.name())
		}
	}
	return instance + "-" + strconv.Itoa(rank)
}

// roleServer is s as the pods of a role see it: the role's resources and
// server config where it sets them.
func roleServer(s *v1alpha1.InferServer, name v1alpha1.RoleName) *v1alpha1.InferServer {
	r := roleSpec(s, name)
	if r == nil || (r.Resources == nil && r.ServerConfig == nil) {
		return s
	}
	cp := s.DeepCopy()
	if r.Resources != nil {
		cp.Spec.Resources = *r.Resources.DeepCopy()
	}
	if r.ServerConfig != nil {
		cp.Spec.ServerConfig = *r.ServerConfig.DeepCopy()
	}
	return cp
}

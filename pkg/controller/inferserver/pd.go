package inferserver

import (
	"strconv"

	"mindie.io/deployer/apis/infer/v1alpha1"
)

// Prefill/Decode servers (spec.roles). Each group is one planner instance
// (plan.go): created, rolled out and deleted whole, one revision for all
// its members. A group's pods are ranks 0..podsPerInstance-1 for the
// cross-node machinery (crossnode.go): the prefill members' pods first,
// then the decode members', each member nodesPerInstance pods (1 for now:
// validation refuses cross-node members until they get ranktables).

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
			if m.nodes > 1 {
				return instance + "-" + m.name() + "-" + strconv.Itoa(r)
			}
			return instance + "-" + m.name()
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

package status

import (
	"fmt"
	"io"
	"strings"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/plugin/internal/printing"
)

// Prefill/Decode servers (spec.roles): replicas count groups, each of
// roles[].instances prefill and decode members; status.instances has one
// entry per group, with its members.

// roleOrder is the order roles are printed in, as the controller numbers
// a group's members: prefill first.
var roleOrder = []v1alpha1.RoleName{v1alpha1.RolePrefill, v1alpha1.RoleDecode}

// orderedRoles are the roles of s, prefill first, then any other.
func orderedRoles(s *v1alpha1.InferServer) []v1alpha1.InferRole {
	var out []v1alpha1.InferRole
	for _, name := range roleOrder {
		for _, r := range s.Spec.Roles {
			if r.Name == name {
				out = append(out, r)
			}
		}
	}
	for _, r := range s.Spec.Roles {
		if r.Name != v1alpha1.RolePrefill && r.Name != v1alpha1.RoleDecode {
			out = append(out, r)
		}
	}
	return out
}

// roleResources are what the pods of a role request: the role's own
// resources, else spec.resources.
func roleResources(s *v1alpha1.InferServer, r v1alpha1.InferRole) v1alpha1.InferResources {
	if r.Resources != nil {
		return *r.Resources
	}
	return s.Spec.Resources
}

// roleNodes is how many nodes (pods) one instance of a role spans.
func roleNodes(s *v1alpha1.InferServer, r v1alpha1.InferRole) int32 {
	if r.NodesPerInstance != nil {
		return *r.NodesPerInstance
	}
	return int32Value(s.Spec.NodesPerInstance)
}

// groupShape describes a group: "2 prefill instances and 1 decode instance".
func groupShape(s *v1alpha1.InferServer) string {
	var parts []string
	for _, r := range orderedRoles(s) {
		n := int32Value(r.Instances)
		parts = append(parts, fmt.Sprintf("%d %s %s", n, r.Name, plural(int(n), "instance", "instances")))
	}
	return strings.Join(parts, " and ")
}

// groupNPUs are the NPUs of one group, by type: "8 x Ascend910".
func groupNPUs(s *v1alpha1.InferServer) string {
	var types []v1alpha1.NPUType
	count := map[v1alpha1.NPUType]int32{}
	for _, r := range orderedRoles(s) {
		res := roleResources(s, r)
		if _, ok := count[res.NPU.Type]; !ok {
			types = append(types, res.NPU.Type)
		}
		count[res.NPU.Type] += int32Value(r.Instances) * roleNodes(s, r) * int32Value(res.NPU.Count)
	}
	parts := make([]string, 0, len(types))
	for _, t := range types {
		parts = append(parts, fmt.Sprintf("%d x %s", count[t], t))
	}
	return strings.Join(parts, " + ")
}

// describeRoles renders the Roles section: each role's shape and, from
// status.roles, how many of its instances in groups of the revision being
// rolled out are updated, serve their role and are linked.
func describeRoles(out io.Writer, s *v1alpha1.InferServer) {
	fmt.Fprintln(out, "Roles:")
	w := printing.NewTabWriter(out)
	w.Row("  ROLE", "INSTANCES/GROUP", "NODES/INSTANCE", "NPUS/POD", "UPDATED", "ROLE READY", "LINKED")
	for _, r := range orderedRoles(s) {
		var st v1alpha1.InferRoleStatus
		for _, rs := range s.Status.Roles {
			if rs.Name == r.Name {
				st = rs
			}
		}
		want := int32Value(r.Instances) * int32Value(s.Spec.Replicas)
		res := roleResources(s, r)
		w.Row("  "+string(r.Name), int32Value(r.Instances), roleNodes(s, r), fmt.Sprintf("%d x %s", int32Value(res.NPU.Count), res.NPU.Type),
			fmt.Sprintf("%d/%d", st.Updated, want), fmt.Sprintf("%d/%d", st.Ready, want), fmt.Sprintf("%d/%d", st.Linked, want))
	}
	w.Flush()
}

// describeGroups renders the groups of a Prefill/Decode server and their
// members: role, MindIE instance id, serving pod, what the member says of
// its role and links, and what it waits for.
func describeGroups(out io.Writer, info statusInfo) {
	s := info.server
	w := printing.NewTabWriter(out)
	w.Row("  GROUP", "READY", "REVISION", "MESSAGE")
	for _, g := range s.Status.Instances {
		w.Row("  "+g.Name, g.Ready, revisionName(info, g.Revision), g.Message)
	}
	w.Flush()
	fmt.Fprintln(out)
	fmt.Fprintln(out, "Members:")
	w = printing.NewTabWriter(out)
	w.Row("  GROUP", "MEMBER", "ROLE", "PD ID", "POD", "ROLE STATUS", "LINKS", "MESSAGE")
	for _, g := range s.Status.Instances {
		if len(g.Members) == 0 {
			w.Row("  "+g.Name, "<none>", "", "", "", "", "", "")
		}
		for _, m := range g.Members {
			links := "-"
			if m.Peers > 0 {
				links = fmt.Sprintf("%d/%d", m.LinkedPeers, m.Peers)
			}
			w.Row("  "+g.Name, m.Name, dash(string(m.Role)), m.PDID, dash(m.Pod), dash(m.RoleStatus), links, m.Message)
		}
	}
	w.Flush()
}

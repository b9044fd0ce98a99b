package status

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/plugin/options/fake"
)

// pdStatus gives a Prefill/Decode server of two groups its status: the
// first group linked, the second still switching roles, both at
// revision llama-pd-abc.
func pdStatus(s *v1alpha1.InferServer) {
	fake.Available(s)
	s.Status.ReadyReplicas, s.Status.AvailableReplicas = 1, 1
	s.Status.CurrentRevision, s.Status.UpdateRevision = "llama-pd-abc", "llama-pd-abc"
	s.Status.Instances = []v1alpha1.InstanceStatus{fake.PDGroup(s, 0, "llama-pd-abc", true), fake.PDGroup(s, 1, "llama-pd-abc", false)}
	s.Status.Roles = []v1alpha1.InferRoleStatus{
		{Name: v1alpha1.RolePrefill, Instances: 2, Updated: 2, Ready: 1, Linked: 1},
		{Name: v1alpha1.RoleDecode, Instances: 2, Updated: 2, Ready: 1, Linked: 1},
	}
}

// TestStatusPrefillDecode checks the Roles, Groups and Members sections of
// a Prefill/Decode server, and that replicas are told as groups.
func TestStatusPrefillDecode(t *testing.T) {
	s := fake.InferServer("default", "llama-pd", fake.PD, pdStatus)
	f := fake.New(t, NewCmdStatus, s, fake.ControllerRevision(s, "llama-pd-abc", 2, "", s.Spec))
	out := squash(f.MustRun(t, "", "status", "llama-pd"))
	for _, want := range []string{
		"Replicas: 2 groups desired, each with 1 prefill instance and 1 decode instance\n",
		"NPUs: 16 x Ascend910 per group\n",
		"Rollout: 2/2 updated, 1/2 ready, 1/2 available\n",
		squash(`Roles:
  ROLE     INSTANCES/GROUP  NODES/INSTANCE  NPUS/POD       UPDATED  ROLE READY  LINKED
  prefill  1                1               8 x Ascend910  2/2      1/2         1/2
  decode   1                1               8 x Ascend910  2/2      1/2         1/2
`),
		squash(`Groups:
  GROUP       READY  REVISION           MESSAGE
  llama-pd-0  true   llama-pd-abc (#2)
  llama-pd-1  false  llama-pd-abc (#2)  member p0 (prefill, id 16): role prefill is RoleSwitching

Members:
  GROUP       MEMBER  ROLE     PD ID  POD            ROLE STATUS    LINKS  MESSAGE
  llama-pd-0  p0      prefill  0      llama-pd-0-p0  RoleReady      1/1
  llama-pd-0  d0      decode   1      llama-pd-0-d0  RoleReady      1/1
  llama-pd-1  p0      prefill  16     llama-pd-1-p0  RoleSwitching  0/1    role prefill is RoleSwitching
  llama-pd-1  d0      decode   17     llama-pd-1-d0  RoleSwitching  0/1    role decode is RoleSwitching

Pods:
  GROUP       POD            NODE        POD IP     NPUS  PHASE    LIVE  READY  RESTARTS  MESSAGE
  llama-pd-0  llama-pd-0-p0  sim-node-0  127.2.0.1  -     Running  true  true   0
`),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status of a PD server lacks\n%s\n:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Instances:") || strings.Contains(out, "MASTER") {
		t.Errorf("status of a PD server shows the plain instances table:\n%s", out)
	}
	if i, j, k, l := strings.Index(out, "Roles:"), strings.Index(out, "Conditions:"), strings.Index(out, "Groups:"), strings.Index(out, "Router:"); i > j || j > k || k > l {
		t.Errorf("status of a PD server: sections out of order (Roles, Conditions, Groups, Router):\n%s", out)
	}
}

// TestStatusPrefillDecodeShapes checks roles that override the shape of
// their instances, groups before their members are reported, and groups
// counted while a rollout surges.
func TestStatusPrefillDecodeShapes(t *testing.T) {
	s := fake.InferServer("default", "mixed", fake.PD, func(s *v1alpha1.InferServer) {
		s.Spec.Replicas = ptr.To(int32(1))
		s.Spec.Roles[0].Instances = ptr.To(int32(2))
		s.Spec.Roles[1].Resources = &v1alpha1.InferResources{Memory: ptr.To(resource.MustParse("64Gi")),
			NPU: v1alpha1.NPURequest{Type: v1alpha1.NPUTypeAscend310P, Count: ptr.To(int32(2))}}
		// Listed decode first: printed prefill first all the same.
		s.Spec.Roles[0], s.Spec.Roles[1] = s.Spec.Roles[1], s.Spec.Roles[0]
		s.Status.Replicas = 2
		s.Status.Instances = []v1alpha1.InstanceStatus{
			{Name: "mixed-3", Revision: "mixed-new", Message: "3 of 3 pods ready"},
			// A member not yet told its peers is neither ready nor linked.
			{Name: "mixed-4", Revision: "mixed-new", Members: []v1alpha1.GroupMemberStatus{
				{Name: "p0", Role: v1alpha1.RolePrefill, PDID: 64, Message: "waiting for its pod to be ready"}}},
		}
	})
	f := fake.New(t, NewCmdStatus, s)
	out := squash(f.MustRun(t, "", "status", "mixed"))
	for _, want := range []string{
		"Replicas: 1 group desired, each with 2 prefill instances and 1 decode instance\n",
		"NPUs: 16 x Ascend910 + 2 x Ascend310P per group\n",
		"0/1 available, 2 groups exist;",
		squash(`  ROLE     INSTANCES/GROUP  NODES/INSTANCE  NPUS/POD        UPDATED  ROLE READY  LINKED
  prefill  2                1               8 x Ascend910   0/2      0/2         0/2
  decode   1                1               2 x Ascend310P  0/1      0/1         0/1
`),
		"  mixed-3 false mixed-new 3 of 3 pods ready\n",
		"  mixed-3 <none>\n",
		"  mixed-4 p0 prefill 64 - - - waiting for its pod to be ready\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status of a PD server with role shapes lacks %q:\n%s", want, out)
		}
	}

	// No group yet.
	f = fake.New(t, NewCmdStatus, fake.InferServer("default", "new-pd", fake.PD))
	out = squash(f.MustRun(t, "", "status", "new-pd"))
	if !strings.Contains(out, "Groups:\n  <none>\n") || !strings.Contains(out, "prefill 1 1 8 x Ascend910 0/2 0/2 0/2\n") {
		t.Errorf("status of a PD server without groups:\n%s", out)
	}
}

// TestStatusWithoutRolesHasNoPDSections checks that a server without
// roles prints neither roles nor groups.
func TestStatusWithoutRolesHasNoPDSections(t *testing.T) {
	f := fake.New(t, NewCmdStatus, fake.InferServer("default", "llama", fullStatus))
	out := f.MustRun(t, "", "status", "llama")
	for _, absent := range []string{"Roles:", "Groups:", "Members:", "GROUP", "group"} {
		if strings.Contains(out, absent) {
			t.Errorf("status of a server without roles shows %q:\n%s", absent, out)
		}
	}
	if !strings.Contains(out, "Instances:") {
		t.Errorf("status of a server without roles lacks its instances:\n%s", out)
	}
}

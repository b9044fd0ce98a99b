package logs

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	clienttesting "k8s.io/client-go/testing"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/plugin/options/fake"
)

// pdPod is the pod of member (p0, d0, ...) of a group of a Prefill/Decode
// server, labelled as the controller labels it.
func pdPod(server string, group, member string) *corev1.Pod {
	p := pod("default", server+"-"+group+"-"+member, server, server+"-"+group, corev1.PodRunning)
	role := v1alpha1.RolePrefill
	if member[0] == 'd' {
		role = v1alpha1.RoleDecode
	}
	p.Labels[v1alpha1.LabelRole] = string(role)
	p.Labels[v1alpha1.LabelGroup] = group
	p.Labels[v1alpha1.LabelMember] = member
	return p
}

// pdLogs is a fake of a Prefill/Decode server of groups 0 and 1 (and a
// plain server), answering every log request.
func pdLogs(t *testing.T) *fake.Options {
	f := fake.New(t, NewCmdLogs, fake.InferServer("default", "pd", fake.PD), fake.InferServer("default", "llama"),
		pdPod("pd", "0", "p0"), pdPod("pd", "0", "d0"), pdPod("pd", "1", "p0"), pdPod("pd", "1", "d0"), pdPod("pd", "1", "d1"),
		pod("default", "llama-0", "llama", "", corev1.PodRunning))
	f.SetHandler(logHandler)
	return f
}

// listed is the label selector of the last pod listing.
func listed(f *fake.Options) string {
	lists := fake.Actions(f.Kube, "list", "pods")
	return lists[len(lists)-1].(clienttesting.ListActionImpl).GetListRestrictions().Labels.String()
}

func TestLogsRole(t *testing.T) {
	f := pdLogs(t)
	out := f.MustRun(t, "", "logs", "pd", "--role=decode")
	want := `[pd-0/pd-0-d0] pd-0-d0 line 1
[pd-0/pd-0-d0] pd-0-d0 line 2
[pd-0/pd-0-d0] pd-0-d0 last line without newline
[pd-1/pd-1-d0] pd-1-d0 line 1
[pd-1/pd-1-d0] pd-1-d0 line 2
[pd-1/pd-1-d0] pd-1-d0 last line without newline
[pd-1/pd-1-d1] pd-1-d1 line 1
[pd-1/pd-1-d1] pd-1-d1 line 2
[pd-1/pd-1-d1] pd-1-d1 last line without newline
`
	if out != want {
		t.Errorf("logs --role=decode:\n%s\nwant:\n%s", out, want)
	}
	if sel := listed(f); sel != "infer.mindie.io/role=decode,infer.mindie.io/server=pd" {
		t.Errorf("pods listed with selector %q", sel)
	}

	out = f.MustRun(t, "", "logs", "pd", "--role", "prefill", "--group", "1", "--tail=5")
	if !strings.HasPrefix(out, "[pd-1/pd-1-p0] pd-1-p0 line 1\n") || strings.Count(out, "\n") != 3 {
		t.Errorf("logs --role prefill --group 1:\n%s", out)
	}
	if sel := listed(f); sel != "infer.mindie.io/group=1,infer.mindie.io/role=prefill,infer.mindie.io/server=pd" {
		t.Errorf("pods listed with selector %q", sel)
	}

	// A group alone: both roles, by pod name.
	out = f.MustRun(t, "", "logs", "pd", "--group=0", "--prefix=false")
	if out != "pd-0-d0 line 1\npd-0-d0 line 2\npd-0-d0 last line without newline\npd-0-p0 line 1\npd-0-p0 line 2\npd-0-p0 last line without newline\n" {
		t.Errorf("logs --group=0:\n%s", out)
	}

	// No such group: say which groups there are.
	r := f.Run(t, "", "logs", "pd", "--role=decode", "--group=7")
	if r.Code != 0 || r.Stdout != "" || r.Stderr != "InferServer \"pd\" has no pods of role decode in group 7 (its groups: 0, 1).\n" {
		t.Errorf("logs of a group without pods: %+v", r)
	}
}

func TestLogsRoleErrors(t *testing.T) {
	f := pdLogs(t)
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"logs", "pd", "--role=coordinator"}, []string{`invalid --role "coordinator": must be one of prefill, decode`}},
		{[]string{"logs", "pd", "--role=Decode"}, []string{`invalid --role "Decode"`}},
		{[]string{"logs", "pd", "--group=-1"}, []string{"invalid --group -1: must be a group number, 0 or more"}},
		{[]string{"logs", "pd", "--group=one"}, []string{`invalid argument "one" for "--group" flag`}},
		{[]string{"logs", "llama", "--role=prefill"}, []string{`--role=prefill: InferServer "llama" has no roles`, "spec.roles", "--instance"}},
		{[]string{"logs", "llama", "--role=decode", "--group=0"}, []string{`--role=decode --group=0: InferServer "llama" has no roles`}},
		{[]string{"logs", "llama", "--group=0"}, []string{`--group=0: InferServer "llama" has no roles`}},
		{[]string{"logs", "nope", "--role=decode"}, []string{`inferservers.infer.mindie.io "nope" not found`}},
	} {
		f.FailRun(t, "", tc.args, tc.want...)
	}
	// An invalid value is refused before anything is asked of the cluster.
	f = pdLogs(t)
	f.FailRun(t, "", []string{"logs", "pd", "--role=both"}, "invalid --role")
	if n := len(f.Infer.Actions()) + len(f.Kube.Actions()) + len(f.Recorded()); n != 0 {
		t.Errorf("logs --role=both made %d requests", n)
	}
}

func TestLogsRoleCompletion(t *testing.T) {
	f := pdLogs(t)
	out := f.MustRun(t, "", "__complete", "logs", "pd", "--role", "")
	if !strings.HasPrefix(out, "prefill\ndecode\n:4\n") {
		t.Errorf("completion of --role:\n%s", out)
	}
	out = f.MustRun(t, "", "__complete", "logs", "pd", "--group", "")
	if !strings.HasPrefix(out, "0\n1\n:4\n") {
		t.Errorf("completion of --group:\n%s", out)
	}
}

func TestGroupsOfInNumericOrder(t *testing.T) {
	pods := []corev1.Pod{*pdPod("pd", "10", "p0"), *pdPod("pd", "2", "d0"), *pdPod("pd", "2", "p0"), *pod("default", "plain", "pd", "", corev1.PodRunning)}
	if got := strings.Join(groupsOf(pods), ","); got != "2,10" {
		t.Errorf("groupsOf: %s, want 2,10", got)
	}
}

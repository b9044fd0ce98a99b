package inferserver

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/ascend"
	"mindie.io/deployer/pkg/simulator/mindie"
)

// multiNodePD is a PD server of `groups` groups of one prefill member on 2
// nodes and one single-node decode member.
func multiNodePD(groups int32, mutate func(*v1alpha1.InferServer)) *v1alpha1.InferServer {
	return pdServer("llama", groups, 1, 1, func(s *v1alpha1.InferServer) {
		roleSpec(s, v1alpha1.RolePrefill).NodesPerInstance = ptr.To[int32](2)
		if mutate != nil {
			mutate(s)
		}
	})
}

// globalRanktableOf reads the global ranktable of a server.
func (f *fixture) globalRanktableOf(name string) globalRanktable {
	f.t.Helper()
	cm := f.configMap(v1alpha1.GlobalRanktableName(name))
	var rt globalRanktable
	if err := json.Unmarshal([]byte(cm.Data[v1alpha1.GlobalRanktableKey]), &rt); err != nil {
		f.t.Fatalf("%s: %v", v1alpha1.GlobalRanktableKey, err)
	}
	if ref := metav1.GetControllerOf(cm); ref == nil || ref.Kind != "InferServer" || ref.Name != name || cm.Labels[v1alpha1.LabelServer] != name {
		f.t.Errorf("global ranktable not owned by its server: %+v", cm.ObjectMeta)
	}
	return rt
}

// runWithUID brings a pod up on its fake management address with a UID of
// its own, as the API server would give a new pod.
func (fm *fakeManagement) runWithUID(p *corev1.Pod) {
	fm.run(p)
	if p.UID == "" {
		p.UID = types.UID(fmt.Sprintf("uid-%s-%s", p.Name, p.Status.PodIP))
	}
}

// TestPDMultiNodeMember: a group of a prefill member on 2 nodes and a
// decode member on 1. The prefill member's pods share its ranktable, which
// is filled once they are up; its role goes by API v2 to its first pod
// with both servers; the global ranktable lists the router and both
// members; replacing a pod of the member resets its ranktable and rewrites
// the global one; deleting the group deletes the member's ranktable.
func TestPDMultiNodeMember(t *testing.T) {
	fm := newFakeManagement(t, 5)
	f := newFixture(t, multiNodePD(1, func(s *v1alpha1.InferServer) { s.Spec.Ports.Management = ptr.To(fm.port) }))
	_, writes := f.sync("llama")
	for _, want := range []string{"create configmaps rings-config-llama-0-p0", "create pods llama-0-p0-0", "create pods llama-0-p0-1",
		"create pods llama-0-d0", "patch configmaps llama-global-ranktable"} {
		if !has(writes, want) {
			t.Errorf("no %q in %v", want, writes)
		}
	}
	if has(writes, "rings-config-llama-0-d0") || has(writes, "rings-config-llama-0 ") {
		t.Errorf("a ranktable for a single-node member or the group: %v", writes)
	}
	pods := f.pods()
	if len(pods) != 3 {
		t.Fatalf("%d pods", len(pods))
	}
	for _, p := range pods {
		multi := strings.HasPrefix(p.Name, "llama-0-p0-")
		var ranktable string
		for _, v := range p.Spec.Volumes {
			if v.Name == volumeRanktable {
				ranktable = v.ConfigMap.Name
			}
		}
		var envRanktable bool
		for _, e := range p.Spec.Containers[0].Env {
			envRanktable = envRanktable || e.Name == "RANK_TABLE_FILE"
		}
		l := p.Labels
		wantMaster := p.Name != "llama-0-p0-1"
		if multi {
			terms := p.Spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution
			if ranktable != "rings-config-llama-0-p0" || !envRanktable || p.Spec.RestartPolicy != corev1.RestartPolicyNever ||
				!strings.Contains(strings.Join(p.Spec.Containers[0].Command, " "), "RANK_TABLE_FILE") ||
				l[ascend.LabelRingController] != ascend.RingControllerAscend910B || len(terms) != 1 ||
				terms[0].LabelSelector.MatchLabels[v1alpha1.LabelMember] != "p0" || terms[0].LabelSelector.MatchLabels[v1alpha1.LabelInstance] != "llama-0" {
				t.Errorf("pod %s: ranktable %q, env %v, restart %s, labels %v, affinity %+v", p.Name, ranktable, envRanktable, p.Spec.RestartPolicy, l, p.Spec.Affinity)
			}
		} else if ranktable != "" || envRanktable || p.Spec.RestartPolicy != corev1.RestartPolicyAlways {
			t.Errorf("pod %s: ranktable %q, env %v, restart %s", p.Name, ranktable, envRanktable, p.Spec.RestartPolicy)
		}
		wantID := map[bool]string{true: "0", false: "1"}[multi]
		if l[v1alpha1.LabelMember] != map[bool]string{true: "p0", false: "d0"}[multi] || (l[v1alpha1.LabelMaster] == "true") != wantMaster ||
			p.Annotations[v1alpha1.AnnotationPDID] != wantID || l[v1alpha1.LabelInstance] != "llama-0" {
			t.Errorf("pod %s: labels %v, annotations %v", p.Name, l, p.Annotations)
		}
	}
	if p := pods[1]; p.Name != "llama-0-p0-0" || p.Labels[v1alpha1.LabelRank] != "0" || pods[2].Labels[v1alpha1.LabelRank] != "1" || pods[0].Labels[v1alpha1.LabelRank] != "2" {
		t.Errorf("ranks: %s %v, %s %v", p.Name, p.Labels, pods[2].Name, pods[2].Labels)
	}
	cm := f.configMap("rings-config-llama-0-p0")
	if rt, err := parseRanktable(cm); err != nil || rt.Status != ascend.RanktableInitializing ||
		cm.Labels[v1alpha1.LabelInstance] != "llama-0" || cm.Labels[v1alpha1.LabelMember] != "p0" || metav1.GetControllerOf(cm) == nil {
		t.Errorf("member ranktable %+v %+v: %v", cm.ObjectMeta, rt, err)
	}
	rt := f.globalRanktableOf("llama")
	if rt.Status != ascend.RanktableInitializing || rt.Version != "1.0" || len(rt.ServerGroupList) != 2 ||
		rt.ServerGroupList[0].GroupID != "0" || rt.ServerGroupList[1].GroupID != "1" || rt.ServerGroupList[1].ServerCount != "0" {
		t.Errorf("global ranktable %+v", rt)
	}
	if is := f.server("llama").Status.Instances[0]; is.Ranktable != ascend.RanktableInitializing || len(is.Members) != 2 ||
		is.Members[0].Pod != "llama-0-p0-0" || is.Members[0].Message != "waiting for its 2 pods to be ready" {
		t.Errorf("group %+v", is)
	}
	if _, writes := f.sync("llama"); len(writes) != 0 {
		t.Errorf("a second sync wrote %v", writes)
	}

	// A router pod (the Coordinator) and the members' pods come up.
	router := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "llama-router-abc", Namespace: testNS, Labels: routerPodLabels(f.server("llama"))}}
	runPod(router)
	if _, err := f.kube.CoreV1().Pods(testNS).Create(f.ctx, router, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, p := range f.pods() {
		if p.Labels[v1alpha1.LabelRouter] == "" {
			f.editPod(p.Name, fm.runWithUID)
		}
	}
	f.events()
	_, writes = f.sync("llama")
	if !has(writes, "update configmaps rings-config-llama-0-p0") || !has(writes, "patch configmaps llama-global-ranktable") {
		t.Errorf("writes %v", writes)
	}
	p0, p1, d0 := fm.ips["llama-0-p0-0"], fm.ips["llama-0-p0-1"], fm.ips["llama-0-d0"]
	member, err := parseRanktable(f.configMap("rings-config-llama-0-p0"))
	if err != nil || member.Status != ascend.RanktableCompleted || member.ServerCount != "2" || member.ServerList[0].ContainerIP != p0 ||
		member.ServerList[1].ContainerIP != p1 || member.ServerList[1].Device[0].RankID != "8" {
		t.Errorf("member ranktable %+v: %v", member, err)
	}
	rt = f.globalRanktableOf("llama")
	checkGlobal(t, "up", rt, ascend.RanktableCompleted, []string{router.Status.PodIP}, [][]string{{p0, p1}, {d0}})
	prefill := rt.ServerGroupList[2]
	if s := prefill.ServerList[1]; s.ServerID == "" || s.PredictPort != "1025" || s.MgmtPort != strconv.Itoa(int(fm.port)) || s.MetricPort != "1025" ||
		len(s.Device) != 8 || s.Device[3].DeviceID != "3" || s.Device[3].DeviceLogicalID != "3" || s.Device[3].RankID != "11" || s.Device[3].DeviceIP == "" {
		t.Errorf("prefill server %+v", s)
	}
	if ev := f.events(); !has(ev, "GlobalRanktableCompleted Global ranktable llama-global-ranktable completed: 1 coordinators, 2 instances (1 prefill, 1 decode) on 3 servers") {
		t.Errorf("events %v", ev)
	}
	if is := f.server("llama").Status.Instances[0]; is.Ranktable != ascend.RanktableCompleted {
		t.Errorf("group %+v", is)
	}

	// Roles: API v2 to each member's first pod, with all the servers.
	f.c.pdRoles.step(f.ctx, "ns/llama")
	role, b, ok := fm.bodyV2("llama-0-p0-0")
	if !ok || role != "prefill" || len(b.Local) != 2 || b.Local[0].ServerIP != p0 || b.Local[1].ServerIP != p1 || b.Local[1].HostIP == "" ||
		len(b.Local[1].DPInstList) != 1 || b.Local[1].DPInstList[0].DPInstID != 0 || len(b.Local[1].DPInstList[0].Device) != 8 ||
		b.Local[1].DPInstList[0].Device[0].RankID != "8" || len(b.Peers) != 1 || len(b.Peers[0]) != 1 || b.Peers[0][0].ServerIP != d0 ||
		b.Peers[0][0].DPInstList[0].DPInstID != 1*dpInstanceIDs {
		t.Errorf("prefill p0 got %s %+v", role, b)
	}
	role, b, ok = fm.bodyV2("llama-0-d0")
	if !ok || role != "decode" || len(b.Local) != 1 || b.Local[0].DPInstList[0].DPInstID != dpInstanceIDs || len(b.Peers) != 1 || len(b.Peers[0]) != 2 ||
		b.Peers[0][0].ServerIP != p0 || b.Peers[0][1].ServerIP != p1 || b.Peers[0][1].DPInstList[0].DPInstID != 0 {
		t.Errorf("decode d0 got %s %+v", role, b)
	}
	if _, _, ok := fm.bodyV2("llama-0-p0-1"); ok {
		t.Error("a role posted to the second pod of a member")
	}
	if _, _, ok := fm.body("llama-0-d0"); ok {
		t.Error("a v1 role posted in multi-node mode")
	}
	fm.setLinked(true)
	f.c.pdRoles.step(f.ctx, "ns/llama")
	f.sync("llama")
	if s := f.server("llama"); s.Status.ReadyReplicas != 1 || !s.Status.Instances[0].Ready {
		t.Fatalf("status %+v", s.Status)
	}

	// The member's second pod fails: the member goes whole, its ranktable
	// is reset before its pods are made again, and the global ranktable
	// leaves it out meanwhile.
	f.editPod("llama-0-p0-1", func(p *corev1.Pod) {
		p.Status.Phase = corev1.PodFailed
		p.Status.ContainerStatuses[0].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Error", ExitCode: 3}}
	})
	_, writes = f.sync("llama")
	if !has(writes, "delete pods llama-0-p0-0") || !has(writes, "delete pods llama-0-p0-1") || has(writes, "delete pods llama-0-d0") ||
		!has(writes, "update configmaps rings-config-llama-0-p0") {
		t.Fatalf("writes %v", writes)
	}
	if member, _ := parseRanktable(f.configMap("rings-config-llama-0-p0")); member.Status != ascend.RanktableInitializing {
		t.Errorf("member ranktable not reset: %+v", member)
	}
	checkGlobal(t, "member failed", f.globalRanktableOf("llama"), ascend.RanktableInitializing, []string{router.Status.PodIP}, [][]string{{d0}})
	_, writes = f.sync("llama")
	if count(writes, "create pods llama-0-p0-") != 2 || has(writes, "configmaps rings-config") {
		t.Fatalf("writes %v", writes)
	}
	// Back on other addresses.
	fm.ips["llama-0-p0-0"], fm.ips["llama-0-p0-1"] = "127.0.0.4", "127.0.0.5"
	for _, name := range []string{"llama-0-p0-0", "llama-0-p0-1"} {
		f.editPod(name, fm.runWithUID)
	}
	_, writes = f.sync("llama")
	if !has(writes, "update configmaps rings-config-llama-0-p0") || !has(writes, "patch configmaps llama-global-ranktable") {
		t.Errorf("writes %v", writes)
	}
	cm = f.configMap("rings-config-llama-0-p0")
	if member, _ := parseRanktable(cm); member.Status != ascend.RanktableCompleted || member.ServerList[0].ContainerIP != "127.0.0.4" ||
		cm.Annotations[annotationRanktablePods] != "uid-llama-0-p0-0-127.0.0.4,uid-llama-0-p0-1-127.0.0.5" {
		t.Errorf("member ranktable %+v %+v", cm.Annotations, member)
	}
	checkGlobal(t, "member back", f.globalRanktableOf("llama"), ascend.RanktableCompleted, []string{router.Status.PodIP}, [][]string{{"127.0.0.4", "127.0.0.5"}, {d0}})
	f.c.pdRoles.step(f.ctx, "ns/llama")
	if _, b, ok := fm.bodyV2("llama-0-d0"); !ok || len(b.Peers) != 1 || len(b.Peers[0]) != 2 || b.Peers[0][0].ServerIP != "127.0.0.4" || b.Peers[0][1].ServerIP != "127.0.0.5" {
		t.Errorf("decode d0 was not told its new peer: %+v", b)
	}
	if _, b, ok := fm.bodyV2("llama-0-p0-0"); !ok || b.Local[0].ServerIP != "127.0.0.4" {
		t.Errorf("prefill p0 not told its role again: %+v", b)
	}

	// Scaled to no group: the member's ranktable goes with its group.
	f.update("llama", func(s *v1alpha1.InferServer) { s.Spec.Replicas = ptr.To[int32](0) })
	_, writes = f.sync("llama")
	if !has(writes, "delete configmaps rings-config-llama-0-p0") || count(writes, "delete pods") != 3 {
		t.Errorf("writes %v", writes)
	}
	checkGlobal(t, "no group", f.globalRanktableOf("llama"), ascend.RanktableCompleted, []string{router.Status.PodIP}, nil)
}

// checkGlobal checks a global ranktable's status, its Coordinators and its
// instances' servers (pod IPs, per instance), prefill before decode.
func checkGlobal(t *testing.T, when string, rt globalRanktable, status string, coordinators []string, instances [][]string) {
	t.Helper()
	var got [][]string
	var gotCoordinators []string
	for i, g := range rt.ServerGroupList {
		if g.GroupID != strconv.Itoa(i) || g.ServerCount != strconv.Itoa(len(g.ServerList)) {
			t.Errorf("%s: group %d: %+v", when, i, g)
		}
		var ips []string
		for _, s := range g.ServerList {
			ips = append(ips, s.ServerIP)
		}
		switch {
		case i == 0:
			gotCoordinators = ips
		case i == 1:
			if len(ips) != 0 || g.DeployServer != "" {
				t.Errorf("%s: controller group %+v", when, g)
			}
		default:
			got = append(got, ips)
			want := "1"
			if i == 2 && len(instances) == 2 {
				want = "2"
			}
			if g.DeployServer != want {
				t.Errorf("%s: group %d deploy_server %q, want %q", when, i, g.DeployServer, want)
			}
		}
	}
	if rt.Status != status || fmt.Sprint(gotCoordinators) != fmt.Sprint(coordinators) || fmt.Sprint(got) != fmt.Sprint(instances) {
		t.Errorf("%s: global ranktable %s, coordinators %v, instances %v; want %s, %v, %v", when, rt.Status, gotCoordinators, got, status, coordinators, instances)
	}
}

// TestGlobalRanktableFormat: the file is MindIE's, every number a string,
// and the constant of role API v2 is the simulator's.
func TestGlobalRanktableFormat(t *testing.T) {
	s := multiNodePD(2, nil)
	var groups []*instance
	for g := 0; g < 2; g++ {
		name := fmt.Sprintf("llama-%d", g)
		in := &instance{instanceView: instanceView{name: name, index: g}, shape: s, pods: make([]*corev1.Pod, podsPerInstance(s))}
		for rank := range in.pods {
			p := crossNodePod(s, "rev", name, rank)
			runPod(p)
			in.pods[rank] = p
		}
		groups = append(groups, in)
	}
	groups[1].pods[2].Status.PodIP = "" // decode d0 of group 1 is not up
	raw := formatGlobalRanktable(buildGlobalRanktable(s, groups, nil))
	var generic struct {
		Version, Status string
		ServerGroupList []map[string]any `json:"server_group_list"`
	}
	if err := json.Unmarshal([]byte(raw), &generic); err != nil {
		t.Fatal(err)
	}
	if generic.Version != "1.0" || generic.Status != "initializing" || len(generic.ServerGroupList) != 5 {
		t.Fatalf("%s", raw)
	}
	for _, g := range generic.ServerGroupList {
		for _, key := range []string{"group_id", "server_count"} {
			if _, ok := g[key].(string); !ok {
				t.Errorf("%s is not a string in %v", key, g)
			}
		}
		for _, srv := range g["server_list"].([]any) {
			for k, v := range srv.(map[string]any) {
				if k == "device" {
					for _, d := range v.([]any) {
						for dk, dv := range d.(map[string]any) {
							if _, ok := dv.(string); !ok {
								t.Errorf("device %s is not a string: %v", dk, dv)
							}
						}
					}
				} else if _, ok := v.(string); !ok {
					t.Errorf("%s is not a string: %v", k, v)
				}
			}
		}
	}
	if ids := []string{"2", "3", "4"}; generic.ServerGroupList[4]["group_id"] != ids[2] || generic.ServerGroupList[4]["deploy_server"] != "2" {
		t.Errorf("group 1's prefill member: %v", generic.ServerGroupList[4])
	}
	if dpInstanceIDs != mindie.DPInstanceIDs {
		t.Errorf("dpInstanceIDs %d, the simulator's %d", dpInstanceIDs, mindie.DPInstanceIDs)
	}
}

// TestPDMultiNodeRolesLinkWithTheSimulator: a 2-node prefill member and a
// decode member, their first pods run by MindIE simulators on 127.0.0.1
// and 127.0.0.2 (the prefill member's second pod on 127.0.0.3 runs none):
// the v2 bodies the controller posts are ones the simulator takes, and the
// group gets ready on /v2/status.
func TestPDMultiNodeRolesLinkWithTheSimulator(t *testing.T) {
	ips, sims, port := startSimulators(t)

	f := newFixture(t, multiNodePD(1, func(s *v1alpha1.InferServer) { s.Spec.Ports.Management = ptr.To(port) }))
	f.sync("llama")
	podIP := map[string]string{"llama-0-p0-0": ips[0], "llama-0-p0-1": "127.0.0.3", "llama-0-d0": ips[1]}
	f.linkOnSimulators(podIP)
	p, d := sims[ips[0]].Stats(), sims[ips[1]].Stats()
	if p.Role != mindie.RolePrefill || d.Role != mindie.RoleDecode || len(p.Peers) != 1 || p.Peers[0].Target != 1 ||
		len(d.Peers) != 1 || d.Peers[0].Target != 0 || d.Peers[0].Link != mindie.LinkOK {
		t.Errorf("prefill %+v, decode %+v", p, d)
	}
}

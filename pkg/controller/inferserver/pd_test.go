package inferserver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/simulator/mindie"
)

// pdServer is a defaulted Prefill/Decode server of `groups` groups of
// `p` prefill and `d` decode instances.
func pdServer(name string, groups, p, d int32, mutate func(*v1alpha1.InferServer)) *v1alpha1.InferServer {
	return routedServer(name, func(s *v1alpha1.InferServer) {
		s.Spec.Replicas = ptr.To(groups)
		s.Spec.Roles = []v1alpha1.InferRole{
			{Name: v1alpha1.RoleDecode, Instances: ptr.To(d)},
			{Name: v1alpha1.RolePrefill, Instances: ptr.To(p)},
		}
		if mutate != nil {
			mutate(s)
		}
	})
}

func TestMemberOfRank(t *testing.T) {
	s := pdServer("llama", 1, 2, 1, nil)
	want := []struct {
		name string
		role v1alpha1.RoleName
		pod  string
		id   int64
	}{{"p0", v1alpha1.RolePrefill, "llama-3-p0", 48}, {"p1", v1alpha1.RolePrefill, "llama-3-p1", 49}, {"d0", v1alpha1.RoleDecode, "llama-3-d0", 50}}
	if podsPerInstance(s) != 3 {
		t.Fatalf("%d pods per group", podsPerInstance(s))
	}
	for rank, w := range want {
		m, r, ok := memberOfRank(s, rank)
		if !ok || r != 0 || m.name() != w.name || m.role != w.role || podName(s, "llama-3", rank) != w.pod || pdID(3, m.ordinal) != w.id {
			t.Errorf("rank %d: %+v %d %v, pod %s", rank, m, r, ok, podName(s, "llama-3", rank))
		}
	}
	if _, _, ok := memberOfRank(s, 3); ok {
		t.Error("rank 3 of a 3-pod group")
	}
	// A member of two nodes takes two ranks.
	s.Spec.Roles[1].NodesPerInstance = ptr.To[int32](2)
	if m, r, _ := memberOfRank(s, 1); m.name() != "p0" || r != 1 || podName(s, "llama-0", 1) != "llama-0-p0-1" || podsPerInstance(s) != 5 {
		t.Errorf("rank 1: %+v %d, pod %s", m, r, podName(s, "llama-0", 1))
	}
	// Without roles, ranks are pods of one instance.
	if podName(crossNodeServer("llama", 1, nil), "llama-0", 1) != "llama-0-1" {
		t.Error("cross-node pod name")
	}
}

func TestPDCreatesGroups(t *testing.T) {
	f := newFixture(t, pdServer("llama", 2, 2, 1, func(s *v1alpha1.InferServer) {
		s.Spec.Roles[1].Resources = &v1alpha1.InferResources{CPU: ptr.To(resource.MustParse("16")),
			NPU: v1alpha1.NPURequest{Count: ptr.To[int32](4)}}
		s.Spec.Roles[1].ServerConfig = &v1alpha1.ServerConfigSource{ConfigMap: &v1alpha1.ConfigMapKeyReference{Name: "prefill-config"}}
		v1alpha1.SetObjectDefaults_InferServer(s)
	}))
	_, writes := f.sync("llama")
	for _, want := range []string{"create pods llama-0-p0", "create pods llama-0-p1", "create pods llama-0-d0",
		"create pods llama-1-p0", "create pods llama-1-p1", "create pods llama-1-d0"} {
		if !has(writes, want) {
			t.Errorf("no %q in %v", want, writes)
		}
	}
	if has(writes, "configmaps rings-config") || has(writes, "deployments llama ") {
		t.Errorf("a PD server got a ranktable or a deployment: %v", writes)
	}
	pods := f.pods()
	if len(pods) != 6 {
		t.Fatalf("%d pods", len(pods))
	}
	wantIDs := map[string]string{"llama-0-p0": "0", "llama-0-p1": "1", "llama-0-d0": "2", "llama-1-p0": "16", "llama-1-p1": "17", "llama-1-d0": "18"}
	for _, p := range pods {
		parts := strings.Split(p.Name, "-") // llama, group, member
		group, mem := parts[1], parts[2]
		role := v1alpha1.RolePrefill
		npus, cpu, volume := "4", "16", "prefill-config"
		if mem[0] == 'd' {
			role, npus, cpu, volume = v1alpha1.RoleDecode, "8", "32", ""
		}
		l := p.Labels
		if l[v1alpha1.LabelInstance] != "llama-"+group || l[v1alpha1.LabelGroup] != group || l[v1alpha1.LabelRole] != string(role) ||
			l[v1alpha1.LabelMember] != mem || l[v1alpha1.LabelMaster] != "true" || l[v1alpha1.LabelServer] != "llama" ||
			l[v1alpha1.LabelRevision] == "" || p.Annotations[v1alpha1.AnnotationPDID] != wantIDs[p.Name] {
			t.Errorf("pod %s: labels %v annotations %v", p.Name, l, p.Annotations)
		}
		c := p.Spec.Containers[0]
		if got := c.Resources.Requests[npuResource(f.server("llama"))]; got.String() != npus {
			t.Errorf("pod %s requests %s NPUs", p.Name, got.String())
		}
		if got := c.Resources.Requests[corev1.ResourceCPU]; got.String() != cpu {
			t.Errorf("pod %s requests %s CPUs", p.Name, got.String())
		}
		var cm string
		for _, v := range p.Spec.Volumes {
			if v.Name == volumeConfig && v.ConfigMap != nil {
				cm = v.ConfigMap.Name
			}
			if v.Name == volumeRanktable {
				t.Errorf("pod %s mounts a ranktable", p.Name)
			}
		}
		if cm != volume || p.Spec.RestartPolicy != corev1.RestartPolicyAlways || strings.Contains(strings.Join(c.Command, " "), "RANK_TABLE") {
			t.Errorf("pod %s: config map %q, restart %s, command %v", p.Name, cm, p.Spec.RestartPolicy, c.Command)
		}
	}
	s := f.server("llama")
	if len(s.Status.Instances) != 2 || s.Status.Instances[0].Name != "llama-0" || len(s.Status.Instances[0].Members) != 3 ||
		s.Status.Instances[0].Members[2].Name != "d0" || s.Status.Instances[0].Members[2].PDID != 2 || s.Status.Instances[0].Ranktable != "" {
		t.Errorf("instances %+v", s.Status.Instances)
	}
	if ev := f.events(); count(ev, "Created group") != 2 || !has(ev, "2 prefill, 1 decode instances") {
		t.Errorf("events %v", ev)
	}
	if _, writes := f.sync("llama"); len(writes) != 0 {
		t.Errorf("a second sync wrote %v", writes)
	}

	// The router of a PD server holds a Lease, and rolls all down at once.
	role, err := f.kube.RbacV1().Roles(testNS).Get(f.ctx, "llama-router", metav1.GetOptions{})
	if err != nil || len(role.Rules) != 2 || role.Rules[1].APIGroups[0] != "coordination.k8s.io" ||
		strings.Join(role.Rules[1].Resources, ",") != "leases" || strings.Join(role.Rules[1].Verbs, ",") != "get,create,update" {
		t.Errorf("role %+v: %v", role, err)
	}
	d := f.routerDeployment("llama")
	if ru := d.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxSurge.IntValue() != 0 || ru.MaxUnavailable.IntValue() != int(*s.Spec.Router.Replicas) {
		t.Errorf("router strategy %+v", d.Spec.Strategy)
	}
}

func TestPDScalesByGroups(t *testing.T) {
	f := newFixture(t, pdServer("llama", 1, 1, 1, nil))
	f.sync("llama")
	f.update("llama", func(s *v1alpha1.InferServer) { s.Spec.Replicas = ptr.To[int32](2) })
	_, writes := f.sync("llama")
	if count(writes, "create pods llama-1-") != 2 || has(writes, "llama-0-") {
		t.Errorf("writes %v", writes)
	}
	f.update("llama", func(s *v1alpha1.InferServer) { s.Spec.Replicas = ptr.To[int32](1) })
	_, writes = f.sync("llama")
	if count(writes, "delete pods llama-1-") != 2 || has(writes, "llama-0-") {
		t.Errorf("writes %v", writes)
	}
}

// fakeManagement plays the management ports of PD members: one listener
// per loopback address, all on one port. It takes roles by API v1 and v2.
type fakeManagement struct {
	t    *testing.T
	port int32
	mu   sync.Mutex
	// posts by pod IP: role and body of the last role POST (v1 or v2).
	roles    map[string]string
	bodies   map[string]roleBody
	bodiesV2 map[string]roleBodyV2
	posts    int
	// linked makes every member report RoleReady and its peers ok.
	linked bool
	ips    map[string]string // pod name -> IP
}

func newFakeManagement(t *testing.T, addresses int) *fakeManagement {
	fm := &fakeManagement{t: t, roles: map[string]string{}, bodies: map[string]roleBody{}, bodiesV2: map[string]roleBodyV2{}, ips: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/role/{role}", func(w http.ResponseWriter, r *http.Request) {
		var b roleBody
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ip := localIP(r)
		fm.mu.Lock()
		fm.roles[ip], fm.bodies[ip] = r.PathValue("role"), b
		delete(fm.bodiesV2, ip)
		fm.posts++
		fm.mu.Unlock()
		_, _ = w.Write([]byte(`{"result":"ok"}`))
	})
	mux.HandleFunc("POST /v2/role/{role}", func(w http.ResponseWriter, r *http.Request) {
		var b roleBodyV2
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil || len(b.Local) == 0 {
			http.Error(w, fmt.Sprintf("not a v2 role body: %v", err), http.StatusBadRequest)
			return
		}
		ip := localIP(r)
		fm.mu.Lock()
		fm.roles[ip], fm.bodiesV2[ip] = r.PathValue("role"), b
		delete(fm.bodies, ip)
		fm.posts++
		fm.mu.Unlock()
		_, _ = w.Write([]byte(`{"result":"ok"}`))
	})
	status := func(api string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			ip := localIP(r)
			fm.mu.Lock()
			defer fm.mu.Unlock()
			var reply statusReply
			var peers []int64
			b, ok := fm.bodies[ip]
			for _, p := range b.Peers {
				peers = append(peers, p.ID)
			}
			b2, ok2 := fm.bodiesV2[ip]
			for _, p := range b2.Peers {
				peers = append(peers, p[0].DPInstList[0].DPInstID/dpInstanceIDs)
			}
			told := (api == roleAPIv1 && ok) || (api == roleAPIv2 && ok2)
			switch {
			case !told:
				reply.Service.RoleStatus = roleStatusUnknown
			case fm.linked:
				reply.Service.RoleStatus = roleStatusReady
			default:
				reply.Service.RoleStatus = "RoleSwitching"
			}
			for _, id := range peers {
				link := "linking"
				if fm.linked {
					link = linkOK
				}
				reply.LinkStatus.Peers = append(reply.LinkStatus.Peers, struct {
					Target int64  `json:"target"`
					Link   string `json:"link"`
				}{id, link})
			}
			_ = json.NewEncoder(w).Encode(reply)
		}
	}
	mux.HandleFunc("GET /v1/status", status(roleAPIv1))
	mux.HandleFunc("GET /v2/status", status(roleAPIv2))
	srv := &http.Server{Handler: mux}
	// One port on every address: a port free on 127.0.0.1 may be taken
	// on another, so try a few.
	var listeners []net.Listener
	for attempt := 0; attempt < 20 && len(listeners) < addresses; attempt++ {
		for _, l := range listeners {
			l.Close()
		}
		listeners = nil
		first, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		fm.port = int32(first.Addr().(*net.TCPAddr).Port)
		listeners = append(listeners, first)
		for i := 2; i <= addresses; i++ {
			l, err := net.Listen("tcp", net.JoinHostPort(fmt.Sprintf("127.0.0.%d", i), strconv.Itoa(int(fm.port))))
			if err != nil {
				break
			}
			listeners = append(listeners, l)
		}
	}
	if len(listeners) < addresses {
		t.Fatalf("no port free on all of 127.0.0.1 to 127.0.0.%d", addresses)
	}
	for _, l := range listeners {
		go func() { _ = srv.Serve(l) }()
	}
	t.Cleanup(func() { _ = srv.Close() })
	return fm
}

func localIP(r *http.Request) string {
	addr, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	host, _, _ := net.SplitHostPort(addr.String())
	return host
}

// run brings a pod up on its own loopback address (one per pod name).
func (fm *fakeManagement) run(p *corev1.Pod) {
	runPod(p)
	ip, ok := fm.ips[p.Name]
	if !ok {
		ip = fmt.Sprintf("127.0.0.%d", len(fm.ips)+1)
		fm.ips[p.Name] = ip
	}
	p.Status.PodIP = ip
}

func (fm *fakeManagement) body(pod string) (string, roleBody, bool) {
	fm.mu.Lock()
	defer fm.mu.Unlock()
	b, ok := fm.bodies[fm.ips[pod]]
	return fm.roles[fm.ips[pod]], b, ok
}

func (fm *fakeManagement) bodyV2(pod string) (string, roleBodyV2, bool) {
	fm.mu.Lock()
	defer fm.mu.Unlock()
	b, ok := fm.bodiesV2[fm.ips[pod]]
	return fm.roles[fm.ips[pod]], b, ok
}

func (fm *fakeManagement) postCount() int {
	fm.mu.Lock()
	defer fm.mu.Unlock()
	return fm.posts
}

func (fm *fakeManagement) setLinked(v bool) {
	fm.mu.Lock()
	fm.linked = v
	fm.mu.Unlock()
}

// readyPD brings every pod up and lets the role assigner do a round.
func (f *fixture) readyPD(fm *fakeManagement, name string) {
	f.t.Helper()
	for _, p := range f.pods() {
		if p.Status.PodIP == "" {
			f.editPod(p.Name, fm.run)
		}
	}
	f.sync(name)
	f.c.pdRoles.step(f.ctx, testNS+"/"+name)
}

func TestPDRolesAssigned(t *testing.T) {
	fm := newFakeManagement(t, 3)
	f := newFixture(t, pdServer("llama", 1, 2, 1, func(s *v1alpha1.InferServer) { s.Spec.Ports.Management = ptr.To(fm.port) }))
	f.sync("llama")
	// Ready pods, roles not yet posted: the group is not ready.
	f.readyPD(fm, "llama")
	f.sync("llama")
	s := f.server("llama")
	if s.Status.ReadyReplicas != 0 || s.Status.Instances[0].Ready {
		t.Fatalf("a group ready before its roles: %+v", s.Status)
	}
	if d := condition(s, v1alpha1.ConditionDegraded); d == nil || d.Status != metav1.ConditionTrue || d.Reason != ReasonRolesNotLinked ||
		!strings.Contains(d.Message, "member p0 (prefill, id 0): role prefill is RoleSwitching") {
		t.Errorf("degraded %+v", d)
	}
	role, b, ok := fm.body("llama-0-p0")
	if !ok || role != "prefill" || b.Local.ID != 0 || b.Local.ServerIP != fm.ips["llama-0-p0"] || b.Local.HostIP == "" || len(b.Local.Device) != 8 ||
		len(b.Peers) != 1 || b.Peers[0].ID != 2 || b.Peers[0].ServerIP != fm.ips["llama-0-d0"] {
		t.Errorf("prefill p0 got %s %+v", role, b)
	}
	role, b, ok = fm.body("llama-0-d0")
	if !ok || role != "decode" || b.Local.ID != 2 || len(b.Peers) != 2 || b.Peers[0].ID != 0 || b.Peers[1].ID != 1 {
		t.Errorf("decode d0 got %s %+v", role, b)
	}
	if m := s.Status.Instances[0].Members[2]; m.Peers != 2 || m.LinkedPeers != 0 || m.RoleStatus != "RoleSwitching" || m.Pod != "llama-0-d0" {
		t.Errorf("member d0 %+v", m)
	}
	if r := s.Status.Roles; len(r) != 2 || r[0] != (v1alpha1.InferRoleStatus{Name: v1alpha1.RolePrefill, Instances: 2, Updated: 2}) ||
		r[1] != (v1alpha1.InferRoleStatus{Name: v1alpha1.RoleDecode, Instances: 1, Updated: 1}) {
		t.Errorf("roles before linking %+v", r)
	}

	// Linked: the group is ready, and no role is posted again.
	fm.setLinked(true)
	f.c.pdRoles.step(f.ctx, "ns/llama")
	f.sync("llama")
	s = f.server("llama")
	if s.Status.ReadyReplicas != 1 || !s.Status.Instances[0].Ready {
		t.Fatalf("status %+v", s.Status)
	}
	for _, m := range s.Status.Instances[0].Members {
		if m.RoleStatus != roleStatusReady || m.LinkedPeers != m.Peers || m.Peers == 0 || m.Message != "" {
			t.Errorf("member %+v", m)
		}
	}
	if d := condition(s, v1alpha1.ConditionDegraded); d != nil && d.Status == metav1.ConditionTrue {
		t.Errorf("degraded %+v", d)
	}
	if r := s.Status.Roles; len(r) != 2 || r[0] != (v1alpha1.InferRoleStatus{Name: v1alpha1.RolePrefill, Instances: 2, Updated: 2, Ready: 2, Linked: 2}) ||
		r[1] != (v1alpha1.InferRoleStatus{Name: v1alpha1.RoleDecode, Instances: 1, Updated: 1, Ready: 1, Linked: 1}) {
		t.Errorf("roles %+v", r)
	}
	if ev := f.events(); !has(ev, "RolesLinked Group llama-0 linked: p0 (prefill, id 0), p1 (prefill, id 1), d0 (decode, id 2)") {
		t.Errorf("events %v", ev)
	}
	posts := fm.postCount()
	f.c.pdRoles.step(f.ctx, "ns/llama")
	if fm.postCount() != posts {
		t.Errorf("roles posted again: %d then %d", posts, fm.postCount())
	}

	// A server that lost its role (its container restarted) says
	// RoleUnknown: the group is not ready, and the role is posted again.
	fm.mu.Lock()
	delete(fm.bodies, fm.ips["llama-0-d0"])
	fm.mu.Unlock()
	f.c.pdRoles.step(f.ctx, "ns/llama")
	f.sync("llama")
	if s := f.server("llama"); s.Status.ReadyReplicas != 0 {
		t.Errorf("ready with a lost role: %+v", s.Status.Instances)
	}
	f.c.pdRoles.step(f.ctx, "ns/llama")
	f.sync("llama")
	if _, b, ok := fm.body("llama-0-d0"); !ok || len(b.Peers) != 2 || f.server("llama").Status.ReadyReplicas != 1 {
		t.Errorf("role not posted again: %+v, %+v", b, f.server("llama").Status.Instances)
	}

	// A member whose pod is not ready leaves its peers' lists: they are
	// told again, and the group is not ready.
	f.editPod("llama-0-p1", func(p *corev1.Pod) { p.Status.Conditions[0].Status = corev1.ConditionFalse })
	f.sync("llama")
	f.c.pdRoles.step(f.ctx, "ns/llama")
	f.sync("llama")
	if _, b, _ := fm.body("llama-0-d0"); len(b.Peers) != 1 || b.Peers[0].ID != 0 {
		t.Errorf("decode d0 got %+v", b)
	}
	if s := f.server("llama"); s.Status.ReadyReplicas != 0 || s.Status.Instances[0].Members[1].Message != "waiting for its pod to be ready" {
		t.Errorf("status %+v", s.Status)
	}
}

// linkedPD is a fixture with a 2-group 1P1D server "llama" rolled out with
// the bounds maxSurge and maxUnavailable, both groups linked through fake
// management ports on that many loopback addresses.
func linkedPD(t *testing.T, addresses int, maxSurge, maxUnavailable int32) (*fixture, *fakeManagement) {
	t.Helper()
	fm := newFakeManagement(t, addresses)
	fm.setLinked(true)
	f := newFixture(t, pdServer("llama", 2, 1, 1, func(s *v1alpha1.InferServer) {
		s.Spec.Ports.Management = ptr.To(fm.port)
		s.Spec.Strategy.RollingUpdate = &v1alpha1.RollingUpdateInferServer{
			MaxSurge: ptr.To(intstr.FromInt32(maxSurge)), MaxUnavailable: ptr.To(intstr.FromInt32(maxUnavailable))}
	}))
	f.sync("llama")
	f.readyPD(fm, "llama")
	f.sync("llama")
	if s := f.server("llama"); s.Status.ReadyReplicas != 2 {
		t.Fatalf("status %+v", s.Status)
	}
	return f, fm
}

func TestPDRolloutReplacesWholeGroups(t *testing.T) {
	f, fm := linkedPD(t, 12, 0, 1)
	f.update("llama", func(s *v1alpha1.InferServer) { s.Spec.Image = "mindie:v2" })
	f.rollPD(fm, "llama", 2)
	for _, p := range f.pods() {
		if p.Spec.Containers[0].Image != "mindie:v2" {
			t.Errorf("pod %s runs %s", p.Name, p.Spec.Containers[0].Image)
		}
	}

	// A new shape of group (2P1D) rolls the same way: the old groups are
	// judged by their own revision's members, not taken for broken.
	f.update("llama", func(s *v1alpha1.InferServer) { roleSpec(s, v1alpha1.RolePrefill).Instances = ptr.To[int32](2) })
	f.rollPD(fm, "llama", 3)
	if pods := f.pods(); len(pods) != 6 {
		t.Errorf("%d pods", len(pods))
	}
	if ev := f.events(); has(ev, "Recreating") {
		t.Errorf("events %v", ev)
	}
}

// rollPD syncs a rollout of a 2-group PD server with maxSurge 0 and
// maxUnavailable 1 to its end, checking the bounds on the way.
func (f *fixture) rollPD(fm *fakeManagement, name string, perGroup int) {
	t := f.t
	t.Helper()
	for i := 0; i < 12; i++ {
		before := map[string]int{}
		for _, p := range f.pods() {
			before[p.Labels[v1alpha1.LabelInstance]+"-"]++
		}
		_, writes := f.sync(name)
		if s := f.server(name).Status; s.UpdatedReplicas == 2 && s.ReadyReplicas == 2 && s.Replicas == 2 {
			break
		}
		// A group goes whole: all its pods in one sync, never both groups.
		deleted := 0
		for _, g := range []string{"llama-0-", "llama-1-"} {
			if n := count(writes, "delete pods "+g); n != 0 {
				deleted++
				if n != before[g] {
					t.Fatalf("group %s partly deleted: %v", g, writes)
				}
			}
		}
		if deleted > 1 || has(writes, "Recreating") {
			t.Fatalf("two groups down at once: %v", writes)
		}
		if s := f.server(name); s.Status.ReadyReplicas < 1 && i > 0 {
			t.Fatalf("no group ready (maxUnavailable 1): %+v", s.Status)
		}
		groups := map[string]bool{}
		for _, p := range f.pods() {
			if p.DeletionTimestamp == nil {
				groups[p.Labels[v1alpha1.LabelGroup]] = true
			}
		}
		if len(groups) > 2 {
			t.Fatalf("more than 2 groups (maxSurge 0): %v", groups)
		}
		f.readyPD(fm, name)
	}
	f.sync(name)
	s := f.server(name)
	if s.Status.UpdatedReplicas != 2 || s.Status.ReadyReplicas != 2 || s.Status.CurrentRevision != s.Status.UpdateRevision {
		t.Fatalf("status %+v", s.Status)
	}
	for _, is := range s.Status.Instances {
		if len(is.Members) != perGroup || len(is.Pods) != perGroup {
			t.Errorf("group %+v", is)
		}
	}
}

// TestPDRolesLinkWithTheSimulator assigns the roles of a 1P1D group run by
// two MindIE simulators on loopback (127.0.0.1 and 127.0.0.2, management
// ports on one port number, as pods of one Service port would be), and
// waits for the group to be ready: the body the controller posts is one
// the simulator takes, and its /v1/status is read as MindIE's.
func TestPDRolesLinkWithTheSimulator(t *testing.T) {
	ips, sims, port := startSimulators(t)

	f := newFixture(t, pdServer("llama", 1, 1, 1, func(s *v1alpha1.InferServer) { s.Spec.Ports.Management = ptr.To(port) }))
	f.sync("llama")
	// The pods' readiness probe answers before any role is assigned (a
	// server is ready as a process; the group waits for the roles), and
	// after, on a prefill and a decode instance alike.
	probe := f.pods()[0].Spec.Containers[0].ReadinessProbe.HTTPGet.Path
	probeAll := func(when string) {
		t.Helper()
		for _, ip := range ips {
			resp, err := http.Get("http://" + net.JoinHostPort(ip, strconv.Itoa(int(port))) + probe)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s, %s on %s: %s", when, probe, ip, resp.Status)
			}
		}
	}
	probeAll("without a role")
	podIP := map[string]string{"llama-0-p0": ips[0], "llama-0-d0": ips[1]}
	f.linkOnSimulators(podIP)
	probeAll("with roles")
	p, d := sims[ips[0]].Stats(), sims[ips[1]].Stats()
	if p.Role != mindie.RolePrefill || d.Role != mindie.RoleDecode || len(p.Peers) != 1 || p.Peers[0].Target != 1 ||
		len(d.Peers) != 1 || d.Peers[0].Target != 0 || d.Peers[0].Link != mindie.LinkOK {
		t.Errorf("prefill %+v, decode %+v", p, d)
	}
}

// TestRoleTargetsOverTLS: with spec.tls the roles are posted over HTTPS,
// and a member whose pod is not addressed is neither told nor a peer.
func TestRoleTargetsOverTLS(t *testing.T) {
	s := pdServer("llama", 1, 1, 2, func(s *v1alpha1.InferServer) { s.Spec.TLS.Enabled = true })
	in := &instance{instanceView: instanceView{name: "llama-1", index: 1}, shape: s, pods: make([]*corev1.Pod, 3)}
	for rank := range in.pods {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: podName(s, "llama-1", rank)}}
		runPod(p)
		in.pods[rank] = p
	}
	in.pods[2].Status.Conditions[0].Status = corev1.ConditionFalse
	ts := roleTargets(in)
	if len(ts) != 2 {
		t.Fatalf("targets %+v", ts)
	}
	var b roleBody
	if err := json.Unmarshal([]byte(ts[0].body), &b); err != nil {
		t.Fatal(err)
	}
	if ts[0].pod != "llama-1-p0" || !strings.HasPrefix(ts[0].base, "https://"+in.pods[0].Status.PodIP+":") || ts[0].role != v1alpha1.RolePrefill ||
		b.Local.ID != 16 || len(b.Peers) != 1 || b.Peers[0].ID != 17 || len(ts[0].peers) != 1 {
		t.Errorf("prefill target %+v, body %+v", ts[0], b)
	}
	if ts[1].pod != "llama-1-d0" || ts[1].role != v1alpha1.RoleDecode || len(ts[1].peers) != 1 || ts[1].peers[0] != 16 {
		t.Errorf("decode target %+v", ts[1])
	}
}

// startSimulators runs a MindIE simulator on 127.0.0.1 and one on
// 127.0.0.2, their management ports on one port number (as pods of one
// container port), roles and links taking no time. It returns the
// addresses, the simulators by address and the management port.
func startSimulators(t *testing.T) ([]string, map[string]*mindie.Server, int32) {
	t.Helper()
	ips := []string{"127.0.0.1", "127.0.0.2"}
	var mgmt []net.Listener
	for range 20 {
		mgmt = nil
		first, err := net.Listen("tcp", ips[0]+":0")
		if err != nil {
			t.Fatal(err)
		}
		mgmt = append(mgmt, first)
		if ln, err := net.Listen("tcp", net.JoinHostPort(ips[1], strconv.Itoa(first.Addr().(*net.TCPAddr).Port))); err == nil {
			mgmt = append(mgmt, ln)
			break
		}
		first.Close()
	}
	if len(mgmt) != 2 {
		t.Fatal("no port free on both loopback addresses")
	}
	port := int32(mgmt[0].Addr().(*net.TCPAddr).Port)
	cfg := mindie.Config{LoadTime: mindie.NoDelay, RoleSwitchTime: mindie.NoDelay, LinkTime: mindie.NoDelay}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	sims := map[string]*mindie.Server{}
	for i, ip := range ips {
		srv, err := mindie.New(cfg, mindie.WithLogWriter(io.Discard))
		if err != nil {
			t.Fatal(err)
		}
		inf, err := net.Listen("tcp", ip+":0")
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = srv.ServeListeners(ctx, inf, mgmt[i]) }()
		<-srv.Listening()
		sims[ip] = srv
	}
	return ips, sims, port
}

// linkOnSimulators runs the pods of server "llama" on the given addresses
// (the simulators' of startSimulators) and syncs and assigns roles until
// its group is ready.
func (f *fixture) linkOnSimulators(podIP map[string]string) {
	f.t.Helper()
	for name, ip := range podIP {
		f.editPod(name, func(p *corev1.Pod) {
			runPod(p)
			p.Status.PodIP = ip
		})
	}
	deadline := time.Now().Add(15 * time.Second)
	for f.server("llama").Status.ReadyReplicas != 1 {
		if time.Now().After(deadline) {
			f.t.Fatalf("group not linked: %+v", f.server("llama").Status.Instances)
		}
		f.sync("llama")
		f.c.pdRoles.step(f.ctx, "ns/llama")
		time.Sleep(50 * time.Millisecond)
	}
}

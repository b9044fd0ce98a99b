package inferserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/inferstatus"
	"mindie.io/deployer/pkg/podstatus"
)

// Role assignment of Prefill/Decode members, as MindIE's Controller does it
// (../shared/docs/mindie-coordinator.md §3.2): once a member's pods run and
// are ready, POST /v1/role/<role> on its serving pod's management port with
// its id and its peers (the other role's members of its group), then read
// GET /v1/status until the role is RoleReady and every peer's link is ok.
// When a member of the server spans nodes, MindIE's Controller is in its
// multi-node mode for every instance, and so is this one: POST
// /v2/role/<role> to each member's first pod, with every server (pod) of
// the member as local and every server of each peer, each server with its
// data-parallel instance (dp_inst_list) and NPUs, then GET /v2/status.
// The requests run on the role assigner's goroutines, never on the
// controller's workers; syncs say what each member should be told and
// read what was last seen.

// MindIE's role statuses and link state (/v1/status).
const (
	roleStatusUnknown = "RoleUnknown"
	roleStatusReady   = "RoleReady"
	linkOK            = "ok"
)

// The versions of MindIE's role API: v1 for single-node instances, v2 in
// multi-node mode (/v2/role, /v2/status).
const (
	roleAPIv1 = "v1"
	roleAPIv2 = "v2"
)

// dpInstanceIDs is how many data-parallel instance ids an instance
// reserves in role API v2: a dp_inst_id is id*dpInstanceIDs + its index,
// and MindIE Server reads the instance id back as dp_inst_id/dpInstanceIDs
// (MindIE Motor's DP_GROUP_NUM).
const dpInstanceIDs = 10000

// roleAPI is the role API version the members of s are told with.
func roleAPI(s *v1alpha1.InferServer) string {
	if multiNodeMembers(s) {
		return roleAPIv2
	}
	return roleAPIv1
}

// ReasonRolesNotLinked is the Degraded reason of a PD server whose members
// are ready but not yet serving their role linked to every peer.
const ReasonRolesNotLinked = inferstatus.ReasonRolesNotLinked

// ReasonRolesLinked is the event of a group whose members all serve their
// roles linked to their peers.
const ReasonRolesLinked = "RolesLinked"

// roleServerEntry is a server of a role POST: local or a peer.
type roleServerEntry struct {
	ID       int64          `json:"id"`
	ServerIP string         `json:"server_ip"`
	HostIP   string         `json:"host_ip,omitempty"`
	Device   []mindieDevice `json:"device"`
}

// roleBody is the body of POST /v1/role/<role>.
type roleBody struct {
	Local roleServerEntry   `json:"local"`
	Peers []roleServerEntry `json:"peers"`
}

// roleServerV2 is a server (pod) of an instance in a role POST of API v2.
// An instance here is one data-parallel instance across all its servers
// (tensor parallel over all its NPUs), as MindIE Motor groups them when an
// instance's tp*cp takes all of its NPUs: each server lists that one
// dp_inst_id with its own NPUs.
type roleServerV2 struct {
	ServerIP   string       `json:"server_ip"`
	HostIP     string       `json:"host_ip"`
	DPInstList []dpInstance `json:"dp_inst_list"`
}

// dpInstance is a data-parallel instance of a server in role API v2.
type dpInstance struct {
	DPInstID int64          `json:"dp_inst_id"`
	Device   []mindieDevice `json:"device"`
}

// roleBodyV2 is the body of POST /v2/role/<role>: local is the member's
// servers, each peer the servers of a member of the other role.
type roleBodyV2 struct {
	Local []roleServerV2   `json:"local"`
	Peers [][]roleServerV2 `json:"peers"`
}

// roleTarget is what one member should be told.
type roleTarget struct {
	// pod is the member's serving pod, uid its UID: a new pod starts over.
	pod  string
	uid  types.UID
	base string // scheme://ip:port of the management port
	api  string // roleAPIv1 or roleAPIv2
	role v1alpha1.RoleName
	body string // the POST body, JSON
	// peers are the ids the member should report linked.
	peers []int64
}

// roleState is what was last seen of a member.
type roleState struct {
	uid types.UID
	// posted is the body last accepted by the member's pod.
	posted     string
	roleStatus string
	links      map[int64]string
	err        string
}

// linked counts the target's peers whose link is ok.
func (st roleState) linked(t roleTarget) int {
	n := 0
	for _, id := range t.peers {
		if st.links[id] == linkOK {
			n++
		}
	}
	return n
}

// ready: the member took its current peers and serves its role linked to
// all of them.
func (st roleState) ready(t roleTarget) bool {
	return st.uid == t.uid && st.posted == t.body && st.roleStatus == roleStatusReady && st.linked(t) == len(t.peers)
}

// roleAssigner posts roles and reads role statuses in the background.
type roleAssigner struct {
	client   *http.Client
	interval time.Duration
	enqueue  func(key string)

	mu      sync.Mutex
	targets map[string]map[string]roleTarget // server key -> pod -> target
	states  map[string]map[string]roleState
	// busy are the servers a step runs for: the ticker and a kick may
	// send one server twice, and its members are told once at a time.
	busy map[string]bool
	kick chan string
}

func newRoleAssigner(timeout, interval time.Duration, enqueue func(string)) *roleAssigner {
	transport := &http.Transport{
		// Pod serving certificates are not issued for pod IPs, and the
		// controller has no CA of the servers to check them with. What goes
		// over it is the group's layout (ids and pod IPs), which every pod
		// of the namespace can list anyway.
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // see above
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     interval * 2,
	}
	return &roleAssigner{
		client:   &http.Client{Timeout: timeout, Transport: transport},
		interval: interval,
		enqueue:  enqueue,
		targets:  map[string]map[string]roleTarget{},
		states:   map[string]map[string]roleState{},
		busy:     map[string]bool{},
		kick:     make(chan string, 1024),
	}
}

// want sets what the members of a server should be told (nil or empty
// forgets the server) and returns what was last seen of each of them.
func (a *roleAssigner) want(key string, targets []roleTarget) map[string]roleState {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(targets) == 0 {
		delete(a.targets, key)
		delete(a.states, key)
		return nil
	}
	next := map[string]roleTarget{}
	changed := false
	old := a.targets[key]
	for _, t := range targets {
		next[t.pod] = t
		if o, ok := old[t.pod]; !ok || !reflect.DeepEqual(o, t) {
			changed = true
		}
	}
	if len(old) != len(next) {
		changed = true
	}
	a.targets[key] = next
	states := map[string]roleState{}
	for pod, st := range a.states[key] {
		if t, ok := next[pod]; ok && st.uid == t.uid {
			states[pod] = st
		}
	}
	a.states[key] = states
	if changed {
		select {
		case a.kick <- key:
		default: // the periodic round comes soon enough
		}
	}
	out := make(map[string]roleState, len(states))
	for k, v := range states {
		out[k] = v
	}
	return out
}

// run assigns and checks roles until ctx ends, `workers` servers at a time.
func (a *roleAssigner) run(ctx context.Context, workers int) {
	runPerServer(ctx, workers, a.interval, a.kick, func() []string {
		a.mu.Lock()
		defer a.mu.Unlock()
		keys := make([]string, 0, len(a.targets))
		for k := range a.targets {
			keys = append(keys, k)
		}
		return keys
	}, a.step)
}

// step posts the roles a server's members have not taken yet and reads
// every member's status; a change queues the server.
func (a *roleAssigner) step(ctx context.Context, key string) {
	a.mu.Lock()
	if a.busy[key] {
		a.mu.Unlock()
		return
	}
	a.busy[key] = true
	defer func() {
		a.mu.Lock()
		delete(a.busy, key)
		a.mu.Unlock()
	}()
	targets := make([]roleTarget, 0, len(a.targets[key]))
	for _, t := range a.targets[key] {
		targets = append(targets, t)
	}
	a.mu.Unlock()
	sort.Slice(targets, func(i, j int) bool { return targets[i].pod < targets[j].pod })
	changed := false
	for _, t := range targets {
		a.mu.Lock()
		st := a.states[key][t.pod]
		a.mu.Unlock()
		if st.uid != t.uid {
			st = roleState{uid: t.uid}
		}
		next := a.assign(ctx, t, st)
		a.mu.Lock()
		cur, ok := a.targets[key][t.pod]
		if ok && reflect.DeepEqual(cur, t) && a.states[key] != nil {
			a.states[key][t.pod] = next
			changed = changed || !reflect.DeepEqual(st, next)
		}
		a.mu.Unlock()
		if next.err != "" {
			klog.V(4).InfoS("Assigning a Prefill/Decode role failed", "inferserver", key, "pod", t.pod, "err", next.err)
		}
	}
	if changed {
		a.enqueue(key)
	}
}

// assign posts the target's role when the pod has not taken that body,
// then reads its status.
func (a *roleAssigner) assign(ctx context.Context, t roleTarget, st roleState) roleState {
	st.err = ""
	if st.posted != t.body {
		if err := a.post(ctx, t); err != nil {
			st.err = err.Error()
			return st
		}
		st.posted = t.body
		st.roleStatus, st.links = "", nil
	}
	status, links, err := a.status(ctx, t)
	if err != nil {
		st.err = err.Error()
		return st
	}
	st.roleStatus, st.links = status, links
	if status == roleStatusUnknown || status == "" {
		// The server lost its role (its container restarted): tell it again.
		st.posted = ""
	}
	return st
}

func (a *roleAssigner) post(ctx context.Context, t roleTarget) error {
	url := t.base + "/" + t.api + "/role/" + string(t.role)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader([]byte(t.body)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// statusReply is the part of GET /v1/status (/v2/status) the assigner
// reads. In v2 a peer's target is its instance id, as in v1.
type statusReply struct {
	Service struct {
		RoleStatus string `json:"roleStatus"`
	} `json:"service"`
	LinkStatus struct {
		Peers []struct {
			Target int64  `json:"target"`
			Link   string `json:"link"`
		} `json:"peers"`
	} `json:"linkStatus"`
}

func (a *roleAssigner) status(ctx context.Context, t roleTarget) (string, map[int64]string, error) {
	url := t.base + "/" + t.api + "/status"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", nil, err
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return "", nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return "", nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	var r statusReply
	if err := json.Unmarshal(body, &r); err != nil {
		return "", nil, fmt.Errorf("GET %s: %w", url, err)
	}
	links := map[int64]string{}
	for _, p := range r.LinkStatus.Peers {
		links[p.Target] = p.Link
	}
	return r.Service.RoleStatus, links, nil
}

// groupMember is a member of an observed group with its pods.
type groupMember struct {
	member
	id  int64
	pod *corev1.Pod // its serving pod (the first); nil: missing
	// pods are all its pods by rank in the member; nil: missing.
	pods []*corev1.Pod
}

// servingMembers are a group's members with their pods.
func servingMembers(in *instance) []groupMember {
	s := in.shape
	out := make([]groupMember, 0, len(in.pods))
	for _, m := range groupMembers(s) {
		pods := memberView(in, m).pods
		out = append(out, groupMember{member: m, id: pdID(in.index, m.ordinal), pod: pods[0], pods: pods})
	}
	return out
}

// addressed: the pod runs, is ready and has its IP, so it can be told its
// role and be a peer.
func addressed(p *corev1.Pod) bool {
	return p != nil && p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && podstatus.Serving(p) && p.Status.PodIP != ""
}

// memberAddressed: every pod of the member is addressed.
func memberAddressed(m groupMember) bool {
	for _, p := range m.pods {
		if !addressed(p) {
			return false
		}
	}
	return true
}

// devicesOf are the NPUs of the member's pods as the role API names them;
// none (empty lists) while a pod has no NPUs known.
func devicesOf(s *v1alpha1.InferServer, m groupMember) [][]mindieDevice {
	devices, err := memberDevices(s, m.member, m.pods)
	if err != nil {
		devices = make([][]mindieDevice, len(m.pods))
		for i := range devices {
			devices[i] = []mindieDevice{}
		}
	}
	return devices
}

// roleEntry is a single-node member as a role POST (v1) names it.
func roleEntry(s *v1alpha1.InferServer, m groupMember) roleServerEntry {
	return roleServerEntry{ID: m.id, ServerIP: m.pod.Status.PodIP, HostIP: m.pod.Status.HostIP, Device: devicesOf(s, m)[0]}
}

// roleServersV2 are the servers of a member as a role POST (v2) names
// them: one per pod, in rank order (the first is the member's master,
// which holds rank 0).
func roleServersV2(s *v1alpha1.InferServer, m groupMember) []roleServerV2 {
	devices := devicesOf(s, m)
	out := make([]roleServerV2, 0, len(m.pods))
	for i, p := range m.pods {
		out = append(out, roleServerV2{ServerIP: p.Status.PodIP, HostIP: p.Status.HostIP,
			DPInstList: []dpInstance{{DPInstID: m.id * dpInstanceIDs, Device: devices[i]}}})
	}
	return out
}

// roleTargets are what the addressed members of a group should be told:
// their id (v1) or servers (v2), and every addressed member of the other
// role as peers.
func roleTargets(in *instance) []roleTarget {
	s := in.shape
	members := servingMembers(in)
	scheme := "http"
	if s.Spec.TLS.Enabled {
		scheme = "https"
	}
	api := roleAPI(s)
	var out []roleTarget
	for _, m := range members {
		if !memberAddressed(m) {
			continue
		}
		var peers []int64
		var body any
		switch api {
		case roleAPIv2:
			b := roleBodyV2{Local: roleServersV2(s, m), Peers: [][]roleServerV2{}}
			for _, o := range members {
				if o.role == m.role || !memberAddressed(o) {
					continue
				}
				b.Peers = append(b.Peers, roleServersV2(s, o))
				peers = append(peers, o.id)
			}
			body = b
		default:
			b := roleBody{Local: roleEntry(s, m), Peers: []roleServerEntry{}}
			for _, o := range members {
				if o.role == m.role || !memberAddressed(o) {
					continue
				}
				b.Peers = append(b.Peers, roleEntry(s, o))
				peers = append(peers, o.id)
			}
			body = b
		}
		raw, err := json.Marshal(body)
		if err != nil {
			panic(err) // plain structs
		}
		out = append(out, roleTarget{
			pod: m.pod.Name, uid: m.pod.UID, api: api, role: m.role, body: string(raw), peers: peers,
			base: scheme + "://" + net.JoinHostPort(m.pod.Status.PodIP, strconv.Itoa(int(managementPort(s)))),
		})
	}
	return out
}

// assignRoles tells the role assigner what every group's members should
// be told, records what it last saw on each group, and makes a group
// ready only when every member is ready and linked to all its peers.
func (c *Controller) assignRoles(s *v1alpha1.InferServer, observed []*instance) {
	var targets []roleTarget
	byGroup := map[string][]roleTarget{}
	for _, in := range observed {
		if in.terminating {
			continue
		}
		ts := roleTargets(in)
		byGroup[in.name] = ts
		targets = append(targets, ts...)
	}
	states := c.pdRoles.want(serverKey(s), targets)
	for _, in := range observed {
		if in.terminating {
			continue
		}
		tByPod := map[string]roleTarget{}
		for _, t := range byGroup[in.name] {
			tByPod[t.pod] = t
		}
		in.members = memberStatuses(in, tByPod, states)
		for _, m := range in.members {
			if m.Message != "" {
				in.ready = false
			}
		}
	}
}

// memberStatuses are what a group's members were told and last said.
func memberStatuses(in *instance, tByPod map[string]roleTarget, states map[string]roleState) []v1alpha1.GroupMemberStatus {
	var out []v1alpha1.GroupMemberStatus
	for _, m := range servingMembers(in) {
		ms := v1alpha1.GroupMemberStatus{Name: m.name(), Role: m.role, PDID: m.id}
		if m.pod != nil {
			ms.Pod = m.pod.Name
		}
		t, told := tByPod[ms.Pod]
		st := states[ms.Pod]
		switch {
		case !told && m.multiNode():
			ms.Message = fmt.Sprintf("waiting for its %d pods to be ready", m.nodes)
		case !told:
			ms.Message = "waiting for its pod to be ready"
		default:
			ms.Peers = int32(len(t.peers))
			if st.posted == t.body {
				ms.RoleStatus = st.roleStatus
			}
			ms.LinkedPeers = int32(st.linked(t))
			if !st.ready(t) {
				ms.Message = memberWaiting(t, st)
			}
		}
		out = append(out, ms)
	}
	return out
}

// memberWaiting says what a member that is not linked waits for.
func memberWaiting(t roleTarget, st roleState) string {
	switch {
	case st.err != "":
		return st.err
	case st.posted != t.body:
		return "waiting for its role to be posted"
	case st.roleStatus != roleStatusReady:
		return "role " + string(t.role) + " is " + orUnknown(st.roleStatus)
	}
	var missing []string
	for _, id := range t.peers {
		if st.links[id] != linkOK {
			missing = append(missing, fmt.Sprintf("%d (%s)", id, orUnknown(st.links[id])))
		}
	}
	return "peers not linked: " + strings.Join(missing, ", ")
}

func orUnknown(s string) string {
	if s == "" {
		return "not reported"
	}
	return s
}

// groupWaiting says what a group whose pods are ready waits for: its first
// member that is not linked.
func groupWaiting(members []v1alpha1.GroupMemberStatus) string {
	for _, m := range members {
		if m.Message != "" {
			return fmt.Sprintf("member %s (%s, id %d): %s", m.Name, m.Role, m.PDID, m.Message)
		}
	}
	return "waiting for the members' roles"
}

// describeMembers lists a group's members for an event: "p0 (prefill, id
// 0), d0 (decode, id 2)".
func describeMembers(members []v1alpha1.GroupMemberStatus) string {
	parts := make([]string, 0, len(members))
	for _, m := range members {
		parts = append(parts, fmt.Sprintf("%s (%s, id %d)", m.Name, m.Role, m.PDID))
	}
	return strings.Join(parts, ", ")
}

// groupShape describes a group's members for events.
func groupShape(s *v1alpha1.InferServer) string {
	var parts []string
	for _, name := range roleOrder {
		if r := roleSpec(s, name); r != nil {
			parts = append(parts, fmt.Sprintf("%d %s", *r.Instances, name))
		}
	}
	return strings.Join(parts, ", ") + " instances"
}

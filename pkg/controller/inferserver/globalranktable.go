package inferserver

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/ascend"
)

// The global ranktable of a Prefill/Decode server: MindIE's
// global_ranktable.json (../shared/docs/mindie-coordinator.md §3.2), which
// MindIE's Controller reads to know its Coordinators and servers. Here the
// controller plays MindIE's Controller (roles.go) and mindie-router its
// Coordinator, so nothing of this project reads the file: it is written
// for tools and operators who know MindIE's, and it says where every
// instance runs. One ConfigMap per server, v1alpha1.GlobalRanktableName,
// key v1alpha1.GlobalRanktableKey, owned by the InferServer:
//
//   - group "0", the Coordinators: the router pods with their IPs (server_id
//     the node's IP, server_ip the pod's), no devices. MindIE's Controller
//     takes at most 2; mindie-router's replicas are all listed.
//   - group "1", the Controller: no server. No MindIE Controller runs; its
//     part is this controller's, inside the API server, which has no
//     address of its own to write there truthfully.
//   - groups "2", "3", ...: one per instance, that is per member of every
//     group, in group then rank order, with deploy_server "2" for a prefill
//     member and "1" for a decode member, and one server per pod of the
//     member (server_id its node's IP, server_ip its IP, predict_port and
//     mgmt_port its ports, metric_port its inference port, which serves
//     /metrics) with its NPUs: device_id and device_ip from the device
//     plugin's annotations, device_logical_id the chip's position in the
//     pod, rank_id its rank in the member, as in the member's HCCL ranktable.
//     (MindIE's own loader reads a non-zero deploy_server as a group of
//     data-parallel servers; the role it names is what counts here.)
//
// Status is "completed" when every member pod of every group (being
// created, serving, or rolled out) has its IP and NPUs, else
// "initializing", and a member whose pods are not all up is left out.
// The ConfigMap is applied again whenever that changes: a member's pods
// replaced, a group added or removed.

// The server groups MindIE's Controller knows by id.
const (
	globalGroupCoordinators = 0
	globalGroupController   = 1
	globalGroupFirstServer  = 2
)

// deployServer is a group's deploy_server: what role its instance takes.
var deployServer = map[v1alpha1.RoleName]string{v1alpha1.RolePrefill: "2", v1alpha1.RoleDecode: "1"}

// globalRanktableVersion is the version MindIE's global ranktable has.
const globalRanktableVersion = "1.0"

// ReasonGlobalRanktableCompleted is the event of a global ranktable that
// became complete.
const ReasonGlobalRanktableCompleted = "GlobalRanktableCompleted"

// globalRanktable is MindIE's global_ranktable.json: every number a string.
type globalRanktable struct {
	Version         string        `json:"version"`
	Status          string        `json:"status"`
	ServerGroupList []serverGroup `json:"server_group_list"`
}

// serverGroup is one group of a global ranktable.
type serverGroup struct {
	GroupID      string         `json:"group_id"`
	DeployServer string         `json:"deploy_server,omitempty"`
	ServerCount  string         `json:"server_count"`
	ServerList   []globalServer `json:"server_list"`
}

// globalServer is one pod in a global ranktable.
type globalServer struct {
	ServerID    string         `json:"server_id"`
	ServerIP    string         `json:"server_ip"`
	PredictPort string         `json:"predict_port,omitempty"`
	MgmtPort    string         `json:"mgmt_port,omitempty"`
	MetricPort  string         `json:"metric_port,omitempty"`
	Device      []mindieDevice `json:"device,omitempty"`
}

// mindieDevice is an NPU as MindIE's global ranktable and role API name it.
type mindieDevice struct {
	DeviceID        string `json:"device_id"`
	DeviceIP        string `json:"device_ip"`
	DeviceLogicalID string `json:"device_logical_id"`
	RankID          string `json:"rank_id"`
}

// memberDevices are the NPUs of a member's pods, given in rank order and
// all present: per pod, its chips in chip order, ranked across the member
// as in its HCCL ranktable. It says why not when a pod has no IP or NPUs
// yet.
func memberDevices(s *v1alpha1.InferServer, m member, pods []*corev1.Pod) ([][]mindieDevice, error) {
	rt, err := buildRanktable(roleServer(s, m.role), pods)
	if err != nil {
		return nil, err
	}
	out := make([][]mindieDevice, len(rt.ServerList))
	for i, srv := range rt.ServerList {
		out[i] = make([]mindieDevice, 0, len(srv.Device))
		for j, d := range srv.Device {
			out[i] = append(out[i], mindieDevice{DeviceID: d.DeviceID, DeviceIP: d.DeviceIP, DeviceLogicalID: strconv.Itoa(j), RankID: d.RankID})
		}
	}
	return out, nil
}

// up says whether a pod counts in the global ranktable: not going away,
// with its IPs.
func up(p *corev1.Pod) bool {
	return p != nil && p.DeletionTimestamp == nil && !isTerminal(p) && p.Status.PodIP != "" && p.Status.HostIP != ""
}

// containerPort is the port of that name of the pod's server container,
// as a string ("" when it has none).
func containerPort(p *corev1.Pod, name string) string {
	for _, c := range p.Spec.Containers {
		if c.Name != containerName {
			continue
		}
		for _, port := range c.Ports {
			if port.Name == name {
				return strconv.Itoa(int(port.ContainerPort))
			}
		}
	}
	return ""
}

// memberGroup is the server group of one member, and whether all its pods
// are in it (false: it is left out, and the table is not complete).
func memberGroup(s *v1alpha1.InferServer, m member, pods []*corev1.Pod) (serverGroup, bool) {
	for _, p := range pods {
		if !up(p) {
			return serverGroup{}, false
		}
	}
	devices, err := memberDevices(s, m, pods)
	if err != nil {
		return serverGroup{}, false
	}
	g := serverGroup{DeployServer: deployServer[m.role], ServerCount: strconv.Itoa(len(pods))}
	for i, p := range pods {
		inference := containerPort(p, portInference)
		g.ServerList = append(g.ServerList, globalServer{
			ServerID: p.Status.HostIP, ServerIP: p.Status.PodIP,
			PredictPort: inference, MgmtPort: containerPort(p, portManagement), MetricPort: inference,
			Device: devices[i],
		})
	}
	return g, true
}

// buildGlobalRanktable is the global ranktable of a PD server's groups
// (by index) and router pods.
func buildGlobalRanktable(s *v1alpha1.InferServer, groups []*instance, routers []*corev1.Pod) globalRanktable {
	rt := globalRanktable{Version: globalRanktableVersion, Status: ascend.RanktableCompleted}
	coordinators := serverGroup{GroupID: strconv.Itoa(globalGroupCoordinators), ServerList: []globalServer{}}
	for _, p := range routers {
		if up(p) {
			coordinators.ServerList = append(coordinators.ServerList, globalServer{ServerID: p.Status.HostIP, ServerIP: p.Status.PodIP})
		}
	}
	coordinators.ServerCount = strconv.Itoa(len(coordinators.ServerList))
	rt.ServerGroupList = append(rt.ServerGroupList, coordinators,
		serverGroup{GroupID: strconv.Itoa(globalGroupController), ServerCount: "0", ServerList: []globalServer{}})
	next := globalGroupFirstServer
	for _, in := range groups {
		shape := groupShapeOf(s, in)
		for _, m := range groupMembers(shape) {
			g, ok := memberGroup(shape, m, memberView(in, m).pods)
			if !ok {
				rt.Status = ascend.RanktableInitializing
				continue
			}
			g.GroupID = strconv.Itoa(next)
			next++
			rt.ServerGroupList = append(rt.ServerGroupList, g)
		}
	}
	return rt
}

// formatGlobalRanktable is the global_ranktable.json of rt.
func formatGlobalRanktable(rt globalRanktable) string {
	b, err := json.Marshal(rt)
	if err != nil {
		panic(err) // strings and plain structs
	}
	return string(b)
}

// globalRanktableConfigMap is the ConfigMap of a global ranktable.
func globalRanktableConfigMap(s *v1alpha1.InferServer, rt globalRanktable) *corev1ac.ConfigMapApplyConfiguration {
	return corev1ac.ConfigMap(v1alpha1.GlobalRanktableName(s.Name), s.Namespace).
		WithLabels(serverLabels(s)).
		WithOwnerReferences(ownerRefApply(s)).
		WithData(map[string]string{v1alpha1.GlobalRanktableKey: formatGlobalRanktable(rt)})
}

// routerPodsOf are the router pods of s, by name (none without a router
// informer).
func (c *Controller) routerPodsOf(s *v1alpha1.InferServer) []*corev1.Pod {
	if c.children.routerPods == nil || s.Spec.Router == nil {
		return nil
	}
	pods := labelled[*corev1.Pod](c.children.routerPods, s)
	sort.Slice(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
	return pods
}

// syncGlobalRanktable applies the global ranktable of a PD server from its
// current groups: those observed and kept (healthy, not gone) and those
// this sync created.
func (c *Controller) syncGlobalRanktable(ctx context.Context, s *v1alpha1.InferServer, healthy []*instance, gone map[string]bool, created []*instance) error {
	var groups []*instance
	seen := map[string]bool{}
	for _, in := range append(append([]*instance{}, healthy...), created...) {
		if gone[in.name] || seen[in.name] {
			continue
		}
		seen[in.name] = true
		groups = append(groups, in)
	}
	sort.Slice(groups, func(i, j int) bool { return groups[i].index < groups[j].index })
	rt := buildGlobalRanktable(s, groups, c.routerPodsOf(s))
	live, wrote, err := applyChild(ctx, c, s, c.configMapChild(s.Namespace), v1alpha1.GlobalRanktableName(s.Name), globalRanktableConfigMap(s, rt))
	if err != nil {
		return err
	}
	if wrote && rt.Status == ascend.RanktableCompleted {
		var before globalRanktable
		if live != nil {
			_ = json.Unmarshal([]byte(live.Data[v1alpha1.GlobalRanktableKey]), &before)
		}
		if before.Status != ascend.RanktableCompleted {
			c.recorder.Eventf(s, corev1.EventTypeNormal, ReasonGlobalRanktableCompleted, "Global ranktable %s completed: %s",
				v1alpha1.GlobalRanktableName(s.Name), describeGlobalRanktable(rt))
		}
	}
	return nil
}

// describeGlobalRanktable says what a global ranktable holds, for events:
// "2 coordinators, 3 instances (2 prefill, 1 decode) on 4 servers".
func describeGlobalRanktable(rt globalRanktable) string {
	coordinators, instances, servers := 0, 0, 0
	roles := map[string]int{}
	for _, g := range rt.ServerGroupList {
		id, _ := strconv.Atoi(g.GroupID)
		switch {
		case id == globalGroupCoordinators:
			coordinators = len(g.ServerList)
		case id >= globalGroupFirstServer:
			instances++
			servers += len(g.ServerList)
			roles[g.DeployServer]++
		}
	}
	return fmt.Sprintf("%d coordinators, %d instances (%d prefill, %d decode) on %d servers", coordinators, instances,
		roles[deployServer[v1alpha1.RolePrefill]], roles[deployServer[v1alpha1.RoleDecode]], servers)
}

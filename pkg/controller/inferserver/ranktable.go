package inferserver

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mindie.io/deployer/apis/infer/v1alpha1"
)

// Ranktable states, as the Ascend Operator writes them.
const (
	RanktableInitializing = "initializing"
	RanktableCompleted    = "completed"
)

// annotationRanktablePods records, on a completed ranktable, the UIDs of
// the pods it was written for; a ranktable of other pods is stale.
const annotationRanktablePods = "infer.mindie.io/ranktable-pods"

// annotationDeviceConfig is where the Ascend device plugin describes the
// chips it gave a pod, with their device IPs.
const annotationDeviceConfig = "ascend.kubectl.kubernetes.io/ascend-910-configuration"

// Ranktable is the HCCL ranktable (hccl.json) of one instance, in the
// Ascend Operator's format: every number is a string.
type Ranktable struct {
	Status      string            `json:"status"`
	Version     string            `json:"version,omitempty"`
	ServerCount string            `json:"server_count,omitempty"`
	ServerList  []RanktableServer `json:"server_list,omitempty"`
}

// RanktableServer is one pod of the instance.
type RanktableServer struct {
	ServerID    string            `json:"server_id"`
	HostIP      string            `json:"host_ip,omitempty"`
	ContainerIP string            `json:"container_ip"`
	Device      []RanktableDevice `json:"device"`
}

// RanktableDevice is one NPU with its global rank.
type RanktableDevice struct {
	DeviceID string `json:"device_id"`
	DeviceIP string `json:"device_ip,omitempty"`
	RankID   string `json:"rank_id"`
}

// deviceConfig is the device plugin's ascend-910-configuration annotation.
type deviceConfig struct {
	PodName  string `json:"pod_name"`
	ServerID string `json:"server_id"`
	HostIP   string `json:"host_ip"`
	Devices  []struct {
		DeviceID string `json:"device_id"`
		DeviceIP string `json:"device_ip"`
	} `json:"devices"`
}

// initialRanktable is the ConfigMap a new instance starts with.
func initialRanktable(s *v1alpha1.InferServer, instance string) *corev1.ConfigMap {
	data, _ := json.Marshal(Ranktable{Status: RanktableInitializing})
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: childMeta(s, ranktableName(instance)),
		Data:       map[string]string{ranktableKey: string(data)},
	}
	cm.Labels[v1alpha1.LabelInstance] = instance
	cm.Labels[labelRingController] = ringController(s)
	return cm
}

// parseRanktable reads a ranktable ConfigMap.
func parseRanktable(cm *corev1.ConfigMap) (Ranktable, error) {
	var rt Ranktable
	if err := json.Unmarshal([]byte(cm.Data[ranktableKey]), &rt); err != nil {
		return rt, fmt.Errorf("configmap %s: %s is not a ranktable: %w", cm.Name, ranktableKey, err)
	}
	return rt, nil
}

// podUIDs lists the pods' UIDs in rank order, comma-separated.
func podUIDs(pods []*corev1.Pod) string {
	ids := make([]string, len(pods))
	for i, p := range pods {
		ids[i] = string(p.UID)
	}
	return strings.Join(ids, ",")
}

// buildRanktable fills the ranktable of an instance from its pods, which
// must be given in rank order. It says why when the pods are not far
// enough along: each needs a pod IP, a host IP and its NPUs.
func buildRanktable(s *v1alpha1.InferServer, pods []*corev1.Pod) (Ranktable, error) {
	rt := Ranktable{Status: RanktableCompleted, Version: "1.0", ServerCount: strconv.Itoa(len(pods))}
	rank := 0
	for _, p := range pods {
		if p.Status.PodIP == "" || p.Status.HostIP == "" {
			return rt, fmt.Errorf("pod %s has no IP yet", p.Name)
		}
		chips := chipsOf(s, p)
		if len(chips) == 0 {
			return rt, fmt.Errorf("pod %s has no %s annotation yet", p.Name, npuResource(s))
		}
		ips := map[string]string{}
		var cfg deviceConfig
		if raw := p.Annotations[annotationDeviceConfig]; raw != "" && json.Unmarshal([]byte(raw), &cfg) == nil {
			for _, d := range cfg.Devices {
				ips[d.DeviceID] = d.DeviceIP
			}
		}
		srv := RanktableServer{ServerID: p.Status.HostIP, HostIP: p.Status.HostIP, ContainerIP: p.Status.PodIP}
		for _, chip := range chips {
			id := chip[strings.LastIndex(chip, "-")+1:]
			srv.Device = append(srv.Device, RanktableDevice{DeviceID: id, DeviceIP: ips[id], RankID: strconv.Itoa(rank)})
			rank++
		}
		rt.ServerList = append(rt.ServerList, srv)
	}
	return rt, nil
}

// chipsOf is the device plugin's chip list of a pod ("Ascend910-0", ...),
// sorted by chip number.
func chipsOf(s *v1alpha1.InferServer, p *corev1.Pod) []string {
	raw := p.Annotations[string(npuResource(s))]
	if raw == "" {
		return nil
	}
	chips := strings.Split(raw, ",")
	num := func(c string) int {
		n, _ := strconv.Atoi(c[strings.LastIndex(c, "-")+1:])
		return n
	}
	sort.SliceStable(chips, func(i, j int) bool { return num(chips[i]) < num(chips[j]) })
	return chips
}

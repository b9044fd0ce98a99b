package ascend

import (
	"encoding/json"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
)

// RanktableFile is the key of the ranktable in its ConfigMap, and so its
// file name where the ConfigMap is mounted.
const RanktableFile = "hccl.json"

// RanktableMountPath is where a workload's containers mount their
// ranktable ConfigMap.
const RanktableMountPath = "/user/serverid/devindex/config"

// RanktableVersion is the Version of a completed ranktable.
const RanktableVersion = "1.0"

// Ranktable states. A container waits until its ranktable is completed.
const (
	RanktableInitializing = "initializing"
	RanktableCompleted    = "completed"
)

// RanktableConfigMapName is the ConfigMap the Ascend Operator fills with
// the ranktable of a workload.
func RanktableConfigMapName(workload string) string { return "rings-config-" + workload }

// Ranktable is an HCCL ranktable (hccl.json): every number is a string.
type Ranktable struct {
	Status      string            `json:"status"`
	Version     string            `json:"version,omitempty"`
	ServerCount string            `json:"server_count,omitempty"`
	ServerList  []RanktableServer `json:"server_list,omitempty"`
}

// RanktableServer is one pod of the workload.
type RanktableServer struct {
	ServerID    string            `json:"server_id"`
	HostIP      string            `json:"host_ip,omitempty"`
	ContainerIP string            `json:"container_ip"`
	Device      []RanktableDevice `json:"device"`
}

// RanktableDevice is one chip with its global rank.
type RanktableDevice struct {
	DeviceID string `json:"device_id"`
	DeviceIP string `json:"device_ip,omitempty"`
	RankID   string `json:"rank_id"`
}

// ParseRanktable reads a RanktableFile.
func ParseRanktable(data string) (Ranktable, error) {
	var rt Ranktable
	if err := json.Unmarshal([]byte(data), &rt); err != nil {
		return rt, fmt.Errorf("%s is not a ranktable: %w", RanktableFile, err)
	}
	return rt, nil
}

// FormatRanktable is the RanktableFile of rt.
func FormatRanktable(rt Ranktable) string {
	b, _ := json.Marshal(rt) // strings only: cannot fail
	return string(b)
}

// BuildRanktable fills a completed ranktable from the pods of a workload,
// given in rank order, the way the Ascend Operator does: one server per
// pod, its chips of npuType (from the chip list annotation) in chip order
// with their device IPs (from AnnotationAscend910Configuration) and global
// ranks counted across the pods. It says why when the pods are not far
// enough along: each needs a pod IP, a host IP and its chips.
func BuildRanktable(npuType string, pods []*corev1.Pod) (Ranktable, error) {
	rt := Ranktable{Status: RanktableCompleted, Version: RanktableVersion, ServerCount: strconv.Itoa(len(pods))}
	rank := 0
	for _, p := range pods {
		if p.Status.PodIP == "" || p.Status.HostIP == "" {
			return rt, fmt.Errorf("pod %s has no IP yet", p.Name)
		}
		chips := PodChips(p, npuType)
		if len(chips) == 0 {
			return rt, fmt.Errorf("pod %s has no %s annotation yet", p.Name, ChipListAnnotation(npuType))
		}
		var ips map[string]string
		if raw := p.Annotations[AnnotationAscend910Configuration]; raw != "" {
			if cfg, err := ParsePodConfiguration(raw); err == nil {
				ips = cfg.DeviceIPs()
			}
		}
		srv := RanktableServer{ServerID: p.Status.HostIP, HostIP: p.Status.HostIP, ContainerIP: p.Status.PodIP}
		for _, chip := range chips {
			_, index, err := ParseChipName(chip)
			if err != nil {
				return rt, fmt.Errorf("pod %s: annotation %s: %w", p.Name, ChipListAnnotation(npuType), err)
			}
			id := strconv.Itoa(index)
			srv.Device = append(srv.Device, RanktableDevice{DeviceID: id, DeviceIP: ips[id], RankID: strconv.Itoa(rank)})
			rank++
		}
		rt.ServerList = append(rt.ServerList, srv)
	}
	return rt, nil
}

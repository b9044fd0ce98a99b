package ascend

import (
	"encoding/json"
	"fmt"
)

// AnnotationAscend910Configuration is the pod annotation in which the device
// plugin describes the chips it gave the pod, with their device IPs: a JSON
// PodConfiguration. The Ascend Operator fills ranktables from it.
const AnnotationAscend910Configuration = "ascend.kubectl.kubernetes.io/ascend-910-configuration"

// PodConfiguration is the value of AnnotationAscend910Configuration.
type PodConfiguration struct {
	PodName string `json:"pod_name"`
	// ServerID and HostIP are the node's IP (the pod's hostIP).
	ServerID string `json:"server_id"`
	HostIP   string `json:"host_ip"`
	// Devices are the pod's chips in chip order.
	Devices []PodDevice `json:"devices"`
}

// PodDevice is one chip of a PodConfiguration.
type PodDevice struct {
	// DeviceID is the chip's index on its node ("0" for Ascend910-0).
	DeviceID string `json:"device_id"`
	// DeviceIP is the address HCCL uses to reach the chip.
	DeviceIP string `json:"device_ip"`
}

// ParsePodConfiguration reads an AnnotationAscend910Configuration value.
func ParsePodConfiguration(raw string) (PodConfiguration, error) {
	var c PodConfiguration
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		return c, fmt.Errorf("annotation %s: %w", AnnotationAscend910Configuration, err)
	}
	return c, nil
}

// FormatPodConfiguration is the AnnotationAscend910Configuration value of c.
func FormatPodConfiguration(c PodConfiguration) string {
	if c.Devices == nil {
		c.Devices = []PodDevice{}
	}
	b, _ := json.Marshal(c) // strings only: cannot fail
	return string(b)
}

// DeviceIPs maps each device ID of c to its device IP.
func (c PodConfiguration) DeviceIPs() map[string]string {
	ips := make(map[string]string, len(c.Devices))
	for _, d := range c.Devices {
		ips[d.DeviceID] = d.DeviceIP
	}
	return ips
}

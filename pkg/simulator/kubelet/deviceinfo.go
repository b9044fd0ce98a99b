package kubelet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

// Fault levels of the Ascend device plugin.
const (
	FaultNotHandle       = "NotHandleFault"
	FaultRestartRequest  = "RestartRequest"
	FaultRestartBusiness = "RestartBusiness"
	FaultRestartNPU      = "RestartNPU"
	FaultSeparateNPU     = "SeparateNPU"
)

// unhealthyLevel reports whether a chip with this fault level is listed
// as unhealthy (and so not allocatable).
func unhealthyLevel(level string) bool {
	return level != "" && level != FaultNotHandle && level != FaultRestartRequest
}

// DeviceInfo is the DeviceInfo object of the device plugin's ConfigMap.
type DeviceInfo struct {
	DeviceList map[string]string
	UpdateTime int64
}

// DeviceInfoCfg is the JSON document under the ConfigMap key DeviceInfoCfg.
type DeviceInfoCfg struct {
	DeviceInfo DeviceInfo
	CheckCode  string
}

// FaultInfo is one element of the huawei.com/<type>-Fault list.
type FaultInfo struct {
	FaultType            string   `json:"fault_type"`
	NPUName              string   `json:"npu_name"`
	LargeModelFaultLevel string   `json:"large_model_fault_level"`
	FaultLevel           string   `json:"fault_level"`
	FaultHandling        string   `json:"fault_handling"`
	FaultCode            string   `json:"fault_code"`
	FaultTimeAndLevelMap struct{} `json:"fault_time_and_level_map"`
}

// CheckCode returns the checksum the device plugin puts next to a
// DeviceInfo: the SHA-256, in hex, of its JSON encoding.
func CheckCode(info DeviceInfo) (string, error) {
	b, err := json.Marshal(info)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

func (s *Simulator) deviceInfo(node string) DeviceInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	var healthy, unhealthy []string
	faults := []FaultInfo{}
	for i, c := range s.nodes[node].chips {
		name := s.chipName(i)
		if unhealthyLevel(c.fault) {
			unhealthy = append(unhealthy, name)
		} else {
			healthy = append(healthy, name)
		}
		if c.fault != "" {
			faults = append(faults, FaultInfo{FaultType: "CardUnhealthy", NPUName: name, LargeModelFaultLevel: c.fault,
				FaultLevel: c.fault, FaultHandling: c.fault, FaultCode: "80E01801"})
		}
	}
	faultJSON, _ := json.Marshal(faults)
	res := ResourcePrefix + s.cfg.NPUType
	return DeviceInfo{
		DeviceList: map[string]string{
			res:                       strings.Join(healthy, ","),
			res + "-Unhealthy":        strings.Join(unhealthy, ","),
			res + "-NetworkUnhealthy": "",
			res + "-Fault":            string(faultJSON),
		},
		UpdateTime: time.Now().Unix(),
	}
}

// writeDeviceInfo creates or rewrites the node's device info ConfigMap.
func (s *Simulator) writeDeviceInfo(ctx context.Context, node string) error {
	info := s.deviceInfo(node)
	code, err := CheckCode(info)
	if err != nil {
		return err
	}
	doc, err := json.Marshal(DeviceInfoCfg{DeviceInfo: info, CheckCode: code})
	if err != nil {
		return err
	}
	cms := s.cfg.Client.CoreV1().ConfigMaps(DeviceInfoNamespace)
	name := DeviceInfoPrefix + node
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := cms.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = cms.Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: DeviceInfoNamespace, Labels: map[string]string{SimulatedLabel: "true"}},
				Data:       map[string]string{DeviceInfoKey: string(doc)},
			}, metav1.CreateOptions{})
			return err
		}
		if err != nil {
			return err
		}
		if cur.Data == nil {
			cur.Data = map[string]string{}
		}
		cur.Data[DeviceInfoKey] = string(doc)
		_, err = cms.Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
}

// SetNPUFault sets the fault level of chip (0-based) on node; "" clears
// it. Chips with a level other than NotHandleFault and RestartRequest are
// listed as unhealthy, leave the node's allocatable and get no new pods.
// The device info ConfigMap and node status are rewritten.
func (s *Simulator) SetNPUFault(node string, chipIndex int, level string) error {
	s.mu.Lock()
	ns, ok := s.nodes[node]
	if ok && (chipIndex < 0 || chipIndex >= len(ns.chips)) {
		s.mu.Unlock()
		return fmt.Errorf("node %s has no chip %d", node, chipIndex)
	}
	if ok {
		ns.chips[chipIndex].fault = level
	}
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("no simulated node %q", node)
	}
	s.logf("node %s: chip %s fault level %q (fault injection)", node, s.chipName(chipIndex), level)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.writeDeviceInfo(ctx, node); err != nil {
		return err
	}
	return s.updateNodeStatus(ctx, node)
}

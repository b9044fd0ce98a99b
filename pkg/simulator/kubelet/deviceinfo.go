package kubelet

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"mindie.io/deployer/pkg/ascend"
)

// unhealthyLevel reports whether a chip with this fault level is listed
// as unhealthy (and so not allocatable).
func unhealthyLevel(level string) bool {
	return level != "" && level != ascend.FaultNotHandle && level != ascend.FaultRestartRequest
}

func (s *Simulator) deviceInfo(node string) ascend.DeviceInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	var healthy, unhealthy []string
	faults := []ascend.FaultInfo{}
	for i, c := range s.nodes[node].chips {
		name := s.chipName(i)
		if unhealthyLevel(c.fault) {
			unhealthy = append(unhealthy, name)
		} else {
			healthy = append(healthy, name)
		}
		if c.fault != "" {
			faults = append(faults, ascend.FaultInfo{FaultType: "CardUnhealthy", NPUName: name, LargeModelFaultLevel: c.fault,
				FaultLevel: c.fault, FaultHandling: c.fault, FaultCode: "80E01801"})
		}
	}
	faultJSON, _ := json.Marshal(faults)
	t := s.cfg.NPUType
	return ascend.DeviceInfo{
		DeviceList: map[string]string{
			ascend.HealthyKey(t):          ascend.FormatChipList(healthy),
			ascend.UnhealthyKey(t):        ascend.FormatChipList(unhealthy),
			ascend.NetworkUnhealthyKey(t): "",
			ascend.FaultKey(t):            string(faultJSON),
		},
		UpdateTime: time.Now().Unix(),
	}
}

// writeDeviceInfo creates or rewrites the node's device info ConfigMap.
func (s *Simulator) writeDeviceInfo(ctx context.Context, node string) error {
	doc, err := ascend.FormatDeviceInfoCfg(s.deviceInfo(node))
	if err != nil {
		return err
	}
	cms := s.cfg.Client.CoreV1().ConfigMaps(ascend.DeviceInfoNamespace)
	name := ascend.DeviceInfoConfigMapName(node)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := cms.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = cms.Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ascend.DeviceInfoNamespace, Labels: map[string]string{SimulatedLabel: "true"}},
				Data:       map[string]string{ascend.DeviceInfoKey: doc},
			}, metav1.CreateOptions{})
			return err
		}
		if err != nil {
			return err
		}
		if cur.Data == nil {
			cur.Data = map[string]string{}
		}
		cur.Data[ascend.DeviceInfoKey] = doc
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

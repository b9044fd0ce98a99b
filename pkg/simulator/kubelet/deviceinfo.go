package kubelet

import (
	"context"
	"encoding/json"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"mindie.io/deployer/pkg/ascend"
)

func (s *Simulator) deviceInfo(node string) ascend.DeviceInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	var healthy, unhealthy []string
	faults := []ascend.FaultInfo{}
	ns := s.nodes[node]
	for i, c := range ns.chips {
		name := ns.chipName(i)
		if chipHealthy(c) {
			healthy = append(healthy, name)
		} else {
			unhealthy = append(unhealthy, name)
		}
		if l, ok := faultLevel(c.fault); ok {
			faults = append(faults, ascend.FaultInfo{FaultType: "CardUnhealthy", NPUName: name, LargeModelFaultLevel: l.name,
				FaultLevel: l.name, FaultHandling: l.name, FaultCode: l.code,
				FaultTimeAndLevelMap: map[string]ascend.FaultTimeAndLevel{l.code: {FaultTime: c.faultTime.UnixMilli(), FaultLevel: l.name}}})
		}
	}
	faultJSON, _ := json.Marshal(faults)
	t := ns.npuType
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

// manuallySeparated is the manuallySeparateNPUKey value of node.
func (s *Simulator) manuallySeparated(node string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	ns := s.nodes[node]
	for i, c := range ns.chips {
		if c.fault == ascend.FaultManuallySeparateNPU {
			names = append(names, ns.chipName(i))
		}
	}
	return ascend.FormatChipList(names)
}

// writeDeviceInfo creates or rewrites the node's device info ConfigMap,
// unless the node is down or has no NPUs (no device plugin runs there).
func (s *Simulator) writeDeviceInfo(ctx context.Context, node string) error {
	if s.nodes[node].npuType == "" {
		return nil
	}
	return skipDown(s.whileUp(node, func() error { return s.writeDeviceInfoCM(ctx, node) }))
}

func (s *Simulator) writeDeviceInfoCM(ctx context.Context, node string) error {
	doc, err := ascend.FormatDeviceInfoCfg(s.deviceInfo(node))
	if err != nil {
		return err
	}
	manual := s.manuallySeparated(node)
	cms := s.cfg.Client.CoreV1().ConfigMaps(ascend.DeviceInfoNamespace)
	name := ascend.DeviceInfoConfigMapName(node)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := cms.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = cms.Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ascend.DeviceInfoNamespace, Labels: map[string]string{SimulatedLabel: "true"}},
				Data:       map[string]string{ascend.DeviceInfoKey: doc, manuallySeparateNPUKey: manual},
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
		cur.Data[manuallySeparateNPUKey] = manual
		_, err = cms.Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
}

package kubelet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"mindie.io/deployer/pkg/ascend"
)

// decodeStrict decodes raw into v, failing on keys v has no field for: the
// simulator must write nothing the package ascend types do not know.
func decodeStrict(t *testing.T, what string, raw string, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s = %s does not decode into %T: %v", what, raw, v, err)
	}
}

// TestContractWithAscend checks that what the simulated device plugin
// writes (node labels and capacity, the device info ConfigMap, the pod
// annotations after NPU allocation) reads back with package ascend's types
// and readers, which the controller uses, and that the controller's
// ranktable builder fills a completed ranktable from the simulator's pods.
func TestContractWithAscend(t *testing.T) {
	sim, client, _ := startSim(t, 2)
	ctx := context.Background()
	const typ = DefaultNPUType

	// Nodes: the controller's nodeSelector and NPU request fit them.
	selector := labels.SelectorFromSet(labels.Set{ascend.LabelAccelerator: ascend.AcceleratorValue(typ)})
	eventually(t, "nodes registered", func() (bool, string) {
		nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: selector.String()})
		if err != nil {
			return false, err.Error()
		}
		withNPUs := 0
		for _, n := range nodes.Items {
			if _, ok := n.Status.Allocatable[ascend.ResourceName(typ)]; ok {
				withNPUs++
			}
		}
		return withNPUs == 2, fmt.Sprintf("%d nodes match %s, %d with allocatable NPUs", len(nodes.Items), selector, withNPUs)
	})
	for _, name := range sim.NodeNames() {
		n, _ := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		for k, v := range ascend.NodeLabels(typ) {
			if n.Labels[k] != v {
				t.Errorf("node %s: label %s=%q, want %q", name, k, n.Labels[k], v)
			}
		}
		if q := n.Status.Capacity[ascend.ResourceName(typ)]; q.Value() != DefaultNPUsPerNode {
			t.Errorf("node %s: capacity %s = %s", name, ascend.ResourceName(typ), q.String())
		}

		// The device info ConfigMap.
		var cm *corev1.ConfigMap
		eventually(t, "device info of "+name, func() (bool, string) {
			var err error
			cm, err = client.CoreV1().ConfigMaps(ascend.DeviceInfoNamespace).Get(ctx, ascend.DeviceInfoConfigMapName(name), metav1.GetOptions{})
			return err == nil, fmt.Sprint(err)
		})
		var cfg ascend.DeviceInfoCfg
		decodeStrict(t, "data."+ascend.DeviceInfoKey, cm.Data[ascend.DeviceInfoKey], &cfg)
		if err := cfg.Verify(); err != nil {
			t.Errorf("node %s: %v", name, err)
		}
		if parsed, err := ascend.ParseDeviceInfoCfg(cm.Data[ascend.DeviceInfoKey]); err != nil || !cmp.Equal(parsed, cfg) {
			t.Errorf("node %s: ParseDeviceInfoCfg = %+v, %v", name, parsed, err)
		}
		keys := map[string]bool{ascend.HealthyKey(typ): true, ascend.UnhealthyKey(typ): true,
			ascend.NetworkUnhealthyKey(typ): true, ascend.FaultKey(typ): true}
		for k := range cfg.DeviceInfo.DeviceList {
			if !keys[k] {
				t.Errorf("node %s: DeviceList key %q is none of ascend's keys", name, k)
			}
			delete(keys, k)
		}
		if len(keys) != 0 {
			t.Errorf("node %s: DeviceList lacks %v", name, keys)
		}
		healthy := cfg.DeviceInfo.HealthyChips(typ)
		for i, c := range healthy {
			if c != ascend.ChipName(typ, i) {
				t.Errorf("node %s: healthy chip %d is %q", name, i, c)
			}
		}
		if len(healthy) != DefaultNPUsPerNode || cfg.DeviceInfo.UnhealthyChips(typ) != nil {
			t.Errorf("node %s: healthy %v, unhealthy %v", name, healthy, cfg.DeviceInfo.UnhealthyChips(typ))
		}
		if faults, err := cfg.DeviceInfo.Faults(typ); err != nil || len(faults) != 0 {
			t.Errorf("node %s: faults %v, %v", name, faults, err)
		}
	}

	// A fault reads back through ascend's readers.
	if err := sim.SetNPUFault("ascend-1", 5, ascend.FaultRestartNPU); err != nil {
		t.Fatal(err)
	}
	cm, _ := client.CoreV1().ConfigMaps(ascend.DeviceInfoNamespace).Get(ctx, ascend.DeviceInfoConfigMapName("ascend-1"), metav1.GetOptions{})
	cfg, err := ascend.ParseDeviceInfoCfg(cm.Data[ascend.DeviceInfoKey])
	if err != nil {
		t.Fatal(err)
	}
	var faults []ascend.FaultInfo
	decodeStrict(t, "DeviceList["+ascend.FaultKey(typ)+"]", cfg.DeviceInfo.DeviceList[ascend.FaultKey(typ)], &faults)
	if read, err := cfg.DeviceInfo.Faults(typ); err != nil || !cmp.Equal(read, faults) || len(read) != 1 ||
		read[0].NPUName != ascend.ChipName(typ, 5) || read[0].FaultLevel != ascend.FaultRestartNPU {
		t.Errorf("faults after injection: %+v, %v", read, err)
	}
	if got := cfg.DeviceInfo.UnhealthyChips(typ); !cmp.Equal(got, []string{ascend.ChipName(typ, 5)}) {
		t.Errorf("unhealthy chips after injection: %v", got)
	}
	if err := sim.SetNPUFault("ascend-1", 5, ""); err != nil {
		t.Fatal(err)
	}

	// One pod per node, as a two-node instance.
	pods := client.CoreV1().Pods("default")
	var instance []*corev1.Pod
	for i, node := range sim.NodeNames() {
		name := "contract-" + strconv.Itoa(i)
		if _, err := pods.Create(ctx, plainPod(name, node, DefaultNPUsPerNode, corev1.RestartPolicyAlways), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		p := waitPod(t, pods, name, "its IP and NPUs", func(p *corev1.Pod) bool { return p.Status.PodIP != "" })
		instance = append(instance, p)

		chips := ascend.PodChips(p, typ)
		if len(chips) != DefaultNPUsPerNode {
			t.Fatalf("pod %s: chips %v from %q", name, chips, p.Annotations[ascend.ChipListAnnotation(typ)])
		}
		var pc ascend.PodConfiguration
		decodeStrict(t, "annotation "+ascend.AnnotationAscend910Configuration, p.Annotations[ascend.AnnotationAscend910Configuration], &pc)
		if parsed, err := ascend.ParsePodConfiguration(p.Annotations[ascend.AnnotationAscend910Configuration]); err != nil || !cmp.Equal(parsed, pc) {
			t.Errorf("pod %s: ParsePodConfiguration = %+v, %v", name, parsed, err)
		}
		if pc.PodName != p.Name || pc.HostIP != p.Status.HostIP || pc.ServerID != p.Status.HostIP || len(pc.Devices) != len(chips) {
			t.Errorf("pod %s (hostIP %s, chips %v): configuration %+v", name, p.Status.HostIP, chips, pc)
		}
		for j, chip := range chips {
			chipType, index, err := ascend.ParseChipName(chip)
			if err != nil || chipType != typ {
				t.Errorf("pod %s: chip %q: %q, %v", name, chip, chipType, err)
			}
			if j < len(pc.Devices) && (pc.Devices[j].DeviceID != strconv.Itoa(index) || pc.Devices[j].DeviceIP == "") {
				t.Errorf("pod %s: chip %s described as %+v", name, chip, pc.Devices[j])
			}
		}
	}

	rt, err := ascend.BuildRanktable(typ, instance)
	if err != nil {
		t.Fatal(err)
	}
	var read ascend.Ranktable
	decodeStrict(t, ascend.RanktableFile, ascend.FormatRanktable(rt), &read)
	if !cmp.Equal(read, rt) || rt.Status != ascend.RanktableCompleted || rt.ServerCount != "2" || len(rt.ServerList) != 2 {
		t.Fatalf("ranktable %s", ascend.FormatRanktable(rt))
	}
	rank, deviceIPs := 0, map[string]bool{}
	for i, srv := range rt.ServerList {
		if srv.ContainerIP != instance[i].Status.PodIP || srv.HostIP != instance[i].Status.HostIP || len(srv.Device) != DefaultNPUsPerNode {
			t.Errorf("server %d: %+v (pod IP %s)", i, srv, instance[i].Status.PodIP)
		}
		for _, d := range srv.Device {
			if d.RankID != strconv.Itoa(rank) || d.DeviceIP == "" || deviceIPs[d.DeviceIP] {
				t.Errorf("server %d device %+v: want rank %d and a device IP of its own", i, d, rank)
			}
			deviceIPs[d.DeviceIP] = true
			rank++
		}
	}
}

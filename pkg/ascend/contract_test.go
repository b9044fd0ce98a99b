package ascend

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
)

// The golden files in testdata are written from the formats in
// /work/shared/docs/mindie-reference.md (sections 4 and 5: the device info
// ConfigMap, the pod annotations, hccl.json) and
// original-deployer-objects.md (section 2.2: the initial ranktable
// ConfigMap), with made-up addresses.

func readGolden(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// roundTrip decodes raw into v refusing unknown keys, encodes v again and
// fails unless the result has the same keys and values as raw: a field the
// types drop, rename, add or omit when empty shows up here.
func roundTrip(t *testing.T, what string, raw []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s does not decode into %T: %v", what, v, err)
	}
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var want, got any
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("%s re-encoded from %T differs (-golden +re-encoded):\n%s", what, v, d)
	}
}

// checkRanks checks the global ranks of rt count 0, 1, ... across its
// servers and server_count matches.
func checkRanks(t *testing.T, rt Ranktable) {
	t.Helper()
	if rt.ServerCount != strconv.Itoa(len(rt.ServerList)) {
		t.Errorf("server_count %q, %d servers", rt.ServerCount, len(rt.ServerList))
	}
	rank := 0
	for _, srv := range rt.ServerList {
		for _, d := range srv.Device {
			if d.RankID != strconv.Itoa(rank) {
				t.Errorf("server %s device %s: rank_id %q, want %d", srv.ServerID, d.DeviceID, d.RankID, rank)
			}
			rank++
		}
	}
}

func TestContractGoldenRanktable(t *testing.T) {
	raw := readGolden(t, "hccl.json")
	var rt Ranktable
	roundTrip(t, "testdata/hccl.json", raw, &rt)
	if rt.Status != RanktableCompleted || rt.Version != RanktableVersion || len(rt.ServerList) != 2 {
		t.Errorf("golden ranktable read as %+v", rt)
	}
	checkRanks(t, rt)
	parsed, err := ParseRanktable(string(raw))
	if err != nil || !cmp.Equal(parsed, rt) {
		t.Errorf("ParseRanktable = %+v, %v", parsed, err)
	}
	// The original Deployer's containers wait with
	// grep -o '"status":"[^"]*' on the mounted file: no space allowed.
	if s := FormatRanktable(rt); !strings.Contains(s, `"status":"completed"`) {
		t.Errorf("FormatRanktable = %s: the container's wait loop does not find \"status\":\"completed\"", s)
	}
}

func TestContractGoldenInitialRanktableConfigMap(t *testing.T) {
	var cm corev1.ConfigMap
	roundTrip(t, "testdata/ranktable-configmap-initializing.json", readGolden(t, "ranktable-configmap-initializing.json"), &cm)
	if cm.Name != RanktableConfigMapName("mindie-server-deployment-0") {
		t.Errorf("name %q is not RanktableConfigMapName(workload)", cm.Name)
	}
	if cm.Labels[LabelRingController] != RingControllerAscend910B {
		t.Errorf("labels %v: want %s=%s", cm.Labels, LabelRingController, RingControllerAscend910B)
	}
	rt, err := ParseRanktable(cm.Data[RanktableFile])
	if err != nil || rt.Status != RanktableInitializing {
		t.Errorf("data[%s] = %q reads as %+v, %v", RanktableFile, cm.Data[RanktableFile], rt, err)
	}
	if got := FormatRanktable(Ranktable{Status: RanktableInitializing}); got != cm.Data[RanktableFile] {
		t.Errorf("initial ranktable %s, the original Deployer wrote %s", got, cm.Data[RanktableFile])
	}
}

func TestContractGoldenDeviceInfoConfigMap(t *testing.T) {
	var cm corev1.ConfigMap
	roundTrip(t, "testdata/deviceinfo-configmap.json", readGolden(t, "deviceinfo-configmap.json"), &cm)
	if cm.Namespace != DeviceInfoNamespace || cm.Name != DeviceInfoConfigMapName("node-1") {
		t.Errorf("ConfigMap %s/%s, want %s/%s", cm.Namespace, cm.Name, DeviceInfoNamespace, DeviceInfoConfigMapName("node-1"))
	}
	raw, ok := cm.Data[DeviceInfoKey]
	if !ok {
		t.Fatalf("no key %s in %v", DeviceInfoKey, cm.Data)
	}
	var cfg DeviceInfoCfg
	roundTrip(t, "data."+DeviceInfoKey, []byte(raw), &cfg)
	if err := cfg.Verify(); err != nil {
		t.Error(err)
	}
	parsed, err := ParseDeviceInfoCfg(raw)
	if err != nil || !cmp.Equal(parsed, cfg) {
		t.Errorf("ParseDeviceInfoCfg = %+v, %v", parsed, err)
	}
	// Re-encoding with a fresh check code gives the same document.
	again, err := FormatDeviceInfoCfg(cfg.DeviceInfo)
	if err != nil {
		t.Fatal(err)
	}
	var want, got any
	_ = json.Unmarshal([]byte(raw), &want)
	_ = json.Unmarshal([]byte(again), &got)
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("FormatDeviceInfoCfg differs from the golden document (-golden +formatted):\n%s", d)
	}

	const typ = "Ascend910"
	info := cfg.DeviceInfo
	if got := info.HealthyChips(typ); len(got) != 7 || got[0] != ChipName(typ, 0) {
		t.Errorf("HealthyChips = %v", got)
	}
	if got := info.UnhealthyChips(typ); !cmp.Equal(got, []string{ChipName(typ, 4)}) {
		t.Errorf("UnhealthyChips = %v", got)
	}
	if got := info.NetworkUnhealthyChips(typ); got != nil {
		t.Errorf("NetworkUnhealthyChips = %v", got)
	}
	var faults []FaultInfo
	roundTrip(t, "DeviceList["+FaultKey(typ)+"]", []byte(info.DeviceList[FaultKey(typ)]), &faults)
	read, err := info.Faults(typ)
	if err != nil || !cmp.Equal(read, faults) || len(read) != 1 || read[0].NPUName != ChipName(typ, 4) || read[0].FaultLevel != FaultSeparateNPU {
		t.Errorf("Faults = %+v, %v", read, err)
	}
}

// TestContractGoldenPodsToRanktable fills a ranktable from the golden pods'
// device plugin annotations and expects the golden hccl.json.
func TestContractGoldenPodsToRanktable(t *testing.T) {
	var pods []*corev1.Pod
	if err := json.Unmarshal(readGolden(t, "pods.json"), &pods); err != nil {
		t.Fatal(err)
	}
	const typ = "Ascend910"
	for _, p := range pods {
		var pc PodConfiguration
		roundTrip(t, p.Name+" annotation "+AnnotationAscend910Configuration, []byte(p.Annotations[AnnotationAscend910Configuration]), &pc)
		if got := FormatPodConfiguration(pc); got != p.Annotations[AnnotationAscend910Configuration] {
			t.Errorf("FormatPodConfiguration = %s, want %s", got, p.Annotations[AnnotationAscend910Configuration])
		}
		if chips := PodChips(p, typ); !cmp.Equal(chips, []string{"Ascend910-0", "Ascend910-1"}) {
			t.Errorf("PodChips(%s) = %v", p.Name, chips)
		}
	}
	rt, err := BuildRanktable(typ, pods)
	if err != nil {
		t.Fatal(err)
	}
	var golden Ranktable
	if err := json.Unmarshal(readGolden(t, "hccl.json"), &golden); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(golden, rt); d != "" {
		t.Errorf("BuildRanktable differs from testdata/hccl.json (-golden +built):\n%s", d)
	}
}

// TestContractWireNames pins every name shared with the Ascend software to
// the reference, so a change to one is a deliberate change here too.
func TestContractWireNames(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{string(ResourceName("Ascend910")), "huawei.com/Ascend910"},
		{string(ResourceName("Ascend310P")), "huawei.com/Ascend310P"},
		{ChipListAnnotation("Ascend910"), "huawei.com/Ascend910"},
		{ChipName("Ascend910", 3), "Ascend910-3"},
		{LabelAccelerator + "=" + AcceleratorValue("Ascend310P"), "accelerator=huawei-Ascend310P"},
		{LabelNPUChipName, "node.kubernetes.io/npu.chip.name"},
		{LabelWorkerSelector + "=" + WorkerSelectorDLSWorkerNode, "workerselector=dls-worker-node"},
		{LabelRingController, "ring-controller.atlas"},
		{RingControllerAscend910 + " " + RingControllerAscend910B + " " + RingControllerAscend310P, "ascend-910 ascend-910b ascend-310P"},
		{LabelFaultScheduling + "=" + FaultSchedulingGrace + "|" + FaultSchedulingForce + "|" + FaultSchedulingOff, "fault-scheduling=grace|force|off"},
		{LabelPodRescheduling + "=" + PodReschedulingOn, "pod-rescheduling=on"},
		{AnnotationAscend910Configuration, "ascend.kubectl.kubernetes.io/ascend-910-configuration"},
		{DeviceInfoNamespace + "/" + DeviceInfoConfigMapName("n1") + " " + DeviceInfoKey, "kube-system/mindx-dl-deviceinfo-n1 DeviceInfoCfg"},
		{UnhealthyKey("Ascend910"), "huawei.com/Ascend910-Unhealthy"},
		{NetworkUnhealthyKey("Ascend910"), "huawei.com/Ascend910-NetworkUnhealthy"},
		{FaultKey("Ascend910"), "huawei.com/Ascend910-Fault"},
		{strings.Join(FaultLevels, ","), "NotHandleFault,SubHealthFault,RestartRequest,RestartBusiness,FreeRestartNPU,RestartNPU,PreSeparateNPU,SeparateNPU,ManuallySeparateNPU"},
		{RanktableConfigMapName("w") + " " + RanktableFile, "rings-config-w hccl.json"},
		{RanktableMountPath, "/user/serverid/devindex/config"},
		{RanktableInitializing + " " + RanktableCompleted + " " + RanktableVersion, "initializing completed 1.0"},
	} {
		if tc.got != tc.want {
			t.Errorf("%q, the reference says %q", tc.got, tc.want)
		}
	}
}

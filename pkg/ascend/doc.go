// Package ascend is this project's contract with Huawei's Ascend software on
// Kubernetes: the Ascend device plugin, the Ascend Operator and Volcano as
// shipped in MindX DL / MindCluster. None of those components is imported;
// what they read and write on Kubernetes objects is spelled out here once,
// so that the InferServer controller (which reads it) and the simulated
// kubelet and device plugin in pkg/simulator/kubelet (which write it) cannot
// drift apart. The contract tests check golden examples of the published
// formats against these types (here) and what the simulator writes against
// the readers the controller uses (in pkg/simulator/kubelet).
//
// # Resources and node labels
//
// The device plugin advertises each NPU type as the extended resource
// huawei.com/<type> ([ResourceName]), for example huawei.com/Ascend910 or
// huawei.com/Ascend310P (newer generations use huawei.com/npu). Chips are
// named <type>-<index> ([ChipName]). NPU nodes carry
// accelerator=huawei-<type> ([LabelAccelerator], [AcceleratorValue]),
// node.kubernetes.io/npu.chip.name=<type> and
// workerselector=dls-worker-node ([NodeLabels]).
//
// # Pod annotations
//
// When a pod is given chips, the device plugin annotates it with the chip
// list under the resource name itself (huawei.com/Ascend910:
// "Ascend910-0,Ascend910-1"; [ChipListAnnotation], [ParseChipList]) and
// with [AnnotationAscend910Configuration], a JSON [PodConfiguration] naming
// the pod, its node (server_id, host_ip) and each chip's device_id and
// device_ip.
//
// # Device info ConfigMap and faults
//
// Per node, the device plugin publishes ConfigMap
// kube-system/mindx-dl-deviceinfo-<node> ([DeviceInfoConfigMapName]) whose
// key DeviceInfoCfg holds a JSON [DeviceInfoCfg]: a [DeviceInfo] whose
// DeviceList maps huawei.com/<type> to the healthy chips and
// huawei.com/<type>-Unhealthy, -NetworkUnhealthy and -Fault to the unhealthy
// chips, the chips with network faults and a JSON-encoded list of
// [FaultInfo], plus a SHA-256 [CheckCode] of the DeviceInfo. Fault levels
// range from [FaultNotHandle] to [FaultSeparateNPU].
//
// # Workload labels and HCCL ranktables
//
// Volcano and the Ascend Operator recognise NPU workloads by the label
// ring-controller.atlas ([LabelRingController]); Volcano reschedules pods
// of faulty chips as fault-scheduling (grace, force or off) and
// pod-rescheduling=on say. For a multi-node workload the Ascend Operator
// fills ConfigMap rings-config-<workload> ([RanktableConfigMapName]), key
// hccl.json ([RanktableFile]): a [Ranktable] that starts as
// {"status":"initializing"} and becomes "completed" with one server per pod
// and every chip's global rank, all numbers written as strings. Containers
// mount it at [RanktableMountPath] and wait for "completed".
// [BuildRanktable] fills a ranktable from pods' device plugin annotations
// the way the Ascend Operator does, for clusters without one.
package ascend

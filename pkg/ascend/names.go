package ascend

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// ResourcePrefix is the domain of the device plugin's extended resources.
const ResourcePrefix = "huawei.com/"

// ResourceName is the extended resource the device plugin advertises for
// chips of npuType ("Ascend910" gives huawei.com/Ascend910). The pod
// annotation listing a pod's chips has the same name.
func ResourceName(npuType string) corev1.ResourceName {
	return corev1.ResourceName(ResourcePrefix + npuType)
}

// Node labels of NPU nodes.
const (
	// LabelAccelerator says which NPU type a node has; its value is
	// AcceleratorValue(type).
	LabelAccelerator = "accelerator"
	// LabelNPUChipName is the node's NPU type.
	LabelNPUChipName = "node.kubernetes.io/npu.chip.name"
	// LabelWorkerSelector marks nodes MindX DL schedules workloads onto.
	LabelWorkerSelector = "workerselector"
	// WorkerSelectorDLSWorkerNode is the LabelWorkerSelector value of
	// worker nodes.
	WorkerSelectorDLSWorkerNode = "dls-worker-node"
)

// AcceleratorValue is the LabelAccelerator value of a node with chips of
// npuType ("huawei-Ascend910").
func AcceleratorValue(npuType string) string { return "huawei-" + npuType }

// NodeLabels are the labels an NPU node of npuType carries.
func NodeLabels(npuType string) map[string]string {
	return map[string]string{
		LabelAccelerator:    AcceleratorValue(npuType),
		LabelNPUChipName:    npuType,
		LabelWorkerSelector: WorkerSelectorDLSWorkerNode,
	}
}

// Labels on NPU workloads (pods and their ranktable ConfigMaps) that the
// Ascend Operator and Volcano act on.
const (
	// LabelRingController marks a workload as an NPU workload; its value
	// is one of the RingController values.
	LabelRingController = "ring-controller.atlas"
	// LabelFaultScheduling says how Volcano reschedules a pod whose chips
	// fail: FaultSchedulingGrace deletes it gracefully (forcibly after 15
	// minutes), FaultSchedulingForce at once, FaultSchedulingOff never.
	LabelFaultScheduling = "fault-scheduling"
	// LabelPodRescheduling set to PodReschedulingOn turns on Volcano's
	// pod-level rescheduling.
	LabelPodRescheduling = "pod-rescheduling"
)

// Values of LabelRingController.
const (
	RingControllerAscend910  = "ascend-910"
	RingControllerAscend910B = "ascend-910b"
	RingControllerAscend310P = "ascend-310P"
)

// Values of LabelFaultScheduling and LabelPodRescheduling.
const (
	FaultSchedulingGrace = "grace"
	FaultSchedulingForce = "force"
	FaultSchedulingOff   = "off"
	PodReschedulingOn    = "on"
)

// ChipName is the device plugin's name of chip index of npuType
// ("Ascend910-3").
func ChipName(npuType string, index int) string { return fmt.Sprintf("%s-%d", npuType, index) }

// ParseChipName splits a chip name into its NPU type and index.
func ParseChipName(chip string) (npuType string, index int, err error) {
	i := strings.LastIndex(chip, "-")
	if i <= 0 {
		return "", 0, fmt.Errorf("chip name %q is not <type>-<index>", chip)
	}
	digits := chip[i+1:]
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return "", 0, fmt.Errorf("chip name %q is not <type>-<index>: index %q is not a decimal number", chip, digits)
	}
	index, err = strconv.Atoi(digits)
	if err != nil {
		return "", 0, fmt.Errorf("chip name %q: index: %w", chip, err)
	}
	return chip[:i], index, nil
}

// ChipListAnnotation is the pod annotation in which the device plugin lists
// the chips of npuType it gave the pod: the resource name itself.
func ChipListAnnotation(npuType string) string { return string(ResourceName(npuType)) }

// FormatChipList is a ChipListAnnotation value: the chip names,
// comma-separated.
func FormatChipList(chips []string) string { return strings.Join(chips, ",") }

// ParseChipList splits a ChipListAnnotation value into chip names sorted by
// chip index (names without an index sort first, in their given order);
// "" gives nil.
func ParseChipList(raw string) []string {
	if raw == "" {
		return nil
	}
	chips := strings.Split(raw, ",")
	index := func(c string) int {
		_, i, err := ParseChipName(c)
		if err != nil {
			return -1
		}
		return i
	}
	sort.SliceStable(chips, func(i, j int) bool { return index(chips[i]) < index(chips[j]) })
	return chips
}

// PodChips is the chips of npuType the device plugin gave pod, sorted by
// chip index; nil until it has annotated the pod.
func PodChips(pod *corev1.Pod, npuType string) []string {
	return ParseChipList(pod.Annotations[ChipListAnnotation(npuType)])
}

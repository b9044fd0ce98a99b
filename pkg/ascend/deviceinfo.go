package ascend

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
)

// The device plugin's per-node device info ConfigMap.
const (
	// DeviceInfoNamespace holds the device info ConfigMaps.
	DeviceInfoNamespace = "kube-system"
	// DeviceInfoKey is the ConfigMap key holding the JSON DeviceInfoCfg.
	DeviceInfoKey = "DeviceInfoCfg"

	deviceInfoPrefix = "mindx-dl-deviceinfo-"
)

// DeviceInfoConfigMapName is the name of node's device info ConfigMap (in
// DeviceInfoNamespace).
func DeviceInfoConfigMapName(node string) string { return deviceInfoPrefix + node }

// DeviceInfoCfg is the JSON document under DeviceInfoKey.
type DeviceInfoCfg struct {
	DeviceInfo DeviceInfo
	// CheckCode is CheckCode(DeviceInfo).
	CheckCode string
}

// DeviceInfo is the state of a node's chips. DeviceList is keyed by
// HealthyKey, UnhealthyKey, NetworkUnhealthyKey and FaultKey of the node's
// NPU type.
type DeviceInfo struct {
	DeviceList map[string]string
	// UpdateTime is when the device plugin wrote it, in Unix seconds.
	UpdateTime int64
}

// HealthyKey is the DeviceList key of the healthy chips of npuType, as a
// chip list ("Ascend910-0,Ascend910-1").
func HealthyKey(npuType string) string { return string(ResourceName(npuType)) }

// UnhealthyKey is the DeviceList key of the chips of npuType that are not
// allocatable because of a fault, as a chip list.
func UnhealthyKey(npuType string) string { return HealthyKey(npuType) + "-Unhealthy" }

// NetworkUnhealthyKey is the DeviceList key of the chips of npuType whose
// network is faulty, as a chip list.
func NetworkUnhealthyKey(npuType string) string { return HealthyKey(npuType) + "-NetworkUnhealthy" }

// FaultKey is the DeviceList key of the faults of chips of npuType, as a
// JSON list of FaultInfo.
func FaultKey(npuType string) string { return HealthyKey(npuType) + "-Fault" }

// Fault levels of a FaultInfo (fault_handling), from mildest to gravest,
// as the device plugin orders them when several apply.
const (
	FaultNotHandle           = "NotHandleFault"
	FaultSubHealth           = "SubHealthFault"
	FaultRestartRequest      = "RestartRequest"
	FaultRestartBusiness     = "RestartBusiness"
	FaultFreeRestartNPU      = "FreeRestartNPU"
	FaultRestartNPU          = "RestartNPU"
	FaultPreSeparateNPU      = "PreSeparateNPU"
	FaultSeparateNPU         = "SeparateNPU"
	FaultManuallySeparateNPU = "ManuallySeparateNPU"
)

// FaultLevels are the fault levels, from mildest to gravest.
var FaultLevels = []string{FaultNotHandle, FaultSubHealth, FaultRestartRequest, FaultRestartBusiness, FaultFreeRestartNPU,
	FaultRestartNPU, FaultPreSeparateNPU, FaultSeparateNPU, FaultManuallySeparateNPU}

// SeparatesChip says whether a fault level takes the chip out of use: the
// device plugin isolates it (pre-isolates: PreSeparateNPU), and whatever
// runs on it must move.
func SeparatesChip(level string) bool {
	return level == FaultPreSeparateNPU || level == FaultSeparateNPU || level == FaultManuallySeparateNPU
}

// RestartsProcess says whether a fault level makes the service restart in
// place (the chip is reset or the business re-run), with no move.
func RestartsProcess(level string) bool {
	return level == FaultRestartBusiness || level == FaultFreeRestartNPU || level == FaultRestartNPU
}

// FaultLevelOf is the level of a fault entry: fault_handling, which the
// device plugin's documentation recommends, or its synonyms.
func FaultLevelOf(f FaultInfo) string {
	for _, l := range []string{f.FaultHandling, f.FaultLevel, f.LargeModelFaultLevel} {
		if l != "" {
			return l
		}
	}
	return ""
}

// FaultInfo is one fault of a chip, an element of the FaultKey list.
type FaultInfo struct {
	FaultType            string `json:"fault_type"`
	NPUName              string `json:"npu_name"`
	LargeModelFaultLevel string `json:"large_model_fault_level"`
	FaultLevel           string `json:"fault_level"`
	FaultHandling        string `json:"fault_handling"`
	FaultCode            string `json:"fault_code"`
	// FaultTimeAndLevelMap gives, for each fault code of FaultCode, when
	// the fault occurred and its level.
	FaultTimeAndLevelMap map[string]FaultTimeAndLevel `json:"fault_time_and_level_map"`
}

// FaultTimeAndLevel is a value of FaultInfo.FaultTimeAndLevelMap, as the
// device plugin writes it (MindCluster's FaultTimeAndLevel).
type FaultTimeAndLevel struct {
	// FaultTime is when the fault occurred, in Unix milliseconds.
	FaultTime  int64  `json:"fault_time"`
	FaultLevel string `json:"fault_level"`
}

// CheckCode is the checksum the device plugin puts next to a DeviceInfo:
// the SHA-256, in hex, of its JSON encoding.
func CheckCode(info DeviceInfo) (string, error) {
	b, err := json.Marshal(info)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// FormatDeviceInfoCfg is the DeviceInfoKey value of info, with its check
// code.
func FormatDeviceInfoCfg(info DeviceInfo) (string, error) {
	code, err := CheckCode(info)
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(DeviceInfoCfg{DeviceInfo: info, CheckCode: code})
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// ParseDeviceInfoCfg reads a DeviceInfoKey value. It does not check the
// check code; see DeviceInfoCfg.Verify.
func ParseDeviceInfoCfg(raw string) (DeviceInfoCfg, error) {
	var c DeviceInfoCfg
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		return c, fmt.Errorf("%s: %w", DeviceInfoKey, err)
	}
	return c, nil
}

// Verify checks that c's CheckCode matches its DeviceInfo.
func (c DeviceInfoCfg) Verify() error {
	want, err := CheckCode(c.DeviceInfo)
	if err != nil {
		return err
	}
	if c.CheckCode != want {
		return fmt.Errorf("%s: CheckCode %q is not the SHA-256 %q of its DeviceInfo", DeviceInfoKey, c.CheckCode, want)
	}
	return nil
}

// HealthyChips are the healthy chips of npuType, in listed order.
func (d DeviceInfo) HealthyChips(npuType string) []string {
	return splitChips(d.DeviceList[HealthyKey(npuType)])
}

// UnhealthyChips are the chips of npuType listed as unhealthy.
func (d DeviceInfo) UnhealthyChips(npuType string) []string {
	return splitChips(d.DeviceList[UnhealthyKey(npuType)])
}

// NetworkUnhealthyChips are the chips of npuType with network faults.
func (d DeviceInfo) NetworkUnhealthyChips(npuType string) []string {
	return splitChips(d.DeviceList[NetworkUnhealthyKey(npuType)])
}

// Faults decodes the fault list of chips of npuType; a missing or empty
// entry is no faults.
func (d DeviceInfo) Faults(npuType string) ([]FaultInfo, error) {
	raw := d.DeviceList[FaultKey(npuType)]
	if raw == "" {
		return nil, nil
	}
	var faults []FaultInfo
	if err := json.Unmarshal([]byte(raw), &faults); err != nil {
		return nil, fmt.Errorf("DeviceList[%q]: %w", FaultKey(npuType), err)
	}
	return faults, nil
}

func splitChips(raw string) []string {
	if raw == "" {
		return nil
	}
	return strings.Split(raw, ",")
}

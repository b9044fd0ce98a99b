//go:build !linux

package kubelet

import "os/exec"

// setParentDeathSignal does nothing outside Linux, which alone has a
// parent death signal: processes are stopped with their workloads only.
func setParentDeathSignal(*exec.Cmd) {}

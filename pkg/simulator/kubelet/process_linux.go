package kubelet

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal makes the kernel SIGKILL the process when the
// thread that started it exits, so that no process outlives a simulator
// that is killed without stopping its workloads. The caller keeps that
// thread locked until the process has exited.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

package kubelet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
)

// processStarter runs containers as real processes of binary, the way a
// kubelet would run them in a container, minus the container:
//
//   - the environment is the container's env (see containerEnv) plus
//     HOSTNAME (the pod's hostname, else its name) and, from the
//     simulator's own environment, only inheritedEnv (PATH, HOME, TMPDIR);
//   - the arguments are command[1:] then args, $(NAME) references expanded
//     with that env (see expand); command[0] only chooses the binary;
//   - the pod's service account credentials come as a kubeconfig (see
//     podKubeconfig) whose token is refreshed while the process runs, and
//     "--kubeconfig=<its path>" is appended to the arguments unless they
//     already hold a kubeconfig flag;
//   - stdout and stderr go to the container's log, the working directory
//     is the process's temporary directory (removed when it exits).
//
// The process serves on the pod IP only if its arguments say so (the
// controller passes the pod IP through the downward API, e.g.
// --listen=$(POD_IP):8080, as it must in a real cluster).
type processStarter struct {
	binary string
	client kubernetes.Interface
	server string // API server URL for the kubeconfig
	ca     []byte // its CA bundle
}

// start is a WorkloadStarter. ctx ends when the pod is torn down: the
// process then gets SIGTERM (runOnce's Stop escalates to SIGKILL after the
// grace period). A failure to resolve the env, get a token or exec the
// binary is returned: the container's start fails and is retried after a
// CrashLoopBackOff delay.
func (p *processStarter) start(ctx context.Context, spec WorkloadSpec) (Workload, error) {
	c := spec.Container
	if len(c.Command) == 0 {
		return nil, fmt.Errorf("RunContainerError: container %s has no command: it must be [%q, ...]", c.Name, RouterCommand)
	}
	if p.binary == "" {
		return nil, fmt.Errorf("RunContainerError: exec %q: this simulated node has no %s binary (start ascend-sim with --router-binary=PATH, or set kubelet.Config.RouterBinary)", c.Command[0], RouterCommand)
	}
	hostIP := spec.HostIP
	if hostIP == "" {
		hostIP = NodeIP
	}
	env, err := containerEnv(ctx, p.client, spec.Pod, c, spec.PodIP, hostIP)
	if err != nil {
		return nil, fmt.Errorf("CreateContainerConfigError: %w", err)
	}
	vars := envMap(env)
	args := append(expandAll(c.Command[1:], vars), expandAll(c.Args, vars)...)
	if p.server == "" {
		return nil, errors.New("RunContainerError: no API server URL for the service account kubeconfig (kubelet.Config.APIServer)")
	}
	kc, err := newPodKubeconfig(ctx, p.client, spec.Pod, p.server, p.ca)
	if err != nil {
		return nil, fmt.Errorf("RunContainerError: service account token: %w", err)
	}
	if !hasKubeconfigFlag(args) {
		args = append(args, "--kubeconfig="+kc.path)
	}
	cmd := exec.Command(p.binary, args...)
	cmd.Env = processEnv(spec.Pod, env)
	cmd.Dir = kc.dir
	cmd.Stdout, cmd.Stderr = spec.Log, spec.Log // one writer: one pipe, writes in order
	cmd.WaitDelay = processWaitDelay
	setParentDeathSignal(cmd)

	w := &processWorkload{cmd: cmd, done: make(chan struct{})}
	refreshCtx, stopRefresh := context.WithCancel(context.Background())
	var refresher sync.WaitGroup
	started := make(chan error, 1)
	go func() {
		// The process gets SIGKILL if the thread that started it exits (see
		// setParentDeathSignal): keep that thread until the process is gone.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		err := cmd.Wait()
		w.exitCode = exitCode(cmd.ProcessState, err)
		stopRefresh()
		refresher.Wait()
		kc.remove()
		fmt.Fprintf(spec.Log, "ascend-sim: %s (pid %d) exited with code %d\n", RouterCommand, cmd.Process.Pid, w.exitCode)
		close(w.done)
	}()
	if err := <-started; err != nil {
		stopRefresh()
		kc.remove()
		return nil, fmt.Errorf("RunContainerError: %w", err)
	}
	fmt.Fprintf(spec.Log, "ascend-sim: running %s %s (pid %d)\n", p.binary, strings.Join(args, " "), cmd.Process.Pid)
	refresher.Go(func() { kc.refresh(refreshCtx, spec.Log) })
	go func() {
		select {
		case <-ctx.Done(): // the pod is going away
			w.terminate()
		case <-w.done:
		}
	}()
	return w, nil
}

// processWorkload is a running process (see processStarter).
type processWorkload struct {
	cmd      *exec.Cmd
	done     chan struct{} // closed once the process exited and is cleaned up
	exitCode int32         // set before done is closed
	termOnce sync.Once
}

// Done is closed when the process has exited.
func (w *processWorkload) Done() <-chan struct{} { return w.done }

// ExitCode is the process's exit code, 128+n when signal n killed it, as
// a container runtime reports it.
func (w *processWorkload) ExitCode() int32 { return w.exitCode }

// Stop sends SIGTERM, waits for the process to exit until ctx ends, then
// sends SIGKILL and waits for it. The exit code is ExitCode's.
func (w *processWorkload) Stop(ctx context.Context) error {
	w.terminate()
	select {
	case <-w.done:
	case <-ctx.Done():
		_ = w.cmd.Process.Kill()
		<-w.done
	}
	return nil
}

// Crash kills the process at once (SIGKILL), as when its node loses power.
func (w *processWorkload) Crash() { _ = w.cmd.Process.Kill() }

// terminate sends SIGTERM once: a second one makes some programs exit at
// once instead of draining.
func (w *processWorkload) terminate() {
	w.termOnce.Do(func() { _ = w.cmd.Process.Signal(syscall.SIGTERM) })
}

// exitCode is the code a container runtime reports for a process that
// ended with state and Wait's err.
func exitCode(state *os.ProcessState, err error) int32 {
	if state == nil {
		if err != nil {
			return 128 // never waited for: as a failed start
		}
		return 0
	}
	if ws, ok := state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int32(ws.Signal())
	}
	return int32(state.ExitCode())
}

// processEnv is the environment of a process of pod whose container env
// is env (see processStarter).
func processEnv(pod *corev1.Pod, env []corev1.EnvVar) []string {
	var out []string
	for _, name := range inheritedEnv {
		if v, ok := os.LookupEnv(name); ok {
			out = append(out, name+"="+v)
		}
	}
	hostname := pod.Spec.Hostname
	if hostname == "" {
		hostname = pod.Name
	}
	out = append(out, "HOSTNAME="+hostname)
	for _, e := range env { // os/exec keeps the last of duplicate names
		out = append(out, e.Name+"="+e.Value)
	}
	return out
}

// hasKubeconfigFlag reports whether args (before a "--") hold a
// kubeconfig flag: -kubeconfig or --kubeconfig, with "=VALUE" or not.
func hasKubeconfigFlag(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
		if strings.HasPrefix(a, "-") && name == "kubeconfig" {
			return true
		}
	}
	return false
}

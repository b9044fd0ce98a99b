package kubelet

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mindie.io/deployer/pkg/ascend"
)

// manuallySeparateNPUKey is the device info ConfigMap's data key (beside
// ascend.DeviceInfoKey) listing the chips isolated at level
// ManuallySeparateNPU, as "Ascend910-0,Ascend910-3" ("" when none).
const manuallySeparateNPUKey = "ManuallySeparateNPU"

// podEffect is what an NPU fault does to the pod holding the chip.
type podEffect int

const (
	effectNone         podEffect = iota // the pod notices nothing
	effectFailRequests                  // the requests running on its servers fail
	effectCrash                         // its server processes crash
	effectChipUnusable                  // its servers fail health checks and requests while it holds the chip
)

// chipHealth is how the device plugin reports a faulty chip to the
// kubelet (ascendcommon.go isHealthy): Healthy chips are allocatable.
type chipHealth int

const (
	healthy      chipHealth = iota // always
	healthyInUse                   // while a pod holds the chip, else unhealthy
	unhealthy                      // never
)

// npuFaultLevel is one fault level of the simulated device plugin.
type npuFaultLevel struct {
	name string
	// code is a fault code of this level in MindCluster's faultCode.json,
	// written as the fault's fault_code.
	code   string
	effect podEffect
	health chipHealth
}

// npuFaultLevels are the fault levels the simulated device plugin knows,
// mildest first (the device plugin's precedence), with what each does:
//
//   - NotHandleFault, SubHealthFault: nothing happens to the pod; the chip
//     stays healthy.
//   - RestartRequest: the requests running on the pod's servers fail; the
//     chip is unhealthy (not allocatable), as the device plugin reports
//     every level but NormalNPU, NotHandleFault and SubHealthFault (and
//     PreSeparateNPU in use).
//   - RestartBusiness, FreeRestartNPU, RestartNPU: the pod's servers crash
//     (their containers restart as the pod's restartPolicy says); the chip
//     is unhealthy (FreeRestartNPU would be healthy while in use only with
//     the device plugin's grace tolerance on, which the simulator does not
//     model).
//   - PreSeparateNPU, SeparateNPU, ManuallySeparateNPU: the chip is
//     unusable: the pod's servers fail their health checks and requests
//     for as long as the pod holds it; the chip is unhealthy, except a
//     PreSeparateNPU chip while a pod holds it.
//
// The codes: one real code of each level from MindCluster's
// component/ascend-device-plugin/build/faultCode.json (its shipped table
// lists no PreSeparateNPU code: 8F180220 is from a later one;
// ManuallySeparateNPU, an escalation of repeated faults, has no codes of
// its own: 81978008 is MindCluster's example of one).
var npuFaultLevels = []npuFaultLevel{
	{ascend.FaultNotHandle, "80E21007", effectNone, healthy},
	{ascend.FaultSubHealth, "81A3880C", effectNone, healthy},
	{ascend.FaultRestartRequest, "80C98008", effectFailRequests, unhealthy},
	{ascend.FaultRestartBusiness, "80E01801", effectCrash, unhealthy},
	{ascend.FaultFreeRestartNPU, "8C0E4E00", effectCrash, unhealthy},
	{ascend.FaultRestartNPU, "8C03A000", effectCrash, unhealthy},
	{ascend.FaultPreSeparateNPU, "8F180220", effectChipUnusable, healthyInUse},
	{ascend.FaultSeparateNPU, "80E3A201", effectChipUnusable, unhealthy},
	{ascend.FaultManuallySeparateNPU, "81978008", effectChipUnusable, unhealthy},
}

// NPUFaultLevels are the fault levels SetNPUFault takes, mildest first:
// those of ascend.FaultLevels.
var NPUFaultLevels = func() []string {
	var out []string
	for _, l := range npuFaultLevels {
		out = append(out, l.name)
	}
	return out
}()

// faultLevel returns the level named name.
func faultLevel(name string) (npuFaultLevel, bool) {
	i := slices.IndexFunc(npuFaultLevels, func(l npuFaultLevel) bool { return l.name == name })
	if i < 0 {
		return npuFaultLevel{}, false
	}
	return npuFaultLevels[i], true
}

// chipHealthy reports whether the device plugin lists the chip as healthy
// (allocatable). Called with s.mu held.
func chipHealthy(c chip) bool {
	if c.fault == "" {
		return true
	}
	l, _ := faultLevel(c.fault)
	switch l.health {
	case healthy:
		return true
	case healthyInUse:
		return c.owner != ""
	}
	return false
}

// chipUnusable reports whether the chip's fault makes it unusable to the
// pod holding it.
func chipUnusable(c chip) bool {
	l, ok := faultLevel(c.fault)
	return ok && l.effect == effectChipUnusable
}

// NPUFaultable is implemented by workloads that feel the faults of their
// pod's NPU chips (MindIEWorkload does).
type NPUFaultable interface {
	// FailRunning fails the requests running on the NPUs (RestartRequest)
	// and returns how many it failed.
	FailRunning() int
	// SetNPUFailed makes the NPUs unusable (true) or usable again.
	SetNPUFailed(failed bool)
}

func (w *mindieWorkload) FailRunning() int         { return w.srv.FailRunning() }
func (w *mindieWorkload) SetNPUFailed(failed bool) { w.srv.SetNPUFailed(failed) }

// crasher is implemented by workloads that can die at once, as when their
// node loses power (MindIEWorkload and router processes do).
type crasher interface{ Crash() }

// podOfChip returns the pod running on node that holds chip c, nil when
// none. Called with s.mu held.
func (s *Simulator) podOfChip(node string, c chip) *podState {
	if c.owner == "" {
		return nil
	}
	for _, ps := range s.pods {
		if ps.uid == c.owner && ps.node == node && !ps.released {
			return ps
		}
	}
	return nil
}

// runningWorkloads returns the workloads of the pod's running containers,
// with their logs. Called with s.mu held.
func runningWorkloads(ps *podState) (ws []Workload, logs []*containerLog) {
	for _, cs := range ps.containers {
		if cs.running && cs.workload != nil {
			ws = append(ws, cs.workload)
			logs = append(logs, cs.log)
		}
	}
	return ws, logs
}

// applyChipHealth tells the pod's running workloads whether a chip the pod
// holds is unusable. Called with s.mu held (the workloads' SetNPUFailed
// does not block), so that it cannot race with a container start.
func (s *Simulator) applyChipHealth(ps *podState) {
	failed := false
	node := s.nodes[ps.node]
	for _, i := range ps.chips {
		if node.chips[i].owner == ps.uid && chipUnusable(node.chips[i]) {
			failed = true
		}
	}
	for _, cs := range ps.containers {
		if f, ok := cs.workload.(NPUFaultable); ok && cs.running {
			f.SetNPUFailed(failed)
		}
	}
}

// SetNPUFault sets the fault level of chip (0-based) on node, one of
// NPUFaultLevels; "" clears it. The pod holding the chip feels it as the
// level says (see npuFaultLevels): nothing, its running requests fail,
// its servers crash, or its servers fail health checks and requests until
// the fault is cleared (or lowered to a level that does not make the chip
// unusable). The device info ConfigMap (the fault with a fault code and
// fault_time_and_level_map, the chip listed as healthy or unhealthy) and
// the node's allocatable NPUs are rewritten, unless the node is down: the
// device plugin then writes them when the node comes back.
func (s *Simulator) SetNPUFault(node string, chipIndex int, level string) error {
	lvl, ok := faultLevel(level)
	if level != "" && !ok {
		return &FieldError{Field: "level", Message: fmt.Sprintf("unknown fault level %q: want one of %s or \"\" to clear", level, strings.Join(NPUFaultLevels, ", "))}
	}
	s.mu.Lock()
	ns, ok := s.nodes[node]
	if !ok {
		s.mu.Unlock()
		return &FieldError{Field: "node", Message: fmt.Sprintf("no simulated node %q", node), NotFound: true}
	}
	if chipIndex < 0 || chipIndex >= len(ns.chips) {
		s.mu.Unlock()
		if len(ns.chips) == 0 {
			return &FieldError{Field: "chip", Message: fmt.Sprintf("node %s has no NPUs", node)}
		}
		return &FieldError{Field: "chip", Message: fmt.Sprintf("node %s has no chip %d", node, chipIndex)}
	}
	c := &ns.chips[chipIndex]
	c.fault, c.faultTime = level, time.Time{}
	if level != "" {
		c.faultTime = time.Now() // each injection is a new occurrence
	}
	ps := s.podOfChip(node, *c)
	var targets []Workload
	var logs []*containerLog
	if ps != nil {
		s.applyChipHealth(ps)
		if lvl.effect == effectFailRequests || lvl.effect == effectCrash {
			targets, logs = runningWorkloads(ps)
		}
	}
	down := ns.down
	s.mu.Unlock()

	chipName := ns.chipName(chipIndex)
	holder := "no pod"
	if ps != nil {
		holder = "pod " + ps.key
	}
	switch {
	case level == "":
		s.logf("node %s: chip %s fault cleared (fault injection; held by %s)", node, chipName, holder)
	default:
		s.logf("node %s: chip %s fault level %s, code %s (fault injection; held by %s)", node, chipName, level, lvl.code, holder)
	}
	for i, w := range targets {
		switch lvl.effect {
		case effectFailRequests:
			if f, ok := w.(NPUFaultable); ok {
				n := f.FailRunning()
				logs[i].printf("NPU fault %s on %s: %d running requests failed", level, chipName, n)
			}
		case effectCrash:
			if f, ok := w.(crasher); ok {
				logs[i].printf("NPU fault %s on %s: the process crashes", level, chipName)
				f.Crash()
			}
		}
	}
	if down {
		return nil
	}
	ctx, cancel := context.WithTimeout(s.baseContext(), 30*time.Second)
	defer cancel()
	return s.publishDevices(ctx, node)
}

// publishDevices rewrites the node's device info ConfigMap and its status
// (allocatable NPUs), as the device plugin and the kubelet do when a
// chip's health changes.
func (s *Simulator) publishDevices(ctx context.Context, node string) error {
	if err := s.writeDeviceInfo(ctx, node); err != nil {
		return err
	}
	return s.updateNodeStatus(ctx, node)
}

// devicesChanged republishes the node's devices in the background (a
// PreSeparateNPU chip became free, so unhealthy), unless the node is down.
func (s *Simulator) devicesChanged(node string) {
	go func() {
		ctx, cancel := context.WithTimeout(s.baseContext(), 30*time.Second)
		defer cancel()
		if s.isDown(node) || ctx.Err() != nil {
			return
		}
		if err := s.publishDevices(ctx, node); err != nil && ctx.Err() == nil {
			s.logf("node %s: device info: %v", node, err)
		}
	}()
}

// baseContext is Run's context (Background before Run).
func (s *Simulator) baseContext() context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.runCtx == nil {
		return context.Background()
	}
	return s.runCtx
}

// errNodeDown is whileUp's error when the node is down: the write was not
// made.
var errNodeDown = errors.New("the node is down")

// whileUp makes one of node's API writes, unless the node is down
// (errNodeDown). SetNodeDown waits for the writes under way before it
// takes the node down.
func (s *Simulator) whileUp(node string, write func() error) error {
	ns, ok := s.nodes[node] // the node set never changes
	if !ok {
		return write()
	}
	ns.writes.RLock()
	defer ns.writes.RUnlock()
	if s.isDown(node) {
		return errNodeDown
	}
	return write()
}

// skipDown makes a write skipped because the node is down a success.
func skipDown(err error) error {
	if errors.Is(err, errNodeDown) {
		return nil
	}
	return err
}

// isDown reports whether node is down.
func (s *Simulator) isDown(node string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nodes[node].down
}

// waitNodeUp waits until node is up. It returns false if ctx ends first.
func (s *Simulator) waitNodeUp(ctx context.Context, node string) bool {
	for {
		s.mu.Lock()
		ns := s.nodes[node]
		down, up := ns.down, ns.up
		s.mu.Unlock()
		if !down {
			return ctx.Err() == nil
		}
		select {
		case <-ctx.Done():
			return false
		case <-up:
		}
	}
}

// SetNodeDown makes node fail (down=true) or come back (false), as a node
// that loses power and boots again.
//
// Down: every workload of its pods is killed at once (a MindIE server's
// listeners close: connections to its pod IP are refused), its probes
// stop, and its kubelet and device plugin write nothing (no lease renewal,
// node status, pod status, device info or pod deletion) until it comes
// back. Kubernetes' node lifecycle controller then marks it NotReady,
// taints it and marks its pods not ready. Pod events for it wait too.
//
// Up: the node's pods deleted or replaced in the API meanwhile are
// cleaned up (their IPs and chips freed), those being deleted are
// terminated and deleted, the others' containers are started again (as
// after a reboot: restartCount +1, lastState terminated with exit code 255
// and reason Unknown, no back-off; a restartPolicy Never container is not
// restarted and its pod fails), the lease, node status and device info are
// written again, and every pod bound to the node is synced.
func (s *Simulator) SetNodeDown(name string, down bool) error {
	s.nodeFaults.Lock() // one node fault at a time
	defer s.nodeFaults.Unlock()
	s.mu.Lock()
	ns, ok := s.nodes[name]
	if !ok {
		s.mu.Unlock()
		return &FieldError{Field: "node", Message: fmt.Sprintf("no simulated node %q", name), NotFound: true}
	}
	if down {
		if ns.down {
			s.mu.Unlock()
			return nil
		}
		s.mu.Unlock()
		ns.writes.Lock() // the node's writes under way end first
		s.mu.Lock()
		ns.down, ns.up = true, make(chan struct{})
		ns.writes.Unlock()
		var victims []Workload
		for _, ps := range s.pods {
			if ps.node == name {
				ws, _ := runningWorkloads(ps)
				victims = append(victims, ws...)
			}
		}
		s.mu.Unlock()
		s.logf("node %s: DOWN (fault injection): killing %d workloads; its kubelet and device plugin write nothing until it is back", name, len(victims))
		for _, w := range victims {
			kill(w)
		}
		// Return once they are dead: their listeners are closed.
		deadline := time.After(10 * time.Second)
		for _, w := range victims {
			select {
			case <-w.Done():
			case <-deadline:
				return fmt.Errorf("node %s is down, but a workload of its pods has not died after 10s", name)
			}
		}
		return nil
	}
	wasDown := ns.down
	var local []*podState
	for _, ps := range s.pods {
		if ps.node == name {
			local = append(local, ps)
		}
	}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(s.baseContext(), 30*time.Second)
	defer cancel()
	if wasDown {
		// Before any container starts again: what was deleted meanwhile
		// goes, what is being deleted is terminated.
		for _, ps := range local {
			if err := s.reconcileAfterDown(ctx, ps); err != nil {
				return fmt.Errorf("node %s stays down: pod %s: %w", name, ps.key, err)
			}
		}
		s.mu.Lock()
		ns.down = false
		close(ns.up)
		s.mu.Unlock()
		s.logf("node %s: UP again (fault injection): restarting the containers of its pods", name)
	}
	if err := s.renewLease(ctx, name); err != nil {
		return err
	}
	if err := s.publishDevices(ctx, name); err != nil {
		return err
	}
	s.mu.Lock()
	resync := s.resync
	s.mu.Unlock()
	if resync != nil {
		resync(name)
	}
	return nil
}

// kill makes a workload die at once: Crash if it can, else Stop with no
// grace.
func kill(w Workload) {
	if c, ok := w.(crasher); ok {
		c.Crash()
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	go func() { _ = w.Stop(ctx) }()
}

// reconcileAfterDown deals with a pod of a node coming back, before its
// containers start again: a pod gone from the API (or replaced) is
// forgotten and its IP and chips freed; a pod being deleted is terminated
// (its containers are not running: no preStop hook runs) and deleted.
func (s *Simulator) reconcileAfterDown(ctx context.Context, ps *podState) error {
	pod, err := s.cfg.Client.CoreV1().Pods(ps.namespace).Get(ctx, ps.name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err) || (err == nil && pod.UID != ps.uid):
		s.forget(ps, "removed from the API while its node was down")
	case err != nil:
		return err
	case pod.DeletionTimestamp != nil:
		s.mu.Lock()
		start := !ps.terminating
		ps.terminating = true
		s.mu.Unlock()
		if start {
			go s.terminate(s.baseContext(), ps, pod)
		}
	}
	return nil
}

// forget stops what the simulator runs for a pod that is gone from the
// API and frees its IP and chips.
func (s *Simulator) forget(ps *podState, why string) {
	s.mu.Lock()
	if s.pods[ps.key] == ps {
		delete(s.pods, ps.key)
	}
	s.mu.Unlock()
	s.logf("pod %s: %s: stopping its workloads", ps.key, why)
	ps.cancel()
	go func() {
		ps.wg.Wait()
		s.release(ps)
		ps.stopWriter()
	}()
}

// resyncNode queues every pod bound to node, and every pod the simulator
// runs there, for a sync.
func (s *Simulator) resyncNode(node string, podKeys func() []string, add func(string)) {
	keys := podKeys()
	s.mu.Lock()
	for _, ps := range s.pods {
		if ps.node == node {
			keys = append(keys, ps.key)
		}
	}
	s.mu.Unlock()
	for _, k := range keys {
		add(k)
	}
}

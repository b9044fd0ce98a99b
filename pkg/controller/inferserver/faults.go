package inferserver

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/ascend"
	"mindie.io/deployer/pkg/controller/cachetrim"
	"mindie.io/deployer/pkg/inferstatus"
	"mindie.io/deployer/pkg/podstatus"
)

// Faults. The controller reads what the Ascend device plugin reports of
// the NPUs (the kube-system/mindx-dl-deviceinfo-<node> ConfigMaps, the
// chips each pod holds from its annotation) and what Kubernetes says of
// the nodes, so NPU fault rescheduling works with the default scheduler
// and no Volcano:
//
//   - a chip whose fault level separates it (PreSeparateNPU, SeparateNPU,
//     ManuallySeparateNPU), or a RestartRequest fault that lasts 60 s or
//     more, must be left: with faultRescheduling Force the pod holding it
//     is deleted at once; with Grace it is deleted gracefully (it leaves
//     the router, finishes its requests, runs its preStop) and deleted at
//     once if still there after faultGraceOverTimeSeconds; with Off it is
//     only reported. The pod's instance is then made again on healthy
//     chips by the usual machinery: the Deployment replaces a single-node
//     pod, a cross-node instance is recreated whole, a Prefill/Decode
//     member alone.
//   - RestartBusiness, FreeRestartNPU and RestartNPU restart the server in
//     place (the container restarts); NotHandleFault and SubHealthFault
//     need nothing. These are recorded, nothing is moved.
//   - with scheduler volcano, Volcano moves the pods (the labels the pods
//     carry ask it to): the controller only reports, so the two never act
//     twice.
//   - a node NotReady or unreachable for nodeLostSeconds has its pods
//     deleted at once (its kubelet cannot finish a graceful deletion), and
//     their instances are made again elsewhere, whatever the policy.
//
// A pod on a separated chip or on a node that is not ready is never
// counted ready, whatever its last reported condition says.

// restartRequestMoveAfter is how long a RestartRequest fault may last
// before its chip is isolated and the job moved (the device plugin's
// rule for inference).
const restartRequestMoveAfter = 60 * time.Second

// Reasons of fault events and of Degraded while a fault is handled.
const (
	ReasonNPUFault       = inferstatus.ReasonNPUFault
	ReasonNodeLost       = inferstatus.ReasonNodeLost
	ReasonProcessCrash   = "ProcessCrash"
	ReasonProbeFailure   = "ProbeFailure"
	ReasonFaultRecovered = "FaultRecovered"
)

// NewFaultInformers returns the informer factory of what faults are read
// from: the nodes, and the ConfigMaps of the device plugin's namespace.
func NewFaultInformers(kube kubernetes.Interface, resync time.Duration) kubeinformers.SharedInformerFactory {
	return kubeinformers.NewSharedInformerFactoryWithOptions(kube, resync, kubeinformers.WithNamespace(ascend.DeviceInfoNamespace),
		kubeinformers.WithTransform(cachetrim.ManagedFields))
}

// NewNodeLeaseInformers returns the informer factory of the nodes'
// heartbeats (the Leases of kube-node-lease).
func NewNodeLeaseInformers(kube kubernetes.Interface, resync time.Duration) kubeinformers.SharedInformerFactory {
	return kubeinformers.NewSharedInformerFactoryWithOptions(kube, resync, kubeinformers.WithNamespace(corev1.NamespaceNodeLease),
		kubeinformers.WithTransform(cachetrim.ManagedFields))
}

// podsByNode indexes the controller's pods by node.
const podsByNode = "byNode"

func indexPodsByNode(obj any) ([]string, error) {
	if p, ok := obj.(*corev1.Pod); ok && p.Spec.NodeName != "" {
		return []string{p.Spec.NodeName}, nil
	}
	return nil, nil
}

// watchFaults queues the servers of a node's pods when the node or its
// device info changes.
func (c *Controller) watchFaults(f, leases kubeinformers.SharedInformerFactory, pods cache.SharedIndexInformer) error {
	if err := pods.AddIndexers(cache.Indexers{podsByNode: indexPodsByNode}); err != nil {
		return err
	}
	c.podIndex = pods.GetIndexer()
	nodes := f.Core().V1().Nodes().Informer()
	cms := f.Core().V1().ConfigMaps().Informer()
	onNode := func(node string) {
		objs, err := c.podIndex.ByIndex(podsByNode, node)
		if err != nil {
			return
		}
		for _, o := range objs {
			c.enqueueOwner(o)
		}
	}
	handler := func(nodeOf func(metav1.Object) (string, bool)) cache.ResourceEventHandlerFuncs {
		h := func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if m, ok := obj.(metav1.Object); ok {
				if node, ok := nodeOf(m); ok {
					onNode(node)
				}
			}
		}
		return cache.ResourceEventHandlerFuncs{AddFunc: h, UpdateFunc: func(_, n any) { h(n) }, DeleteFunc: h}
	}
	if _, err := nodes.AddEventHandler(handler(func(m metav1.Object) (string, bool) { return m.GetName(), true })); err != nil {
		return err
	}
	if _, err := cms.AddEventHandler(handler(func(m metav1.Object) (string, bool) {
		return strings.CutPrefix(m.GetName(), ascend.DeviceInfoConfigMapName(""))
	})); err != nil {
		return err
	}
	if leases != nil {
		inf := leases.Coordination().V1().Leases().Informer()
		if _, err := inf.AddEventHandler(handler(func(m metav1.Object) (string, bool) { return m.GetName(), true })); err != nil {
			return err
		}
		c.nodeLeases = leases.Coordination().V1().Leases().Lister()
		c.synced = append(c.synced, inf.HasSynced)
	}
	c.nodes = f.Core().V1().Nodes().Lister()
	c.deviceInfo = f.Core().V1().ConfigMaps().Lister()
	c.synced = append(c.synced, nodes.HasSynced, cms.HasSynced)
	return nil
}

// podFault is a fault the controller sees on a pod now.
type podFault struct {
	kind              v1alpha1.FaultKind
	node, chip, level string
	code              string
	since             time.Time
	// move: the pod must leave (its chip, its node); unserving: it cannot
	// serve while the fault lasts.
	move, unserving bool
	// moveAt is when a fault that does not need a move yet will (a
	// RestartRequest, a node not lost long enough); zero otherwise.
	moveAt time.Time
	why    string
}

// key identifies a fault across syncs.
func (f podFault) key(pod string) string {
	return strings.Join([]string{string(f.kind), pod, f.chip, f.level}, "/")
}

// podFaults are the faults of pod p now: its node's, and its chips'.
func (c *Controller) podFaults(s *v1alpha1.InferServer, p *corev1.Pod) []podFault {
	if c.nodes == nil || p.Spec.NodeName == "" {
		return nil
	}
	now := c.now()
	var out []podFault
	if f, ok := c.nodeFault(s, p.Spec.NodeName, now); ok {
		out = append(out, f)
	}
	cm, err := c.deviceInfo.ConfigMaps(ascend.DeviceInfoNamespace).Get(ascend.DeviceInfoConfigMapName(p.Spec.NodeName))
	if err != nil {
		return out
	}
	cfg, err := ascend.ParseDeviceInfoCfg(cm.Data[ascend.DeviceInfoKey])
	if err != nil {
		return out
	}
	faults, err := cfg.DeviceInfo.Faults(string(npuType(s)))
	if err != nil {
		return out
	}
	chips := chipsOf(s, p)
	for _, fi := range faults {
		level := ascend.FaultLevelOf(fi)
		if !slices.Contains(chips, fi.NPUName) || level == "" {
			continue
		}
		f := podFault{kind: v1alpha1.FaultNPU, node: p.Spec.NodeName, chip: fi.NPUName, level: level, code: fi.FaultCode,
			since: faultStart(fi, func() time.Time {
				return c.track.faultSeen(fmt.Sprintf("%s/%s/%s", p.Spec.NodeName, fi.NPUName, level), now)
			})}
		switch {
		case ascend.SeparatesChip(level):
			f.move, f.unserving = true, true
			f.why = "the chip is separated: the pod must leave it"
		case level == ascend.FaultRestartRequest:
			f.move = now.Sub(f.since) >= restartRequestMoveAfter
			if f.move {
				f.why = fmt.Sprintf("a RestartRequest fault lasting %s (the chip is isolated after %s)", now.Sub(f.since).Round(time.Second), restartRequestMoveAfter)
			} else {
				f.moveAt = f.since.Add(restartRequestMoveAfter)
				f.why = fmt.Sprintf("RestartRequest: the requests running failed; no move unless it lasts %s", restartRequestMoveAfter)
			}
		case ascend.RestartsProcess(level):
			f.why = "the server restarts in place"
		default:
			f.why = "the level needs no action"
		}
		out = append(out, f)
	}
	return out
}

// nodeFault is the fault of a node that is not ready, or whose kubelet
// stopped renewing its Lease: unserving at once, lost (its pods must
// move) once it has been so for nodeLostSeconds, counted from the
// earlier of the Ready condition's change and the Lease's last renewal.
func (c *Controller) nodeFault(s *v1alpha1.InferServer, node string, now time.Time) (podFault, bool) {
	var since time.Time
	var why string
	if n, err := c.nodes.Get(node); err == nil {
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status != corev1.ConditionTrue {
				since = cond.LastTransitionTime.Time
				why = fmt.Sprintf("node %s is %s since %s (%s)", node, readiness(cond.Status), since.UTC().Format(time.RFC3339), cond.Reason)
			}
		}
	}
	if c.nodeLeases != nil {
		if l, err := c.nodeLeases.Leases(corev1.NamespaceNodeLease).Get(node); err == nil && l.Spec.RenewTime != nil {
			renewed := l.Spec.RenewTime.Time
			expires := renewed.Add(time.Duration(ptr.Deref(l.Spec.LeaseDurationSeconds, 40)) * time.Second)
			if now.After(expires) && (since.IsZero() || renewed.Before(since)) {
				since = renewed
				why = fmt.Sprintf("node %s has not renewed its heartbeat (Lease) since %s", node, renewed.UTC().Format(time.RFC3339))
			}
		}
	}
	if since.IsZero() {
		return podFault{}, false
	}
	lost := time.Duration(*s.Spec.NodeLostSeconds) * time.Second
	f := podFault{kind: v1alpha1.FaultNodeLost, node: node, since: since, unserving: true, move: now.Sub(since) >= lost, why: why}
	if !f.move {
		f.moveAt = since.Add(lost)
	}
	return f, true
}

// faultStart is when a fault began: the earliest fault_time the device
// plugin gives for it, else when the controller first saw it (seen).
func faultStart(fi ascend.FaultInfo, seen func() time.Time) time.Time {
	var first int64
	for _, tl := range fi.FaultTimeAndLevelMap {
		if tl.FaultTime > 0 && (first == 0 || tl.FaultTime < first) {
			first = tl.FaultTime
		}
	}
	if first == 0 {
		return seen()
	}
	return time.UnixMilli(first)
}

func readiness(s corev1.ConditionStatus) string {
	if s == corev1.ConditionUnknown {
		return "unreachable"
	}
	return "NotReady"
}

// podServes says whether a pod serves: ready, and not on a separated chip
// or a node that is not ready.
func (c *Controller) podServes(s *v1alpha1.InferServer, p *corev1.Pod) bool {
	if !podstatus.Serving(p) {
		return false
	}
	for _, f := range c.podFaults(s, p) {
		if f.unserving {
			return false
		}
	}
	return true
}

// faultAction decides what to do about a fault of pod p, and does it.
func (c *Controller) faultAction(ctx context.Context, st *syncState, p *corev1.Pod, f podFault) (v1alpha1.FaultAction, string, error) {
	s := st.server
	now := c.now()
	switch {
	case s.Spec.Scheduler == v1alpha1.SchedulerVolcano && f.kind == v1alpha1.FaultNPU:
		return v1alpha1.FaultActionLeftToVolcano, "scheduler volcano moves the pod (fault-scheduling " + faultSchedulingLabel(s) + ")", nil
	case !f.move:
		if !f.moveAt.IsZero() {
			st.requeueAfter(f.moveAt.Sub(now) + time.Second)
		}
		return v1alpha1.FaultActionNone, f.why, nil
	case f.kind == v1alpha1.FaultNPU && s.Spec.FaultRescheduling == v1alpha1.FaultReschedulingOff:
		return v1alpha1.FaultActionReported, f.why + "; faultRescheduling is Off: nothing moved", nil
	case f.kind == v1alpha1.FaultNodeLost || s.Spec.FaultRescheduling == v1alpha1.FaultReschedulingForce:
		if err := c.deletePodNow(ctx, s, p); err != nil {
			return "", "", err
		}
		return v1alpha1.FaultActionDeleted, f.why + "; the pod was deleted at once and its instance is made again", nil
	}
	// Grace: drain, then force after the grace-over-time.
	over := time.Duration(*s.Spec.FaultGraceOverTimeSeconds) * time.Second
	if p.DeletionTimestamp == nil {
		if err := c.deletePods(ctx, s, []*corev1.Pod{p}); err != nil {
			return "", "", err
		}
		st.requeueAfter(over + time.Second)
		return v1alpha1.FaultActionDrained, f.why + "; the pod drains (deleted gracefully) and its instance is made again", nil
	}
	started := p.DeletionTimestamp.Add(-time.Duration(ptr.Deref(p.DeletionGracePeriodSeconds, 0)) * time.Second)
	if now.Sub(started) < over {
		st.requeueAfter(started.Add(over).Sub(now) + time.Second)
		return v1alpha1.FaultActionDrained, f.why + "; the pod drains (deleted gracefully) and its instance is made again", nil
	}
	if err := c.deletePodNow(ctx, s, p); err != nil {
		return "", "", err
	}
	return v1alpha1.FaultActionForced, fmt.Sprintf("%s; still draining after faultGraceOverTimeSeconds (%ds): deleted at once", f.why, *s.Spec.FaultGraceOverTimeSeconds), nil
}

func faultSchedulingLabel(s *v1alpha1.InferServer) string {
	return strings.ToLower(string(s.Spec.FaultRescheduling))
}

// deletePodNow deletes a pod with no grace period.
func (c *Controller) deletePodNow(ctx context.Context, s *v1alpha1.InferServer, p *corev1.Pod) error {
	err := c.kube.CoreV1().Pods(s.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0), Preconditions: &metav1.Preconditions{UID: &p.UID}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		c.recorder.Eventf(s, corev1.EventTypeWarning, ReasonFailedDelete, "Deleting pod %s: %v", p.Name, err)
		return fmt.Errorf("delete pod %s: %w", p.Name, err)
	}
	return nil
}

// handleFaults acts on the faults of the server's pods and records them
// in the sync's fault history. It runs before the instances are judged:
// a pod it deletes is seen as deleted or gone, and its instance made
// again by the usual paths.
func (c *Controller) handleFaults(ctx context.Context, st *syncState, pods []*corev1.Pod) error {
	s := st.server
	for _, p := range pods {
		if isTerminal(p) {
			continue
		}
		for _, f := range c.podFaults(s, p) {
			action, msg, err := c.faultAction(ctx, st, p, f)
			if err != nil {
				return err
			}
			c.recordFault(st, p, f, action, msg)
			if f.unserving && st.degradedReason == "" {
				st.degradedReason = ReasonNPUFault
				if f.kind == v1alpha1.FaultNodeLost {
					st.degradedReason = ReasonNodeLost
				}
				st.degradedMessage = fmt.Sprintf("pod %s: %s", p.Name, msg)
			}
		}
	}
	return nil
}

// recordFault adds a fault to the history, or updates the action of the
// open record of the same fault, with an event when either happens.
func (c *Controller) recordFault(st *syncState, p *corev1.Pod, f podFault, action v1alpha1.FaultAction, msg string) {
	s := st.server
	st.openFaults[f.key(p.Name)] = true
	rec := v1alpha1.FaultRecord{Time: metav1.NewTime(f.since), Kind: f.kind, Instance: instanceOf(p), Pod: p.Name, Node: f.node,
		Chip: f.chip, Level: f.level, Code: f.code, Action: action, Message: msg}
	if rec.Time.IsZero() {
		rec.Time = metav1.NewTime(c.now())
	}
	for i := range st.faults {
		old := &st.faults[i]
		if old.RecoveredTime != nil || recordKey(*old) != f.key(p.Name) {
			continue
		}
		if old.Action != action {
			old.Action, old.Message = action, msg
			c.recorder.Eventf(s, corev1.EventTypeWarning, string(f.kind), "%s: %s", describeFault(*old), msg)
		}
		return
	}
	st.faults = append(st.faults, rec)
	c.recorder.Eventf(s, corev1.EventTypeWarning, string(f.kind), "%s: %s", describeFault(rec), msg)
}

func recordKey(r v1alpha1.FaultRecord) string {
	return strings.Join([]string{string(r.Kind), r.Pod, r.Chip, r.Level}, "/")
}

// describeFault names a fault for events: "pod p on node n: chip c
// SeparateNPU (code 80E01801)".
func describeFault(r v1alpha1.FaultRecord) string {
	out := fmt.Sprintf("pod %s on node %s", r.Pod, r.Node)
	if r.Chip != "" {
		out += fmt.Sprintf(": chip %s %s", r.Chip, r.Level)
		if r.Code != "" {
			out += " (code " + r.Code + ")"
		}
	}
	return out
}

// instanceOf is the instance a pod belongs to: its label, or the pod (a
// single-node instance).
func instanceOf(p *corev1.Pod) string {
	if in := p.Labels[v1alpha1.LabelInstance]; in != "" {
		return in
	}
	return p.Name
}

// noteRestartsAndProbes records the server crashes and probe failures of
// the pods since the last status: a restart count that grew, a pod that
// served and no longer passes its readiness probe with no other fault.
func (c *Controller) noteRestartsAndProbes(st *syncState) {
	s := st.server
	before := map[string]v1alpha1.InstancePodStatus{}
	for _, in := range s.Status.Instances {
		for _, p := range in.Pods {
			before[p.Name] = p
		}
	}
	for _, in := range st.instances {
		for _, p := range in.Pods {
			was, ok := before[p.Name]
			if !ok {
				continue
			}
			switch {
			case p.Restarts > was.Restarts:
				c.addFault(st, v1alpha1.FaultRecord{Kind: v1alpha1.FaultProcessCrash, Instance: in.Name, Pod: p.Name, Node: p.Node,
					Action: v1alpha1.FaultActionNone, Message: fmt.Sprintf("the server exited (restart %d) and restarts in place", p.Restarts)})
			case was.Ready && !p.Ready && p.Live && !c.hasOpenFault(st, p.Name):
				c.addFault(st, v1alpha1.FaultRecord{Kind: v1alpha1.FaultProbeFailure, Instance: in.Name, Pod: p.Name, Node: p.Node,
					Action: v1alpha1.FaultActionNone, Message: "the server stopped passing its readiness probe: it gets no requests until it passes again"})
			}
		}
	}
}

func (c *Controller) hasOpenFault(st *syncState, pod string) bool {
	for _, r := range st.faults {
		if r.Pod == pod && r.RecoveredTime == nil {
			return true
		}
	}
	return false
}

// addFault adds a record seen now, with its event.
func (c *Controller) addFault(st *syncState, r v1alpha1.FaultRecord) {
	r.Time = metav1.NewTime(c.now())
	st.faults = append(st.faults, r)
	c.recorder.Eventf(st.server, corev1.EventTypeWarning, string(r.Kind), "%s: %s", describeFault(r), r.Message)
}

// faultHistory is the status's fault history after this sync: the
// crashes and probe failures seen, and the faults that are over closed.
func (c *Controller) faultHistory(st *syncState) []v1alpha1.FaultRecord {
	c.noteRestartsAndProbes(st)
	return c.closeFaults(st)
}

// closeFaults marks recovered the open records whose instance serves
// again (or, for an instance that is gone, once the server has all its
// instances ready), and keeps the history within its bound.
func (c *Controller) closeFaults(st *syncState) []v1alpha1.FaultRecord {
	ready := map[string]bool{}
	exists := map[string]bool{}
	for _, in := range st.instances {
		exists[in.Name] = true
		ready[in.Name] = in.Ready
	}
	now := metav1.NewTime(c.now())
	full := st.ready >= replicas(st.server)
	for i := range st.faults {
		r := &st.faults[i]
		if r.RecoveredTime != nil || st.openFaults[recordKey(*r)] {
			continue
		}
		if (exists[r.Instance] && ready[r.Instance]) || (!exists[r.Instance] && full) {
			r.RecoveredTime = ptr.To(now)
			c.recorder.Eventf(st.server, corev1.EventTypeNormal, ReasonFaultRecovered, "%s: %s fault over, instance %s serving (after %s)",
				describeFault(*r), r.Kind, r.Instance, now.Sub(r.Time.Time).Round(time.Second))
		}
	}
	if n := len(st.faults) - v1alpha1.MaxFaultHistory; n > 0 {
		return st.faults[n:]
	}
	return st.faults
}

package kubelet

import (
	"context"
	"fmt"
	"maps"
	"net"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/pkg/ascend"
)

// Simulator simulates the kubelets and device plugins of a set of nodes.
type Simulator struct {
	cfg Config

	mu        sync.Mutex
	nodes     map[string]*nodeState
	nodeNames []string // every simulated node: the Ascend nodes, then the edge nodes
	ips       *ipPool
	devIPs    deviceIPs
	pods      map[string]*podState // by namespace/name

	writers sync.WaitGroup // pod status writers

	kubeletAddr *net.TCPAddr // of the kubelet API, once started

	nodeFaults sync.Mutex // serializes SetNodeDown

	runCtx context.Context   // Run's, once it runs
	resync func(node string) // queues a node's pods for a sync, once pods are watched
}

type nodeState struct {
	name  string
	index int // in Config.NodeNames (Ascend nodes) or Config.EdgeNodes
	// edge is the node's description if it is an edge node, nil for an
	// Ascend node.
	edge *EdgeNode
	// npuType is the type of the node's chips, "" when it has none.
	npuType string
	// hostIP is the node's InternalIP and its pods' hostIP.
	hostIP string
	down   bool
	up     chan struct{} // closed while the node is up
	// pullFails: every image pull on the node fails (SetNodePullFailure).
	pullFails bool
	// lease is the node's Lease as last written (renewals update it).
	lease *coordinationv1.Lease
	// writes is held (read) by every API write of the node's kubelet and
	// device plugin, and (write) by SetNodeDown to take the node down: no
	// write of a down node is under way or starts.
	writes sync.RWMutex
	chips  []chip
	uidRef types.UID
}

type chip struct {
	owner     types.UID // pod holding the chip, "" when free
	fault     string    // fault level, "" when healthy
	faultTime time.Time // when the fault was injected
}

// New checks cfg and returns a simulator; Run starts it.
func New(cfg Config) (*Simulator, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	ips, err := newIPPool(cfg.PodCIDR)
	if err != nil {
		return nil, err
	}
	devIPs, err := newDeviceIPs(cfg.DeviceIPCIDR, len(cfg.NodeNames), cfg.NPUsPerNode)
	if err != nil {
		return nil, err
	}
	s := &Simulator{cfg: cfg, nodes: map[string]*nodeState{}, ips: ips, devIPs: devIPs, pods: map[string]*podState{}}
	for i, n := range cfg.NodeNames {
		up := make(chan struct{})
		close(up)
		s.nodes[n] = &nodeState{name: n, index: i, up: up, npuType: cfg.NPUType, hostIP: NodeIP, chips: make([]chip, cfg.NPUsPerNode)}
		s.nodeNames = append(s.nodeNames, n)
	}
	for i := range cfg.EdgeNodes {
		e := &cfg.EdgeNodes[i]
		up := make(chan struct{})
		close(up)
		s.nodes[e.Name] = &nodeState{name: e.Name, index: i, edge: e, up: up, npuType: e.NPUType, hostIP: e.IP, chips: make([]chip, e.NPUs)}
		s.nodeNames = append(s.nodeNames, e.Name)
	}
	return s, nil
}

// NodeNames returns the simulated nodes' names: the Ascend nodes', then
// the edge nodes'.
func (s *Simulator) NodeNames() []string { return append([]string(nil), s.nodeNames...) }

// EdgeNodes returns the simulated edge nodes, their defaults filled in.
func (s *Simulator) EdgeNodes() []EdgeNode { return append([]EdgeNode(nil), s.cfg.EdgeNodes...) }

// HostIP returns the address of a simulated node (its InternalIP, its
// pods' hostIP), "" for a node it does not simulate.
func (s *Simulator) HostIP(node string) string {
	if ns, ok := s.nodes[node]; ok { // the node set never changes
		return ns.hostIP
	}
	return ""
}

func (s *Simulator) logf(format string, args ...any) {
	fmt.Fprintf(s.cfg.Log, time.Now().Format("15:04:05.000")+" ascend-sim: "+format+"\n", args...)
}

// resourceName is the extended resource of the node's chips ("" when it
// has none).
func (ns *nodeState) resourceName() corev1.ResourceName {
	if ns.npuType == "" {
		return ""
	}
	return ascend.ResourceName(ns.npuType)
}

// chipName is the device plugin's name of the node's chip i.
func (ns *nodeState) chipName(i int) string { return ascend.ChipName(ns.npuType, i) }

// chipNames returns the names of the node's chips.
func (ns *nodeState) chipNames(chips []int) []string {
	names := make([]string, len(chips))
	for i, c := range chips {
		names[i] = ns.chipName(c)
	}
	return names
}

// Run registers the nodes, publishes their device info, keeps their leases
// and heartbeats and plays the kubelet for their pods until ctx ends. It
// then stops every workload (leaving the pods in the API) and returns nil.
// A failure to register the nodes is returned at once.
func (s *Simulator) Run(ctx context.Context) error {
	s.mu.Lock()
	s.runCtx = ctx
	s.mu.Unlock()
	if err := s.startKubeletServer(ctx); err != nil {
		return err
	}
	for _, name := range s.nodeNames {
		if err := s.registerNode(ctx, name); err != nil {
			return fmt.Errorf("register node %s: %w", name, err)
		}
		if err := s.writeDeviceInfo(ctx, name); err != nil {
			return fmt.Errorf("device info of node %s: %w", name, err)
		}
		if err := s.renewLease(ctx, name); err != nil {
			return fmt.Errorf("lease of node %s: %w", name, err)
		}
	}
	if len(s.cfg.NodeNames) > 0 {
		s.logf("registered %d simulated %s nodes: %v", len(s.cfg.NodeNames), s.cfg.NPUType, s.cfg.NodeNames)
	}
	if len(s.cfg.EdgeNodes) > 0 {
		var desc []string
		for _, e := range s.cfg.EdgeNodes {
			d := e.Name + " (" + e.Arch + ", " + e.IP
			if e.NPUType != "" {
				d += fmt.Sprintf(", %d %s", e.NPUs, e.NPUType)
			}
			desc = append(desc, d+")")
		}
		taint := "tainted " + EdgeTaintKey + ":NoSchedule"
		if s.cfg.EdgeNodesUntainted {
			taint = "untainted"
		}
		s.logf("registered %d simulated edge nodes, %s: %s", len(desc), taint, strings.Join(desc, ", "))
	}
	var wg sync.WaitGroup
	for _, name := range s.nodeNames {
		wg.Go(func() { s.heartbeatLoop(ctx, name) })
	}
	wg.Go(func() { s.runPods(ctx) })
	wg.Wait()
	return nil
}

// nodeLabels are the labels the simulator gives node name.
func (s *Simulator) nodeLabels(name string) map[string]string {
	ns := s.nodes[name]
	l := map[string]string{}
	if ns.npuType != "" {
		l = ascend.NodeLabels(ns.npuType)
	}
	maps.Copy(l, map[string]string{
		corev1.LabelHostname:   name,
		corev1.LabelOSStable:   "linux",
		corev1.LabelArchStable: s.nodeArch(ns),
		SimulatedLabel:         "true",
	})
	if ns.edge != nil {
		l[SimulatedLabel] = SimulatedEdgeValue
		l[EdgeLabel] = "true"
		l[EdgeRoleLabel] = ""
	}
	maps.Copy(l, s.cfg.ExtraLabels)
	return l
}

// nodeArch is the node's architecture.
func (s *Simulator) nodeArch(ns *nodeState) string {
	if ns.edge != nil {
		return ns.edge.Arch
	}
	return "arm64"
}

// edgeTaint is the taint of the edge nodes.
var edgeTaint = corev1.Taint{Key: EdgeTaintKey, Effect: corev1.TaintEffectNoSchedule}

// setTaints gives node the taints the simulator manages (the edge taint
// on an edge node, unless Config.EdgeNodesUntainted), keeping the others.
func (s *Simulator) setTaints(node *corev1.Node) {
	ns := s.nodes[node.Name]
	want := ns.edge != nil && !s.cfg.EdgeNodesUntainted
	var taints []corev1.Taint
	for _, t := range node.Spec.Taints {
		if t.Key != EdgeTaintKey || t.Effect != corev1.TaintEffectNoSchedule {
			taints = append(taints, t)
		}
	}
	if want {
		taints = append(taints, edgeTaint)
	}
	node.Spec.Taints = taints
}

// managedLabelKeys are the label keys the simulator sets on some nodes
// only: a node registered again loses those it should not have.
var managedLabelKeys = []string{ascend.LabelAccelerator, ascend.LabelNPUChipName, ascend.LabelWorkerSelector, EdgeLabel, EdgeRoleLabel}

func (s *Simulator) registerNode(ctx context.Context, name string) error {
	nodes := s.cfg.Client.CoreV1().Nodes()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: s.nodeLabels(name)}}
	s.setTaints(node)
	created, err := nodes.Create(ctx, node, metav1.CreateOptions{})
	switch {
	case err == nil:
		node = created
	case apierrors.IsAlreadyExists(err):
		err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur, err := nodes.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if cur.Labels == nil {
				cur.Labels = map[string]string{}
			}
			want := s.nodeLabels(name)
			for _, k := range managedLabelKeys {
				if _, ok := want[k]; !ok {
					delete(cur.Labels, k)
				}
			}
			maps.Copy(cur.Labels, want)
			s.setTaints(cur)
			cur.Spec.Unschedulable = false
			node, err = nodes.Update(ctx, cur, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			return err
		}
	default:
		return err
	}
	s.mu.Lock()
	s.nodes[name].uidRef = node.UID
	s.mu.Unlock()
	return s.updateNodeStatus(ctx, name)
}

// updateNodeStatus writes the node's whole status with fresh heartbeats,
// unless the node is down.
func (s *Simulator) updateNodeStatus(ctx context.Context, name string) error {
	nodes := s.cfg.HeartbeatClient.CoreV1().Nodes()
	return skipDown(s.whileUp(name, func() error {
		return retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur, err := nodes.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			s.fillNodeStatus(cur)
			_, err = nodes.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
			return err
		})
	}))
}

func (s *Simulator) fillNodeStatus(node *corev1.Node) {
	s.mu.Lock()
	ns := s.nodes[node.Name]
	healthy := 0
	for _, c := range ns.chips {
		if chipHealthy(c) {
			healthy++
		}
	}
	s.mu.Unlock()
	now := metav1.Now()
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("192"),
		corev1.ResourceMemory:           resource.MustParse("1536Gi"),
		corev1.ResourcePods:             resource.MustParse("110"),
		corev1.ResourceEphemeralStorage: resource.MustParse("1Ti"),
	}
	osImage := "ascend-sim (simulated node, no kubelet)"
	if ns.edge != nil { // an edge box
		capacity[corev1.ResourceCPU] = resource.MustParse("8")
		capacity[corev1.ResourceMemory] = resource.MustParse("32Gi")
		capacity[corev1.ResourceEphemeralStorage] = resource.MustParse("256Gi")
		osImage = "ascend-sim (simulated edge node, no kubelet)"
	}
	if ns.npuType != "" {
		capacity[ns.resourceName()] = *resource.NewQuantity(int64(len(ns.chips)), resource.DecimalSI)
	}
	alloc := capacity.DeepCopy()
	if ns.npuType != "" {
		alloc[ns.resourceName()] = *resource.NewQuantity(int64(healthy), resource.DecimalSI)
	}
	st := &node.Status
	st.Capacity, st.Allocatable = capacity, alloc
	st.Phase = corev1.NodeRunning
	st.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ns.hostIP}, {Type: corev1.NodeHostName, Address: node.Name}}
	st.DaemonEndpoints = corev1.NodeDaemonEndpoints{}
	if addr := s.KubeletAddr(); addr != nil {
		st.DaemonEndpoints.KubeletEndpoint.Port = int32(addr.Port)
	}
	st.NodeInfo = corev1.NodeSystemInfo{
		MachineID: "simulated-" + node.Name, SystemUUID: "simulated-" + node.Name, BootID: "simulated",
		KernelVersion: "simulated", OSImage: osImage,
		ContainerRuntimeVersion: "simulated://0", KubeletVersion: "v1.36.3-ascend-sim", OperatingSystem: "linux", Architecture: s.nodeArch(ns),
	}
	// A down node writes nothing: Kubernetes' node lifecycle controller
	// marks it NotReady once its lease and heartbeats stop.
	ready := corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "simulated kubelet is posting ready status"}
	want := []corev1.NodeCondition{
		{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory", Message: "kubelet has sufficient memory available"},
		{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", Message: "kubelet has no disk pressure"},
		{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientPID", Message: "kubelet has sufficient PID available"},
		ready,
	}
	for i := range want {
		want[i].LastHeartbeatTime = now
		want[i].LastTransitionTime = now
		for _, old := range st.Conditions {
			if old.Type == want[i].Type && old.Status == want[i].Status && !old.LastTransitionTime.IsZero() {
				want[i].LastTransitionTime = old.LastTransitionTime
			}
		}
	}
	st.Conditions = want
}

// renewLease renews the node's lease, unless the node is down.
func (s *Simulator) renewLease(ctx context.Context, name string) error {
	return skipDown(s.whileUp(name, func() error { return s.writeLease(ctx, name) }))
}

func (s *Simulator) writeLease(ctx context.Context, name string) error {
	leases := s.cfg.HeartbeatClient.CoordinationV1().Leases(LeaseNamespace)
	now := metav1.NewMicroTime(time.Now())
	dur := int32(max(40, 4*s.cfg.LeaseInterval/time.Second))
	// A renewal updates the Lease last written, one request; only when
	// that fails (someone else wrote it, it is gone, none yet) is it read
	// again first.
	s.mu.Lock()
	last := s.nodes[name].lease
	s.mu.Unlock()
	if last != nil {
		cur := last.DeepCopy()
		cur.Spec.RenewTime = &now
		if updated, err := leases.Update(ctx, cur, metav1.UpdateOptions{}); err == nil {
			s.keepLease(name, updated)
			return nil
		} else if !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := leases.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			s.mu.Lock()
			uid := s.nodes[name].uidRef
			s.mu.Unlock()
			l := &coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: LeaseNamespace},
				Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr.To(name), LeaseDurationSeconds: ptr.To(dur), RenewTime: &now},
			}
			if uid != "" {
				l.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: name, UID: uid}}
			}
			created, err := leases.Create(ctx, l, metav1.CreateOptions{})
			if err == nil {
				s.keepLease(name, created)
			}
			return err
		}
		if err != nil {
			return err
		}
		cur.Spec.HolderIdentity = ptr.To(name)
		cur.Spec.LeaseDurationSeconds = ptr.To(dur)
		cur.Spec.RenewTime = &now
		updated, err := leases.Update(ctx, cur, metav1.UpdateOptions{})
		if err == nil {
			s.keepLease(name, updated)
		}
		return err
	})
}

// keepLease remembers the Lease last written for node name.
func (s *Simulator) keepLease(name string, l *coordinationv1.Lease) {
	s.mu.Lock()
	s.nodes[name].lease = l
	s.mu.Unlock()
}

func (s *Simulator) heartbeatLoop(ctx context.Context, name string) {
	t := time.NewTicker(s.cfg.LeaseInterval)
	defer t.Stop()
	beats := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		down := s.nodes[name].down
		s.mu.Unlock()
		if down {
			continue
		}
		if err := s.renewLease(ctx, name); err != nil && ctx.Err() == nil {
			s.logf("node %s: renew lease: %v", name, err)
		}
		if beats++; beats%NodeStatusRefreshLeases != 0 {
			continue
		}
		if err := s.updateNodeStatus(ctx, name); err != nil && ctx.Err() == nil {
			s.logf("node %s: heartbeat: %v", name, err)
		}
	}
}

package kubelet

import (
	"context"
	"fmt"
	"maps"
	"net"
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

	mu     sync.Mutex
	nodes  map[string]*nodeState
	ips    *ipPool
	devIPs deviceIPs
	pods   map[string]*podState // by namespace/name

	writers sync.WaitGroup // pod status writers

	kubeletAddr *net.TCPAddr // of the kubelet API, once started

	nodeFaults sync.Mutex // serializes SetNodeDown

	runCtx context.Context   // Run's, once it runs
	resync func(node string) // queues a node's pods for a sync, once pods are watched
}

type nodeState struct {
	name  string
	index int // in Config.NodeNames
	down  bool
	up    chan struct{} // closed while the node is up
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
		s.nodes[n] = &nodeState{name: n, index: i, up: up, chips: make([]chip, cfg.NPUsPerNode)}
	}
	return s, nil
}

// NodeNames returns the simulated nodes' names.
func (s *Simulator) NodeNames() []string { return append([]string(nil), s.cfg.NodeNames...) }

func (s *Simulator) logf(format string, args ...any) {
	fmt.Fprintf(s.cfg.Log, time.Now().Format("15:04:05.000")+" ascend-sim: "+format+"\n", args...)
}

func (s *Simulator) resourceName() corev1.ResourceName { return ascend.ResourceName(s.cfg.NPUType) }

func (s *Simulator) chipName(i int) string { return ascend.ChipName(s.cfg.NPUType, i) }

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
	for _, name := range s.cfg.NodeNames {
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
	s.logf("registered %d simulated %s nodes: %v", len(s.cfg.NodeNames), s.cfg.NPUType, s.cfg.NodeNames)
	var wg sync.WaitGroup
	for _, name := range s.cfg.NodeNames {
		wg.Go(func() { s.heartbeatLoop(ctx, name) })
	}
	wg.Go(func() { s.runPods(ctx) })
	wg.Wait()
	return nil
}

func (s *Simulator) nodeLabels(name string) map[string]string {
	l := ascend.NodeLabels(s.cfg.NPUType)
	maps.Copy(l, map[string]string{
		corev1.LabelHostname:   name,
		corev1.LabelOSStable:   "linux",
		corev1.LabelArchStable: "arm64",
		SimulatedLabel:         "true",
	})
	maps.Copy(l, s.cfg.ExtraLabels)
	return l
}

func (s *Simulator) registerNode(ctx context.Context, name string) error {
	nodes := s.cfg.Client.CoreV1().Nodes()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: s.nodeLabels(name)}}
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
			maps.Copy(cur.Labels, s.nodeLabels(name))
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
	nodes := s.cfg.Client.CoreV1().Nodes()
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
		s.resourceName():                *resource.NewQuantity(int64(s.cfg.NPUsPerNode), resource.DecimalSI),
	}
	alloc := capacity.DeepCopy()
	alloc[s.resourceName()] = *resource.NewQuantity(int64(healthy), resource.DecimalSI)
	st := &node.Status
	st.Capacity, st.Allocatable = capacity, alloc
	st.Phase = corev1.NodeRunning
	st.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: NodeIP}, {Type: corev1.NodeHostName, Address: node.Name}}
	st.DaemonEndpoints = corev1.NodeDaemonEndpoints{}
	if addr := s.KubeletAddr(); addr != nil {
		st.DaemonEndpoints.KubeletEndpoint.Port = int32(addr.Port)
	}
	st.NodeInfo = corev1.NodeSystemInfo{
		MachineID: "simulated-" + node.Name, SystemUUID: "simulated-" + node.Name, BootID: "simulated",
		KernelVersion: "simulated", OSImage: "ascend-sim (simulated node, no kubelet)",
		ContainerRuntimeVersion: "simulated://0", KubeletVersion: "v1.36.3-ascend-sim", OperatingSystem: "linux", Architecture: "arm64",
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
	leases := s.cfg.Client.CoordinationV1().Leases(LeaseNamespace)
	now := metav1.NewMicroTime(time.Now())
	dur := int32(max(40, 4*s.cfg.LeaseInterval/time.Second))
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
			_, err = leases.Create(ctx, l, metav1.CreateOptions{})
			return err
		}
		if err != nil {
			return err
		}
		cur.Spec.HolderIdentity = ptr.To(name)
		cur.Spec.LeaseDurationSeconds = ptr.To(dur)
		cur.Spec.RenewTime = &now
		_, err = leases.Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
}

func (s *Simulator) heartbeatLoop(ctx context.Context, name string) {
	t := time.NewTicker(s.cfg.LeaseInterval)
	defer t.Stop()
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
		if err := s.updateNodeStatus(ctx, name); err != nil && ctx.Err() == nil {
			s.logf("node %s: heartbeat: %v", name, err)
		}
	}
}

package kubelet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
)

// HeartbeatQPS is the request rate the heartbeats of nodes nodes need
// with leases renewed every interval: one Lease update per node per
// interval and a node status (a read and a write) every
// NodeStatusRefreshLeases of them, with half as much again to spare, and
// at least 20.
func HeartbeatQPS(nodes int, interval time.Duration) float32 {
	perNode := (1 + 2.0/NodeStatusRefreshLeases) / interval.Seconds()
	return float32(max(20, 1.5*float64(nodes)*perNode))
}

// Defaults for the zero fields of Config.
const (
	DefaultNodeCount     = 4
	DefaultNodePrefix    = "ascend-"
	DefaultNPUType       = "Ascend910"
	DefaultNPUsPerNode   = 8
	DefaultPodCIDR       = "127.1.0.0/16"
	DefaultLeaseInterval = 10 * time.Second
	// NodeStatusRefreshLeases is how many lease renewals pass between two
	// writes of an unchanged node status (a minute by default; a kubelet's
	// nodeStatusReportFrequency is 5 minutes): liveness is the lease's
	// job, and a status that changes (a fault, the node back up) is
	// written at once. At 1,000 nodes this keeps the heartbeats to about
	// one write per node per lease interval.
	NodeStatusRefreshLeases = 6
	// DefaultDeviceIPCIDR is the loopback range NPU device IPs come from.
	DefaultDeviceIPCIDR = "127.254.0.0/16"
	// DefaultCrashLoopBackOffSeconds is the default first CrashLoopBackOff
	// delay, in ProbeSeconds (the kubelet's 10s).
	DefaultCrashLoopBackOffSeconds = 10
	// CrashLoopBackOffMaxSeconds caps the CrashLoopBackOff delay, in
	// ProbeSeconds (the kubelet's 5 minutes).
	CrashLoopBackOffMaxSeconds = 300
	// CrashLoopBackOffResetSeconds is how long, in ProbeSeconds, a container
	// must run without exiting for its back-off to start again from the base
	// (the kubelet's 10 minutes).
	CrashLoopBackOffResetSeconds = 600

	// NodeIP is every simulated Ascend node's InternalIP and the hostIP
	// of their pods. (Each edge node has an address of its own: see
	// EdgeNode.IP.)
	NodeIP = "127.0.0.1"
	// SimulatedLabel marks the nodes this package manages: "true" on the
	// Ascend nodes, SimulatedEdgeValue on the edge nodes (so that
	// mindie.io/simulated=true keeps selecting the Ascend nodes only, and
	// the bare key selects them all).
	SimulatedLabel = "mindie.io/simulated"
	// SimulatedEdgeValue is SimulatedLabel's value on edge nodes.
	SimulatedEdgeValue = "edge"
	// LeaseNamespace holds node leases.
	LeaseNamespace = "kube-node-lease"
)

// Real processes: containers whose command[0] has the base name
// RouterCommand run Config.RouterBinary (see the default WorkloadStarter).
const (
	// RouterCommand is the base name of command[0] that makes a container
	// run as a real mindie-router process rather than a MindIE Server
	// simulator.
	RouterCommand = "mindie-router"
	// DefaultServiceAccount is the service account of a pod that names
	// none, as the API server's admission would set it.
	DefaultServiceAccount = "default"
	// ServiceAccountTokenExpirationSeconds is the lifetime asked of the
	// TokenRequest API for a process's service account token (the
	// kubelet's projected token default is one hour too).
	ServiceAccountTokenExpirationSeconds = 3600
	// TokenRefreshFraction is the part of a token's lifetime after which
	// it is replaced, as the kubelet does at 80%.
	TokenRefreshFraction = 0.8
	// tokenRefreshMin bounds how often a token is refreshed, whatever
	// lifetime the API server grants.
	tokenRefreshMin = time.Second
	// tokenRetryDelay is how long a failed token refresh waits before it is
	// tried again.
	tokenRetryDelay = 10 * time.Second
	// tokenRequestTimeout bounds one TokenRequest call.
	tokenRequestTimeout = 30 * time.Second
	// processWaitDelay bounds how long, after a process exits, its output
	// is still read (a child it left behind may hold the pipe open).
	processWaitDelay = 2 * time.Second
)

// inheritedEnv names the only variables of the simulator's own environment
// a process gets; the rest of its environment is its container's env.
var inheritedEnv = []string{"PATH", "HOME", "TMPDIR"}

// Config describes the simulated nodes.
type Config struct {
	// Client talks to the API server. Required.
	Client kubernetes.Interface
	// HeartbeatClient writes the nodes' Leases and statuses: a client of
	// its own, so that heartbeats and pod status do not wait for each
	// other (each kubelet has its own budget). Default Client.
	HeartbeatClient kubernetes.Interface
	// NodeNames names the simulated Ascend nodes. When empty, NodeCount
	// nodes named NodePrefix+"0" .. NodePrefix+"<NodeCount-1>" are
	// simulated: DefaultNodeCount when NodeCount is 0, none when it is
	// negative (a world of edge nodes only).
	NodeNames  []string
	NodeCount  int
	NodePrefix string
	// NPUType is the chip type: resource huawei.com/<NPUType>, chips named
	// <NPUType>-<i>. Default Ascend910.
	NPUType string
	// NPUsPerNode is the number of chips per node. Default 8.
	NPUsPerNode int
	// ExtraLabels are added to every node.
	ExtraLabels map[string]string
	// EdgeNodes are simulated edge nodes, registered beside the Ascend
	// nodes (see EdgeNode, DefaultEdgeNodes and ParseEdgeNodes).
	EdgeNodes []EdgeNode
	// EdgeNodeIPCIDR is the loopback range the edge nodes' addresses come
	// from when their IP is not set: the i-th edge node (0-based) gets
	// address i+1 of it (127.2.0.1, 127.2.0.2, ... by default). It must
	// not overlap PodCIDR or DeviceIPCIDR. Default DefaultEdgeNodeIPCIDR.
	EdgeNodeIPCIDR string
	// EdgeNodesUntainted leaves the edge nodes without the
	// EdgeTaintKey:NoSchedule taint they carry by default.
	EdgeNodesUntainted bool
	// PodCIDR is the loopback range pod IPs come from. Default 127.1.0.0/16.
	PodCIDR string
	// DeviceIPCIDR is the loopback range the NPUs' device IPs (published in
	// the pod annotation ascend.AnnotationAscend910Configuration; never
	// dialled) come from: chip c of the i-th node has address i*256+c of
	// the range (127.254.i.c with the default 127.254.0.0/16), or i*s+c, s
	// the chip count rounded up to a power of two, when the range is too
	// small for that. It must not overlap PodCIDR. Default 127.254.0.0/16.
	DeviceIPCIDR string
	// CrashLoopBackOff is the delay before a container that exited is
	// restarted the first time; each further restart doubles it, up to
	// CrashLoopBackOffMaxSeconds ProbeSeconds, and a container that ran
	// CrashLoopBackOffResetSeconds ProbeSeconds before exiting starts again
	// from this base. Default DefaultCrashLoopBackOffSeconds ProbeSeconds.
	CrashLoopBackOff time.Duration
	// LeaseInterval is how often leases are renewed; an unchanged node
	// status is written every NodeStatusRefreshLeases of them. Default
	// 10s.
	LeaseInterval time.Duration
	// StartWorkload starts a container's workload. Default: a container
	// whose command[0] has the base name RouterCommand runs RouterBinary as
	// a real process (see RouterBinary); every other one runs a MindIE
	// Server simulator (see MindIEWorkload).
	StartWorkload WorkloadStarter
	// RouterBinary is the path of the mindie-router executable that
	// containers whose command[0] has the base name RouterCommand run, with
	// their expanded command[1:] and args, their env, on their pod's IP
	// and with --kubeconfig=<a kubeconfig holding a token of the pod's
	// service account> appended. When empty, such containers fail to
	// start (StartError) with a message saying so.
	RouterBinary string
	// APIServer is the URL of the API server that the kubeconfigs given to
	// processes name (the one Client talks to), and APIServerCA the PEM
	// CA bundle that verifies it (none: the system roots). Processes cannot
	// start without APIServer.
	APIServer   string
	APIServerCA []byte
	// ProbeSecond is how long one "second" of a probe's or pod's timing
	// fields (periodSeconds, initialDelaySeconds, timeoutSeconds, grace
	// periods) lasts. Default time.Second; tests shorten it.
	ProbeSecond time.Duration
	// Log receives the simulator's log lines. Default: the standard logger.
	Log io.Writer
	// KubeletPort is the port on 127.0.0.1 of the HTTPS kubelet API
	// (container logs) shared by all simulated nodes and published as
	// their daemonEndpoints.kubeletEndpoint.Port. 0: any free port.
	KubeletPort int
	// LogLines is how many lines each container's log keeps. Default
	// DefaultLogLines.
	LogLines int
}

// WorkloadSpec is what a workload starter gets for one container.
type WorkloadSpec struct {
	Pod       *corev1.Pod
	Container corev1.Container
	// PodIP is the loopback address the workload must serve on (the
	// node's HostIP when the pod has hostNetwork).
	PodIP string
	// HostIP is the loopback address of the pod's node (its InternalIP,
	// the pod's status.hostIP): where hostPorts are served.
	HostIP string
	// Restarts is the container's restart count before this run (0 for
	// its first run).
	Restarts int32
	// NPUs are the chips allocated to the pod ("Ascend910-0", ...).
	NPUs []string
	// Log receives the workload's log.
	Log io.Writer
}

// Workload is a running container.
type Workload interface {
	// Done is closed when the workload exits on its own (a crash).
	Done() <-chan struct{}
	// Stop stops the workload, gracefully until ctx ends and then at once.
	Stop(ctx context.Context) error
}

// ExitCoder is implemented by workloads that know the exit code they
// exited with on their own (once Done is closed). The exit of a workload
// that does not implement it is a crash: exit code 1.
type ExitCoder interface {
	ExitCode() int32
}

// WorkloadStarter starts the workload of one container. ctx ends when the
// pod is torn down. An error is a failed start (terminated, reason
// StartError, exit code 128), unless it is a *WaitingError.
type WorkloadStarter func(ctx context.Context, spec WorkloadSpec) (Workload, error)

// WaitingError is a WorkloadStarter's error for a container that could not
// be created, as a kubelet reports ErrImagePull or
// CreateContainerConfigError: the container is not started (no
// termination, no restart counted, no log), it stays waiting with Reason
// and Message, and the start is tried again after a back-off (the
// CrashLoopBackOff delays). A pod with such a container that never ran
// is Pending.
type WaitingError struct {
	Reason  string
	Message string
}

func (e *WaitingError) Error() string { return e.Reason + ": " + e.Message }

func (c Config) withDefaults() (Config, error) {
	if c.Client == nil {
		return c, errors.New("kubelet simulator: Config.Client is required")
	}
	if c.HeartbeatClient == nil {
		c.HeartbeatClient = c.Client
	}
	if c.NodePrefix == "" {
		c.NodePrefix = DefaultNodePrefix
	}
	if len(c.NodeNames) == 0 {
		if c.NodeCount == 0 {
			c.NodeCount = DefaultNodeCount
		}
		for i := 0; i < c.NodeCount; i++ {
			c.NodeNames = append(c.NodeNames, fmt.Sprintf("%s%d", c.NodePrefix, i))
		}
	}
	if len(c.NodeNames) == 0 && len(c.EdgeNodes) == 0 {
		return c, errors.New("kubelet simulator: no nodes to simulate")
	}
	seen := map[string]bool{}
	for _, n := range c.NodeNames {
		if n == "" || seen[n] {
			return c, fmt.Errorf("kubelet simulator: empty or duplicate node name %q", n)
		}
		seen[n] = true
	}
	if c.NPUType == "" {
		c.NPUType = DefaultNPUType
	}
	if c.NPUsPerNode <= 0 {
		c.NPUsPerNode = DefaultNPUsPerNode
	}
	if c.PodCIDR == "" {
		c.PodCIDR = DefaultPodCIDR
	}
	ip, _, err := net.ParseCIDR(c.PodCIDR)
	if err != nil {
		return c, fmt.Errorf("kubelet simulator: pod CIDR: %w", err)
	}
	if !ip.IsLoopback() || ip.To4() == nil {
		return c, fmt.Errorf("kubelet simulator: pod CIDR %s is not an IPv4 loopback range (only 127.0.0.0/8 is allowed)", c.PodCIDR)
	}
	if c.DeviceIPCIDR == "" {
		c.DeviceIPCIDR = DefaultDeviceIPCIDR
	}
	if err := checkDeviceIPCIDR(c.DeviceIPCIDR, c.PodCIDR); err != nil {
		return c, err
	}
	if err := c.edgeDefaults(seen); err != nil {
		return c, err
	}
	if c.LeaseInterval <= 0 {
		c.LeaseInterval = DefaultLeaseInterval
	}
	if c.ProbeSecond <= 0 {
		c.ProbeSecond = time.Second
	}
	if c.CrashLoopBackOff <= 0 {
		c.CrashLoopBackOff = DefaultCrashLoopBackOffSeconds * c.ProbeSecond
	}
	if c.KubeletPort < 0 || c.KubeletPort > 65535 {
		return c, fmt.Errorf("kubelet simulator: invalid kubelet port %d", c.KubeletPort)
	}
	if c.LogLines <= 0 {
		c.LogLines = DefaultLogLines
	}
	if c.Log == nil {
		c.Log = log.Writer()
	}
	if c.StartWorkload == nil { // last: it keeps a copy of c
		c.StartWorkload = defaultWorkloadStarter(c)
	}
	return c, nil
}

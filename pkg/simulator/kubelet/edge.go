package kubelet

import (
	"encoding/binary"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
)

// Edge nodes: simulated nodes standing for the edge boxes (Atlas 500 and
// the like) that IEF or KubeEdge deploy container applications to. They are
// registered beside the Ascend nodes and run any pod bound to them the same
// way (see the package documentation), but they are labelled and tainted
// so that only workloads meant for the edge land on them.
const (
	// EdgeLabel is "true" on edge nodes.
	EdgeLabel = "mindie.io/edge"
	// EdgeRoleLabel is "" on edge nodes: the node role KubeEdge gives
	// them.
	EdgeRoleLabel = "node-role.kubernetes.io/edge"
	// EdgeTaintKey is the key of the NoSchedule taint (no value) edge nodes
	// carry unless Config.EdgeNodesUntainted: pods must tolerate it
	// (operator Exists, effect NoSchedule) to run there, as on a KubeEdge
	// cluster whose edge nodes joined with --with-edge-taint. It keeps the
	// InferServer pods and routers off them.
	EdgeTaintKey = "node-role.kubernetes.io/edge"
	// DefaultEdgeNodePrefix names the edge nodes DefaultEdgeNodes
	// returns: edge-0, edge-1, ...
	DefaultEdgeNodePrefix = "edge-"
	// DefaultEdgeNPUType is the NPU of the edge nodes that have one
	// (Atlas 300I Pro / Atlas 500 Pro boxes).
	DefaultEdgeNPUType = "Ascend310P"
	// DefaultEdgeNodeIPCIDR is the loopback range edge node addresses
	// come from.
	DefaultEdgeNodeIPCIDR = "127.2.0.0/16"
	// DefaultEdgeArch is the architecture of an edge node that names none.
	DefaultEdgeArch = "arm64"
)

// EdgeNode describes one simulated edge node.
type EdgeNode struct {
	// Name is the node's name, unique among all simulated nodes.
	Name string
	// Arch is its kubernetes.io/arch label and the architecture in its
	// node info (arm64, amd64, ...). Default DefaultEdgeArch.
	Arch string
	// NPUType is the type of its NPU chips (resource huawei.com/<NPUType>,
	// label accelerator=huawei-<NPUType>, a device info ConfigMap), ""
	// when it has none.
	NPUType string
	// NPUs is its number of chips: 0 without NPUType, at least 1 with.
	NPUs int
	// IP is its InternalIP and its pods' hostIP, where hostNetwork pods
	// and hostPorts are served and its kubelet API listens: a loopback
	// address outside the pod and device IP ranges. Default: address i+1
	// of Config.EdgeNodeIPCIDR, i the node's index in Config.EdgeNodes.
	IP string
}

// DefaultEdgeNodes returns n edge nodes edge-0 .. edge-<n-1>, a mix as a
// fleet of edge boxes is: node i is amd64 when i%3 == 2, else arm64, and
// has one Ascend310P chip when i is even, else no NPU. So edge-0 is arm64
// with an Ascend310P, edge-1 arm64 without NPU, edge-2 amd64 with an
// Ascend310P, edge-3 arm64 without, ...
func DefaultEdgeNodes(n int) []EdgeNode {
	nodes := make([]EdgeNode, 0, max(n, 0))
	for i := 0; i < n; i++ {
		e := EdgeNode{Name: fmt.Sprintf("%s%d", DefaultEdgeNodePrefix, i), Arch: DefaultEdgeArch}
		if i%3 == 2 {
			e.Arch = "amd64"
		}
		if i%2 == 0 {
			e.NPUType, e.NPUs = DefaultEdgeNPUType, 1
		}
		nodes = append(nodes, e)
	}
	return nodes
}

var (
	archRE    = regexp.MustCompile(`^[a-z0-9]+$`)
	npuTypeRE = regexp.MustCompile(`^Ascend[A-Za-z0-9]+$`)
)

// ParseEdgeNodes parses a comma-separated list of edge nodes, each
// NAME[:ARCH][:NPUTYPE[=COUNT]] (COUNT 1 by default), e.g.
// "edge-0:arm64:Ascend310P=1,edge-1:amd64,edge-2". "" is none.
func ParseEdgeNodes(spec string) ([]EdgeNode, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, nil
	}
	var nodes []EdgeNode
	for _, entry := range strings.Split(spec, ",") {
		parts := strings.Split(strings.TrimSpace(entry), ":")
		e := EdgeNode{Name: parts[0], Arch: DefaultEdgeArch}
		if e.Name == "" || len(parts) > 3 {
			return nil, fmt.Errorf("edge node %q: want NAME[:ARCH][:NPUTYPE[=COUNT]]", entry)
		}
		for _, p := range parts[1:] {
			switch {
			case strings.HasPrefix(p, "Ascend"):
				typ, count, hasCount := strings.Cut(p, "=")
				e.NPUType, e.NPUs = typ, 1
				if hasCount {
					n, err := strconv.Atoi(count)
					if err != nil || n < 0 {
						return nil, fmt.Errorf("edge node %q: NPU count %q is not a number", entry, count)
					}
					e.NPUs = n
				}
				if e.NPUs == 0 {
					e.NPUType = ""
				}
			case p != "":
				e.Arch = p
			default:
				return nil, fmt.Errorf("edge node %q: empty field", entry)
			}
		}
		nodes = append(nodes, e)
	}
	return nodes, nil
}

// edgeDefaults checks the edge nodes of c and fills in their defaults.
// seen holds the Ascend node names.
func (c *Config) edgeDefaults(seen map[string]bool) error {
	if len(c.EdgeNodes) == 0 {
		return nil
	}
	if c.EdgeNodeIPCIDR == "" {
		c.EdgeNodeIPCIDR = DefaultEdgeNodeIPCIDR
	}
	ip, edgeNet, err := net.ParseCIDR(c.EdgeNodeIPCIDR)
	if err != nil {
		return fmt.Errorf("kubelet simulator: edge node IP CIDR: %w", err)
	}
	if !ip.IsLoopback() || ip.To4() == nil {
		return fmt.Errorf("kubelet simulator: edge node IP CIDR %s is not an IPv4 loopback range (only 127.0.0.0/8 is allowed)", c.EdgeNodeIPCIDR)
	}
	_, podNet, _ := net.ParseCIDR(c.PodCIDR)
	_, devNet, _ := net.ParseCIDR(c.DeviceIPCIDR)
	for _, other := range []*net.IPNet{podNet, devNet} {
		if other != nil && (other.Contains(edgeNet.IP) || edgeNet.Contains(other.IP)) {
			return fmt.Errorf("kubelet simulator: edge node IP CIDR %s overlaps %s", c.EdgeNodeIPCIDR, other)
		}
	}
	ones, bits := edgeNet.Mask.Size()
	size := uint64(1) << (bits - ones)
	nodes := make([]EdgeNode, len(c.EdgeNodes))
	copy(nodes, c.EdgeNodes)
	ips := map[string]string{}
	for i := range nodes {
		e := &nodes[i]
		if e.Name == "" || seen[e.Name] {
			return fmt.Errorf("kubelet simulator: empty or duplicate node name %q", e.Name)
		}
		seen[e.Name] = true
		if e.Arch == "" {
			e.Arch = DefaultEdgeArch
		}
		if !archRE.MatchString(e.Arch) {
			return fmt.Errorf("kubelet simulator: edge node %s: invalid architecture %q", e.Name, e.Arch)
		}
		switch {
		case e.NPUType == "" && e.NPUs != 0:
			return fmt.Errorf("kubelet simulator: edge node %s: %d NPUs of no type", e.Name, e.NPUs)
		case e.NPUType != "" && (e.NPUs <= 0 || !npuTypeRE.MatchString(e.NPUType)):
			return fmt.Errorf("kubelet simulator: edge node %s: NPU type %q with %d chips: want Ascend<model> and at least 1 chip", e.Name, e.NPUType, e.NPUs)
		}
		if e.IP == "" {
			if uint64(i)+2 > size {
				return fmt.Errorf("kubelet simulator: edge node IP CIDR %s is too small for %d nodes", c.EdgeNodeIPCIDR, len(nodes))
			}
			a := make(net.IP, 4)
			binary.BigEndian.PutUint32(a, binary.BigEndian.Uint32(edgeNet.IP.To4())+uint32(i)+1)
			e.IP = a.String()
		}
		a := net.ParseIP(e.IP)
		if a == nil || a.To4() == nil || !a.IsLoopback() {
			return fmt.Errorf("kubelet simulator: edge node %s: IP %q is not an IPv4 loopback address", e.Name, e.IP)
		}
		if (podNet != nil && podNet.Contains(a)) || (devNet != nil && devNet.Contains(a)) {
			return fmt.Errorf("kubelet simulator: edge node %s: IP %s is in the pod or device IP range", e.Name, e.IP)
		}
		if prev, dup := ips[a.String()]; dup {
			return fmt.Errorf("kubelet simulator: edge nodes %s and %s have the same IP %s", prev, e.Name, e.IP)
		}
		ips[a.String()] = e.Name
		e.IP = a.String()
	}
	c.EdgeNodes = nodes
	return nil
}

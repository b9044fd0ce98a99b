package kubelet

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net"
	"strconv"

	"mindie.io/deployer/pkg/ascend"
)

// checkDeviceIPCIDR checks that cidr is an IPv4 loopback range that does
// not overlap the pod CIDR.
func checkDeviceIPCIDR(cidr, podCIDR string) error {
	ip, n, err := net.ParseCIDR(cidr)
	if err != nil {
		return fmt.Errorf("kubelet simulator: device IP CIDR: %w", err)
	}
	if !ip.IsLoopback() || ip.To4() == nil {
		return fmt.Errorf("kubelet simulator: device IP CIDR %s is not an IPv4 loopback range (only 127.0.0.0/8 is allowed)", cidr)
	}
	if _, p, err := net.ParseCIDR(podCIDR); err == nil && (p.Contains(n.IP) || n.Contains(p.IP)) {
		return fmt.Errorf("kubelet simulator: device IP CIDR %s overlaps the pod CIDR %s", cidr, podCIDR)
	}
	return nil
}

// deviceIPs lays the chips of every node out in a device IP range.
type deviceIPs struct {
	base, stride uint32
}

// newDeviceIPs gives chip c of node i the address i*256+c of cidr, or
// i*s+c with s the chip count rounded up to a power of two when cidr is
// too small for 256 addresses per node.
func newDeviceIPs(cidr string, nodes, chips int) (deviceIPs, error) {
	_, n, err := net.ParseCIDR(cidr)
	if err != nil {
		return deviceIPs{}, err
	}
	ones, size := n.Mask.Size()
	addrs := uint64(1) << (size - ones)
	stride := uint64(256)
	if chips > 256 || uint64(nodes)*stride > addrs {
		stride = uint64(1) << bits.Len(uint(chips-1))
	}
	if uint64(nodes)*stride > addrs {
		return deviceIPs{}, fmt.Errorf("kubelet simulator: device IP CIDR %s has %d addresses: %d nodes of %d chips need %d",
			cidr, addrs, nodes, chips, uint64(nodes)*stride)
	}
	return deviceIPs{base: binary.BigEndian.Uint32(n.IP.To4()), stride: uint32(stride)}, nil
}

// ip returns the device IP of chip c of the node with index i.
func (d deviceIPs) ip(i, c int) string {
	ip := make(net.IP, 4)
	binary.BigEndian.PutUint32(ip, d.base+uint32(i)*d.stride+uint32(c))
	return ip.String()
}

// ascendConfiguration returns the ascend.AnnotationAscend910Configuration
// value of a pod holding chips (in chip order) of node.
func (s *Simulator) ascendConfiguration(podName, node string, chips []int) string {
	ns := s.nodes[node]
	cfg := ascend.PodConfiguration{PodName: podName, ServerID: ns.hostIP, HostIP: ns.hostIP}
	idx := ns.index
	for _, c := range chips {
		cfg.Devices = append(cfg.Devices, ascend.PodDevice{DeviceID: strconv.Itoa(c), DeviceIP: s.devIPs.ip(idx, c)})
	}
	return ascend.FormatPodConfiguration(cfg)
}

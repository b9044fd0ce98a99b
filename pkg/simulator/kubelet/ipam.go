package kubelet

import (
	"encoding/binary"
	"fmt"
	"net"
)

// ipPool hands out the addresses of an IPv4 loopback range, skipping the
// network and broadcast addresses and cycling so that a released address
// is not reused at once. Not safe for concurrent use.
type ipPool struct {
	base, size uint32
	next       uint32
	used       map[uint32]bool
}

func newIPPool(cidr string) (*ipPool, error) {
	_, n, err := net.ParseCIDR(cidr)
	if err != nil {
		return nil, err
	}
	ones, bits := n.Mask.Size()
	if bits != 32 || ones > 30 {
		return nil, fmt.Errorf("pod CIDR %s: need an IPv4 range of at least 4 addresses", cidr)
	}
	return &ipPool{base: binary.BigEndian.Uint32(n.IP.To4()), size: 1 << (32 - ones), next: 1, used: map[uint32]bool{}}, nil
}

func (p *ipPool) offset(ip string) (uint32, bool) {
	v4 := net.ParseIP(ip).To4()
	if v4 == nil {
		return 0, false
	}
	off := binary.BigEndian.Uint32(v4) - p.base
	return off, off >= 1 && off < p.size-1
}

// claim marks ip as used if it is a free address of the range.
func (p *ipPool) claim(ip string) bool {
	off, ok := p.offset(ip)
	if !ok || p.used[off] {
		return false
	}
	p.used[off] = true
	return true
}

func (p *ipPool) allocate() (string, error) {
	for range p.size {
		off := p.next
		p.next++
		if p.next >= p.size-1 {
			p.next = 1
		}
		if !p.used[off] {
			p.used[off] = true
			ip := make(net.IP, 4)
			binary.BigEndian.PutUint32(ip, p.base+off)
			return ip.String(), nil
		}
	}
	return "", fmt.Errorf("no free pod IP")
}

func (p *ipPool) release(ip string) {
	if off, ok := p.offset(ip); ok {
		delete(p.used, off)
	}
}

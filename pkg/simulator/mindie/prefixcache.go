package mindie

import (
	"container/list"
	"encoding/binary"
	"hash/fnv"
	"sync"
)

// prefixCache is the simulated KV prefix cache: an LRU of block hashes.
// A block's hash covers its tokens and the previous block's hash, so equal
// hashes mean equal prefixes and a lookup can stop at the first miss.
type prefixCache struct {
	mu       sync.Mutex
	capacity int
	order    *list.List // of uint64 hashes; front is the most recently used
	index    map[uint64]*list.Element
	hits     uint64
	misses   uint64
}

func newPrefixCache(capacity int) *prefixCache {
	return &prefixCache{capacity: capacity, order: list.New(), index: make(map[uint64]*list.Element)}
}

// blockHashes splits tokens into blocks of blockSize (the last one may be
// shorter) and returns each block's chained hash.
func blockHashes(tokens []string, blockSize int) []uint64 {
	hashes := make([]uint64, 0, (len(tokens)+blockSize-1)/blockSize)
	var prev uint64
	var buf [8]byte
	for start := 0; start < len(tokens); start += blockSize {
		h := fnv.New64a()
		binary.LittleEndian.PutUint64(buf[:], prev)
		h.Write(buf[:])
		for _, t := range tokens[start:min(start+blockSize, len(tokens))] {
			h.Write([]byte(t))
			h.Write([]byte{0x1f})
		}
		prev = h.Sum64()
		hashes = append(hashes, prev)
	}
	return hashes
}

// lookup returns how many leading blocks of hashes are cached, counts a hit
// for each of them and a miss for each other block, and marks the hits as
// recently used.
func (c *prefixCache) lookup(hashes []uint64) (matched int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, h := range hashes {
		if _, ok := c.index[h]; !ok {
			break
		}
		matched++
	}
	// Touch from the last matched block back to the first, so that a
	// prefix's first blocks are the most recently used and its tail is
	// evicted before its head.
	for i := matched - 1; i >= 0; i-- {
		c.order.MoveToFront(c.index[hashes[i]])
	}
	c.hits += uint64(matched)
	c.misses += uint64(len(hashes) - matched)
	return matched
}

// insert puts every block of hashes in the cache, most recently used first
// block first, evicting the least recently used blocks beyond capacity.
func (c *prefixCache) insert(hashes []uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(hashes) - 1; i >= 0; i-- {
		h := hashes[i]
		if e, ok := c.index[h]; ok {
			c.order.MoveToFront(e)
			continue
		}
		c.index[h] = c.order.PushFront(h)
	}
	for c.order.Len() > c.capacity {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.index, oldest.Value.(uint64))
	}
}

// stats returns the hit and miss counters and the number of cached blocks.
func (c *prefixCache) stats() (hits, misses uint64, blocks int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits, c.misses, c.order.Len()
}

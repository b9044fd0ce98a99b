package mindie

import (
	"container/list"
	"encoding/binary"
	"hash/fnv"
)

// kvCache is the instance's KV cache: a fixed number of blocks of blockSize
// tokens. A running request holds the blocks of its tokens. A prompt block,
// once prefilled, is published under its chained hash, so that a later
// request whose prompt starts with the same blocks shares it instead of
// prefilling it again: that is the prefix cache. A published block nobody
// holds stays cached, in an LRU, until a new allocation finds no free block
// and evicts it; a block held by a request is never evicted.
//
// It is not safe for concurrent use: the Server guards it with its mutex.
type kvCache struct {
	blockSize int
	total     int
	free      int // blocks holding nothing
	held      int // blocks held by at least one request
	cached    map[uint64]*kvBlock
	lru       *list.List // of *kvBlock nobody holds; front is the most recently used

	hits, misses, evictions uint64
}

// kvBlock is a published (prefix-cached) block.
type kvBlock struct {
	hash uint64
	refs int           // requests holding it
	elem *list.Element // in lru while refs == 0
}

// kvHold is the blocks one request holds.
type kvHold struct {
	shared  []*kvBlock // its leading prompt blocks, published
	private int        // blocks only it uses (not yet or never published)
}

func (h *kvHold) blocks() int { return len(h.shared) + h.private }

func newKVCache(blockSize, total int) *kvCache {
	return &kvCache{
		blockSize: blockSize,
		total:     total,
		free:      total,
		cached:    make(map[uint64]*kvBlock),
		lru:       list.New(),
	}
}

// blocksFor is the number of blocks that hold n tokens.
func (c *kvCache) blocksFor(n int) int { return (n + c.blockSize - 1) / c.blockSize }

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

// match returns the published blocks of hashes' longest cached prefix.
func (c *kvCache) match(hashes []uint64) []*kvBlock {
	var out []*kvBlock
	for _, h := range hashes {
		b, ok := c.cached[h]
		if !ok {
			break
		}
		out = append(out, b)
	}
	return out
}

// available is the number of blocks an allocation can get: the free ones
// and the cached ones nobody holds.
func (c *kvCache) available() int { return c.free + c.lru.Len() }

// acquire starts a request's hold: the cached leading blocks of hashes,
// shared, plus private blocks up to blocksFor(tokens) in all. It returns
// how many blocks were found in the cache, and false (changing nothing)
// when the blocks are not there to be had. Hits and misses are counted,
// in blocks of hashes, only when it succeeds.
func (c *kvCache) acquire(hashes []uint64, tokens int) (*kvHold, int, bool) {
	matched := c.match(hashes)
	need := max(c.blocksFor(tokens)-len(matched), 0)
	// Matched blocks nobody holds are not available to the new ones: this
	// request is about to hold them.
	pinned := 0
	for _, b := range matched {
		if b.refs == 0 {
			pinned++
		}
	}
	if need > c.available()-pinned {
		return nil, 0, false
	}
	h := &kvHold{shared: matched}
	for _, b := range matched {
		c.ref(b)
	}
	c.take(need)
	h.private = need
	c.hits += uint64(len(matched))
	c.misses += uint64(len(hashes) - len(matched))
	return h, len(matched), true
}

// grow makes h hold blocksFor(tokens) blocks, or returns false (changing
// nothing) when there are not enough blocks to be had.
func (c *kvCache) grow(h *kvHold, tokens int) bool {
	need := c.blocksFor(tokens) - h.blocks()
	if need <= 0 {
		return true
	}
	if need > c.available() {
		return false
	}
	c.take(need)
	h.private += need
	return true
}

// growth is the number of blocks grow(h, tokens) would have to take.
func (c *kvCache) growth(h *kvHold, tokens int) int {
	return max(c.blocksFor(tokens)-h.blocks(), 0)
}

// publish makes h's prompt blocks (those of hashes beyond the ones it
// already shares) findable by later requests. A block whose hash is already
// published elsewhere stays private.
func (c *kvCache) publish(h *kvHold, hashes []uint64) {
	for i := len(h.shared); i < len(hashes) && h.private > 0; i++ {
		if _, ok := c.cached[hashes[i]]; ok {
			return // the chain continues in another request's blocks; keep ours private
		}
		b := &kvBlock{hash: hashes[i], refs: 1}
		c.cached[b.hash] = b
		h.shared = append(h.shared, b)
		h.private--
	}
}

// release ends h: private blocks become free, shared ones lose a holder and,
// once nobody holds them, stay cached as the most recently used, a prefix's
// head more recent than its tail (so that the tail is evicted first).
func (c *kvCache) release(h *kvHold) {
	if h == nil {
		return
	}
	c.free += h.private
	c.held -= h.private
	h.private = 0
	for i := len(h.shared) - 1; i >= 0; i-- {
		b := h.shared[i]
		b.refs--
		if b.refs == 0 {
			c.held--
			b.elem = c.lru.PushFront(b)
		}
	}
	h.shared = nil
}

// ref adds a holder to b, taking it out of the LRU if nobody held it.
func (c *kvCache) ref(b *kvBlock) {
	if b.refs == 0 {
		c.lru.Remove(b.elem)
		b.elem = nil
		c.held++
	}
	b.refs++
}

// take allocates n blocks, evicting the least recently used cached blocks
// nobody holds when no free block is left. The caller has checked that n
// blocks are available.
func (c *kvCache) take(n int) {
	for ; n > 0; n-- {
		if c.free == 0 {
			oldest := c.lru.Back()
			b := oldest.Value.(*kvBlock)
			c.lru.Remove(oldest)
			delete(c.cached, b.hash)
			c.evictions++
			c.free++
		}
		c.free--
		c.held++
	}
}

package mindie

import (
	"slices"
	"testing"
)

func TestBlockHashesChainOnThePrefix(t *testing.T) {
	a := blockHashes(Tokenize("a b c d e f g h i j"), 4) // blocks abcd efgh ij
	if len(a) != 3 {
		t.Fatalf("10 tokens in blocks of 4 should give 3 blocks, got %d", len(a))
	}
	b := blockHashes(Tokenize("a b c d e f g h x y z"), 4)
	if a[0] != b[0] || a[1] != b[1] {
		t.Error("blocks with the same prefix should hash the same")
	}
	if a[2] == b[2] {
		t.Error("different last blocks should hash differently")
	}
	// The same block content after a different prefix is a different block.
	c := blockHashes(Tokenize("x x x x e f g h"), 4)
	if c[1] == a[1] {
		t.Error("a block's hash should depend on the blocks before it")
	}
	if got := blockHashes(nil, 4); len(got) != 0 {
		t.Errorf("no tokens should give no blocks, got %d", len(got))
	}
	if !slices.Equal(blockHashes(Tokenize("a b c d e f g h i j"), 4), a) {
		t.Error("hashes should be deterministic")
	}
}

// run is a request's whole life in the cache: it acquires its prompt's
// blocks, publishes them and releases them. It returns the blocks found in
// the cache.
func run(t *testing.T, c *kvCache, hashes []uint64, tokens int) int {
	t.Helper()
	h, matched, ok := c.acquire(hashes, tokens)
	if !ok {
		t.Fatalf("acquire of %d tokens failed", tokens)
	}
	c.publish(h, hashes)
	c.release(h)
	return matched
}

func hashesOf(start, n int) []uint64 { return blockHashes(Tokenize(words(start, n)), 4) }

// checkCounts checks the cache's invariant: every block is free, held or
// cached and nobody's.
func checkCounts(t *testing.T, c *kvCache) {
	t.Helper()
	if c.free+c.held+c.lru.Len() != c.total || c.free < 0 || c.held < 0 {
		t.Fatalf("free %d + held %d + unheld cached %d != total %d", c.free, c.held, c.lru.Len(), c.total)
	}
}

func TestKVCacheMatchesLeadingBlocksAndCountsHits(t *testing.T) {
	c := newKVCache(4, 100)
	p := hashesOf(0, 10) // 3 blocks
	if got := run(t, c, p, 10); got != 0 {
		t.Fatalf("empty cache matched %d blocks", got)
	}
	if got := run(t, c, p, 10); got != 3 {
		t.Fatalf("the same prompt matched %d blocks, want 3", got)
	}
	// A prompt sharing the first two blocks only.
	q := blockHashes(Tokenize(words(0, 8)+" other tokens here"), 4)
	if got := run(t, c, q, 11); got != 2 {
		t.Fatalf("shared prefix matched %d blocks, want 2", got)
	}
	if c.hits != 5 || c.misses != 4 || len(c.cached) != 4 {
		t.Errorf("hits %d misses %d cached %d, want 5, 4, 4", c.hits, c.misses, len(c.cached))
	}
	checkCounts(t, c)
	if c.held != 0 || c.free != 96 {
		t.Errorf("after every release: held %d, free %d; want 0 and 96", c.held, c.free)
	}
}

func TestKVCacheLookupStopsAtFirstMiss(t *testing.T) {
	c := newKVCache(4, 100)
	p := hashesOf(0, 12)
	run(t, c, p[1:], 8) // blocks 1 and 2 published, block 0 not
	if got := run(t, c, p, 12); got != 0 {
		t.Errorf("a block must not match without its prefix: matched %d", got)
	}
}

func TestKVCacheEvictsLeastRecentlyUsedWhenFull(t *testing.T) {
	c := newKVCache(4, 4)
	a, b, d := hashesOf(0, 8), hashesOf(100, 8), hashesOf(200, 8)
	run(t, c, a, 8)
	run(t, c, b, 8)
	if got := run(t, c, a, 8); got != 2 { // a is now more recent than b
		t.Fatalf("a should be cached, matched %d", got)
	}
	run(t, c, d, 8) // no free block: b's two go
	if c.evictions != 2 {
		t.Errorf("%d evictions, want 2", c.evictions)
	}
	if got := run(t, c, a, 8); got != 2 {
		t.Errorf("a was used recently and should stay, matched %d", got)
	}
	if got := run(t, c, b, 8); got != 0 {
		t.Errorf("b should have been evicted, matched %d", got)
	}
	checkCounts(t, c)
}

func TestKVCacheEvictsTailsBeforeHeads(t *testing.T) {
	c := newKVCache(4, 3)
	a, b := hashesOf(0, 8), hashesOf(100, 8)
	run(t, c, a, 8)
	run(t, c, b, 8) // the free block, then one of a's: its tail, not its head
	if got := run(t, c, a, 8); got != 1 {
		t.Errorf("a's first block should survive the eviction of its tail: matched %d", got)
	}
}

func TestKVCacheNeverEvictsHeldBlocks(t *testing.T) {
	c := newKVCache(4, 4)
	a := hashesOf(0, 8)
	held, _, ok := c.acquire(a, 8)
	if !ok {
		t.Fatal("acquire failed on an empty cache")
	}
	c.publish(held, a)
	// Two blocks are free; three are not to be had, and a failed acquire
	// changes nothing.
	if _, _, ok := c.acquire(hashesOf(100, 12), 12); ok {
		t.Fatal("acquired 3 blocks with 2 free and 2 held")
	}
	if c.hits != 0 || c.misses != 2 || c.free != 2 || c.held != 2 {
		t.Errorf("a failed acquire changed the cache: hits %d misses %d free %d held %d", c.hits, c.misses, c.free, c.held)
	}
	// A second request sharing a's blocks holds them too, at no cost.
	shared, matched, ok := c.acquire(a, 8)
	if !ok || matched != 2 || c.held != 2 || c.free != 2 {
		t.Fatalf("sharing a's blocks: ok %t matched %d held %d free %d", ok, matched, c.held, c.free)
	}
	if !c.grow(shared, 12) || c.grow(held, 16) {
		t.Error("growing by 1 then by 2 blocks with 2 free: want the first to succeed and the second to fail")
	}
	c.release(held)
	if c.held != 3 || c.lru.Len() != 0 {
		t.Errorf("a's blocks are still held by the second request: held %d, unheld cached %d", c.held, c.lru.Len())
	}
	c.release(shared)
	if c.held != 0 || c.lru.Len() != 2 || c.free != 2 {
		t.Errorf("after both releases: held %d, unheld cached %d, free %d; want 0, 2, 2", c.held, c.lru.Len(), c.free)
	}
	checkCounts(t, c)
}

func TestKVCacheAcquireCountsUnheldMatchesAsTaken(t *testing.T) {
	c := newKVCache(4, 4)
	a := hashesOf(0, 16) // 4 blocks: the whole cache
	run(t, c, a, 16)
	// Matching a's 4 cached blocks, it needs one more block, and the only
	// candidates for eviction are the ones it is about to hold.
	if _, _, ok := c.acquire(a, 17); ok {
		t.Error("acquire evicted a block it matched")
	}
	if got := run(t, c, a, 16); got != 4 {
		t.Errorf("a should still be cached whole, matched %d", got)
	}
}

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

func TestPrefixCacheLookupCountsHitsAndMisses(t *testing.T) {
	c := newPrefixCache(100)
	p := blockHashes(Tokenize(words(0, 10)), 4) // 3 blocks
	if got := c.lookup(p); got != 0 {
		t.Fatalf("empty cache matched %d blocks", got)
	}
	c.insert(p)
	if got := c.lookup(p); got != 3 {
		t.Fatalf("after insert matched %d blocks, want 3", got)
	}
	// A prompt sharing the first two blocks only.
	q := blockHashes(Tokenize(words(0, 8)+" other tokens here"), 4)
	if got := c.lookup(q); got != 2 {
		t.Fatalf("shared prefix matched %d blocks, want 2", got)
	}
	hits, misses, blocks := c.stats()
	if hits != 5 || misses != 4 || blocks != 3 {
		t.Errorf("hits %d misses %d blocks %d, want 5, 4, 3", hits, misses, blocks)
	}
}

func TestPrefixCacheLookupStopsAtFirstMiss(t *testing.T) {
	c := newPrefixCache(100)
	p := blockHashes(Tokenize(words(0, 12)), 4)
	c.insert(p[1:]) // blocks 1 and 2 cached, block 0 not
	if got := c.lookup(p); got != 0 {
		t.Errorf("a block must not match without its prefix: matched %d", got)
	}
}

func TestPrefixCacheEvictsLeastRecentlyUsed(t *testing.T) {
	c := newPrefixCache(4)
	a := blockHashes(Tokenize(words(0, 8)), 4)
	b := blockHashes(Tokenize(words(100, 8)), 4)
	d := blockHashes(Tokenize(words(200, 8)), 4)
	c.insert(a)
	c.insert(b)
	c.lookup(a) // a is now more recent than b
	c.insert(d) // capacity 4: b's two blocks go
	if got := c.lookup(b); got != 0 {
		t.Errorf("b should have been evicted, matched %d", got)
	}
	if got := c.lookup(a); got != 2 {
		t.Errorf("a was used recently and should stay, matched %d", got)
	}
	if got := c.lookup(d); got != 2 {
		t.Errorf("d was just inserted, matched %d", got)
	}
	if _, _, blocks := c.stats(); blocks != 4 {
		t.Errorf("cache holds %d blocks, want its capacity 4", blocks)
	}
}

func TestPrefixCacheEvictsTailsBeforeHeads(t *testing.T) {
	c := newPrefixCache(3)
	a := blockHashes(Tokenize(words(0, 8)), 4)
	b := blockHashes(Tokenize(words(100, 8)), 4)
	c.insert(a)
	c.insert(b) // one block must go: a's tail, not its head
	if got := c.lookup(a); got != 1 {
		t.Errorf("a's first block should survive the eviction of its tail: matched %d", got)
	}
	// A prompt longer than the whole cache keeps its head.
	long := blockHashes(Tokenize(words(300, 40)), 4)
	c.insert(long)
	if got := c.lookup(long); got != 3 {
		t.Errorf("a prompt longer than the cache should keep its first blocks: matched %d, want 3", got)
	}
}

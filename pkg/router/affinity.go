package router

import "container/list"

// prefixIndex remembers which instances were sent which prefix blocks, as a
// bounded LRU over blocks: it imitates the instances' prefix caches without
// seeing them (an approximate index). Not safe for concurrent use; the
// Router's lock guards it.
type prefixIndex struct {
	capacity int
	entries  map[uint64]*list.Element // of *indexEntry
	lru      *list.List               // most recently used first

	// The hit rate over the last len(window) chats: the share of their
	// prompt blocks found in the index, on any instance.
	window           []hitSample
	next, filled     int
	hitSum, totalSum int
}

type indexEntry struct {
	hash uint64
	// instances that were sent this block, most recent first.
	instances []string
}

type hitSample struct{ hit, total int }

func newPrefixIndex(capacity, window int) *prefixIndex {
	return &prefixIndex{
		capacity: capacity,
		entries:  map[uint64]*list.Element{},
		lru:      list.New(),
		window:   make([]hitSample, window),
	}
}

// match returns, per instance, how many leading blocks of the prompt it
// holds (the deepest block it was sent: a chained hash stands for the whole
// prefix before it).
func (x *prefixIndex) match(blocks []uint64) map[string]int {
	depth := map[string]int{}
	for i := len(blocks) - 1; i >= 0; i-- {
		el, ok := x.entries[blocks[i]]
		if !ok {
			continue
		}
		for _, name := range el.Value.(*indexEntry).instances {
			if _, seen := depth[name]; !seen {
				depth[name] = i + 1
			}
		}
	}
	return depth
}

// record notes that instance was sent the prompt's blocks.
func (x *prefixIndex) record(blocks []uint64, instance string) {
	for _, h := range blocks {
		el, ok := x.entries[h]
		if !ok {
			el = x.lru.PushFront(&indexEntry{hash: h})
			x.entries[h] = el
		} else {
			x.lru.MoveToFront(el)
		}
		e := el.Value.(*indexEntry)
		e.instances = moveToFront(e.instances, instance, affinityInstancesPerBlock)
	}
	x.evict()
}

// moveToFront puts name first in names, keeping at most limit names.
func moveToFront(names []string, name string, limit int) []string {
	for i, n := range names {
		if n == name {
			copy(names[1:i+1], names[:i])
			names[0] = name
			return names
		}
	}
	if len(names) < limit {
		names = append(names, "")
	}
	copy(names[1:], names[:len(names)-1])
	names[0] = name
	return names
}

// forget drops an instance from every block.
func (x *prefixIndex) forget(instance string) {
	for el := x.lru.Front(); el != nil; {
		next := el.Next()
		e := el.Value.(*indexEntry)
		for i, n := range e.instances {
			if n == instance {
				e.instances = append(e.instances[:i], e.instances[i+1:]...)
				break
			}
		}
		if len(e.instances) == 0 {
			x.lru.Remove(el)
			delete(x.entries, e.hash)
		}
		el = next
	}
}

// setCapacity bounds the index, evicting the least recently used blocks.
func (x *prefixIndex) setCapacity(n int) {
	x.capacity = max(n, 1)
	x.evict()
}

func (x *prefixIndex) evict() {
	for x.lru.Len() > x.capacity {
		el := x.lru.Back()
		x.lru.Remove(el)
		delete(x.entries, el.Value.(*indexEntry).hash)
	}
}

func (x *prefixIndex) len() int { return x.lru.Len() }

// observe adds a chat's blocks found in the index (on any instance) to the
// hit-rate window.
func (x *prefixIndex) observe(hit, total int) {
	old := x.window[x.next]
	x.hitSum += hit - old.hit
	x.totalSum += total - old.total
	x.window[x.next] = hitSample{hit, total}
	x.next = (x.next + 1) % len(x.window)
	x.filled = min(x.filled+1, len(x.window))
}

// hitRate is the share of prompt blocks found in the index over the window
// (1 before any chat).
func (x *prefixIndex) hitRate() float64 {
	if x.totalSum == 0 {
		return 1
	}
	return float64(x.hitSum) / float64(x.totalSum)
}

// lowReuse: the window is full and its hit rate is below minRate, so
// affinity has nothing to win and load balancing should decide.
func (x *prefixIndex) lowReuse(minRate float64) bool {
	return x.filled == len(x.window) && x.hitRate() < minRate
}

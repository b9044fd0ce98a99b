package cachetrim

import (
	"strconv"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Written remembers the digests of the objects a controller has just
// applied, so that Applied need not extract them again from the watch
// event of that very write: the controller sent the apply configuration
// whose Digest it records, and the API server's answer (with Force, every
// field of it now owned by the controller with the value sent) carries the
// resourceVersion its watch event will carry. Extracting what a manager
// owns is most of Applied's cost, and every child the controller writes
// comes back through its informer.
//
// The digest is that of what was sent. A mutating admission webhook that
// changed a value the controller applies would have the server store
// another value under the controller's ownership; extracted, it would
// differ from what the controller applies on every sync, and each sync
// would apply it again, to the same end. Recorded, the controller leaves
// it until the InferServer's spec or the object changes.
//
// Records are kept by UID, which no two objects share whatever their kinds,
// until the informer sees the object at that resourceVersion or at a later
// one (the event of the write was missed, as when the watch was
// restarted): at most one record an object. Only objects whose informer
// has an Applied transform reading this Written may be recorded: no other
// takes its records. The zero value is not usable; a nil *Written records
// nothing.
type Written struct {
	mu      sync.Mutex
	records map[types.UID]writtenRecord
}

type writtenRecord struct {
	resourceVersion uint64
	digest          string
}

// NewWritten returns an empty record.
func NewWritten() *Written {
	return &Written{records: map[types.UID]writtenRecord{}}
}

// Record remembers that o, as the API server answered a write of it, holds
// what the apply configuration of digest sets. seen is the informer's copy
// of o, if it has one (nil: none): when that copy is at o's
// resourceVersion or later, the informer has processed the write's event
// already (it came before the answer) and nothing is recorded. An object
// whose resourceVersion is not a number (no Kubernetes API server writes
// one) is not recorded either: Applied extracts it.
func (w *Written) Record(o metav1.Object, digest string, seen metav1.Object) {
	if w == nil {
		return
	}
	rv, err := strconv.ParseUint(o.GetResourceVersion(), 10, 64)
	if err != nil {
		return
	}
	if seen != nil && seen.GetUID() == o.GetUID() {
		if at, err := strconv.ParseUint(seen.GetResourceVersion(), 10, 64); err == nil && at >= rv {
			return
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.records[o.GetUID()] = writtenRecord{resourceVersion: rv, digest: digest}
}

// take returns the digest recorded for o at its resourceVersion. The record
// goes once o is at its resourceVersion or later; one of a later write
// stays for that write's event.
func (w *Written) take(o metav1.Object) (string, bool) {
	if w == nil {
		return "", false
	}
	key := o.GetUID()
	w.mu.Lock()
	defer w.mu.Unlock()
	r, ok := w.records[key]
	if !ok {
		return "", false
	}
	rv, err := strconv.ParseUint(o.GetResourceVersion(), 10, 64)
	switch {
	case err != nil || rv > r.resourceVersion:
		delete(w.records, key)
		return "", false
	case rv < r.resourceVersion:
		return "", false
	}
	delete(w.records, key)
	return r.digest, true
}

// Len is the number of records kept.
func (w *Written) Len() int {
	if w == nil {
		return 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.records)
}

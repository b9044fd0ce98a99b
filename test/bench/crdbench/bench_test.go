package main

import (
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/watch"
)

func added(name, rv string) *unstructured.Unstructured {
	o := &unstructured.Unstructured{Object: map[string]any{}}
	o.SetName(name)
	o.SetResourceVersion(rv)
	return o
}

// A watcher counts each object once, remembers the last resourceVersion
// (to watch again from there) and says whether it saw them all.
func TestWatchEvents(t *testing.T) {
	b := &bench{logf: t.Logf}
	var mu sync.Mutex
	seen := map[string]time.Time{}
	var done time.Time
	rv := "1"

	// The server ends the stream after two objects (and an error event).
	w := watch.NewFakeWithChanSize(10, false)
	w.Add(added("a", "2"))
	w.Add(added("a", "2")) // seen again: counted once
	w.Error(&metav1.Status{Message: "too old"})
	w.Modify(added("b", "3"))
	w.Add(added("c", "4"))
	w.Stop()
	if b.watchEvents(w, 3, &rv, &mu, seen, &done) {
		t.Fatal("a stream that ended early saw every object")
	}
	if rv != "4" || len(seen) != 2 || !done.IsZero() {
		t.Fatalf("rv %s, seen %v, done %v; want 4, a and c, not done", rv, seen, done)
	}

	// Watching again from there, the third object completes it.
	w = watch.NewFakeWithChanSize(10, false)
	w.Add(added("d", "5"))
	if !b.watchEvents(w, 3, &rv, &mu, seen, &done) || done.IsZero() || rv != "5" {
		t.Fatalf("not done after the third object: rv %s, seen %v", rv, seen)
	}
}

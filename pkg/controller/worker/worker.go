// Package worker runs the sync loop the controllers share: keys taken off
// a rate-limited work queue by a number of workers, each synced once at a
// time, retried with back-off on an error and looked at again when the
// sync asks to.
package worker

import (
	"context"
	"time"

	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/workqueue"
)

// Sync brings the object of key (namespace/name) forward. It returns how
// soon to look at it again without an event (0: on events only).
type Sync func(ctx context.Context, key string) (requeue time.Duration, err error)

// Run starts workers goroutines that sync the keys of queue until ctx
// ends (the caller shuts the queue down). kind names the objects in the
// errors logged ("InferServer").
func Run(ctx context.Context, queue workqueue.TypedRateLimitingInterface[string], workers int, kind string, sync Sync) {
	for range workers {
		go wait.UntilWithContext(ctx, func(ctx context.Context) {
			for next(ctx, queue, kind, sync) {
			}
		}, time.Second)
	}
}

// next syncs the next key of queue; false when the queue is shut down.
func next(ctx context.Context, queue workqueue.TypedRateLimitingInterface[string], kind string, sync Sync) bool {
	key, quit := queue.Get()
	if quit {
		return false
	}
	defer queue.Done(key)
	requeue, err := sync(ctx, key)
	switch {
	case err != nil:
		utilruntime.HandleErrorWithContext(ctx, err, "Syncing "+kind+" failed", "key", key)
		queue.AddRateLimited(key)
	case requeue > 0:
		queue.Forget(key)
		queue.AddAfter(key, requeue)
	default:
		queue.Forget(key)
	}
	return true
}

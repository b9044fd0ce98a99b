package inferserver

import (
	"context"
	"time"
)

// runPerServer is the loop of the controller's background workers (model
// information, role assignment): until ctx ends, `workers` goroutines call
// do for one server key at a time, for every key of keys each interval
// and at once for a key sent on kick. Work for a server never blocks a
// sync.
func runPerServer(ctx context.Context, workers int, interval time.Duration, kick <-chan string,
	keys func() []string, do func(ctx context.Context, key string)) {
	jobs := make(chan string)
	for i := 0; i < workers; i++ {
		go func() {
			for key := range jobs {
				do(ctx, key)
			}
		}()
	}
	defer close(jobs)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	send := func(key string) bool {
		select {
		case jobs <- key:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case key := <-kick:
			if !send(key) {
				return
			}
		case <-tick.C:
			for _, k := range keys() {
				if !send(k) {
					return
				}
			}
		}
	}
}

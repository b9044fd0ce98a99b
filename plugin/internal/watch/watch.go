// Package watch follows one InferServer until a condition on its state
// holds, for the commands that wait (status -w, rollout status).
package watch

import (
	"context"
	"errors"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	apiwatch "k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/generated/clientset/versioned"
)

// ErrTimeout is returned by Until when its timeout expires.
var ErrTimeout = errors.New("timed out")

// Until follows the InferServer ns/name (first seen as initial) until cond
// reports true on one of its states, cond fails, the object is deleted or
// timeout (0: none) expires. It returns the last state seen.
func Until(ctx context.Context, client versioned.Interface, ns, name string, initial *v1alpha1.InferServer,
	timeout time.Duration, cond func(*v1alpha1.InferServer) (bool, error)) (*v1alpha1.InferServer, error) {
	last := initial
	if initial != nil {
		if done, err := cond(initial); done || err != nil {
			return last, err
		}
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	selector := fields.OneTermEqualSelector("metadata.name", name).String()
	servers := client.InferV1alpha1().InferServers(ns)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			opts.FieldSelector = selector
			return servers.List(ctx, opts)
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (apiwatch.Interface, error) {
			opts.FieldSelector = selector
			return servers.Watch(ctx, opts)
		},
	}
	check := func(obj any) (bool, error) {
		s, ok := obj.(*v1alpha1.InferServer)
		if !ok || s.Name != name || s.Namespace != ns {
			return false, nil
		}
		if initial != nil && s.UID != initial.UID {
			return false, fmt.Errorf("InferServer %q was deleted and created anew", name)
		}
		last = s
		return cond(s)
	}
	precondition := func(store cache.Store) (bool, error) {
		obj, exists, err := store.GetByKey(ns + "/" + name)
		if err != nil {
			return false, err
		}
		if !exists {
			return false, fmt.Errorf("InferServer %q was deleted", name)
		}
		return check(obj)
	}
	// The fake clientsets of tests do not do watch-list; the reflector
	// learns that from the client.
	_, err := watchtools.UntilWithSync(ctx, cache.ToListWatcherWithWatchListSemantics(lw, client), &v1alpha1.InferServer{}, precondition, func(ev apiwatch.Event) (bool, error) {
		switch ev.Type {
		case apiwatch.Deleted:
			return false, fmt.Errorf("InferServer %q was deleted", name)
		case apiwatch.Added, apiwatch.Modified:
			return check(ev.Object)
		}
		return false, nil
	})
	if err != nil {
		switch {
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			return last, ErrTimeout
		case ctx.Err() != nil:
			return last, errors.New("interrupted")
		}
	}
	return last, err
}

// Package watch follows one object (an InferServer, an EdgeDeployment)
// until a condition on its state holds, for the commands that wait
// (status -w, rollout status, edge status -w).
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

// ErrTimeout is returned by Until and UntilEdge when their timeout
// expires.
var ErrTimeout = errors.New("timed out")

// Until follows the InferServer ns/name (first seen as initial) until cond
// reports true on one of its states, cond fails, the object is deleted or
// timeout (0: none) expires. It returns the last state seen.
func Until(ctx context.Context, client versioned.Interface, ns, name string, initial *v1alpha1.InferServer,
	timeout time.Duration, cond func(*v1alpha1.InferServer) (bool, error)) (*v1alpha1.InferServer, error) {
	servers := client.InferV1alpha1().InferServers(ns)
	return follow(ctx, client, "InferServer", &v1alpha1.InferServer{}, ns, name, initial, timeout, servers.List, servers.Watch, cond)
}

// UntilEdge is Until for the EdgeDeployment ns/name.
func UntilEdge(ctx context.Context, client versioned.Interface, ns, name string, initial *v1alpha1.EdgeDeployment,
	timeout time.Duration, cond func(*v1alpha1.EdgeDeployment) (bool, error)) (*v1alpha1.EdgeDeployment, error) {
	edeps := client.InferV1alpha1().EdgeDeployments(ns)
	return follow(ctx, client, "EdgeDeployment", &v1alpha1.EdgeDeployment{}, ns, name, initial, timeout, edeps.List, edeps.Watch, cond)
}

// object is what follow follows: a pointer to an API type.
type object interface {
	comparable
	runtime.Object
	metav1.Object
}

// follow is Until for any kind: list and watch are its typed client's;
// example is an empty object of the kind, which tells the reflector its
// type.
func follow[T object, L runtime.Object](ctx context.Context, client versioned.Interface, kind string, example T, ns, name string, initial T, timeout time.Duration,
	list func(context.Context, metav1.ListOptions) (L, error), watch func(context.Context, metav1.ListOptions) (apiwatch.Interface, error),
	cond func(T) (bool, error)) (T, error) {
	var none T
	last := initial
	if initial != none {
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
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			opts.FieldSelector = selector
			return list(ctx, opts)
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (apiwatch.Interface, error) {
			opts.FieldSelector = selector
			return watch(ctx, opts)
		},
	}
	check := func(obj any) (bool, error) {
		o, ok := obj.(T)
		if !ok || o.GetName() != name || o.GetNamespace() != ns {
			return false, nil
		}
		if initial != none && o.GetUID() != initial.GetUID() {
			return false, fmt.Errorf("%s %q was deleted and created anew", kind, name)
		}
		last = o
		return cond(o)
	}
	precondition := func(store cache.Store) (bool, error) {
		obj, exists, err := store.GetByKey(ns + "/" + name)
		if err != nil {
			return false, err
		}
		if !exists {
			return false, fmt.Errorf("%s %q was deleted", kind, name)
		}
		return check(obj)
	}
	// The fake clientsets of tests do not do watch-list; the reflector
	// learns that from the client.
	_, err := watchtools.UntilWithSync(ctx, cache.ToListWatcherWithWatchListSemantics(lw, client), example, precondition, func(ev apiwatch.Event) (bool, error) {
		switch ev.Type {
		case apiwatch.Deleted:
			return false, fmt.Errorf("%s %q was deleted", kind, name)
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

package edge

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

// errWatchTimeout is returned by until when its timeout expires.
var errWatchTimeout = errors.New("timed out")

// until follows the EdgeDeployment ns/name (first seen as initial) until
// cond reports true on one of its states, the object is deleted or
// replaced, or timeout expires. It returns the last state seen.
func until(ctx context.Context, client versioned.Interface, ns, name string, initial *v1alpha1.EdgeDeployment,
	timeout time.Duration, cond func(*v1alpha1.EdgeDeployment) bool) (*v1alpha1.EdgeDeployment, error) {
	last := initial
	if cond(initial) {
		return last, nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	selector := fields.OneTermEqualSelector("metadata.name", name).String()
	edeps := client.InferV1alpha1().EdgeDeployments(ns)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			opts.FieldSelector = selector
			return edeps.List(ctx, opts)
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (apiwatch.Interface, error) {
			opts.FieldSelector = selector
			return edeps.Watch(ctx, opts)
		},
	}
	check := func(obj any) (bool, error) {
		e, ok := obj.(*v1alpha1.EdgeDeployment)
		if !ok || e.Name != name || e.Namespace != ns {
			return false, nil
		}
		if e.UID != initial.UID {
			return false, fmt.Errorf("EdgeDeployment %q was deleted and created anew", name)
		}
		last = e
		return cond(e), nil
	}
	precondition := func(store cache.Store) (bool, error) {
		obj, exists, err := store.GetByKey(ns + "/" + name)
		if err != nil {
			return false, err
		}
		if !exists {
			return false, fmt.Errorf("EdgeDeployment %q was deleted", name)
		}
		return check(obj)
	}
	// The fake clientsets of tests do not do watch-list; the reflector
	// learns that from the client.
	_, err := watchtools.UntilWithSync(ctx, cache.ToListWatcherWithWatchListSemantics(lw, client), &v1alpha1.EdgeDeployment{}, precondition,
		func(ev apiwatch.Event) (bool, error) {
			switch ev.Type {
			case apiwatch.Deleted:
				return false, fmt.Errorf("EdgeDeployment %q was deleted", name)
			case apiwatch.Added, apiwatch.Modified:
				return check(ev.Object)
			}
			return false, nil
		})
	if err != nil {
		switch {
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			return last, errWatchTimeout
		case ctx.Err() != nil:
			return last, errors.New("interrupted")
		}
	}
	return last, err
}

package apiserver

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/generic"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/cacher"
	cachermetrics "k8s.io/apiserver/pkg/storage/cacher/metrics"
	etcd3metrics "k8s.io/apiserver/pkg/storage/etcd3/metrics"
	etcd3testing "k8s.io/apiserver/pkg/storage/etcd3/testing"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/component-base/metrics/legacyregistry"

	"mindie.io/deployer/apis/infer"
	"mindie.io/deployer/apis/infer/v1alpha1"
)

// listRecorder is a store that records the limit of every list.
type listRecorder struct {
	storage.Interface
	limits []int64
}

func (r *listRecorder) GetList(_ context.Context, _ string, opts storage.ListOptions, _ runtime.Object) error {
	r.limits = append(r.limits, opts.Predicate.Limit)
	return nil
}

func TestPagedOwnListsLimits(t *testing.T) {
	own := context.Background()
	request := genericapirequest.WithRequestInfo(own, &genericapirequest.RequestInfo{Verb: "list", Resource: "inferservers"})
	for _, tc := range []struct {
		name      string
		ctx       context.Context
		limit     int64
		wantLimit int64
	}{
		{"own list above the page size", own, 10000, 500},
		{"own list of one page", own, 500, 500},
		{"own list below the page size", own, 20, 20},
		{"own list without a limit", own, 0, 0},
		{"request's list above the page size", request, 10000, 10000},
		{"request's list without a limit", request, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &listRecorder{}
			s := pagedOwnLists{Interface: r, pageSize: 500}
			opts := storage.ListOptions{Recursive: true, Predicate: storage.Everything}
			opts.Predicate.Limit = tc.limit
			if err := s.GetList(tc.ctx, "/inferservers", opts, &infer.InferServerList{}); err != nil {
				t.Fatal(err)
			}
			if want := []int64{tc.wantLimit}; !reflect.DeepEqual(r.limits, want) {
				t.Errorf("limits sent to etcd = %v, want %v", r.limits, want)
			}
			if opts.Predicate.Limit != tc.limit {
				t.Errorf("the caller's options changed: limit %d, was %d", opts.Predicate.Limit, tc.limit)
			}
		})
	}
}

// decoratorGetter gives every resource the same decorator, or err.
type decoratorGetter struct {
	decorator generic.StorageDecorator
	err       error
}

func (g decoratorGetter) GetRESTOptions(schema.GroupResource, runtime.Object) (generic.RESTOptions, error) {
	return generic.RESTOptions{Decorator: g.decorator, ResourcePrefix: "inferservers"}, g.err
}

// TestPageOwnListsKeepsUncachedStores: a store without a watch cache, and
// a getter's error, pass through unchanged (the cached stores are
// TestCacheReadsItsOwnListsInPages's).
func TestPageOwnListsKeepsUncachedStores(t *testing.T) {
	opts, err := PageOwnLists(decoratorGetter{decorator: generic.UndecoratedStorage}, 2).GetRESTOptions(infer.Resource("inferservers"), &infer.InferServer{})
	if err != nil {
		t.Fatal(err)
	}
	if !isUndecorated(opts.Decorator) {
		t.Errorf("a store without a watch cache got a decorator")
	}
	if opts.ResourcePrefix != "inferservers" {
		t.Errorf("ResourcePrefix = %q, want the inner getter's options kept", opts.ResourcePrefix)
	}
	if isUndecorated(genericregistry.StorageWithCacher()) {
		t.Errorf("the watch cache's decorator is taken for none")
	}
	if PageOwnLists(nil, 2) != nil {
		t.Errorf("no getter became one")
	}
	failed := errors.New("no storage for inferservers")
	if _, err := PageOwnLists(decoratorGetter{err: failed}, 2).GetRESTOptions(infer.Resource("inferservers"), nil); !errors.Is(err, failed) {
		t.Errorf("error = %v, want %v", err, failed)
	}
}

// counters returns the values of the process's counter name whose labels
// include match, by the value of label by; none before the first count.
func counters(t *testing.T, name string, match map[string]string, by string) map[string]float64 {
	t.Helper()
	families, err := legacyregistry.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]float64{}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range match {
				if labels[k] != v {
					continue metrics
				}
			}
			values[labels[by]] += m.GetCounter().GetValue()
		}
	}
	return values
}

// TestCacheReadsItsOwnListsInPages builds a watch-cached store on a real
// etcd holding 5 objects, through PageOwnLists with pages of 2: the cache
// must fill with all of them (it does so with a watch, not a list), and
// its consistency check must find it equal to etcd, reading etcd in 3
// lists. (A request's list keeps its limit: TestPagedOwnListsLimits.)
func TestCacheReadsItsOwnListsInPages(t *testing.T) {
	etcd3metrics.Register()
	cachermetrics.Register()
	period := cacher.ConsistencyCheckPeriod
	cacher.ConsistencyCheckPeriod = 300 * time.Millisecond
	t.Cleanup(func() { cacher.ConsistencyCheckPeriod = period })

	// A resource of its own, so that the process-wide metrics count
	// only this test's lists.
	resource := schema.GroupResource{Group: infer.GroupName, Resource: "pagedlisttests"}
	_, config := etcd3testing.NewUnsecuredEtcd3TestClientServer(t)
	config.Codec = StorageCodec(v1alpha1.SchemeGroupVersion)
	config.EncodeVersioner = v1alpha1.SchemeGroupVersion
	config.EventsHistoryWindow = storagebackend.DefaultEventsHistoryWindow
	forResource := config.ForResource(resource)
	newFunc := func() runtime.Object { return &infer.InferServer{} }
	newListFunc := func() runtime.Object { return &infer.InferServerList{} }
	key := func(name string) string { return "/pagedlisttests/test/" + name }

	etcd, destroyEtcd, err := generic.NewRawStorage(forResource, newFunc, newListFunc, "/pagedlisttests")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(destroyEtcd)
	ctx := context.Background()
	const stored = 5
	for i := range stored {
		name := fmt.Sprintf("s%d", i)
		obj := &infer.InferServer{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "test"}}
		if err := etcd.Create(ctx, key(name), obj, &infer.InferServer{}, 0); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
	}
	lists := func() float64 {
		t.Helper()
		return counters(t, "apiserver_storage_list_total", map[string]string{"group": resource.Group}, "resource")[resource.Resource]
	}
	checks := func() float64 {
		t.Helper()
		counts := counters(t, "apiserver_storage_consistency_checks_total",
			map[string]string{"group": resource.Group, "resource": resource.Resource}, "status")
		if counts["failure"] > 0 || counts["error"] > 0 {
			t.Fatalf("consistency checks: %v, want only successes", counts)
		}
		return counts["success"]
	}
	// The server's getter decorates a cached store with pages of 2.
	restOpts, err := PageOwnLists(decoratorGetter{decorator: genericregistry.StorageWithCacher()}, 2).GetRESTOptions(resource, newFunc())
	if err != nil {
		t.Fatal(err)
	}
	s, destroy, err := restOpts.Decorator(forResource, "/pagedlisttests",
		func(obj runtime.Object) (string, error) { return key(obj.(*infer.InferServer).Name), nil },
		newFunc, newListFunc, storage.DefaultNamespaceScopedAttr, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(destroy)

	// The cache answers a list at resourceVersion 0 once it is ready.
	var cached infer.InferServerList
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		opts := storage.ListOptions{Recursive: true, Predicate: storage.Everything, ResourceVersion: "0"}
		if err := s.GetList(ctx, "/pagedlisttests/test", opts, &cached); err != nil {
			t.Logf("list from the cache: %v", err)
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("the cache was not ready: %v", err)
	}
	if len(cached.Items) != stored {
		t.Fatalf("the cache holds %d objects, want %d", len(cached.Items), stored)
	}
	// Each consistency check reads etcd in 3 lists as well.
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return checks() >= 1, nil
	})
	if err != nil {
		t.Fatalf("no consistency check passed: %v", err)
	}
	// Checks count once they have listed: read their count first.
	if c := checks(); lists() < 3*c {
		t.Errorf("%v lists from etcd after %v consistency checks, want at least %v (3 a check)", lists(), c, 3*c)
	}
}

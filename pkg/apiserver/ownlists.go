package apiserver

import (
	"context"
	"reflect"
	"sync"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/generic"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/cacher"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/apiserver/pkg/storage/storagebackend/factory"
	"k8s.io/client-go/tools/cache"
)

// OwnListPageSize is the most objects a watch-cached store reads from etcd
// in one request when no API request is behind the read: the watch cache's
// consistency check, and the cache's own list should it fill itself with
// one (it fills itself with a watch where etcd streams the initial list).
//
// k8s.io/apiserver asks for pages of 10,000 there, and the consistency
// check (the DetectCacheInconsistency feature, every 5 to 7.5 minutes)
// decodes its page beside the cache it compares it with. At 10,000
// InferServers that took mindie-apiserver's live heap from 107 to 166 MB
// and its resident memory from under 300 MiB to 415 MiB (2026-12-02;
// docs/reconcile-bench.md). 500 is client-go's page size for lists.
const OwnListPageSize = 500

// PageOwnLists returns getter with the watch cache of every store it makes
// reading from etcd in pages of at most pageSize (OwnListPageSize in the
// server) when it reads for itself. Reads that serve API requests keep the
// limit their client asked for. Stores that getter does not cache are
// unchanged.
func PageOwnLists(getter generic.RESTOptionsGetter, pageSize int64) generic.RESTOptionsGetter {
	if getter == nil {
		return nil
	}
	return ownListsGetter{RESTOptionsGetter: getter, pageSize: pageSize}
}

type ownListsGetter struct {
	generic.RESTOptionsGetter
	pageSize int64
}

func (g ownListsGetter) GetRESTOptions(resource schema.GroupResource, example runtime.Object) (generic.RESTOptions, error) {
	opts, err := g.RESTOptionsGetter.GetRESTOptions(resource, example)
	if err != nil || opts.Decorator == nil || isUndecorated(opts.Decorator) {
		return opts, err
	}
	opts.Decorator = cachedWithPagedOwnLists(g.pageSize)
	return opts, nil
}

// isUndecorated reports whether d is generic.UndecoratedStorage, which the
// options' factory gives a resource without a watch cache (--watch-cache
// false, or a size of 0 in --watch-cache-sizes).
func isUndecorated(d generic.StorageDecorator) bool {
	return reflect.ValueOf(d).Pointer() == reflect.ValueOf(generic.UndecoratedStorage).Pointer()
}

// cachedWithPagedOwnLists is registry.StorageWithCacher's watch cache over
// etcd, with the cache's own reads from etcd paged by pageSize.
func cachedWithPagedOwnLists(pageSize int64) generic.StorageDecorator {
	return func(config *storagebackend.ConfigForResource, resourcePrefix string,
		keyFunc func(runtime.Object) (string, error), newFunc, newListFunc func() runtime.Object,
		attrs storage.AttrFunc, triggers storage.IndexerFuncs, indexers *cache.Indexers,
	) (storage.Interface, factory.DestroyFunc, error) {
		etcd, destroyEtcd, err := generic.NewRawStorage(config, newFunc, newListFunc, resourcePrefix)
		if err != nil {
			return nil, nil, err
		}
		paged := pagedOwnLists{Interface: etcd, pageSize: pageSize}
		c, err := cacher.NewCacherFromConfig(cacher.Config{
			Storage:             paged,
			Versioner:           storage.APIObjectVersioner{},
			GroupResource:       config.GroupResource,
			EventsHistoryWindow: config.EventsHistoryWindow,
			ResourcePrefix:      resourcePrefix,
			KeyFunc:             keyFunc,
			NewFunc:             newFunc,
			NewListFunc:         newListFunc,
			GetAttrsFunc:        attrs,
			IndexerFuncs:        triggers,
			Indexers:            indexers,
			Codec:               config.Codec,
		})
		if err != nil {
			destroyEtcd()
			return nil, nil, err
		}
		// The delegator serves requests from the cache, or from etcd
		// when the cache cannot answer them, and runs the consistency
		// check against etcd.
		d := cacher.NewCacheDelegator(c, paged)
		var once sync.Once
		return d, func() {
			once.Do(func() {
				d.Stop()
				c.Stop()
				destroyEtcd()
			})
		}, nil
	}
}

// pagedOwnLists is a store whose lists without an API request behind them
// ask for at most pageSize objects at a time. Only lists that set a limit
// are paged: their callers follow the continue token, and a list may
// return fewer objects than its limit with one.
type pagedOwnLists struct {
	storage.Interface
	pageSize int64
}

func (s pagedOwnLists) GetList(ctx context.Context, key string, opts storage.ListOptions, list runtime.Object) error {
	if _, request := genericapirequest.RequestInfoFrom(ctx); !request && opts.Predicate.Limit > s.pageSize {
		opts.Predicate.Limit = s.pageSize
	}
	return s.Interface.GetList(ctx, key, opts, list)
}

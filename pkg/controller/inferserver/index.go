package inferserver

import (
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/tools/cache"

	"mindie.io/deployer/apis/infer/v1alpha1"
)

// byServer indexes the controller's children by the InferServer they
// belong to: "namespace/name" from their v1alpha1.LabelServer label (from
// v1alpha1.LabelRouter for the router's pods, which do not carry it). A
// lister's List with a label selector matches every object of the
// namespace, so with all servers in one namespace each sync would read
// every child there (and allocate a slice of them): with 10,000 servers,
// tens of thousands of objects a sync. The index makes it the server's own.
const byServer = "byServer"

// indexByServer adds the byServer index, by the server named in label, to
// inf, which must not have started yet.
func indexByServer(inf cache.SharedIndexInformer, label string) (cache.Indexer, error) {
	index := func(obj any) ([]string, error) {
		m, err := meta.Accessor(obj)
		if err != nil {
			return nil, nil
		}
		if name := m.GetLabels()[label]; name != "" {
			return []string{m.GetNamespace() + "/" + name}, nil
		}
		return nil, nil
	}
	if err := inf.AddIndexers(cache.Indexers{byServer: index}); err != nil {
		return nil, err
	}
	return inf.GetIndexer(), nil
}

// childrenIndexes are the byServer indexes of the children's informers
// (routerPods is nil without router informers).
type childrenIndexes struct {
	deployments, pods, services, configMaps, revisions, routerPods cache.Indexer
}

// labelled returns the objects of idx labelled as s's, in no order.
func labelled[T any](idx cache.Indexer, s *v1alpha1.InferServer) []T {
	objs, err := idx.ByIndex(byServer, s.Namespace+"/"+s.Name)
	if err != nil {
		// Only an index that was never added fails: New adds it.
		panic(err)
	}
	out := make([]T, 0, len(objs))
	for _, o := range objs {
		if t, ok := o.(T); ok {
			out = append(out, t)
		}
	}
	return out
}

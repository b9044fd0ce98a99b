package edgedeployment

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/registry/generic"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/apiserver/pkg/registry/rest"

	"mindie.io/deployer/apis/infer"
	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/registry/infer/statusrest"
)

// Storage is every REST endpoint of the edgedeployments resource.
type Storage struct {
	EdgeDeployment *REST
	Status         *statusrest.REST
}

// REST is the main resource, a generic store on etcd.
type REST struct {
	*genericregistry.Store
}

// ShortNames lets kubectl accept "edep" for edgedeployments.
func (r *REST) ShortNames() []string { return []string{"edep"} }

// Categories puts EdgeDeployments in "kubectl get mindie".
func (r *REST) Categories() []string { return []string{"mindie"} }

// NewStorage builds the stores of edgedeployments and
// edgedeployments/status on the given storage options.
// With finalize (where the controllers run) every object is created with
// the controller's cleanup finalizer.
func NewStorage(scheme *runtime.Scheme, optsGetter generic.RESTOptionsGetter, finalize bool) (Storage, error) {
	s := NewStrategy(scheme)
	if finalize {
		s.Finalizer = v1alpha1.FinalizerEdgeCleanup
	}
	store := &genericregistry.Store{
		NewFunc:                   func() runtime.Object { return &infer.EdgeDeployment{} },
		NewListFunc:               func() runtime.Object { return &infer.EdgeDeploymentList{} },
		PredicateFunc:             Match,
		DefaultQualifiedResource:  infer.Resource("edgedeployments"),
		SingularQualifiedResource: infer.Resource("edgedeployment"),

		CreateStrategy:      s,
		UpdateStrategy:      s,
		DeleteStrategy:      s,
		ResetFieldsStrategy: s,

		TableConvertor: tableConvertor{},
	}
	options := &generic.StoreOptions{RESTOptions: optsGetter, AttrFunc: GetAttrs}
	if err := store.CompleteWithOptions(options); err != nil {
		return Storage{}, fmt.Errorf("complete edgedeployments store: %w", err)
	}

	statusStore := *store
	ss := NewStatusStrategy(s)
	statusStore.UpdateStrategy = ss
	statusStore.ResetFieldsStrategy = ss

	return Storage{
		EdgeDeployment: &REST{store},
		Status:         statusrest.New(&statusStore),
	}, nil
}

var (
	_ rest.ShortNamesProvider = &REST{}
	_ rest.CategoriesProvider = &REST{}
)

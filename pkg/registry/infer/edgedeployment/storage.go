package edgedeployment

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/registry/generic"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/apiserver/pkg/registry/rest"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"mindie.io/deployer/apis/infer"
)

// Storage is every REST endpoint of the edgedeployments resource.
type Storage struct {
	EdgeDeployment *REST
	Status         *StatusREST
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
func NewStorage(scheme *runtime.Scheme, optsGetter generic.RESTOptionsGetter) (Storage, error) {
	s := NewStrategy(scheme)
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
		Status:         &StatusREST{store: &statusStore},
	}, nil
}

// StatusREST is the status subresource.
type StatusREST struct {
	store *genericregistry.Store
}

var (
	_ rest.Patcher             = &StatusREST{}
	_ rest.ResetFieldsStrategy = &StatusREST{}
	_ rest.TableConvertor      = &StatusREST{}
	_ rest.Storage             = &StatusREST{}
	_ rest.ShortNamesProvider  = &REST{}
	_ rest.CategoriesProvider  = &REST{}
)

// New returns an empty EdgeDeployment.
func (r *StatusREST) New() runtime.Object { return &infer.EdgeDeployment{} }

// Destroy is a no-op: the main store owns the storage.
func (r *StatusREST) Destroy() {}

// Get returns the EdgeDeployment.
func (r *StatusREST) Get(ctx context.Context, name string, options *metav1.GetOptions) (runtime.Object, error) {
	return r.store.Get(ctx, name, options)
}

// Update writes the status of an EdgeDeployment, and nothing else.
func (r *StatusREST) Update(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, createValidation rest.ValidateObjectFunc, updateValidation rest.ValidateObjectUpdateFunc, _ bool, options *metav1.UpdateOptions) (runtime.Object, bool, error) {
	// The status of an EdgeDeployment that does not exist cannot be created.
	return r.store.Update(ctx, name, objInfo, createValidation, updateValidation, false, options)
}

// GetResetFields is the status strategy's.
func (r *StatusREST) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	return r.store.GetResetFields()
}

// ConvertToTable prints the status the way the main resource does.
func (r *StatusREST) ConvertToTable(ctx context.Context, object runtime.Object, tableOptions runtime.Object) (*metav1.Table, error) {
	return r.store.ConvertToTable(ctx, object, tableOptions)
}

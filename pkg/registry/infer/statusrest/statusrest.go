// Package statusrest is the status subresource of the group's resources:
// reads return the whole object, writes change its status and nothing
// else (the store given is a copy of the main one with the status
// strategy).
package statusrest

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/apiserver/pkg/registry/rest"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
)

// REST is the status subresource of the resource of store.
type REST struct {
	store *genericregistry.Store
}

// New returns the status subresource served by store, a copy of the
// resource's store whose strategies are the status ones.
func New(store *genericregistry.Store) *REST { return &REST{store: store} }

var (
	_ rest.Patcher             = &REST{}
	_ rest.ResetFieldsStrategy = &REST{}
	_ rest.TableConvertor      = &REST{}
	_ rest.Storage             = &REST{}
)

// New returns an empty object of the resource.
func (r *REST) New() runtime.Object { return r.store.NewFunc() }

// Destroy is a no-op: the main store owns the storage.
func (r *REST) Destroy() {}

// Get returns the object.
func (r *REST) Get(ctx context.Context, name string, options *metav1.GetOptions) (runtime.Object, error) {
	return r.store.Get(ctx, name, options)
}

// Update writes the status of an object, and nothing else.
func (r *REST) Update(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, createValidation rest.ValidateObjectFunc, updateValidation rest.ValidateObjectUpdateFunc, _ bool, options *metav1.UpdateOptions) (runtime.Object, bool, error) {
	// The status of an object that does not exist cannot be created.
	return r.store.Update(ctx, name, objInfo, createValidation, updateValidation, false, options)
}

// GetResetFields is the status strategy's.
func (r *REST) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	return r.store.GetResetFields()
}

// ConvertToTable prints the status the way the main resource does.
func (r *REST) ConvertToTable(ctx context.Context, object runtime.Object, tableOptions runtime.Object) (*metav1.Table, error) {
	return r.store.ConvertToTable(ctx, object, tableOptions)
}

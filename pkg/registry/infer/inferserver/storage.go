package inferserver

import (
	"context"
	"fmt"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	"k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/apimachinery/pkg/util/validation/field"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/generic"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/apiserver/pkg/registry/rest"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"mindie.io/deployer/apis/infer"
	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/apis/infer/validation"
	"mindie.io/deployer/pkg/registry/infer/statusrest"
)

// Storage is every REST endpoint of the inferservers resource.
type Storage struct {
	InferServer *REST
	Status      *statusrest.REST
	Scale       *ScaleREST
	Proxy       *ProxyREST
}

// REST is the main resource, a generic store on etcd.
type REST struct {
	*genericregistry.Store
}

// ShortNames lets kubectl accept "isvc" for inferservers.
func (r *REST) ShortNames() []string { return []string{"isvc"} }

// Categories puts InferServers in "kubectl get all" and "kubectl get mindie".
func (r *REST) Categories() []string { return []string{"all", "mindie"} }

// NewStorage builds the stores of inferservers, inferservers/status,
// inferservers/scale and inferservers/proxy on the given storage options.
// With finalize (where the controllers run) every object is created with
// the controller's cleanup finalizer.
func NewStorage(scheme *runtime.Scheme, optsGetter generic.RESTOptionsGetter, finalize bool) (Storage, error) {
	s := NewStrategy(scheme)
	if finalize {
		s.Finalizer = v1alpha1.FinalizerCleanup
	}
	store := &genericregistry.Store{
		NewFunc:                   func() runtime.Object { return &infer.InferServer{} },
		NewListFunc:               func() runtime.Object { return &infer.InferServerList{} },
		PredicateFunc:             MatchInferServer,
		DefaultQualifiedResource:  infer.Resource("inferservers"),
		SingularQualifiedResource: infer.Resource("inferserver"),

		CreateStrategy:      s,
		UpdateStrategy:      s,
		DeleteStrategy:      s,
		ResetFieldsStrategy: s,

		TableConvertor: tableConvertor{},
	}
	options := &generic.StoreOptions{RESTOptions: optsGetter, AttrFunc: GetAttrs}
	if err := store.CompleteWithOptions(options); err != nil {
		return Storage{}, fmt.Errorf("complete inferservers store: %w", err)
	}

	statusStore := *store
	ss := NewStatusStrategy(s)
	statusStore.UpdateStrategy = ss
	statusStore.ResetFieldsStrategy = ss

	return Storage{
		InferServer: &REST{store},
		Status:      statusrest.New(&statusStore),
		Scale:       &ScaleREST{store: store},
		Proxy:       NewProxyREST(store),
	}, nil
}

var (
	_ rest.GroupVersionKindProvider = &ScaleREST{}
)

// ScaleREST is the scale subresource (autoscaling/v1 Scale), so that
// kubectl scale and HorizontalPodAutoscalers work on InferServers.
type ScaleREST struct {
	store *genericregistry.Store
}

var _ rest.Patcher = &ScaleREST{}

// GroupVersionKind says the scale subresource serves autoscaling/v1 Scale.
func (r *ScaleREST) GroupVersionKind(schema.GroupVersion) schema.GroupVersionKind {
	return autoscalingv1.SchemeGroupVersion.WithKind("Scale")
}

// New returns an empty Scale.
func (r *ScaleREST) New() runtime.Object { return &autoscalingv1.Scale{} }

// Destroy is a no-op: the main store owns the storage.
func (r *ScaleREST) Destroy() {}

// Get returns the Scale of an InferServer.
func (r *ScaleREST) Get(ctx context.Context, name string, options *metav1.GetOptions) (runtime.Object, error) {
	obj, err := r.store.Get(ctx, name, options)
	if err != nil {
		return nil, err
	}
	return scaleOf(obj.(*infer.InferServer)), nil
}

// Update changes spec.replicas through a Scale.
func (r *ScaleREST) Update(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, createValidation rest.ValidateObjectFunc, updateValidation rest.ValidateObjectUpdateFunc, _ bool, options *metav1.UpdateOptions) (runtime.Object, bool, error) {
	// The scale handler records the owner of replicas against the version of
	// the InferServer the request went through; it must be one of
	// replicasPaths, so it is never autoscaling/v1.
	gv := v1alpha1.SchemeGroupVersion
	if requestInfo, ok := genericapirequest.RequestInfoFrom(ctx); ok {
		reqGV := schema.GroupVersion{Group: requestInfo.APIGroup, Version: requestInfo.APIVersion}
		if _, known := replicasPaths[reqGV.String()]; known {
			gv = reqGV
		}
	}
	obj, _, err := r.store.Update(ctx, name,
		&scaleUpdatedObjectInfo{name: name, reqGroupVersion: gv, objInfo: objInfo},
		toScaleCreateValidation(createValidation), toScaleUpdateValidation(updateValidation),
		false, options)
	if err != nil {
		return nil, false, err
	}
	return scaleOf(obj.(*infer.InferServer)), false, nil
}

// ConvertToTable prints a Scale with the default columns.
func (r *ScaleREST) ConvertToTable(ctx context.Context, object runtime.Object, tableOptions runtime.Object) (*metav1.Table, error) {
	return rest.NewDefaultTableConvertor(infer.Resource("inferservers/scale")).ConvertToTable(ctx, object, tableOptions)
}

func toScaleCreateValidation(f rest.ValidateObjectFunc) rest.ValidateObjectFunc {
	return func(ctx context.Context, obj runtime.Object) error {
		return f(ctx, scaleOf(obj.(*infer.InferServer)))
	}
}

func toScaleUpdateValidation(f rest.ValidateObjectUpdateFunc) rest.ValidateObjectUpdateFunc {
	return func(ctx context.Context, obj, old runtime.Object) error {
		return f(ctx, scaleOf(obj.(*infer.InferServer)), scaleOf(old.(*infer.InferServer)))
	}
}

// replicasPaths maps spec.replicas of each served version to the Scale, so
// that server-side apply ownership moves between the two.
var replicasPaths = managedfields.ResourcePathMappings{
	v1alpha1.SchemeGroupVersion.String(): fieldpath.MakePathOrDie("spec", "replicas"),
}

func scaleOf(s *infer.InferServer) *autoscalingv1.Scale {
	var replicas int32
	if s.Spec.Replicas != nil {
		replicas = *s.Spec.Replicas
	}
	return &autoscalingv1.Scale{
		ObjectMeta: metav1.ObjectMeta{
			Name:              s.Name,
			Namespace:         s.Namespace,
			UID:               s.UID,
			ResourceVersion:   s.ResourceVersion,
			CreationTimestamp: s.CreationTimestamp,
		},
		Spec: autoscalingv1.ScaleSpec{Replicas: replicas},
		Status: autoscalingv1.ScaleStatus{
			Replicas: s.Status.Replicas,
			Selector: Selector(s.Name).String(),
		},
	}
}

// scaleUpdatedObjectInfo turns an update of a Scale into an update of its InferServer.
type scaleUpdatedObjectInfo struct {
	name            string
	reqGroupVersion schema.GroupVersion
	objInfo         rest.UpdatedObjectInfo
}

func (i *scaleUpdatedObjectInfo) Preconditions() *metav1.Preconditions {
	return i.objInfo.Preconditions()
}

func (i *scaleUpdatedObjectInfo) UpdatedObject(ctx context.Context, oldObj runtime.Object) (runtime.Object, error) {
	s, ok := oldObj.DeepCopyObject().(*infer.InferServer)
	if !ok || s == nil {
		return nil, errors.NewNotFound(infer.Resource("inferservers/scale"), i.name)
	}
	handler := managedfields.NewScaleHandler(s.ManagedFields, i.reqGroupVersion, replicasPaths)
	oldScale := scaleOf(s)
	scaleFields, err := handler.ToSubresource()
	if err != nil {
		return nil, err
	}
	oldScale.ManagedFields = scaleFields

	newObj, err := i.objInfo.UpdatedObject(ctx, oldScale)
	if err != nil {
		return nil, err
	}
	if newObj == nil {
		return nil, errors.NewBadRequest("nil update passed to Scale")
	}
	scale, ok := newObj.(*autoscalingv1.Scale)
	if !ok {
		return nil, errors.NewBadRequest(fmt.Sprintf("expected input object type to be Scale, but %T", newObj))
	}
	if scale.Spec.Replicas < validation.MinReplicas || scale.Spec.Replicas > validation.MaxReplicas {
		return nil, errors.NewInvalid(autoscalingv1.SchemeGroupVersion.WithKind("Scale").GroupKind(), i.name, field.ErrorList{
			field.Invalid(field.NewPath("spec", "replicas"), scale.Spec.Replicas,
				fmt.Sprintf("must be between %d and %d, inclusive: an InferServer runs 1 to 256 instances", validation.MinReplicas, validation.MaxReplicas)),
		})
	}
	// A resourceVersion on the Scale is a precondition on the InferServer.
	if scale.ResourceVersion != "" {
		s.ResourceVersion = scale.ResourceVersion
	}
	replicas := scale.Spec.Replicas
	s.Spec.Replicas = &replicas
	s.ManagedFields, err = handler.ToParent(scale.ManagedFields)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Package inferserver is the registry of InferServers: how they are
// created, updated, validated, selected and printed, on a generic etcd store.
package inferserver

import (
	"context"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/registry/generic"
	"k8s.io/apiserver/pkg/storage"

	"mindie.io/deployer/apis/infer"
	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/apis/infer/validation"
	"mindie.io/deployer/pkg/registry/infer/strategybase"
)

// strategy is the create/update behaviour of the main resource: users own
// the spec, the status is kept from what the controller last wrote.
type strategy struct {
	strategybase.Spec
}

// NewStrategy returns the strategy of the main resource.
func NewStrategy(typer runtime.ObjectTyper) strategy {
	return strategy{strategybase.NewSpec(typer)}
}

func (st strategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	s := obj.(*infer.InferServer)
	s.Status = infer.InferServerStatus{Selector: Selector(s.Name).String()}
	s.Generation = 1
	st.AddFinalizer(s)
}

func (strategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	newS, oldS := obj.(*infer.InferServer), old.(*infer.InferServer)
	newS.Status = oldS.Status
	if !apiequality.Semantic.DeepEqual(newS.Spec, oldS.Spec) {
		newS.Generation = oldS.Generation + 1
	}
}

func (strategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return validation.ValidateInferServer(obj.(*infer.InferServer))
}

func (strategy) WarningsOnCreate(_ context.Context, obj runtime.Object) []string {
	return warnings(&obj.(*infer.InferServer).Spec)
}

func (strategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return validation.ValidateInferServerUpdate(obj.(*infer.InferServer), old.(*infer.InferServer))
}

func (strategy) WarningsOnUpdate(_ context.Context, obj, old runtime.Object) []string {
	newSpec, oldSpec := &obj.(*infer.InferServer).Spec, &old.(*infer.InferServer).Spec
	w := warnings(newSpec)
	if newSpec.Service.Type == corev1.ServiceTypeNodePort && (newSpec.Router == nil) != (oldSpec.Router == nil) {
		to := "the router"
		if newSpec.Router == nil {
			to = "the instances directly"
		}
		w = append(w, "spec.router: the Service (its node port included) now reaches "+to)
	}
	return w
}

// warnings points out settings that are valid but do not do what they seem to.
func warnings(s *infer.InferServerSpec) []string {
	var w []string
	// A Grace drain is cut at the grace-over-time: one shorter than the
	// pods' own grace period cuts their drain short.
	if s.FaultRescheduling == infer.FaultReschedulingGrace && s.FaultGraceOverTimeSeconds != nil && s.TerminationGracePeriodSeconds != nil &&
		int64(*s.FaultGraceOverTimeSeconds) < *s.TerminationGracePeriodSeconds {
		w = append(w, fmt.Sprintf("spec.faultGraceOverTimeSeconds: %d is shorter than spec.terminationGracePeriodSeconds (%d): a pod drained off a faulty NPU is deleted at once before its grace period ends",
			*s.FaultGraceOverTimeSeconds, *s.TerminationGracePeriodSeconds))
	}
	if r := s.Router; r != nil && r.Authentication == infer.RouterAuthenticationNone && s.Service.Type == corev1.ServiceTypeNodePort {
		w = append(w, "spec.router.authentication: None with spec.service.type NodePort admits every caller that reaches a node's port")
	}
	return w
}

// statusStrategy is the behaviour of the status subresource: only status
// changes, and the controller that writes it never owns the spec.
type statusStrategy struct {
	strategy
	strategybase.Status
}

// NewStatusStrategy returns the strategy of the status subresource.
func NewStatusStrategy(s strategy) statusStrategy { return statusStrategy{strategy: s} }

func (statusStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	newS, oldS := obj.(*infer.InferServer), old.(*infer.InferServer)
	newS.Spec = oldS.Spec
	newS.Labels = oldS.Labels
}

func (statusStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return validation.ValidateInferServerStatusUpdate(obj.(*infer.InferServer), old.(*infer.InferServer))
}

func (statusStrategy) WarningsOnUpdate(context.Context, runtime.Object, runtime.Object) []string {
	return nil
}

// Selector is the label selector of an InferServer's pods.
func Selector(name string) labels.Selector {
	return labels.SelectorFromSet(labels.Set{v1alpha1.LabelServer: name})
}

// GetAttrs returns the labels and selectable fields of an InferServer.
func GetAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	s, ok := obj.(*infer.InferServer)
	if !ok {
		return nil, nil, fmt.Errorf("not an InferServer: %T", obj)
	}
	return s.Labels, SelectableFields(s), nil
}

// SelectableFields are the fields a field selector can match: the object
// meta fields plus scheduler, NPU type and nodes per instance.
func SelectableFields(s *infer.InferServer) fields.Set {
	nodes := ""
	if s.Spec.NodesPerInstance != nil {
		nodes = strconv.Itoa(int(*s.Spec.NodesPerInstance))
	}
	specFields := fields.Set{
		v1alpha1.FieldSelectorScheduler:        string(s.Spec.Scheduler),
		v1alpha1.FieldSelectorNPUType:          string(s.Spec.Resources.NPU.Type),
		v1alpha1.FieldSelectorNodesPerInstance: nodes,
	}
	return generic.MergeFieldsSets(generic.ObjectMetaFieldsSet(&s.ObjectMeta, true), specFields)
}

// MatchInferServer returns a matcher for a label and field selector.
func MatchInferServer(label labels.Selector, field fields.Selector) storage.SelectionPredicate {
	return storage.SelectionPredicate{Label: label, Field: field, GetAttrs: GetAttrs}
}

// Package strategybase holds what the registry strategies of the group's
// resources share: namespaced objects whose users own the spec and whose
// controller owns the status.
package strategybase

import (
	"slices"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/storage/names"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"mindie.io/deployer/apis/infer/v1alpha1"
)

// Spec is embedded by the strategy of a main resource: namespaced, names
// generated from generateName, no create on update, unconditional updates
// allowed, and the status reset on every write (server-side apply never
// gives a user ownership of it).
type Spec struct {
	runtime.ObjectTyper
	names.NameGenerator
	// Finalizer, when not empty, is put on every object created: the
	// controller's cleanup finalizer, so that the controller need not
	// spend a write of its own adding it. Empty where no controller runs
	// (a standalone server), whose objects would never be released.
	Finalizer string
}

// NewSpec returns the Spec of typer, adding no finalizer.
func NewSpec(typer runtime.ObjectTyper) Spec {
	return Spec{ObjectTyper: typer, NameGenerator: names.SimpleNameGenerator}
}

// AddFinalizer puts the Spec's Finalizer on obj, being created, unless it
// has it already.
func (s Spec) AddFinalizer(obj metav1.Object) {
	if s.Finalizer != "" && !slices.Contains(obj.GetFinalizers(), s.Finalizer) {
		obj.SetFinalizers(append(obj.GetFinalizers(), s.Finalizer))
	}
}

func (Spec) NamespaceScoped() bool { return true }

func (Spec) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	return map[fieldpath.APIVersion]*fieldpath.Set{
		fieldpath.APIVersion(v1alpha1.SchemeGroupVersion.String()): fieldpath.NewSet(fieldpath.MakePathOrDie("status")),
	}
}

func (Spec) Canonicalize(runtime.Object) {}

func (Spec) AllowCreateOnUpdate() bool { return false }

func (Spec) AllowUnconditionalUpdate() bool { return true }

// Status is embedded, beside the main strategy, by the strategy of a
// status subresource: the spec and the labels are reset on its writes, so
// the controller that writes status never owns them.
type Status struct{}

func (Status) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	return map[fieldpath.APIVersion]*fieldpath.Set{
		fieldpath.APIVersion(v1alpha1.SchemeGroupVersion.String()): fieldpath.NewSet(
			fieldpath.MakePathOrDie("spec"),
			fieldpath.MakePathOrDie("metadata", "labels"),
		),
	}
}

// Table starts the table of obj, an object or a list: its columns and the
// list's (or the object's) resource version, continue token and remaining
// count. The caller adds the rows.
func Table(obj runtime.Object, columns []metav1.TableColumnDefinition) *metav1.Table {
	table := &metav1.Table{ColumnDefinitions: columns}
	if m, err := meta.ListAccessor(obj); err == nil {
		table.ResourceVersion = m.GetResourceVersion()
		table.Continue = m.GetContinue()
		table.RemainingItemCount = m.GetRemainingItemCount()
	} else if m, err := meta.CommonAccessor(obj); err == nil {
		table.ResourceVersion = m.GetResourceVersion()
	}
	return table
}

package inferserver

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/controller/cachetrim"
)

// child is how applyChild reads and writes one kind of child: PT is the
// typed object (*appsv1.Deployment), AC its apply configuration.
type child[T any, PT interface {
	*T
	metav1.Object
}, AC any] struct {
	// kind names the kind in events and errors.
	kind string
	// get reads the cached object (a lister's Get).
	get func(name string) (PT, error)
	// extract reads the fields a field manager owns (appsv1ac.ExtractDeployment).
	extract func(obj PT, fieldManager string) (AC, error)
	// apply writes with server-side apply (the typed client's Apply).
	apply func(ctx context.Context, obj AC, opts metav1.ApplyOptions) (PT, error)
	// written records what apply wrote, for the informer's transform
	// (cachetrim.Applied) of the kind; nil: the kind has none.
	written *cachetrim.Written
}

// applyChild writes desired, the child called name, with server-side apply
// as FieldManager, and returns the object it found (nil when there was
// none) and whether it wrote.
//
// An object of that name the InferServer does not control is never taken
// over. Nothing is written when the fields the controller owns in the
// object already are desired, so a steady state costs no write; a field
// another manager took over by a hand edit is missing from what the
// controller owns, so the apply (with Force) takes it back and a Reverted
// event names who made the edit.
func applyChild[T any, PT interface {
	*T
	metav1.Object
}, AC any](ctx context.Context, c *Controller, s *v1alpha1.InferServer, k child[T, PT, AC], name string, desired AC) (PT, bool, error) {
	live, err := k.get(name)
	switch {
	case apierrors.IsNotFound(err):
		live = nil
	case err != nil:
		return nil, false, err
	default:
		if ref := metav1.GetControllerOfNoCopy(live); ref == nil || ref.UID != s.UID {
			msg := fmt.Sprintf("%s %s exists and is not owned by this InferServer", k.kind, name)
			c.recorder.Event(s, corev1.EventTypeWarning, ReasonFailedCreate, msg)
			return live, false, errors.New(msg)
		}
		if upToDate(k, live, desired) {
			return live, false, nil
		}
	}
	// The digest of what is written, for the informer's transform, taken
	// before the write so that it is recorded as soon as the write is
	// answered: the informer may be processing the write's event already.
	var digest string
	var record bool
	if k.written != nil {
		var err error
		digest, err = cachetrim.Digest(desired)
		record = err == nil
	}
	applied, err := k.apply(ctx, desired, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
	if err != nil {
		reason := ReasonFailedUpdate
		if live == nil {
			reason = ReasonFailedCreate
		}
		c.recorder.Eventf(s, corev1.EventTypeWarning, reason, "Applying %s %s: %v", k.kind, name, err)
		return live, false, fmt.Errorf("apply %s %s: %w", k.kind, name, err)
	}
	if record && (live == nil || applied.GetResourceVersion() != live.GetResourceVersion()) {
		var seen metav1.Object
		if now, err := k.get(name); err == nil {
			seen = now
		}
		k.written.Record(applied, digest, seen)
	}
	if live != nil {
		if by := overriddenManagers(live.GetManagedFields(), applied.GetManagedFields()); len(by) > 0 {
			c.recorder.Eventf(s, corev1.EventTypeNormal, ReasonReverted,
				"Reverted a change to %s %s made by %s: children follow the InferServer's spec", k.kind, name, strings.Join(by, ", "))
		}
	}
	return live, true, nil
}

// upToDate says whether the fields the controller owns in live (a cached
// object) already are desired: by the digest cachetrim.Applied recorded
// in the cache, or, on an object cached whole, by extracting them.
func upToDate[T any, PT interface {
	*T
	metav1.Object
}, AC any](k child[T, PT, AC], live PT, desired AC) bool {
	if ours, ok := cachetrim.AppliedDigest(live); ok {
		d, err := cachetrim.Digest(desired)
		return err == nil && d == ours
	}
	ours, err := k.extract(live, FieldManager)
	return err == nil && equality.Semantic.DeepEqual(ours, desired)
}

// overriddenManagers names the other field managers of before (the object
// as it was) that owned a field the controller owns in after (the object as
// applied): their change was undone.
func overriddenManagers(before, after []metav1.ManagedFieldsEntry) []string {
	ours := fieldSet(after, func(e metav1.ManagedFieldsEntry) bool {
		return e.Manager == FieldManager && e.Operation == metav1.ManagedFieldsOperationApply && e.Subresource == ""
	})
	if ours == nil {
		return nil
	}
	var names []string
	seen := map[string]bool{}
	for _, e := range before {
		if e.Manager == FieldManager || seen[e.Manager] {
			continue
		}
		theirs := fieldSet([]metav1.ManagedFieldsEntry{e}, func(metav1.ManagedFieldsEntry) bool { return true })
		if theirs != nil && !ours.Intersection(theirs).Empty() {
			seen[e.Manager] = true
			names = append(names, strconv.Quote(e.Manager))
		}
	}
	return names
}

// fieldSet is the union of the fields of the entries that match.
func fieldSet(entries []metav1.ManagedFieldsEntry, match func(metav1.ManagedFieldsEntry) bool) *fieldpath.Set {
	var out *fieldpath.Set
	for _, e := range entries {
		if !match(e) || e.FieldsV1 == nil {
			continue
		}
		set := &fieldpath.Set{}
		if err := set.FromJSON(e.FieldsV1.GetRawReader()); err != nil {
			continue
		}
		if out == nil {
			out = set
		} else {
			out = out.Union(set)
		}
	}
	return out
}

package cachetrim

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// AppliedDigestAnnotation holds, on an object in a controller's cache and
// nowhere else, the digest of what the controller's field manager owns in
// it (Digest of the manager's extracted apply configuration). It is never
// written to the API: the controllers apply children from apply
// configurations they build, never from cached objects.
const AppliedDigestAnnotation = "cache.infer.mindie.io/applied-digest"

// Digest is the SHA-256 of an apply configuration's JSON: two
// configurations with one digest set the same fields to the same values
// (encoding/json writes struct fields in a fixed order and map keys
// sorted, and a quantity in its canonical form).
func Digest(ac any) (string, error) {
	data, err := json.Marshal(ac)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

// AppliedDigest is the digest Applied recorded on a cached object, if any.
func AppliedDigest(obj metav1.Object) (string, bool) {
	d, ok := obj.GetAnnotations()[AppliedDigestAnnotation]
	return d, ok
}

// Applied is an informer transform for a kind the controller writes with
// server-side apply as fieldManager, which it then reads back only to
// decide whether to apply again. It extracts what the manager owns,
// records its Digest in AppliedDigestAnnotation and drops from
// managedFields the manager's own entries and those of subresources
// (status: the controller applies none); the entries of other managers of
// the object itself stay, so a change one of them made to a field the
// controller owns can still be named. Then trim may drop fields the
// controller never reads (it runs only when the digest was recorded, so an
// object it cannot extract stays whole). The digest replaces the
// controller's managedFields and whatever trim drops, typically most of a
// Deployment's size.
func Applied[PT metav1.Object, AC any](fieldManager string, extract func(PT, string) (AC, error), trim func(PT)) cache.TransformFunc {
	return func(obj any) (any, error) {
		o, ok := obj.(PT)
		if !ok {
			// A tombstone (cache.DeletedFinalStateUnknown) or another
			// kind: as it is.
			return obj, nil
		}
		ours, err := extract(o, fieldManager)
		if err != nil {
			return obj, nil
		}
		digest, err := Digest(ours)
		if err != nil {
			return nil, fmt.Errorf("digest of %s/%s as %s: %w", o.GetNamespace(), o.GetName(), fieldManager, err)
		}
		annotations := o.GetAnnotations()
		if annotations == nil {
			annotations = map[string]string{}
		}
		annotations[AppliedDigestAnnotation] = digest
		o.SetAnnotations(annotations)
		var keep []metav1.ManagedFieldsEntry
		for _, e := range o.GetManagedFields() {
			if e.Manager != fieldManager && e.Subresource == "" {
				keep = append(keep, e)
			}
		}
		o.SetManagedFields(keep)
		if trim != nil {
			trim(o)
		}
		return o, nil
	}
}

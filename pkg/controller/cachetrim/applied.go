package cachetrim

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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

// appliedSourceAnnotation holds, beside AppliedDigestAnnotation and only
// in the cache, the appliedSource the digest was extracted from.
const appliedSourceAnnotation = "cache.infer.mindie.io/applied-source"

// Prior looks up the cached copy of an object (what the informer's store
// holds under its namespace and name).
type Prior func(namespace, name string) (metav1.Object, bool)

// appliedSource sums up what the values fieldManager owns in o can depend
// on, so that two versions of an object with one source have the same
// values there, and so the same digest:
//
//   - its UID and generation: the API server bumps the generation on every
//     change of the spec (the kinds Applied reuses digests for);
//   - the values of the labels and annotations the manager's entries own,
//     and the owner references and finalizers: the metadata a manager can
//     own, which the generation does not follow. Labels and annotations
//     the manager does not own are left out: kube-controller-manager
//     annotates every Deployment with its revision, which would otherwise
//     make its next version look changed;
//   - the manager's own managedFields entries: a value it owns that another
//     manager changes is no longer the manager's (its fields change), and
//     when the manager applies a change, its entry's time moves.
//
// The status and the other managers' entries are left out: they change
// with every status write and leave the manager's values alone.
func appliedSource(o metav1.Object, fieldManager string) (string, error) {
	var ours []metav1.ManagedFieldsEntry
	labels, annotations := map[string]string{}, map[string]string{}
	for _, e := range o.GetManagedFields() {
		if e.Manager != fieldManager || e.Subresource != "" {
			continue
		}
		ours = append(ours, e)
		if e.FieldsV1 == nil {
			continue
		}
		var owned struct {
			Metadata struct {
				Labels      map[string]json.RawMessage `json:"f:labels"`
				Annotations map[string]json.RawMessage `json:"f:annotations"`
			} `json:"f:metadata"`
		}
		if err := json.Unmarshal(e.FieldsV1.GetRawBytes(), &owned); err != nil {
			return "", fmt.Errorf("fields of %s: %w", fieldManager, err)
		}
		ownedValues(labels, owned.Metadata.Labels, o.GetLabels())
		ownedValues(annotations, owned.Metadata.Annotations, o.GetAnnotations())
	}
	data, err := json.Marshal(struct {
		UID             types.UID
		Generation      int64
		Labels          map[string]string
		Annotations     map[string]string
		OwnerReferences []metav1.OwnerReference
		Finalizers      []string
		Entries         []metav1.ManagedFieldsEntry
	}{o.GetUID(), o.GetGeneration(), labels, annotations, o.GetOwnerReferences(), o.GetFinalizers(), ours})
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:16]), nil
}

// ownedValues copies into into the values in all of the keys fields owns
// (a FieldsV1 map of labels or annotations: "f:<key>").
func ownedValues(into map[string]string, fields map[string]json.RawMessage, all map[string]string) {
	for f := range fields {
		if key, ok := strings.CutPrefix(f, "f:"); ok {
			if v, ok := all[key]; ok {
				into[key] = v
			}
		}
	}
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
//
// With prior (nil: none), the digest of an object whose generation the API
// server keeps (a Deployment's, not a Service's) is taken from its cached
// copy when nothing the manager owns can have changed since: see
// appliedSource. Extracting is most of the transform's cost, and an
// object's status writes (a Deployment's, several for each rollout) change
// nothing the controller applies. With written (nil: none), the digest of
// the event of the controller's own write is the one it recorded there
// (Written), for any kind.
func Applied[PT metav1.Object, AC any](fieldManager string, extract func(PT, string) (AC, error), trim func(PT), prior Prior, written *Written) cache.TransformFunc {
	return func(obj any) (any, error) {
		o, ok := obj.(PT)
		if !ok {
			// A tombstone (cache.DeletedFinalStateUnknown) or another
			// kind: as it is.
			return obj, nil
		}
		digest, _ := written.take(o)
		var source string
		if prior != nil && o.GetGeneration() > 0 {
			// An object whose source cannot be told (managedFields that
			// are not JSON, which no API server writes) is extracted,
			// and so is its next version.
			source, _ = appliedSource(o, fieldManager)
			if digest == "" && source != "" {
				if cached, ok := prior(o.GetNamespace(), o.GetName()); ok && cached.GetAnnotations()[appliedSourceAnnotation] == source {
					digest = cached.GetAnnotations()[AppliedDigestAnnotation]
				}
			}
		}
		if digest == "" {
			ours, err := extract(o, fieldManager)
			if err != nil {
				return obj, nil
			}
			if digest, err = Digest(ours); err != nil {
				return nil, fmt.Errorf("digest of %s/%s as %s: %w", o.GetNamespace(), o.GetName(), fieldManager, err)
			}
		}
		annotations := o.GetAnnotations()
		if annotations == nil {
			annotations = map[string]string{}
		}
		annotations[AppliedDigestAnnotation] = digest
		if source != "" {
			annotations[appliedSourceAnnotation] = source
		}
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

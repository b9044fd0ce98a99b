// Package revision defines the revisions of an InferServer: the part of its
// spec that describes an instance (its "template"), how a template is
// hashed and named, and how it is stored in a ControllerRevision owned by
// the InferServer. The controller writes revisions; rollout history and undo
// read them.
//
// The template is the whole spec except what does not change an instance:
// replicas, strategy, paused, revisionHistoryLimit and the Service. Changing
// any other field makes a new revision and rolls it out.
package revision

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
)

// Template returns the instance template of spec: a copy with the fields
// that do not describe an instance cleared.
func Template(spec *v1alpha1.InferServerSpec) v1alpha1.InferServerSpec {
	t := *spec.DeepCopy()
	t.Replicas = nil
	t.Strategy = v1alpha1.InferServerStrategy{}
	t.Paused = false
	t.RevisionHistoryLimit = nil
	t.Service = v1alpha1.InferServiceExposure{}
	t.FaultGraceOverTimeSeconds = nil
	t.NodeLostSeconds = nil
	return t
}

// Restore sets the template fields of spec from template and keeps the
// others (replicas, strategy, paused, revisionHistoryLimit, service,
// faultGraceOverTimeSeconds, nodeLostSeconds).
func Restore(spec *v1alpha1.InferServerSpec, template v1alpha1.InferServerSpec) {
	keep := *spec.DeepCopy()
	*spec = *template.DeepCopy()
	spec.Replicas = keep.Replicas
	spec.Strategy = keep.Strategy
	spec.Paused = keep.Paused
	spec.RevisionHistoryLimit = keep.RevisionHistoryLimit
	spec.Service = keep.Service
	spec.FaultGraceOverTimeSeconds = keep.FaultGraceOverTimeSeconds
	spec.NodeLostSeconds = keep.NodeLostSeconds
}

// Hash is a short, label-safe hash of a template. collisions salts it: the
// controller raises it when a different template already holds the name.
func Hash(template v1alpha1.InferServerSpec, collisions int32) string {
	data, err := json.Marshal(template)
	if err != nil {
		// Marshalling plain API structs cannot fail.
		panic(err)
	}
	h := fnv.New32a()
	_, _ = h.Write(data)
	if collisions > 0 {
		_, _ = h.Write([]byte(strconv.Itoa(int(collisions))))
	}
	return rand.SafeEncodeString(strconv.FormatUint(uint64(h.Sum32()), 10))
}

// Name is the name of the revision of server with the given hash; it is
// also the value of the pods' LabelRevision. Server names are at most 48
// characters, so the name fits a label value.
func Name(server, hash string) string {
	return server + "-" + hash
}

// dataEnvelope is how a template is stored in ControllerRevision.data.
type dataEnvelope struct {
	Spec v1alpha1.InferServerSpec `json:"spec"`
}

// New returns the ControllerRevision of server's current template, with the
// given revision number, owned by server.
func New(server *v1alpha1.InferServer, number int64, collisions int32) (*appsv1.ControllerRevision, error) {
	template := Template(&server.Spec)
	data, err := json.Marshal(dataEnvelope{Spec: template})
	if err != nil {
		return nil, err
	}
	cr := &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{
			Name:      Name(server.Name, Hash(template, collisions)),
			Namespace: server.Namespace,
			Labels:    map[string]string{v1alpha1.LabelServer: server.Name},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: v1alpha1.SchemeGroupVersion.String(),
				Kind:       "InferServer",
				Name:       server.Name,
				UID:        server.UID,
				Controller: ptr.To(true),
			}},
		},
		Data:     runtime.RawExtension{Raw: data},
		Revision: number,
	}
	if cause, ok := server.Annotations[v1alpha1.AnnotationChangeCause]; ok {
		cr.Annotations = map[string]string{v1alpha1.AnnotationChangeCause: cause}
	}
	return cr, nil
}

// Decode returns the template stored in a ControllerRevision.
func Decode(cr *appsv1.ControllerRevision) (v1alpha1.InferServerSpec, error) {
	var env dataEnvelope
	raw := cr.Data.Raw
	if len(raw) == 0 && cr.Data.Object != nil {
		var err error
		if raw, err = json.Marshal(cr.Data.Object); err != nil {
			return env.Spec, err
		}
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return env.Spec, fmt.Errorf("revision %s: decode template: %w", cr.Name, err)
	}
	return env.Spec, nil
}

// Matches reports whether cr stores the template of spec.
func Matches(cr *appsv1.ControllerRevision, spec *v1alpha1.InferServerSpec) bool {
	stored, err := Decode(cr)
	if err != nil {
		return false
	}
	a, _ := json.Marshal(stored)
	b, _ := json.Marshal(Template(spec))
	return string(a) == string(b)
}

// Sort orders revisions by revision number, oldest first (by name when
// numbers are equal, so the order is stable).
func Sort(revs []*appsv1.ControllerRevision) {
	sort.SliceStable(revs, func(i, j int) bool {
		if revs[i].Revision != revs[j].Revision {
			return revs[i].Revision < revs[j].Revision
		}
		return revs[i].Name < revs[j].Name
	})
}

// OwnedBy keeps the revisions whose controller is the InferServer with uid.
func OwnedBy(revs []*appsv1.ControllerRevision, uid string) []*appsv1.ControllerRevision {
	var out []*appsv1.ControllerRevision
	for _, cr := range revs {
		if ref := metav1.GetControllerOfNoCopy(cr); ref != nil && string(ref.UID) == uid && ref.Kind == "InferServer" {
			out = append(out, cr)
		}
	}
	return out
}

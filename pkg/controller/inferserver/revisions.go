package inferserver

import (
	"context"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/revision"
)

// maxHashCollisions bounds the salts tried when a revision name is taken
// by a different template.
const maxHashCollisions = 10

// syncRevisions finds or makes the ControllerRevision of the current
// template, which new instances get.
func (c *Controller) syncRevisions(ctx context.Context, st *syncState) error {
	s := st.server
	all, err := c.revisions.ControllerRevisions(s.Namespace).List(serverSelector(s))
	if err != nil {
		return err
	}
	revs := revision.OwnedBy(all, string(s.UID))
	revision.Sort(revs)
	var maxNumber int64
	for _, r := range revs {
		maxNumber = max(maxNumber, r.Revision)
	}
	var update *appsv1.ControllerRevision
	for i := int32(0); i < maxHashCollisions && update == nil; i++ {
		want, err := revision.New(s, maxNumber+1, i)
		if err != nil {
			return err
		}
		existing, err := c.revisions.ControllerRevisions(s.Namespace).Get(want.Name)
		switch {
		case apierrors.IsNotFound(err):
			created, err := c.kube.AppsV1().ControllerRevisions(s.Namespace).Create(ctx, want, metav1.CreateOptions{FieldManager: FieldManager})
			if apierrors.IsAlreadyExists(err) {
				// The informer lags behind; look again on the next sync.
				return fmt.Errorf("revision %s exists but is not in the cache yet", want.Name)
			}
			if err != nil {
				c.recorder.Eventf(s, corev1.EventTypeWarning, ReasonFailedCreate, "Creating revision %s: %v", want.Name, err)
				return fmt.Errorf("create revision %s: %w", want.Name, err)
			}
			c.recorder.Eventf(s, corev1.EventTypeNormal, ReasonRevisionCreated, "Created revision %d (%s)", created.Revision, created.Name)
			update = created
			revs = append(revs, created)
		case err != nil:
			return err
		case revision.Matches(existing, &s.Spec):
			if ref := metav1.GetControllerOfNoCopy(existing); ref == nil || ref.UID != s.UID {
				return fmt.Errorf("controllerrevision %s exists and is not owned by this InferServer", want.Name)
			}
			update = existing
			// Going back to an older template (an undo) makes it the newest
			// revision again, as Deployments renumber a reused ReplicaSet.
			if existing.Revision < maxNumber {
				cp := existing.DeepCopy()
				cp.Revision = maxNumber + 1
				if cause, ok := s.Annotations[v1alpha1.AnnotationChangeCause]; ok {
					if cp.Annotations == nil {
						cp.Annotations = map[string]string{}
					}
					cp.Annotations[v1alpha1.AnnotationChangeCause] = cause
				}
				updated, err := c.kube.AppsV1().ControllerRevisions(s.Namespace).Update(ctx, cp, metav1.UpdateOptions{FieldManager: FieldManager})
				if err != nil {
					return fmt.Errorf("renumber revision %s: %w", cp.Name, err)
				}
				c.recorder.Eventf(s, corev1.EventTypeNormal, ReasonRevisionCreated, "Revision %d (%s) is revision %d again", existing.Revision, existing.Name, updated.Revision)
				update = updated
				for i := range revs {
					if revs[i].Name == updated.Name {
						revs[i] = updated
					}
				}
			}
		}
	}
	if update == nil {
		return fmt.Errorf("no free revision name for the template after %d hash collisions", maxHashCollisions)
	}
	revision.Sort(revs)
	st.revisions, st.update = revs, update
	st.target = update.Name
	return nil
}

// pruneRevisions deletes the oldest revisions beyond revisionHistoryLimit
// that no instance runs.
func (c *Controller) pruneRevisions(ctx context.Context, st *syncState) error {
	s := st.server
	limit := int(ptr.Deref(s.Spec.RevisionHistoryLimit, v1alpha1.DefaultRevisionHistoryLimit))
	inUse := map[string]bool{st.update.Name: true, st.target: true}
	for _, p := range st.pods {
		inUse[p.Labels[v1alpha1.LabelRevision]] = true
	}
	var old []*appsv1.ControllerRevision
	for _, r := range st.revisions {
		if !inUse[r.Name] {
			old = append(old, r)
		}
	}
	for i := 0; i < len(old)-limit; i++ {
		err := c.kube.AppsV1().ControllerRevisions(s.Namespace).Delete(ctx, old[i].Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete old revision %s: %w", old[i].Name, err)
		}
	}
	return nil
}

// tracker is what the controller remembers between syncs and cannot read
// from the cluster: pods it created that the cache does not show yet, and
// instances it is recreating and why.
type tracker struct {
	mu         sync.Mutex
	created    map[string]time.Time // namespace/pod
	recreating map[string]string    // namespace/instance -> why
}

func newTracker() *tracker {
	return &tracker{created: map[string]time.Time{}, recreating: map[string]string{}}
}

// expectCreated notes a pod created now.
func (t *tracker) expectCreated(key string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.created[key] = now
}

// pending says whether a pod missing from the cache was created recently.
func (t *tracker) pending(key string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.created[key]
	if ok && now.Sub(at) > time.Minute {
		delete(t.created, key)
		return false
	}
	return ok
}

// observed forgets a pod the cache now shows.
func (t *tracker) observed(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.created, key)
}

func (t *tracker) setRecreating(key, why string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.recreating[key] = why
}

func (t *tracker) recreatingWhy(key string) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	why, ok := t.recreating[key]
	return why, ok
}

func (t *tracker) doneRecreating(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.recreating, key)
}

// forget drops what is known of a server's pods and instances.
func (t *tracker) forget(serverKey string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	prefix := serverKey + "-"
	for k := range t.created {
		if len(k) > len(prefix) && k[:len(prefix)] == prefix {
			delete(t.created, k)
		}
	}
	for k := range t.recreating {
		if len(k) > len(prefix) && k[:len(prefix)] == prefix {
			delete(t.recreating, k)
		}
	}
}

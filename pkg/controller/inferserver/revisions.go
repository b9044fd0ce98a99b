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
	revs := revision.OwnedBy(labelled[*appsv1.ControllerRevision](c.children.revisions, s), string(s.UID))
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
			// The first revision comes with the server: the events of
			// the instances it creates name it, and one event fewer for
			// every server created keeps a burst of creations from
			// costing the cluster an Event write each for nothing new.
			if len(revs) > 0 {
				c.recorder.Eventf(s, corev1.EventTypeNormal, ReasonRevisionCreated, "Created revision %d (%s)", created.Revision, created.Name)
			}
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
	limit := int(*s.Spec.RevisionHistoryLimit)
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
// from the cluster, per server (namespace/name): pods it created that the
// cache does not show yet, and instances it is recreating and why. Keying
// by server makes forgetting one server exact: "ns/llama" and
// "ns/llama-2" are different entries.
type tracker struct {
	mu      sync.Mutex
	servers map[string]*serverMemory
	// seen is when each NPU fault (node/chip/level) was first and last seen.
	seen map[string]seenFault
}

// serverMemory is what the tracker holds for one server.
type serverMemory struct {
	created    map[string]time.Time // pod name -> when it was created
	recreating map[string]string    // instance name -> why
	// surge is what was decided of the surge of the last rollout that
	// asked; nil before.
	surge *surgeDecision
}

// faultSeen is when the controller first saw a fault (node/chip/level)
// that the device plugin gave no time for: now the first time it is
// asked, or when it was not asked for faultForgetAfter (the fault is
// taken for gone, and a new one).
func (t *tracker) faultSeen(key string, now time.Time) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.seen == nil {
		t.seen = map[string]seenFault{}
	}
	for k, f := range t.seen {
		if now.Sub(f.last) > faultForgetAfter {
			delete(t.seen, k)
		}
	}
	f, ok := t.seen[key]
	if !ok {
		f.first = now
	}
	f.last = now
	t.seen[key] = f
	return f.first
}

// faultForgetAfter is how long a fault the controller no longer asks about
// is remembered.
const faultForgetAfter = 5 * time.Minute

// seenFault is when a fault was first and last seen.
type seenFault struct{ first, last time.Time }

func newTracker() *tracker {
	return &tracker{servers: map[string]*serverMemory{}}
}

// server returns the memory of a server, made on first use; t.mu is held.
func (t *tracker) server(key string) *serverMemory {
	m := t.servers[key]
	if m == nil {
		m = &serverMemory{created: map[string]time.Time{}, recreating: map[string]string{}}
		t.servers[key] = m
	}
	return m
}

// expectCreated notes a pod of the server created now.
func (t *tracker) expectCreated(serverKey, pod string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.server(serverKey).created[pod] = now
}

// pending says whether a pod missing from the cache was created recently.
func (t *tracker) pending(serverKey, pod string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.servers[serverKey]
	if m == nil {
		return false
	}
	at, ok := m.created[pod]
	if ok && now.Sub(at) > time.Minute {
		delete(m.created, pod)
		return false
	}
	return ok
}

// observed forgets a pod the cache now shows.
func (t *tracker) observed(serverKey, pod string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if m := t.servers[serverKey]; m != nil {
		delete(m.created, pod)
	}
}

func (t *tracker) setRecreating(serverKey, instance, why string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.server(serverKey).recreating[instance] = why
}

func (t *tracker) recreatingWhy(serverKey, instance string) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.servers[serverKey]
	if m == nil {
		return "", false
	}
	why, ok := m.recreating[instance]
	return why, ok
}

func (t *tracker) doneRecreating(serverKey, instance string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if m := t.servers[serverKey]; m != nil {
		delete(m.recreating, instance)
	}
}

// surge is what was decided of the surge of the server's last rollout.
func (t *tracker) surge(serverKey string) (surgeDecision, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.servers[serverKey]
	if m == nil || m.surge == nil {
		return surgeDecision{}, false
	}
	return *m.surge, true
}

func (t *tracker) setSurge(serverKey string, d surgeDecision) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.server(serverKey).surge = &d
}

// forget drops everything known of one server, and of no other.
func (t *tracker) forget(serverKey string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.servers, serverKey)
}

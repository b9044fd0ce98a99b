package inferserver

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/revision"
)

// instance is one cross-node instance as observed.
type instance struct {
	name     string
	index    int
	revision string
	// pods by rank; a missing rank is nil.
	pods        []*corev1.Pod
	terminating bool // every pod present is being deleted
	ready       bool
	broken      string // why the instance must be recreated
}

func (in *instance) present() []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range in.pods {
		if p != nil {
			out = append(out, p)
		}
	}
	return out
}

// observeInstances groups the server's pods by instance and judges each.
func (c *Controller) observeInstances(s *v1alpha1.InferServer, pods []*corev1.Pod) (map[string]*instance, []*instance) {
	n := int(nodesPerInstance(s))
	byName := map[string]*instance{}
	for _, p := range pods {
		name := p.Labels[v1alpha1.LabelInstance]
		idx, ok := instanceIndex(s.Name, name)
		if !ok {
			continue
		}
		in := byName[name]
		if in == nil {
			in = &instance{name: name, index: idx, pods: make([]*corev1.Pod, n)}
			byName[name] = in
		}
		rank, err := strconv.Atoi(p.Labels[v1alpha1.LabelRank])
		if err != nil || rank < 0 || rank >= n {
			continue
		}
		in.pods[rank] = p
		c.track.observed(p.Namespace + "/" + p.Name)
	}
	now := c.now()
	var live []*instance
	for _, in := range byName {
		present := in.present()
		deleting := 0
		for _, p := range present {
			if p.DeletionTimestamp != nil {
				deleting++
			}
		}
		if deleting == len(present) {
			in.terminating = true
			continue
		}
		in.revision = present[0].Labels[v1alpha1.LabelRevision]
		in.ready = true
		running := false
		for rank, p := range in.pods {
			if p == nil {
				in.ready = false
				continue
			}
			if p.Status.Phase == corev1.PodRunning {
				running = true
			}
			if !podReady(p) {
				in.ready = false
			}
			switch {
			case in.broken != "":
			case p.DeletionTimestamp != nil:
				in.broken = fmt.Sprintf("pod %s (rank %d) was deleted", p.Name, rank)
			case isTerminal(p):
				in.broken = fmt.Sprintf("pod %s (rank %d) %s", p.Name, rank, failureOf(s, p))
			}
		}
		if in.broken == "" && running {
			for rank, p := range in.pods {
				podKey := s.Namespace + "/" + in.name + "-" + strconv.Itoa(rank)
				if p == nil && !c.track.pending(podKey, now) {
					in.broken = fmt.Sprintf("pod %s-%d (rank %d) is gone", in.name, rank, rank)
					break
				}
			}
		}
		live = append(live, in)
	}
	sort.Slice(live, func(i, j int) bool { return live[i].index < live[j].index })
	return byName, live
}

// failureOf describes how a terminal pod ended.
func failureOf(s *v1alpha1.InferServer, p *corev1.Pod) string {
	if cs := serverContainer(p); cs != nil && cs.State.Terminated != nil {
		t := cs.State.Terminated
		return fmt.Sprintf("failed: %s, exit code %d%s", t.Reason, t.ExitCode, startupNote(s, cs, t))
	}
	if p.Status.Reason != "" {
		return fmt.Sprintf("failed: %s: %s", p.Status.Reason, p.Status.Message)
	}
	return "ended (" + string(p.Status.Phase) + ")"
}

// syncInstances runs a cross-node InferServer: instances of
// nodesPerInstance pods each, rolled out instance by instance.
func (c *Controller) syncInstances(ctx context.Context, st *syncState) error {
	s := st.server
	all, err := c.pods.Pods(s.Namespace).List(serverSelector(s))
	if err != nil {
		return err
	}
	pods := owned(s, all)
	st.pods = pods
	byName, live := c.observeInstances(s, pods)

	// A broken instance goes as a whole; it comes back under the same name
	// once its pods are gone.
	var healthy []*instance
	for _, in := range live {
		if in.broken == "" {
			healthy = append(healthy, in)
			continue
		}
		why := in.broken
		c.recorder.Eventf(s, corev1.EventTypeWarning, ReasonInstanceFailed, "Recreating instance %s: %s", in.name, why)
		c.track.setRecreating(s.Namespace+"/"+in.name, why)
		st.recreated = append(st.recreated, in.name)
		if err := c.deleteInstance(ctx, s, in); err != nil {
			return err
		}
		in.terminating = true
	}

	want := int(replicas(s))
	surge, unavailable, err := resolveBounds(s)
	if err != nil {
		return err
	}
	// Paused midway, new instances (scaling) get the newest revision the
	// instances already run, made from that revision's template.
	tmpl := s
	if s.Spec.Paused {
		if rev := c.newestRunning(st, healthy); rev != nil && rev.Name != st.target {
			if tmpl, err = serverAt(st, rev.Name); err != nil {
				return err
			}
			st.target = rev.Name
		}
	}
	var fresh, stale []*instance
	for _, in := range healthy {
		if in.revision == st.target {
			fresh = append(fresh, in)
		} else {
			stale = append(stale, in)
		}
	}
	readyCount := 0
	for _, in := range healthy {
		if in.ready {
			readyCount++
		}
	}
	toCreate := 0
	var toDelete []*instance
	switch {
	case s.Spec.Paused:
		if len(healthy) < want {
			toCreate = want - len(healthy)
		}
		toDelete = pickForDeletion(append(append([]*instance{}, stale...), fresh...), len(healthy)-want)
	case s.Spec.Strategy.Type == v1alpha1.RecreateInferServerStrategyType:
		if len(stale) > 0 {
			toDelete = stale
			break
		}
		if oldPodsRemain(byName, st.target) {
			st.requeueAfter(2 * time.Second)
			break
		}
		toCreate = max(0, want-len(fresh))
		toDelete = pickForDeletion(fresh, len(fresh)-want)
	default:
		total := len(healthy)
		if len(fresh) < want {
			toCreate = max(0, min(want-len(fresh), want+int(surge)-total))
		}
		// Instances above the count go first, the unready before the ready.
		minAvailable := want - int(unavailable)
		freshUnavailable := 0
		for _, in := range fresh {
			if !in.ready {
				freshUnavailable++
			}
		}
		budget := total - minAvailable - freshUnavailable
		available := readyCount
		for _, in := range pickForDeletion(stale, len(stale)) {
			if budget <= 0 {
				break
			}
			if in.ready {
				if available-1 < minAvailable {
					continue
				}
				available--
			}
			toDelete = append(toDelete, in)
			budget--
		}
		if extra := len(fresh) - want; extra > 0 {
			toDelete = append(toDelete, pickForDeletion(fresh, extra)...)
		}
	}

	gone := map[string]bool{}
	for _, in := range toDelete {
		c.recorder.Eventf(s, corev1.EventTypeNormal, ReasonInstanceDeleted, "Deleted instance %s (revision %s)", in.name, in.revision)
		if err := c.deleteInstance(ctx, s, in); err != nil {
			return err
		}
		gone[in.name] = true
	}
	var created []*instance
	if toCreate > 0 {
		// index -> whether a live instance holds it; a held index whose
		// pods are all terminating is not reused until they are gone.
		used := map[int]bool{}
		for _, in := range byName {
			used[in.index] = !in.terminating && !gone[in.name]
		}
		for idx := 0; toCreate > 0; idx++ {
			liveAt, exists := used[idx]
			if exists && liveAt {
				continue
			}
			if exists {
				// Its previous pods are still terminating: wait for the name.
				st.requeueAfter(2 * time.Second)
				break
			}
			in, err := c.createInstance(ctx, tmpl, st.target, idx)
			if err != nil {
				return err
			}
			created = append(created, in)
			toCreate--
		}
	}

	// Complete instances still being created (a pod creation failed), and
	// fill the ranktables of instances whose pods are all up.
	for _, in := range healthy {
		if gone[in.name] {
			continue
		}
		for rank, p := range in.pods {
			if p != nil || c.track.pending(s.Namespace+"/"+in.name+"-"+strconv.Itoa(rank), c.now()) {
				continue
			}
			at, err := serverAt(st, in.revision)
			if err != nil {
				return err
			}
			pod := crossNodePod(at, in.revision, in.name, rank)
			created, err := c.kube.CoreV1().Pods(s.Namespace).Create(ctx, pod, metav1.CreateOptions{FieldManager: FieldManager})
			if err != nil && !apierrors.IsAlreadyExists(err) {
				c.recorder.Eventf(s, corev1.EventTypeWarning, ReasonFailedCreate, "Creating pod %s of instance %s: %v", pod.Name, in.name, err)
				return fmt.Errorf("create pod %s: %w", pod.Name, err)
			}
			if err == nil {
				c.track.expectCreated(s.Namespace+"/"+pod.Name, c.now())
				in.pods[rank] = created
			}
		}
		if err := c.syncRanktable(ctx, s, in); err != nil {
			return err
		}
	}
	c.instanceStatuses(st, healthy, gone, created, byName)
	return nil
}

// serverAt is the server with the template of revision name (the server
// itself for the update revision).
func serverAt(st *syncState, name string) (*v1alpha1.InferServer, error) {
	if name == st.update.Name {
		return st.server, nil
	}
	for _, r := range st.revisions {
		if r.Name == name {
			spec, err := revision.Decode(r)
			if err != nil {
				return nil, err
			}
			at := st.server.DeepCopy()
			revision.Restore(&at.Spec, spec)
			return at, nil
		}
	}
	return nil, fmt.Errorf("revision %s is gone", name)
}

// newestRunning is the revision with the highest number that a live
// instance runs, or nil.
func (c *Controller) newestRunning(st *syncState, live []*instance) *appsv1.ControllerRevision {
	running := map[string]bool{}
	for _, in := range live {
		running[in.revision] = true
	}
	var newest *appsv1.ControllerRevision
	for _, r := range st.revisions {
		if running[r.Name] && (newest == nil || r.Revision > newest.Revision) {
			newest = r
		}
	}
	return newest
}

// oldPodsRemain says whether pods of another revision still exist.
func oldPodsRemain(byName map[string]*instance, target string) bool {
	for _, in := range byName {
		for _, p := range in.present() {
			if p.Labels[v1alpha1.LabelRevision] != target {
				return true
			}
		}
	}
	return false
}

// pickForDeletion chooses n instances to remove: unready ones first, then
// the highest index.
func pickForDeletion(ins []*instance, n int) []*instance {
	if n <= 0 {
		return nil
	}
	cp := append([]*instance{}, ins...)
	sort.SliceStable(cp, func(i, j int) bool {
		if cp[i].ready != cp[j].ready {
			return !cp[i].ready
		}
		return cp[i].index > cp[j].index
	})
	if n > len(cp) {
		n = len(cp)
	}
	return cp[:n]
}

// deleteInstance deletes an instance's pods and its ranktable.
func (c *Controller) deleteInstance(ctx context.Context, s *v1alpha1.InferServer, in *instance) error {
	for _, p := range in.present() {
		if p.DeletionTimestamp != nil {
			continue
		}
		err := c.kube.CoreV1().Pods(s.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			c.recorder.Eventf(s, corev1.EventTypeWarning, ReasonFailedDelete, "Deleting pod %s: %v", p.Name, err)
			return fmt.Errorf("delete pod %s: %w", p.Name, err)
		}
	}
	err := c.kube.CoreV1().ConfigMaps(s.Namespace).Delete(ctx, ranktableName(in.name), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete ranktable %s: %w", ranktableName(in.name), err)
	}
	return nil
}

// createInstance makes a fresh ranktable, then the instance's pods.
func (c *Controller) createInstance(ctx context.Context, s *v1alpha1.InferServer, rev string, idx int) (*instance, error) {
	name := fmt.Sprintf("%s-%d", s.Name, idx)
	cm := initialRanktable(s, name)
	if _, err := c.kube.CoreV1().ConfigMaps(s.Namespace).Create(ctx, cm, metav1.CreateOptions{FieldManager: FieldManager}); err != nil {
		if !apierrors.IsAlreadyExists(err) {
			c.recorder.Eventf(s, corev1.EventTypeWarning, ReasonFailedCreate, "Creating ranktable %s: %v", cm.Name, err)
			return nil, fmt.Errorf("create ranktable %s: %w", cm.Name, err)
		}
		// Left from an earlier instance of that name: start it afresh.
		if _, err := c.kube.CoreV1().ConfigMaps(s.Namespace).Update(ctx, cm, metav1.UpdateOptions{FieldManager: FieldManager}); err != nil {
			return nil, fmt.Errorf("reset ranktable %s: %w", cm.Name, err)
		}
	}
	n := int(nodesPerInstance(s))
	in := &instance{name: name, index: idx, revision: rev, pods: make([]*corev1.Pod, n)}
	for rank := 0; rank < n; rank++ {
		pod := crossNodePod(s, rev, name, rank)
		created, err := c.kube.CoreV1().Pods(s.Namespace).Create(ctx, pod, metav1.CreateOptions{FieldManager: FieldManager})
		if apierrors.IsAlreadyExists(err) {
			continue
		}
		if err != nil {
			c.recorder.Eventf(s, corev1.EventTypeWarning, ReasonFailedCreate, "Creating pod %s of instance %s: %v", pod.Name, name, err)
			return nil, fmt.Errorf("create pod %s: %w", pod.Name, err)
		}
		c.track.expectCreated(s.Namespace+"/"+pod.Name, c.now())
		in.pods[rank] = created
	}
	c.recorder.Eventf(s, corev1.EventTypeNormal, ReasonInstanceCreated, "Created instance %s (revision %s): %d pods on distinct nodes", name, rev, n)
	return in, nil
}

// syncRanktable completes an instance's ranktable once every pod has its
// IP and NPUs, and resets one written for other pods.
func (c *Controller) syncRanktable(ctx context.Context, s *v1alpha1.InferServer, in *instance) error {
	cm, err := c.configMaps.ConfigMaps(s.Namespace).Get(ranktableName(in.name))
	if apierrors.IsNotFound(err) {
		if _, err := c.kube.CoreV1().ConfigMaps(s.Namespace).Create(ctx, initialRanktable(s, in.name), metav1.CreateOptions{FieldManager: FieldManager}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create ranktable %s: %w", ranktableName(in.name), err)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if !c.fill {
		return nil
	}
	rt, perr := parseRanktable(cm)
	pods := in.present()
	if len(pods) != len(in.pods) {
		return nil
	}
	uids := podUIDs(pods)
	if perr == nil && rt.Status == RanktableCompleted {
		filledFor, ours := cm.Annotations[annotationRanktablePods]
		if !ours || filledFor == uids {
			// Written by an Ascend Operator, or already ours for these pods.
			return nil
		}
	}
	full, err := buildRanktable(s, pods)
	if err != nil {
		// Not yet: the pods' updates queue the server again.
		return nil
	}
	data, err := json.Marshal(full)
	if err != nil {
		return err
	}
	cp := cm.DeepCopy()
	cp.Data = map[string]string{ranktableKey: string(data)}
	if cp.Annotations == nil {
		cp.Annotations = map[string]string{}
	}
	cp.Annotations[annotationRanktablePods] = uids
	if _, err := c.kube.CoreV1().ConfigMaps(s.Namespace).Update(ctx, cp, metav1.UpdateOptions{FieldManager: FieldManager}); err != nil {
		if apierrors.IsConflict(err) {
			return nil
		}
		return fmt.Errorf("complete ranktable %s: %w", cm.Name, err)
	}
	var ips []string
	for _, srv := range full.ServerList {
		ips = append(ips, srv.ContainerIP)
	}
	c.recorder.Eventf(s, corev1.EventTypeNormal, ReasonRanktableCompleted, "Ranktable of instance %s completed: %s servers (%s), master %s",
		in.name, full.ServerCount, strings.Join(ips, ", "), pods[0].Name)
	return nil
}

// instanceStatuses reports the instances, including those being recreated.
func (c *Controller) instanceStatuses(st *syncState, healthy []*instance, gone map[string]bool, created []*instance, byName map[string]*instance) {
	s := st.server
	prev := map[string]v1alpha1.InstanceStatus{}
	for _, is := range s.Status.Instances {
		prev[is.Name] = is
	}
	recreated := map[string]bool{}
	for _, n := range st.recreated {
		recreated[n] = true
	}
	seen := map[string]bool{}
	add := func(name, rev string, pods []*corev1.Pod, ready bool) {
		seen[name] = true
		is := v1alpha1.InstanceStatus{Name: name, Revision: rev, Ready: ready, Master: name + "-0"}
		is.Recreations = prev[name].Recreations
		if recreated[name] {
			is.Recreations++
		}
		key := s.Namespace + "/" + name
		if why, ok := c.track.recreatingWhy(key); ok {
			if ready {
				c.track.doneRecreating(key)
			} else {
				is.Message = "recreating: " + why
			}
		}
		if cm, err := c.configMaps.ConfigMaps(s.Namespace).Get(ranktableName(name)); err == nil {
			if rt, err := parseRanktable(cm); err == nil {
				is.Ranktable = rt.Status
			}
		}
		for _, p := range pods {
			if p == nil {
				continue
			}
			is.Pods = append(is.Pods, c.podStatus(s, p))
			c.notePodProblem(s, st, p)
		}
		if is.Message == "" && !ready {
			switch {
			case is.Ranktable != RanktableCompleted:
				is.Message = "waiting for the ranktable"
			default:
				is.Message = fmt.Sprintf("%d of %d pods ready", countReady(pods), nodesPerInstance(s))
			}
		}
		st.instances = append(st.instances, is)
		st.total++
		if rev == st.update.Name {
			st.updated++
		}
		if ready {
			st.ready++
		}
	}
	for _, in := range healthy {
		if gone[in.name] {
			continue
		}
		add(in.name, in.revision, in.pods, in.ready)
	}
	for _, in := range created {
		if !seen[in.name] {
			add(in.name, in.revision, in.pods, false)
		}
	}
	// Instances being recreated stay listed, with why, until they are back.
	for name, in := range byName {
		if seen[name] || gone[name] {
			continue
		}
		if why, ok := c.track.recreatingWhy(s.Namespace + "/" + name); ok {
			is := v1alpha1.InstanceStatus{Name: name, Revision: in.revision, Master: name + "-0",
				Recreations: prev[name].Recreations, Message: "recreating: " + why}
			if recreated[name] {
				is.Recreations++
			}
			for _, p := range in.present() {
				is.Pods = append(is.Pods, c.podStatus(s, p))
			}
			st.instances = append(st.instances, is)
		}
	}
	sort.Slice(st.instances, func(i, j int) bool {
		a, _ := instanceIndex(s.Name, st.instances[i].Name)
		b, _ := instanceIndex(s.Name, st.instances[j].Name)
		return a < b
	})
	if len(st.recreated) > 0 && st.degradedReason == "" {
		st.degradedReason = ReasonInstanceRecreating
		st.degradedMessage = fmt.Sprintf("recreating instance %s", strings.Join(st.recreated, ", "))
	}
	for _, is := range st.instances {
		if strings.HasPrefix(is.Message, "recreating: ") && st.degradedReason == "" {
			st.degradedReason = ReasonInstanceRecreating
			st.degradedMessage = fmt.Sprintf("instance %s is %s", is.Name, is.Message)
		}
	}
}

func countReady(pods []*corev1.Pod) int {
	n := 0
	for _, p := range pods {
		if p != nil && podReady(p) {
			n++
		}
	}
	return n
}

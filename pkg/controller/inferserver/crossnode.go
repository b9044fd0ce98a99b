package inferserver

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/ascend"
	"mindie.io/deployer/pkg/podstatus"
	"mindie.io/deployer/pkg/revision"
)

// instance is one cross-node instance as observed: what the planner sees
// of it, and its pods.
type instance struct {
	instanceView
	// pods by rank; a missing rank is nil.
	pods []*corev1.Pod
	// ranktable is the state of the ranktable this sync wrote, which the
	// cache does not show yet; empty when it wrote none.
	ranktable string
	// members of a Prefill/Decode group, as the role assigner last saw them.
	members []v1alpha1.GroupMemberStatus
	// shape is the server as of the instance's revision: a PD group's
	// members (how many of each role) are those of its revision, which a
	// rollout may change.
	shape *v1alpha1.InferServer
	// failed are the members of a PD group that must be recreated, alone:
	// a failed member does not take its group down.
	failed []memberFailure
}

// memberFailure is a PD group's member to recreate, and why.
type memberFailure struct {
	member member
	why    string
}

// failMember records why a member of a PD group must be recreated (the
// first reason found).
func (in *instance) failMember(m member, why string) {
	for _, f := range in.failed {
		if f.member.ordinal == m.ordinal {
			return
		}
	}
	in.failed = append(in.failed, memberFailure{member: m, why: why})
}

// memberPods are the present pods of a member of a PD group.
func (in *instance) memberPods(m member) []*corev1.Pod {
	var out []*corev1.Pod
	for r := m.firstRank; r < m.firstRank+m.nodes && r < len(in.pods); r++ {
		if in.pods[r] != nil {
			out = append(out, in.pods[r])
		}
	}
	return out
}

// memberSettling says whether a member of a PD group has a pod being
// deleted, or is being recreated by this sync: its missing pods are made
// only once all of its old ones are gone (a cross-node member comes back
// whole).
func (in *instance) memberSettling(m member) bool {
	for _, f := range in.failed {
		if f.member.ordinal == m.ordinal {
			return true
		}
	}
	for _, p := range in.memberPods(m) {
		if p.DeletionTimestamp != nil {
			return true
		}
	}
	return false
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

// serverKey is the namespace/name of a server, its work queue key.
func serverKey(s *v1alpha1.InferServer) string { return s.Namespace + "/" + s.Name }

// observeInstances groups the server's pods by instance and judges each.
// It returns every instance, those whose pods are all terminating
// included, by index. shapeOf is the server as of a revision (nil: s).
func (c *Controller) observeInstances(s *v1alpha1.InferServer, pods []*corev1.Pod, shapeOf func(revision string) *v1alpha1.InferServer) []*instance {
	key := serverKey(s)
	byName := map[string]*instance{}
	for _, p := range pods {
		name := p.Labels[v1alpha1.LabelInstance]
		idx, ok := instanceIndex(s.Name, name)
		if !ok {
			continue
		}
		in := byName[name]
		if in == nil {
			shape := s
			if shapeOf != nil {
				shape = shapeOf(p.Labels[v1alpha1.LabelRevision])
			}
			in = &instance{instanceView: instanceView{name: name, index: idx}, pods: make([]*corev1.Pod, podsPerInstance(shape)), shape: shape}
			byName[name] = in
		}
		rank, err := strconv.Atoi(p.Labels[v1alpha1.LabelRank])
		if err != nil || rank < 0 || rank >= len(in.pods) {
			continue
		}
		in.pods[rank] = p
		c.track.observed(key, p.Name)
	}
	now := c.now()
	all := make([]*instance, 0, len(byName))
	for _, in := range byName {
		all = append(all, in)
		present := in.present()
		if len(present) == 0 {
			// Only pods of ranks beyond nodesPerInstance: nothing to judge.
			in.terminating = true
			continue
		}
		in.revision = present[0].Labels[v1alpha1.LabelRevision]
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
			if !c.podServes(s, p) {
				in.ready = false
			}
			var why string
			switch {
			case p.DeletionTimestamp != nil:
				why = fmt.Sprintf("pod %s (rank %d) was deleted", p.Name, rank)
			case isTerminal(p):
				why = fmt.Sprintf("pod %s (rank %d) %s", p.Name, rank, failureOf(s, p))
			}
			in.fail(rank, why)
		}
		if running {
			for rank, p := range in.pods {
				if p == nil && !c.track.pending(key, podName(in.shape, in.name, rank), now) {
					in.fail(rank, fmt.Sprintf("pod %s (rank %d) is gone", podName(in.shape, in.name, rank), rank))
				}
			}
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].index < all[j].index })
	return all
}

// fail records why the pod of a rank failed (nothing when why is empty):
// the instance is broken, or for a PD group, the member the rank belongs
// to.
func (in *instance) fail(rank int, why string) {
	if why == "" {
		return
	}
	if !isPD(in.shape) {
		if in.broken == "" {
			in.broken = why
		}
		return
	}
	m, _, ok := memberOfRank(in.shape, rank)
	if !ok {
		return
	}
	if in.pods[rank] == nil {
		// Gone: a failure only while the member's other pods stay (they
		// must go too); a member with no pod left is simply made again.
		alive := false
		for _, q := range in.memberPods(m) {
			alive = alive || q.DeletionTimestamp == nil
		}
		if !alive {
			return
		}
	}
	in.failMember(m, why)
}

// failureOf describes how a terminal pod ended.
func failureOf(s *v1alpha1.InferServer, p *corev1.Pod) string {
	if cs := podstatus.Container(p, containerName); cs != nil && cs.State.Terminated != nil {
		t := cs.State.Terminated
		return fmt.Sprintf("failed: %s, exit code %d%s", t.Reason, t.ExitCode, startupNote(s, cs, t))
	}
	if p.Status.Reason != "" {
		return fmt.Sprintf("failed: %s: %s", p.Status.Reason, p.Status.Message)
	}
	return "ended (" + string(p.Status.Phase) + ")"
}

// syncInstances runs a cross-node InferServer: instances of
// nodesPerInstance pods each, rolled out instance by instance. It observes
// the instances, plans (planInstances) and carries the plan out.
func (c *Controller) syncInstances(ctx context.Context, st *syncState) error {
	s := st.server
	st.pods = owned(s, labelled[*corev1.Pod](c.children.pods, s))
	if err := c.handleFaults(ctx, st, st.pods); err != nil {
		return err
	}
	shapes := map[string]*v1alpha1.InferServer{}
	observed := c.observeInstances(s, st.pods, func(rev string) *v1alpha1.InferServer {
		if at, ok := shapes[rev]; ok {
			return at
		}
		at, err := serverAt(st, rev)
		if err != nil {
			// A revision gone from the history: judged as the server is.
			at = s
		}
		shapes[rev] = at
		return at
	})
	if isPD(s) {
		// A group is ready for the planner only once its members serve
		// their roles linked to their peers. The assigner queues the
		// server again when what it sees changes.
		c.assignRoles(s, observed)
	}
	numbers := map[string]int64{}
	for _, r := range st.revisions {
		numbers[r.Name] = r.Revision
	}
	goal, err := rolloutGoalOf(s, st.update.Name, numbers)
	if err != nil {
		return err
	}
	views := make([]instanceView, len(observed))
	for i, in := range observed {
		views[i] = in.instanceView
	}
	plan, err := c.planWithinNPUs(ctx, st, goal, views)
	if err != nil {
		return err
	}
	return c.carryOut(ctx, st, observed, plan)
}

// carryOut does what the plan says to the observed instances, completes
// instances whose pods are missing and fills their ranktables, then
// reports the instances.
func (c *Controller) carryOut(ctx context.Context, st *syncState, observed []*instance, plan instancePlan) error {
	s := st.server
	key := serverKey(s)
	byName := map[string]*instance{}
	for _, in := range observed {
		byName[in.name] = in
	}
	// A broken instance goes as a whole; it comes back under the same name
	// once its pods are gone.
	for _, v := range plan.recreate {
		in := byName[v.name]
		c.recorder.Eventf(s, corev1.EventTypeWarning, ReasonInstanceFailed, "Recreating instance %s: %s", in.name, in.broken)
		c.track.setRecreating(key, in.name, in.broken)
		st.recreated = append(st.recreated, in.name)
		if err := c.deleteInstance(ctx, s, in); err != nil {
			return err
		}
	}
	gone := map[string]bool{}
	for _, v := range plan.remove {
		gone[v.name] = true
	}
	// A failed member of a PD group goes alone, the rest of its group
	// serving on; its missing pods are made again once all are gone.
	for _, in := range observed {
		if in.terminating || gone[in.name] {
			continue
		}
		if err := c.recreateMembers(ctx, st, in); err != nil {
			return err
		}
	}
	for _, v := range plan.remove {
		in := byName[v.name]
		c.recorder.Eventf(s, corev1.EventTypeNormal, ReasonInstanceDeleted, "Deleted instance %s (revision %s)", in.name, in.revision)
		if err := c.deleteInstance(ctx, s, in); err != nil {
			return err
		}
		gone[in.name] = true
	}
	st.target = plan.target
	var created []*instance
	if len(plan.create) > 0 {
		tmpl, err := serverAt(st, plan.target)
		if err != nil {
			return err
		}
		for _, idx := range plan.create {
			in, err := c.createInstance(ctx, tmpl, plan.target, idx)
			if err != nil {
				return err
			}
			created = append(created, in)
		}
	}
	if plan.wait {
		st.requeueAfter(2 * time.Second)
	}

	// Complete instances still being created (a pod creation failed), and
	// fill the ranktables of instances whose pods are all up.
	var healthy []*instance
	for _, in := range observed {
		if !in.terminating && in.broken == "" {
			healthy = append(healthy, in)
		}
	}
	for _, in := range healthy {
		if gone[in.name] {
			continue
		}
		if isPD(s) {
			// Before a member's missing pods are made again: its
			// ranktable, completed for the pods it replaces, is reset.
			if err := c.syncMemberRanktables(ctx, s, in); err != nil {
				return err
			}
		}
		for rank, p := range in.pods {
			if p != nil || c.track.pending(key, podName(in.shape, in.name, rank), c.now()) {
				continue
			}
			if m, _, ok := memberOfRank(in.shape, rank); ok && isPD(in.shape) && in.memberSettling(m) {
				continue
			}
			at, err := serverAt(st, in.revision)
			if err != nil {
				return err
			}
			pod := crossNodePod(at, in.revision, in.name, rank)
			made, err := c.kube.CoreV1().Pods(s.Namespace).Create(ctx, pod, metav1.CreateOptions{FieldManager: FieldManager})
			if err != nil && !apierrors.IsAlreadyExists(err) {
				c.recorder.Eventf(s, corev1.EventTypeWarning, ReasonFailedCreate, "Creating pod %s of instance %s: %v", pod.Name, in.name, err)
				return fmt.Errorf("create pod %s: %w", pod.Name, err)
			}
			if err == nil {
				c.track.expectCreated(key, pod.Name, c.now())
				in.pods[rank] = made
			}
		}
		if isPD(s) {
			continue
		}
		if err := c.syncRanktable(ctx, s, in); err != nil {
			return err
		}
	}
	c.instanceStatuses(st, healthy, gone, created, observed)
	if isPD(s) {
		return c.syncGlobalRanktable(ctx, s, healthy, gone, created)
	}
	return nil
}

// serverAt is the server with the template of revision name (the server
// itself for the update revision). A stored template is defaulted as the
// API server defaults what it decodes: it may predate a field.
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
			v1alpha1.SetObjectDefaults_InferServer(at)
			return at, nil
		}
	}
	return nil, fmt.Errorf("revision %s is gone", name)
}

// deletePods deletes the pods not being deleted yet, each only if it is
// still the pod observed (its UID).
func (c *Controller) deletePods(ctx context.Context, s *v1alpha1.InferServer, pods []*corev1.Pod) error {
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		err := c.kube.CoreV1().Pods(s.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			c.recorder.Eventf(s, corev1.EventTypeWarning, ReasonFailedDelete, "Deleting pod %s: %v", p.Name, err)
			return fmt.Errorf("delete pod %s: %w", p.Name, err)
		}
	}
	return nil
}

// deleteInstance deletes an instance's pods and its ranktable (a PD
// group's: its members' ranktables).
func (c *Controller) deleteInstance(ctx context.Context, s *v1alpha1.InferServer, in *instance) error {
	if err := c.deletePods(ctx, s, in.present()); err != nil {
		return err
	}
	if isPD(s) {
		return c.deleteMemberRanktables(ctx, s, in)
	}
	err := c.kube.CoreV1().ConfigMaps(s.Namespace).Delete(ctx, ranktableName(in.name), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete ranktable %s: %w", ranktableName(in.name), err)
	}
	return nil
}

// resetRanktable makes the fresh ranktable of a new cross-node instance.
func (c *Controller) resetRanktable(ctx context.Context, s *v1alpha1.InferServer, name string) error {
	cm := initialRanktable(s, name)
	if _, err := c.kube.CoreV1().ConfigMaps(s.Namespace).Create(ctx, cm, metav1.CreateOptions{FieldManager: FieldManager}); err != nil {
		if !apierrors.IsAlreadyExists(err) {
			c.recorder.Eventf(s, corev1.EventTypeWarning, ReasonFailedCreate, "Creating ranktable %s: %v", cm.Name, err)
			return fmt.Errorf("create ranktable %s: %w", cm.Name, err)
		}
		// Left from an earlier instance of that name: start it afresh.
		if _, err := c.kube.CoreV1().ConfigMaps(s.Namespace).Update(ctx, cm, metav1.UpdateOptions{FieldManager: FieldManager}); err != nil {
			return fmt.Errorf("reset ranktable %s: %w", cm.Name, err)
		}
	}
	return nil
}

// createInstance makes a fresh ranktable, then the instance's pods (for a
// PD server: fresh ranktables of the members of several nodes, then the
// group's members' pods).
func (c *Controller) createInstance(ctx context.Context, s *v1alpha1.InferServer, rev string, idx int) (*instance, error) {
	name := fmt.Sprintf("%s-%d", s.Name, idx)
	n := podsPerInstance(s)
	in := &instance{instanceView: instanceView{name: name, index: idx, revision: rev}, pods: make([]*corev1.Pod, n), shape: s}
	if !isPD(s) {
		if err := c.resetRanktable(ctx, s, name); err != nil {
			return nil, err
		}
		in.ranktable = ascend.RanktableInitializing
	} else {
		state, err := c.resetMemberRanktables(ctx, s, name)
		if err != nil {
			return nil, err
		}
		in.ranktable = state
	}
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
		c.track.expectCreated(serverKey(s), pod.Name, c.now())
		in.pods[rank] = created
	}
	if isPD(s) {
		c.recorder.Eventf(s, corev1.EventTypeNormal, ReasonInstanceCreated, "Created group %s (revision %s): %s", name, rev, groupShape(s))
	} else {
		c.recorder.Eventf(s, corev1.EventTypeNormal, ReasonInstanceCreated, "Created instance %s (revision %s): %d pods on distinct nodes", name, rev, n)
	}
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
		in.ranktable = ascend.RanktableInitializing
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
	if perr == nil && rt.Status == ascend.RanktableCompleted {
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
	cp := cm.DeepCopy()
	cp.Data = map[string]string{ascend.RanktableFile: ascend.FormatRanktable(full)}
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
	in.ranktable = ascend.RanktableCompleted
	var ips []string
	for _, srv := range full.ServerList {
		ips = append(ips, srv.ContainerIP)
	}
	c.recorder.Eventf(s, corev1.EventTypeNormal, ReasonRanktableCompleted, "Ranktable of instance %s completed: %s servers (%s), master %s",
		in.name, full.ServerCount, strings.Join(ips, ", "), pods[0].Name)
	return nil
}

// instanceStatuses reports the instances, including those being recreated.
func (c *Controller) instanceStatuses(st *syncState, healthy []*instance, gone map[string]bool, created []*instance, observed []*instance) {
	s := st.server
	key := serverKey(s)
	prev := map[string]v1alpha1.InstanceStatus{}
	for _, is := range s.Status.Instances {
		prev[is.Name] = is
	}
	recreated := map[string]bool{}
	for _, n := range st.recreated {
		recreated[n] = true
	}
	seen := map[string]bool{}
	add := func(in *instance, ready bool) {
		name, rev, pods := in.name, in.revision, in.pods
		seen[name] = true
		is := v1alpha1.InstanceStatus{Name: name, Revision: rev, Ready: ready, Master: podName(s, name, 0)}
		is.Recreations = prev[name].Recreations
		if recreated[name] {
			is.Recreations++
		}
		for _, g := range st.membersRecreated {
			if g == name {
				is.Recreations++
			}
		}
		is.Message = c.membersRecreating(key, in, ready)
		if why, ok := c.track.recreatingWhy(key, name); ok {
			if ready {
				c.track.doneRecreating(key, name)
			} else {
				is.Message = "recreating: " + why
			}
		}
		is.Ranktable = in.ranktable
		if isPD(s) {
			if in.members == nil {
				// Created by this sync: no member has a pod up yet.
				in.members = memberStatuses(in, nil, nil)
			}
			is.Members = in.members
			if ready && !prev[name].Ready {
				c.recorder.Eventf(s, corev1.EventTypeNormal, ReasonRolesLinked, "Group %s linked: %s", name, describeMembers(in.members))
			}
		} else if is.Ranktable == "" {
			if cm, err := c.configMaps.ConfigMaps(s.Namespace).Get(ranktableName(name)); err == nil {
				if rt, err := parseRanktable(cm); err == nil {
					is.Ranktable = rt.Status
				}
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
			case isPD(s) && countReady(pods) == len(pods):
				is.Message = groupWaiting(in.members)
			case !isPD(s) && is.Ranktable != ascend.RanktableCompleted:
				is.Message = "waiting for the ranktable"
			default:
				is.Message = fmt.Sprintf("%d of %d pods ready", countReady(pods), len(pods))
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
		add(in, in.ready)
	}
	for _, in := range created {
		if !seen[in.name] {
			add(in, false)
		}
	}
	// Instances being recreated stay listed, with why, until they are back.
	for _, in := range observed {
		name := in.name
		if seen[name] || gone[name] {
			continue
		}
		if why, ok := c.track.recreatingWhy(key, name); ok {
			is := v1alpha1.InstanceStatus{Name: name, Revision: in.revision, Master: podName(s, name, 0),
				Recreations: prev[name].Recreations, Message: "recreating: " + why}
			if recreated[name] {
				is.Recreations++
			}
			for _, p := range in.present() {
				is.Pods = append(is.Pods, c.podStatus(s, p))
			}
			st.instances = append(st.instances, is)
			seen[name] = true
		}
	}
	// So do those whose pods are all gone already, until they are made
	// again: their recreation count must not be lost in between.
	for _, was := range s.Status.Instances {
		name := was.Name
		if seen[name] || gone[name] {
			continue
		}
		if why, ok := c.track.recreatingWhy(key, name); ok {
			st.instances = append(st.instances, v1alpha1.InstanceStatus{Name: name, Revision: was.Revision, Master: was.Master,
				Recreations: was.Recreations, Message: "recreating: " + why})
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
	for _, is := range st.instances {
		if strings.HasPrefix(is.Message, "member ") && st.degradedReason == "" {
			st.degradedReason = ReasonRolesNotLinked
			st.degradedMessage = fmt.Sprintf("group %s: %s", is.Name, is.Message)
		}
	}
}

func countReady(pods []*corev1.Pod) int {
	n := 0
	for _, p := range pods {
		if p != nil && podstatus.Serving(p) {
			n++
		}
	}
	return n
}

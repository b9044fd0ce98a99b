package kubelet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/pkg/ascend"
)

// podState is the simulator's record of a pod it runs. Fields other than
// the immutable ones are guarded by Simulator.mu.
type podState struct {
	key       string
	uid       types.UID
	namespace string
	name      string
	node      string
	ip        string // the pod IP: the node's hostIP with hostNetwork
	hostIP    string // the node's
	hostNet   bool   // hostNetwork: ip is not the pool's
	chips     []int
	startTime metav1.Time

	ctx         context.Context
	cancel      context.CancelFunc
	wg          sync.WaitGroup
	terminating bool
	stopCtx     context.Context // bounds workload stops once terminating
	released    bool
	containers  []*containerState
	// phase is Succeeded or Failed once no container will run again, ""
	// before (the pod is Running).
	phase corev1.PodPhase

	kick       chan struct{}      // capacity 1: the pod's status changed
	stopWriter context.CancelFunc // ends the pod's status writer
}

type containerState struct {
	spec      corev1.Container
	running   bool
	startedAt metav1.Time
	started   bool
	ready     bool
	restarts  int32
	last      *corev1.ContainerStateTerminated // the previous run's end: lastState
	// terminated is the end of the last run once the container will not
	// run again (restartPolicy): its state.
	terminated *corev1.ContainerStateTerminated
	waiting    string        // reason when neither running nor terminated
	message    string        // of the waiting reason
	backoff    time.Duration // the next CrashLoopBackOff delay; 0: the base
	// createBackoff is the next delay before a container that could not
	// be created (a WaitingError: ErrImagePull, ...) is tried again; 0:
	// the base.
	createBackoff time.Duration
	log           *containerLog // of the current (or last) run, nil before the first
	prevLog       *containerLog // of the run before
	workload      Workload      // running, nil when not
}

func (s *Simulator) runPods(ctx context.Context) {
	factory := informers.NewSharedInformerFactoryWithOptions(s.cfg.Client, 0)
	podInformer := factory.Core().V1().Pods()
	queue := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	ours := func(obj any) bool {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		p, ok := obj.(*corev1.Pod)
		if !ok {
			return false
		}
		_, mine := s.nodes[p.Spec.NodeName] // the node set never changes
		return mine
	}
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			queue.Add(key)
		}
	}
	_, _ = podInformer.Informer().AddEventHandler(cache.FilteringResourceEventHandler{
		FilterFunc: ours,
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc:    enqueue,
			UpdateFunc: func(_, obj any) { enqueue(obj) },
			DeleteFunc: enqueue,
		},
	})
	lister := podInformer.Lister()
	s.mu.Lock()
	s.resync = func(node string) {
		s.resyncNode(node, func() []string {
			pods, _ := lister.List(labels.Everything())
			var keys []string
			for _, p := range pods {
				if p.Spec.NodeName == node {
					keys = append(keys, p.Namespace+"/"+p.Name)
				}
			}
			return keys
		}, queue.Add)
	}
	s.mu.Unlock()
	factory.Start(ctx.Done())
	go func() {
		<-ctx.Done()
		queue.ShutDown()
	}()
	if !cache.WaitForCacheSync(ctx.Done(), podInformer.Informer().HasSynced) {
		factory.Shutdown()
		s.stopAll()
		return
	}
	for {
		key, quit := queue.Get()
		if quit {
			break
		}
		if err := s.syncPod(ctx, key, lister); err != nil && !errors.Is(err, errNodeDown) && ctx.Err() == nil {
			s.logf("pod %s: %v (will retry)", key, err)
			queue.AddRateLimited(key)
		} else {
			queue.Forget(key)
		}
		queue.Done(key)
	}
	factory.Shutdown()
	s.stopAll()
	s.writers.Wait()
}

// stopAll stops every workload, leaving the pods in the API.
func (s *Simulator) stopAll() {
	s.mu.Lock()
	all := make([]*podState, 0, len(s.pods))
	for _, ps := range s.pods {
		all = append(all, ps)
	}
	s.mu.Unlock()
	for _, ps := range all {
		ps.cancel()
	}
	for _, ps := range all {
		ps.wg.Wait()
	}
}

func (s *Simulator) syncPod(ctx context.Context, key string, lister corelisters.PodLister) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pod, err := lister.Pods(ns).Get(name)
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	s.mu.Lock()
	ps := s.pods[key]
	if ps != nil && s.nodes[ps.node].down {
		// A down node's kubelet sees nothing; SetNodeDown syncs its pods
		// when it comes back.
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	if ps != nil && (pod == nil || pod.UID != ps.uid || pod.Spec.NodeName != ps.node) {
		// Gone from the API (or replaced): stop what we ran for it.
		s.forget(ps, "removed from the API")
		ps = nil
	}
	if pod == nil {
		return nil
	}
	if _, mine := s.nodes[pod.Spec.NodeName]; !mine || s.isDown(pod.Spec.NodeName) {
		return nil
	}
	if pod.DeletionTimestamp != nil {
		if ps == nil {
			return s.deletePod(ctx, pod.Spec.NodeName, pod.Namespace, pod.Name, pod.UID)
		}
		s.mu.Lock()
		start := !ps.terminating
		ps.terminating = true
		s.mu.Unlock()
		if start {
			go s.terminate(ctx, ps, pod.DeepCopy())
		}
		return nil
	}
	if ps != nil || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return nil
	}
	return s.startPod(ctx, pod.DeepCopy())
}

// npuRequests is the number of chips of each huawei.com/ resource the
// pod's containers ask for (their limits, else their requests).
func npuRequests(pod *corev1.Pod) map[corev1.ResourceName]int {
	n := map[corev1.ResourceName]int{}
	for _, c := range pod.Spec.Containers {
		names := map[corev1.ResourceName]bool{}
		for name := range c.Resources.Limits {
			names[name] = true
		}
		for name := range c.Resources.Requests {
			names[name] = true
		}
		for name := range names {
			if !strings.HasPrefix(string(name), ascend.ResourcePrefix) {
				continue
			}
			q, ok := c.Resources.Limits[name]
			if !ok {
				q = c.Resources.Requests[name]
			}
			n[name] += int(q.Value())
		}
	}
	return n
}

// allocate gives the pod an IP and chips, keeping those it already has
// (after a simulator restart). A pod asking for NPUs the node does not
// have is refused, as the kubelet's device manager refuses it. Called with
// s.mu held.
func (s *Simulator) allocate(pod *corev1.Pod) (ip string, chips []int, err error) {
	node := s.nodes[pod.Spec.NodeName]
	want := 0
	for name, n := range npuRequests(pod) {
		switch {
		case n == 0:
		case name == node.resourceName():
			want = n
		default:
			return "", nil, fmt.Errorf("node %s has no %s (pod asks for %d)", node.name, name, n)
		}
	}
	if want > 0 {
		if names := ascend.PodChips(pod, node.npuType); names != nil {
			for _, name := range names {
				t, i, err := ascend.ParseChipName(name)
				if err == nil && t == node.npuType && i < len(node.chips) && (node.chips[i].owner == "" || node.chips[i].owner == pod.UID) {
					chips = append(chips, i)
				}
			}
			if len(chips) != want {
				chips = nil
			}
		}
	}
	if chips == nil {
		for i, c := range node.chips {
			if len(chips) == want {
				break
			}
			if c.owner == "" && chipHealthy(c) {
				chips = append(chips, i)
			}
		}
		if len(chips) < want {
			return "", nil, fmt.Errorf("node %s has %d free healthy %s chips, pod needs %d", node.name, len(chips), node.npuType, want)
		}
	}
	if pod.Spec.HostNetwork {
		ip = node.hostIP
	} else if pod.Status.PodIP != "" && s.ips.claim(pod.Status.PodIP) {
		ip = pod.Status.PodIP
	} else if ip, err = s.ips.allocate(); err != nil {
		return "", nil, err
	}
	slices.Sort(chips)
	for _, i := range chips {
		node.chips[i].owner = pod.UID
	}
	return ip, chips, nil
}

// release frees the pod's IP and chips. A freed chip whose health depends
// on its use (PreSeparateNPU) becomes unhealthy: the node's devices are
// republished.
func (s *Simulator) release(ps *podState) {
	s.mu.Lock()
	if ps.released {
		s.mu.Unlock()
		return
	}
	ps.released = true
	if !ps.hostNet {
		s.ips.release(ps.ip)
	}
	node := s.nodes[ps.node]
	changed := false
	for _, i := range ps.chips {
		c := &node.chips[i]
		if c.owner == ps.uid {
			before := chipHealthy(*c)
			c.owner = ""
			changed = changed || chipHealthy(*c) != before
		}
	}
	s.mu.Unlock()
	if changed {
		s.devicesChanged(ps.node)
	}
}

// chipNames returns the names of chips of node.
func (s *Simulator) chipNames(node string, chips []int) []string {
	return s.nodes[node].chipNames(chips)
}

func (s *Simulator) startPod(ctx context.Context, pod *corev1.Pod) error {
	key := pod.Namespace + "/" + pod.Name
	s.mu.Lock()
	ip, chips, err := s.allocate(pod)
	s.mu.Unlock()
	if err != nil {
		s.logf("pod %s: admission failed: %v", key, err)
		return s.failPod(ctx, pod, "UnexpectedAdmissionError", err.Error())
	}
	node := s.nodes[pod.Spec.NodeName]
	ps := &podState{key: key, uid: pod.UID, namespace: pod.Namespace, name: pod.Name, node: pod.Spec.NodeName,
		ip: ip, hostIP: node.hostIP, hostNet: pod.Spec.HostNetwork, chips: chips, startTime: metav1.Now()}
	if pod.Status.StartTime != nil {
		ps.startTime = *pod.Status.StartTime
	}
	if len(chips) > 0 {
		// The device plugin's annotations, before any status write: whoever
		// sees the pod Running with its IP also sees its devices.
		// The ranktable annotation only for Ascend 910 chips, which have
		// an HCCL network (an Ascend310P has none).
		chipList := ascend.ChipListAnnotation(node.npuType)
		want := map[string]string{chipList: ascend.FormatChipList(node.chipNames(chips))}
		if strings.HasPrefix(node.npuType, "Ascend910") {
			want[ascend.AnnotationAscend910Configuration] = s.ascendConfiguration(pod.Name, pod.Spec.NodeName, chips)
		}
		differs := false
		for k, v := range want {
			differs = differs || pod.Annotations[k] != v
		}
		if differs {
			patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": want}})
			if err := s.whileUp(pod.Spec.NodeName, func() error {
				_, err := s.cfg.Client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.MergePatchType, patch, metav1.PatchOptions{})
				return err
			}); err != nil {
				s.release(ps)
				return fmt.Errorf("annotate NPUs: %w", err)
			}
			if pod.Annotations == nil {
				pod.Annotations = map[string]string{}
			}
			maps.Copy(pod.Annotations, want)
		}
	}
	for _, c := range pod.Spec.Containers {
		ps.containers = append(ps.containers, &containerState{spec: c, waiting: "ContainerCreating"})
	}
	ps.ctx, ps.cancel = context.WithCancel(ctx)
	ps.kick = make(chan struct{}, 1)
	writerCtx, stopWriter := context.WithCancel(ctx)
	ps.stopWriter = stopWriter
	s.writers.Go(func() { s.statusWriter(writerCtx, ps) })
	s.mu.Lock()
	s.pods[key] = ps
	s.mu.Unlock()
	s.logf("pod %s: started on node %s with IP %s, NPUs %v", key, ps.node, ip, node.chipNames(chips))
	if len(pod.Spec.InitContainers) > 0 {
		s.logf("pod %s: init containers are not simulated: treated as completed", key)
	}
	s.pushStatus(ps)
	for i := range ps.containers {
		ps.wg.Go(func() { s.runContainer(ps, i, pod) })
	}
	return nil
}

func (s *Simulator) failPod(ctx context.Context, pod *corev1.Pod, reason, msg string) error {
	pods := s.cfg.Client.CoreV1().Pods(pod.Namespace)
	return s.whileUp(pod.Spec.NodeName, func() error {
		return s.failPodStatus(ctx, pods, pod, reason, msg)
	})
}

func (s *Simulator) failPodStatus(ctx context.Context, pods typedcorev1.PodInterface, pod *corev1.Pod, reason, msg string) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return ignoreNotFound(err)
		}
		cur.Status.Phase = corev1.PodFailed
		cur.Status.Reason = reason
		cur.Status.Message = msg
		hostIP := s.nodes[pod.Spec.NodeName].hostIP
		cur.Status.HostIP = hostIP
		cur.Status.HostIPs = []corev1.HostIP{{IP: hostIP}}
		_, err = pods.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return ignoreNotFound(err)
	})
}

func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// Status writes are retried with a back-off from statusRetryMin to
// statusRetryMax until they succeed.
const (
	statusRetryMin = 50 * time.Millisecond
	statusRetryMax = 5 * time.Second
)

// pushStatus asks the pod's status writer to write the pod's status as the
// simulator sees it. It does not wait: the writer writes the latest state,
// retrying until the write succeeds.
func (s *Simulator) pushStatus(ps *podState) {
	select {
	case ps.kick <- struct{}{}:
	default: // a write is already due; it will read the latest state
	}
}

// statusWriter writes the pod's status whenever pushStatus asks, retrying
// a failed write with a back-off (conflicts re-read the pod at once), so
// that the pod's status never stays stale. While the pod's node is down it
// writes nothing; it writes the latest state once the node is back. It
// returns when ctx ends.
func (s *Simulator) statusWriter(ctx context.Context, ps *podState) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-ps.kick:
		}
		for delay := statusRetryMin; ; delay = min(2*delay, statusRetryMax) {
			if !s.waitNodeUp(ctx, ps.node) {
				return
			}
			select {
			case <-ps.kick: // this write covers that request too
			default:
			}
			err := s.writeStatus(ctx, ps)
			if errors.Is(err, errNodeDown) {
				continue // written once the node is back
			}
			if err == nil || ctx.Err() != nil {
				break
			}
			s.logf("pod %s: status: %v (retrying in %s)", ps.key, err, delay)
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
		}
	}
}

// writeStatus writes the pod's status once, re-reading the pod on a
// conflict. A pod that is gone or replaced needs no write.
func (s *Simulator) writeStatus(ctx context.Context, ps *podState) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	pods := s.cfg.Client.CoreV1().Pods(ps.namespace)
	return s.whileUp(ps.node, func() error {
		return retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur, err := pods.Get(ctx, ps.name, metav1.GetOptions{})
			if err != nil {
				return ignoreNotFound(err)
			}
			if cur.UID != ps.uid {
				return nil
			}
			s.fillPodStatus(ps, cur)
			_, err = pods.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
			return ignoreNotFound(err)
		})
	})
}

func (s *Simulator) fillPodStatus(ps *podState, pod *corev1.Pod) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &pod.Status
	st.Phase = corev1.PodRunning
	for _, c := range ps.containers {
		// A container that never ran (being created, its image not
		// pulled) keeps the pod Pending, as the kubelet's getPhase does.
		if !c.running && c.terminated == nil && c.last == nil {
			st.Phase = corev1.PodPending
		}
	}
	if ps.phase != "" {
		st.Phase = ps.phase
	}
	st.Reason, st.Message = "", ""
	st.HostIP = ps.hostIP
	st.HostIPs = []corev1.HostIP{{IP: ps.hostIP}}
	// A terminated pod keeps its IP in its status, as with a real kubelet,
	// though the simulator has released it.
	st.PodIP = ps.ip
	st.PodIPs = []corev1.PodIP{{IP: ps.ip}}
	st.StartTime = ptr.To(ps.startTime)
	st.QOSClass = qosClass(pod)
	var unready []string
	var statuses []corev1.ContainerStatus
	for _, c := range ps.containers {
		cs := corev1.ContainerStatus{
			Name: c.spec.Name, Image: c.spec.Image, ImageID: "simulated://" + c.spec.Image,
			Ready: c.running && c.ready, Started: ptr.To(c.running && c.started), RestartCount: c.restarts,
		}
		switch {
		case c.running:
			cs.ContainerID = fmt.Sprintf("simulated://%s-%s-%d", ps.uid, c.spec.Name, c.restarts)
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: c.startedAt}
		case c.terminated != nil:
			cs.ContainerID = c.terminated.ContainerID
			cs.State.Terminated = c.terminated.DeepCopy()
		default:
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: c.waiting, Message: c.message}
		}
		if c.last != nil {
			cs.LastTerminationState.Terminated = c.last.DeepCopy()
		}
		if !cs.Ready {
			unready = append(unready, c.spec.Name)
		}
		statuses = append(statuses, cs)
	}
	st.ContainerStatuses = statuses
	var initStatuses []corev1.ContainerStatus
	for _, c := range pod.Spec.InitContainers {
		initStatuses = append(initStatuses, corev1.ContainerStatus{Name: c.Name, Image: c.Image, Ready: true,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", StartedAt: ps.startTime, FinishedAt: ps.startTime}}})
	}
	st.InitContainerStatuses = initStatuses
	cond := func(t corev1.PodConditionType, ok bool, reason, message string) corev1.PodCondition {
		c := corev1.PodCondition{Type: t, Status: corev1.ConditionFalse, Reason: reason, Message: message, LastTransitionTime: metav1.Now()}
		if ok {
			c.Status, c.Reason, c.Message = corev1.ConditionTrue, "", ""
		}
		for _, old := range st.Conditions {
			if old.Type == t && old.Status == c.Status {
				c.LastTransitionTime = old.LastTransitionTime
			}
		}
		return c
	}
	notReady, notReadyMsg := "ContainersNotReady", fmt.Sprintf("containers with unready status: %v", unready)
	if ps.phase == corev1.PodSucceeded {
		notReady, notReadyMsg = "PodCompleted", ""
	}
	want := []corev1.PodCondition{
		cond(corev1.PodReadyToStartContainers, ps.phase == "", "", ""), // a terminated pod's sandbox is gone
		cond(corev1.PodInitialized, true, "", ""),
		cond(corev1.PodReady, len(unready) == 0, notReady, notReadyMsg),
		cond(corev1.ContainersReady, len(unready) == 0, notReady, notReadyMsg),
		cond(corev1.PodScheduled, true, "", ""),
	}
	// Keep conditions set by others (readiness gates, disruption target).
	for _, old := range st.Conditions {
		if !slices.ContainsFunc(want, func(c corev1.PodCondition) bool { return c.Type == old.Type }) {
			want = append(want, old)
		}
	}
	st.Conditions = want
}

func qosClass(pod *corev1.Pod) corev1.PodQOSClass {
	if pod.Status.QOSClass != "" {
		return pod.Status.QOSClass
	}
	any := false
	for _, c := range pod.Spec.Containers {
		if len(c.Resources.Requests) > 0 || len(c.Resources.Limits) > 0 {
			any = true
		}
	}
	if any {
		return corev1.PodQOSBurstable
	}
	return corev1.PodQOSBestEffort
}

// deletePod removes the pod from the API as the kubelet of node does once
// its containers are gone: grace period 0, UID precondition.
func (s *Simulator) deletePod(ctx context.Context, node, namespace, name string, uid types.UID) error {
	err := s.whileUp(node, func() error {
		return s.cfg.Client.CoreV1().Pods(namespace).Delete(ctx, name, metav1.DeleteOptions{
			GracePeriodSeconds: ptr.To[int64](0),
			Preconditions:      &metav1.Preconditions{UID: &uid},
		})
	})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

// terminate runs preStop hooks, stops the workloads within the grace
// period, frees the pod's IP and chips and deletes the pod.
func (s *Simulator) terminate(ctx context.Context, ps *podState, pod *corev1.Pod) {
	grace := int64(30)
	if pod.DeletionGracePeriodSeconds != nil {
		grace = *pod.DeletionGracePeriodSeconds
	} else if pod.Spec.TerminationGracePeriodSeconds != nil {
		grace = *pod.Spec.TerminationGracePeriodSeconds
	}
	deadline := time.Duration(grace) * s.cfg.ProbeSecond
	s.logf("pod %s: terminating (grace %ds)", ps.key, grace)
	graceCtx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	running := map[string]bool{} // preStop hooks run in running containers only
	s.mu.Lock()
	for _, cs := range ps.containers {
		running[cs.spec.Name] = cs.running
	}
	s.mu.Unlock()
	var hooks sync.WaitGroup
	for _, c := range pod.Spec.Containers {
		if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || !running[c.Name] {
			continue
		}
		hooks.Go(func() {
			h := c.Lifecycle.PreStop
			switch {
			case h.HTTPGet != nil:
				if err := s.httpGet(graceCtx, ps.ip, c, h.HTTPGet, deadline); err != nil {
					s.logf("pod %s container %s: preStop hook failed: %v", ps.key, c.Name, err)
				} else {
					s.logf("pod %s container %s: preStop hook ran", ps.key, c.Name)
				}
			case h.Sleep != nil:
				select {
				case <-graceCtx.Done():
				case <-time.After(time.Duration(h.Sleep.Seconds) * s.cfg.ProbeSecond):
				}
			default:
				s.logf("pod %s container %s: exec preStop hook not simulated (counted as done)", ps.key, c.Name)
			}
		})
	}
	hooks.Wait()
	s.mu.Lock()
	ps.stopCtx = graceCtx
	s.mu.Unlock()
	ps.cancel() // each container stops its workload within graceCtx
	ps.wg.Wait()
	s.release(ps)
	s.mu.Lock()
	if s.pods[ps.key] == ps {
		delete(s.pods, ps.key)
	}
	s.mu.Unlock()
	ps.stopWriter()
	for { // a down node's kubelet deletes nothing: it does once back
		if !s.waitNodeUp(ctx, ps.node) {
			return
		}
		err := s.deletePod(ctx, ps.node, ps.namespace, ps.name, ps.uid)
		if errors.Is(err, errNodeDown) {
			continue
		}
		if err != nil {
			s.logf("pod %s: delete: %v", ps.key, err)
			return
		}
		break
	}
	s.logf("pod %s: terminated and deleted; IP %s and NPUs %v freed", ps.key, ps.ip, s.chipNames(ps.node, ps.chips))
}

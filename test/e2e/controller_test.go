package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"

	"mindie.io/deployer/apis/infer/v1alpha1"
	clientset "mindie.io/deployer/pkg/generated/clientset/versioned"
	"mindie.io/deployer/pkg/revision"
)

// The workload controller's end-to-end tests: InferServers become pods on
// the simulated Ascend nodes (4 nodes of 8 NPUs), and status tells the truth.

// server reads an InferServer as the admin.
func server(t *testing.T, ns, name string) *v1alpha1.InferServer {
	t.Helper()
	var s v1alpha1.InferServer
	out := mustKubectl(t, "", "get", "inferserver", name, "-n", ns, "-o", "json")
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("decode inferserver %s: %v", name, err)
	}
	return &s
}

// waitServer waits until cond holds for the InferServer.
func waitServer(t *testing.T, ns, name string, timeout time.Duration, what string, cond func(s *v1alpha1.InferServer) (bool, string)) *v1alpha1.InferServer {
	t.Helper()
	var last *v1alpha1.InferServer
	eventually(t, timeout, time.Second, what, func() (bool, string) {
		last = server(t, ns, name)
		ok, msg := cond(last)
		if !ok {
			st, _ := json.MarshalIndent(last.Status, "", "  ")
			msg += "\nstatus: " + string(st)
		}
		return ok, msg
	})
	return last
}

// rolledOut is true when every instance runs the current spec and is ready.
func rolledOut(want int32) func(s *v1alpha1.InferServer) (bool, string) {
	return func(s *v1alpha1.InferServer) (bool, string) {
		st := s.Status
		avail := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionAvailable)
		ok := st.ObservedGeneration == s.Generation && st.Replicas == want && st.UpdatedReplicas == want &&
			st.ReadyReplicas == want && st.AvailableReplicas == want && st.CurrentRevision == st.UpdateRevision &&
			avail != nil && avail.Status == metav1.ConditionTrue && len(st.Instances) == int(want)
		return ok, fmt.Sprintf("want %d instances rolled out and ready", want)
	}
}

func listJSON[T any](t *testing.T, args ...string) []T {
	t.Helper()
	var list struct {
		Items []T `json:"items"`
	}
	out := mustKubectl(t, "", append([]string{"get", "-o", "json"}, args...)...)
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("decode %v: %v", args, err)
	}
	return list.Items
}

func serverPods(t *testing.T, ns, name string) []corev1.Pod {
	t.Helper()
	return listJSON[corev1.Pod](t, "pods", "-n", ns, "-l", v1alpha1.LabelServer+"="+name)
}

// waitNoServerPods waits until no InferServer's pod is left anywhere, so a
// test starts with every simulated NPU free.
func waitNoServerPods(t *testing.T) {
	t.Helper()
	eventually(t, 3*time.Minute, time.Second, "no InferServer pods left", func() (bool, string) {
		pods := listJSON[corev1.Pod](t, "pods", "-A", "-l", v1alpha1.LabelServer)
		var names []string
		for _, p := range pods {
			names = append(names, p.Namespace+"/"+p.Name)
		}
		return len(pods) == 0, strings.Join(names, ", ")
	})
}

// deleteServerAndWait deletes an InferServer and waits until it and every
// child are gone.
func deleteServerAndWait(t *testing.T, ns, name string) {
	t.Helper()
	mustKubectl(t, "", "delete", "inferserver", name, "-n", ns, "--wait=true", "--timeout=90s")
	sel := v1alpha1.LabelServer + "=" + name
	eventually(t, 2*time.Minute, time.Second, "every child of "+name+" deleted", func() (bool, string) {
		out := mustKubectl(t, "", "get", "deployments,replicasets,pods,services,configmaps,controllerrevisions", "-n", ns, "-l", sel, "-o", "name")
		return strings.TrimSpace(out) == "", out
	})
}

func applyServer(t *testing.T, ns, manifest string) {
	t.Helper()
	if r := kubectlIn(t, "", manifest, "apply", "-f", "-"); r.err != nil {
		t.Fatalf("kubectl apply: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
}

// applyOneNPUServer applies, in ns, an InferServer of one instance of one
// NPU named after prefix, deleted when the test ends, and returns its name.
func applyOneNPUServer(t *testing.T, ns, prefix string) string {
	t.Helper()
	return applyNPUServer(t, ns, prefix, 1, 1)
}

// applyNPUServer applies, in ns, an InferServer of replicas instances of
// npus NPUs each, named after prefix and deleted when the test ends, and
// returns its name.
func applyNPUServer(t *testing.T, ns, prefix string, replicas, npus int) string {
	t.Helper()
	name := uniqueName(prefix)
	t.Cleanup(func() { kubectl(t, "", "delete", "inferserver", name, "-n", ns, "--ignore-not-found", "--wait=false") })
	applyServer(t, ns, fmt.Sprintf(`apiVersion: infer.mindie.io/v1alpha1
kind: InferServer
metadata: {name: %s, namespace: %s}
spec:
  replicas: %d
  terminationGracePeriodSeconds: 2
  resources: {cpu: "2", memory: 4000Mi, npu: {count: %d}}
  health: {startupSeconds: 30}
`, name, ns, replicas, npus))
	return name
}

func inferClient(t *testing.T) clientset.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig(""))
	if err != nil {
		t.Fatal(err)
	}
	return clientset.NewForConfigOrDie(cfg)
}

func TestControllerSingleNode(t *testing.T) {
	waitNoServerPods(t)
	const ns = "default"
	name := uniqueName("single")
	t.Cleanup(func() { kubectl(t, "", "delete", "inferserver", name, "-n", ns, "--ignore-not-found", "--wait=false") })
	manifest := func(replicas int, image string) string {
		return fmt.Sprintf(`apiVersion: infer.mindie.io/v1alpha1
kind: InferServer
metadata: {name: %s, namespace: %s}
spec:
  replicas: %d
  image: %s
  terminationGracePeriodSeconds: 2
  resources: {cpu: "2", memory: 4000Mi, npu: {count: 1}}
  health: {startupSeconds: 30}
  strategy: {rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}
`, name, ns, replicas, image)
	}
	applyServer(t, ns, manifest(3, "mindie:server"))

	// Three instances become Available; status lists every pod and the model.
	s := waitServer(t, ns, name, 3*time.Minute, "3 instances Available with model info", func(s *v1alpha1.InferServer) (bool, string) {
		ok, msg := rolledOut(3)(s)
		return ok && s.Status.Model != nil && len(s.Status.Model.Models) > 0, msg + " and model info"
	})
	pods := serverPods(t, ns, name)
	byName := map[string]corev1.Pod{}
	for _, p := range pods {
		byName[p.Name] = p
	}
	for _, inst := range s.Status.Instances {
		if len(inst.Pods) != 1 || !inst.Ready || inst.Master != inst.Name {
			t.Errorf("instance %+v: want one ready pod that is its master", inst)
			continue
		}
		ps := inst.Pods[0]
		p, ok := byName[ps.Name]
		if !ok {
			t.Errorf("status lists pod %s, which does not exist", ps.Name)
			continue
		}
		if ps.Node != p.Spec.NodeName || ps.PodIP != p.Status.PodIP || ps.Node == "" || !ps.Ready || !ps.Live ||
			len(ps.NPUs) != 1 || ps.Phase != corev1.PodRunning || ps.Restarts != 0 {
			t.Errorf("pod status %+v does not match pod %s on %s (%s)", ps, p.Name, p.Spec.NodeName, p.Status.PodIP)
		}
	}
	if m := s.Status.Model; m.Version == "" || m.Models[0].ID == "" || m.Models[0].MaxTotalTokens == 0 || m.Instance == "" {
		t.Errorf("model info incomplete: %+v", m)
	}
	if s.Status.Selector != v1alpha1.LabelServer+"="+name || !containsString(s.Finalizers, v1alpha1.FinalizerCleanup) {
		t.Errorf("selector %q, finalizers %v", s.Status.Selector, s.Finalizers)
	}

	// The Deployment is what the original deployer made, done right.
	var dep appsv1.Deployment
	if err := json.Unmarshal([]byte(mustKubectl(t, "", "get", "deployment", name, "-n", ns, "-o", "json")), &dep); err != nil {
		t.Fatal(err)
	}
	c := dep.Spec.Template.Spec.Containers[0]
	npu := c.Resources.Requests["huawei.com/Ascend910"]
	if npu.Value() != 1 || dep.Spec.Template.Spec.NodeSelector["accelerator"] != "huawei-Ascend910" ||
		c.StartupProbe.HTTPGet.Path != "/v2/health/live" || c.StartupProbe.FailureThreshold != 30 ||
		c.ReadinessProbe.HTTPGet.Path != "/health/timed-10" || c.LivenessProbe.HTTPGet.Path != "/health/timed-10" ||
		c.Lifecycle.PreStop.HTTPGet.Path != "/stopService" || *dep.Spec.Template.Spec.TerminationGracePeriodSeconds != 2 ||
		dep.Spec.Strategy.RollingUpdate.MaxSurge.IntValue() != 1 || dep.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 {
		t.Errorf("deployment does not carry the spec: %+v", dep.Spec)
	}
	env := map[string]bool{}
	for _, e := range c.Env {
		env[e.Name] = true
	}
	for _, want := range []string{"HOST_IP", "MIES_CONTAINER_IP", "MIES_CONTAINER_MANAGEMENT_IP", "MIES_CONFIG_JSON_PATH", "MIES_INSTALL_PATH", "MINDIE_USE_HTTPS"} {
		if !env[want] {
			t.Errorf("container env lacks %s", want)
		}
	}
	svc := mustKubectl(t, "", "get", "service", name, "-n", ns, "-o", "jsonpath={.spec.type} {.spec.selector}")
	if !strings.HasPrefix(svc, "NodePort ") || !strings.Contains(svc, `"infer.mindie.io/master":"true"`) {
		t.Errorf("service: %s", svc)
	}

	// A hand edit of the Deployment is reverted.
	mustKubectl(t, "", "set", "image", "deployment/"+name, "-n", ns, "mindie-server=hand:edit")
	eventually(t, 30*time.Second, 500*time.Millisecond, "the hand edit reverted", func() (bool, string) {
		img := mustKubectl(t, "", "get", "deployment", name, "-n", ns, "-o", "jsonpath={.spec.template.spec.containers[0].image}")
		return img == "mindie:server", img
	})
	waitServer(t, ns, name, 2*time.Minute, "3 instances after the revert", rolledOut(3))

	// Scale 3 -> 5 -> 2 through the scale subresource.
	for _, n := range []int32{5, 2} {
		mustKubectl(t, "", "scale", "inferserver", name, "-n", ns, fmt.Sprintf("--replicas=%d", n))
		waitServer(t, ns, name, 3*time.Minute, fmt.Sprintf("%d instances", n), rolledOut(n))
		if got := len(serverPods(t, ns, name)); got < int(n) {
			t.Errorf("%d pods for %d instances", got, n)
		}
	}

	// An image change rolls out within maxSurge 1 / maxUnavailable 0: at no
	// moment more than 3 instances, nor fewer than 2 ready.
	first := server(t, ns, name).Status.UpdateRevision
	watch := watchPods(t, ns, name)
	applyServer(t, ns, manifest(2, "mindie:v2"))
	waitServer(t, ns, name, 3*time.Minute, "mindie:v2 rolled out", func(s *v1alpha1.InferServer) (bool, string) {
		ok, msg := rolledOut(2)(s)
		return ok && s.Status.UpdateRevision != first, msg + " at a new revision"
	})
	maxPods, minReady, samples := watch()
	t.Logf("rollout: %d samples, at most %d pods, at least %d ready", samples, maxPods, minReady)
	if samples < 5 || maxPods > 3 || minReady < 2 {
		t.Errorf("rollout broke its bounds: at most %d pods (limit 3), at least %d ready (limit 2), %d samples", maxPods, minReady, samples)
	}
	for _, p := range serverPods(t, ns, name) {
		if p.DeletionTimestamp == nil && p.Spec.Containers[0].Image != "mindie:v2" {
			t.Errorf("pod %s still runs %s", p.Name, p.Spec.Containers[0].Image)
		}
	}
	revs := listJSON[appsv1.ControllerRevision](t, "controllerrevisions", "-n", ns, "-l", v1alpha1.LabelServer+"="+name)
	if len(revs) != 2 {
		t.Fatalf("%d revisions, want 2", len(revs))
	}

	// Undo: the previous revision's template goes back into the spec (as
	// kubectl mindie rollout undo does) and rolls out.
	undo(t, ns, name, first)
	s = waitServer(t, ns, name, 3*time.Minute, "undo rolled out", func(s *v1alpha1.InferServer) (bool, string) {
		ok, msg := rolledOut(2)(s)
		return ok && s.Status.UpdateRevision == first, msg + " back at " + first
	})
	if s.Spec.Image != "mindie:server" {
		t.Errorf("image after undo: %s", s.Spec.Image)
	}
	for _, r := range listJSON[appsv1.ControllerRevision](t, "controllerrevisions", "-n", ns, "-l", v1alpha1.LabelServer+"="+name) {
		if r.Name == first && r.Revision != 3 {
			t.Errorf("revision %s is number %d after the undo, want 3", r.Name, r.Revision)
		}
	}

	// Paused: a change makes a revision but replaces nothing until resumed.
	mustKubectl(t, "", "patch", "inferserver", name, "-n", ns, "--type=merge", "-p", `{"spec":{"paused":true}}`)
	mustKubectl(t, "", "patch", "inferserver", name, "-n", ns, "--type=merge", "-p", `{"spec":{"image":"mindie:paused"}}`)
	waitServer(t, ns, name, time.Minute, "the paused change observed", func(s *v1alpha1.InferServer) (bool, string) {
		p := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionProgressing)
		return s.Status.ObservedGeneration == s.Generation && p != nil && p.Reason == "RolloutPaused", "Progressing RolloutPaused"
	})
	time.Sleep(5 * time.Second)
	for _, p := range serverPods(t, ns, name) {
		if p.Spec.Containers[0].Image == "mindie:paused" {
			t.Errorf("pod %s runs the paused change", p.Name)
		}
	}
	if s := server(t, ns, name); s.Status.UpdatedReplicas != 0 || s.Status.ReadyReplicas != 2 {
		t.Errorf("paused: %d updated, %d ready; want 0 and 2", s.Status.UpdatedReplicas, s.Status.ReadyReplicas)
	}
	mustKubectl(t, "", "patch", "inferserver", name, "-n", ns, "--type=merge", "-p", `{"spec":{"paused":false}}`)
	waitServer(t, ns, name, 3*time.Minute, "the resumed rollout done", rolledOut(2))

	deleteServerAndWait(t, ns, name)
}

// undo puts revision rev's template back into the InferServer's spec.
func undo(t *testing.T, ns, name, rev string) {
	t.Helper()
	var cr appsv1.ControllerRevision
	if err := json.Unmarshal([]byte(mustKubectl(t, "", "get", "controllerrevision", rev, "-n", ns, "-o", "json")), &cr); err != nil {
		t.Fatal(err)
	}
	template, err := revision.Decode(&cr)
	if err != nil {
		t.Fatal(err)
	}
	c := inferClient(t)
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s, err := c.InferV1alpha1().InferServers(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		revision.Restore(&s.Spec, template)
		_, err = c.InferV1alpha1().InferServers(ns).Update(context.Background(), s, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("undo to %s: %v", rev, err)
	}
}

// watchPods samples the server's pods until the returned function is
// called, which reports the most pods alive at once and the fewest ready
// (pods being deleted count as neither).
func watchPods(t *testing.T, ns, name string) func() (maxPods, minReady, samples int) {
	var mu sync.Mutex
	maxPods, minReady, samples := 0, 1<<30, 0
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			r := kubectl(t, "", "get", "pods", "-n", ns, "-l", v1alpha1.LabelServer+"="+name, "-o", "json")
			var list corev1.PodList
			if r.err == nil && json.Unmarshal([]byte(r.stdout), &list) == nil {
				alive, ready := 0, 0
				for _, p := range list.Items {
					if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
						continue
					}
					alive++
					for _, c := range p.Status.Conditions {
						if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
							ready++
						}
					}
				}
				mu.Lock()
				maxPods, minReady, samples = max(maxPods, alive), min(minReady, ready), samples+1
				mu.Unlock()
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	return func() (int, int, int) {
		close(stop)
		<-done
		mu.Lock()
		defer mu.Unlock()
		return maxPods, minReady, samples
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ranktable is the part of hccl.json the tests read.
type ranktable struct {
	Status      string `json:"status"`
	ServerCount string `json:"server_count"`
	ServerList  []struct {
		ServerID    string `json:"server_id"`
		ContainerIP string `json:"container_ip"`
		Device      []struct {
			DeviceID string `json:"device_id"`
			DeviceIP string `json:"device_ip"`
			RankID   string `json:"rank_id"`
		} `json:"device"`
	} `json:"server_list"`
}

// checkCrossNodeInstance checks an instance's pods and its ranktable, and
// returns the pods' UIDs by rank.
func checkCrossNodeInstance(t *testing.T, ns, instance string, pods []corev1.Pod) []string {
	t.Helper()
	var mine []corev1.Pod
	for _, p := range pods {
		if p.Labels[v1alpha1.LabelInstance] == instance && p.DeletionTimestamp == nil {
			mine = append(mine, p)
		}
	}
	sort.Slice(mine, func(i, j int) bool { return mine[i].Labels[v1alpha1.LabelRank] < mine[j].Labels[v1alpha1.LabelRank] })
	if len(mine) != 2 {
		t.Fatalf("instance %s has %d pods, want 2", instance, len(mine))
	}
	var rt ranktable
	data := mustKubectl(t, "", "get", "configmap", "rings-config-"+instance, "-n", ns, "-o", "jsonpath={.data.hccl\\.json}")
	if err := json.Unmarshal([]byte(data), &rt); err != nil {
		t.Fatalf("ranktable of %s: %v\n%s", instance, err, data)
	}
	if rt.Status != "completed" || rt.ServerCount != "2" || len(rt.ServerList) != 2 {
		t.Fatalf("ranktable of %s: %s", instance, data)
	}
	var uids []string
	for rank, p := range mine {
		uids = append(uids, string(p.UID))
		if p.Labels[v1alpha1.LabelRank] != strconv.Itoa(rank) || (p.Labels[v1alpha1.LabelMaster] == "true") != (rank == 0) {
			t.Errorf("pod %s labels %v", p.Name, p.Labels)
		}
		srv := rt.ServerList[rank]
		if srv.ContainerIP != p.Status.PodIP || srv.ServerID != p.Status.HostIP || len(srv.Device) != 8 {
			t.Errorf("ranktable server %d %+v does not describe pod %s (%s on %s)", rank, srv, p.Name, p.Status.PodIP, p.Status.HostIP)
		}
		for i, d := range srv.Device {
			if d.RankID != strconv.Itoa(rank*8+i) || d.DeviceIP == "" {
				t.Errorf("ranktable server %d device %d: %+v", rank, i, d)
			}
		}
	}
	return uids
}

func TestControllerCrossNode(t *testing.T) {
	waitNoServerPods(t)
	const ns = "default"
	name := uniqueName("cross")
	t.Cleanup(func() { kubectl(t, "", "delete", "inferserver", name, "-n", ns, "--ignore-not-found", "--wait=false") })
	applyServer(t, ns, fmt.Sprintf(`apiVersion: infer.mindie.io/v1alpha1
kind: InferServer
metadata: {name: %s, namespace: %s}
spec:
  replicas: 2
  nodesPerInstance: 2
  terminationGracePeriodSeconds: 2
  resources: {cpu: "2", memory: 4000Mi}
  health: {startupSeconds: 30}
`, name, ns))

	s := waitServer(t, ns, name, 3*time.Minute, "2 cross-node instances ready", func(s *v1alpha1.InferServer) (bool, string) {
		ok, msg := rolledOut(2)(s)
		for _, in := range s.Status.Instances {
			ok = ok && in.Ranktable == "completed" && len(in.Pods) == 2
		}
		return ok, msg + " with completed ranktables"
	})
	pods := serverPods(t, ns, name)
	nodes := map[string]bool{}
	for _, p := range pods {
		nodes[p.Spec.NodeName] = true
		if p.Spec.RestartPolicy != corev1.RestartPolicyNever {
			t.Errorf("pod %s restartPolicy %s", p.Name, p.Spec.RestartPolicy)
		}
	}
	if len(pods) != 4 || len(nodes) != 4 {
		t.Fatalf("%d pods on %d nodes, want 4 on 4 distinct nodes", len(pods), len(nodes))
	}
	uids := map[string][]string{}
	for _, in := range s.Status.Instances {
		uids[in.Name] = checkCrossNodeInstance(t, ns, in.Name, pods)
	}

	// Only the masters serve: the Service selects exactly the two rank-0
	// pods. (Its EndpointSlices stay empty here: the simulated pods' IPs are
	// loopback addresses, which EndpointSlices may not hold.)
	selector := mustKubectl(t, "", "get", "service", name, "-n", ns, "-o", "go-template={{range $k, $v := .spec.selector}}{{$k}}={{$v}},{{end}}")
	var selected []string
	for _, p := range listJSON[corev1.Pod](t, "pods", "-n", ns, "-l", strings.TrimSuffix(selector, ",")) {
		selected = append(selected, p.Name)
	}
	sort.Strings(selected)
	if want := name + "-0-0," + name + "-1-0"; strings.Join(selected, ",") != want {
		t.Errorf("the service (selector %s) selects %v, want the masters %s", selector, selected, want)
	}

	// Killing one pod of an instance recreates the whole instance.
	victim := name + "-1-1"
	mustKubectl(t, "", "delete", "pod", victim, "-n", ns, "--wait=false")
	s = waitServer(t, ns, name, 3*time.Minute, "instance 1 recreated and ready", func(s *v1alpha1.InferServer) (bool, string) {
		ok, msg := rolledOut(2)(s)
		for _, in := range s.Status.Instances {
			if in.Name == name+"-1" {
				ok = ok && in.Recreations == 1 && in.Ranktable == "completed"
				for _, p := range in.Pods {
					ok = ok && p.Ready
				}
			}
		}
		return ok, msg + ", instance 1 recreated once"
	})
	pods = serverPods(t, ns, name)
	after := checkCrossNodeInstance(t, ns, name+"-1", pods)
	for i, uid := range after {
		if uid == uids[name+"-1"][i] {
			t.Errorf("rank %d of instance %s kept its pod (uid %s): the instance was not recreated", i, name+"-1", uid)
		}
	}
	if got := checkCrossNodeInstance(t, ns, name+"-0", pods); strings.Join(got, ",") != strings.Join(uids[name+"-0"], ",") {
		t.Errorf("instance %s-0 was disturbed: %v, was %v", name, got, uids[name+"-0"])
	}
	events := mustKubectl(t, "", "get", "events", "-n", ns, "--field-selector", "involvedObject.name="+name+",reason=InstanceFailed", "-o", "jsonpath={.items[*].message}")
	if !strings.Contains(events, victim) {
		t.Errorf("no InstanceFailed event naming %s: %q", victim, events)
	}

	// A change rolls out instance by instance: with maxSurge 0 and
	// maxUnavailable 1, never more than 2 instances (4 pods) and never
	// fewer than 1 ready instance.
	firstRev := s.Status.UpdateRevision
	watch := watchPods(t, ns, name)
	mustKubectl(t, "", "patch", "inferserver", name, "-n", ns, "--type=merge", "-p",
		`{"spec":{"image":"mindie:v2","strategy":{"rollingUpdate":{"maxSurge":0,"maxUnavailable":1}}}}`)
	waitServer(t, ns, name, 4*time.Minute, "the cross-node rollout done", func(s *v1alpha1.InferServer) (bool, string) {
		ok, msg := rolledOut(2)(s)
		return ok && s.Status.UpdateRevision != firstRev, msg + " at a new revision"
	})
	maxPods, minReady, samples := watch()
	t.Logf("cross-node rollout: %d samples, at most %d pods, at least %d ready pods", samples, maxPods, minReady)
	if maxPods > 4 || minReady < 2 {
		t.Errorf("cross-node rollout broke its bounds: at most %d pods (limit 4), at least %d ready pods (limit 2: one instance)", maxPods, minReady)
	}
	pods = serverPods(t, ns, name)
	for _, in := range []string{name + "-0", name + "-1"} {
		checkCrossNodeInstance(t, ns, in, pods)
	}
	for _, p := range pods {
		if p.DeletionTimestamp == nil && p.Spec.Containers[0].Image != "mindie:v2" {
			t.Errorf("pod %s runs %s after the rollout", p.Name, p.Spec.Containers[0].Image)
		}
	}

	deleteServerAndWait(t, ns, name)
}

func TestControllerInsufficientNPU(t *testing.T) {
	waitNoServerPods(t)
	const ns = "default"
	// Five instances of 8 NPUs on four nodes of 8.
	name := applyNPUServer(t, ns, "short", 5, 8)
	s := waitServer(t, ns, name, 3*time.Minute, "Degraded for want of NPUs", func(s *v1alpha1.InferServer) (bool, string) {
		d := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionDegraded)
		return d != nil && d.Status == metav1.ConditionTrue && d.Reason == "InsufficientNPU" && s.Status.ReadyReplicas == 4, "Degraded InsufficientNPU with 4 ready"
	})
	d := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionDegraded)
	if !strings.Contains(d.Message, "Insufficient huawei.com/Ascend910") || !strings.Contains(d.Message, "needs 8 huawei.com/Ascend910") {
		t.Errorf("Degraded message does not name the shortage: %s", d.Message)
	}
	if a := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionAvailable); a == nil || a.Status != metav1.ConditionTrue {
		t.Errorf("4 of 5 ready with maxUnavailable 50%% should be Available: %+v", a)
	}
	out := mustKubectl(t, "", "get", "events", "-n", ns, "--field-selector", "involvedObject.name="+name+",reason=InsufficientNPU", "-o", "name")
	if strings.TrimSpace(out) == "" {
		t.Error("no InsufficientNPU event")
	}
	// Scaling to what fits clears the condition.
	mustKubectl(t, "", "scale", "inferserver", name, "-n", ns, "--replicas=4")
	waitServer(t, ns, name, 2*time.Minute, "not Degraded at 4 instances", func(s *v1alpha1.InferServer) (bool, string) {
		d := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionDegraded)
		ok, msg := rolledOut(4)(s)
		return ok && d != nil && d.Status == metav1.ConditionFalse, msg + " and Degraded False"
	})
	deleteServerAndWait(t, ns, name)
}

// TestCreateCarriesTheCleanupFinalizer: where the controllers run,
// mindie-apiserver creates InferServers and EdgeDeployments with their
// cleanup finalizers (a server-side dry run shows what a create stores,
// with no controller involved), so the controllers spend no write adding
// them.
func TestCreateCarriesTheCleanupFinalizer(t *testing.T) {
	r := kubectlIn(t, "tenant-a-editor", inferServerYAML(edgeNS, "finalizer-dry-run", 1, ""), "create", "-f", "-", "--dry-run=server", "-o", "jsonpath={.metadata.finalizers}")
	if r.err != nil || r.stdout != `["`+v1alpha1.FinalizerCleanup+`"]` {
		t.Errorf("InferServer created with finalizers %q (%v %s), want [%s]", r.stdout, r.err, r.stderr, v1alpha1.FinalizerCleanup)
	}
	edge := "apiVersion: infer.mindie.io/v1alpha1\nkind: EdgeDeployment\nmetadata: {name: finalizer-dry-run, namespace: " + edgeNS + "}\nspec:\n" +
		"  targets: {nodes: [edge-0]}\n  container: {image: example/edge-app:1.0}\n"
	r = kubectlIn(t, "tenant-a-editor", edge, "create", "-f", "-", "--dry-run=server", "-o", "jsonpath={.metadata.finalizers}")
	if r.err != nil || r.stdout != `["`+v1alpha1.FinalizerEdgeCleanup+`"]` {
		t.Errorf("EdgeDeployment created with finalizers %q (%v %s), want [%s]", r.stdout, r.err, r.stderr, v1alpha1.FinalizerEdgeCleanup)
	}
}

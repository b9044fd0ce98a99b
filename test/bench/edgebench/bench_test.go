package main

import (
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/cmd/server"
	"mindie.io/deployer/pkg/controller/edgedeployment"
)

func TestDirectPods(t *testing.T) {
	job := newJob("edge-bench-job", 100, 900)
	before := job.DeepCopy()
	nodes := []string{"edge-0", "edge-1", "edge-10"}
	pods := directPods(job, nodes, "edge-bench-direct")
	if !equality.Semantic.DeepEqual(job, before) {
		t.Fatal("directPods changed the job it was given")
	}
	if len(pods) != len(nodes) {
		t.Fatalf("%d pods for %d nodes and one instance each", len(pods), len(nodes))
	}
	// What the controller creates: the job as the API server stores it.
	stored := job.DeepCopy()
	v1alpha1.SetObjectDefaults_EdgeDeployment(stored)
	stored.UID = types.UID("job-uid")
	for i, p := range pods {
		want := edgedeployment.Pod(stored, nodes[i], 0)
		if p.Name != want.Name || p.Namespace != "edge-bench-direct" {
			t.Errorf("pod %d: %s/%s, want %s in edge-bench-direct", i, p.Namespace, p.Name, want.Name)
		}
		if !equality.Semantic.DeepEqual(p.Spec, want.Spec) {
			t.Errorf("pod %d: spec\n%+v\nwant the controller's\n%+v", i, p.Spec, want.Spec)
		}
		if len(p.OwnerReferences) != 0 {
			t.Errorf("pod %d is owned: %+v", i, p.OwnerReferences)
		}
		if len(p.Labels) != 1 || p.Labels[benchLabel] != benchLabelValue || p.Labels[edgedeployment.LabelJob] != "" {
			t.Errorf("pod %d labels %v: want only %s=%s, none the controller watches", i, p.Labels, benchLabel, benchLabelValue)
		}
		if p.Spec.NodeSelector[corev1.LabelHostname] != nodes[i] {
			t.Errorf("pod %d: node selector %v, want node %s", i, p.Spec.NodeSelector, nodes[i])
		}
	}
	// The defaults are in: what a pod made from the undefaulted job lacks.
	c := pods[0].Spec.Containers[0]
	if q := c.Resources.Requests[corev1.ResourceCPU]; q.Cmp(resource.MustParse(v1alpha1.DefaultEdgeCPU)) != 0 {
		t.Errorf("cpu request %s, want the default %s", q.String(), v1alpha1.DefaultEdgeCPU)
	}
	if c.ImagePullPolicy != corev1.PullIfNotPresent || pods[0].Spec.RestartPolicy != corev1.RestartPolicyAlways {
		t.Errorf("pull policy %q, restart policy %q: want the defaults", c.ImagePullPolicy, pods[0].Spec.RestartPolicy)
	}
	r := c.ReadinessProbe
	if r == nil || r.HTTPGet == nil || r.HTTPGet.Port.IntValue() != appPort || r.PeriodSeconds != readinessPeriodSeconds ||
		r.TimeoutSeconds != v1alpha1.DefaultEdgeProbeTimeoutSeconds || r.FailureThreshold != v1alpha1.DefaultEdgeProbeFailureThreshold {
		t.Errorf("readiness probe %+v: want httpGet :%d every %d s, the default timeout and threshold", r, appPort, readinessPeriodSeconds)
	}
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != appPort || c.Ports[0].HostPort != appHostPort {
		t.Errorf("ports %+v: want %d mapped to host port %d", c.Ports, appPort, appHostPort)
	}

	// Two instances per node: two pods a node, in order.
	job.Spec.InstancesPerNode = ptr.To(int32(2))
	pods = directPods(job, nodes[:2], "ns")
	if len(pods) != 4 || pods[1].Name != "edge-bench-edge-0-1" || pods[2].Name != "edge-bench-edge-1-0" {
		t.Errorf("two instances a node: %d pods, %v", len(pods), names(pods))
	}
}

func names(pods []*corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name)
	}
	return out
}

func TestJobYAML(t *testing.T) {
	y, err := jobYAML(newJob("ns", 100, 900))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kind: EdgeDeployment", "name: edge-bench", "namespace: ns", "mindie.io/edge: \"true\"",
		"maxConcurrentNodes: 100", "timeoutSeconds: 900", "image: " + appImage, "containerPort: 8080", "periodSeconds: 1"} {
		if !strings.Contains(y, want) {
			t.Errorf("the job's YAML lacks %q:\n%s", want, y)
		}
	}
	if strings.Contains(y, "status") || strings.Contains(y, "creationTimestamp") {
		t.Errorf("the job's YAML has more than metadata and spec:\n%s", y)
	}
}

func TestControllerLimits(t *testing.T) {
	// mindie-apiserver's defaults, and what its flags set.
	qps, burst, err := controllerLimits([]string{"--etcd-servers=http://127.0.0.1:1", "--secure-port=2"})
	if err != nil || qps != server.NewOptions(io.Discard, io.Discard).Controllers.KubeAPIQPS || burst != server.NewOptions(io.Discard, io.Discard).Controllers.KubeAPIBurst {
		t.Errorf("defaults: %g, %d, %v: want mindie-apiserver's", qps, burst, err)
	}
	if qps, burst, err = controllerLimits([]string{"--kube-api-qps=40", "--kube-api-burst", "80"}); err != nil || qps != 40 || burst != 80 {
		t.Errorf("--kube-api-qps=40 --kube-api-burst 80: %g, %d, %v", qps, burst, err)
	}
	if _, _, err := controllerLimits([]string{"--no-such-flag"}); err == nil {
		t.Error("a command line mindie-apiserver would refuse was read")
	}
}

func TestParseProc(t *testing.T) {
	status := "Name:\tmindie-apiserver\nVmPeak:\t 2000000 kB\nVmHWM:\t  180224 kB\nVmRSS:\t  102400 kB\nThreads:\t12\n"
	rss, hwm, err := parseStatus(strings.NewReader(status))
	if err != nil || rss != 102400 || hwm != 180224 {
		t.Errorf("status: rss %d hwm %d err %v, want 102400 and 180224", rss, hwm, err)
	}
	if _, _, err := parseStatus(strings.NewReader("Name:\tkthreadd\nThreads:\t1\n")); err == nil {
		t.Error("a status without VmRSS parsed")
	}
	// A command with spaces and parentheses; utime 250, stime 50.
	stat := "4242 (mindie (api) server) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 12 0"
	if ticks, err := parseStatTicks(stat); err != nil || ticks != 300 {
		t.Errorf("stat: %d ticks, err %v, want 300", ticks, err)
	}
	if _, err := parseStatTicks("4242 (x) S 1 2"); err == nil {
		t.Error("a short stat parsed")
	}
}

func TestMemoryWindow(t *testing.T) {
	t0 := time.Now()
	m := &memory{}
	for i, kib := range []int64{100 << 10, 300 << 10, 200 << 10, 120 << 10} {
		m.samples = append(m.samples, memSample{at: t0.Add(time.Duration(i) * time.Second), rssKiB: kib})
	}
	if p := m.peakMiB(t0, t0.Add(3*time.Second)); p != 300 {
		t.Errorf("peak over all %g MiB, want 300", p)
	}
	if p := m.peakMiB(t0.Add(2*time.Second), time.Time{}); p != 200 {
		t.Errorf("peak from the third sample %g MiB, want 200", p)
	}
	if med := m.medianMiB(t0, t0.Add(time.Second)); med != 200 {
		t.Errorf("median of the first two %g MiB, want 200", med)
	}
	if m.lastMiB() != 120 || m.count() != 4 {
		t.Errorf("last %g MiB of %d samples, want 120 of 4", m.lastMiB(), m.count())
	}
	if p := m.peakMiB(t0.Add(time.Hour), time.Time{}); p != 0 {
		t.Errorf("peak of no sample %g, want 0", p)
	}
}

func TestStatusWrites(t *testing.T) {
	line := func(verb, stage, ns, name, sub string, code int) string {
		return `{"kind":"Event","stage":"` + stage + `","verb":"` + verb + `","objectRef":{"resource":"edgedeployments","namespace":"` + ns +
			`","name":"` + name + `","subresource":"` + sub + `"},"responseStatus":{"code":` + strconv.Itoa(code) + `}}`
	}
	log := strings.Join([]string{
		line("update", "ResponseComplete", "j", "edge-bench", "status", 200),
		line("update", "ResponseComplete", "j", "edge-bench", "status", 409),
		line("patch", "ResponseComplete", "j", "edge-bench", "status", 200),
		line("update", "ResponseComplete", "j", "edge-bench", "", 200),           // the finalizer, not the status
		line("update", "ResponseComplete", "other", "edge-bench", "status", 200), // another namespace
		line("update", "ResponseStarted", "j", "edge-bench", "status", 200),      // not a whole request
		`{"kind":"Event","stage":"ResponseComplete","verb":"create","objectRef":{"resource":"edgedeployments","namespace":"j","name":"edge-bench"}}`,
	}, "\n")
	w, c, err := statusWrites(strings.NewReader(log), "j", "edge-bench")
	if err != nil || w != 3 || c != 1 {
		t.Errorf("%d writes, %d conflicts, err %v: want 3 and 1", w, c, err)
	}
	if _, _, err := statusWrites(strings.NewReader("{not json"), "j", "edge-bench"); err == nil {
		t.Error("a broken audit log was read")
	}
}

func TestPodWatch(t *testing.T) {
	w := newPodWatch()
	pod := func(uid, node string, phase corev1.PodPhase, ready, deleting bool) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid), Name: "p-" + uid}, Spec: corev1.PodSpec{NodeName: node},
			Status: corev1.PodStatus{Phase: phase}}
		if ready {
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		}
		if deleting {
			p.DeletionTimestamp = &metav1.Time{Time: time.Now()}
		}
		return p
	}
	w.update(pod("1", "", corev1.PodPending, false, false))
	w.update(pod("2", "edge-1", corev1.PodPending, true, false)) // Ready but not Running: not counted
	w.update(pod("3", "edge-2", corev1.PodRunning, true, true))  // being deleted: not counted
	if c := w.counts(); c != (podCounts{seen: 3, scheduled: 2, ready: 0, live: 3}) {
		t.Fatalf("counts %+v", c)
	}
	select {
	case <-w.changed:
	default:
		t.Fatal("an event did not wake the waiter")
	}
	w.update(pod("1", "edge-0", corev1.PodRunning, true, false))
	w.remove(cache.DeletedFinalStateUnknown{Key: "ns/p-3", Obj: pod("3", "edge-2", corev1.PodRunning, true, true)})
	if c := w.counts(); c != (podCounts{seen: 3, scheduled: 3, ready: 1, live: 2}) {
		t.Fatalf("counts %+v", c)
	}
	first := w.latest(func(p *podTimes) time.Time { return p.seen }, true)
	last := w.latest(func(p *podTimes) time.Time { return p.seen }, false)
	if first.IsZero() || last.Before(first) || !w.latest(func(p *podTimes) time.Time { return p.gone }, false).After(first) {
		t.Errorf("first seen %v, last seen %v", first, last)
	}
	if !w.latest(func(p *podTimes) time.Time { return time.Time{} }, false).IsZero() {
		t.Error("the latest of nothing is not zero")
	}
}

func TestEnded(t *testing.T) {
	for p, want := range map[v1alpha1.EdgeDeploymentPhase]bool{
		"": false, v1alpha1.EdgePhaseQueued: false, v1alpha1.EdgePhaseRunning: false,
		v1alpha1.EdgePhaseSucceeded: true, v1alpha1.EdgePhaseTimedOut: true, v1alpha1.EdgePhaseFailed: true,
		v1alpha1.EdgePhasePartiallySucceeded: true, v1alpha1.EdgePhaseStopped: true,
	} {
		if ended(p) != want {
			t.Errorf("ended(%q) = %t, want %t", p, !want, want)
		}
	}
}

func TestParseFlags(t *testing.T) {
	base := []string{"-kubeconfig", "k", "-pid-file", "p", "-out", "o"}
	if c, err := parse(base); err != nil || c.nodes != v1alpha1.MaxEdgeTargets || c.maxConcurrent != 100 || c.creators != 100 {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
	for _, bad := range [][]string{
		{"-kubeconfig", "k", "-out", "o"},
		append(base, "-nodes", "1001"),
		append(base, "-max-concurrent-nodes", "0"),
		append(base, "-direct-namespace", "x", "-job-namespace", "x"),
		append(base, "-timeout", "25h"),
	} {
		if _, err := parse(bad); err == nil {
			t.Errorf("parse(%q) accepted", bad)
		}
	}
}

func TestThrottling(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 6, 3, 0, 0, time.Local)
	log := strings.Join([]string{
		`I1201 06:02:59.000001    3673 request.go:752] "Waited before sending request" delay="9.5s" reason="client-side throttling, not priority and fairness" verb="GET" URL="https://127.0.0.1:1/x"`, // before the window
		`I1201 06:03:10.964085    3673 request.go:752] "Waited before sending request" delay="4.997739448s" reason="client-side throttling, not priority and fairness" verb="GET" URL="https://127.0.0.1:1/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/edge-805"`,
		`06:03:15.000 ascend-sim: pod a/b: started on node edge-1 with IP 127.80.0.2, NPUs []`,
		`I1201 06:03:20.000000    3673 request.go:752] "Waited before sending request" delay="1.5s" reason="client-side throttling, not priority and fairness" verb="PUT" URL="https://127.0.0.1:1/api/v1/namespaces/a/pods/b/status"`,
		`I1201 06:03:30.000000    3673 request.go:752] "Waited before sending request" delay="11.8s" reason="client-side throttling, not priority and fairness" verb="DELETE" URL="https://127.0.0.1:1/api/v1/namespaces/a/pods/b"`,
		`I1201 06:10:00.000000    3673 request.go:752] "Waited before sending request" delay="20s" reason="client-side throttling, not priority and fairness" verb="GET" URL="https://127.0.0.1:1/y"`, // after it
	}, "\n")
	got, err := throttling(strings.NewReader(log), "ascend-sim", t0, t0.Add(5*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if got.Component != "ascend-sim" || got.Lines != 3 || got.MedianWaitSeconds != 5 || got.MaxWaitSeconds != 11.8 {
		t.Errorf("throttling %+v: want 3 lines in the window, median 5 s, max 11.8 s", got)
	}
	none, err := throttling(strings.NewReader("I1201 06:03:10.000000 1 x.go:1] \"Caches are synced\"\n"), "mindie-apiserver", t0, t0.Add(time.Minute))
	if err != nil || none.Lines != 0 || none.MaxWaitSeconds != 0 {
		t.Errorf("a log without throttling: %+v, %v", none, err)
	}
}

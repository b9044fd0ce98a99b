package kubelet

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http/httptest"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The fake workload supports fault injection: a hang fails /live, a crash
// closes its server, a slowdown is recorded.
func (w *fakeWorkload) SetHung(hung bool)          { w.app.live.Store(!hung) }
func (w *fakeWorkload) Crash()                     { _ = w.srv.Close() }
func (w *fakeWorkload) SetSlowdown(factor float64) { w.app.slow.Store(math.Float64bits(factor)) }

func (w *fakeWorkload) FailNextDecode(n int)      { w.app.decodeErrors.Add(int32(n)) }
func (w *fakeWorkload) RecomputeNextDecode(n int) { w.app.recomputes.Add(int32(n)) }
func (w *fakeWorkload) DropDResult() bool         { w.app.drops.Add(1); return true }

func post(t *testing.T, srv *httptest.Server, path, body string) (int, ControlError) {
	t.Helper()
	resp, err := srv.Client().Post(srv.URL+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ce ControlError
	_ = json.NewDecoder(resp.Body).Decode(&ce)
	return resp.StatusCode, ce
}

func TestControlAPI(t *testing.T) {
	sim, client, fw := startSim(t, 2)
	srv := httptest.NewServer(sim.ControlHandler()) // on 127.0.0.1
	t.Cleanup(srv.Close)
	ctx := context.Background()
	eventually(t, "nodes registered", func() (bool, string) {
		_, err := client.CoreV1().ConfigMaps("kube-system").Get(ctx, "mindx-dl-deviceinfo-ascend-1", metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})

	// Bad requests name the bad field.
	for _, tc := range []struct{ path, body, field string }{
		{"/faults/npu", `{"node":"nope","chip":1,"level":"SeparateNPU"}`, "node"},
		{"/faults/npu", `{"node":"ascend-0","chip":8,"level":"SeparateNPU"}`, "chip"},
		{"/faults/npu", `{"node":"ascend-0","level":"SeparateNPU"}`, "chip"},
		{"/faults/npu", `{"node":"ascend-0","chip":1,"level":"Broken"}`, "level"},
		{"/faults/npu", `{"node":"ascend-0","chip":"one"}`, "chip"},
		{"/faults/npu", `{"node":"ascend-0","chip":1,"colour":"red"}`, "colour"},
		{"/faults/node", `{"node":"ascend-0"}`, "down"},
		{"/faults/node", `{"down":true}`, "node"},
		{"/faults/pod", `{"name":"p1","action":"explode"}`, "action"},
		{"/faults/pod", `{"name":"p1","action":"slow"}`, "factor"},
		{"/faults/pod", `{"name":"nope","action":"crash"}`, "name"},
		{"/faults/pod", `{"action":"crash"}`, "name"},
	} {
		code, ce := post(t, srv, tc.path, tc.body)
		if code/100 != 4 || ce.Field != tc.field || ce.Error == "" {
			t.Errorf("POST %s %s: %d %+v, want a 4xx naming field %q", tc.path, tc.body, code, ce, tc.field)
		}
	}

	// NPU fault and clearing it.
	if code, ce := post(t, srv, "/faults/npu", `{"node":"ascend-1","chip":3,"level":"SeparateNPU"}`); code != 200 {
		t.Fatalf("npu fault: %d %+v", code, ce)
	}
	cm, _ := client.CoreV1().ConfigMaps("kube-system").Get(ctx, "mindx-dl-deviceinfo-ascend-1", metav1.GetOptions{})
	if doc := cm.Data["DeviceInfoCfg"]; !strings.Contains(doc, `"huawei.com/Ascend910-Unhealthy":"Ascend910-3"`) || !strings.Contains(doc, `SeparateNPU`) {
		t.Errorf("device info after fault: %s", doc)
	}
	if code, ce := post(t, srv, "/faults/npu", `{"node":"ascend-1","chip":3,"level":""}`); code != 200 {
		t.Fatalf("npu clear: %d %+v", code, ce)
	}
	cm, _ = client.CoreV1().ConfigMaps("kube-system").Get(ctx, "mindx-dl-deviceinfo-ascend-1", metav1.GetOptions{})
	if doc := cm.Data["DeviceInfoCfg"]; !strings.Contains(doc, `"huawei.com/Ascend910-Unhealthy":""`) {
		t.Errorf("device info after clearing: %s", doc)
	}

	// Node down and back.
	nodeReady := func() corev1.ConditionStatus {
		n, _ := client.CoreV1().Nodes().Get(ctx, "ascend-1", metav1.GetOptions{})
		return nodeCondition(n, corev1.NodeReady)
	}
	if code, ce := post(t, srv, "/faults/node", `{"node":"ascend-1","down":true}`); code != 200 || !sim.isDown("ascend-1") {
		t.Fatalf("node down: %d %+v, down=%t", code, ce, sim.isDown("ascend-1"))
	}
	if code, ce := post(t, srv, "/faults/node", `{"node":"ascend-1","down":false}`); code != 200 || sim.isDown("ascend-1") || nodeReady() != corev1.ConditionTrue {
		t.Fatalf("node up: %d %+v, down=%t, Ready=%s", code, ce, sim.isDown("ascend-1"), nodeReady())
	}

	// Pod faults act on the running workload.
	pods := client.CoreV1().Pods("default")
	if _, err := pods.Create(ctx, testPod("p1", "ascend-0", 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	fw.app("p1").ready.Store(true)
	status := func() (bool, int32) {
		p, _ := pods.Get(ctx, "p1", metav1.GetOptions{})
		if len(p.Status.ContainerStatuses) == 0 {
			return false, -1
		}
		return podCondition(p, corev1.PodReady) == corev1.ConditionTrue, p.Status.ContainerStatuses[0].RestartCount
	}
	eventually(t, "p1 ready", func() (bool, string) { r, n := status(); return r && n == 0, fmt.Sprint(r, n) })
	if code, ce := post(t, srv, "/faults/pod", `{"namespace":"default","name":"p1","action":"slow","factor":4}`); code != 200 {
		t.Fatalf("slow: %d %+v", code, ce)
	}
	if f := math.Float64frombits(fw.app("p1").slow.Load()); f != 4 {
		t.Errorf("slowdown %g, want 4", f)
	}
	// Decode faults of a PD decode instance.
	for _, body := range []string{`{"name":"p1","action":"decode-error","factor":2}`, `{"name":"p1","action":"decode-recompute","factor":1}`,
		`{"name":"p1","action":"drop-dresult"}`} {
		if code, ce := post(t, srv, "/faults/pod", body); code != 200 {
			t.Fatalf("%s: %d %+v", body, code, ce)
		}
	}
	if a := fw.app("p1"); a.decodeErrors.Load() != 2 || a.recomputes.Load() != 1 || a.drops.Load() != 1 {
		t.Errorf("decode faults: errors %d, recomputes %d, drops %d; want 2, 1, 1", a.decodeErrors.Load(), a.recomputes.Load(), a.drops.Load())
	}
	if code, ce := post(t, srv, "/faults/pod", `{"name":"p1","action":"decode-error"}`); code/100 != 4 || ce.Field != "factor" {
		t.Errorf("decode-error without a count: %d %+v, want a 4xx naming factor", code, ce)
	}
	if code, ce := post(t, srv, "/faults/pod", `{"name":"p1","action":"crash"}`); code != 200 {
		t.Fatalf("crash: %d %+v", code, ce)
	}
	eventually(t, "p1 restarted after the crash", func() (bool, string) { r, n := status(); return r && n == 1, fmt.Sprint(r, n) })
	if s := fw.app("p1").starts.Load(); s != 2 {
		t.Errorf("workload starts = %d, want 2", s)
	}
	// The previous run's log tells why it ended.
	clog, _, _ := sim.findLog("default", "p1", "mindie", true)
	if lines, _, _ := clog.snapshot(); len(lines) == 0 || !strings.Contains(lines[len(lines)-1].text, "terminated: reason Error, exit code 1") {
		t.Errorf("previous log: %v", lines)
	}
	if code, ce := post(t, srv, "/faults/pod", `{"name":"p1","action":"hang"}`); code != 200 {
		t.Fatalf("hang: %d %+v", code, ce)
	}
	eventually(t, "p1 restarted after the hang (liveness)", func() (bool, string) { r, n := status(); return r && n == 2, fmt.Sprint(r, n) })
}

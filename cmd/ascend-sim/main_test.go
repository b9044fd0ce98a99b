package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"mindie.io/deployer/pkg/simulator/kubelet"
)

func TestFaultCLI(t *testing.T) {
	client := fake.NewClientset()
	sim, err := kubelet.New(kubelet.Config{Client: client, NodeCount: 1, Log: io.Discard,
		PodCIDR: fmt.Sprintf("127.1.%d.0/24", 100+rand.IntN(150)), LeaseInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = sim.Run(ctx) }()
	file := filepath.Join(t.TempDir(), "control")
	if _, err := startControl(ctx, sim, "10.0.0.1:0", file, io.Discard); err == nil {
		t.Error("a non-loopback control address was accepted")
	}
	stop, err := startControl(ctx, sim, "127.0.0.1:0", file, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	raw, err := os.ReadFile(file)
	if err != nil || !strings.HasPrefix(string(raw), "127.0.0.1:") {
		t.Fatalf("control address file: %q %v", raw, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		// The lease comes after the device info ConfigMap, which the
		// registration would otherwise overwrite after a fault below.
		if _, err := client.CoordinationV1().Leases(kubelet.LeaseNamespace).Get(ctx, "ascend-0", metav1.GetOptions{}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("node not registered")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cli := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := run(ctx, append([]string{"fault"}, args...), &errb)
		_ = out
		return code, errb.String()
	}
	if code, msg := cli("npu", "--control-addr-file", file, "--node", "ascend-0", "--chip", "3", "--level", "SeparateNPU"); code != 0 {
		t.Fatalf("fault npu: %d %s", code, msg)
	}
	cm, _ := client.CoreV1().ConfigMaps("kube-system").Get(ctx, "mindx-dl-deviceinfo-ascend-0", metav1.GetOptions{})
	if !strings.Contains(cm.Data["DeviceInfoCfg"], `"huawei.com/Ascend910-Unhealthy":"Ascend910-3"`) {
		t.Errorf("device info: %s", cm.Data["DeviceInfoCfg"])
	}
	if code, msg := cli("npu", "--control-addr-file", file, "--node", "ascend-0", "--chip", "2", "--level", "ManuallySeparateNPU"); code != 0 {
		t.Fatalf("fault npu ManuallySeparateNPU: %d %s", code, msg)
	}
	cm, _ = client.CoreV1().ConfigMaps("kube-system").Get(ctx, "mindx-dl-deviceinfo-ascend-0", metav1.GetOptions{})
	if !strings.Contains(cm.Data["DeviceInfoCfg"], `"huawei.com/Ascend910-Unhealthy":"Ascend910-2,Ascend910-3"`) || cm.Data["ManuallySeparateNPU"] != "Ascend910-2" {
		t.Errorf("device info: %v", cm.Data)
	}
	if code, msg := cli("node", "--control-addr", strings.TrimSpace(string(raw)), "--node", "ascend-0", "--down=true"); code != 0 {
		t.Fatalf("fault node: %d %s", code, msg)
	}
	lease := func() time.Time {
		l, _ := client.CoordinationV1().Leases(kubelet.LeaseNamespace).Get(ctx, "ascend-0", metav1.GetOptions{})
		return l.Spec.RenewTime.Time
	}
	down := lease()
	time.Sleep(300 * time.Millisecond) // three lease intervals
	if l := lease(); !l.Equal(down) {
		t.Errorf("the lease of a down node was renewed: %s -> %s", down, l)
	}
	if code, msg := cli("node", "--control-addr-file", file, "--node", "ascend-0", "--down=false"); code != 0 {
		t.Fatalf("fault node up: %d %s", code, msg)
	}
	n, _ := client.CoreV1().Nodes().Get(ctx, "ascend-0", metav1.GetOptions{})
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status != corev1.ConditionTrue {
			t.Errorf("Ready = %s after node up", c.Status)
		}
	}
	if l := lease(); !l.After(down) {
		t.Errorf("the lease was not renewed when the node came back")
	}
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"npu", "--control-addr-file", file, "--node", "nope", "--chip", "1", "--level", "SeparateNPU"}, 1, "node: no simulated node"},
		{[]string{"npu", "--control-addr-file", file, "--node", "ascend-0", "--level", "SeparateNPU"}, 1, "chip: required"},
		{[]string{"pod", "--control-addr-file", file, "--name", "nope", "--action", "crash"}, 1, "name: pod default/nope is not running"},
		{[]string{"pod", "--control-addr-file", file, "--name", "p", "--action", "boom"}, 1, "action: unknown action"},
		{[]string{"node", "--control-addr-file", file, "--node", "ascend-0", "--down=maybe"}, 2, "--down must be true or false"},
		{[]string{"node", "--control-addr", "10.1.2.3:80", "--node", "ascend-0", "--down=false"}, 2, "not a loopback address"},
		{[]string{"pull", "--control-addr-file", file, "--node", "ascend-0", "--fail=yes"}, 2, "--fail must be true or false"},
		{[]string{"pull", "--control-addr-file", file, "--node", "nope", "--fail=true"}, 1, "node: no simulated node"},
		{[]string{"pull", "--control-addr-file", file, "--node", "ascend-0", "--fail=true"}, 0, ""},
		{[]string{"pull", "--control-addr-file", file, "--node", "ascend-0", "--fail=false"}, 0, ""},
		{[]string{"disk"}, 2, "unknown fault kind"},
		{[]string{"npu", "--control-addr-file", file, "--node", "ascend-0", "--chip", "1", "--level", "Broken"}, 1,
			"unknown fault level \"Broken\": want one of NotHandleFault, SubHealthFault, RestartRequest, RestartBusiness, FreeRestartNPU, RestartNPU, PreSeparateNPU, SeparateNPU, ManuallySeparateNPU"},
		{nil, 2, "PreSeparateNPU, SeparateNPU, ManuallySeparateNPU"},
	} {
		code, msg := cli(tc.args...)
		if code != tc.code || !strings.Contains(msg, tc.msg) {
			t.Errorf("fault %v: %d %q, want %d and %q", tc.args, code, msg, tc.code, tc.msg)
		}
	}
}

func TestServeFlags(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--crash-loop-backoff=0s"}, "--crash-loop-backoff must be positive"},
		{[]string{"--crash-loop-backoff=-2s"}, "--crash-loop-backoff must be positive"},
		{[]string{"--crash-loop-backoff=2s", "--device-ip-cidr=10.0.0.0/16"}, "device IP CIDR 10.0.0.0/16 is not an IPv4 loopback range"},
		{[]string{"--device-ip-cidr=127.1.0.0/24"}, "overlaps the pod CIDR"},
		{[]string{"--nodes=0"}, "no nodes to simulate"},
		{[]string{"--nodes=-1"}, "must not be negative"},
		{[]string{"--edge-nodes=-1"}, "must not be negative"},
		{[]string{"--edge-node-spec=edge-0:arm64:Ascend310P=x"}, `edge node "edge-0:arm64:Ascend310P=x": NPU count "x" is not a number`},
		{[]string{"--edge-nodes=2", "--edge-node-cidr=127.1.0.0/24"}, "edge node IP CIDR 127.1.0.0/24 overlaps"},
		{[]string{"--edge-node-spec=ascend-0"}, `duplicate node name "ascend-0"`},
	} {
		var stderr bytes.Buffer
		code := run(context.Background(), append([]string{"serve", "--kubeconfig=" + kubeconfig, "--control-addr="}, tc.args...), &stderr)
		if code != 2 || !strings.Contains(stderr.String(), tc.msg) {
			t.Errorf("ascend-sim %v: exit %d, %q; want 2 and %q", tc.args, code, stderr.String(), tc.msg)
		}
	}
}

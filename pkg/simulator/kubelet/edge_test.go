package kubelet

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/pkg/ascend"
)

// testEdgeCIDR is a /24 of 127.2.0.0/16 chosen at random away from the
// 127.2.0.x of hack/local-up.sh, so that tests rarely share edge node
// addresses (and host ports) with each other or a local cluster.
func testEdgeCIDR() string { return fmt.Sprintf("127.2.%d.0/24", 100+rand.IntN(150)) }

// testPort is a port chosen at random for host ports and host-network
// pods, which are served on shared node addresses.
func testPort() int32 { return int32(20000 + rand.IntN(12000)) } // below the ephemeral ports

// startEdgeSim runs a simulator with one Ascend node, the default edge
// nodes edge-0 (arm64, Ascend310P), edge-1 (arm64, no NPU), edge-2 (amd64,
// Ascend310P), and the default workload starter (generic apps for every
// image but MindIE's and the router's).
func startEdgeSim(t *testing.T, mod func(*Config)) (*Simulator, *fake.Clientset) {
	t.Helper()
	client := fake.NewClientset()
	cfg := Config{Client: client, NodeCount: 1, EdgeNodes: DefaultEdgeNodes(3), EdgeNodeIPCIDR: testEdgeCIDR(),
		CrashLoopBackOff: 100 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	cfg.StartWorkload = defaultWorkloadStarter(cfg)
	sim, _, _ := startSimConfig(t, cfg)
	return sim, client
}

// genericPod is a pod of one container "app" of image on node.
func genericPod(name, node, image string, policy corev1.RestartPolicy, ports ...corev1.ContainerPort) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)},
		Spec: corev1.PodSpec{
			NodeName: node, RestartPolicy: policy,
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			Tolerations:                   []corev1.Toleration{{Key: EdgeTaintKey, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
			Containers:                    []corev1.Container{{Name: "app", Image: image, Ports: ports}},
		},
	}
}

func createPod(t *testing.T, client *fake.Clientset, pod *corev1.Pod) {
	t.Helper()
	if _, err := client.CoreV1().Pods(pod.Namespace).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// containerLogText is the current log of container c of pod default/name.
func containerLogText(sim *Simulator, name, c string) string {
	clog, _, msg := sim.findLog("default", name, c, false)
	if clog == nil {
		return "(no log: " + msg + ")"
	}
	lines, _, _ := clog.snapshot()
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.text + "\n")
	}
	return b.String()
}

var loopbackClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, DialContext: DialLoopback, DisableKeepAlives: true}}

// get GETs url and returns the status and body; status 0 when it could
// not connect.
func get(url string) (int, string) {
	resp, err := loopbackClient.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func hostPort(ip string, port int32) string { return net.JoinHostPort(ip, strconv.Itoa(int(port))) }

func TestEdgeNodes(t *testing.T) {
	cidr := testEdgeCIDR()
	sim, client := startEdgeSim(t, func(c *Config) { c.EdgeNodeIPCIDR = cidr })
	ctx := context.Background()
	base := strings.TrimSuffix(cidr, "0/24")
	eventually(t, "edge nodes registered", func() (bool, string) {
		for _, n := range []string{"edge-0", "edge-1", "edge-2"} {
			node, err := client.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{})
			if err != nil || nodeCondition(node, corev1.NodeReady) != corev1.ConditionTrue {
				return false, fmt.Sprintf("%s: %v", n, err)
			}
			// The lease comes after the device info.
			if _, err := client.CoordinationV1().Leases(LeaseNamespace).Get(ctx, n, metav1.GetOptions{}); err != nil {
				return false, fmt.Sprintf("%s: %v", n, err)
			}
		}
		return true, ""
	})
	if diff := cmp.Diff([]string{"ascend-0", "edge-0", "edge-1", "edge-2"}, sim.NodeNames()); diff != "" {
		t.Errorf("NodeNames (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		name, arch, npuType, ip string
		npus                    int64
	}{
		{"edge-0", "arm64", "Ascend310P", base + "1", 1},
		{"edge-1", "arm64", "", base + "2", 0},
		{"edge-2", "amd64", "Ascend310P", base + "3", 1},
	} {
		n, _ := client.CoreV1().Nodes().Get(ctx, tc.name, metav1.GetOptions{})
		want := map[string]string{EdgeLabel: "true", EdgeRoleLabel: "", SimulatedLabel: SimulatedEdgeValue,
			corev1.LabelArchStable: tc.arch, corev1.LabelOSStable: "linux", corev1.LabelHostname: tc.name}
		if tc.npuType != "" {
			want[ascend.LabelAccelerator] = "huawei-" + tc.npuType
			want[ascend.LabelNPUChipName] = tc.npuType
			want[ascend.LabelWorkerSelector] = ascend.WorkerSelectorDLSWorkerNode
		}
		if diff := cmp.Diff(want, n.Labels); diff != "" {
			t.Errorf("%s labels (-want +got):\n%s", tc.name, diff)
		}
		if diff := cmp.Diff([]corev1.Taint{{Key: EdgeTaintKey, Effect: corev1.TaintEffectNoSchedule}}, n.Spec.Taints); diff != "" {
			t.Errorf("%s taints (-want +got):\n%s", tc.name, diff)
		}
		if n.Status.Addresses[0].Address != tc.ip || sim.HostIP(tc.name) != tc.ip || n.Status.NodeInfo.Architecture != tc.arch {
			t.Errorf("%s: address %v, HostIP %s, architecture %s; want %s, %s", tc.name, n.Status.Addresses, sim.HostIP(tc.name),
				n.Status.NodeInfo.Architecture, tc.ip, tc.arch)
		}
		q, has := n.Status.Allocatable["huawei.com/Ascend310P"]
		if (tc.npus > 0) != has || q.Value() != tc.npus {
			t.Errorf("%s: allocatable %v", tc.name, n.Status.Allocatable)
		}
		if _, ok := n.Status.Allocatable["huawei.com/Ascend910"]; ok {
			t.Errorf("%s has Ascend910 NPUs", tc.name)
		}
		cm, err := client.CoreV1().ConfigMaps("kube-system").Get(ctx, "mindx-dl-deviceinfo-"+tc.name, metav1.GetOptions{})
		if tc.npus == 0 {
			if err == nil {
				t.Errorf("%s, without NPUs, has a device info ConfigMap", tc.name)
			}
		} else if err != nil || !strings.Contains(cm.Data["DeviceInfoCfg"], `"huawei.com/Ascend310P":"Ascend310P-0"`) {
			t.Errorf("%s device info: %v %v", tc.name, cm, err)
		}
	}
	// The Ascend node is as before: simulated=true, no taint, 127.0.0.1.
	n, _ := client.CoreV1().Nodes().Get(ctx, "ascend-0", metav1.GetOptions{})
	if n.Labels[SimulatedLabel] != "true" || n.Labels[EdgeLabel] != "" || len(n.Spec.Taints) != 0 || n.Status.Addresses[0].Address != NodeIP {
		t.Errorf("ascend-0: labels %v, taints %v, addresses %v", n.Labels, n.Spec.Taints, n.Status.Addresses)
	}
	if l, _ := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: SimulatedLabel + "=true"}); len(l.Items) != 1 {
		t.Errorf("%s=true selects %d nodes, want the Ascend node only", SimulatedLabel, len(l.Items))
	}

	// NPU faults: an edge node's chips are Ascend310P; one without has none.
	if err := sim.SetNPUFault("edge-1", 0, ascend.FaultSeparateNPU); err == nil || !strings.Contains(err.Error(), "has no NPUs") {
		t.Errorf("fault on edge-1: %v", err)
	}
	if err := sim.SetNPUFault("edge-0", 0, ascend.FaultSeparateNPU); err != nil {
		t.Fatal(err)
	}
	cm, _ := client.CoreV1().ConfigMaps("kube-system").Get(ctx, "mindx-dl-deviceinfo-edge-0", metav1.GetOptions{})
	if !strings.Contains(cm.Data["DeviceInfoCfg"], `"huawei.com/Ascend310P-Unhealthy":"Ascend310P-0"`) {
		t.Errorf("edge-0 device info after the fault: %s", cm.Data["DeviceInfoCfg"])
	}

	// The control API: chips per node; edge nodes are listed.
	srv := httptest.NewServer(sim.ControlHandler()) // on 127.0.0.1
	defer srv.Close()
	for body, want := range map[string]string{
		`{"node":"edge-1","chip":0,"level":"SeparateNPU"}`: "chip: node edge-1 has no NPUs",
		`{"node":"edge-0","chip":1,"level":"SeparateNPU"}`: "chip: chip 1 out of range 0..0",
		`{"node":"edge-9","chip":0,"level":""}`:            "(have ascend-0, edge-0, edge-1, edge-2)",
	} {
		if code, ce := post(t, srv, "/faults/npu", body); code/100 != 4 || !strings.Contains(ce.Error, want) {
			t.Errorf("POST /faults/npu %s: %d %+v, want %q", body, code, ce, want)
		}
	}
	if code, ce := post(t, srv, "/faults/node", `{"node":"edge-1","down":false}`); code != http.StatusOK {
		t.Errorf("POST /faults/node edge-1: %d %+v", code, ce)
	}

	// The kubelet API answers on every edge node's address, the port of
	// its daemonEndpoints.
	port := sim.KubeletAddr().Port
	n, _ = client.CoreV1().Nodes().Get(ctx, "edge-2", metav1.GetOptions{})
	if n.Status.DaemonEndpoints.KubeletEndpoint.Port != int32(port) {
		t.Errorf("edge-2 kubelet port %d, want %d", n.Status.DaemonEndpoints.KubeletEndpoint.Port, port)
	}
	tlsClient := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, DialContext: DialLoopback,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // a test of a self-signed endpoint
	resp, err := tlsClient.Get("https://" + hostPort(base+"3", int32(port)) + "/healthz")
	if err != nil {
		t.Fatalf("kubelet API on edge-2's address: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("kubelet API on edge-2's address: %s", resp.Status)
	}
}

func TestEdgeNodesUntaintedAndReregistered(t *testing.T) {
	client := fake.NewClientset()
	// A node left by an earlier run with an NPU and another taint.
	old := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "edge-1", Labels: map[string]string{ascend.LabelAccelerator: "huawei-Ascend310P", "keep": "me"}},
		Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: "other", Effect: corev1.TaintEffectNoExecute}, {Key: EdgeTaintKey, Effect: corev1.TaintEffectNoSchedule}}}}
	if _, err := client.CoreV1().Nodes().Create(context.Background(), old, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, _ = startEdgeSim(t, func(c *Config) {
		c.Client, c.NodeCount, c.EdgeNodesUntainted = client, -1, true
	})
	eventually(t, "edge-1 registered again", func() (bool, string) {
		n, _ := client.CoreV1().Nodes().Get(context.Background(), "edge-1", metav1.GetOptions{})
		return n.Labels[EdgeLabel] == "true", fmt.Sprint(n.Labels)
	})
	n, _ := client.CoreV1().Nodes().Get(context.Background(), "edge-1", metav1.GetOptions{})
	if _, ok := n.Labels[ascend.LabelAccelerator]; ok || n.Labels["keep"] != "me" {
		t.Errorf("labels %v: want the stale accelerator label gone, others kept", n.Labels)
	}
	if diff := cmp.Diff([]corev1.Taint{{Key: "other", Effect: corev1.TaintEffectNoExecute}}, n.Spec.Taints); diff != "" {
		t.Errorf("taints (-want +got):\n%s", diff)
	}
	if _, err := client.CoreV1().Nodes().Get(context.Background(), "ascend-0", metav1.GetOptions{}); err == nil {
		t.Error("NodeCount -1 registered an Ascend node")
	}
}

func TestParseEdgeNodes(t *testing.T) {
	got, err := ParseEdgeNodes("edge-0:arm64:Ascend310P=2, edge-1:amd64,edge-2,e3:Ascend310P,e4:Ascend310P=0")
	if err != nil {
		t.Fatal(err)
	}
	want := []EdgeNode{
		{Name: "edge-0", Arch: "arm64", NPUType: "Ascend310P", NPUs: 2},
		{Name: "edge-1", Arch: "amd64"},
		{Name: "edge-2", Arch: "arm64"},
		{Name: "e3", Arch: "arm64", NPUType: "Ascend310P", NPUs: 1},
		{Name: "e4", Arch: "arm64"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, bad := range []string{":arm64", "a:b:c:d", "a:Ascend310P=x", "a::arm64"} {
		if _, err := ParseEdgeNodes(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if diff := cmp.Diff([]EdgeNode{
		{Name: "edge-0", Arch: "arm64", NPUType: "Ascend310P", NPUs: 1}, {Name: "edge-1", Arch: "arm64"},
		{Name: "edge-2", Arch: "amd64", NPUType: "Ascend310P", NPUs: 1}, {Name: "edge-3", Arch: "arm64"},
	}, DefaultEdgeNodes(4)); diff != "" {
		t.Errorf("DefaultEdgeNodes (-want +got):\n%s", diff)
	}
}

func TestEdgeConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"duplicate", Config{NodeNames: []string{"edge-0"}, EdgeNodes: DefaultEdgeNodes(1)}, "duplicate node name"},
		{"npus without type", Config{EdgeNodes: []EdgeNode{{Name: "e", NPUs: 2}}}, "NPUs of no type"},
		{"type without npus", Config{EdgeNodes: []EdgeNode{{Name: "e", NPUType: "Ascend310P"}}}, "at least 1 chip"},
		{"overlapping CIDR", Config{EdgeNodes: DefaultEdgeNodes(1), EdgeNodeIPCIDR: "127.1.0.0/24"}, "overlaps"},
		{"not loopback", Config{EdgeNodes: []EdgeNode{{Name: "e", IP: "10.0.0.1"}}}, "not an IPv4 loopback"},
		{"same IP", Config{EdgeNodes: []EdgeNode{{Name: "a", IP: "127.3.0.1"}, {Name: "b", IP: "127.3.0.1"}}}, "same IP"},
		{"no nodes", Config{NodeCount: -1}, "no nodes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Client = fake.NewClientset()
			if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestWorkloadKind(t *testing.T) {
	for _, tc := range []struct {
		c    corev1.Container
		want string
	}{
		{corev1.Container{Image: "mindie:server"}, WorkloadMindIE},
		{corev1.Container{Image: "swr.example.com/ascendhub/mindie:2.0.RC1-800I-A2"}, WorkloadMindIE},
		{corev1.Container{Image: "registry:5000/MindIE-Service@sha256:abc"}, WorkloadMindIE},
		{corev1.Container{Image: "nginx:1.25"}, WorkloadGeneric},
		{corev1.Container{Image: "mindie/edge-agent:1"}, WorkloadGeneric}, // the repository's last name decides
		{corev1.Container{Image: "hand:edit"}, WorkloadGeneric},
		{corev1.Container{Image: "app:1", Env: []corev1.EnvVar{{Name: ServerConfigEnv, Value: "{}"}}}, WorkloadMindIE},
		{corev1.Container{Image: "mindie:server", Env: []corev1.EnvVar{{Name: EnvWorkload, Value: WorkloadGeneric}}}, WorkloadGeneric},
		{corev1.Container{Image: "app:1", Env: []corev1.EnvVar{{Name: EnvWorkload, Value: WorkloadMindIE}}}, WorkloadMindIE},
		{corev1.Container{Image: "mindie:server", Command: []string{"/usr/bin/mindie-router"}}, RouterCommand},
	} {
		if got := workloadKind(tc.c); got != tc.want {
			t.Errorf("%s %v %v: %s, want %s", tc.c.Image, tc.c.Command, tc.c.Env, got, tc.want)
		}
	}
	for image, fails := range map[string]bool{"sim/fail-pull": true, "sim/fail-pull:1": true, "registry.local:5000/sim/fail-pull@sha256:1": true,
		"xsim/fail-pull:1": false, "sim/fail-pull-not:1": false, "nginx": false} {
		if got := pullImage(image, false) != nil; got != fails {
			t.Errorf("pull %s fails: %t, want %t", image, got, fails)
		}
		if pullImage(image, true) == nil {
			t.Errorf("pull %s succeeds on a node whose pulls fail", image)
		}
	}
}

// A generic pod serves its declared ports on its pod IP (HTTP 200 on any
// path, plain TCP) and passes its HTTP, TCP and exec probes.
func TestGenericPodServesPortsAndProbes(t *testing.T) {
	sim, client := startEdgeSim(t, nil)
	pod := genericPod("web", "edge-1", "nginx:1.25", corev1.RestartPolicyAlways,
		corev1.ContainerPort{Name: "http", ContainerPort: 8080}, corev1.ContainerPort{ContainerPort: 9090})
	c := &pod.Spec.Containers[0]
	c.StartupProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"cat", "/tmp/healthy"}}}, PeriodSeconds: 1}
	c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}}, PeriodSeconds: 1}
	c.LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(9090)}}, PeriodSeconds: 1}
	createPod(t, client, pod)
	pods := client.CoreV1().Pods("default")
	p := waitPod(t, pods, "web", "Ready", func(p *corev1.Pod) bool { return podCondition(p, corev1.PodReady) == corev1.ConditionTrue })
	if p.Status.Phase != corev1.PodRunning || p.Status.HostIP != sim.HostIP("edge-1") || !strings.HasPrefix(p.Status.PodIP, "127.1.") {
		t.Errorf("phase %s hostIP %s podIP %s", p.Status.Phase, p.Status.HostIP, p.Status.PodIP)
	}
	for _, path := range []string{"/", "/healthz", "/any/path?x=1"} {
		if code, body := get("http://" + hostPort(p.Status.PodIP, 8080) + path); code != http.StatusOK || !strings.Contains(body, "generic app") {
			t.Errorf("GET %s: %d %s", path, code, body)
		}
	}
	conn, err := DialLoopback(context.Background(), "tcp", hostPort(p.Status.PodIP, 9090))
	if err != nil {
		t.Fatalf("TCP to port 9090: %v", err)
	}
	conn.Close()
	code, body := get("http://" + hostPort(p.Status.PodIP, 9090) + "/sim/info")
	var info genericInfo
	if code != http.StatusOK || json.Unmarshal([]byte(body), &info) != nil || info.Pod != "web" || info.PodIP != p.Status.PodIP ||
		info.HostIP != sim.HostIP("edge-1") || info.Node != "edge-1" || info.Image != "nginx:1.25" {
		t.Errorf("/sim/info: %d %s", code, body)
	}
	// Probes keep passing: no restart, still ready after a few periods.
	time.Sleep(300 * time.Millisecond)
	p, _ = pods.Get(context.Background(), "web", metav1.GetOptions{})
	if cs := containerStatus(p, "app"); cs.RestartCount != 0 || !cs.Ready {
		t.Errorf("status %+v", cs)
	}
	if log := containerLogText(sim, "web", "app"); !strings.Contains(log, "listening on "+hostPort(p.Status.PodIP, 8080)+"/TCP") {
		t.Errorf("log:\n%s", log)
	}
	// Deleted: its ports close.
	if err := pods.Delete(context.Background(), "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "port closed after deletion", func() (bool, string) {
		code, body := get("http://" + hostPort(p.Status.PodIP, 8080) + "/")
		return code == 0, body
	})
}

// Host ports are served on the node's own address (each edge node has
// one: the same host port on two nodes does not clash); a host-network pod
// has the node's address as its IP.
func TestGenericHostPortAndHostNetwork(t *testing.T) {
	sim, client := startEdgeSim(t, nil)
	pods := client.CoreV1().Pods("default")
	hp := testPort()
	for _, node := range []string{"edge-0", "edge-2"} {
		createPod(t, client, genericPod("hp-"+node, node, "nginx:1.25", corev1.RestartPolicyAlways,
			corev1.ContainerPort{ContainerPort: 80, HostPort: hp}))
	}
	hn := testPort()
	hnPod := genericPod("hn", "edge-1", "agent:1", corev1.RestartPolicyAlways, corev1.ContainerPort{ContainerPort: hn, HostPort: hn})
	hnPod.Spec.HostNetwork = true
	createPod(t, client, hnPod)
	for _, node := range []string{"edge-0", "edge-2"} {
		p := waitPod(t, pods, "hp-"+node, "Ready", func(p *corev1.Pod) bool { return podCondition(p, corev1.PodReady) == corev1.ConditionTrue })
		if p.Status.HostIP != sim.HostIP(node) {
			t.Errorf("%s: hostIP %s, want %s", p.Name, p.Status.HostIP, sim.HostIP(node))
		}
		for _, addr := range []string{hostPort(sim.HostIP(node), hp), hostPort(p.Status.PodIP, 80)} {
			if code, body := get("http://" + addr + "/"); code != http.StatusOK || !strings.Contains(body, "pod default/"+p.Name) {
				t.Errorf("GET %s: %d %s", addr, code, body)
			}
		}
	}
	p := waitPod(t, pods, "hn", "Ready", func(p *corev1.Pod) bool { return podCondition(p, corev1.PodReady) == corev1.ConditionTrue })
	if p.Status.PodIP != sim.HostIP("edge-1") || p.Status.HostIP != sim.HostIP("edge-1") {
		t.Errorf("host-network pod: podIP %s hostIP %s, want both %s", p.Status.PodIP, p.Status.HostIP, sim.HostIP("edge-1"))
	}
	if code, body := get("http://" + hostPort(sim.HostIP("edge-1"), hn) + "/x"); code != http.StatusOK {
		t.Errorf("host network port: %d %s", code, body)
	}
	// The host-network pod's IP is the node's, not the pool's: deleting it
	// releases nothing of the pool.
	if err := pods.Delete(context.Background(), "hn", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "hn deleted", func() (bool, string) {
		_, err := pods.Get(context.Background(), "hn", metav1.GetOptions{})
		return err != nil, ""
	})
	sim.mu.Lock()
	used := len(sim.ips.used)
	sim.mu.Unlock()
	if used != 2 {
		t.Errorf("%d pool IPs in use, want the 2 host-port pods'", used)
	}
}

// The env is resolved as a kubelet does (Secret, ConfigMap, envFrom,
// fieldRef status.hostIP / podIP, $(VAR) in args) and logged; a missing
// Secret keeps the container waiting, CreateContainerConfigError, until it
// exists.
func TestGenericEnvResolvedAndLogged(t *testing.T) {
	sim, client := startEdgeSim(t, nil)
	ctx := context.Background()
	if _, err := client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: "default"},
		Data: map[string]string{"mode": "fast", "LEVEL": "3"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := genericPod("env", "edge-2", "edge/app:1.0", corev1.RestartPolicyAlways, corev1.ContainerPort{ContainerPort: 8080})
	c := &pod.Spec.Containers[0]
	c.Command = []string{"/app/run"}
	c.Args = []string{"--mode=$(MODE)", "--host=$(HOST_IP)"}
	c.EnvFrom = []corev1.EnvFromSource{{Prefix: "CFG_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}}
	c.Env = []corev1.EnvVar{
		{Name: "FOO", Value: "bar"},
		{Name: "HOST_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.hostIP"}}},
		{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
		{Name: "MODE", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "mode"}}},
		{Name: "PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "password"}}},
	}
	createPod(t, client, pod)
	pods := client.CoreV1().Pods("default")
	p := waitPod(t, pods, "env", "waiting for its Secret", func(p *corev1.Pod) bool {
		w := containerStatus(p, "app").State.Waiting
		return w != nil && w.Reason == ReasonCreateContainerConfigError && strings.Contains(w.Message, `"creds"`)
	})
	if p.Status.Phase != corev1.PodPending || podCondition(p, corev1.PodReady) != corev1.ConditionFalse {
		t.Errorf("phase %s, ready %s: want Pending, not ready", p.Status.Phase, podCondition(p, corev1.PodReady))
	}
	if _, err := client.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: "default"},
		Data: map[string][]byte{"password": []byte("s3cret")}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p = waitPod(t, pods, "env", "running once its Secret exists", running("app"))
	hostIP := sim.HostIP("edge-2")
	log := containerLogText(sim, "env", "app")
	var envLines []string
	for _, l := range strings.Split(log, "\n") {
		if strings.HasPrefix(l, "env ") {
			envLines = append(envLines, l)
		}
	}
	want := []string{"env CFG_LEVEL=3", "env CFG_mode=fast", "env FOO=bar", "env HOST_IP=" + hostIP, "env POD_IP=" + p.Status.PodIP,
		"env MODE=fast", "env PASSWORD=s3cret"}
	if diff := cmp.Diff(want, envLines); diff != "" {
		t.Errorf("env lines (-want +got):\n%s\nlog:\n%s", diff, log)
	}
	for _, s := range []string{`command ["/app/run"]`, `args ["--mode=fast" "--host=` + hostIP + `"]`} {
		if !strings.Contains(log, s) {
			t.Errorf("log lacks %s:\n%s", s, log)
		}
	}
	if cs := containerStatus(p, "app"); cs.RestartCount != 0 || cs.LastTerminationState.Terminated != nil {
		t.Errorf("a container that waited for its config was not terminated nor restarted: %+v", cs)
	}
}

// An image of sim/fail-pull never pulls: ErrImagePull, then
// ImagePullBackOff; the pod stays Pending, with no log and no restart.
func TestFailPull(t *testing.T) {
	sim, client := startEdgeSim(t, nil)
	createPod(t, client, genericPod("pull", "edge-0", "registry.local/sim/fail-pull:1.0", corev1.RestartPolicyAlways))
	pods := client.CoreV1().Pods("default")
	seen := map[string]bool{}
	p := waitPod(t, pods, "pull", "ErrImagePull then ImagePullBackOff", func(p *corev1.Pod) bool {
		if w := containerStatus(p, "app").State.Waiting; w != nil {
			seen[w.Reason] = true
			if w.Reason == ReasonImagePullBackOff && w.Message != `Back-off pulling image "registry.local/sim/fail-pull:1.0"` {
				t.Errorf("ImagePullBackOff message %q", w.Message)
			}
		}
		return seen[ReasonErrImagePull] && seen[ReasonImagePullBackOff]
	})
	if p.Status.Phase != corev1.PodPending || podCondition(p, corev1.PodReady) != corev1.ConditionFalse || containerStatus(p, "app").RestartCount != 0 {
		t.Errorf("phase %s ready %s status %+v", p.Status.Phase, podCondition(p, corev1.PodReady), containerStatus(p, "app"))
	}
	if _, code, msg := sim.findLog("default", "pull", "app", false); code != http.StatusBadRequest || !strings.Contains(msg, "waiting to start") {
		t.Errorf("logs: %d %s", code, msg)
	}
}

// On a node whose pulls fail every image waits (ErrImagePull, then
// ImagePullBackOff) while other nodes pull it; once the fault is cleared
// the waiting container is pulled after its back-off and runs.
func TestNodePullFailure(t *testing.T) {
	sim, client := startEdgeSim(t, nil)
	if err := sim.SetNodePullFailure("edge-1", true); err != nil {
		t.Fatal(err)
	}
	if err := sim.SetNodePullFailure("nope", true); err == nil || !strings.Contains(err.Error(), `no simulated node "nope"`) {
		t.Errorf("unknown node: %v", err)
	}
	createPod(t, client, genericPod("ok", "edge-0", "example/app:1", corev1.RestartPolicyAlways))
	createPod(t, client, genericPod("blocked", "edge-1", "example/app:1", corev1.RestartPolicyAlways))
	pods := client.CoreV1().Pods("default")
	waitPod(t, pods, "ok", "running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	waitPod(t, pods, "blocked", "ImagePullBackOff", func(p *corev1.Pod) bool {
		w := containerStatus(p, "app").State.Waiting
		return w != nil && w.Reason == ReasonImagePullBackOff && p.Status.Phase == corev1.PodPending
	})
	if err := sim.SetNodePullFailure("edge-1", false); err != nil {
		t.Fatal(err)
	}
	p := waitPod(t, pods, "blocked", "running once pulls succeed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	if cs := containerStatus(p, "app"); cs.RestartCount != 0 {
		t.Errorf("a container that waited for its image restarted: %+v", cs)
	}
}

// A container that exits with SIM_EXIT_CODE after SIM_EXIT_AFTER is
// restarted or not as the restartPolicy says, and the pod ends Succeeded
// or Failed when none will run again.
func TestGenericExitCodeAndRestartPolicy(t *testing.T) {
	_, client := startEdgeSim(t, nil)
	pods := client.CoreV1().Pods("default")
	type result struct {
		phase    corev1.PodPhase
		restarts bool   // restarted at least once
		reason   string // of the (last) termination
	}
	cases := []struct {
		name   string
		policy corev1.RestartPolicy
		code   string
		want   result
	}{
		{"never-fail", corev1.RestartPolicyNever, "3", result{corev1.PodFailed, false, "Error"}},
		{"never-ok", corev1.RestartPolicyNever, "0", result{corev1.PodSucceeded, false, "Completed"}},
		{"onfailure-ok", corev1.RestartPolicyOnFailure, "0", result{corev1.PodSucceeded, false, "Completed"}},
		{"onfailure-fail", corev1.RestartPolicyOnFailure, "3", result{corev1.PodRunning, true, "Error"}},
		{"always-ok", corev1.RestartPolicyAlways, "0", result{corev1.PodRunning, true, "Completed"}},
	}
	for _, tc := range cases {
		pod := genericPod(tc.name, "edge-1", "job:1", tc.policy, corev1.ContainerPort{ContainerPort: 8080})
		pod.Spec.Containers[0].Env = []corev1.EnvVar{{Name: EnvExitCode, Value: tc.code}, {Name: EnvExitAfter, Value: "100ms"}}
		createPod(t, client, pod)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := waitPod(t, pods, tc.name, "its end", func(p *corev1.Pod) bool {
				cs := containerStatus(p, "app")
				if tc.want.restarts {
					return cs.RestartCount >= 1 && cs.LastTerminationState.Terminated != nil
				}
				return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
			})
			cs := containerStatus(p, "app")
			term := cs.State.Terminated
			if tc.want.restarts {
				term = cs.LastTerminationState.Terminated
			}
			if p.Status.Phase != tc.want.phase || term == nil || strconv.Itoa(int(term.ExitCode)) != tc.code || term.Reason != tc.want.reason {
				t.Errorf("phase %s, termination %+v; want %+v with exit code %s", p.Status.Phase, term, tc.want, tc.code)
			}
			if !tc.want.restarts && cs.RestartCount != 0 {
				t.Errorf("restarted %d times", cs.RestartCount)
			}
		})
	}
	// CrashLoopBackOff between the restarts of the failing container.
	waitPod(t, pods, "onfailure-fail", "in CrashLoopBackOff", func(p *corev1.Pod) bool {
		w := containerStatus(p, "app").State.Waiting
		return w != nil && w.Reason == "CrashLoopBackOff"
	})

	// SIM_EXIT_TIMES: the first run exits 3; the second keeps running.
	pod := genericPod("once", "edge-1", "job:1", corev1.RestartPolicyOnFailure, corev1.ContainerPort{ContainerPort: 8080})
	pod.Spec.Containers[0].Env = []corev1.EnvVar{{Name: EnvExitCode, Value: "3"}, {Name: EnvExitTimes, Value: "1"}}
	createPod(t, client, pod)
	waitPod(t, pods, "once", "running after one exit", func(p *corev1.Pod) bool {
		cs := containerStatus(p, "app")
		return cs.RestartCount == 1 && cs.State.Running != nil && cs.LastTerminationState.Terminated != nil &&
			cs.LastTerminationState.Terminated.ExitCode == 3
	})
	time.Sleep(400 * time.Millisecond) // beyond the back-off: no second exit
	p, _ := pods.Get(context.Background(), "once", metav1.GetOptions{})
	if cs := containerStatus(p, "app"); cs.RestartCount != 1 || cs.State.Running == nil || !cs.Ready {
		t.Errorf("after its one exit: %+v", cs)
	}
}

// SIM_PROBE_FAIL makes the listed probes fail whatever they check: a
// failing readiness probe keeps the pod unready (not restarted), a failing
// liveness probe kills the container (exit code 137) again and again.
func TestGenericProbeFailure(t *testing.T) {
	_, client := startEdgeSim(t, nil)
	pods := client.CoreV1().Pods("default")
	probe := func(h corev1.ProbeHandler) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: h, PeriodSeconds: 1, FailureThreshold: 2}
	}
	mk := func(name, fail, after string) {
		pod := genericPod(name, "edge-0", "web:1", corev1.RestartPolicyAlways, corev1.ContainerPort{Name: "http", ContainerPort: 8080})
		c := &pod.Spec.Containers[0]
		c.ReadinessProbe = probe(corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromString("http")}})
		c.LivenessProbe = probe(corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"/bin/check"}}})
		c.Env = []corev1.EnvVar{{Name: EnvProbeFail, Value: fail}}
		if after != "" {
			c.Env = append(c.Env, corev1.EnvVar{Name: EnvProbeFailAfter, Value: after})
		}
		createPod(t, client, pod)
	}
	mk("unready", "readiness", "")
	mk("unlive", "liveness", "")
	mk("later", "readiness", "500ms")

	p := waitPod(t, pods, "unlive", "killed by its liveness probe", func(p *corev1.Pod) bool {
		return containerStatus(p, "app").RestartCount >= 1
	})
	if term := containerStatus(p, "app").LastTerminationState.Terminated; term == nil || term.ExitCode != 137 {
		t.Errorf("unlive: last termination %+v, want exit code 137", term)
	}
	p, _ = pods.Get(context.Background(), "unready", metav1.GetOptions{})
	if cs := containerStatus(p, "app"); cs.Ready || cs.RestartCount != 0 || cs.State.Running == nil || p.Status.Phase != corev1.PodRunning {
		t.Errorf("unready: phase %s status %+v; want running, not ready, not restarted", p.Status.Phase, cs)
	}
	// Ready at first, unready once SIM_PROBE_FAIL_AFTER has passed.
	waitPod(t, pods, "later", "ready", func(p *corev1.Pod) bool { return containerStatus(p, "app").Ready })
	waitPod(t, pods, "later", "unready", func(p *corev1.Pod) bool { return !containerStatus(p, "app").Ready })
	// The app itself answers: only the probes fail.
	if code, _ := get("http://" + hostPort(p.Status.PodIP, 8080) + "/ready"); code != http.StatusOK {
		t.Errorf("GET /ready of unready: %d", code)
	}
}

// The fault CLI's crash and node down work on generic pods: a crash ends
// the container with exit code 1 (restarted), a node down closes its ports
// (connections refused) until it is back (restarted, exit code 255).
func TestGenericCrashAndNodeDown(t *testing.T) {
	sim, client := startEdgeSim(t, nil)
	pods := client.CoreV1().Pods("default")
	hp := testPort()
	createPod(t, client, genericPod("svc", "edge-2", "svc:1", corev1.RestartPolicyAlways, corev1.ContainerPort{ContainerPort: 8080, HostPort: hp}))
	p := waitPod(t, pods, "svc", "running", running("app"))
	if code, body := get("http://" + hostPort(p.Status.PodIP, 8080) + "/"); code != http.StatusOK {
		t.Fatalf("before the crash: %d %s", code, body)
	}
	if err := sim.SetPodFault("default", "svc", PodFaultCrash, 0); err != nil {
		t.Fatal(err)
	}
	p = waitPod(t, pods, "svc", "restarted after the crash", func(p *corev1.Pod) bool {
		cs := containerStatus(p, "app")
		return cs.RestartCount == 1 && cs.State.Running != nil
	})
	if term := containerStatus(p, "app").LastTerminationState.Terminated; term == nil || term.ExitCode != 1 {
		t.Errorf("crash: last termination %+v, want exit code 1", term)
	}
	if err := sim.SetPodFault("default", "svc", PodFaultHang, 0); err != nil {
		t.Fatal(err)
	}
	short := &http.Client{Timeout: 200 * time.Millisecond, Transport: loopbackClient.Transport}
	if _, err := short.Get("http://" + hostPort(p.Status.PodIP, 8080) + "/"); err == nil {
		t.Error("a hung app answered")
	}
	if err := sim.SetPodFault("default", "svc", PodFaultUnhang, 0); err != nil {
		t.Fatal(err)
	}
	if code, _ := get("http://" + hostPort(p.Status.PodIP, 8080) + "/"); code != http.StatusOK {
		t.Errorf("unhung app: %d", code)
	}

	if err := sim.SetNodeDown("edge-2", true); err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{hostPort(p.Status.PodIP, 8080), hostPort(sim.HostIP("edge-2"), hp)} {
		if code, body := get("http://" + addr + "/"); code != 0 {
			t.Errorf("%s answered %d on a down node: %s", addr, code, body)
		}
	}
	if err := sim.SetNodeDown("edge-2", false); err != nil {
		t.Fatal(err)
	}
	p = waitPod(t, pods, "svc", "restarted after the node is back", func(p *corev1.Pod) bool {
		cs := containerStatus(p, "app")
		return cs.RestartCount == 2 && cs.State.Running != nil
	})
	if term := containerStatus(p, "app").LastTerminationState.Terminated; term == nil || term.ExitCode != 255 {
		t.Errorf("node down: last termination %+v, want exit code 255", term)
	}
	eventually(t, "host port served again", func() (bool, string) {
		code, body := get("http://" + hostPort(sim.HostIP("edge-2"), hp) + "/")
		return code == http.StatusOK, body
	})
}

// A pod asking for NPUs its node does not have is refused at admission;
// one asking for the edge node's Ascend310P gets the chip annotation, and
// no ranktable annotation (an Ascend310P has no HCCL network).
func TestEdgeNPUAdmission(t *testing.T) {
	_, client := startEdgeSim(t, nil)
	pods := client.CoreV1().Pods("default")
	wrong := genericPod("wrong", "edge-1", "app:1", corev1.RestartPolicyAlways)
	wrong.Spec.Containers[0].Resources.Limits = corev1.ResourceList{"huawei.com/Ascend910": resource.MustParse("1")}
	createPod(t, client, wrong)
	p := waitPod(t, pods, "wrong", "refused", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	if p.Status.Reason != "UnexpectedAdmissionError" || !strings.Contains(p.Status.Message, "has no huawei.com/Ascend910") {
		t.Errorf("reason %q message %q", p.Status.Reason, p.Status.Message)
	}
	npu := genericPod("npu", "edge-0", "infer:1", corev1.RestartPolicyAlways)
	npu.Spec.Containers[0].Resources.Limits = corev1.ResourceList{"huawei.com/Ascend310P": resource.MustParse("1")}
	createPod(t, client, npu)
	p = waitPod(t, pods, "npu", "running", running("app"))
	if p.Annotations["huawei.com/Ascend310P"] != "Ascend310P-0" {
		t.Errorf("annotations %v", p.Annotations)
	}
	if _, ok := p.Annotations[ascend.AnnotationAscend910Configuration]; ok {
		t.Errorf("an Ascend310P pod got the ranktable annotation: %v", p.Annotations)
	}
	if !slices.Contains(p.Spec.Tolerations, corev1.Toleration{Key: EdgeTaintKey, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}) {
		t.Error("genericPod lost its toleration")
	}
}

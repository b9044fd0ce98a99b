package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// kubectl logs of simulated pods (served by ascend-sim's kubelet API) and
// fault injection through the `ascend-sim fault` CLI.

// startNPUPod creates a one-replica, one-NPU Deployment, waits until it is
// Ready and returns its pod. The Deployment is deleted when the test ends.
func startNPUPod(t *testing.T, prefix string) corev1.Pod {
	t.Helper()
	name := uniqueName(prefix)
	manifest := strings.Replace(strings.ReplaceAll(fmt.Sprintf(npuDeployment, name), `"8"`, `"1"`), "replicas: 2", "replicas: 1", 1)
	if r := kubectlIn(t, "", manifest, "apply", "-f", "-"); r.err != nil {
		t.Fatalf("apply: %v\n%s", r.err, r.stderr)
	}
	t.Cleanup(func() { kubectl(t, "", "delete", "deployment", name, "--ignore-not-found", "--timeout=60s") })
	mustKubectl(t, "", "rollout", "status", "deployment/"+name, "--timeout=120s")
	out := mustKubectl(t, "", "get", "pods", "-l", "app="+name, "-o", "json")
	var pods corev1.PodList
	if err := json.Unmarshal([]byte(out), &pods); err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 1 {
		t.Fatalf("want 1 pod, got %d", len(pods.Items))
	}
	p := pods.Items[0]
	if ip := net.ParseIP(p.Status.PodIP); ip == nil || !ip.IsLoopback() {
		t.Fatalf("pod %s has IP %q: simulated pods must have loopback IPs", p.Name, p.Status.PodIP)
	}
	return p
}

// fault runs `ascend-sim fault <args>` against the cluster's simulator.
func fault(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args = append([]string{"fault"}, args...)
	args = append(args, "--control-addr-file="+filepath.Join(cluster.out, "ascend-sim.control"))
	out, err := exec.CommandContext(ctx, filepath.Join(cluster.out, "bin", "ascend-sim"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ascend-sim %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestPodLogs(t *testing.T) {
	p := startNPUPod(t, "logs")
	base := "http://" + net.JoinHostPort(p.Status.PodIP, "1025")
	chat(t, base, false)
	const request = "/v1/chat/completions"
	eventually(t, 30*time.Second, 200*time.Millisecond, "kubectl logs showing the chat request", func() (bool, string) {
		r := kubectl(t, "", "logs", p.Name, "-c", "server")
		return r.err == nil && strings.Contains(r.stdout, request) && strings.Contains(r.stdout, "mindie-simulator:") &&
			strings.Contains(r.stdout, "ascend-sim kubelet: container server started"), r.stdout + r.stderr
	})
	r := kubectl(t, "", "logs", p.Name, "--tail=1", "--timestamps")
	if r.err != nil || strings.Count(r.stdout, "\n") != 1 {
		t.Errorf("kubectl logs --tail=1 --timestamps: %v %q", r.err, r.stdout)
	} else if _, err := time.Parse(time.RFC3339Nano, strings.Fields(r.stdout)[0]); err != nil {
		t.Errorf("kubectl logs --timestamps: no timestamp in %q", r.stdout)
	}

	// kubectl logs -f sees a new request's line.
	bg := startKubectl(t, "", 90*time.Second, "logs", "-f", "--tail=1", p.Name)
	eventually(t, 30*time.Second, 100*time.Millisecond, "kubectl logs -f printing the last line", func() (bool, string) {
		return strings.Contains(bg.stdout.String(), "\n"), bg.stderr.String()
	})
	before := strings.Count(bg.stdout.String(), request)
	chat(t, base, true)
	eventually(t, 30*time.Second, 100*time.Millisecond, "kubectl logs -f printing the new request", func() (bool, string) {
		return strings.Count(bg.stdout.String(), request) > before, bg.stdout.String() + bg.stderr.String()
	})
	if bg.exited() {
		t.Errorf("kubectl logs -f exited while the container runs: %v", bg.err)
	}
}

func TestFaultPodCrash(t *testing.T) {
	p := startNPUPod(t, "crash")
	fault(t, "pod", "--namespace", p.Namespace, "--name", p.Name, "--action", "crash")
	eventually(t, 60*time.Second, 250*time.Millisecond, "the pod restarted once and Ready again", func() (bool, string) {
		r := kubectl(t, "", "get", "pod", p.Name, "-o", `jsonpath={.status.containerStatuses[0].restartCount} {.status.conditions[?(@.type=="Ready")].status}`)
		return r.stdout == "1 True", r.stdout + r.stderr
	})
	prev := mustKubectl(t, "", "logs", p.Name, "--previous")
	if !strings.Contains(prev, "CRASH injected") || !strings.Contains(prev, "terminated: reason Error") {
		t.Errorf("kubectl logs --previous:\n%s", prev)
	}
	chat(t, "http://"+net.JoinHostPort(p.Status.PodIP, "1025"), false)
}

// simNode returns the name of the last simulated node.
func simNode(t *testing.T) string {
	t.Helper()
	names := strings.Fields(mustKubectl(t, "", "get", "nodes", "-l", "mindie.io/simulated=true", "-o", "jsonpath={.items[*].metadata.name}"))
	if len(names) == 0 {
		t.Fatal("no simulated nodes")
	}
	return names[len(names)-1]
}

func TestFaultNPU(t *testing.T) {
	node := simNode(t)
	t.Cleanup(func() {
		if t.Failed() {
			fault(t, "npu", "--node", node, "--chip", "3", "--level", "")
		}
	})
	deviceList := func() (map[string]string, string) {
		raw := mustKubectl(t, "", "-n", "kube-system", "get", "configmap", "mindx-dl-deviceinfo-"+node, "-o", "jsonpath={.data.DeviceInfoCfg}")
		var doc struct {
			DeviceInfo struct{ DeviceList map[string]string }
		}
		if err := json.Unmarshal([]byte(raw), &doc); err != nil {
			t.Fatalf("device info %q: %v", raw, err)
		}
		return doc.DeviceInfo.DeviceList, raw
	}
	fault(t, "npu", "--node", node, "--chip", "3", "--level", "SeparateNPU")
	eventually(t, 30*time.Second, 250*time.Millisecond, "chip 3 unhealthy in the device info", func() (bool, string) {
		l, raw := deviceList()
		return l["huawei.com/Ascend910-Unhealthy"] == "Ascend910-3" &&
			strings.Contains(l["huawei.com/Ascend910-Fault"], `"npu_name":"Ascend910-3"`) &&
			strings.Contains(l["huawei.com/Ascend910-Fault"], `"fault_level":"SeparateNPU"`) &&
			!strings.Contains(l["huawei.com/Ascend910"], "Ascend910-3"), raw
	})
	if a := mustKubectl(t, "", "get", "node", node, "-o", `jsonpath={.status.allocatable.huawei\.com/Ascend910}`); a != "7" {
		t.Errorf("allocatable NPUs with a faulty chip = %q, want 7", a)
	}
	fault(t, "npu", "--node", node, "--chip", "3", "--level", "")
	eventually(t, 30*time.Second, 250*time.Millisecond, "the fault cleared", func() (bool, string) {
		l, raw := deviceList()
		return l["huawei.com/Ascend910-Unhealthy"] == "" && l["huawei.com/Ascend910-Fault"] == "[]" &&
			strings.Contains(l["huawei.com/Ascend910"], "Ascend910-3"), raw
	})
	eventually(t, 30*time.Second, 250*time.Millisecond, "8 allocatable NPUs again", func() (bool, string) {
		a := kubectl(t, "", "get", "node", node, "-o", `jsonpath={.status.allocatable.huawei\.com/Ascend910}`).stdout
		return a == "8", a
	})
}

func TestFaultNodeDown(t *testing.T) {
	node := simNode(t)
	t.Cleanup(func() {
		if t.Failed() {
			fault(t, "node", "--node", node, "--down=false")
		}
	})
	ready := func() string {
		return kubectl(t, "", "get", "node", node, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`).stdout
	}
	fault(t, "node", "--node", node, "--down=true")
	eventually(t, 30*time.Second, 250*time.Millisecond, "the node not Ready", func() (bool, string) {
		s := ready()
		return s == "False" || s == "Unknown", s
	})
	fault(t, "node", "--node", node, "--down=false")
	eventually(t, 30*time.Second, 250*time.Millisecond, "the node Ready again", func() (bool, string) {
		s := ready()
		return s == "True", s
	})
}

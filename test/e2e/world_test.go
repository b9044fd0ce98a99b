package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// The simulated Ascend world of hack/local-up.sh: simulated nodes with NPU
// capacity, pods scheduled on them by the real kube-scheduler and served by
// the MindIE Server simulator on loopback pod IPs.

const npuDeployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
      nodeSelector: {accelerator: huawei-Ascend910}
      containers:
        - name: server
          image: mindie:server
          ports: [{name: inference, containerPort: 1025}, {name: management, containerPort: 1026}]
          resources:
            requests: {huawei.com/Ascend910: "8"}
            limits: {huawei.com/Ascend910: "8"}
          readinessProbe:
            httpGet: {path: /v2/health/ready, port: 1026}
            periodSeconds: 1
`

func TestSimulatedNodes(t *testing.T) {
	out := mustKubectl(t, "", "get", "nodes", "-l", "mindie.io/simulated=true", "-o", "json")
	var nodes corev1.NodeList
	if err := json.Unmarshal([]byte(out), &nodes); err != nil {
		t.Fatal(err)
	}
	if len(nodes.Items) != 4 {
		t.Fatalf("want 4 simulated nodes, got %d", len(nodes.Items))
	}
	for _, n := range nodes.Items {
		npus := n.Status.Allocatable["huawei.com/Ascend910"]
		if npus.Value() != 8 || n.Labels["accelerator"] != "huawei-Ascend910" {
			t.Errorf("node %s: allocatable NPUs %s, accelerator label %q", n.Name, npus.String(), n.Labels["accelerator"])
		}
		cm := mustKubectl(t, "", "-n", "kube-system", "get", "configmap", "mindx-dl-deviceinfo-"+n.Name, "-o", "jsonpath={.data.DeviceInfoCfg}")
		if !strings.Contains(cm, `"huawei.com/Ascend910":"Ascend910-0,`) || !strings.Contains(cm, "CheckCode") {
			t.Errorf("device info of %s: %s", n.Name, cm)
		}
	}
}

func TestNPUDeploymentServesChat(t *testing.T) {
	name := uniqueName("npu")
	if r := kubectlIn(t, "", fmt.Sprintf(npuDeployment, name), "apply", "-f", "-"); r.err != nil {
		t.Fatalf("apply: %v\n%s", r.err, r.stderr)
	}
	t.Cleanup(func() { kubectl(t, "", "delete", "deployment", name, "--ignore-not-found", "--wait=false") })
	mustKubectl(t, "", "rollout", "status", "deployment/"+name, "--timeout=120s")

	out := mustKubectl(t, "", "get", "pods", "-l", "app="+name, "-o", "json")
	var pods corev1.PodList
	if err := json.Unmarshal([]byte(out), &pods); err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 2 {
		t.Fatalf("want 2 pods, got %d", len(pods.Items))
	}
	nodesUsed := map[string]bool{}
	for _, p := range pods.Items {
		nodesUsed[p.Spec.NodeName] = true
		if p.Annotations["huawei.com/Ascend910"] == "" || strings.Count(p.Annotations["huawei.com/Ascend910"], ",") != 7 {
			t.Errorf("pod %s: NPU annotation %q, want 8 chips", p.Name, p.Annotations["huawei.com/Ascend910"])
		}
		// Ready only after the simulated model load time (5 s).
		var readyAt time.Time
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				readyAt = c.LastTransitionTime.Time
			}
		}
		if p.Status.StartTime == nil || readyAt.Sub(p.Status.StartTime.Time) < 4*time.Second {
			t.Errorf("pod %s became ready %v after it started; the simulated load takes 5s", p.Name, readyAt.Sub(p.Status.StartTime.Time))
		}
		ip := net.ParseIP(p.Status.PodIP)
		if ip == nil || !ip.IsLoopback() {
			t.Fatalf("pod %s has IP %q: simulated pods must have loopback IPs", p.Name, p.Status.PodIP)
		}
		base := "http://" + net.JoinHostPort(p.Status.PodIP, "1025")
		chat(t, base, false)
		chat(t, base, true)
	}
	if len(nodesUsed) != 2 {
		t.Errorf("two pods of 8 NPUs each must land on two nodes, got %v", nodesUsed)
	}
}

// chat sends one OpenAI chat completion to a pod and checks the answer.
func chat(t *testing.T, base string, stream bool) {
	t.Helper()
	body := fmt.Sprintf(`{"model":"llama3-8b-sim","messages":[{"role":"user","content":"What is an NPU?"}],"max_tokens":16,"stream":%t}`, stream)
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("chat with %s: %v", base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(resp.Body)
		t.Fatalf("chat with %s: status %d: %s", base, resp.StatusCode, raw)
	}
	if !stream {
		var answer struct {
			Choices []struct {
				Message struct{ Content string } `json:"message"`
			} `json:"choices"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || len(answer.Choices) == 0 || answer.Choices[0].Message.Content == "" {
			t.Fatalf("chat with %s: no answer (%v)", base, err)
		}
		return
	}
	var chunks int
	done := false
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, []byte("data: ")) {
			continue
		}
		if string(line) == "data: [DONE]" {
			done = true
			break
		}
		chunks++
	}
	if !done || chunks == 0 {
		t.Fatalf("streamed chat with %s: %d chunks, [DONE] seen: %v", base, chunks, done)
	}
}

func TestPodBeyondNPUCapacityIsUnschedulable(t *testing.T) {
	name := uniqueName("toobig")
	pod := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: default}
spec:
  containers:
    - name: server
      image: mindie:server
      resources:
        requests: {huawei.com/Ascend910: "9"}
        limits: {huawei.com/Ascend910: "9"}
`, name)
	if r := kubectlIn(t, "", pod, "apply", "-f", "-"); r.err != nil {
		t.Fatalf("apply: %v\n%s", r.err, r.stderr)
	}
	t.Cleanup(func() { kubectl(t, "", "delete", "pod", name, "--ignore-not-found", "--wait=false") })
	eventually(t, 60*time.Second, 500*time.Millisecond, "the pod reported Unschedulable", func() (bool, string) {
		r := kubectl(t, "", "get", "pod", name, "-o", `jsonpath={.status.phase} {.status.conditions[?(@.type=="PodScheduled")].reason}: {.status.conditions[?(@.type=="PodScheduled")].message}`)
		return strings.HasPrefix(r.stdout, "Pending Unschedulable") && strings.Contains(r.stdout, "Insufficient huawei.com/Ascend910"), r.stdout
	})
}

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/controller/edgedeployment"
)

// EdgeDeployments on the simulated edge nodes of hack/local-up.sh: edge-0
// (arm64, one Ascend310P), edge-1 (arm64), edge-2 (amd64, one Ascend310P).

const edgeNS = "team-a"

func edgeJob(t *testing.T, name string) *v1alpha1.EdgeDeployment {
	t.Helper()
	var e v1alpha1.EdgeDeployment
	out := mustKubectl(t, "", "-n", edgeNS, "get", "edgedeployment", name, "-o", "json")
	if err := json.Unmarshal([]byte(out), &e); err != nil {
		t.Fatal(err)
	}
	return &e
}

func applyEdge(t *testing.T, name, spec string) {
	t.Helper()
	manifest := fmt.Sprintf("apiVersion: infer.mindie.io/v1alpha1\nkind: EdgeDeployment\nmetadata: {name: %s, namespace: %s}\nspec:\n%s", name, edgeNS, spec)
	if r := kubectlIn(t, "tenant-a-editor", manifest, "create", "-f", "-"); r.err != nil {
		t.Fatalf("create EdgeDeployment %s: %v\n%s", name, r.err, r.stderr)
	}
	t.Cleanup(func() {
		kubectl(t, "", "-n", edgeNS, "delete", "edgedeployment", name, "--ignore-not-found", "--wait=false")
	})
}

func waitEdge(t *testing.T, name string, timeout time.Duration, phase v1alpha1.EdgeDeploymentPhase) *v1alpha1.EdgeDeployment {
	t.Helper()
	var e *v1alpha1.EdgeDeployment
	eventually(t, timeout, time.Second, fmt.Sprintf("EdgeDeployment %s %s", name, phase), func() (bool, string) {
		e = edgeJob(t, name)
		return e.Status.Phase == phase, fmt.Sprintf("%+v", e.Status)
	})
	return e
}

func edgeStates(e *v1alpha1.EdgeDeployment) string {
	var out []string
	for _, n := range e.Status.Nodes {
		s := n.Node + "=" + string(n.State)
		if n.Reason != "" {
			s += "(" + n.Reason + ")"
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

const arm64Targets = `  targets: {selector: {matchLabels: {mindie.io/edge: "true", kubernetes.io/arch: arm64}}}
`

func TestEdgeDeploymentSucceeds(t *testing.T) {
	mustKubectl(t, "", "-n", edgeNS, "create", "configmap", "edge-app-config", "--from-literal=mode=fast")
	t.Cleanup(func() { kubectl(t, "", "-n", edgeNS, "delete", "configmap", "edge-app-config", "--ignore-not-found") })
	applyEdge(t, "edge-ok", arm64Targets+`  maxConcurrentNodes: 1
  container:
    image: example/edge-app:1.0
    env:
    - {name: FOO, value: bar}
    - {name: NODE_IP, valueFrom: {fieldRef: {fieldPath: status.hostIP}}}
    - {name: MODE, valueFrom: {configMapKeyRef: {name: edge-app-config, key: mode}}}
    readinessProbe: {httpGet: {path: /healthz, port: 8080}}
  network:
    ports: [{containerPort: 8080, hostPort: 18080}]
`)
	e := waitEdge(t, "edge-ok", 3*time.Minute, v1alpha1.EdgePhaseSucceeded)
	if strings.Join(e.Status.Targets, ",") != "edge-0,edge-1" || e.Status.Architecture != "arm64" || edgeStates(e) != "edge-0=Succeeded edge-1=Succeeded" {
		t.Errorf("status %+v", e.Status)
	}
	pods := listJSON[corev1.Pod](t, "pods", "-n", edgeNS, "-l", edgedeployment.LabelJob+"=edge-ok")
	if len(pods) != 2 {
		t.Fatalf("%d pods", len(pods))
	}
	for _, p := range pods {
		logs := mustKubectl(t, "", "-n", edgeNS, "logs", p.Name)
		for _, want := range []string{"env FOO=bar", "env NODE_IP=" + p.Status.HostIP, "env MODE=fast"} {
			if !strings.Contains(logs, want) {
				t.Errorf("pod %s logs lack %q:\n%s", p.Name, want, logs)
			}
		}
		// The port mapping: the app answers on its node's address.
		resp, err := http.Get(fmt.Sprintf("http://%s:18080/", p.Status.HostIP))
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("host port of %s on %s: %v %v", p.Name, p.Status.HostIP, resp, err)
		}
		if resp != nil {
			resp.Body.Close()
		}
	}
	// Deleting the job deletes its pods.
	mustKubectl(t, "", "-n", edgeNS, "delete", "edgedeployment", "edge-ok", "--timeout=60s")
	if pods := listJSON[corev1.Pod](t, "pods", "-n", edgeNS, "-l", edgedeployment.LabelJob+"=edge-ok"); len(pods) != 0 {
		t.Errorf("%d pods left after the job was deleted", len(pods))
	}
}

func TestEdgeDeploymentMixedArchitecturesRefused(t *testing.T) {
	applyEdge(t, "edge-mixed", `  targets: {selector: {matchLabels: {mindie.io/edge: "true"}}}
  container: {image: example/edge-app:1.0}
`)
	e := waitEdge(t, "edge-mixed", time.Minute, v1alpha1.EdgePhaseFailed)
	var msg string
	for _, c := range e.Status.Conditions {
		if c.Type == v1alpha1.EdgeConditionFailed && c.Reason == v1alpha1.EdgeReasonMixedArchitectures {
			msg = c.Message
		}
	}
	if !strings.Contains(msg, "amd64: edge-2; arm64: edge-0, edge-1") {
		t.Errorf("conditions %+v", e.Status.Conditions)
	}
}

// TestEdgeDeploymentPartialThenRetry: a node offline fails its task, the
// other succeeds; once the node is back, a retry deploys to it alone.
func TestEdgeDeploymentPartialThenRetry(t *testing.T) {
	fault(t, "node", "--node", "edge-1", "--down=true")
	t.Cleanup(func() { fault(t, "node", "--node", "edge-1", "--down=false") })
	eventually(t, 90*time.Second, time.Second, "edge-1 NotReady", func() (bool, string) {
		r := kubectl(t, "", "get", "node", "edge-1", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		return r.stdout != "True", r.stdout
	})
	applyEdge(t, "edge-retry", arm64Targets+`  container: {image: example/edge-app:1.0}
`)
	e := waitEdge(t, "edge-retry", 2*time.Minute, v1alpha1.EdgePhasePartiallySucceeded)
	if edgeStates(e) != "edge-0=Succeeded edge-1=Failed(NodeNotReady)" {
		t.Fatalf("nodes %s", edgeStates(e))
	}
	first := listJSON[corev1.Pod](t, "pods", "-n", edgeNS, "-l", edgedeployment.LabelNode+"=edge-0")
	fault(t, "node", "--node", "edge-1", "--down=false")
	eventually(t, time.Minute, time.Second, "edge-1 Ready", func() (bool, string) {
		r := kubectl(t, "", "get", "node", "edge-1", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		return r.stdout == "True", r.stdout
	})
	mustKubectl(t, "tenant-a-editor", "-n", edgeNS, "patch", "edgedeployment", "edge-retry", "--type=merge", "-p", `{"spec":{"retryGeneration":1}}`)
	e = waitEdge(t, "edge-retry", 2*time.Minute, v1alpha1.EdgePhaseSucceeded)
	if e.Status.ObservedRetryGeneration != 1 || e.Status.Nodes[1].Attempts != 2 || e.Status.Nodes[0].Attempts != 1 {
		t.Errorf("status %+v", e.Status)
	}
	if now := listJSON[corev1.Pod](t, "pods", "-n", edgeNS, "-l", edgedeployment.LabelNode+"=edge-0"); len(now) != 1 || len(first) != 1 || now[0].UID != first[0].UID {
		t.Errorf("the retry touched edge-0's pod")
	}
}

// TestEdgeDeploymentPullFailsOnOneNodeThenRetry: the image does not pull
// on one node (its registry is unreachable), which fails that node alone
// (ImagePullFailed) and the job ends PartiallySucceeded; once the node
// pulls again, a retry re-deploys that node only.
func TestEdgeDeploymentPullFailsOnOneNodeThenRetry(t *testing.T) {
	fault(t, "pull", "--node", "edge-1", "--fail=true")
	t.Cleanup(func() { fault(t, "pull", "--node", "edge-1", "--fail=false") })
	applyEdge(t, "edge-pull", arm64Targets+`  container: {image: example/edge-app:2.0}
`)
	e := waitEdge(t, "edge-pull", 2*time.Minute, v1alpha1.EdgePhasePartiallySucceeded)
	if edgeStates(e) != "edge-0=Succeeded edge-1=Failed(ImagePullFailed)" || !strings.Contains(e.Status.Nodes[1].Message, "example/edge-app:2.0") {
		t.Fatalf("nodes %s: %+v", edgeStates(e), e.Status.Nodes)
	}
	r := mindie(t, "tenant-a-editor", "", "edge", "status", "edge-pull", "-n", edgeNS)
	if r.err == nil || !strings.Contains(r.stdout, "ImagePullFailed") || !strings.Contains(r.stdout, "PartiallySucceeded") {
		t.Errorf("edge status of a partial job: err %v\n%s%s", r.err, r.stdout, r.stderr)
	}
	first := listJSON[corev1.Pod](t, "pods", "-n", edgeNS, "-l", edgedeployment.LabelJob+"=edge-pull,"+edgedeployment.LabelNode+"=edge-0")
	failed := listJSON[corev1.Pod](t, "pods", "-n", edgeNS, "-l", edgedeployment.LabelJob+"=edge-pull,"+edgedeployment.LabelNode+"=edge-1")
	fault(t, "pull", "--node", "edge-1", "--fail=false")
	mustMindie(t, "tenant-a-editor", "", "edge", "retry", "edge-pull", "-n", edgeNS)
	e = waitEdge(t, "edge-pull", 2*time.Minute, v1alpha1.EdgePhaseSucceeded)
	if e.Status.Nodes[0].Attempts != 1 || e.Status.Nodes[1].Attempts != 2 {
		t.Errorf("attempts: %+v", e.Status.Nodes)
	}
	now0 := listJSON[corev1.Pod](t, "pods", "-n", edgeNS, "-l", edgedeployment.LabelJob+"=edge-pull,"+edgedeployment.LabelNode+"=edge-0")
	if len(now0) != 1 || len(first) != 1 || now0[0].UID != first[0].UID {
		t.Errorf("the retry touched edge-0's pod")
	}
	now1 := listJSON[corev1.Pod](t, "pods", "-n", edgeNS, "-l", edgedeployment.LabelJob+"=edge-pull,"+edgedeployment.LabelNode+"=edge-1")
	if len(now1) != 1 || len(failed) != 1 || now1[0].UID == failed[0].UID {
		t.Errorf("the retry did not replace edge-1's pod: before %d, after %d", len(failed), len(now1))
	}
}

// TestEdgeDeploymentStopInTheMiddle: a job paced one node at a time,
// stopped while its first node is starting, lets that node finish
// (Stopping, then Stopped) and starts no other until continued.
func TestEdgeDeploymentStopInTheMiddle(t *testing.T) {
	applyEdge(t, "edge-midstop", arm64Targets+`  maxConcurrentNodes: 1
  container:
    image: example/edge-app:1.0
    readinessProbe: {httpGet: {path: /, port: 8080}, initialDelaySeconds: 8, periodSeconds: 1}
  network:
    ports: [{containerPort: 8080, hostPort: 18082}]
`)
	eventually(t, time.Minute, 200*time.Millisecond, "edge-0 Deploying", func() (bool, string) {
		e := edgeJob(t, "edge-midstop")
		return edgeStates(e) == "edge-0=Deploying edge-1=Queued", edgeStates(e)
	})
	mustMindie(t, "tenant-a-editor", "", "edge", "stop", "edge-midstop", "-n", edgeNS)
	e := edgeJob(t, "edge-midstop")
	eventually(t, 30*time.Second, 200*time.Millisecond, "Stopping", func() (bool, string) {
		e = edgeJob(t, "edge-midstop")
		return e.Status.Phase == v1alpha1.EdgePhaseStopping || e.Status.Phase == v1alpha1.EdgePhaseStopped, edgeStates(e)
	})
	if e.Status.Phase != v1alpha1.EdgePhaseStopping {
		t.Errorf("phase %s right after the stop while edge-0 was starting, want Stopping", e.Status.Phase)
	}
	e = waitEdge(t, "edge-midstop", time.Minute, v1alpha1.EdgePhaseStopped)
	if edgeStates(e) != "edge-0=Succeeded edge-1=Stopped(JobStopped)" {
		t.Fatalf("nodes %s", edgeStates(e))
	}
	if pods := listJSON[corev1.Pod](t, "pods", "-n", edgeNS, "-l", edgedeployment.LabelJob+"=edge-midstop"); len(pods) != 1 {
		t.Fatalf("%d pods of a job stopped after its first node", len(pods))
	}
	mustMindie(t, "tenant-a-editor", "", "edge", "continue", "edge-midstop", "-n", edgeNS)
	e = waitEdge(t, "edge-midstop", time.Minute, v1alpha1.EdgePhaseSucceeded)
	if edgeStates(e) != "edge-0=Succeeded edge-1=Succeeded" {
		t.Errorf("nodes %s", edgeStates(e))
	}
}

// TestEdgeDeploymentAlwaysRestartsAnAppThatExits: under restartPolicy
// Always an app that exits 0 is restarted (OnFailure would leave it
// completed), and the node succeeds once it runs and is ready.
func TestEdgeDeploymentAlwaysRestartsAnAppThatExits(t *testing.T) {
	applyEdge(t, "edge-always", `  targets: {nodes: [edge-2]}
  restartPolicy: Always
  container:
    image: example/edge-app:1.0
    env:
    - {name: SIM_EXIT_CODE, value: "0"}
    - {name: SIM_EXIT_TIMES, value: "1"}
`)
	waitEdge(t, "edge-always", 2*time.Minute, v1alpha1.EdgePhaseSucceeded)
	pods := listJSON[corev1.Pod](t, "pods", "-n", edgeNS, "-l", edgedeployment.LabelJob+"=edge-always")
	if len(pods) != 1 || pods[0].Status.ContainerStatuses[0].RestartCount != 1 {
		t.Fatalf("pods %+v", pods)
	}
	if last := pods[0].Status.ContainerStatuses[0].LastTerminationState.Terminated; last == nil || last.ExitCode != 0 {
		t.Errorf("last termination %+v, want exit code 0", last)
	}
}

// TestEdgeDeploymentRestartPolicyAndTimeout: an app that exits 3 under
// restartPolicy Never fails its node with the exit code; one that never
// gets ready times out.
func TestEdgeDeploymentRestartPolicyAndTimeout(t *testing.T) {
	applyEdge(t, "edge-exit", `  targets: {nodes: [edge-0]}
  restartPolicy: Never
  container:
    image: example/edge-app:1.0
    env: [{name: SIM_EXIT_CODE, value: "3"}]
`)
	e := waitEdge(t, "edge-exit", 2*time.Minute, v1alpha1.EdgePhaseFailed)
	if n := e.Status.Nodes[0]; n.Reason != "Exited" || !strings.Contains(n.Message, "exit code 3") {
		t.Errorf("node %+v", n)
	}
	applyEdge(t, "edge-slow", `  targets: {nodes: [edge-1]}
  timeoutSeconds: 10
  container:
    image: example/edge-app:1.0
    env: [{name: SIM_PROBE_FAIL, value: readiness}]
    readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
  network:
    ports: [{containerPort: 8080, hostPort: 18081}]
`)
	e = waitEdge(t, "edge-slow", time.Minute, v1alpha1.EdgePhaseTimedOut)
	if edgeStates(e) != "edge-1=TimedOut(TimedOut)" {
		t.Errorf("nodes %s", edgeStates(e))
	}
}

// TestEdgeDeploymentStopContinueAndPolicies: a paced job (one node at a
// time) stopped after its first node keeps it and starts no other until
// continued; OnFailure restarts an app that failed once; host network and
// env from a Secret.
func TestEdgeDeploymentStopContinueAndPolicies(t *testing.T) {
	mustKubectl(t, "", "-n", edgeNS, "create", "secret", "generic", "edge-app-secret", "--from-literal=token=s3cret")
	t.Cleanup(func() { kubectl(t, "", "-n", edgeNS, "delete", "secret", "edge-app-secret", "--ignore-not-found") })
	applyEdge(t, "edge-paced", arm64Targets+`  maxConcurrentNodes: 1
  stopped: true
  restartPolicy: OnFailure
  container:
    image: example/edge-app:1.0
    env:
    - {name: SIM_EXIT_CODE, value: "4"}
    - {name: SIM_EXIT_TIMES, value: "1"}
    - {name: TOKEN, valueFrom: {secretKeyRef: {name: edge-app-secret, key: token}}}
  network: {hostNetwork: true}
`)
	// Created stopped: nothing starts.
	e := waitEdge(t, "edge-paced", time.Minute, v1alpha1.EdgePhaseStopped)
	if edgeStates(e) != "edge-0=Stopped(JobStopped) edge-1=Stopped(JobStopped)" {
		t.Fatalf("nodes %s", edgeStates(e))
	}
	if pods := listJSON[corev1.Pod](t, "pods", "-n", edgeNS, "-l", edgedeployment.LabelJob+"=edge-paced"); len(pods) != 0 {
		t.Fatalf("%d pods of a stopped job", len(pods))
	}
	// Continued: one node at a time, each app failing once and restarted.
	mustKubectl(t, "tenant-a-editor", "-n", edgeNS, "patch", "edgedeployment", "edge-paced", "--type=merge", "-p", `{"spec":{"stopped":false}}`)
	e = waitEdge(t, "edge-paced", 2*time.Minute, v1alpha1.EdgePhaseSucceeded)
	pods := listJSON[corev1.Pod](t, "pods", "-n", edgeNS, "-l", edgedeployment.LabelJob+"=edge-paced")
	if len(pods) != 2 {
		t.Fatalf("%d pods", len(pods))
	}
	for _, p := range pods {
		if !p.Spec.HostNetwork || p.Status.PodIP != p.Status.HostIP || p.Status.ContainerStatuses[0].RestartCount != 1 {
			t.Errorf("pod %s: hostNetwork %v, pod IP %s, host IP %s, restarts %d", p.Name, p.Spec.HostNetwork, p.Status.PodIP, p.Status.HostIP, p.Status.ContainerStatuses[0].RestartCount)
		}
		if logs := mustKubectl(t, "", "-n", edgeNS, "logs", p.Name); !strings.Contains(logs, "env TOKEN=s3cret") {
			t.Errorf("pod %s logs lack the Secret's value:\n%s", p.Name, logs)
		}
	}
	// Paced: edge-1 started after edge-0 succeeded.
	if a, b := e.Status.Nodes[0], e.Status.Nodes[1]; a.Since == nil || b.Since == nil || b.Since.Before(a.Since) {
		t.Errorf("nodes not one at a time: %+v", e.Status.Nodes)
	}
}

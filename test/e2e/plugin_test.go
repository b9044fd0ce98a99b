package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The kubectl mindie plugin (cmd/kubectl-mindie), which hack/local-up.sh
// builds into $OUT/bin: the real kubectl finds it on PATH and runs it.

// mindie runs "kubectl mindie args..." as user with stdin, the plugin's
// directory first on PATH. The kubeconfig goes after the plugin's name:
// kubectl looks a plugin up by the arguments before the first flag.
func mindie(t *testing.T, user, stdin string, args ...string) kubectlResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin := filepath.Join(cluster.out, "bin")
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "kubectl"), append([]string{"mindie", "--kubeconfig=" + kubeconfig(user)}, args...)...)
	cmd.Env = append(append([]string(nil), cluster.env...), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	err := cmd.Run()
	return kubectlResult{stdout: stdout.String(), stderr: stderr.String(), err: err}
}

// mustMindie runs kubectl mindie and fails the test when it fails.
func mustMindie(t *testing.T, user, stdin string, args ...string) string {
	t.Helper()
	r := mindie(t, user, stdin, args...)
	if r.err != nil {
		t.Fatalf("kubectl mindie %s (as %s): %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), userName(user), r.err, r.stdout, r.stderr)
	}
	return r.stdout
}

// legacyInferServer is an infer_server.json of the original deployer: a
// single-node service of replicas instances with one NPU each, so that it
// fits the simulated nodes beside the other tests.
func legacyInferServer(name string, replicas int) string {
	port, err := rand.Int(rand.Reader, big.NewInt(32767-30000))
	if err != nil {
		panic(err)
	}
	return fmt.Sprintf(`{
    "server_name": %q,
    "replicas": %d,
    "service_port": %d,
    "cross_node_num": 1,
    "service_type": "NodePort",
    "server_type": "mindie_single_node",
    "scheduler": "default",
    "init_delay": 60,
    "detect_server_inner_error": true,
    "liveness_timeout": 10,
    "liveness_failure_threshold": 3,
    "readiness_timeout": 10,
    "readiness_failure_threshold": 1,
    "resource_requests": {"memory": 1000, "cpu_core": 1000, "npu_type": "Ascend910", "npu_chip_num": 1},
    "mindie_server_config": {
        "mies_install_path": "/usr/local/Ascend/mindie/latest/mindie-service",
        "infer_port": 1025, "management_port": 1026, "enable_tls": false
    },
    "npu_fault_reschedule": true,
    "termination_grace_period_seconds": 5,
    "max_unavailable": "50%%",
    "max_surge": "50%%"
}`, name, replicas, 30000+port.Int64())
}

// revisionCount is how many revisions rollout history lists.
func revisionCount(t *testing.T, ns, name string) int {
	t.Helper()
	out := mustMindie(t, "", "", "rollout", "history", name, "-n", ns)
	n := 0
	for _, l := range strings.Split(out, "\n")[1:] {
		if f := strings.Fields(l); len(f) > 0 && f[0] != "REVISION" {
			n++
		}
	}
	return n
}

func TestPluginLifecycle(t *testing.T) {
	const ns = "team-a"
	name := uniqueName("plugin")
	dir := t.TempDir()
	file := filepath.Join(dir, "infer_server.json")
	if err := os.WriteFile(file, []byte(legacyInferServer(name, 2)), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		kubectl(t, "", "delete", "inferserver", name, "-n", ns, "--ignore-not-found", "--wait=false")
	})

	// The server validates and defaults the converted file without storing it.
	out := mustMindie(t, "", "", "create", "-f", file, "-n", ns, "--dry-run=server", "-o", "json")
	var dry inferServer
	if err := json.Unmarshal([]byte(out), &dry); err != nil || dry.Spec["image"] != "mindie:server" || dry.Metadata.Namespace != ns {
		t.Errorf("create --dry-run=server -o json: %v, image %v, namespace %q\n%s", err, dry.Spec["image"], dry.Metadata.Namespace, out)
	}
	if r := kubectl(t, "", "get", "inferserver", name, "-n", ns); r.err == nil {
		t.Fatalf("the server dry run stored %s", name)
	}

	// Create from the legacy file, as msctl create did.
	out = mustMindie(t, "", "", "create", "-f", file, "-n", ns)
	if want := "inferserver.infer.mindie.io/" + name + " created\n"; out != want {
		t.Errorf("create: %q, want %q", out, want)
	}
	if got := mustKubectl(t, "", "get", "inferserver", name, "-n", ns, "-o", "jsonpath={.spec.replicas} {.spec.resources.npu.count} {.spec.nodesPerInstance}"); got != "2 1 1" {
		t.Errorf("the created InferServer: replicas, NPUs, nodes %q, want 2 1 1", got)
	}
	if out := mustMindie(t, "", "", "get", "-n", ns, "-o", "name"); !strings.Contains(out, "inferserver.infer.mindie.io/"+name+"\n") {
		t.Errorf("get -o name lacks %s:\n%s", name, out)
	}
	if out := mustMindie(t, "", "", "__complete", "status", "-n", ns, "plugin-"); !strings.Contains(out, name+"\n") {
		t.Errorf("completion of status names lacks %s:\n%s", name, out)
	}

	// status -w follows it until it serves (Available at its generation,
	// every instance updated); rollout status until every instance is
	// available; and once the controller has read /info, status shows the model.
	out = mustMindie(t, "", "", "status", name, "-n", ns, "-w", "--timeout=4m")
	final := out[strings.LastIndex(out, "Name:"):]
	if !strings.Contains(squashSpaces(final), "Available True") || !strings.Contains(final, "2/2 updated") {
		t.Errorf("status -w ended before the InferServer was Available with 2 updated instances:\n%s", final)
	}
	if out := mustMindie(t, "", "", "rollout", "status", name, "-n", ns, "--timeout=4m"); !strings.Contains(out, `inferserver "`+name+`" successfully rolled out`) {
		t.Errorf("rollout status:\n%s", out)
	}
	var model string
	eventually(t, 90*time.Second, time.Second, "kubectl mindie status showing the model", func() (bool, string) {
		model = mustKubectl(t, "", "get", "inferserver", name, "-n", ns, "-o", "jsonpath={.status.model.models[0].id}")
		out = squashSpaces(mustMindie(t, "", "", "status", name, "-n", ns))
		for _, want := range []string{"Server version:", "Read from: instance", "2/2 updated, 2/2 ready, 2/2 available; complete", "Pods:", "Running"} {
			if model == "" || !strings.Contains(out, want) || !strings.Contains(out, model) {
				return false, fmt.Sprintf("model %q; status lacks %q or the model:\n%s", model, want, out)
			}
		}
		return true, ""
	})

	// logs: a line of every pod, prefixed with its instance and name.
	pods := strings.Fields(mustKubectl(t, "", "get", "pods", "-n", ns, "-l", "infer.mindie.io/server="+name, "-o", "jsonpath={range .items[*]}{.metadata.name}{' '}{end}"))
	if len(pods) != 2 {
		t.Fatalf("pods of %s: %v, want 2", name, pods)
	}
	eventually(t, 30*time.Second, time.Second, "kubectl mindie logs showing every pod", func() (bool, string) {
		out := mustMindie(t, "", "", "logs", name, "-n", ns)
		for _, p := range pods {
			if !strings.Contains(out, "/"+p+"] ") {
				return false, "no line of " + p + " in:\n" + out
			}
		}
		return true, ""
	})

	// chat through the proxy subresource, whole and streamed.
	out = mustMindie(t, "", "", "chat", name, "-n", ns, "-m", "What is an NPU?", "--max-tokens=12")
	if strings.TrimSpace(out) == "" {
		t.Errorf("chat printed no answer")
	}
	out = mustMindie(t, "", "", "chat", name, "-n", ns, "-m", "Hello", "--stream", "--max-tokens=12")
	if strings.TrimSpace(out) == "" {
		t.Errorf("chat --stream printed no answer")
	}
	out = mustMindie(t, "tenant-a-editor", "first question\nsecond question\n/exit\n", "chat", name, "--max-tokens=8")
	if n := len(strings.Split(strings.TrimSpace(out), "\n")); n < 2 {
		t.Errorf("a conversation of two messages as tenant-a-editor printed %d lines:\n%s", n, out)
	}
	// The viewer may look, not talk to the model.
	if out := mustMindie(t, "tenant-a-viewer", "", "status", name); !strings.Contains(out, model) {
		t.Errorf("status as tenant-a-viewer:\n%s", out)
	}
	r := mindie(t, "tenant-a-viewer", "", "chat", name, "-m", "hi")
	if r.err == nil {
		t.Errorf("chat as tenant-a-viewer succeeded:\n%s", r.stdout)
	} else if !strings.HasPrefix(r.stderr, "error: ") || strings.Count(r.stderr, "\n") != 1 ||
		!strings.Contains(r.stderr, `User "tenant-a-viewer" cannot create resource "inferservers/proxy"`) || !strings.Contains(r.stderr, "inferservers/proxy in API group infer.mindie.io") {
		t.Errorf("chat as tenant-a-viewer: want one clear Forbidden line, got:\n%s", r.stderr)
	}

	// rollout restart makes a revision and completes.
	before := revisionCount(t, ns, name)
	if out := mustMindie(t, "", "", "rollout", "restart", name, "-n", ns); out != "inferserver.infer.mindie.io/"+name+" restarted\n" {
		t.Errorf("rollout restart: %q", out)
	}
	if out := mustMindie(t, "", "", "rollout", "status", name, "-n", ns, "--timeout=4m"); !strings.Contains(out, `inferserver "`+name+`" successfully rolled out`) {
		t.Errorf("rollout status after restart:\n%s", out)
	}
	if after := revisionCount(t, ns, name); after != before+1 {
		t.Errorf("rollout history lists %d revisions after a restart, %d before", after, before)
	}

	// A new image, then undo: the previous image is back.
	mustKubectl(t, "", "patch", "inferserver", name, "-n", ns, "--type=merge", "-p",
		`{"metadata":{"annotations":{"kubernetes.io/change-cause":"image e2e-v2"}},"spec":{"image":"mindie:e2e-v2"}}`)
	mustMindie(t, "", "", "rollout", "status", name, "-n", ns, "--timeout=4m")
	out = mustMindie(t, "", "", "rollout", "history", name, "-n", ns)
	if !strings.Contains(out, "image e2e-v2") {
		t.Errorf("rollout history lacks the change cause:\n%s", out)
	}
	if out := mustMindie(t, "", "", "rollout", "undo", name, "-n", ns); !strings.Contains(out, "inferserver.infer.mindie.io/"+name+" rolled back") {
		t.Errorf("rollout undo: %q", out)
	}
	if got := mustKubectl(t, "", "get", "inferserver", name, "-n", ns, "-o", "jsonpath={.spec.image}"); got != "mindie:server" {
		t.Errorf("image after undo: %q, want mindie:server", got)
	}
	mustMindie(t, "", "", "rollout", "status", name, "-n", ns, "--timeout=4m")

	// pause refuses undo; resume.
	mustMindie(t, "", "", "rollout", "pause", name, "-n", ns)
	r = mindie(t, "", "", "rollout", "undo", name, "-n", ns)
	if r.err == nil || !strings.Contains(r.stderr, "resume it first") {
		t.Errorf("undo of a paused InferServer: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
	mustMindie(t, "", "", "rollout", "resume", name, "-n", ns)

	// scale through the scale subresource, with its precondition.
	r = mindie(t, "", "", "scale", name, "-n", ns, "--replicas=1", "--current-replicas=5")
	if r.err == nil || !strings.Contains(r.stderr, "to be 5, was 2") {
		t.Errorf("scale with a wrong --current-replicas: %v\n%s", r.err, r.stderr)
	}
	mustMindie(t, "", "", "scale", name, "-n", ns, "--replicas=1", "--current-replicas=2")
	if got := mustKubectl(t, "", "get", "inferserver", name, "-n", ns, "-o", "jsonpath={.spec.replicas}"); got != "1" {
		t.Errorf("replicas after scale: %q", got)
	}

	// delete waits until the finalizer has run.
	out = mustMindie(t, "", "", "delete", name, "-n", ns, "--timeout=3m")
	if !strings.Contains(out, `"`+name+`" deleted`) {
		t.Errorf("delete: %q", out)
	}
	if r := kubectl(t, "", "get", "inferserver", name, "-n", ns); r.err == nil || !strings.Contains(r.stderr, "NotFound") {
		t.Errorf("after kubectl mindie delete returned, the InferServer is still there: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
}

func TestPluginErrors(t *testing.T) {
	// An invalid legacy file is refused before anything is sent.
	bad := strings.Replace(legacyInferServer("plugin-bad", 300), `"npu_chip_num": 1`, `"npu_chip_num": 9`, 1)
	r := mindie(t, "", bad, "create", "-f", "-")
	if r.err == nil || !strings.Contains(r.stderr, "replicas: 300: must be between 1 and 256") || !strings.Contains(r.stderr, "resource_requests.npu_chip_num: 9") {
		t.Errorf("create of an invalid legacy file: %v\n%s", r.err, r.stderr)
	}
	var exit *exec.ExitError
	if r.err != nil && (!errors.As(r.err, &exit) || exit.ExitCode() != 1) {
		t.Errorf("exit status %v, want 1", r.err)
	}
	r = mindie(t, "", "", "status", "plugin-does-not-exist", "-n", "default")
	if r.err == nil || r.stderr != "error: inferservers.infer.mindie.io \"plugin-does-not-exist\" not found\n" {
		t.Errorf("status of a missing InferServer: %v\n%q", r.err, r.stderr)
	}
	// The other tenant's namespace is not theirs.
	r = mindie(t, "tenant-b-editor", "", "get", "-n", "team-a")
	if r.err == nil || !strings.Contains(r.stderr, `cannot list resource "inferservers"`) {
		t.Errorf("get in team-a as tenant-b-editor: %v\n%s", r.err, r.stderr)
	}
}

// squashSpaces collapses runs of spaces (tabwriter padding).
func squashSpaces(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}

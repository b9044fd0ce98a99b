// Package e2e runs the repository's local cluster (hack/local-up.sh: etcd,
// kube-apiserver with the aggregator, controller-manager, scheduler and
// mindie-apiserver registered by an APIService) and drives it with the real
// kubectl, as users and operators do.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"mindie.io/deployer/test/module"
)

// cluster is the local cluster every test of the package shares.
var cluster struct {
	root, out string
	env       []string
	kubePort  string
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	root, err := module.Root()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	out, err := os.MkdirTemp("", "mindie-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	ports, err := freePorts(4)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	cluster.root, cluster.out, cluster.kubePort = root, out, ports[1]
	cluster.env = append(os.Environ(),
		"OUT="+out, "ETCD_PORT="+ports[0], "KUBE_PORT="+ports[1], "MINDIE_PORT="+ports[2], "ETCD_PEER_PORT="+ports[3],
		// A loopback range of its own, so that pods of another local cluster never share an address.
		fmt.Sprintf("SIM_POD_CIDR=127.%d.0.0/16", 2+os.Getpid()%250))

	if err := script("hack/local-up.sh"); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: local-up failed: %v\n", err)
		dumpLogs()
		script("hack/local-down.sh")
		return 1
	}
	if err := waitTenantPermissions(90 * time.Second); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		dumpLogs()
		script("hack/local-down.sh", "--purge")
		return 1
	}
	code := m.Run()
	if code != 0 {
		dumpLogs()
	}
	if err := script("hack/local-down.sh", "--purge"); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: local-down failed: %v\n", err)
		return 1
	}
	return code
}

// waitTenantPermissions waits until the tenants' roles grant InferServers.
// hack/local-up.sh reports ready as soon as the APIService is Available,
// but the shipped user ClusterRoles reach the built-in edit and view roles
// only when kube-controller-manager's clusterrole-aggregation controller has
// run, a second or two later; until then the tenants get Forbidden.
func waitTenantPermissions(timeout time.Duration) error {
	start := time.Now()
	checks := [][]string{
		{"create", "inferservers.infer.mindie.io", "-n", "team-a", "--as=tenant-a-editor"},
		{"create", "inferservers.infer.mindie.io", "-n", "team-b", "--as=tenant-b-editor"},
		{"watch", "inferservers.infer.mindie.io", "-n", "team-a", "--as=tenant-a-viewer"},
	}
	for _, c := range checks {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			out, err := exec.CommandContext(ctx, filepath.Join(cluster.out, "bin", "kubectl"),
				append([]string{"--kubeconfig=" + kubeconfig(""), "auth", "can-i"}, c...)...).Output()
			cancel()
			if err == nil && strings.TrimSpace(string(out)) == "yes" {
				break
			}
			if time.Since(start) > timeout {
				return fmt.Errorf("kubectl auth can-i %s: still %q (%v) after %v", strings.Join(c, " "), strings.TrimSpace(string(out)), err, timeout)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	fmt.Fprintf(os.Stderr, "e2e: the tenants' permissions took effect %v after local-up.sh\n", time.Since(start).Round(10*time.Millisecond))
	return nil
}

func script(name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(cluster.root, name), args...)
	cmd.Dir = cluster.root
	cmd.Env = cluster.env
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

// dumpLogs prints the end of every component's log, for a failed run.
func dumpLogs() {
	logs, _ := filepath.Glob(filepath.Join(cluster.out, "logs", "*.log"))
	for _, l := range logs {
		data, _ := os.ReadFile(l)
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > 30 {
			lines = lines[len(lines)-30:]
		}
		fmt.Fprintf(os.Stderr, "==== %s (last %d lines)\n%s\n", l, len(lines), strings.Join(lines, "\n"))
	}
}

func freePorts(n int) ([]string, error) {
	var ports []string
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		listeners = append(listeners, l)
		ports = append(ports, fmt.Sprint(l.Addr().(*net.TCPAddr).Port))
	}
	return ports, nil
}

// kubeconfig returns the admin kubeconfig, or a tenant user's.
func kubeconfig(user string) string {
	if user == "" || user == "admin" {
		return filepath.Join(cluster.out, "kubeconfig")
	}
	return filepath.Join(cluster.out, "users", user+".kubeconfig")
}

// kubectlResult is what one kubectl run printed.
type kubectlResult struct {
	stdout, stderr string
	err            error
}

// kubectl runs the real kubectl as a user ("" for the cluster admin).
func kubectl(t *testing.T, user string, args ...string) kubectlResult {
	t.Helper()
	return kubectlIn(t, user, "", args...)
}

// kubectlIn runs kubectl with stdin.
func kubectlIn(t *testing.T, user, stdin string, args ...string) kubectlResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(cluster.out, "bin", "kubectl"), append([]string{"--kubeconfig=" + kubeconfig(user)}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	err := cmd.Run()
	return kubectlResult{stdout: stdout.String(), stderr: stderr.String(), err: err}
}

// mustKubectl runs kubectl and fails the test when it fails.
func mustKubectl(t *testing.T, user string, args ...string) string {
	t.Helper()
	r := kubectl(t, user, args...)
	if r.err != nil {
		t.Fatalf("kubectl %s (as %s): %v\n%s%s", strings.Join(args, " "), userName(user), r.err, r.stdout, r.stderr)
	}
	return r.stdout
}

func userName(user string) string {
	if user == "" {
		return "admin"
	}
	return user
}

// clusterEnv returns a variable of the cluster's environment (OUT, KUBE_PORT,
// MINDIE_PORT, ...), as the hack/ scripts see it.
func clusterEnv(key string) string {
	for i := len(cluster.env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(cluster.env[i], key+"="); ok {
			return v
		}
	}
	return ""
}

// uniqueName returns prefix with a random suffix, so that every test (and
// every run of it) works on objects of its own.
func uniqueName(prefix string) string {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return prefix + "-" + hex.EncodeToString(b)
}

// inferServerYAML is a minimal InferServer manifest; extra is appended to
// its spec (a YAML flow mapping's inner text, e.g. "image: x:1").
func inferServerYAML(namespace, name string, replicas int, extra string) string {
	spec := fmt.Sprintf("replicas: %d", replicas)
	if extra != "" {
		spec += ", " + extra
	}
	return fmt.Sprintf("apiVersion: infer.mindie.io/v1alpha1\nkind: InferServer\nmetadata: {name: %s, namespace: %s}\nspec: {%s}\n", name, namespace, spec)
}

// createInferServer creates an InferServer as user and deletes it (as the
// admin, without waiting) when the test ends.
func createInferServer(t *testing.T, user, namespace, name string, replicas int, extra string) {
	t.Helper()
	r := kubectlIn(t, user, inferServerYAML(namespace, name, replicas, extra), "create", "-f", "-")
	if r.err != nil {
		t.Fatalf("creating InferServer %s/%s as %s: %v\n%s%s", namespace, name, userName(user), r.err, r.stdout, r.stderr)
	}
	t.Cleanup(func() {
		kubectl(t, "", "delete", "inferserver", name, "-n", namespace, "--ignore-not-found", "--wait=false")
	})
}

// eventually calls cond every interval until it reports true, and fails the
// test with cond's last message when timeout passes first.
func eventually(t *testing.T, timeout, interval time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, msg := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last: %s", what, timeout, msg)
		}
		time.Sleep(interval)
	}
}

// inferServer is the part of an InferServer the tests look at.
type inferServer struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name              string         `json:"name"`
		Namespace         string         `json:"namespace"`
		UID               string         `json:"uid"`
		ResourceVersion   string         `json:"resourceVersion"`
		Generation        int64          `json:"generation"`
		CreationTimestamp string         `json:"creationTimestamp"`
		DeletionTimestamp string         `json:"deletionTimestamp"`
		Finalizers        []string       `json:"finalizers"`
		Labels            map[string]any `json:"labels"`
		ManagedFields     []managedField `json:"managedFields"`
	} `json:"metadata"`
	Spec   map[string]any `json:"spec"`
	Status map[string]any `json:"status"`
}

type managedField struct {
	Manager     string          `json:"manager"`
	Operation   string          `json:"operation"`
	Subresource string          `json:"subresource"`
	FieldsV1    json.RawMessage `json:"fieldsV1"`
}

// getInferServer reads an InferServer as the admin, with its managed fields.
func getInferServer(t *testing.T, namespace, name string) inferServer {
	t.Helper()
	out := mustKubectl(t, "", "get", "inferserver", name, "-n", namespace, "-o", "json", "--show-managed-fields")
	var obj inferServer
	if err := json.Unmarshal([]byte(out), &obj); err != nil {
		t.Fatalf("kubectl get inferserver %s -o json: %v\n%s", name, err, out)
	}
	return obj
}

// table is kubectl's human-readable output split into columns (no cell the
// InferServer printer writes contains a space).
type table struct {
	header []string
	rows   [][]string
}

func parseTable(out string) table {
	var tb table
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if tb.header == nil {
			tb.header = f
			continue
		}
		tb.rows = append(tb.rows, f)
	}
	return tb
}

// row returns the first row whose column col is value.
func (tb table) row(col, value string) (map[string]string, bool) {
	for _, r := range tb.rows {
		m := map[string]string{}
		for i, h := range tb.header {
			if i < len(r) {
				m[h] = r[i]
			}
		}
		if m[col] == value {
			return m, true
		}
	}
	return nil, false
}

// lockedBuffer collects a background command's output for readers in
// another goroutine.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// background is a kubectl running in the background (a watch, a wait).
type background struct {
	args           []string
	cancel         context.CancelFunc
	stdout, stderr lockedBuffer
	done           chan struct{}
	err            error
}

// startKubectl starts kubectl as user in the background; it is killed after
// limit, and when the test ends.
func startKubectl(t *testing.T, user string, limit time.Duration, args ...string) *background {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	b := &background{args: args, cancel: cancel, done: make(chan struct{})}
	cmd := exec.CommandContext(ctx, filepath.Join(cluster.out, "bin", "kubectl"), append([]string{"--kubeconfig=" + kubeconfig(user)}, args...)...)
	cmd.Stdout, cmd.Stderr = &b.stdout, &b.stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting kubectl %s: %v", strings.Join(args, " "), err)
	}
	go func() {
		b.err = cmd.Wait()
		close(b.done)
	}()
	t.Cleanup(func() {
		b.cancel()
		<-b.done
	})
	return b
}

// waitLine waits until a line of the output has each of fields among its
// whitespace-separated fields, and returns that line.
func (b *background) waitLine(t *testing.T, timeout time.Duration, fields ...string) string {
	t.Helper()
	var line string
	eventually(t, timeout, 100*time.Millisecond, fmt.Sprintf("kubectl %s printing a line with %q", strings.Join(b.args, " "), fields), func() (bool, string) {
		out := b.stdout.String()
		for _, l := range strings.Split(out, "\n") {
			if containsAll(strings.Fields(l), fields) {
				line = l
				return true, ""
			}
		}
		select {
		case <-b.done:
			return false, fmt.Sprintf("kubectl exited (%v); stdout:\n%s\nstderr:\n%s", b.err, out, b.stderr.String())
		default:
		}
		return false, "stdout so far:\n" + out
	})
	return line
}

// wait waits for the background kubectl to exit and returns its error.
func (b *background) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case <-b.done:
		return b.err
	case <-time.After(timeout):
		t.Fatalf("kubectl %s still runs after %v; stdout:\n%s\nstderr:\n%s", strings.Join(b.args, " "), timeout, b.stdout.String(), b.stderr.String())
		return nil
	}
}

// exited reports whether the background kubectl has exited.
func (b *background) exited() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// containsAll reports whether fields holds each of want as a whole field.
func containsAll(fields, want []string) bool {
	for _, w := range want {
		found := false
		for _, f := range fields {
			if f == w {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

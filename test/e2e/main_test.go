// Package e2e runs the repository's local cluster (hack/local-up.sh: etcd,
// kube-apiserver with the aggregator, controller-manager, scheduler and
// mindie-apiserver registered by an APIService) and drives it with the real
// kubectl, as users and operators do.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	root, err := moduleRoot()
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
		"OUT="+out, "ETCD_PORT="+ports[0], "KUBE_PORT="+ports[1], "MINDIE_PORT="+ports[2], "ETCD_PEER_PORT="+ports[3])

	if err := script("hack/local-up.sh"); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: local-up failed: %v\n", err)
		dumpLogs()
		script("hack/local-down.sh")
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

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
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

package e2e

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// leaseHolder is the identity holding the controllers' Lease.
func leaseHolder(t *testing.T) string {
	t.Helper()
	r := kubectl(t, "", "get", "lease", "mindie-controller", "-n", "mindie-system", "-o", "jsonpath={.spec.holderIdentity}")
	if r.err != nil {
		return ""
	}
	return r.stdout
}

// eventHosts counts the InferServer's events by the replica that recorded them.
func eventHosts(t *testing.T, ns, name string) map[string]int {
	t.Helper()
	hosts := map[string]int{}
	for _, e := range listJSON[corev1.Event](t, "events", "-n", ns, "--field-selector", "involvedObject.name="+name+",involvedObject.kind=InferServer") {
		if e.Source.Component == "mindie-controller" {
			hosts[e.Source.Host] += int(max(e.Count, 1))
		}
	}
	return hosts
}

// startReplica starts another mindie-apiserver with the first one's flags
// on another port, sharing its etcd and Lease.
func startReplica(t *testing.T, identity string) (port string, stop func()) {
	t.Helper()
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", readPid(t, "mindie-apiserver")))
	if err != nil {
		t.Fatal(err)
	}
	ports, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	var flags []string
	for _, a := range args[1:] {
		switch {
		case strings.HasPrefix(a, "--secure-port="), strings.HasPrefix(a, "--audit-log-path="), strings.HasPrefix(a, "--leader-elect-identity="):
		default:
			flags = append(flags, a)
		}
	}
	flags = append(flags, "--secure-port="+ports[0], "--leader-elect-identity="+identity,
		"--audit-log-path="+filepath.Join(cluster.out, "logs", identity+"-audit.log"))
	logFile, err := os.Create(filepath.Join(cluster.out, "logs", identity+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(args[0], flags...)
	// Relative flags (the audit policy) are relative to the repository, where local-up runs.
	cmd.Dir = cluster.root
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logFile.Close(); close(done) }()
	stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // loopback readiness probe
	eventually(t, 60*time.Second, 500*time.Millisecond, identity+" ready", func() (bool, string) {
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(cluster.out, "logs", identity+".log"))
			t.Fatalf("%s exited:\n%s", identity, log)
		default:
		}
		resp, err := client.Get("https://127.0.0.1:" + ports[0] + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	// A replica running controllers is ready only once their InferServer
	// informer has synced (a standalone server has no such check).
	resp, err := client.Get("https://127.0.0.1:" + ports[0] + "/readyz?verbose")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "[+]inferserver-informer-synced ok") {
		t.Errorf("/readyz of %s lacks the controllers' informer check:\n%s", identity, body)
	}
	return ports[0], stop
}

// TestControllersTakeTurns runs a second mindie-apiserver beside the first:
// only the Lease holder's controllers act; when it stops, the other takes
// over; when the first comes back, it waits its turn.
func TestControllersTakeTurns(t *testing.T) {
	waitNoServerPods(t)
	first := leaseHolder(t)
	if first == "" {
		t.Fatal("no replica holds the mindie-controller Lease")
	}
	const second = "e2e-replica-b"
	portB, stopB := startReplica(t, second)
	stoppedB := false
	t.Cleanup(func() {
		if !stoppedB {
			stopB()
		}
	})

	const ns = "default"
	name := uniqueName("turns")
	t.Cleanup(func() { kubectl(t, "", "delete", "inferserver", name, "-n", ns, "--ignore-not-found", "--wait=false") })
	applyServer(t, ns, fmt.Sprintf(`apiVersion: infer.mindie.io/v1alpha1
kind: InferServer
metadata: {name: %s, namespace: %s}
spec:
  replicas: 1
  terminationGracePeriodSeconds: 2
  resources: {cpu: "2", memory: 4000Mi, npu: {count: 1}}
  health: {startupSeconds: 30}
`, name, ns))
	waitServer(t, ns, name, 2*time.Minute, "1 instance", rolledOut(1))
	if h := leaseHolder(t); h != first {
		t.Fatalf("lease holder %q, want %q", h, first)
	}
	hosts := eventHosts(t, ns, name)
	if hosts[first] == 0 || hosts[second] != 0 || len(hosts) != 1 {
		t.Fatalf("events by replica while %s leads: %v", first, hosts)
	}

	// The leader stops: the other replica takes over and acts, and is
	// reachable directly (the APIService still points at the first).
	pid := readPid(t, "mindie-apiserver")
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			break
		}
	}
	_ = os.Remove(filepath.Join(cluster.out, "pids", "mindie-apiserver"))
	eventually(t, 40*time.Second, 500*time.Millisecond, second+" holds the lease", func() (bool, string) {
		h := leaseHolder(t)
		return h == second, "holder " + h
	})
	direct := []string{"--server=https://127.0.0.1:" + portB, "--insecure-skip-tls-verify=true"}
	eventually(t, 30*time.Second, time.Second, "scale through "+second, func() (bool, string) {
		r := kubectl(t, "", append(direct, "scale", "inferserver", name, "-n", ns, "--replicas=2")...)
		return r.err == nil, r.stderr
	})
	eventually(t, 2*time.Minute, time.Second, second+" scaled the server", func() (bool, string) {
		r := kubectl(t, "", append(direct, "get", "inferserver", name, "-n", ns, "-o", "jsonpath={.status.readyReplicas}")...)
		return r.stdout == "2", r.stdout + r.stderr
	})
	if hosts := eventHosts(t, ns, name); hosts[second] == 0 {
		t.Errorf("no events by %s after it took over: %v", second, hosts)
	}

	// The first replica comes back and waits while the second leads.
	if err := script("hack/local-up.sh"); err != nil {
		t.Fatalf("restarting mindie-apiserver: %v", err)
	}
	waitAPIServiceAvailable(t, 60*time.Second)
	before := eventHosts(t, ns, name)
	mustKubectl(t, "", "scale", "inferserver", name, "-n", ns, "--replicas=1")
	waitServer(t, ns, name, 2*time.Minute, "back to 1 instance", rolledOut(1))
	after := eventHosts(t, ns, name)
	for host, n := range after {
		if host != second && n != before[host] {
			t.Errorf("%s recorded events while %s led: %v, before %v", host, second, after, before)
		}
	}
	if h := leaseHolder(t); h != second {
		t.Errorf("lease holder %q while %s runs", h, second)
	}

	// The second stops; the restarted first leads again.
	stopB()
	stoppedB = true
	eventually(t, 40*time.Second, 500*time.Millisecond, "the restarted first replica leads", func() (bool, string) {
		h := leaseHolder(t)
		return h != "" && h != second, "holder " + h
	})
	var buf bytes.Buffer
	_ = json.Indent(&buf, []byte(mustKubectl(t, "", "get", "lease", "mindie-controller", "-n", "mindie-system", "-o", "json")), "", " ")
	t.Logf("lease: %s", buf.String())
	deleteServerAndWait(t, ns, name)
}

package e2e

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"mindie.io/deployer/apis/infer/v1alpha1"
)

// localUp runs hack/local-up.sh with extra environment variables.
func localUp(t *testing.T, env ...string) {
	t.Helper()
	saved := cluster.env
	cluster.env = append(append([]string(nil), saved...), env...)
	defer func() { cluster.env = saved }()
	if err := script("hack/local-up.sh"); err != nil {
		t.Fatalf("hack/local-up.sh with %v: %v", env, err)
	}
}

// stopComponent stops a process local-up started (SIGTERM, waiting for it
// to exit) and removes its pid file, so that local-up starts it again.
// A component without a pid file is not running: nothing to stop.
func stopComponent(t *testing.T, name string) {
	t.Helper()
	pidFile := filepath.Join(cluster.out, "pids", name)
	if _, err := os.Stat(pidFile); errors.Is(err, os.ErrNotExist) {
		return
	}
	pid := readPid(t, name)
	gone := func() bool { return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) }
	_ = syscall.Kill(pid, syscall.SIGTERM)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && !gone(); time.Sleep(200 * time.Millisecond) {
	}
	if !gone() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	_ = os.Remove(pidFile)
}

// TestExternalController runs the workload controllers as mindie-controller,
// a process of their own: while mindie-apiserver's in-process controllers
// hold the Lease it stands by (ready, its InferServer informer listed
// through kube-apiserver); once mindie-apiserver runs with
// --external-controllers it leads, and creates, scales, finalizes and
// deletes servers and deploys EdgeDeployments through kube-apiserver under
// the service account's RBAC. The cluster is put back as it was.
func TestExternalController(t *testing.T) {
	waitNoServerPods(t)
	inProcess := leaseHolder(t)
	if inProcess == "" {
		t.Fatal("no replica holds the mindie-controller Lease")
	}
	ports, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	const identity = "e2e-controller"
	env := []string{"MINDIE_CONTROLLERS=external", "MINDIE_CONTROLLER_PORT=" + ports[0],
		"MINDIE_CONTROLLER_FLAGS=--leader-elect-identity=" + identity}
	t.Cleanup(func() {
		// Back to the controllers in mindie-apiserver.
		stopComponent(t, "mindie-controller")
		stopComponent(t, "mindie-apiserver")
		localUp(t)
		waitAPIServiceAvailable(t, 60*time.Second)
		eventually(t, 40*time.Second, 500*time.Millisecond, "mindie-apiserver's controllers lead again", func() (bool, string) {
			h := leaseHolder(t)
			return h != "" && h != identity, "holder " + h
		})
	})

	// mindie-apiserver still runs its controllers: local-up only starts
	// mindie-controller, which is ready and waits its turn.
	localUp(t, env...)
	health := "http://127.0.0.1:" + ports[0]
	if code, body := httpGet(t, health+"/readyz?verbose"); code != http.StatusOK || !strings.Contains(body, "[+]inferserver-informer-synced ok") {
		t.Fatalf("/readyz of mindie-controller: %d\n%s", code, body)
	}
	if h := leaseHolder(t); h != inProcess {
		t.Fatalf("lease holder %q after mindie-controller started, want %q (still leading)", h, inProcess)
	}

	// mindie-apiserver comes back with --external-controllers: it gives up
	// the Lease as it stops, and mindie-controller takes it.
	stopComponent(t, "mindie-apiserver")
	localUp(t, env...)
	waitAPIServiceAvailable(t, 60*time.Second)
	eventually(t, 40*time.Second, 500*time.Millisecond, identity+" holds the lease", func() (bool, string) {
		h := leaseHolder(t)
		return h == identity, "holder " + h
	})
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", readPid(t, "mindie-apiserver")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cmdline), "--external-controllers") {
		t.Fatalf("mindie-apiserver runs without --external-controllers: %q", cmdline)
	}

	const ns = "default"
	name := applyOneNPUServer(t, ns, "external")
	s := waitServer(t, ns, name, 2*time.Minute, "1 instance", rolledOut(1))
	if !containsString(s.Finalizers, v1alpha1.FinalizerCleanup) {
		t.Errorf("finalizers %v: mindie-apiserver --external-controllers must still add %s", s.Finalizers, v1alpha1.FinalizerCleanup)
	}
	mustKubectl(t, "", "scale", "inferserver", name, "-n", ns, "--replicas=2")
	waitServer(t, ns, name, 2*time.Minute, "2 instances", rolledOut(2))
	if hosts := eventHosts(t, ns, name); hosts[identity] == 0 || len(hosts) != 1 {
		t.Errorf("events by replica, want only %s's: %v", identity, hosts)
	}

	// EdgeDeployments and their status go through kube-apiserver too.
	const edge = "edge-external"
	applyEdge(t, edge, arm64Targets+`  container: {image: example/edge-app:1.0}
`)
	eventually(t, time.Minute, time.Second, "EdgeDeployment "+edge+" deploying to its nodes", func() (bool, string) {
		e := edgeJob(t, edge)
		return e.Status.ObservedGeneration == e.Generation && len(e.Status.Nodes) > 0 && e.Status.Queued+e.Status.Running+e.Status.Succeeded > 0,
			fmt.Sprintf("%+v", e.Status)
	})
	mustKubectl(t, "", "-n", edgeNS, "delete", "edgedeployment", edge, "--wait=true", "--timeout=60s")

	deleteServerAndWait(t, ns, name)
	log, err := os.ReadFile(filepath.Join(cluster.out, "logs", "mindie-controller.log"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(log), "forbidden") {
		t.Errorf("mindie-controller was refused requests; its log:\n%s", log)
	}
}

// httpGet reads a loopback URL over plain HTTP.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

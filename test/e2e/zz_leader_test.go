package e2e

import (
	"bytes"
	"context"
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
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	clientset "mindie.io/deployer/pkg/generated/clientset/versioned"
	"mindie.io/deployer/test/failover"
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
	name := applyOneNPUServer(t, ns, "turns")
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

// TestLeaderKilledUnderLoad runs two replicas behind hack/servicelb (what a
// Service's virtual IP gives them in a cluster), keeps writing and reading
// InferServers through kube-apiserver as users do, and kills the leader
// with SIGKILL: the API keeps answering through the other replica, every
// failed request is one a client retries (and the retry succeeds), nothing
// acknowledged is lost or written twice, and the other replica's
// controllers act within 15 s.
func TestLeaderKilledUnderLoad(t *testing.T) {
	leader := leaseHolder(t)
	const other = "e2e-replica-c"
	if leader == "" || leader == other {
		t.Fatalf("lease holder %q: want local-up's replica", leader)
	}
	portB, stopB := startReplica(t, other)
	defer stopB()

	// servicelb in front of both, the leader first and taking every
	// connection while it lives (the worst case: the replica that dies
	// carries all traffic); the APIService's port moves to it.
	ports, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	lbLog, err := os.Create(filepath.Join(cluster.out, "logs", "servicelb.log"))
	if err != nil {
		t.Fatal(err)
	}
	lb := exec.Command(filepath.Join(cluster.out, "bin", "servicelb"), "-listen", "127.0.0.1:"+ports[0],
		"-backend", "127.0.0.1:"+clusterEnv("MINDIE_PORT"), "-backend", "127.0.0.1:"+portB,
		"-cacert", filepath.Join(cluster.out, "pki", "mindie-ca.crt"), "-policy", "first")
	lb.Stdout, lb.Stderr = lbLog, lbLog
	if err := lb.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lb.Process.Kill(); _ = lb.Wait(); lbLog.Close() }()
	setAPIServicePort := func(port string) {
		mustKubectl(t, "", "patch", "apiservice", apiService, "--type=merge", "-p", `{"spec":{"service":{"port":`+port+`}}}`)
	}
	setAPIServicePort(ports[0])
	restored := false
	defer func() {
		if !restored {
			setAPIServicePort(clusterEnv("MINDIE_PORT"))
		}
	}()
	waitAPIServiceAvailable(t, 60*time.Second)

	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig(""))
	if err != nil {
		t.Fatal(err)
	}
	// The load's rate is its own, not client-go's default limit's (5/s).
	cfg.QPS, cfg.Burst = 200, 400
	kube := kubernetes.NewForConfigOrDie(cfg)
	infer := clientset.NewForConfigOrDie(cfg)
	ns := uniqueName("failover")
	mustKubectl(t, "", "create", "namespace", ns)
	defer func() {
		kubectl(t, "", "delete", "namespace", ns, "--wait=false")
		eventually(t, 3*time.Minute, time.Second, "namespace "+ns+" gone", func() (bool, string) {
			r := kubectl(t, "", "get", "namespace", ns, "-o", "name")
			return r.err != nil && strings.Contains(r.stderr, "NotFound"), r.stdout + r.stderr
		})
	}()

	opts := failover.DefaultOptions(ns, "fo")
	opts.Pause = 250 * time.Millisecond
	load := failover.Start(context.Background(), infer, opts)
	stopped := false
	defer func() {
		if !stopped {
			load.Stop()
		}
	}()
	time.Sleep(5 * time.Second)

	// The requests reach the leader: its audit log records the load's.
	auditA, auditB := filepath.Join(cluster.out, "logs", "audit.log"), filepath.Join(cluster.out, "logs", other+"-audit.log")
	if n := countIn(t, auditA, `"namespace":"`+ns+`"`); n == 0 {
		t.Fatalf("the leader's audit log has no request of the load in %s", ns)
	}
	servedB := countIn(t, auditB, `"namespace":"`+ns+`"`)

	pid := readPid(t, "mindie-apiserver")
	killed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = os.Remove(filepath.Join(cluster.out, "pids", "mindie-apiserver"))
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	tk, err := failover.WatchTakeover(ctx, kube, infer, "mindie-system", "mindie-controller", leader, ns, opts.Run, killed)
	if err != nil {
		t.Errorf("takeover: %v", err)
	}
	time.Sleep(time.Until(killed.Add(20 * time.Second)))
	report := load.Stop()
	stopped = true

	before, after := report.Window(report.Start, killed), report.Window(killed, report.End)
	t.Logf("takeover: lease to %s after %s, controllers acting after %s", tk.NewLeader, tk.Lease.Round(time.Millisecond), tk.Act.Round(time.Millisecond))
	t.Logf("before the kill: %+v; after: %+v; retried: %v; acknowledged creates: %d", before, after, report.Retryable, report.Acknowledged())
	for _, p := range report.Problems() {
		t.Errorf("%s", p)
	}
	problems, err := report.Verify(context.Background(), infer)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	for _, p := range problems {
		t.Errorf("%s", p)
	}
	if tk.NewLeader != other {
		t.Errorf("lease went to %q, want %s", tk.NewLeader, other)
	}
	if tk.Act == 0 || tk.Act > 15*time.Second {
		t.Errorf("the controllers acted %s after the leader died, want within 15s", tk.Act)
	}
	if after.Ops == 0 || report.Acknowledged() == 0 {
		t.Errorf("no operations after the kill: %+v", after)
	}
	if n := countIn(t, auditB, `"namespace":"`+ns+`"`); n <= servedB {
		t.Errorf("%s served none of the load after the kill (%d audit events before, %d after)", other, servedB, n)
	}

	// Back to one replica at local-up's port: local-up restarts the killed
	// one and applies the APIService again; then the other stops, and the
	// restarted replica leads.
	if err := script("hack/local-up.sh"); err != nil {
		t.Fatalf("restarting mindie-apiserver: %v", err)
	}
	restored = true
	waitAPIServiceAvailable(t, 60*time.Second)
	stopB()
	eventually(t, 40*time.Second, 500*time.Millisecond, "the restarted replica leads", func() (bool, string) {
		h := leaseHolder(t)
		return h != "" && h != other, "holder " + h
	})
}

// countIn counts the lines of a file that contain s.
func countIn(t *testing.T, path, s string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(data, []byte(s))
}

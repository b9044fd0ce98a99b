package e2e

// This file's name sorts last: go test runs the tests of a package in the
// order of its files' names, and this test takes mindie-apiserver down.

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mindie.io/deployer/apis/infer/v1alpha1"
)

// processState returns the state letter of a process from /proc ("R", "S",
// "Z" for a zombie, ...), or "" when there is no such process.
func processState(pid int) string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	// pid (comm) state ...; comm may hold spaces and parentheses.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return "?"
	}
	return s[i+2 : i+3]
}

func readPid(t *testing.T, component string) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(cluster.out, "pids", component))
	if err != nil {
		t.Fatalf("pid file of %s: %v", component, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 {
		t.Fatalf("pid file of %s: %q", component, data)
	}
	return pid
}

// TestKillRestartLosesNothing: mindie-apiserver keeps nothing of its own (the
// objects are in the external etcd), so a SIGKILL and a restart lose nothing.
func TestKillRestartLosesNothing(t *testing.T) {
	const ns = "team-a"
	var names []string
	for i := 0; i < 3; i++ {
		name := uniqueName("restart")
		names = append(names, name)
		createInferServer(t, "tenant-a-editor", ns, name, i+1, "image: 'mindie:restart'")
	}
	// One was changed after its creation, one is being deleted (held by a
	// finalizer): both states must survive too.
	mustKubectl(t, "tenant-a-editor", "scale", "inferserver", names[1], "-n", ns, "--replicas=7")
	mustKubectl(t, "", "patch", "inferserver", names[2], "-n", ns, "--type=merge", "-p", `{"metadata":{"finalizers":["e2e.mindie.io/hold"]}}`)
	t.Cleanup(func() {
		kubectl(t, "", "patch", "inferserver", names[2], "-n", ns, "--type=merge", "-p", `{"metadata":{"finalizers":null}}`)
	})
	mustKubectl(t, "", "delete", "inferserver", names[2], "-n", ns, "--wait=false")

	before := map[string]inferServer{}
	for _, name := range names {
		before[name] = getInferServer(t, ns, name)
	}
	if before[names[2]].Metadata.DeletionTimestamp == "" {
		t.Fatalf("%s has no deletionTimestamp", names[2])
	}

	// SIGKILL: no shutdown of any kind.
	pid := readPid(t, "mindie-apiserver")
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d (mindie-apiserver): %v", pid, err)
	}
	killed := time.Now()
	eventually(t, 10*time.Second, 100*time.Millisecond, "mindie-apiserver (pid "+strconv.Itoa(pid)+") dead", func() (bool, string) {
		s := processState(pid)
		return s == "" || s == "Z", "state " + s
	})

	// The API is gone: requests for InferServers fail (the aggregator cannot
	// reach the server), or the APIService is no longer Available.
	eventually(t, 60*time.Second, 500*time.Millisecond, "the API unavailable after kill -9", func() (bool, string) {
		r := kubectl(t, "", "get", "inferservers", "-n", ns, "--request-timeout=5s")
		if r.err != nil {
			t.Logf("after kill -9: kubectl get inferservers: %s", strings.TrimSpace(r.stderr))
			return true, ""
		}
		if status, msg := apiServiceAvailable(t); status != "True" {
			t.Logf("after kill -9: APIService Available=%s: %s", status, msg)
			return true, ""
		}
		return false, "kubectl get still works:\n" + r.stdout
	})
	if r := kubectl(t, "tenant-a-editor", "scale", "inferserver", names[0], "-n", ns, "--replicas=9", "--request-timeout=5s"); r.err == nil {
		t.Errorf("a write succeeded while mindie-apiserver was down: %s", r.stdout)
	}

	// hack/local-up.sh decides what to start by `kill -0 <pid>`, which also
	// succeeds for a zombie: until the dead server is reaped (by init, which
	// is its parent once local-up.sh has exited), the script would think it
	// still runs and start nothing. Give init a bounded while to reap it.
	reaped := false
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			reaped = true
			break
		}
	}
	if !reaped {
		t.Logf("mindie-apiserver (pid %d) is still a zombie %v after kill -9; nobody reaps it, so hack/local-up.sh would take it for running. Removing its pid file.", pid, time.Since(killed).Round(time.Millisecond))
		if err := os.Remove(filepath.Join(cluster.out, "pids", "mindie-apiserver")); err != nil {
			t.Fatal(err)
		}
	}

	// local-up.sh is idempotent: it restarts only what does not run.
	others := map[string]int{}
	for _, c := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		others[c] = readPid(t, c)
	}
	start := time.Now()
	if err := script("hack/local-up.sh"); err != nil {
		t.Fatalf("hack/local-up.sh after kill -9: %v", err)
	}
	t.Logf("hack/local-up.sh restarted mindie-apiserver in %v", time.Since(start).Round(100*time.Millisecond))
	for c, p := range others {
		if got := readPid(t, c); got != p {
			t.Errorf("hack/local-up.sh restarted %s (pid %d, was %d), which was running", c, got, p)
		}
	}
	newPid := readPid(t, "mindie-apiserver")
	if newPid == pid {
		t.Fatalf("hack/local-up.sh did not start mindie-apiserver again (pid file still %d)", pid)
	}
	if s := processState(newPid); s == "" || s == "Z" {
		t.Fatalf("the new mindie-apiserver (pid %d) does not run: state %q", newPid, s)
	}
	waitAPIServiceAvailable(t, 60*time.Second)

	// Every object is there, unchanged: same uid, generation, timestamps,
	// finalizers and spec. (The workload controller keeps writing status,
	// and its finalizer comes and goes with deletion, so resourceVersion,
	// status and the controller's finalizer are not compared here; the
	// integration tests compare them byte for byte without controllers.)
	eventually(t, 30*time.Second, 500*time.Millisecond, "InferServers readable after the restart", func() (bool, string) {
		r := kubectl(t, "", "get", "inferservers", "-n", ns, "-o", "name")
		return r.err == nil, r.stderr
	})
	userFinalizers := func(fs []string) []string {
		var out []string
		for _, f := range fs {
			if f != v1alpha1.FinalizerCleanup {
				out = append(out, f)
			}
		}
		return out
	}
	for _, name := range names {
		after := getInferServer(t, ns, name)
		b := before[name]
		if after.Metadata.UID != b.Metadata.UID || after.Metadata.Generation != b.Metadata.Generation ||
			after.Metadata.CreationTimestamp != b.Metadata.CreationTimestamp || after.Metadata.DeletionTimestamp != b.Metadata.DeletionTimestamp ||
			!reflect.DeepEqual(userFinalizers(after.Metadata.Finalizers), userFinalizers(b.Metadata.Finalizers)) {
			t.Errorf("%s after the restart: uid %s generation %d created %s deleting %q finalizers %v; before: uid %s generation %d created %s deleting %q finalizers %v",
				name, after.Metadata.UID, after.Metadata.Generation, after.Metadata.CreationTimestamp, after.Metadata.DeletionTimestamp, after.Metadata.Finalizers,
				b.Metadata.UID, b.Metadata.Generation, b.Metadata.CreationTimestamp, b.Metadata.DeletionTimestamp, b.Metadata.Finalizers)
		}
		if !reflect.DeepEqual(after.Spec, b.Spec) {
			t.Errorf("%s changed across the restart:\nspec %v\nwas  %v", name, after.Spec, b.Spec)
		}
	}
	if got := before[names[1]].Spec["replicas"]; got != 7.0 {
		t.Errorf("%s: replicas %v before the restart, want 7", names[1], got)
	}

	// The restarted server serves writes and watches again, and the held
	// deletion completes once its finalizer goes.
	mustKubectl(t, "tenant-a-editor", "scale", "inferserver", names[0], "-n", ns, "--replicas=4")
	if got := mustKubectl(t, "tenant-a-viewer", "get", "inferserver", names[0], "-o", "jsonpath={.spec.replicas}"); got != "4" {
		t.Errorf("after the restart: replicas of %s %q, want 4", names[0], got)
	}
	mustKubectl(t, "", "patch", "inferserver", names[2], "-n", ns, "--type=json", "-p", `[{"op":"remove","path":"/metadata/finalizers"}]`)
	mustKubectl(t, "", "wait", "--for=delete", "inferserver/"+names[2], "-n", ns, "--timeout=30s")
	name := uniqueName("restart-new")
	createInferServer(t, "tenant-a-editor", ns, name, 1, "")
	mustKubectl(t, "tenant-a-editor", "delete", "inferserver", name, "-n", ns)
}

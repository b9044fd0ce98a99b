package integration

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	servertesting "mindie.io/deployer/pkg/cmd/server/testing"
	"mindie.io/deployer/pkg/embeddedetcd"
	clientset "mindie.io/deployer/pkg/generated/clientset/versioned"
)

// TestHealthReflectsEtcd runs the server on an etcd member of the test's own
// and checks that /readyz, /livez and /healthz report it: all checks pass
// while etcd serves, and the etcd check fails (with status 500) once the
// member is gone.
func TestHealthReflectsEtcd(t *testing.T) {
	etcd, err := embeddedetcd.Start(embeddedetcd.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	var closeOnce sync.Once
	closeEtcd := func() { closeOnce.Do(etcd.Close) }
	t.Cleanup(closeEtcd)

	s := servertesting.Start(t, "--etcd-servers="+etcd.ClientURL)
	client, err := clientset.NewForConfig(s.ClientConfig)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	healthy := map[string][]string{
		"/readyz":  {"[+]etcd ok", "[+]etcd-readiness ok"},
		"/livez":   {"[+]etcd ok"},
		"/healthz": {"[+]etcd ok"},
	}
	for path, lines := range healthy {
		code, body, err := healthStatus(ctx, client, path)
		if err != nil || code != 200 {
			t.Fatalf("%s with etcd up: status %d, error %v:\n%s", path, code, err, body)
		}
		for _, line := range lines {
			if !containsLine(body, line) {
				t.Errorf("%s with etcd up lacks %q:\n%s", path, line, body)
			}
		}
	}
	// The InferServer informer and its check belong to the controllers: a
	// standalone server (no controllers) has neither. test/e2e checks that a
	// server with controllers is ready only once its informer has synced.
	for _, path := range []string{"/readyz", "/livez"} {
		if code, body, _ := healthStatus(ctx, client, path); code != 200 || strings.Contains(body, "inferserver-informer-synced") || strings.Contains(body, "start-mindie-informers") {
			t.Errorf("%s of a standalone server lists the controllers' informer (status %d):\n%s", path, code, body)
		}
	}

	closeEtcd()
	down := time.Now()
	const limit = 60 * time.Second
	failing := map[string]bool{"/readyz": false, "/livez": false, "/healthz": false}
	last := map[string]string{}
	for time.Since(down) < limit {
		pending := 0
		for path, seen := range failing {
			if seen {
				continue
			}
			code, body, err := healthStatus(ctx, client, path)
			last[path] = body
			if err == nil && code != 200 && strings.Contains(body, "[-]etcd") {
				failing[path] = true
				t.Logf("%s reports etcd down %s after it stopped (status %d)", path, time.Since(down).Round(time.Millisecond), code)
				continue
			}
			if err != nil {
				last[path] = err.Error() + "\n" + body
			}
			pending++
		}
		if pending == 0 {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	for path, seen := range failing {
		if !seen {
			t.Errorf("%s does not report etcd down %s after it stopped; last answer:\n%s", path, limit, last[path])
		}
	}
	if failing["/readyz"] {
		// Only the etcd checks fail: the report names what is wrong.
		code, body, _ := healthStatus(ctx, client, "/readyz")
		if code != 500 || !containsLine(body, "[-]etcd failed: reason withheld") || !containsLine(body, "[+]ping ok") {
			t.Errorf("/readyz with etcd down: status %d, want 500 with a failing etcd check and passing ping:\n%s", code, body)
		}
	}
}

// containsLine reports whether a verbose health report has the line.
func containsLine(body, line string) bool {
	for _, l := range strings.Split(body, "\n") {
		if strings.TrimSpace(l) == line {
			return true
		}
	}
	return false
}

package e2e

import (
	"strings"
	"testing"
	"time"
)

// The namespace controller deletes the InferServers of a deleted namespace
// (it discovers the aggregated group and lists and deletes through it), so
// the namespace's deletion completes.
func TestNamespaceDeletion(t *testing.T) {
	ns := uniqueName("e2e-ns")
	mustKubectl(t, "", "create", "namespace", ns)
	t.Cleanup(func() { kubectl(t, "", "delete", "namespace", ns, "--ignore-not-found", "--wait=false") })

	var names []string
	for i := 0; i < 3; i++ {
		name := uniqueName("ns-isvc")
		names = append(names, name)
		mustKubectlIn(t, "", inferServerYAML(ns, name, i+1, ""), "create", "-f", "-")
	}
	tb := parseTable(mustKubectl(t, "", "get", "isvc", "-n", ns))
	if len(tb.rows) != 3 {
		t.Fatalf("kubectl get isvc -n %s: %d rows, want 3: %v", ns, len(tb.rows), tb.rows)
	}

	start := time.Now()
	r := kubectl(t, "", "delete", "namespace", ns, "--timeout=120s")
	if r.err != nil {
		status := kubectl(t, "", "get", "namespace", ns, "-o", "jsonpath={.status}")
		t.Fatalf("kubectl delete namespace %s --timeout=120s: %v\n%s%s\nnamespace status: %s", ns, r.err, r.stdout, r.stderr, status.stdout)
	}
	eventually(t, 60*time.Second, 500*time.Millisecond, "namespace "+ns+" gone", func() (bool, string) {
		r := kubectl(t, "", "get", "namespace", ns, "-o", "jsonpath={.status}")
		if r.err != nil && strings.Contains(r.stderr, "NotFound") {
			return true, ""
		}
		return false, r.stdout + r.stderr
	})
	t.Logf("namespace %s with 3 InferServers deleted in %v", ns, time.Since(start).Round(100*time.Millisecond))

	// Its InferServers went with it.
	out := mustKubectl(t, "", "get", "isvc", "-A", "-o", "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{\"\\n\"}{end}")
	for _, name := range names {
		if strings.Contains(out, name) {
			t.Errorf("InferServer %s outlived namespace %s:\n%s", name, ns, out)
		}
	}
}

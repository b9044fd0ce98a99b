package e2e

import (
	"strings"
	"testing"
	"time"
)

const apiService = "v1alpha1.infer.mindie.io"

// apiServiceAvailable returns the status of the APIService's Available
// condition ("True", "False", ...) and its message.
func apiServiceAvailable(t *testing.T) (status, message string) {
	t.Helper()
	r := kubectl(t, "", "get", "apiservice", apiService, "-o",
		`jsonpath={.status.conditions[?(@.type=="Available")].status}|{.status.conditions[?(@.type=="Available")].message}`)
	if r.err != nil {
		return "", r.err.Error() + ": " + r.stderr
	}
	status, message, _ = strings.Cut(r.stdout, "|")
	return status, message
}

// waitAPIServiceAvailable waits until the APIService is Available.
func waitAPIServiceAvailable(t *testing.T, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, 500*time.Millisecond, "APIService "+apiService+" Available", func() (bool, string) {
		status, message := apiServiceAvailable(t)
		return status == "True", "Available=" + status + " " + message
	})
}

func TestAPIServiceAvailable(t *testing.T) {
	// local-up.sh waited for it already: it is Available at once, and stays so.
	status, message := apiServiceAvailable(t)
	if status != "True" {
		t.Fatalf("APIService %s: Available=%q (%s), want True", apiService, status, message)
	}

	// It points at mindie-apiserver's Service and carries a caBundle, so the
	// aggregator verifies the server's certificate.
	out := mustKubectl(t, "", "get", "apiservice", apiService, "-o",
		`jsonpath={.spec.group}|{.spec.version}|{.spec.service.namespace}/{.spec.service.name}|{.spec.insecureSkipTLSVerify}|{.spec.caBundle}`)
	f := strings.Split(out, "|")
	if len(f) != 5 || f[0] != "infer.mindie.io" || f[1] != "v1alpha1" || f[2] != "mindie-system/mindie-apiserver" {
		t.Fatalf("APIService spec: %q, want group infer.mindie.io, version v1alpha1, service mindie-system/mindie-apiserver", out)
	}
	if f[3] == "true" || len(f[4]) < 100 {
		t.Fatalf("APIService %s: want a caBundle and no insecureSkipTLSVerify, got insecureSkipTLSVerify %q, caBundle %q", apiService, f[3], f[4])
	}

	// Discovery through kube-apiserver lists the group and the resource.
	res := mustKubectl(t, "", "api-resources", "--api-group=infer.mindie.io", "--no-headers")
	fields := strings.Fields(res)
	if !containsAll(fields, []string{"inferservers", "isvc", "infer.mindie.io/v1alpha1", "true", "InferServer"}) {
		t.Fatalf("kubectl api-resources --api-group=infer.mindie.io: %q, want inferservers isvc infer.mindie.io/v1alpha1 true InferServer", res)
	}
}

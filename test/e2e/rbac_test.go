package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// assertForbidden runs kubectl as user and checks that the server refused it
// as Forbidden for that user, verb and resource.
func assertForbidden(t *testing.T, user, verb, resource string, stdin string, args ...string) {
	t.Helper()
	r := kubectlIn(t, user, stdin, args...)
	if r.err == nil {
		t.Errorf("kubectl %s as %s succeeded, want Forbidden:\n%s", strings.Join(args, " "), user, r.stdout)
		return
	}
	want := `User "` + user + `" cannot ` + verb + ` resource "` + resource + `" in API group "infer.mindie.io"`
	if !strings.Contains(r.stderr, "Forbidden") || !strings.Contains(r.stderr, want) {
		t.Errorf("kubectl %s as %s: want Forbidden (%s), got %v\n%s%s", strings.Join(args, " "), user, want, r.err, r.stdout, r.stderr)
	}
}

// editorCanManage checks that a tenant's editor, with their own kubeconfig,
// manages InferServers in their namespace and cannot touch the other one.
func editorCanManage(t *testing.T, user, own, other string) {
	name := uniqueName("rbac-" + own)
	t.Cleanup(func() { kubectl(t, "", "delete", "inferserver", name, "-n", own, "--ignore-not-found", "--wait=false") })

	// Create (the kubeconfig's context names the namespace; say it anyway).
	out := mustKubectlIn(t, user, inferServerYAML(own, name, 1, ""), "create", "-f", "-")
	if !strings.Contains(out, name+" created") {
		t.Errorf("%s: create: %q", user, out)
	}
	// Get and list, in the context's namespace without -n too.
	if got := mustKubectl(t, user, "get", "inferserver", name, "-o", "jsonpath={.metadata.namespace}/{.metadata.name}"); got != own+"/"+name {
		t.Errorf("%s: get %s in the context's namespace: %q", user, name, got)
	}
	if tb := parseTable(mustKubectl(t, user, "get", "isvc", "-n", own)); !rowExists(tb, "NAME", name) {
		t.Errorf("%s: list in %s lacks %s: %v", user, own, name, tb.rows)
	}
	// Update (patch and replace) and scale.
	mustKubectl(t, user, "patch", "inferserver", name, "-n", own, "--type=merge", "-p", `{"spec":{"image":"mindie:patched"}}`)
	// The controller writes status (and its finalizer) meanwhile: a replace
	// of a copy read just before may conflict, and is retried like any
	// read-modify-write.
	for attempt := 1; ; attempt++ {
		obj := mustKubectl(t, user, "get", "inferserver", name, "-n", own, "-o", "json")
		obj = strings.Replace(obj, `"mindie:patched"`, `"mindie:replaced"`, 1)
		r := kubectlIn(t, user, obj, "replace", "-f", "-")
		if r.err == nil {
			break
		}
		if attempt == 5 || !strings.Contains(r.stderr, "the object has been modified") {
			t.Fatalf("kubectl replace (as %s): %v\n%s%s", user, r.err, r.stdout, r.stderr)
		}
	}
	mustKubectl(t, user, "scale", "inferserver", name, "-n", own, "--replicas=3")
	if got := mustKubectl(t, user, "get", "inferserver", name, "-n", own, "-o", "jsonpath={.spec.image} {.spec.replicas}"); got != "mindie:replaced 3" {
		t.Errorf("%s: after patch, replace and scale: %q, want %q", user, got, "mindie:replaced 3")
	}
	// Status is the controller's: editors may read it, not write it.
	assertForbidden(t, user, "patch", "inferservers/status", "", "patch", "inferserver", name, "-n", own, "--subresource=status", "--type=merge", "-p", `{"status":{"observedGeneration":1}}`)

	// The other tenant's namespace: nothing.
	theirs := uniqueName("theirs")
	createInferServer(t, "", other, theirs, 1, "")
	assertForbidden(t, user, "get", "inferservers", "", "get", "inferserver", theirs, "-n", other)
	assertForbidden(t, user, "list", "inferservers", "", "get", "inferservers", "-n", other)
	assertForbidden(t, user, "list", "inferservers", "", "get", "inferservers", "-A")
	assertForbidden(t, user, "create", "inferservers", inferServerYAML(other, uniqueName("intruder"), 1, ""), "create", "-f", "-")
	// kubectl patch and scale read the object first, and that is refused.
	assertForbidden(t, user, "get", "inferservers", "", "patch", "inferserver", theirs, "-n", other, "--type=merge", "-p", `{"spec":{"replicas":2}}`)
	assertForbidden(t, user, "get", "inferservers", "", "scale", "inferserver", theirs, "-n", other, "--replicas=2")
	// A PUT of the whole object, and of its scale, refused as such.
	whole := strings.Replace(mustKubectl(t, "", "get", "inferserver", theirs, "-n", other, "-o", "json"), `"replicas": 1`, `"replicas": 2`, 1)
	assertForbidden(t, user, "update", "inferservers", whole, "replace", "-f", "-")
	scale := mustKubectl(t, "", "get", "inferserver", theirs, "-n", other, "--subresource=scale", "-o", "json")
	assertForbidden(t, user, "update", "inferservers/scale", scale, "replace", "--raw",
		"/apis/infer.mindie.io/v1alpha1/namespaces/"+other+"/inferservers/"+theirs+"/scale", "-f", "-")
	assertForbidden(t, user, "delete", "inferservers", "", "delete", "inferserver", theirs, "-n", other)
	if got := mustKubectl(t, "", "get", "inferserver", theirs, "-n", other, "-o", "jsonpath={.spec.replicas}"); got != "1" {
		t.Errorf("%s's refused requests changed %s/%s: replicas %q", user, other, theirs, got)
	}

	// Delete their own.
	out = mustKubectl(t, user, "delete", "inferserver", name, "-n", own)
	if !strings.Contains(out, `"`+name+`" deleted`) {
		t.Errorf("%s: delete: %q", user, out)
	}
	assertNotFound(t, user, own, name)
}

// mustKubectlIn runs kubectl with stdin and fails the test when it fails.
func mustKubectlIn(t *testing.T, user, stdin string, args ...string) string {
	t.Helper()
	r := kubectlIn(t, user, stdin, args...)
	if r.err != nil {
		t.Fatalf("kubectl %s (as %s): %v\n%s%s", strings.Join(args, " "), userName(user), r.err, r.stdout, r.stderr)
	}
	return r.stdout
}

func TestRBACTenantAEditor(t *testing.T) { editorCanManage(t, "tenant-a-editor", "team-a", "team-b") }

func TestRBACTenantBEditor(t *testing.T) { editorCanManage(t, "tenant-b-editor", "team-b", "team-a") }

func TestRBACTenantAViewer(t *testing.T) {
	const user = "tenant-a-viewer"
	name := uniqueName("rbac-view")
	createInferServer(t, "", "team-a", name, 2, "")

	// get, list and watch in team-a.
	if got := mustKubectl(t, user, "get", "inferserver", name, "-o", "jsonpath={.spec.replicas}"); got != "2" {
		t.Errorf("viewer: get %s: replicas %q, want 2", name, got)
	}
	if tb := parseTable(mustKubectl(t, user, "get", "isvc", "-n", "team-a")); !rowExists(tb, "NAME", name) {
		t.Errorf("viewer: list lacks %s: %v", name, tb.rows)
	}
	if got := mustKubectl(t, user, "get", "inferserver", name, "--subresource=scale", "-o", "jsonpath={.spec.replicas}"); got != "2" {
		t.Errorf("viewer: get the scale of %s: %q, want 2", name, got)
	}
	w := startKubectl(t, user, 30*time.Second, "get", "isvc", "-n", "team-a", "-w", "--output-watch-events", "--request-timeout=4s")
	w.waitLine(t, 20*time.Second, "ADDED", name, "0/2")
	if err := w.wait(t, 20*time.Second); err != nil {
		t.Errorf("viewer: the watch ended with %v (want its request timeout, exit 0)\n%s%s", err, w.stdout.String(), w.stderr.String())
	}
	if s := w.stderr.String(); strings.Contains(s, "Forbidden") {
		t.Errorf("viewer: the watch was refused:\n%s", s)
	}

	// No writes of any kind.
	assertForbidden(t, user, "create", "inferservers", inferServerYAML("team-a", uniqueName("viewer-made"), 1, ""), "create", "-f", "-")
	assertForbidden(t, user, "patch", "inferservers", "", "patch", "inferserver", name, "--type=merge", "-p", `{"spec":{"replicas":3}}`)
	assertForbidden(t, user, "patch", "inferservers/scale", "", "scale", "inferserver", name, "--replicas=3")
	assertForbidden(t, user, "delete", "inferservers", "", "delete", "inferserver", name)
	// (kubectl delete --all deletes one by one; DELETE on the collection is
	// deletecollection.)
	assertForbidden(t, user, "delete", "inferservers", "", "delete", "inferservers", "--all")
	assertForbidden(t, user, "deletecollection", "inferservers", "", "delete", "--raw", "/apis/infer.mindie.io/v1alpha1/namespaces/team-a/inferservers")
	// Nor any reads outside team-a.
	assertForbidden(t, user, "get", "inferservers", "", "get", "inferserver", name, "-n", "team-b")
	assertForbidden(t, user, "list", "inferservers", "", "get", "inferservers", "-n", "team-b")
	assertForbidden(t, user, "watch", "inferservers", "", "get", "--raw", "/apis/infer.mindie.io/v1alpha1/namespaces/team-b/inferservers?watch=true&timeoutSeconds=3")

	if got := mustKubectl(t, "", "get", "inferserver", name, "-n", "team-a", "-o", "jsonpath={.spec.replicas}"); got != "2" {
		t.Errorf("the viewer's refused writes changed %s: replicas %q", name, got)
	}
}

// httpsGet does an unauthenticated GET with only the CA to verify the server.
func httpsGet(t *testing.T, caFile, url string) (int, string) {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", caFile)
	}
	client := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, Proxy: nil},
	}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestUnauthenticatedRefused(t *testing.T) {
	name := uniqueName("anon")
	createInferServer(t, "", "team-a", name, 1, "")
	const path = "/apis/infer.mindie.io/v1alpha1/namespaces/team-a/inferservers"

	// Through kube-apiserver: the anonymous user has no rights.
	code, body := httpsGet(t, filepath.Join(cluster.out, "pki", "cluster-ca.crt"), "https://127.0.0.1:"+cluster.kubePort+path)
	checkRefused(t, "kube-apiserver", code, body)

	// And the request by name.
	code, body = httpsGet(t, filepath.Join(cluster.out, "pki", "cluster-ca.crt"), "https://127.0.0.1:"+cluster.kubePort+path+"/"+name)
	checkRefused(t, "kube-apiserver (by name)", code, body)

	// Straight to mindie-apiserver, around the aggregator: without a
	// front-proxy client certificate nobody is authenticated either.
	mindie := "https://127.0.0.1:" + clusterEnv("MINDIE_PORT") + path
	code, body = httpsGet(t, filepath.Join(cluster.out, "pki", "mindie-ca.crt"), mindie)
	checkRefused(t, "mindie-apiserver", code, body)

	// Nor does a forged X-Remote-User header make anyone a tenant.
	req, err := http.NewRequest(http.MethodGet, mindie, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Remote-User", "tenant-a-editor")
	req.Header.Set("X-Remote-Group", "system:masters")
	pem, err := os.ReadFile(filepath.Join(cluster.out, "pki", "mindie-ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, Proxy: nil}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", mindie, err)
	}
	forged, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	checkRefused(t, "mindie-apiserver with forged X-Remote-User", resp.StatusCode, string(forged))
}

func checkRefused(t *testing.T, what string, code int, body string) {
	t.Helper()
	if code != http.StatusUnauthorized && code != http.StatusForbidden {
		t.Errorf("%s: unauthenticated GET: status %d, want 401 or 403\n%s", what, code, body)
		return
	}
	if strings.Contains(body, `"items"`) || strings.Contains(body, `"uid"`) {
		t.Errorf("%s: the refusal leaks objects:\n%s", what, body)
	}
	var status struct {
		Kind string `json:"kind"`
		Code int    `json:"code"`
	}
	if err := json.Unmarshal([]byte(body), &status); err != nil || status.Kind != "Status" || status.Code != code {
		t.Errorf("%s: the refusal is not a Status with code %d: %v\n%s", what, code, err, body)
	}
	if code == http.StatusForbidden && !strings.Contains(body, "system:anonymous") {
		t.Errorf("%s: 403 not for system:anonymous:\n%s", what, body)
	}
}

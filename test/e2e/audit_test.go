package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// auditEvent is the part of an audit.k8s.io/v1 Event the tests look at.
type auditEvent struct {
	Kind       string `json:"kind"`
	APIVersion string `json:"apiVersion"`
	Level      string `json:"level"`
	AuditID    string `json:"auditID"`
	Stage      string `json:"stage"`
	RequestURI string `json:"requestURI"`
	Verb       string `json:"verb"`
	User       struct {
		Username string   `json:"username"`
		Groups   []string `json:"groups"`
	} `json:"user"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
		APIGroup    string `json:"apiGroup"`
		APIVersion  string `json:"apiVersion"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
	RequestObject  json.RawMessage `json:"requestObject"`
	ResponseObject json.RawMessage `json:"responseObject"`
}

// readAudit parses the audit log; a last line still being written is left
// for the next read.
func readAudit(t *testing.T) []auditEvent {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(cluster.out, "logs", "audit.log"))
	if err != nil {
		t.Fatalf("reading the audit log: %v", err)
	}
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
		data = data[:i+1]
	} else {
		data = nil
	}
	var events []auditEvent
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for n := 1; sc.Scan(); n++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var e auditEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("audit log line %d is not JSON: %v\n%s", n, err, sc.Text())
		}
		events = append(events, e)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading the audit log: %v", err)
	}
	return events
}

// findAudit returns the first event for verb on the InferServer
// namespace/name (subresource "" for the object itself).
func findAudit(events []auditEvent, verb, namespace, name, subresource string) (auditEvent, bool) {
	for _, e := range events {
		if e.Verb == verb && e.ObjectRef != nil && e.ObjectRef.Resource == "inferservers" &&
			e.ObjectRef.Namespace == namespace && e.ObjectRef.Name == name && e.ObjectRef.Subresource == subresource {
			return e, true
		}
	}
	return auditEvent{}, false
}

func TestAuditLog(t *testing.T) {
	const user, ns = "tenant-a-editor", "team-a"
	name := uniqueName("audited")

	mustKubectlIn(t, user, inferServerYAML(ns, name, 1, ""), "create", "-f", "-")
	mustKubectl(t, user, "get", "inferserver", name, "-n", ns)
	mustKubectl(t, user, "get", "inferservers", "-n", ns)
	mustKubectl(t, user, "scale", "inferserver", name, "-n", ns, "--replicas=2")
	mustKubectl(t, user, "delete", "inferserver", name, "-n", ns)
	// A read by another user after the delete, not to be recorded either.
	mustKubectl(t, "tenant-a-viewer", "get", "inferservers", "-n", ns)
	// A write the server refuses (it is invalid) is recorded with its code.
	invalid := uniqueName("audited-invalid")
	if r := kubectlIn(t, user, inferServerYAML(ns, invalid, 0, ""), "create", "-f", "-"); r.err == nil {
		t.Fatalf("creating %s with replicas 0 succeeded", invalid)
	}

	// The log may be written a little later than the response: poll.
	var events []auditEvent
	var created, deleted, scaled, refused auditEvent
	eventually(t, 30*time.Second, 250*time.Millisecond, "audit events of "+name, func() (bool, string) {
		events = readAudit(t)
		var okC, okD, okS, okR bool
		created, okC = findAudit(events, "create", ns, name, "")
		deleted, okD = findAudit(events, "delete", ns, name, "")
		scaled, okS = findAudit(events, "patch", ns, name, "scale")
		refused, okR = findAudit(events, "create", ns, invalid, "")
		return okC && okD && okS && okR, fmt.Sprintf("%d events; create %v, delete %v, scale %v, invalid create %v", len(events), okC, okD, okS, okR)
	})

	check := func(what string, e auditEvent, code int) {
		t.Helper()
		if e.User.Username != user {
			t.Errorf("%s: user %q, want %q", what, e.User.Username, user)
		}
		if e.ResponseStatus == nil || e.ResponseStatus.Code != code {
			t.Errorf("%s: responseStatus %+v, want code %d", what, e.ResponseStatus, code)
		}
		if e.ObjectRef.APIGroup != "infer.mindie.io" || e.ObjectRef.APIVersion != "v1alpha1" {
			t.Errorf("%s: objectRef %+v, want infer.mindie.io/v1alpha1", what, *e.ObjectRef)
		}
		if e.Kind != "Event" || e.APIVersion != "audit.k8s.io/v1" || e.Level != "Metadata" || e.Stage != "ResponseComplete" || e.AuditID == "" {
			t.Errorf("%s: %s %s level %s stage %s auditID %q, want an audit.k8s.io/v1 Event, level Metadata, stage ResponseComplete", what, e.APIVersion, e.Kind, e.Level, e.Stage, e.AuditID)
		}
		if len(e.RequestObject) != 0 || len(e.ResponseObject) != 0 {
			t.Errorf("%s: level Metadata records no request or response bodies, got %s %s", what, e.RequestObject, e.ResponseObject)
		}
	}
	check("create", created, 201)
	check("delete", deleted, 200)
	check("scale", scaled, 200)
	check("invalid create", refused, 422)

	// Every event is a write to infer.mindie.io: no reads (our gets and lists
	// included) and nothing else.
	for _, e := range events {
		switch e.Verb {
		case "create", "update", "patch", "delete", "deletecollection":
		default:
			t.Errorf("the audit log records a %s (writes only): %s by %s", e.Verb, e.RequestURI, e.User.Username)
		}
		if e.ObjectRef == nil || e.ObjectRef.APIGroup != "infer.mindie.io" {
			t.Errorf("the audit log records a request outside infer.mindie.io: %s %s", e.Verb, e.RequestURI)
		}
		if e.Stage != "ResponseComplete" {
			t.Errorf("the audit log records stage %s (policy omits RequestReceived): %s %s", e.Stage, e.Verb, e.RequestURI)
		}
	}
	for _, verb := range []string{"get", "list", "watch"} {
		if e, ok := findAudit(events, verb, ns, name, ""); ok {
			t.Errorf("the audit log records a read: %s %s by %s", e.Verb, e.RequestURI, e.User.Username)
		}
	}
	// Exactly one create and one delete of the object.
	counts := map[string]int{}
	for _, e := range events {
		// The controller's own writes (its finalizer, status) are not the user's.
		if e.User.Username == "system:apiserver" || e.User.Username == "system:serviceaccount:mindie-system:mindie-apiserver" {
			continue
		}
		if e.ObjectRef != nil && e.ObjectRef.Namespace == ns && e.ObjectRef.Name == name {
			counts[e.Verb+"/"+e.ObjectRef.Subresource]++
		}
	}
	if counts["create/"] != 1 || counts["delete/"] != 1 || counts["patch/scale"] != 1 || len(counts) != 3 {
		t.Errorf("audit events of %s: %v, want one create, one patch of scale, one delete", name, counts)
	}
}

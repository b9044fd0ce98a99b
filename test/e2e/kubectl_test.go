package e2e

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"
)

// The replicas range every refusal has to name.
const replicasRange = "must be between 1 and 256, inclusive"

func TestKubectlGet(t *testing.T) {
	a, b := uniqueName("get-a"), uniqueName("get-b")
	createInferServer(t, "", "default", a, 2, "image: 'mindie:e2e-get', scheduler: volcano")
	createInferServer(t, "", "team-b", b, 3, "")

	// The default columns.
	tb := parseTable(mustKubectl(t, "", "get", "inferservers", "-n", "default"))
	wantHeader := "NAME READY UP-TO-DATE AVAILABLE NPUS NODES AGE"
	if got := strings.Join(tb.header, " "); got != wantHeader {
		t.Fatalf("kubectl get inferservers: header %q, want %q", got, wantHeader)
	}
	r, ok := tb.row("NAME", a)
	if !ok {
		t.Fatalf("kubectl get inferservers -n default: no row %s in %v", a, tb.rows)
	}
	// Its pods wait for a Volcano scheduler that this cluster does not run:
	// none is ever ready; the controller may have counted them as up to date.
	if r["READY"] != "0/2" || !strings.Contains("0 1 2", r["UP-TO-DATE"]) || r["AVAILABLE"] != "0" || r["NPUS"] != "8xAscend910" || r["NODES"] != "1" {
		t.Errorf("kubectl get inferservers: row %v, want READY 0/2, UP-TO-DATE 0 to 2, AVAILABLE 0, NPUS 8xAscend910 (the default), NODES 1", r)
	}
	if _, ok := tb.row("NAME", b); ok {
		t.Errorf("kubectl get inferservers -n default lists %s of team-b", b)
	}

	// The short name, the singular and the fully qualified resource, and the
	// category all name the same thing.
	for _, res := range []string{"isvc", "inferserver", "inferservers.infer.mindie.io", "isvc.v1alpha1.infer.mindie.io"} {
		out := mustKubectl(t, "", "get", res, a, "-n", "default", "-o", "name")
		if want := "inferserver.infer.mindie.io/" + a; strings.TrimSpace(out) != want {
			t.Errorf("kubectl get %s %s -o name: %q, want %q", res, a, out, want)
		}
	}
	// The category holds InferServers and EdgeDeployments: kubectl names
	// each row with its resource.
	if tb := parseTable(mustKubectl(t, "", "get", "mindie", "-n", "default")); !rowExists(tb, "NAME", a) && !rowExists(tb, "NAME", "inferserver.infer.mindie.io/"+a) {
		t.Errorf("kubectl get mindie (the category): no row %s in %v", a, tb.rows)
	}

	// -o wide adds model, image, scheduler, conditions and the router.
	tb = parseTable(mustKubectl(t, "", "get", "isvc", "-n", "default", "-o", "wide"))
	wantHeader = "NAME READY UP-TO-DATE AVAILABLE NPUS NODES AGE MODEL IMAGE SCHEDULER CONDITIONS ROUTER"
	if got := strings.Join(tb.header, " "); got != wantHeader {
		t.Fatalf("kubectl get isvc -o wide: header %q, want %q", got, wantHeader)
	}
	r, ok = tb.row("NAME", a)
	if !ok {
		t.Fatalf("kubectl get isvc -o wide: no row %s in %v", a, tb.rows)
	}
	if r["MODEL"] != "<none>" || r["IMAGE"] != "mindie:e2e-get" || r["SCHEDULER"] != "volcano" || r["ROUTER"] != "<none>" {
		t.Errorf("kubectl get isvc -o wide: row %v, want MODEL <none>, IMAGE mindie:e2e-get, SCHEDULER volcano, ROUTER <none>", r)
	}
	if c := r["CONDITIONS"]; c != "<none>" {
		for _, cond := range strings.Split(c, ",") {
			if cond != "Available" && cond != "Progressing" && cond != "Degraded" {
				t.Errorf("kubectl get isvc -o wide: CONDITIONS %q lists %q", c, cond)
			}
		}
	}

	// -A lists every namespace, with a NAMESPACE column.
	tb = parseTable(mustKubectl(t, "", "get", "inferservers", "-A"))
	if len(tb.header) < 2 || tb.header[0] != "NAMESPACE" || tb.header[1] != "NAME" {
		t.Fatalf("kubectl get inferservers -A: header %v, want NAMESPACE NAME ...", tb.header)
	}
	for ns, name := range map[string]string{"default": a, "team-b": b} {
		r, ok := tb.row("NAME", name)
		if !ok || r["NAMESPACE"] != ns {
			t.Errorf("kubectl get inferservers -A: row of %s is %v, want namespace %s (rows %v)", name, r, ns, tb.rows)
		}
	}

	// -o json is a List of InferServers with the defaults filled in.
	out := mustKubectl(t, "", "get", "inferservers", "-A", "-o", "json")
	var list struct {
		Kind  string        `json:"kind"`
		Items []inferServer `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("kubectl get inferservers -A -o json does not parse: %v\n%s", err, out)
	}
	if list.Kind != "List" {
		t.Errorf("kubectl get -o json: kind %q, want List", list.Kind)
	}
	found := 0
	for _, it := range list.Items {
		if it.APIVersion != "infer.mindie.io/v1alpha1" || it.Kind != "InferServer" {
			t.Errorf("item %s/%s: %s %s, want infer.mindie.io/v1alpha1 InferServer", it.Metadata.Namespace, it.Metadata.Name, it.APIVersion, it.Kind)
		}
		switch {
		case it.Metadata.Name == a && it.Metadata.Namespace == "default":
			found++
			if it.Spec["replicas"] != 2.0 || it.Spec["image"] != "mindie:e2e-get" || it.Spec["nodesPerInstance"] != 1.0 || it.Metadata.UID == "" {
				t.Errorf("item %s: spec %v uid %q, want replicas 2, image mindie:e2e-get, nodesPerInstance 1 (default), a uid", a, it.Spec, it.Metadata.UID)
			}
			npu, _ := it.Spec["resources"].(map[string]any)["npu"].(map[string]any)
			if npu["count"] != 8.0 || npu["type"] != "Ascend910" {
				t.Errorf("item %s: spec.resources.npu %v, want the defaults count 8, type Ascend910", a, npu)
			}
		case it.Metadata.Name == b && it.Metadata.Namespace == "team-b":
			found++
			if it.Spec["replicas"] != 3.0 {
				t.Errorf("item %s: spec.replicas %v, want 3", b, it.Spec["replicas"])
			}
		}
	}
	if found != 2 {
		t.Errorf("kubectl get inferservers -A -o json: found %d of %s and %s in %d items", found, a, b, len(list.Items))
	}

	// A field selector the server supports.
	out = mustKubectl(t, "", "get", "isvc", "-A", "--field-selector=spec.scheduler=volcano", "-o", "name")
	if strings.TrimSpace(out) != "inferserver.infer.mindie.io/"+a {
		t.Errorf("kubectl get isvc --field-selector=spec.scheduler=volcano: %q, want only %s", out, a)
	}
}

func rowExists(tb table, col, value string) bool {
	_, ok := tb.row(col, value)
	return ok
}

func TestKubectlWatch(t *testing.T) {
	a, b := uniqueName("watch-a"), uniqueName("watch-b")
	createInferServer(t, "", "default", a, 1, "")

	// kubectl lists first and then watches from the list's resourceVersion, so
	// once the list is printed no later change can be missed.
	w := startKubectl(t, "", 60*time.Second, "get", "inferservers", "-n", "default", "-w", "--output-watch-events", "--request-timeout=50s")
	w.waitLine(t, 20*time.Second, "ADDED", a, "0/1")

	mustKubectl(t, "", "scale", "inferserver", a, "-n", "default", "--replicas=3")
	w.waitLine(t, 20*time.Second, "MODIFIED", a, "0/3")

	mustKubectl(t, "", "patch", "inferserver", a, "-n", "default", "--type=merge", "-p", `{"spec":{"resources":{"npu":{"count":4}}}}`)
	w.waitLine(t, 20*time.Second, "MODIFIED", a, "4xAscend910")

	createInferServer(t, "", "default", b, 2, "")
	w.waitLine(t, 20*time.Second, "ADDED", b, "0/2")

	mustKubectl(t, "", "delete", "inferserver", b, "-n", "default")
	w.waitLine(t, 20*time.Second, "DELETED", b)

	if w.exited() {
		t.Errorf("the watch ended early: %v\n%s", w.err, w.stderr.String())
	}

	// --watch-only prints only changes after it started: retry a change
	// until the watch, once established, shows it.
	wo := startKubectl(t, "", 60*time.Second, "get", "isvc", a, "-n", "default", "--watch-only", "-o", "jsonpath={.metadata.name}={.spec.replicas}{\"\\n\"}", "--request-timeout=50s")
	replicas := 3
	eventually(t, 30*time.Second, time.Second, "kubectl get --watch-only showing a scale", func() (bool, string) {
		if strings.Contains(wo.stdout.String(), fmt.Sprintf("%s=%d\n", a, replicas)) {
			return true, ""
		}
		replicas++
		mustKubectl(t, "", "scale", "inferserver", a, "-n", "default", fmt.Sprintf("--replicas=%d", replicas))
		return false, "watch output: " + wo.stdout.String() + wo.stderr.String()
	})
	if strings.Contains(wo.stdout.String(), a+"=3\n") {
		t.Errorf("kubectl get --watch-only printed the state before the watch began:\n%s", wo.stdout.String())
	}
}

func TestKubectlExplain(t *testing.T) {
	out := mustKubectl(t, "", "explain", "inferserver.spec.strategy")
	for _, want := range []string{"KIND:       InferServer", "GROUP:      infer.mindie.io", "FIELD: strategy <InferServerStrategy>",
		"rollingUpdate\t<RollingUpdateInferServer>", "RollingUpdate tunes a RollingUpdate", "enum: Recreate, RollingUpdate"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl explain inferserver.spec.strategy lacks %q:\n%s", want, out)
		}
	}
	out = mustKubectl(t, "", "explain", "inferserver.spec.strategy", "--recursive")
	if !strings.Contains(out, "maxSurge") || !strings.Contains(out, "maxUnavailable") {
		t.Errorf("kubectl explain inferserver.spec.strategy --recursive lacks maxSurge and maxUnavailable:\n%s", out)
	}
	out = mustKubectl(t, "", "explain", "inferserver.spec.strategy.rollingUpdate")
	for _, want := range []string{"maxSurge\t<IntOrString>", "MaxSurge is how many instances may exist above replicas", `legacy "max_surge"`, "Defaults to 50%", "maxUnavailable"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl explain inferserver.spec.strategy.rollingUpdate lacks %q:\n%s", want, out)
		}
	}
	out = mustKubectl(t, "", "explain", "inferserver.spec.resources.npu.count")
	for _, want := range []string{"FIELD: count <integer>", `legacy "npu_chip_num"`, "Between 1 and 8", "Defaults to"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl explain inferserver.spec.resources.npu.count lacks %q:\n%s", want, out)
		}
	}
	out = mustKubectl(t, "", "explain", "isvc.spec.replicas")
	if !strings.Contains(out, "Between 1") || !strings.Contains(out, "256") {
		t.Errorf("kubectl explain isvc.spec.replicas lacks the range 1-256:\n%s", out)
	}
}

// fieldOwners returns the managers (with operation and subresource) whose
// fieldsV1 contain field under spec, e.g. `"f:image"`.
func fieldOwners(obj inferServer, field string) []string {
	var owners []string
	for _, m := range obj.Metadata.ManagedFields {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(m.FieldsV1, &fields); err != nil {
			continue
		}
		if strings.Contains(string(fields["f:spec"]), `"`+field+`"`) {
			owners = append(owners, strings.TrimSuffix(m.Manager+"/"+m.Operation+"/"+m.Subresource, "/"))
		}
	}
	return owners
}

func TestKubectlServerSideApply(t *testing.T) {
	name := uniqueName("ssa")
	t.Cleanup(func() {
		kubectl(t, "", "delete", "inferserver", name, "-n", "default", "--ignore-not-found", "--wait=false")
	})
	manifest := func(image string, replicas int) string {
		return inferServerYAML("default", name, replicas, "image: '"+image+"'")
	}

	r := kubectlIn(t, "", manifest("mindie:v1", 2), "apply", "--server-side", "-f", "-")
	if r.err != nil || !strings.Contains(r.stdout, name+" serverside-applied") {
		t.Fatalf("kubectl apply --server-side (create): %v\n%s%s", r.err, r.stdout, r.stderr)
	}
	created := getInferServer(t, "default", name)

	// Re-applying a change updates the object; kubectl's apply owns the fields.
	r = kubectlIn(t, "", manifest("mindie:v2", 2), "apply", "--server-side", "-f", "-")
	if r.err != nil || !strings.Contains(r.stdout, "serverside-applied") {
		t.Fatalf("kubectl apply --server-side (change): %v\n%s%s", r.err, r.stdout, r.stderr)
	}
	obj := getInferServer(t, "default", name)
	if obj.Spec["image"] != "mindie:v2" || obj.Metadata.UID != created.Metadata.UID || obj.Metadata.Generation != created.Metadata.Generation+1 {
		t.Fatalf("after the second apply: image %v uid %s generation %d, want mindie:v2, the same uid, generation %d",
			obj.Spec["image"], obj.Metadata.UID, obj.Metadata.Generation, created.Metadata.Generation+1)
	}
	if got := fieldOwners(obj, "f:image"); strings.Join(got, ",") != "kubectl/Apply" {
		t.Errorf("owners of spec.image: %v, want [kubectl/Apply] (managedFields %+v)", got, obj.Metadata.ManagedFields)
	}
	if got := fieldOwners(obj, "f:replicas"); strings.Join(got, ",") != "kubectl/Apply" {
		t.Errorf("owners of spec.replicas: %v, want [kubectl/Apply]", got)
	}
	for _, m := range obj.Metadata.ManagedFields {
		// The workload controller writes status through its subresource.
		if strings.Contains(string(m.FieldsV1), `"f:status"`) && m.Subresource != "status" {
			t.Errorf("apply of spec made %s own status fields: %s", m.Manager, m.FieldsV1)
		}
	}

	// Another manager setting the same field differently conflicts...
	r = kubectlIn(t, "", manifest("mindie:v3", 2), "apply", "--server-side", "--field-manager=e2e-other", "-f", "-")
	if r.err == nil {
		t.Fatalf("a second field manager's conflicting apply succeeded:\n%s", r.stdout)
	}
	for _, want := range []string{"Apply failed with 1 conflict", `conflict with "kubectl"`, ".spec.image", "--force-conflicts"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("conflict message lacks %q:\n%s", want, r.stderr)
		}
	}
	if obj := getInferServer(t, "default", name); obj.Spec["image"] != "mindie:v2" {
		t.Errorf("the refused apply changed spec.image to %v", obj.Spec["image"])
	}

	// ... unless it forces, and then it owns the field.
	r = kubectlIn(t, "", manifest("mindie:v3", 2), "apply", "--server-side", "--field-manager=e2e-other", "--force-conflicts", "-f", "-")
	if r.err != nil {
		t.Fatalf("apply --force-conflicts: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
	obj = getInferServer(t, "default", name)
	if obj.Spec["image"] != "mindie:v3" {
		t.Errorf("after --force-conflicts: image %v, want mindie:v3", obj.Spec["image"])
	}
	if got := fieldOwners(obj, "f:image"); strings.Join(got, ",") != "e2e-other/Apply" {
		t.Errorf("owners of spec.image after --force-conflicts: %v, want [e2e-other/Apply]", got)
	}
	// Both applied replicas: 2, so they share it.
	if got := strings.Join(fieldOwners(obj, "f:replicas"), ","); got != "kubectl/Apply,e2e-other/Apply" && got != "e2e-other/Apply,kubectl/Apply" {
		t.Errorf("owners of spec.replicas: %v, want kubectl and e2e-other (both applied the same value)", got)
	}

	// kubectl scale moves spec.replicas to the scaler: applying another
	// value then conflicts with the scale subresource's manager.
	mustKubectl(t, "", "scale", "inferserver", name, "-n", "default", "--replicas=4")
	obj = getInferServer(t, "default", name)
	if got := fieldOwners(obj, "f:replicas"); strings.Join(got, ",") != "kubectl/Update/scale" {
		t.Errorf("owners of spec.replicas after kubectl scale: %v, want [kubectl/Update/scale]", got)
	}
	r = kubectlIn(t, "", manifest("mindie:v3", 2), "apply", "--server-side", "--field-manager=e2e-other", "-f", "-")
	if r.err == nil || !strings.Contains(r.stderr, `with subresource "scale"`) || !strings.Contains(r.stderr, ".spec.replicas") {
		t.Errorf("applying replicas after kubectl scale: want a conflict with the scale subresource on .spec.replicas, got %v\n%s%s", r.err, r.stdout, r.stderr)
	}
	if obj := getInferServer(t, "default", name); obj.Spec["replicas"] != 4.0 {
		t.Errorf("spec.replicas %v after the refused apply, want 4", obj.Spec["replicas"])
	}
}

func TestKubectlScale(t *testing.T) {
	name := uniqueName("scale")
	createInferServer(t, "", "default", name, 2, "")

	out := mustKubectl(t, "", "scale", "inferserver", name, "-n", "default", "--replicas=5")
	if !strings.Contains(out, name+" scaled") {
		t.Errorf("kubectl scale: %q, want %q", out, name+" scaled")
	}
	if got := mustKubectl(t, "", "get", "inferserver", name, "-n", "default", "-o", "jsonpath={.spec.replicas}"); got != "5" {
		t.Fatalf("spec.replicas after kubectl scale --replicas=5: %q", got)
	}
	tb := parseTable(mustKubectl(t, "", "get", "isvc", name, "-n", "default"))
	if r, ok := tb.row("NAME", name); !ok || r["READY"] != "0/5" {
		t.Errorf("kubectl get after scale: row %v, want READY 0/5", r)
	}
	// The scale subresource, as the HorizontalPodAutoscaler reads it.
	out = mustKubectl(t, "", "get", "inferserver", name, "-n", "default", "--subresource=scale", "-o", "jsonpath={.apiVersion} {.kind} {.spec.replicas} {.status.selector}")
	if want := "autoscaling/v1 Scale 5 infer.mindie.io/server=" + name; out != want {
		t.Errorf("kubectl get --subresource=scale: %q, want %q", out, want)
	}

	// Out of range is refused with the range, and changes nothing.
	for _, n := range []string{"0", "300"} {
		r := kubectl(t, "", "scale", "inferserver", name, "-n", "default", "--replicas="+n)
		if r.err == nil {
			t.Errorf("kubectl scale --replicas=%s succeeded: %s", n, r.stdout)
			continue
		}
		for _, want := range []string{"is invalid", "spec.replicas", "Invalid value: " + n, replicasRange} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("kubectl scale --replicas=%s: message lacks %q:\n%s", n, want, r.stderr)
			}
		}
	}
	if got := mustKubectl(t, "", "get", "inferserver", name, "-n", "default", "-o", "jsonpath={.spec.replicas}"); got != "5" {
		t.Errorf("spec.replicas after refused scales: %q, want 5", got)
	}

	// A precondition that does not hold is refused too.
	if r := kubectl(t, "", "scale", "inferserver", name, "-n", "default", "--current-replicas=3", "--replicas=4"); r.err == nil {
		t.Errorf("kubectl scale --current-replicas=3 (it is 5) succeeded: %s", r.stdout)
	}
	// And the bounds themselves are accepted.
	for _, n := range []string{"1", "256"} {
		mustKubectl(t, "", "scale", "inferserver", name, "-n", "default", "--replicas="+n)
		if got := mustKubectl(t, "", "get", "inferserver", name, "-n", "default", "-o", "jsonpath={.spec.replicas}"); got != n {
			t.Errorf("spec.replicas after kubectl scale --replicas=%s: %q", n, got)
		}
	}
}

func TestKubectlWait(t *testing.T) {
	name := uniqueName("wait")
	createInferServer(t, "", "default", name, 2, "")

	// A wait started before the change finishes when the change comes.
	w := startKubectl(t, "", 60*time.Second, "wait", "--for=jsonpath={.spec.replicas}=5", "inferserver/"+name, "-n", "default", "--timeout=30s")
	mustKubectl(t, "", "scale", "inferserver", name, "-n", "default", "--replicas=5")
	if err := w.wait(t, 40*time.Second); err != nil {
		t.Fatalf("kubectl wait --for=jsonpath={.spec.replicas}=5: %v\n%s%s", err, w.stdout.String(), w.stderr.String())
	}
	if !strings.Contains(w.stdout.String(), "condition met") {
		t.Errorf("kubectl wait: %q, want condition met", w.stdout.String())
	}
	// An already true condition returns at once.
	mustKubectl(t, "", "wait", "--for=jsonpath={.spec.replicas}=5", "inferserver/"+name, "-n", "default", "--timeout=30s")
	// A condition that does not come times out and fails.
	if r := kubectl(t, "", "wait", "--for=jsonpath={.spec.replicas}=7", "inferserver/"+name, "-n", "default", "--timeout=2s"); r.err == nil {
		t.Errorf("kubectl wait for replicas 7 (they are 5) succeeded: %s", r.stdout)
	}

	// --for=delete after delete --wait=false. A finalizer holds the object, so
	// the wait really waits: it ends when the finalizer is removed.
	held := uniqueName("wait-del")
	createInferServer(t, "", "default", held, 1, "")
	mustKubectl(t, "", "patch", "inferserver", held, "-n", "default", "--type=merge", "-p", `{"metadata":{"finalizers":["e2e.mindie.io/hold"]}}`)
	t.Cleanup(func() {
		kubectl(t, "", "patch", "inferserver", held, "-n", "default", "--type=merge", "-p", `{"metadata":{"finalizers":null}}`)
	})
	out := mustKubectl(t, "", "delete", "inferserver", held, "-n", "default", "--wait=false")
	if !strings.Contains(out, held+`" deleted`) {
		t.Errorf("kubectl delete --wait=false: %q", out)
	}
	if obj := getInferServer(t, "default", held); obj.Metadata.DeletionTimestamp == "" {
		t.Fatalf("%s has no deletionTimestamp after delete with a finalizer", held)
	}
	w = startKubectl(t, "", 60*time.Second, "wait", "--for=delete", "inferserver/"+held, "-n", "default", "--timeout=40s")
	time.Sleep(2 * time.Second)
	if w.exited() {
		t.Fatalf("kubectl wait --for=delete ended while the finalizer still held %s: %v\n%s%s", held, w.err, w.stdout.String(), w.stderr.String())
	}
	mustKubectl(t, "", "patch", "inferserver", held, "-n", "default", "--type=json", "-p", `[{"op":"remove","path":"/metadata/finalizers"}]`)
	if err := w.wait(t, 45*time.Second); err != nil {
		t.Fatalf("kubectl wait --for=delete: %v\n%s%s", err, w.stdout.String(), w.stderr.String())
	}
	assertNotFound(t, "", "default", held)

	// Without a finalizer it is gone at once, and the wait returns at once.
	mustKubectl(t, "", "delete", "inferserver", name, "-n", "default", "--wait=false")
	mustKubectl(t, "", "wait", "--for=delete", "inferserver/"+name, "-n", "default", "--timeout=30s")
	assertNotFound(t, "", "default", name)
}

// assertNotFound checks that getting the InferServer fails with NotFound.
func assertNotFound(t *testing.T, user, namespace, name string) {
	t.Helper()
	r := kubectl(t, user, "get", "inferserver", name, "-n", namespace)
	if r.err == nil || !strings.Contains(r.stderr, "NotFound") || !strings.Contains(r.stderr, `"`+name+`" not found`) {
		t.Errorf("kubectl get inferserver %s/%s as %s: want NotFound, got %v\n%s%s", namespace, name, userName(user), r.err, r.stdout, r.stderr)
	}
}

func TestKubectlDelete(t *testing.T) {
	name := uniqueName("delete")
	createInferServer(t, "", "default", name, 1, "")
	out := mustKubectl(t, "", "delete", "inferserver", name, "-n", "default")
	if !strings.Contains(out, `inferserver.infer.mindie.io "`+name+`" deleted`) {
		t.Errorf("kubectl delete: %q", out)
	}
	assertNotFound(t, "", "default", name)
	if tb := parseTable(mustKubectl(t, "", "get", "isvc", "-A")); rowExists(tb, "NAME", name) {
		t.Errorf("kubectl get isvc -A still lists %s", name)
	}
	// Deleting it again is NotFound; --ignore-not-found makes that no error.
	if r := kubectl(t, "", "delete", "inferserver", name, "-n", "default"); r.err == nil || !strings.Contains(r.stderr, "NotFound") {
		t.Errorf("deleting %s twice: want NotFound, got %v\n%s%s", name, r.err, r.stdout, r.stderr)
	}
	mustKubectl(t, "", "delete", "inferserver", name, "-n", "default", "--ignore-not-found")

	// The name can be used again, by a new object.
	createInferServer(t, "", "default", name, 1, "")
	mustKubectl(t, "", "delete", "-n", "default", "inferserver/"+name)
	assertNotFound(t, "", "default", name)
}

func TestKubectlAuthCanI(t *testing.T) {
	canI := func(user string, args ...string) string {
		t.Helper()
		r := kubectl(t, user, append([]string{"auth", "can-i"}, args...)...)
		answer := strings.TrimSpace(r.stdout)
		// kubectl auth can-i exits 0 for yes and 1 for no.
		if (answer == "yes") != (r.err == nil) || (answer != "yes" && answer != "no") {
			t.Errorf("kubectl auth can-i %s (as %s): %q, %v\n%s", strings.Join(args, " "), userName(user), answer, r.err, r.stderr)
		}
		return answer
	}

	// The examples, asked by the admin on behalf of the users.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"create", "inferservers", "-n", "team-a", "--as=tenant-a-editor"}, "yes"},
		{[]string{"create", "inferservers", "-n", "team-a", "--as=tenant-a-viewer"}, "no"},
		{[]string{"create", "inferservers", "-n", "team-a", "--as=tenant-b-editor"}, "no"},
		{[]string{"create", "inferservers", "-n", "team-b", "--as=tenant-b-editor"}, "yes"},
		{[]string{"delete", "inferservers.infer.mindie.io", "-n", "team-a", "--as=tenant-a-editor"}, "yes"},
		{[]string{"list", "isvc", "-n", "team-a", "--as=tenant-a-viewer"}, "yes"},
		{[]string{"watch", "inferservers", "-n", "team-a", "--as=tenant-a-viewer"}, "yes"},
		{[]string{"get", "inferservers", "-n", "team-b", "--as=tenant-a-viewer"}, "no"},
		// Subresources: kubectl reads "inferservers/scale" as the object named
		// "scale", so subresources are asked with --subresource.
		{[]string{"update", "inferservers", "--subresource=scale", "-n", "team-a", "--as=tenant-a-editor"}, "yes"},
		{[]string{"patch", "inferservers", "--subresource=scale", "-n", "team-a", "--as=tenant-a-editor"}, "yes"},
		{[]string{"update", "inferservers", "--subresource=scale", "-n", "team-a", "--as=tenant-a-viewer"}, "no"},
		{[]string{"get", "inferservers", "--subresource=scale", "-n", "team-a", "--as=tenant-a-viewer"}, "yes"},
		{[]string{"update", "inferservers", "--subresource=status", "-n", "team-a", "--as=tenant-a-editor"}, "no"},
		{[]string{"get", "inferservers", "--subresource=status", "-n", "team-a", "--as=tenant-a-editor"}, "yes"},
		{[]string{"update", "inferservers", "--subresource=scale", "-n", "team-a", "--as=system:serviceaccount:team-a:default"}, "no"},
	} {
		if got := canI("", c.args...); got != c.want {
			t.Errorf("kubectl auth can-i %s: %s, want %s", strings.Join(c.args, " "), got, c.want)
		}
		// The same question about Deployments gets the same answer.
		deploy := append([]string{c.args[0], "deployments.apps"}, c.args[2:]...)
		if got := canI("", deploy...); got != c.want {
			t.Errorf("kubectl auth can-i %s: %s, but %s for inferservers", strings.Join(deploy, " "), got, c.want)
		}
	}

	// Every answer is the one for Deployments, a built-in kind with a scale
	// and a status subresource, since the user roles aggregate into edit and
	// view: compare what SelfSubjectRulesReview lists for both, per user and
	// namespace.
	all := "create delete deletecollection get list patch update watch"
	for _, c := range []struct {
		user, ns           string
		main, scale, stats string
	}{
		{"tenant-a-editor", "team-a", all, all, "get list watch"},
		{"tenant-a-editor", "team-b", "", "", ""},
		{"tenant-b-editor", "team-b", all, all, "get list watch"},
		{"tenant-b-editor", "team-a", "", "", ""},
		{"tenant-a-viewer", "team-a", "get list watch", "get list watch", "get list watch"},
		{"tenant-a-viewer", "team-b", "", "", ""},
	} {
		verbs := listedVerbs(mustKubectl(t, "", "auth", "can-i", "--list", "-n", c.ns, "--as="+c.user))
		for sub, want := range map[string]string{"": c.main, "/scale": c.scale, "/status": c.stats} {
			got, deploy := verbs["inferservers.infer.mindie.io"+sub], verbs["deployments.apps"+sub]
			if got != want {
				t.Errorf("%s in %s: can-i --list gives inferservers%s %q, want %q", c.user, c.ns, sub, got, want)
			}
			if got != deploy {
				t.Errorf("%s in %s: can-i --list gives inferservers%s %q but deployments.apps%s %q", c.user, c.ns, sub, got, sub, deploy)
			}
		}
	}

	// A tenant asking with their own kubeconfig (its namespace is the context's).
	if got := canI("tenant-a-editor", "create", "inferservers"); got != "yes" {
		t.Errorf("tenant-a-editor: can-i create inferservers (in team-a): %s", got)
	}
	if got := canI("tenant-a-editor", "create", "inferservers", "-n", "team-b"); got != "no" {
		t.Errorf("tenant-a-editor: can-i create inferservers -n team-b: %s", got)
	}
	if got := canI("tenant-a-viewer", "patch", "inferservers", "--subresource=scale"); got != "no" {
		t.Errorf("tenant-a-viewer: can-i patch inferservers --subresource=scale: %s", got)
	}
	out := mustKubectl(t, "tenant-a-viewer", "auth", "can-i", "--list")
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], "inferservers.infer.mindie.io") && !strings.HasSuffix(line, "[get list watch]") {
			t.Errorf("tenant-a-viewer: can-i --list: %q, want only get list watch", line)
		}
	}
	if !strings.Contains(out, "inferservers.infer.mindie.io ") {
		t.Errorf("tenant-a-viewer: can-i --list lacks inferservers.infer.mindie.io:\n%s", out)
	}
}

func TestKubectlValidationError(t *testing.T) {
	name := uniqueName("invalid")
	t.Cleanup(func() {
		kubectl(t, "", "delete", "inferserver", name, "-n", "default", "--ignore-not-found", "--wait=false")
	})

	r := kubectlIn(t, "", inferServerYAML("default", name, 0, ""), "apply", "-f", "-")
	if r.err == nil {
		t.Fatalf("kubectl apply of replicas: 0 succeeded:\n%s", r.stdout)
	}
	for _, want := range []string{`The InferServer "` + name + `" is invalid`, "spec.replicas", "Invalid value: 0", replicasRange} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("kubectl apply of replicas: 0: stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	assertNotFound(t, "", "default", name)

	// Server-side apply gets the same answer.
	r = kubectlIn(t, "", inferServerYAML("default", name, 300, ""), "apply", "--server-side", "-f", "-")
	if r.err == nil || !strings.Contains(r.stderr, "spec.replicas") || !strings.Contains(r.stderr, replicasRange) {
		t.Errorf("kubectl apply --server-side of replicas: 300: want spec.replicas and the range, got %v\n%s%s", r.err, r.stdout, r.stderr)
	}

	// Every error of the object at once, each with its field and range.
	r = kubectlIn(t, "", inferServerYAML("default", name, 0, "resources: {npu: {count: 9}}"), "apply", "-f", "-")
	if r.err == nil {
		t.Fatalf("kubectl apply of replicas: 0 and 9 NPUs succeeded:\n%s", r.stdout)
	}
	for _, want := range []string{"spec.replicas: Invalid value: 0: " + replicasRange, "spec.resources.npu.count: Invalid value: 9: must be between 1 and 8, inclusive"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("kubectl apply with two errors: stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	assertNotFound(t, "", "default", name)

	// An update is validated as well: a valid object cannot be patched invalid.
	createInferServer(t, "", "default", name, 1, "")
	r = kubectl(t, "", "patch", "inferserver", name, "-n", "default", "--type=merge", "-p", `{"spec":{"replicas":0}}`)
	if r.err == nil || !strings.Contains(r.stderr, "spec.replicas") || !strings.Contains(r.stderr, replicasRange) {
		t.Errorf("patching replicas to 0: want spec.replicas and the range, got %v\n%s%s", r.err, r.stdout, r.stderr)
	}
}

// listedVerbs parses kubectl auth can-i --list: resource -> its verbs (of
// every line naming it), sorted and space-separated.
func listedVerbs(out string) map[string]string {
	sets := map[string]map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		i, j := strings.LastIndexByte(line, '['), strings.LastIndexByte(line, ']')
		if len(f) == 0 || f[0] == "Resources" || i < 0 || j < i {
			continue
		}
		if sets[f[0]] == nil {
			sets[f[0]] = map[string]bool{}
		}
		for _, v := range strings.Fields(line[i+1 : j]) {
			sets[f[0]][v] = true
		}
	}
	verbs := map[string]string{}
	for res, set := range sets {
		var vs []string
		for v := range set {
			vs = append(vs, v)
		}
		sort.Strings(vs)
		verbs[res] = strings.Join(vs, " ")
	}
	return verbs
}

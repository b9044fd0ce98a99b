package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	restclient "k8s.io/client-go/rest"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
	applyv1alpha1 "mindie.io/deployer/pkg/generated/applyconfiguration/infer/v1alpha1"
	clientset "mindie.io/deployer/pkg/generated/clientset/versioned"
	"mindie.io/deployer/test/module"
)

// warningRecorder keeps the warnings the server sent.
type warningRecorder struct {
	mu       sync.Mutex
	warnings []string
}

func (w *warningRecorder) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.warnings = append(w.warnings, text)
}

// take returns the warnings received since the last call.
func (w *warningRecorder) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.warnings
	w.warnings = nil
	return out
}

// fieldsOf returns the fields a 422 Invalid names.
func fieldsOf(t *testing.T, err error) []string {
	t.Helper()
	if !apierrors.IsInvalid(err) {
		t.Fatalf("want 422 Invalid, got %v", err)
	}
	var out []string
	for _, c := range err.(apierrors.APIStatus).Status().Details.Causes {
		out = append(out, c.Field)
	}
	return out
}

func expectFields(t *testing.T, err error, want ...string) {
	t.Helper()
	got := fieldsOf(t, err)
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("the refusal does not name %s: %v", w, err)
		}
	}
	if len(got) != len(want) {
		t.Errorf("the refusal names %v, want exactly %v", got, want)
	}
}

// TestEdgeDeployment drives the whole EdgeDeployment API through one
// server, the audit log of the shipped policy included.
func TestEdgeDeployment(t *testing.T) {
	root, err := module.Root()
	if err != nil {
		t.Fatal(err)
	}
	auditLog := filepath.Join(t.TempDir(), "audit.log")
	e := newEnv(t, "--audit-log-path="+auditLog, "--audit-policy-file="+filepath.Join(root, "artifacts", "deploy", "audit-policy.yaml"))
	warnings := &warningRecorder{}
	cfg := restclient.CopyConfig(e.config)
	cfg.WarningHandler = warnings
	client, err := clientset.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	edeps := client.InferV1alpha1().EdgeDeployments("default")

	t.Run("discovery", func(t *testing.T) {
		resources, err := client.Discovery().ServerResourcesForGroupVersion(v1alpha1.SchemeGroupVersion.String())
		if err != nil {
			t.Fatal(err)
		}
		byName := map[string]metav1.APIResource{}
		for _, r := range resources.APIResources {
			byName[r.Name] = r
		}
		main, status := byName["edgedeployments"], byName["edgedeployments/status"]
		if main.Kind != "EdgeDeployment" || !main.Namespaced || main.SingularName != "edgedeployment" ||
			!slices.Equal(main.ShortNames, []string{"edep"}) || !slices.Equal(main.Categories, []string{"mindie"}) {
			t.Errorf("edgedeployments: %+v", main)
		}
		if status.Kind != "EdgeDeployment" || !slices.Contains(status.Verbs, "patch") {
			t.Errorf("edgedeployments/status: %+v", status)
		}
		if _, ok := byName["edgedeployments/scale"]; ok {
			t.Errorf("edgedeployments has a scale subresource")
		}
	})

	t.Run("create defaults and queues", func(t *testing.T) {
		created, err := edeps.Create(e.ctx, &v1alpha1.EdgeDeployment{
			ObjectMeta: metav1.ObjectMeta{Name: "cams"},
			Spec: v1alpha1.EdgeDeploymentSpec{
				Targets:   v1alpha1.EdgeTargets{Nodes: []string{"edge-1", "edge-2"}},
				Container: v1alpha1.EdgeContainer{Image: "detector", Privileged: true},
			},
			Status: v1alpha1.EdgeDeploymentStatus{Phase: v1alpha1.EdgePhaseSucceeded, Succeeded: 2},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s, c := created.Spec, created.Spec.Container
		if *s.InstancesPerNode != 1 || s.RestartPolicy != corev1.RestartPolicyAlways || *s.MaxConcurrentNodes != 100 || *s.TimeoutSeconds != 600 ||
			c.ImagePullPolicy != corev1.PullAlways || c.Resources.CPU.String() != "250m" || c.Resources.MemoryLimit.String() != "512Mi" {
			t.Errorf("defaults: %+v", s)
		}
		if created.Status.Phase != v1alpha1.EdgePhaseQueued || created.Status.Succeeded != 0 || created.Generation != 1 {
			t.Errorf("a new job: phase %q, succeeded %d, generation %d; want Queued, 0, 1", created.Status.Phase, created.Status.Succeeded, created.Generation)
		}
		w := strings.Join(warnings.take(), "\n")
		if !strings.Contains(w, `spec.container.image: "detector" has no tag`) || !strings.Contains(w, "spec.container.privileged") {
			t.Errorf("warnings: %q", w)
		}
	})

	t.Run("refusals name the fields", func(t *testing.T) {
		_, err := edeps.Create(e.ctx, &v1alpha1.EdgeDeployment{
			ObjectMeta: metav1.ObjectMeta{Name: "bad"},
			Spec: v1alpha1.EdgeDeploymentSpec{
				Targets:       v1alpha1.EdgeTargets{Selector: &metav1.LabelSelector{}},
				RestartPolicy: "Sometimes",
				Container: v1alpha1.EdgeContainer{
					Image:     "detector:1.0",
					Resources: v1alpha1.EdgeResources{NPU: &v1alpha1.EdgeNPU{Type: "Ascend920"}},
					Volumes:   []v1alpha1.EdgeVolume{{Name: "run", MountPath: "/var/run", EmptyDir: &v1alpha1.EdgeEmptyDir{}}},
				},
				Network: v1alpha1.EdgeNetwork{Ports: []v1alpha1.EdgePortMapping{{ContainerPort: 80, HostPort: 80, HostIP: "::1"}}},
			},
		}, metav1.CreateOptions{})
		expectFields(t, err, "spec.targets.selector", "spec.restartPolicy", "spec.container.resources.npu.type",
			"spec.container.volumes[0].mountPath", "spec.network.ports[0].hostIP")
		if err != nil && !strings.Contains(err.Error(), "system directory") {
			t.Errorf("the /var/run refusal does not say why: %v", err)
		}

		// A node named twice in a list-type set is a validation error, not a
		// failure of the field manager.
		_, err = edeps.Create(e.ctx, &v1alpha1.EdgeDeployment{
			ObjectMeta: metav1.ObjectMeta{Name: "twice"},
			Spec: v1alpha1.EdgeDeploymentSpec{
				Targets:   v1alpha1.EdgeTargets{Nodes: []string{"edge-1", "edge-1"}},
				Container: v1alpha1.EdgeContainer{Image: "detector:1.0"},
			},
		}, metav1.CreateOptions{})
		expectFields(t, err, "spec.targets.nodes[1]")
	})

	t.Run("update job control, not the application", func(t *testing.T) {
		cur, err := edeps.Get(e.ctx, "cams", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cur.Spec.Stopped = true
		cur.Spec.RetryGeneration = 2
		cur.Spec.MaxConcurrentNodes = ptr.To[int32](10)
		updated, err := edeps.Update(e.ctx, cur, metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if updated.Generation != 2 || !updated.Spec.Stopped || updated.Status.Phase != v1alpha1.EdgePhaseQueued {
			t.Errorf("after stop and retry: generation %d, stopped %v, phase %q", updated.Generation, updated.Spec.Stopped, updated.Status.Phase)
		}
		if w := strings.Join(warnings.take(), "\n"); !strings.Contains(w, "the retry starts when it is continued") || strings.Contains(w, "no tag") {
			t.Errorf("update warnings: %q", w)
		}

		bad := updated.DeepCopy()
		bad.Spec.Container.Image = "detector:2.0"
		bad.Spec.Targets.Nodes = []string{"edge-3"}
		bad.Spec.RetryGeneration = 1
		_, err = edeps.Update(e.ctx, bad, metav1.UpdateOptions{})
		expectFields(t, err, "spec.container", "spec.targets", "spec.retryGeneration")

		// A JSON patch is an update too.
		_, err = edeps.Patch(e.ctx, "cams", types.MergePatchType, []byte(`{"spec":{"hostPID":true}}`), metav1.PatchOptions{})
		expectFields(t, err, "spec.hostPID")
	})

	t.Run("status subresource", func(t *testing.T) {
		cur, err := edeps.Get(e.ctx, "cams", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		now := metav1.Now()
		cur.Status = v1alpha1.EdgeDeploymentStatus{
			Phase: v1alpha1.EdgePhaseStopping, ObservedGeneration: cur.Generation, StartTime: &now,
			Targets: []string{"edge-1", "edge-2"}, Architecture: "arm64", Running: 1, Stopped: 1,
			Nodes: []v1alpha1.EdgeNodeStatus{
				{Node: "edge-1", State: v1alpha1.EdgeNodeDeploying, Reason: "ContainerCreating", Since: &now, Attempts: 1},
				{Node: "edge-2", State: v1alpha1.EdgeNodeStopped, Since: &now},
			},
		}
		cur.Spec.Container.Image = "ignored:1"
		updated, err := edeps.UpdateStatus(e.ctx, cur, metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if updated.Status.Phase != v1alpha1.EdgePhaseStopping || updated.Spec.Container.Image != "detector" || updated.Generation != cur.Generation {
			t.Errorf("status update: phase %q, image %q, generation %d", updated.Status.Phase, updated.Spec.Container.Image, updated.Generation)
		}

		// A user's update of the main resource keeps the controller's status.
		updated.Spec.Stopped = false
		updated.Status = v1alpha1.EdgeDeploymentStatus{}
		kept, err := edeps.Update(e.ctx, updated, metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if kept.Status.Phase != v1alpha1.EdgePhaseStopping || len(kept.Status.Targets) != 2 {
			t.Errorf("the main resource changed the status: %+v", kept.Status)
		}

		kept.Status.Targets = []string{"edge-1", "edge-2", "edge-3"}
		kept.Status.Nodes = append(kept.Status.Nodes, v1alpha1.EdgeNodeStatus{Node: "edge-9", State: "Lost"})
		_, err = edeps.UpdateStatus(e.ctx, kept, metav1.UpdateOptions{})
		expectFields(t, err, "status.targets", "status.nodes[2].node", "status.nodes[2].state")
	})

	t.Run("server-side apply", func(t *testing.T) {
		apply := func(manager string, cfg *applyv1alpha1.EdgeDeploymentApplyConfiguration, force bool) (*v1alpha1.EdgeDeployment, error) {
			return edeps.Apply(e.ctx, cfg, metav1.ApplyOptions{FieldManager: manager, Force: force})
		}
		spec := func() *applyv1alpha1.EdgeDeploymentSpecApplyConfiguration {
			return applyv1alpha1.EdgeDeploymentSpec().
				WithTargets(applyv1alpha1.EdgeTargets().WithSelector(metav1ac.LabelSelector().WithMatchLabels(map[string]string{"site": "north"}))).
				WithContainer(applyv1alpha1.EdgeContainer().WithImage("detector:1.0").
					WithVolumes(applyv1alpha1.EdgeVolume().WithName("data").WithMountPath("/data").WithEmptyDir(applyv1alpha1.EdgeEmptyDir())))
		}
		// alice creates the job by applying it, with a status that must be ignored.
		s, err := apply("alice", applyv1alpha1.EdgeDeployment("ssa", "default").
			WithSpec(spec().WithMaxConcurrentNodes(10)).
			WithStatus(applyv1alpha1.EdgeDeploymentStatus().WithPhase(v1alpha1.EdgePhaseSucceeded)), false)
		if err != nil {
			t.Fatal(err)
		}
		if *s.Spec.MaxConcurrentNodes != 10 || s.Status.Phase != v1alpha1.EdgePhaseQueued || s.Spec.Container.Volumes[0].EmptyDir.Medium != v1alpha1.EdgeStorageDisk {
			t.Fatalf("applied: maxConcurrentNodes %d, phase %q, volumes %+v", *s.Spec.MaxConcurrentNodes, s.Status.Phase, s.Spec.Container.Volumes)
		}
		if alice := edgeManagedBy(s, "alice", ""); !strings.Contains(alice, `"f:maxConcurrentNodes"`) || strings.Contains(alice, `"f:status"`) {
			t.Fatalf("alice's fields: %s", alice)
		}

		// The controller applies status through the status subresource; its spec is ignored.
		s, err = edeps.ApplyStatus(e.ctx, applyv1alpha1.EdgeDeployment("ssa", "default").
			WithSpec(applyv1alpha1.EdgeDeploymentSpec().WithStopped(true)).
			WithStatus(applyv1alpha1.EdgeDeploymentStatus().WithPhase(v1alpha1.EdgePhaseRunning).WithTargets("edge-1").WithRunning(1).
				WithNodes(applyv1alpha1.EdgeNodeStatus().WithNode("edge-1").WithState(v1alpha1.EdgeNodeDeploying))),
			metav1.ApplyOptions{FieldManager: "edge-controller", Force: true})
		if err != nil {
			t.Fatal(err)
		}
		if s.Status.Phase != v1alpha1.EdgePhaseRunning || s.Spec.Stopped {
			t.Fatalf("status apply: phase %q, stopped %v", s.Status.Phase, s.Spec.Stopped)
		}
		if ctrl := edgeManagedBy(s, "edge-controller", "status"); !strings.Contains(ctrl, `"f:phase"`) || strings.Contains(ctrl, `"f:spec"`) {
			t.Fatalf("the controller's fields: %s", ctrl)
		}

		// bob may not take alice's maxConcurrentNodes without force...
		_, err = apply("bob", applyv1alpha1.EdgeDeployment("ssa", "default").WithSpec(spec().WithMaxConcurrentNodes(20)), false)
		if !apierrors.IsConflict(err) || !strings.Contains(err.Error(), "alice") {
			t.Fatalf("bob's apply: want a conflict naming alice, got %v", err)
		}
		// ...with force he owns it; an applied immutable change is refused like any update.
		s, err = apply("bob", applyv1alpha1.EdgeDeployment("ssa", "default").WithSpec(spec().WithMaxConcurrentNodes(20)), true)
		if err != nil || *s.Spec.MaxConcurrentNodes != 20 {
			t.Fatalf("forced apply: %v", err)
		}
		_, err = apply("bob", applyv1alpha1.EdgeDeployment("ssa", "default").
			WithSpec(spec().WithContainer(applyv1alpha1.EdgeContainer().WithImage("detector:2.0"))), true)
		expectFields(t, err, "spec.container")
	})

	t.Run("kubectl get table", func(t *testing.T) {
		raw, err := client.InferV1alpha1().RESTClient().Get().Namespace("default").Resource("edgedeployments").
			SetHeader("Accept", tableAccept).Param("includeObject", "None").DoRaw(e.ctx)
		if err != nil {
			t.Fatalf("%v: %s", err, raw)
		}
		var table metav1.Table
		if err := json.Unmarshal(raw, &table); err != nil {
			t.Fatal(err)
		}
		var headers []string
		for _, c := range table.ColumnDefinitions {
			headers = append(headers, c.Name)
		}
		if got := strings.Join(headers, ","); got != "Name,Phase,Nodes,Failed,Age,Image,Selector" {
			t.Fatalf("columns: %s", got)
		}
		rows := map[string][]any{}
		for _, r := range table.Rows {
			rows[r.Cells[0].(string)] = r.Cells
		}
		want := map[string][]any{
			"cams": {"cams", "Stopping", "0/2", float64(0)},
			"ssa":  {"ssa", "Running", "0/1", float64(0)},
		}
		for name, w := range want {
			cells, ok := rows[name]
			if !ok {
				t.Errorf("no row %s in %s", name, raw)
				continue
			}
			if !slices.Equal(cells[:4], w) || cells[6] != map[string]string{"cams": "<none>", "ssa": "site=north"}[name] {
				t.Errorf("row %s: %v", name, cells)
			}
		}
	})

	t.Run("openapi", func(t *testing.T) {
		raw, err := client.Discovery().RESTClient().Get().AbsPath("/openapi/v3/apis/infer.mindie.io/v1alpha1").DoRaw(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		var doc spec3.OpenAPI
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		const pkg = "io.mindie.deployer.apis.infer.v1alpha1."
		container := doc.Components.Schemas[pkg+"EdgeContainer"]
		if container == nil || !strings.Contains(container.Properties["command"].Description, "ENTRYPOINT") {
			t.Fatalf("EdgeContainer.command is not documented: %+v", container)
		}
		status := doc.Components.Schemas[pkg+"EdgeDeploymentStatus"]
		if status == nil || status.Properties["nodes"].Extensions["x-kubernetes-list-type"] != "map" ||
			!slices.Equal(status.Properties["phase"].Enum, []any{"Failed", "PartiallySucceeded", "Queued", "Running", "Stopped", "Stopping", "Succeeded", "TimedOut"}) {
			t.Fatalf("EdgeDeploymentStatus: %+v", status)
		}
		if !bytes.Contains(raw, []byte("/apis/infer.mindie.io/v1alpha1/namespaces/{namespace}/edgedeployments/{name}/status")) {
			t.Errorf("no status path")
		}
	})

	t.Run("delete and audit", func(t *testing.T) {
		if err := edeps.Delete(e.ctx, "cams", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		want := map[string]bool{"create": false, "update": false, "patch": false, "delete": false}
		deadline := time.Now().Add(10 * time.Second)
		for {
			for _, ev := range readAuditLog(t, auditLog) {
				if ev.ObjectRef.Resource == "edgedeployments" && ev.ObjectRef.Name == "cams" && ev.User.Username != "" && ev.Level == "Metadata" {
					if _, ok := want[ev.Verb]; ok {
						want[ev.Verb] = true
					}
				}
				if ev.ObjectRef.Resource == "edgedeployments" && ev.Verb == "get" {
					t.Fatalf("a read was audited: %+v", ev)
				}
			}
			if !slices.Contains(mapValues(want), false) || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		for verb, seen := range want {
			if !seen {
				t.Errorf("no audit event of %s on edgedeployments/cams", verb)
			}
		}
	})
}

func edgeManagedBy(s *v1alpha1.EdgeDeployment, manager, subresource string) string {
	var out []string
	for _, m := range s.ManagedFields {
		if m.Manager == manager && m.Subresource == subresource && m.FieldsV1 != nil {
			out = append(out, m.FieldsV1.GetRawString())
		}
	}
	return strings.Join(out, "\n")
}

type auditLine struct {
	Level     string                    `json:"level"`
	Verb      string                    `json:"verb"`
	User      struct{ Username string } `json:"user"`
	ObjectRef struct {
		Resource string `json:"resource"`
		Name     string `json:"name"`
	} `json:"objectRef"`
}

func readAuditLog(t *testing.T, path string) []auditLine {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		t.Fatal(err)
	}
	var out []auditLine
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l auditLine
		if json.Unmarshal(sc.Bytes(), &l) == nil {
			out = append(out, l)
		}
	}
	return out
}

func mapValues(m map[string]bool) []bool {
	var out []bool
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

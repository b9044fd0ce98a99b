package integration

import (
	"encoding/json"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
)

func TestCRUD(t *testing.T) {
	e := newEnv(t)
	servers := e.client.InferV1alpha1().InferServers("default")

	created := e.create(newServer("llama", func(s *v1alpha1.InferServer) {
		s.Labels = map[string]string{"team": "a"}
		s.Spec.Replicas = ptr.To[int32](3)
	}))
	if created.UID == "" || created.ResourceVersion == "" || created.Generation != 1 {
		t.Fatalf("created object lacks uid/resourceVersion/generation 1: %+v", created.ObjectMeta)
	}
	if _, err := servers.Create(e.ctx, newServer("llama"), metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
		t.Fatalf("second create of the same name: want AlreadyExists, got %v", err)
	}

	got := e.get("default", "llama")
	if *got.Spec.Replicas != 3 || got.Labels["team"] != "a" {
		t.Fatalf("get returned %+v", got)
	}

	e.create(newServer("qwen"))
	list, err := servers.List(e.ctx, metav1.ListOptions{LabelSelector: "team=a"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Name != "llama" {
		t.Fatalf("label-selected list: want [llama], got %v", names(list.Items))
	}
	all, err := servers.List(e.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Items) != 2 {
		t.Fatalf("list: want 2 items, got %v", names(all.Items))
	}

	// Update: a spec change bumps the generation.
	got.Spec.Image = "mindie:2.0"
	updated, err := servers.Update(e.ctx, got, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if updated.Generation != 2 || updated.Spec.Image != "mindie:2.0" {
		t.Fatalf("update: want generation 2 and the new image, got %d %q", updated.Generation, updated.Spec.Image)
	}
	// An update with a stale resourceVersion conflicts.
	got.Spec.Image = "mindie:3.0"
	if _, err := servers.Update(e.ctx, got, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("stale update: want Conflict, got %v", err)
	}

	// Merge patch and JSON patch.
	patched, err := servers.Patch(e.ctx, "llama", types.MergePatchType, []byte(`{"spec":{"replicas":5}}`), metav1.PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *patched.Spec.Replicas != 5 || patched.Generation != 3 {
		t.Fatalf("merge patch: want replicas 5 generation 3, got %d %d", *patched.Spec.Replicas, patched.Generation)
	}
	patched, err = servers.Patch(e.ctx, "llama", types.JSONPatchType,
		[]byte(`[{"op":"replace","path":"/spec/health/startupSeconds","value":600}]`), metav1.PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *patched.Spec.Health.StartupSeconds != 600 {
		t.Fatalf("json patch: want startupSeconds 600, got %d", *patched.Spec.Health.StartupSeconds)
	}
	// A patch that makes the object invalid is refused and changes nothing.
	_, err = servers.Patch(e.ctx, "llama", types.MergePatchType, []byte(`{"spec":{"replicas":0}}`), metav1.PatchOptions{})
	if !apierrors.IsInvalid(err) {
		t.Fatalf("invalid patch: want Invalid, got %v", err)
	}
	if r := *e.get("default", "llama").Spec.Replicas; r != 5 {
		t.Fatalf("refused patch changed replicas to %d", r)
	}

	if err := servers.Delete(e.ctx, "qwen", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := servers.Get(e.ctx, "qwen", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("get after delete: want NotFound, got %v", err)
	}
	if err := servers.DeleteCollection(e.ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	all, err = servers.List(e.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Items) != 0 {
		t.Fatalf("after delete-collection: %v remain", names(all.Items))
	}
}

func TestWatch(t *testing.T) {
	e := newEnv(t)
	servers := e.client.InferV1alpha1().InferServers("default")
	w, err := servers.Watch(e.ctx, metav1.ListOptions{LabelSelector: "watched=yes"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	e.create(newServer("unwatched"))
	e.create(newServer("w", func(s *v1alpha1.InferServer) { s.Labels = map[string]string{"watched": "yes"} }))
	if _, err := servers.Patch(e.ctx, "w", types.MergePatchType, []byte(`{"spec":{"replicas":2}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := servers.Delete(e.ctx, "w", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	want := []watch.EventType{watch.Added, watch.Modified, watch.Deleted}
	for i, wantType := range want {
		select {
		case ev := <-w.ResultChan():
			s, ok := ev.Object.(*v1alpha1.InferServer)
			if ev.Type != wantType || !ok || s.Name != "w" {
				t.Fatalf("event %d: want %s of w, got %s %T", i, wantType, ev.Type, ev.Object)
			}
			if wantType == watch.Modified && *s.Spec.Replicas != 2 {
				t.Fatalf("modified event carries replicas %d, want 2", *s.Spec.Replicas)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("no %s event within 30s", wantType)
		}
	}
}

func TestDefaultsAreApplied(t *testing.T) {
	e := newEnv(t)
	s := e.create(newServer("defaults"))
	sp := s.Spec
	checks := map[string][2]any{
		"replicas":                      {*sp.Replicas, int32(1)},
		"nodesPerInstance":              {*sp.NodesPerInstance, int32(1)},
		"image":                         {sp.Image, "mindie:server"},
		"imagePullPolicy":               {sp.ImagePullPolicy, corev1.PullIfNotPresent},
		"installPath":                   {sp.InstallPath, "/usr/local/Ascend/mindie/latest/mindie-service"},
		"serverConfig.hostPath":         {sp.ServerConfig.HostPath, "/mnt/mindie-service/ms/config/config.json"},
		"storage.model.hostPath":        {sp.Storage.Model.HostPath.Path, "/mnt/mindie-service/ms/model"},
		"storage.writable.mountPath":    {sp.Storage.Writable.MountPath, "/mnt/mindie-service/ms/writable-data"},
		"storage.runScript.mountPath":   {sp.Storage.RunScript.MountPath, "/mnt/mindie-service/ms/run/run.sh"},
		"resources.cpu":                 {sp.Resources.CPU.Cmp(resource.MustParse("32")), 0},
		"resources.memory":              {sp.Resources.Memory.Cmp(resource.MustParse("256000Mi")), 0},
		"resources.npu.type":            {sp.Resources.NPU.Type, v1alpha1.NPUTypeAscend910},
		"resources.npu.count":           {*sp.Resources.NPU.Count, int32(8)},
		"ports.inference":               {*sp.Ports.Inference, int32(1025)},
		"ports.management":              {*sp.Ports.Management, int32(1026)},
		"service.type":                  {sp.Service.Type, corev1.ServiceTypeNodePort},
		"health.startupSeconds":         {*sp.Health.StartupSeconds, int32(180)},
		"health.detectInnerErrors":      {*sp.Health.DetectInnerErrors, true},
		"health.liveness.timeout":       {*sp.Health.Liveness.TimeoutSeconds, int32(10)},
		"health.readiness.period":       {*sp.Health.Readiness.PeriodSeconds, int32(5)},
		"scheduler":                     {sp.Scheduler, v1alpha1.SchedulerDefault},
		"faultRescheduling":             {sp.FaultRescheduling, v1alpha1.FaultReschedulingGrace},
		"terminationGracePeriodSeconds": {*sp.TerminationGracePeriodSeconds, int64(60)},
		"strategy.type":                 {sp.Strategy.Type, v1alpha1.RollingUpdateInferServerStrategyType},
		"strategy.maxSurge":             {*sp.Strategy.RollingUpdate.MaxSurge, intstr.FromString("50%")},
		"strategy.maxUnavailable":       {*sp.Strategy.RollingUpdate.MaxUnavailable, intstr.FromString("50%")},
		"revisionHistoryLimit":          {*sp.RevisionHistoryLimit, int32(10)},
		"status.selector":               {s.Status.Selector, "infer.mindie.io/server=defaults"},
	}
	for name, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s: got %v, want %v", name, c[0], c[1])
		}
	}
	// Defaults are stored, not only returned: a fresh read shows them too.
	raw, err := e.client.InferV1alpha1().RESTClient().Get().Namespace("default").Resource("inferservers").Name("defaults").DoRaw(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var stored map[string]any
	if err := json.Unmarshal(raw, &stored); err != nil {
		t.Fatal(err)
	}
	spec := stored["spec"].(map[string]any)
	if spec["image"] != "mindie:server" || spec["scheduler"] != "default" {
		t.Fatalf("stored spec lacks defaults: %v", spec)
	}
}

func names(items []v1alpha1.InferServer) []string {
	out := make([]string, 0, len(items))
	for _, s := range items {
		out = append(out, s.Name)
	}
	return out
}

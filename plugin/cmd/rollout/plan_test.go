package rollout

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/ascend"
	"mindie.io/deployer/plugin/options/fake"
)

// pdCluster is a 2-group 1P1D server, rolled out, on four nodes of 8 NPUs
// whose pods hold them all, and spare more empty nodes.
func pdCluster(t *testing.T, spare int) *fake.Options {
	s := fake.InferServer("default", "llama", func(s *v1alpha1.InferServer) {
		s.Spec.Router = &v1alpha1.RouterSpec{}
		s.Spec.Roles = []v1alpha1.InferRole{{Name: v1alpha1.RolePrefill}, {Name: v1alpha1.RoleDecode}}
		s.Spec.Strategy.RollingUpdate = &v1alpha1.RollingUpdateInferServer{
			MaxSurge: ptr.To(intstr.FromInt32(1)), MaxUnavailable: ptr.To(intstr.FromInt32(1))}
	})
	fake.Available(s)
	s.Status.UpdateRevision, s.Status.CurrentRevision = "llama-old", "llama-old"
	objs := []runtime.Object{}
	node := func(name string) *corev1.Node {
		return &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{ascend.LabelAccelerator: ascend.AcceleratorValue("Ascend910")}},
			Status: corev1.NodeStatus{
				Allocatable: corev1.ResourceList{ascend.ResourceName("Ascend910"): resource.MustParse("8")},
				Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			},
		}
	}
	for g := 0; g < 2; g++ {
		is := v1alpha1.InstanceStatus{Name: fmt.Sprintf("llama-%d", g), Revision: "llama-old", Ready: true}
		for _, m := range []string{"p0", "d0"} {
			name := fmt.Sprintf("%s-%s", is.Name, m)
			n := node("node-" + name)
			is.Pods = append(is.Pods, v1alpha1.InstancePodStatus{Name: name, Node: n.Name})
			objs = append(objs, n, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
				Spec: corev1.PodSpec{NodeName: n.Name, Containers: []corev1.Container{{Name: "server", Resources: corev1.ResourceRequirements{
					Limits: corev1.ResourceList{ascend.ResourceName("Ascend910"): resource.MustParse("8")}}}}},
				Status: corev1.PodStatus{Phase: corev1.PodRunning},
			})
		}
		s.Status.Instances = append(s.Status.Instances, is)
	}
	for i := 0; i < spare; i++ {
		objs = append(objs, node(fmt.Sprintf("spare-%d", i)))
	}
	return fake.New(t, NewCmdRollout, append([]runtime.Object{s}, objs...)...)
}

func TestRolloutPlan(t *testing.T) {
	// The server's own spec is rolled out: nothing to do.
	f := pdCluster(t, 0)
	out := f.MustRun(t, "", "rollout", "plan", "llama")
	if !strings.Contains(out, "Nothing to roll out: every group runs llama-old") {
		t.Errorf("plan:\n%s", out)
	}

	// A new image, no free NPU: in place, group by group.
	manifest := filepath.Join(t.TempDir(), "llama.yaml")
	if err := os.WriteFile(manifest, []byte(`apiVersion: infer.mindie.io/v1alpha1
kind: InferServer
metadata: {name: llama, namespace: default}
spec:
  replicas: 2
  image: mindie:v2
  resources: {npu: {type: Ascend910, count: 8}}
  router: {}
  roles: [{name: prefill}, {name: decode}]
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 1}}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	out = f.MustRun(t, "", "rollout", "plan", "llama", "-f", manifest)
	rows := fake.Columns(out)
	var table []string
	for _, r := range rows {
		if len(r) == 6 {
			table = append(table, strings.Join(r, " "))
		}
	}
	want := []string{"STEP DELETE CREATE NPUS FITS SERVING", "1 llama-1 - 0 yes 1", "2 - llama-1 16 yes 1", "3 llama-0 - 0 yes 1", "4 - llama-0 16 yes 1"}
	if strings.Join(table, "\n") != strings.Join(want, "\n") ||
		!strings.Contains(out, "InferServer default/llama: 2 groups to revision llama-") ||
		!strings.Contains(out, "rolling update, maxSurge 1, maxUnavailable 1 groups") ||
		!strings.Contains(out, "Each new group: 2 pods, 16 NPUs") ||
		!strings.Contains(out, "Now: 0 NPUs free on 4 matching nodes") ||
		!strings.Contains(out, "The surge does not fit (2 new instances with the surge need 32 NPUs (4 pods), 16 NPUs free on 4 matching nodes") {
		t.Errorf("plan:\n%s", out)
	}

	// With two spare nodes the surge fits.
	f = pdCluster(t, 2)
	out = f.MustRun(t, "", "rollout", "plan", "llama", "-f", manifest)
	if strings.Contains(out, "does not fit") || !strings.Contains(out, "llama-1,llama-2  32") {
		t.Errorf("plan:\n%s", out)
	}

	// A manifest of another server is refused.
	other := filepath.Join(t.TempDir(), "other.yaml")
	_ = os.WriteFile(other, []byte("kind: InferServer\nmetadata: {name: qwen}\nspec: {image: x}\n"), 0o600)
	f.FailRun(t, "", []string{"rollout", "plan", "llama", "-f", other}, `the manifest is of InferServer "qwen", not "llama"`)
}

package edgedeployment

import (
	"context"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"mindie.io/deployer/apis/infer"
	"mindie.io/deployer/apis/infer/install"
	"mindie.io/deployer/apis/infer/v1alpha1"
)

var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	install.Install(s)
	return s
}()

// newEdge returns a defaulted internal EdgeDeployment of nodes edge-1 and
// edge-2 running image; the mutations apply to the v1alpha1 object before
// defaulting, as a request body would.
func newEdge(name, image string, mutate ...func(*v1alpha1.EdgeDeployment)) *infer.EdgeDeployment {
	in := &v1alpha1.EdgeDeployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: v1alpha1.EdgeDeploymentSpec{
			Targets:   v1alpha1.EdgeTargets{Nodes: []string{"edge-1", "edge-2"}},
			Container: v1alpha1.EdgeContainer{Image: image},
		},
	}
	for _, m := range mutate {
		m(in)
	}
	scheme.Default(in)
	out := &infer.EdgeDeployment{}
	if err := scheme.Convert(in, out, nil); err != nil {
		panic("convert v1alpha1 EdgeDeployment to internal: " + err.Error())
	}
	return out
}

func TestPrepareForCreateQueues(t *testing.T) {
	e := newEdge("cams", "detector:1.0")
	e.Generation = 7
	e.Status = infer.EdgeDeploymentStatus{Phase: infer.EdgePhaseSucceeded, Succeeded: 2, Targets: []string{"edge-1", "edge-2"}}

	NewStrategy(scheme).PrepareForCreate(context.Background(), e)

	if e.Generation != 1 {
		t.Errorf("generation = %d, want 1", e.Generation)
	}
	if want := (infer.EdgeDeploymentStatus{Phase: infer.EdgePhaseQueued}); !apiequality.Semantic.DeepEqual(e.Status, want) {
		t.Errorf("status = %+v, want only phase Queued", e.Status)
	}
	if len(e.Finalizers) != 0 {
		t.Errorf("finalizers %v from a strategy without one", e.Finalizers)
	}
	st := NewStrategy(scheme)
	st.Finalizer = v1alpha1.FinalizerEdgeCleanup
	st.PrepareForCreate(context.Background(), e)
	if len(e.Finalizers) != 1 || e.Finalizers[0] != v1alpha1.FinalizerEdgeCleanup {
		t.Errorf("finalizers %v, want [%s]", e.Finalizers, v1alpha1.FinalizerEdgeCleanup)
	}
}

func TestPrepareForUpdate(t *testing.T) {
	s := NewStrategy(scheme)
	old := newEdge("cams", "detector:1.0")
	old.Generation = 4
	old.Status = infer.EdgeDeploymentStatus{Phase: infer.EdgePhaseRunning, Running: 2}
	for _, tc := range []struct {
		name           string
		change         func(*infer.EdgeDeployment)
		wantGeneration int64
	}{
		{"stop", func(e *infer.EdgeDeployment) { e.Spec.Stopped = true }, 5},
		{"retry", func(e *infer.EdgeDeployment) { e.Spec.RetryGeneration = 1 }, 5},
		{"label", func(e *infer.EdgeDeployment) { e.Labels = map[string]string{"a": "b"} }, 4},
		{"status", func(e *infer.EdgeDeployment) { e.Status.Phase = infer.EdgePhaseSucceeded }, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := old.DeepCopy()
			tc.change(e)
			s.PrepareForUpdate(context.Background(), e, old)
			if e.Generation != tc.wantGeneration {
				t.Errorf("generation = %d, want %d", e.Generation, tc.wantGeneration)
			}
			if !apiequality.Semantic.DeepEqual(e.Status, old.Status) {
				t.Errorf("status changed through the main resource: %+v", e.Status)
			}
		})
	}
}

func TestStatusStrategyKeepsSpecAndLabels(t *testing.T) {
	s := NewStatusStrategy(NewStrategy(scheme))
	old := newEdge("cams", "detector:1.0")
	old.Labels = map[string]string{"team": "a"}
	e := old.DeepCopy()
	e.Spec.Container.Image = "other:2"
	e.Spec.Stopped = true
	e.Labels = map[string]string{"team": "b"}
	e.Status = infer.EdgeDeploymentStatus{Phase: infer.EdgePhaseRunning}

	s.PrepareForUpdate(context.Background(), e, old)

	if !apiequality.Semantic.DeepEqual(e.Spec, old.Spec) || e.Labels["team"] != "a" {
		t.Errorf("status update changed spec or labels: image %q, stopped %v, labels %v", e.Spec.Container.Image, e.Spec.Stopped, e.Labels)
	}
	if e.Status.Phase != infer.EdgePhaseRunning {
		t.Errorf("status update lost the status: %+v", e.Status)
	}
}

func TestResetFields(t *testing.T) {
	v := fieldpath.APIVersion(v1alpha1.SchemeGroupVersion.String())
	main := NewStrategy(scheme).GetResetFields()[v]
	if main == nil || !main.Has(fieldpath.MakePathOrDie("status")) || main.Has(fieldpath.MakePathOrDie("spec")) {
		t.Errorf("main resource resets %v, want status only", main)
	}
	status := NewStatusStrategy(NewStrategy(scheme)).GetResetFields()[v]
	if status == nil || !status.Has(fieldpath.MakePathOrDie("spec")) || status.Has(fieldpath.MakePathOrDie("status")) {
		t.Errorf("status subresource resets %v, want spec (and labels)", status)
	}
}

// expectWarnings checks that each wanted substring is in exactly one
// warning, and that there are no other warnings.
func expectWarnings(t *testing.T, got []string, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d warnings, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g string) bool { return strings.Contains(g, w) }) {
			t.Errorf("no warning mentions %q:\n%s", w, strings.Join(got, "\n"))
		}
	}
}

func TestWarningsOnCreate(t *testing.T) {
	s := NewStrategy(scheme)
	for _, tc := range []struct {
		name   string
		image  string
		mutate func(*v1alpha1.EdgeDeployment)
		want   []string
	}{
		{"pinned image", "detector:1.0", func(*v1alpha1.EdgeDeployment) {}, nil},
		{"pinned by digest", "detector@sha256:0123", func(*v1alpha1.EdgeDeployment) {}, nil},
		{"latest", "detector:latest", func(*v1alpha1.EdgeDeployment) {}, []string{`spec.container.image: "detector:latest" has the tag latest`}},
		{"untagged", "registry:5000/detector", func(*v1alpha1.EdgeDeployment) {}, []string{`spec.container.image: "registry:5000/detector" has no tag, which means latest`}},
		{"privileged and host PID", "detector:1.0", func(e *v1alpha1.EdgeDeployment) {
			e.Spec.Container.Privileged = true
			e.Spec.HostPID = true
		}, []string{"spec.container.privileged", "spec.hostPID"}},
		{"host network with ports and instances", "detector:1.0", func(e *v1alpha1.EdgeDeployment) {
			e.Spec.InstancesPerNode = ptr.To[int32](2)
			e.Spec.Network = v1alpha1.EdgeNetwork{HostNetwork: true, Ports: []v1alpha1.EdgePortMapping{{ContainerPort: 80, HostPort: 80}}}
		}, []string{"spec.network.ports: ignored", "spec.instancesPerNode: the 2 instances"}},
		{"sensitive host paths", "detector:1.0", func(e *v1alpha1.EdgeDeployment) {
			e.Spec.Container.Volumes = []v1alpha1.EdgeVolume{
				{Name: "docker", MountPath: "/docker.sock", HostPath: &corev1.HostPathVolumeSource{Path: "/var/run/docker.sock"}},
				{Name: "etc", MountPath: "/host/etc", ReadOnly: true, HostPath: &corev1.HostPathVolumeSource{Path: "/etc"}},
				{Name: "logs", MountPath: "/logs", HostPath: &corev1.HostPathVolumeSource{Path: "/var/IEF/app/log/cams"}},
				{Name: "camera", MountPath: "/dev/video0", HostPath: &corev1.HostPathVolumeSource{Path: "/dev/video0"}},
				{Name: "root", MountPath: "/host", HostPath: &corev1.HostPathVolumeSource{Path: "/"}},
			}
		}, []string{"volumes[0].hostPath: /var/run/docker.sock", "volumes[4].hostPath: / of the node"}},
		{"credentials in plain values", "detector:1.0", func(e *v1alpha1.EdgeDeployment) {
			e.Spec.Container.Env = []corev1.EnvVar{
				{Name: "DB_PASSWORD", Value: "hunter2"},
				{Name: "api_token", Value: "abc"},
				{Name: "SECRET_FROM_SECRET", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}, Key: "k"}}},
				{Name: "MODE", Value: "fast"},
			}
		}, []string{"env[0]: DB_PASSWORD", "env[1]: api_token"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expectWarnings(t, s.WarningsOnCreate(context.Background(), newEdge("cams", tc.image, tc.mutate)), tc.want...)
		})
	}
}

func TestWarningsOnUpdate(t *testing.T) {
	s := NewStrategy(scheme)
	for _, tc := range []struct {
		name   string
		phase  infer.EdgeDeploymentPhase
		change func(*infer.EdgeDeployment)
		want   []string
	}{
		// The application's warnings are not repeated on every update.
		{"stop a running job of a latest image", infer.EdgePhaseRunning, func(e *infer.EdgeDeployment) { e.Spec.Stopped = true }, nil},
		{"retry a partial success", infer.EdgePhasePartiallySucceeded, func(e *infer.EdgeDeployment) { e.Spec.RetryGeneration++ }, nil},
		{"retry while running", infer.EdgePhaseRunning, func(e *infer.EdgeDeployment) { e.Spec.RetryGeneration++ },
			[]string{"the job is Running: the retry starts when the current run ends"}},
		{"retry a stopped job", infer.EdgePhaseStopped, func(e *infer.EdgeDeployment) { e.Spec.Stopped, e.Spec.RetryGeneration = true, 1 },
			[]string{"the retry starts when it is continued"}},
		{"retry a success", infer.EdgePhaseSucceeded, func(e *infer.EdgeDeployment) { e.Spec.RetryGeneration++ },
			[]string{"nothing to retry"}},
		{"stop an ended job", infer.EdgePhaseFailed, func(e *infer.EdgeDeployment) { e.Spec.Stopped = true },
			[]string{"spec.stopped: the run has ended (phase Failed)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := newEdge("cams", "detector:latest")
			old.Status.Phase = tc.phase
			if tc.phase == infer.EdgePhaseStopped {
				old.Spec.Stopped = true
			}
			e := old.DeepCopy()
			tc.change(e)
			expectWarnings(t, s.WarningsOnUpdate(context.Background(), e, old), tc.want...)
		})
	}
}

func TestSensitiveHostPath(t *testing.T) {
	for p, want := range map[string]bool{
		"/": true, "/etc": true, "/etc/ssl/certs": true, "/var/run/docker.sock": true, "/run/containerd": true,
		"/var/lib/kubelet/pods": true, "/proc/1": true, "/root/.ssh": true, "/usr": true, "/dev": true, "/var/lib": true,
		"/usr/local/app": false, "/dev/video0": false, "/var/log/app": false, "/var/IEF/app/log/cams": false,
		"/data": false, "/var/lib/app": false, "/etcetera": false, "/var/runner": false,
	} {
		if got := SensitiveHostPath(p); got != want {
			t.Errorf("SensitiveHostPath(%q) = %v, want %v", p, got, want)
		}
	}
}

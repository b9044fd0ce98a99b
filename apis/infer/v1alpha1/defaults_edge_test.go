package v1alpha1

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// defaultedEdge runs the scheme's defaulting on an EdgeDeployment with the
// given spec, as decoding a request does.
func defaultedEdge(spec EdgeDeploymentSpec) *EdgeDeployment {
	obj := &EdgeDeployment{ObjectMeta: metav1.ObjectMeta{Name: "cameras", Namespace: "default"}, Spec: spec}
	testScheme().Default(obj)
	return obj
}

func expectEdgeSpec(t *testing.T, got, want EdgeDeploymentSpec) {
	t.Helper()
	if !apiequality.Semantic.DeepEqual(got, want) {
		t.Errorf("spec differs (-want +got):\n%s", cmp.Diff(want, got, quantityEqual))
	}
}

// minimalEdgeSpec is what a user must give: the nodes and the image.
func minimalEdgeSpec() EdgeDeploymentSpec {
	return EdgeDeploymentSpec{
		Targets:   EdgeTargets{Nodes: []string{"edge-1"}},
		Container: EdgeContainer{Image: "swr.cn-north-4.myhuaweicloud.com/team/detector:1.2.0"},
	}
}

// TestEdgeDefaults checks every documented default, written out rather
// than taken from the package's constants so that a changed constant fails.
func TestEdgeDefaults(t *testing.T) {
	got := defaultedEdge(minimalEdgeSpec()).Spec
	want := EdgeDeploymentSpec{
		Targets:          EdgeTargets{Nodes: []string{"edge-1"}},
		InstancesPerNode: ptr.To[int32](1),
		RestartPolicy:    corev1.RestartPolicyAlways,
		Container: EdgeContainer{
			Image:           "swr.cn-north-4.myhuaweicloud.com/team/detector:1.2.0",
			ImagePullPolicy: corev1.PullIfNotPresent,
			Resources:       EdgeResources{CPU: qty("250m"), CPULimit: qty("250m"), Memory: qty("512Mi"), MemoryLimit: qty("512Mi")},
		},
		MaxConcurrentNodes: ptr.To[int32](100),
		TimeoutSeconds:     ptr.To[int32](600),
	}
	expectEdgeSpec(t, got, want)
}

// TestEdgeDefaultsNested fills the defaults of the optional parts: NPU,
// volumes, probes and port mappings.
func TestEdgeDefaultsNested(t *testing.T) {
	spec := minimalEdgeSpec()
	spec.Container.Resources = EdgeResources{CPU: qty("2"), Memory: qty("1Gi"), MemoryLimit: qty("2Gi"), NPU: &EdgeNPU{Type: EdgeNPUAscend310}}
	spec.Container.Volumes = []EdgeVolume{{Name: "scratch", MountPath: "/scratch", EmptyDir: &EdgeEmptyDir{}}}
	spec.Container.LivenessProbe = &EdgeProbe{HTTPGet: &EdgeHTTPGet{Port: 8080}}
	spec.Container.ReadinessProbe = &EdgeProbe{Exec: &EdgeExec{Command: []string{"cat", "/tmp/ready"}}, InitialDelaySeconds: 5}
	spec.Network.Ports = []EdgePortMapping{{ContainerPort: 80, HostPort: 8080}, {ContainerPort: 53, HostPort: 5353, Protocol: corev1.ProtocolUDP}}
	c := defaultedEdge(spec).Spec.Container

	wantResources := EdgeResources{CPU: qty("2"), CPULimit: qty("2"), Memory: qty("1Gi"), MemoryLimit: qty("2Gi"),
		NPU: &EdgeNPU{Type: EdgeNPUAscend310, Count: ptr.To[int32](1)}}
	if !apiequality.Semantic.DeepEqual(c.Resources, wantResources) {
		t.Errorf("resources (-want +got):\n%s", cmp.Diff(wantResources, c.Resources, quantityEqual))
	}
	if m := c.Volumes[0].EmptyDir.Medium; m != EdgeStorageDisk {
		t.Errorf("emptyDir medium %q, want Disk", m)
	}
	wantLiveness := &EdgeProbe{HTTPGet: &EdgeHTTPGet{Path: "/", Port: 8080, Scheme: corev1.URISchemeHTTP},
		TimeoutSeconds: ptr.To[int32](1), PeriodSeconds: ptr.To[int32](10), FailureThreshold: ptr.To[int32](3)}
	if diff := cmp.Diff(wantLiveness, c.LivenessProbe); diff != "" {
		t.Errorf("liveness probe (-want +got):\n%s", diff)
	}
	wantReadiness := &EdgeProbe{Exec: &EdgeExec{Command: []string{"cat", "/tmp/ready"}}, InitialDelaySeconds: 5,
		TimeoutSeconds: ptr.To[int32](1), PeriodSeconds: ptr.To[int32](10), FailureThreshold: ptr.To[int32](3)}
	if diff := cmp.Diff(wantReadiness, c.ReadinessProbe); diff != "" {
		t.Errorf("readiness probe (-want +got):\n%s", diff)
	}
	ports := defaultedEdge(spec).Spec.Network.Ports
	if ports[0].Protocol != corev1.ProtocolTCP || ports[1].Protocol != corev1.ProtocolUDP {
		t.Errorf("port protocols %q, %q: want TCP (the default) and UDP (as given)", ports[0].Protocol, ports[1].Protocol)
	}
}

// TestEdgeDefaultsKeepGiven checks that defaulting never overwrites a value.
func TestEdgeDefaultsKeepGiven(t *testing.T) {
	spec := minimalEdgeSpec()
	spec.InstancesPerNode = ptr.To[int32](3)
	spec.RestartPolicy = corev1.RestartPolicyNever
	spec.MaxConcurrentNodes = ptr.To[int32](5)
	spec.TimeoutSeconds = ptr.To[int32](60)
	spec.Container.ImagePullPolicy = corev1.PullNever
	spec.Container.Resources = EdgeResources{CPU: qty("1"), CPULimit: qty("4"), Memory: qty("64Mi"), MemoryLimit: qty("128Mi"),
		NPU: &EdgeNPU{Type: EdgeNPUAscend910, Count: ptr.To[int32](8)}}
	spec.Container.LivenessProbe = &EdgeProbe{HTTPGet: &EdgeHTTPGet{Path: "/healthz", Port: 1, Scheme: corev1.URISchemeHTTPS},
		TimeoutSeconds: ptr.To[int32](7), PeriodSeconds: ptr.To[int32](8), FailureThreshold: ptr.To[int32](9)}
	spec.Container.Volumes = []EdgeVolume{{Name: "shm", MountPath: "/dev/shm", EmptyDir: &EdgeEmptyDir{Medium: EdgeStorageMemory}}}
	given := *spec.DeepCopy()
	expectEdgeSpec(t, defaultedEdge(spec).Spec, given)
}

// TestEdgePullPolicy follows Kubernetes: Always for an image tagged latest
// or untagged, IfNotPresent for one pinned by a tag or a digest.
func TestEdgePullPolicy(t *testing.T) {
	for image, want := range map[string]corev1.PullPolicy{
		"nginx":                        corev1.PullAlways,
		"nginx:latest":                 corev1.PullAlways,
		"registry:5000/team/app":       corev1.PullAlways,
		"registry:5000/team/app:1.2":   corev1.PullIfNotPresent,
		"nginx:1.25":                   corev1.PullIfNotPresent,
		"nginx@sha256:0123456789abcde": corev1.PullIfNotPresent,
		"nginx:latest@sha256:01234567": corev1.PullIfNotPresent,
	} {
		spec := minimalEdgeSpec()
		spec.Container.Image = image
		if got := defaultedEdge(spec).Spec.Container.ImagePullPolicy; got != want {
			t.Errorf("%s: pull policy %s, want %s", image, got, want)
		}
	}
}

func TestSplitImage(t *testing.T) {
	for _, tc := range []struct{ image, name, tag, digest string }{
		{"nginx", "nginx", "", ""},
		{"nginx:1.25", "nginx", "1.25", ""},
		{"localhost:5000/app", "localhost:5000/app", "", ""},
		{"localhost:5000/app:v2", "localhost:5000/app", "v2", ""},
		{"app@sha256:abc", "app", "", "sha256:abc"},
		{"app:v1@sha256:abc", "app", "v1", "sha256:abc"},
	} {
		name, tag, digest := SplitImage(tc.image)
		if name != tc.name || tag != tc.tag || digest != tc.digest {
			t.Errorf("SplitImage(%q) = %q, %q, %q; want %q, %q, %q", tc.image, name, tag, digest, tc.name, tc.tag, tc.digest)
		}
	}
}

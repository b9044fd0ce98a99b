package validation

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer"
	"mindie.io/deployer/apis/infer/v1alpha1"
)

// validEdge is a minimal EdgeDeployment (nodes and an image), defaulted and
// converted to the internal version as the API server sees a create.
func validEdge(t *testing.T) *infer.EdgeDeployment {
	t.Helper()
	in := &v1alpha1.EdgeDeployment{
		ObjectMeta: metav1.ObjectMeta{Name: "cameras", Namespace: "default"},
		Spec: v1alpha1.EdgeDeploymentSpec{
			Targets:   v1alpha1.EdgeTargets{Nodes: []string{"edge-1", "edge-2"}},
			Container: v1alpha1.EdgeContainer{Image: "detector:1.2.0"},
		},
	}
	scheme.Default(in)
	out := &infer.EdgeDeployment{}
	if err := scheme.Convert(in, out, nil); err != nil {
		t.Fatalf("converting the defaulted EdgeDeployment: %v", err)
	}
	return out
}

func tooMany(path string, contains ...string) wantErr {
	return wantErr{field.ErrorTypeTooMany, path, contains}
}

type edgeCase struct {
	name   string
	mutate func(*infer.EdgeDeployment)
	want   []wantErr
}

func edgeValid(name string, mutate func(*infer.EdgeDeployment)) edgeCase {
	return edgeCase{name: name, mutate: mutate}
}

func edgeBad(name string, mutate func(*infer.EdgeDeployment), want ...wantErr) edgeCase {
	return edgeCase{name: name, mutate: mutate, want: want}
}

func runEdgeCases(t *testing.T, cases []edgeCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := validEdge(t)
			tc.mutate(e)
			expectErrors(t, ValidateEdgeDeployment(e), tc.want)
		})
	}
}

func spec(f func(*infer.EdgeDeploymentSpec)) func(*infer.EdgeDeployment) {
	return func(e *infer.EdgeDeployment) { f(&e.Spec) }
}

func container(f func(*infer.EdgeContainer)) func(*infer.EdgeDeployment) {
	return func(e *infer.EdgeDeployment) { f(&e.Spec.Container) }
}

func quantity(s string) *resource.Quantity { return ptr.To(resource.MustParse(s)) }

// volume returns a mutation that sets the container's volumes.
func volumes(vs ...infer.EdgeVolume) func(*infer.EdgeDeployment) {
	return container(func(c *infer.EdgeContainer) { c.Volumes = vs })
}

func emptyDirAt(name, mountPath string) infer.EdgeVolume {
	return infer.EdgeVolume{Name: name, MountPath: mountPath, EmptyDir: &infer.EdgeEmptyDir{Medium: infer.EdgeStorageDisk}}
}

func withNPU(f func(*infer.EdgeDeployment)) func(*infer.EdgeDeployment) {
	return func(e *infer.EdgeDeployment) {
		e.Spec.Container.Resources.NPU = &infer.EdgeNPU{Type: infer.EdgeNPUAscend310, Count: ptr.To[int32](1)}
		f(e)
	}
}

func probe(p infer.EdgeProbe) *infer.EdgeProbe {
	if p.TimeoutSeconds == nil {
		p.TimeoutSeconds = ptr.To[int32](1)
	}
	if p.PeriodSeconds == nil {
		p.PeriodSeconds = ptr.To[int32](10)
	}
	if p.FailureThreshold == nil {
		p.FailureThreshold = ptr.To[int32](3)
	}
	return &p
}

func httpGet(path string, port int32) *infer.EdgeHTTPGet {
	return &infer.EdgeHTTPGet{Path: path, Port: port, Scheme: corev1.URISchemeHTTP}
}

func ports(ms ...infer.EdgePortMapping) func(*infer.EdgeDeployment) {
	return spec(func(s *infer.EdgeDeploymentSpec) { s.Network.Ports = ms })
}

func tcp(container, host int32) infer.EdgePortMapping {
	return infer.EdgePortMapping{ContainerPort: container, HostPort: host, Protocol: corev1.ProtocolTCP}
}

func env(vars ...corev1.EnvVar) func(*infer.EdgeDeployment) {
	return container(func(c *infer.EdgeContainer) { c.Env = vars })
}

func secretRef(name, key string) *corev1.EnvVarSource {
	return &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key}}
}

func configMapRef(name, key string) *corev1.ConfigMapKeySelector {
	return &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key}
}

// TestValidateEdgeWholeForm accepts an EdgeDeployment that uses every part
// of the IEF form at once.
func TestValidateEdgeWholeForm(t *testing.T) {
	e := validEdge(t)
	e.Spec.Description = "road cameras, batch 3"
	e.Spec.Targets.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"site": "north"},
		MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "kubernetes.io/arch", Operator: metav1.LabelSelectorOpIn, Values: []string{"arm64"}}}}
	e.Spec.NamePrefix = "detector"
	e.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
	e.Spec.HostPID = true
	e.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "swr-pull"}}
	c := &e.Spec.Container
	c.Command = []string{"/bin/sh", "-c"}
	c.Args = []string{"exec /app/run --port=8080"}
	c.Privileged = true
	c.Resources.NPU = &infer.EdgeNPU{Type: infer.EdgeNPUAscend310P, Count: ptr.To[int32](2)}
	c.Env = []corev1.EnvVar{
		{Name: "MODE", Value: "fast"},
		{Name: "DB_PASSWORD", ValueFrom: secretRef("db", "password")},
		{Name: "THRESHOLD", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: configMapRef("tuning", "threshold")}},
		{Name: "HOST_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "status.hostIP"}}},
	}
	c.Volumes = []infer.EdgeVolume{
		{Name: "logs", MountPath: "/var/log/app", HostPath: &corev1.HostPathVolumeSource{Path: "/var/IEF/app/log/cameras", Type: ptr.To(corev1.HostPathDirectoryOrCreate)}},
		{Name: "scratch", MountPath: "/scratch", EmptyDir: &infer.EdgeEmptyDir{Medium: infer.EdgeStorageMemory, SizeLimit: quantity("64Mi")}},
		{Name: "config", MountPath: "/etc/app", ReadOnly: true, ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "app-config"}, Items: []corev1.KeyToPath{{Key: "app.yaml", Path: "conf/app.yaml", Mode: ptr.To[int32](0o644)}}}},
		{Name: "certs", MountPath: "/certs", Secret: &corev1.SecretVolumeSource{SecretName: "app-tls", DefaultMode: ptr.To[int32](0o400)}},
	}
	c.LivenessProbe = probe(infer.EdgeProbe{HTTPGet: httpGet("/healthz", 8080), InitialDelaySeconds: 10})
	c.ReadinessProbe = probe(infer.EdgeProbe{Exec: &infer.EdgeExec{Command: []string{"cat", "/tmp/ready"}}})
	e.Spec.Network.Ports = []infer.EdgePortMapping{tcp(8080, 80), {ContainerPort: 53, HostPort: 53, Protocol: corev1.ProtocolUDP, HostIP: "192.168.0.10"}}
	expectErrors(t, ValidateEdgeDeployment(e), nil)
}

func TestValidateEdgeTargets(t *testing.T) {
	var many []string
	for i := range v1alpha1.MaxEdgeTargets + 1 {
		many = append(many, fmt.Sprintf("edge-%d", i))
	}
	targets := func(f func(*infer.EdgeTargets)) func(*infer.EdgeDeployment) {
		return spec(func(s *infer.EdgeDeploymentSpec) { f(&s.Targets) })
	}
	runEdgeCases(t, []edgeCase{
		edgeValid("selector only", targets(func(tg *infer.EdgeTargets) {
			tg.Nodes, tg.Selector = nil, &metav1.LabelSelector{MatchLabels: map[string]string{"site": "north"}}
		})),
		edgeValid("1000 nodes", targets(func(tg *infer.EdgeTargets) { tg.Nodes = many[:v1alpha1.MaxEdgeTargets] })),
		edgeBad("neither nodes nor selector", targets(func(tg *infer.EdgeTargets) { tg.Nodes = nil }),
			required("spec.targets", "nodes", "selector")),
		edgeBad("empty selector", targets(func(tg *infer.EdgeTargets) { tg.Selector = &metav1.LabelSelector{} }),
			invalid("spec.targets.selector", "every node")),
		edgeBad("bad selector operator", targets(func(tg *infer.EdgeTargets) {
			tg.Selector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "site", Operator: "Near"}}}
		}), invalid("spec.targets.selector.matchExpressions[0].operator", "Near")),
		edgeBad("bad and duplicate node names", targets(func(tg *infer.EdgeTargets) { tg.Nodes = []string{"Edge_1", "edge-2", "edge-2"} }),
			invalid("spec.targets.nodes[0]", badString("Edge_1")), duplicate("spec.targets.nodes[2]", "edge-2")),
		edgeBad("1001 nodes", targets(func(tg *infer.EdgeTargets) { tg.Nodes = many }),
			tooMany("spec.targets.nodes", "1001", "1000")),
	})
}

func TestValidateEdgeJob(t *testing.T) {
	runEdgeCases(t, []edgeCase{
		edgeBad("name of 49 characters", func(e *infer.EdgeDeployment) { e.Name = strings.Repeat("a", 49) },
			invalid("metadata.name", "no more than 48 characters")),
		edgeValid("description of 255 characters", spec(func(s *infer.EdgeDeploymentSpec) { s.Description = strings.Repeat("d", 255) })),
		edgeBad("description of 256 characters", spec(func(s *infer.EdgeDeploymentSpec) { s.Description = strings.Repeat("d", 256) }),
			tooLong("spec.description", "255")),
		edgeBad("namePrefix not a DNS label", spec(func(s *infer.EdgeDeploymentSpec) { s.NamePrefix = "Detector_" }),
			invalid("spec.namePrefix", badString("Detector_"))),
		edgeBad("namePrefix of 49 characters", spec(func(s *infer.EdgeDeploymentSpec) { s.NamePrefix = strings.Repeat("p", 49) }),
			invalid("spec.namePrefix", "no more than 48 characters")),
		edgeValid("instancesPerNode 64", spec(func(s *infer.EdgeDeploymentSpec) { s.InstancesPerNode = ptr.To[int32](64) })),
		edgeBad("instancesPerNode 0", spec(func(s *infer.EdgeDeploymentSpec) { s.InstancesPerNode = ptr.To[int32](0) }),
			invalid("spec.instancesPerNode", badInt[int32](0), between(1, 64))),
		edgeBad("instancesPerNode 65", spec(func(s *infer.EdgeDeploymentSpec) { s.InstancesPerNode = ptr.To[int32](65) }),
			invalid("spec.instancesPerNode", badInt[int32](65), between(1, 64))),
		edgeBad("instancesPerNode unset", spec(func(s *infer.EdgeDeploymentSpec) { s.InstancesPerNode = nil }),
			required("spec.instancesPerNode", between(1, 64))),
		edgeBad("two instances with host ports", func(e *infer.EdgeDeployment) {
			e.Spec.InstancesPerNode = ptr.To[int32](2)
			e.Spec.Network.Ports = []infer.EdgePortMapping{tcp(80, 8080)}
		}, invalid("spec.instancesPerNode", "host port")),
		edgeValid("two instances on the host network", func(e *infer.EdgeDeployment) {
			e.Spec.InstancesPerNode = ptr.To[int32](2)
			e.Spec.Network = infer.EdgeNetwork{HostNetwork: true, Ports: []infer.EdgePortMapping{tcp(80, 8080)}}
		}),
		edgeBad("restartPolicy Sometimes", spec(func(s *infer.EdgeDeploymentSpec) { s.RestartPolicy = "Sometimes" }),
			notSupported("spec.restartPolicy", "Sometimes", "Always", "OnFailure", "Never")),
		edgeBad("imagePullSecrets name", spec(func(s *infer.EdgeDeploymentSpec) {
			s.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "SWR"}}
		}), invalid("spec.imagePullSecrets[0].name", badString("SWR"))),
		edgeValid("maxConcurrentNodes 1000", spec(func(s *infer.EdgeDeploymentSpec) { s.MaxConcurrentNodes = ptr.To[int32](1000) })),
		edgeBad("maxConcurrentNodes 0", spec(func(s *infer.EdgeDeploymentSpec) { s.MaxConcurrentNodes = ptr.To[int32](0) }),
			invalid("spec.maxConcurrentNodes", badInt[int32](0), between(1, 1000))),
		edgeBad("maxConcurrentNodes 1001", spec(func(s *infer.EdgeDeploymentSpec) { s.MaxConcurrentNodes = ptr.To[int32](1001) }),
			invalid("spec.maxConcurrentNodes", badInt[int32](1001), between(1, 1000))),
		edgeBad("timeoutSeconds 0", spec(func(s *infer.EdgeDeploymentSpec) { s.TimeoutSeconds = ptr.To[int32](0) }),
			invalid("spec.timeoutSeconds", badInt[int32](0), between(1, 86400))),
		edgeBad("timeoutSeconds 86401", spec(func(s *infer.EdgeDeploymentSpec) { s.TimeoutSeconds = ptr.To[int32](86401) }),
			invalid("spec.timeoutSeconds", badInt[int32](86401), between(1, 86400))),
		edgeBad("retryGeneration -1", spec(func(s *infer.EdgeDeploymentSpec) { s.RetryGeneration = -1 }),
			invalid("spec.retryGeneration", "-1")),
		// Every error of an object is reported at once.
		edgeBad("several errors", func(e *infer.EdgeDeployment) {
			e.Spec.Targets = infer.EdgeTargets{}
			e.Spec.Container.Image = ""
			e.Spec.TimeoutSeconds = ptr.To[int32](0)
		}, required("spec.targets"), required("spec.container.image"), invalid("spec.timeoutSeconds", badInt[int32](0))),
	})
}

func TestValidateEdgeContainer(t *testing.T) {
	res := func(f func(*infer.EdgeResources)) func(*infer.EdgeDeployment) {
		return container(func(c *infer.EdgeContainer) { f(&c.Resources) })
	}
	runEdgeCases(t, []edgeCase{
		edgeValid("image latest (a warning, not an error)", container(func(c *infer.EdgeContainer) { c.Image = "detector:latest" })),
		edgeBad("no image", container(func(c *infer.EdgeContainer) { c.Image = "" }), required("spec.container.image")),
		edgeBad("image with spaces", container(func(c *infer.EdgeContainer) { c.Image = " detector:1" }),
			invalid("spec.container.image", "whitespace")),
		edgeBad("imagePullPolicy Sometimes", container(func(c *infer.EdgeContainer) { c.ImagePullPolicy = "Sometimes" }),
			notSupported("spec.container.imagePullPolicy", "Sometimes", "Always", "IfNotPresent", "Never")),
		edgeBad("cpu 0", res(func(r *infer.EdgeResources) { r.CPU = quantity("0") }),
			invalid("spec.container.resources.cpu", "1m and 256 cores")),
		edgeBad("cpu 257 and limit below", res(func(r *infer.EdgeResources) { r.CPU = quantity("257") }),
			invalid("spec.container.resources.cpu", "1m and 256 cores"),
			invalid("spec.container.resources.cpuLimit", "at least the request spec.container.resources.cpu (257)")),
		edgeBad("memory 1Mi", res(func(r *infer.EdgeResources) { r.Memory, r.MemoryLimit = quantity("1Mi"), quantity("1Mi") }),
			invalid("spec.container.resources.memory", "6Mi and 1Ti"), invalid("spec.container.resources.memoryLimit", "6Mi and 1Ti")),
		edgeBad("memory limit below the request", res(func(r *infer.EdgeResources) { r.MemoryLimit = quantity("256Mi") }),
			invalid("spec.container.resources.memoryLimit", "256Mi", "at least the request spec.container.resources.memory (512Mi)")),
		edgeBad("cpu limit unset", res(func(r *infer.EdgeResources) { r.CPULimit = nil }),
			required("spec.container.resources.cpuLimit")),
		edgeValid("32 Ascend910", res(func(r *infer.EdgeResources) {
			r.NPU = &infer.EdgeNPU{Type: infer.EdgeNPUAscend910, Count: ptr.To[int32](32)}
		})),
		edgeBad("NPU Ascend920", res(func(r *infer.EdgeResources) {
			r.NPU = &infer.EdgeNPU{Type: "Ascend920", Count: ptr.To[int32](1)}
		}), notSupported("spec.container.resources.npu.type", "Ascend920", "Ascend310", "Ascend310P", "Ascend910")),
		edgeBad("33 NPUs", res(func(r *infer.EdgeResources) {
			r.NPU = &infer.EdgeNPU{Type: infer.EdgeNPUAscend310, Count: ptr.To[int32](33)}
		}), invalid("spec.container.resources.npu.count", badInt[int32](33), between(1, 32))),
	})
}

func TestValidateEdgeEnv(t *testing.T) {
	hostIP := &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.hostIP"}}
	runEdgeCases(t, []edgeCase{
		edgeValid("host IP without apiVersion", env(corev1.EnvVar{Name: "HOST_IP", ValueFrom: hostIP})),
		edgeBad("duplicate and bad names", env(corev1.EnvVar{Name: "A", Value: "1"}, corev1.EnvVar{Name: "A", Value: "2"}, corev1.EnvVar{Name: "1A=", Value: "3"}, corev1.EnvVar{Value: "4"}),
			duplicate("spec.container.env[1].name", "A"), invalid("spec.container.env[2].name", badString("1A=")), required("spec.container.env[3].name")),
		edgeBad("value and valueFrom", env(corev1.EnvVar{Name: "HOST_IP", Value: "1.2.3.4", ValueFrom: hostIP}),
			invalid("spec.container.env[0].valueFrom", "together with value")),
		edgeBad("a field other than the host IP", env(corev1.EnvVar{Name: "POD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}),
			notSupported("spec.container.env[0].valueFrom.fieldRef.fieldPath", "metadata.name", "status.hostIP")),
		edgeBad("resourceFieldRef", env(corev1.EnvVar{Name: "CPUS", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu"}}}),
			forbidden("spec.container.env[0].valueFrom.resourceFieldRef", "secretKeyRef", "configMapKeyRef", "status.hostIP")),
		edgeBad("secret and configMap together", env(corev1.EnvVar{Name: "X", ValueFrom: &corev1.EnvVarSource{
			SecretKeyRef: secretRef("db", "password").SecretKeyRef, ConfigMapKeyRef: configMapRef("tuning", "x")}}),
			forbidden("spec.container.env[0].valueFrom.configMapKeyRef", "secretKeyRef")),
		edgeBad("empty valueFrom", env(corev1.EnvVar{Name: "X", ValueFrom: &corev1.EnvVarSource{}}),
			required("spec.container.env[0].valueFrom")),
		edgeBad("bad secret reference", env(corev1.EnvVar{Name: "X", ValueFrom: secretRef("DB", "pass word")}),
			invalid("spec.container.env[0].valueFrom.secretKeyRef.name", badString("DB")),
			invalid("spec.container.env[0].valueFrom.secretKeyRef.key", badString("pass word"))),
	})
}

func TestValidateEdgeVolumes(t *testing.T) {
	hostPath := func(name, mountPath, path string) infer.EdgeVolume {
		return infer.EdgeVolume{Name: name, MountPath: mountPath, HostPath: &corev1.HostPathVolumeSource{Path: path}}
	}
	cases := []edgeCase{
		edgeValid("below a system directory", volumes(emptyDirAt("a", "/etc/app"), emptyDirAt("b", "/var/lib/app"), emptyDirAt("c", "/usr/local/app"))),
		edgeValid("/var/dlog without an NPU", volumes(emptyDirAt("a", "/var/dlog"))),
		edgeBad("/var/dlog with an NPU", withNPU(volumes(emptyDirAt("a", "/var/dlog/"))),
			invalid("spec.container.volumes[0].mountPath", "/var/dlog", "NPU")),
		edgeBad("below /var/dlog with an NPU", withNPU(volumes(emptyDirAt("a", "/var/dlog/app"))),
			invalid("spec.container.volumes[0].mountPath", "/var/dlog/app")),
		edgeBad("duplicate name and mount path", volumes(emptyDirAt("a", "/data"), emptyDirAt("a", "/data/")),
			duplicate("spec.container.volumes[1].name", "a"), duplicate("spec.container.volumes[1].mountPath", "/data/")),
		edgeBad("relative mount path and host path", volumes(hostPath("a", "data", "var/data")),
			invalid("spec.container.volumes[0].mountPath", "absolute"), invalid("spec.container.volumes[0].hostPath.path", "absolute")),
		edgeBad("mount path with ..", volumes(emptyDirAt("a", "/data/../etc")),
			invalid("spec.container.volumes[0].mountPath", "'..'")),
		edgeBad("no source", volumes(infer.EdgeVolume{Name: "a", MountPath: "/data"}),
			required("spec.container.volumes[0]", "hostPath, emptyDir, configMap or secret")),
		edgeBad("two sources", volumes(func() infer.EdgeVolume {
			v := hostPath("a", "/data", "/srv/data")
			v.EmptyDir = &infer.EdgeEmptyDir{Medium: infer.EdgeStorageDisk}
			return v
		}()), forbidden("spec.container.volumes[0].emptyDir", "together with hostPath")),
		edgeBad("hostPath type", volumes(infer.EdgeVolume{Name: "a", MountPath: "/data", HostPath: &corev1.HostPathVolumeSource{Path: "/srv", Type: ptr.To(corev1.HostPathType("Folder"))}}),
			notSupported("spec.container.volumes[0].hostPath.type", "Folder", "Directory", "DirectoryOrCreate")),
		edgeBad("emptyDir on tape", volumes(infer.EdgeVolume{Name: "a", MountPath: "/data", EmptyDir: &infer.EdgeEmptyDir{Medium: "Tape", SizeLimit: quantity("0")}}),
			notSupported("spec.container.volumes[0].emptyDir.medium", "Tape", "Disk", "Memory"),
			invalid("spec.container.volumes[0].emptyDir.sizeLimit", "greater than zero")),
		edgeBad("configMap name, item path and mode", volumes(infer.EdgeVolume{Name: "a", MountPath: "/data", ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "Conf"}, DefaultMode: ptr.To[int32](0o1000),
			Items: []corev1.KeyToPath{{Key: "a", Path: "../a"}, {Key: "b"}}}}),
			invalid("spec.container.volumes[0].configMap.name", badString("Conf")),
			invalid("spec.container.volumes[0].configMap.defaultMode", "0777"),
			invalid("spec.container.volumes[0].configMap.items[0].path", "'..'"),
			required("spec.container.volumes[0].configMap.items[1].path")),
		edgeBad("secret without a name", volumes(infer.EdgeVolume{Name: "a", MountPath: "/data", Secret: &corev1.SecretVolumeSource{}}),
			invalid("spec.container.volumes[0].secret.secretName")),
	}
	// The documented list, written out so that a dropped entry fails.
	for _, dir := range []string{"/", "/bin", "/boot", "/etc", "/lib", "/lib64", "/proc", "/run", "/sbin", "/sys", "/usr", "/var", "/var/run", "/var/run/", "//etc"} {
		cases = append(cases, edgeBad("mount on "+dir, volumes(emptyDirAt("a", dir)),
			invalid("spec.container.volumes[0].mountPath", badString(dir), "system directory", "/var/run")))
	}
	runEdgeCases(t, cases)
}

func TestValidateEdgeProbes(t *testing.T) {
	liveness := func(p *infer.EdgeProbe) func(*infer.EdgeDeployment) {
		return container(func(c *infer.EdgeContainer) { c.LivenessProbe = p })
	}
	runEdgeCases(t, []edgeCase{
		edgeBad("no check", liveness(probe(infer.EdgeProbe{})), required("spec.container.livenessProbe", "httpGet or exec")),
		edgeBad("two checks", liveness(probe(infer.EdgeProbe{HTTPGet: httpGet("/", 80), Exec: &infer.EdgeExec{Command: []string{"true"}}})),
			forbidden("spec.container.livenessProbe.exec", "httpGet")),
		edgeBad("httpGet path, port and scheme", liveness(probe(infer.EdgeProbe{HTTPGet: &infer.EdgeHTTPGet{Path: "healthz", Port: 0, Scheme: "FTP"}})),
			invalid("spec.container.livenessProbe.httpGet.path", badString("healthz")),
			invalid("spec.container.livenessProbe.httpGet.port", badInt[int32](0), between(1, 65535)),
			notSupported("spec.container.livenessProbe.httpGet.scheme", "FTP", "HTTP", "HTTPS")),
		edgeBad("exec without a command", container(func(c *infer.EdgeContainer) {
			c.ReadinessProbe = probe(infer.EdgeProbe{Exec: &infer.EdgeExec{}})
		}), required("spec.container.readinessProbe.exec.command")),
		edgeBad("timings", liveness(probe(infer.EdgeProbe{HTTPGet: httpGet("/", 80), InitialDelaySeconds: -1,
			TimeoutSeconds: ptr.To[int32](0), PeriodSeconds: ptr.To[int32](3601), FailureThreshold: ptr.To[int32](101)})),
			invalid("spec.container.livenessProbe.initialDelaySeconds", badInt[int32](-1), between(0, 3600)),
			invalid("spec.container.livenessProbe.timeoutSeconds", badInt[int32](0), between(1, 600)),
			invalid("spec.container.livenessProbe.periodSeconds", badInt[int32](3601), between(1, 3600)),
			invalid("spec.container.livenessProbe.failureThreshold", badInt[int32](101), between(1, 100))),
	})
}

func TestValidateEdgeNetwork(t *testing.T) {
	runEdgeCases(t, []edgeCase{
		edgeValid("one port over TCP and UDP", ports(tcp(53, 53), infer.EdgePortMapping{ContainerPort: 53, HostPort: 53, Protocol: corev1.ProtocolUDP})),
		edgeBad("ports out of range", ports(tcp(0, 65536)),
			invalid("spec.network.ports[0].containerPort", badInt[int32](0), between(1, 65535)),
			invalid("spec.network.ports[0].hostPort", badInt[int32](65536), between(1, 65535))),
		edgeBad("SCTP", ports(infer.EdgePortMapping{ContainerPort: 80, HostPort: 80, Protocol: corev1.ProtocolSCTP}),
			notSupported("spec.network.ports[0].protocol", "SCTP", "TCP", "UDP")),
		edgeBad("IPv6 host IP", ports(infer.EdgePortMapping{ContainerPort: 80, HostPort: 80, Protocol: corev1.ProtocolTCP, HostIP: "fe80::1"}),
			invalid("spec.network.ports[0].hostIP", badString("fe80::1"), "IPv4")),
		edgeBad("duplicate container and host ports", ports(tcp(80, 8080), tcp(80, 8081), tcp(81, 8080)),
			duplicate("spec.network.ports[1].containerPort", "80/TCP"), duplicate("spec.network.ports[2].hostPort", "8080/TCP")),
	})
}

// update returns a copy of the valid EdgeDeployment with a change, as the
// new object of an update whose old object is the valid one.
func edgeUpdate(t *testing.T, mutate func(*infer.EdgeDeployment)) (newObj, oldObj *infer.EdgeDeployment) {
	oldObj = validEdge(t)
	oldObj.ResourceVersion = "1"
	newObj = oldObj.DeepCopy()
	mutate(newObj)
	return newObj, oldObj
}

func TestValidateEdgeUpdate(t *testing.T) {
	for _, tc := range []edgeCase{
		edgeValid("job control", func(e *infer.EdgeDeployment) {
			e.Spec.Stopped = true
			e.Spec.RetryGeneration = 3
			e.Spec.MaxConcurrentNodes = ptr.To[int32](5)
			e.Spec.TimeoutSeconds = ptr.To[int32](3600)
			e.Spec.Description = "now slower"
		}),
		// 250m and 0.25 are the same quantity: not a change.
		edgeValid("same quantity written differently", container(func(c *infer.EdgeContainer) { c.Resources.CPU = quantity("0.25") })),
		edgeBad("targets", spec(func(s *infer.EdgeDeploymentSpec) { s.Targets.Nodes = append(s.Targets.Nodes, "edge-3") }),
			forbidden("spec.targets", "immutable", "status.targets")),
		edgeBad("image", container(func(c *infer.EdgeContainer) { c.Image = "detector:1.3.0" }),
			forbidden("spec.container", "immutable", "create another EdgeDeployment")),
		edgeBad("every other template field", spec(func(s *infer.EdgeDeploymentSpec) {
			s.NamePrefix = "other"
			s.InstancesPerNode = ptr.To[int32](2)
			s.RestartPolicy = corev1.RestartPolicyNever
			s.HostPID = true
			s.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "pull"}}
			s.Network.HostNetwork = true
		}), forbidden("spec.namePrefix"), forbidden("spec.instancesPerNode"), forbidden("spec.restartPolicy"),
			forbidden("spec.hostPID"), forbidden("spec.imagePullSecrets"), forbidden("spec.network")),
		edgeBad("retryGeneration down", func(e *infer.EdgeDeployment) { e.Spec.RetryGeneration = -1 },
			invalid("spec.retryGeneration", "-1", "greater than or equal to 0"), invalid("spec.retryGeneration", "may not decrease (it was 0)")),
	} {
		t.Run(tc.name, func(t *testing.T) {
			newObj, oldObj := edgeUpdate(t, tc.mutate)
			expectErrors(t, ValidateEdgeDeploymentUpdate(newObj, oldObj), tc.want)
		})
	}
	t.Run("retryGeneration may not go back", func(t *testing.T) {
		oldObj := validEdge(t)
		oldObj.ResourceVersion = "1"
		oldObj.Spec.RetryGeneration = 4
		newObj := oldObj.DeepCopy()
		newObj.Spec.RetryGeneration = 3
		expectErrors(t, ValidateEdgeDeploymentUpdate(newObj, oldObj), []wantErr{invalid("spec.retryGeneration", "3", "(it was 4)")})
	})
}

// runningStatus is a consistent status of a job running on edge-1 and edge-2.
func runningStatus() infer.EdgeDeploymentStatus {
	now := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	return infer.EdgeDeploymentStatus{
		Phase: infer.EdgePhaseRunning, ObservedGeneration: 1, StartTime: &now,
		Targets: []string{"edge-1", "edge-2"}, Architecture: "arm64", Running: 1, Succeeded: 1,
		Nodes: []infer.EdgeNodeStatus{
			{Node: "edge-1", State: infer.EdgeNodeSucceeded, Pods: []string{"cameras-edge-1-0"}, Since: &now, Attempts: 1},
			{Node: "edge-2", State: infer.EdgeNodeDeploying, Reason: "ContainerCreating", Since: &now, Attempts: 1},
		},
		Conditions: []metav1.Condition{{Type: v1alpha1.EdgeConditionComplete, Status: metav1.ConditionFalse, Reason: "Running", LastTransitionTime: now}},
	}
}

func TestValidateEdgeStatusUpdate(t *testing.T) {
	status := func(f func(*infer.EdgeDeploymentStatus)) func(*infer.EdgeDeployment) {
		return func(e *infer.EdgeDeployment) { e.Status = runningStatus(); f(&e.Status) }
	}
	for _, tc := range []edgeCase{
		edgeValid("running", status(func(*infer.EdgeDeploymentStatus) {})),
		edgeBad("no phase", status(func(s *infer.EdgeDeploymentStatus) { s.Phase = "" }), required("status.phase", "Queued")),
		edgeBad("unknown phase and node state", status(func(s *infer.EdgeDeploymentStatus) {
			s.Phase = "Done"
			s.Nodes[1].State = "Pulling"
		}), notSupported("status.phase", "Done", "Queued", "Running", "Succeeded", "PartiallySucceeded", "Failed", "Stopping", "Stopped", "TimedOut"),
			notSupported("status.nodes[1].state", "Pulling", "Queued", "Deploying", "Succeeded", "Failed", "TimedOut", "Stopped")),
		edgeBad("nodes outside the targets, twice", status(func(s *infer.EdgeDeploymentStatus) {
			s.Nodes = append(s.Nodes, infer.EdgeNodeStatus{Node: "edge-9", State: infer.EdgeNodeQueued}, s.Nodes[0])
		}), invalid("status.nodes[2].node", "edge-9", "status.targets"), duplicate("status.nodes[3].node", "edge-1")),
		edgeBad("counts", status(func(s *infer.EdgeDeploymentStatus) { s.Failed, s.Queued = -1, 2 }),
			invalid("status.failed", "greater than or equal to 0"), invalid("status", "more than the 2 of status.targets")),
		edgeBad("a retry not asked for", status(func(s *infer.EdgeDeploymentStatus) {
			s.ObservedRetryGeneration = 1
			s.Nodes[0].RetryGeneration = 1
		}), invalid("status.observedRetryGeneration", "spec.retryGeneration (0)"), invalid("status.nodes[0].retryGeneration", "spec.retryGeneration (0)")),
		edgeBad("architecture and conditions", status(func(s *infer.EdgeDeploymentStatus) {
			s.Architecture = "arm 64"
			s.Conditions[0].Status = "Maybe"
		}), invalid("status.architecture", badString("arm 64")), notSupported("status.conditions[0].status", "Maybe", "True", "False", "Unknown")),
	} {
		t.Run(tc.name, func(t *testing.T) {
			newObj, oldObj := edgeUpdate(t, tc.mutate)
			oldObj.Status = infer.EdgeDeploymentStatus{Phase: infer.EdgePhaseQueued}
			expectErrors(t, ValidateEdgeDeploymentStatusUpdate(newObj, oldObj), tc.want)
		})
	}
	t.Run("targets are recorded once", func(t *testing.T) {
		newObj, oldObj := edgeUpdate(t, func(e *infer.EdgeDeployment) { e.Status = runningStatus() })
		oldObj.Status = runningStatus()
		newObj.Status.Targets = []string{"edge-1", "edge-2", "edge-3"}
		expectErrors(t, ValidateEdgeDeploymentStatusUpdate(newObj, oldObj), []wantErr{forbidden("status.targets", "recorded once")})
	})
}

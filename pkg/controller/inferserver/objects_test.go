package inferserver

import (
	"encoding/json"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
)

// defaulted returns an InferServer with the API's defaults applied.
func defaulted(mutate func(*v1alpha1.InferServer)) *v1alpha1.InferServer {
	s := &v1alpha1.InferServer{ObjectMeta: metav1.ObjectMeta{Name: "llama", Namespace: "ns", UID: "uid-1"}}
	if mutate != nil {
		mutate(s)
	}
	v1alpha1.SetObjectDefaults_InferServer(s)
	return s
}

func TestDeploymentCarriesTheSpec(t *testing.T) {
	s := defaulted(func(s *v1alpha1.InferServer) {
		s.Spec.Replicas = ptr.To[int32](3)
		s.Spec.Scheduler = v1alpha1.SchedulerVolcano
		s.Spec.TLS.Enabled = true
		s.Spec.Health.DetectInnerErrors = ptr.To(false)
		s.Spec.Resources.NPU.Count = ptr.To[int32](2)
		s.Spec.Resources.CPU = ptr.To(resource.MustParse("4"))
	})
	d := typed[appsv1.Deployment](t, deployment(s, "llama-abc"))
	if *d.Spec.Replicas != 3 || d.Spec.Selector.MatchLabels[v1alpha1.LabelServer] != "llama" {
		t.Errorf("replicas/selector: %+v", d.Spec)
	}
	if ref := d.OwnerReferences[0]; ref.Kind != "InferServer" || ref.UID != "uid-1" || !*ref.Controller {
		t.Errorf("owner: %+v", ref)
	}
	pod := d.Spec.Template
	if pod.Labels[v1alpha1.LabelRevision] != "llama-abc" || pod.Labels[v1alpha1.LabelMaster] != "true" ||
		pod.Labels["fault-scheduling"] != "grace" || pod.Labels["pod-rescheduling"] != "on" || pod.Labels["ring-controller.atlas"] != "ascend-910" {
		t.Errorf("pod labels: %v", pod.Labels)
	}
	if pod.Spec.SchedulerName != "volcano" || pod.Spec.NodeSelector["accelerator"] != "huawei-Ascend910" ||
		*pod.Spec.AutomountServiceAccountToken || *pod.Spec.TerminationGracePeriodSeconds != v1alpha1.DefaultTerminationGracePeriodSeconds {
		t.Errorf("pod spec: %+v", pod.Spec)
	}
	c := pod.Spec.Containers[0]
	npu := c.Resources.Requests["huawei.com/Ascend910"]
	cpuLimit := c.Resources.Limits[corev1.ResourceCPU]
	if npu.Value() != 2 || cpuLimit.String() != "8" {
		t.Errorf("resources: %+v", c.Resources)
	}
	if c.StartupProbe.HTTPGet.Path != "/v2/health/live" || c.StartupProbe.FailureThreshold != v1alpha1.DefaultStartupSeconds ||
		c.ReadinessProbe.HTTPGet.Path != "/v2/health/ready" || c.LivenessProbe.HTTPGet.Path != "/v2/health/live" ||
		c.ReadinessProbe.HTTPGet.Scheme != corev1.URISchemeHTTPS || c.LivenessProbe.PeriodSeconds != 3 || c.ReadinessProbe.PeriodSeconds != 5 {
		t.Errorf("probes: startup %+v readiness %+v liveness %+v", c.StartupProbe, c.ReadinessProbe, c.LivenessProbe)
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	if env["MINDIE_USE_HTTPS"].Value != "true" || env["ASCEND_VISIBLE_DEVICES"].ValueFrom == nil ||
		env["MIES_CONFIG_JSON_PATH"].Value != v1alpha1.DefaultConfigPath || env["HOST_IP"].ValueFrom.FieldRef.FieldPath != "status.hostIP" {
		t.Errorf("env: %+v", c.Env)
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m
	}
	if !mounts[volumeModel].ReadOnly || mounts[volumeWritable].ReadOnly || mounts[volumeSharedMemory].MountPath != "/dev/shm" ||
		mounts[volumeConfig].MountPath != v1alpha1.DefaultConfigPath {
		t.Errorf("mounts: %+v", c.VolumeMounts)
	}
}

func TestDetectInnerErrorsProbesTimedHealth(t *testing.T) {
	s := defaulted(func(s *v1alpha1.InferServer) {
		s.Spec.Health.Readiness.TimeoutSeconds = ptr.To[int32](7)
		s.Spec.Health.Liveness.TimeoutSeconds = ptr.To[int32](9)
	})
	_, ra, la := probes(s)
	r, l := typed[corev1.Probe](t, ra), typed[corev1.Probe](t, la)
	if r.HTTPGet.Path != "/health/timed-7" || r.TimeoutSeconds != 7 || l.HTTPGet.Path != "/health/timed-9" || l.TimeoutSeconds != 9 {
		t.Errorf("readiness %+v liveness %+v", r, l)
	}
}

func TestCrossNodePod(t *testing.T) {
	s := defaulted(func(s *v1alpha1.InferServer) {
		s.Spec.NodesPerInstance = ptr.To[int32](2)
		s.Spec.FaultRescheduling = v1alpha1.FaultReschedulingOff
	})
	p0, p1 := crossNodePod(s, "rev", "llama-3", 0), crossNodePod(s, "rev", "llama-3", 1)
	if p0.Name != "llama-3-0" || p1.Name != "llama-3-1" || p0.Labels[v1alpha1.LabelMaster] != "true" || p1.Labels[v1alpha1.LabelMaster] != "" ||
		p1.Labels[v1alpha1.LabelRank] != "1" || p0.Labels[v1alpha1.LabelInstance] != "llama-3" || p0.Labels["fault-scheduling"] != "" {
		t.Errorf("labels: %v / %v", p0.Labels, p1.Labels)
	}
	if p0.Spec.RestartPolicy != corev1.RestartPolicyNever || *p0.Spec.SecurityContext.FSGroup != crossNodeFSGroup {
		t.Errorf("restart policy %s", p0.Spec.RestartPolicy)
	}
	terms := p0.Spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution
	if len(terms) != 1 || terms[0].TopologyKey != hostnameTopologyKey || terms[0].LabelSelector.MatchLabels[v1alpha1.LabelInstance] != "llama-3" {
		t.Errorf("anti-affinity: %+v", terms)
	}
	cmd := strings.Join(p0.Spec.Containers[0].Command, " ")
	if !strings.Contains(cmd, `"status": *"completed"`) || !strings.HasSuffix(cmd, v1alpha1.DefaultRunScriptPath) {
		t.Errorf("command does not wait for the ranktable: %s", cmd)
	}
	var vol *corev1.Volume
	for i := range p0.Spec.Volumes {
		if p0.Spec.Volumes[i].Name == volumeRanktable {
			vol = &p0.Spec.Volumes[i]
		}
	}
	if vol == nil || vol.ConfigMap.Name != "rings-config-llama-3" || *vol.ConfigMap.DefaultMode != 0o640 {
		t.Errorf("ranktable volume: %+v", vol)
	}
	if got := crossNodeCommand([]string{"/opt/start", "--x"}); got[len(got)-2] != "/opt/start" || got[3] != "--" {
		t.Errorf("custom command wrapped as %q", got)
	}
}

func TestResolveBounds(t *testing.T) {
	for _, tc := range []struct {
		replicas            int32
		surge, unavail      intstr.IntOrString
		wantSurge, wantUnav int32
	}{
		{replicas: 4, surge: intstr.FromString("50%"), unavail: intstr.FromString("50%"), wantSurge: 2, wantUnav: 2},
		{replicas: 3, surge: intstr.FromString("50%"), unavail: intstr.FromString("50%"), wantSurge: 2, wantUnav: 1},
		// Both round to 0: one instance may be unavailable, as with Deployments.
		{replicas: 10, surge: intstr.FromInt32(0), unavail: intstr.FromString("1%"), wantSurge: 0, wantUnav: 1},
		{replicas: 2, surge: intstr.FromInt32(1), unavail: intstr.FromInt32(5), wantSurge: 1, wantUnav: 2},
	} {
		s := defaulted(func(s *v1alpha1.InferServer) {
			s.Spec.Replicas = ptr.To(tc.replicas)
			s.Spec.Strategy.RollingUpdate = &v1alpha1.RollingUpdateInferServer{MaxSurge: &tc.surge, MaxUnavailable: &tc.unavail}
		})
		surge, unav, err := resolveBounds(s)
		if err != nil || surge != tc.wantSurge || unav != tc.wantUnav {
			t.Errorf("replicas %d surge %s unavailable %s: got %d/%d %v, want %d/%d", tc.replicas, tc.surge.String(), tc.unavail.String(), surge, unav, err, tc.wantSurge, tc.wantUnav)
		}
	}
	s := defaulted(func(s *v1alpha1.InferServer) {
		s.Spec.Replicas = ptr.To[int32](3)
		s.Spec.Strategy.Type = v1alpha1.RecreateInferServerStrategyType
	})
	if surge, unav, _ := resolveBounds(s); surge != 0 || unav != 3 {
		t.Errorf("Recreate: %d/%d", surge, unav)
	}
}

func TestPickForDeletion(t *testing.T) {
	ins := []instanceView{{name: "a", index: 0, ready: true}, {name: "b", index: 1, ready: false}, {name: "c", index: 2, ready: true}}
	got := pickForDeletion(ins, 2)
	if len(got) != 2 || got[0].name != "b" || got[1].name != "c" {
		t.Errorf("picked %v %v, want the unready b then the highest index c", got[0].name, got[1].name)
	}
	if pickForDeletion(ins, 0) != nil || len(pickForDeletion(ins, 9)) != 3 {
		t.Error("bounds")
	}
}

func TestBuildRanktable(t *testing.T) {
	s := defaulted(func(s *v1alpha1.InferServer) { s.Spec.NodesPerInstance = ptr.To[int32](2) })
	pod := func(name, ip, host, chips, devs string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{"huawei.com/Ascend910": chips, "ascend.kubectl.kubernetes.io/ascend-910-configuration": devs}},
			Status:     corev1.PodStatus{PodIP: ip, HostIP: host},
		}
	}
	pods := []*corev1.Pod{
		pod("a-0", "127.1.0.1", "127.0.0.1", "Ascend910-1,Ascend910-0", `{"devices":[{"device_id":"0","device_ip":"127.9.0.0"},{"device_id":"1","device_ip":"127.9.0.1"}]}`),
		pod("a-1", "127.1.0.2", "127.0.0.2", "Ascend910-0,Ascend910-1", ``),
	}
	rt, err := buildRanktable(s, pods)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(rt)
	want := `{"status":"completed","version":"1.0","server_count":"2","server_list":[` +
		`{"server_id":"127.0.0.1","host_ip":"127.0.0.1","container_ip":"127.1.0.1","device":[{"device_id":"0","device_ip":"127.9.0.0","rank_id":"0"},{"device_id":"1","device_ip":"127.9.0.1","rank_id":"1"}]},` +
		`{"server_id":"127.0.0.2","host_ip":"127.0.0.2","container_ip":"127.1.0.2","device":[{"device_id":"0","rank_id":"2"},{"device_id":"1","rank_id":"3"}]}]}`
	if string(data) != want {
		t.Errorf("ranktable\n got %s\nwant %s", data, want)
	}
	pods[1].Status.PodIP = ""
	if _, err := buildRanktable(s, pods); err == nil || !strings.Contains(err.Error(), "a-1 has no IP") {
		t.Errorf("a pod without IP: %v", err)
	}
}

// TestDesiredComparesAsExtracted: the desired apply configuration, read
// back as an extraction reads it (from JSON), compares equal, and a field
// taken over by someone else or a changed value does not.
func TestDesiredComparesAsExtracted(t *testing.T) {
	s := defaulted(nil)
	d := deployment(s, "llama-abc")
	roundTrip := func() *appsv1ac.DeploymentApplyConfiguration {
		data, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		var ac appsv1ac.DeploymentApplyConfiguration
		if err := json.Unmarshal(data, &ac); err != nil {
			t.Fatal(err)
		}
		return &ac
	}
	if ac := roundTrip(); !equality.Semantic.DeepEqual(ac, d) {
		t.Error("an identical apply configuration compares unequal")
	}
	ac := roundTrip()
	ac.Spec.Template.Spec.Containers[0].Image = nil // owned by a hand edit now
	if equality.Semantic.DeepEqual(ac, d) {
		t.Error("a field lost to another manager compares equal")
	}
	ac = roundTrip()
	ac.Spec.Replicas = ptr.To[int32](9)
	if equality.Semantic.DeepEqual(ac, d) {
		t.Error("a changed replica count compares equal")
	}
}

// typed reads an apply configuration as the object it configures.
func typed[T any](t *testing.T, ac any) T {
	t.Helper()
	var out T
	data, err := json.Marshal(ac)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestStatusEqualIgnoresTimes(t *testing.T) {
	a := &v1alpha1.InferServerStatus{Conditions: []metav1.Condition{{Type: "Available", Status: "True", LastTransitionTime: metav1.Unix(1, 0)}},
		Model: &v1alpha1.ModelInfo{Version: "1", LastUpdateTime: ptr.To(metav1.Unix(1, 0))}}
	b := a.DeepCopy()
	b.Conditions[0].LastTransitionTime = metav1.Unix(2, 0)
	b.Model.LastUpdateTime = ptr.To(metav1.Unix(5, 0))
	if !statusEqual(a, b) {
		t.Error("statuses differing only in times are not equal")
	}
	b.Model.Version = "2"
	if statusEqual(a, b) {
		t.Error("a different model version is equal")
	}
}

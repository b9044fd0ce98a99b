package edge

import (
	"os"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"

	"mindie.io/deployer/apis/infer"
	"mindie.io/deployer/apis/infer/install"
	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/apis/infer/validation"
	"mindie.io/deployer/pkg/registry/infer/edgedeployment"
)

const sample = "../../../artifacts/samples/edge.yaml"

// TestSample checks that the sample make run applies is what it says: one
// EdgeDeployment the API server accepts without a warning, to the arm64
// edge nodes only (the simulated ones have two architectures), one node at
// a time, one instance per node, ready when its HTTP probe on a mapped port
// answers, with the node's address in its environment.
func TestSample(t *testing.T) {
	data, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := decodeEdgeDeployments(sample, data)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 1 {
		t.Fatalf("%s holds %d EdgeDeployments, want 1", sample, len(jobs))
	}
	e := jobs[0]
	v1alpha1.SetObjectDefaults_EdgeDeployment(e)

	scheme := runtime.NewScheme()
	install.Install(scheme)
	var internal infer.EdgeDeployment
	if err := scheme.Convert(e, &internal, nil); err != nil {
		t.Fatal(err)
	}
	if errs := validation.ValidateEdgeDeployment(&internal); len(errs) > 0 {
		t.Errorf("%s is invalid: %v", sample, errs.ToAggregate())
	}
	if w := edgedeployment.NewStrategy(scheme).WarningsOnCreate(t.Context(), &internal); len(w) > 0 {
		t.Errorf("%s draws warnings: %q", sample, w)
	}

	s := e.Spec
	sel := s.Targets.Selector
	if sel == nil || sel.MatchLabels["mindie.io/edge"] != "true" || sel.MatchLabels["kubernetes.io/arch"] != "arm64" || len(s.Targets.Nodes) > 0 {
		t.Errorf("targets %+v: want the edge nodes of one architecture, arm64, by label", s.Targets)
	}
	if *s.MaxConcurrentNodes != 1 || *s.InstancesPerNode != 1 {
		t.Errorf("maxConcurrentNodes %d, instancesPerNode %d: want 1 and 1", *s.MaxConcurrentNodes, *s.InstancesPerNode)
	}
	if s.Stopped || s.RetryGeneration != 0 {
		t.Errorf("the sample sets stopped or retryGeneration, which make run would reset on every run")
	}
	if s.Container.Resources.NPU != nil {
		t.Errorf("the sample asks for an NPU, which edge-1 has not")
	}
	probe := s.Container.ReadinessProbe
	if probe == nil || probe.HTTPGet == nil || len(s.Network.Ports) == 0 || probe.HTTPGet.Port != s.Network.Ports[0].ContainerPort {
		t.Errorf("readiness probe %+v, ports %+v: want an HTTP probe on the mapped container port", probe, s.Network.Ports)
	}
	hostIP := false
	for _, env := range s.Container.Env {
		if env.ValueFrom != nil && env.ValueFrom.FieldRef != nil && env.ValueFrom.FieldRef.FieldPath == "status.hostIP" {
			hostIP = true
		}
	}
	if !hostIP {
		t.Errorf("no environment variable from status.hostIP")
	}
}

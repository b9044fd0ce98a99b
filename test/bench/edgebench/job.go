package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/controller/edgedeployment"
	"mindie.io/deployer/pkg/simulator/kubelet"
)

// The job every run creates, and what marks the pods of its baseline.
const (
	jobName = "edge-bench"
	// appImage is not a MindIE image, so ascend-sim runs a generic app
	// for it: it serves its declared ports and answers the probes.
	appImage = "example/edge-app:1.0"
	// appPort is the app's container port, probed for readiness;
	// appHostPort maps it on the node (an edge app's way to be reached,
	// and how a container port is declared in an EdgeDeployment).
	appPort     = 8080
	appHostPort = 18080
	// readinessPeriodSeconds: probed every second, so that Ready comes
	// soon after the app listens and means it answered.
	readinessPeriodSeconds = 1
	// benchLabel marks the directly created pods, in place of the job's
	// labels: the controller watches pods by its own label only.
	benchLabel      = "mindie.io/edge-bench"
	benchLabelValue = "direct"
)

// newJob is the EdgeDeployment of a run: the app on every edge node
// (kubelet.EdgeLabel=true), maxConcurrent nodes at a time, one instance
// each, ready once GET / on its port answers. spec.timeoutSeconds is the
// benchmark's timeout, so that a slow job ends TimedOut rather than
// waiting for IEF's default ten minutes.
func newJob(namespace string, maxConcurrent int, timeoutSeconds int32) *v1alpha1.EdgeDeployment {
	return &v1alpha1.EdgeDeployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.SchemeGroupVersion.String(), Kind: "EdgeDeployment"},
		ObjectMeta: metav1.ObjectMeta{Name: jobName, Namespace: namespace},
		Spec: v1alpha1.EdgeDeploymentSpec{
			Description: "test/bench/edgebench: the app on every simulated edge node",
			Targets:     v1alpha1.EdgeTargets{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{kubelet.EdgeLabel: "true"}}},
			Container: v1alpha1.EdgeContainer{
				Image: appImage,
				ReadinessProbe: &v1alpha1.EdgeProbe{
					HTTPGet:       &v1alpha1.EdgeHTTPGet{Port: appPort},
					PeriodSeconds: ptr.To(int32(readinessPeriodSeconds)),
				},
			},
			Network:            v1alpha1.EdgeNetwork{Ports: []v1alpha1.EdgePortMapping{{ContainerPort: appPort, HostPort: appHostPort}}},
			MaxConcurrentNodes: ptr.To(int32(maxConcurrent)),
			TimeoutSeconds:     ptr.To(timeoutSeconds),
		},
	}
}

// jobYAML is the job as its author would write it: metadata and spec,
// before defaulting.
func jobYAML(e *v1alpha1.EdgeDeployment) (string, error) {
	data, err := yaml.Marshal(map[string]any{
		"apiVersion": e.APIVersion, "kind": e.Kind,
		"metadata": map[string]string{"name": e.Name, "namespace": e.Namespace},
		"spec":     e.Spec,
	})
	if err != nil {
		return "", fmt.Errorf("the job as YAML: %w", err)
	}
	return string(data), nil
}

// defaulted is a copy of the job with the defaults the API server
// applies.
func defaulted(job *v1alpha1.EdgeDeployment) *v1alpha1.EdgeDeployment {
	e := job.DeepCopy()
	v1alpha1.SetObjectDefaults_EdgeDeployment(e)
	return e
}

// instancesPerNode is the job's spec.instancesPerNode, defaulted.
func instancesPerNode(job *v1alpha1.EdgeDeployment) int {
	return int(*defaulted(job).Spec.InstancesPerNode)
}

// directPods are the pods the job's controller would create on nodes,
// made by the controller's own edgedeployment.Pod from a copy of the job
// defaulted as the API server defaults it, in namespace: without the
// owner reference to the job and with benchLabel in place of the job's
// labels, so that neither the controller nor the garbage collector
// touches them.
func directPods(job *v1alpha1.EdgeDeployment, nodes []string, namespace string) []*corev1.Pod {
	e := defaulted(job)
	var out []*corev1.Pod
	for _, node := range nodes {
		for i := range int(*e.Spec.InstancesPerNode) {
			p := edgedeployment.Pod(e, node, i)
			p.Namespace = namespace
			p.OwnerReferences = nil
			p.Labels = map[string]string{benchLabel: benchLabelValue}
			out = append(out, p)
		}
	}
	return out
}

// auditEvent is what countStatusWrites reads of a line of the audit log.
type auditEvent struct {
	Verb      string `json:"verb"`
	Stage     string `json:"stage"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
}

// statusWrites counts the writes of a job's status in an audit log of
// JSON lines (mindie-apiserver's: --audit-log-format=json, Metadata level
// for every write to infer.mindie.io): all of them, and those refused for
// a conflict (a stale copy written).
func statusWrites(r io.Reader, namespace, name string) (writes, conflicts int, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		var ev auditEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return 0, 0, fmt.Errorf("audit log: %w", err)
		}
		o := ev.ObjectRef
		if ev.Stage != "ResponseComplete" || (ev.Verb != "update" && ev.Verb != "patch") || o == nil ||
			o.Resource != "edgedeployments" || o.Subresource != "status" || o.Namespace != namespace || o.Name != name {
			continue
		}
		writes++
		if ev.ResponseStatus != nil && ev.ResponseStatus.Code == 409 {
			conflicts++
		}
	}
	return writes, conflicts, sc.Err()
}

// countStatusWrites is statusWrites of the audit log at path.
func countStatusWrites(path, namespace, name string) (writes, conflicts int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = f.Close() }()
	return statusWrites(f, namespace, name)
}

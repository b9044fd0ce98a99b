// Package legacy converts the original MindIE Motor deployer's
// infer_server.json into an InferServer (infer.mindie.io/v1alpha1), for
// `kubectl mindie create -f infer_server.json` and `kubectl mindie convert`.
//
// Convert accepts exactly the files the original ms_server accepted (the
// same keys, JSON types, inclusive ranges and single-node / cross-node
// differences; unknown keys ignored), except where Kubernetes or the
// InferServer API cannot represent what the original allowed: then the
// error says why and suggests a value. docs/legacy-mapping.md lists the rules.
package legacy

import (
	"bytes"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
)

const (
	// AnnotationConvertedFrom marks an InferServer made by Convert.
	AnnotationConvertedFrom = "infer.mindie.io/converted-from"
	// ConvertedFromLegacyFile is the value of AnnotationConvertedFrom.
	ConvertedFromLegacyFile = "infer_server.json"
)

// IsLegacy reports whether data looks like an infer_server.json: a JSON
// object without the "apiVersion" and "kind" of a Kubernetes manifest that
// has at least two of the legacy file's own top-level keys ("server_name",
// "server_type", "resource_requests", "mindie_server_config"). Two, not one
// named key, so that a legacy file missing "server_name" is still recognised
// and Convert can say that server_name is required. Only the top-level keys
// before a JSON syntax error count, so that a legacy file with a typo is still
// recognised (and Convert can say where the typo is), while YAML is not.
func IsLegacy(data []byte) bool {
	keys := topLevelKeys(bytes.TrimPrefix(data, utf8BOM))
	if keys == nil || keys["apiVersion"] || keys["kind"] {
		return false
	}
	found := 0
	for _, k := range []string{"server_name", "server_type", keyResources, keyServerConfig} {
		if keys[k] {
			found++
		}
	}
	return found >= 2
}

// topLevelKeys returns the keys of the JSON object data, as far as the
// object reads without a syntax error; nil when data is not a JSON object.
func topLevelKeys(data []byte) map[string]bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil
	}
	keys := map[string]bool{}
	depth := 1 // the top-level object is open
	expectKey := true
	for depth > 0 {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		if depth == 1 && expectKey {
			if key, ok := tok.(string); ok {
				keys[key] = true
				expectKey = false
				continue
			}
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 1 {
			// A top-level value just ended; a key comes next.
			expectKey = true
		}
	}
	return keys
}

// Convert parses and validates an infer_server.json and returns the
// InferServer it describes, in namespace (the original always used "mindie").
// Every key the file gave is set explicitly; the rest is left to the API's
// defaulting. The error, an *InvalidFileError, lists every problem at once.
func Convert(data []byte, namespace string) (*v1alpha1.InferServer, error) {
	obj, fe := parseJSON(data)
	if fe != nil {
		return nil, &InvalidFileError{errs: []FieldError{*fe}}
	}
	f, errs := validate(obj)
	if len(errs) > 0 {
		return nil, &InvalidFileError{errs: errs}
	}
	return f.inferServer(namespace), nil
}

func (f *legacyFile) inferServer(namespace string) *v1alpha1.InferServer {
	s := &v1alpha1.InferServer{
		TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.SchemeGroupVersion.String(), Kind: "InferServer"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        f.name,
			Namespace:   namespace,
			Annotations: map[string]string{AnnotationConvertedFrom: ConvertedFromLegacyFile},
		},
	}
	spec := &s.Spec
	spec.Replicas = ptr.To(int32(f.replicas))
	spec.NodesPerInstance = ptr.To(int32(1))
	if f.crossNode {
		spec.NodesPerInstance = ptr.To(int32(f.crossNodeNum))
	}
	spec.InstallPath = f.installPath
	spec.Resources = v1alpha1.InferResources{
		CPU:    ptr.To(resource.MustParse(fmt.Sprintf("%dm", f.cpuMillicores))),
		Memory: ptr.To(resource.MustParse(fmt.Sprintf("%dMi", f.memoryMiB))),
		NPU:    v1alpha1.NPURequest{Type: v1alpha1.NPUType(f.npuType), Count: ptr.To(int32(f.npuCount))},
	}
	spec.Ports = v1alpha1.InferPorts{Inference: ptr.To(int32(f.inferPort)), Management: ptr.To(int32(f.managementPort))}
	spec.TLS.Enabled = f.enableTLS
	spec.Service = v1alpha1.InferServiceExposure{Type: corev1.ServiceTypeNodePort, NodePort: int32(f.servicePort)}
	spec.Health = v1alpha1.HealthSpec{
		StartupSeconds:    ptr.To(int32(f.initDelay)),
		DetectInnerErrors: ptr.To(f.detectInnerError),
		Liveness: v1alpha1.ProbeSpec{
			TimeoutSeconds:   ptr.To(int32(f.livenessTimeout)),
			FailureThreshold: ptr.To(int32(f.livenessFailureThreshold)),
		},
		Readiness: v1alpha1.ProbeSpec{
			TimeoutSeconds:   ptr.To(int32(f.readinessTimeout)),
			FailureThreshold: ptr.To(int32(f.readinessFailureThreshold)),
		},
	}
	spec.Scheduler = v1alpha1.SchedulerType(f.scheduler)
	if f.crossNode {
		// The original cross-node code never read npu_fault_reschedule,
		// termination_grace_period_seconds, max_surge or max_unavailable.
		return s
	}
	spec.FaultRescheduling = v1alpha1.FaultReschedulingOff
	if f.npuFaultReschedule {
		spec.FaultRescheduling = v1alpha1.FaultReschedulingGrace
	}
	spec.TerminationGracePeriodSeconds = ptr.To(f.terminationGracePeriod)
	spec.Strategy = v1alpha1.InferServerStrategy{
		Type: v1alpha1.RollingUpdateInferServerStrategyType,
		RollingUpdate: &v1alpha1.RollingUpdateInferServer{
			MaxUnavailable: ptr.To(intstr.FromString(f.maxUnavailable)),
			MaxSurge:       ptr.To(intstr.FromString(f.maxSurge)),
		},
	}
	return s
}

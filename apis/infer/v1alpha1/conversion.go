package v1alpha1

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
)

// Field selectors served for InferServers besides metadata.name and metadata.namespace.
const (
	FieldSelectorScheduler        = "spec.scheduler"
	FieldSelectorNPUType          = "spec.resources.npu.type"
	FieldSelectorNodesPerInstance = "spec.nodesPerInstance"
)

func addFieldLabelConversionFuncs(scheme *runtime.Scheme) error {
	return scheme.AddFieldLabelConversionFunc(SchemeGroupVersion.WithKind("InferServer"),
		func(label, value string) (string, string, error) {
			switch label {
			case "metadata.name", "metadata.namespace",
				FieldSelectorScheduler, FieldSelectorNPUType, FieldSelectorNodesPerInstance:
				return label, value, nil
			default:
				return "", "", fmt.Errorf("field label %q is not supported for InferServer: use one of metadata.name, metadata.namespace, %s, %s, %s",
					label, FieldSelectorScheduler, FieldSelectorNPUType, FieldSelectorNodesPerInstance)
			}
		})
}

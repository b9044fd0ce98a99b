// +k8s:deepcopy-gen=package
// +k8s:conversion-gen=mindie.io/deployer/apis/infer
// +k8s:defaulter-gen=TypeMeta
// +k8s:openapi-gen=true
// +k8s:openapi-model-package=io.mindie.deployer.apis.infer.v1alpha1
// +groupName=infer.mindie.io

// Package v1alpha1 is the first served version of the infer.mindie.io API:
// InferServer, a set of MindIE Server inference instances.
package v1alpha1

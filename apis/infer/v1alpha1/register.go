package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupName is the API group served by mindie-apiserver.
const GroupName = "infer.mindie.io"

// SchemeGroupVersion is this version of the group.
var SchemeGroupVersion = schema.GroupVersion{Group: GroupName, Version: "v1alpha1"}

// Resource takes an unqualified resource and returns a group-qualified GroupResource.
func Resource(resource string) schema.GroupResource {
	return SchemeGroupVersion.WithResource(resource).GroupResource()
}

var (
	// SchemeBuilder registers this version's types, defaults, conversions and field labels.
	SchemeBuilder      runtime.SchemeBuilder
	localSchemeBuilder = &SchemeBuilder
	// AddToScheme adds this version to a scheme.
	AddToScheme = localSchemeBuilder.AddToScheme
)

func init() {
	// The generated defaulters and conversions register themselves on
	// localSchemeBuilder from their own init functions.
	localSchemeBuilder.Register(addKnownTypes, addDefaultingFuncs, addFieldLabelConversionFuncs)
}

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(SchemeGroupVersion, &InferServer{}, &InferServerList{}, &EdgeDeployment{}, &EdgeDeploymentList{})
	metav1.AddToGroupVersion(scheme, SchemeGroupVersion)
	return nil
}

// LabelServer is set on every object the controller makes for an
// InferServer, with the InferServer's name as its value; the pods' label
// selector (status.selector, the scale subresource) is built on it.
const LabelServer = "infer.mindie.io/server"

// Labels and annotations the controller puts on the objects it makes.
const (
	// LabelRevision is the ControllerRevision (by name) a pod was made from.
	LabelRevision = "infer.mindie.io/revision"
	// LabelInstance is the instance a pod belongs to. Cross-node pods carry
	// it from creation; a single-node instance is one pod, named like it.
	LabelInstance = "infer.mindie.io/instance"
	// LabelRank is the position ("0", "1", ...) of a cross-node pod in its
	// instance; rank 0 is the master.
	LabelRank = "infer.mindie.io/rank"
	// LabelMaster is "true" on the pod that serves an instance (every
	// single-node pod, rank 0 of a cross-node instance); the InferServer's
	// Service selects it.
	LabelMaster = "infer.mindie.io/master"
	// LabelRole is the role of the pods of a Prefill/Decode server's
	// member: "prefill" or "decode" (RoleName).
	LabelRole = "infer.mindie.io/role"
	// LabelGroup is the group (a decimal number) of a Prefill/Decode
	// server's pod: a prefill member is linked only with the decode members
	// of its group, which run the same revision.
	LabelGroup = "infer.mindie.io/group"
	// LabelMember is the member of its group a Prefill/Decode pod belongs
	// to: "p<i>" for the i-th prefill instance, "d<i>" for the i-th decode.
	LabelMember = "infer.mindie.io/member"
	// AnnotationPDID is the decimal MindIE instance id the controller
	// assigns to a Prefill/Decode member (the role API's local.id), which
	// its peers' linkStatus names.
	AnnotationPDID = "infer.mindie.io/pd-id"
	// LabelRouter is on the router pods of an InferServer (spec.router),
	// with the server's name as value. They do not carry LabelServer, which
	// selects instances.
	LabelRouter = "infer.mindie.io/router"
	// LabelNamespace is on the cluster-scoped objects the controller makes
	// for an InferServer (the router's ClusterRoleBinding): the server's
	// namespace, as LabelServer holds its name.
	LabelNamespace = "infer.mindie.io/namespace"
	// RouterNameSuffix makes the names of the router's Deployment,
	// ServiceAccount, Role and RoleBinding from the server's name.
	RouterNameSuffix = "-router"
	// GlobalRanktableSuffix makes the name of a Prefill/Decode server's
	// global ranktable ConfigMap from the server's name (see
	// GlobalRanktableName).
	GlobalRanktableSuffix = "-global-ranktable"
	// GlobalRanktableKey is the key of the global ranktable in its
	// ConfigMap: MindIE's global_ranktable.json, {"version", "status":
	// "initializing" or "completed", "server_group_list"}.
	GlobalRanktableKey = "global_ranktable.json"
	// AnnotationRestartedAt, set in spec.podMetadata.annotations to a
	// timestamp, restarts every instance through a rollout (the original
	// deployer's "update"); kubectl uses the same key for Deployments.
	AnnotationRestartedAt = "kubectl.kubernetes.io/restartedAt"
	// AnnotationChangeCause is copied from an InferServer to the revision
	// made from it and shown by rollout history.
	AnnotationChangeCause = "kubernetes.io/change-cause"
	// FinalizerCleanup makes the controller delete every child of an
	// InferServer before the InferServer goes away, so cleanup does not
	// depend on the garbage collector reaching this aggregated API.
	FinalizerCleanup = "infer.mindie.io/cleanup"
	// FinalizerEdgeCleanup holds a deleted EdgeDeployment until the
	// controller has deleted its pods.
	FinalizerEdgeCleanup = "infer.mindie.io/edge-cleanup"
)

// GlobalRanktableName is the ConfigMap in which the controller keeps the
// global ranktable of a Prefill/Decode server, in MindIE's format: its
// router pods as Coordinators and one server group per member of every
// group, with their pods and NPUs.
func GlobalRanktableName(server string) string { return server + GlobalRanktableSuffix }

package inferserver

import (
	appsv1 "k8s.io/api/apps/v1"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/revision"
)

// FirstChildren are the objects the controller writes on the first sync of
// a single-node InferServer s (defaulted, with its UID): its first
// ControllerRevision (created), and its Deployment and Service (apply
// configurations, written with server-side apply as FieldManager, with
// Force). test/bench/reconcile writes the same objects directly as the
// baseline of the reconcile benchmark.
func FirstChildren(s *v1alpha1.InferServer) (*appsv1.ControllerRevision, *appsv1ac.DeploymentApplyConfiguration, *corev1ac.ServiceApplyConfiguration, error) {
	rev, err := revision.New(s, 1, 0)
	if err != nil {
		return nil, nil, nil, err
	}
	return rev, deployment(s, rev.Name), service(s), nil
}

package e2e

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestDeployManifestsApply checks that the manifests for a real cluster
// (artifacts/deploy) build with kustomize and are accepted by a real
// kube-apiserver: a server-side dry run validates every object, the
// Deployment, PodDisruptionBudget, APIService, RBAC and flow control
// objects included, without changing the cluster.
func TestDeployManifestsApply(t *testing.T) {
	dir := filepath.Join(cluster.root, "artifacts", "deploy")
	built := mustKubectl(t, "", "kustomize", dir)
	for _, kind := range []string{
		"kind: Namespace", "kind: ServiceAccount", "kind: Deployment", "kind: PodDisruptionBudget",
		"kind: Service", "kind: APIService", "kind: ClusterRole", "kind: ClusterRoleBinding", "kind: RoleBinding",
		"kind: FlowSchema", "kind: PriorityLevelConfiguration", "kind: ConfigMap", "kind: StatefulSet",
	} {
		if !strings.Contains(built, kind) {
			t.Errorf("kustomize build of artifacts/deploy has no %s", kind)
		}
	}
	for _, want := range []string{"system:auth-delegator", "extension-apiserver-authentication-reader",
		"rbac.authorization.k8s.io/aggregate-to-edit", "rbac.authorization.k8s.io/aggregate-to-view", "path: /readyz", "path: /livez",
		// The runtime collects against the container's memory limit.
		"name: GOMEMLIMIT", "resource: limits.memory"} {
		if !strings.Contains(built, want) {
			t.Errorf("kustomize build of artifacts/deploy does not mention %s", want)
		}
	}
	out := mustKubectl(t, "", "apply", "-k", dir, "--server-side", "--dry-run=server", "--field-manager=e2e-dry-run", "--force-conflicts")
	for _, obj := range []string{"deployment.apps/mindie-apiserver", "poddisruptionbudget.policy/mindie-apiserver",
		"apiservice.apiregistration.k8s.io/v1alpha1.infer.mindie.io", "flowschema.flowcontrol.apiserver.k8s.io/mindie-apiserver"} {
		if !strings.Contains(out, obj) {
			t.Errorf("dry-run apply did not report %s:\n%s", obj, out)
		}
	}
}

// TestExternalControllersManifestsApply checks the overlay that runs the
// controllers as mindie-controller: mindie-apiserver gets
// --external-controllers, and the server-side dry run accepts both
// Deployments.
func TestExternalControllersManifestsApply(t *testing.T) {
	dir := filepath.Join(cluster.root, "artifacts", "deploy-external-controllers")
	built := mustKubectl(t, "", "kustomize", dir)
	for _, want := range []string{"- --external-controllers", "name: mindie-controller", "image: mindie-controller:latest", "path: /healthz"} {
		if !strings.Contains(built, want) {
			t.Errorf("kustomize build of %s does not mention %s", dir, want)
		}
	}
	out := mustKubectl(t, "", "apply", "-k", dir, "--server-side", "--dry-run=server", "--field-manager=e2e-dry-run", "--force-conflicts")
	for _, obj := range []string{"deployment.apps/mindie-apiserver", "deployment.apps/mindie-controller"} {
		if !strings.Contains(out, obj) {
			t.Errorf("dry-run apply did not report %s:\n%s", obj, out)
		}
	}
}

// TestSamplesApply checks that the samples make run applies
// (artifacts/samples: a plain and a Prefill/Decode InferServer) are
// accepted as they are: a server-side dry run validates and defaults each
// InferServer without creating it.
func TestSamplesApply(t *testing.T) {
	dir := filepath.Join(cluster.root, "artifacts", "samples")
	out := mustKubectl(t, "", "apply", "-f", dir, "--server-side", "--dry-run=server", "--field-manager=e2e-dry-run", "--force-conflicts")
	for _, obj := range []string{"inferserver.infer.mindie.io/llama3-8b serverside-applied", "inferserver.infer.mindie.io/llama3-8b-pd serverside-applied"} {
		if !strings.Contains(out, obj) {
			t.Errorf("dry-run apply of artifacts/samples did not report %s:\n%s", obj, out)
		}
	}
}

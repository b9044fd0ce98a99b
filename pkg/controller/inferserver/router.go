package inferserver

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	rbacv1ac "k8s.io/client-go/applyconfigurations/rbac/v1"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/podstatus"
)

// The router of an InferServer (spec.router): a Deployment of mindie-router
// pods behind the server's Service, running as their own ServiceAccount
// with a Role that reads the namespace's pods and, for Kubernetes
// authentication, the system:auth-delegator ClusterRole (TokenReview and
// SubjectAccessReview).
const (
	routerContainer = "mindie-router"
	// routerBinary is the router's command; on simulated nodes the kubelet
	// runs the real binary for a container with this command.
	routerBinary = "mindie-router"
	// routerTLSDir is where spec.router.tlsSecretName is mounted.
	routerTLSDir    = "/etc/mindie-router/tls"
	volumeRouterTLS = "router-tls"
	// routerInstanceCADir is where the instances' CA (ca.crt of
	// spec.tls.secretName) is mounted for an HTTPS server.
	routerInstanceCADir = "/etc/mindie-router/instance-ca"
	volumeInstanceCA    = "instance-ca"
	// routerShutdownDelaySeconds is how long a stopping router keeps
	// serving while its endpoint leaves the Service (its --shutdown-delay).
	routerShutdownDelaySeconds = 5
	// authDelegatorRole grants TokenReview and SubjectAccessReview.
	authDelegatorRole = "system:auth-delegator"
)

func routerName(s *v1alpha1.InferServer) string { return s.Name + v1alpha1.RouterNameSuffix }

// routerBindingName names the router's ClusterRoleBinding, unique across
// namespaces.
func routerBindingName(s *v1alpha1.InferServer) string {
	return "mindie-router:" + s.Namespace + ":" + s.Name
}

// routerPodLabels select the router pods (and not the instances).
func routerPodLabels(s *v1alpha1.InferServer) map[string]string {
	return map[string]string{v1alpha1.LabelRouter: s.Name}
}

// serviceDNSName is the in-cluster name of the server's Service.
func serviceDNSName(s *v1alpha1.InferServer) string { return s.Name + "." + s.Namespace + ".svc" }

// routerEndpoint is the in-cluster URL of the router's Service.
func routerEndpoint(s *v1alpha1.InferServer) string {
	return fmt.Sprintf("https://%s:%d", serviceDNSName(s), inferencePort(s))
}

// routerShutdownGrace is how long a stopping router lets requests in
// flight finish: as long as an instance may drain.
func routerShutdownGrace(s *v1alpha1.InferServer) int64 { return *s.Spec.TerminationGracePeriodSeconds }

// routerArgs are mindie-router's flags for the server. $(POD_IP) and
// $(POD_NAMESPACE) are expanded by the kubelet from the container's
// environment.
func routerArgs(s *v1alpha1.InferServer) []string {
	r := s.Spec.Router
	auth := "kubernetes"
	if r.Authentication == v1alpha1.RouterAuthenticationNone {
		auth = "none"
	}
	percent := func(p *int32) string { return strconv.FormatFloat(float64(*p)/100, 'f', -1, 64) }
	seconds := func(v int64) string { return (time.Duration(v) * time.Second).String() }
	args := []string{
		"--server=" + s.Name,
		"--namespace=$(POD_NAMESPACE)",
		"--listen=$(POD_IP):" + strconv.Itoa(int(inferencePort(s))),
		"--algorithm=" + string(r.Algorithm),
		"--authentication=" + auth,
		"--slots-threshold=" + percent(r.SlotsThresholdPercent),
		"--blocks-threshold=" + percent(r.BlocksThresholdPercent),
		"--max-retries=" + strconv.Itoa(int(*r.MaxRetries)),
		"--max-body-bytes=" + strconv.FormatInt(r.MaxBodySize.Value(), 10),
		"--max-inflight=" + strconv.Itoa(int(*r.MaxInflight)),
		"--max-inflight-per-instance=" + strconv.Itoa(int(*r.MaxInflightPerInstance)),
		"--first-token-timeout=" + seconds(int64(*r.FirstTokenTimeoutSeconds)),
		"--request-timeout=" + seconds(int64(*r.RequestTimeoutSeconds)),
		"--shutdown-delay=" + seconds(routerShutdownDelaySeconds),
		"--shutdown-grace=" + seconds(routerShutdownGrace(s)),
	}
	if r.TLSSecretName != "" {
		args = append(args, "--tls-cert-file="+routerTLSDir+"/"+corev1.TLSCertKey, "--tls-key-file="+routerTLSDir+"/"+corev1.TLSPrivateKeyKey)
	}
	if s.Spec.TLS.Enabled {
		if s.Spec.TLS.SecretName != "" {
			// A pod's certificate cannot name its IP, which changes with
			// every pod: it is checked against the server's Service name.
			args = append(args, "--instance-ca-file="+routerInstanceCADir+"/"+corev1.ServiceAccountRootCAKey,
				"--instance-tls-server-name="+serviceDNSName(s))
		} else {
			// The image brings its own certificate, which nothing here can verify.
			args = append(args, "--instance-insecure-skip-verify")
		}
	}
	return args
}

// routerPodTemplate is the pod of a router replica.
func routerPodTemplate(s *v1alpha1.InferServer) *corev1ac.PodTemplateSpecApplyConfiguration {
	r := s.Spec.Router
	readyz := corev1ac.HTTPGetAction().WithPath("/readyz").WithPort(intstr.FromString(portInference)).WithScheme(corev1.URISchemeHTTPS)
	healthz := corev1ac.HTTPGetAction().WithPath("/healthz").WithPort(intstr.FromString(portInference)).WithScheme(corev1.URISchemeHTTPS)
	container := corev1ac.Container().
		WithName(routerContainer).
		WithImage(r.Image).
		WithImagePullPolicy(r.ImagePullPolicy).
		WithCommand(routerBinary).
		WithArgs(routerArgs(s)...).
		WithEnv(fieldEnv("POD_IP", "status.podIP"), fieldEnv("POD_NAMESPACE", "metadata.namespace"), fieldEnv("POD_NAME", "metadata.name")).
		WithPorts(corev1ac.ContainerPort().WithName(portInference).WithContainerPort(inferencePort(s)).WithProtocol(corev1.ProtocolTCP)).
		WithResources(corev1ac.ResourceRequirements().WithRequests(r.Resources.Requests).WithLimits(r.Resources.Limits)).
		WithReadinessProbe(corev1ac.Probe().WithHTTPGet(readyz).WithPeriodSeconds(2).WithFailureThreshold(1).WithTimeoutSeconds(2)).
		// The router keeps its self-signed certificate in memory and writes nothing.
		WithSecurityContext(restrictedContext().WithReadOnlyRootFilesystem(true)).
		WithLivenessProbe(corev1ac.Probe().WithHTTPGet(healthz).WithPeriodSeconds(10).WithFailureThreshold(3).WithTimeoutSeconds(5))
	spec := corev1ac.PodSpec().
		WithServiceAccountName(routerName(s)).
		WithTerminationGracePeriodSeconds(routerShutdownDelaySeconds + routerShutdownGrace(s) + 5).
		WithTolerations(applyConfigsOf[corev1.Toleration, corev1ac.TolerationApplyConfiguration](s.Spec.Tolerations)...)
	if r.TLSSecretName != "" {
		container.WithVolumeMounts(corev1ac.VolumeMount().WithName(volumeRouterTLS).WithMountPath(routerTLSDir).WithReadOnly(true))
		spec.WithVolumes(corev1ac.Volume().WithName(volumeRouterTLS).WithSecret(corev1ac.SecretVolumeSource().WithSecretName(r.TLSSecretName)))
	}
	if s.Spec.TLS.Enabled && s.Spec.TLS.SecretName != "" {
		container.WithVolumeMounts(corev1ac.VolumeMount().WithName(volumeInstanceCA).WithMountPath(routerInstanceCADir).WithReadOnly(true))
		spec.WithVolumes(corev1ac.Volume().WithName(volumeInstanceCA).WithSecret(corev1ac.SecretVolumeSource().
			WithSecretName(s.Spec.TLS.SecretName).
			WithItems(corev1ac.KeyToPath().WithKey(corev1.ServiceAccountRootCAKey).WithPath(corev1.ServiceAccountRootCAKey))))
	}
	return corev1ac.PodTemplateSpec().
		WithLabels(routerPodLabels(s)).
		WithSpec(spec.WithContainers(container))
}

// routerDeployment runs the router replicas, replacing one at a time with
// none down: every replica is active, so one fewer only spreads the load.
func routerDeployment(s *v1alpha1.InferServer) *appsv1ac.DeploymentApplyConfiguration {
	return appsv1ac.Deployment(routerName(s), s.Namespace).
		WithLabels(serverLabels(s)).
		WithOwnerReferences(ownerRefApply(s)).
		WithSpec(appsv1ac.DeploymentSpec().
			WithReplicas(*s.Spec.Router.Replicas).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(routerPodLabels(s))).
			WithTemplate(routerPodTemplate(s)).
			WithStrategy(routerStrategy(s)))
}

// routerStrategy replaces router replicas one at a time with none down,
// except for a Prefill/Decode server: its replicas run active/standby
// behind a Lease and a standby is never ready, so waiting for a new
// replica to be ready before the next goes would never end. Every
// replica may be down at once, and none is added: the new active takes
// the Lease when the old one lets it go.
func routerStrategy(s *v1alpha1.InferServer) *appsv1ac.DeploymentStrategyApplyConfiguration {
	if len(s.Spec.Roles) > 0 {
		return appsv1ac.DeploymentStrategy().WithType(appsv1.RollingUpdateDeploymentStrategyType).
			WithRollingUpdate(appsv1ac.RollingUpdateDeployment().WithMaxSurge(intstr.FromInt32(0)).
				WithMaxUnavailable(intstr.FromInt32(*s.Spec.Router.Replicas)))
	}
	return appsv1ac.DeploymentStrategy().WithType(appsv1.RollingUpdateDeploymentStrategyType).
		WithRollingUpdate(appsv1ac.RollingUpdateDeployment().WithMaxSurge(intstr.FromInt32(1)).WithMaxUnavailable(intstr.FromInt32(0)))
}

func routerServiceAccount(s *v1alpha1.InferServer) *corev1ac.ServiceAccountApplyConfiguration {
	return corev1ac.ServiceAccount(routerName(s), s.Namespace).
		WithLabels(serverLabels(s)).
		WithOwnerReferences(ownerRefApply(s))
}

// routerRole lets the router read the pods of its namespace and, for a
// Prefill/Decode server, hold the Lease that makes one replica active.
func routerRole(s *v1alpha1.InferServer) *rbacv1ac.RoleApplyConfiguration {
	rules := []*rbacv1ac.PolicyRuleApplyConfiguration{
		rbacv1ac.PolicyRule().WithAPIGroups("").WithResources("pods").WithVerbs("get", "list", "watch"),
	}
	if len(s.Spec.Roles) > 0 {
		rules = append(rules, rbacv1ac.PolicyRule().WithAPIGroups("coordination.k8s.io").WithResources("leases").
			WithVerbs("get", "create", "update"))
	}
	return rbacv1ac.Role(routerName(s), s.Namespace).
		WithLabels(serverLabels(s)).
		WithOwnerReferences(ownerRefApply(s)).
		WithRules(rules...)
}

func routerSubject(s *v1alpha1.InferServer) *rbacv1ac.SubjectApplyConfiguration {
	return rbacv1ac.Subject().WithKind(rbacv1.ServiceAccountKind).WithName(routerName(s)).WithNamespace(s.Namespace)
}

func routerRoleBinding(s *v1alpha1.InferServer) *rbacv1ac.RoleBindingApplyConfiguration {
	return rbacv1ac.RoleBinding(routerName(s), s.Namespace).
		WithLabels(serverLabels(s)).
		WithOwnerReferences(ownerRefApply(s)).
		WithRoleRef(rbacv1ac.RoleRef().WithAPIGroup(rbacv1.GroupName).WithKind("Role").WithName(routerName(s))).
		WithSubjects(routerSubject(s))
}

// routerClusterRoleBinding lets the router review tokens and access. A
// cluster-scoped object cannot be owned by a namespaced one, so it carries
// the server's name and namespace as labels and the controller deletes it.
func routerClusterRoleBinding(s *v1alpha1.InferServer) *rbacv1ac.ClusterRoleBindingApplyConfiguration {
	return rbacv1ac.ClusterRoleBinding(routerBindingName(s)).
		WithLabels(map[string]string{v1alpha1.LabelServer: s.Name, v1alpha1.LabelNamespace: s.Namespace}).
		WithRoleRef(rbacv1ac.RoleRef().WithAPIGroup(rbacv1.GroupName).WithKind("ClusterRole").WithName(authDelegatorRole)).
		WithSubjects(routerSubject(s))
}

// syncRouter makes the router's objects when spec.router is set and
// removes them when it is not, and records the router's state.
func (c *Controller) syncRouter(ctx context.Context, st *syncState) error {
	s := st.server
	ns := s.Namespace
	if s.Spec.Router == nil {
		return c.removeRouter(ctx, s)
	}
	var errs []error
	if _, _, err := applyChild(ctx, c, s, c.serviceAccountChild(ns), routerName(s), routerServiceAccount(s)); err != nil {
		errs = append(errs, err)
	}
	if _, _, err := applyChild(ctx, c, s, c.roleChild(ns), routerName(s), routerRole(s)); err != nil {
		errs = append(errs, err)
	}
	if _, _, err := applyChild(ctx, c, s, c.roleBindingChild(ns), routerName(s), routerRoleBinding(s)); err != nil {
		errs = append(errs, err)
	}
	if s.Spec.Router.Authentication == v1alpha1.RouterAuthenticationKubernetes {
		errs = append(errs, c.applyRouterBinding(ctx, s))
	} else {
		errs = append(errs, c.deleteRouterBinding(ctx, s))
	}
	live, wrote, err := applyChild(ctx, c, s, c.deploymentChild(ns), routerName(s), routerDeployment(s))
	if err != nil {
		errs = append(errs, err)
	} else if wrote && live == nil {
		c.recorder.Eventf(s, corev1.EventTypeNormal, ReasonRouterCreated, "Created router deployment %s with %d replicas (%s)",
			routerName(s), *s.Spec.Router.Replicas, s.Spec.Router.Algorithm)
	}
	st.router = &v1alpha1.RouterStatus{Algorithm: s.Spec.Router.Algorithm, Endpoint: routerEndpoint(s)}
	if live != nil && !wrote && live.Status.ObservedGeneration >= live.Generation {
		st.router.Replicas = live.Status.Replicas
		st.router.UpdatedReplicas = live.Status.UpdatedReplicas
		st.router.ReadyReplicas = live.Status.ReadyReplicas
	} else if live != nil {
		// The Deployment has not seen the change yet: its pods are not
		// known to be updated, but those ready still serve.
		st.router.Replicas = live.Status.Replicas
		st.router.ReadyReplicas = live.Status.ReadyReplicas
	}
	st.router.Pods = c.routerPodStatuses(s)
	return errors.Join(errs...)
}

// routerPodStatuses lists the router pods not being deleted, by name.
func (c *Controller) routerPodStatuses(s *v1alpha1.InferServer) []v1alpha1.RouterPodStatus {
	if c.children.routerPods == nil {
		return nil
	}
	pods := labelled[*corev1.Pod](c.children.routerPods, s)
	sort.Slice(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
	var out []v1alpha1.RouterPodStatus
	for _, p := range pods {
		if p.DeletionTimestamp != nil || isTerminal(p) {
			continue
		}
		out = append(out, v1alpha1.RouterPodStatus{Name: p.Name, Node: p.Spec.NodeName, PodIP: p.Status.PodIP, Ready: podstatus.Serving(p)})
	}
	return out
}

// removeRouter deletes the objects of a router that is no longer asked for.
func (c *Controller) removeRouter(ctx context.Context, s *v1alpha1.InferServer) error {
	ns, name := s.Namespace, routerName(s)
	var errs []error
	del := func(kind string, get func() (metav1.Object, error), remove func() error) {
		obj, err := get()
		if err != nil {
			if !apierrors.IsNotFound(err) {
				errs = append(errs, err)
			}
			return
		}
		if ref := metav1.GetControllerOfNoCopy(obj); ref == nil || ref.UID != s.UID {
			return
		}
		if err := remove(); err != nil && !apierrors.IsNotFound(err) {
			c.recorder.Eventf(s, corev1.EventTypeWarning, ReasonFailedDelete, "Deleting %s %s: %v", kind, name, err)
			errs = append(errs, fmt.Errorf("delete %s %s: %w", kind, name, err))
			return
		}
		if kind == "deployment" {
			c.recorder.Eventf(s, corev1.EventTypeNormal, ReasonRouterDeleted, "Deleted router deployment %s: spec.router is unset", name)
		}
	}
	bg := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{PropagationPolicy: &bg}
	del("deployment", func() (metav1.Object, error) { return c.deployments.Deployments(ns).Get(name) },
		func() error { return c.kube.AppsV1().Deployments(ns).Delete(ctx, name, opts) })
	del("rolebinding", func() (metav1.Object, error) { return c.roleBindings.RoleBindings(ns).Get(name) },
		func() error { return c.kube.RbacV1().RoleBindings(ns).Delete(ctx, name, opts) })
	del("role", func() (metav1.Object, error) { return c.roles.Roles(ns).Get(name) },
		func() error { return c.kube.RbacV1().Roles(ns).Delete(ctx, name, opts) })
	del("serviceaccount", func() (metav1.Object, error) { return c.serviceAccounts.ServiceAccounts(ns).Get(name) },
		func() error { return c.kube.CoreV1().ServiceAccounts(ns).Delete(ctx, name, opts) })
	errs = append(errs, c.deleteRouterBinding(ctx, s))
	return errors.Join(errs...)
}

// applyRouterBinding writes the router's ClusterRoleBinding unless it is
// as desired; one of that name made for another server is left alone.
func (c *Controller) applyRouterBinding(ctx context.Context, s *v1alpha1.InferServer) error {
	name := routerBindingName(s)
	desired := routerClusterRoleBinding(s)
	live, err := c.clusterRoleBindings.Get(name)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return err
	case !bindingOf(s, live):
		msg := fmt.Sprintf("clusterrolebinding %s exists and was not made for this InferServer", name)
		c.recorder.Event(s, corev1.EventTypeWarning, ReasonFailedCreate, msg)
		return errors.New(msg)
	default:
		if ours, err := rbacv1ac.ExtractClusterRoleBinding(live, FieldManager); err == nil && equality.Semantic.DeepEqual(ours, desired) {
			return nil
		}
	}
	if _, err := c.kube.RbacV1().ClusterRoleBindings().Apply(ctx, desired, metav1.ApplyOptions{FieldManager: FieldManager, Force: true}); err != nil {
		c.recorder.Eventf(s, corev1.EventTypeWarning, ReasonFailedCreate, "Applying clusterrolebinding %s: %v", name, err)
		return fmt.Errorf("apply clusterrolebinding %s: %w", name, err)
	}
	return nil
}

// deleteRouterBinding deletes the router's ClusterRoleBinding if there is one.
func (c *Controller) deleteRouterBinding(ctx context.Context, s *v1alpha1.InferServer) error {
	name := routerBindingName(s)
	live, err := c.clusterRoleBindings.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if !bindingOf(s, live) {
		return nil
	}
	err = c.kube.RbacV1().ClusterRoleBindings().Delete(ctx, name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &live.UID}})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete clusterrolebinding %s: %w", name, err)
	}
	return nil
}

// bindingOf says whether a ClusterRoleBinding was made for s.
func bindingOf(s *v1alpha1.InferServer, b *rbacv1.ClusterRoleBinding) bool {
	return b.Labels[v1alpha1.LabelServer] == s.Name && b.Labels[v1alpha1.LabelNamespace] == s.Namespace
}

func (c *Controller) serviceAccountChild(ns string) child[corev1.ServiceAccount, *corev1.ServiceAccount, *corev1ac.ServiceAccountApplyConfiguration] {
	return child[corev1.ServiceAccount, *corev1.ServiceAccount, *corev1ac.ServiceAccountApplyConfiguration]{
		kind: "serviceaccount", get: c.serviceAccounts.ServiceAccounts(ns).Get,
		extract: corev1ac.ExtractServiceAccount, apply: c.kube.CoreV1().ServiceAccounts(ns).Apply,
	}
}

func (c *Controller) roleChild(ns string) child[rbacv1.Role, *rbacv1.Role, *rbacv1ac.RoleApplyConfiguration] {
	return child[rbacv1.Role, *rbacv1.Role, *rbacv1ac.RoleApplyConfiguration]{
		kind: "role", get: c.roles.Roles(ns).Get,
		extract: rbacv1ac.ExtractRole, apply: c.kube.RbacV1().Roles(ns).Apply,
	}
}

func (c *Controller) roleBindingChild(ns string) child[rbacv1.RoleBinding, *rbacv1.RoleBinding, *rbacv1ac.RoleBindingApplyConfiguration] {
	return child[rbacv1.RoleBinding, *rbacv1.RoleBinding, *rbacv1ac.RoleBindingApplyConfiguration]{
		kind: "rolebinding", get: c.roleBindings.RoleBindings(ns).Get,
		extract: rbacv1ac.ExtractRoleBinding, apply: c.kube.RbacV1().RoleBindings(ns).Apply,
	}
}

package inferserver

import (
	"flag"
	"io"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/inferstatus"
	"mindie.io/deployer/pkg/router"
)

func routedServer(name string, mutate func(*v1alpha1.InferServer)) *v1alpha1.InferServer {
	return newServer(name, func(s *v1alpha1.InferServer) {
		s.Spec.Router = &v1alpha1.RouterSpec{}
		if mutate != nil {
			mutate(s)
		}
	})
}

func (f *fixture) routerDeployment(name string) *appsv1.Deployment {
	return f.deployment(name + v1alpha1.RouterNameSuffix)
}

func (f *fixture) service(name string) *corev1.Service {
	f.t.Helper()
	svc, err := f.kube.CoreV1().Services(testNS).Get(f.ctx, name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return svc
}

// readyInstancesAndRouters makes every instance pod of a single-node server
// ready and its router Deployment report ready replicas.
func (f *fixture) readyInstancesAndRouters(name string, routers int32) {
	f.t.Helper()
	d := f.deployment(name)
	for i := int32(0); i < *d.Spec.Replicas; i++ {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name + "-rs-" + string(rune('a'+i)), Namespace: testNS,
			Labels: d.Spec.Template.Labels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: name + "-rs",
				UID: "rs", Controller: ptr.To(true)}}}}
		runPod(p)
		if _, err := f.kube.CoreV1().Pods(testNS).Create(f.ctx, p, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			f.t.Fatal(err)
		}
	}
	r := f.routerDeployment(name)
	r.Status = appsv1.DeploymentStatus{ObservedGeneration: r.Generation, Replicas: routers, UpdatedReplicas: routers, ReadyReplicas: routers}
	if _, err := f.kube.AppsV1().Deployments(testNS).UpdateStatus(f.ctx, r, metav1.UpdateOptions{}); err != nil {
		f.t.Fatal(err)
	}
	f.refresh()
}

func TestRouterCreated(t *testing.T) {
	f := newFixture(t, routedServer("llama", func(s *v1alpha1.InferServer) {
		s.Spec.Replicas = ptr.To[int32](2)
		s.Spec.Service.NodePort = 30080
		s.Spec.Router.Algorithm = v1alpha1.RouterRoundRobin
		s.Spec.Router.SlotsThresholdPercent = ptr.To[int32](10)
		s.Spec.Router.MaxBodySize = ptr.To(resource.MustParse("1Mi"))
		s.Spec.Router.TLSSecretName = "router-cert"
	}))
	_, writes := f.sync("llama")
	for _, want := range []string{"patch serviceaccounts llama-router", "patch roles llama-router", "patch rolebindings llama-router",
		"patch clusterrolebindings mindie-router:ns:llama", "patch deployments llama-router", "patch deployments llama", "patch services llama"} {
		if !has(writes, want) {
			t.Errorf("no %q in %v", want, writes)
		}
	}
	s := f.server("llama")

	// The Role allows exactly get, list and watch on pods.
	role, err := f.kube.RbacV1().Roles(testNS).Get(f.ctx, "llama-router", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(role.Rules) != 1 || strings.Join(role.Rules[0].Resources, ",") != "pods" || strings.Join(role.Rules[0].Verbs, ",") != "get,list,watch" ||
		len(role.Rules[0].APIGroups) != 1 || role.Rules[0].APIGroups[0] != "" || metav1.GetControllerOf(role).UID != s.UID {
		t.Errorf("role %+v", role)
	}
	rb, err := f.kube.RbacV1().RoleBindings(testNS).Get(f.ctx, "llama-router", metav1.GetOptions{})
	if err != nil || rb.RoleRef.Name != "llama-router" || rb.Subjects[0].Kind != rbacv1.ServiceAccountKind || rb.Subjects[0].Name != "llama-router" {
		t.Errorf("rolebinding %+v: %v", rb, err)
	}
	crb, err := f.kube.RbacV1().ClusterRoleBindings().Get(f.ctx, "mindie-router:ns:llama", metav1.GetOptions{})
	if err != nil || crb.RoleRef.Name != "system:auth-delegator" || crb.Subjects[0].Namespace != testNS ||
		crb.Labels[v1alpha1.LabelNamespace] != testNS || len(crb.OwnerReferences) != 0 {
		t.Errorf("clusterrolebinding %+v: %v", crb, err)
	}

	// The Deployment runs the router as its service account, and its args
	// are flags mindie-router accepts and reads as the spec says.
	d := f.routerDeployment("llama")
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]
	if *d.Spec.Replicas != 2 || pod.ServiceAccountName != "llama-router" || c.Command[0] != "mindie-router" ||
		d.Spec.Template.Labels[v1alpha1.LabelRouter] != "llama" || d.Spec.Template.Labels[v1alpha1.LabelServer] != "" ||
		d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 || c.ReadinessProbe.HTTPGet.Scheme != corev1.URISchemeHTTPS ||
		c.SecurityContext == nil || !*c.SecurityContext.ReadOnlyRootFilesystem || *c.SecurityContext.AllowPrivilegeEscalation {
		t.Errorf("router deployment %+v", d.Spec)
	}
	cfg := parseRouterArgs(t, c.Args)
	if cfg.Server != "llama" || cfg.Namespace != testNS || cfg.Listen != "127.1.0.9:1025" || cfg.Algorithm != router.RoundRobin ||
		cfg.Authentication != router.AuthKubernetes || cfg.SlotsThreshold != 0.1 || cfg.BlocksThreshold != 0.05 ||
		cfg.MaxBodyBytes != 1<<20 || cfg.MaxRetries != 2 || cfg.TLSCertFile != routerTLSDir+"/tls.crt" || cfg.InsecureHTTP {
		t.Errorf("router flags read back as %+v", cfg)
	}
	if len(pod.Volumes) != 1 || pod.Volumes[0].Secret.SecretName != "router-cert" {
		t.Errorf("volumes %+v", pod.Volumes)
	}

	// The Service, its node port included, now reaches the routers.
	svc := f.service("llama")
	if svc.Spec.Selector[v1alpha1.LabelRouter] != "llama" || len(svc.Spec.Selector) != 1 || svc.Spec.Ports[0].NodePort != 30080 {
		t.Errorf("service %+v", svc.Spec)
	}
	if ev := f.events(); !has(ev, "RouterCreated Created router deployment llama-router with 2 replicas (round_robin)") {
		t.Errorf("events %v", ev)
	}
	if r := s.Status.Router; r == nil || r.Endpoint != "https://llama.ns.svc:1025" || r.Algorithm != v1alpha1.RouterRoundRobin {
		t.Errorf("status.router %+v", r)
	}

	// Instances ready, routers not: not Available, and it says why.
	f.readyInstancesAndRouters("llama", 0)
	f.sync("llama")
	if a := condition(f.server("llama"), v1alpha1.ConditionAvailable); a == nil || a.Status != metav1.ConditionFalse ||
		a.Reason != inferstatus.ReasonRouterUnavailable || !strings.Contains(a.Message, "no router replica of 2 is ready") {
		t.Errorf("available %+v", a)
	}
	f.readyInstancesAndRouters("llama", 2)
	f.sync("llama")
	s = f.server("llama")
	if a := condition(s, v1alpha1.ConditionAvailable); a == nil || a.Status != metav1.ConditionTrue || !strings.Contains(a.Message, "2 of 2 router replicas ready") {
		t.Errorf("available %+v", a)
	}
	if r := s.Status.Router; r.ReadyReplicas != 2 || r.UpdatedReplicas != 2 || r.Replicas != 2 {
		t.Errorf("status.router %+v", r)
	}

	// Steady state: nothing written.
	if _, writes := f.sync("llama"); len(writes) != 0 {
		t.Errorf("a second sync wrote %v", writes)
	}
}

// parseRouterArgs reads args with mindie-router's own flags, expanding what
// the kubelet would.
func parseRouterArgs(t *testing.T, args []string) router.Config {
	t.Helper()
	cfg := router.DefaultConfig()
	fs := flag.NewFlagSet("mindie-router", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg.AddFlags(fs)
	expanded := make([]string, len(args))
	for i, a := range args {
		expanded[i] = strings.NewReplacer("$(POD_IP)", "127.1.0.9", "$(POD_NAMESPACE)", testNS).Replace(a)
	}
	if err := fs.Parse(expanded); err != nil {
		t.Fatalf("mindie-router refuses the controller's args %q: %v", args, err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("mindie-router refuses the controller's args %q: %v", args, err)
	}
	return cfg
}

func TestRouterAuthenticationNoneAndHTTPSInstances(t *testing.T) {
	f := newFixture(t, routedServer("llama", func(s *v1alpha1.InferServer) {
		s.Spec.Router.Authentication = v1alpha1.RouterAuthenticationNone
		s.Spec.TLS = v1alpha1.InferTLS{Enabled: true, SecretName: "server-cert"}
	}))
	_, writes := f.sync("llama")
	if has(writes, "clusterrolebindings") {
		t.Errorf("a router without Kubernetes authentication got a binding: %v", writes)
	}
	c := f.routerDeployment("llama").Spec.Template.Spec.Containers[0]
	cfg := parseRouterArgs(t, c.Args)
	if cfg.Authentication != router.AuthNone || cfg.InstanceCAFile != routerInstanceCADir+"/ca.crt" || cfg.InstanceTLSServerName != "llama.ns.svc" {
		t.Errorf("args %q", c.Args)
	}

	// Turning authentication on adds the binding; off again removes it.
	f.update("llama", func(s *v1alpha1.InferServer) { s.Spec.Router.Authentication = v1alpha1.RouterAuthenticationKubernetes })
	if _, writes = f.sync("llama"); !has(writes, "patch clusterrolebindings mindie-router:ns:llama") {
		t.Errorf("writes %v", writes)
	}
	f.update("llama", func(s *v1alpha1.InferServer) { s.Spec.Router.Authentication = v1alpha1.RouterAuthenticationNone })
	if _, writes = f.sync("llama"); !has(writes, "delete clusterrolebindings mindie-router:ns:llama") {
		t.Errorf("writes %v", writes)
	}
}

func TestRouterRemoved(t *testing.T) {
	f := newFixture(t, routedServer("llama", nil))
	f.sync("llama")
	f.events()
	f.update("llama", func(s *v1alpha1.InferServer) { s.Spec.Router = nil })
	_, writes := f.sync("llama")
	for _, want := range []string{"delete deployments llama-router", "delete roles llama-router", "delete rolebindings llama-router",
		"delete serviceaccounts llama-router", "delete clusterrolebindings mindie-router:ns:llama", "patch services llama"} {
		if !has(writes, want) {
			t.Errorf("no %q in %v", want, writes)
		}
	}
	if has(writes, "delete deployments llama ") || count(writes, "delete deployments") != 1 {
		t.Errorf("the instances' deployment was touched: %v", writes)
	}
	if sel := f.service("llama").Spec.Selector; sel[v1alpha1.LabelMaster] != "true" || sel[v1alpha1.LabelRouter] != "" {
		t.Errorf("service selector %v", sel)
	}
	if ev := f.events(); !has(ev, "RouterDeleted") {
		t.Errorf("events %v", ev)
	}
	if f.server("llama").Status.Router != nil {
		t.Error("status.router stays after the router went")
	}
}

// TestRouterBindingOfAnotherServerKept: a ClusterRoleBinding of the same
// name not made for this server is neither taken over nor deleted.
func TestRouterBindingOfAnotherServerKept(t *testing.T) {
	foreign := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "mindie-router:ns:llama"},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"}}
	f := newFixture(t, routedServer("llama", nil), foreign)
	writes, err := f.syncErr("llama")
	if err == nil || !strings.Contains(err.Error(), "was not made for this InferServer") || has(writes, "clusterrolebindings") {
		t.Errorf("err %v, writes %v", err, writes)
	}
	if !has(writes, "patch deployments llama-router") {
		t.Errorf("the rest of the router was not made: %v", writes)
	}
}

func TestDeletionRemovesRouterBinding(t *testing.T) {
	f := newFixture(t, routedServer("llama", nil))
	f.sync("llama")
	s := f.server("llama")
	s.DeletionTimestamp = ptr.To(metav1.NewTime(testNow))
	if _, err := f.infer.InferV1alpha1().InferServers(testNS).Update(f.ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.refresh()
	_, writes := f.sync("llama")
	for _, want := range []string{"delete clusterrolebindings mindie-router:ns:llama", "delete deployments llama-router", "delete services llama"} {
		if !has(writes, want) {
			t.Errorf("no %q in %v", want, writes)
		}
	}
}

func TestRouterPodsInStatus(t *testing.T) {
	f := newFixture(t, routedServer("llama", nil))
	f.sync("llama")
	for i, name := range []string{"llama-router-b", "llama-router-a", "llama-router-gone"} {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS, Labels: map[string]string{v1alpha1.LabelRouter: "llama"}}}
		if i == 0 {
			runPod(p)
		}
		if i == 2 {
			p.DeletionTimestamp = ptr.To(metav1.NewTime(testNow))
			p.Finalizers = []string{"x"}
		}
		if _, err := f.kube.CoreV1().Pods(testNS).Create(f.ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	f.refresh()
	f.sync("llama")
	pods := f.server("llama").Status.Router.Pods
	if len(pods) != 2 || pods[0].Name != "llama-router-a" || pods[0].Ready || pods[1].Name != "llama-router-b" || !pods[1].Ready || pods[1].PodIP == "" {
		t.Errorf("status.router.pods %+v", pods)
	}
	// The router pods are not instances.
	if s := f.server("llama"); s.Status.Replicas != 0 || len(s.Status.Instances) != 0 {
		t.Errorf("router pods counted as instances: %+v", s.Status)
	}
}

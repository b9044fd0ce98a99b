package router

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/podstatus"
)

// The pod template's names the instances are read from; the controller
// (pkg/controller/inferserver) gives its pods these.
const (
	portNameInference  = "inference"
	portNameManagement = "management"
	// envUseHTTPS is "true" on a pod whose MindIE serves HTTPS.
	envUseHTTPS = "MINDIE_USE_HTTPS"
)

// PodSource is a Source over the pods of one InferServer: the pods that
// serve an instance (LabelMaster: every single-node pod, rank 0 of a
// cross-node instance), watched with an informer restricted to the
// namespace and the server's labels. A pod with an IP and a port named
// "inference" is an instance named like the pod; Ready is its Ready
// condition, and a pod being deleted drains. Its URLs are https:// when
// the container of the inference port has MINDIE_USE_HTTPS=true (the
// controller's, from spec.tls.enabled): MindIE then serves HTTPS on both
// ports, verified as Config.InstanceCAFile says.
type PodSource struct {
	client    kubernetes.Interface
	namespace string
	server    string
	log       logr.Logger
}

// NewPodSource returns the Source of the InferServer server in namespace.
func NewPodSource(client kubernetes.Interface, namespace, server string) *PodSource {
	return &PodSource{client: client, namespace: namespace, server: server,
		log: klog.Background().WithName("pods").WithValues("namespace", namespace, "server", server)}
}

// selector selects the pods of the server that serve an instance.
func (s *PodSource) selector() labels.Selector {
	return labels.SelectorFromSet(labels.Set{v1alpha1.LabelServer: s.server, v1alpha1.LabelMaster: "true"})
}

// Run watches the pods until ctx is done, reporting the set once the
// informer has listed them and again on every change.
func (s *PodSource) Run(ctx context.Context, update func([]Instance)) error {
	sel := s.selector()
	factory := informers.NewSharedInformerFactoryWithOptions(s.client, 0,
		informers.WithNamespace(s.namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = sel.String() }))
	pods := factory.Core().V1().Pods()
	informer := pods.Informer()
	changed := make(chan struct{}, 1)
	notify := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { notify() },
		UpdateFunc: func(any, any) { notify() },
		DeleteFunc: func(any) { notify() },
	}); err != nil {
		return fmt.Errorf("watch pods of InferServer %s/%s: %w", s.namespace, s.server, err)
	}
	lister := pods.Lister().Pods(s.namespace)
	ctx, cancel := context.WithCancel(ctx)
	factory.StartWithContext(ctx)
	defer func() {
		cancel() // whyever Run returns, the informer stops before Shutdown waits for it
		factory.Shutdown()
	}()
	if err := factory.WaitForCacheSyncWithContext(ctx).AsError(); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("list pods of InferServer %s/%s: %w", s.namespace, s.server, err)
	}
	var last []Instance
	for first := true; ; first = false {
		list, err := lister.List(sel)
		if err != nil {
			return fmt.Errorf("list pods of InferServer %s/%s from the cache: %w", s.namespace, s.server, err)
		}
		set := s.instances(list)
		if first || !slices.Equal(set, last) {
			update(set)
			last = set
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

// instances are the pods' instances, by name.
func (s *PodSource) instances(pods []*corev1.Pod) []Instance {
	set := make([]Instance, 0, len(pods))
	for _, p := range pods {
		inst, why := podInstance(p, s.server)
		if why != "" {
			s.log.V(2).Info("pod is not an instance", "pod", p.Name, "reason", why)
			continue
		}
		set = append(set, inst)
	}
	slices.SortFunc(set, func(a, b Instance) int { return strings.Compare(a.Name, b.Name) })
	return set
}

// podInstance is a pod's instance, or why the pod is none. The labels are
// checked again: the informer's selector is the API server's filter, not a
// guarantee of every watch (fakes do not apply it).
func podInstance(p *corev1.Pod, server string) (Instance, string) {
	switch {
	case p.Labels[v1alpha1.LabelServer] != server:
		return Instance{}, "not a pod of this server"
	case p.Labels[v1alpha1.LabelMaster] != "true":
		return Instance{}, "not the master of its instance (cross-node ranks other than 0 serve nothing)"
	case p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed:
		return Instance{}, "terminated"
	case p.Status.PodIP == "":
		return Instance{}, "no pod IP yet"
	}
	var inference, management int32
	https := false
	for _, c := range p.Spec.Containers {
		for _, port := range c.Ports {
			switch {
			case port.Name == portNameInference && inference == 0:
				inference = port.ContainerPort
				https = envIsTrue(c.Env, envUseHTTPS)
			case port.Name == portNameManagement && management == 0:
				management = port.ContainerPort
			}
		}
	}
	if inference == 0 {
		return Instance{}, fmt.Sprintf("no container port named %q", portNameInference)
	}
	scheme := "http"
	if https {
		scheme = "https"
	}
	base := func(port int32) string {
		return scheme + "://" + net.JoinHostPort(p.Status.PodIP, strconv.Itoa(int(port)))
	}
	inst := Instance{
		Name:      p.Name,
		Inference: base(inference),
		Ready:     podstatus.Ready(p),
		Draining:  p.DeletionTimestamp != nil,
	}
	if management != 0 {
		inst.Management = base(management)
	}
	role, group, id, why := podPDRole(p)
	if why != "" {
		return Instance{}, why
	}
	inst.Role, inst.Group, inst.ID = role, group, id
	return inst, ""
}

// envIsTrue reports whether env sets name to "true" (the controller sets
// MINDIE_USE_HTTPS from spec.tls.enabled, with strconv.FormatBool). When
// name is set twice (the controller's value, then the same name in the
// InferServer's spec.env), the last one is what the container sees, as
// the kubelet resolves it. A value from a ConfigMap or Secret (valueFrom)
// cannot be read here and counts as false.
func envIsTrue(env []corev1.EnvVar, name string) bool {
	is := false
	for _, e := range env {
		if e.Name == name {
			is = e.ValueFrom == nil && strings.EqualFold(strings.TrimSpace(e.Value), "true")
		}
	}
	return is
}

// Package options holds what every command of kubectl-mindie shares: the
// standard kubectl flags, the IO streams, the clients built from the flags
// (set beforehand by tests, see package fake) and the flags and constants
// several commands have in common.
package options

import (
	"context"
	"flag"
	"fmt"
	"sync"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/generated/clientset/versioned"
	inferv1alpha1 "mindie.io/deployer/pkg/generated/clientset/versioned/typed/infer/v1alpha1"
)

// MindieOptions are the flags, streams and clients every command of
// kubectl-mindie uses.
type MindieOptions struct {
	// ConfigFlags are the standard kubectl flags: --kubeconfig,
	// --context, -n, --as, ...
	ConfigFlags *genericclioptions.ConfigFlags
	genericiooptions.IOStreams

	// Infer is the clientset of infer.mindie.io, Kube that of the
	// built-in APIs (pods, events, controller revisions) and REST the
	// client of raw requests (server-side tables, pod logs, the
	// inferservers/proxy subresource). Each is built from ConfigFlags
	// when first asked for, unless set beforehand (tests set fakes).
	Infer versioned.Interface
	Kube  kubernetes.Interface
	REST  *rest.RESTClient

	// Now is the clock of ages and timestamps.
	Now func() time.Time

	mu     sync.Mutex
	config *rest.Config
}

// New returns the options of a kubectl-mindie run on streams.
func New(streams genericiooptions.IOStreams) *MindieOptions {
	return &MindieOptions{
		ConfigFlags: genericclioptions.NewConfigFlags(true),
		IOStreams:   streams,
		Now:         time.Now,
	}
}

// AddKubectlFlags adds the standard kubectl flags and, as kubectl has it,
// -v for the clients' request logs, to c and its subcommands.
func (o *MindieOptions) AddKubectlFlags(c *cobra.Command) {
	o.ConfigFlags.AddFlags(c.PersistentFlags())
	var goFlags flag.FlagSet
	klog.InitFlags(&goFlags)
	if v := goFlags.Lookup("v"); v != nil {
		c.PersistentFlags().AddGoFlag(v)
	}
}

// restConfig is the client configuration of ConfigFlags; o.mu is held.
func (o *MindieOptions) restConfig() (*rest.Config, error) {
	if o.config != nil {
		return o.config, nil
	}
	c, err := o.ConfigFlags.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	c = rest.CopyConfig(c)
	c.UserAgent = "kubectl-mindie/" + rest.DefaultKubernetesUserAgent()
	o.config = c
	return c, nil
}

// Namespace is the namespace of -n/--namespace or, without it, of the
// kubeconfig's context; explicit reports whether -n was given.
func (o *MindieOptions) Namespace() (ns string, explicit bool, err error) {
	ns, explicit, err = o.ConfigFlags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return "", false, err
	}
	if ns == "" {
		ns = corev1.NamespaceDefault
	}
	return ns, explicit, nil
}

// InferClient is the clientset of infer.mindie.io.
func (o *MindieOptions) InferClient() (versioned.Interface, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.Infer == nil {
		config, err := o.restConfig()
		if err != nil {
			return nil, err
		}
		if o.Infer, err = versioned.NewForConfig(config); err != nil {
			return nil, fmt.Errorf("building the infer.mindie.io client: %w", err)
		}
	}
	return o.Infer, nil
}

// KubeClient is the clientset of the built-in APIs.
func (o *MindieOptions) KubeClient() (kubernetes.Interface, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.Kube == nil {
		config, err := o.restConfig()
		if err != nil {
			return nil, err
		}
		if o.Kube, err = kubernetes.NewForConfig(config); err != nil {
			return nil, fmt.Errorf("building the Kubernetes client: %w", err)
		}
	}
	return o.Kube, nil
}

// RESTClient makes raw requests with AbsPath: server-side tables, pod logs
// and the inferservers/proxy subresource. Its Client field is the
// authenticated HTTP client, used for streaming proxy responses.
func (o *MindieOptions) RESTClient() (*rest.RESTClient, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.REST == nil {
		config, err := o.restConfig()
		if err != nil {
			return nil, err
		}
		config = rest.CopyConfig(config)
		config.APIPath = "/api"
		config.GroupVersion = &corev1.SchemeGroupVersion
		config.NegotiatedSerializer = clientgoscheme.Codecs.WithoutConversion()
		if o.REST, err = rest.RESTClientFor(config); err != nil {
			return nil, fmt.Errorf("building the REST client: %w", err)
		}
	}
	return o.REST, nil
}

// NamespacedInferClient is the command's namespace and the infer.mindie.io
// clientset.
func (o *MindieOptions) NamespacedInferClient() (string, versioned.Interface, error) {
	ns, _, err := o.Namespace()
	if err != nil {
		return "", nil, err
	}
	client, err := o.InferClient()
	return ns, client, err
}

// InferServers is the InferServer client of the command's namespace.
func (o *MindieOptions) InferServers() (inferv1alpha1.InferServerInterface, error) {
	ns, client, err := o.NamespacedInferClient()
	if err != nil {
		return nil, err
	}
	return client.InferV1alpha1().InferServers(ns), nil
}

// GetInferServer reads the named InferServer of the command's namespace.
func (o *MindieOptions) GetInferServer(ctx context.Context, name string) (*v1alpha1.InferServer, error) {
	servers, err := o.InferServers()
	if err != nil {
		return nil, err
	}
	return servers.Get(ctx, name, metav1.GetOptions{})
}

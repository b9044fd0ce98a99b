// Package cmd holds the commands of kubectl-mindie, the kubectl plugin for
// InferServers (infer.mindie.io/v1alpha1): create, convert, get, delete,
// status, logs, chat, rollout and scale. Every command reaches the cluster
// through a Factory, so that tests inject fake clients.
package cmd

import (
	"context"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/generated/clientset/versioned"
	inferv1alpha1 "mindie.io/deployer/pkg/generated/clientset/versioned/typed/infer/v1alpha1"
)

// Factory gives the commands their clients. The real one is built from the
// standard kubectl flags (genericclioptions.ConfigFlags); tests use fakes.
type Factory interface {
	// Namespace is the namespace of -n/--namespace or, without it, of the
	// kubeconfig's context; explicit reports whether -n was given.
	Namespace() (ns string, explicit bool, err error)
	// InferClient is the typed clientset of infer.mindie.io.
	InferClient() (versioned.Interface, error)
	// KubeClient is the clientset of the built-in APIs (pods, events,
	// controller revisions).
	KubeClient() (kubernetes.Interface, error)
	// RESTClient makes raw requests with AbsPath: server-side tables, pod
	// logs and the inferservers/proxy subresource. Its Client field is the
	// authenticated HTTP client, used for streaming proxy responses.
	RESTClient() (*rest.RESTClient, error)
}

// NewFactory returns the Factory of the given kubectl flags.
func NewFactory(flags *genericclioptions.ConfigFlags) Factory {
	return &configFactory{flags: flags}
}

type configFactory struct {
	flags *genericclioptions.ConfigFlags

	once   sync.Once
	config *rest.Config
	err    error
}

func (f *configFactory) restConfig() (*rest.Config, error) {
	f.once.Do(func() {
		f.config, f.err = f.flags.ToRESTConfig()
		if f.err == nil {
			f.config = rest.CopyConfig(f.config)
			f.config.UserAgent = "kubectl-mindie/" + rest.DefaultKubernetesUserAgent()
		}
	})
	return f.config, f.err
}

func (f *configFactory) Namespace() (string, bool, error) {
	ns, explicit, err := f.flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return "", false, err
	}
	if ns == "" {
		ns = corev1.NamespaceDefault
	}
	return ns, explicit, nil
}

func (f *configFactory) InferClient() (versioned.Interface, error) {
	c, err := f.restConfig()
	if err != nil {
		return nil, err
	}
	return versioned.NewForConfig(c)
}

func (f *configFactory) KubeClient() (kubernetes.Interface, error) {
	c, err := f.restConfig()
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(c)
}

func (f *configFactory) RESTClient() (*rest.RESTClient, error) {
	c, err := f.restConfig()
	if err != nil {
		return nil, err
	}
	c = rest.CopyConfig(c)
	c.APIPath = "/api"
	c.GroupVersion = &corev1.SchemeGroupVersion
	c.NegotiatedSerializer = clientgoscheme.Codecs.WithoutConversion()
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, fmt.Errorf("building the REST client: %w", err)
	}
	return rc, nil
}

// namespacedClient is the command's namespace and the infer.mindie.io client.
func namespacedClient(f Factory) (string, versioned.Interface, error) {
	ns, _, err := f.Namespace()
	if err != nil {
		return "", nil, err
	}
	client, err := f.InferClient()
	return ns, client, err
}

// serversIn is the InferServer client of the command's namespace.
func serversIn(f Factory) (inferv1alpha1.InferServerInterface, error) {
	ns, client, err := namespacedClient(f)
	if err != nil {
		return nil, err
	}
	return client.InferV1alpha1().InferServers(ns), nil
}

// getServer reads the named InferServer of the command's namespace.
func getServer(ctx context.Context, f Factory, name string) (*v1alpha1.InferServer, error) {
	servers, err := serversIn(f)
	if err != nil {
		return nil, err
	}
	return servers.Get(ctx, name, metav1.GetOptions{})
}

package router

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// userAgent names the router in the API server's logs and audit.
const userAgent = "mindie-router"

// KubernetesClient returns a client of the cluster and the namespace to
// work in: namespace if set, else the router's own (in a cluster) or the
// kubeconfig context's. An empty kubeconfig is the in-cluster service
// account.
func KubernetesClient(kubeconfig, namespace string) (kubernetes.Interface, string, error) {
	var (
		conf *rest.Config
		err  error
	)
	if kubeconfig == "" {
		conf, err = rest.InClusterConfig()
		if err != nil {
			return nil, "", fmt.Errorf("--kubeconfig is empty, so the in-cluster configuration is used, but: %w", err)
		}
		if namespace == "" {
			data, err := os.ReadFile(serviceAccountNamespaceFile)
			if err != nil {
				return nil, "", fmt.Errorf("--namespace is empty and the pod's namespace is unknown: %w", err)
			}
			namespace = strings.TrimSpace(string(data))
		}
	} else {
		loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
			&clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig}, &clientcmd.ConfigOverrides{})
		conf, err = loader.ClientConfig()
		if err != nil {
			return nil, "", fmt.Errorf("--kubeconfig %s: %w", kubeconfig, err)
		}
		if namespace == "" {
			namespace, _, err = loader.Namespace()
			if err != nil {
				return nil, "", fmt.Errorf("--kubeconfig %s: the context's namespace: %w", kubeconfig, err)
			}
		}
	}
	if namespace == "" {
		return nil, "", errors.New("--namespace is required: no namespace is known from the cluster or the kubeconfig")
	}
	conf = rest.CopyConfig(conf)
	conf.UserAgent = userAgent
	client, err := kubernetes.NewForConfig(conf)
	if err != nil {
		return nil, "", fmt.Errorf("a Kubernetes client: %w", err)
	}
	return client, namespace, nil
}

// Package integration runs a whole mindie-apiserver inside the test process,
// on a real (embedded) etcd, and drives it through its HTTP API the way
// clients do.
package integration

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	restclient "k8s.io/client-go/rest"

	"mindie.io/deployer/apis/infer/v1alpha1"
	servertesting "mindie.io/deployer/pkg/cmd/server/testing"
	clientset "mindie.io/deployer/pkg/generated/clientset/versioned"
)

var inferServersGVR = v1alpha1.SchemeGroupVersion.WithResource("inferservers")

// env is one running server and the clients of a test.
type env struct {
	t       *testing.T
	server  *servertesting.TestServer
	config  *restclient.Config
	client  clientset.Interface
	dynamic dynamic.Interface
	ctx     context.Context
}

func newEnv(t *testing.T, flags ...string) *env {
	t.Helper()
	s := servertesting.Start(t, flags...)
	return envFor(t, s)
}

func envFor(t *testing.T, s *servertesting.TestServer) *env {
	t.Helper()
	client, err := clientset.NewForConfig(s.ClientConfig)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(s.ClientConfig)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return &env{t: t, server: s, config: s.ClientConfig, client: client, dynamic: dyn, ctx: ctx}
}

// newServer returns a minimal InferServer: everything else is defaulted.
func newServer(name string, mutate ...func(*v1alpha1.InferServer)) *v1alpha1.InferServer {
	s := &v1alpha1.InferServer{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}
	for _, m := range mutate {
		m(s)
	}
	return s
}

func (e *env) create(s *v1alpha1.InferServer) *v1alpha1.InferServer {
	e.t.Helper()
	out, err := e.client.InferV1alpha1().InferServers(s.Namespace).Create(e.ctx, s, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatalf("create %s: %v", s.Name, err)
	}
	return out
}

func (e *env) get(namespace, name string) *v1alpha1.InferServer {
	e.t.Helper()
	out, err := e.client.InferV1alpha1().InferServers(namespace).Get(e.ctx, name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatalf("get %s/%s: %v", namespace, name, err)
	}
	return out
}

func envVar(name, value string) corev1.EnvVar { return corev1.EnvVar{Name: name, Value: value} }

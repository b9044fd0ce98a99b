package server

import (
	"context"
	"fmt"
	"net/http"

	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/server/healthz"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"mindie.io/deployer/pkg/apiserver"
	"mindie.io/deployer/pkg/controller/manager"
)

// startControllers adds the workload controllers to server: an informer of
// InferServers (on the server's loopback client) with its readiness check,
// and a post-start hook that runs the controllers, under leader election
// when asked. It returns the replica's identity.
func startControllers(server *apiserver.Server, cfg manager.Config, kubeConfig *restclient.Config) (string, error) {
	m, err := manager.New(cfg, kubeConfig, server.Client)
	if err != nil {
		return "", err
	}
	// Not ready before the controllers' cache has listed every InferServer;
	// a readiness check only: a server whose cache is behind is taken out
	// of rotation, not restarted.
	if err := server.GenericAPIServer.AddReadyzChecks(informerSynced("inferserver-informer-synced", m.ServersSynced)); err != nil {
		return "", err
	}
	server.GenericAPIServer.AddPostStartHookOrDie("start-mindie-informers", func(ctx genericapiserver.PostStartHookContext) error {
		m.StartInformers(ctx.Done())
		return nil
	})
	server.GenericAPIServer.AddPostStartHookOrDie("start-mindie-controllers", func(hookCtx genericapiserver.PostStartHookContext) error {
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			<-hookCtx.Done()
			cancel()
		}()
		go func() {
			if err := m.Run(ctx); err != nil {
				klog.ErrorS(err, "Controllers stopped")
			}
		}()
		return nil
	})
	return m.Identity(), nil
}

// informerSynced is a readiness check that passes once an informer has listed.
func informerSynced(name string, synced cache.InformerSynced) healthz.HealthChecker {
	return healthz.NamedCheck(name, func(*http.Request) error {
		if !synced() {
			return fmt.Errorf("informer has not synced yet")
		}
		return nil
	})
}

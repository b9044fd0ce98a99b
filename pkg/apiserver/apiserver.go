// Package apiserver assembles mindie-apiserver: the scheme, the
// infer.mindie.io API group on its registry, and the informers and health
// checks that run beside it.
package apiserver

import (
	"context"
	"fmt"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apiserver/pkg/registry/rest"
	genericapiserver "k8s.io/apiserver/pkg/server"
	restclient "k8s.io/client-go/rest"

	"mindie.io/deployer/apis/infer"
	"mindie.io/deployer/apis/infer/install"
	"mindie.io/deployer/apis/infer/v1alpha1"
	clientset "mindie.io/deployer/pkg/generated/clientset/versioned"
	"mindie.io/deployer/pkg/registry/infer/edgedeployment"
	"mindie.io/deployer/pkg/registry/infer/inferserver"
)

var (
	// Scheme holds every type the server encodes or decodes.
	Scheme = runtime.NewScheme()
	// Codecs encode and decode the types of Scheme.
	Codecs = serializer.NewCodecFactory(Scheme)
)

func init() {
	install.Install(Scheme)
	// The scale subresource serves autoscaling/v1 Scale.
	utilruntime.Must(autoscalingv1.AddToScheme(Scheme))
	// Options types (ListOptions, ...) travel as unversioned v1.
	metav1.AddToGroupVersion(Scheme, schema.GroupVersion{Version: "v1"})
	unversioned := schema.GroupVersion{Group: "", Version: "v1"}
	Scheme.AddUnversionedTypes(unversioned,
		&metav1.Status{}, &metav1.APIVersions{}, &metav1.APIGroupList{}, &metav1.APIGroup{}, &metav1.APIResourceList{})
}

// Config is the whole configuration of mindie-apiserver.
type Config struct {
	GenericConfig *genericapiserver.RecommendedConfig
	// Finalize puts the controllers' cleanup finalizers on the objects
	// created: set where the controllers run (in some replica), never on a
	// standalone server, whose objects no controller would release.
	Finalize bool
}

// Server is a running mindie-apiserver.
type Server struct {
	GenericAPIServer *genericapiserver.GenericAPIServer
	// Client talks to this server over its loopback connection.
	Client clientset.Interface
	// Proxy is the proxy subresource of inferservers.
	Proxy *inferserver.ProxyREST
}

type completedConfig struct {
	GenericConfig genericapiserver.CompletedConfig
	Finalize      bool
}

// CompletedConfig is a Config whose defaults are filled in.
type CompletedConfig struct {
	*completedConfig
}

// Complete fills in the fields not set.
func (cfg *Config) Complete() CompletedConfig {
	return CompletedConfig{&completedConfig{GenericConfig: cfg.GenericConfig.Complete(), Finalize: cfg.Finalize}}
}

// New builds the server from a completed config.
func (c completedConfig) New() (*Server, error) {
	generic, err := c.GenericConfig.New("mindie-apiserver", genericapiserver.NewEmptyDelegate())
	if err != nil {
		return nil, err
	}
	loopback := restclient.CopyConfig(generic.LoopbackClientConfig)
	// The loopback configuration prefers protobuf, which this group does not serve.
	loopback.ContentType = runtime.ContentTypeJSON
	loopback.AcceptContentTypes = runtime.ContentTypeJSON
	client, err := clientset.NewForConfig(loopback)
	if err != nil {
		return nil, fmt.Errorf("loopback client: %w", err)
	}
	s := &Server{
		GenericAPIServer: generic,
		Client:           client,
	}

	storage, err := inferserver.NewStorage(Scheme, c.GenericConfig.RESTOptionsGetter, c.Finalize)
	if err != nil {
		return nil, err
	}
	edge, err := edgedeployment.NewStorage(Scheme, c.GenericConfig.RESTOptionsGetter, c.Finalize)
	if err != nil {
		return nil, err
	}
	apiGroupInfo := genericapiserver.NewDefaultAPIGroupInfo(infer.GroupName, Scheme, metav1.ParameterCodec, Codecs)
	// InferServers have no protobuf encoding; advertising only JSON (and
	// YAML, CBOR) makes clients that prefer protobuf fall back to JSON
	// instead of receiving 406 Not Acceptable.
	apiGroupInfo.NegotiatedSerializer = WithoutProtobuf{Codecs}
	apiGroupInfo.VersionedResourcesStorageMap[v1alpha1.SchemeGroupVersion.Version] = map[string]rest.Storage{
		"inferservers":        storage.InferServer,
		"inferservers/status": storage.Status,
		"inferservers/scale":  storage.Scale,
		"inferservers/proxy":  storage.Proxy,

		"edgedeployments":        edge.EdgeDeployment,
		"edgedeployments/status": edge.Status,
	}
	s.Proxy = storage.Proxy
	if err := generic.InstallAPIGroup(&apiGroupInfo); err != nil {
		return nil, fmt.Errorf("install %s: %w", infer.GroupName, err)
	}

	return s, nil
}

// WithoutProtobuf is a NegotiatedSerializer that does not offer protobuf.
type WithoutProtobuf struct {
	runtime.NegotiatedSerializer
}

// SupportedMediaTypes are those of the wrapped serializer, less protobuf.
func (w WithoutProtobuf) SupportedMediaTypes() []runtime.SerializerInfo {
	var out []runtime.SerializerInfo
	for _, info := range w.NegotiatedSerializer.SupportedMediaTypes() {
		if info.MediaType != runtime.ContentTypeProtobuf {
			out = append(out, info)
		}
	}
	return out
}

// Run serves until ctx is done, then shuts down cleanly.
func (s *Server) Run(ctx context.Context) error {
	return s.GenericAPIServer.PrepareRun().RunWithContext(ctx)
}

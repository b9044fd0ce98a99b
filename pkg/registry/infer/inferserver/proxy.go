package inferserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/klog/v2"

	"mindie.io/deployer/apis/infer"
	"mindie.io/deployer/pkg/router"
)

// ProxySubresource is the name of the proxy subresource.
const ProxySubresource = "proxy"

// proxyMethods are the HTTP methods the proxy forwards (those of pods/proxy).
var proxyMethods = []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}

// credentialHeaders are request headers never forwarded to a pod: the
// caller's credentials, and the identity headers the kube-aggregator and
// impersonating clients send. The generic API server's authentication and
// impersonation filters already remove those they act on; the proxy drops
// them again whatever their configured names, so that a pod never sees who
// called, nor a credential it could replay.
var (
	credentialHeaders        = []string{"Authorization", "Proxy-Authorization"}
	credentialHeaderPrefixes = []string{"X-Remote-", "Impersonate-"}
)

// serverGetter reads InferServers: the registry store's Get.
type serverGetter interface {
	Get(ctx context.Context, name string, options *metav1.GetOptions) (runtime.Object, error)
}

// ProxyREST is the proxy subresource of inferservers:
//
//	/apis/infer.mindie.io/v1alpha1/namespaces/{ns}/inferservers/{name}/proxy/{path...}
//
// forwards a request (any method, with its body, query and headers, less
// the caller's credentials) to {path} on the inference port of a ready
// instance, and streams the answer back as it comes, server-sent events
// included. A server with a router (spec.router) is reached through one of
// its router pods; for one without, an inference request (an OpenAI, TGI,
// Triton or MindIE route) is routed by pkg/router's cache_affinity in this
// process (localrouter.go), and any other path goes to the instances in
// turn. Callers need RBAC on inferservers/proxy only (verb get for GET,
// create for POST, ...), nothing on pods.
type ProxyREST struct {
	servers serverGetter
	// plain and secure dial pods over HTTP and HTTPS.
	plain, secure http.RoundTripper

	// routerToken, when set, gives the bearer token that authenticates the
	// API server to routers with Kubernetes authentication.
	routerToken atomic.Pointer[func(context.Context) (string, error)]

	// local routes the inference requests of servers without a router.
	local *localRouters

	mu sync.Mutex
	// next is the round-robin counter of each server, by namespace/name.
	next map[string]*counter
}

// RouterPodHeader, on a request of the proxy subresource of a server with a
// router, names the router pod to reach instead of one in turn: tools read
// each router's own state (kubectl mindie routes) this way. It is not
// forwarded.
const RouterPodHeader = "X-Mindie-Router-Pod"

// SetRouterToken sets how the proxy gets the bearer token it presents to
// routers with Kubernetes authentication: a token of mindie-apiserver's
// service account, which RBAC allows to create inferservers/proxy. The API
// server has authorized the caller already; the router checks the API
// server.
func (r *ProxyREST) SetRouterToken(token func(context.Context) (string, error)) {
	r.routerToken.Store(&token)
}

type counter struct {
	uid types.UID // a server recreated under the same name starts afresh
	n   atomic.Uint64
}

// maxCounters bounds the round-robin counters kept: past it they are all
// dropped, which only restarts each rotation.
const maxCounters = 4096

var (
	_ rest.Connecter = &ProxyREST{}
	_ rest.Storage   = &ProxyREST{}
)

// NewProxyREST returns the proxy subresource reading InferServers from servers.
func NewProxyREST(servers serverGetter) *ProxyREST {
	return &ProxyREST{
		servers: servers,
		plain:   newPodTransport(nil),
		// Skipping verification is confined to this transport, used only to
		// reach a pod at the IP its status records. A MindIE Server's serving
		// certificate (spec.tls.secretName, or the one of its image) is issued
		// for the service's names, not for the pod's IP, which changes with
		// every pod and is not known when the certificate is made: it could
		// never be verified against the address dialled. Which pod is reached
		// is decided by the API server from the InferServer's status, not by
		// DNS or the network, and no credential is forwarded to it.
		secure: newPodTransport(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}), //nolint:gosec // see above
		next:   map[string]*counter{},
		local:  newLocalRouters(),
	}
}

// newPodTransport returns a transport that dials IP literals only (never
// a name to resolve) and never goes through an HTTP proxy of the
// environment. It does not follow redirects: a RoundTripper never does.
func newPodTransport(tlsConfig *tls.Config) *http.Transport {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			if net.ParseIP(host) == nil {
				return nil, fmt.Errorf("refusing to dial %s: only pod IP addresses are dialled", addr)
			}
			return dialer.DialContext(ctx, network, addr)
		},
		TLSClientConfig:     tlsConfig,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
		// No ResponseHeaderTimeout: a non-streaming completion answers only
		// once the whole generation is done.
	}
}

// New returns an empty InferServer, the kind the subresource belongs to.
func (r *ProxyREST) New() runtime.Object { return &infer.InferServer{} }

// Destroy is a no-op: the main store owns the storage.
func (r *ProxyREST) Destroy() {}

// ConnectMethods are the methods forwarded.
func (r *ProxyREST) ConnectMethods() []string { return proxyMethods }

// NewConnectOptions has no options object but asks for the URL below
// .../proxy as the subpath (so that .../proxy/{path:*} is routed here).
// The path is read from the request info in Connect: an options type
// would have to be known to the group's parameter codec (metav1's, which
// knows only the meta options), and the query string belongs to the
// inference server, not to the proxy.
func (r *ProxyREST) NewConnectOptions() (runtime.Object, bool, string) {
	return nil, true, "path"
}

// Connect chooses a ready instance of the named InferServer and returns
// the handler that forwards the request to it.
func (r *ProxyREST) Connect(ctx context.Context, name string, _ runtime.Object, responder rest.Responder) (http.Handler, error) {
	info, ok := genericapirequest.RequestInfoFrom(ctx)
	if !ok {
		return nil, apierrors.NewInternalError(errors.New("no request info in the request context"))
	}
	path, err := proxyPath(info)
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	obj, err := r.servers.Get(ctx, name, &metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	s := obj.(*infer.InferServer)
	if s.Spec.Router != nil {
		return r.routerHandler(s, path, subresourcePath(info), responder), nil
	}
	target, err := chooseTarget(s, r.counterFor(s))
	if err != nil {
		return nil, err
	}
	transport := r.plain
	if target.URL.Scheme == "https" {
		transport = r.secure
	}
	forward := newProxyHandler(s, target, path, subresourcePath(info), transport, nil, responder)
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !router.IsInferenceRoute(req.Method, path) {
			forward.ServeHTTP(w, req)
			return
		}
		h, err := r.local.handler(s)
		if err != nil {
			responder.Error(apierrors.NewInternalError(err))
			return
		}
		out := req.Clone(req.Context())
		out.URL = &url.URL{Path: path, RawQuery: req.URL.RawQuery}
		out.RequestURI = ""
		stripCredentials(out.Header)
		h.ServeHTTP(w, out)
	}), nil
}

// routerHandler forwards to a ready router pod of s: the one the request
// names in RouterPodHeader, else the next in turn. Routers serve HTTPS.
func (r *ProxyREST) routerHandler(s *infer.InferServer, path, prefix string, responder rest.Responder) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		target, err := chooseRouter(s, req.Header.Get(RouterPodHeader), r.counterFor(s))
		if err != nil {
			responder.Error(err)
			return
		}
		var token string
		if s.Spec.Router.Authentication == infer.RouterAuthenticationKubernetes {
			source := r.routerToken.Load()
			if source == nil {
				responder.Error(apierrors.NewServiceUnavailable(fmt.Sprintf(
					"inferserver %q: its router authenticates callers with Kubernetes, and this API server has no service account token to present (run it with a kubeconfig)", s.Name)))
				return
			}
			if token, err = (*source)(req.Context()); err != nil {
				responder.Error(apierrors.NewServiceUnavailable(fmt.Sprintf("inferserver %q: a token for its router: %v", s.Name, err)))
				return
			}
		}
		newProxyHandler(s, target, path, prefix, r.secure, func(h http.Header) {
			h.Del(RouterPodHeader)
			if token != "" {
				h.Set("Authorization", "Bearer "+token)
			}
		}, responder).ServeHTTP(w, req)
	})
}

// chooseRouter picks a ready router pod of s with an IP: the one named pod,
// or else the next in turn by next.
func chooseRouter(s *infer.InferServer, pod string, next *atomic.Uint64) (*proxyTarget, error) {
	var candidates []proxyTarget
	total := 0
	if s.Status.Router != nil {
		total = len(s.Status.Router.Pods)
		for _, p := range s.Status.Router.Pods {
			ip := usableIP(p.PodIP)
			if !p.Ready || ip == nil || (pod != "" && p.Name != pod) {
				continue
			}
			u := &url.URL{Scheme: "https", Host: net.JoinHostPort(ip.String(), strconv.Itoa(int(*s.Spec.Ports.Inference)))}
			candidates = append(candidates, proxyTarget{URL: u, Instance: "router", Pod: p.Name})
		}
	}
	switch {
	case len(candidates) == 0 && pod != "":
		return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("inferserver %q has no ready router pod %q", s.Name, pod))
	case len(candidates) == 0:
		return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("inferserver %q has no ready router pod (%d listed in status, %d wanted)",
			s.Name, total, *s.Spec.Router.Replicas))
	}
	t := candidates[(next.Add(1)-1)%uint64(len(candidates))]
	return &t, nil
}

// counterFor returns the round-robin counter of s.
func (r *ProxyREST) counterFor(s *infer.InferServer) *atomic.Uint64 {
	key := s.Namespace + "/" + s.Name
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.next[key]
	if c == nil || c.uid != s.UID {
		if len(r.next) >= maxCounters {
			clear(r.next)
		}
		c = &counter{uid: s.UID}
		r.next[key] = c
	}
	return &c.n
}

// proxyPath is the path to forward: the request's path below
// .../inferservers/{name}/proxy, "/" if there is none. A path with "." or
// ".." segments, or control characters, is refused.
func proxyPath(info *genericapirequest.RequestInfo) (string, error) {
	if info.Subresource != ProxySubresource || len(info.Parts) < 3 {
		return "", fmt.Errorf("not a request of the %s subresource", ProxySubresource)
	}
	segs := info.Parts[3:]
	for _, seg := range segs {
		if seg == "." || seg == ".." {
			return "", fmt.Errorf("proxy path %q: the segments \".\" and \"..\" are not allowed", "/"+strings.Join(segs, "/"))
		}
		if strings.ContainsFunc(seg, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
			return "", fmt.Errorf("proxy path %q: control characters are not allowed", "/"+strings.Join(segs, "/"))
		}
	}
	p := "/" + strings.Join(segs, "/")
	if len(segs) > 0 && strings.HasSuffix(info.Path, "/") && !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p, nil
}

// subresourcePath is the path of the proxy subresource of the requested
// InferServer, without a trailing slash.
func subresourcePath(info *genericapirequest.RequestInfo) string {
	return "/" + strings.Join([]string{info.APIPrefix, info.APIGroup, info.APIVersion,
		"namespaces", info.Namespace, info.Resource, info.Name, ProxySubresource}, "/")
}

// proxyTarget is where a request goes.
type proxyTarget struct {
	// URL is scheme://podIP:port of the inference port.
	URL *url.URL
	// Instance and Pod name what URL reaches.
	Instance, Pod string
}

// chooseTarget picks, round-robin by next, one of the ready instances of s
// that has a pod to dial: its master pod, or its first ready pod if the
// master is not listed or has no IP. Only the IP the status records for
// the pod is dialled, on spec.ports.inference, over HTTPS when
// spec.tls.enabled.
func chooseTarget(s *infer.InferServer, next *atomic.Uint64) (*proxyTarget, error) {
	var candidates []proxyTarget
	ready := 0
	var skipped []string
	for i := range s.Status.Instances {
		inst := &s.Status.Instances[i]
		if !inst.Ready {
			continue
		}
		ready++
		pod, ip, reason := podToDial(inst)
		if pod == "" {
			skipped = append(skipped, fmt.Sprintf("instance %q: %s", inst.Name, reason))
			continue
		}
		candidates = append(candidates, proxyTarget{Instance: inst.Name, Pod: pod, URL: &url.URL{Host: ip.String()}})
	}
	if len(candidates) == 0 {
		// Stored objects are defaulted: replicas and ports are set.
		msg := fmt.Sprintf("inferserver %q has no ready instance (%d of %d ready)", s.Name, ready, *s.Spec.Replicas)
		if len(skipped) > 0 {
			msg += ": " + strings.Join(skipped, "; ")
		}
		return nil, apierrors.NewServiceUnavailable(msg)
	}
	t := candidates[(next.Add(1)-1)%uint64(len(candidates))]
	port := *s.Spec.Ports.Inference
	t.URL.Scheme = "http"
	if s.Spec.TLS.Enabled {
		t.URL.Scheme = "https"
	}
	t.URL.Host = net.JoinHostPort(t.URL.Host, strconv.Itoa(int(port)))
	return &t, nil
}

// podToDial returns the pod of inst to send requests to and its IP: the
// master if it is listed with a usable IP, else the first ready pod with
// one. It returns an empty name and the reason if there is none.
func podToDial(inst *infer.InstanceStatus) (string, net.IP, string) {
	for _, p := range inst.Pods {
		if p.Name == inst.Master && inst.Master != "" {
			if ip := usableIP(p.PodIP); ip != nil {
				return p.Name, ip, ""
			}
			break
		}
	}
	for _, p := range inst.Pods {
		if !p.Ready {
			continue
		}
		if ip := usableIP(p.PodIP); ip != nil {
			return p.Name, ip, ""
		}
	}
	return "", nil, "no ready pod with a pod IP"
}

// usableIP parses a pod IP from the status. Addresses no pod has (the
// unspecified address, multicast, link-local, where cloud metadata
// services live) are refused, so that a wrong status cannot aim the proxy
// at them. Loopback addresses are accepted: the simulated nodes of the
// local cluster give their pods loopback IPs.
func usableIP(s string) net.IP {
	ip := net.ParseIP(s)
	if ip == nil || ip.IsUnspecified() || ip.IsMulticast() || ip.IsLinkLocalUnicast() || ip.IsInterfaceLocalMulticast() {
		return nil
	}
	return ip
}

// newProxyHandler forwards a request to path on target. prefix is the
// path of the proxy subresource itself, to which same-host redirects of
// the inference server are rewritten.
// headers, when not nil, edits the forwarded request's headers last.
func newProxyHandler(s *infer.InferServer, target *proxyTarget, path, prefix string, transport http.RoundTripper,
	headers func(http.Header), responder rest.Responder) http.Handler {
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = &url.URL{Scheme: target.URL.Scheme, Host: target.URL.Host, Path: path, RawQuery: pr.In.URL.RawQuery}
			pr.Out.Host = target.URL.Host
			stripCredentials(pr.Out.Header)
			pr.SetXForwarded()
			if headers != nil {
				headers(pr.Out.Header)
			}
		},
		Transport: transport,
		// Write every chunk as it arrives: server-sent events of a
		// streaming completion must reach the client token by token.
		FlushInterval: -1,
		// A stream the client or the pod broke off is logged as a warning.
		ErrorLog: proxyErrorLog,
		ModifyResponse: func(resp *http.Response) error {
			return rewriteRedirect(resp, target, prefix)
		},
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			if req.Context().Err() != nil {
				return // the client went away: there is no one to answer
			}
			var status apierrors.APIStatus
			if errors.As(err, &status) {
				responder.Error(err)
				return
			}
			responder.Error(apierrors.NewServiceUnavailable(fmt.Sprintf(
				"inferserver %q: cannot reach instance %q (pod %q at %s): %v", s.Name, target.Instance, target.Pod, target.URL.Host, err)))
		},
	}
	return rp
}

var proxyErrorLog = klog.NewStandardLogger("WARNING")

// stripCredentials removes the caller's credentials and identity headers.
func stripCredentials(h http.Header) {
	for _, name := range credentialHeaders {
		h.Del(name)
	}
	for name := range h {
		for _, prefix := range credentialHeaderPrefixes {
			if len(name) >= len(prefix) && strings.EqualFold(name[:len(prefix)], prefix) {
				delete(h, name)
				break
			}
		}
	}
}

// rewriteRedirect keeps redirects on the proxy: a Location on the target
// itself is rewritten to go through the proxy subresource; one to another
// host is refused with 502 Bad Gateway, so that a client following it does
// not leave the API server for an address the inference server chose.
func rewriteRedirect(resp *http.Response, target *proxyTarget, prefix string) error {
	location := resp.Header.Get("Location")
	if resp.StatusCode < 300 || resp.StatusCode > 399 || location == "" {
		return nil
	}
	loc, err := resp.Request.URL.Parse(location)
	if err == nil && loc.Scheme == target.URL.Scheme && loc.Host == target.URL.Host {
		rewritten := &url.URL{Path: prefix + loc.Path, RawQuery: loc.RawQuery, Fragment: loc.Fragment}
		if loc.Path == "" {
			rewritten.Path = prefix + "/"
		}
		resp.Header.Set("Location", rewritten.String())
		return nil
	}
	resp.Body.Close()
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure,
		Code:   http.StatusBadGateway,
		Reason: metav1.StatusReasonServiceUnavailable,
		Message: fmt.Sprintf("instance %q (pod %q) redirected to %q, another host: the proxy does not follow redirects away from the pod",
			target.Instance, target.Pod, location),
	}}
}

// LongRunningRequestCheck extends base so that requests to the proxy
// subresource of inferservers count as long-running: the generic API
// server's default (BasicLongRunningRequestCheck with no subresources)
// would otherwise apply its request timeout (60s by default) and cut a
// long generation. Set a server's LongRunningFunc to it.
func LongRunningRequestCheck(base genericapirequest.LongRunningRequestCheck) genericapirequest.LongRunningRequestCheck {
	return func(r *http.Request, info *genericapirequest.RequestInfo) bool {
		if IsProxyRequest(info) {
			return true
		}
		return base != nil && base(r, info)
	}
}

// IsProxyRequest reports whether info is a request of the proxy subresource of inferservers.
func IsProxyRequest(info *genericapirequest.RequestInfo) bool {
	return info != nil && info.IsResourceRequest && info.APIGroup == infer.GroupName &&
		info.Resource == "inferservers" && info.Subresource == ProxySubresource
}

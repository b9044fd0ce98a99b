package apiserver

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apiserver/pkg/authentication/authenticatorfactory"
	"k8s.io/klog/v2"
)

// FrontProxyCAGate holds back requests that present a client certificate
// until the front proxy's CA bundle is loaded.
//
// Without a --requestheader-client-ca-file, k8s.io/apiserver reads the
// bundle from the ConfigMap kube-system/extension-apiserver-authentication
// through an informer that starts with serving: its first load, made before
// that informer has listed anything, finds nothing. For the first moments
// after a start, a request kube-apiserver relays would then authenticate
// as system:anonymous and be refused with a 403, which no client retries
// (it was seen right after a restart of mindie-apiserver). The gate
// answers such requests with a 503 and a Retry-After instead, which
// client-go and the aggregator's clients retry, and Ready reports the same
// to /readyz so a Service sends no traffic to a replica in that state.
//
// The gate is shut only when the front proxy is configured (the ConfigMap
// names its user headers, which are read synchronously at start), and
// once the bundle has loaded it stays open.
type FrontProxyCAGate struct {
	config *authenticatorfactory.RequestHeaderConfig
	open   atomic.Bool
	// held counts the requests answered 503, logged when the gate opens.
	held atomic.Int64
}

// NewFrontProxyCAGate returns a gate for the front proxy configuration rh
// (nil: the server has none, and the gate is always open).
func NewFrontProxyCAGate(rh *authenticatorfactory.RequestHeaderConfig) *FrontProxyCAGate {
	g := &FrontProxyCAGate{config: rh}
	if rh == nil || rh.CAContentProvider == nil {
		g.open.Store(true)
	}
	return g
}

// errFrontProxyCANotLoaded is what /readyz and a held-back request say.
var errFrontProxyCANotLoaded = errors.New("the front proxy's client CA bundle (configmap kube-system/extension-apiserver-authentication) is not loaded yet")

// Ready reports whether requests that present a client certificate can be
// authenticated; it is a /readyz check.
func (g *FrontProxyCAGate) Ready(*http.Request) error {
	if g.opened() {
		return nil
	}
	return errFrontProxyCANotLoaded
}

func (g *FrontProxyCAGate) opened() bool {
	if g.open.Load() {
		return true
	}
	if _, ok := g.config.CAContentProvider.VerifyOptions(); ok {
		if g.open.CompareAndSwap(false, true) {
			klog.InfoS("Loaded the front proxy's client CA bundle", "heldBackRequests", g.held.Load())
		}
		return true
	}
	// No user headers: kube-apiserver runs without a front proxy, and no
	// bundle is coming.
	return len(g.config.UsernameHeaders.Value()) == 0
}

// Wrap returns handler behind the gate. Health checks pass, so that
// /readyz can say why the server is not ready.
func (g *FrontProxyCAGate) Wrap(handler http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.TLS == nil || len(req.TLS.PeerCertificates) == 0 || g.opened() || healthPath(req.URL.Path) {
			handler.ServeHTTP(w, req)
			return
		}
		g.held.Add(1)
		status := apierrors.NewServiceUnavailable(errFrontProxyCANotLoaded.Error()).ErrStatus
		status.Kind, status.APIVersion = "Status", "v1"
		body, _ := json.Marshal(status)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write(body)
	})
}

func healthPath(path string) bool {
	for _, p := range []string{"/healthz", "/livez", "/readyz"} {
		if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}

package apiserver

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authentication/authenticatorfactory"
	"k8s.io/apiserver/pkg/authentication/request/headerrequest"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
)

// unloadedCA is a CA bundle whose source has not been read yet.
type unloadedCA struct{}

func (unloadedCA) Name() string                              { return "front-proxy-ca" }
func (unloadedCA) AddListener(dynamiccertificates.Listener)  {}
func (unloadedCA) CurrentCABundleContent() []byte            { return nil }
func (unloadedCA) VerifyOptions() (x509.VerifyOptions, bool) { return x509.VerifyOptions{}, false }

func TestFrontProxyCAGate(t *testing.T) {
	ca := newTestCA(t, "front-proxy-ca")
	cert := ca.client(t, "front-proxy-client", time.Now().Add(time.Hour))
	cas := &swappableCA{current: unloadedCA{}}
	rh := &authenticatorfactory.RequestHeaderConfig{
		CAContentProvider: cas,
		UsernameHeaders:   headerrequest.StaticStringSlice{"X-Remote-User"},
	}
	reached := 0
	gate := NewFrontProxyCAGate(rh)
	handler := gate.Wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { reached++ }))
	serve := func(path string, withCert bool) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "https://mindie-apiserver"+path, nil)
		req.TLS = &tls.ConnectionState{}
		if withCert {
			req.TLS.PeerCertificates = []*x509.Certificate{cert}
		}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		return rec
	}

	// Not loaded: a relayed request is held back with a status to retry.
	rec := serve("/apis/infer.mindie.io/v1alpha1/inferservers", true)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || reached != 0 {
		t.Fatalf("before the CA bundle loads: code %d, Retry-After %q, handler reached %d times; want 503 with Retry-After, not reached",
			rec.Code, rec.Header().Get("Retry-After"), reached)
	}
	var status metav1.Status
	if err := json.Unmarshal(rec.Body.Bytes(), &status); err != nil || status.Reason != metav1.StatusReasonServiceUnavailable || status.Code != http.StatusServiceUnavailable {
		t.Fatalf("held-back body %s (%v): want a Status with reason ServiceUnavailable", rec.Body, err)
	}
	if err := gate.Ready(nil); err == nil {
		t.Fatal("readyz check passes before the CA bundle loads")
	}
	// Health checks, and requests whose authentication needs no CA, pass.
	for _, c := range []struct {
		path     string
		withCert bool
	}{{"/readyz", true}, {"/livez/ping", true}, {"/apis/infer.mindie.io/v1alpha1/inferservers", false}} {
		before := reached
		if rec := serve(c.path, c.withCert); rec.Code != http.StatusOK || reached != before+1 {
			t.Errorf("%s (client certificate %t) before the CA bundle loads: code %d, reached %t; want it passed on",
				c.path, c.withCert, rec.Code, reached == before+1)
		}
	}

	// Loaded: the gate opens, and stays open.
	cas.current = staticCA(t, ca)
	if rec := serve("/apis/infer.mindie.io/v1alpha1/inferservers", true); rec.Code != http.StatusOK {
		t.Fatalf("after the CA bundle loads: code %d, want 200", rec.Code)
	}
	if err := gate.Ready(nil); err != nil {
		t.Fatalf("readyz check after the CA bundle loads: %v", err)
	}
	cas.current = unloadedCA{}
	if rec := serve("/apis/infer.mindie.io/v1alpha1/inferservers", true); rec.Code != http.StatusOK {
		t.Fatalf("gate shut again after it opened: code %d", rec.Code)
	}
	if gate.held.Load() != 1 {
		t.Errorf("held back %d requests, want 1", gate.held.Load())
	}
}

func TestFrontProxyCAGateWithoutFrontProxy(t *testing.T) {
	for name, rh := range map[string]*authenticatorfactory.RequestHeaderConfig{
		"no request header configuration": nil,
		// The ConfigMap names no user headers: kube-apiserver has no front
		// proxy, and no bundle will come.
		"no user headers": {CAContentProvider: unloadedCA{}, UsernameHeaders: headerrequest.StaticStringSlice{}},
	} {
		gate := NewFrontProxyCAGate(rh)
		if err := gate.Ready(nil); err != nil {
			t.Errorf("%s: readyz check fails: %v", name, err)
		}
	}
}

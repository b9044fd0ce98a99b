package apiserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"slices"
	"testing"
	"time"

	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/authenticatorfactory"
	"k8s.io/apiserver/pkg/authentication/request/headerrequest"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"

	"mindie.io/deployer/pkg/pki"
)

// testCA is a CA that signs client certificates.
type testCA struct{ *pki.KeyPair }

func newTestCA(t *testing.T, name string) testCA {
	t.Helper()
	ca, err := pki.NewCA(name, time.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return testCA{ca}
}

// client signs a client certificate for cn, valid until notAfter.
func (ca testCA) client(t *testing.T, cn string, notAfter time.Time) *x509.Certificate {
	t.Helper()
	pair, err := ca.Issue(pki.Request{CommonName: cn, Usage: x509.ExtKeyUsageClientAuth, NotAfter: notAfter})
	if err != nil {
		t.Fatal(err)
	}
	return pair.Cert
}

// swappableCA is a CA bundle that a test changes, as a reloaded file would.
type swappableCA struct {
	current dynamiccertificates.CAContentProvider
}

func (s *swappableCA) Name() string                             { return "front-proxy-ca" }
func (s *swappableCA) AddListener(dynamiccertificates.Listener) {}
func (s *swappableCA) CurrentCABundleContent() []byte           { return s.current.CurrentCABundleContent() }
func (s *swappableCA) VerifyOptions() (x509.VerifyOptions, bool) {
	return s.current.VerifyOptions()
}

func staticCA(t *testing.T, ca testCA) dynamiccertificates.CAContentProvider {
	t.Helper()
	p, err := dynamiccertificates.NewStaticCAContent("front-proxy-ca", ca.CertPEM())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// recordingNext stands for the generic server's authenticator: it counts
// the requests it gets and authenticates none.
type recordingNext struct{ calls int }

func (r *recordingNext) AuthenticateRequest(*http.Request) (*authenticator.Response, bool, error) {
	r.calls++
	return nil, false, nil
}

func TestFrontProxyFirst(t *testing.T) {
	proxyCA := newTestCA(t, "front-proxy-ca")
	otherCA := newTestCA(t, "client-ca")
	cas := &swappableCA{current: staticCA(t, proxyCA)}
	allowed := []string{"front-proxy-client"}
	rh := &authenticatorfactory.RequestHeaderConfig{
		UsernameHeaders:     headerrequest.StaticStringSlice{"X-Remote-User"},
		UIDHeaders:          headerrequest.StaticStringSlice{"X-Remote-Uid"},
		GroupHeaders:        headerrequest.StaticStringSlice{"X-Remote-Group"},
		ExtraHeaderPrefixes: headerrequest.StaticStringSlice{"X-Remote-Extra-"},
		CAContentProvider:   cas,
		AllowedClientNames:  headerrequest.StringSliceProviderFunc(func() []string { return allowed }),
	}
	next := &recordingNext{}
	a := FrontProxyFirst(rh, next).(*frontProxy)
	now := time.Now()
	a.now = func() time.Time { return now }
	verifications := 0
	a.verify = func(chain []*x509.Certificate, opts x509.VerifyOptions) (time.Time, error) {
		verifications++
		return verifyChain(chain, opts)
	}

	proxyCert := proxyCA.client(t, "front-proxy-client", now.Add(2*time.Hour))
	request := func(cert *x509.Certificate, name string) *http.Request {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, "https://127.0.0.1/apis", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}
		if name != "" {
			req.Header.Set("X-Remote-User", name)
			req.Header.Add("X-Remote-Group", "tenants")
			req.Header.Set("X-Remote-Extra-Scopes", "chat")
		}
		return req
	}
	// expect authenticates a request and checks who it found and how
	// many verifications and calls of next it has cost so far.
	expect := func(step string, req *http.Request, wantUser string, wantVerifications, wantNext int) {
		t.Helper()
		resp, ok, err := a.AuthenticateRequest(req)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		switch {
		case wantUser == "" && ok:
			t.Errorf("%s: authenticated as %v, want nobody", step, resp.User)
		case wantUser != "" && !ok:
			t.Errorf("%s: not authenticated, want %s", step, wantUser)
		case wantUser != "":
			u := resp.User
			if u.GetName() != wantUser || !slices.Contains(u.GetGroups(), "tenants") || !slices.Contains(u.GetGroups(), user.AllAuthenticated) ||
				!slices.Equal(u.GetExtra()["scopes"], []string{"chat"}) {
				t.Errorf("%s: user %+v", step, u)
			}
			if req.Header.Get("X-Remote-User") != "" {
				t.Errorf("%s: the user headers were left on the request", step)
			}
		}
		if verifications != wantVerifications || next.calls != wantNext {
			t.Errorf("%s: %d verifications and %d calls of next, want %d and %d", step, verifications, next.calls, wantVerifications, wantNext)
		}
	}

	expect("first request of the front proxy", request(proxyCert, "alice"), "alice", 1, 0)
	expect("same certificate, another user", request(proxyCert, "bob"), "bob", 1, 0)
	expect("front proxy without user headers", request(proxyCert, ""), "", 1, 1)

	// A client certificate of another CA is for next, once verified
	// against the front proxy's CA and then from the cache.
	direct := otherCA.client(t, "carol", now.Add(2*time.Hour))
	expect("direct client", request(direct, "mallory"), "", 2, 2)
	expect("direct client again", request(direct, "mallory"), "", 2, 3)

	// A name the allowed names no longer list is refused at once.
	allowed = []string{"someone-else"}
	expect("front proxy no longer allowed", request(proxyCert, "alice"), "", 2, 4)
	allowed = nil
	expect("any name allowed", request(proxyCert, "alice"), "alice", 2, 4)

	// After the verdict's time the chain is verified again.
	now = now.Add(frontProxyVerdictTTL + time.Second)
	expect("after the verdict's time", request(proxyCert, "alice"), "alice", 3, 4)

	// A certificate that expires before the verdict's time is verified
	// again when it has expired, and refused.
	shortLived := proxyCA.client(t, "front-proxy-client", now.Add(time.Minute))
	expect("short-lived certificate", request(shortLived, "alice"), "alice", 4, 4)
	now = now.Add(2 * time.Minute)
	expect("short-lived certificate expired", request(shortLived, "alice"), "", 5, 5)

	// A new CA bundle: the chain is verified against it, and refused.
	cas.current = staticCA(t, otherCA)
	expect("CA bundle replaced", request(proxyCert, "alice"), "", 6, 6)
	expect("direct client under the new bundle", request(direct, "carol"), "carol", 7, 6)
}

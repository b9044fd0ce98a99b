package apiserver

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"net/http"
	"slices"
	"sync"
	"time"

	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/authenticatorfactory"
	"k8s.io/apiserver/pkg/authentication/group"
	"k8s.io/apiserver/pkg/authentication/request/headerrequest"
)

const (
	// frontProxyVerdictTTL bounds how long one verification of a client
	// certificate chain is reused. The CA bundle is compared on every
	// request and the chain's expiry is kept, so the bound only caps how
	// long an entry lives.
	frontProxyVerdictTTL = 10 * time.Minute
	// frontProxyVerdicts bounds the cache; when it is full it starts
	// again empty. kube-apiserver presents one certificate (two while its
	// front-proxy certificate is rotated), direct clients one each.
	frontProxyVerdicts = 1024
)

// FrontProxyFirst returns an authenticator that authenticates requests of
// the front proxy (kube-apiserver's aggregator, by the request header
// configuration rh) as next does, but verifies each client certificate
// chain the front proxy presents once rather than on every request; every
// other request, and a front-proxy request without user headers, goes to
// next, the authenticator the generic server built from the same
// configuration.
//
// next verifies the chain with an X.509 path validation (an ECDSA or RSA
// signature check) on each request: about a tenth of the CPU a proxied GET
// costs mindie-apiserver (docs/benchmarks.md, "InferServer API against a
// CRD"). The verdict for a chain (its bytes, and the CA bundle it was
// verified against) is kept until the earliest expiry in the verified
// chain or frontProxyVerdictTTL; a changed CA bundle, or a certificate
// the allowed names no longer list, is a miss or a refusal at once. The
// user is read from the request's headers on every request, as next does.
func FrontProxyFirst(rh *authenticatorfactory.RequestHeaderConfig, next authenticator.Request) authenticator.Request {
	return &frontProxy{
		config:   rh,
		headers:  group.NewAuthenticatedGroupAdder(headerrequest.NewDynamic(rh.UsernameHeaders, rh.UIDHeaders, rh.GroupHeaders, rh.ExtraHeaderPrefixes)),
		next:     next,
		now:      time.Now,
		verify:   verifyChain,
		verdicts: map[[sha256.Size]byte]frontProxyVerdict{},
	}
}

type frontProxy struct {
	config  *authenticatorfactory.RequestHeaderConfig
	headers authenticator.Request
	next    authenticator.Request
	now     func() time.Time
	// verify is x509 path validation; a test counts its calls.
	verify func(chain []*x509.Certificate, opts x509.VerifyOptions) (until time.Time, err error)

	mu       sync.Mutex
	verdicts map[[sha256.Size]byte]frontProxyVerdict
}

// frontProxyVerdict is whether a chain verified against bundle, until when.
type frontProxyVerdict struct {
	trusted bool
	bundle  []byte
	until   time.Time
}

func (f *frontProxy) AuthenticateRequest(req *http.Request) (*authenticator.Response, bool, error) {
	if req.TLS == nil || len(req.TLS.PeerCertificates) == 0 || !f.trusted(req.TLS.PeerCertificates) {
		return f.next.AuthenticateRequest(req)
	}
	if !f.allowedName(req.TLS.PeerCertificates[0].Subject.CommonName) {
		return f.next.AuthenticateRequest(req)
	}
	if resp, ok, err := f.headers.AuthenticateRequest(req); ok || err != nil {
		return resp, ok, err
	}
	return f.next.AuthenticateRequest(req)
}

// trusted says whether chain verifies against the front proxy's current CA
// bundle, from the cache or by verifying it.
func (f *frontProxy) trusted(chain []*x509.Certificate) bool {
	opts, ok := f.config.CAContentProvider.VerifyOptions()
	if !ok {
		return false
	}
	bundle := f.config.CAContentProvider.CurrentCABundleContent()
	key := chainKey(chain)
	now := f.now()
	f.mu.Lock()
	v, hit := f.verdicts[key]
	f.mu.Unlock()
	if hit && now.Before(v.until) && bytes.Equal(v.bundle, bundle) {
		return v.trusted
	}
	opts.CurrentTime = now
	until, err := f.verify(chain, opts)
	v = frontProxyVerdict{trusted: err == nil, bundle: bundle, until: now.Add(frontProxyVerdictTTL)}
	if err == nil && until.Before(v.until) {
		v.until = until
	}
	f.mu.Lock()
	if len(f.verdicts) >= frontProxyVerdicts {
		clear(f.verdicts)
	}
	f.verdicts[key] = v
	f.mu.Unlock()
	return v.trusted
}

// allowedName applies the front proxy's allowed common names (none: any).
func (f *frontProxy) allowedName(cn string) bool {
	allowed := f.config.AllowedClientNames.Value()
	return len(allowed) == 0 || slices.Contains(allowed, cn)
}

// chainKey identifies a presented chain by its certificates' bytes.
func chainKey(chain []*x509.Certificate) [sha256.Size]byte {
	h := sha256.New()
	for _, c := range chain {
		h.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(c.Raw))))
		h.Write(c.Raw)
	}
	var key [sha256.Size]byte
	h.Sum(key[:0])
	return key
}

// verifyChain validates chain[0] with the rest of chain as intermediates
// (unless opts brings its own), as the generic server's verifier does, and
// returns the earliest expiry of the first chain it verified.
func verifyChain(chain []*x509.Certificate, opts x509.VerifyOptions) (time.Time, error) {
	if opts.Intermediates == nil && len(chain) > 1 {
		opts.Intermediates = x509.NewCertPool()
		for _, c := range chain[1:] {
			opts.Intermediates.AddCert(c)
		}
	}
	verified, err := chain[0].Verify(opts)
	if err != nil {
		return time.Time{}, err
	}
	until := chain[0].NotAfter
	for _, c := range verified[0] {
		if c.NotAfter.Before(until) {
			until = c.NotAfter
		}
	}
	return until, nil
}

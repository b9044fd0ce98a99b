package router

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"mindie.io/deployer/apis/infer/v1alpha1"
)

// The access a caller needs: create on inferservers/proxy of the server,
// as kubectl's "create" of a proxy subresource reads in RBAC.
const (
	proxyVerb        = "create"
	proxyResource    = "inferservers"
	proxySubresource = "proxy"
)

// KubernetesAuthenticator admits a request whose bearer token the API
// server accepts (TokenReview) and whose user may create inferservers/proxy
// of the server in its namespace (SubjectAccessReview). A token's verdict
// is remembered, keyed by the token's hash, for AuthCacheTTL when admitted
// and AuthCacheDeniedTTL when refused; a failure to ask the API is never
// remembered and never admits.
type KubernetesAuthenticator struct {
	client     kubernetes.Interface
	namespace  string
	server     string
	allowedTTL time.Duration
	deniedTTL  time.Duration
	verdicts   *cache.LRUExpireCache // [sha256.Size]byte -> tokenVerdict
	log        logr.Logger
}

// tokenVerdict is what a token earned: a user or a refusal.
type tokenVerdict struct {
	user *User
	err  error
}

// NewKubernetesAuthenticator checks callers of the InferServer server in
// namespace, remembering verdicts for allowedTTL (admitted) and deniedTTL
// (refused).
func NewKubernetesAuthenticator(client kubernetes.Interface, namespace, server string, allowedTTL, deniedTTL time.Duration) *KubernetesAuthenticator {
	return newKubernetesAuthenticator(client, namespace, server, allowedTTL, deniedTTL, nil)
}

// newKubernetesAuthenticator takes the cache's clock (nil: the real one).
func newKubernetesAuthenticator(client kubernetes.Interface, namespace, server string, allowedTTL, deniedTTL time.Duration, clock cache.Clock) *KubernetesAuthenticator {
	verdicts := cache.NewLRUExpireCache(authCacheSize)
	if clock != nil {
		verdicts = cache.NewLRUExpireCacheWithClock(authCacheSize, clock)
	}
	return &KubernetesAuthenticator{client: client, namespace: namespace, server: server,
		allowedTTL: allowedTTL, deniedTTL: deniedTTL, verdicts: verdicts,
		log: klog.Background().WithName("auth").WithValues("namespace", namespace, "server", server)}
}

// errNoToken is the answer to a request without credentials.
var errNoToken = errors.New("no bearer token: send Authorization: Bearer <token>, a Kubernetes token of a user or service account allowed to create inferservers/proxy of this server")

// Authenticate implements Authenticator.
func (a *KubernetesAuthenticator) Authenticate(r *http.Request) (*User, error) {
	token, ok := bearerToken(r.Header.Get("Authorization"))
	if !ok {
		return nil, errNoToken
	}
	key := sha256.Sum256([]byte(token))
	if v, ok := a.verdicts.Get(key); ok {
		v := v.(tokenVerdict)
		return v.user, v.err
	}
	ctx, cancel := context.WithTimeout(r.Context(), authReviewTimeout)
	defer cancel()
	v, err := a.review(ctx, token)
	if err != nil {
		a.log.Error(err, "cannot check a client's token")
		return nil, fmt.Errorf("%w: the router could not check the token with the Kubernetes API; retry later", ErrAuthUnavailable)
	}
	ttl := a.allowedTTL
	if v.err != nil {
		ttl = a.deniedTTL
	}
	a.verdicts.Add(key, v, ttl)
	return v.user, v.err
}

// bearerToken reads "Bearer <token>" (the scheme in any case).
func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// review asks the API who the token is and whether they may use the
// server; an error is a failure to ask, not a refusal.
func (a *KubernetesAuthenticator) review(ctx context.Context, token string) (tokenVerdict, error) {
	tr, err := a.client.AuthenticationV1().TokenReviews().Create(ctx,
		&authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		return tokenVerdict{}, fmt.Errorf("create a TokenReview: %w", err)
	}
	if !tr.Status.Authenticated {
		return tokenVerdict{err: errors.New("the bearer token is not valid: the Kubernetes API did not authenticate it")}, nil
	}
	u := tr.Status.User
	extra := make(map[string]authorizationv1.ExtraValue, len(u.Extra))
	for k, v := range u.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	sar, err := a.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User:   u.Username,
			UID:    u.UID,
			Groups: u.Groups,
			Extra:  extra,
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace:   a.namespace,
				Verb:        proxyVerb,
				Group:       v1alpha1.GroupName,
				Resource:    proxyResource,
				Subresource: proxySubresource,
				Name:        a.server,
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return tokenVerdict{}, fmt.Errorf("create a SubjectAccessReview for %q: %w", u.Username, err)
	}
	if !sar.Status.Allowed || sar.Status.Denied {
		return tokenVerdict{err: fmt.Errorf("%w: user %q may not %s %s/%s %s in namespace %s (group %s)", ErrForbidden,
			u.Username, proxyVerb, proxyResource, proxySubresource, a.server, a.namespace, v1alpha1.GroupName)}, nil
	}
	return tokenVerdict{user: &User{Name: u.Username, Groups: u.Groups}}, nil
}

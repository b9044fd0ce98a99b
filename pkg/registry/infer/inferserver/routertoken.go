package inferserver

import (
	"context"
	"fmt"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// Router tokens: TokenRequest tokens of the API server's own service
// account, asked for this long and renewed at routerTokenRenewal of their
// life, as a kubelet renews projected tokens.
const (
	routerTokenSeconds = 3600
	routerTokenRenewal = 0.8
)

// ServiceAccountToken hands out a TokenRequest token of one service account
// and renews it before it expires. It is safe for concurrent use.
type ServiceAccountToken struct {
	client          kubernetes.Interface
	namespace, name string
	now             func() time.Time

	mu      sync.Mutex
	token   string
	renewAt time.Time
}

// NewServiceAccountToken returns tokens of the service account
// namespace/name, requested through client.
func NewServiceAccountToken(client kubernetes.Interface, namespace, name string) *ServiceAccountToken {
	return &ServiceAccountToken{client: client, namespace: namespace, name: name, now: time.Now}
}

// Token returns a valid token, requesting a new one when the last is past
// its renewal time.
func (t *ServiceAccountToken) Token(ctx context.Context) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if t.token != "" && now.Before(t.renewAt) {
		return t.token, nil
	}
	tr, err := t.client.CoreV1().ServiceAccounts(t.namespace).CreateToken(ctx, t.name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](routerTokenSeconds)},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("request a token of service account %s/%s: %w", t.namespace, t.name, err)
	}
	life := tr.Status.ExpirationTimestamp.Sub(now)
	if life <= 0 {
		life = routerTokenSeconds * time.Second
	}
	t.token = tr.Status.Token
	t.renewAt = now.Add(time.Duration(float64(life) * routerTokenRenewal))
	return t.token, nil
}

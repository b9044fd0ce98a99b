package kubelet

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
)

// File names in a podKubeconfig's directory.
const (
	tokenFileName      = "token"
	kubeconfigFileName = "kubeconfig"
)

// podKubeconfig is what a real process of a pod gets instead of the
// service account volume a kubelet mounts: a temporary directory (0700)
// holding a token of the pod's service account (file "token", 0600),
// obtained through the TokenRequest API and bound to the pod, and a
// kubeconfig (file "kubeconfig", 0600) whose user reads that file
// (tokenFile, which client-go re-reads, so a refreshed token is picked up
// without a restart), whose cluster is the API server the simulator talks
// to and whose context's namespace is the pod's.
type podKubeconfig struct {
	dir       string
	tokenFile string
	path      string // of the kubeconfig

	client         kubernetes.Interface
	namespace      string
	serviceAccount string
	pod            *corev1.Pod
	// refreshIn is how long after the last token request the token must
	// be replaced.
	refreshIn time.Duration
}

// newPodKubeconfig requests a token of the service account of pod (its
// spec.serviceAccountName, else DefaultServiceAccount) bound to the pod and
// writes it and a kubeconfig for server (CA bundle ca, PEM; none: the
// system roots) into a new temporary directory. The caller removes the
// directory with remove.
func newPodKubeconfig(ctx context.Context, client kubernetes.Interface, pod *corev1.Pod, server string, ca []byte) (*podKubeconfig, error) {
	k := &podKubeconfig{client: client, namespace: pod.Namespace, serviceAccount: pod.Spec.ServiceAccountName, pod: pod}
	if k.serviceAccount == "" {
		k.serviceAccount = DefaultServiceAccount
	}
	token, err := k.requestToken(ctx)
	if err != nil {
		return nil, err
	}
	if k.dir, err = os.MkdirTemp("", fmt.Sprintf("ascend-sim-%s-%s-", pod.Namespace, pod.Name)); err != nil {
		return nil, err
	}
	k.tokenFile = filepath.Join(k.dir, tokenFileName)
	k.path = filepath.Join(k.dir, kubeconfigFileName)
	if err := k.writeToken(token); err != nil {
		k.remove()
		return nil, err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["simulated"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	cfg.AuthInfos[k.serviceAccount] = &clientcmdapi.AuthInfo{TokenFile: k.tokenFile}
	cfg.Contexts["pod"] = &clientcmdapi.Context{Cluster: "simulated", AuthInfo: k.serviceAccount, Namespace: pod.Namespace}
	cfg.CurrentContext = "pod"
	if err := clientcmd.WriteToFile(*cfg, k.path); err != nil { // 0600
		k.remove()
		return nil, fmt.Errorf("write kubeconfig: %w", err)
	}
	return k, nil
}

// requestToken asks the TokenRequest API for a token of the service
// account bound to the pod, lasting ServiceAccountTokenExpirationSeconds,
// and sets refreshIn to TokenRefreshFraction of the lifetime the API
// server granted (at least tokenRefreshMin).
func (k *podKubeconfig) requestToken(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, tokenRequestTimeout)
	defer cancel()
	asked := time.Now()
	resp, err := k.client.CoreV1().ServiceAccounts(k.namespace).CreateToken(ctx, k.serviceAccount, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{
			ExpirationSeconds: ptr.To[int64](ServiceAccountTokenExpirationSeconds),
			BoundObjectRef: &authenticationv1.BoundObjectReference{
				Kind: "Pod", APIVersion: "v1", Name: k.pod.Name, UID: k.pod.UID,
			},
		},
	}, metav1.CreateOptions{})
	if err == nil && (resp == nil || resp.Status.Token == "") {
		err = fmt.Errorf("the API server returned no token")
	}
	if err != nil {
		return "", fmt.Errorf("TokenRequest for service account %s/%s bound to pod %s: %w", k.namespace, k.serviceAccount, k.pod.Name, err)
	}
	lifetime := ServiceAccountTokenExpirationSeconds * time.Second
	if exp := resp.Status.ExpirationTimestamp; !exp.IsZero() {
		lifetime = exp.Sub(asked)
	}
	k.refreshIn = max(time.Duration(float64(lifetime)*TokenRefreshFraction), tokenRefreshMin)
	return resp.Status.Token, nil
}

// writeToken replaces the token file with token at once (a reader sees
// the old token or the new one, never a part).
func (k *podKubeconfig) writeToken(token string) error {
	tmp, err := os.CreateTemp(k.dir, tokenFileName+".*") // 0600
	if err != nil {
		return fmt.Errorf("write token: %w", err)
	}
	_, err = tmp.WriteString(token)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), k.tokenFile)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write token: %w", err)
	}
	return nil
}

// refresh replaces the token every refreshIn until ctx ends, as the kubelet
// refreshes projected service account tokens; a failure is logged to log
// and retried after tokenRetryDelay (the current token stays valid until
// its expiry).
func (k *podKubeconfig) refresh(ctx context.Context, log io.Writer) {
	wait := k.refreshIn
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		token, err := k.requestToken(ctx)
		if err == nil {
			err = k.writeToken(token)
		}
		if ctx.Err() != nil {
			return
		}
		wait = k.refreshIn
		if err != nil {
			fmt.Fprintf(log, "ascend-sim: refreshing the service account token failed (retrying in %s): %v\n", tokenRetryDelay, err)
			wait = tokenRetryDelay
		}
	}
}

// remove deletes the directory and everything in it.
func (k *podKubeconfig) remove() {
	if k.dir != "" {
		_ = os.RemoveAll(k.dir)
	}
}

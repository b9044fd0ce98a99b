package options

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// newTestOptions are options whose kubeconfig has one context, of
// namespace team-a, at a server nothing listens on.
func newTestOptions(t *testing.T) *MindieOptions {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	config := `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:1"}
contexts:
- name: c
  context: {cluster: c, namespace: team-a}
current-context: c
`
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	streams, _, _, _ := genericiooptions.NewTestIOStreams()
	o := New(streams)
	o.ConfigFlags.KubeConfig = &path
	return o
}

func TestNamespace(t *testing.T) {
	o := newTestOptions(t)
	if ns, explicit, err := o.Namespace(); ns != "team-a" || explicit || err != nil {
		t.Errorf("namespace of the context: %q %v %v, want team-a, not explicit", ns, explicit, err)
	}
	o = newTestOptions(t)
	*o.ConfigFlags.Namespace = "team-b"
	if ns, explicit, err := o.Namespace(); ns != "team-b" || !explicit || err != nil {
		t.Errorf("namespace of -n: %q %v %v, want team-b, explicit", ns, explicit, err)
	}
}

func TestClientsBuiltOnce(t *testing.T) {
	o := newTestOptions(t)
	infer, err := o.InferClient()
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := o.InferClient(); again != infer {
		t.Errorf("the infer.mindie.io client was built twice")
	}
	rc, err := o.RESTClient()
	if err != nil {
		t.Fatal(err)
	}
	if rc.Get().AbsPath(InferServersPath("team-a", "llama", "proxy", "v1", "models")).URL().Path != "/apis/infer.mindie.io/v1alpha1/namespaces/team-a/inferservers/llama/proxy/v1/models" {
		t.Errorf("proxy path %s", rc.Get().AbsPath(InferServersPath("team-a", "llama", "proxy")).URL())
	}
	if _, err := o.KubeClient(); err != nil {
		t.Fatal(err)
	}
	if ua := o.config.UserAgent; !strings.HasPrefix(ua, "kubectl-mindie/") {
		t.Errorf("user agent %q", ua)
	}
}

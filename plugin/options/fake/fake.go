// Package fake gives the commands of kubectl-mindie fake clients for their
// tests: the generated fake clientset of infer.mindie.io, client-go's fake
// clientset and a REST client whose transport a test answers, behind an
// options.MindieOptions whose streams are buffers. It also builds the
// objects tests start from, as the API server would hold them.
package fake

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	kubefake "k8s.io/client-go/kubernetes/fake"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	fakerest "k8s.io/client-go/rest/fake"
	clienttesting "k8s.io/client-go/testing"

	"mindie.io/deployer/apis/infer/v1alpha1"
	inferfake "mindie.io/deployer/pkg/generated/clientset/versioned/fake"
	"mindie.io/deployer/plugin/internal/printing"
	"mindie.io/deployer/plugin/options"
)

// kubeconfig has one context, of namespace default, so that the namespace
// is resolved by the real code and never from the environment.
const kubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster: {server: "https://cluster.test"}
contexts:
- name: fake
  context: {cluster: fake, namespace: default}
current-context: fake
`

// RecordedRequest is one request the fake REST transport received.
type RecordedRequest struct {
	Method, Path, Query, Accept, ContentType string
	// Header holds all the request's headers.
	Header http.Header
	Body   []byte
}

// Result is what one run of a command printed, and its exit code.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Options are options.MindieOptions with fake clients. The command under
// test runs below a root command as kubectl-mindie's, with the kubectl
// flags; every run gets fresh flags and streams, the clients stay.
type Options struct {
	*options.MindieOptions

	Infer *inferfake.Clientset
	Kube  *kubefake.Clientset
	// The streams of the last run (or of New).
	Stdin, Stdout, Stderr *bytes.Buffer

	newCmd     func(*options.MindieOptions) *cobra.Command
	kubeconfig string
	rest       *rest.RESTClient

	mu       sync.Mutex
	requests []RecordedRequest
	handler  func(*http.Request) *http.Response
}

// New returns options whose clients hold objects (InferServers and
// EdgeDeployments in the infer.mindie.io clientset, the others in
// client-go's), for running the command newCmd makes (nil for a test that
// builds its own command tree on f.MindieOptions). The REST client
// answers 404 until SetHandler.
func New(t testing.TB, newCmd func(*options.MindieOptions) *cobra.Command, objects ...runtime.Object) *Options {
	t.Helper()
	var infer, kube []runtime.Object
	for _, o := range objects {
		switch o.(type) {
		case *v1alpha1.InferServer, *v1alpha1.EdgeDeployment:
			infer = append(infer, o)
		default:
			kube = append(kube, o)
		}
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	f := &Options{
		Infer:      inferfake.NewSimpleClientset(infer...),
		Kube:       kubefake.NewSimpleClientset(kube...),
		newCmd:     newCmd,
		kubeconfig: path,
		handler: func(r *http.Request) *http.Response {
			return StatusResponse(http.StatusNotFound, metav1.StatusReasonNotFound, "no handler for "+r.URL.Path)
		},
	}
	rc, err := f.restClient()
	if err != nil {
		t.Fatal(err)
	}
	f.rest = rc
	f.Reset()
	return f
}

// Reset gives the options fresh flags and streams, as every run does:
// flags do not carry over from one run to the next.
func (f *Options) Reset() {
	f.Stdin, f.Stdout, f.Stderr = &bytes.Buffer{}, &bytes.Buffer{}, &bytes.Buffer{}
	o := options.New(genericiooptions.IOStreams{In: f.Stdin, Out: f.Stdout, ErrOut: f.Stderr})
	o.ConfigFlags = genericclioptions.NewConfigFlags(false)
	o.ConfigFlags.KubeConfig = &f.kubeconfig
	o.Infer, o.Kube, o.REST = f.Infer, f.Kube, f.rest
	f.MindieOptions = o
}

// restClient is a REST client whose transport records every request and
// answers with the handler.
func (f *Options) restClient() (*rest.RESTClient, error) {
	client := fakerest.CreateHTTPClient(func(r *http.Request) (*http.Response, error) {
		var body []byte
		if r.Body != nil {
			body, _ = io.ReadAll(r.Body)
		}
		f.mu.Lock()
		f.requests = append(f.requests, RecordedRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
			Accept: r.Header.Get("Accept"), ContentType: r.Header.Get("Content-Type"), Header: r.Header.Clone(), Body: body})
		h := f.handler
		f.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		resp := h(r)
		resp.Request = r
		return resp, nil
	})
	cfg := &rest.Config{
		Host:    "https://cluster.test",
		APIPath: "/api",
		ContentConfig: rest.ContentConfig{
			GroupVersion:         &corev1.SchemeGroupVersion,
			NegotiatedSerializer: clientgoscheme.Codecs.WithoutConversion(),
		},
	}
	return rest.RESTClientForConfigAndClient(cfg, client)
}

// SetHandler makes h answer the REST client's requests.
func (f *Options) SetHandler(h func(*http.Request) *http.Response) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handler = h
}

// Recorded returns the requests the REST client made, oldest first.
func (f *Options) Recorded() []RecordedRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]RecordedRequest(nil), f.requests...)
}

// Run runs "kubectl mindie" with args (and stdin) against the fake clients.
func (f *Options) Run(t testing.TB, stdin string, args ...string) Result {
	t.Helper()
	return f.RunContext(t, context.Background(), stdin, args...)
}

// RunContext is Run with a context, to interrupt the command.
func (f *Options) RunContext(t testing.TB, ctx context.Context, stdin string, args ...string) Result {
	t.Helper()
	f.Reset()
	f.Stdin.WriteString(stdin)
	root := &cobra.Command{
		Use:           "kubectl-mindie",
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl mindie"},
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetIn(f.Stdin)
	root.SetOut(f.Stdout)
	root.SetErr(f.Stderr)
	f.AddKubectlFlags(root)
	root.AddCommand(f.newCmd(f.MindieOptions))
	root.SetContext(ctx)
	root.SetArgs(args)
	code := 0
	if err := root.Execute(); err != nil {
		printing.Error(f.Stderr, err)
		code = 1
	}
	return Result{Stdout: f.Stdout.String(), Stderr: f.Stderr.String(), Code: code}
}

// MustRun runs the command and fails the test unless it succeeds; it
// returns what the command printed on stdout.
func (f *Options) MustRun(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	r := f.Run(t, stdin, args...)
	if r.Code != 0 {
		t.Fatalf("kubectl mindie %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// FailRun runs the command and fails the test unless it exits 1 with one
// "error: " line containing each of want.
func (f *Options) FailRun(t testing.TB, stdin string, args []string, want ...string) Result {
	t.Helper()
	r := f.Run(t, stdin, args...)
	if r.Code != 1 {
		t.Fatalf("kubectl mindie %s: exit %d, want 1\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	if !strings.HasPrefix(r.Stderr, "error: ") {
		t.Errorf("kubectl mindie %s: stderr does not start with \"error: \":\n%s", strings.Join(args, " "), r.Stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.Stderr, w) {
			t.Errorf("kubectl mindie %s: stderr lacks %q:\n%s", strings.Join(args, " "), w, r.Stderr)
		}
	}
	return r
}

// WatchWith makes the fake clientset answer watches of InferServers with
// the given states, one after the other.
func (f *Options) WatchWith(states ...*v1alpha1.InferServer) {
	w := watch.NewFakeWithChanSize(len(states), false)
	for _, s := range states {
		w.Modify(s)
	}
	f.Infer.PrependWatchReactor("inferservers", clienttesting.DefaultWatchReactor(w, nil))
}

// Actions returns the fake clientset's actions of verb on resource.
func Actions(c interface{ Actions() []clienttesting.Action }, verb, resource string) []clienttesting.Action {
	var out []clienttesting.Action
	for _, a := range c.Actions() {
		if a.GetVerb() == verb && a.GetResource().Resource == resource {
			out = append(out, a)
		}
	}
	return out
}

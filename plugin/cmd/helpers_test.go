package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	kubefake "k8s.io/client-go/kubernetes/fake"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	fakerest "k8s.io/client-go/rest/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/generated/clientset/versioned"
	inferfake "mindie.io/deployer/pkg/generated/clientset/versioned/fake"
)

// recordedRequest is one request the fake REST transport received.
type recordedRequest struct {
	Method, Path, Query, Accept, ContentType string
	Body                                     []byte
}

// testFactory gives the commands fake clients: the generated fake
// clientset, client-go's fake clientset and a REST client whose transport
// answers with handler (and records every request).
type testFactory struct {
	flags *genericclioptions.ConfigFlags
	infer *inferfake.Clientset
	kube  *kubefake.Clientset

	mu       sync.Mutex
	requests []recordedRequest
	handler  func(*http.Request) *http.Response
}

func newTestFactory(t *testing.T, objects ...runtime.Object) *testFactory {
	t.Helper()
	var infer, kube []runtime.Object
	for _, o := range objects {
		if _, ok := o.(*v1alpha1.InferServer); ok {
			infer = append(infer, o)
		} else {
			kube = append(kube, o)
		}
	}
	return &testFactory{
		flags: genericclioptions.NewConfigFlags(false),
		infer: inferfake.NewSimpleClientset(infer...),
		kube:  kubefake.NewSimpleClientset(kube...),
		handler: func(r *http.Request) *http.Response {
			return jsonResponse(http.StatusNotFound, metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
				Status: metav1.StatusFailure, Reason: metav1.StatusReasonNotFound, Code: 404, Message: "no handler for " + r.URL.Path})
		},
	}
}

func (f *testFactory) Namespace() (string, bool, error) {
	if f.flags.Namespace != nil && *f.flags.Namespace != "" {
		return *f.flags.Namespace, true, nil
	}
	return "default", false, nil
}

func (f *testFactory) InferClient() (versioned.Interface, error) { return f.infer, nil }

func (f *testFactory) KubeClient() (kubernetes.Interface, error) { return f.kube, nil }

func (f *testFactory) RESTClient() (*rest.RESTClient, error) {
	client := fakerest.CreateHTTPClient(func(r *http.Request) (*http.Response, error) {
		var body []byte
		if r.Body != nil {
			body, _ = io.ReadAll(r.Body)
		}
		f.mu.Lock()
		f.requests = append(f.requests, recordedRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
			Accept: r.Header.Get("Accept"), ContentType: r.Header.Get("Content-Type"), Body: body})
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

func (f *testFactory) setHandler(h func(*http.Request) *http.Response) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handler = h
}

func (f *testFactory) recorded() []recordedRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recordedRequest(nil), f.requests...)
}

// result is what one run of the plugin printed.
type result struct {
	stdout, stderr string
	code           int
}

// run runs the plugin with args (and stdin) against the fake clients.
func (f *testFactory) run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return f.runContext(t, context.Background(), stdin, args...)
}

func (f *testFactory) runContext(t *testing.T, ctx context.Context, stdin string, args ...string) result {
	t.Helper()
	streams, in, out, errOut := genericiooptions.NewTestIOStreams()
	in.WriteString(stdin)
	// Flags do not carry over from one run to the next.
	f.flags = genericclioptions.NewConfigFlags(false)
	root := NewRootCommand(f, f.flags, streams)
	root.SetContext(ctx)
	code := Execute(root, args)
	return result{stdout: out.String(), stderr: errOut.String(), code: code}
}

// mustRun runs the plugin and fails the test unless it succeeds.
func (f *testFactory) mustRun(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	r := f.run(t, stdin, args...)
	if r.code != 0 {
		t.Fatalf("kubectl mindie %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// failRun runs the plugin and fails the test unless it exits 1 with one
// "error: " line containing each of want.
func (f *testFactory) failRun(t *testing.T, stdin string, args []string, want ...string) result {
	t.Helper()
	r := f.run(t, stdin, args...)
	if r.code != 1 {
		t.Fatalf("kubectl mindie %s: exit %d, want 1\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	if !strings.HasPrefix(r.stderr, "error: ") {
		t.Errorf("kubectl mindie %s: stderr does not start with \"error: \":\n%s", strings.Join(args, " "), r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("kubectl mindie %s: stderr lacks %q:\n%s", strings.Join(args, " "), w, r.stderr)
		}
	}
	return r
}

// actions returns the fake clientset's actions of verb on resource.
func actions(c interface{ Actions() []clienttesting.Action }, verb, resource string) []clienttesting.Action {
	var out []clienttesting.Action
	for _, a := range c.Actions() {
		if a.GetVerb() == verb && a.GetResource().Resource == resource {
			out = append(out, a)
		}
	}
	return out
}

func jsonResponse(code int, v any) *http.Response {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return &http.Response{StatusCode: code, Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(bytes.NewReader(data))}
}

func textResponse(code int, contentType, body string) *http.Response {
	return &http.Response{StatusCode: code, Header: http.Header{"Content-Type": {contentType}}, Body: io.NopCloser(strings.NewReader(body))}
}

func statusResponse(code int, reason metav1.StatusReason, msg string) *http.Response {
	return jsonResponse(code, metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status: metav1.StatusFailure, Reason: reason, Code: int32(code), Message: msg})
}

// server returns an InferServer as the API server would hold it, defaulted.
func server(ns, name string, mutate ...func(*v1alpha1.InferServer)) *v1alpha1.InferServer {
	s := &v1alpha1.InferServer{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID("uid-" + name), Generation: 1,
			CreationTimestamp: metav1.NewTime(time.Now().Add(-time.Hour))},
		Spec: v1alpha1.InferServerSpec{
			Replicas:         ptr.To(int32(2)),
			NodesPerInstance: ptr.To(int32(1)),
			Image:            "mindie:server",
			Resources:        v1alpha1.InferResources{NPU: v1alpha1.NPURequest{Type: v1alpha1.NPUTypeAscend910, Count: ptr.To(int32(8))}},
		},
	}
	for _, m := range mutate {
		m(s)
	}
	return s
}

// available makes s a fully rolled out, available InferServer.
func available(s *v1alpha1.InferServer) {
	n := *s.Spec.Replicas
	s.Status.ObservedGeneration = s.Generation
	s.Status.Replicas, s.Status.UpdatedReplicas, s.Status.ReadyReplicas, s.Status.AvailableReplicas = n, n, n, n
	s.Status.Conditions = []metav1.Condition{
		{Type: v1alpha1.ConditionAvailable, Status: metav1.ConditionTrue, Reason: "MinimumInstancesAvailable"},
		{Type: v1alpha1.ConditionProgressing, Status: metav1.ConditionTrue, Reason: "RolloutComplete"},
		{Type: v1alpha1.ConditionDegraded, Status: metav1.ConditionFalse, Reason: "AsExpected"},
	}
}

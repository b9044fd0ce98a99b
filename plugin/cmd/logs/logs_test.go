package logs

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	clienttesting "k8s.io/client-go/testing"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/plugin/options/fake"
)

func pod(ns, name, serverName, instance string, phase corev1.PodPhase) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID("uid-" + name), Labels: map[string]string{v1alpha1.LabelServer: serverName}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "server"}, {Name: "sidecar"}}},
		Status:     corev1.PodStatus{Phase: phase},
	}
	if instance != "" {
		p.Labels[v1alpha1.LabelInstance] = instance
	}
	return p
}

// logHandler answers pod log requests with "<pod> line N" lines.
func logHandler(r *http.Request) *http.Response {
	parts := strings.Split(r.URL.Path, "/")
	if len(parts) != 8 || parts[7] != "log" {
		return fake.StatusResponse(404, metav1.StatusReasonNotFound, "not a log request: "+r.URL.Path)
	}
	p := parts[6]
	if p == "llama-2-pending" {
		return fake.StatusResponse(400, metav1.StatusReasonBadRequest, `container "server" in pod "llama-2-pending" is waiting to start: ContainerCreating`)
	}
	return fake.TextResponse(200, "text/plain", p+" line 1\n"+p+" line 2\n"+p+" last line without newline")
}

func TestLogsMerged(t *testing.T) {
	s := fake.InferServer("default", "llama")
	f := fake.New(t, NewCmdLogs, s,
		pod("default", "llama-1", "llama", "", corev1.PodRunning),
		pod("default", "llama-0-b", "llama", "llama-0", corev1.PodRunning),
		pod("default", "llama-0-a", "llama", "llama-0", corev1.PodRunning),
		pod("default", "other-0", "other", "", corev1.PodRunning))
	f.SetHandler(logHandler)
	out := f.MustRun(t, "", "logs", "llama", "--tail=20", "--since=90s", "--timestamps")
	want := `[llama-0/llama-0-a] llama-0-a line 1
[llama-0/llama-0-a] llama-0-a line 2
[llama-0/llama-0-a] llama-0-a last line without newline
[llama-0/llama-0-b] llama-0-b line 1
[llama-0/llama-0-b] llama-0-b line 2
[llama-0/llama-0-b] llama-0-b last line without newline
[llama-1/llama-1] llama-1 line 1
[llama-1/llama-1] llama-1 line 2
[llama-1/llama-1] llama-1 last line without newline
`
	if out != want {
		t.Errorf("logs:\n%s\nwant:\n%s", out, want)
	}
	reqs := f.Recorded()
	if len(reqs) != 3 {
		t.Fatalf("%d log requests, want 3", len(reqs))
	}
	q, _ := url.ParseQuery(reqs[0].Query)
	if reqs[0].Path != "/api/v1/namespaces/default/pods/llama-0-a/log" || q.Get("container") != "server" || q.Get("tailLines") != "20" ||
		q.Get("sinceSeconds") != "90" || q.Get("timestamps") != "true" || q.Has("follow") {
		t.Errorf("log request %s?%s", reqs[0].Path, reqs[0].Query)
	}
	if sel := fake.Actions(f.Kube, "list", "pods")[0].(clienttesting.ListActionImpl).GetListRestrictions().Labels.String(); sel != "infer.mindie.io/server=llama" {
		t.Errorf("pods listed with selector %q", sel)
	}
}

func TestLogsOptions(t *testing.T) {
	withDefault := pod("default", "llama-1", "llama", "", corev1.PodRunning)
	withDefault.Annotations = map[string]string{defaultContainerAnnotation: "sidecar"}
	f := fake.New(t, NewCmdLogs, fake.InferServer("default", "llama"),
		pod("default", "llama-0", "llama", "llama-0", corev1.PodRunning), withDefault)
	f.SetHandler(logHandler)

	// One instance, without prefixes.
	out := f.MustRun(t, "", "logs", "llama", "--instance=llama-0", "--prefix=false")
	if out != "llama-0 line 1\nllama-0 line 2\nllama-0 last line without newline\n" {
		t.Errorf("logs --instance=llama-0 --prefix=false:\n%s", out)
	}
	// A pod without the instance label is its own instance.
	out = f.MustRun(t, "", "logs", "llama", "--instance=llama-1")
	if !strings.HasPrefix(out, "[llama-1/llama-1] llama-1 line 1\n") || strings.Contains(out, "llama-0") {
		t.Errorf("logs --instance=llama-1:\n%s", out)
	}
	reqs := f.Recorded()
	if q, _ := url.ParseQuery(reqs[len(reqs)-1].Query); q.Get("container") != "sidecar" || q.Has("tailLines") || q.Has("sinceSeconds") {
		t.Errorf("log request of a pod with a default container: %s", reqs[len(reqs)-1].Query)
	}
	// -c wins.
	f.MustRun(t, "", "logs", "llama", "--instance=llama-1", "-c", "server")
	reqs = f.Recorded()
	if q, _ := url.ParseQuery(reqs[len(reqs)-1].Query); q.Get("container") != "server" {
		t.Errorf("logs -c server: %s", reqs[len(reqs)-1].Query)
	}

	// No pods.
	r := f.Run(t, "", "logs", "llama", "--instance=llama-9")
	if r.Code != 0 || r.Stdout != "" || r.Stderr != "InferServer \"llama\" has no pods in instance \"llama-9\".\n" {
		t.Errorf("logs of no pods: %+v", r)
	}
	// No InferServer.
	f.FailRun(t, "", []string{"logs", "nope"}, `inferservers.infer.mindie.io "nope" not found`)
}

func TestLogsColourAndErrors(t *testing.T) {
	f := fake.New(t, NewCmdLogs, fake.InferServer("default", "llama"),
		pod("default", "llama-0", "llama", "", corev1.PodRunning),
		pod("default", "llama-1", "llama", "", corev1.PodRunning),
		pod("default", "llama-2-pending", "llama", "", corev1.PodPending))
	f.SetHandler(logHandler)
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	on := true
	f.IOStreams = streams
	o := &logsOptions{MindieOptions: f.MindieOptions, tail: -1, prefix: true, maxLogRequests: 10, colour: &on}
	err := o.run(context.Background(), "llama")
	if err == nil || !strings.Contains(err.Error(), `[llama-2-pending/llama-2-pending] container "server" in pod "llama-2-pending" is waiting to start`) {
		t.Errorf("logs with a pending pod: error %v", err)
	}
	got := out.String()
	c0, c1 := colours[0]+"[llama-0/llama-0] "+colourReset, colours[1]+"[llama-1/llama-1] "+colourReset
	if !strings.Contains(got, c0+"llama-0 line 1\n") || !strings.Contains(got, c1+"llama-1 line 1\n") {
		t.Errorf("coloured logs:\n%q", got)
	}
	if errOut.Len() != 0 {
		t.Errorf("stderr: %s", errOut.String())
	}
	// Not a terminal: no colour.
	r := f.Run(t, "", "logs", "llama")
	if r.Code != 1 || strings.Contains(r.Stdout, "\x1b[") || !strings.Contains(r.Stdout, "[llama-1/llama-1] llama-1 line 2\n") {
		t.Errorf("logs to a buffer: %+v", r)
	}
}

// pipeLogs serves every log request with a pipe the test writes to.
type pipeLogs struct {
	mu      sync.Mutex
	writers map[string]*io.PipeWriter
	opened  chan string
}

func (p *pipeLogs) handler(r *http.Request) *http.Response {
	parts := strings.Split(r.URL.Path, "/")
	pr, pw := io.Pipe()
	p.mu.Lock()
	p.writers[parts[6]] = pw
	p.mu.Unlock()
	go func() {
		<-r.Context().Done()
		pw.CloseWithError(r.Context().Err())
	}()
	p.opened <- parts[6]
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/plain"}}, Body: pr}
}

func (p *pipeLogs) write(t *testing.T, pod, text string) {
	p.mu.Lock()
	w := p.writers[pod]
	p.mu.Unlock()
	if _, err := io.WriteString(w, text); err != nil {
		t.Errorf("writing the log of %s: %v", pod, err)
	}
}

func TestLogsFollow(t *testing.T) {
	f := fake.New(t, NewCmdLogs, fake.InferServer("default", "llama"),
		pod("default", "llama-0", "llama", "", corev1.PodRunning),
		pod("default", "llama-1", "llama", "", corev1.PodPending))
	p := &pipeLogs{writers: map[string]*io.PipeWriter{}, opened: make(chan string, 10)}
	f.SetHandler(p.handler)
	streams, _, out, _ := genericiooptions.NewTestIOStreams()
	f.IOStreams = streams
	o := &logsOptions{MindieOptions: f.MindieOptions, follow: true, tail: 5, prefix: true, maxLogRequests: 10, relist: 50 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- o.run(ctx, "llama") }()

	wait := func(want string) {
		t.Helper()
		select {
		case got := <-p.opened:
			if got != want {
				t.Fatalf("followed %s, want %s", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s not followed", want)
		}
	}
	wait("llama-0")
	p.write(t, "llama-0", "first\n")
	// The pending pod starts: it is followed from then on, and so is a new pod.
	pending, _ := f.Kube.CoreV1().Pods("default").Get(ctx, "llama-1", metav1.GetOptions{})
	pending.Status.Phase = corev1.PodRunning
	if _, err := f.Kube.CoreV1().Pods("default").UpdateStatus(ctx, pending, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	wait("llama-1")
	if _, err := f.Kube.CoreV1().Pods("default").Create(ctx, pod("default", "llama-2", "llama", "", corev1.PodRunning), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wait("llama-2")
	p.write(t, "llama-1", "second\n")
	p.write(t, "llama-2", "third\n")
	p.write(t, "llama-0", "fourth\n")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("logs -f ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("logs -f does not end when cancelled")
	}
	// Every goroutine has ended: the buffer is the test's again.
	got := out.String()
	for _, want := range []string{"[llama-0/llama-0] first\n", "[llama-1/llama-1] second\n", "[llama-2/llama-2] third\n", "[llama-0/llama-0] fourth\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("logs -f lacks %q:\n%s", want, got)
		}
	}
	for _, r := range f.Recorded() {
		if q, _ := url.ParseQuery(r.Query); q.Get("follow") != "true" || q.Get("tailLines") != "5" {
			t.Errorf("log request %s?%s, want follow and tailLines=5", r.Path, r.Query)
		}
	}
}

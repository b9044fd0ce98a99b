package main

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"mindie.io/deployer/test/testutil"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/router"
)

func TestRunRefusesBadInvocations(t *testing.T) {
	backends := testutil.WriteFile(t, "backends.yaml", "- {name: a, inference: http://127.0.0.1:1}\n")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no instances", nil, "no instances: expected --static-backends FILE"},
		{"both sources", []string{"--static-backends", backends, "--server", "llama"}, "--server=llama: expected one of them, not both"},
		{"unknown flag", []string{"--port", "1"}, "flag provided but not defined: -port"},
		{"stray argument", []string{"serve"}, "takes only flags"},
		{"unknown algorithm", []string{"--static-backends", backends, "--algorithm", "random"}, "--algorithm=random: expected one of round_robin, cache_affinity, least_load"},
		{"namespace without a server", []string{"--static-backends", backends, "--namespace", "infer"}, "only with --server"},
		{"kubernetes auth without a server", []string{"--static-backends", backends, "--authentication", "kubernetes"}, "--authentication=kubernetes: needs --server NAME"},
		{"tokens in clear", []string{"--server", "llama", "--authentication", "kubernetes", "--insecure-http"}, "--insecure-http=true: not with --authentication=kubernetes"},
		{"no cluster", []string{"--server", "llama"}, "no cluster here"},
		{"missing file", []string{"--static-backends", filepath.Join(t.TempDir(), "absent.yaml")}, "--static-backends: open"},
		{"bad file", []string{"--static-backends", testutil.WriteFile(t, "bad.yaml", "- {name: a}\n")}, "[0].inference=\"\": required"},
		{"missing instance CA", []string{"--static-backends", backends, "--instance-ca-file", filepath.Join(t.TempDir(), "ca.crt")}, "--instance-ca-file: open"},
		{"CA and no verification", []string{"--static-backends", backends, "--instance-ca-file", "ca.crt", "--instance-insecure-skip-verify"}, "not with --instance-ca-file"},
		{"negative shutdown delay", []string{"--static-backends", backends, "--shutdown-delay=-1s"}, "--shutdown-delay=-1s: expected 0"},
		{"lease in fractions of seconds", []string{"--static-backends", backends, "--pd-lease-duration=1500ms"}, "--pd-lease-duration=1.5s: expected whole seconds"},
		{"lease renewed too late", []string{"--static-backends", backends, "--pd-lease-renew-deadline=10s"}, "--pd-lease-duration=10s: expected more than --pd-lease-renew-deadline (10s)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stderr testutil.SyncBuffer
			e := env{stderr: &stderr, kubernetesClient: func(string, string) (kubernetes.Interface, string, error) {
				return nil, "", errors.New("no cluster here")
			}}
			if code := run(context.Background(), c.args, e); code != exitUsage {
				t.Errorf("exit %d, want %d", code, exitUsage)
			}
			if !strings.Contains(stderr.String(), c.want) {
				t.Errorf("stderr %q lacks %q", stderr.String(), c.want)
			}
		})
	}
}

func TestRunServesAndStops(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"generated_text":"hi"}`)
	}))
	defer backend.Close()
	backends := testutil.WriteFile(t, "backends.json", `[{"name":"only","inference":"`+backend.URL+`"}]`)
	ctx, stop := context.WithCancel(context.Background())
	addr := make(chan net.Addr, 1)
	exit := make(chan int, 1)
	var stderr testutil.SyncBuffer
	go func() {
		exit <- run(ctx, []string{"--listen", "127.0.0.1:0", "--static-backends", backends, "--algorithm", "round_robin", "--insecure-http",
			"--shutdown-delay", "1s"},
			env{stderr: &stderr, listening: func(a net.Addr) { addr <- a }})
	}()
	var url string
	select {
	case a := <-addr:
		url = "http://" + a.String()
	case code := <-exit:
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("never ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := http.Post(url+"/generate", "application/json", strings.NewReader(`{"inputs":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Mindie-Instance") != "only" || string(body) != `{"generated_text":"hi"}` {
		t.Errorf("got %d %v %s", resp.StatusCode, resp.Header, body)
	}
	stop()
	// The signal: not ready at once, but still serving for --shutdown-delay.
	for {
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			t.Fatalf("/readyz after the signal: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline.Add(5 * time.Second)) {
			t.Fatal("/readyz still 200 after the signal")
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, err = http.Post(url+"/generate", "application/json", strings.NewReader(`{"inputs":"x"}`))
	if err != nil {
		t.Fatalf("a request during --shutdown-delay was refused: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("a request during --shutdown-delay: %d", resp.StatusCode)
	}
	select {
	case code := <-exit:
		if code != exitOK {
			t.Errorf("exit %d after the signal: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("did not stop")
	}
}

// TestRunInKubernetes runs the command with --server over a fake cluster:
// one pod of InferServer infer/llama whose IP and port are a fake
// instance's on 127.0.0.1, tokens checked by TokenReview and
// SubjectAccessReview, served over HTTPS with a self-signed certificate.
func TestRunInKubernetes(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			t.Errorf("the instance got the client's Authorization")
		}
		io.WriteString(w, `{"generated_text":"hi"}`)
	}))
	defer backend.Close()
	_, port, _ := net.SplitHostPort(backend.Listener.Addr().String())
	portNum, _ := strconv.Atoi(port)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "llama-a", Namespace: "infer",
			Labels: map[string]string{v1alpha1.LabelServer: "llama", v1alpha1.LabelMaster: "true"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "mindie",
			Ports: []corev1.ContainerPort{{Name: "inference", ContainerPort: int32(portNum)}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "127.0.0.1",
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
	client := fake.NewClientset(pod)
	client.PrependReactor("create", "tokenreviews", func(action k8stesting.Action) (bool, runtime.Object, error) {
		tr := action.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview).DeepCopy()
		tr.Status.Authenticated = tr.Spec.Token == "good"
		tr.Status.User.Username = "alice"
		return true, tr, nil
	})
	client.PrependReactor("create", "subjectaccessreviews", func(action k8stesting.Action) (bool, runtime.Object, error) {
		sar := action.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview).DeepCopy()
		a := sar.Spec.ResourceAttributes
		sar.Status.Allowed = sar.Spec.User == "alice" && a.Namespace == "infer" && a.Name == "llama" && a.Subresource == "proxy"
		return true, sar, nil
	})

	ctx, stop := context.WithCancel(context.Background())
	addr := make(chan net.Addr, 1)
	exit := make(chan int, 1)
	var stderr testutil.SyncBuffer
	e := env{stderr: &stderr, listening: func(a net.Addr) { addr <- a },
		kubernetesClient: func(kubeconfig, namespace string) (kubernetes.Interface, string, error) {
			if kubeconfig != "" || namespace != "infer" {
				t.Errorf("client for --kubeconfig=%q --namespace=%q", kubeconfig, namespace)
			}
			return client, namespace, nil
		}}
	go func() {
		exit <- run(ctx, []string{"--listen", "127.0.0.1:0", "--server", "llama", "--namespace", "infer",
			"--authentication", "kubernetes", "--shutdown-delay=0"}, e)
	}()
	var url string
	select {
	case a := <-addr:
		url = "https://" + a.String()
	case code := <-exit:
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	// The self-signed certificate is not what this test checks (the
	// package's tests do); the wiring is.
	https := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := https.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("never ready: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, c := range []struct {
		token string
		want  int
	}{{"", http.StatusUnauthorized}, {"bad", http.StatusUnauthorized}, {"good", http.StatusOK}} {
		req, _ := http.NewRequest(http.MethodPost, url+"/generate", strings.NewReader(`{"inputs":"x"}`))
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		resp, err := https.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("token %q: %d, want %d", c.token, resp.StatusCode, c.want)
		}
		if c.want == http.StatusOK && resp.Header.Get("X-Mindie-Instance") != "llama-a" {
			t.Errorf("served by %q, want the pod llama-a", resp.Header.Get("X-Mindie-Instance"))
		}
	}
	stop()
	select {
	case code := <-exit:
		if code != exitOK {
			t.Errorf("exit %d after the signal: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("did not stop")
	}
}

// With --server, the routers of a Prefill/Decode server campaign for the
// Lease <server>-router-pd, and give it up when they stop.
func TestRunTakesThePDLease(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "llama-p", Namespace: "infer",
			Labels:      map[string]string{v1alpha1.LabelServer: "llama", v1alpha1.LabelMaster: "true", v1alpha1.LabelRole: router.RolePrefill, v1alpha1.LabelGroup: "0"},
			Annotations: map[string]string{v1alpha1.AnnotationPDID: "0"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "mindie",
			Ports: []corev1.ContainerPort{{Name: "inference", ContainerPort: 1}, {Name: "management", ContainerPort: 2}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "127.0.0.1",
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
	client := fake.NewClientset(pod)
	ctx, stop := context.WithCancel(context.Background())
	exit := make(chan int, 1)
	var stderr testutil.SyncBuffer
	e := env{stderr: &stderr, kubernetesClient: func(string, string) (kubernetes.Interface, string, error) { return client, "infer", nil }}
	go func() {
		exit <- run(ctx, []string{"--listen", "127.0.0.1:0", "--server", "llama", "--insecure-http", "--shutdown-delay=0",
			"--pd-lease-duration=1s", "--pd-lease-renew-deadline=600ms", "--pd-lease-retry-period=200ms"}, e)
	}()
	holder := func() string {
		l, err := client.CoordinationV1().Leases("infer").Get(context.Background(), router.PDLeaseName("llama"), metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return ""
		}
		return *l.Spec.HolderIdentity
	}
	deadline := time.Now().Add(5 * time.Second)
	for holder() == "" {
		if time.Now().After(deadline) {
			t.Fatalf("no lease taken: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	select {
	case code := <-exit:
		if code != exitOK {
			t.Errorf("exit %d: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("did not stop")
	}
	if h := holder(); h != "" {
		t.Errorf("the lease is still held by %q after the router stopped", h)
	}
}

package main

import (
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"

	"mindie.io/deployer/apis/infer"
	"mindie.io/deployer/apis/infer/install"
	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/apis/infer/validation"
)

func TestRequestsOf(t *testing.T) {
	log := `I1201 10:00:00.000001   42 loader.go:402] Config loaded from file:  /tmp/kubeconfig
I1201 10:00:00.100000   42 round_trippers.go:632] "Response" verb="GET" url="https://127.0.0.1:6443/apis/infer.mindie.io/v1alpha1/namespaces/a/inferservers/x" status="200 OK" milliseconds=4
I1201 10:00:00.200000   42 round_trippers.go:632] "Response" verb="GET" url="https://127.0.0.1:6443/api/v1/namespaces/a/events?fieldSelector=involvedObject.kind%3DInferServer" status="200 OK" milliseconds=12
I1201 10:00:00.300000   42 round_trippers.go:632] "Response" verb="GET" url="https://127.0.0.1:6443/api/v1/pods" status="" milliseconds=0
I1201 10:00:00.400000   42 round_trippers.go:632] "Response" verb="GET" url="https://127.0.0.1:6443/api/v1/pods?continue=eyJ2IjoibWV0YS5rOHMu&limit=500" status="200 OK" milliseconds=7
`
	got := requestsOf([]byte(log))
	want := []string{
		"GET /apis/infer.mindie.io/v1alpha1/namespaces/a/inferservers/x 200, 4 ms",
		"GET /api/v1/namespaces/a/events?fieldSelector=involvedObject.kind%3DInferServer 200, 12 ms",
		"GET /api/v1/pods no response, 0 ms",
		"GET /api/v1/pods?continue=<token>&limit=500 200, 7 ms",
	}
	if !slices.Equal(got, want) {
		t.Errorf("requestsOf:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := requestsOf([]byte("nothing logged\n")); got != nil {
		t.Errorf("no requests: %v", got)
	}
}

func TestCommandEnv(t *testing.T) {
	env := commandEnv([]string{"PATH=/usr/bin:/bin", "HOME=/root", "KUBECONFIG=/other", "LANG=C"}, "/out/bin", "/tmp/home", "/out/kubeconfig")
	want := []string{"LANG=C", "PATH=/out/bin:/usr/bin:/bin", "HOME=/tmp/home", "KUBECONFIG=/out/kubeconfig"}
	if !slices.Equal(env, want) {
		t.Errorf("commandEnv: %v, want %v", env, want)
	}
	if env := commandEnv(nil, "/b", "/h", "/k"); !slices.Contains(env, "PATH=/b") {
		t.Errorf("without PATH: %v", env)
	}
}

func TestCommandLine(t *testing.T) {
	got := commandLine([]string{"get", "pods", "-l", "infer.mindie.io/server=x", "-o", "json"})
	if want := "kubectl get pods -l 'infer.mindie.io/server=x' -o json"; got != want {
		t.Errorf("commandLine: %q, want %q", got, want)
	}
}

// TestSpecsValid: both servers pass the API's validation once defaulted,
// and a simulated node of 8 NPUs, 192 CPUs and 1536 GiB holds 8 of the
// status server's pods.
func TestSpecsValid(t *testing.T) {
	scheme := runtime.NewScheme()
	install.Install(scheme)
	for name, spec := range map[string]v1alpha1.InferServerSpec{"status": statusSpec(256), "list": listSpec()} {
		s := &v1alpha1.InferServer{Spec: spec}
		s.Name, s.Namespace = "pb", "ns"
		scheme.Default(s)
		internal := &infer.InferServer{}
		if err := scheme.Convert(s, internal, nil); err != nil {
			t.Fatal(err)
		}
		if errs := validation.ValidateInferServer(internal); len(errs) > 0 {
			t.Errorf("%s: %v", name, errs.ToAggregate())
		}
	}
	r := resources()
	if cpu := r.CPU.DeepCopy(); cpu.Cmp(resource.MustParse("24")) > 0 {
		t.Errorf("%s CPUs a pod: 8 do not fit 192", r.CPU)
	}
	if mem := r.Memory.DeepCopy(); mem.Cmp(resource.MustParse("192Gi")) > 0 {
		t.Errorf("%s a pod: 8 do not fit 1536Gi", r.Memory)
	}
	if *r.NPU.Count != 1 {
		t.Errorf("%d NPUs an instance, want 1", *r.NPU.Count)
	}
	if y := serverYAML("pb-<i>", listSpec()); !strings.Contains(y, "paused: true") || !strings.HasPrefix(y, "metadata: {name: pb-<i>}\nspec: {replicas: 1,") {
		t.Errorf("serverYAML: %s", y)
	}
}

package kubelet

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/test/testutil"
)

// helperEnv, set in a container's env, makes the test binary act as the
// router (helperMain) instead of running the tests.
const helperEnv = "KUBELET_TEST_HELPER_PROCESS"

// helperReportPrefix starts the line in which the helper reports what it
// got.
const helperReportPrefix = "HELPER-REPORT "

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(helperMain(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// helperReport is what the helper process got, printed on its stdout.
type helperReport struct {
	Args       []string `json:"args"`
	Env        []string `json:"env"`
	Dir        string   `json:"dir"`
	Listen     string   `json:"listen"` // the address it serves on
	Kubeconfig string   `json:"kubeconfig"`
	Token      string   `json:"token"` // the content of the token file next to the kubeconfig
}

// helperMain is a tiny stand-in for mindie-router. Flags (all optional):
// --listen=HOST:PORT serves GET /readyz (200) and GET /token (the token
// file's content) there; --kubeconfig=FILE is read and reported;
// --exit-code=N exits at once with N after the report; --ignore-sigterm
// ignores SIGTERM; --term-file=FILE is written when SIGTERM comes. It
// prints a helperReport line, then serves until SIGTERM, upon which it
// exits with 0.
func helperMain(args []string) int {
	terms := make(chan os.Signal, 1)
	signal.Notify(terms, syscall.SIGTERM)
	flags := map[string]string{}
	for _, a := range args {
		name, value, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		flags[name] = value
	}
	rep := helperReport{Args: args, Env: os.Environ()}
	rep.Dir, _ = os.Getwd()
	if kc := flags["kubeconfig"]; kc != "" {
		b, _ := os.ReadFile(kc)
		rep.Kubeconfig = string(b)
		t, _ := os.ReadFile(filepath.Join(filepath.Dir(kc), tokenFileName))
		rep.Token = string(t)
	}
	if addr, ok := flags["listen"]; ok {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "helper: %v\n", err)
			return 1
		}
		rep.Listen = ln.Addr().String()
		mux := http.NewServeMux()
		mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
		mux.HandleFunc("GET /token", func(w http.ResponseWriter, _ *http.Request) {
			t, _ := os.ReadFile(filepath.Join(filepath.Dir(flags["kubeconfig"]), tokenFileName))
			_, _ = w.Write(t)
		})
		go func() { _ = http.Serve(ln, mux) }()
	}
	b, _ := json.Marshal(rep)
	fmt.Printf("%s%s\n", helperReportPrefix, b)
	fmt.Fprintln(os.Stderr, "helper: to stderr")
	if v, ok := flags["exit-code"]; ok {
		code, _ := strconv.Atoi(v)
		return code
	}
	for range terms {
		fmt.Println("helper: got SIGTERM")
		if f := flags["term-file"]; f != "" {
			_ = os.WriteFile(f, []byte("SIGTERM"), 0o600)
		}
		if _, ok := flags["ignore-sigterm"]; !ok {
			return 0
		}
	}
	return 0
}

// routerBinary links the test binary as <temp dir>/mindie-router.
func routerBinary(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), RouterCommand)
	if err := os.Symlink(self, link); err != nil {
		t.Fatal(err)
	}
	return link
}

// tokenRequests is a reactor for the TokenRequest API of a fake clientset:
// it answers tok-1, tok-2, ... valid for lifetime (the asked lifetime when
// 0) and records the requests.
type tokenRequests struct {
	lifetime time.Duration
	fail     bool

	mu   sync.Mutex
	reqs []tokenRequest
}

type tokenRequest struct {
	namespace, serviceAccount string
	spec                      authenticationv1.TokenRequestSpec
}

func (r *tokenRequests) install(c *fake.Clientset) {
	c.PrependReactor("create", "serviceaccounts", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "token" {
			return false, nil, nil
		}
		ca := a.(k8stesting.CreateActionImpl)
		req := ca.GetObject().(*authenticationv1.TokenRequest).DeepCopy()
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.fail {
			return true, nil, errors.New("service account not found (test)")
		}
		r.reqs = append(r.reqs, tokenRequest{namespace: ca.GetNamespace(), serviceAccount: ca.Name, spec: req.Spec})
		life := r.lifetime
		if life == 0 {
			life = time.Duration(*req.Spec.ExpirationSeconds) * time.Second
		}
		req.Status = authenticationv1.TokenRequestStatus{Token: fmt.Sprintf("tok-%d", len(r.reqs)),
			ExpirationTimestamp: metav1.NewTime(time.Now().Add(life))}
		return true, req, nil
	})
}

func (r *tokenRequests) all() []tokenRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reqs)
}

func routerTestPod(name, sa string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "team-a", UID: types.UID("uid-" + name)},
		Spec:       corev1.PodSpec{ServiceAccountName: sa},
	}
}

func TestPodKubeconfig(t *testing.T) {
	client := fake.NewClientset()
	tr := &tokenRequests{lifetime: time.Second} // refreshed after tokenRefreshMin
	tr.install(client)
	ctx := context.Background()
	ca := []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
	k, err := newPodKubeconfig(ctx, client, routerTestPod("r-0", ""), "https://127.0.0.1:16443", ca)
	if err != nil {
		t.Fatal(err)
	}
	defer k.remove()
	want := tokenRequest{namespace: "team-a", serviceAccount: DefaultServiceAccount, spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: new(int64(ServiceAccountTokenExpirationSeconds)),
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: "r-0", UID: "uid-r-0"},
	}}
	if diff := cmp.Diff([]tokenRequest{want}, tr.all(), cmp.AllowUnexported(tokenRequest{})); diff != "" {
		t.Errorf("token requests (-want +got):\n%s", diff)
	}
	for path, mode := range map[string]os.FileMode{k.dir: 0o700 | os.ModeDir, k.tokenFile: 0o600, k.path: 0o600} {
		if st, err := os.Stat(path); err != nil || st.Mode() != mode {
			t.Errorf("%s: mode %v (%v), want %v", path, st.Mode(), err, mode)
		}
	}
	if b, _ := os.ReadFile(k.tokenFile); string(b) != "tok-1" {
		t.Errorf("token file holds %q, want tok-1", b)
	}
	// The kubeconfig as client-go reads it.
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: k.path}, &clientcmd.ConfigOverrides{})
	rc, err := loader.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	if rc.Host != "https://127.0.0.1:16443" || string(rc.CAData) != string(ca) || rc.BearerTokenFile != k.tokenFile || rc.BearerToken != "tok-1" {
		t.Errorf("rest config: host %q, CA %q, token file %q, token %q", rc.Host, rc.CAData, rc.BearerTokenFile, rc.BearerToken)
	}
	if ns, _, err := loader.Namespace(); err != nil || ns != "team-a" {
		t.Errorf("namespace %q (%v), want team-a", ns, err)
	}

	// Refreshed in the background: a new token replaces the file.
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		k.refresh(rctx, io.Discard)
	}()
	eventually(t, "token refresh", func() (bool, string) {
		b, _ := os.ReadFile(k.tokenFile)
		return string(b) == "tok-2", string(b)
	})
	stop()
	<-done
	if n := len(tr.all()); n < 2 || n > 3 {
		t.Errorf("%d token requests, want 2 (or 3)", n)
	}
	entries, _ := os.ReadDir(k.dir)
	if len(entries) != 2 {
		t.Errorf("directory holds %v, want the token and the kubeconfig only", entries)
	}
	k.remove()
	if _, err := os.Stat(k.dir); !os.IsNotExist(err) {
		t.Errorf("directory not removed: %v", err)
	}

	// The pod's own service account.
	k2, err := newPodKubeconfig(ctx, client, routerTestPod("r-1", "router"), "https://127.0.0.1:16443", nil)
	if err != nil {
		t.Fatal(err)
	}
	k2.remove()
	if reqs := tr.all(); reqs[len(reqs)-1].serviceAccount != "router" || reqs[len(reqs)-1].spec.BoundObjectRef.UID != "uid-r-1" {
		t.Errorf("last request %+v, want service account router bound to uid-r-1", reqs[len(reqs)-1])
	}

	tr.fail = true
	if _, err := newPodKubeconfig(ctx, client, routerTestPod("r-2", ""), "https://127.0.0.1:16443", nil); err == nil ||
		!strings.Contains(err.Error(), "TokenRequest for service account team-a/default bound to pod r-2: service account not found") {
		t.Errorf("err = %v, want a TokenRequest error", err)
	}
}

// routerSpec is a WorkloadSpec for a router container of pod running the
// helper with args, logging to log.
func routerSpec(pod *corev1.Pod, podIP string, log io.Writer, args ...string) WorkloadSpec {
	return WorkloadSpec{Pod: pod, PodIP: podIP, Log: log, Container: corev1.Container{
		Name:    "router",
		Command: []string{"/usr/local/bin/mindie-router", "--listen=$(POD_IP):0"},
		Args:    args,
		Env: []corev1.EnvVar{{Name: helperEnv, Value: "1"},
			fieldEnv("POD_IP", "status.podIP"), fieldEnv("POD_NAME", "metadata.name")},
	}}
}

// readReport waits for the helper's report in log.
func readReport(t *testing.T, log fmt.Stringer) helperReport {
	t.Helper()
	var rep helperReport
	eventually(t, "the helper's report", func() (bool, string) {
		sc := bufio.NewScanner(strings.NewReader(log.String()))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if _, js, ok := strings.Cut(sc.Text(), helperReportPrefix); ok {
				if err := json.Unmarshal([]byte(js), &rep); err != nil {
					t.Fatal(err)
				}
				return true, ""
			}
		}
		return false, log.String()
	})
	return rep
}

func testPodIP() string { return fmt.Sprintf("127.1.%d.%d", 100+rand.IntN(150), 2+rand.IntN(200)) }

func TestRouterProcess(t *testing.T) {
	t.Setenv("KUBELET_TEST_LEAK", "must not reach the process")
	client := fake.NewClientset()
	tr := &tokenRequests{}
	tr.install(client)
	start := defaultWorkloadStarter(Config{Client: client, RouterBinary: routerBinary(t),
		APIServer: "https://127.0.0.1:16443", APIServerCA: []byte("CA")})
	pod, ip := routerTestPod("router-0", "router"), testPodIP()
	var log testutil.SyncBuffer
	w, err := start(context.Background(), routerSpec(pod, ip, &log, "--name=$(POD_NAME)", "--literal=$$(POD_IP)", "--unknown=$(NOPE)"))
	if err != nil {
		t.Fatal(err)
	}
	rep := readReport(t, &log)

	kubeconfig := filepath.Join(rep.Dir, kubeconfigFileName)
	want := []string{"--listen=" + ip + ":0", "--name=router-0", "--literal=$(POD_IP)", "--unknown=$(NOPE)", "--kubeconfig=" + kubeconfig}
	if diff := cmp.Diff(want, rep.Args); diff != "" {
		t.Errorf("args (-want +got):\n%s", diff)
	}
	if host, _, _ := net.SplitHostPort(rep.Listen); host != ip {
		t.Errorf("serving on %s, want the pod IP %s", rep.Listen, ip)
	}
	if !strings.Contains(rep.Kubeconfig, "server: https://127.0.0.1:16443") || !strings.Contains(rep.Kubeconfig, "tokenFile: "+filepath.Join(rep.Dir, tokenFileName)) ||
		!strings.Contains(rep.Kubeconfig, "namespace: team-a") {
		t.Errorf("kubeconfig:\n%s", rep.Kubeconfig)
	}
	if rep.Token != "tok-1" {
		t.Errorf("token %q, want tok-1", rep.Token)
	}
	if reqs := tr.all(); len(reqs) != 1 || reqs[0].serviceAccount != "router" || reqs[0].spec.BoundObjectRef.Name != "router-0" {
		t.Errorf("token requests %+v", reqs)
	}
	for _, v := range []string{helperEnv + "=1", "POD_IP=" + ip, "POD_NAME=router-0", "HOSTNAME=router-0"} {
		if !slices.Contains(rep.Env, v) {
			t.Errorf("env %q lacks %s", rep.Env, v)
		}
	}
	for _, v := range rep.Env {
		name, _, _ := strings.Cut(v, "=")
		if !slices.Contains([]string{"PATH", "HOME", "TMPDIR", "HOSTNAME", helperEnv, "POD_IP", "POD_NAME"}, name) {
			t.Errorf("unexpected variable %s in the process's env", v)
		}
	}
	resp, err := http.Get("http://" + rep.Listen + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz: %s", resp.Status)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Stop(ctx); err != nil {
		t.Errorf("Stop: %v", err)
	}
	select {
	case <-w.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}
	if code := w.(ExitCoder).ExitCode(); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	for _, s := range []string{"helper: to stderr", "helper: got SIGTERM", "exited with code 0"} {
		if !strings.Contains(log.String(), s) {
			t.Errorf("log lacks %q:\n%s", s, log.String())
		}
	}
	if _, err := os.Stat(rep.Dir); !os.IsNotExist(err) {
		t.Errorf("the process's directory %s is still there: %v", rep.Dir, err)
	}
}

func TestRouterProcessExitCodes(t *testing.T) {
	client := fake.NewClientset()
	(&tokenRequests{}).install(client)
	p := &processStarter{binary: routerBinary(t), client: client, server: "https://127.0.0.1:16443"}

	t.Run("exits on its own", func(t *testing.T) {
		var log testutil.SyncBuffer
		w, err := p.start(context.Background(), routerSpec(routerTestPod("r-3", ""), testPodIP(), &log, "--exit-code=3"))
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-w.Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("the process did not exit; log:\n%s", log.String())
		}
		if code := w.(ExitCoder).ExitCode(); code != 3 {
			t.Errorf("exit code %d, want 3", code)
		}
		if err := w.Stop(context.Background()); err != nil {
			t.Errorf("Stop after the exit: %v", err)
		}
	})

	t.Run("killed when it ignores SIGTERM", func(t *testing.T) {
		var log testutil.SyncBuffer
		w, err := p.start(context.Background(), routerSpec(routerTestPod("r-4", ""), testPodIP(), &log, "--ignore-sigterm"))
		if err != nil {
			t.Fatal(err)
		}
		readReport(t, &log) // SIGTERM is handled from now on
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_ = w.Stop(ctx)
		if code := w.(ExitCoder).ExitCode(); code != 128+int32(syscall.SIGKILL) {
			t.Errorf("exit code %d, want 137 (SIGKILL)", code)
		}
		if !strings.Contains(log.String(), "helper: got SIGTERM") {
			t.Errorf("no SIGTERM before the SIGKILL; log:\n%s", log.String())
		}
	})

	t.Run("SIGTERM when the pod goes away", func(t *testing.T) {
		var log testutil.SyncBuffer
		ctx, cancel := context.WithCancel(context.Background())
		w, err := p.start(ctx, routerSpec(routerTestPod("r-5", ""), testPodIP(), &log))
		if err != nil {
			t.Fatal(err)
		}
		readReport(t, &log)
		cancel()
		select {
		case <-w.Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("the process did not exit; log:\n%s", log.String())
		}
		if code := w.(ExitCoder).ExitCode(); code != 0 {
			t.Errorf("exit code %d, want 0", code)
		}
	})
}

func TestRouterProcessStartErrors(t *testing.T) {
	client := fake.NewClientset()
	spec := routerSpec(routerTestPod("r-6", ""), testPodIP(), io.Discard)
	for _, tc := range []struct {
		name string
		p    *processStarter
		want string
	}{
		{"no binary", &processStarter{client: client, server: "https://127.0.0.1:16443"},
			`RunContainerError: exec "/usr/local/bin/mindie-router": this simulated node has no mindie-router binary (start ascend-sim with --router-binary=PATH`},
		{"no API server", &processStarter{binary: "/bin/true", client: client},
			"no API server URL"},
		{"no token", &processStarter{binary: "/bin/true", client: client, server: "https://127.0.0.1:16443"}, // no reactor: the fake fails
			"RunContainerError: service account token: TokenRequest for service account team-a/default bound to pod r-6"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := tc.p.start(context.Background(), spec)
			if err == nil {
				_ = w.Stop(context.Background())
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	(&tokenRequests{}).install(client)
	p := &processStarter{binary: filepath.Join(t.TempDir(), "nosuch", RouterCommand), client: client, server: "https://127.0.0.1:16443"}
	if _, err := p.start(context.Background(), spec); err == nil || !strings.Contains(err.Error(), "no such file or directory") {
		t.Errorf("err = %v, want the exec error", err)
	}
}

// Through the simulator: a pod whose router container runs the real
// process next to a MindIE simulator container; the router's readiness
// probe reaches it on the pod IP, and deleting the pod sends it SIGTERM.
func TestRouterPodThroughSimulator(t *testing.T) {
	client := fake.NewClientset()
	tr := &tokenRequests{}
	tr.install(client)
	cfg := Config{Client: client, NodeCount: 1, PodCIDR: testCIDR(), RouterBinary: routerBinary(t), APIServer: "https://127.0.0.1:16443"}
	cfg.StartWorkload = defaultWorkloadStarter(cfg)
	sim, _, _ := startSimConfig(t, cfg)
	termFile := filepath.Join(t.TempDir(), "term")
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "router-pod", Namespace: "default", UID: "uid-router-pod"},
		Spec: corev1.PodSpec{NodeName: "ascend-0", Containers: []corev1.Container{{
			Name: "router", Image: "router:sim",
			Command: []string{"mindie-router"},
			Args:    []string{"--listen=$(POD_IP):18100", "--term-file=" + termFile},
			Env:     []corev1.EnvVar{{Name: helperEnv, Value: "1"}, fieldEnv("POD_IP", "status.podIP")},
			Ports:   []corev1.ContainerPort{{Name: "http", ContainerPort: 18100}},
			ReadinessProbe: &corev1.Probe{PeriodSeconds: 1, ProbeHandler: corev1.ProbeHandler{
				HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromString("http")}}},
		}, {
			Name: "mindie", Image: "mindie:sim",
			Ports: []corev1.ContainerPort{{ContainerPort: 18080}, {ContainerPort: 18081}},
		}}},
	}
	pods := client.CoreV1().Pods("default")
	if _, err := pods.Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := waitPod(t, pods, pod.Name, "ready", func(p *corev1.Pod) bool { return podCondition(p, corev1.PodReady) == corev1.ConditionTrue })
	if reqs := tr.all(); len(reqs) != 1 || reqs[0].serviceAccount != DefaultServiceAccount || reqs[0].spec.BoundObjectRef.UID != pod.UID {
		t.Errorf("token requests %+v, want one for service account default bound to the pod", reqs)
	}
	clog, _, msg := sim.findLog("default", pod.Name, "router", false)
	if clog == nil {
		t.Fatal(msg)
	}
	var text strings.Builder
	lines, _, _ := clog.snapshot()
	for _, l := range lines {
		text.WriteString(l.text + "\n")
	}
	rep := readReport(t, &text)
	if rep.Listen != p.Status.PodIP+":18100" {
		t.Errorf("the router serves on %s, want the pod IP %s:18100", rep.Listen, p.Status.PodIP)
	}
	if _, isMindIE := sim.podWorkload(t, pod.Name, "mindie").(*mindieWorkload); !isMindIE {
		t.Error("container mindie does not run the MindIE simulator")
	}
	// Graceful deletion, as the API server does it: deletionTimestamp set.
	p.DeletionTimestamp = ptr.To(metav1.Now())
	p.DeletionGracePeriodSeconds = ptr.To[int64](30)
	if _, err := pods.Update(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "SIGTERM to the router", func() (bool, string) {
		_, err := os.Stat(termFile)
		return err == nil, fmt.Sprint(err)
	})
	eventually(t, "the process's directory removed", func() (bool, string) {
		_, err := os.Stat(rep.Dir)
		return os.IsNotExist(err), fmt.Sprint(err)
	})
	eventually(t, "the pod deleted", func() (bool, string) {
		_, err := pods.Get(context.Background(), pod.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
}

// podWorkload returns the running workload of a container of a pod.
func (s *Simulator) podWorkload(t *testing.T, pod, container string) Workload {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if ps := s.pods["default/"+pod]; ps != nil {
		for _, cs := range ps.containers {
			if cs.spec.Name == container {
				return cs.workload
			}
		}
	}
	t.Fatalf("no container %s in pod %s", container, pod)
	return nil
}

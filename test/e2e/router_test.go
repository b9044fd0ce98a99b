package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"

	"mindie.io/deployer/apis/infer/v1alpha1"
)

// The router on the local cluster: an InferServer with spec.router gets
// router pods that run the real mindie-router binary on simulated nodes,
// authenticate callers with Kubernetes tokens, and keep serving while an
// instance dies and while the instances roll.

const routerNS = "team-a"

// serviceAccountToken makes a service account in ns bound to clusterRole
// there and returns a token of it.
func serviceAccountToken(t *testing.T, ns, name, clusterRole string) string {
	t.Helper()
	mustKubectl(t, "", "-n", ns, "create", "serviceaccount", name)
	mustKubectl(t, "", "-n", ns, "create", "rolebinding", name, "--clusterrole="+clusterRole, "--serviceaccount="+ns+":"+name)
	t.Cleanup(func() {
		kubectl(t, "", "-n", ns, "delete", "rolebinding,serviceaccount", name, "--ignore-not-found", "--wait=false")
	})
	return strings.TrimSpace(mustKubectl(t, "", "-n", ns, "create", "token", name, "--duration=1h"))
}

// typedServer reads an InferServer into its Go type.
func typedServer(t *testing.T, ns, name string) *v1alpha1.InferServer {
	t.Helper()
	out := mustKubectl(t, "", "get", "inferserver", name, "-n", ns, "-o", "json")
	var s v1alpha1.InferServer
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("decoding InferServer %s: %v", name, err)
	}
	return &s
}

// waitRouted waits until the server is Available with every instance and
// router replica ready, and returns it.
func waitRouted(t *testing.T, ns, name string, instances, routers int32) *v1alpha1.InferServer {
	t.Helper()
	var s *v1alpha1.InferServer
	eventually(t, 4*time.Minute, time.Second, "InferServer "+name+" Available with its router", func() (bool, string) {
		s = typedServer(t, ns, name)
		r := s.Status.Router
		ready := 0
		if r != nil {
			for _, p := range r.Pods {
				if p.Ready && p.PodIP != "" {
					ready++
				}
			}
		}
		ok := s.Status.ObservedGeneration == s.Generation && meta.IsStatusConditionTrue(s.Status.Conditions, v1alpha1.ConditionAvailable) &&
			s.Status.ReadyReplicas == instances && s.Status.UpdatedReplicas == instances && s.Status.Replicas == instances &&
			r != nil && r.ReadyReplicas == routers && r.UpdatedReplicas == routers && ready == int(routers) && len(r.Pods) == int(routers)
		return ok, fmt.Sprintf("status %+v", s.Status)
	})
	return s
}

// routerClient trusts the CA of the router's self-signed certificate,
// read from its TLS handshake, and writes that CA to a PEM file.
func routerClient(t *testing.T, addr string) (*http.Client, string) {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // reads the certificate to trust
	if err != nil {
		t.Fatalf("TLS to the router at %s: %v", addr, err)
	}
	chain := conn.ConnectionState().PeerCertificates
	conn.Close()
	ca := chain[len(chain)-1]
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	file := filepath.Join(t.TempDir(), "router-ca.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}, file
}

// routerChat sends one chat completion (a new conversation asking
// question) to the router as token and returns the status code, the
// instance that served it and the body.
func routerChat(client *http.Client, base, token, question string) (int, string, string, error) {
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/chat/completions", strings.NewReader(
		fmt.Sprintf(`{"model":"llama3-8b-sim","messages":[{"role":"user","content":%q}],"max_tokens":8}`, question)))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, servedBy(resp), string(body), nil
}

// servedBy names the instance that served an answer: the router's
// X-Mindie-Instance, and for a Prefill/Decode server "<prefill>+<decode>".
func servedBy(resp *http.Response) string {
	if d := resp.Header.Get("X-Mindie-Decode-Instance"); d != "" {
		return resp.Header.Get("X-Mindie-Instance") + "+" + d
	}
	return resp.Header.Get("X-Mindie-Instance")
}

// traffic sends chats from workers until stopped, counting every outcome.
type traffic struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	failures   []string
	served     map[string]int
	stop       chan struct{}
	wg         sync.WaitGroup
	n          atomic.Int64
}

func startTraffic(client *http.Client, base, token string, workers int) *traffic {
	tr := &traffic{stop: make(chan struct{}), served: map[string]int{}}
	for range workers {
		tr.wg.Add(1)
		go func() {
			defer tr.wg.Done()
			for {
				select {
				case <-tr.stop:
					return
				default:
				}
				// Distinct conversations spread over the instances.
				question := fmt.Sprintf("Question %d: what is an NPU?", tr.n.Add(1))
				code, instance, body, err := routerChat(client, base, token, question)
				tr.mu.Lock()
				if err != nil || code != http.StatusOK {
					tr.failed.Add(1)
					tr.failures = append(tr.failures, fmt.Sprintf("%d %v %s", code, err, body))
				} else {
					tr.ok.Add(1)
					tr.served[instance]++
				}
				tr.mu.Unlock()
			}
		}()
	}
	return tr
}

// busiest is the instance that served the most so far.
func (tr *traffic) busiest() (string, int) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	best, n := "", 0
	for instance, c := range tr.served {
		if c > n {
			best, n = instance, c
		}
	}
	return best, n
}

func (tr *traffic) finish() {
	close(tr.stop)
	tr.wg.Wait()
}

func TestRouter(t *testing.T) {
	name := uniqueName("routed")
	chatter := serviceAccountToken(t, routerNS, uniqueName("chatter"), "edit")
	outsider := serviceAccountToken(t, "team-b", uniqueName("outsider"), "edit")

	createInferServer(t, "tenant-a-editor", routerNS, name, 2,
		`resources: {npu: {count: 1}}, router: {replicas: 2, algorithm: cache_affinity}`)
	s := waitRouted(t, routerNS, name, 2, 2)
	if s.Status.Router.Endpoint != fmt.Sprintf("https://%s.%s.svc:1025", name, routerNS) || s.Status.Router.Algorithm != v1alpha1.RouterCacheAffinity {
		t.Errorf("status.router %+v", s.Status.Router)
	}

	// The Service reaches the routers, which run as their own service
	// account with exactly the pod access they need.
	sel := mustKubectl(t, "", "-n", routerNS, "get", "service", name, "-o", "jsonpath={.spec.selector}")
	if !strings.Contains(sel, v1alpha1.LabelRouter) {
		t.Errorf("service selector %s", sel)
	}
	sa := "system:serviceaccount:" + routerNS + ":" + name + "-router"
	for verb, want := range map[string]string{"list pods": "yes", "watch pods": "yes", "delete pods": "no", "get secrets": "no",
		"create tokenreviews.authentication.k8s.io": "yes"} {
		args := append([]string{"-n", routerNS, "auth", "can-i"}, strings.Fields(verb)...)
		if got := strings.TrimSpace(kubectl(t, "", append(args, "--as="+sa)...).stdout); got != want {
			t.Errorf("router service account: can-i %s = %q, want %q", verb, got, want)
		}
	}

	// Straight to a router pod: Kubernetes authentication and RBAC.
	routerPod := s.Status.Router.Pods[0]
	addr := net.JoinHostPort(routerPod.PodIP, "1025")
	if ip := net.ParseIP(routerPod.PodIP); ip == nil || !ip.IsLoopback() {
		t.Fatalf("router pod IP %q is not loopback", routerPod.PodIP)
	}
	client, caFile := routerClient(t, addr)
	base := "https://" + addr
	code, instance, body, err := routerChat(client, base, chatter, "What is an NPU?")
	if err != nil || code != http.StatusOK || !strings.HasPrefix(instance, name+"-") || !strings.Contains(body, "choices") {
		t.Fatalf("chat through router pod %s as a tenant allowed on inferservers/proxy: %d %q %v %s", routerPod.Name, code, instance, err, body)
	}
	for who, c := range map[string]struct {
		token string
		code  int
	}{"anonymous": {"", http.StatusUnauthorized}, "another tenant": {outsider, http.StatusForbidden}, "a bad token": {"x", http.StatusUnauthorized}} {
		code, _, body, err := routerChat(client, base, c.token, "What is an NPU?")
		if err != nil || code != c.code || !strings.Contains(body, `"error"`) {
			t.Errorf("%s: %d %v %s, want %d with an OpenAI-shaped error", who, code, err, body, c.code)
		}
	}

	// Through the API server: kubectl mindie chat reaches the router.
	if out := mustMindie(t, "tenant-a-editor", "", "chat", name, "-n", routerNS, "-m", "What is an NPU?", "--max-tokens=8"); strings.TrimSpace(out) == "" {
		t.Error("kubectl mindie chat through the router printed nothing")
	}

	// What the routers see, read through the API server from each of them,
	// and the router in the status command.
	routes := mustMindie(t, "tenant-a-editor", "", "routes", name, "-n", routerNS)
	for _, want := range []string{s.Status.Router.Pods[0].Name, s.Status.Router.Pods[1].Name, s.Status.Instances[0].Master, s.Status.Instances[1].Master, "cache_affinity"} {
		if !strings.Contains(routes, want) {
			t.Errorf("kubectl mindie routes does not show %q:\n%s", want, routes)
		}
	}
	if status := mustMindie(t, "tenant-a-editor", "", "status", name, "-n", routerNS); !strings.Contains(status, "Router:") || !strings.Contains(status, "2/2 ready") {
		t.Errorf("kubectl mindie status shows no ready router:\n%s", status)
	}
	if r, ok := parseTable(mustKubectl(t, "tenant-a-editor", "-n", routerNS, "get", "isvc", name, "-o", "wide")).row("NAME", name); !ok || r["ROUTER"] != "cache_affinity:2/2" {
		t.Errorf("kubectl get isvc -o wide: row %v, want ROUTER cache_affinity:2/2", r)
	}

	// The official OpenAI Node.js client against the router.
	t.Run("openai npm client", func(t *testing.T) { openAIClient(t, base+"/v1", chatter, caFile) })

	// The instance serving the most crashes under steady traffic: no
	// request fails. Those it had not answered fail before their first
	// byte and are retried on the other instance.
	tr := startTraffic(client, base, chatter, 4)
	time.Sleep(2 * time.Second)
	victim, servedBefore := tr.busiest()
	if servedBefore == 0 || len(tr.served) < 2 {
		t.Errorf("before the crash the traffic reached %v: want both instances", tr.served)
	}
	fault(t, "pod", "--namespace", routerNS, "--name", victim, "--action", "crash")
	time.Sleep(5 * time.Second)
	tr.finish()
	t.Logf("instance %s crashed under traffic after serving %d: %d answered, %d failed, served by %v",
		victim, servedBefore, tr.ok.Load(), tr.failed.Load(), tr.served)
	if tr.failed.Load() != 0 || tr.ok.Load() < 10 {
		t.Errorf("crash of %s under traffic: %d failed (%v), %d answered", victim, tr.failed.Load(), tr.failures, tr.ok.Load())
	}
	s = waitRouted(t, routerNS, name, 2, 2)

	// A rolling update of the instances under steady traffic fails nothing.
	tr = startTraffic(client, base, chatter, 4)
	time.Sleep(time.Second)
	patch := fmt.Sprintf(`{"spec":{"podMetadata":{"annotations":{%q:%q}}}}`, v1alpha1.AnnotationRestartedAt, time.Now().UTC().Format(time.RFC3339))
	mustKubectl(t, "tenant-a-editor", "-n", routerNS, "patch", "inferserver", name, "--type=merge", "-p", patch)
	before := s.Status.UpdateRevision
	eventually(t, 4*time.Minute, time.Second, "the rolling update", func() (bool, string) {
		s = typedServer(t, routerNS, name)
		done := s.Status.ObservedGeneration == s.Generation && s.Status.UpdateRevision != before &&
			s.Status.CurrentRevision == s.Status.UpdateRevision && s.Status.ReadyReplicas == 2 && s.Status.Replicas == 2
		return done, fmt.Sprintf("%+v", s.Status)
	})
	tr.finish()
	t.Logf("rolling update under traffic: %d answered, %d failed, served by %v", tr.ok.Load(), tr.failed.Load(), tr.served)
	if tr.failed.Load() != 0 || tr.ok.Load() < 10 {
		t.Errorf("rolling update under traffic: %d failed (%v), %d answered", tr.failed.Load(), tr.failures, tr.ok.Load())
	}

	// Without spec.router the router goes and the Service reaches the
	// instances again; deleting the server removes the cluster binding.
	mustKubectl(t, "tenant-a-editor", "-n", routerNS, "patch", "inferserver", name, "--type=json", "-p", `[{"op":"remove","path":"/spec/router"}]`)
	eventually(t, time.Minute, time.Second, "the router removed", func() (bool, string) {
		r := kubectl(t, "", "-n", routerNS, "get", "deployment,serviceaccount,role,rolebinding", name+"-router", "--ignore-not-found", "-o", "name")
		crb := kubectl(t, "", "get", "clusterrolebinding", "mindie-router:"+routerNS+":"+name, "--ignore-not-found", "-o", "name")
		sel := kubectl(t, "", "-n", routerNS, "get", "service", name, "-o", "jsonpath={.spec.selector}")
		return strings.TrimSpace(r.stdout+crb.stdout) == "" && strings.Contains(sel.stdout, v1alpha1.LabelMaster), r.stdout + crb.stdout + sel.stdout
	})
	if out := mustMindie(t, "tenant-a-editor", "", "chat", name, "-n", routerNS, "-m", "Hello", "--max-tokens=4"); strings.TrimSpace(out) == "" {
		t.Error("kubectl mindie chat without the router printed nothing")
	}
}

// openAIClient runs test/e2e/openai/client.mjs with the openai npm package
// against base and checks each step.
func openAIClient(t *testing.T, base, token, caFile string) {
	dir := filepath.Join(cluster.root, "test", "e2e", "openai")
	if _, err := exec.LookPath("npm"); err != nil {
		t.Fatalf("the OpenAI client test needs node and npm (apt-get install nodejs npm): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "openai", "package.json")); err != nil {
		install := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
		install.Dir = dir
		if out, err := install.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
		}
	}
	cmd := exec.CommandContext(ctx, "node", "client.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "MINDIE_BASE_URL="+base, "MINDIE_TOKEN="+token, "NODE_EXTRA_CA_CERTS="+caFile)
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("node client.mjs: %v\n%s\n%s", err, out, stderr)
	}
	var got struct {
		Models       []string `json:"models"`
		Chat         string   `json:"chat"`
		ChatFinish   string   `json:"chatFinish"`
		StreamChunks int      `json:"streamChunks"`
		StreamText   string   `json:"streamText"`
		ErrorType    string   `json:"errorType"`
		ErrorStatus  int      `json:"errorStatus"`
		ErrorMessage string   `json:"errorMessage"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("client.mjs printed %s: %v", out, err)
	}
	t.Logf("openai npm client: %s", out)
	if len(got.Models) == 0 || got.Chat == "" || got.ChatFinish == "" {
		t.Errorf("models %v, chat %q (finish %q)", got.Models, got.Chat, got.ChatFinish)
	}
	if got.StreamChunks < 2 || got.StreamText == "" {
		t.Errorf("streaming: %d chunks, text %q", got.StreamChunks, got.StreamText)
	}
	if got.ErrorType != "AuthenticationError" || got.ErrorStatus != http.StatusUnauthorized || got.ErrorMessage == "" {
		t.Errorf("a refused key: %s %d %q, want the SDK's AuthenticationError with 401", got.ErrorType, got.ErrorStatus, got.ErrorMessage)
	}
}

// TestSampleValid: the sample make run applies (an InferServer with a
// router) passes the API server's defaulting and validation.
func TestSampleValid(t *testing.T) {
	out := mustKubectl(t, "", "apply", "--dry-run=server", "-o", "json", "-f", filepath.Join(cluster.root, "artifacts", "samples", "inferserver.yaml"))
	var s v1alpha1.InferServer
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("dry run of the sample: %v\n%s", err, out)
	}
	if r := s.Spec.Router; r == nil || r.Algorithm != v1alpha1.RouterCacheAffinity || *r.Replicas != 2 ||
		r.Authentication != v1alpha1.RouterAuthenticationKubernetes || *r.MaxRetries != v1alpha1.DefaultRouterMaxRetries {
		t.Errorf("the sample's router, defaulted: %+v", r)
	}
}

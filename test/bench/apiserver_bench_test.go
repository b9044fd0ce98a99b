// Package bench measures mindie-apiserver with Go benchmarks, each beside a
// baseline measured in the same run: the API server against the etcd it
// stores into, validation against a plain JSON decode. Run them with
// hack/bench.sh (make bench), which turns the ratios into
// docs/benchmarks.md; a plain `go test ./...` only compiles them.
//
// One server and one etcd member serve every benchmark of the process. They
// start when a benchmark first needs them and stop in TestMain. The server
// stores into that same member (--etcd-servers), so the etcd baselines read
// and write the storage the server sits on, with the bytes it stores.
package bench

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer"
	"mindie.io/deployer/apis/infer/install"
	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/apis/infer/validation"
	servertesting "mindie.io/deployer/pkg/cmd/server/testing"
	"mindie.io/deployer/pkg/embeddedetcd"
	clientset "mindie.io/deployer/pkg/generated/clientset/versioned"
)

const (
	// listSize is how many InferServers BenchmarkListInferServers lists.
	listSize = 1000
	// writeParallelism multiplies GOMAXPROCS into the goroutines that
	// write concurrently, in the create benchmark and its baseline alike.
	writeParallelism = 4

	createNamespace = "bench-create"
	listNamespace   = "bench-list"
	probeNamespace  = "bench-probe"
	probeName       = "probe"
	// putPrefix holds the baseline's own keys, outside the server's prefix.
	putPrefix = "/bench/put/"
)

var serverLogs = flag.Bool("server-logs", false, "let the in-process server (klog) log to stderr; by default its logs are discarded so that they cannot break benchmark result lines")

func TestMain(m *testing.M) {
	flag.Parse()
	if !*serverLogs {
		// go test prints the test binary's stderr into the same stream as
		// the results; a log line in the middle of a result line spoils it.
		klog.SetLogger(logr.Discard())
	}
	code := m.Run()
	shared.stop()
	os.Exit(code)
}

// env is what the benchmarks share: started once, on first use.
type env struct {
	dir string

	etcdOnce sync.Once
	etcdErr  error
	member   *embeddedetcd.Server
	etcd     *clientv3.Client

	serverOnce sync.Once
	serverErr  error
	server     *servertesting.TestServer
	client     clientset.Interface
	// probeKey and stored are the etcd key and stored value of one
	// InferServer the server created; listPrefix is the key prefix of
	// listNamespace.
	probeKey, listPrefix string
	stored               []byte

	listOnce sync.Once
	listErr  error
}

var shared env

func (e *env) tempDir() (string, error) {
	if e.dir == "" {
		dir, err := os.MkdirTemp("", "mindie-bench-")
		if err != nil {
			return "", err
		}
		e.dir = dir
	}
	return e.dir, nil
}

// etcdClient starts the etcd member and returns a client of it.
func (e *env) etcdClient(b *testing.B) *clientv3.Client {
	b.Helper()
	e.etcdOnce.Do(func() {
		dir, err := e.tempDir()
		if err != nil {
			e.etcdErr = err
			return
		}
		e.member, err = embeddedetcd.Start(embeddedetcd.Options{DataDir: filepath.Join(dir, "etcd"), LogLevel: "error"})
		if err != nil {
			e.etcdErr = err
			return
		}
		e.etcd, e.etcdErr = clientv3.New(clientv3.Config{
			Endpoints:   []string{e.member.ClientURL},
			DialTimeout: 10 * time.Second,
			Logger:      zap.NewNop(),
		})
	})
	if e.etcdErr != nil {
		b.Fatalf("start etcd: %v", e.etcdErr)
	}
	return e.etcd
}

// apiClient starts the server (and the etcd member under it), creates the
// probe object and returns a client of the server.
func (e *env) apiClient(b *testing.B) clientset.Interface {
	b.Helper()
	etcd := e.etcdClient(b)
	e.serverOnce.Do(func() { e.serverErr = e.startServer(etcd) })
	if e.serverErr != nil {
		b.Fatalf("start mindie-apiserver: %v", e.serverErr)
	}
	return e.client
}

func (e *env) startServer(etcd *clientv3.Client) error {
	dir, err := e.tempDir()
	if err != nil {
		return err
	}
	e.server, err = servertesting.StartE(filepath.Join(dir, "server"), "--etcd-servers="+e.member.ClientURL)
	if err != nil {
		return err
	}
	config := *e.server.ClientConfig
	// No client-side rate limit: it would cap what is measured.
	config.QPS, config.Burst = -1, 0
	if e.client, err = clientset.NewForConfig(&config); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := e.client.InferV1alpha1().InferServers(probeNamespace).Create(ctx, fixture(probeNamespace, probeName), metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create the probe InferServer: %w", err)
	}
	// Find where the server stored it rather than assume its key layout.
	resp, err := etcd.Get(ctx, "/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return err
	}
	suffix := "/" + probeNamespace + "/" + probeName
	for _, kv := range resp.Kvs {
		if k := string(kv.Key); strings.HasSuffix(k, suffix) {
			e.probeKey = k
			e.listPrefix = strings.TrimSuffix(k, suffix) + "/" + listNamespace + "/"
		}
	}
	if e.probeKey == "" {
		return fmt.Errorf("no etcd key ends in %s", suffix)
	}
	got, err := etcd.Get(ctx, e.probeKey)
	if err != nil {
		return err
	}
	e.stored = got.Kvs[0].Value
	return nil
}

// listFixture makes listNamespace hold listSize InferServers.
func (e *env) listFixture(b *testing.B) {
	b.Helper()
	client := e.apiClient(b)
	e.listOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		servers := client.InferV1alpha1().InferServers(listNamespace)
		names := make(chan string)
		errs := make(chan error, listSize)
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				for name := range names {
					if _, err := servers.Create(ctx, fixture(listNamespace, name), metav1.CreateOptions{}); err != nil {
						errs <- err
					}
				}
			})
		}
		for i := range listSize {
			names <- fmt.Sprintf("l-%04d", i)
		}
		close(names)
		wg.Wait()
		close(errs)
		if e.listErr = <-errs; e.listErr != nil {
			return
		}
		// The watch cache and the server's informer take in the 1000 new
		// objects after the creates return; let that settle, untimed.
		for range 3 {
			if _, e.listErr = servers.List(ctx, metav1.ListOptions{}); e.listErr != nil {
				return
			}
		}
	})
	if e.listErr != nil {
		b.Fatalf("create %d InferServers to list: %v", listSize, e.listErr)
	}
}

func (e *env) stop() {
	if e.server != nil {
		e.server.Stop()
	}
	if e.etcd != nil {
		e.etcd.Close()
	}
	if e.member != nil {
		e.member.Close()
	}
	if e.dir != "" {
		os.RemoveAll(e.dir)
	}
}

// fixture is the InferServer the benchmarks create, validate and decode: a
// typical user's object, every other field left to the defaults.
func fixture(namespace, name string) *v1alpha1.InferServer {
	return &v1alpha1.InferServer{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Namespace:   namespace,
			Labels:      map[string]string{"app": "llama3-70b", "team": "inference"},
			Annotations: map[string]string{"example.com/owner": "bench"},
		},
		Spec: v1alpha1.InferServerSpec{
			Replicas:     ptr.To[int32](2),
			Image:        "swr.example.com/mindie/mindie:2.0.RC1-800I-A2-py311",
			NodeSelector: map[string]string{"node-pool": "npu-a2"},
			Tolerations: []corev1.Toleration{
				{Key: "huawei.com/Ascend910", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
			},
			Env: []corev1.EnvVar{
				{Name: "ASCEND_RT_VISIBLE_DEVICES", Value: "0,1,2,3,4,5,6,7"},
				{Name: "HCCL_CONNECT_TIMEOUT", Value: "7200"},
				{Name: "MINDIE_LOG_LEVEL", Value: "INFO"},
			},
		},
	}
}

var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	install.Install(s)
	return s
}()

// defaulted returns the fixture as the server sees it after decoding a
// create: defaulted, in the internal version, and its JSON.
func defaulted() (*infer.InferServer, []byte, error) {
	in := fixture("default", "llama")
	scheme.Default(in)
	in.SetGroupVersionKind(v1alpha1.SchemeGroupVersion.WithKind("InferServer"))
	data, err := json.Marshal(in)
	if err != nil {
		return nil, nil, err
	}
	out := &infer.InferServer{}
	if err := scheme.Convert(in, out, nil); err != nil {
		return nil, nil, err
	}
	return out, data, nil
}

// TestFixture runs with the unit tests: the benchmarks would measure an
// error path if the fixture stopped being valid.
func TestFixture(t *testing.T) {
	obj, data, err := defaulted()
	if err != nil {
		t.Fatal(err)
	}
	if errs := validation.ValidateInferServer(obj); len(errs) > 0 {
		t.Fatalf("the benchmark fixture is invalid: %v", errs.ToAggregate())
	}
	var back v1alpha1.InferServer
	if err := json.Unmarshal(data, &back); err != nil || back.Spec.Image != fixture("", "").Spec.Image {
		t.Fatalf("the fixture's JSON does not decode back: %v", err)
	}
}

var created atomic.Int64

func BenchmarkCreateInferServer(b *testing.B) {
	servers := shared.apiClient(b).InferV1alpha1().InferServers(createNamespace)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(writeParallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			name := fmt.Sprintf("c-%d", created.Add(1))
			if _, err := servers.Create(ctx, fixture(createNamespace, name), metav1.CreateOptions{}); err != nil {
				b.Errorf("create %s: %v", name, err)
				return
			}
		}
	})
}

var put atomic.Int64

// BenchmarkBaselineEtcdPut writes, as concurrently as the create benchmark,
// values of the size the server stores for an InferServer.
func BenchmarkBaselineEtcdPut(b *testing.B) {
	shared.apiClient(b) // for the stored size
	etcd, value := shared.etcd, string(shared.stored)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(writeParallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			key := putPrefix + fmt.Sprint(put.Add(1))
			if _, err := etcd.Put(ctx, key, value); err != nil {
				b.Errorf("put %s: %v", key, err)
				return
			}
		}
	})
}

func BenchmarkGetInferServer(b *testing.B) {
	servers := shared.apiClient(b).InferV1alpha1().InferServers(probeNamespace)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := servers.Get(ctx, probeName, metav1.GetOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBaselineEtcdGet reads the key the server reads for a Get, as it
// does: a linearizable read.
func BenchmarkBaselineEtcdGet(b *testing.B) {
	shared.apiClient(b)
	etcd, key := shared.etcd, shared.probeKey
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := etcd.Get(ctx, key)
		if err != nil || len(resp.Kvs) != 1 {
			b.Fatalf("get %s: %d values, %v", key, len(resp.Kvs), err)
		}
	}
}

func BenchmarkListInferServers(b *testing.B) {
	shared.listFixture(b)
	servers := shared.client.InferV1alpha1().InferServers(listNamespace)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		list, err := servers.List(ctx, metav1.ListOptions{})
		if err != nil || len(list.Items) != listSize {
			b.Fatalf("list: want %d items, got %d, %v", listSize, len(list.Items), err)
		}
	}
}

// BenchmarkBaselineEtcdRangePrefix reads the very keys the list benchmark
// lists, with one linearizable range read.
func BenchmarkBaselineEtcdRangePrefix(b *testing.B) {
	shared.listFixture(b)
	etcd, prefix := shared.etcd, shared.listPrefix
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := etcd.Get(ctx, prefix, clientv3.WithPrefix())
		if err != nil || len(resp.Kvs) != listSize {
			b.Fatalf("range %s: want %d keys, got %d, %v", prefix, listSize, len(resp.Kvs), err)
		}
	}
}

func BenchmarkValidateInferServer(b *testing.B) {
	obj, _, err := defaulted()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if errs := validation.ValidateInferServer(obj); len(errs) > 0 {
			b.Fatal(errs.ToAggregate())
		}
	}
}

// BenchmarkBaselineJSONDecode decodes the validated object's JSON: the
// cheapest thing the server does with every object it receives.
func BenchmarkBaselineJSONDecode(b *testing.B) {
	_, data, err := defaulted()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		var s v1alpha1.InferServer
		if err := json.Unmarshal(data, &s); err != nil {
			b.Fatal(err)
		}
	}
}

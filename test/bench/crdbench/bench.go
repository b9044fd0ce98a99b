package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/test/bench/measure"
	"mindie.io/deployer/test/bench/results"
)

// The media types the LISTs ask for besides JSON, each alone.
const (
	mediaProtobuf = "application/vnd.kubernetes.protobuf"
	mediaCBOR     = "application/cbor"
	mediaJSON     = "application/json"
)

// The processes whose CPU each series counts, by their pid files.
var processes = []string{"kube-apiserver", "mindie-apiserver", "etcd"}

// side is one API as one user reaches it on one path.
type side struct {
	api, path, user string
	dyn             dynamic.Interface
	http            *http.Client
	host            string
	gvr             schema.GroupVersionResource
}

func (s side) resource(ns string) dynamic.ResourceInterface {
	return s.dyn.Resource(s.gvr).Namespace(ns)
}

// listURL is the address of a LIST of the namespace.
func (s side) listURL(ns string) string {
	return fmt.Sprintf("%s/apis/%s/%s/namespaces/%s/%s", strings.TrimSuffix(s.host, "/"), s.gvr.Group, s.gvr.Version, ns, s.gvr.Resource)
}

// bench holds the clients of one run.
type bench struct {
	c     config
	logf  func(string, ...any)
	admin *rest.Config
	kube  kubernetes.Interface
	// The sides: the CRD through kube-apiserver, InferServers through the
	// aggregator and directly, as the tenant and as the admin.
	crd, is, direct, crdAdmin, isAdmin, directAdmin side
	pids                                            map[string]int
}

// loopback checks that a client's address is a loopback one.
func loopback(host string) error {
	u, err := url.Parse(host)
	if err != nil {
		return err
	}
	h := u.Hostname()
	if h == "localhost" {
		return nil
	}
	if ip := net.ParseIP(h); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%s is not a loopback address: this benchmark dials only loopback", host)
}

func clientConfig(path string) (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, err
	}
	if err := loopback(cfg.Host); err != nil {
		return nil, err
	}
	// No client-side rate limit: the servers are measured, not client-go.
	cfg.QPS, cfg.Burst = -1, 0
	cfg.UserAgent = "crdbench"
	return cfg, nil
}

// directConfig is cfg sent to mindie-apiserver's own port.
func directConfig(cfg *rest.Config, host, ca string) *rest.Config {
	d := rest.CopyConfig(cfg)
	d.Host = host
	d.CAData, d.CAFile = nil, ca
	return d
}

func newSide(api, path, user string, cfg *rest.Config, gvr schema.GroupVersionResource) (side, error) {
	s := side{api: api, path: path, user: user, host: cfg.Host, gvr: gvr}
	var err error
	if s.dyn, err = dynamic.NewForConfig(cfg); err != nil {
		return s, err
	}
	s.http, err = rest.HTTPClientFor(cfg)
	return s, err
}

func newBench(ctx context.Context, c config, logf func(string, ...any)) (*bench, error) {
	if err := loopback(c.mindieURL); err != nil {
		return nil, err
	}
	admin, err := clientConfig(c.kubeconfig)
	if err != nil {
		return nil, err
	}
	tenant, err := clientConfig(c.tenantKubeconfig)
	if err != nil {
		return nil, err
	}
	b := &bench{c: c, logf: logf, admin: admin, pids: map[string]int{}}
	if b.kube, err = kubernetes.NewForConfig(admin); err != nil {
		return nil, err
	}
	isGVR := v1alpha1.SchemeGroupVersion.WithResource("inferservers")
	crdGVR := schema.GroupVersionResource{Group: c.crdGroup, Version: isGVR.Version, Resource: isGVR.Resource}
	for _, s := range []struct {
		to   *side
		api  string
		path string
		user string
		cfg  *rest.Config
		gvr  schema.GroupVersionResource
	}{
		{&b.crd, results.APICRD, results.PathKube, results.UserTenant, tenant, crdGVR},
		{&b.is, results.APIInferServer, results.PathAggregator, results.UserTenant, tenant, isGVR},
		{&b.direct, results.APIInferServer, results.PathDirect, results.UserTenant, directConfig(tenant, c.mindieURL, c.mindieCA), isGVR},
		{&b.crdAdmin, results.APICRD, results.PathKube, results.UserAdmin, admin, crdGVR},
		{&b.isAdmin, results.APIInferServer, results.PathAggregator, results.UserAdmin, admin, isGVR},
		{&b.directAdmin, results.APIInferServer, results.PathDirect, results.UserAdmin, directConfig(admin, c.mindieURL, c.mindieCA), isGVR},
	} {
		if *s.to, err = newSide(s.api, s.path, s.user, s.cfg, s.gvr); err != nil {
			return nil, err
		}
	}
	if c.pids != "" {
		for _, p := range processes {
			data, err := os.ReadFile(filepath.Join(c.pids, p))
			if err != nil {
				return nil, fmt.Errorf("-pids: %w", err)
			}
			if b.pids[p], err = strconv.Atoi(strings.TrimSpace(string(data))); err != nil {
				return nil, fmt.Errorf("-pids: %s: %w", p, err)
			}
		}
	}
	return b, nil
}

// Namespaces of the objects: the main one, the watch's and the direct
// creates' (which also holds the template).
func (b *bench) ns() string       { return b.c.namespace }
func (b *bench) watchNS() string  { return b.c.namespace + "-watch" }
func (b *bench) directNS() string { return b.c.namespace + "-direct" }

// setup makes the namespaces, the RBAC that lets the tenant use both APIs
// in them and the CRD, and returns the spec of the objects: an
// InferServer's, as the server stored it after defaulting.
func (b *bench) setup(ctx context.Context) (map[string]any, error) {
	for _, ns := range []string{b.ns(), b.watchNS(), b.directNS()} {
		if _, err := b.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("namespace %s (the benchmark wants a fresh cluster, as hack/crd-bench.sh makes): %w", ns, err)
		}
	}
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "crdbench-crd"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{b.c.crdGroup}, Resources: []string{"inferservers", "inferservers/status", "inferservers/scale"},
			Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}}},
	}
	if _, err := b.kube.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	for _, ns := range []string{b.ns(), b.watchNS(), b.directNS()} {
		// InferServers by the role the tenants have (edit aggregates
		// them), the CRD by its own.
		for _, r := range []string{"edit", role.Name} {
			rb := &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: "crdbench-" + r},
				Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: b.c.tenant}},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: r},
			}
			if _, err := b.kube.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
				return nil, err
			}
		}
	}

	// The template: a small InferServer, defaulted by the server.
	tmpl := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1alpha1.SchemeGroupVersion.String(), "kind": "InferServer",
		"metadata": map[string]any{"name": "template"},
		"spec": map[string]any{
			"replicas":  int64(2),
			"resources": map[string]any{"npu": map[string]any{"type": "Ascend910", "count": int64(8)}},
		},
	}}
	var stored *unstructured.Unstructured
	if err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		// RBAC takes a moment to reach the tenant.
		var err error
		stored, err = b.is.resource(b.directNS()).Create(ctx, tmpl, metav1.CreateOptions{})
		if err != nil {
			b.logf("template InferServer: %v; again", err)
		}
		return err == nil, nil
	}); err != nil {
		return nil, fmt.Errorf("create the template InferServer: %w", err)
	}
	spec, _ := stored.Object["spec"].(map[string]any)
	if len(spec) < 5 {
		return nil, fmt.Errorf("the template InferServer came back with the spec %v: not defaulted?", spec)
	}

	crd, err := crdObject(b.c.crdGroup)
	if err != nil {
		return nil, fmt.Errorf("generate the CRD: %w", err)
	}
	crds := b.crdAdmin.dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	if _, err := crds.Create(ctx, &unstructured.Unstructured{Object: crd}, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("create the CRD: %w", err)
	}
	name := "inferservers." + b.c.crdGroup
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		got, err := crds.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] == "Established" && m["status"] == "True" {
				return true, nil
			}
			if m["type"] == "NamesAccepted" && m["status"] == "False" {
				return false, fmt.Errorf("CRD names not accepted: %v", m["message"])
			}
		}
		return false, nil
	}); err != nil {
		return nil, fmt.Errorf("the CRD %s did not become Established: %w", name, err)
	}
	// Established, the resource may still take a moment to be served.
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := b.crd.resource(b.ns()).List(ctx, metav1.ListOptions{})
		return err == nil, nil
	}); err != nil {
		return nil, fmt.Errorf("the tenant cannot list %s: %w", name, err)
	}
	b.logf("CRD %s established; template spec %d fields", name, len(spec))
	return spec, nil
}

// object is an object of the side's API with the shared spec.
func object(s side, ns, name string, spec map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": s.gvr.GroupVersion().String(), "kind": "InferServer",
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec":     spec,
	}}
}

func objectName(i int) string { return fmt.Sprintf("bench-%05d", i) }

// cpuTicks returns each process's CPU time in clock ticks (user and
// system).
func (b *bench) cpuTicks() map[string]int64 {
	out := map[string]int64{}
	for name, pid := range b.pids {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// The fields after the command, which is in parentheses.
		s := string(data)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 12 {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			k, _ := strconv.ParseInt(f[12], 10, 64)
			out[name] = u + k
		}
	}
	return out
}

// clockTick is the length of a clock tick of /proc/<pid>/stat (USER_HZ,
// 100 on Linux).
const clockTick = 10 * time.Millisecond

// series times one series: it runs f, which returns the latencies of its
// requests and how many failed, and fills a measurement.
func (b *bench) series(m results.CRDMeasurement, f func() ([]time.Duration, int, error)) (results.CRDMeasurement, error) {
	var t timed
	err := t.run(b, f)
	return t.measurement(b, m), err
}

// create creates the named objects, clients at once, and returns each
// create's latency and the time its answer came.
func (b *bench) create(ctx context.Context, s side, ns string, names []string, spec map[string]any) (lat []time.Duration, sent, answered map[string]time.Time, failed int, err error) {
	var mu sync.Mutex
	sent, answered = map[string]time.Time{}, map[string]time.Time{}
	next := make(chan string)
	var wg sync.WaitGroup
	var firstErr error
	for range b.c.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range next {
				obj := object(s, ns, name, spec)
				t0 := time.Now()
				_, err := s.resource(ns).Create(ctx, obj, metav1.CreateOptions{})
				t1 := time.Now()
				mu.Lock()
				if err != nil {
					failed++
					if firstErr == nil {
						firstErr = fmt.Errorf("create %s %s/%s: %w", s.api, ns, name, err)
					}
				} else {
					lat = append(lat, t1.Sub(t0))
					sent[name], answered[name] = t0, t1
				}
				mu.Unlock()
			}
		}()
	}
	for _, n := range names {
		select {
		case next <- n:
		case <-ctx.Done():
		}
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		b.logf("%d of %d creates failed; the first: %v", failed, len(names), firstErr)
	}
	return lat, sent, answered, failed, ctx.Err()
}

func names(from, to int) []string {
	out := make([]string, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, objectName(i))
	}
	return out
}

func (b *bench) createSeries(ctx context.Context, s side, ns string, from, to int, spec map[string]any) (results.CRDMeasurement, error) {
	m := results.CRDMeasurement{Op: results.OpCreate, API: s.api, Path: s.path, User: s.user, Size: to - from}
	return b.series(m, func() ([]time.Duration, int, error) {
		lat, _, _, failed, err := b.create(ctx, s, ns, names(from, to), spec)
		return lat, failed, err
	})
}

// getBlocks is how many blocks each series of GETs is cut into. The
// blocks of all series take turns, the first of each round another, so
// that drift over the run (a busy neighbour, a server's garbage collector,
// the creates' aftermath) falls on every series alike instead of on
// whichever ran at the time.
const getBlocks = 5

// getSpec is one series of GETs, one at a time, each of another object.
type getSpec struct {
	s    side
	objs []string
	timed
}

// timed is what a series interleaved with others collects: its own
// requests' latencies and failures, their wall time and the CPU the
// cluster's processes spent meanwhile (clock ticks by process).
type timed struct {
	lat    []time.Duration
	failed int
	wall   time.Duration
	cpu    map[string]int64
}

// run times f and adds its requests, time and CPU to t.
func (t *timed) run(b *bench, f func() ([]time.Duration, int, error)) error {
	if t.cpu == nil {
		t.cpu = map[string]int64{}
	}
	before := b.cpuTicks()
	t0 := time.Now()
	lat, failed, err := f()
	t.wall += time.Since(t0)
	for k, v := range b.cpuTicks() {
		t.cpu[k] += v - before[k]
	}
	t.lat = append(t.lat, lat...)
	t.failed += failed
	return err
}

// measurement fills m from what t collected. Unless m has its time, the
// series' time is its requests' own, not the other series' between them.
func (t *timed) measurement(b *bench, m results.CRDMeasurement) results.CRDMeasurement {
	if m.Seconds == 0 {
		m.Seconds = measure.Round(t.wall.Seconds(), 3)
	}
	lat, failed := t.lat, t.failed
	m.Requests, m.Failed = len(lat)+failed, failed
	if m.Seconds > 0 {
		m.PerSecond = measure.Round(float64(len(lat))/m.Seconds, 1)
	}
	ms := make([]float64, len(lat))
	var sum float64
	for i, d := range lat {
		ms[i] = measure.Ms(d)
		sum += ms[i]
	}
	if len(ms) > 0 {
		m.P50Ms = measure.Round(measure.Percentile(ms, 0.5), 3)
		m.P99Ms = measure.Round(measure.Percentile(ms, 0.99), 3)
		m.MaxMs = measure.Round(slices.Max(ms), 3)
		m.MeanMs = measure.Round(sum/float64(len(ms)), 3)
	}
	if m.Requests > 0 && len(b.pids) > 0 {
		m.CPUMs = map[string]float64{}
		for name, ticks := range t.cpu {
			m.CPUMs[name] = measure.Round(measure.Ms(time.Duration(ticks)*clockTick)/float64(m.Requests), 3)
		}
	}
	what := fmt.Sprintf("%s %s via %s as %s", m.Op, m.API, m.Path, m.User)
	if m.Variant != "" {
		what += " " + m.Variant
	}
	if m.Encoding != "" && m.Encoding != results.EncodingJSON {
		what += " " + m.Encoding
	}
	b.logf("%s, %d: %d requests, %d failed, %.2f s, %.1f/s, p50 %.2f ms, p99 %.2f ms, cpu/request %v",
		what, m.Size, m.Requests, m.Failed, m.Seconds, m.PerSecond, m.P50Ms, m.P99Ms, m.CPUMs)
	return m
}

// getSeries GETs every spec's objects one at a time, in getBlocks blocks a
// spec, the specs' blocks taking turns.
func (b *bench) getSeries(ctx context.Context, ns string, specs []*getSpec) ([]results.CRDMeasurement, error) {
	for round := range getBlocks {
		for i := range specs {
			sp := specs[(i+round)%len(specs)]
			block := sp.objs[len(sp.objs)*round/getBlocks : len(sp.objs)*(round+1)/getBlocks]
			err := sp.run(b, func() ([]time.Duration, int, error) {
				var lat []time.Duration
				failed := 0
				for _, name := range block {
					t0 := time.Now()
					if _, err := sp.s.resource(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
						if ctx.Err() != nil {
							return lat, failed, ctx.Err()
						}
						failed++
						continue
					}
					lat = append(lat, time.Since(t0))
				}
				return lat, failed, nil
			})
			if err != nil {
				return nil, err
			}
		}
	}
	var out []results.CRDMeasurement
	for _, sp := range specs {
		m := sp.measurement(b, results.CRDMeasurement{Op: results.OpGet, API: sp.s.api, Path: sp.s.path, User: sp.s.user, Size: len(sp.objs)})
		out = append(out, m)
	}
	return out, nil
}

// rawGet sends a GET to url accepting only accept and reads the whole
// answer.
func rawGet(ctx context.Context, c *http.Client, u, accept string) (status int, contentType string, body int, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, "", 0, err
	}
	req.Header.Set("Accept", accept)
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	n, err := io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), int(n), err
}

// listSpec is one series of LISTs.
type listSpec struct {
	s                 side
	variant, encoding string
	accept            string
	bytes             int
	timed
}

// listSeries LISTs the namespace of size objects repeats times with every
// spec, one LIST of each spec a round, so that drift over the run falls on
// all of them alike. Each LIST is read whole and not decoded: decoding the
// same JSON costs a client the same for both APIs.
func (b *bench) listSeries(ctx context.Context, ns string, size, repeats int, specs []*listSpec) ([]results.CRDMeasurement, error) {
	for _, sp := range specs {
		// One untimed LIST first: connections and caches warm.
		if _, _, _, err := rawGet(ctx, sp.s.http, sp.url(ns), sp.accept); err != nil {
			return nil, err
		}
	}
	for range repeats {
		for _, sp := range specs {
			err := sp.run(b, func() ([]time.Duration, int, error) {
				t0 := time.Now()
				status, _, n, err := rawGet(ctx, sp.s.http, sp.url(ns), sp.accept)
				d := time.Since(t0)
				if ctx.Err() != nil {
					return nil, 0, ctx.Err()
				}
				if err != nil || status != http.StatusOK {
					b.logf("LIST %s: status %d, %v", sp.url(ns), status, err)
					return nil, 1, nil
				}
				sp.bytes = n
				return []time.Duration{d}, 0, nil
			})
			if err != nil {
				return nil, err
			}
		}
	}
	var out []results.CRDMeasurement
	for _, sp := range specs {
		out = append(out, sp.measurement(b, results.CRDMeasurement{Op: results.OpList, API: sp.s.api, Path: sp.s.path, User: sp.s.user, Size: size,
			Variant: sp.variant, Encoding: sp.encoding, Bytes: sp.bytes}))
	}
	return out, nil
}

func (sp *listSpec) url(ns string) string {
	u := sp.s.listURL(ns)
	if sp.variant == results.VariantRV0 {
		u += "?resourceVersion=0"
	}
	return u
}

// watchSeries starts watchers on the namespace, creates n objects in it
// and times until every watcher has seen every one: the series' time runs
// from the first create sent to the last watcher done, each latency from
// an object's create sent to the last watcher seeing it.
func (b *bench) watchSeries(ctx context.Context, s side, ns string, n int, spec map[string]any) (results.CRDMeasurement, error) {
	m := results.CRDMeasurement{Op: results.OpWatch, API: s.api, Path: s.path, User: s.user, Size: n}
	list, err := s.resource(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return m, err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	seen := make([]map[string]time.Time, b.c.watchers)
	done := make([]time.Time, b.c.watchers)
	var wg sync.WaitGroup
	var mu sync.Mutex
	restarts := 0
	for i := range b.c.watchers {
		w, err := s.resource(ns).Watch(wctx, metav1.ListOptions{ResourceVersion: list.GetResourceVersion()})
		if err != nil {
			return m, fmt.Errorf("watch %d: %w", i, err)
		}
		seen[i] = map[string]time.Time{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rv := list.GetResourceVersion()
			for {
				if b.watchEvents(w, n, &rv, &mu, seen[i], &done[i]) || wctx.Err() != nil {
					return
				}
				// The server ended the stream early (one run saw every
				// watch of the CRD end at once, without an error event):
				// watch again from the last object seen, as an informer
				// would.
				mu.Lock()
				restarts++
				mu.Unlock()
				b.logf("watcher %d of %s: the stream ended after %d objects; watching again from resourceVersion %s", i, s.api, len(seen[i]), rv)
				var err error
				if w, err = s.resource(ns).Watch(wctx, metav1.ListOptions{ResourceVersion: rv}); err != nil {
					b.logf("watcher %d of %s: %v", i, s.api, err)
					return
				}
			}
		}()
	}
	var total float64
	m, err = b.series(m, func() ([]time.Duration, int, error) {
		_, sent, _, failed, err := b.create(ctx, s, ns, names(0, n), spec)
		if err != nil {
			return nil, failed, err
		}
		finished := make(chan struct{})
		go func() { wg.Wait(); close(finished) }()
		select {
		case <-finished:
		case <-time.After(2 * time.Minute):
			cancel()
			<-finished
			return nil, n, fmt.Errorf("the watchers did not see all %d creates within 2 minutes", n)
		case <-ctx.Done():
			return nil, failed, ctx.Err()
		}
		for i := range done {
			if done[i].IsZero() {
				return nil, failed, fmt.Errorf("watcher %d saw %d of the %d creates", i, len(seen[i]), n)
			}
		}
		var first, last time.Time
		for _, t := range sent {
			if first.IsZero() || t.Before(first) {
				first = t
			}
		}
		for _, t := range done {
			if t.After(last) {
				last = t
			}
		}
		total = last.Sub(first).Seconds()
		var lat []time.Duration
		for name, t0 := range sent {
			var latest time.Time
			for i := range seen {
				if t := seen[i][name]; t.After(latest) {
					latest = t
				}
			}
			lat = append(lat, latest.Sub(t0))
		}
		return lat, failed, nil
	})
	m.Restarts = restarts
	if total > 0 {
		m.Seconds = measure.Round(total, 3)
		m.PerSecond = measure.Round(float64(m.Requests-m.Failed)/total, 1)
	}
	return m, err
}

// watchEvents reads a watch until it has seen n objects added (true) or
// the stream ends (false), recording when each object was first seen and
// the resourceVersion of the last event.
func (b *bench) watchEvents(w watch.Interface, n int, rv *string, mu *sync.Mutex, seen map[string]time.Time, done *time.Time) bool {
	defer w.Stop()
	for ev := range w.ResultChan() {
		if ev.Type == watch.Error {
			b.logf("watch error: %v", ev.Object)
			continue
		}
		o, ok := ev.Object.(*unstructured.Unstructured)
		if !ok {
			continue
		}
		*rv = o.GetResourceVersion()
		if ev.Type != watch.Added {
			continue
		}
		now := time.Now()
		mu.Lock()
		if _, dup := seen[o.GetName()]; !dup {
			seen[o.GetName()] = now
		}
		all := len(seen) >= n
		if all {
			*done = now
		}
		mu.Unlock()
		if all {
			return true
		}
	}
	return false
}

// probeEncodings asks each API for a LIST in protobuf and in CBOR alone.
func (b *bench) probeEncodings(ctx context.Context) ([]results.CRDEncoding, error) {
	var out []results.CRDEncoding
	for _, s := range []side{b.crd, b.is} {
		for _, mt := range []string{mediaProtobuf, mediaCBOR} {
			status, ct, _, err := rawGet(ctx, s.http, s.listURL(b.ns())+"?limit=1", mt)
			if err != nil {
				return nil, err
			}
			e := results.CRDEncoding{API: s.api, MediaType: mt, Status: status, ContentType: ct}
			e.Offered = status == http.StatusOK && strings.HasPrefix(ct, mt)
			out = append(out, e)
			b.logf("%s LIST accepting only %s: %d %s", s.api, mt, status, ct)
		}
	}
	return out, nil
}

// objectBytes is the size of one object of a side as a GET returns it.
func (b *bench) objectBytes(ctx context.Context, s side) (int, error) {
	status, _, n, err := rawGet(ctx, s.http, s.listURL(b.ns())+"/"+objectName(0), mediaJSON)
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("GET %s: status %d", objectName(0), status)
	}
	return n, err
}

func encodingName(mt string) string {
	switch mt {
	case mediaProtobuf:
		return "protobuf"
	case mediaCBOR:
		return "cbor"
	}
	return results.EncodingJSON
}

// lists are the LIST series of one size: JSON on both APIs through
// kube-apiserver, InferServers directly, resourceVersion=0 on both, and
// each other encoding an API offers.
func (b *bench) lists(encodings []results.CRDEncoding) []*listSpec {
	specs := []*listSpec{
		{s: b.crd, encoding: results.EncodingJSON, accept: mediaJSON},
		{s: b.is, encoding: results.EncodingJSON, accept: mediaJSON},
		{s: b.direct, encoding: results.EncodingJSON, accept: mediaJSON},
		{s: b.crd, variant: results.VariantRV0, encoding: results.EncodingJSON, accept: mediaJSON},
		{s: b.is, variant: results.VariantRV0, encoding: results.EncodingJSON, accept: mediaJSON},
	}
	for _, e := range encodings {
		if !e.Offered {
			continue
		}
		s := b.crd
		if e.API == results.APIInferServer {
			s = b.is
		}
		specs = append(specs, &listSpec{s: s, encoding: encodingName(e.MediaType), accept: e.MediaType})
	}
	return specs
}

// measure runs every series. It returns what it measured also when a
// series fails, with the error.
func (b *bench) measure(ctx context.Context) (*results.CRD, error) {
	c := b.c
	spec, err := b.setup(ctx)
	if err != nil {
		return nil, err
	}
	res := &results.CRD{Version: results.CRDVersion, Goals: goals}
	specYAML, _ := yaml.Marshal(map[string]any{"spec": spec})
	crd, _ := crdObject(c.crdGroup)
	crdJSON, _ := yaml.Marshal(crd)
	res.Setup = results.CRDSetup{
		Group: v1alpha1.GroupName, CRDGroup: c.crdGroup, Objects: c.objects, Large: c.large, Clients: c.clients,
		Gets: c.gets, GetBlocks: getBlocks, ListRepeats: c.listRepeats, Watchers: c.watchers, WatchObjects: c.watchObjects,
		Tenant:      c.tenant + " (RBAC: edit and a ClusterRole for the CRD's group, bound in the benchmark's namespaces)",
		ObjectBytes: map[string]int{}, CRDBytes: len(crdJSON), CRDSchema: crdSchemaText,
		Server: strings.TrimSpace(string(specYAML)), MindIEFlags: c.mindieFlags,
	}
	if len(b.pids) > 0 {
		res.Setup.Processes = processes
	}
	add := func(m results.CRDMeasurement, err error) error {
		res.Measurements = append(res.Measurements, m)
		return err
	}

	// Creates: the CRD, then InferServers through the aggregator, then
	// directly (in a namespace of their own).
	// A few untimed creates on each path first: a CRD just established
	// builds its validators and field managers on its first requests.
	for _, s := range []side{b.crd, b.is, b.direct} {
		warm := make([]string, c.clients)
		for i := range warm {
			warm[i] = fmt.Sprintf("warm-%s-%d", s.path, i)
		}
		if _, _, _, failed, err := b.create(ctx, s, b.directNS(), warm, spec); err != nil || failed > 0 {
			return res, fmt.Errorf("warming %s via %s: %d creates failed, %v", s.api, s.path, failed, err)
		}
	}
	b.logf("creating %d objects of each API, %d clients at once", c.objects, c.clients)
	for _, s := range []side{b.crd, b.is} {
		if err := add(b.createSeries(ctx, s, b.ns(), 0, c.objects, spec)); err != nil {
			return res, err
		}
	}
	if err := add(b.createSeries(ctx, b.direct, b.directNS(), 0, c.objects, spec)); err != nil {
		return res, err
	}
	for _, s := range []side{b.crd, b.is} {
		n, err := b.objectBytes(ctx, s)
		if err != nil {
			return res, err
		}
		res.Setup.ObjectBytes[s.api] = n
	}

	// GETs, one at a time, each of another object, in an order of their
	// own. A delegated authorizer's answers are cached for 10 s, by name
	// where it asks by name, so mindie-apiserver's two tenant series read
	// objects the other did not.
	order := rand.New(rand.NewPCG(1, 2)).Perm(c.objects)
	pick := func(offset int) []string {
		out := make([]string, c.gets)
		for i := range out {
			out[i] = objectName(order[(offset+i)%c.objects])
		}
		return out
	}
	var gets []*getSpec
	for _, g := range []struct {
		s      side
		offset int
	}{{b.crd, 0}, {b.is, 0}, {b.direct, c.gets}, {b.crdAdmin, 0}, {b.isAdmin, 0}, {b.directAdmin, c.gets}} {
		// One untimed GET first: connections warm.
		if _, err := g.s.resource(b.ns()).Get(ctx, objectName(order[(g.offset+c.gets)%c.objects]), metav1.GetOptions{}); err != nil {
			return res, fmt.Errorf("GET %s via %s: %w", g.s.api, g.s.path, err)
		}
		gets = append(gets, &getSpec{s: g.s, objs: pick(g.offset)})
	}
	ms, err := b.getSeries(ctx, b.ns(), gets)
	res.Measurements = append(res.Measurements, ms...)
	if err != nil {
		return res, err
	}

	encodings, err := b.probeEncodings(ctx)
	if err != nil {
		return res, err
	}
	res.Setup.Encodings = encodings
	ms, err = b.listSeries(ctx, b.ns(), c.objects, c.listRepeats, b.lists(encodings))
	res.Measurements = append(res.Measurements, ms...)
	if err != nil {
		return res, err
	}

	b.logf("watch: %d watchers, %d creates", c.watchers, c.watchObjects)
	for _, s := range []side{b.crd, b.is} {
		if err := add(b.watchSeries(ctx, s, b.watchNS(), c.watchObjects, spec)); err != nil {
			return res, err
		}
	}

	if c.large > 0 {
		// The rest of the large namespace, InferServers first this time.
		b.logf("creating %d more objects of each API for the LIST of %d", c.large-c.objects, c.large)
		for _, s := range []side{b.is, b.crd} {
			if err := add(b.createSeries(ctx, s, b.ns(), c.objects, c.large, spec)); err != nil {
				return res, err
			}
		}
		ms, err := b.listSeries(ctx, b.ns(), c.large, c.largeListRepeats, b.lists(encodings))
		res.Measurements = append(res.Measurements, ms...)
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

func goVersion() string { return runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH }
func numCPU() int       { return runtime.NumCPU() }

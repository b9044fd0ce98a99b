package router

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"sync/atomic"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// replica is a router process of a test: kill ends it as a crash would
// (its connections cut, its lease not given up), stop as SIGTERM does
// after the requests finished (its lease given up).
type replica struct {
	*testRouter
	elector *LeaseElector
	srv     *httptest.Server
	cancel  context.CancelFunc
	done    chan struct{}
}

func (r *replica) kill() {
	r.srv.CloseClientConnections()
	r.srv.Close()
	r.cancel()
	<-r.done
}

// leaseTestConfig times the lease for a test: a standby takes over 1 s
// (the least a Lease says) after the last renewal.
func leaseTestConfig() Config {
	cfg := pdTestConfig()
	cfg.PDLeaseDuration = time.Second
	cfg.PDLeaseRenewDeadline = 600 * time.Millisecond
	cfg.PDLeaseRetryPeriod = 200 * time.Millisecond
	return cfg
}

func startReplica(t *testing.T, client kubernetes.Interface, release bool, instances ...*fakePD) *replica {
	t.Helper()
	cfg := leaseTestConfig()
	e := NewLeaseElector(client, "infer", "llama", cfg)
	e.log = logr.Discard()
	e.ReleaseOnCancel = release
	src := &fakeSource{}
	for _, f := range instances {
		src.current = append(src.current, f.instance())
	}
	r, err := New(cfg, src, WithLogger(logr.Discard()), WithRandSeed(1), WithPDElector(e))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	srv := httptest.NewServer(r.Handler())
	rep := &replica{testRouter: &testRouter{Router: r, url: srv.URL, src: src}, elector: e, srv: srv, cancel: cancel, done: done}
	t.Cleanup(func() {
		srv.Close()
		cancel()
		<-done
	})
	return rep
}

func (r *replica) ready() (bool, string) {
	a, err := trySend(http.MethodGet, r.url+"/readyz", "")
	if err != nil {
		return false, err.Error()
	}
	return a.status == http.StatusOK, a.body
}

// Two router replicas over one pair: the one holding the Lease serves,
// the other is a standby (not ready, refuses PD requests). Killing the
// active one loses only the requests it held; the standby takes over when
// the lease runs out and serves the next ones.
func TestPDLeaseFailover(t *testing.T) {
	_, p, d := pdPair(t)
	// The decode instance holds back the rest of the answers until the
	// test lets it go.
	var mu sync.Mutex
	var heldIDs []string
	gate := make(chan struct{})
	p.setHandler(func(f *fakePD, w http.ResponseWriter, call pdCall, d *fakePD) {
		id := call.header.Get(headerReqID)
		io.WriteString(w, prefillAnswerJSON(id, true, false, pdEvent(call.path, pdTokens[0], false)))
		w.(http.Flusher).Flush()
		select {
		case <-gate:
			pdDecodeRest(d, id, call.path, true)
		default:
			mu.Lock()
			heldIDs = append(heldIDs, id)
			mu.Unlock()
		}
	})
	client := fake.NewClientset()
	a := startReplica(t, client, false, p, d)
	waitFor(t, "replica a active", func() bool { ok, _ := a.ready(); return ok })
	b := startReplica(t, client, true, p, d)
	waitFor(t, "replica b campaigning", func() bool { return b.elector.Holder() == a.elector.Identity() })

	// b is a standby.
	if ok, why := b.ready(); ok || !strings.Contains(why, "standby: another router replica holds Lease infer/llama-router-pd ("+a.elector.Identity()+")") {
		t.Fatalf("standby /readyz: %v %q", ok, why)
	}
	if ans := send(t, http.MethodPost, b.url+"/v1/chat/completions", `{"stream":true}`); ans.status != http.StatusServiceUnavailable ||
		!strings.Contains(ans.body, errStandby.Error()) {
		t.Fatalf("a request to the standby: %d %q", ans.status, ans.body)
	}
	rep := b.routes(t)
	if rep.PD == nil || rep.PD.Active || rep.PD.Holder != a.elector.Identity() || instanceReport(t, rep, "d0").Dresult != DresultStandby {
		t.Fatalf("standby report %+v %+v", rep.PD, rep.Instances)
	}
	if d.connections() != 1 {
		t.Fatalf("%d /dresult connections, want only the active replica's", d.connections())
	}

	// Requests held by a.
	const held = 3
	results := make(chan answer, held)
	for range held {
		go func() {
			ans, err := trySend(http.MethodPost, a.url+"/v1/chat/completions", `{"stream":true}`)
			if err != nil {
				ans.body += "\n" + err.Error()
			}
			results <- ans
		}()
	}
	waitFor(t, "a's requests decoding", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(heldIDs) == held
	})

	killed := time.Now()
	a.kill()
	waitFor(t, "replica b active", func() bool { ok, _ := b.ready(); return ok })
	takeover := time.Since(killed)
	// Not before the lease ran out: the killed replica renewed it at most
	// a retry period (with jitter) before it died.
	if takeover < 700*time.Millisecond || takeover > 3*time.Second {
		t.Errorf("takeover took %s, want about the lease duration (1s)", takeover)
	}
	waitFor(t, "b's /dresult connection", func() bool { return d.connections() == 2 })
	lease, err := client.CoordinationV1().Leases("infer").Get(context.Background(), "llama-router-pd", metav1.GetOptions{})
	if err != nil || *lease.Spec.HolderIdentity != b.elector.Identity() {
		t.Fatalf("lease %+v, %v: want b holding it", lease, err)
	}

	// a's requests are lost: each ended without its answer.
	for range held {
		ans := <-results
		if ans.body == pdExpected("/v1/chat/completions", true) {
			t.Errorf("a request held by the killed replica completed: %q", ans.body)
		}
	}
	// The decode instance's late messages for them reach b, which drops them.
	close(gate)
	mu.Lock()
	for _, id := range heldIDs {
		pdDecodeRest(d, id, "/v1/chat/completions", true)
	}
	mu.Unlock()
	waitFor(t, "b dropping a's messages", func() bool {
		return metricValue(b.metricsText(t), `mindie_router_pd_dresult_dropped_messages_total{reason="unknown_request"}`) == held*float64(len(pdTokens)-1)
	})

	// b serves everything after.
	for i := range 5 {
		ans := send(t, http.MethodPost, b.url+"/v1/chat/completions", `{"stream":true}`)
		if ans.status != 200 || ans.body != pdExpected("/v1/chat/completions", true) {
			t.Fatalf("request %d after the takeover: %d %q", i, ans.status, ans.body)
		}
	}

	// A graceful stop gives the lease up: a new replica takes over at once,
	// not after the lease duration.
	c := startReplica(t, client, true, p, d)
	waitFor(t, "replica c campaigning", func() bool { return c.elector.Holder() == b.elector.Identity() })
	stopped := time.Now()
	b.srv.Close()
	b.cancel()
	<-b.done
	waitFor(t, "replica c active", func() bool { ok, _ := c.ready(); return ok })
	if d := time.Since(stopped); d >= leaseTestConfig().PDLeaseDuration {
		t.Errorf("takeover after a graceful stop took %s, want less than the lease duration", d)
	}
}

// A router campaigns only while its instances have roles: a server without
// them has every replica serving.
func TestPDLeaseOnlyWithRoles(t *testing.T) {
	client := fake.NewClientset()
	plain := newFakeBackend(t, "plain")
	_, p, d := pdPair(t)
	cfg := leaseTestConfig()
	e := NewLeaseElector(client, "infer", "llama", cfg)
	e.log = logr.Discard()
	tr := startRouterWith(t, cfg, []Option{WithPDElector(e)}, plain)
	if ok, why := tr.readiness(); !ok {
		t.Fatalf("not ready without roles: %s", why)
	}
	time.Sleep(3 * cfg.PDLeaseRetryPeriod)
	if _, err := client.CoordinationV1().Leases("infer").Get(context.Background(), "llama-router-pd", metav1.GetOptions{}); err == nil {
		t.Fatal("a lease was taken for a server without roles")
	}
	tr.src.set(p.instance(), d.instance())
	tr.waitPrefills(t, 1)
	lease, err := client.CoordinationV1().Leases("infer").Get(context.Background(), "llama-router-pd", metav1.GetOptions{})
	if err != nil || *lease.Spec.HolderIdentity != e.Identity() {
		t.Fatalf("lease %+v, %v", lease, err)
	}
	// The roles gone, the lease is given up.
	tr.src.set(plain.instance())
	waitFor(t, "the lease released", func() bool {
		l, err := client.CoordinationV1().Leases("infer").Get(context.Background(), "llama-router-pd", metav1.GetOptions{})
		return err == nil && (l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "")
	})
}

// An active replica cut off from the API server stops serving PD requests
// once it cannot renew its lease: the requests it held fail at once with
// that reason (their decode messages will go to the next holder), and the
// standby takes over.
func TestPDLeaseLostFailsHeldRequests(t *testing.T) {
	_, p, d := pdPair(t)
	p.setHandler(func(f *fakePD, w http.ResponseWriter, call pdCall, d *fakePD) { // D never finishes
		io.WriteString(w, prefillAnswerJSON(call.header.Get(headerReqID), true, false, pdEvent(call.path, pdTokens[0], false)))
	})
	client := fake.NewClientset()
	var cutOff atomic.Value // the identity whose lease updates fail
	cutOff.Store("")
	client.PrependReactor("update", "leases", func(action k8stesting.Action) (bool, runtime.Object, error) {
		l := action.(k8stesting.UpdateAction).GetObject().(*coordinationv1.Lease)
		if l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity == cutOff.Load() {
			return true, nil, errors.New("the API server is unreachable")
		}
		return false, nil, nil
	})
	a := startReplica(t, client, false, p, d)
	waitFor(t, "replica a active", func() bool { ok, _ := a.ready(); return ok })
	b := startReplica(t, client, true, p, d)
	waitFor(t, "replica b campaigning", func() bool { return b.elector.Holder() == a.elector.Identity() })

	results := make(chan answer, 2)
	for range 2 {
		go func() {
			ans, _ := trySend(http.MethodPost, a.url+"/v1/chat/completions", `{"stream":true}`)
			results <- ans
		}()
	}
	waitFor(t, "a's requests decoding", func() bool {
		a.pd.mu.Lock()
		defer a.pd.mu.Unlock()
		return len(a.pd.reqs) == 2
	})
	cutOff.Store(a.elector.Identity())
	for range 2 {
		select {
		case ans := <-results:
			if ans.status != 200 || !strings.HasPrefix(ans.body, pdEvent("/v1/chat/completions", pdTokens[0], false)) ||
				!strings.Contains(ans.body, errLeaseLost.Error()) {
				t.Errorf("a request held by the replica that lost the lease: %d %q", ans.status, ans.body)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the requests of the replica that lost its lease did not fail")
		}
	}
	if ok, why := a.ready(); ok || !strings.Contains(why, "standby") {
		t.Errorf("the replica that lost its lease: ready %v %q", ok, why)
	}
	waitFor(t, "replica b active", func() bool { ok, _ := b.ready(); return ok })
	ans := send(t, http.MethodPost, a.url+"/v1/chat/completions", `{"stream":true}`)
	if ans.status != http.StatusServiceUnavailable {
		t.Errorf("the former holder took a request: %d %q", ans.status, ans.body)
	}
	p.setHandler(nil)
	ans = send(t, http.MethodPost, b.url+"/v1/chat/completions", `{"stream":true}`)
	if ans.status != 200 || ans.body != pdExpected("/v1/chat/completions", true) {
		t.Errorf("the new holder: %d %q", ans.status, ans.body)
	}
}

package router

import (
	"context"
	"errors"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/klog/v2"
)

// Router routes inference requests to the instances of a Source.
type Router struct {
	cfg     Config
	src     Source
	auth    Authenticator
	log     logr.Logger
	client  *http.Client // to the inference APIs; requests are bounded by their contexts
	status  *http.Client // to the management APIs
	metrics *metrics
	handler http.Handler
	name    string // the pod's (POD_NAME) or the machine's name, in the routes report

	mu       sync.Mutex
	backends map[string]*backend
	order    []*backend // the Source's order, new instances last: the round-robin ring
	cursor   int
	inflight int // client requests in flight
	index    *prefixIndex
	affinity affinityCounts
	rand     *rand.Rand
	pollCtx  context.Context // the pollers' parent, set by Run

	// stopping: shutting down, not ready; answers ask clients to close
	// their connections.
	stopping atomic.Bool

	// pd is the Prefill/Decode state: the lease, the /dresult streams, the
	// requests waiting for their decode instance (pd.go).
	pd pdState
}

// Option configures a Router.
type Option func(*Router)

// WithAuthenticator sets how clients are authenticated (default: by
// Config.Authentication).
func WithAuthenticator(a Authenticator) Option { return func(r *Router) { r.auth = a } }

// WithLogger sets the logger (default klog's).
func WithLogger(l logr.Logger) Option { return func(r *Router) { r.log = l } }

// WithRandSeed makes the random tie-breaks repeatable (tests).
func WithRandSeed(seed uint64) Option {
	return func(r *Router) { r.rand = rand.New(rand.NewPCG(seed, seed)) }
}

// New returns a router over the instances of src. It routes nothing until
// Run (or Serve) has started src.
func New(cfg Config, src Source, opts ...Option) (*Router, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if src == nil {
		return nil, errors.New("no instance source: expected --static-backends or --server")
	}
	r := &Router{
		cfg:      cfg,
		src:      src,
		log:      klog.Background().WithName("router"),
		backends: map[string]*backend{},
		affinity: affinityCounts{lookups: map[string]int64{}},
		name:     routerName(),
		rand:     rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
	}
	for _, o := range opts {
		o(r)
	}
	if r.auth == nil {
		a, err := NewAuthenticator(cfg.Authentication)
		if err != nil {
			return nil, err
		}
		r.auth = a
	}
	instTLS, err := instanceTLS(cfg, r.log)
	if err != nil {
		return nil, err
	}
	dialer := &net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second}
	transport := &http.Transport{
		Proxy:               nil, // instances are reached directly, never through an environment proxy
		DialContext:         dialer.DialContext,
		TLSClientConfig:     instTLS, // https:// instances (InferServer spec.tls.enabled)
		TLSHandshakeTimeout: cfg.ConnectTimeout,
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true, // relay the instance's encoding as it is
	}
	r.client = &http.Client{Transport: transport, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	r.status = &http.Client{Transport: transport.Clone()}
	size := cfg.AffinityIndexSize
	if size == 0 {
		size = cfg.AffinityFallbackSize
	}
	r.index = newPrefixIndex(size, cfg.AffinityHitWindow)
	r.metrics = newMetrics(r)
	r.initPD()
	r.handler = r.routes()
	return r, nil
}

// Handler serves the inference routes, /healthz, /readyz, /metrics and
// /router/routes.
func (r *Router) Handler() http.Handler { return r.handler }

// Run follows the Source, polling each instance's status, until ctx is
// done or the Source fails.
func (r *Router) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer r.waitPD() // the lease released, the /dresult streams closed
	defer cancel()
	r.mu.Lock()
	r.pollCtx = ctx
	r.mu.Unlock()
	err := r.src.Run(ctx, r.update)
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("instance source: %w", err)
	}
	return nil
}

// Serve serves on ln until ctx is done, then shuts down as a Kubernetes pod
// should: it turns not ready (/readyz 503) at once but goes on serving new
// requests for ShutdownDelay, the time endpoints and load balancers take to
// stop sending (answers meanwhile carry Connection: close, so that clients
// with a kept-alive connection open a new one, elsewhere); then it stops
// accepting, lets the requests in flight finish within ShutdownGrace and
// returns. It serves HTTPS (servingTLS) unless Config.InsecureHTTP. The
// Source runs until the end (a draining instance must still be seen to
// drain).
func (r *Router) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: r.handler, ReadHeaderTimeout: readHeaderTimeout,
		ErrorLog: log.New(serverLog{r.log.V(1)}, "", 0)}
	if !r.cfg.InsecureHTTP {
		conf, err := servingTLS(r.cfg, r.log)
		if err != nil {
			ln.Close()
			return err
		}
		srv.TLSConfig = conf
	}
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRun()
	runErr := make(chan error, 1)
	go func() { runErr <- r.Run(runCtx) }()
	runDone := false

	serveErr := make(chan error, 1)
	go func() {
		if srv.TLSConfig != nil {
			serveErr <- srv.ServeTLS(ln, "", "")
			return
		}
		serveErr <- srv.Serve(ln)
	}()
	select {
	case err := <-serveErr:
		return err
	case err := <-runErr:
		runDone = true
		if err != nil {
			srv.Close()
			return err
		}
		<-ctx.Done() // the Source ended without error: keep its last set
	case <-ctx.Done():
	}
	r.stopping.Store(true)
	if d := r.cfg.ShutdownDelay; d > 0 {
		r.log.Info("shutting down: not ready, still serving while endpoints and load balancers stop sending", "delay", d)
		delay := time.NewTimer(d)
		select {
		case <-delay.C:
		case err := <-serveErr:
			delay.Stop()
			return err
		}
	}
	r.log.Info("shutting down: no new connections, waiting for requests in flight", "grace", r.cfg.ShutdownGrace)
	graceCtx, cancel := context.WithTimeout(context.Background(), r.cfg.ShutdownGrace)
	defer cancel()
	err := srv.Shutdown(graceCtx)
	if err != nil {
		srv.Close()
	}
	if !runDone {
		// The requests are over: stop following the Source and give up
		// the PD lease at once, so that a standby takes over now.
		stopRun()
		select {
		case <-runErr:
		case <-time.After(r.cfg.PDLeaseRenewDeadline):
		}
	}
	if err != nil {
		return fmt.Errorf("requests still in flight after the %s grace period were cut", r.cfg.ShutdownGrace)
	}
	return nil
}

// serverLog takes the http.Server's own messages (failed TLS handshakes,
// plain HTTP sent to the HTTPS port) into the router's log, verbose: they
// are the clients' problems.
type serverLog struct{ log logr.Logger }

func (l serverLog) Write(p []byte) (int, error) {
	l.log.Info("http server", "msg", strings.TrimSpace(string(p)))
	return len(p), nil
}

// update takes a complete instance set from the Source.
func (r *Router) update(instances []Instance) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := make(map[string]bool, len(instances))
	for _, inst := range instances {
		if inst.Name == "" || seen[inst.Name] {
			r.log.Info("ignoring an instance without a name or with a duplicate one", "instance", inst.Name)
			continue
		}
		u, err := url.Parse(inst.Inference)
		if err != nil || u.Host == "" {
			r.log.Info("ignoring an instance with a bad inference URL", "instance", inst.Name, "inference", inst.Inference)
			continue
		}
		seen[inst.Name] = true
		b, ok := r.backends[inst.Name]
		if ok && b.inst.Inference == inst.Inference && b.inst.Management == inst.Management {
			if b.inst.Draining != inst.Draining || b.inst.Ready != inst.Ready {
				r.log.Info("instance changed", "instance", inst.Name, "ready", inst.Ready, "draining", inst.Draining)
			}
			b.inst = inst
			continue
		}
		if ok {
			r.removeLocked(b)
		}
		b = &backend{inst: inst, inference: u, present: true}
		r.backends[inst.Name] = b
		r.order = append(r.order, b)
		r.log.Info("instance added", "instance", inst.Name, "inference", inst.Inference, "management", inst.Management)
		if inst.Management != "" && r.pollCtx != nil {
			ctx, cancel := context.WithCancel(r.pollCtx)
			b.stopPoll = cancel
			go r.poll(ctx, b, inst.Management)
		}
	}
	for name, b := range r.backends {
		if !seen[name] {
			r.removeLocked(b)
			r.log.Info("instance removed; its requests in flight finish", "instance", name, "inflight", b.inflight)
		}
	}
	r.resizeIndexLocked()
	r.pdSyncLocked()
}

// removeLocked takes an instance out at once: no new request goes there and
// the index forgets it, so its conversations move.
func (r *Router) removeLocked(b *backend) {
	b.present = false
	if b.stopPoll != nil {
		b.stopPoll()
	}
	r.pdRemovedLocked(b)
	delete(r.backends, b.inst.Name)
	for i, o := range r.order {
		if o == b {
			r.order = append(r.order[:i], r.order[i+1:]...)
			if r.cursor >= i && r.cursor > 0 {
				r.cursor--
			}
			break
		}
	}
	r.index.forget(b.inst.Name)
}

// resizeIndexLocked sizes the prefix index from the instances' KV blocks
// (one index block stands for about one KV block), unless a size is set.
func (r *Router) resizeIndexLocked() {
	if r.cfg.AffinityIndexSize > 0 {
		return
	}
	total := 0
	for _, b := range r.order {
		_, blocks := b.totals()
		total += blocks
	}
	if total == 0 {
		total = r.cfg.AffinityFallbackSize
	}
	if total != r.index.capacity {
		r.index.setCapacity(total)
	}
}

// poll reads an instance's /v1/status every StatusInterval until ctx ends.
func (r *Router) poll(ctx context.Context, b *backend, management string) {
	ticker := time.NewTicker(r.cfg.StatusInterval)
	defer ticker.Stop()
	for {
		readCtx, cancel := context.WithTimeout(ctx, r.cfg.StatusTimeout)
		st, err := readStatus(readCtx, r.status, management)
		cancel()
		if ctx.Err() != nil {
			return
		}
		r.mu.Lock()
		wasOK := b.statusOK
		if err == nil {
			b.setStatus(st, time.Now())
		} else {
			b.statusFailed(err, r.cfg.StatusFailures)
		}
		if b.statusOK != wasOK {
			if b.statusOK {
				r.log.Info("instance status read: routable", "instance", b.inst.Name, "freeSlots", st.AvailSlots, "freeBlocks", st.AvailBlocks)
			} else {
				r.log.Info("instance status failing: not routable", "instance", b.inst.Name, "err", err)
			}
		}
		r.resizeIndexLocked()
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// Ready reports whether at least one instance is routable and the router
// is not shutting down.
func (r *Router) Ready() bool {
	ok, _ := r.readiness()
	return ok
}

func (r *Router) readiness() (bool, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.readinessLocked()
}

func (r *Router) readinessLocked() (bool, string) {
	if r.stopping.Load() {
		return false, "shutting down"
	}
	if why := r.pdStandbyLocked(); why != "" {
		return false, why
	}
	now := time.Now()
	for _, b := range r.order {
		if r.servableLocked(b, now) {
			return true, "ok"
		}
	}
	return false, fmt.Sprintf("none of %d instances is routable", len(r.order))
}

// routes builds the handler.
func (r *Router) routes() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range inferenceRoutes {
		mux.Handle(rt.method+" "+rt.path, r.inference(rt))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, why := r.readiness()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		w.Write([]byte(why + "\n"))
	})
	mux.HandleFunc("GET "+RoutesPath, r.serveRoutes)
	mux.Handle("GET /metrics", promhttp.HandlerFor(r.metrics.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		style := plainErrors
		if len(req.URL.Path) >= 4 && req.URL.Path[:4] == "/v1/" {
			style = openAIErrors
		}
		writeError(w, style, &routerError{status: http.StatusNotFound, kind: kindNotFound,
			msg: fmt.Sprintf("no route %s %s: the router serves %s", req.Method, req.URL.Path, routeList())})
	})
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.stopping.Load() {
			// Shutting down: this connection ends with this answer (for
			// HTTP/2, a GOAWAY), so a client that keeps connections alive
			// opens its next one to a replica still in the endpoints.
			w.Header().Set("Connection", "close")
		}
		mux.ServeHTTP(w, req)
	})
}

package inferserver

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	"mindie.io/deployer/apis/infer"
	"mindie.io/deployer/pkg/router"
)

// For a server without a router of its own (spec.router unset), the proxy
// subresource picks the instance of an inference request with the same
// code the routers run (pkg/router), in this process: cache_affinity, so
// that a chat's next turn finds its prefix cache, retries on another
// instance before the first byte, and X-Mindie-Instance on the answer.
// The instances are the ready ones of the server's status. No instance's
// /v1/status is polled: the proxy is the door of tenants' tools, not of
// production traffic, and balances on its own counts.

// localRouterIdle is how long an unused in-process router is kept.
const localRouterIdle = 10 * time.Minute

// localRouters holds an in-process router per server proxied recently.
type localRouters struct {
	mu      sync.Mutex
	routers map[string]*localRouter // by namespace/name
	now     func() time.Time
}

type localRouter struct {
	uid      types.UID
	tls      bool
	handler  http.Handler
	src      *statusSource
	cancel   context.CancelFunc
	lastUsed time.Time
}

func newLocalRouters() *localRouters {
	return &localRouters{routers: map[string]*localRouter{}, now: time.Now}
}

// handler returns the in-process router of s, made or remade when s is new
// (another UID, TLS switched), fed with s's ready instances.
func (l *localRouters) handler(s *infer.InferServer) (http.Handler, error) {
	key := s.Namespace + "/" + s.Name
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.evictLocked(now)
	lr := l.routers[key]
	if lr != nil && (lr.uid != s.UID || lr.tls != s.Spec.TLS.Enabled) {
		lr.cancel()
		lr = nil
	}
	if lr == nil {
		cfg := router.DefaultConfig()
		cfg.Algorithm = router.CacheAffinity
		cfg.Authentication = router.AuthNone // the API server has authorized the caller
		// See NewProxyREST: a pod's certificate cannot name its IP.
		cfg.InstanceInsecureSkipVerify = s.Spec.TLS.Enabled
		src := &statusSource{started: make(chan struct{})}
		r, err := router.New(cfg, src, router.WithLogger(klog.Background().WithName("proxy-router").WithValues("inferserver", key)))
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() { _ = r.Run(ctx) }()
		// The router knows the instances once its source has started.
		select {
		case <-src.started:
		case <-time.After(5 * time.Second):
		}
		lr = &localRouter{uid: s.UID, tls: s.Spec.TLS.Enabled, handler: r.Handler(), src: src, cancel: cancel}
		l.routers[key] = lr
	}
	lr.lastUsed = now
	lr.src.set(readyInstances(s))
	return lr.handler, nil
}

// evictLocked stops the routers unused for localRouterIdle.
func (l *localRouters) evictLocked(now time.Time) {
	for key, lr := range l.routers {
		if now.Sub(lr.lastUsed) > localRouterIdle {
			lr.cancel()
			delete(l.routers, key)
		}
	}
}

// readyInstances are the ready instances of s that have a pod to dial, as
// the router sees them.
func readyInstances(s *infer.InferServer) []router.Instance {
	scheme := "http"
	if s.Spec.TLS.Enabled {
		scheme = "https"
	}
	var out []router.Instance
	for i := range s.Status.Instances {
		inst := &s.Status.Instances[i]
		if !inst.Ready {
			continue
		}
		pod, ip, _ := podToDial(inst)
		if pod == "" {
			continue
		}
		u := url.URL{Scheme: scheme, Host: net.JoinHostPort(ip.String(), strconv.Itoa(int(*s.Spec.Ports.Inference)))}
		out = append(out, router.Instance{Name: pod, Inference: u.String(), Ready: true})
	}
	return out
}

// statusSource is a router.Source fed by the proxy from the server's
// status on every request.
type statusSource struct {
	started chan struct{} // closed once Run has handed the first set over
	mu      sync.Mutex
	update  func([]router.Instance)
	current []router.Instance
}

// Run hands the current instances to the router, then every change, until
// ctx ends.
func (s *statusSource) Run(ctx context.Context, update func([]router.Instance)) error {
	s.mu.Lock()
	s.update = update
	update(s.current)
	s.mu.Unlock()
	close(s.started)
	<-ctx.Done()
	return nil
}

// set records the instances and tells the router when they changed.
func (s *statusSource) set(instances []router.Instance) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.Equal(s.current, instances) {
		return
	}
	s.current = instances
	if s.update != nil {
		s.update(instances)
	}
}

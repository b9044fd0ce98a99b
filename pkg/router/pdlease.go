package router

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
)

// PDLeaseName is the Lease (coordination.k8s.io/v1, in the server's
// namespace) whose holder is the active router of the Prefill/Decode
// server.
func PDLeaseName(server string) string { return server + "-router-pd" }

// LeaseElector is the PDElector of routers deployed for an InferServer: a
// MindIE decode instance serves one /dresult consumer at a time (a new one
// closes the old), so of the router replicas only the one holding the
// Lease PDLeaseName(server) opens the streams and serves PD requests, as
// MindIE runs its Coordinators active/standby behind a lock. It is
// client-go's leader election: the holder renews the Lease every
// RetryPeriod and stops serving when it could not for RenewDeadline; a
// standby takes over a Lease not renewed for LeaseDuration. The router's
// ServiceAccount needs get, create and update on leases in the namespace.
type LeaseElector struct {
	client    kubernetes.Interface
	namespace string
	name      string
	identity  string
	duration  time.Duration
	renew     time.Duration
	retry     time.Duration
	log       logr.Logger
	// ReleaseOnCancel gives the Lease up when Run's context ends (the
	// router stops after its requests finished), so that a standby takes
	// over at once rather than after LeaseDuration. True by NewLeaseElector.
	ReleaseOnCancel bool

	mu sync.Mutex
	le *leaderelection.LeaderElector
}

// NewLeaseElector returns the elector of the routers of InferServer server
// in namespace, timed by cfg's PDLease* settings. The identity is the
// router's name (its pod's) and a random suffix, unique per process.
func NewLeaseElector(client kubernetes.Interface, namespace, server string, cfg Config) *LeaseElector {
	return &LeaseElector{
		client:          client,
		namespace:       namespace,
		name:            PDLeaseName(server),
		identity:        fmt.Sprintf("%s_%08x", routerName(), rand.Uint32()),
		duration:        cfg.PDLeaseDuration,
		renew:           cfg.PDLeaseRenewDeadline,
		retry:           cfg.PDLeaseRetryPeriod,
		log:             klog.Background().WithName("pd-lease"),
		ReleaseOnCancel: true,
	}
}

// Identity is the name this replica holds the Lease under.
func (e *LeaseElector) Identity() string { return e.identity }

// Describe names the Lease.
func (e *LeaseElector) Describe() string { return "Lease " + e.namespace + "/" + e.name }

// Holder is the holder last seen.
func (e *LeaseElector) Holder() string {
	e.mu.Lock()
	le := e.le
	e.mu.Unlock()
	if le == nil {
		return ""
	}
	return le.GetLeader()
}

// Run campaigns until ctx ends; after losing the Lease it campaigns again.
func (e *LeaseElector) Run(ctx context.Context, lead func(ctx context.Context)) {
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock: &resourcelock.LeaseLock{
				LeaseMeta:  metav1.ObjectMeta{Name: e.name, Namespace: e.namespace},
				Client:     e.client.CoordinationV1(),
				LockConfig: resourcelock.ResourceLockConfig{Identity: e.identity},
			},
			LeaseDuration:   e.duration,
			RenewDeadline:   e.renew,
			RetryPeriod:     e.retry,
			ReleaseOnCancel: e.ReleaseOnCancel,
			Name:            e.name,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: lead,
				OnStoppedLeading: func() {},
			},
		})
		if err != nil { // Config.Validate checks the timing first
			e.log.Error(err, "cannot campaign for the Prefill/Decode lease", "lease", e.Describe())
			return
		}
		e.mu.Lock()
		e.le = le
		e.mu.Unlock()
		le.Run(klog.NewContext(ctx, e.log))
		if ctx.Err() == nil {
			e.log.Info("lease lost: campaigning again", "lease", e.Describe(), "identity", e.identity)
		}
	}
}

// Package failover keeps steady writes and reads of InferServers going
// through the API while a mindie-apiserver replica dies, the way a careful
// client would: an operation that fails with an error that says "try
// again" (503, 504, 429, a connection that broke) is retried until it
// succeeds; any other error is a failure of the API. Afterwards it checks
// that every write the API acknowledged is there exactly once, and it
// measures how soon the surviving replica's controllers act.
//
// The e2e test of two replicas (test/e2e) and the failover benchmark
// (test/bench/habench) both drive it.
package failover

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"golang.org/x/net/http2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
	clientset "mindie.io/deployer/pkg/generated/clientset/versioned"
)

// The labels and annotations the load puts on its servers.
const (
	// RunLabel holds the run's name on every server it creates.
	RunLabel = "failover.mindie.io/run"
	// TokenAnnotation is unique to one create: a server carrying another
	// token than the one its name was created with was written twice.
	TokenAnnotation = "failover.mindie.io/token"
	// SeqAnnotation is the number of the last update of a server.
	SeqAnnotation = "failover.mindie.io/seq"
	// SentAnnotation is when the client first sent the create (Unix ms).
	SentAnnotation = "failover.mindie.io/sent"
	// unschedulableKey is a node label no node has: the servers' pods stay
	// Pending, so the load costs the control plane, not the nodes.
	unschedulableKey = "failover.mindie.io/nowhere"
)

// Options shape the load.
type Options struct {
	// Namespace the servers are created in; it should be empty at start.
	Namespace string
	// Run names this load (RunLabel); the servers are <Run>-<writer>-<n>.
	Run string
	// Writers each create a server, then update one of their own, in turn.
	Writers int
	// Readers each get one acknowledged server, and every fifth time list
	// the run's servers.
	Readers int
	// Pause is each goroutine's wait between operations.
	Pause time.Duration
	// RetryFor bounds the retries of one operation; one that still fails
	// then counts as given up.
	RetryFor time.Duration
}

// DefaultOptions are a modest, steady load: with four writers and four
// readers pausing 100 ms, about 40 writes and 40 reads a second.
func DefaultOptions(ns, run string) Options {
	return Options{Namespace: ns, Run: run, Writers: 4, Readers: 4, Pause: 100 * time.Millisecond, RetryFor: 60 * time.Second}
}

// Op is one operation as the client saw it.
type Op struct {
	Kind string // create, update, get, list
	// Start is when it was first sent; Latency runs until it succeeded or
	// was given up, retries included.
	Start    time.Time
	Latency  time.Duration
	Attempts int
	// Err is the last error of an operation that did not succeed.
	Err error
}

// Report is what a load saw.
type Report struct {
	Options Options
	Start   time.Time
	End     time.Time
	Ops     []Op
	// Retryable counts the failed attempts that were retried, by error.
	Retryable map[string]int
	// Unretryable lists the errors that are not retryable: each is a
	// failure of the API.
	Unretryable []string
	// GaveUp lists the operations that failed for longer than RetryFor.
	GaveUp []string
	// Lost lists reads of an acknowledged server that did not find it.
	Lost []string

	// created maps each acknowledged server to its token; seq to its last
	// acknowledged update; pending to the updates sent but not
	// acknowledged (given up), which may or may not have landed.
	created map[string]string
	seq     map[string]int
	pending map[string][]int
	// attempted is every name a create was sent for.
	attempted map[string]bool
}

// Acknowledged is the number of creates the API acknowledged.
func (r *Report) Acknowledged() int { return len(r.created) }

// Load is a running load.
type Load struct {
	infer  clientset.Interface
	opts   Options
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	report Report
	acked  []string // created names, in order, for the readers
}

// Start begins the load; Stop ends it and returns what it saw.
func Start(ctx context.Context, infer clientset.Interface, o Options) *Load {
	ctx, cancel := context.WithCancel(ctx)
	l := &Load{infer: infer, opts: o, cancel: cancel, report: Report{
		Options: o, Start: time.Now(), Retryable: map[string]int{},
		created: map[string]string{}, seq: map[string]int{}, pending: map[string][]int{}, attempted: map[string]bool{},
	}}
	for w := range o.Writers {
		l.wg.Go(func() { l.writer(ctx, w) })
	}
	for r := range o.Readers {
		l.wg.Go(func() { l.reader(ctx, r) })
	}
	return l
}

// Started is when the load began.
func (l *Load) Started() time.Time { return l.report.Start }

// Stop ends the load: operations under way finish (or are given up), then
// the report is returned.
func (l *Load) Stop() *Report {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.report.End = time.Now()
	return &l.report
}

// Retryable reports whether an error says the request may succeed if sent
// again: the server is unavailable or overloaded, or the connection or the
// request's HTTP/2 stream broke.
func Retryable(err error) bool {
	return apierrors.IsServiceUnavailable(err) || apierrors.IsTimeout(err) || apierrors.IsServerTimeout(err) ||
		apierrors.IsTooManyRequests(err) || utilnet.IsConnectionReset(err) || utilnet.IsConnectionRefused(err) ||
		utilnet.IsProbableEOF(err) || utilnet.IsHTTP2ConnectionLost(err) || streamReset(err) ||
		errors.Is(err, context.DeadlineExceeded)
}

// streamReset reports whether the peer reset the request's HTTP/2 stream.
// kube-apiserver does that when the replica it proxies a request to dies
// after the answer has begun: the headers are out, so the only way left to
// tell the client is to break the stream, and client-go returns the reset
// as an error that asks to retry. The connection to kube-apiserver itself
// is fine.
func streamReset(err error) bool {
	var se http2.StreamError
	return errors.As(err, &se)
}

// do runs one operation, retrying retryable errors with a short backoff
// until it succeeds or RetryFor has passed. Stopping the load does not
// abandon an operation halfway: its answer decides what was acknowledged.
func (l *Load) do(kind, what string, f func(ctx context.Context, attempt int) error) Op {
	op := Op{Kind: kind, Start: time.Now()}
	deadline := op.Start.Add(l.opts.RetryFor)
	backoff := 50 * time.Millisecond
	for {
		op.Attempts++
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := f(ctx, op.Attempts)
		cancel()
		if err == nil {
			op.Err = nil
			break
		}
		op.Err = err
		if !Retryable(err) {
			l.mu.Lock()
			l.report.Unretryable = append(l.report.Unretryable, fmt.Sprintf("%s %s (attempt %d): %v", kind, what, op.Attempts, err))
			l.mu.Unlock()
			break
		}
		l.mu.Lock()
		l.report.Retryable[errorClass(err)]++
		l.mu.Unlock()
		if time.Now().After(deadline) {
			l.mu.Lock()
			l.report.GaveUp = append(l.report.GaveUp, fmt.Sprintf("%s %s after %d attempts: %v", kind, what, op.Attempts, err))
			l.mu.Unlock()
			break
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, time.Second)
	}
	op.Latency = time.Since(op.Start)
	l.mu.Lock()
	l.report.Ops = append(l.report.Ops, op)
	l.mu.Unlock()
	return op
}

// errorClass names an error for counting: its HTTP status or its kind.
func errorClass(err error) string {
	var se apierrors.APIStatus
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("%d %s", se.Status().Code, se.Status().Reason)
	case utilnet.IsConnectionReset(err):
		return "connection reset"
	case utilnet.IsConnectionRefused(err):
		return "connection refused"
	case utilnet.IsProbableEOF(err):
		return "EOF"
	case streamReset(err):
		return "stream reset"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	return "other"
}

func (l *Load) pause(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(l.opts.Pause):
		return true
	}
}

// Server is the InferServer the load creates: one instance whose pod no
// node can take.
func Server(ns, name, run, token string, sent time.Time) *v1alpha1.InferServer {
	return &v1alpha1.InferServer{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: ns,
			Labels:      map[string]string{RunLabel: run},
			Annotations: map[string]string{TokenAnnotation: token, SentAnnotation: strconv.FormatInt(sent.UnixMilli(), 10)},
		},
		Spec: v1alpha1.InferServerSpec{
			Replicas: ptr.To[int32](1),
			Resources: v1alpha1.InferResources{
				CPU:    ptr.To(resource.MustParse("1")),
				Memory: ptr.To(resource.MustParse("1000Mi")),
				NPU:    v1alpha1.NPURequest{Count: ptr.To[int32](1)},
			},
			NodeSelector: map[string]string{unschedulableKey: "true"},
			Service:      v1alpha1.InferServiceExposure{Type: corev1.ServiceTypeClusterIP},
		},
	}
}

func (l *Load) writer(ctx context.Context, w int) {
	var mine []string
	for n := 0; ; n++ {
		if !l.pause(ctx) {
			return
		}
		if n%2 == 1 && len(mine) > 0 {
			l.update(ctx, mine[rand.IntN(len(mine))])
			continue
		}
		name := fmt.Sprintf("%s-%d-%d", l.opts.Run, w, n)
		if l.create(ctx, name) {
			mine = append(mine, name)
		}
	}
}

func (l *Load) create(ctx context.Context, name string) bool {
	token := strconv.FormatUint(rand.Uint64(), 36)
	sent := time.Now()
	l.mu.Lock()
	l.report.attempted[name] = true
	l.mu.Unlock()
	servers := l.infer.InferV1alpha1().InferServers(l.opts.Namespace)
	op := l.do("create", name, func(ctx context.Context, attempt int) error {
		_, err := servers.Create(ctx, Server(l.opts.Namespace, name, l.opts.Run, token, sent), metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) && attempt > 1 {
			// An earlier attempt may have landed before its answer was
			// lost: it did if the server there carries this token.
			got, gerr := servers.Get(ctx, name, metav1.GetOptions{})
			if gerr != nil {
				return gerr
			}
			if got.Annotations[TokenAnnotation] == token {
				return nil
			}
		}
		return err
	})
	if op.Err != nil {
		return false
	}
	l.mu.Lock()
	l.report.created[name] = token
	l.acked = append(l.acked, name)
	l.mu.Unlock()
	return true
}

func (l *Load) update(ctx context.Context, name string) {
	l.mu.Lock()
	seq := l.report.seq[name] + len(l.report.pending[name]) + 1
	l.mu.Unlock()
	patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, SeqAnnotation, strconv.Itoa(seq))
	op := l.do("update", name, func(ctx context.Context, _ int) error {
		_, err := l.infer.InferV1alpha1().InferServers(l.opts.Namespace).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
		return err
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	if op.Err != nil {
		l.report.pending[name] = append(l.report.pending[name], seq)
		return
	}
	l.report.seq[name] = seq
	l.report.pending[name] = nil
}

func (l *Load) reader(ctx context.Context, r int) {
	servers := l.infer.InferV1alpha1().InferServers(l.opts.Namespace)
	for n := 0; ; n++ {
		if !l.pause(ctx) {
			return
		}
		if n%5 == 4 {
			l.do("list", l.opts.Run, func(ctx context.Context, _ int) error {
				_, err := servers.List(ctx, metav1.ListOptions{LabelSelector: RunLabel + "=" + l.opts.Run})
				return err
			})
			continue
		}
		l.mu.Lock()
		var name string
		if len(l.acked) > 0 {
			name = l.acked[rand.IntN(len(l.acked))]
		}
		l.mu.Unlock()
		if name == "" {
			continue
		}
		op := l.do("get", name, func(ctx context.Context, _ int) error {
			_, err := servers.Get(ctx, name, metav1.GetOptions{})
			return err
		})
		if apierrors.IsNotFound(op.Err) {
			l.mu.Lock()
			l.report.Lost = append(l.report.Lost, fmt.Sprintf("get %s (reader %d): not found after it was acknowledged", name, r))
			l.mu.Unlock()
		}
	}
}

// Problems are the ways the API failed the load: errors that were not
// retryable, operations given up, reads of acknowledged servers that found
// nothing.
func (r *Report) Problems() []string {
	var out []string
	out = append(out, r.Unretryable...)
	out = append(out, r.GaveUp...)
	out = append(out, r.Lost...)
	return out
}

// Verify lists the run's servers and returns every way they disagree with
// what the API acknowledged: an acknowledged server missing, a server
// written by another create than the acknowledged one (written twice), a
// server nobody asked for, an acknowledged update missing.
func (r *Report) Verify(ctx context.Context, infer clientset.Interface) ([]string, error) {
	var list *v1alpha1.InferServerList
	var err error
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		list, err = infer.InferV1alpha1().InferServers(r.Options.Namespace).List(ctx, metav1.ListOptions{LabelSelector: RunLabel + "=" + r.Options.Run})
		if err == nil {
			break
		}
		if !Retryable(err) || time.Now().After(deadline) {
			return nil, err
		}
	}
	var problems []string
	seen := map[string]bool{}
	for _, s := range list.Items {
		seen[s.Name] = true
		if !r.attempted[s.Name] {
			problems = append(problems, fmt.Sprintf("%s exists, but no create was sent for it", s.Name))
			continue
		}
		token, acked := r.created[s.Name]
		if acked && s.Annotations[TokenAnnotation] != token {
			problems = append(problems, fmt.Sprintf("%s carries token %q, not that of its acknowledged create %q: written twice", s.Name, s.Annotations[TokenAnnotation], token))
		}
		want := r.seq[s.Name]
		got, _ := strconv.Atoi(s.Annotations[SeqAnnotation])
		if got != want && !slices.Contains(r.pending[s.Name], got) {
			problems = append(problems, fmt.Sprintf("%s: update %d, want the last acknowledged %d (or one given up: %v)", s.Name, got, want, r.pending[s.Name]))
		}
	}
	for name := range r.created {
		if !seen[name] {
			problems = append(problems, fmt.Sprintf("%s was acknowledged, but is gone", name))
		}
	}
	sort.Strings(problems)
	return problems, nil
}

// Stats summarise the operations of a time window.
type Stats struct {
	Ops        int
	PerSecond  float64
	Attempts   int
	P50, P99   time.Duration
	Max        time.Duration
	MaxAttempt int
}

// Window returns the statistics of the operations that started in
// [from, to).
func (r *Report) Window(from, to time.Time) Stats {
	var lat []time.Duration
	var s Stats
	for _, op := range r.Ops {
		if op.Start.Before(from) || !op.Start.Before(to) {
			continue
		}
		s.Ops++
		s.Attempts += op.Attempts
		s.MaxAttempt = max(s.MaxAttempt, op.Attempts)
		lat = append(lat, op.Latency)
	}
	if len(lat) == 0 {
		return s
	}
	slices.Sort(lat)
	s.P50 = lat[len(lat)/2]
	s.P99 = lat[min(len(lat)-1, len(lat)*99/100)]
	s.Max = lat[len(lat)-1]
	s.PerSecond = float64(s.Ops) / to.Sub(from).Seconds()
	return s
}

// Takeover is how soon, after a replica died, the others took over.
type Takeover struct {
	// NewLeader holds the Lease afterwards.
	NewLeader string
	// Lease is the time until the Lease changed hands.
	Lease time.Duration
	// Act is the time until the controllers had reconciled a server
	// created after the death (its status observed).
	Act time.Duration
}

// WatchTakeover polls, from killed on, the controllers' Lease until another
// than oldLeader holds it, and the run's servers until one created after
// killed has its status observed by the controllers; it returns when both
// have happened or ctx ends.
func WatchTakeover(ctx context.Context, kube kubernetes.Interface, infer clientset.Interface, leaseNS, leaseName, oldLeader, ns, run string, killed time.Time) (Takeover, error) {
	var t Takeover
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if t.Lease == 0 {
			if l, err := kube.CoordinationV1().Leases(leaseNS).Get(ctx, leaseName, metav1.GetOptions{}); err == nil {
				if h := ptr.Deref(l.Spec.HolderIdentity, ""); h != "" && h != oldLeader {
					t.NewLeader, t.Lease = h, time.Since(killed)
				}
			}
		}
		if t.Act == 0 {
			if list, err := infer.InferV1alpha1().InferServers(ns).List(ctx, metav1.ListOptions{LabelSelector: RunLabel + "=" + run}); err == nil {
				for _, s := range list.Items {
					sent, _ := strconv.ParseInt(s.Annotations[SentAnnotation], 10, 64)
					if sent > killed.UnixMilli() && s.Status.ObservedGeneration > 0 && s.Status.ObservedGeneration == s.Generation && s.Status.UpdateRevision != "" {
						t.Act = time.Since(killed)
						break
					}
				}
			}
		}
		if t.Lease > 0 && t.Act > 0 {
			return t, nil
		}
		select {
		case <-ctx.Done():
			return t, fmt.Errorf("after %s: lease %s (holder %q), controllers acting %s: %w", time.Since(killed).Round(time.Millisecond), t.Lease, t.NewLeader, t.Act, ctx.Err())
		case <-tick.C:
		}
	}
}

package router

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"mindie.io/deployer/apis/infer/v1alpha1"
)

// Algorithm is how the router picks an instance for a request.
type Algorithm string

const (
	// RoundRobin is MindIE Coordinator's round_robin: the next instance in
	// turn whose free slots and free KV blocks are above the thresholds.
	RoundRobin = Algorithm(v1alpha1.RouterRoundRobin)
	// CacheAffinity sends an OpenAI chat to the instance that holds the
	// longest prefix of its message stream until that instance saturates;
	// everything else goes least-loaded.
	CacheAffinity = Algorithm(v1alpha1.RouterCacheAffinity)
	// LeastLoad picks the instance with the least work in flight, counted
	// by the router itself.
	LeastLoad = Algorithm(v1alpha1.RouterLeastLoad)
)

// Algorithms lists the valid algorithms, for help and errors.
var Algorithms = []Algorithm{RoundRobin, CacheAffinity, LeastLoad}

// AuthMode is how the router authenticates clients.
type AuthMode string

const (
	// AuthNone admits every request.
	AuthNone AuthMode = "none"
	// AuthKubernetes admits a request whose bearer token the Kubernetes API
	// accepts (TokenReview) and whose user may create inferservers/proxy of
	// --server in --namespace (SubjectAccessReview).
	AuthKubernetes AuthMode = "kubernetes"
)

// AuthModes lists the authentication modes.
var AuthModes = []AuthMode{AuthNone, AuthKubernetes}

// The defaults (DefaultConfig, and so the flags' defaults). Those the
// InferServer API has too (spec.router) are the API's (apis/infer/v1alpha1).
// Where MindIE Motor's Coordinator has the same knob its default is kept.
const (
	DefaultListen    = "127.0.0.1:1025" // the Coordinator's predict port, loopback as its default
	DefaultAlgorithm = Algorithm(v1alpha1.DefaultRouterAlgorithm)
	// DefaultAuthentication stays none: kubernetes needs --server and a
	// cluster, which a router over --static-backends does not have.
	DefaultAuthentication          = AuthNone
	DefaultAuthCacheTTL            = 10 * time.Second
	DefaultAuthCacheDeniedTTL      = 2 * time.Second
	DefaultMaxRetries              = int(v1alpha1.DefaultRouterMaxRetries)
	DefaultMaxBodyBytes            = v1alpha1.DefaultRouterMaxBodyBytes
	DefaultMaxInflight             = int(v1alpha1.DefaultRouterMaxInflight)        // the Coordinator\'s max_requests
	DefaultMaxInflightPerInstance  = int(v1alpha1.DefaultRouterMaxInflightPerInst) // the Coordinator\'s single_node_max_requests
	DefaultFirstTokenTimeout       = time.Duration(v1alpha1.DefaultRouterTimeoutSeconds) * time.Second
	DefaultRequestTimeout          = time.Duration(v1alpha1.DefaultRouterTimeoutSeconds) * time.Second
	DefaultConnectTimeout          = 5 * time.Second
	DefaultStatusInterval          = time.Second
	DefaultStatusTimeout           = time.Second
	DefaultStatusFailures          = 2
	DefaultSlotsThreshold          = float64(v1alpha1.DefaultRouterThresholdPercent) / 100 // the Coordinator\'s slots_thresh
	DefaultBlocksThreshold         = float64(v1alpha1.DefaultRouterThresholdPercent) / 100 // the Coordinator\'s block_thresh
	DefaultAffinityBlockChars      = 512                                                   // about 128 tokens: one MindIE KV block (cacheBlockSize 128)
	DefaultAffinityIndexSize       = 0                                                     // sized from the instances' KV blocks
	DefaultAffinityFallbackSize    = 65536
	DefaultAffinityMaxImbalance    = 8.0
	DefaultAffinityMinMatch        = 0.5
	DefaultAffinityMinHitRate      = 0.05
	DefaultAffinityHitWindow       = 200
	DefaultLoadPrefillTokens       = 2048
	DefaultLoadDecodeWeight        = 0.25
	DefaultAffinityNewMaxImbalance = 1.0
	DefaultBreakerFailures         = 3
	DefaultBreakerBackoff          = 5 * time.Second
	DefaultBreakerMaxBackoff       = time.Minute
	DefaultRetryAfter              = time.Second
	DefaultShutdownGrace           = 30 * time.Second
	// DefaultShutdownDelay is how long the router stays up, not ready but
	// serving, after SIGTERM: the time for the endpoints controller, kube-proxy
	// and load balancers to stop sending it new connections.
	DefaultShutdownDelay = 5 * time.Second
	// The Lease of the active router in Prefill/Decode mode (client-go's
	// leader election: a standby takes over a lease not renewed for
	// DefaultPDLeaseDuration; the holder gives up when it could not renew
	// for DefaultPDLeaseRenewDeadline).
	DefaultPDLeaseDuration      = 10 * time.Second
	DefaultPDLeaseRenewDeadline = 5 * time.Second
	DefaultPDLeaseRetryPeriod   = 2 * time.Second
)

// Constants that are not flags.
const (
	// charsPerToken estimates prompt tokens from characters (the
	// Coordinator's DIGS uses 0.22 tokens per character, llm-d 4 characters).
	charsPerToken = 4
	// affinityInstancesPerBlock bounds how many instances one prefix block
	// remembers: a shared system prompt lives on several instances.
	affinityInstancesPerBlock = 4
	// failedBodyLimit bounds how much of a failed attempt's answer is kept
	// to relay when no retry is left.
	failedBodyLimit = 64 << 10
	// copyBufferSize is the read size when relaying an answer; each read is
	// flushed to the client at once.
	copyBufferSize = 32 << 10
	// readHeaderTimeout bounds how long a client may take to send headers.
	readHeaderTimeout = 10 * time.Second
	// statusBodyLimit bounds a /v1/status answer.
	statusBodyLimit = 1 << 20
	// statusPath is MindIE Server's management route with free slots and blocks.
	statusPath = "/v1/status"
	// InstanceHeader names, on every answer, the instance that served it.
	InstanceHeader = "X-Mindie-Instance"
	// authCacheSize bounds the tokens whose verdict is remembered.
	authCacheSize = 4096
	// authReviewTimeout bounds one TokenReview or SubjectAccessReview.
	authReviewTimeout = 5 * time.Second
	// certReloadInterval is how often the --tls-cert-file and --tls-key-file
	// are checked for a renewed pair (a mounted Secret changes in place).
	certReloadInterval = 10 * time.Second
	// serviceAccountNamespaceFile holds the pod's namespace in a cluster.
	serviceAccountNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
)

// Config is the router's configuration: DefaultConfig, then the command's
// flags (AddFlags).
type Config struct {
	// Listen is the HOST:PORT the router serves on.
	Listen string
	// TLSCertFile and TLSKeyFile are the PEM serving certificate (with its
	// chain) and key, re-read when they change; unset, a self-signed pair
	// is made at start for the host of Listen.
	TLSCertFile string
	TLSKeyFile  string
	// InsecureHTTP serves plain HTTP instead of HTTPS; only with
	// Authentication none, so that no token travels in clear.
	InsecureHTTP bool
	// Algorithm picks the instance for each request.
	Algorithm Algorithm
	// Authentication is how clients are authenticated.
	Authentication AuthMode
	// AuthCacheTTL and AuthCacheDeniedTTL are how long a token's verdict
	// (authentication and authorization together) is remembered when the
	// request was admitted, and when it was refused.
	AuthCacheTTL       time.Duration
	AuthCacheDeniedTTL time.Duration
	// StaticBackends is a JSON or YAML file listing the instances.
	StaticBackends string
	// Server is the InferServer whose pods are the instances (instead of
	// StaticBackends), in Namespace; empty Namespace is the router's own
	// (in a cluster) or the kubeconfig context's.
	Server    string
	Namespace string
	// Kubeconfig is the kubeconfig file to reach the API with; empty is the
	// in-cluster configuration (the pod's service account).
	Kubeconfig string
	// InstanceCAFile is a PEM bundle of the CA certificates that sign the
	// instances' serving certificates, for instances that serve HTTPS (an
	// InferServer with spec.tls.enabled, an https:// static backend); unset,
	// the system roots verify them. InstanceInsecureSkipVerify verifies
	// nothing (only when explicitly set, never with InstanceCAFile).
	// InstanceTLSServerName, if set, is the name the certificates are
	// verified for (and sent as SNI) instead of the host of the URL: a pod
	// is reached by its IP, which MindIE's certificates seldom name.
	InstanceCAFile             string
	InstanceInsecureSkipVerify bool
	InstanceTLSServerName      string
	// MaxRetries is how many other instances a request failing before its
	// first byte is tried on.
	MaxRetries int
	// MaxBodyBytes bounds a request body (413 above).
	MaxBodyBytes int64
	// MaxInflight and MaxInflightPerInstance bound requests in flight, in
	// total and per instance (429 above).
	MaxInflight            int
	MaxInflightPerInstance int
	// FirstTokenTimeout bounds the wait for an answer's first byte, and
	// RequestTimeout the whole request (504).
	FirstTokenTimeout time.Duration
	RequestTimeout    time.Duration
	// ConnectTimeout bounds connecting to an instance.
	ConnectTimeout time.Duration
	// StatusInterval is how often each instance's /v1/status is read, with
	// StatusTimeout; StatusFailures failed reads in a row take it out.
	StatusInterval time.Duration
	StatusTimeout  time.Duration
	StatusFailures int
	// SlotsThreshold and BlocksThreshold: an instance whose free slots or
	// free KV blocks, as a fraction of its total, are at or below these is
	// saturated and skipped while another is not.
	SlotsThreshold  float64
	BlocksThreshold float64
	// AffinityBlockChars is the size of a prefix block of a chat's message
	// stream, in characters.
	AffinityBlockChars int
	// AffinityIndexSize bounds the prefix index in blocks; 0 sizes it from
	// the instances' KV block counts (AffinityFallbackSize when unknown).
	AffinityIndexSize    int
	AffinityFallbackSize int
	// AffinityMaxImbalance releases a conversation from its instance when
	// that instance's load exceeds the least-loaded one's by more than this
	// (in load units: one request in flight, or LoadPrefillTokens of prompt
	// still to prefill).
	AffinityMaxImbalance float64
	// AffinityMinMatch: a prefix shared with other conversations (a system
	// prompt) draws a new conversation to the instances holding it only when
	// it makes at least this fraction of the prompt; a conversation's own
	// earlier turns always do.
	AffinityMinMatch float64
	// AffinityMinHitRate: when the prompt blocks found in the index over the
	// last AffinityHitWindow chats fall below this fraction, the traffic
	// shows no reuse and chats are balanced on load.
	AffinityMinHitRate float64
	AffinityHitWindow  int
	// LoadPrefillTokens is how many prompt tokens still to prefill weigh
	// as much as one request waiting for its first byte (one load unit).
	LoadPrefillTokens int
	// LoadDecodeWeight is what a request already answering (decoding)
	// weighs, in load units.
	LoadDecodeWeight float64
	// AffinityNewMaxImbalance: a new conversation (no instance holds a
	// prefix of it) goes by rendezvous hashing among the instances whose
	// load is within this of the least-loaded one's.
	AffinityNewMaxImbalance float64
	// BreakerFailures failures in a row (connect errors, 5xx, first-token
	// timeouts) take an instance out for BreakerBackoff, doubling on each
	// further trip up to BreakerMaxBackoff.
	BreakerFailures   int
	BreakerBackoff    time.Duration
	BreakerMaxBackoff time.Duration
	// RetryAfter is the Retry-After of 429 and 503 answers.
	RetryAfter time.Duration
	// ShutdownDelay is how long, after SIGTERM, the router answers /readyz
	// 503 while it goes on serving new requests (so that endpoints and load
	// balancers stop sending before it stops accepting); 0 stops at once.
	ShutdownDelay time.Duration
	// ShutdownGrace is how long in-flight requests may take to finish
	// once the router stopped accepting.
	ShutdownGrace time.Duration
	// PDLeaseDuration, PDLeaseRenewDeadline and PDLeaseRetryPeriod time
	// the Lease that makes one router replica the active one for a
	// Prefill/Decode server (--server only; see pdlease.go).
	PDLeaseDuration      time.Duration
	PDLeaseRenewDeadline time.Duration
	PDLeaseRetryPeriod   time.Duration
}

// DefaultConfig returns the configuration with every default. Start from
// it: in Config a zero is a value (no retries, a zero threshold), not "the
// default".
func DefaultConfig() Config {
	return Config{
		Listen:                  DefaultListen,
		Algorithm:               DefaultAlgorithm,
		Authentication:          DefaultAuthentication,
		AuthCacheTTL:            DefaultAuthCacheTTL,
		AuthCacheDeniedTTL:      DefaultAuthCacheDeniedTTL,
		MaxRetries:              DefaultMaxRetries,
		MaxBodyBytes:            DefaultMaxBodyBytes,
		MaxInflight:             DefaultMaxInflight,
		MaxInflightPerInstance:  DefaultMaxInflightPerInstance,
		FirstTokenTimeout:       DefaultFirstTokenTimeout,
		RequestTimeout:          DefaultRequestTimeout,
		ConnectTimeout:          DefaultConnectTimeout,
		StatusInterval:          DefaultStatusInterval,
		StatusTimeout:           DefaultStatusTimeout,
		StatusFailures:          DefaultStatusFailures,
		SlotsThreshold:          DefaultSlotsThreshold,
		BlocksThreshold:         DefaultBlocksThreshold,
		AffinityBlockChars:      DefaultAffinityBlockChars,
		AffinityIndexSize:       DefaultAffinityIndexSize,
		AffinityFallbackSize:    DefaultAffinityFallbackSize,
		AffinityMaxImbalance:    DefaultAffinityMaxImbalance,
		AffinityMinMatch:        DefaultAffinityMinMatch,
		AffinityMinHitRate:      DefaultAffinityMinHitRate,
		AffinityHitWindow:       DefaultAffinityHitWindow,
		LoadPrefillTokens:       DefaultLoadPrefillTokens,
		LoadDecodeWeight:        DefaultLoadDecodeWeight,
		AffinityNewMaxImbalance: DefaultAffinityNewMaxImbalance,
		BreakerFailures:         DefaultBreakerFailures,
		BreakerBackoff:          DefaultBreakerBackoff,
		BreakerMaxBackoff:       DefaultBreakerMaxBackoff,
		RetryAfter:              DefaultRetryAfter,
		ShutdownGrace:           DefaultShutdownGrace,
		ShutdownDelay:           DefaultShutdownDelay,
		PDLeaseDuration:         DefaultPDLeaseDuration,
		PDLeaseRenewDeadline:    DefaultPDLeaseRenewDeadline,
		PDLeaseRetryPeriod:      DefaultPDLeaseRetryPeriod,
	}
}

// AddFlags registers the command's flags on fs, writing into c; c's values
// (normally DefaultConfig()) are the flags' defaults.
func (c *Config) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Listen, "listen", c.Listen, "`HOST:PORT` to serve on (HTTPS unless --insecure-http)")
	fs.StringVar(&c.TLSCertFile, "tls-cert-file", c.TLSCertFile, "PEM serving certificate `FILE` (with its chain), re-read when it changes; unset, a self-signed one is made at start")
	fs.StringVar(&c.TLSKeyFile, "tls-key-file", c.TLSKeyFile, "PEM `FILE` with the key of --tls-cert-file")
	fs.BoolVar(&c.InsecureHTTP, "insecure-http", c.InsecureHTTP, "serve plain HTTP instead of HTTPS (only with --authentication=none)")
	fs.Func("algorithm", fmt.Sprintf("how an instance is picked: %s (default %s)", joinNames(Algorithms), c.Algorithm), func(v string) error {
		c.Algorithm = Algorithm(v)
		return nil
	})
	fs.Func("authentication", fmt.Sprintf("how clients are authenticated: %s (default %s); kubernetes checks the bearer token with TokenReview and create on inferservers/proxy of --server with SubjectAccessReview", joinNames(AuthModes), c.Authentication), func(v string) error {
		c.Authentication = AuthMode(v)
		return nil
	})
	fs.DurationVar(&c.AuthCacheTTL, "auth-cache-ttl", c.AuthCacheTTL, "kubernetes authentication: how long an admitted token's verdict is remembered")
	fs.DurationVar(&c.AuthCacheDeniedTTL, "auth-cache-denied-ttl", c.AuthCacheDeniedTTL, "kubernetes authentication: how long a refused token's verdict is remembered")
	fs.StringVar(&c.StaticBackends, "static-backends", c.StaticBackends, "JSON or YAML `FILE` listing the instances: [{name, inference, management}] (or --server)")
	fs.StringVar(&c.Server, "server", c.Server, "InferServer `NAME` whose ready master pods are the instances (or --static-backends)")
	fs.StringVar(&c.Namespace, "namespace", c.Namespace, "`NAMESPACE` of --server; empty is the router's own in a cluster, else the kubeconfig context's")
	fs.StringVar(&c.Kubeconfig, "kubeconfig", c.Kubeconfig, "kubeconfig `FILE` to reach the Kubernetes API; empty is the in-cluster service account")
	fs.StringVar(&c.InstanceCAFile, "instance-ca-file", c.InstanceCAFile, "PEM `FILE` of the CA certificates that verify HTTPS instances' certificates (InferServer spec.tls.enabled); unset, the system roots do")
	fs.BoolVar(&c.InstanceInsecureSkipVerify, "instance-insecure-skip-verify", c.InstanceInsecureSkipVerify, "do not verify HTTPS instances' certificates (not with --instance-ca-file)")
	fs.StringVar(&c.InstanceTLSServerName, "instance-tls-server-name", c.InstanceTLSServerName, "`NAME` HTTPS instances' certificates are verified for (and SNI), instead of the host of their URL (a pod's IP)")
	fs.IntVar(&c.MaxRetries, "max-retries", c.MaxRetries, "other instances a request failing before its first byte (connect error, 5xx, 429) is retried on")
	fs.Int64Var(&c.MaxBodyBytes, "max-body-bytes", c.MaxBodyBytes, "largest request body; larger ones get 413")
	fs.IntVar(&c.MaxInflight, "max-inflight", c.MaxInflight, "requests in flight in total; more get 429")
	fs.IntVar(&c.MaxInflightPerInstance, "max-inflight-per-instance", c.MaxInflightPerInstance, "requests in flight per instance; when every instance is full, 429")
	fs.DurationVar(&c.FirstTokenTimeout, "first-token-timeout", c.FirstTokenTimeout, "longest wait for an answer's first byte (504)")
	fs.DurationVar(&c.RequestTimeout, "request-timeout", c.RequestTimeout, "longest request, streaming included (504 before the first byte, cut after)")
	fs.DurationVar(&c.ConnectTimeout, "connect-timeout", c.ConnectTimeout, "longest wait to connect to an instance")
	fs.DurationVar(&c.StatusInterval, "status-interval", c.StatusInterval, "how often each instance's /v1/status is read")
	fs.DurationVar(&c.StatusTimeout, "status-timeout", c.StatusTimeout, "timeout of one /v1/status read")
	fs.IntVar(&c.StatusFailures, "status-failures", c.StatusFailures, "failed /v1/status reads in a row that take an instance out")
	fs.Float64Var(&c.SlotsThreshold, "slots-threshold", c.SlotsThreshold, "an instance whose free slots are at or below this fraction is saturated")
	fs.Float64Var(&c.BlocksThreshold, "blocks-threshold", c.BlocksThreshold, "an instance whose free KV blocks are at or below this fraction is saturated")
	fs.IntVar(&c.AffinityBlockChars, "affinity-block-chars", c.AffinityBlockChars, "cache_affinity: characters per prefix block of a chat's message stream")
	fs.IntVar(&c.AffinityIndexSize, "affinity-index-size", c.AffinityIndexSize, "cache_affinity: prefix blocks remembered; 0 sizes the index from the instances' KV blocks")
	fs.IntVar(&c.AffinityFallbackSize, "affinity-fallback-size", c.AffinityFallbackSize, "cache_affinity: index size when it is sized automatically and no instance reports its KV blocks")
	fs.Float64Var(&c.AffinityMaxImbalance, "affinity-max-imbalance", c.AffinityMaxImbalance, "cache_affinity: load above the least-loaded instance's at which a conversation leaves its instance")
	fs.Float64Var(&c.AffinityMinMatch, "affinity-min-match", c.AffinityMinMatch, "cache_affinity: share of a new conversation's prompt a shared prefix (system prompt) must make to draw it to the instances holding it")
	fs.Float64Var(&c.AffinityMinHitRate, "affinity-min-hit-rate", c.AffinityMinHitRate, "cache_affinity: below this fraction of prompt blocks found, chats are balanced on load")
	fs.IntVar(&c.AffinityHitWindow, "affinity-hit-window", c.AffinityHitWindow, "cache_affinity: chats over which the hit rate is measured")
	fs.IntVar(&c.LoadPrefillTokens, "load-prefill-tokens", c.LoadPrefillTokens, "prompt tokens still to prefill that weigh as much as one request waiting for its first byte (one load unit)")
	fs.Float64Var(&c.LoadDecodeWeight, "load-decode-weight", c.LoadDecodeWeight, "load units of a request already answering (decoding); a request waiting for its first byte weighs 1")
	fs.Float64Var(&c.AffinityNewMaxImbalance, "affinity-new-max-imbalance", c.AffinityNewMaxImbalance, "cache_affinity: a new conversation goes by rendezvous hashing among the instances within this much load of the least-loaded one")
	fs.IntVar(&c.BreakerFailures, "breaker-failures", c.BreakerFailures, "failures in a row that take an instance out for a back-off")
	fs.DurationVar(&c.BreakerBackoff, "breaker-backoff", c.BreakerBackoff, "first back-off of a failing instance; it doubles on each further trip")
	fs.DurationVar(&c.BreakerMaxBackoff, "breaker-max-backoff", c.BreakerMaxBackoff, "longest back-off of a failing instance")
	fs.DurationVar(&c.RetryAfter, "retry-after", c.RetryAfter, "Retry-After of 429 and 503 answers")
	fs.DurationVar(&c.ShutdownDelay, "shutdown-delay", c.ShutdownDelay, "after SIGTERM, how long the router answers /readyz 503 but still serves new requests before it stops accepting (the time endpoints and load balancers take to stop sending); 0 stops at once")
	fs.DurationVar(&c.ShutdownGrace, "shutdown-grace", c.ShutdownGrace, "once the router stopped accepting, how long in-flight requests may take to finish")
	fs.DurationVar(&c.PDLeaseDuration, "pd-lease-duration", c.PDLeaseDuration, "Prefill/Decode server with --server: how long a standby router waits for the active one's Lease to be renewed before it takes over")
	fs.DurationVar(&c.PDLeaseRenewDeadline, "pd-lease-renew-deadline", c.PDLeaseRenewDeadline, "Prefill/Decode server with --server: how long the active router tries to renew its Lease before it stops serving (less than --pd-lease-duration)")
	fs.DurationVar(&c.PDLeaseRetryPeriod, "pd-lease-retry-period", c.PDLeaseRetryPeriod, "Prefill/Decode server with --server: how often the Lease is renewed or tried")
}

func joinNames[T ~string](names []T) string {
	s := make([]string, len(names))
	for i, n := range names {
		s[i] = string(n)
	}
	return strings.Join(s, ", ")
}

// Validate checks a configuration and returns
// every problem at once, each naming the flag, the value and what is allowed.
func (c Config) Validate() error {
	var errs []error
	bad := func(flag string, value any, allowed string) {
		errs = append(errs, fmt.Errorf("--%s=%v: %s", flag, value, allowed))
	}
	if _, port, err := net.SplitHostPort(c.Listen); err != nil || port == "" {
		bad("listen", c.Listen, "expected HOST:PORT (an empty HOST means every interface)")
	}
	if !oneOf(c.Algorithm, Algorithms) {
		bad("algorithm", c.Algorithm, "expected one of "+joinNames(Algorithms))
	}
	if !oneOf(c.Authentication, AuthModes) {
		bad("authentication", c.Authentication, "expected one of "+joinNames(AuthModes))
	}
	if c.Authentication == AuthKubernetes && c.Server == "" {
		bad("authentication", c.Authentication, "needs --server NAME, the InferServer whose inferservers/proxy access is checked")
	}
	if c.Authentication == AuthKubernetes && c.InsecureHTTP {
		bad("insecure-http", c.InsecureHTTP, "not with --authentication=kubernetes: bearer tokens must not travel in clear")
	}
	if c.InsecureHTTP && (c.TLSCertFile != "" || c.TLSKeyFile != "") {
		bad("insecure-http", c.InsecureHTTP, "not with --tls-cert-file or --tls-key-file: choose HTTPS or plain HTTP")
	}
	if c.InstanceInsecureSkipVerify && c.InstanceCAFile != "" {
		bad("instance-insecure-skip-verify", c.InstanceInsecureSkipVerify, fmt.Sprintf("not with --instance-ca-file (%s): verify with the CA or not at all", c.InstanceCAFile))
	}
	if c.InstanceTLSServerName != "" {
		if msgs := validation.IsDNS1123Subdomain(c.InstanceTLSServerName); len(msgs) > 0 && net.ParseIP(c.InstanceTLSServerName) == nil {
			bad("instance-tls-server-name", c.InstanceTLSServerName, "expected a DNS name or an IP address: "+strings.Join(msgs, "; "))
		}
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		bad("tls-cert-file", c.TLSCertFile, fmt.Sprintf("expected together with --tls-key-file (now %q): both or neither", c.TLSKeyFile))
	}
	if c.Server != "" {
		if msgs := validation.IsDNS1123Label(c.Server); len(msgs) > 0 {
			bad("server", c.Server, "expected an InferServer name: "+strings.Join(msgs, "; "))
		}
	}
	if c.Namespace != "" {
		if msgs := validation.IsDNS1123Label(c.Namespace); len(msgs) > 0 {
			bad("namespace", c.Namespace, "expected a namespace name: "+strings.Join(msgs, "; "))
		}
	}
	positive := []struct {
		flag  string
		value int64
	}{
		{"max-body-bytes", c.MaxBodyBytes},
		{"max-inflight", int64(c.MaxInflight)},
		{"max-inflight-per-instance", int64(c.MaxInflightPerInstance)},
		{"status-failures", int64(c.StatusFailures)},
		{"affinity-block-chars", int64(c.AffinityBlockChars)},
		{"affinity-fallback-size", int64(c.AffinityFallbackSize)},
		{"affinity-hit-window", int64(c.AffinityHitWindow)},
		{"load-prefill-tokens", int64(c.LoadPrefillTokens)},
		{"breaker-failures", int64(c.BreakerFailures)},
	}
	for _, p := range positive {
		if p.value < 1 {
			bad(p.flag, p.value, "expected at least 1")
		}
	}
	if c.MaxRetries < 0 {
		bad("max-retries", c.MaxRetries, "expected 0 or more")
	}
	if c.ShutdownDelay < 0 {
		bad("shutdown-delay", c.ShutdownDelay, "expected 0 (stop accepting at once) or a positive duration")
	}
	if c.AffinityIndexSize < 0 {
		bad("affinity-index-size", c.AffinityIndexSize, "expected 0 (automatic) or more")
	}
	durations := []struct {
		flag  string
		value time.Duration
	}{
		{"first-token-timeout", c.FirstTokenTimeout},
		{"request-timeout", c.RequestTimeout},
		{"connect-timeout", c.ConnectTimeout},
		{"status-interval", c.StatusInterval},
		{"status-timeout", c.StatusTimeout},
		{"breaker-backoff", c.BreakerBackoff},
		{"breaker-max-backoff", c.BreakerMaxBackoff},
		{"retry-after", c.RetryAfter},
		{"shutdown-grace", c.ShutdownGrace},
		{"auth-cache-ttl", c.AuthCacheTTL},
		{"auth-cache-denied-ttl", c.AuthCacheDeniedTTL},
		{"pd-lease-duration", c.PDLeaseDuration},
		{"pd-lease-renew-deadline", c.PDLeaseRenewDeadline},
		{"pd-lease-retry-period", c.PDLeaseRetryPeriod},
	}
	for _, d := range durations {
		if d.value <= 0 {
			bad(d.flag, d.value, "expected a positive duration")
		}
	}
	if c.PDLeaseDuration > 0 && c.PDLeaseDuration%time.Second != 0 {
		bad("pd-lease-duration", c.PDLeaseDuration, "expected whole seconds (a Lease's spec.leaseDurationSeconds)")
	}
	if c.PDLeaseRenewDeadline > 0 && c.PDLeaseDuration <= c.PDLeaseRenewDeadline {
		bad("pd-lease-duration", c.PDLeaseDuration, fmt.Sprintf("expected more than --pd-lease-renew-deadline (%s): the holder must give up before a standby may take over", c.PDLeaseRenewDeadline))
	}
	if c.PDLeaseRetryPeriod > 0 && float64(c.PDLeaseRenewDeadline) <= pdLeaseJitter*float64(c.PDLeaseRetryPeriod) {
		bad("pd-lease-renew-deadline", c.PDLeaseRenewDeadline, fmt.Sprintf("expected more than %g × --pd-lease-retry-period (%s)", pdLeaseJitter, c.PDLeaseRetryPeriod))
	}
	if c.BreakerMaxBackoff < c.BreakerBackoff {
		bad("breaker-max-backoff", c.BreakerMaxBackoff, fmt.Sprintf("expected at least --breaker-backoff (%s)", c.BreakerBackoff))
	}
	fractions := []struct {
		flag  string
		value float64
	}{
		{"slots-threshold", c.SlotsThreshold},
		{"blocks-threshold", c.BlocksThreshold},
		{"affinity-min-hit-rate", c.AffinityMinHitRate},
		{"affinity-min-match", c.AffinityMinMatch},
	}
	for _, f := range fractions {
		if f.value < 0 || f.value >= 1 {
			bad(f.flag, f.value, "expected a fraction from 0 up to (not including) 1")
		}
	}
	if c.AffinityMaxImbalance <= 0 {
		bad("affinity-max-imbalance", c.AffinityMaxImbalance, "expected a positive number of load units")
	}
	if c.AffinityNewMaxImbalance < 0 {
		bad("affinity-new-max-imbalance", c.AffinityNewMaxImbalance, "expected 0 or more load units")
	}
	if c.LoadDecodeWeight < 0 || c.LoadDecodeWeight > 1 {
		bad("load-decode-weight", c.LoadDecodeWeight, "expected a weight from 0 to 1 (a request waiting for its first byte weighs 1)")
	}
	return errors.Join(errs...)
}

func oneOf[T comparable](v T, allowed []T) bool {
	for _, a := range allowed {
		if v == a {
			return true
		}
	}
	return false
}

package router

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// route is an inference route the router forwards.
type route struct {
	method, path string
	style        errorStyle
	// chat: an OpenAI chat, routed by its prefix under cache_affinity.
	chat bool
}

// inferenceRoutes are MindIE Server's inference routes (mindie-reference.md
// §2), plus /v1/models/{model}.
var inferenceRoutes = []route{
	{method: http.MethodPost, path: "/v1/chat/completions", style: openAIErrors, chat: true},
	{method: http.MethodPost, path: "/v1/completions", style: openAIErrors},
	{method: http.MethodGet, path: "/v1/models", style: openAIErrors},
	{method: http.MethodGet, path: "/v1/models/{model}", style: openAIErrors},
	{method: http.MethodPost, path: "/generate", style: plainErrors},        // TGI, and vLLM's
	{method: http.MethodPost, path: "/generate_stream", style: plainErrors}, // TGI
	{method: http.MethodPost, path: "/v2/models/{model}/generate", style: plainErrors},
	{method: http.MethodPost, path: "/v2/models/{model}/generate_stream", style: plainErrors},
	{method: http.MethodPost, path: "/infer", style: plainErrors},        // MindIE native
	{method: http.MethodPost, path: "/v1/tokenizer", style: plainErrors}, // MindIE's, not OpenAI's
}

func routeList() string {
	s := make([]string, len(inferenceRoutes))
	for i, rt := range inferenceRoutes {
		s[i] = rt.method + " " + rt.path
	}
	return strings.Join(s, ", ")
}

// Causes of a cancelled upstream request.
var (
	errRequestTimeout    = errors.New("request timeout")
	errFirstTokenTimeout = errors.New("first token timeout")
)

// failedAnswer is an attempt that failed before its first byte, kept to be
// relayed if no other instance can be tried.
type failedAnswer struct {
	instance string
	reason   string // label of retries_total: connect, status_5xx, status_429
	// Either the instance's answer...
	status int
	header http.Header
	body   []byte
	// ...or the router's, when the instance gave none.
	err *routerError
}

// outcome is how an attempt ended.
type outcome int

const (
	outcomeServed   outcome = iota // the answer (or its start) went to the client
	outcomeRetry                   // failed before the first byte; another instance may serve
	outcomeAnswered                // failed, and the client was answered (timeout) or is gone
)

// exchange is one client request on its way through the router.
type exchange struct {
	r        *Router
	rt       route
	w        http.ResponseWriter
	req      *http.Request
	start    time.Time
	body     *sharedBody // read whole, for the retries
	prompt   prompt
	instance string // who served, for metrics
	code     int    // what the client got, for metrics
}

// inference handles an inference route.
func (r *Router) inference(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		x := &exchange{r: r, rt: rt, w: w, req: req, start: time.Now()}
		defer x.record()
		x.serve()
	})
}

func (x *exchange) record() {
	x.r.metrics.requests.WithLabelValues(x.rt.path, x.instance, strconv.Itoa(x.code)).Inc()
	x.r.metrics.duration.WithLabelValues(x.rt.path, x.instance).Observe(time.Since(x.start).Seconds())
}

// fail answers with the router's own error.
func (x *exchange) fail(e *routerError) {
	x.code = e.status
	writeError(x.w, x.rt.style, e)
}

func (x *exchange) serve() {
	r := x.r
	if refused := r.admit(x.w, x.req, x.rt.style); refused != 0 {
		x.code = refused
		return
	}
	if !r.enter() {
		x.fail(&routerError{status: http.StatusTooManyRequests, kind: kindRateLimit, retryAfter: r.cfg.RetryAfter,
			msg: fmt.Sprintf("the router has %d requests in flight, its maximum (--max-inflight); retry later", r.cfg.MaxInflight)})
		return
	}
	defer r.leave()
	if e := x.readBody(); e != nil {
		x.fail(e)
		return
	}
	defer x.body.release()
	if x.rt.chat && r.cfg.Algorithm == CacheAffinity {
		x.prompt, _ = chatPrompt(x.body.bytes(), r.cfg.AffinityBlockChars)
	} else {
		x.prompt = prompt{tokens: estimateTokens(len(x.body.bytes()))}
	}

	ctx, cancel := context.WithTimeoutCause(x.req.Context(), r.cfg.RequestTimeout, errRequestTimeout)
	defer cancel()
	pd := pdRoutes[x.rt.path]
	if pd && x.servePD(ctx) {
		return // served by a (prefill, decode) pair
	}
	tried := map[*backend]bool{}
	var last *failedAnswer
	for n := 0; n <= r.cfg.MaxRetries; n++ {
		a, err := r.pickPlain(&x.prompt, tried, n == 0, !pd)
		if err != nil {
			if last == nil {
				x.fail(pickError(err, r.cfg.RetryAfter))
				return
			}
			break
		}
		tried[a.b] = true
		if last != nil {
			r.metrics.retries.WithLabelValues(x.rt.path, last.reason).Inc()
			r.log.V(2).Info("retrying on another instance", "route", x.rt.path, "failed", last.instance, "reason", last.reason, "instance", a.b.inst.Name)
		}
		var o outcome
		o, last = x.forward(ctx, a)
		if o != outcomeRetry {
			return
		}
	}
	x.relay(last)
}

// admit authenticates a request. If the Authenticator refuses it, admit
// answers the refusal and returns its status; else 0.
func (r *Router) admit(w http.ResponseWriter, req *http.Request, style errorStyle) int {
	_, err := r.auth.Authenticate(req)
	if err == nil {
		return 0
	}
	e := authRefusal(err, r.cfg.RetryAfter)
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="mindie-router"`)
	}
	writeError(w, style, e)
	return e.status
}

// pickError is the answer when no instance could be picked.
func pickError(err error, retryAfter time.Duration) *routerError {
	switch {
	case errors.Is(err, errAllBusy):
		return &routerError{status: http.StatusTooManyRequests, kind: kindRateLimit, retryAfter: retryAfter,
			msg: err.Error() + " (--max-inflight-per-instance); retry later"}
	default:
		return &routerError{status: http.StatusServiceUnavailable, kind: kindUnavailable, retryAfter: retryAfter,
			msg: err.Error() + ": no instance is ready, not draining and not backing off after failures"}
	}
}

// enter counts a client request in, unless MaxInflight are in flight.
func (r *Router) enter() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inflight >= r.cfg.MaxInflight {
		return false
	}
	r.inflight++
	return true
}

func (r *Router) leave() {
	r.mu.Lock()
	r.inflight--
	r.mu.Unlock()
}

// readBody reads the whole request body, bounded, so it can be sent again.
func (x *exchange) readBody() *routerError {
	limit := x.r.cfg.MaxBodyBytes
	tooLarge := &routerError{status: http.StatusRequestEntityTooLarge, kind: kindInvalidRequest,
		msg: fmt.Sprintf("the request body is larger than %d bytes (--max-body-bytes)", limit)}
	if x.req.ContentLength > limit {
		return tooLarge
	}
	var body *[]byte
	var err error
	if n := x.req.ContentLength; n >= 0 {
		body, err = readSized(x.req.Body, n)
	} else {
		var b []byte
		b, err = io.ReadAll(http.MaxBytesReader(x.w, x.req.Body, limit))
		body = &b
	}
	var maxErr *http.MaxBytesError
	switch {
	case errors.As(err, &maxErr):
		return tooLarge
	case err != nil:
		return &routerError{status: http.StatusBadRequest, kind: kindInvalidRequest, msg: "reading the request body: " + err.Error()}
	}
	x.body = newSharedBody(body)
	return nil
}

// forward sends the request to the attempt's instance and relays the
// answer as it comes. A failure before the first byte comes back as
// outcomeRetry with what to relay should no retry be possible.
func (x *exchange) forward(ctx context.Context, a *attempt) (outcome, *failedAnswer) {
	r := x.r
	name := a.b.inst.Name
	actx, acancel := context.WithCancelCause(ctx)
	defer acancel(nil)
	// first: 0 waiting, 1 the first-token deadline passed, 2 the first byte
	// came. Whoever moves it from 0 decides.
	var first atomic.Int32
	timer := time.AfterFunc(time.Until(x.start.Add(r.cfg.FirstTokenTimeout)), func() {
		if first.CompareAndSwap(0, 1) {
			acancel(errFirstTokenTimeout)
		}
	})
	defer timer.Stop()

	out, err := x.upstreamRequest(actx, a)
	if err != nil {
		r.finish(a, verdictNone)
		x.fail(&routerError{status: http.StatusInternalServerError, kind: kindUpstream, msg: err.Error()})
		return outcomeAnswered, nil
	}
	resp, err := r.client.Do(out)
	if err != nil {
		return x.failedBeforeFirstByte(actx, a, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, failedBodyLimit))
		v, reason := verdictFault, "status_5xx"
		if resp.StatusCode == http.StatusTooManyRequests {
			v, reason = verdictNone, "status_429"
		}
		r.finish(a, v)
		return outcomeRetry, &failedAnswer{instance: name, reason: reason, status: resp.StatusCode,
			header: resp.Header.Clone(), body: data}
	}
	buf := make([]byte, copyBufferSize)
	n, rerr := readSome(resp.Body, buf)
	if n == 0 && rerr != nil && rerr != io.EOF {
		return x.failedBeforeFirstByte(actx, a, rerr)
	}
	if !first.CompareAndSwap(0, 2) {
		return x.failedBeforeFirstByte(actx, a, errFirstTokenTimeout)
	}
	r.gotFirstByte(a)
	if resp.StatusCode/100 == 2 && x.prompt.blocks != nil {
		r.mu.Lock()
		if a.b.present {
			r.index.record(x.prompt.blocks, name)
		}
		r.mu.Unlock()
	}

	h := x.w.Header()
	copyHeader(h, resp.Header)
	h.Set(InstanceHeader, name)
	x.instance, x.code = name, resp.StatusCode
	x.w.WriteHeader(resp.StatusCode)
	rc := http.NewResponseController(x.w)
	_, werr := x.w.Write(buf[:n])
	if werr == nil {
		werr = flush(rc)
	}
	r.metrics.timeToFirstByte.WithLabelValues(x.rt.path, name).Observe(time.Since(x.start).Seconds())
	for rerr == nil && werr == nil {
		n, rerr = resp.Body.Read(buf)
		if n > 0 {
			if _, werr = x.w.Write(buf[:n]); werr == nil {
				werr = flush(rc)
			}
		}
	}
	switch {
	case werr != nil || x.req.Context().Err() != nil:
		// The client went away; cancelling actx stops the instance's work.
		r.finish(a, verdictOK)
		return outcomeAnswered, nil
	case rerr == io.EOF:
		r.finish(a, verdictOK)
		return outcomeServed, nil
	}
	// The answer broke off after its start went out: there is no status
	// to change. A stream ends with an error event; anything else is cut so
	// that the client sees it incomplete.
	cause := context.Cause(actx)
	e := &routerError{status: http.StatusBadGateway, kind: kindUpstream,
		msg: fmt.Sprintf("instance %s broke off its answer: %v", name, rerr)}
	v := verdictFault
	if errors.Is(cause, errRequestTimeout) {
		e = &routerError{status: http.StatusGatewayTimeout, kind: kindTimeout,
			msg: fmt.Sprintf("the request took longer than %s (--request-timeout)", r.cfg.RequestTimeout)}
		v = verdictNone
	}
	r.finish(a, v)
	r.log.V(1).Info("answer cut", "route", x.rt.path, "instance", name, "err", e.msg)
	if isEventStream(resp.Header) {
		x.w.Write(sseError(x.rt.style, e))
		flush(rc)
		return outcomeAnswered, nil
	}
	panic(http.ErrAbortHandler)
}

// failedBeforeFirstByte handles a failure before anything reached the
// client: a timeout is answered 504, a gone client is let go, anything else
// (connect error, reset) may be retried elsewhere.
func (x *exchange) failedBeforeFirstByte(actx context.Context, a *attempt, err error) (outcome, *failedAnswer) {
	r := x.r
	name := a.b.inst.Name
	cause := context.Cause(actx)
	switch {
	case errors.Is(cause, errFirstTokenTimeout) || errors.Is(err, errFirstTokenTimeout):
		r.finish(a, verdictFault)
		x.w.Header().Set(InstanceHeader, name)
		x.instance = name
		x.fail(&routerError{status: http.StatusGatewayTimeout, kind: kindTimeout,
			msg: fmt.Sprintf("no answer within %s (--first-token-timeout); instance %s", r.cfg.FirstTokenTimeout, name)})
		return outcomeAnswered, nil
	case errors.Is(cause, errRequestTimeout):
		r.finish(a, verdictNone)
		x.w.Header().Set(InstanceHeader, name)
		x.instance = name
		x.fail(&routerError{status: http.StatusGatewayTimeout, kind: kindTimeout,
			msg: fmt.Sprintf("the request took longer than %s (--request-timeout); instance %s", r.cfg.RequestTimeout, name)})
		return outcomeAnswered, nil
	case x.req.Context().Err() != nil:
		r.finish(a, verdictNone)
		x.code = 499 // nginx's "client closed request", for the metrics only
		return outcomeAnswered, nil
	}
	r.finish(a, verdictFault)
	return outcomeRetry, &failedAnswer{instance: name, reason: "connect", err: &routerError{
		status: http.StatusBadGateway, kind: kindUpstream,
		msg: fmt.Sprintf("instance %s failed before answering: %v", name, err)}}
}

// relay answers with the last failed attempt, when no retry is left.
func (x *exchange) relay(f *failedAnswer) {
	x.instance = f.instance
	x.w.Header().Set(InstanceHeader, f.instance)
	if f.err != nil {
		x.fail(f.err)
		return
	}
	h := x.w.Header()
	copyHeader(h, f.header)
	h.Set(InstanceHeader, f.instance)
	h.Set("Content-Length", strconv.Itoa(len(f.body)))
	x.code = f.status
	x.w.WriteHeader(f.status)
	x.w.Write(f.body)
}

// upstreamRequest builds the request to the attempt's instance: same
// method, path, query, headers (less hop-by-hop ones) and body.
func (x *exchange) upstreamRequest(ctx context.Context, a *attempt) (*http.Request, error) {
	return x.requestTo(ctx, a.b.inst, x.body)
}

// requestTo builds the request to inst with the body held in sb.
func (x *exchange) requestTo(ctx context.Context, inst Instance, sb *sharedBody) (*http.Request, error) {
	target := inst.Inference + x.req.URL.EscapedPath()
	if x.req.URL.RawQuery != "" {
		target += "?" + x.req.URL.RawQuery
	}
	n := len(sb.bytes())
	var body io.ReadCloser = http.NoBody
	if n > 0 {
		// A reader that holds the body until the transport closes it.
		var err error
		if body, err = sb.reader(); err != nil {
			return nil, err
		}
	}
	out, err := http.NewRequestWithContext(ctx, x.req.Method, target, body)
	if err != nil {
		body.Close()
		return nil, fmt.Errorf("request to instance %s: %w", inst.Name, err)
	}
	if n > 0 {
		out.GetBody = sb.reader // to send it again on a fresh connection
	}
	copyHeader(out.Header, x.req.Header)
	stripCredentials(out.Header)
	out.ContentLength = int64(n)
	if host, _, err := net.SplitHostPort(x.req.RemoteAddr); err == nil {
		if prior := x.req.Header.Get("X-Forwarded-For"); prior != "" {
			host = prior + ", " + host
		}
		out.Header.Set("X-Forwarded-For", host)
	}
	out.Header.Set("X-Forwarded-Host", x.req.Host)
	proto := "http"
	if x.req.TLS != nil {
		proto = "https"
	}
	out.Header.Set("X-Forwarded-Proto", proto)
	return out, nil
}

// hopByHop are the headers of one connection, not passed on (RFC 9110 §7.6.1).
var hopByHop = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// copyHeader copies src into dst less the hop-by-hop headers.
func copyHeader(dst, src http.Header) {
	skip := map[string]bool{}
	for _, h := range hopByHop {
		skip[h] = true
	}
	for _, v := range src.Values("Connection") {
		for _, name := range strings.Split(v, ",") {
			skip[http.CanonicalHeaderKey(strings.TrimSpace(name))] = true
		}
	}
	for k, vs := range src {
		if !skip[k] {
			dst[k] = append([]string(nil), vs...)
		}
	}
}

// credentialHeaders are the client's credentials for the router (a bearer
// token) and the Kubernetes impersonation headers: an instance never sees
// them, whatever the authentication mode, so a token cannot be replayed by
// whoever runs an instance.
var credentialHeaders = []string{"Authorization", "Impersonate-User", "Impersonate-Group", "Impersonate-Uid"}

// impersonateExtraPrefix starts the Impersonate-Extra-<key> headers.
const impersonateExtraPrefix = "Impersonate-Extra-"

// stripCredentials removes credentialHeaders from h.
func stripCredentials(h http.Header) {
	for _, name := range credentialHeaders {
		h.Del(name)
	}
	for k := range h {
		if strings.HasPrefix(http.CanonicalHeaderKey(k), impersonateExtraPrefix) {
			delete(h, k)
		}
	}
}

// readSome reads until it has at least one byte or an error.
func readSome(r io.Reader, buf []byte) (int, error) {
	for {
		n, err := r.Read(buf)
		if n > 0 || err != nil {
			return n, err
		}
	}
}

func flush(rc *http.ResponseController) error {
	if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

func isEventStream(h http.Header) bool {
	t, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	return t == "text/event-stream"
}

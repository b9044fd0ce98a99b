package router

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// pdRoutes are the inference routes that generate: with Prefill/Decode
// instances they are served by a (prefill, decode) pair. The others
// (models, tokenizer) go to one instance, whose role may be either.
var pdRoutes = map[string]bool{
	"/v1/chat/completions":               true,
	"/v1/completions":                    true,
	"/generate":                          true,
	"/generate_stream":                   true,
	"/v2/models/{model}/generate":        true,
	"/v2/models/{model}/generate_stream": true,
	"/infer":                             true,
}

// Outcomes of a PD request, the label of pd_requests_total.
const (
	pdOK               = "ok"                // answered whole
	pdNoPair           = "no_pair"           // no pair could be picked (503, 429)
	pdPrefillError     = "prefill_error"     // the prefill instance failed or refused; its answer relayed
	pdBadPrefill       = "bad_prefill"       // its answer was not MindIE's JSON, or for another request (502)
	pdDecodeError      = "decode_error"      // error: from the decode instance
	pdRetriesExhausted = "retries_exhausted" // retry: (recompute) beyond --max-retries
	pdTimeout          = "timeout"           // first-token or request timeout
	pdClientGone       = "client_gone"       // the client went away
	pdLost             = "lost"              // the lease was lost, or the decode instance removed
)

// pdExchange is a request served by a pair.
type pdExchange struct {
	*exchange
	ctx context.Context
	// body is what goes to the prefill instance: the client's, or the last
	// retry:'s (own, released at the end).
	body *sharedBody
	own  *sharedBody
	rc   *http.ResponseController
	// started: the answer's status and headers went to the client; stream:
	// it is a stream (P said isStream).
	started, stream bool
	// firstDone: a prefill instance answered (the first-token timeout no
	// longer applies).
	firstDone bool
	outcome   string
}

// next is what an attempt leaves to do.
type pdNext int

const (
	pdDone      pdNext = iota // the client has its answer (or is gone)
	pdRetryPair               // the prefill instance failed before answering: another pair
	pdRecompute               // retry: from the decode instance: again with its body
)

type pdResult struct {
	next   pdNext
	failed *failedAnswer // pdRetryPair
	body   []byte        // pdRecompute
}

// servePD serves the request through (prefill, decode) pairs. It returns
// false, having answered nothing, when the Source has no PD instance, or no
// pair is usable and instances without a role are (a mixed set).
func (x *exchange) servePD(ctx context.Context) bool {
	r := x.r
	if !r.pdWanted() {
		return false
	}
	px := &pdExchange{exchange: x, ctx: ctx, body: x.body, rc: http.NewResponseController(x.w)}
	defer func() {
		if px.own != nil {
			px.own.release()
		}
	}()
	tried := map[*backend]bool{}
	retries := r.cfg.MaxRetries
	recompute := false
	var last *failedAnswer
	for n := 0; ; n++ {
		a, err := r.pickPair(&x.prompt, tried, n == 0)
		if err != nil {
			if n == 0 && errors.Is(err, errNoPair) && r.plainRoutable() {
				return false
			}
			if last != nil {
				px.relayFailed(last)
			} else {
				px.done(pdNoPair)
				px.fail(pdPickError(err, r.cfg.RetryAfter))
			}
			return true
		}
		if last != nil {
			r.metrics.retries.WithLabelValues(x.rt.path, last.reason).Inc()
			r.log.V(2).Info("retrying on another pair", "route", x.rt.path, "failed", last.instance, "reason", last.reason,
				"prefill", a.pInst.Name, "decode", a.dInst.Name)
		}
		res := px.attempt(a, recompute)
		switch res.next {
		case pdDone:
			return true
		case pdRetryPair:
			tried[a.p.b] = true
			last = res.failed
			if retries == 0 {
				px.relayFailed(last)
				return true
			}
			retries--
		case pdRecompute:
			r.metrics.pd.recomputes.Inc()
			if retries == 0 {
				px.done(pdRetriesExhausted)
				px.fail(&routerError{status: http.StatusBadGateway, kind: kindUpstream,
					msg: fmt.Sprintf("decode instance %s asked to recompute the request (retry:), and no retry is left (--max-retries=%d)", a.dInst.Name, r.cfg.MaxRetries)})
				return true
			}
			retries--
			r.log.V(1).Info("recomputing a request (retry: from its decode instance)", "route", x.rt.path, "decode", a.dInst.Name)
			px.setBody(res.body)
			recompute = true
			last = nil
		}
	}
}

// pdPickError is the answer when no pair could be picked.
func pdPickError(err error, retryAfter time.Duration) *routerError {
	switch {
	case errors.Is(err, errAllBusy):
		return pickError(err, retryAfter)
	case errors.Is(err, errStandby):
		return &routerError{status: http.StatusServiceUnavailable, kind: kindUnavailable, retryAfter: retryAfter, msg: err.Error()}
	default:
		return &routerError{status: http.StatusServiceUnavailable, kind: kindUnavailable, retryAfter: retryAfter,
			msg: err.Error() + ": a prefill instance needs its role ready and a decode instance of its group linked (link ok) whose /dresult stream the router holds"}
	}
}

// done records the outcome (once).
func (px *pdExchange) done(outcome string) {
	if px.outcome == "" {
		px.outcome = outcome
		px.r.metrics.pd.requests.WithLabelValues(outcome).Inc()
	}
}

// setBody makes body what goes to the prefill instance next.
func (px *pdExchange) setBody(body []byte) {
	if px.own != nil {
		px.own.release()
	}
	px.own = newSharedBody(&body)
	px.body = px.own
}

// fail answers the router's error: a response in the route's style before
// anything was sent, else an error event ending the stream.
func (px *pdExchange) fail(e *routerError) {
	if !px.started {
		px.exchange.fail(e)
		return
	}
	px.r.log.V(1).Info("PD answer cut", "route", px.rt.path, "instance", px.instance, "err", e.msg)
	if px.stream {
		px.w.Write(sseError(px.rt.style, e))
		flush(px.rc)
		return
	}
	panic(http.ErrAbortHandler) // a plain answer is cut so that the client sees it incomplete
}

// relayFailed answers with the last failed prefill attempt when no other
// pair can be tried.
func (px *pdExchange) relayFailed(f *failedAnswer) {
	px.done(pdPrefillError)
	if px.started {
		e := f.err
		if e == nil {
			e = &routerError{status: http.StatusBadGateway, kind: kindUpstream,
				msg: fmt.Sprintf("prefill instance %s answered %d: %s", f.instance, f.status, strings.TrimSpace(string(f.body)))}
		}
		px.fail(e)
		return
	}
	px.relay(f)
}

// begin sends the answer's status and headers.
func (px *pdExchange) begin(a *pdAttempt, stream bool, length int) {
	h := px.w.Header()
	if stream {
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
	} else {
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(length))
	}
	h.Set(InstanceHeader, a.pInst.Name)
	h.Set(DecodeInstanceHeader, a.dInst.Name)
	px.instance, px.code = a.pInst.Name, http.StatusOK
	px.w.WriteHeader(http.StatusOK)
	px.started, px.stream = true, stream
	px.r.metrics.timeToFirstByte.WithLabelValues(px.rt.path, px.instance).Observe(time.Since(px.start).Seconds())
}

// write sends bytes of the answer at once; false if the client is gone.
func (px *pdExchange) write(data []byte) bool {
	if len(data) > 0 {
		if _, err := px.w.Write(data); err != nil {
			return false
		}
	}
	return flush(px.rc) == nil
}

// attempt sends the request to the pair's prefill instance and relays the
// answer: P's first, then the decode instance's messages.
func (px *pdExchange) attempt(a *pdAttempt, recompute bool) pdResult {
	r, x := px.r, px.exchange
	pName := a.pInst.Name
	pend, err := r.register(a.d)
	if err != nil {
		r.finish(a.p, verdictNone)
		r.releaseDecode(a, false)
		px.done(pdLost)
		px.fail(pdPickError(err, r.cfg.RetryAfter))
		return pdResult{next: pdDone}
	}
	served := false
	defer func() {
		r.unregister(pend)
		r.releaseDecode(a, served)
	}()

	actx, acancel := context.WithCancelCause(px.ctx)
	defer acancel(nil)
	// first: 0 waiting for P, 1 the first-token deadline passed, 2 P
	// answered. Whoever moves it from 0 decides.
	var first atomic.Int32
	if px.firstDone {
		first.Store(2)
	} else {
		timer := time.AfterFunc(time.Until(x.start.Add(r.cfg.FirstTokenTimeout)), func() {
			if first.CompareAndSwap(0, 1) {
				acancel(errFirstTokenTimeout)
			}
		})
		defer timer.Stop()
	}
	out, err := x.requestTo(actx, a.pInst, px.body)
	if err != nil {
		r.finish(a.p, verdictNone)
		px.done(pdPrefillError)
		px.fail(&routerError{status: http.StatusInternalServerError, kind: kindUpstream, msg: err.Error()})
		return pdResult{next: pdDone}
	}
	out.Header.Set(headerReqType, reqTypePrefill)
	out.Header.Set(headerReqID, pend.id)
	out.Header.Set(headerDTarget, a.dHost)
	out.Header.Set(headerDPort, a.dPort)
	if recompute {
		out.Header.Set(headerRecompute, "true")
	}
	resp, err := r.client.Do(out)
	if err != nil {
		return px.prefillFailed(actx, a, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, failedBodyLimit))
		v, reason := verdictFault, "status_5xx"
		if resp.StatusCode == http.StatusTooManyRequests {
			v, reason = verdictNone, "status_429"
		}
		r.finish(a.p, v)
		return pdResult{next: pdRetryPair, failed: &failedAnswer{instance: pName, reason: reason,
			status: resp.StatusCode, header: resp.Header.Clone(), body: data}}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, pdMessageLimit+1))
	if err != nil {
		return px.prefillFailed(actx, a, err)
	}
	if !first.CompareAndSwap(0, 2) && first.Load() != 2 {
		return px.prefillFailed(actx, a, errFirstTokenTimeout)
	}
	if resp.StatusCode != http.StatusOK {
		// P refused the request (4xx): its answer is the client's.
		r.finish(a.p, verdictOK)
		px.relayFailed(&failedAnswer{instance: pName, status: resp.StatusCode, header: resp.Header.Clone(), body: body})
		return pdResult{next: pdDone}
	}
	ans, err := parsePrefillAnswer(body, pend.id)
	if err != nil {
		r.finish(a.p, verdictFault)
		px.done(pdBadPrefill)
		if !px.started {
			px.w.Header().Set(InstanceHeader, pName)
			px.instance = pName
		}
		px.fail(&routerError{status: http.StatusBadGateway, kind: kindUpstream,
			msg: fmt.Sprintf("prefill instance %s gave no valid answer to request %s: %v", pName, pend.id, err)})
		return pdResult{next: pdDone}
	}
	r.gotFirstByte(a.p)
	r.finish(a.p, verdictOK)
	if x.prompt.blocks != nil {
		r.mu.Lock()
		if a.p.b.present {
			r.index.record(x.prompt.blocks, pName)
		}
		r.mu.Unlock()
	}
	px.firstDone = true
	answered := time.Now()
	switch {
	case ans.IsStream || px.stream:
		if !px.started {
			px.begin(a, true, 0)
		}
		if !px.write(ans.output) {
			px.done(pdClientGone)
			return pdResult{next: pdDone}
		}
		if ans.IsLastResp {
			served = true
			px.done(pdOK)
			return pdResult{next: pdDone}
		}
	case ans.IsLastResp:
		px.begin(a, false, len(ans.output))
		px.write(ans.output)
		served = true
		px.done(pdOK)
		return pdResult{next: pdDone}
	}
	res := px.relayDecode(a, pend, answered)
	served = px.outcome == pdOK
	return res
}

// relayDecode relays the decode instance's messages for the request, those
// that came before P's answer first.
func (px *pdExchange) relayDecode(a *pdAttempt, pend *pdPending, answered time.Time) pdResult {
	r := px.r
	dName := a.dInst.Name
	firstData := true
	var held []byte // a non-streamed answer's data: messages, before its lastData:
	for {
		select {
		case <-pend.notify:
		case <-px.ctx.Done():
			return px.interrupted(dName)
		}
		msgs, err := pend.take()
		for _, m := range msgs {
			if firstData && (m.kind == dmData || m.kind == dmLastData) {
				firstData = false
				r.metrics.pd.firstData.Observe(max(m.at.Sub(answered), 0).Seconds())
			}
			switch m.kind {
			case dmData:
				if !px.stream {
					held = append(held, m.payload...)
				} else if !px.write(m.payload) {
					px.done(pdClientGone)
					return pdResult{next: pdDone}
				}
			case dmLastData:
				if !px.stream {
					px.begin(a, false, len(held)+len(m.payload))
					px.write(append(held, m.payload...))
				} else if !px.write(m.payload) {
					px.done(pdClientGone)
					return pdResult{next: pdDone}
				}
				px.done(pdOK)
				return pdResult{next: pdDone}
			case dmError:
				px.done(pdDecodeError)
				px.fail(&routerError{status: http.StatusBadGateway, kind: kindUpstream,
					msg: fmt.Sprintf("decode instance %s: %s", dName, strings.TrimSpace(string(m.payload)))})
				return pdResult{next: pdDone}
			case dmRetry:
				return pdResult{next: pdRecompute, body: m.payload}
			}
		}
		if err != nil {
			px.done(pdLost)
			px.fail(&routerError{status: http.StatusBadGateway, kind: kindUpstream,
				msg: fmt.Sprintf("decode instance %s: %v", dName, err)})
			return pdResult{next: pdDone}
		}
	}
}

// interrupted ends a request whose context ended while it waited for its
// decode instance: the request timeout, or the client went away.
func (px *pdExchange) interrupted(dName string) pdResult {
	if errors.Is(context.Cause(px.ctx), errRequestTimeout) {
		px.done(pdTimeout)
		px.fail(&routerError{status: http.StatusGatewayTimeout, kind: kindTimeout,
			msg: fmt.Sprintf("the request took longer than %s (--request-timeout); decode instance %s", px.r.cfg.RequestTimeout, dName)})
		return pdResult{next: pdDone}
	}
	px.done(pdClientGone)
	if !px.started {
		px.code = 499
	}
	return pdResult{next: pdDone}
}

// prefillFailed handles a prefill instance that gave no answer: a timeout
// is answered 504, a gone client is let go, anything else (connect error,
// reset) may go to another pair.
func (px *pdExchange) prefillFailed(actx context.Context, a *pdAttempt, err error) pdResult {
	r := px.r
	name := a.pInst.Name
	cause := context.Cause(actx)
	timeout := func(v verdict, msg string) pdResult {
		r.finish(a.p, v)
		px.done(pdTimeout)
		if !px.started {
			px.w.Header().Set(InstanceHeader, name)
			px.instance = name
		}
		px.fail(&routerError{status: http.StatusGatewayTimeout, kind: kindTimeout, msg: msg})
		return pdResult{next: pdDone}
	}
	switch {
	case errors.Is(cause, errFirstTokenTimeout) || errors.Is(err, errFirstTokenTimeout):
		return timeout(verdictFault, fmt.Sprintf("no answer within %s (--first-token-timeout); prefill instance %s", r.cfg.FirstTokenTimeout, name))
	case errors.Is(cause, errRequestTimeout):
		return timeout(verdictNone, fmt.Sprintf("the request took longer than %s (--request-timeout); prefill instance %s", r.cfg.RequestTimeout, name))
	case px.req.Context().Err() != nil:
		r.finish(a.p, verdictNone)
		px.done(pdClientGone)
		if !px.started {
			px.code = 499
		}
		return pdResult{next: pdDone}
	}
	r.finish(a.p, verdictFault)
	return pdResult{next: pdRetryPair, failed: &failedAnswer{instance: name, reason: "connect", err: &routerError{
		status: http.StatusBadGateway, kind: kindUpstream,
		msg: fmt.Sprintf("prefill instance %s failed before answering: %v", name, err)}}}
}

// decodeTarget is the d-target and d-port of a decode instance: the host
// and port of its inference URL.
func decodeTarget(d *backend) (string, string) {
	host, port := d.inference.Hostname(), d.inference.Port()
	if port == "" {
		port = "80"
		if d.inference.Scheme == "https" {
			port = "443"
		}
	}
	return host, port
}

// prefillAnswer is a prefill instance's answer (mindie-coordinator.md §3.1
// step 4).
type prefillAnswer struct {
	ReqID      json.RawMessage `json:"reqId"`
	IsStream   bool            `json:"isStream"`
	IsLastResp bool            `json:"isLastResp"`
	Output     json.RawMessage `json:"output"`
	output     []byte
}

// parsePrefillAnswer reads P's JSON answer to request id. output is a
// string (the bytes the client gets) or, leniently, any other JSON value,
// taken as it is.
func parsePrefillAnswer(body []byte, id string) (*prefillAnswer, error) {
	if len(body) > pdMessageLimit {
		return nil, fmt.Errorf("the answer is larger than %d bytes", pdMessageLimit)
	}
	var a prefillAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return nil, fmt.Errorf("expected JSON {reqId, isStream, isLastResp, output}: %w", err)
	}
	var got string
	if err := json.Unmarshal(a.ReqID, &got); err != nil {
		got = string(bytes.TrimSpace(a.ReqID)) // a number
	}
	if !strings.EqualFold(strings.TrimSpace(got), id) {
		return nil, fmt.Errorf("the answer is for reqId %s", bytes.TrimSpace(a.ReqID))
	}
	out := bytes.TrimSpace(a.Output)
	switch {
	case len(out) == 0 || string(out) == "null":
	case out[0] == '"':
		var s string
		if err := json.Unmarshal(out, &s); err != nil {
			return nil, fmt.Errorf("output: %w", err)
		}
		a.output = []byte(s)
	default:
		a.output = out
	}
	return &a, nil
}

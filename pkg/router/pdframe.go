package router

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// The /dresult stream of a MindIE decode instance (mindie-coordinator.md
// §3.1 step 5): chunked, long-lived, a sequence of messages
// "keyword:payload" each ended by a NUL byte. reqId names the request the
// following messages belong to (MindIE and the simulator send one before
// each of them; one followed by several is taken as well); data, lastData,
// error and retry are for that request; ka keeps the stream alive; close
// says the instance is closing it (a new consumer took it).
const (
	dmReqID    = "reqId"
	dmData     = "data"
	dmLastData = "lastData"
	dmError    = "error"
	dmRetry    = "retry"
	dmKeep     = "ka"
	dmClose    = "close"
)

// errMessageTooLarge: a /dresult message beyond pdMessageLimit.
var errMessageTooLarge = fmt.Errorf("a /dresult message is larger than %d bytes", pdMessageLimit)

// dresultReader splits a /dresult stream into messages, whatever the reads'
// boundaries.
type dresultReader struct {
	br    *bufio.Reader
	limit int
	buf   []byte
}

func newDresultReader(r io.Reader, limit int) *dresultReader {
	return &dresultReader{br: bufio.NewReaderSize(r, 64<<10), limit: limit}
}

// next returns the next message's keyword and payload; the payload is valid
// until the next call. A stream that ends inside a message returns
// io.ErrUnexpectedEOF, one that ends between messages io.EOF. A message
// without a colon is a keyword with an empty payload.
func (d *dresultReader) next() (string, []byte, error) {
	d.buf = d.buf[:0]
	for {
		chunk, err := d.br.ReadSlice(0)
		d.buf = append(d.buf, chunk...)
		if len(d.buf) > d.limit+1 {
			return "", nil, errMessageTooLarge
		}
		switch {
		case err == nil:
			msg := d.buf[:len(d.buf)-1]
			kind, payload, _ := bytes.Cut(msg, []byte{':'})
			return strings.TrimSpace(string(kind)), payload, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(d.buf) > 0:
			return "", nil, io.ErrUnexpectedEOF
		default:
			return "", nil, err
		}
	}
}

// Reasons of a /dresult reconnection, the label of
// pd_dresult_reconnects_total.
const (
	reconnectConnect  = "connect"  // could not connect
	reconnectStatus   = "status"   // the instance answered other than 200
	reconnectClose    = "close"    // close: (another consumer took the stream, or the instance stops)
	reconnectDrop     = "drop"     // the stream ended or broke off
	reconnectProtocol = "protocol" // a message the router cannot read
)

// runDresult holds the /dresult stream of decode instance b (inst, as it
// was when started: its URL does not change) until ctx ends, reconnecting with a back-off when it fails or ends.
func (r *Router) runDresult(ctx context.Context, b *backend, inst Instance, gen uint64) {
	name := inst.Name
	backoff := dresultMinBackoff
	for {
		start := time.Now()
		opened, reason, err := r.consumeDresult(ctx, b, inst, gen)
		if ctx.Err() != nil {
			return
		}
		r.mu.Lock()
		if b.pd.gen == gen {
			b.pd.connected = false
			b.pd.err = err.Error()
			b.pd.since = time.Now()
		}
		r.mu.Unlock()
		r.metrics.pd.reconnects.WithLabelValues(name, reason).Inc()
		if opened && time.Since(start) >= dresultStableAfter {
			backoff = dresultMinBackoff
		}
		if opened || backoff == dresultMinBackoff {
			r.log.Info("/dresult stream lost: reconnecting; the instance gets no new request meanwhile", "instance", name, "reason", reason, "err", err, "after", backoff)
		} else {
			r.log.V(1).Info("/dresult stream still failing", "instance", name, "reason", reason, "err", err, "after", backoff)
		}
		wait := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			wait.Stop()
			return
		case <-wait.C:
		}
		backoff = min(2*backoff, dresultMaxBackoff)
	}
}

// consumeDresult opens the stream once and reads it until it ends; opened
// says whether it was open (200) at all.
func (r *Router) consumeDresult(ctx context.Context, b *backend, inst Instance, gen uint64) (opened bool, reason string, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(sctx, http.MethodGet, inst.Inference+dresultPath, nil)
	if err != nil {
		return false, reconnectConnect, err
	}
	// The answer's headers must come within the connect timeout; the body
	// then flows for as long as the instance lives.
	headers := time.AfterFunc(r.cfg.ConnectTimeout, cancel)
	resp, err := r.client.Do(req)
	headers.Stop()
	if err != nil {
		return false, reconnectConnect, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return false, reconnectStatus, fmt.Errorf("GET %s answered %d: %s", dresultPath, resp.StatusCode, strings.TrimSpace(string(data)))
	}
	r.mu.Lock()
	if b.pd.gen == gen {
		b.pd.connected = true
		b.pd.err = ""
		b.pd.since = time.Now()
	}
	r.mu.Unlock()
	r.log.Info("/dresult stream open: the decode instance is routable", "instance", inst.Name)
	rd := newDresultReader(resp.Body, pdMessageLimit)
	current := ""
	for {
		kind, payload, err := rd.next()
		switch {
		case errors.Is(err, io.EOF):
			return true, reconnectDrop, errors.New("the stream ended")
		case errors.Is(err, errMessageTooLarge):
			return true, reconnectProtocol, err
		case err != nil:
			return true, reconnectDrop, err
		}
		switch kind {
		case dmReqID:
			current = strings.ToLower(strings.TrimSpace(string(payload)))
		case dmData, dmLastData, dmError, dmRetry:
			if current == "" {
				r.metrics.pd.dropped.WithLabelValues("no_request").Inc()
				continue
			}
			r.deliver(b, current, kind, payload)
		case dmKeep:
		case dmClose:
			return true, reconnectClose, errors.New("the instance closed the stream (close:)")
		default:
			r.metrics.pd.dropped.WithLabelValues("unknown_keyword").Inc()
			r.log.V(2).Info("ignoring an unknown /dresult message", "instance", inst.Name, "keyword", kind)
		}
	}
}

package mindie

import (
	"bytes"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"
)

// A decode instance's answers go out on GET /dresult, one long chunked
// response read by one consumer at a time (MindIE's Coordinator). It is a
// sequence of messages "<keyword>:<payload>\0". Every request message
// (data, lastData, error, retry) is preceded by its own reqId:<id>
// message, so that messages of different requests may interleave; ka:
// (keep-alive) and close: stand alone.

// The keywords of /dresult messages.
const (
	msgReqID     = "reqId"
	msgData      = "data"
	msgLastData  = "lastData"
	msgError     = "error"
	msgRetry     = "retry"
	msgKeepAlive = "ka"
	msgClose     = "close"
)

// errDResultOverflow is what sending a request message returns when
// DResultBufferLimit messages are already waiting for the consumer.
var errDResultOverflow = errors.New("the /dresult buffer is full")

// frame is one message: keyword, ':', payload and a NUL byte. A NUL byte
// in the payload (which JSON answers never have) would end the message
// early, so it is replaced by a space.
func frame(keyword string, payload []byte) []byte {
	out := make([]byte, 0, len(keyword)+len(payload)+2)
	out = append(out, keyword...)
	out = append(out, ':')
	out = append(out, bytes.ReplaceAll(payload, []byte{0}, []byte{' '})...)
	return append(out, 0)
}

// dresultHub holds the messages waiting for the /dresult consumer and
// knows the consumer.
type dresultHub struct {
	limit    int // DResultBufferLimit (tests lower it)
	mu       sync.Mutex
	queue    [][]byte // each a request message pair: reqId: and its message
	consumer *dresultConsumer
}

// dresultConsumer is one GET /dresult connection.
type dresultConsumer struct {
	wake     chan struct{} // signalled when the queue grows
	replaced chan struct{} // closed when a newer consumer takes over
	dropped  chan struct{} // closed by DropDResult
}

// send queues a request's message for the consumer. Unless force, it
// refuses (errDResultOverflow) when DResultBufferLimit messages wait
// already; forced messages (error: or retry:, which end a request) may go
// beyond, at most one per request.
func (h *dresultHub) send(reqID, keyword string, payload []byte, force bool) error {
	entry := append(frame(msgReqID, []byte(reqID)), frame(keyword, payload)...)
	h.mu.Lock()
	defer h.mu.Unlock()
	if !force && len(h.queue) >= h.limit {
		return errDResultOverflow
	}
	h.queue = append(h.queue, entry)
	if c := h.consumer; c != nil {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// connect makes a new consumer the current one; the previous one, if any,
// is told to send close: and end.
func (h *dresultHub) connect() (c *dresultConsumer, replaced bool) {
	c = &dresultConsumer{wake: make(chan struct{}, 1), replaced: make(chan struct{}), dropped: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	if old := h.consumer; old != nil {
		close(old.replaced)
		replaced = true
	}
	h.consumer = c
	return c, replaced
}

func (h *dresultHub) disconnect(c *dresultConsumer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.consumer == c {
		h.consumer = nil
	}
}

// take hands c every waiting message, if c is the current consumer.
func (h *dresultHub) take(c *dresultConsumer) [][]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.consumer != c || len(h.queue) == 0 {
		return nil
	}
	q := h.queue
	h.queue = nil
	return q
}

// requeue puts back, ahead of the others, messages a consumer could not
// write.
func (h *dresultHub) requeue(entries [][]byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.queue = slices.Concat(entries, h.queue)
}

// drop disconnects the current consumer abruptly.
func (h *dresultHub) drop() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.consumer
	if c == nil {
		return false
	}
	close(c.dropped)
	h.consumer = nil
	return true
}

// state is the number of waiting messages and whether a consumer is
// connected.
func (h *dresultHub) state() (buffered int, connected bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.queue), h.consumer != nil
}

// handleDResult serves GET /dresult: the decode instance's answers, as a
// chunked stream of NUL-terminated messages, to one consumer at a time. A
// new connection takes over: the previous one gets close: and ends.
// Messages waiting when the consumer connects go out at once; ka: goes out
// after DResultKeepAlive (wall time) without another message; close: also
// ends the stream when the server shuts down.
func (s *Server) handleDResult(w http.ResponseWriter, r *http.Request) {
	c, replaced := s.dresult.connect()
	defer s.dresult.disconnect(c)
	if replaced {
		s.logf("/dresult: a new consumer connected: close: sent to the previous one")
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	flush := func() error {
		if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
		return nil
	}
	if flush() != nil {
		return
	}
	// deliver writes the waiting messages; false when the connection is
	// broken (what was not written waits for the next consumer).
	deliver := func() bool {
		entries := s.dresult.take(c)
		for i, e := range entries {
			if _, err := w.Write(e); err != nil {
				s.dresult.requeue(entries[i:])
				return false
			}
		}
		return len(entries) == 0 || flush() == nil
	}
	var keepAlive <-chan time.Time
	var timer *time.Timer
	if s.dresultKeepAlive > 0 {
		timer = time.NewTimer(s.dresultKeepAlive)
		defer timer.Stop()
		keepAlive = timer.C
	}
	resetKeepAlive := func() {
		if timer != nil {
			timer.Reset(s.dresultKeepAlive)
		}
	}
	for {
		if !deliver() {
			return
		}
		select {
		case <-c.wake:
			resetKeepAlive()
		case <-keepAlive:
			s.mu.Lock()
			hung := s.hung
			s.mu.Unlock()
			if !hung { // a hung server sends nothing
				if _, err := w.Write(frame(msgKeepAlive, nil)); err != nil || flush() != nil {
					return
				}
			}
			resetKeepAlive()
		case <-c.replaced:
			w.Write(frame(msgClose, nil))
			flush()
			return
		case <-c.dropped:
			s.logf("/dresult: connection dropped (injected fault)")
			panic(http.ErrAbortHandler)
		case <-s.crashed:
			panic(http.ErrAbortHandler)
		case <-s.closing:
			if deliver() {
				w.Write(frame(msgClose, nil))
				flush()
			}
			return
		case <-r.Context().Done():
			return
		}
	}
}

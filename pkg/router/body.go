package router

import (
	"bytes"
	"errors"
	"io"
	"math/bits"
	"sync"
)

// A request body is held in memory for its retries. Large prompts at a
// high rate would make the garbage collector run often (200 KiB at 1,000
// requests a second is 200 MB/s), so the buffers come from pools by size
// class and go back once nothing reads them any more: the exchange is over
// and the transport has closed every reader it was given (it closes a
// request's body when it has sent it or given up, possibly after the
// answer came).

// Buffer size classes: minBodyClass << k bytes, up to maxBodyClass; a
// larger body is allocated and left to the garbage collector.
const (
	minBodyClassShift = 12 // 4 KiB
	maxBodyClassShift = 24 // 16 MiB
	// bodyChunk is the first buffer of a body with a Content-Length; it
	// doubles up to the length as the body comes, so that a client that
	// announces a large body and sends little makes the router hold little.
	bodyChunk = 64 << 10
)

var bodyPools [maxBodyClassShift - minBodyClassShift + 1]sync.Pool // of *[]byte

// classOf is the pool index of the smallest class of at least n bytes, -1
// above the largest.
func classOf(n int) int {
	shift := minBodyClassShift
	if n > 1<<minBodyClassShift {
		shift = bits.Len(uint(n - 1))
	}
	if shift > maxBodyClassShift {
		return -1
	}
	return shift - minBodyClassShift
}

// getBuffer returns an empty buffer of at least n bytes' capacity.
func getBuffer(n int) *[]byte {
	c := classOf(n)
	if c < 0 {
		b := make([]byte, 0, n)
		return &b
	}
	if p, ok := bodyPools[c].Get().(*[]byte); ok {
		*p = (*p)[:0]
		return p
	}
	b := make([]byte, 0, 1<<(c+minBodyClassShift))
	return &b
}

// putBuffer gives a buffer of getBuffer back.
func putBuffer(p *[]byte) {
	c := classOf(cap(*p))
	if c < 0 || cap(*p) != 1<<(c+minBodyClassShift) {
		return
	}
	bodyPools[c].Put(p)
}

// sharedBody is a request body read whole, shared by the exchange and the
// readers of its attempts; its buffer goes back to its pool when the last
// of them lets go.
type sharedBody struct {
	mu   sync.Mutex
	buf  *[]byte
	refs int // the exchange's, and one per reader not closed
}

// errBodyGone: a reader was asked for after the exchange ended.
var errBodyGone = errors.New("the request body was released")

func newSharedBody(buf *[]byte) *sharedBody { return &sharedBody{buf: buf, refs: 1} }

// bytes is the body; valid until release.
func (s *sharedBody) bytes() []byte {
	if s == nil || s.buf == nil {
		return nil
	}
	return *s.buf
}

// reader returns a new reader of the body, which holds it until closed.
func (s *sharedBody) reader() (io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refs == 0 {
		return nil, errBodyGone
	}
	s.refs++
	return &bodyReader{Reader: bytes.NewReader(*s.buf), body: s}, nil
}

// release lets go of one hold; the last gives the buffer back.
func (s *sharedBody) release() {
	s.mu.Lock()
	s.refs--
	var buf *[]byte
	if s.refs == 0 {
		buf, s.buf = s.buf, nil
	}
	s.mu.Unlock()
	if buf != nil {
		putBuffer(buf)
	}
}

// bodyReader reads a sharedBody; Close lets go of it (once).
type bodyReader struct {
	*bytes.Reader
	body   *sharedBody
	closed bool
	mu     sync.Mutex
}

func (r *bodyReader) Close() error {
	r.mu.Lock()
	closed := r.closed
	r.closed = true
	r.mu.Unlock()
	if !closed {
		r.body.release()
	}
	return nil
}

// readSized reads a body of n bytes (the server ends it there) into a
// pooled buffer, growing it from bodyChunk by doubling up to n.
func readSized(r io.Reader, n int64) (*[]byte, error) {
	p := getBuffer(int(min(n, bodyChunk)))
	for int64(len(*p)) < n {
		buf := *p
		if len(buf) == cap(buf) {
			bigger := getBuffer(int(min(n, 2*int64(cap(buf)))))
			*bigger = append(*bigger, buf...)
			putBuffer(p)
			p, buf = bigger, *bigger
		}
		m, err := r.Read(buf[len(buf):int(min(int64(cap(buf)), n))])
		*p = buf[:len(buf)+m]
		switch {
		case err == io.EOF && int64(len(*p)) < n:
			putBuffer(p)
			return nil, io.ErrUnexpectedEOF
		case err == io.EOF:
			return p, nil
		case err != nil:
			putBuffer(p)
			return nil, err
		}
	}
	return p, nil
}

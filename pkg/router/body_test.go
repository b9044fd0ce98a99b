package router

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"
)

func TestBodyClasses(t *testing.T) {
	for n, want := range map[int]int{0: 0, 1: 0, 4096: 0, 4097: 1, 8192: 1, 64 << 10: 4, 200 << 10: 6, 16 << 20: 12, 16<<20 + 1: -1} {
		if got := classOf(n); got != want {
			t.Errorf("classOf(%d) = %d, want %d", n, got, want)
		}
	}
	p := getBuffer(200 << 10)
	if len(*p) != 0 || cap(*p) != 256<<10 {
		t.Errorf("getBuffer(200 KiB): len %d cap %d", len(*p), cap(*p))
	}
	big := getBuffer(20 << 20)
	if cap(*big) != 20<<20 {
		t.Errorf("getBuffer(20 MiB): cap %d", cap(*big))
	}
}

func TestReadSized(t *testing.T) {
	for _, n := range []int{0, 1, 4095, 4096, 4097, bodyChunk, bodyChunk + 1, 200 << 10, 300000} {
		data := bytes.Repeat([]byte("0123456789abcdef"), n/16+1)[:n]
		for name, r := range map[string]io.Reader{
			"whole":    bytes.NewReader(data),
			"halves":   iotest.HalfReader(bytes.NewReader(data)),
			"data+EOF": iotest.DataErrReader(bytes.NewReader(data)),
		} {
			p, err := readSized(r, int64(n))
			if err != nil || !bytes.Equal(*p, data) {
				t.Errorf("%d bytes, %s: %v, got %d bytes", n, name, err, len(*p))
			}
		}
		if n > 0 {
			if _, err := readSized(bytes.NewReader(data[:n-1]), int64(n)); err != io.ErrUnexpectedEOF {
				t.Errorf("%d bytes, one short: %v, want io.ErrUnexpectedEOF", n, err)
			}
		}
	}
	if _, err := readSized(iotest.ErrReader(io.ErrClosedPipe), 10); err != io.ErrClosedPipe {
		t.Errorf("failing reader: %v", err)
	}
}

// TestSharedBodyIsReleasedLast: the buffer goes back to the pool only when
// the exchange and every reader let go of it, each once.
func TestSharedBodyIsReleasedLast(t *testing.T) {
	p := getBuffer(10)
	*p = append(*p, "the prompt"...)
	s := newSharedBody(p)
	r1, err := s.reader()
	if err != nil {
		t.Fatal(err)
	}
	r2, _ := s.reader()
	s.release() // the exchange is over; the transport still reads
	if data, err := io.ReadAll(r1); err != nil || string(data) != "the prompt" {
		t.Fatalf("a reader after the exchange's release: %q %v", data, err)
	}
	r1.Close()
	r1.Close() // twice: one release only
	if s.buf == nil {
		t.Fatal("released while a reader is open")
	}
	r2.Close()
	if s.buf != nil || s.refs != 0 {
		t.Fatalf("not released after the last reader: refs %d", s.refs)
	}
	if _, err := s.reader(); err != errBodyGone {
		t.Errorf("a reader of a released body: %v", err)
	}
}

// TestPooledBodiesAreNotMixedUp sends many large bodies at once through
// the router to an instance that reads some of them, some after it started
// answering, and ignores others (so that the transport may still send a
// body after the exchange ended, while other exchanges take buffers from
// the pools), and checks that the instance read every body it read as its
// request was sent.
func TestPooledBodiesAreNotMixedUp(t *testing.T) {
	b := newFakeBackend(t, "a")
	var mu sync.Mutex
	got := map[string]string{} // request ID: the body's digest as the instance read it
	b.setHandler(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Test-ID")
		if strings.HasSuffix(id, "ignore") {
			// Answer without reading: the exchange ends while the
			// transport may still be sending the body.
			w.Write([]byte(`{}`))
			return
		}
		if strings.HasSuffix(id, "early") {
			// Answer first, read the body after (full duplex), so that the
			// router is done with the exchange while the transport still
			// sends its body.
			rc := http.NewResponseController(w)
			if err := rc.EnableFullDuplex(); err != nil {
				t.Error(err)
			}
			w.Write([]byte(`{}`))
			rc.Flush()
			time.Sleep(time.Millisecond)
		}
		h := sha256.New()
		io.Copy(h, r.Body)
		mu.Lock()
		got[id] = hex.EncodeToString(h.Sum(nil))
		mu.Unlock()
		w.Write([]byte(`{}`))
	})
	tr := startRouter(t, testConfig(LeastLoad), b)
	want := map[string]string{}
	var wg sync.WaitGroup
	for i := range 96 {
		id := fmt.Sprint(i)
		switch i % 3 {
		case 1:
			id += "-early"
		case 2:
			id += "-ignore"
		}
		size := 40<<10 + i*3001
		body := []byte(`{"inputs":"` + strings.Repeat(string(rune('a'+i%26)), size) + fmt.Sprintf(`","i":%d}`, i))
		if !strings.HasSuffix(id, "ignore") {
			sum := sha256.Sum256(body)
			want[id] = hex.EncodeToString(sum[:])
		}
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, tr.url+"/generate", bytes.NewReader(body))
			req.Header.Set("X-Test-ID", id)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		})
	}
	wg.Wait()
	waitFor(t, "every body read", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == len(want)
	})
	mu.Lock()
	defer mu.Unlock()
	for id, sum := range want {
		if got[id] != sum {
			t.Errorf("request %s: the instance read another body", id)
		}
	}
}

package measure

import (
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mindie.io/deployer/pkg/simulator/mindie"
)

func TestPercentile(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3, 10, 9, 8, 7, 6}
	for _, c := range []struct{ q, want float64 }{
		{0.5, 5}, {0.9, 9}, {0.99, 10}, {1, 10}, {0.01, 1}, {0.1, 1}, {0.11, 2},
	} {
		if got := Percentile(xs, c.q); got != c.want {
			t.Errorf("p%g = %g, want %g", c.q*100, got, c.want)
		}
	}
	if xs[0] != 5 {
		t.Error("Percentile sorted its argument")
	}
	if Percentile(nil, 0.5) != 0 {
		t.Error("the percentile of nothing is not 0")
	}
}

func TestRoundAndMs(t *testing.T) {
	if got := Round(1.23456, 2); got != 1.23 {
		t.Errorf("Round = %g", got)
	}
	if got := Ms(1500 * time.Microsecond); got != 1.5 {
		t.Errorf("Ms = %g", got)
	}
}

func TestCPUModel(t *testing.T) {
	m := CPUModel()
	if m == "" || m != strings.TrimSpace(m) || strings.HasPrefix(m, ":") {
		t.Errorf("CPU model %q", m)
	}
}

func TestPostJSON(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions" ||
			r.Header.Get("Content-Type") != "application/json" || string(body) != `{"a":1}` {
			http.Error(w, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type")+" "+string(body), http.StatusBadRequest)
			return
		}
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	resp, err := PostJSON(context.Background(), srv.Client(), srv.URL+"/v1/chat/completions", []byte(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if msg, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK {
		t.Errorf("%d %s", resp.StatusCode, msg)
	}
	if _, err := PostJSON(context.Background(), srv.Client(), "http://[::1", nil); err == nil {
		t.Error("a bad URL gave no error")
	}
}

func TestWords(t *testing.T) {
	rng := func() *rand.Rand { return rand.New(rand.NewPCG(1, 2)) }
	if Words(rng(), 0) != "" {
		t.Error("no words are not empty")
	}
	for _, n := range []int{1, 2, 50} {
		w := Words(rng(), n)
		if got := len(mindie.Tokenize(w)); got != n || len(strings.Fields(w)) != n {
			t.Errorf("%d words %q: %d tokens", n, w, got)
		}
		if Words(rng(), n) != w {
			t.Errorf("%d words: the same seed gave other words", n)
		}
	}
}

func TestLogger(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := os.Stderr
	os.Stderr = w
	Logger("bench", time.Now().Add(-1500*time.Millisecond))("%d requests", 3)
	os.Stderr = stderr
	w.Close()
	out, _ := io.ReadAll(r)
	// "bench", the seconds since began in six characters, the message.
	if got := string(out); !regexp.MustCompile(`^bench    1\.[5-9]s: 3 requests\n$`).MatchString(got) {
		t.Errorf("logged %q", got)
	}
}

func TestSample(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int32
	done := Sample(ctx, time.Millisecond, func() {
		if calls.Add(1) == 3 {
			cancel()
		}
	})
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Sample did not stop when its context ended")
	}
	// The call that ended the context may be followed by one more, when
	// the ticker was due as well; none comes after done is closed.
	n := calls.Load()
	if n < 3 || n > 4 {
		t.Errorf("%d calls, want 3 or 4", n)
	}
	time.Sleep(10 * time.Millisecond)
	if calls.Load() != n {
		t.Error("f was called after done was closed")
	}
}

func TestPortsCommand(t *testing.T) {
	old := os.Stdout
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	os.Stdout = w
	err = PortsCommand([]string{"-n", "3"})
	os.Stdout = old
	w.Close()
	out, _ := io.ReadAll(r)
	ports := strings.Fields(string(out))
	if err != nil || len(ports) != 3 || ports[0] == ports[1] || ports[1] == ports[2] || ports[0] == ports[2] {
		t.Errorf("ports %q, %v", out, err)
	}
}

package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer collects the command's stderr while it runs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRunRefusesBadInvocations(t *testing.T) {
	backends := writeFile(t, "backends.yaml", "- {name: a, inference: http://127.0.0.1:1}\n")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no backends", nil, "--static-backends is required"},
		{"unknown flag", []string{"--port", "1"}, "flag provided but not defined: -port"},
		{"stray argument", []string{"serve"}, "takes only flags"},
		{"unknown algorithm", []string{"--static-backends", backends, "--algorithm", "random"}, "--algorithm=random: expected one of round_robin, cache_affinity, least_load"},
		{"kubernetes auth", []string{"--static-backends", backends, "--authentication", "kubernetes"}, "kubernetes is not built yet"},
		{"missing file", []string{"--static-backends", filepath.Join(t.TempDir(), "absent.yaml")}, "--static-backends: open"},
		{"bad file", []string{"--static-backends", writeFile(t, "bad.yaml", "- {name: a}\n")}, "[0].inference=\"\": required"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stderr syncBuffer
			if code := run(context.Background(), c.args, &stderr, nil); code != exitUsage {
				t.Errorf("exit %d, want %d", code, exitUsage)
			}
			if !strings.Contains(stderr.String(), c.want) {
				t.Errorf("stderr %q lacks %q", stderr.String(), c.want)
			}
		})
	}
}

func TestRunServesAndStops(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"generated_text":"hi"}`)
	}))
	defer backend.Close()
	backends := writeFile(t, "backends.json", `[{"name":"only","inference":"`+backend.URL+`"}]`)
	ctx, stop := context.WithCancel(context.Background())
	addr := make(chan net.Addr, 1)
	exit := make(chan int, 1)
	var stderr syncBuffer
	go func() {
		exit <- run(ctx, []string{"--listen", "127.0.0.1:0", "--static-backends", backends, "--algorithm", "round_robin"},
			&stderr, func(a net.Addr) { addr <- a })
	}()
	var url string
	select {
	case a := <-addr:
		url = "http://" + a.String()
	case code := <-exit:
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("never ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := http.Post(url+"/generate", "application/json", strings.NewReader(`{"inputs":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Mindie-Instance") != "only" || string(body) != `{"generated_text":"hi"}` {
		t.Errorf("got %d %v %s", resp.StatusCode, resp.Header, body)
	}
	stop()
	select {
	case code := <-exit:
		if code != exitOK {
			t.Errorf("exit %d after the signal: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("did not stop")
	}
}

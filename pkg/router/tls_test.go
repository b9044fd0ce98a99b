package router

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/util/cert"
)

// serveTLS runs the router over b with cfg through Serve (HTTPS unless
// cfg.InsecureHTTP) on 127.0.0.1 and returns its address.
func serveTLS(t *testing.T, cfg Config, b *fakeBackend) string {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	r, err := New(cfg, StaticSource{b.instance()}, WithLogger(logr.Discard()))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- r.Serve(ctx, ln) }()
	t.Cleanup(func() {
		stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	waitFor(t, "ready", r.Ready)
	return ln.Addr().String()
}

// httpsClient trusts only pool.
func httpsClient(pool *x509.CertPool) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

func TestServeHTTPSSelfSigned(t *testing.T) {
	b := newFakeBackend(t, "a")
	seen := make(chan string, 1)
	b.setHandler(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get("X-Forwarded-Proto")
		w.Write([]byte(`{}`))
	})
	cfg := testConfig(LeastLoad)
	cfg.InsecureHTTP = false
	addr := serveTLS(t, cfg, b)

	// The certificate made at start is for the loopback addresses; its
	// chain ends with the CA that signed it, which the client then trusts.
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	chain := conn.ConnectionState().PeerCertificates
	conn.Close()
	if len(chain) < 2 {
		t.Fatalf("chain of %d certificates, want the serving one and its CA", len(chain))
	}
	if err := chain[0].VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("the self-signed certificate: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(chain[len(chain)-1])
	client := httpsClient(pool)

	resp, err := client.Post("https://"+addr+"/generate", "application/json", strings.NewReader(`{"inputs":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get(InstanceHeader) != "a" {
		t.Errorf("HTTPS: %d from %q", resp.StatusCode, resp.Header.Get(InstanceHeader))
	}
	if proto := <-seen; proto != "https" {
		t.Errorf("X-Forwarded-Proto %q, want https", proto)
	}

	// Plain HTTP to the TLS port is refused, and reaches no route.
	plain, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/healthz")
	if err == nil {
		body, _ := io.ReadAll(plain.Body)
		plain.Body.Close()
		if plain.StatusCode != http.StatusBadRequest || strings.Contains(string(body), "ok") {
			t.Errorf("plain HTTP to the HTTPS port: %d %q, want 400", plain.StatusCode, body)
		}
	}
	// An untrusting client fails the handshake.
	if _, err := httpsClient(x509.NewCertPool()).Get("https://" + addr + "/healthz"); err == nil {
		t.Error("a client that does not trust the self-signed CA got an answer")
	}
}

// writePair writes a new certificate and key for 127.0.0.1 to dir and
// returns the pool that trusts it.
func writePair(t *testing.T, certFile, keyFile string, mod time.Time) *x509.CertPool {
	t.Helper()
	certPEM, keyPEM, err := cert.GenerateSelfSignedCertKey("127.0.0.1", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{certFile, keyFile} {
		if err := os.Chtimes(f, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(certPEM) {
		t.Fatal("no certificate in the PEM")
	}
	return pool
}

func TestServeHTTPSFromFiles(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	pool := writePair(t, certFile, keyFile, time.Now())
	cfg := testConfig(LeastLoad)
	cfg.InsecureHTTP, cfg.TLSCertFile, cfg.TLSKeyFile = false, certFile, keyFile
	addr := serveTLS(t, cfg, newFakeBackend(t, "a"))
	resp, err := httpsClient(pool).Get("https://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status %d", resp.StatusCode)
	}
}

func TestCertFilesReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	start := time.Now().Add(-time.Hour)
	writePair(t, certFile, keyFile, start)
	files, err := loadCertFiles(certFile, keyFile, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	first, _ := files.get(nil)

	// Within certReloadInterval the files are not looked at.
	writePair(t, certFile, keyFile, start.Add(time.Minute))
	if got, _ := files.get(nil); got != first {
		t.Error("reloaded before certReloadInterval")
	}
	files.mu.Lock()
	files.checked = time.Time{}
	files.mu.Unlock()
	second, _ := files.get(nil)
	if second == first {
		t.Fatal("a renewed pair was not loaded")
	}

	// A pair caught mid-update (the key not matching) keeps the old one.
	other := filepath.Join(dir, "other.key")
	writePair(t, filepath.Join(dir, "other.crt"), other, start)
	key, _ := os.ReadFile(other)
	os.WriteFile(keyFile, key, 0o600)
	os.Chtimes(keyFile, start.Add(2*time.Minute), start.Add(2*time.Minute))
	files.mu.Lock()
	files.checked = time.Time{}
	files.mu.Unlock()
	if got, _ := files.get(nil); got != second {
		t.Error("a mismatched pair replaced the good one")
	}

	if _, err := loadCertFiles(filepath.Join(dir, "absent.crt"), keyFile, logr.Discard()); err == nil ||
		!strings.Contains(err.Error(), "--tls-cert-file") {
		t.Errorf("a missing file: %v", err)
	}
}

// caFile writes the PEM of an httptest TLS server's certificate (its own
// CA) to a file.
func caFile(t *testing.T, b *fakeBackend) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: b.srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestHTTPSInstances(t *testing.T) {
	b := newFakeHTTPSBackend(t, "tls")
	if !strings.HasPrefix(b.srv.URL, "https://127.0.0.1:") {
		t.Fatalf("backend URL %s", b.srv.URL)
	}
	ca := caFile(t, b)
	// Another CA: client-go's self-signed pair comes with its own.
	otherPEM, _, err := cert.GenerateSelfSignedCertKey("127.0.0.1", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	otherCA := filepath.Join(t.TempDir(), "other-ca.crt")
	if err := os.WriteFile(otherCA, otherPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name       string
		configure  func(*Config)
		ok         bool
		statusWhy  string // the status error when not ok
		requestErr string // the 502's message when not ok
	}{
		{"verified with --instance-ca-file", func(c *Config) { c.InstanceCAFile = ca }, true, "", ""},
		{"verified for --instance-tls-server-name", func(c *Config) { c.InstanceCAFile, c.InstanceTLSServerName = ca, "example.com" }, true, "", ""},
		{"a name the certificate does not have", func(c *Config) { c.InstanceCAFile, c.InstanceTLSServerName = ca, "llama.infer.svc" },
			false, "certificate is valid for", "certificate is valid for"},
		{"another CA", func(c *Config) { c.InstanceCAFile = otherCA }, false, "certificate signed by unknown authority", "certificate signed by unknown authority"},
		{"the system roots by default", func(*Config) {}, false, "certificate signed by unknown authority", "certificate signed by unknown authority"},
		{"--instance-insecure-skip-verify", func(c *Config) { c.InstanceInsecureSkipVerify = true }, true, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig(LeastLoad)
			cfg.MaxRetries = 0
			c.configure(&cfg)
			// The management port is polled over HTTPS too: a status
			// read that fails keeps the instance out.
			polled := b.instance()
			r, err := New(cfg, StaticSource{polled}, WithLogger(logr.Discard()))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); r.Run(ctx) }()
			defer func() { cancel(); <-done }()
			srv := httptest.NewServer(r.Handler())
			defer srv.Close()
			if c.ok {
				waitFor(t, "the HTTPS instance routable", r.Ready)
				if a := send(t, http.MethodPost, srv.URL+"/generate", `{"inputs":"x"}`); a.status != http.StatusOK || a.instance != "tls" {
					t.Errorf("got %d from %q: %s", a.status, a.instance, a.body)
				}
				return
			}
			waitFor(t, "a failed status read", func() bool {
				is := r.Routes().Instances
				return len(is) == 1 && is[0].StatusError != ""
			})
			if ir := r.Routes().Instances[0]; !strings.Contains(ir.StatusError, c.statusWhy) || ir.Routable {
				t.Errorf("status error %q (routable %v), want one with %q", ir.StatusError, ir.Routable, c.statusWhy)
			}
			// Unpolled, the instance is routable: the request fails.
			unpolled := polled
			unpolled.Management = ""
			r.update([]Instance{unpolled})
			a := send(t, http.MethodPost, srv.URL+"/generate", `{"inputs":"x"}`)
			if a.status != http.StatusBadGateway || !strings.Contains(a.body, c.requestErr) {
				t.Errorf("got %d %s, want 502 with %q", a.status, a.body, c.requestErr)
			}
		})
	}
}

func TestInstanceCAFileErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{
		filepath.Join(dir, "absent.crt"): "--instance-ca-file: open",
		notPEM:                           "no PEM certificate in it",
	} {
		cfg := testConfig(LeastLoad)
		cfg.InstanceCAFile = file
		if _, err := New(cfg, StaticSource{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", file, err, want)
		}
	}
}

package integration

// Helpers that run mindie-apiserver as a real operating-system process, the
// way it runs in production: built from cmd/mindie-apiserver, talking HTTPS
// with its self-signed serving certificate, authenticating clients by
// certificates of a CA the test makes.

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	restclient "k8s.io/client-go/rest"

	clientset "mindie.io/deployer/pkg/generated/clientset/versioned"
	"mindie.io/deployer/pkg/pki"
	"mindie.io/deployer/test/module"
)

const apiserverPackage = "mindie.io/deployer/cmd/mindie-apiserver"

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

// apiserverBinary builds cmd/mindie-apiserver once per test process and
// returns the path of the executable.
func apiserverBinary(t *testing.T) string {
	t.Helper()
	binaryOnce.Do(func() {
		start := time.Now()
		binaryPath, binaryErr = buildAPIServer()
		if binaryErr == nil {
			t.Logf("built %s in %s", binaryPath, time.Since(start).Round(time.Millisecond))
		}
	})
	if binaryErr != nil {
		t.Fatalf("build %s: %v", apiserverPackage, binaryErr)
	}
	return binaryPath
}

// buildAPIServer builds the binary into a per-user directory, named after
// this test process so that concurrent runs do not overwrite each other's
// executable; binaries of test processes that are gone are removed, so the
// directory does not grow without bound.
func buildAPIServer() (string, error) {
	root, err := module.Root()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("mindie-apiserver-itest-%d", os.Getuid()))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	removeStaleBinaries(dir)
	out := filepath.Join(dir, fmt.Sprintf("mindie-apiserver.%d", os.Getpid()))
	cmd := exec.Command("go", "build", "-o", out, apiserverPackage)
	cmd.Dir = root
	if output, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, output)
	}
	return out, nil
}

// removeStaleBinaries deletes binaries built by test processes that no longer run.
func removeStaleBinaries(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		pidText, ok := strings.CutPrefix(e.Name(), "mindie-apiserver.")
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// testPKI is a client CA and a client certificate it signed.
type testPKI struct {
	// CAFile is the CA certificate, for --client-ca-file.
	CAFile string
	// CertPEM and KeyPEM are the client's certificate and key.
	CertPEM, KeyPEM []byte
}

// newTestPKI makes a CA in dir and a client certificate for the user
// "integration-admin" in the group system:masters.
func newTestPKI(t *testing.T, dir string) *testPKI {
	t.Helper()
	p := &testPKI{CAFile: filepath.Join(dir, "ca.crt")}
	ca := newClientCA(t, "mindie-integration-client-ca", p.CAFile)
	p.CertPEM, p.KeyPEM = clientCert(t, ca, "integration-admin", "system:masters")
	return p
}

// newClientCA makes a CA for client certificates, valid for a day, and
// writes its certificate to file (for --client-ca-file).
func newClientCA(t *testing.T, name, file string) *pki.KeyPair {
	t.Helper()
	ca, err := pki.NewCA(name, time.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, ca.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return ca
}

// clientCert issues a client certificate for user in groups, valid as
// long as ca, and returns it and its key in PEM.
func clientCert(t *testing.T, ca *pki.KeyPair, user string, groups ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	pair, err := ca.Issue(pki.Request{CommonName: user, Organizations: groups, Usage: x509.ExtKeyUsageClientAuth, NotAfter: ca.Cert.NotAfter})
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err = pair.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	return pair.CertPEM(), keyPEM
}

// processFixture starts mindie-apiserver processes that share one data
// directory and one certificate directory, as restarts of one installation.
type processFixture struct {
	t       *testing.T
	binary  string
	dir     string
	pki     *testPKI
	dataDir string
	certDir string
	starts  int
}

func newProcessFixture(t *testing.T) *processFixture {
	t.Helper()
	dir := t.TempDir()
	return &processFixture{
		t:       t,
		binary:  apiserverBinary(t),
		dir:     dir,
		pki:     newTestPKI(t, dir),
		dataDir: filepath.Join(dir, "data"),
		certDir: filepath.Join(dir, "certs"),
	}
}

// serverProcess is one running mindie-apiserver process.
type serverProcess struct {
	t       *testing.T
	cmd     *exec.Cmd
	port    int
	logPath string
	// exited is closed when the process has exited; state is then set.
	exited chan struct{}
	state  *os.ProcessState

	// config authenticates as integration-admin (system:masters) and trusts
	// only the server's own self-signed certificate.
	config *restclient.Config
	client clientset.Interface
}

// start starts a process on a free loopback port and waits until /readyz
// passes. A port taken between choosing and binding it is retried.
func (f *processFixture) start() *serverProcess {
	f.t.Helper()
	const attempts = 3
	for attempt := 1; ; attempt++ {
		p, err := f.startOnce()
		if err == nil {
			return p
		}
		if attempt < attempts && strings.Contains(p.logTail(200), "address already in use") {
			f.t.Logf("port %d was taken, retrying: %v", p.port, err)
			continue
		}
		// The cleanup of the process prints the end of its log.
		f.t.Fatalf("start mindie-apiserver (log %s): %v", p.logPath, err)
	}
}

func (f *processFixture) startOnce() (*serverProcess, error) {
	f.starts++
	port, err := freePort()
	if err != nil {
		f.t.Fatal(err)
	}
	p := &serverProcess{
		t:       f.t,
		port:    port,
		logPath: filepath.Join(f.dir, fmt.Sprintf("mindie-apiserver-%d.log", f.starts)),
		exited:  make(chan struct{}),
	}
	logFile, err := os.Create(p.logPath)
	if err != nil {
		f.t.Fatal(err)
	}
	defer logFile.Close() // the child has its own descriptor
	p.cmd = exec.Command(f.binary,
		"--standalone",
		"--client-ca-file="+f.pki.CAFile,
		"--data-dir="+f.dataDir,
		"--cert-dir="+f.certDir,
		"--bind-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(port),
	)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	if err := p.cmd.Start(); err != nil {
		f.t.Fatalf("start %s: %v", f.binary, err)
	}
	go func() {
		_ = p.cmd.Wait()
		p.state = p.cmd.ProcessState
		close(p.exited)
	}()
	f.t.Cleanup(func() {
		p.kill()
		if f.t.Failed() {
			f.t.Logf("last lines of %s:\n%s", p.logPath, p.logTail(40))
		}
	})
	return p, p.waitReady(f, 90*time.Second)
}

// waitReady waits for the serving certificate and then for /readyz to pass.
func (p *serverProcess) waitReady(f *processFixture, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			return fmt.Errorf("exited before it was ready: %s", p.state)
		default:
		}
		if p.client == nil {
			if err := p.loadClient(f); err != nil {
				last = err
				time.Sleep(200 * time.Millisecond)
				continue
			}
		}
		code, body, err := healthStatus(context.Background(), p.client, "/readyz")
		if err == nil && code == 200 {
			return nil
		}
		last = fmt.Errorf("/readyz: status %d, error %v: %s", code, err, body)
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("not ready within %s: %v", timeout, last)
}

// loadClient builds the client once the process has written its
// self-signed serving certificate.
func (p *serverProcess) loadClient(f *processFixture) error {
	serving, err := os.ReadFile(filepath.Join(f.certDir, "apiserver.crt"))
	if err != nil {
		return err
	}
	if block, _ := pem.Decode(serving); block == nil {
		return fmt.Errorf("%s/apiserver.crt is not (yet) a PEM certificate", f.certDir)
	} else if _, err := x509.ParseCertificate(block.Bytes); err != nil {
		return err
	}
	p.config = &restclient.Config{
		Host: "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)),
		TLSClientConfig: restclient.TLSClientConfig{
			CAData:   serving,
			CertData: f.pki.CertPEM,
			KeyData:  f.pki.KeyPEM,
		},
		ContentConfig: restclient.ContentConfig{
			ContentType:        runtime.ContentTypeJSON,
			AcceptContentTypes: runtime.ContentTypeJSON,
		},
		QPS:     1000,
		Burst:   2000,
		Timeout: 30 * time.Second,
	}
	client, err := clientset.NewForConfig(p.config)
	if err != nil {
		return err
	}
	p.client = client
	return nil
}

// terminate sends SIGTERM and returns the exit code, or an error if the
// process has not exited within timeout.
func (p *serverProcess) terminate(timeout time.Duration) (int, error) {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return 0, fmt.Errorf("send SIGTERM: %w", err)
	}
	select {
	case <-p.exited:
		return p.state.ExitCode(), nil
	case <-time.After(timeout):
		return 0, fmt.Errorf("still running %s after SIGTERM", timeout)
	}
}

// kill sends SIGKILL, unless the process has exited, and waits for the exit.
func (p *serverProcess) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		p.t.Errorf("process %d did not exit within 30s of SIGKILL", p.cmd.Process.Pid)
	}
}

// logTail is the last n lines of the process's output.
func (p *serverProcess) logTail(n int) string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(read log: %v)", err)
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// healthStatus GETs a health endpoint with ?verbose and returns the status
// code and body; a failing check is a 500 with the verbose report, not an
// error of the request.
func healthStatus(ctx context.Context, client clientset.Interface, path string) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var code int
	result := client.Discovery().RESTClient().Get().AbsPath(path).Param("verbose", "1").Do(ctx).StatusCode(&code)
	body, err := result.Raw()
	if code != 0 {
		// A status was received: the body is the report whatever the code.
		return code, string(body), nil
	}
	return code, string(body), err
}

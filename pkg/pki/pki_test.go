package pki

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func newCA(t *testing.T) *KeyPair {
	t.Helper()
	ca, err := NewCA("test-ca", time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func pool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

func TestNewCA(t *testing.T) {
	notAfter := time.Now().Add(48 * time.Hour).Truncate(time.Second)
	ca, err := NewCA("test-ca", notAfter)
	if err != nil {
		t.Fatal(err)
	}
	c := ca.Cert
	if !c.IsCA || !c.BasicConstraintsValid || c.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("IsCA %v, BasicConstraintsValid %v, KeyUsage %v", c.IsCA, c.BasicConstraintsValid, c.KeyUsage)
	}
	if c.Subject.CommonName != "test-ca" || !c.NotAfter.Equal(notAfter) {
		t.Errorf("subject %v, NotAfter %v, want test-ca and %v", c.Subject, c.NotAfter, notAfter)
	}
	if before := time.Since(c.NotBefore); before < backdate-time.Minute || before > backdate+time.Minute {
		t.Errorf("NotBefore %v before now, want %v", before, backdate)
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: pool(c), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("the CA does not verify against itself: %v", err)
	}
}

func TestIssue(t *testing.T) {
	ca := newCA(t)
	other := newCA(t)
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth} {
		pair, err := ca.Issue(Request{
			CommonName:    "alice",
			Organizations: []string{"tenants"},
			Usage:         usage,
			Hosts:         []string{"127.0.0.1", "node-1.example", "::1", "localhost"},
			NotAfter:      time.Now().Add(time.Hour),
		})
		if err != nil {
			t.Fatal(err)
		}
		c := pair.Cert
		if c.IsCA || c.Subject.CommonName != "alice" || !slices.Equal(c.Subject.Organization, []string{"tenants"}) {
			t.Errorf("usage %d: IsCA %v, subject %v", usage, c.IsCA, c.Subject)
		}
		if !slices.Equal(c.DNSNames, []string{"node-1.example", "localhost"}) ||
			len(c.IPAddresses) != 2 || !c.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) || !c.IPAddresses[1].Equal(net.IPv6loopback) {
			t.Errorf("usage %d: DNS names %v, IP addresses %v", usage, c.DNSNames, c.IPAddresses)
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: pool(ca.Cert), KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("usage %d: %v", usage, err)
		}
		wrong := x509.ExtKeyUsageServerAuth
		if usage == wrong {
			wrong = x509.ExtKeyUsageClientAuth
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: pool(ca.Cert), KeyUsages: []x509.ExtKeyUsage{wrong}}); err == nil {
			t.Errorf("usage %d: verifies for usage %d too", usage, wrong)
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: pool(other.Cert), KeyUsages: []x509.ExtKeyUsage{usage}}); err == nil {
			t.Errorf("usage %d: verifies against another CA", usage)
		}
	}
}

func TestSerialNumbersDiffer(t *testing.T) {
	ca := newCA(t)
	req := Request{CommonName: "alice", Usage: x509.ExtKeyUsageClientAuth, NotAfter: time.Now().Add(time.Hour)}
	a, err := ca.Issue(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ca.Issue(req)
	if err != nil {
		t.Fatal(err)
	}
	if a.Cert.SerialNumber.Cmp(b.Cert.SerialNumber) == 0 || a.Cert.SerialNumber.Cmp(ca.Cert.SerialNumber) == 0 {
		t.Errorf("serial numbers %v, %v and the CA's %v are not all different", a.Cert.SerialNumber, b.Cert.SerialNumber, ca.Cert.SerialNumber)
	}
}

func TestRefusals(t *testing.T) {
	ca := newCA(t)
	leaf, err := ca.Issue(Request{CommonName: "leaf", Usage: x509.ExtKeyUsageClientAuth, NotAfter: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	valid := Request{CommonName: "alice", Usage: x509.ExtKeyUsageClientAuth, NotAfter: time.Now().Add(time.Hour)}
	noUsage := valid
	noUsage.Usage = x509.ExtKeyUsageAny
	expired := valid
	expired.NotAfter = time.Now().Add(-2 * backdate)
	noExpiry := valid
	noExpiry.NotAfter = time.Time{}
	cases := []struct {
		name string
		make func() (*KeyPair, error)
		want string
	}{
		{"issued by a leaf", func() (*KeyPair, error) { return leaf.Issue(valid) }, "not a certificate authority"},
		{"usage any", func() (*KeyPair, error) { return ca.Issue(noUsage) }, "neither client nor server"},
		{"self-signed, usage any", func() (*KeyPair, error) { return SelfSigned(noUsage) }, "neither client nor server"},
		{"expired", func() (*KeyPair, error) { return ca.Issue(expired) }, "expire"},
		{"no expiry", func() (*KeyPair, error) { return SelfSigned(noExpiry) }, "expire"},
		{"expired CA", func() (*KeyPair, error) { return NewCA("ca", time.Now().Add(-2*backdate)) }, "expire"},
	}
	for _, tc := range cases {
		if _, err := tc.make(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

func TestSelfSigned(t *testing.T) {
	pair, err := SelfSigned(Request{
		CommonName: "kubelet",
		Usage:      x509.ExtKeyUsageServerAuth,
		Hosts:      []string{"10.0.0.7", "localhost"},
		NotAfter:   time.Now().Add(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	c := pair.Cert
	if c.IsCA || !bytes.Equal(c.RawIssuer, c.RawSubject) {
		t.Errorf("IsCA %v, issuer %v, subject %v", c.IsCA, c.Issuer, c.Subject)
	}
	if err := c.CheckSignatureFrom(c); err == nil {
		t.Error("a self-signed leaf can sign certificates")
	}
	for _, host := range []string{"10.0.0.7", "localhost"} {
		if _, err := c.Verify(x509.VerifyOptions{Roots: pool(c), DNSName: host}); err != nil {
			t.Errorf("%s: %v", host, err)
		}
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: pool(c), DNSName: "10.0.0.8"}); err == nil {
		t.Error("verifies for a host it does not name")
	}
}

func TestPEMAndTLS(t *testing.T) {
	ca := newCA(t)
	pair, err := ca.Issue(Request{CommonName: "alice", Usage: x509.ExtKeyUsageClientAuth, NotAfter: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := pair.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(keyPEM, []byte("-----BEGIN EC PRIVATE KEY-----\n")) || !bytes.HasPrefix(pair.CertPEM(), []byte("-----BEGIN CERTIFICATE-----\n")) {
		t.Errorf("PEM blocks:\n%s\n%s", pair.CertPEM(), keyPEM)
	}
	parsed, err := tls.X509KeyPair(pair.CertPEM(), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !parsed.Leaf.Equal(pair.Cert) || !pair.Key.Equal(parsed.PrivateKey) {
		t.Error("the PEM pair does not parse back to the same certificate and key")
	}
	direct := pair.TLSCertificate()
	if len(direct.Certificate) != 1 || !bytes.Equal(direct.Certificate[0], parsed.Certificate[0]) ||
		!direct.Leaf.Equal(pair.Cert) || !pair.Key.Equal(direct.PrivateKey) {
		t.Error("TLSCertificate differs from the parsed PEM pair")
	}
	if _, err := tls.X509KeyPair(ca.CertPEM(), keyPEM); err == nil {
		t.Error("the key of the client matches the CA's certificate")
	}
}

func TestWriteFilesAndLoad(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	ca := newCA(t)
	if err := ca.WriteFiles(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	for file, mode := range map[string]os.FileMode{certFile: 0o644, keyFile: 0o600} {
		info, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", file, info.Mode().Perm(), mode)
		}
	}
	loaded, err := LoadKeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Cert.Equal(ca.Cert) || !loaded.Key.Equal(ca.Key) {
		t.Fatal("the loaded pair differs from the written one")
	}
	// The loaded CA issues certificates that verify against the written one.
	pair, err := loaded.Issue(Request{CommonName: "alice", Usage: x509.ExtKeyUsageClientAuth, NotAfter: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pair.Cert.Verify(x509.VerifyOptions{Roots: pool(ca.Cert), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Error(err)
	}

	// Files that are not such a pair are refused.
	otherCert, otherKey := filepath.Join(dir, "other.crt"), filepath.Join(dir, "other.key")
	if err := newCA(t).WriteFiles(otherCert, otherKey); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, certFile, keyFile, want string
	}{
		{"absent", filepath.Join(dir, "absent.crt"), keyFile, "no such file"},
		{"not PEM", garbage, keyFile, "not PEM"},
		{"swapped", keyFile, certFile, `PEM block "EC PRIVATE KEY", want "CERTIFICATE"`},
		{"mismatched", certFile, otherKey, "is not the key of the certificate"},
	}
	for _, tc := range cases {
		if _, err := LoadKeyPair(tc.certFile, tc.keyFile); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

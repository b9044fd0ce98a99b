package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// readPEM returns the single PEM block of a file the command wrote, after
// checking its type and mode.
func readPEM(t *testing.T, path, blockType string, mode os.FileMode) []byte {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != mode {
		t.Errorf("%s: mode %v, want %v", path, got, mode)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, rest := pem.Decode(data)
	if block == nil || block.Type != blockType || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("%s: want one PEM block %q, got %q", path, blockType, data)
	}
	return data
}

// readCert checks the pair NAME.crt / NAME.key in dir and returns its
// certificate.
func readCert(t *testing.T, dir, name string) *x509.Certificate {
	t.Helper()
	certPEM := readPEM(t, filepath.Join(dir, name+".crt"), "CERTIFICATE", 0o644)
	keyPEM := readPEM(t, filepath.Join(dir, name+".key"), "EC PRIVATE KEY", 0o600)
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestRun(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	if err := run(dir, []string{"ca", "test-ca"}); err != nil {
		t.Fatal(err)
	}
	ca := readCert(t, dir, "test-ca")
	if !ca.IsCA || ca.Subject.CommonName != "test-ca" || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("CA: IsCA %v, subject %v, key usage %v", ca.IsCA, ca.Subject, ca.KeyUsage)
	}
	if until := time.Until(ca.NotAfter); until < validity-time.Hour || until > validity {
		t.Errorf("CA valid for %v more, want about %v", until, validity)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)

	if err := run(dir, []string{"cert", "admin", "-ca", "test-ca", "-cn", "kubernetes-admin", "-o", "system:masters", "-o", "tenants"}); err != nil {
		t.Fatal(err)
	}
	admin := readCert(t, dir, "admin")
	// The groups are a SET in the certificate, so their order is not kept.
	if admin.Subject.CommonName != "kubernetes-admin" || !slices.Equal(slices.Sorted(slices.Values(admin.Subject.Organization)), []string{"system:masters", "tenants"}) {
		t.Errorf("client subject %v", admin.Subject)
	}
	if _, err := admin.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate: %v", err)
	}
	if _, err := admin.Verify(x509.VerifyOptions{Roots: roots}); err == nil {
		t.Error("client certificate verifies for server authentication")
	}

	if err := run(dir, []string{"cert", "serving", "-ca", "test-ca", "-usage", "server", "-cn", "apiserver",
		"-san", "127.0.0.1", "-san", "::1", "-san", "localhost", "-san", "apiserver.example"}); err != nil {
		t.Fatal(err)
	}
	serving := readCert(t, dir, "serving")
	if !slices.Equal(serving.DNSNames, []string{"localhost", "apiserver.example"}) ||
		len(serving.IPAddresses) != 2 || !serving.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) || !serving.IPAddresses[1].Equal(net.IPv6loopback) {
		t.Errorf("serving certificate: DNS names %v, IP addresses %v", serving.DNSNames, serving.IPAddresses)
	}
	if _, err := serving.Verify(x509.VerifyOptions{Roots: roots, DNSName: "apiserver.example"}); err != nil {
		t.Errorf("serving certificate: %v", err)
	}

	// Existing files are kept as they are.
	before, err := os.ReadFile(filepath.Join(dir, "admin.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := run(dir, []string{"cert", "admin", "-ca", "test-ca", "-cn", "someone-else"}); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "admin.crt")); !bytes.Equal(before, after) {
		t.Error("an existing certificate was replaced")
	}
}

func TestRunRefuses(t *testing.T) {
	dir := t.TempDir()
	if err := run(dir, []string{"ca", "test-ca"}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"ca"}, "usage: pki"},
		{[]string{"key", "x"}, `unknown kind "key": want ca or cert`},
		{[]string{"cert", "x", "-cn", "someone"}, "cert needs -ca and -cn"},
		{[]string{"cert", "x", "-ca", "test-ca"}, "cert needs -ca and -cn"},
		{[]string{"cert", "x", "-ca", "absent-ca", "-cn", "someone"}, "load CA absent-ca"},
		{[]string{"cert", "x", "-ca", "test-ca", "-cn", "someone", "-usage", "peer"}, `-usage "peer": want client or server`},
	}
	for _, tc := range cases {
		err := run(dir, tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run %q: error %v, want one containing %q", tc.args, err, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x.crt")); err == nil {
		t.Error("a refused invocation wrote x.crt")
	}
}

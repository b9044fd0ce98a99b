// Command pki makes the certificates of a local development or test cluster:
// certificate authorities, and client or serving certificates they sign.
// Existing files are kept, so scripts can call it on every run. Never use
// these certificates outside a development machine.
//
//	pki -dir D ca NAME
//	pki -dir D cert NAME -ca CA -cn CN [-o ORG]... [-san NAME|IP]... [-usage client|server]
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const validity = 5 * 365 * 24 * time.Hour

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	dir := flag.String("dir", ".", "directory of the certificates")
	flag.Parse()
	if err := run(*dir, flag.Args()); err != nil {
		fmt.Fprintf(os.Stderr, "pki: %v\n", err)
		os.Exit(1)
	}
}

func run(dir string, args []string) error {
	if len(args) < 2 {
		return errors.New("usage: pki -dir D ca NAME | pki -dir D cert NAME -ca CA -cn CN [-o ORG] [-san S] [-usage client|server]")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	kind, name := args[0], args[1]
	if exists(filepath.Join(dir, name+".crt")) && exists(filepath.Join(dir, name+".key")) {
		return nil
	}
	switch kind {
	case "ca":
		return writeCA(dir, name)
	case "cert":
		fs := flag.NewFlagSet("cert", flag.ContinueOnError)
		ca := fs.String("ca", "", "name of the signing CA in the directory")
		cn := fs.String("cn", "", "common name (the user name of a client)")
		usage := fs.String("usage", "client", "client or server")
		var orgs, sans list
		fs.Var(&orgs, "o", "organization (a group of a client); repeatable")
		fs.Var(&sans, "san", "DNS name or IP of a server; repeatable")
		if err := fs.Parse(args[2:]); err != nil {
			return err
		}
		if *ca == "" || *cn == "" {
			return errors.New("cert needs -ca and -cn")
		}
		return writeCert(dir, name, *ca, *cn, *usage, orgs, sans)
	default:
		return fmt.Errorf("unknown kind %q: want ca or cert", kind)
	}
}

func writeCA(dir, name string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	return write(dir, name, der, key)
}

func writeCert(dir, name, caName, cn, usage string, orgs, sans []string) error {
	caCert, caKey, err := load(dir, caName)
	if err != nil {
		return fmt.Errorf("load CA %s: %w", caName, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn, Organization: orgs},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	switch usage {
	case "client":
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	case "server":
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	default:
		return fmt.Errorf("-usage %q: want client or server", usage)
	}
	for _, s := range sans {
		if ip := net.ParseIP(s); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, s)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	return write(dir, name, der, key)
}

func write(dir, name string, der []byte, key *ecdsa.PrivateKey) error {
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func load(dir, name string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, name+".crt"))
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, name+".key"))
	if err != nil {
		return nil, nil, err
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, nil, errors.New("not PEM")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	return cert, key, err
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// Command pki makes the certificates of a local development or test cluster:
// certificate authorities, and client or serving certificates they sign.
// Existing files are kept, so scripts can call it on every run. Never use
// these certificates outside a development machine.
//
//	pki -dir D ca NAME
//	pki -dir D cert NAME -ca CA -cn CN [-o ORG]... [-san NAME|IP]... [-usage client|server]
package main

import (
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"mindie.io/deployer/pkg/pki"
)

// validity is how long the certificates this command makes are valid.
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
	if certFile, keyFile := files(dir, name); exists(certFile) && exists(keyFile) {
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
	ca, err := pki.NewCA(name, time.Now().Add(validity))
	if err != nil {
		return err
	}
	return ca.WriteFiles(files(dir, name))
}

func writeCert(dir, name, caName, cn, usage string, orgs, sans []string) error {
	ca, err := pki.LoadKeyPair(files(dir, caName))
	if err != nil {
		return fmt.Errorf("load CA %s: %w", caName, err)
	}
	req := pki.Request{CommonName: cn, Organizations: orgs, Hosts: sans, NotAfter: time.Now().Add(validity)}
	switch usage {
	case "client":
		req.Usage = x509.ExtKeyUsageClientAuth
	case "server":
		req.Usage = x509.ExtKeyUsageServerAuth
	default:
		return fmt.Errorf("-usage %q: want client or server", usage)
	}
	pair, err := ca.Issue(req)
	if err != nil {
		return err
	}
	return pair.WriteFiles(files(dir, name))
}

// files are the certificate and key files of the pair name in dir.
func files(dir, name string) (certFile, keyFile string) {
	return filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

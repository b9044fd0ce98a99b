// Command httpcheck exits 0 when a URL answers 200 OK, and 1 otherwise. The
// local cluster's scripts use it to wait for components, so that they need
// no curl on the machine. It refuses every address but loopback.
//
//	httpcheck [-cacert FILE] [-timeout 2s] URL
package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"
)

func main() {
	caFile := flag.String("cacert", "", "PEM file of the CA that signed the server's certificate")
	timeout := flag.Duration("timeout", 2*time.Second, "how long one request may take")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: httpcheck [-cacert FILE] [-timeout 2s] URL")
		os.Exit(2)
	}
	if err := check(flag.Arg(0), *caFile, *timeout); err != nil {
		fmt.Fprintf(os.Stderr, "httpcheck: %v\n", err)
		os.Exit(1)
	}
}

func check(rawURL, caFile string, timeout time.Duration) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("%s is not a loopback address", u.Hostname())
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%s holds no PEM certificate", caFile)
		}
		tlsConfig.RootCAs = pool
	}
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: tlsConfig}}
	resp, err := client.Get(rawURL)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", rawURL, resp.Status)
	}
	return nil
}

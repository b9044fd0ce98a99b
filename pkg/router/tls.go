package router

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/util/cert"
)

// servingTLS is the TLS configuration Serve uses unless InsecureHTTP: the
// --tls-cert-file/--tls-key-file pair, re-read when it changes, or else a
// self-signed pair made now for the host of Listen.
func servingTLS(cfg Config, log logr.Logger) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLSCertFile != "" {
		files, err := loadCertFiles(cfg.TLSCertFile, cfg.TLSKeyFile, log)
		if err != nil {
			return nil, err
		}
		conf.GetCertificate = files.get
		log.Info("serving HTTPS", "certFile", cfg.TLSCertFile, "keyFile", cfg.TLSKeyFile)
		return conf, nil
	}
	pair, host, err := selfSignedCertificate(cfg.Listen)
	if err != nil {
		return nil, err
	}
	conf.Certificates = []tls.Certificate{pair}
	log.Info("serving HTTPS with a self-signed certificate made at start (clients cannot verify it; set --tls-cert-file for one they can)", "host", host)
	return conf, nil
}

// selfSignedCertificate makes a pair for the host of listen (the machine's
// name when it is every interface), and for localhost and the loopback
// addresses.
func selfSignedCertificate(listen string) (tls.Certificate, string, error) {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("--listen=%s: %w", listen, err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host, err = os.Hostname()
		if err != nil || host == "" {
			host = "localhost"
		}
	}
	certPEM, keyPEM, err := cert.GenerateSelfSignedCertKey(host,
		[]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, []string{"localhost"})
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("make a self-signed serving certificate for %s: %w", host, err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, "", fmt.Errorf("the self-signed serving certificate for %s: %w", host, err)
	}
	return pair, host, nil
}

// certFiles serves a certificate and key from files that may be replaced
// while the router runs (a mounted Secret renewed by cert-manager): at
// most every certReloadInterval, a handshake checks their modification
// times and loads the new pair. A pair that does not load (the files caught
// mid-update) is logged and the old one kept.
type certFiles struct {
	certFile, keyFile string
	log               logr.Logger

	mu              sync.Mutex
	pair            *tls.Certificate
	certMod, keyMod time.Time
	checked         time.Time
}

// loadCertFiles loads the pair, failing if it does not load now.
func loadCertFiles(certFile, keyFile string, log logr.Logger) (*certFiles, error) {
	c := &certFiles{certFile: certFile, keyFile: keyFile, log: log}
	if err := c.reloadLocked(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *certFiles) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.checked) >= certReloadInterval {
		if err := c.reloadLocked(); err != nil {
			c.log.Error(err, "keeping the serving certificate loaded before")
		}
	}
	return c.pair, nil
}

// reloadLocked loads the pair if either file changed since it was loaded.
func (c *certFiles) reloadLocked() error {
	c.checked = time.Now()
	certInfo, err := os.Stat(c.certFile)
	if err != nil {
		return fmt.Errorf("--tls-cert-file: %w", err)
	}
	keyInfo, err := os.Stat(c.keyFile)
	if err != nil {
		return fmt.Errorf("--tls-key-file: %w", err)
	}
	if c.pair != nil && certInfo.ModTime().Equal(c.certMod) && keyInfo.ModTime().Equal(c.keyMod) {
		return nil
	}
	pair, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("--tls-cert-file %s and --tls-key-file %s: %w", c.certFile, c.keyFile, err)
	}
	if c.pair != nil {
		c.log.Info("serving certificate reloaded", "certFile", c.certFile)
	}
	c.pair, c.certMod, c.keyMod = &pair, certInfo.ModTime(), keyInfo.ModTime()
	return nil
}

// instanceTLS is the TLS configuration of the connections to instances that
// serve HTTPS: verified against the CA certificates of
// --instance-ca-file, else the system roots, for the host of the URL or
// --instance-tls-server-name; --instance-insecure-skip-verify verifies
// nothing. The CA file is read once, at start.
func instanceTLS(cfg Config, log logr.Logger) (*tls.Config, error) {
	conf := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         cfg.InstanceTLSServerName,
		InsecureSkipVerify: cfg.InstanceInsecureSkipVerify, //nolint:gosec // only when asked for explicitly
	}
	switch {
	case cfg.InstanceCAFile != "":
		data, err := os.ReadFile(cfg.InstanceCAFile)
		if err != nil {
			return nil, fmt.Errorf("--instance-ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("--instance-ca-file %s: no PEM certificate in it", cfg.InstanceCAFile)
		}
		conf.RootCAs = pool
		log.V(1).Info("HTTPS instances are verified with the CA certificates of a file", "file", cfg.InstanceCAFile, "serverName", cfg.InstanceTLSServerName)
	case cfg.InstanceInsecureSkipVerify:
		log.Info("HTTPS instances' certificates are NOT verified (--instance-insecure-skip-verify)")
	}
	return conf, nil
}

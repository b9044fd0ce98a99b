// Package pki makes X.509 certificates with ECDSA P-256 keys: certificate
// authorities, the client and serving certificates they issue, and
// self-signed serving certificates. It suits development clusters, tests
// and serving certificates a process makes for itself at start; it keeps no
// records and revokes nothing, so it is no CA to run for real users.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"time"
)

const (
	// certBlockType and keyBlockType are the PEM block types of a
	// certificate and of its key (SEC 1, as x509.MarshalECPrivateKey
	// writes it).
	certBlockType = "CERTIFICATE"
	keyBlockType  = "EC PRIVATE KEY"

	// backdate is how long before now a certificate becomes valid, so that
	// machines whose clocks lag a little accept it at once.
	backdate = time.Hour

	// serialBits is the size of the random serial numbers.
	serialBits = 128

	// certFileMode and keyFileMode are the permissions of the files
	// WriteFiles writes: the certificate is public, the key is not.
	certFileMode = 0o644
	keyFileMode  = 0o600
)

// KeyPair is a certificate and its private key.
type KeyPair struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// Request describes a certificate to make.
type Request struct {
	// CommonName is the subject's common name: a user name for a client
	// certificate, a name for people to read for a serving one.
	CommonName string
	// Organizations are the subject's organizations: a client's groups.
	Organizations []string
	// Usage is what the certificate is for: x509.ExtKeyUsageClientAuth or
	// x509.ExtKeyUsageServerAuth.
	Usage x509.ExtKeyUsage
	// Hosts are the IP addresses and DNS names a serving certificate is
	// valid for.
	Hosts []string
	// NotAfter is when the certificate expires.
	NotAfter time.Time
}

// NewCA makes a self-signed certificate authority valid until notAfter.
func NewCA(commonName string, notAfter time.Time) (*KeyPair, error) {
	tmpl, err := template(commonName, notAfter)
	if err != nil {
		return nil, err
	}
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	tmpl.BasicConstraintsValid = true
	tmpl.IsCA = true
	return create(tmpl, nil)
}

// Issue makes a certificate for req signed by the certificate authority ca.
func (ca *KeyPair) Issue(req Request) (*KeyPair, error) {
	if !ca.Cert.IsCA {
		return nil, fmt.Errorf("%s is not a certificate authority", ca.Cert.Subject.CommonName)
	}
	tmpl, err := req.template()
	if err != nil {
		return nil, err
	}
	return create(tmpl, ca)
}

// SelfSigned makes a certificate for req signed by its own key.
func SelfSigned(req Request) (*KeyPair, error) {
	tmpl, err := req.template()
	if err != nil {
		return nil, err
	}
	return create(tmpl, nil)
}

// template is the certificate req asks for, but for its key.
func (req Request) template() (*x509.Certificate, error) {
	if req.Usage != x509.ExtKeyUsageClientAuth && req.Usage != x509.ExtKeyUsageServerAuth {
		return nil, fmt.Errorf("certificate for %q: usage %d is neither client nor server authentication", req.CommonName, req.Usage)
	}
	tmpl, err := template(req.CommonName, req.NotAfter)
	if err != nil {
		return nil, err
	}
	tmpl.Subject.Organization = req.Organizations
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{req.Usage}
	for _, h := range req.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return tmpl, nil
}

// template is what every certificate has: a random serial number, a
// subject and a validity from a little before now to notAfter.
func template(commonName string, notAfter time.Time) (*x509.Certificate, error) {
	notBefore := time.Now().Add(-backdate)
	if !notAfter.After(notBefore) {
		return nil, fmt.Errorf("certificate for %q: it would expire (%v) before it became valid (%v)", commonName, notAfter, notBefore)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), serialBits))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: commonName},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
	}, nil
}

// create makes a new key and the certificate tmpl for it, signed by issuer,
// or by the new key itself when issuer is nil.
func create(tmpl *x509.Certificate, issuer *KeyPair) (*KeyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	parent, signer := tmpl, key
	if issuer != nil {
		parent, signer = issuer.Cert, issuer.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		return nil, fmt.Errorf("certificate for %q: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &KeyPair{Cert: cert, Key: key}, nil
}

// CertPEM is the certificate in PEM.
func (p *KeyPair) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: certBlockType, Bytes: p.Cert.Raw})
}

// KeyPEM is the private key in PEM (SEC 1, "EC PRIVATE KEY").
func (p *KeyPair) KeyPEM() ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(p.Key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: keyBlockType, Bytes: der}), nil
}

// TLSCertificate is the pair for a tls.Config.
func (p *KeyPair) TLSCertificate() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{p.Cert.Raw}, PrivateKey: p.Key, Leaf: p.Cert}
}

// WriteFiles writes the key to keyFile, readable by its owner only, and the
// certificate to certFile, readable by all, both in PEM. It replaces files
// that exist.
func (p *KeyPair) WriteFiles(certFile, keyFile string) error {
	keyPEM, err := p.KeyPEM()
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, keyPEM, keyFileMode); err != nil {
		return err
	}
	return os.WriteFile(certFile, p.CertPEM(), certFileMode)
}

// LoadKeyPair reads a pair that WriteFiles wrote.
func LoadKeyPair(certFile, keyFile string) (*KeyPair, error) {
	cert, err := readPEM(certFile, certBlockType)
	if err != nil {
		return nil, err
	}
	key, err := readPEM(keyFile, keyBlockType)
	if err != nil {
		return nil, err
	}
	p := &KeyPair{}
	if p.Cert, err = x509.ParseCertificate(cert); err != nil {
		return nil, fmt.Errorf("%s: %w", certFile, err)
	}
	if p.Key, err = x509.ParseECPrivateKey(key); err != nil {
		return nil, fmt.Errorf("%s: %w", keyFile, err)
	}
	if !p.Key.PublicKey.Equal(p.Cert.PublicKey) {
		return nil, fmt.Errorf("the key in %s is not the key of the certificate in %s", keyFile, certFile)
	}
	return p, nil
}

// readPEM returns the bytes of the first PEM block of file, which must be
// of type blockType.
func readPEM(file, blockType string) ([]byte, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	switch {
	case block == nil:
		return nil, fmt.Errorf("%s: not PEM", file)
	case block.Type != blockType:
		return nil, fmt.Errorf("%s: PEM block %q, want %q", file, block.Type, blockType)
	}
	return block.Bytes, nil
}

// Command devcerts writes a throw-away certificate authority and a client
// certificate in the group system:masters, plus a kubeconfig that uses them,
// so a developer can talk to a standalone mindie-apiserver with kubectl or
// curl. Never use these outside a development machine.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

func main() {
	dir := flag.String("dir", "_output/local", "directory to write ca.crt, admin.crt, admin.key and kubeconfig into")
	server := flag.String("server", "https://127.0.0.1:8443", "URL of the server the kubeconfig points at")
	serverCA := flag.String("server-ca", "", "file of the CA that signed the server's serving certificate (its self-signed certificate)")
	flag.Parse()
	if err := run(*dir, *server, *serverCA); err != nil {
		fmt.Fprintf(os.Stderr, "devcerts: %v\n", err)
		os.Exit(1)
	}
}

func run(dir, server, serverCA string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTemplate := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mindie-dev-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	clientTemplate := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "dev-admin", Organization: []string{"system:masters"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	clientDER, err := x509.CreateCertificate(rand.Reader, clientTemplate, caCert, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"ca.crt":    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		"admin.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: clientDER}),
		"admin.key": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return err
		}
	}
	cluster := &clientcmdapi.Cluster{Server: server}
	if serverCA != "" {
		cluster.CertificateAuthority, _ = filepath.Abs(serverCA)
	}
	abs := func(name string) string { p, _ := filepath.Abs(filepath.Join(dir, name)); return p }
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["mindie"] = cluster
	cfg.AuthInfos["dev-admin"] = &clientcmdapi.AuthInfo{ClientCertificate: abs("admin.crt"), ClientKey: abs("admin.key")}
	cfg.Contexts["mindie"] = &clientcmdapi.Context{Cluster: "mindie", AuthInfo: "dev-admin", Namespace: "default"}
	cfg.CurrentContext = "mindie"
	return clientcmd.WriteToFile(*cfg, filepath.Join(dir, "kubeconfig"))
}

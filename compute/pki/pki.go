// Package pki is the federation's certificate authority and the mutual TLS
// between the coordinator and the nodes. Identities are URIs in the
// certificates: unseen://coordinator and unseen://node/<department>. A node
// accepts only the coordinator as a client; the coordinator accepts a node
// only if its certificate names the department it is configured as. Keys
// are ECDSA P-256 and are written with mode 0600.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// CoordinatorURI is the coordinator's identity.
const CoordinatorURI = "unseen://coordinator"

// NodeURI is the identity of department dept's node.
func NodeURI(dept string) string { return "unseen://node/" + dept }

// Files of a CA directory.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
)

var ErrIdentity = errors.New("pki: peer certificate does not carry the expected identity")

// Init creates a new CA in dir (ca.crt, ca.key 0600). It refuses to
// overwrite an existing CA.
func Init(dir, name string, validity time.Duration) error {
	if _, err := os.Stat(filepath.Join(dir, CAKeyFile)); err == nil {
		return fmt.Errorf("pki: %s already holds a CA key; refusing to overwrite it", dir)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"Unseen federation"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return writePair(filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile), der, key)
}

// Issue signs a certificate for identity (CoordinatorURI or NodeURI(dept))
// valid for the given hosts (DNS names or IPs the holder serves on), and
// writes <out>.crt and <out>.key (0600).
func Issue(caDir, identity string, hosts []string, validity time.Duration, out string) error {
	caCert, caKey, err := loadCA(caDir)
	if err != nil {
		return err
	}
	u, err := url.Parse(identity)
	if err != nil || u.Scheme != "unseen" {
		return fmt.Errorf("pki: identity %q is not an unseen:// URI", identity)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: identity, Organization: []string{"Unseen federation"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{u},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o700); err != nil {
		return err
	}
	return writePair(out+".crt", out+".key", der, key)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err)
	}
	return n
}

func writePair(certPath, keyPath string, der []byte, key *ecdsa.PrivateKey) error {
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := writeFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return err
	}
	return writeFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func writeFile(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("pki: %w (refusing to overwrite)", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func loadCA(dir string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, nil, fmt.Errorf("pki: loading the CA from %s: %w", dir, err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, nil, err
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok || !cert.IsCA {
		return nil, nil, errors.New("pki: not an Unseen CA")
	}
	return cert, key, nil
}

// Files names a holder's CA certificate, certificate and key.
type Files struct {
	CA   string `yaml:"ca"`
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

func (f Files) load() (*x509.CertPool, tls.Certificate, error) {
	pem, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("pki: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, tls.Certificate{}, fmt.Errorf("pki: %s holds no certificate", f.CA)
	}
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("pki: %w", err)
	}
	return pool, pair, nil
}

// hasURI reports whether the verified leaf names identity.
func hasURI(cs tls.ConnectionState, identity string) error {
	if len(cs.PeerCertificates) == 0 {
		return fmt.Errorf("%w: no certificate", ErrIdentity)
	}
	for _, u := range cs.PeerCertificates[0].URIs {
		if u.String() == identity {
			return nil
		}
	}
	return fmt.Errorf("%w: want %s, got %v", ErrIdentity, identity, cs.PeerCertificates[0].URIs)
}

// NodeServerConfig is a node's TLS: it presents its certificate and accepts
// only clients whose certificate, signed by the federation CA, names the
// coordinator.
func NodeServerConfig(f Files) (*tls.Config, error) {
	pool, pair, err := f.load()
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:       tls.VersionTLS13,
		Certificates:     []tls.Certificate{pair},
		ClientCAs:        pool,
		ClientAuth:       tls.RequireAndVerifyClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error { return hasURI(cs, CoordinatorURI) },
	}, nil
}

// CoordinatorClientConfig is the coordinator's TLS towards department
// dept's node: it presents the coordinator's certificate and accepts the
// server only if its certificate names that department.
func CoordinatorClientConfig(f Files, dept string) (*tls.Config, error) {
	pool, pair, err := f.load()
	if err != nil {
		return nil, err
	}
	want := NodeURI(dept)
	return &tls.Config{
		MinVersion:       tls.VersionTLS13,
		Certificates:     []tls.Certificate{pair},
		RootCAs:          pool,
		VerifyConnection: func(cs tls.ConnectionState) error { return hasURI(cs, want) },
	}, nil
}

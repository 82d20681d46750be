// Package testcerts makes the certificates of the TLS tests, in the test, with crypto/x509 and
// ECDSA P-256 keys: a CA, server certificates for 127.0.0.1 and localhost, client certificates
// (good, expired, and from another CA). Each is written as PEM files in a test's directory so
// that the server's file options, the gear commands and third-party clients (Perl, openssl) read
// the same ones. Only tests import it.
package testcerts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a certificate authority made for a test.
type CA struct {
	Cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	CertPEM []byte
	File    string // its certificate, PEM
	dir     string
}

// Pair is a certificate and its key, in memory and as PEM files.
type Pair struct {
	Cert     *x509.Certificate
	TLS      tls.Certificate
	CertFile string
	KeyFile  string
}

// NewCA makes a CA named name and writes its certificate to DIR/name.crt, DIR being a directory
// of the test's.
func NewCA(tb testing.TB, dir, name string) *CA {
	tb.Helper()
	key := newKey(tb)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(tb),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatalf("testcerts: CA: %v", err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &CA{Cert: cert, key: key, CertPEM: pemBlock("CERTIFICATE", der), dir: dir}
	ca.File = writeFile(tb, dir, name+".crt", ca.CertPEM)
	return ca
}

// Pool returns a pool holding only this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Server issues a server certificate for 127.0.0.1, ::1 and localhost (and name as its common
// name), valid from an hour ago for a day, written to DIR/name.crt and DIR/name.key.
func (ca *CA) Server(tb testing.TB, name string) *Pair {
	tb.Helper()
	return ca.issue(tb, name, x509.ExtKeyUsageServerAuth, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
}

// Client issues a client certificate with common name name, valid from an hour ago for a day.
func (ca *CA) Client(tb testing.TB, name string) *Pair {
	tb.Helper()
	return ca.issue(tb, name, x509.ExtKeyUsageClientAuth, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
}

// ClientWithNames issues a client certificate with common name name and these DNS names as its
// subject alternative names, valid from an hour ago for a day.
func (ca *CA) ClientWithNames(tb testing.TB, name string, dnsNames ...string) *Pair {
	tb.Helper()
	return ca.issue(tb, name, x509.ExtKeyUsageClientAuth, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour), dnsNames...)
}

// ExpiredClient issues a client certificate that expired an hour ago.
func (ca *CA) ExpiredClient(tb testing.TB, name string) *Pair {
	tb.Helper()
	return ca.issue(tb, name, x509.ExtKeyUsageClientAuth, time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour))
}

// ExpiredServer issues a server certificate that expired an hour ago.
func (ca *CA) ExpiredServer(tb testing.TB, name string) *Pair {
	tb.Helper()
	return ca.issue(tb, name, x509.ExtKeyUsageServerAuth, time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour))
}

func (ca *CA) issue(tb testing.TB, name string, usage x509.ExtKeyUsage, from, to time.Time, dnsNames ...string) *Pair {
	tb.Helper()
	key := newKey(tb)
	tmpl := &x509.Certificate{
		SerialNumber: serial(tb),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    from,
		NotAfter:     to,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		DNSNames:     dnsNames,
	}
	if usage == x509.ExtKeyUsageServerAuth {
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		tb.Fatalf("testcerts: %s: %v", name, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatalf("testcerts: %s key: %v", name, err)
	}
	certPEM, keyPEM := pemBlock("CERTIFICATE", der), pemBlock("PRIVATE KEY", keyDER)
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		tb.Fatalf("testcerts: %s: %v", name, err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &Pair{
		Cert:     cert,
		TLS:      pair,
		CertFile: writeFile(tb, ca.dir, name+".crt", certPEM),
		KeyFile:  writeFile(tb, ca.dir, name+".key", keyPEM),
	}
}

// CopyTo writes the pair's certificate and key to certFile and keyFile (a rotation, in a test).
func (p *Pair) CopyTo(tb testing.TB, certFile, keyFile string) {
	tb.Helper()
	for from, to := range map[string]string{p.CertFile: certFile, p.KeyFile: keyFile} {
		data, err := os.ReadFile(from)
		if err == nil {
			err = os.WriteFile(to, data, 0o600)
		}
		if err != nil {
			tb.Fatalf("testcerts: %v", err)
		}
	}
}

// ClientConfig is a client's TLS configuration trusting ca, presenting pair when it is not nil.
func ClientConfig(ca *CA, pair *Pair) *tls.Config {
	cfg := &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}
	if pair != nil {
		cfg.Certificates = []tls.Certificate{pair.TLS}
	}
	return cfg
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("testcerts: key: %v", err)
	}
	return key
}

func serial(tb testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		tb.Fatalf("testcerts: serial: %v", err)
	}
	return n
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func writeFile(tb testing.TB, dir, name string, data []byte) string {
	tb.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatalf("testcerts: %v", err)
	}
	return path
}

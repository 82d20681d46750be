// Package tlsfiles reads the PEM files behind Gear's TLS options — a certificate with its key, and a
// CA bundle — the one way every part of Gear reads them: the server (--tls-cert, --tls-key,
// --tls-ca, reloaded on SIGHUP) and the client commands (--tls-ca, --tls-cert, --tls-key,
// --tls-server-name).
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"
)

// MinVersion is the oldest TLS version Gear speaks, as server and as client.
const MinVersion = tls.VersionTLS12

// KeyPair reads a certificate (with its chain, leaf first) and its private key. It refuses a pair
// whose key does not match, and a leaf certificate that is expired or not yet valid at now: served,
// it would fail every handshake, and a reload should rather keep the certificate that works.
func KeyPair(certFile, keyFile string, now time.Time) (tls.Certificate, error) {
	if certFile == "" || keyFile == "" {
		return tls.Certificate{}, errors.New("a certificate needs both its file and its key file")
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("key: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certificate %s with key %s: %w", certFile, keyFile, err)
	}
	leaf := pair.Leaf // set by X509KeyPair since Go 1.23
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return tls.Certificate{}, fmt.Errorf("certificate %s: %w", certFile, err)
		}
		pair.Leaf = leaf
	}
	if now.After(leaf.NotAfter) {
		return tls.Certificate{}, fmt.Errorf("certificate %s expired at %s", certFile, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		return tls.Certificate{}, fmt.Errorf("certificate %s is not valid before %s", certFile, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return pair, nil
}

// CertPool reads a CA bundle: one or more PEM certificates. A file with none is an error, so a
// wrong path or a key given as the CA is noticed at start.
func CertPool(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("CA file %s: no PEM certificate in it", file)
	}
	return pool, nil
}

// Client are the TLS settings of a client command.
type Client struct {
	CAFile     string // verify the server against these CAs (default: the system's)
	CertFile   string // present this certificate (with KeyFile) when the server asks for one
	KeyFile    string
	ServerName string // the name the server's certificate must carry (default: the host dialled)
}

// Config returns the tls.Config of c, TLS 1.2 at least.
func (c Client) Config() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: MinVersion, ServerName: c.ServerName}
	if c.CAFile != "" {
		pool, err := CertPool(c.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if c.CertFile != "" || c.KeyFile != "" {
		pair, err := KeyPair(c.CertFile, c.KeyFile, time.Now())
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

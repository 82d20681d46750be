package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/gearhq/gear/internal/serveraddr"
	"github.com/gearhq/gear/internal/tlsfiles"
	"github.com/gearhq/gear/server"
)

// tlsClientFlags are the TLS options of every command that connects to job servers (client,
// worker, admin, bench).
type tlsClientFlags struct {
	on bool
	tlsfiles.Client
}

func (f *tlsClientFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&f.on, "tls", false, "connect over TLS (implied by the other --tls options; a tls://HOST:PORT server alone is reached over TLS too)")
	fs.StringVar(&f.CAFile, "tls-ca", "", "verify servers against the CA certificates in this PEM file (default: the system's CAs)")
	fs.StringVar(&f.CertFile, "tls-cert", "", "client certificate (PEM, with --tls-key) for servers that require one")
	fs.StringVar(&f.KeyFile, "tls-key", "", "private key (PEM) of --tls-cert")
	fs.StringVar(&f.ServerName, "tls-server-name", "", "name the server's certificate must carry (default: the host connected to)")
}

// config returns the TLS configuration the flags ask for, nil when none was given.
func (f *tlsClientFlags) config() (*tls.Config, error) {
	if !f.on && f.Client == (tlsfiles.Client{}) {
		return nil, nil
	}
	return f.Client.Config()
}

// tlsServerFlags are gear server's TLS options.
type tlsServerFlags struct {
	cert, key, ca string
	listen        tlsListenFlag
}

func (f *tlsServerFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.cert, "tls-cert", "", "serve TLS with this certificate (PEM, leaf first; with --tls-key): on the --tls-listen addresses if given, else on the --listen/--port ones; SIGHUP reloads it")
	fs.StringVar(&f.key, "tls-key", "", "private key (PEM) of --tls-cert")
	fs.StringVar(&f.ca, "tls-ca", "", "require of TLS clients a certificate these CAs (PEM) verify (mutual TLS); SIGHUP reloads it")
	fs.Var(&f.listen, "tls-listen", "TLS listening address HOST:PORT (a bare :PORT binds loopback; repeatable); the --listen ones then stay plain")
}

// files loads the certificate files; nil without --tls-cert (the other options then are an error).
func (f *tlsServerFlags) files() (*server.TLSFiles, error) {
	if f.cert == "" {
		for name, v := range map[string]bool{"--tls-key": f.key != "", "--tls-ca": f.ca != "", "--tls-listen": f.listen.given()} {
			if v {
				return nil, fmt.Errorf("%s needs --tls-cert", name)
			}
		}
		return nil, nil
	}
	if f.key == "" {
		return nil, errors.New("--tls-cert needs --tls-key")
	}
	return server.LoadTLSFiles(f.cert, f.key, f.ca)
}

// apply sets the server's TLS options: with --tls-listen, TLS listeners beside the plain ones;
// without, the --listen/--port listeners become TLS.
func (f *tlsServerFlags) apply(opts *server.Options, files *server.TLSFiles) {
	if files == nil {
		return
	}
	opts.TLS = files.Config()
	if f.listen.given() {
		opts.TLSListen = f.listen.addrs
		return
	}
	opts.TLSListen, opts.Listen = opts.Listen, nil
}

// tlsListenFlag is --tls-listen: HOST:PORT or :PORT (loopback), repeatable or comma-separated.
type tlsListenFlag struct{ addrs []string }

func (f *tlsListenFlag) String() string {
	if f == nil {
		return ""
	}
	return strings.Join(f.addrs, ",")
}

func (f *tlsListenFlag) Set(v string) error {
	var out []string
	for s := range strings.SplitSeq(v, ",") {
		s = strings.TrimSpace(s)
		if strings.HasPrefix(s, ":") {
			s = "127.0.0.1" + s
		}
		a, err := serveraddr.Split(s)
		if err != nil {
			return err
		}
		if a.Port == "" || a.TLS {
			return fmt.Errorf("TLS listening address %q: want HOST:PORT or :PORT", s)
		}
		out = append(out, a.WithPort(""))
	}
	f.addrs = append(f.addrs, out...)
	return nil
}

func (f *tlsListenFlag) given() bool { return len(f.addrs) > 0 }

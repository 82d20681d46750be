package interop

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/gearhq/gear/internal/testcerts"
	"github.com/gearhq/gear/server"
)

// tlsGear is a Gear server with a TLS listener beside its plain one (which the test's own admin
// queries use), and the certificates of the test.
type tlsGear struct {
	*gear
	tlsPort string
	ca      *testcerts.CA
}

// startTLSGear starts a server whose TLS listener presents a certificate for 127.0.0.1 of a test
// CA; with mutual, it requires client certificates of that CA.
func startTLSGear(t *testing.T, mutual bool) *tlsGear {
	t.Helper()
	ca := testcerts.NewCA(t, t.TempDir(), "ca")
	crt := ca.Server(t, "server")
	caFile := ""
	if mutual {
		caFile = ca.File
	}
	files, err := server.LoadTLSFiles(crt.CertFile, crt.KeyFile, caFile)
	if err != nil {
		t.Fatal(err)
	}
	g := startGear(t, func(o *server.Options) { o.TLS = files.Config() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := g.srv.ServeTLS(ln); err != nil {
		ln.Close()
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return &tlsGear{gear: g, tlsPort: port, ca: ca}
}

// perlTLSResult is what testdata/tls.pl client prints.
type perlTLSResult struct {
	Result   *string `json:"result"`
	Error    string  `json:"error"`
	SSLError string  `json:"ssl_error"`
}

// perlTLS runs testdata/tls.pl client against g's TLS port with the CA and, when cert is not nil,
// a client certificate.
func (g *tlsGear) perlTLS(t *testing.T, fn, data string, cert *testcerts.Pair) perlTLSResult {
	t.Helper()
	args := append([]string{testdata(t, "tls.pl"), "client", g.host, g.tlsPort, fn, data, g.ca.File}, pairArgs(cert)...)
	out, errOut, err := run(t, nil, "perl", args...)
	if err != nil {
		t.Fatalf("perl tls.pl client: %v\nstdout: %s\nstderr: %s", err, out, errOut)
	}
	var r perlTLSResult
	decodeJSON(t, "tls.pl client", out, &r)
	return r
}

func pairArgs(p *testcerts.Pair) []string {
	if p == nil {
		return nil
	}
	return []string{p.CertFile, p.KeyFile}
}

// Perl's Gearman::Worker serves and Gearman::Client submits over TLS (IO::Socket::SSL, the
// server's certificate verified), and with mutual TLS presenting their certificates; a Perl
// client with no certificate, one of another CA or an expired one gets no job through.
func TestTLS_Perl(t *testing.T) {
	t.Parallel()
	needPerl(t)
	if err := probe("perl", "-MIO::Socket::SSL", "-e1"); err != nil {
		t.Fatalf("interop: Perl has no IO::Socket::SSL (install libio-socket-ssl-perl): %v", err)
	}
	for _, mutual := range []bool{false, true} {
		name := map[bool]string{false: "tls", true: "mutual"}[mutual]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			g := startTLSGear(t, mutual)
			fn := prefix(t) + ".rev"
			var cert *testcerts.Pair
			if mutual {
				cert = g.ca.Client(t, "perl")
			}
			start(t, nil, "perl", append([]string{testdata(t, "tls.pl"), "worker", g.host, g.tlsPort, fn, "perl-tls",
				g.ca.File}, pairArgs(cert)...)...)
			g.waitWorkers(t, 1, fn)
			if r := g.perlTLS(t, fn, "over tls", cert); r.Result == nil || *r.Result != "slt revo" {
				t.Fatalf("do_task over TLS: %s (ssl error %q)", show(r.Result), r.SSLError)
			}
			if !mutual {
				return
			}
			for _, tc := range []struct {
				name string
				cert *testcerts.Pair
			}{
				{"no certificate", nil},
				{"another CA", testcerts.NewCA(t, t.TempDir(), "other").Client(t, "stranger")},
				{"expired", g.ca.ExpiredClient(t, "expired")},
			} {
				t.Run(tc.name, func(t *testing.T) {
					before := g.srv.Stats().TLSHandshakeErrors
					if r := g.perlTLS(t, fn, "refused", tc.cert); r.Result != nil || r.Error == "" {
						t.Fatalf("the job ran: %s, error %q", show(r.Result), r.Error)
					}
					waitFor(t, "the refused handshake to be counted", func() (bool, string) {
						n := g.srv.Stats().TLSHandshakeErrors
						return n > before, fmt.Sprint(n)
					})
				})
			}
		})
	}
}

// openssl s_client completes a handshake with the server — verifying its certificate and address
// — and speaks the admin protocol through it; with mutual TLS it does so presenting a client
// certificate, and without one it is refused.
func TestTLS_OpenSSLClient(t *testing.T) {
	t.Parallel()
	needTools(t, "openssl")
	for _, mutual := range []bool{false, true} {
		name := map[bool]string{false: "tls", true: "mutual"}[mutual]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			g := startTLSGear(t, mutual)
			var cert *testcerts.Pair
			if mutual {
				cert = g.ca.Client(t, "openssl")
			}
			sc := g.sClient(t, cert)
			waitFor(t, "the version over openssl s_client", func() (bool, string) {
				if sc.exited() {
					t.Fatalf("openssl s_client exited: %v\nstdout: %s\nstderr: %s", sc.err, sc.stdout.String(), sc.stderr.String())
				}
				return strings.Contains(sc.stdout.String(), "OK "), sc.stdout.String() + sc.stderr.String()
			})
			if e := sc.stderr.String(); !strings.Contains(e, "Verification: OK") || !strings.Contains(e, "Protocol version: TLSv1.3") {
				t.Fatalf("openssl s_client did not report a verified TLS 1.3 session:\n%s", e)
			}
			if !mutual {
				return
			}
			bare := g.sClient(t, nil)
			bare.wait(t) // the server ends the session
			if out := bare.stdout.String(); strings.Contains(out, "OK ") {
				t.Fatalf("openssl s_client without a certificate was answered: %q", out)
			}
			if e := bare.stderr.String(); !strings.Contains(e, "alert") {
				t.Fatalf("openssl s_client without a certificate: no alert reported:\n%s", e)
			}
		})
	}
}

// sClient starts `openssl s_client` on g's TLS port, verifying the server against the test CA and
// 127.0.0.1, presenting cert when it is not nil, and sends the admin line "version".
func (g *tlsGear) sClient(t *testing.T, cert *testcerts.Pair) *proc {
	t.Helper()
	args := []string{"s_client", "-brief", "-ign_eof", "-connect", net.JoinHostPort(g.host, g.tlsPort),
		"-CAfile", g.ca.File, "-verify_return_error", "-verify_ip", g.host}
	if cert != nil {
		args = append(args, "-cert", cert.CertFile, "-key", cert.KeyFile)
	}
	return start(t, []byte("version\n"), "openssl", args...)
}

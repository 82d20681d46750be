package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gearhq/gear/access"
	"github.com/gearhq/gear/internal/syncbuf"
	"github.com/gearhq/gear/internal/testcerts"
	"github.com/gearhq/gear/protocol"
)

// tlsServer is a server with a plain listener and a TLS one, its TLS configuration from files.
type tlsServer struct {
	s         *Server
	plain     string // plain TCP address
	addr      string // TLS address
	files     *TLSFiles
	ca        *testcerts.CA
	log       *syncbuf.Buffer
	serverCrt *testcerts.Pair // the files ts.files reads
}

// mustStartTLSServer starts a server whose TLS listener serves a certificate for 127.0.0.1 from a
// test CA; with mutual, clients must present a certificate of that CA.
func mustStartTLSServer(tb testing.TB, mutual bool, configure func(*Options)) *tlsServer {
	tb.Helper()
	dir := tb.TempDir()
	ca := testcerts.NewCA(tb, dir, "ca")
	crt := ca.Server(tb, "server")
	caFile := ""
	if mutual {
		caFile = ca.File
	}
	files, err := LoadTLSFiles(crt.CertFile, crt.KeyFile, caFile)
	if err != nil {
		tb.Fatalf("LoadTLSFiles: %v", err)
	}
	logs := &syncbuf.Buffer{}
	s := mustStartServer(tb, func(o *Options) {
		o.TLS = files.Config()
		o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		if configure != nil {
			configure(o)
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.ServeTLS(ln); err != nil {
		ln.Close()
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("server log:\n%s", logs.String())
		}
	})
	return &tlsServer{s: s, plain: addrOf(tb, s), addr: ln.Addr().String(), files: files, ca: ca, log: logs,
		serverCrt: crt}
}

// dialTLS completes a handshake with cfg and returns the connection, or the handshake's error.
func dialTLS(addr string, cfg *tls.Config) (*tls.Conn, error) {
	d := &net.Dialer{Timeout: readTimeout}
	tc, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	// In TLS 1.3 the server verifies the client's certificate after the client's handshake is
	// done: a refusal arrives as an alert on the first read. An echo proves the connection serves.
	tc.SetDeadline(time.Now().Add(readTimeout))
	if _, err := tc.Write(protocol.AppendRequest(nil, protocol.EchoReq, []byte("hi"))); err != nil {
		tc.Close()
		return nil, err
	}
	f, err := protocol.NewDecoder(tc, 0).Next()
	if err != nil {
		tc.Close()
		return nil, err
	}
	if f.IsText || f.Packet.Type != protocol.EchoRes || string(f.Packet.Args[0]) != "hi" {
		tc.Close()
		return nil, errors.New("unexpected reply to ECHO_REQ: " + f.Packet.Type.String())
	}
	tc.SetDeadline(time.Time{})
	return tc, nil
}

// mustConnectTLS connects a test peer over TLS.
func mustConnectTLS(tb testing.TB, addr string, cfg *tls.Config) *testPeer {
	tb.Helper()
	tc, err := dialTLS(addr, cfg)
	if err != nil {
		tb.Fatalf("TLS connection to %s: %v", addr, err)
	}
	return newTestPeer(tb, tc)
}

// Over TLS the whole protocol works — jobs between a TLS client and a TLS worker, and between a
// plain worker and a TLS client, and the admin text protocol — while the plain listener beside it
// goes on serving.
func TestTLS_JobsAndAdmin(t *testing.T) {
	ts := mustStartTLSServer(t, false, nil)
	cfg := testcerts.ClientConfig(ts.ca, nil)
	client := mustConnectTLS(t, ts.addr, cfg)
	worker := mustConnectTLS(t, ts.addr, cfg)
	runJob(client, worker, "tls", "ping", "pong")
	runJob(client, mustConnect(t, ts.plain), "mixed", strings.Repeat("x", 200_000), "done")
	runJob(mustConnect(t, ts.plain), worker, "back", "ping", strings.Repeat("y", 200_000))

	if got := client.admin("version"); !strings.HasPrefix(got, "OK ") {
		t.Fatalf("admin version over TLS = %q", got)
	}
	roundTrip(t, ts.plain)
	if got := ts.s.TLSAddrs(); len(got) != 1 || got[0].String() != ts.addr {
		t.Fatalf("TLSAddrs = %v, want [%s]", got, ts.addr)
	}
}

// A client refuses a server whose certificate its CAs do not vouch for, and a server certificate
// is never offered below TLS 1.2.
func TestTLS_ClientChecksServer(t *testing.T) {
	ts := mustStartTLSServer(t, false, nil)
	other := testcerts.NewCA(t, t.TempDir(), "other")
	var unknown x509.UnknownAuthorityError
	if _, err := dialTLS(ts.addr, testcerts.ClientConfig(other, nil)); !errors.As(err, &unknown) {
		t.Fatalf("a client trusting another CA connected: %v", err)
	}
	old := testcerts.ClientConfig(ts.ca, nil)
	old.MinVersion, old.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	if _, err := dialTLS(ts.addr, old); err == nil {
		t.Fatal("a TLS 1.1 client connected")
	}
}

// With a client CA, only clients presenting a current certificate of that CA are served.
func TestTLS_Mutual(t *testing.T) {
	ts := mustStartTLSServer(t, true, nil)
	dir := t.TempDir()
	good := ts.ca.Client(t, "good")
	expired := ts.ca.ExpiredClient(t, "expired")
	stranger := testcerts.NewCA(t, dir, "stranger").Client(t, "stranger")

	roundTripVia(t, ts.plain, ts.plain) // the plain listener asks for nothing
	p := mustConnectTLS(t, ts.addr, testcerts.ClientConfig(ts.ca, good))
	if got := p.admin("version"); !strings.HasPrefix(got, "OK ") {
		t.Fatalf("admin version over mutual TLS = %q", got)
	}
	for _, tc := range []struct {
		name string
		cert *testcerts.Pair
	}{
		{"no certificate", nil},
		{"another CA", stranger},
		{"expired", expired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := ts.s.Stats().TLSHandshakeErrors
			if _, err := dialTLS(ts.addr, testcerts.ClientConfig(ts.ca, tc.cert)); err == nil {
				t.Fatal("served")
			}
			checkFor(t, readTimeout, func() error {
				if ts.s.Stats().TLSHandshakeErrors == before {
					return errors.New("no failed handshake counted")
				}
				return nil
			})
		})
	}
}

// A plaintext client on the TLS port gets nothing, and the server says why in its log: once for
// a burst of them, with the count of those it did not log.
func TestTLS_PlaintextClientOnTLSPort(t *testing.T) {
	clock := newFakeClock() // frozen: every failure after the first falls in the same second
	ts := mustStartTLSServer(t, false, func(o *Options) { o.Now = clock.Now })
	const n = 5
	for i := range n {
		p := mustConnect(t, ts.addr)
		p.send(protocol.EchoReq, "hello")
		p.expectClosed()
		checkFor(t, readTimeout, func() error {
			if got := ts.s.Stats().TLSHandshakeErrors; got != uint64(i+1) {
				return fmt.Errorf("failed handshakes counted: %d", got)
			}
			return nil
		})
	}
	if got := strings.Count(ts.log.String(), "does not speak TLS"); got != 1 {
		t.Fatalf("%d log lines about the plaintext clients, want 1 for the burst:\n%s", got, ts.log.String())
	}
	clock.Advance(2 * handshakeLogEvery)
	p := mustConnect(t, ts.addr)
	p.write([]byte("status\n"))
	p.expectClosed()
	checkFor(t, readTimeout, func() error {
		if !strings.Contains(ts.log.String(), "not_logged_since=4") {
			return errors.New("no log line counting the 4 failures not logged")
		}
		return nil
	})
	if ts.s.Stats().ConnectionsAccepted != 0 {
		t.Fatalf("connections accepted: %d, want 0 (none completed a handshake)", ts.s.Stats().ConnectionsAccepted)
	}
}

// A peer that connects and never starts a handshake is dropped after TLSHandshakeTimeout, and
// one in the middle of a handshake does not hold up Close.
func TestTLS_HandshakeTimeout(t *testing.T) {
	ts := mustStartTLSServer(t, false, func(o *Options) { o.TLSHandshakeTimeout = 200 * time.Millisecond })
	p := mustConnect(t, ts.addr)
	p.expectClosed() // within readTimeout
	checkFor(t, readTimeout, func() error {
		if !strings.Contains(ts.log.String(), "not completed in time") {
			return errors.New("the timeout is not in the log")
		}
		return nil
	})

	slow := mustStartTLSServer(t, false, func(o *Options) { o.TLSHandshakeTimeout = time.Hour })
	silent := mustConnect(t, slow.addr)
	slow.s.Close() // returns: a handshake in progress ends with the server
	silent.expectClosed()
}

// Reload swaps the certificate for new handshakes while an established worker keeps its
// connection and goes on working; a reload that fails keeps the certificate in use.
func TestTLSFiles_Reload(t *testing.T) {
	ts := mustStartTLSServer(t, false, nil)
	cfg := testcerts.ClientConfig(ts.ca, nil)
	worker := mustConnectTLS(t, ts.addr, cfg)
	worker.send(protocol.CanDo, "rot")
	first := serverSerial(t, ts.addr, cfg)
	if first.Cmp(ts.serverCrt.Cert.SerialNumber) != 0 {
		t.Fatalf("served serial %v, want %v", first, ts.serverCrt.Cert.SerialNumber)
	}

	// A broken key: the reload fails and says why, the old certificate stays.
	next := ts.ca.Server(t, "next")
	next.CopyTo(t, ts.serverCrt.CertFile, ts.serverCrt.KeyFile)
	if err := os.WriteFile(ts.serverCrt.KeyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ts.files.Reload(); err == nil {
		t.Fatal("Reload with a broken key succeeded")
	}
	if got := serverSerial(t, ts.addr, cfg); got.Cmp(first) != 0 {
		t.Fatalf("after a failed reload the server presents %v, want the old %v", got, first)
	}
	// An expired certificate is refused likewise.
	expired := ts.ca.ExpiredServer(t, "expired")
	expired.CopyTo(t, ts.serverCrt.CertFile, ts.serverCrt.KeyFile)
	if err := ts.files.Reload(); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("Reload with an expired certificate: %v", err)
	}

	next.CopyTo(t, ts.serverCrt.CertFile, ts.serverCrt.KeyFile)
	if err := ts.files.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if got := serverSerial(t, ts.addr, cfg); got.Cmp(next.Cert.SerialNumber) != 0 {
		t.Fatalf("after the reload the server presents %v, want the new %v", got, next.Cert.SerialNumber)
	}
	if !ts.files.NotAfter().Equal(next.Cert.NotAfter) {
		t.Fatalf("NotAfter = %v, want the new certificate's %v", ts.files.NotAfter(), next.Cert.NotAfter)
	}
	// The worker connected before the reload still works.
	runJob(mustConnectTLS(t, ts.addr, cfg), worker, "rot", "x", "y")
}

// Loading refuses what could not serve: a missing file, a key of another certificate, a CA file
// without certificates.
func TestLoadTLSFiles_Errors(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "ca")
	a, b := ca.Server(t, "a"), ca.Server(t, "b")
	for _, tc := range []struct {
		name, cert, key, ca, want string
	}{
		{"missing cert", dir + "/none.crt", a.KeyFile, "", "no such file"},
		{"mismatched key", a.CertFile, b.KeyFile, "", "private key does not match"},
		{"key as CA", a.CertFile, a.KeyFile, a.KeyFile, "no PEM certificate"},
		{"no key", a.CertFile, "", "", "needs both"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := LoadTLSFiles(tc.cert, tc.key, tc.ca); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadTLSFiles = %v, want an error with %q", err, tc.want)
			}
		})
	}
	if _, err := New(Options{MaxPacketSize: 1, TLSListen: []string{"127.0.0.1:0"}}); err == nil {
		t.Fatal("New accepted TLS listeners without a TLS configuration")
	}
}

// serverSerial is the serial number of the certificate a new connection to addr is shown.
func serverSerial(t *testing.T, addr string, cfg *tls.Config) *big.Int {
	t.Helper()
	tc, err := dialTLS(addr, cfg)
	if err != nil {
		t.Fatalf("TLS connection: %v", err)
	}
	defer tc.Close()
	return tc.ConnectionState().PeerCertificates[0].SerialNumber
}

// The connection limits count TLS connections from before their handshake: over the limit one is
// closed without a packet (its peer expects a handshake), and a failed handshake gives its place
// back.
func TestTLS_ConnectionLimit(t *testing.T) {
	ts := mustStartTLSServer(t, false, func(o *Options) { o.MaxConnections = 1 })
	cfg := testcerts.ClientConfig(ts.ca, nil)
	plaintext := mustConnect(t, ts.addr)
	plaintext.send(protocol.EchoReq, "x")
	plaintext.expectClosed()
	first := mustConnectTLS(t, ts.addr, cfg) // the failed handshake released its place
	if _, err := dialTLS(ts.addr, cfg); err == nil {
		t.Fatal("a second TLS connection was served over MaxConnections 1")
	}
	if got := ts.s.Stats().ConnectionsRefused; got != 1 {
		t.Fatalf("ConnectionsRefused = %d, want 1", got)
	}
	first.close()
	checkFor(t, readTimeout, func() error {
		tc, err := dialTLS(ts.addr, cfg)
		if err == nil {
			tc.Close()
		}
		return err
	})
}

// On mutual TLS the access rules see the verified client certificate's common name.
func TestTLS_AccessByCertificate(t *testing.T) {
	rules, err := access.Parse([]byte(`
[[rule]]
who = ["cn:billing-*"]
submit = ["billing.*"]
`))
	if err != nil {
		t.Fatal(err)
	}
	ts := mustStartTLSServer(t, true, func(o *Options) { o.Access = rules })
	billing := mustConnectTLS(t, ts.addr, testcerts.ClientConfig(ts.ca, ts.ca.Client(t, "billing-app")))
	other := mustConnectTLS(t, ts.addr, testcerts.ClientConfig(ts.ca, ts.ca.Client(t, "reports")))
	billing.submit(protocol.SubmitJobBg, "billing.invoice", "", "x")
	other.send(protocol.SubmitJobBg, "billing.invoice", "", "x")
	other.expectError(protocol.CodePermissionDenied)
	plain := mustConnect(t, ts.plain) // no certificate: no name
	plain.send(protocol.SubmitJobBg, "billing.invoice", "", "x")
	plain.expectError(protocol.CodePermissionDenied)
}

// Every permission follows the verified certificate, not only submit: registering functions and
// the admin levels, by common name and by a subject alternative name.
func TestTLS_AccessByCertificateNames(t *testing.T) {
	rules, err := access.Parse([]byte(`
[[rule]]
who = ["cn:client"]
submit = ["jobs.*"]
[[rule]]
who = ["cn:worker-*"]
register = ["jobs.*"]
[[rule]]
who = ["cn:viewer"]
admin = "read"
[[rule]]
who = ["san:ops.example.com"]
admin = "write"
`))
	if err != nil {
		t.Fatal(err)
	}
	ts := mustStartTLSServer(t, true, func(o *Options) { o.Access = rules })
	connect := func(p *testcerts.Pair) *testPeer {
		return mustConnectTLS(t, ts.addr, testcerts.ClientConfig(ts.ca, p))
	}
	client, worker := connect(ts.ca.Client(t, "client")), connect(ts.ca.Client(t, "worker-7"))
	viewer, ops := connect(ts.ca.Client(t, "viewer")), connect(ts.ca.ClientWithNames(t, "laptop-42", "ops.example.com"))

	expectLevels(t, client, worker, viewer, ops, viewer)
	ops.send(protocol.SubmitJobBg, "jobs.resize", "", "x")
	ops.expectError(protocol.CodePermissionDenied)
}

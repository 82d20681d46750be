package main

import (
	"crypto/tls"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gearhq/gear/internal/testcerts"
)

var tlsListenRe = regexp.MustCompile(`msg=listening addr=(\S+) tls=true`)

// tlsListenAddr waits for the server's log line of its TLS listener and returns the address.
func tlsListenAddr(t *testing.T, p *proc) string {
	t.Helper()
	listenAddr(t, p) // fails early if the server exits
	return logMatch(t, p, tlsListenRe, "the TLS listening log line")
}

// Mutual TLS from end to end with the commands: `gear server --tls-cert --tls-key --tls-ca` makes
// its --port TLS, and `gear worker`, `gear client` (a job and invoke, whose admin view goes over
// TLS too), `gear admin` and `gear bench` reach it with their --tls options and a tls:// server.
func TestTLS_CommandsMutual(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "ca")
	srvCert, cliCert := ca.Server(t, "server"), ca.Client(t, "client")
	srv := startGear(t, nil, gearBin, "server", "--port", "0", "--tls-cert", srvCert.CertFile,
		"--tls-key", srvCert.KeyFile, "--tls-ca", ca.File)
	addr := tlsListenAddr(t, srv)
	if strings.Contains(srv.output(), "tls=false") {
		t.Fatalf("a plain listener besides the TLS one without --tls-listen:\n%s", srv.output())
	}
	tlsArgs := []string{"--tls-ca", ca.File, "--tls-cert", cliCert.CertFile, "--tls-key", cliCert.KeyFile}
	servers := "tls://" + addr
	startGear(t, []string{"GEARMAN_SERVERS=" + servers}, gearBin, append([]string{"worker"}, tlsArgs...)...)
	waitForWorkerWith(t, servers, "reverse", tlsArgs...)

	out, errOut, code := gearCmd(t, servers, "", append(append([]string{"client"}, tlsArgs...), "reverse", "over tls")...)
	if code != 0 || out != "slt revo" {
		t.Fatalf("gear client over mutual TLS: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	out, errOut, code = gearCmd(t, servers, "", append(append([]string{"client"}, tlsArgs...), "invoke", "status")...)
	if code != 0 || !strings.Contains(out, "FUNCTION") || !strings.Contains(out, "reverse") {
		t.Fatalf("gear client invoke status over mutual TLS: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	out, errOut, code = gearCmd(t, addr, "", append([]string{"bench", "--server", addr, "--scenario", "foreground",
		"--jobs", "300", "--clients", "2", "--workers", "2"}, tlsArgs...)...)
	if code != 0 || !strings.Contains(out, "RESULT") {
		t.Fatalf("gear bench over mutual TLS: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// Without its certificate a command is refused, and says so.
	_, errOut, code = gearCmd(t, servers, "", "admin", "--tls-ca", ca.File, "version")
	if code == 0 || !strings.Contains(errOut, "certificate") {
		t.Fatalf("gear admin without a client certificate: exit %d, stderr %q", code, errOut)
	}
	// Flags that cannot work are usage errors.
	_, errOut, code = gearCmd(t, servers, "", "client", "--tls-cert", cliCert.CertFile, "reverse", "x")
	if code != 2 || !strings.Contains(errOut, "key") {
		t.Fatalf("gear client --tls-cert without --tls-key: exit %d, stderr %q", code, errOut)
	}
}

// SIGHUP rotates the certificate of the real binary: a worker connected before keeps its
// connection and its jobs, new connections see the new certificate, and a rotation to a broken
// file keeps the certificate in use, with the reason in the log.
func TestTLS_SIGHUPRotatesCertificate(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "ca")
	first, second := ca.Server(t, "first"), ca.Server(t, "second")
	certFile, keyFile := dir+"/live.crt", dir+"/live.key"
	first.CopyTo(t, certFile, keyFile)
	srv := startGear(t, nil, gearBin, "server", "--port", "0", "--tls-listen", ":0",
		"--tls-cert", certFile, "--tls-key", keyFile)
	plain, addr := listenAddr(t, srv), tlsListenAddr(t, srv)
	echo(t, plain) // the --port listener stays plain beside --tls-listen
	servers := "tls://" + addr
	worker := startGear(t, []string{"GEARMAN_SERVERS=" + servers}, gearBin, "worker", "--tls-ca", ca.File)
	waitForWorkerWith(t, servers, "reverse", "--tls-ca", ca.File)
	cfg := testcerts.ClientConfig(ca, nil)
	if got := presented(t, addr, cfg); got != "first" {
		t.Fatalf("the server presents %q, want first", got)
	}

	second.CopyTo(t, certFile, keyFile)
	srv.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the reload", 20*time.Second, func() bool { return strings.Contains(srv.output(), "TLS certificates reloaded") })
	if got := presented(t, addr, cfg); got != "second" {
		t.Fatalf("after SIGHUP the server presents %q, want second", got)
	}
	out, errOut, code := gearCmd(t, servers, "", "client", "--tls-ca", ca.File, "reverse", "rotated")
	if code != 0 || out != "detator" {
		t.Fatalf("a job after the rotation: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if n := strings.Count(worker.output(), "connected to job server"); n != 1 {
		t.Fatalf("the worker connected %d times, want once (it kept its connection):\n%s", n, worker.output())
	}

	if err := os.WriteFile(keyFile, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the failed reload in the log", 20*time.Second, func() bool {
		return strings.Contains(srv.output(), "TLS certificates not reloaded")
	})
	if got := presented(t, addr, cfg); got != "second" {
		t.Fatalf("after a failed reload the server presents %q, want second still", got)
	}
}

// presented is the common name of the certificate a new TLS connection to addr is shown.
func presented(t *testing.T, addr string, cfg *tls.Config) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatalf("TLS connection to %s: %v", addr, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName
}

// --check-config reads the certificate files and shows where TLS is served; what could not serve
// is an error.
func TestTLS_CheckConfig(t *testing.T) {
	clearServerEnv(t)
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "ca")
	good, expired := ca.Server(t, "good"), ca.ExpiredServer(t, "expired")
	out, errOut, code := checkConfig(t, "--port", "4731", "--tls-cert", good.CertFile, "--tls-key", good.KeyFile,
		"--tls-ca", ca.File)
	if code != 0 || !strings.Contains(out, "\nlisten = \n") || !strings.Contains(out, "\ntls-listen = 127.0.0.1:4731\n") {
		t.Fatalf("exit %d, stderr %q, output:\n%s", code, errOut, out)
	}
	out, _, code = checkConfig(t, "--tls-listen", ":4740,[::1]:4741", "--tls-cert", good.CertFile, "--tls-key", good.KeyFile)
	if code != 0 || !strings.Contains(out, "\ntls-listen = 127.0.0.1:4740,[::1]:4741\n") || !strings.Contains(out, "\nlisten = 127.0.0.1:4730\n") {
		t.Fatalf("with --tls-listen: exit %d, output:\n%s", code, out)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"expired", []string{"--tls-cert", expired.CertFile, "--tls-key", expired.KeyFile}, "expired"},
		{"missing", []string{"--tls-cert", dir + "/none.crt", "--tls-key", good.KeyFile}, "no such file"},
		{"wrong key", []string{"--tls-cert", good.CertFile, "--tls-key", expired.KeyFile}, "does not match"},
		{"CA not a certificate", []string{"--tls-cert", good.CertFile, "--tls-key", good.KeyFile, "--tls-ca", good.KeyFile}, "no PEM certificate"},
		{"key alone", []string{"--tls-key", good.KeyFile}, "--tls-key needs --tls-cert"},
		{"cert alone", []string{"--tls-cert", good.CertFile}, "--tls-cert needs --tls-key"},
		{"listen without port", []string{"--tls-listen", "127.0.0.1", "--tls-cert", good.CertFile, "--tls-key", good.KeyFile}, "HOST:PORT"},
		{"tls scheme on --listen", []string{"--listen", "tls://127.0.0.1:1"}, "--tls-listen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := checkConfig(t, tc.args...)
			if code == 0 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q; want an error with %q", code, errOut, tc.want)
			}
		})
	}
}

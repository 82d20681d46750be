package client_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/gearhq/gear/admin"
	"github.com/gearhq/gear/client"
	"github.com/gearhq/gear/internal/testcerts"
	"github.com/gearhq/gear/internal/testenv"
	"github.com/gearhq/gear/server"
	"github.com/gearhq/gear/worker"
)

// The client and the worker libraries over TLS and mutual TLS against a real server: a job goes
// from a TLS client through the server to a TLS worker and back, and a client without the
// certificate the server asks for gets no job through.
func TestTLS_ClientAndWorker(t *testing.T) {
	for _, mutual := range []bool{false, true} {
		name := map[bool]string{false: "tls", true: "mutual"}[mutual]
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			ca := testcerts.NewCA(t, dir, "ca")
			crt := ca.Server(t, "server")
			caFile := ""
			var clientCert *testcerts.Pair
			if mutual {
				caFile, clientCert = ca.File, ca.Client(t, "client")
			}
			files, err := server.LoadTLSFiles(crt.CertFile, crt.KeyFile, caFile)
			if err != nil {
				t.Fatal(err)
			}
			_, addr, _ := testenv.StartGearTLS(t, files)
			cfg := testcerts.ClientConfig(ca, clientCert)

			testenv.StartWorkerOpts(t, worker.Options{Servers: []string{addr}, TLS: cfg},
				map[string]worker.Func{"reverse": reverseFunc}, nil)
			waitWorkersTLS(t, addr, cfg, "reverse")
			c, err := client.New(client.Options{Servers: []string{"tls://" + addr}, TLS: cfg, MaxBackoff: 100 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx := ctxTimeout(t, 10*time.Second)
			out, err := c.Do(ctx, "reverse", []byte("over tls"), client.Submission{})
			if err != nil || string(out) != "slt revo" {
				t.Fatalf("Do over TLS = %q, %v", out, err)
			}
			if !mutual {
				return
			}
			bare, err := client.New(client.Options{Servers: []string{addr}, TLS: testcerts.ClientConfig(ca, nil), MaxBackoff: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer bare.Close()
			if _, err := bare.Do(ctx, "reverse", []byte("x"), client.Submission{}); err == nil {
				t.Fatal("a client without a certificate ran a job")
			}
		})
	}
}

// A "tls://" server is reached over TLS even without Options.TLS: verified against the system's
// CAs, which do not know the test's, so the connection is refused for that reason.
func TestTLS_SchemeWithoutConfig(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "ca")
	crt := ca.Server(t, "server")
	files, err := server.LoadTLSFiles(crt.CertFile, crt.KeyFile, "")
	if err != nil {
		t.Fatal(err)
	}
	_, addr, _ := testenv.StartGearTLS(t, files)
	c, err := client.New(client.Options{Servers: []string{"tls://" + addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Echo(ctxTimeout(t, 10*time.Second), []byte("x"))
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("Echo to a tls:// server of an unknown CA: %v, want x509.UnknownAuthorityError", err)
	}
}

// waitWorkersTLS waits until function has a worker, asking with the admin protocol over TLS.
func waitWorkersTLS(t *testing.T, addr string, cfg *tls.Config, function string) {
	t.Helper()
	waitFor(t, "a worker for "+function, 10*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		c, err := admin.DialTLS(ctx, addr, cfg)
		if err != nil {
			t.Fatalf("admin over TLS: %v", err)
		}
		defer c.Close()
		rows, err := c.Status(ctx)
		return err == nil && slices.ContainsFunc(rows, func(r admin.FunctionStatus) bool {
			return r.Name == function && r.Workers > 0
		})
	})
}

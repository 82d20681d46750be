package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gearhq/gear/internal/tlsfiles"
)

// handshake completes the TLS handshake of a connection accepted on a TLS listener, within
// Options.TLSHandshakeTimeout (a peer that connects and never handshakes does not hold a slot), and
// then serves it. It runs on its own goroutine so that a slow handshake never holds up the accept
// loop; Server.wg counts it.
func (s *Server) handshake(nc net.Conn, host string) {
	defer s.wg.Done()
	tc := tls.Server(nc, s.opts.TLS)
	ctx, cancel := context.WithTimeout(s.doneCtx, s.opts.TLSHandshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		s.mu.Lock()
		s.release(host) // before the close: a peer that sees it may connect again at once
		s.mu.Unlock()
		nc.Close()
		if s.doneCtx.Err() == nil {
			s.handshakes.failure(s.log, s.opts.Now(), nc.RemoteAddr().String(), err)
		}
		return
	}
	s.startConn(tc, host, true)
}

// handshakeLog counts failed TLS handshakes and logs them at most once per handshakeLogEvery, with
// how many it did not log since: a port scanner, or a plaintext client retrying in a loop, must not
// flood the log.
type handshakeLog struct {
	failed atomic.Uint64

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

const handshakeLogEvery = time.Second

func (h *handshakeLog) failure(log *slog.Logger, now time.Time, peer string, err error) {
	// Counted once logged: whoever sees the count (a test, the metrics) finds its log line written.
	defer h.failed.Add(1)
	h.mu.Lock()
	if !h.last.IsZero() && now.Sub(h.last) < handshakeLogEvery {
		h.suppressed++
		h.mu.Unlock()
		return
	}
	h.last = now
	suppressed := h.suppressed
	h.suppressed = 0
	h.mu.Unlock()
	msg := "TLS handshake failed; closing"
	var rhe tls.RecordHeaderError
	if errors.As(err, &rhe) {
		msg = "TLS handshake failed: the peer does not speak TLS (a plaintext client on a TLS port?); closing"
	} else if errors.Is(err, context.DeadlineExceeded) {
		msg = "TLS handshake not completed in time; closing"
	}
	log.Warn(msg, "peer", peer, "err", err, "not_logged_since", suppressed)
}

// tlsDriver serves a TLS connection with goroutines, as goroutines does a plain one without a raw
// descriptor (conn.raw is nil: the reader reads through the tls.Conn, the writer goroutine writes
// everything). It differs in how it ends the connection from another goroutine: closing the
// tls.Conn would first send a close_notify alert, which can wait up to its write timeout on a peer
// that does not read — while the caller may hold Server.mu — so the TCP socket under it is closed
// instead. The writer, when it has sent a closing connection's last replies, closes the tls.Conn
// itself (with the alert).
type tlsDriver struct{ goroutines }

func (tlsDriver) shutdown(c *conn) { c.nc.(*tls.Conn).NetConn().Close() }
func (d tlsDriver) writeFailed(c *conn) {
	d.shutdown(c)
	d.wake(c)
}

// TLSFiles is a server's TLS configuration read from PEM files: its certificate and key, and, for
// mutual TLS, the CA bundle client certificates must chain to. Reload reads them again (SIGHUP):
// connections already established keep going, and handshakes from then on see the new files.
type TLSFiles struct {
	certFile, keyFile, caFile string
	now                       func() time.Time
	cur                       atomic.Pointer[tls.Config]
}

// LoadTLSFiles reads a certificate and its key, and with caFile a CA bundle: clients must then
// present a certificate it verifies (tls.RequireAndVerifyClientCert). It fails on a missing or
// malformed file, a key that does not match, or a certificate outside its validity period.
func LoadTLSFiles(certFile, keyFile, caFile string) (*TLSFiles, error) {
	f := &TLSFiles{certFile: certFile, keyFile: keyFile, caFile: caFile, now: time.Now}
	if err := f.Reload(); err != nil {
		return nil, err
	}
	return f, nil
}

// Reload reads the files again. On any error the configuration in use is kept and the error says
// why; handshakes never see half of a change (a new certificate with the old key, say).
func (f *TLSFiles) Reload() error {
	pair, err := tlsfiles.KeyPair(f.certFile, f.keyFile, f.now())
	if err != nil {
		return err
	}
	cfg := &tls.Config{MinVersion: tlsfiles.MinVersion, Certificates: []tls.Certificate{pair}}
	if f.caFile != "" {
		pool, err := tlsfiles.CertPool(f.caFile)
		if err != nil {
			return err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		// A resumed session skips the client's certificate: without tickets a client whose CA was
		// removed by a reload cannot come back on a session it was given before.
		cfg.SessionTicketsDisabled = true
	}
	f.cur.Store(cfg)
	return nil
}

// Config returns the tls.Config for Options.TLS: every handshake takes the files' latest
// configuration.
func (f *TLSFiles) Config() *tls.Config {
	return &tls.Config{
		MinVersion: tlsfiles.MinVersion,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return f.cur.Load(), nil
		},
	}
}

// NotAfter is when the certificate handshakes present now expires.
func (f *TLSFiles) NotAfter() time.Time { return f.cur.Load().Certificates[0].Leaf.NotAfter }

// String describes the files, for the log.
func (f *TLSFiles) String() string {
	s := fmt.Sprintf("cert=%s key=%s", f.certFile, f.keyFile)
	if f.caFile != "" {
		s += " client-ca=" + f.caFile
	}
	return s
}

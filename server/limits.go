package server

import (
	"net"
	"sync/atomic"
	"time"

	"github.com/gearhq/gear/protocol"
)

// Connection limits (Options.MaxConnections, MaxConnectionsPerIP). A connection over a limit is
// told why in an ERROR packet, which any Gearman client reports as the answer to its first
// request, and closed; the refusal is counted (Stats) and logged, at most once per
// refusalLogEvery with the count since, so a flood cannot flood the log as well.

const refusalLogEvery = 10 * time.Second

// admission is the count of open connections, in total and per remote address. Guarded by
// Server.mu: admitting is one check and one reservation under that lock.
type admission struct {
	open  int
	perIP map[string]int
}

// refusals counts refused connections by reason and paces their log lines.
type refusals struct {
	total, perIP atomic.Uint64
	lastLog      atomic.Int64 // Unix nanoseconds of the last log line
	sinceLog     atomic.Uint64
}

// remoteHost is the address a per-address limit counts: the IP, without the port.
func remoteHost(nc net.Conn) string {
	addr := nc.RemoteAddr()
	if tcp, ok := addr.(*net.TCPAddr); ok {
		return tcp.IP.String()
	}
	if host, _, err := net.SplitHostPort(addr.String()); err == nil {
		return host
	}
	return addr.String()
}

// admit reserves a place for a connection from host, or says which limit refuses it. s.mu held.
func (s *Server) admit(host string) (reason string) {
	if max := s.opts.MaxConnections; max > 0 && s.admitted.open >= max {
		s.refused.total.Add(1)
		return "the server's connection limit"
	}
	if max := s.opts.MaxConnectionsPerIP; max > 0 && s.admitted.perIP[host] >= max {
		s.refused.perIP.Add(1)
		return "the connection limit per address"
	}
	s.admitted.open++
	if s.opts.MaxConnectionsPerIP > 0 {
		s.admitted.perIP[host]++
	}
	return ""
}

// release gives back the place of a connection admitted from host. s.mu held.
func (s *Server) release(host string) {
	s.admitted.open--
	if s.opts.MaxConnectionsPerIP > 0 {
		if n := s.admitted.perIP[host] - 1; n > 0 {
			s.admitted.perIP[host] = n
		} else {
			delete(s.admitted.perIP, host)
		}
	}
}

// refuse tells a connection over a limit why (when tell: not on a TLS port, where the peer expects
// a handshake and not a packet), and closes it. It runs on its own goroutine: a peer that does not
// read must not hold up the accept loop.
func (s *Server) refuse(nc net.Conn, host, reason string, tell bool) {
	now := s.opts.Now().UnixNano()
	n := s.refused.sinceLog.Add(1)
	if last := s.refused.lastLog.Load(); now-last >= int64(refusalLogEvery) && s.refused.lastLog.CompareAndSwap(last, now) {
		s.refused.sinceLog.Add(-n)
		s.log.Warn("connection refused", "remote", host, "reason", reason, "refused_since_last_line", n,
			"max_connections", s.opts.MaxConnections, "max_connections_per_ip", s.opts.MaxConnectionsPerIP)
	}
	if !tell {
		nc.Close()
		return
	}
	go func() {
		nc.SetWriteDeadline(time.Now().Add(time.Second))
		nc.Write(protocol.AppendResponse(nil, protocol.Error, []byte(protocol.CodeConnectionLimit),
			[]byte("connection refused: over "+reason)))
		nc.Close()
	}()
}

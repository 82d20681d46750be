package server

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"

	"log/slog"

	"github.com/gearhq/gear/internal/syncbuf"
	"github.com/gearhq/gear/protocol"
)

// connectFrom dials addr from a loopback source address (127.0.0.0/8 is all local on Linux), so
// one test can be several remote addresses.
func connectFrom(tb testing.TB, addr, source string) *testPeer {
	tb.Helper()
	d := net.Dialer{Timeout: readTimeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		tb.Fatalf("dial %s from %s: %v", addr, source, err)
	}
	tb.Cleanup(func() { nc.Close() })
	p := &testPeer{tb: tb, nc: nc, br: bufio.NewReader(nc)}
	p.dec = protocol.NewDecoder(p.br, 0)
	return p
}

// Over a connection limit a peer gets ERROR CONNECTION_LIMIT and the close; the admitted ones keep
// working, a freed place is taken again, and refusals are counted and logged (once per interval).
func TestConnectionLimits(t *testing.T) {
	logs := &syncbuf.Buffer{}
	s := mustStartServer(t, func(o *Options) {
		o.MaxConnections, o.MaxConnectionsPerIP = 3, 2
		o.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	addr := addrOf(t, s)
	echo := func(p *testPeer, text string) {
		t.Helper()
		p.send(protocol.EchoReq, text)
		p.expect(protocol.EchoRes, text)
	}
	refused := func(p *testPeer, limit string) {
		t.Helper()
		pkt := p.expectError(protocol.CodeConnectionLimit)
		if !strings.Contains(string(pkt.args[1]), limit) {
			t.Errorf("refusal %q does not name %q", pkt.args[1], limit)
		}
		p.expectClosed()
	}
	a1, a2 := connectFrom(t, addr, "127.0.0.1"), connectFrom(t, addr, "127.0.0.1")
	echo(a1, "a1")
	echo(a2, "a2")
	refused(connectFrom(t, addr, "127.0.0.1"), "per address")
	b1 := connectFrom(t, addr, "127.0.0.2")
	echo(b1, "b1")
	refused(connectFrom(t, addr, "127.0.0.3"), "server's connection limit")
	echo(a1, "a1 still served")
	if st := s.Stats(); st.ConnectionsRefused != 1 || st.ConnectionsRefusedPerIP != 1 || st.ConnectionsAccepted != 3 {
		t.Errorf("stats %+v, want 1 refused for the total, 1 per address, 3 accepted", st)
	}
	a2.close()
	checkFor(t, readTimeout, func() error {
		p := connectFrom(t, addr, "127.0.0.1")
		p.send(protocol.EchoReq, "again")
		pkt := p.next()
		p.close()
		if pkt.typ != protocol.EchoRes {
			return fmt.Errorf("a place freed from 127.0.0.1 is not taken again: %v", pkt)
		}
		return nil
	})
	if n := strings.Count(logs.String(), "connection refused"); n != 1 {
		t.Errorf("%d log lines for refusals within one interval, want 1:\n%s", n, logs.String())
	}
}

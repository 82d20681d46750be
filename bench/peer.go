package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/gearhq/gear/internal/rawio"
	"github.com/gearhq/gear/internal/serveraddr"
	"github.com/gearhq/gear/protocol"
)

// peer is one raw Gearman connection: a decoder reading straight from the socket and an output buffer
// flushed only when the decoder has nothing left, so a burst of requests leaves in one write.
// Where it can, a peer reads and writes with raw system calls (rawio), as the server does: the
// generator's own overhead per packet is then smaller, and so is its share of a small machine.
type peer struct {
	nc  net.Conn
	io  io.ReadWriter // nc, or raw system calls on its descriptor
	dec *protocol.Decoder
	out []byte
}

func dialPeer(ctx context.Context, addr string, cfg *tls.Config, timeout time.Duration, maxPacket int, netConn bool) (*peer, error) {
	d := net.Dialer{Timeout: timeout}
	nc, err := serveraddr.DialContext(ctx, &d, addr, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	var rw io.ReadWriter = nc
	if raw := rawio.New(nc); raw != nil && !netConn {
		rw = raw
	}
	return &peer{nc: nc, io: rw, dec: protocol.NewDecoder(rw, maxPacket), out: make([]byte, 0, 4096)}, nil
}

// send queues a request; it leaves on the next flush.
func (p *peer) send(t protocol.Type, args ...[]byte) {
	p.out = protocol.AppendRequest(p.out, t, args...)
}

func (p *peer) flush() error {
	if len(p.out) == 0 {
		return nil
	}
	_, err := p.io.Write(p.out)
	if cap(p.out) > 1<<20 {
		p.out = make([]byte, 0, 4096) // do not pin a buffer grown for one large burst
	} else {
		p.out = p.out[:0]
	}
	return err
}

// next flushes pending output if no reply is buffered, then returns the next packet from the server.
// The packet aliases the decoder's buffer until the following call.
func (p *peer) next() (*protocol.Packet, error) {
	if p.dec.Buffered() == 0 {
		if err := p.flush(); err != nil {
			return nil, err
		}
	}
	f, err := p.dec.Next()
	if err != nil {
		return nil, err
	}
	if f.IsText {
		return nil, fmt.Errorf("server sent a text line %q on a binary connection", f.Line)
	}
	if f.Packet.Magic != protocol.MagicRes {
		return nil, fmt.Errorf("server sent %s with request magic", f.Packet.Type)
	}
	return &f.Packet, nil
}

// echo does one ECHO_REQ round trip: it proves the connection is accepted and served, and, after
// CAN_DO, that the server has processed the registration.
func (p *peer) echo(timeout time.Duration) error {
	p.nc.SetReadDeadline(time.Now().Add(timeout))
	defer p.nc.SetReadDeadline(time.Time{})
	p.send(protocol.EchoReq, []byte("gear-bench"))
	for {
		pkt, err := p.next()
		if err != nil {
			return err
		}
		switch pkt.Type {
		case protocol.EchoRes:
			return nil
		case protocol.Noop:
			continue
		case protocol.Error:
			return serverError(pkt)
		default:
			return unexpected(pkt, "ECHO_RES")
		}
	}
}

func (p *peer) close() { p.nc.Close() }

// interrupt makes a blocked read return a timeout error at once.
func (p *peer) interrupt() { p.nc.SetReadDeadline(time.Unix(1, 0)) }

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

func serverError(pkt *protocol.Packet) error {
	return fmt.Errorf("%w: ERROR %s %q", ErrServer, pkt.Arg(0), pkt.Arg(1))
}

func unexpected(pkt *protocol.Packet, want string) error {
	return fmt.Errorf("protocol: server sent %s, want %s", pkt.Type, want)
}

//go:build unix

package rawio

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// pair returns the two ends of a loopback TCP connection.
func pair(t *testing.T) (a, b net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	a, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b = <-accepted
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func TestReadWriteAndEOF(t *testing.T) {
	a, b := pair(t)
	ra, rb := New(a), New(b)
	if ra == nil || rb == nil {
		t.Fatal("New returned nil for a TCP connection")
	}
	if n, err := ra.Write([]byte("hello")); n != 5 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	buf := make([]byte, 16)
	n, err := rb.Read(buf)
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("Read = %q, %v", buf[:n], err)
	}
	if n, err := rb.Read(nil); n != 0 || err != nil {
		t.Fatalf("Read(nil) = %d, %v", n, err)
	}
	a.(*net.TCPConn).CloseWrite()
	if n, err := rb.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("Read after the peer closed = %d, %v; want io.EOF", n, err)
	}
}

// A read deadline set on the net.Conn ends a waiting Read, as it would a net.Conn.Read.
func TestReadHonoursDeadline(t *testing.T) {
	a, _ := pair(t)
	a.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := New(a).Read(make([]byte, 8))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past the deadline: %v, want os.ErrDeadlineExceeded", err)
	}
}

// TryWrite stops when the socket is full and says how much it took; Write waits until the reader
// has taken everything.
func TestTryWriteStopsWhenFullWriteWaits(t *testing.T) {
	a, b := pair(t)
	a.(*net.TCPConn).SetWriteBuffer(16 << 10)
	b.(*net.TCPConn).SetReadBuffer(16 << 10)
	ra := New(a)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB: more than any socket buffer
	n, err := ra.TryWrite(big)
	if err != nil || n <= 0 || n >= len(big) {
		t.Fatalf("TryWrite of 4 MiB to a peer that does not read = %d, %v; want a partial write", n, err)
	}

	got := make(chan []byte, 1)
	go func() {
		all, _ := io.ReadAll(b)
		got <- all
	}()
	rest := big[n:]
	if m, err := ra.Write(rest); m != len(rest) || err != nil {
		t.Fatalf("Write = %d, %v; want %d", m, err, len(rest))
	}
	a.Close()
	if all := <-got; !bytes.Equal(all, big) {
		t.Fatalf("the reader got %d bytes, want the %d written, in order", len(all), len(big))
	}
}

func TestWriteToClosedPeerFails(t *testing.T) {
	a, b := pair(t)
	b.Close()
	ra := New(a)
	chunk := make([]byte, 64<<10)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := ra.Write(chunk); err != nil {
			return // EPIPE or ECONNRESET: an error, not a hang
		}
	}
	t.Fatal("writes to a closed peer kept succeeding")
}

// A connection without a descriptor gets no raw access; the caller keeps the net.Conn.
func TestNewWithoutDescriptor(t *testing.T) {
	a, _ := net.Pipe()
	defer a.Close()
	if New(a) != nil {
		t.Fatal("New of a net.Pipe end is not nil")
	}
}

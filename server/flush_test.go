package server

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/gearhq/gear/protocol"
)

// A reader (or an event loop) answers and pushes with writes that never block; what a socket does
// not take at once goes to the connection's writer goroutine (or waits in the loop until epoll
// reports the socket writable). A peer that stops reading for a while must still get every packet,
// in order, both its own replies and what was pushed to it while serving other peers.
func TestFlush_SlowReaderGetsEverythingInOrder(t *testing.T) {
	slowReaderGetsEverything(t, nil)
}

// With two event loops the client and the worker (consecutive connections) are served by
// different loops: what one loop queues to the other's connection, that loop writes.
func TestFlush_SlowReaderOnAnotherLoop(t *testing.T) {
	if !eventLoops {
		t.Skip("no event loops on this system")
	}
	slowReaderGetsEverything(t, func(o *Options) { o.IOLoops = 2 })
}

func slowReaderGetsEverything(t *testing.T, configure func(*Options)) {
	s := mustStartServer(t, configure)
	addr := addrOf(t, s)
	client, worker := mustConnect(t, addr), mustConnect(t, addr)
	worker.send(protocol.CanDo, "slow")
	h := client.submit(protocol.SubmitJob, "slow", "", "x")
	worker.send(protocol.GrabJob)
	worker.expect(protocol.JobAssign, h, "slow", "x")

	// Far more than the kernel buffers of one loopback connection: the client reads nothing until
	// the worker and the client itself have sent everything.
	const chunks, chunkSize = 800, 32 << 10
	payload := func(kind byte, i int) []byte {
		b := bytes.Repeat([]byte{kind}, chunkSize)
		binary.BigEndian.PutUint32(b, uint32(i))
		return b
	}
	workerDone := make(chan error, 1)
	go func() {
		var buf []byte
		for i := 0; i < chunks; i++ {
			buf = protocol.AppendRequest(buf[:0], protocol.WorkData, []byte(h), payload('w', i))
			worker.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := worker.nc.Write(buf); err != nil {
				workerDone <- err
				return
			}
		}
		worker.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, err := worker.nc.Write(protocol.AppendRequest(nil, protocol.WorkComplete, []byte(h), []byte("done")))
		workerDone <- err
	}()
	clientDone := make(chan error, 1)
	go func() {
		var buf []byte
		for i := 0; i < chunks/4; i++ {
			buf = protocol.AppendRequest(buf[:0], protocol.EchoReq, payload('c', i))
			client.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := client.nc.Write(buf); err != nil {
				clientDone <- err
				return
			}
		}
		clientDone <- nil
	}()
	// The server keeps reading both while the client does not read: both writers finish.
	for _, ch := range []chan error{workerDone, clientDone} {
		select {
		case err := <-ch:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("a peer could not send: the server stopped reading while a client did not read")
		}
	}

	// 31 MiB through the race detector on a shared 2-core machine: a wait longer than readTimeout
	// for one packet is still a stall, not a slow reader.
	var data, echoes int
	for data < chunks || echoes < chunks/4 {
		p := client.nextWithin(10*time.Second, fmt.Sprintf(" (after %d of %d WORK_DATA and %d of %d ECHO_RES)", data, chunks, echoes, chunks/4))
		switch p.typ {
		case protocol.WorkData:
			if want := string(payload('w', data)); p.args[0] != h || p.args[1] != want {
				t.Fatalf("WORK_DATA %d out of order or corrupted", data)
			}
			data++
		case protocol.EchoRes:
			if want := string(payload('c', echoes)); p.args[0] != want {
				t.Fatalf("ECHO_RES %d out of order or corrupted", echoes)
			}
			echoes++
		default:
			t.Fatalf("got %s after %d WORK_DATA and %d ECHO_RES", p.typ, data, echoes)
		}
	}
	client.expect(protocol.WorkComplete, h, "done")
	roundTrip(t, addr)
}

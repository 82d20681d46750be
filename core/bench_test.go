package core

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/gearhq/gear/protocol"
)

// lastPacket keeps the last packet sent and its encoding in one reused buffer, as a transport
// would append it to the peer's output: the cost of the job lifecycle itself, without sockets.
type lastPacket struct{ buf []byte }

func (l *lastPacket) Send(_ *Peer, pkt *protocol.Packet) {
	l.buf = protocol.AppendResponse(l.buf[:0], pkt.Type, pkt.Args...)
}

type nopLink struct{}

func (nopLink) Hold() Held { return nil }

// BenchmarkDispatch_SubmitGrabComplete drives the handlers directly: submit, JOB_CREATED, grab,
// assign, complete, forward, per job.
func BenchmarkDispatch_SubmitGrabComplete(b *testing.B) {
	benchLifecycle(b, nil)
}

// BenchmarkDispatch_SubmitGrabCompleteObserved is the same with an Observer counting events: the
// cost of listening.
func BenchmarkDispatch_SubmitGrabCompleteObserved(b *testing.B) {
	n := 0
	benchLifecycle(b, ObserverFunc(func(Event) { n++ }))
	if n == 0 {
		b.Fatal("no events")
	}
}

func benchLifecycle(b *testing.B, o Observer) {
	c, err := New(Options{HandlePrefix: "H:bench", WorkerWakeup: WakeOnePerJob, WakeTimeout: 1e9, Observer: o}, &lastPacket{})
	if err != nil {
		b.Fatal(err)
	}
	tx := &lastPacket{}
	client, worker := NewPeer(1, "127.0.0.1", nil, nopLink{}), NewPeer(2, "127.0.0.1", nil, nopLink{})
	c.Connect(client)
	c.Connect(worker)
	fn, payload := []byte("fn"), make([]byte, 64)
	c.Handle(tx, worker, &protocol.Packet{Magic: protocol.MagicReq, Type: protocol.CanDo, Args: [][]byte{fn}})
	submit := &protocol.Packet{Magic: protocol.MagicReq, Type: protocol.SubmitJob, Args: [][]byte{fn, nil, payload}}
	grab := &protocol.Packet{Magic: protocol.MagicReq, Type: protocol.GrabJobUniq}
	complete := &protocol.Packet{Magic: protocol.MagicReq, Type: protocol.WorkComplete, Args: [][]byte{nil, payload}}
	handle := make([]byte, 0, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.Handle(tx, client, submit)
		c.Handle(tx, worker, grab)
		// The handle is the first argument of the JOB_ASSIGN_UNIQ just sent to the worker.
		assign := tx.buf[protocol.HeaderSize:]
		handle = append(handle[:0], assign[:bytes.IndexByte(assign, 0)]...)
		complete.Args[0] = handle
		c.Handle(tx, worker, complete)
	}
	b.StopTimer()
	if n := len(c.Jobs()); n != 0 {
		b.Fatalf("%d jobs left", n)
	}
}

// The dashboard's questions of a large server: 1,000,000 queued background jobs over 10,000
// functions. A page must cost about its own size, not the server's.
func BenchmarkViews_LargeServer(b *testing.B) {
	c, err := New(Options{HandlePrefix: "H:bench", WorkerWakeup: WakeOnePerJob, WakeTimeout: 1e9}, &lastPacket{})
	if err != nil {
		b.Fatal(err)
	}
	tx := &lastPacket{}
	client := NewPeer(1, "127.0.0.1", nil, nopLink{})
	c.Connect(client)
	const functions, jobs = 10_000, 1_000_000
	names := make([][]byte, functions)
	for i := range names {
		names[i] = []byte(fmt.Sprintf("function-%05d", i))
	}
	submit := &protocol.Packet{Magic: protocol.MagicReq, Type: protocol.SubmitJobBg, Args: [][]byte{nil, nil, make([]byte, 64)}}
	for i := range jobs {
		submit.Args[0] = names[i%functions]
		c.Handle(tx, client, submit)
	}
	b.Run("JobPage/first", func(b *testing.B) {
		for range b.N {
			if p, _ := c.JobPage(JobFilter{}, 0, 100); p.Total != jobs || len(p.Jobs) != 100 {
				b.Fatal("wrong page")
			}
		}
	})
	b.Run("JobPage/last", func(b *testing.B) {
		for range b.N {
			if p, _ := c.JobPage(JobFilter{}, jobs-100, 100); len(p.Jobs) != 100 {
				b.Fatal("wrong page")
			}
		}
	})
	b.Run("JobPage/one-function-last", func(b *testing.B) {
		for range b.N {
			if p, _ := c.JobPage(JobFilter{Function: "function-00042"}, 50, 50); p.Total != 100 || len(p.Jobs) != 50 {
				b.Fatal("wrong page")
			}
		}
	})
	b.Run("Functions", func(b *testing.B) {
		for range b.N {
			if len(c.Functions()) != functions {
				b.Fatal("wrong list")
			}
		}
	})
	b.Run("Info", func(b *testing.B) {
		for range b.N {
			c.Info()
		}
	})
}

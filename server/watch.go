package server

import (
	"sync/atomic"
	"time"
)

// Slow and silent peers. A connection is a slot (a descriptor, buffers, a place under the
// connection limits); two kinds of peer could hold one forever without the limits noticing:
//
//   - one that starts a packet and sends the rest a byte a minute (Options.PacketTimeout bounds
//     how long one packet may take to arrive once its first byte has), and
//   - one that connects and never says anything (Options.SilentTimeout bounds how long a
//     connection may stay without a first complete packet or admin line).
//
// The readers record what they see in inputWatch (atomics: a store when a partial packet starts
// and when the first frame arrives, nothing per frame otherwise), and one sweep a second, over
// all connections, closes the offenders with a log line. No timer or deadline per connection.

// sweepEvery is how often the watch looks at the connections.
const sweepEvery = time.Second

// inputWatch is what a connection's reader reports of its input.
type inputWatch struct {
	connected    int64        // Unix ns of the accept
	partialSince atomic.Int64 // Unix ns when the packet now arriving began (0: none)
	spoke        atomic.Bool  // a complete frame has arrived
	swept        atomic.Bool  // closed by a sweep (it may stay listed until its reader notices)
	// owned by the reader
	frames          uint64 // frames decoded so far
	framesAtPartial uint64 // frames when partialSince was set: more since means a new packet
}

// sawFrame is called by the reader for every complete frame.
func (w *inputWatch) sawFrame() {
	if w.frames == 0 {
		w.spoke.Store(true)
	}
	w.frames++
}

// waiting is called by the reader before it waits for more input, with how many bytes of an
// incomplete frame it holds.
func (w *inputWatch) waiting(buffered int, now func() time.Time) {
	if buffered == 0 {
		if w.partialSince.Load() != 0 {
			w.partialSince.Store(0)
		}
		return
	}
	// A frame is incomplete: a new one if frames arrived since the last partial was noted.
	if w.partialSince.Load() == 0 || w.frames != w.framesAtPartial {
		w.partialSince.Store(now().UnixNano())
		w.framesAtPartial = w.frames
	}
}

// sweepLoop closes connections that break the packet or silence timeouts.
func (s *Server) sweepLoop() {
	defer s.wg.Done()
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.sweep(s.opts.Now())
		case <-s.done:
			return
		}
	}
}

// sweep closes the connections over a timeout at now.
func (s *Server) sweep(now time.Time) {
	type offender struct {
		c      *conn
		why    string
		silent bool
	}
	var out []offender
	packet, silent := int64(s.opts.PacketTimeout), int64(s.opts.SilentTimeout)
	s.mu.Lock()
	for c := range s.conns {
		if c.in.swept.Load() {
			continue
		}
		if ps := c.in.partialSince.Load(); packet > 0 && ps != 0 && now.UnixNano()-ps > packet {
			out = append(out, offender{c, "a packet begun " + time.Duration(now.UnixNano()-ps).Round(time.Second).String() + " ago is still incomplete", false})
		} else if silent > 0 && !c.in.spoke.Load() && ps == 0 && now.UnixNano()-c.in.connected > silent {
			out = append(out, offender{c, "nothing received since it connected " + time.Duration(now.UnixNano()-c.in.connected).Round(time.Second).String() + " ago", true})
		}
	}
	s.mu.Unlock()
	for _, o := range out {
		if !o.c.in.swept.CompareAndSwap(false, true) {
			continue
		}
		if o.silent {
			s.closedSilent.Add(1)
		} else {
			s.closedSlow.Add(1)
		}
		o.c.log.Warn("closing a slow or silent connection", "reason", o.why,
			"packet_timeout", s.opts.PacketTimeout, "silent_timeout", s.opts.SilentTimeout)
		o.c.closeSocket()
	}
}

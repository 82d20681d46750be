// Package core holds the job server's rules — queues, priorities, unique keys, wake-ups, the job
// lifecycle, the durable hand-off, the per-packet handlers and the admin commands — and knows no
// sockets. A transport (package server) decodes packets, calls Handle or Admin with the Peer that
// sent them, and writes the packets the core gives it through a Tx.
//
// # Concurrency
//
// All state sits behind one lock, as gearmand keeps it in one processing thread: a call's work
// under it is a few map and slice operations, never I/O. Every entry point takes the lock; Tx.Send,
// Link.Hold and Held.Release are called with it held and must only queue. Unexported functions and
// the Peer fields marked so expect the lock to be held.
//
// Output goes where the transport says per call: each entry point takes the Tx that carries what
// the call produces (a reader's batch, an event loop's round). Output the core makes on its own —
// a store acknowledgement, an epoch job falling due — goes through the Tx given to New.
package core

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/gearhq/gear/internal/faillog"
	"github.com/gearhq/gear/protocol"
	"github.com/gearhq/gear/store"
)

// Tx takes the packets one call into the core produces. Send queues pkt to peer to; pkt and its
// arguments are valid only during the call.
type Tx interface {
	Send(to *Peer, pkt *protocol.Packet)
}

// Link is the transport's side of a peer.
type Link interface {
	// Hold reserves the place of a reply given later (a durable job's JOB_CREATED): whatever is
	// sent to the peer after it waits for it, so replies keep their order.
	Hold() Held
}

// Receiver is a Link whose peer lives in the same process (an importer, a test): transports hand
// it the packets sent to the peer instead of writing them to a connection. It is called with the
// core's lock held and must only queue.
type Receiver interface {
	Link
	Receive(pkt *protocol.Packet)
}

// Held is a reply whose place is reserved. Release fills it in and lets it, and whatever waits
// behind it, go out.
type Held interface {
	Release(pkt *protocol.Packet)
}

// Core is the job server's state and rules. Create it with New; the transport calls Connect for
// each peer, Handle for each packet, Admin for each admin line and Disconnect when it leaves.
type Core struct {
	opts  Options
	log   *slog.Logger
	async Tx // output the core makes on its own

	mu           sync.Mutex // guards everything below and the Peer fields marked so
	functions    map[string]*function
	jobs         map[uint64]*job // every unfinished job, by seq
	queuedBytes  int64           // payload bytes of the unfinished jobs
	tokenWaits   []*function     // rate-limited functions waiting for a token (gates.go)
	dead         []*DeadJob      // the dead set, oldest first (retry.go)
	deadByHandle map[string]*DeadJob
	settingsMu   sync.Mutex      // orders SetFunction's store writes; taken before the lock
	jobsPeak     int             // largest len(jobs) since it was last rebuilt
	foreignJobs  map[string]*job // replayed jobs whose handle is not HandlePrefix:seq, by handle
	prefix       string          // HandlePrefix + ":"
	peers        map[*Peer]struct{}
	acks         map[*job][]ack // JOB_CREATED replies waiting for their job to be stored
	handleSeq    uint64
	reservedSeq  uint64      // handles up to this are reserved in the store
	draining     bool        // graceful shutdown: no new jobs handed out or accepted
	fence        fenceState  // lease lost: no jobs handed out, no background submits (fence.go)
	refused      faillog.Run // background jobs the store failed to take, for the log (durable.go)
	drainedCh    chan struct{}
	epochs       jobHeap
	timeouts     jobHeap
	sched        schedules   // named schedules (cron.go)
	wakeChecks   []wakeCheck // NOOPs sent, oldest first, to see whether their workers acted on them
	lastSweep    time.Time
	memoryToFree bool
	pkt          protocol.Packet // scratch for Tx.Send: one call at a time holds the lock
	pktArgs      [6][]byte
	scratch      []byte // the arguments one call makes for the packets it sends (see strArg)

	tickWake chan struct{}
}

// New validates opts, replays the store and returns the core. async carries the packets the core
// sends on its own (store acknowledgements, scheduled work).
func New(opts Options, async Tx) (*Core, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	s := &Core{
		opts:         opts,
		log:          opts.Logger,
		async:        async,
		functions:    make(map[string]*function),
		jobs:         make(map[uint64]*job),
		prefix:       opts.HandlePrefix + ":",
		acks:         make(map[*job][]ack),
		peers:        make(map[*Peer]struct{}),
		tickWake:     make(chan struct{}, 1),
		deadByHandle: make(map[string]*DeadJob),
		lastSweep:    opts.Now(),
		refused: faillog.Run{Failure: "cannot store background job", Recovery: "background jobs are stored again",
			Count: "refused", Level: slog.LevelError, Now: opts.Now},
	}
	s.epochs.less = func(a, b *job) bool { return a.x.when.Before(b.x.when) }
	s.timeouts.less = func(a, b *job) bool { return a.x.deadline.Before(b.x.deadline) }
	if st := opts.Store; st != nil {
		s.mu.Lock()
		err := st.Replay(func(r *store.Job) error { s.restore(async, r); return nil })
		s.handleSeq = max(s.handleSeq, st.NextSeq()-1) // handles stay unique across restarts
		s.reservedSeq = s.handleSeq
		s.mu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("replaying stored jobs: %w", err)
		}
		if n := len(s.jobs); n > 0 {
			s.log.Info("replayed stored background jobs", "jobs", n)
		}
	}
	s.mu.Lock()
	// what operators set while serving, and the dead set; then what the start options set
	err := errors.Join(s.loadSettings(), s.loadDead())
	s.applyMaxQueue()
	if err == nil {
		err = s.applyStartSettings()
	}
	flagSchedules, schedErr := s.loadSchedules()
	s.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("loading function settings: %w", err)
	}
	for _, sc := range flagSchedules {
		schedErr = errors.Join(schedErr, s.saveSchedule(sc.Name, &sc))
	}
	if schedErr != nil {
		return nil, fmt.Errorf("loading schedules: %w", schedErr)
	}
	return s, nil
}

// lock takes the lock for one call into the core and clears the scratch space of the last call.
func (s *Core) lock() {
	s.mu.Lock()
	if cap(s.scratch) > 64<<10 {
		s.scratch = nil // a burst made it large: do not keep it
	}
	s.scratch = s.scratch[:0]
}

// Arguments of the packets a call sends are made in the core's scratch space, not in a local
// buffer: Tx is an interface, so whatever is passed to it leaves the caller's stack, and a local
// buffer would cost an allocation per packet. They stay valid until the call returns.

// strArg is v as a packet argument.
func (s *Core) strArg(v string) []byte {
	n := len(s.scratch)
	s.scratch = append(s.scratch, v...)
	return s.scratch[n:len(s.scratch):len(s.scratch)]
}

// handleArg is j's handle as a packet argument.
func (s *Core) handleArg(j *job) []byte {
	n := len(s.scratch)
	s.scratch = s.appendHandle(s.scratch, j)
	return s.scratch[n:len(s.scratch):len(s.scratch)]
}

// intArg is v in decimal as a packet argument.
func (s *Core) intArg(v int) []byte {
	n := len(s.scratch)
	s.scratch = strconv.AppendInt(s.scratch, int64(v), 10)
	return s.scratch[n:len(s.scratch):len(s.scratch)]
}

// send queues a packet to peer to through tx. The lock is held.
func (s *Core) send(tx Tx, to *Peer, t protocol.Type, args ...[]byte) {
	s.pkt = protocol.Packet{Magic: protocol.MagicRes, Type: t, Args: append(s.pktArgs[:0], args...)}
	tx.Send(to, &s.pkt)
}

// sendError answers peer to with an ERROR packet. The lock is held.
func (s *Core) sendError(tx Tx, to *Peer, code, text string) {
	s.send(tx, to, protocol.Error, s.strArg(code), s.strArg(text))
}

// release fills in a held reply. The lock is held.
func (s *Core) release(h Held, t protocol.Type, args ...[]byte) {
	s.pkt = protocol.Packet{Magic: protocol.MagicRes, Type: t, Args: append(s.pktArgs[:0], args...)}
	h.Release(&s.pkt)
}

// Connect registers a new peer.
func (s *Core) Connect(p *Peer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p.exceptions = s.opts.Exceptions
	s.resolveGrant(p)
	s.peers[p] = struct{}{}
	s.emitPeer(EventConnected, p, "")
}

// Disconnect forgets a peer that left: its running jobs go back to the queue, its waiting
// foreground jobs lose their client, its abilities are withdrawn. Calling it again does nothing.
func (s *Core) Disconnect(tx Tx, p *Peer) {
	s.lock()
	defer s.mu.Unlock()
	if p.gone {
		return
	}
	p.gone = true
	delete(s.peers, p)
	for j := range p.running {
		s.requeueLost(tx, j)
	}
	p.running = nil
	for j := range p.waiting {
		s.detachClient(j, p)
	}
	p.waiting = nil
	s.resetAbilities(tx, p)
	s.emitPeer(EventDisconnected, p, "")
	s.checkDrained()
}

// Peers is the number of connected peers.
func (s *Core) Peers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.peers)
}

// Drain starts a graceful shutdown: from now on no job is accepted or handed out. The channel it
// returns is closed once no job runs any more.
func (s *Core) Drain() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.startDrain()
	return s.drainedCh
}

// startDrain is Drain with the lock held.
func (s *Core) startDrain() {
	if s.draining {
		return
	}
	s.draining = true
	s.drainedCh = make(chan struct{})
	s.log.Info("graceful shutdown: waiting for running jobs", "running", s.runningCount())
	s.checkDrained()
}

// Draining reports whether a graceful shutdown is under way.
func (s *Core) Draining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining
}

// runningCount counts jobs assigned to workers.
func (s *Core) runningCount() int {
	n := 0
	for _, f := range s.functions {
		n += f.running
	}
	return n
}

// checkDrained ends a graceful shutdown once nothing runs.
func (s *Core) checkDrained() {
	if s.draining && s.drainedCh != nil && s.runningCount() == 0 {
		select {
		case <-s.drainedCh:
		default:
			close(s.drainedCh)
		}
	}
}

// newSeq numbers a new job; its handle is HandlePrefix:seq.
func (s *Core) newSeq() uint64 {
	s.handleSeq++
	if s.opts.Store != nil && s.handleSeq > s.reservedSeq {
		// Foreground jobs are not stored: reserve their numbers in blocks, so a handle given out
		// before a restart is never given to another job after it.
		s.reservedSeq = s.handleSeq + handleReserveBlock
		s.opts.Store.ReserveSeq(s.reservedSeq + 1)
	}
	return s.handleSeq
}

const handleReserveBlock = 10000

// A job's handle is not kept as a string: it is HandlePrefix:seq, written out when sent (which
// saves an allocation and 40 bytes per job), except for replayed jobs stored under another prefix.

// appendHandle appends j's handle to dst.
func (s *Core) appendHandle(dst []byte, j *job) []byte {
	if j.x != nil && j.x.handle != "" {
		return append(dst, j.x.handle...)
	}
	return strconv.AppendUint(append(dst, s.prefix...), j.seq, 10)
}

// handleOf is j's handle as a string, for logs and listings.
func (s *Core) handleOf(j *job) string {
	var buf [64]byte
	return string(s.appendHandle(buf[:0], j))
}

// jobByHandle finds an unfinished job by its handle; nil if there is none.
func (s *Core) jobByHandle(h []byte) *job {
	if seq, ok := s.parseHandle(h); ok {
		if j := s.jobs[seq]; j != nil && (j.x == nil || j.x.handle == "") {
			return j
		}
	}
	return s.foreignJobs[string(h)]
}

// parseHandle returns the seq of a handle of the form HandlePrefix:seq, written as appendHandle
// writes it: decimal, no sign (ParseUint takes none), no leading zeros.
func (s *Core) parseHandle(h []byte) (uint64, bool) {
	if len(h) <= len(s.prefix) || string(h[:len(s.prefix)]) != s.prefix || h[len(s.prefix)] == '0' {
		return 0, false
	}
	seq, err := strconv.ParseUint(string(h[len(s.prefix):]), 10, 64)
	if err != nil {
		return 0, false
	}
	return seq, true
}

// pid is reported by the admin `getpid`.
var pid = os.Getpid()

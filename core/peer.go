package core

import (
	"log/slog"
	"time"

	"github.com/gearhq/gear/access"
)

// ability is one function a worker registered, with its CAN_DO_TIMEOUT (0 = none).
type ability struct {
	fn      *function
	timeout time.Duration
}

// recentEnds is how many handles a worker remembers after their job left it, so a late WORK_*
// packet for one (WORK_FAIL after WORK_EXCEPTION, a result after a timeout or a cancel) is dropped
// quietly instead of getting an ERROR that kills libgearman and Perl workers.
const recentEnds = 16

// Peer is what Gearman knows of one connection: a client, a worker, an admin console, or several
// at once. The transport creates it with NewPeer; the unexported fields are the core's, guarded by
// its lock.
type Peer struct {
	ID     uint64       // shown as the descriptor in `workers`
	Remote string       // peer IP
	Log    *slog.Logger // the transport's logger for this connection
	Link   Link
	// Identity is who the peer is, for the access rules; the transport sets it before Connect.
	Identity access.Identity

	clientID    string
	abilities   []ability
	grabNext    int  // round-robin start among abilities
	isWorker    bool // registered a function or asked for a job
	sleeping    bool // sent PRE_SLEEP and has not asked for work since
	noopSent    bool // a NOOP is on its way for the current sleep
	wokenAt     time.Time
	passedOver  bool // woken and never asked for a job: woken last until it grabs again
	exceptions  bool
	cancelAware bool              // asked for WORK_CANCEL (OPTION_REQ "cancellation")
	running     map[*job]int64    // jobs assigned to this worker: when each started (Unix ns; kept only for an Observer)
	waiting     map[*job]struct{} // foreground jobs this client waits on
	ended       [recentEnds]*job
	endedNext   int
	gone        bool            // disconnected; never sent to again
	grant       *access.Grant   // what the access rules let it do (nil: everything)
	maySubmit   map[string]bool // memo of grant.MaySubmit
}

// NewPeer returns a peer for a new connection; Connect registers it.
func NewPeer(id uint64, remote string, log *slog.Logger, link Link) *Peer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Peer{ID: id, Remote: remote, Log: log, Link: link, clientID: "-"}
}

// rememberEnded notes that a job left this worker, so its late packets are dropped quietly. The
// job itself is kept (its payload is gone by then): its handle is written out only when needed.
func (p *Peer) rememberEnded(j *job) {
	p.ended[p.endedNext] = j
	p.endedNext = (p.endedNext + 1) % recentEnds
}

// recentlyEnded reports whether handle left worker p recently.
func (s *Core) recentlyEnded(p *Peer, handle []byte) bool {
	var buf [64]byte
	for _, j := range p.ended {
		if j != nil && string(s.appendHandle(buf[:0], j)) == string(handle) {
			return true
		}
	}
	return false
}

// Package store keeps Gear's background jobs on stable storage, so they survive a crash or restart.
//
// The job server calls Add when a background job is submitted and answers JOB_CREATED only when
// Add's callback reports the job durable; Remove when the job ends (completed, failed, cancelled,
// dropped); SetRetries when its worker was lost. At start it Replays every stored job in submission
// order. Writes from all connections are applied by one committer goroutine in batches: every Add
// waiting at the moment shares one fsync (group commit), and under SyncAlways the committer waits
// briefly for the submitters it just answered, so that they share the next one too.
package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Job is a stored background job.
type Job struct {
	Seq      uint64 // submission order, unique across restarts; the job handle ends in it
	Handle   string
	Function string
	Unique   string
	Reducer  string
	Data     []byte
	Priority uint8 // 0 high, 1 normal, 2 low
	When     int64 // epoch jobs: Unix seconds when due; 0 = runnable now
	Retries  uint32
	Created  int64 // Unix nanoseconds
}

// SyncMode trades safety for speed.
type SyncMode int

const (
	// SyncAlways fsyncs every batch holding an Add before the job is acknowledged (the default):
	// an acknowledged job survives a crash of the machine.
	SyncAlways SyncMode = iota
	// SyncInterval acknowledges once the job is written to the operating system and fsyncs every
	// second: a process crash loses nothing, a machine crash up to a second of jobs.
	SyncInterval
	// SyncNone leaves fsync to the OS (the store fsyncs only a retired log file and at Close): a
	// process crash loses nothing, a machine crash what the OS had not written yet.
	SyncNone
)

func (m SyncMode) String() string {
	switch m {
	case SyncAlways:
		return "always"
	case SyncInterval:
		return "interval"
	case SyncNone:
		return "none"
	}
	return fmt.Sprintf("SyncMode(%d)", int(m))
}

// ParseSyncMode reads "always", "interval" or "none".
func ParseSyncMode(s string) (SyncMode, error) {
	for _, m := range []SyncMode{SyncAlways, SyncInterval, SyncNone} {
		if m.String() == s {
			return m, nil
		}
	}
	return 0, fmt.Errorf("sync mode must be always, interval or none, not %q", s)
}

// Store is the durable queue.
type Store interface {
	// Add stores j and calls done once it is durable (per the SyncMode) or failed. done runs on the
	// store's goroutine, never the caller's (the server calls Add holding the lock done takes): it
	// must not block, and must not call the Store.
	Add(j *Job, done func(error))
	// Remove forgets a job. Removals ride along with the next batch, written to the OS but not
	// fsynced; one lost in a crash of the machine means the job runs again (at-least-once).
	Remove(seq uint64)
	// SetRetries records a job's retry count.
	SetRetries(j *Job)
	// Replay calls fn for every stored job in submission order. Call it before any Add.
	Replay(fn func(*Job) error) error
	// NextSeq is the first sequence number no job of this or any earlier run used.
	NextSeq() uint64
	// ReserveSeq records that sequence numbers below upTo may be in use by jobs that are not
	// stored (foreground jobs), so NextSeq after a restart never hands them out again.
	ReserveSeq(upTo uint64)
	Stats() Stats
	Close() error
}

// Stats describes a store for the admin views.
type Stats struct {
	Engine    string
	Path      string
	Sync      SyncMode
	Jobs      int64
	LastSync  time.Time
	LastError string
	// FailingSince is when the store's writes began to fail, zero while they succeed: the first
	// failed batch of a run of them (a database that is down, a failed fsync, which is final).
	FailingSince time.Time
	// Counters since the store was opened: batches committed (one write, and under SyncAlways one
	// fsync, each), failed ones, the operations they carried, and the time spent committing.
	Commits      int64
	CommitErrors int64
	CommittedOps int64
	CommitTime   time.Duration
	// The distributions of commit latency (seconds) and batch size (operations); empty for a
	// store that does not batch.
	CommitLatency, BatchSize HistogramSnapshot
}

// ErrDiskFull refuses an Add when the store's file system has less free space than its minimum:
// better a clear error for one submit than an engine that cannot write its log.
var ErrDiskFull = errors.New("store: not enough free disk space")

// ErrCorrupt reports a stored record that cannot be decoded.
var ErrCorrupt = errors.New("store: corrupt job record")

const recordVersion = 1

// encode appends j's value encoding to buf, growing it at most once.
func encode(buf []byte, j *Job) []byte {
	n := 2 + uvarintLen(uint64(j.Retries)) + varintLen(j.When) + varintLen(j.Created) +
		bytesLen(len(j.Handle)) + bytesLen(len(j.Function)) + bytesLen(len(j.Unique)) +
		bytesLen(len(j.Reducer)) + bytesLen(len(j.Data))
	if cap(buf)-len(buf) < n {
		buf = append(make([]byte, 0, len(buf)+n), buf...)
	}
	buf = append(buf, recordVersion, j.Priority)
	buf = binary.AppendUvarint(buf, uint64(j.Retries))
	buf = binary.AppendVarint(buf, j.When)
	buf = binary.AppendVarint(buf, j.Created)
	buf = appendField(buf, j.Handle)
	buf = appendField(buf, j.Function)
	buf = appendField(buf, j.Unique)
	buf = appendField(buf, j.Reducer)
	buf = binary.AppendUvarint(buf, uint64(len(j.Data)))
	return append(buf, j.Data...)
}

func appendField(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

func uvarintLen(v uint64) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
}

// bytesLen is the length of a field of n bytes with its length prefix.
func bytesLen(n int) int { return uvarintLen(uint64(n)) + n }

// varintLen is the length of binary.AppendVarint's zig-zag encoding of v.
func varintLen(v int64) int { return uvarintLen(uint64(v<<1) ^ uint64(v>>63)) }

// decode reads a record written by encode. It checks every length before slicing, so a damaged
// record is an error, never a panic.
func decode(seq uint64, b []byte) (*Job, error) {
	if len(b) < 2 || b[0] != recordVersion || b[1] > 2 {
		return nil, fmt.Errorf("%w %d: bad header", ErrCorrupt, seq)
	}
	j := &Job{Seq: seq, Priority: b[1]}
	b = b[2:]
	uv := func() (uint64, bool) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	sv := func() (int64, bool) {
		v, n := binary.Varint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	bytesField := func() ([]byte, bool) {
		n, ok := uv()
		if !ok || n > uint64(len(b)) {
			return nil, false
		}
		out := b[:n:n]
		b = b[n:]
		return out, true
	}
	retries, ok1 := uv()
	when, ok2 := sv()
	created, ok3 := sv()
	if !ok1 || !ok2 || !ok3 || retries > 1<<32-1 {
		return nil, fmt.Errorf("%w %d: bad counters", ErrCorrupt, seq)
	}
	j.Retries, j.When, j.Created = uint32(retries), when, created
	var strs [4]string
	for i := range strs {
		s, ok := bytesField()
		if !ok {
			return nil, fmt.Errorf("%w %d: bad field %d", ErrCorrupt, seq, i)
		}
		strs[i] = string(s)
	}
	j.Handle, j.Function, j.Unique, j.Reducer = strs[0], strs[1], strs[2], strs[3]
	data, ok := bytesField()
	if !ok || len(b) != 0 {
		return nil, fmt.Errorf("%w %d: bad data", ErrCorrupt, seq)
	}
	j.Data = append([]byte{}, data...)
	return j, nil
}

package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"
)

// Pebble is the embedded default store: CockroachDB's Pebble LSM engine, chosen by measurement
// (see the README): its write-ahead log group-commits synced batches, it replays a million jobs in
// a fraction of a second, reclaims the space of deleted jobs by compaction, and needs no cgo.
type Pebble struct {
	db   *pebble.DB
	path string
	mode SyncMode
	log  *slog.Logger
	wal  *walFS // decides which WAL syncs reach the disk

	lifecycle // its mu guards the queue: refused operations are the store closing, the disk full
	queue     []op
	spare     []op // the committer's last batch, emptied, to be the next queue
	adds      int  // Adds in queue
	gather    int  // while the committer gathers Adds for one fsync, how many it waits for

	// The committer's own: the moving average of its fsyncs (how long it gathers at most), and the
	// first fsync error, after which it writes nothing more.
	syncTime time.Duration
	syncErr  error

	minFree       atomic.Uint64
	freeBytes     atomic.Uint64
	freeCheckedAt atomic.Int64

	nextSeq atomic.Uint64
	dirty   atomic.Bool // written since the last fsync (SyncInterval)
	counters
}

type opKind uint8

const (
	opAdd opKind = iota
	opRemove
	opUpdate
	opReserve
	opKey // a side record (schedules.go): key set to value, or deleted when value is nil
	// PostgreSQL's dead set (dead.go): a dead job's row upserted or deleted in the next batch. The
	// Pebble store writes its dead set directly (settings.go).
	opDeadAdd
	opDeadDelete
)

type op struct {
	kind  opKind
	seq   uint64
	value []byte
	done  func(error)
	// key and keyValue: a side record written in the same batch (opKey; with opAdd, atomically
	// with the job: a schedule's tick, schedules.go).
	key, keyValue []byte
}

var metaNextSeq = []byte("m:nextseq")

// putJobKey writes seq's key into k (9 bytes) and returns it.
func putJobKey(k []byte, seq uint64) []byte {
	k[0] = 'j'
	binary.BigEndian.PutUint64(k[1:9], seq)
	return k[:9]
}

// OpenPebble opens (creating if needed) the store in dir. A second server on the same directory is
// refused: Pebble holds a file lock on it.
func OpenPebble(dir string, mode SyncMode, log *slog.Logger) (*Pebble, error) {
	return openPebble(dir, mode, log, vfs.Default)
}

// openPebble opens the store on fs (tests use Pebble's strict in-memory FS to simulate a crash of
// the machine).
func openPebble(dir string, mode SyncMode, log *slog.Logger, fs vfs.FS) (*Pebble, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := mkdirDurable(fs, dir); err != nil {
		return nil, fmt.Errorf("data directory %s: %w", dir, err)
	}
	wal := newWALFS(fs)
	db, err := pebble.Open(dir, &pebble.Options{Logger: pebbleLogger{log}, FS: wal})
	if err != nil {
		if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK) || strings.Contains(err.Error(), "lock") {
			return nil, fmt.Errorf("data directory %s is in use by another gear server (its lock is held): %w", dir, err)
		}
		return nil, fmt.Errorf("data directory %s: %w", dir, err)
	}
	p := &Pebble{db: db, path: dir, mode: mode, log: log, wal: wal}
	p.initLifecycle()
	p.counters.init()
	if v, closer, err := db.Get(metaNextSeq); err == nil {
		if len(v) == 8 {
			p.nextSeq.Store(binary.BigEndian.Uint64(v))
		}
		closer.Close()
	} else if !errors.Is(err, pebble.ErrNotFound) {
		db.Close()
		return nil, fmt.Errorf("data directory %s: %w", dir, err)
	}
	if p.nextSeq.Load() == 0 {
		p.nextSeq.Store(1)
	}
	go p.commitLoop()
	return p, nil
}

// mkdirDurable creates dir and any missing parents, and fsyncs the directories that gained an
// entry: Pebble fsyncs the data directory for the files it creates, but a machine crash could still
// lose a new data directory itself, and with it every job acknowledged since.
func mkdirDurable(fs vfs.FS, dir string) error {
	var created []string
	for d := dir; ; {
		if _, err := fs.Stat(d); err == nil {
			break
		}
		created = append(created, d)
		parent := fs.PathDir(d)
		if parent == d || parent == "" || parent == "." {
			break
		}
		d = parent
	}
	if len(created) == 0 {
		return nil
	}
	if err := fs.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	for _, d := range created {
		parent, err := fs.OpenDir(fs.PathDir(d))
		if err != nil {
			return err
		}
		err = errors.Join(parent.Sync(), parent.Close())
		if err != nil {
			return err
		}
	}
	return nil
}

// Replay calls fn for every stored job in submission order.
func (p *Pebble) Replay(fn func(*Job) error) error {
	if err := p.replay(fn); err != nil {
		return fmt.Errorf("data directory %s: %w", p.path, err)
	}
	return nil
}

func (p *Pebble) replay(fn func(*Job) error) error {
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: []byte("j"), UpperBound: []byte("k")})
	if err != nil {
		return err
	}
	defer it.Close()
	var n int64
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) != 9 {
			return fmt.Errorf("%w: key %q", ErrCorrupt, k)
		}
		seq := binary.BigEndian.Uint64(k[1:])
		j, err := decode(seq, it.Value())
		if err != nil {
			return err
		}
		if seq >= p.nextSeq.Load() {
			p.nextSeq.Store(seq + 1)
		}
		n++
		if err := fn(j); err != nil {
			return err
		}
	}
	p.jobs.Store(n)
	return it.Error()
}

// NextSeq is the first sequence number no stored or earlier job used.
func (p *Pebble) NextSeq() uint64 { return p.nextSeq.Load() }

func (p *Pebble) push(o op) {
	p.mu.Lock()
	if p.closing {
		if o.done != nil {
			p.callbackLocked(o.done, errors.New("store is closed"))
		}
		p.mu.Unlock()
		return
	}
	p.queue = append(p.queue, o)
	if o.kind == opAdd {
		p.adds++
	}
	// While the committer gathers Adds for an fsync, only the one it waits for wakes it.
	wake := p.gather == 0 || p.adds >= p.gather
	p.mu.Unlock()
	if wake {
		p.signal()
	}
}

// Add queues j for the next batch; done reports when it is durable. It never blocks, and done
// never runs on the caller's goroutine.
func (p *Pebble) Add(j *Job, done func(error)) {
	if p.diskFull() {
		msg := fmt.Sprintf("%v (%d bytes free in %s, minimum %d)", ErrDiskFull, p.freeBytes.Load(), p.path, p.minFree.Load())
		p.lastErr.Store(&msg)
		p.mu.Lock()
		p.callbackLocked(done, fmt.Errorf("%w: %d bytes free, minimum %d", ErrDiskFull, p.freeBytes.Load(), p.minFree.Load()))
		p.mu.Unlock()
		return
	}
	p.push(op{kind: opAdd, seq: j.Seq, value: encode(nil, j), done: done})
}

// ReserveSeq queues a reservation of sequence numbers below upTo.
func (p *Pebble) ReserveSeq(upTo uint64) { p.push(op{kind: opReserve, seq: upTo}) }

// SetMinFree makes Add refuse jobs (ErrDiskFull) while the data directory's file system has less
// than n bytes free. Pebble cannot survive a failed write to its log — it stops the process — so
// the store stops taking jobs well before that.
func (p *Pebble) SetMinFree(n uint64) { p.minFree.Store(n) }

// diskFull reports whether free space is below the minimum, checking at most every 250 ms.
func (p *Pebble) diskFull() bool {
	minFree := p.minFree.Load()
	if minFree == 0 {
		return false
	}
	now := time.Now().UnixNano()
	if last := p.freeCheckedAt.Load(); now-last > int64(250*time.Millisecond) && p.freeCheckedAt.CompareAndSwap(last, now) {
		// Pebble's file system answers portably (statfs on Unix, GetDiskFreeSpaceEx on Windows).
		if u, err := p.wal.GetDiskUsage(p.path); err == nil {
			p.freeBytes.Store(u.AvailBytes)
		}
	}
	return p.freeBytes.Load() < minFree
}

// Remove queues the deletion of a job.
func (p *Pebble) Remove(seq uint64) { p.push(op{kind: opRemove, seq: seq}) }

// SetRetries queues a rewrite of j with its new retry count.
func (p *Pebble) SetRetries(j *Job) { p.push(op{kind: opUpdate, seq: j.Seq, value: encode(nil, j)}) }

// commitLoop applies queued operations in batches: everything queued while the previous batch was
// being synced goes into the next one, sharing its fsync.
//
// Under SyncAlways it also waits, briefly, for the submitters it just answered. Unpipelined clients
// send their next job as soon as they have the reply to the last one; a batch committed the moment
// the first of them is back would leave the others to the fsync after it, and the clients settle
// into groups taking turns, each fsync carrying a fraction of them. So the committer gathers: once
// an Add is queued, it waits until as many Adds are queued as the last batch had, plus those queued
// while it was syncing, but never longer than an fsync takes (on average, and 2 ms at most). A lone
// sequential submitter is never kept waiting (its next Add is all it waits for); one that left
// costs a single wait.
func (p *Pebble) commitLoop() {
	defer close(p.done)
	var ticker *time.Ticker
	var tick <-chan time.Time
	if p.mode == SyncInterval {
		ticker = time.NewTicker(time.Second)
		defer ticker.Stop()
		tick = ticker.C
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	expect := 0 // Adds expected in the next batch
	for {
		select {
		case <-p.wake:
		case <-tick:
			if p.dirty.Swap(false) {
				err := p.db.LogData(nil, pebble.Sync) // anything still in Pebble's buffer
				if err == nil {
					err = p.wal.syncWAL()
				}
				p.record(err, true)
			}
			continue
		}
		p.mu.Lock()
		if p.mode == SyncAlways && p.adds > 0 && p.adds < expect && !p.closing {
			p.gather = expect
			p.mu.Unlock()
			timer.Reset(min(p.syncTime, maxGather))
		gather:
			for {
				select {
				case <-p.wake: // or a token left from before gathering began
					p.mu.Lock()
					enough := p.adds >= expect || p.closing
					p.mu.Unlock()
					if enough {
						timer.Stop()
						break gather
					}
				case <-timer.C:
					break gather
				}
			}
			p.mu.Lock()
			p.gather = 0
		}
		batch, adds, closing := p.queue, p.adds, p.closing
		p.queue, p.adds = p.spare[:0], 0
		p.mu.Unlock()
		if len(batch) > 0 {
			p.commit(batch, adds)
		}
		clear(batch) // drop the values and callbacks
		if cap(batch) <= 4096 {
			p.spare = batch[:0] // the next queue, unless a burst made it large
		}
		if closing {
			return
		}
		if adds > 0 {
			p.mu.Lock()
			expect = adds + p.adds
			p.mu.Unlock()
		}
	}
}

// maxGather bounds the committer's wait for returning submitters even when fsyncs are slow (a
// spinning disk, a stall): a client's round trip on the same network fits in it many times over.
const maxGather = 2 * time.Millisecond

func (p *Pebble) commit(ops []op, adds int) {
	if p.syncErr != nil {
		// A failed fsync may have dropped records from the log that a later fsync would not report
		// (Linux marks the pages clean), leaving a hole that ends the log at replay; like Pebble after
		// a failed sync of its log, the store takes no more writes.
		for _, o := range ops {
			if o.done != nil {
				o.done(p.syncErr)
			}
		}
		return
	}
	b := p.db.NewBatch()
	defer b.Close()
	var removes int64
	maxSeq, reserve := uint64(0), uint64(0)
	var key [9]byte
	for _, o := range ops {
		switch o.kind {
		case opAdd:
			b.Set(putJobKey(key[:], o.seq), o.value, nil)
			maxSeq = max(maxSeq, o.seq)
			if o.key != nil {
				b.Set(o.key, o.keyValue, nil)
			}
		case opKey:
			setOrDelete(b, o.key, o.keyValue)
		case opUpdate:
			b.Set(putJobKey(key[:], o.seq), o.value, nil)
		case opRemove:
			b.Delete(putJobKey(key[:], o.seq), nil)
			removes++
		case opReserve:
			reserve = max(reserve, o.seq)
		}
	}
	next := p.nextSeq.Load()
	if adds > 0 || reserve > next {
		next = max(next, maxSeq+1, reserve)
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], next)
		b.Set(metaNextSeq, v[:], nil)
	}
	// Every batch is committed with Sync, so it reaches the operating system before its callbacks
	// run (without it Pebble keeps it in its own buffer, which a crash of the process loses); walFS
	// makes Pebble's sync of the log that write(2) alone. Under SyncAlways a batch holding an Add is
	// then fsynced before its callbacks run.
	began := time.Now()
	err := b.Commit(pebble.Sync)
	synced := adds > 0 && p.mode == SyncAlways
	if err == nil && synced {
		start := time.Now()
		err = p.wal.syncForCommit()
		// The moving average bounds how long the committer gathers: never longer than an fsync.
		p.syncTime += (time.Since(start) - p.syncTime) / 8
		if err != nil {
			err = fmt.Errorf("fsync of the log: %w", err)
			p.syncErr = err
		}
	}
	p.record(err, synced)
	p.observeCommit(len(ops), time.Since(began), err)
	if err == nil {
		p.jobs.Add(int64(adds) - removes)
		p.nextSeq.Store(next)
		if !synced {
			p.dirty.Store(true)
		}
	}
	for _, o := range ops {
		if o.done != nil {
			o.done(err)
		}
	}
}

func (p *Pebble) record(err error, synced bool) {
	if err != nil {
		p.setError(err)
		p.writeLog.Failed(p.log, err)
		return
	}
	p.writeLog.OK(p.log)
	if synced {
		p.lastSync.Store(time.Now().UnixNano())
	}
}

// Stats reports the store's state.
func (p *Pebble) Stats() Stats { return p.stats("pebble", p.path, p.mode) }

// Close applies what is queued, syncs, closes the engine, and waits for the callbacks of the
// operations it refused meanwhile. Later calls wait for the first one and return its result.
func (p *Pebble) Close() error {
	p.closeOnce.Do(func() {
		p.stopCommitter()
		err := p.db.LogData(nil, pebble.Sync)
		if err == nil {
			err = p.wal.syncWAL()
		}
		p.closeErr = errors.Join(err, p.db.Close())
		p.waitCallbacks()
	})
	return p.closeErr
}

// pebbleLogger routes Pebble's log through slog.
type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug("pebble: " + fmt.Sprintf(format, args...))
}
func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error("pebble: " + fmt.Sprintf(format, args...))
}
func (l pebbleLogger) Fatalf(format string, args ...any) {
	l.log.Error("pebble: fatal: " + fmt.Sprintf(format, args...))
	os.Exit(1)
}

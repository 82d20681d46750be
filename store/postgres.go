package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Postgres keeps background jobs as rows of a PostgreSQL database, for operators who already run,
// back up and replicate one, and as the shared record of a fleet of gear servers (issue 17).
//
// A server still serves its jobs from memory; the table is their durable record. Writes are group
// committed as in the Pebble store: one committer goroutine takes everything queued — Adds,
// Removes, SetRetries, ReserveSeq, schedule ticks, dead set writes — and sends it as one pipeline
// of a few statements (a multi-row INSERT from arrays, one UPDATE of retries, one DELETE ... WHERE
// seq = ANY, the server row's next sequence number, an upsert and a DELETE of dead jobs) followed
// by a single Sync: PostgreSQL runs a pipeline up to its Sync as one implicit transaction, so a
// batch costs one round trip and one commit. An Add's callback runs after that COMMIT has returned
// (under SyncAlways, after the commit's WAL flush).
//
// Every job row carries its owner, the server that serves it: the handle prefix, which already has
// to differ between servers that share clients. Each server has a row in gear_servers with an epoch
// that grows at every start (and at every rejoin); the fleet's leases, adoption and fencing build on
// both (fleet.go).
type Postgres struct {
	pool   *pgxpool.Pool
	lock   *pgxpool.Conn // holds the owner's advisory lock for the life of the store
	owner  string
	epoch  atomic.Int64 // the server row's epoch this store writes under: a new one at each (re)join (fleet.go)
	where  string       // the database's URL, password masked
	mode   SyncMode
	log    *slog.Logger
	commit time.Duration // a batch's deadline

	ownerWait time.Duration

	lifecycle // its mu guards the queue: refused operations are the store closing, a bad sequence number
	queue     []pgOp
	spare     []pgOp

	// deadPending counts, by handle, the dead jobs queued and not yet committed: a rejoin counts them
	// as the owner's (fleet.go). mu guards it.
	deadPending map[string]int

	// The committer's own: removals, retry counts, reservations and dead set writes of a batch that
	// failed, carried into the next one (a removal lost would run a finished job again after a restart).
	retry []pgOp

	leaseTTL time.Duration
	fleet    fleetState

	nextSeq  atomic.Uint64
	savedSeq uint64 // next_seq as committed in the server row (committer only, after Open)
	counters
}

// pgOp is a queued write. An Add and a SetRetries keep the *Job the core built for them (it is not
// changed after the call).
type pgOp struct {
	kind opKind
	seq  uint64
	job  *Job
	done func(error)
	tick *scheduleTick // a schedule's tick, committed with the job (schedules.go)
	dead *DeadEntry    // opDeadAdd, opDeadDelete (dead.go)
}

// PostgresOptions configures OpenPostgres.
type PostgresOptions struct {
	// URL is a postgres:// URL or a "key=value ..." connection string; empty, PostgreSQL's PG*
	// environment variables (PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD, ...) say where.
	URL string
	// Owner names this server in the database: its jobs' owner. The server uses its job handle
	// prefix. A second store opened with the same owner is refused while the first is open.
	Owner string
	// Sync SyncAlways commits with PostgreSQL's synchronous_commit on (an acknowledged job survives
	// a crash of the database's machine); SyncInterval and SyncNone with it off, leaving the WAL
	// flush to PostgreSQL's WAL writer (a crash of the gear server still loses nothing; one of the
	// database's machine up to three wal_writer_delay, 600 ms by default).
	Sync SyncMode
	Log  *slog.Logger
	// OwnerWait is how long a start waits for the owner's lock, which a server killed a moment ago
	// may still hold until PostgreSQL notices. Default 5 s.
	OwnerWait time.Duration
	// CommitTimeout bounds a batch: connecting, the statements and the commit. A database that does
	// not answer fails the batch's Adds (ERROR QUEUE_ERROR) instead of holding the submits. Default 10 s.
	CommitTimeout time.Duration
	// LeaseTTL, when positive, is the lease the server row is given at start (fleet.go); the fleet
	// loop renews it. Zero: no lease, and no other server ever adopts this one's jobs.
	LeaseTTL time.Duration
}

// ParsePostgresURL checks a URL or connection string (or, if empty, the PG* environment) the way
// OpenPostgres reads it, without connecting.
func ParsePostgresURL(s string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(s)
	if err != nil {
		return nil, fmt.Errorf("--postgres-url: %w", err)
	}
	return cfg, nil
}

// MaskPostgresURL returns where a URL or connection string points, with no password: a URL as
// given with its password (in the user part or the query) replaced by xxxxx; a connection string or
// the environment as the URL of its first host, user and database.
func MaskPostgresURL(s string) string {
	if u, err := url.Parse(s); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		q := u.Query()
		if q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.Redacted()
	}
	cfg, err := pgxpool.ParseConfig(s)
	if err != nil {
		return "(invalid)"
	}
	c := cfg.ConnConfig
	u := &url.URL{Scheme: "postgres", Path: "/" + c.Database}
	if c.User != "" {
		u.User = url.User(c.User)
	}
	if strings.HasPrefix(c.Host, "/") {
		u.RawQuery = url.Values{"host": {c.Host}, "port": {strconv.Itoa(int(c.Port))}}.Encode()
	} else {
		u.Host = net.JoinHostPort(c.Host, strconv.Itoa(int(c.Port)))
	}
	return u.String()
}

// OpenPostgres connects, creates or migrates the schema, and claims the owner's server row (a new
// epoch). The database must be up: a server that cannot reach its store does not start.
func OpenPostgres(ctx context.Context, o PostgresOptions) (*Postgres, error) {
	if o.Owner == "" {
		return nil, errors.New("postgres store: no owner name")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.OwnerWait <= 0 {
		o.OwnerWait = 5 * time.Second
	}
	if o.CommitTimeout <= 0 {
		o.CommitTimeout = 10 * time.Second
	}
	cfg, err := ParsePostgresURL(o.URL)
	if err != nil {
		return nil, err
	}
	where := MaskPostgresURL(o.URL)
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > o.CommitTimeout {
		cfg.ConnConfig.ConnectTimeout = o.CommitTimeout
	}
	rp := cfg.ConnConfig.RuntimeParams
	if _, ok := rp["application_name"]; !ok {
		rp["application_name"] = "gear"
	}
	if o.Sync == SyncAlways {
		rp["synchronous_commit"] = "on"
	} else {
		rp["synchronous_commit"] = "off"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres %s: %w", where, err)
	}
	p := &Postgres{pool: pool, owner: o.Owner, where: where, mode: o.Sync, log: o.Log, commit: o.CommitTimeout, ownerWait: o.OwnerWait,
		leaseTTL: o.LeaseTTL, deadPending: map[string]int{}}
	p.initLifecycle()
	p.counters.init()
	if err := p.open(ctx); err != nil {
		if p.lock != nil {
			p.lock.Release()
		}
		pool.Close()
		return nil, fmt.Errorf("postgres %s: %w", where, err)
	}
	go p.commitLoop()
	return p, nil
}

func (p *Postgres) open(ctx context.Context) error {
	if err := migrate(ctx, p.pool); err != nil {
		return err
	}
	conn, err := p.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	p.lock = conn
	// A server killed a moment ago may still hold the lock: its session ends when PostgreSQL sees
	// the connection closed. Wait a little for that, then give up.
	wait := fmt.Sprintf("SET lock_timeout = %d", p.ownerWait.Milliseconds())
	if _, err := conn.Exec(ctx, wait); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1, hashtext($2))`, lockOwner, p.owner); err != nil {
		if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) && pe.Code == "55P03" { // lock_not_available
			return fmt.Errorf("owner %q is in use by another gear server (give each server its own --job-handle-prefix)", p.owner)
		}
		return err
	}
	if _, err := conn.Exec(ctx, `RESET lock_timeout`); err != nil {
		return err
	}
	var next, epoch int64
	// A lease of 0 ms is NULL: a server without one is never adopted.
	p.fleet.leaseStart = time.Now()
	err = p.pool.QueryRow(ctx, `INSERT INTO gear_servers (owner, epoch, next_seq, lease_until)
		VALUES ($1, 1, 1, now() + nullif($2::bigint, 0) * interval '1 millisecond')
		ON CONFLICT (owner) DO UPDATE SET epoch = gear_servers.epoch + 1, started = now(), heartbeat = now(),
			lease_until = excluded.lease_until, adopted_by = NULL
		RETURNING epoch, next_seq`, p.owner, p.leaseTTL.Milliseconds()).Scan(&epoch, &next)
	if err != nil {
		return err
	}
	p.epoch.Store(epoch)
	p.savedSeq = uint64(max(next, 1))
	p.nextSeq.Store(p.savedSeq)
	p.log.Info("postgres store", "owner", p.owner, "epoch", epoch)
	return nil
}

// The advisory locks' first key: the schema's migrations, a server's hold on its owner name, and
// an adoption of an owner under way.
const (
	lockMigrate = 0x6765_6172 // "gear"
	lockOwner   = 0x6765_6171
	lockAdopt   = 0x6765_6170
)

// migrations bring the schema from version i to i+1. Each runs in the same transaction as the
// version it records, under an advisory lock, so two servers starting at once on a new database
// neither both create the tables nor see them half made. Append only: never change a released one.
var migrations = []string{
	// 1: the servers of a fleet and their jobs. Strings are bytea: Gearman function names, unique
	// keys and handles are bytes, and may hold NUL or invalid UTF-8, which text refuses. due is Unix
	// seconds (0: runnable now) and created Unix nanoseconds, as the server keeps them.
	`CREATE TABLE gear_servers (
		owner       text PRIMARY KEY,
		epoch       bigint NOT NULL,
		next_seq    bigint NOT NULL DEFAULT 1,
		started     timestamptz NOT NULL DEFAULT now(),
		heartbeat   timestamptz NOT NULL DEFAULT now(),
		lease_until timestamptz
	);
	CREATE TABLE gear_jobs (
		owner    text NOT NULL REFERENCES gear_servers (owner),
		seq      bigint NOT NULL,
		handle   bytea NOT NULL,
		function bytea NOT NULL,
		uniq     bytea NOT NULL,
		reducer  bytea NOT NULL,
		priority smallint NOT NULL CHECK (priority BETWEEN 0 AND 2),
		due      bigint NOT NULL,
		retries  bigint NOT NULL,
		created  bigint NOT NULL,
		data     bytea NOT NULL,
		PRIMARY KEY (owner, seq)
	)`,
	// 2: a function's settings (pause, limits), as the core encodes them: SettingsStore.
	`CREATE TABLE gear_settings (
		owner    text NOT NULL REFERENCES gear_servers (owner),
		function bytea NOT NULL,
		data     bytea NOT NULL,
		PRIMARY KEY (owner, function)
	)`,
	// 3: named schedules (ScheduleStore): their definition as the core encodes it, and the last
	// tick fired (Unix seconds), which is committed in the transaction that inserts its job.
	`CREATE TABLE gear_schedules (
		owner text NOT NULL REFERENCES gear_servers (owner),
		name  bytea NOT NULL,
		data  bytea NOT NULL,
		fired bigint NOT NULL DEFAULT 0,
		PRIMARY KEY (owner, name)
	)`,
	// 4: the fleet (fleet.go): who adopted a server's jobs, how many it adopted itself, the schedule
	// leader's lease, and gear_hold, which every batch of writes calls first: it takes a KEY SHARE
	// lock on the server row under the epoch the batch was made for, or aborts the batch (SQLSTATE
	// GR001) when that epoch is gone (adopted, or the owner rejoined). An adoption locks the row FOR
	// UPDATE, so a batch and an adoption of the same owner take turns.
	`ALTER TABLE gear_servers ADD COLUMN adopted_by text, ADD COLUMN adopted_at timestamptz,
		ADD COLUMN adoptions bigint NOT NULL DEFAULT 0, ADD COLUMN jobs_adopted bigint NOT NULL DEFAULT 0;
	CREATE TABLE gear_leader (
		id          int PRIMARY KEY CHECK (id = 1),
		owner       text NOT NULL,
		lease_until timestamptz NOT NULL
	);
	CREATE FUNCTION gear_hold(o text, e bigint) RETURNS void LANGUAGE plpgsql AS $$
	BEGIN
		PERFORM 1 FROM gear_servers WHERE owner = o AND epoch = e FOR KEY SHARE;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'gear server % no longer holds epoch %', o, e USING ERRCODE = 'GR001';
		END IF;
	END $$`,
	// 5: the dead set (DeadStore, dead.go): a background job that failed its last attempt, as the
	// core encodes it, by handle. died is when the row was written, about when the job died (the
	// exact time is in data); an adoption moves the rows to the adopter, died kept.
	`CREATE TABLE gear_dead (
		owner  text NOT NULL REFERENCES gear_servers (owner),
		handle bytea NOT NULL,
		data   bytea NOT NULL,
		died   timestamptz NOT NULL DEFAULT now(),
		PRIMARY KEY (owner, handle)
	)`,
}

// SchemaVersion is the schema version this build creates.
var SchemaVersion = len(migrations)

func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, 0)`, lockMigrate); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS gear_schema_version (version int NOT NULL)`); err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	var v int
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM gear_schema_version`).Scan(&v); err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	if v > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this gear knows (%d): upgrade gear", v, len(migrations))
	}
	if v == len(migrations) {
		return nil
	}
	for i := v; i < len(migrations); i++ {
		if _, err := tx.Exec(ctx, migrations[i]); err != nil {
			return fmt.Errorf("schema migration to version %d: %w", i+1, err)
		}
	}
	if _, err := tx.Exec(ctx, `DELETE FROM gear_schema_version`); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO gear_schema_version (version) VALUES ($1)`, len(migrations)); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// Replay calls fn for the owner's jobs in submission order.
func (p *Postgres) Replay(fn func(*Job) error) error {
	ctx := context.Background()
	rows, err := p.pool.Query(ctx, `SELECT seq, handle, function, uniq, reducer, priority, due, retries, created, data
		FROM gear_jobs WHERE owner = $1 ORDER BY seq`, p.owner)
	if err != nil {
		return fmt.Errorf("postgres %s: %w", p.where, err)
	}
	defer rows.Close()
	var n int64
	for rows.Next() {
		j, err := scanJob(rows)
		if errors.Is(err, ErrCorrupt) {
			return err
		}
		if err != nil {
			return fmt.Errorf("postgres %s: %w", p.where, err)
		}
		if j.Seq >= p.nextSeq.Load() {
			p.nextSeq.Store(j.Seq + 1)
		}
		n++
		if err := fn(j); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("postgres %s: %w", p.where, err)
	}
	p.jobs.Store(n)
	return nil
}

// NextSeq is the first sequence number no job of this owner used.
func (p *Postgres) NextSeq() uint64 { return p.nextSeq.Load() }

// Add queues j for the next batch; done reports when its row is committed, never on the caller's
// goroutine.
func (p *Postgres) Add(j *Job, done func(error)) {
	if j.Seq > math.MaxInt64 {
		p.mu.Lock()
		p.callbackLocked(done, fmt.Errorf("postgres store: sequence number %d does not fit a bigint", j.Seq))
		p.mu.Unlock()
		return
	}
	p.push(pgOp{kind: opAdd, seq: j.Seq, job: j, done: done})
}

// Remove queues the deletion of a job's row.
func (p *Postgres) Remove(seq uint64) { p.push(pgOp{kind: opRemove, seq: seq}) }

// SetRetries queues an update of j's retry count.
func (p *Postgres) SetRetries(j *Job) { p.push(pgOp{kind: opUpdate, seq: j.Seq, job: j}) }

// ReserveSeq queues a reservation of sequence numbers below upTo.
func (p *Postgres) ReserveSeq(upTo uint64) { p.push(pgOp{kind: opReserve, seq: upTo}) }

// push queues o for the committer; once the store is closing it refuses it (with o.done, if any).
func (p *Postgres) push(o pgOp) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		err := errors.New("store is closed")
		if o.done != nil {
			p.callbackLocked(o.done, err)
		}
		return err
	}
	p.queue = append(p.queue, o)
	if o.kind == opDeadAdd {
		p.deadPending[o.dead.Handle]++
	}
	p.signal()
	return nil
}

// retryDelay is how soon the removals of a failed batch are tried again when nothing else is queued,
// and how often a store whose writes fail checks the database when there is nothing to write.
const retryDelay = time.Second

// commitLoop commits what is queued, batch after batch: everything queued while one batch was in
// flight goes into the next, so concurrent submitters share round trips and WAL flushes.
func (p *Postgres) commitLoop() {
	defer close(p.done)
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	for {
		select {
		case <-p.wake:
		case <-retry.C:
		}
		p.mu.Lock()
		batch, closing := p.queue, p.closing
		p.queue = p.spare[:0]
		p.mu.Unlock()
		if len(p.retry) > 0 {
			batch = append(p.retry, batch...)
			p.retry = nil
		}
		if len(batch) > 0 {
			p.commitBatch(batch)
		} else if p.writeLog.Failing() {
			p.probe()
		}
		clear(batch)
		if cap(batch) <= 4096 {
			p.spare = batch[:0]
		}
		if closing {
			if len(p.retry) > 0 {
				p.log.Error("postgres store closed with writes not committed: finished jobs may run again", "writes", len(p.retry))
			}
			return
		}
		if len(p.retry) > 0 || p.writeLog.Failing() {
			retry.Reset(retryDelay)
		}
	}
}

// probe checks, with nothing to write, whether the store could write again: the statement every
// batch begins with (the server's epoch still holds). Without it a store whose last batches failed
// would go on saying so (Stats.FailingSince, gear_store_failing_seconds) and log its recovery only
// when a client next submitted a job.
func (p *Postgres) probe() {
	ctx, cancel := context.WithTimeout(context.Background(), p.commit)
	defer cancel()
	if _, err := p.pool.Exec(ctx, `SELECT gear_hold($1, $2)`, p.owner, p.epoch.Load()); err != nil {
		if isFenced(err) {
			err = ErrFenced
		}
		err = fmt.Errorf("postgres: checking the database: %w", err)
		p.setError(err)
		p.writeLog.Failed(p.log, err)
		return
	}
	p.writeLog.OK(p.log)
}

// pgBatch is a batch folded into the statements that write it: an Add followed by its Remove in
// the same batch writes nothing, and a SetRetries of a job added in the same batch changes the row
// to insert.
type pgBatch struct {
	adds    []*Job
	addAt   map[uint64]int // seq → index in adds
	updates map[uint64]uint32
	removes []int64
	reserve uint64
	maxSeq  uint64
	ticks   map[string]int64  // schedule → last tick fired
	dead    map[string][]byte // dead job's handle → data to upsert, or nil to delete its row (dead.go)
}

func fold(ops []pgOp) *pgBatch {
	b := &pgBatch{addAt: map[uint64]int{}, updates: map[uint64]uint32{}}
	for _, o := range ops {
		switch o.kind {
		case opAdd:
			b.addAt[o.seq] = len(b.adds)
			b.adds = append(b.adds, o.job)
			b.maxSeq = max(b.maxSeq, o.seq)
		case opUpdate:
			if i, ok := b.addAt[o.seq]; ok {
				j := *b.adds[i]
				j.Retries = o.job.Retries
				b.adds[i] = &j
			} else {
				b.updates[o.seq] = o.job.Retries
			}
		case opRemove:
			if i, ok := b.addAt[o.seq]; ok {
				b.adds[i] = nil
				delete(b.addAt, o.seq)
			} else {
				delete(b.updates, o.seq)
				b.removes = append(b.removes, int64(o.seq))
			}
		case opReserve:
			b.reserve = max(b.reserve, o.seq)
		case opDeadAdd, opDeadDelete:
			b.addDead(o)
		}
		b.addTick(o.tick)
	}
	return b
}

func (p *Postgres) commitBatch(ops []pgOp) {
	b := fold(ops)
	next := p.savedSeq
	if len(b.adds) > 0 {
		next = max(next, b.maxSeq+1)
	}
	next = max(next, b.reserve)

	var q pgx.Batch
	// First of every batch: the epoch it was made for still holds (a fenced server writes nothing).
	q.Queue(`SELECT gear_hold($1, $2)`, p.owner, p.epoch.Load())
	var inserted int
	if len(b.adds) > 0 {
		n := len(b.adds)
		seq, prio, due, retries, created := make([]int64, 0, n), make([]int16, 0, n), make([]int64, 0, n), make([]int64, 0, n), make([]int64, 0, n)
		handle, function, unique, reducer, data := make([][]byte, 0, n), make([][]byte, 0, n), make([][]byte, 0, n), make([][]byte, 0, n), make([][]byte, 0, n)
		for _, j := range b.adds {
			if j == nil {
				continue
			}
			seq = append(seq, int64(j.Seq))
			prio = append(prio, int16(j.Priority))
			due = append(due, j.When)
			retries = append(retries, int64(j.Retries))
			created = append(created, j.Created)
			handle = append(handle, []byte(j.Handle))
			function = append(function, []byte(j.Function))
			unique = append(unique, []byte(j.Unique))
			reducer = append(reducer, []byte(j.Reducer))
			d := j.Data
			if d == nil {
				d = []byte{} // NOT NULL: a job without data has empty data
			}
			data = append(data, d)
		}
		if inserted = len(seq); inserted > 0 {
			q.Queue(`INSERT INTO gear_jobs (owner, seq, handle, function, uniq, reducer, priority, due, retries, created, data)
				SELECT $1, * FROM unnest($2::bigint[], $3::bytea[], $4::bytea[], $5::bytea[], $6::bytea[],
					$7::smallint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bytea[])`,
				p.owner, seq, handle, function, unique, reducer, prio, due, retries, created, data)
		}
	}
	if len(b.updates) > 0 {
		seqs, counts := make([]int64, 0, len(b.updates)), make([]int64, 0, len(b.updates))
		for s, r := range b.updates {
			seqs, counts = append(seqs, int64(s)), append(counts, int64(r))
		}
		q.Queue(`UPDATE gear_jobs SET retries = u.retries FROM unnest($2::bigint[], $3::bigint[]) AS u (seq, retries)
			WHERE gear_jobs.owner = $1 AND gear_jobs.seq = u.seq`, p.owner, seqs, counts)
	}
	b.queueTicks(&q, p.owner)
	b.queueDead(&q, p.owner)
	removeAt := -1
	if len(b.removes) > 0 {
		removeAt = q.Len()
		q.Queue(`DELETE FROM gear_jobs WHERE owner = $1 AND seq = ANY($2)`, p.owner, b.removes)
	}
	if next > p.savedSeq {
		q.Queue(`UPDATE gear_servers SET next_seq = greatest(next_seq, $2) WHERE owner = $1`, p.owner, int64(min(next, math.MaxInt64)))
	}

	began := time.Now()
	var err error
	var removed int64
	if q.Len() > 1 {
		removed, err = p.send(&q, removeAt)
	}
	p.observeCommit(len(ops), time.Since(began), err)
	if err != nil {
		p.setError(err)
		p.writeLog.Failed(p.log, err)
		for _, o := range ops {
			if o.kind != opAdd {
				p.retry = append(p.retry, o)
			}
		}
	} else {
		p.jobs.Add(int64(inserted) - removed)
		p.deadCommitted(ops)
		p.savedSeq = max(p.savedSeq, next)
		if next > p.nextSeq.Load() {
			p.nextSeq.Store(next)
		}
		p.lastSync.Store(time.Now().UnixNano())
		if q.Len() > 1 { // something was written, not a batch folded away
			p.writeLog.OK(p.log)
		}
	}
	for _, o := range ops {
		if o.done != nil {
			o.done(err)
		}
	}
}

// send runs the batch's statements as one implicit transaction and returns the number of rows the
// statement at removeAt deleted.
func (p *Postgres) send(q *pgx.Batch, removeAt int) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), p.commit)
	defer cancel()
	br := p.pool.SendBatch(ctx, q)
	var removed int64
	var err error
	for i := range q.Len() {
		tag, e := br.Exec()
		if e != nil {
			err = e
			break
		}
		if i == removeAt {
			removed = tag.RowsAffected()
		}
	}
	// Close reads up to the Sync: its ReadyForQuery comes after the COMMIT.
	if err = errors.Join(err, br.Close()); err != nil {
		if isFenced(err) {
			return 0, fmt.Errorf("postgres: %w", ErrFenced)
		}
		return 0, fmt.Errorf("postgres: %w", err)
	}
	return removed, nil
}

// SaveSettings records a function's settings (nil: forgets them), committed before it returns.
func (p *Postgres) SaveSettings(function string, data []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), p.commit)
	defer cancel()
	var err error
	if data == nil {
		_, err = p.pool.Exec(ctx, `DELETE FROM gear_settings WHERE owner = $1 AND function = $2`, p.owner, []byte(function))
	} else {
		_, err = p.pool.Exec(ctx, `INSERT INTO gear_settings (owner, function, data) VALUES ($1, $2, $3)
			ON CONFLICT (owner, function) DO UPDATE SET data = excluded.data`, p.owner, []byte(function), data)
	}
	if err != nil {
		return fmt.Errorf("saving the settings of %s: postgres: %w", function, err)
	}
	return nil
}

// LoadSettings calls fn for every function's settings.
func (p *Postgres) LoadSettings(fn func(function string, data []byte) error) error {
	return p.loadRecords(`SELECT function, data FROM gear_settings WHERE owner = $1 ORDER BY function`, fn)
}

// loadRecords runs query, which selects the owner's ($1) records as a bytea key and its data, and
// calls fn for each; an error of fn is returned as it is.
func (p *Postgres) loadRecords(query string, fn func(key string, data []byte) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), p.commit)
	defer cancel()
	rows, err := p.pool.Query(ctx, query, p.owner)
	if err != nil {
		return fmt.Errorf("postgres %s: %w", p.where, err)
	}
	defer rows.Close()
	for rows.Next() {
		var key, data []byte
		if err := rows.Scan(&key, &data); err != nil {
			return fmt.Errorf("postgres %s: %w", p.where, err)
		}
		if err := fn(string(key), data); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("postgres %s: %w", p.where, err)
	}
	return nil
}

// Stats reports the store's state.
func (p *Postgres) Stats() Stats { return p.stats("postgres", p.where, p.mode) }

// Owner is the name the store's jobs are kept under, and Epoch the server row's epoch of this run.
func (p *Postgres) Owner() string { return p.owner }

// Epoch is the number of times a store was opened under this owner, this one included.
func (p *Postgres) Epoch() int64 { return p.epoch.Load() }

// Close commits what is queued, releases the owner and closes the connections. Later calls wait for
// the first one and return its result.
func (p *Postgres) Close() error {
	p.closeOnce.Do(func() {
		p.stopCommitter()
		// Releasing the connection that holds the advisory lock would keep the lock in the pool's
		// session: close that connection instead, which ends the session and its lock.
		p.fleet.mu.Lock()
		lock := p.lock
		p.lock = nil
		p.fleet.mu.Unlock()
		if lock != nil {
			if c := lock.Hijack(); c != nil {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				c.Close(ctx)
				cancel()
			}
		}
		p.pool.Close()
		p.waitCallbacks()
	})
	return p.closeErr
}

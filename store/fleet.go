package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// A fleet is several gear servers on one PostgreSQL database (issue 17). Each holds a lease on its
// row of gear_servers under its epoch, renewed by the server's fleet loop (server/fleet.go). When a
// lease lapses, a surviving server adopts the owner's jobs in one transaction (Adopt) and bumps the
// owner's epoch, which fences the owner's store: every batch it sends starts with gear_hold under
// the epoch it knew, and fails with ErrFenced. The owner gets writing again only by rejoining
// (Rejoin): a new epoch, and a fresh look at which of its jobs are still its own.

// ErrFenced reports a write refused because the store's epoch is no longer the owner's: its jobs
// were adopted by another server, or it must rejoin first.
var ErrFenced = errors.New("this gear server's lease was lost (fenced): its jobs may have been adopted")

// fenceCode is the SQLSTATE gear_hold raises.
const fenceCode = "GR001"

func isFenced(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == fenceCode
}

// fleetState is the store's side of the fleet: counters the admin views read.
type fleetState struct {
	mu          sync.Mutex // guards Postgres.lock against Rejoin and Close
	leaseStart  time.Time  // when open sent the first lease
	adoptions   atomic.Int64
	jobsAdopted atomic.Int64
}

// LeaseStart is when the lease given at open was sent: it runs until then plus the lease TTL.
func (p *Postgres) LeaseStart() time.Time { return p.fleet.leaseStart }

// Renew extends the store's lease to ttl from now under its epoch; ErrFenced if the epoch is gone.
// It also makes sure the owner's advisory lock is still held: a restart of the database, or a cut
// connection, ends the session that held it, which no fence follows when the lease outlives the
// outage, and a second server under the same owner would no longer be refused.
func (p *Postgres) Renew(ctx context.Context, ttl time.Duration) error {
	tag, err := p.pool.Exec(ctx, `UPDATE gear_servers SET heartbeat = now(), lease_until = now() + $3 * interval '1 millisecond'
		WHERE owner = $1 AND epoch = $2`, p.owner, p.epoch.Load(), ttl.Milliseconds())
	if err != nil {
		return fmt.Errorf("renewing the lease: postgres: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrFenced
	}
	if err := p.relock(ctx); err != nil {
		return fmt.Errorf("renewing the lease: %w", err)
	}
	return nil
}

// LeadSchedules takes or renews the fleet's schedule leader lease (one row of gear_leader) for ttl,
// and reports whether this server holds it.
func (p *Postgres) LeadSchedules(ctx context.Context, ttl time.Duration) (bool, error) {
	var owner string
	err := p.pool.QueryRow(ctx, `INSERT INTO gear_leader (id, owner, lease_until) VALUES (1, $1, now() + $2 * interval '1 millisecond')
		ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until
		WHERE gear_leader.owner = excluded.owner OR gear_leader.lease_until < now()
		RETURNING owner`, p.owner, ttl.Milliseconds()).Scan(&owner)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("schedule leader lease: postgres: %w", err)
	}
	return true, nil
}

// Lapsed lists the other servers whose lease has lapsed: the ones to adopt.
func (p *Postgres) Lapsed(ctx context.Context) ([]string, error) {
	rows, err := p.pool.Query(ctx, `SELECT owner FROM gear_servers WHERE owner <> $1 AND lease_until < now() ORDER BY lease_until`, p.owner)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	owners, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return owners, nil
}

// Adoption is what an adoption moved to this server: the dead server's unfinished jobs, and its
// dead set (jobs that failed their last attempt).
type Adoption struct {
	// Jobs as they are now stored: new sequence numbers and handles OWNER:seq, the rest kept.
	Jobs []*Job
	// Dead keeps its handles (they name no job of either server any more): the core shows them
	// under the handles their clients were given.
	Dead []DeadEntry
}

// Adopt moves the unfinished jobs and the dead set of dead, a server whose lease has lapsed, to
// this store's owner in one transaction, and returns them. The jobs get new sequence numbers
// first..first+n-1, from alloc(n) (the caller's own sequence, which it must not hand out again),
// and handles OWNER:seq, the rest (function, unique, reducer, priority, due time, retries, created,
// data) kept. A dead job whose handle the adopter already holds in its dead set is dropped.
// dead's epoch is bumped, its lease cleared and its row marked adopted_by; a server adopted with no
// jobs gives empty, non-nil Jobs. It returns nil, nil when there is nothing to do: dead renewed
// its lease meanwhile, or another server is adopting it (a transaction's advisory lock on dead's
// name decides, tried without waiting, so survivors do not queue up behind each other).
func (p *Postgres) Adopt(ctx context.Context, dead string, alloc func(n int) uint64) (*Adoption, error) {
	a, err := p.adopt(ctx, dead, alloc)
	if err != nil {
		if isFenced(err) {
			err = ErrFenced
		}
		return nil, fmt.Errorf("adopting the jobs of %s: postgres: %w", dead, err)
	}
	return a, nil
}

func (p *Postgres) adopt(ctx context.Context, dead string, alloc func(n int) uint64) (*Adoption, error) {
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	var adopting bool
	if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1, hashtext($2))`, lockAdopt, dead).Scan(&adopting); err != nil {
		return nil, err
	}
	if !adopting {
		return nil, nil
	}
	// The row lock waits for dead's batch in flight (its gear_hold holds KEY SHARE on the row; a
	// SKIP LOCKED here would let a busy owner never be adopted), then fences dead's next batches.
	// The lease is checked again on the row as it is after the wait: dead may have renewed.
	if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '10s'`); err != nil {
		return nil, err
	}
	var deadEpoch int64
	err = tx.QueryRow(ctx, `SELECT epoch FROM gear_servers WHERE owner = $1 AND lease_until < now() FOR UPDATE`, dead).Scan(&deadEpoch)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `SELECT gear_hold($1, $2)`, p.owner, p.epoch.Load()); err != nil {
		return nil, err // this server was fenced meanwhile: it adopts nothing
	}
	var n int64
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM gear_jobs WHERE owner = $1`, dead).Scan(&n); err != nil {
		return nil, err
	}
	jobs := []*Job{}
	if n > 0 {
		first := alloc(int(n))
		last := first + uint64(n) - 1
		if last > math.MaxInt64 {
			return nil, fmt.Errorf("sequence number %d does not fit a bigint", last)
		}
		if _, err := tx.Exec(ctx, `UPDATE gear_servers SET next_seq = greatest(next_seq, $2) WHERE owner = $1`, p.owner, int64(last+1)); err != nil {
			return nil, err
		}
		rows, err := tx.Query(ctx, `WITH moved AS (DELETE FROM gear_jobs WHERE owner = $1 RETURNING *)
			INSERT INTO gear_jobs (owner, seq, handle, function, uniq, reducer, priority, due, retries, created, data)
			SELECT $2, s, convert_to($2 || ':' || s::text, 'UTF8'), function, uniq, reducer, priority, due, retries, created, data
			FROM (SELECT *, $3::bigint + row_number() OVER (ORDER BY seq) - 1 AS s FROM moved) m
			RETURNING seq, handle, function, uniq, reducer, priority, due, retries, created, data`,
			dead, p.owner, int64(first))
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			j, err := scanJob(rows)
			if err != nil {
				rows.Close()
				return nil, err
			}
			jobs = append(jobs, j)
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
		if int64(len(jobs)) != n { // the row lock keeps dead's writes out: cannot happen
			return nil, fmt.Errorf("%d jobs counted, %d moved", n, len(jobs))
		}
		slices.SortFunc(jobs, func(a, b *Job) int { return cmp.Compare(a.Seq, b.Seq) })
	}
	buried, err := moveDead(ctx, tx, dead, p.owner)
	if err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `UPDATE gear_servers SET epoch = epoch + 1, lease_until = NULL, adopted_by = $2, adopted_at = now()
		WHERE owner = $1`, dead, p.owner); err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `UPDATE gear_servers SET adoptions = adoptions + 1, jobs_adopted = jobs_adopted + $2 WHERE owner = $1`,
		p.owner, n); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	p.fleet.adoptions.Add(1)
	p.fleet.jobsAdopted.Add(n)
	p.jobs.Add(n)
	p.log.Debug("adoption committed", "from", dead, "from_epoch", deadEpoch, "jobs", n, "dead", len(buried))
	return &Adoption{Jobs: jobs, Dead: buried}, nil
}

// moveDead moves the dead set of owner from to owner to, keeping the rows to already has, and
// returns the rows moved.
func moveDead(ctx context.Context, tx pgx.Tx, from, to string) ([]DeadEntry, error) {
	rows, err := tx.Query(ctx, `WITH moved AS (DELETE FROM gear_dead WHERE owner = $1 RETURNING handle, data, died)
		INSERT INTO gear_dead (owner, handle, data, died) SELECT $2, handle, data, died FROM moved
		ON CONFLICT (owner, handle) DO NOTHING
		RETURNING handle, data`, from, to)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (DeadEntry, error) {
		var handle []byte
		var e DeadEntry
		err := r.Scan(&handle, &e.Data)
		e.Handle = string(handle)
		return e, err
	})
}

// scanJob reads a row of seq, handle, function, uniq, reducer, priority, due, retries, created, data.
func scanJob(rows pgx.Rows) (*Job, error) {
	var seq, retries int64
	var prio int16
	var handle, function, unique, reducer []byte
	j := &Job{}
	if err := rows.Scan(&seq, &handle, &function, &unique, &reducer, &prio, &j.When, &retries, &j.Created, &j.Data); err != nil {
		return nil, err
	}
	if prio < 0 || prio > 2 || retries < 0 || retries > math.MaxUint32 || seq < 0 {
		return nil, fmt.Errorf("%w %d: priority %d, retries %d", ErrCorrupt, seq, prio, retries)
	}
	j.Seq, j.Priority, j.Retries = uint64(seq), uint8(prio), uint32(retries)
	j.Handle, j.Function, j.Unique, j.Reducer = string(handle), string(function), string(unique), string(reducer)
	if j.Data == nil {
		j.Data = []byte{}
	}
	return j, nil
}

// Rejoin gives a fenced store a new epoch and lease (ttl), retaking the owner's advisory lock if its
// session was lost, and returns what is still stored under the owner: the sequence numbers of its
// jobs, and the handles of its dead set with those queued and not yet committed (which will be
// written under the new epoch). The server forgets the others, which a survivor adopted meanwhile.
// Batches made for the old epoch fail from now on (their Adds are refused; removals and dead set
// writes are retried under the new one).
func (p *Postgres) Rejoin(ctx context.Context, ttl time.Duration) (owned map[uint64]bool, ownedDead map[string]bool, err error) {
	fail := func(err error) (map[uint64]bool, map[string]bool, error) {
		return nil, nil, fmt.Errorf("rejoining: postgres: %w", err)
	}
	if err := p.relock(ctx); err != nil {
		return nil, nil, fmt.Errorf("rejoining: %w", err)
	}
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback(ctx)
	// FOR UPDATE first, as an adoption does: an UPDATE alone takes a lock that gear_hold's KEY SHARE
	// does not wait for, and a batch of the old epoch could commit rows the listing below misses.
	if _, err := tx.Exec(ctx, `SELECT 1 FROM gear_servers WHERE owner = $1 FOR UPDATE`, p.owner); err != nil {
		return fail(err)
	}
	var epoch int64
	if err := tx.QueryRow(ctx, `UPDATE gear_servers SET epoch = epoch + 1, heartbeat = now(),
		lease_until = now() + $2 * interval '1 millisecond', adopted_by = NULL WHERE owner = $1 RETURNING epoch`,
		p.owner, ttl.Milliseconds()).Scan(&epoch); err != nil {
		return fail(err)
	}
	rows, err := tx.Query(ctx, `SELECT seq FROM gear_jobs WHERE owner = $1`, p.owner)
	if err != nil {
		return fail(err)
	}
	seqs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return fail(err)
	}
	rows, err = tx.Query(ctx, `SELECT handle FROM gear_dead WHERE owner = $1`, p.owner)
	if err != nil {
		return fail(err)
	}
	handles, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return fail(err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fail(err)
	}
	ownedDead = make(map[string]bool, len(handles))
	for _, h := range handles {
		ownedDead[string(h)] = true
	}
	// The dead jobs still queued now, before the new epoch is stored, can only be committed under it
	// (the old one is gone): they stay the owner's. One committed under the old epoch is in the
	// listing unless a survivor adopted it, and counts as queued only in the moment before the
	// committer takes its batch's result.
	p.pendingDead(ownedDead)
	p.epoch.Store(epoch)
	p.jobs.Store(int64(len(seqs)))
	owned = make(map[uint64]bool, len(seqs))
	for _, s := range seqs {
		owned[uint64(s)] = true
	}
	p.log.Info("rejoined the fleet", "owner", p.owner, "epoch", epoch, "jobs", len(seqs), "dead", len(handles))
	return owned, ownedDead, nil
}

// relock makes sure the owner's advisory lock is held: a cut connection ended the session that held
// it, and another server may have started under the same name meanwhile.
func (p *Postgres) relock(ctx context.Context) error {
	p.fleet.mu.Lock()
	defer p.fleet.mu.Unlock()
	if p.lock == nil {
		return errors.New("the store is closed")
	}
	if _, err := p.lock.Exec(ctx, `SELECT 1`); err == nil {
		return nil
	}
	conn, err := p.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("retaking the owner's lock: postgres: %w", err)
	}
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, hashtext($2))`, lockOwner, p.owner).Scan(&ok); err != nil {
		conn.Release()
		return fmt.Errorf("retaking the owner's lock: postgres: %w", err)
	}
	if !ok {
		conn.Release()
		return fmt.Errorf("owner %q is in use by another gear server", p.owner)
	}
	old := p.lock
	p.lock = conn
	if c := old.Hijack(); c != nil {
		c.Close(context.Background())
	}
	return nil
}

// FleetServer is one server of the fleet as gear_servers records it.
type FleetServer struct {
	Owner       string    `json:"owner"`
	Epoch       int64     `json:"epoch"`
	Started     time.Time `json:"started"`
	Heartbeat   time.Time `json:"heartbeat"`
	LeaseUntil  time.Time `json:"lease_until,omitzero"`
	Alive       bool      `json:"alive"` // its lease runs
	Jobs        int64     `json:"jobs"`  // unfinished background jobs it owns
	AdoptedBy   string    `json:"adopted_by,omitempty"`
	AdoptedAt   time.Time `json:"adopted_at,omitzero"`
	Adoptions   int64     `json:"adoptions"`    // servers whose jobs it adopted
	JobsAdopted int64     `json:"jobs_adopted"` // jobs it adopted from them
}

// FleetView is the fleet as the database sees it.
type FleetView struct {
	Self           string        `json:"self"`
	Epoch          int64         `json:"epoch"`
	ScheduleLeader string        `json:"schedule_leader,omitempty"`
	Servers        []FleetServer `json:"servers"`
}

// Fleet reads the fleet's servers and leases.
func (p *Postgres) Fleet(ctx context.Context) (FleetView, error) {
	v := FleetView{Self: p.owner, Epoch: p.epoch.Load()}
	rows, err := p.pool.Query(ctx, `SELECT s.owner, s.epoch, s.started, s.heartbeat, s.lease_until, coalesce(s.lease_until > now(), false),
			(SELECT count(*) FROM gear_jobs j WHERE j.owner = s.owner), coalesce(s.adopted_by, ''), s.adopted_at, s.adoptions, s.jobs_adopted
		FROM gear_servers s ORDER BY s.owner`)
	if err != nil {
		return v, fmt.Errorf("postgres: %w", err)
	}
	v.Servers, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (FleetServer, error) {
		var s FleetServer
		var until, at *time.Time
		err := r.Scan(&s.Owner, &s.Epoch, &s.Started, &s.Heartbeat, &until, &s.Alive, &s.Jobs, &s.AdoptedBy, &at, &s.Adoptions, &s.JobsAdopted)
		if until != nil {
			s.LeaseUntil = until.UTC()
		}
		if at != nil {
			s.AdoptedAt = at.UTC()
		}
		s.Started, s.Heartbeat = s.Started.UTC(), s.Heartbeat.UTC()
		return s, err
	})
	if err != nil {
		return v, fmt.Errorf("postgres: %w", err)
	}
	err = p.pool.QueryRow(ctx, `SELECT owner FROM gear_leader WHERE lease_until > now()`).Scan(&v.ScheduleLeader)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return v, fmt.Errorf("postgres: %w", err)
	}
	return v, nil
}

// FleetCounters are this store's adoptions since it opened.
func (p *Postgres) FleetCounters() (adoptions, jobs int64) {
	return p.fleet.adoptions.Load(), p.fleet.jobsAdopted.Load()
}

package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/cockroachdb/pebble"
	"github.com/jackc/pgx/v5"
)

// ScheduleStore keeps named schedules beside the jobs: their definitions (written rarely, by an
// operator, synchronously) and the last tick each fired. A tick is recorded in the same atomic
// write as the job it submits (AddFired), so after a crash a tick either fired and is recorded,
// or neither: a restart never fires a stored tick again, and never loses one that was stored.
type ScheduleStore interface {
	// SaveSchedule records a schedule's definition (nil: forgets it and its last tick); it returns
	// once durable.
	SaveSchedule(name string, def []byte) error
	// LoadSchedules calls fn for every schedule with its definition and its last recorded tick
	// (Unix seconds; 0: none).
	LoadSchedules(fn func(name string, def []byte, fired int64) error) error
	// AddFired is Add for the job a schedule's tick submits, recording fired as the schedule's last
	// tick in the same write; with a nil j it records only the tick (a tick that coalesced). done
	// reports the outcome, never on the caller's goroutine.
	AddFired(j *Job, name string, fired int64, done func(error))
}

// Schedule keys: "s:" + name holds the definition, "t:" + name the last tick (8 bytes, big
// endian) — apart from the jobs ("j"), meta ("m:") and settings ("f:").
const (
	scheduleDefPrefix  = "s:"
	scheduleTickPrefix = "t:"
)

func setOrDelete(b *pebble.Batch, key, value []byte) {
	if value == nil {
		b.Delete(key, nil)
	} else {
		b.Set(key, value, nil)
	}
}

func tickValue(fired int64) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(fired))
}

// SaveSchedule records a schedule (nil: forgets it), synced to disk. It goes through the
// committer, after the ticks queued before it, so a tick cannot bring back a removed schedule.
func (p *Pebble) SaveSchedule(name string, def []byte) error {
	errc := make(chan error, 2)
	done := func(err error) { errc <- err }
	if def == nil {
		p.push(op{kind: opKey, key: []byte(scheduleTickPrefix + name), done: done})
	} else {
		errc <- nil
	}
	p.push(op{kind: opKey, key: []byte(scheduleDefPrefix + name), keyValue: def, done: done})
	err := errors.Join(<-errc, <-errc)
	if err == nil {
		// The batch reached the operating system; this makes it reach the disk (as SaveSettings).
		err = p.wal.syncWAL()
	}
	if err != nil {
		return fmt.Errorf("saving schedule %s: %w", name, err)
	}
	return nil
}

// LoadSchedules calls fn for every stored schedule.
func (p *Pebble) LoadSchedules(fn func(name string, def []byte, fired int64) error) error {
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: []byte(scheduleDefPrefix), UpperBound: []byte("s;")})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		name := string(it.Key()[len(scheduleDefPrefix):])
		def := append([]byte(nil), it.Value()...)
		var fired int64
		v, closer, err := p.db.Get([]byte(scheduleTickPrefix + name))
		switch {
		case err == nil:
			if len(v) == 8 {
				fired = int64(binary.BigEndian.Uint64(v))
			}
			closer.Close()
		case !errors.Is(err, pebble.ErrNotFound):
			return err
		}
		if err := fn(name, def, fired); err != nil {
			return err
		}
	}
	return errors.Join(it.Error())
}

// AddFired adds j (when not nil) and records the schedule's tick in the same batch.
func (p *Pebble) AddFired(j *Job, name string, fired int64, done func(error)) {
	key, value := []byte(scheduleTickPrefix+name), tickValue(fired)
	if j == nil {
		p.push(op{kind: opKey, key: key, keyValue: value, done: done})
		return
	}
	if p.diskFull() {
		p.Add(j, done) // refused, as any job
		return
	}
	p.push(op{kind: opAdd, seq: j.Seq, value: encode(nil, j), done: done, key: key, keyValue: value})
}

// scheduleTick is a schedule's tick committed with a PostgreSQL batch.
type scheduleTick struct {
	name  string
	fired int64
}

func (b *pgBatch) addTick(t *scheduleTick) {
	if t == nil {
		return
	}
	if b.ticks == nil {
		b.ticks = map[string]int64{}
	}
	b.ticks[t.name] = max(b.ticks[t.name], t.fired)
}

// queueTicks records the batch's ticks. An UPDATE, not an upsert: a tick never brings back a
// schedule removed meanwhile.
func (b *pgBatch) queueTicks(q *pgx.Batch, owner string) {
	if len(b.ticks) == 0 {
		return
	}
	names, fired := make([][]byte, 0, len(b.ticks)), make([]int64, 0, len(b.ticks))
	for n, f := range b.ticks {
		names, fired = append(names, []byte(n)), append(fired, f)
	}
	q.Queue(`UPDATE gear_schedules SET fired = greatest(gear_schedules.fired, u.fired)
		FROM unnest($2::bytea[], $3::bigint[]) AS u (name, fired)
		WHERE gear_schedules.owner = $1 AND gear_schedules.name = u.name`, owner, names, fired)
}

// SaveSchedule records a schedule (nil: forgets it), committed before it returns. Replacing a
// definition keeps its last tick.
func (p *Postgres) SaveSchedule(name string, def []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), p.commit)
	defer cancel()
	var err error
	if def == nil {
		_, err = p.pool.Exec(ctx, `DELETE FROM gear_schedules WHERE owner = $1 AND name = $2`, p.owner, []byte(name))
	} else {
		_, err = p.pool.Exec(ctx, `INSERT INTO gear_schedules (owner, name, data) VALUES ($1, $2, $3)
			ON CONFLICT (owner, name) DO UPDATE SET data = excluded.data`, p.owner, []byte(name), def)
	}
	if err != nil {
		return fmt.Errorf("saving schedule %s: postgres: %w", name, err)
	}
	return nil
}

// LoadSchedules calls fn for every stored schedule.
func (p *Postgres) LoadSchedules(fn func(name string, def []byte, fired int64) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), p.commit)
	defer cancel()
	rows, err := p.pool.Query(ctx, `SELECT name, data, fired FROM gear_schedules WHERE owner = $1 ORDER BY name`, p.owner)
	if err != nil {
		return fmt.Errorf("postgres %s: %w", p.where, err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, data []byte
		var fired int64
		if err := rows.Scan(&name, &data, &fired); err != nil {
			return err
		}
		if err := fn(string(name), data, fired); err != nil {
			return err
		}
	}
	return rows.Err()
}

// AddFired adds j (when not nil) and records the schedule's tick in the same transaction.
func (p *Postgres) AddFired(j *Job, name string, fired int64, done func(error)) {
	tick := &scheduleTick{name, fired}
	if j == nil {
		p.push(pgOp{kind: opKey, tick: tick, done: done})
		return
	}
	if j.Seq > math.MaxInt64 {
		p.Add(j, done) // refused, as any such job
		return
	}
	p.push(pgOp{kind: opAdd, seq: j.Seq, job: j, done: done, tick: tick})
}

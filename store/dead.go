package store

import (
	"fmt"

	"github.com/jackc/pgx/v5"
)

// The dead set on PostgreSQL: rows of gear_dead, by owner and handle. The core writes it holding
// its lock, so AddDead and DeleteDead do not wait for the database: they queue a write for the
// committer, which folds them into its next batch (the last write of a handle wins) after the
// batch's gear_hold, so a fenced server writes no dead rows either. A failed batch's dead set
// writes are retried with its removals. An adoption moves the dead server's rows to the adopter
// (fleet.go).

// DeadEntry is a dead job as a DeadStore keeps it: its handle and the core's encoding.
type DeadEntry struct {
	Handle string
	Data   []byte
}

// AddDead queues the upsert of a dead job's row; it fails only when the store is closed.
func (p *Postgres) AddDead(handle string, data []byte) error {
	return p.pushDead(opDeadAdd, handle, data)
}

// DeleteDead queues the deletion of a dead job's row; it fails only when the store is closed.
func (p *Postgres) DeleteDead(handle string) error {
	return p.pushDead(opDeadDelete, handle, nil)
}

func (p *Postgres) pushDead(kind opKind, handle string, data []byte) error {
	if err := p.push(pgOp{kind: kind, dead: &DeadEntry{Handle: handle, Data: data}}); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return nil
}

// LoadDead calls fn for every dead job of the owner, oldest row first.
func (p *Postgres) LoadDead(fn func(handle string, data []byte) error) error {
	return p.loadRecords(`SELECT handle, data FROM gear_dead WHERE owner = $1 ORDER BY died, handle`, fn)
}

// addDead folds a dead set write into the batch: the later write of a handle wins (an add then a
// delete deletes, a delete then an add upserts).
func (b *pgBatch) addDead(o pgOp) {
	if b.dead == nil {
		b.dead = map[string][]byte{}
	}
	if o.kind == opDeadDelete {
		b.dead[o.dead.Handle] = nil
		return
	}
	data := o.dead.Data
	if data == nil {
		data = []byte{} // NOT NULL, and nil means a deletion here
	}
	b.dead[o.dead.Handle] = data
}

// queueDead writes the batch's dead set: one multi-row upsert and one DELETE.
func (b *pgBatch) queueDead(q *pgx.Batch, owner string) {
	var handles, data, gone [][]byte
	for h, d := range b.dead {
		if d == nil {
			gone = append(gone, []byte(h))
		} else {
			handles, data = append(handles, []byte(h)), append(data, d)
		}
	}
	if len(handles) > 0 {
		q.Queue(`INSERT INTO gear_dead (owner, handle, data) SELECT $1, * FROM unnest($2::bytea[], $3::bytea[])
			ON CONFLICT (owner, handle) DO UPDATE SET data = excluded.data, died = excluded.died`, owner, handles, data)
	}
	if len(gone) > 0 {
		q.Queue(`DELETE FROM gear_dead WHERE owner = $1 AND handle = ANY($2::bytea[])`, owner, gone)
	}
}

// deadCommitted takes the dead jobs of a committed batch off the pending count.
func (p *Postgres) deadCommitted(ops []pgOp) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, o := range ops {
		if o.kind != opDeadAdd {
			continue
		}
		if p.deadPending[o.dead.Handle]--; p.deadPending[o.dead.Handle] <= 0 {
			delete(p.deadPending, o.dead.Handle)
		}
	}
}

// pendingDead adds to owned the handles of the dead jobs queued and not yet committed.
func (p *Postgres) pendingDead(owned map[string]bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for h := range p.deadPending {
		owned[h] = true
	}
}

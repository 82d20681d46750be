package store

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble"
)

// SettingsStore keeps small per-function records beside the jobs (a function's pause and limits),
// durably: a store that implements it keeps them across restarts. Writes are rare (an operator's
// action) and synchronous.
type SettingsStore interface {
	// SaveSettings records data for function (nil data forgets it); it returns once durable.
	SaveSettings(function string, data []byte) error
	// LoadSettings calls fn for every function's record.
	LoadSettings(fn func(function string, data []byte) error) error
}

// settings keys are "f:" + the function name: apart from the jobs ("j" + seq) and meta ("m:").
const settingsPrefix = "f:"

// SaveSettings records a function's settings (nil: forget them), synced to disk.
func (p *Pebble) SaveSettings(function string, data []byte) error {
	key := []byte(settingsPrefix + function)
	var err error
	if data == nil {
		err = p.db.Delete(key, pebble.Sync)
	} else {
		err = p.db.Set(key, data, pebble.Sync)
	}
	if err == nil {
		// The commit reached the operating system (see walFS); this makes it reach the disk.
		err = p.wal.syncWAL()
	}
	if err != nil {
		return fmt.Errorf("saving the settings of %s: %w", function, err)
	}
	return nil
}

// LoadSettings calls fn for every function's settings.
func (p *Pebble) LoadSettings(fn func(function string, data []byte) error) error {
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: []byte(settingsPrefix), UpperBound: []byte("f;")})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		name := string(it.Key()[len(settingsPrefix):])
		if err := fn(name, append([]byte(nil), it.Value()...)); err != nil {
			return err
		}
	}
	return errors.Join(it.Error())
}

// DeadStore keeps the dead set (jobs that failed their last attempt) beside the jobs: Pebble (here)
// and PostgreSQL (dead.go). The core calls AddDead and DeleteDead holding its lock: they must not
// wait long (the PostgreSQL store queues them for its committer).
type DeadStore interface {
	AddDead(handle string, data []byte) error
	DeleteDead(handle string) error
	LoadDead(fn func(handle string, data []byte) error) error
}

// dead jobs' keys are "d:" + the handle.
const deadPrefix = "d:"

// AddDead records a dead job. It reaches the operating system at once and the disk with the
// store's next fsync: dead jobs are written as removals are, not as acknowledged submits.
func (p *Pebble) AddDead(handle string, data []byte) error {
	return p.db.Set([]byte(deadPrefix+handle), data, pebble.Sync)
}

// DeleteDead forgets a dead job.
func (p *Pebble) DeleteDead(handle string) error {
	return p.db.Delete([]byte(deadPrefix+handle), pebble.Sync)
}

// LoadDead calls fn for every dead job.
func (p *Pebble) LoadDead(fn func(handle string, data []byte) error) error {
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: []byte(deadPrefix), UpperBound: []byte("d;")})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		if err := fn(string(it.Key()[len(deadPrefix):]), append([]byte(nil), it.Value()...)); err != nil {
			return err
		}
	}
	return it.Error()
}

package core

import (
	"encoding/json"
	"errors"
	"math"
	"time"

	"github.com/gearhq/gear/protocol"
	"github.com/gearhq/gear/store"
)

// Function gates: a function can be paused (its queued jobs stay, submits are still accepted, no
// worker is given one of its jobs), limited in how many of its jobs run at once across all workers,
// and limited in how many start per second (a token bucket). A function with none of these has no
// gate (nil), and a grab pays one nil test for it.
//
// A gate that opens — a resume, a running job ending under a concurrency limit, a token coming
// back — wakes sleeping workers for the jobs waiting; tokens are watched by Tick.

// FunctionSettings are a function's gate settings, as set at start, by the admin protocol or the
// HTTP API, and kept by a store that can (store.SettingsStore).
type FunctionSettings struct {
	Paused     bool    `json:"paused"`
	MaxRunning int     `json:"max_running"`  // jobs running at once across all workers; 0: no limit
	RatePerSec float64 `json:"rate_per_sec"` // job starts per second; 0: no limit
	RateBurst  int     `json:"rate_burst"`   // starts allowed at once (default: one second's worth, at least 1)
	MaxQueue   [3]int  `json:"max_queue"`    // per priority (high, normal, low); 0: none
	// Retries of failed background jobs (retry.go): attempts in all (0 or 1: no retry), the
	// backoff before the second attempt, doubling up to the cap, and a jitter of ± that share.
	RetryAttempts    int     `json:"retry_attempts,omitempty"`
	RetryBaseSeconds float64 `json:"retry_base_seconds,omitempty"`
	RetryCapSeconds  float64 `json:"retry_cap_seconds,omitempty"`
	RetryJitter      float64 `json:"retry_jitter,omitempty"`
	Updated          int64   `json:"updated_unix"`     // when last changed
	Origin           string  `json:"origin,omitempty"` // who changed it last (for the log and the views)
}

// ErrBadSettings reports settings out of range.
var ErrBadSettings = errors.New("bad function settings")

// ValidateSettings checks settings for range errors.
func ValidateSettings(fs FunctionSettings) error { return fs.validate() }

func (fs FunctionSettings) validate() error {
	switch {
	case fs.MaxRunning < 0:
		return errors.Join(ErrBadSettings, errors.New("max running must be 0 (no limit) or more"))
	case fs.RatePerSec < 0 || math.IsNaN(fs.RatePerSec) || math.IsInf(fs.RatePerSec, 0):
		return errors.Join(ErrBadSettings, errors.New("rate must be 0 (no limit) or a positive number of jobs per second"))
	case fs.RateBurst < 0:
		return errors.Join(ErrBadSettings, errors.New("burst must be 0 (default) or more"))
	case fs.RetryAttempts < 0 || fs.RetryAttempts > 1000:
		return errors.Join(ErrBadSettings, errors.New("retry attempts must be from 0 to 1000"))
	case !(fs.RetryBaseSeconds >= 0 && fs.RetryCapSeconds >= 0) || math.IsInf(fs.RetryBaseSeconds, 0) || math.IsInf(fs.RetryCapSeconds, 0):
		return errors.Join(ErrBadSettings, errors.New("retry backoff and cap must be 0 or more seconds"))
	case !(fs.RetryJitter >= 0 && fs.RetryJitter <= 1):
		return errors.Join(ErrBadSettings, errors.New("retry jitter must be from 0 to 1"))
	}
	return nil
}

// gate is a function's live gate state.
type gate struct {
	paused     bool
	maxRunning int
	rate       float64   // tokens per second
	burst      float64   // bucket size
	tokens     float64   // tokens now (as of refilled)
	refilled   time.Time // when tokens was computed
	waiting    bool      // in Core.tokenWaits
}

func (g *gate) none() bool { return !g.paused && g.maxRunning == 0 && g.rate == 0 }

// gateOpen reports whether f may start a job now; with a rate limit it takes no token (a start
// does: gate.started).
func (s *Core) gateOpen(f *function, now time.Time) bool {
	g := f.gate
	if g.paused || g.maxRunning > 0 && f.running >= g.maxRunning {
		return false
	}
	if g.rate > 0 {
		g.refill(now)
		if g.tokens < 1 {
			s.waitToken(f)
			return false
		}
	}
	return true
}

func (g *gate) refill(now time.Time) {
	if el := now.Sub(g.refilled).Seconds(); el > 0 {
		g.tokens = min(g.burst, g.tokens+el*g.rate)
		g.refilled = now
	}
}

// tokenDue is when f's bucket next holds a token.
func (g *gate) tokenDue() time.Time {
	return g.refilled.Add(time.Duration((1 - g.tokens) / g.rate * float64(time.Second)))
}

// waitToken makes Tick wake f's workers when its next token comes. The lock is held.
func (s *Core) waitToken(f *function) {
	if f.gate.waiting {
		return
	}
	f.gate.waiting = true
	s.tokenWaits = append(s.tokenWaits, f)
	s.kickTick()
}

// checkTokens wakes workers of the functions whose bucket refilled; it returns when the next one
// is due (zero: none waits). The lock is held.
func (s *Core) checkTokens(tx Tx, now time.Time) time.Time {
	var next time.Time
	keep := s.tokenWaits[:0]
	for _, f := range s.tokenWaits {
		g := f.gate
		if g == nil || g.rate == 0 || s.functions[f.name] != f {
			continue
		}
		g.refill(now)
		if g.tokens >= 1 {
			g.waiting = false
			if n := f.queuedTotal(); n > 0 {
				s.wakeFor(tx, f, n)
			}
			continue
		}
		keep = append(keep, f)
		if due := g.tokenDue(); next.IsZero() || due.Before(next) {
			next = due
		}
	}
	clear(s.tokenWaits[len(keep):])
	s.tokenWaits = keep
	return next
}

// started takes a token for a job of f that starts now. The lock is held.
func (g *gate) started() {
	if g.rate > 0 {
		g.tokens--
	}
}

// hasWork reports whether a worker of f could be given one of its jobs now. The lock is held.
func (s *Core) hasWork(f *function) bool {
	return f.queuedTotal() > 0 && (f.gate == nil || s.gateOpen(f, s.opts.Now()))
}

// gateOpened wakes f's sleeping workers if jobs wait and the gate lets one through. The lock is
// held.
func (s *Core) gateOpened(tx Tx, f *function) {
	if n := f.queuedTotal(); n > 0 {
		s.wakeFor(tx, f, n) // which checks the gate
	}
}

// settings is f's settings as they stand.
func (f *function) settings() FunctionSettings {
	fs := FunctionSettings{MaxQueue: f.maxQueue}
	if g := f.gate; g != nil {
		fs.Paused, fs.MaxRunning, fs.RatePerSec, fs.RateBurst = g.paused, g.maxRunning, g.rate, int(g.burst)
	}
	fs.Updated, fs.Origin = f.settingsUpdated, f.settingsOrigin
	fs.RetryAttempts, fs.RetryJitter = f.retry.attempts, f.retry.jitter
	fs.RetryBaseSeconds, fs.RetryCapSeconds = f.retry.base.Seconds(), f.retry.cap.Seconds()
	return fs
}

// apply sets f's gate from fs. The lock is held.
func (s *Core) apply(f *function, fs FunctionSettings, now time.Time) {
	f.maxQueue = fs.MaxQueue
	f.retry = fs.retry()
	f.settingsUpdated, f.settingsOrigin = fs.Updated, fs.Origin
	g := &gate{paused: fs.Paused, maxRunning: fs.MaxRunning, rate: fs.RatePerSec}
	if g.rate > 0 {
		g.burst = float64(fs.RateBurst)
		if g.burst == 0 {
			g.burst = max(1, math.Ceil(g.rate))
		}
		g.tokens, g.refilled = g.burst, now
		if old := f.gate; old != nil && old.rate > 0 {
			old.refill(now)
			g.tokens = min(g.burst, old.tokens) // a change of rate does not hand out a fresh bucket
		}
	}
	if g.none() {
		g = nil
	}
	f.gate = g
}

// SetFunction changes a function's settings (creating the function), records them in the store
// when it keeps settings (store.SettingsStore), and wakes workers if the gate opened. origin
// names who asked. The store write happens outside the core's lock: settings change rarely, and an
// fsync must not stall every peer.
func (s *Core) SetFunction(name string, change func(*FunctionSettings), origin string) (FunctionSettings, error) {
	s.settingsMu.Lock()
	defer s.settingsMu.Unlock()
	s.lock()
	f := s.function([]byte(name), true)
	fs := f.settings()
	change(&fs)
	if err := fs.validate(); err != nil {
		s.collect(f)
		s.mu.Unlock()
		return fs, err
	}
	now := s.opts.Now()
	fs.Updated, fs.Origin = now.Unix(), origin
	s.apply(f, fs, now)
	s.gateOpened(s.async, f)
	s.collect(f)
	s.mu.Unlock()
	s.log.Info("function settings changed", "function", name, "paused", fs.Paused, "max_running", fs.MaxRunning,
		"rate_per_sec", fs.RatePerSec, "max_queue", fs.MaxQueue, "by", origin)
	return fs, s.saveSettings(name, fs)
}

// saveSettings records a function's settings in the store, if it keeps them; default settings
// are forgotten there.
func (s *Core) saveSettings(name string, fs FunctionSettings) error {
	ss, ok := s.opts.Store.(store.SettingsStore)
	if !ok {
		return nil
	}
	var data []byte
	if fs.Paused || fs.MaxRunning != 0 || fs.RatePerSec != 0 || fs.MaxQueue != [3]int{} || fs.RetryAttempts != 0 {
		data, _ = json.Marshal(fs)
	}
	if err := ss.SaveSettings(name, data); err != nil {
		s.log.Error("function settings changed but not stored: they last until a restart", "function", name, "err", err)
		return err
	}
	return nil
}

// loadSettings applies the settings the store keeps. The lock is held.
func (s *Core) loadSettings() error {
	ss, ok := s.opts.Store.(store.SettingsStore)
	if !ok {
		return nil
	}
	now := s.opts.Now()
	return ss.LoadSettings(func(name string, data []byte) error {
		var fs FunctionSettings
		if err := json.Unmarshal(data, &fs); err != nil {
			s.log.Error("ignoring unreadable stored settings", "function", name, "err", err)
			return nil
		}
		if err := fs.validate(); err != nil {
			s.log.Error("ignoring invalid stored settings", "function", name, "err", err)
			return nil
		}
		s.apply(s.function([]byte(name), true), fs, now)
		return nil
	})
}

// gateInfo fills the views' gate fields of f.
func gateInfo(f *function, fi *protocol.FunctionInfo) {
	if g := f.gate; g != nil {
		fi.Paused, fi.MaxRunning, fi.RatePerSec = g.paused, g.maxRunning, g.rate
	}
}

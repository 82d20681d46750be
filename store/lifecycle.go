package store

import "sync"

// lifecycle is what both stores' committers share: the lock over their queue, the committer's
// wake-up, and the end. Once closing is set operations are refused, their callbacks run on
// goroutines of their own that Close waits for; done closes when the committer has returned.
type lifecycle struct {
	mu      sync.Mutex
	closing bool
	closed  bool // Close has waited for callbacks: later ones are not tracked
	wake    chan struct{}
	done    chan struct{} // closed when the committer has returned

	// callbacks tracks the goroutines that report refused operations; Close waits for them. Add is
	// called under mu, and only while !closed.
	callbacks sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

func (l *lifecycle) initLifecycle() {
	l.wake = make(chan struct{}, 1)
	l.done = make(chan struct{})
}

// signal wakes the committer.
func (l *lifecycle) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// callbackLocked runs done(err) on a goroutine of its own, never the caller's: the server calls Add
// holding the lock its callback takes. The goroutine is one Close waits for, unless Close has
// already finished waiting (l.closed), when there is nothing left to wait for it. l.mu is held.
func (l *lifecycle) callbackLocked(done func(error), err error) {
	if l.closed {
		go done(err)
		return
	}
	l.callbacks.Go(func() { done(err) })
}

// stopCommitter refuses later operations and waits for the committer to apply what was queued
// and return.
func (l *lifecycle) stopCommitter() {
	l.mu.Lock()
	l.closing = true
	l.mu.Unlock()
	l.signal()
	<-l.done
}

// waitCallbacks waits for the callbacks of refused operations; later ones run untracked.
func (l *lifecycle) waitCallbacks() {
	// No callback is tracked once closed is set, so none is added while Wait runs.
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.callbacks.Wait()
}

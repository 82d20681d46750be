package worker_test

import (
	"bytes"
	"errors"
	"sync"

	"github.com/gearhq/gear/internal/testenv"
)

// The shared helpers, under the names these tests use.
var (
	mustStartGear     = testenv.StartGear
	mustStartGearOn   = testenv.StartGearOn
	freeAddr          = testenv.FreeAddr
	mustStartGearmand = testenv.StartGearmand
	newClient         = testenv.NewClient
	startWorker       = testenv.StartWorker
	reverseFunc       = testenv.Reverse
	waitFor           = testenv.WaitFor
	functionStatus    = testenv.FunctionStatus
	waitWorkers       = testenv.WaitWorkers
	newGate           = testenv.NewGate
	ctxTimeout        = testenv.CtxTimeout
	startWorkerOpts   = testenv.StartWorkerOpts
	startGearmandOn   = testenv.StartGearmandOn
)

type (
	runningWorker = testenv.Worker
	gate          = testenv.Gate
)

func errorsAs[T error](err error) (T, bool) {
	var target T
	ok := errors.As(err, &target)
	return target, ok
}

// syncBuffer is a bytes.Buffer safe for concurrent writers (a logger) and readers (the test).
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

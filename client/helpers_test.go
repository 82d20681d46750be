package client_test

import (
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
)

type (
	runningWorker = testenv.Worker
	gate          = testenv.Gate
	syncBuffer    = testenv.SyncBuffer
)

package main

import (
	"slices"
	"testing"

	"github.com/gearhq/gear/server"
)

// With no flags, gear server runs with server.DefaultOptions: the flags take their defaults from it
// rather than restating them.
func TestServerFlags_DefaultsAreTheServers(t *testing.T) {
	t.Setenv("GEARMAND_PORT", "")
	f := newServerFlags("gear server")
	if err := f.parse(nil); err != nil {
		t.Fatal(err)
	}
	got, err := f.options()
	if err != nil {
		t.Fatal(err)
	}
	want := server.DefaultOptions()
	if !slices.Equal(got.Listen, want.Listen) {
		t.Errorf("Listen = %q, want %q", got.Listen, want.Listen)
	}
	if got.JobRetries != want.JobRetries || got.HandlePrefix != want.HandlePrefix || got.Exceptions != want.Exceptions ||
		got.WorkerWakeup != want.WorkerWakeup || got.Keepalive != want.Keepalive || got.KeepaliveIdle != want.KeepaliveIdle ||
		got.MaxPacketSize != want.MaxPacketSize || got.IOLoops != want.IOLoops || got.FunctionIdleTTL != want.FunctionIdleTTL ||
		got.MaxOutbound != want.MaxOutbound {
		t.Errorf("options from the default flags differ from server.DefaultOptions:\n got %+v\nwant %+v", got, want)
	}
}

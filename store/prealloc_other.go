//go:build !linux

package store

// extend is a no-op where fallocate is not available: the WAL grows by its appends.
func extend(fd uintptr, offset, length int64) bool { return false }

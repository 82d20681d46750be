// Package bufpool recycles large byte buffers, one pool per power-of-two size from 8 KiB to 1 GiB,
// so a stream of large packets or payloads reuses memory instead of allocating (and zeroing, and
// later collecting) a buffer each time, while nothing stays pinned to an idle connection or job.
package bufpool

import (
	"math/bits"
	"sync"
)

const (
	minShift = 13 // 8 KiB
	maxShift = 30 // 1 GiB
)

// Min is the smallest length Get serves from a pool; shorter buffers are cheaper to allocate.
const Min = 1<<(minShift-1) + 1

var pools [maxShift - minShift + 1]sync.Pool

// Get returns a buffer of length n. From Min up to 1 GiB its capacity is the next power of two and
// it may have been used before: its contents are undefined.
func Get(n int) []byte {
	if n < Min {
		return make([]byte, n)
	}
	shift := bits.Len(uint(n - 1))
	if shift > maxShift {
		return make([]byte, n)
	}
	if b, ok := pools[shift-minShift].Get().(*[]byte); ok {
		return (*b)[:n]
	}
	return make([]byte, n, 1<<shift)
}

// Put gives a buffer from Get back for reuse. Buffers of other capacities are left to the garbage
// collector. The caller must not touch b afterwards.
func Put(b []byte) {
	c := cap(b)
	if c&(c-1) != 0 {
		return
	}
	shift := bits.Len(uint(c)) - 1
	if shift < minShift || shift > maxShift {
		return
	}
	b = b[:c]
	pools[shift-minShift].Put(&b)
}

package bench

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"math/rand/v2"
	"strconv"
)

// Payload layout, big-endian:
//
//	[0:4)   run nonce     jobs from another run (or another tool) are "foreign", not ours
//	[4:12)  job id
//	[12:16) CRC-32C of the filler followed by bytes [0:12)
//	[16:)   filler        the same random bytes in every job of a run
//
// Because the filler is fixed per run its CRC is computed once: building a payload is a copy and a
// 12-byte CRC update, checking one is a memcmp and the same update. Only a payload that fails the fast
// check pays for a full CRC, to tell a foreign job (valid CRC) from a corrupted one.
const (
	headerSize = 16
	offID      = 4
	offCRC     = 12
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// payloadStatus classifies a payload received back from the server.
type payloadStatus int

const (
	payloadOK      payloadStatus = iota
	payloadCorrupt               // wrong size, wrong checksum, or filler changed
	payloadForeign               // a valid payload of another run
)

// codec builds and checks the payloads of one run.
type codec struct {
	size      int
	nonce     uint32
	filler    []byte
	fillerCRC uint32
}

func newCodec(size int, nonce uint32) *codec {
	c := &codec{size: size, nonce: nonce, filler: make([]byte, size-headerSize)}
	rng := rand.NewPCG(uint64(nonce), 0x9e3779b97f4a7c15)
	for i := range c.filler {
		c.filler[i] = byte(rng.Uint64())
	}
	c.fillerCRC = crc32.Checksum(c.filler, castagnoli)
	return c
}

// build writes the payload of job id into buf (grown to the payload size) and returns it.
func (c *codec) build(buf []byte, id uint64) []byte {
	if cap(buf) < c.size {
		buf = make([]byte, c.size)
		copy(buf[headerSize:], c.filler)
	}
	buf = buf[:c.size]
	binary.BigEndian.PutUint32(buf[0:], c.nonce)
	binary.BigEndian.PutUint64(buf[offID:], id)
	binary.BigEndian.PutUint32(buf[offCRC:], crc32.Update(c.fillerCRC, castagnoli, buf[:offCRC]))
	return buf
}

// check classifies payload b. The id is returned whenever the header looks like this run's, even for a
// corrupted payload (a flipped filler byte still names its job), so that a corrupted job is not also
// counted as lost; it is -1 when the payload cannot be attributed.
func (c *codec) check(b []byte) (id int64, st payloadStatus) {
	if len(b) < headerSize {
		return -1, payloadCorrupt
	}
	id = -1
	if binary.BigEndian.Uint32(b) == c.nonce {
		id = int64(binary.BigEndian.Uint64(b[offID:]))
	}
	want := binary.BigEndian.Uint32(b[offCRC:])
	if len(b) == c.size && bytes.Equal(b[headerSize:], c.filler) &&
		crc32.Update(c.fillerCRC, castagnoli, b[:offCRC]) == want {
		if id < 0 {
			return -1, payloadForeign // our filler by chance: cannot happen with 2^32 nonces, but be exact
		}
		return id, payloadOK
	}
	sum := crc32.Update(crc32.Checksum(b[headerSize:], castagnoli), castagnoli, b[:offCRC])
	if sum == want && (id < 0 || len(b) != c.size) {
		return -1, payloadForeign
	}
	return id, payloadCorrupt
}

// uniqueKey appends the unique key of job id for the unique scenario: short (gearmand caps uniques at
// 64 bytes), distinct per run.
func (c *codec) uniqueKey(buf []byte, id int64) []byte {
	buf = append(buf[:0], 'u')
	buf = strconv.AppendUint(buf, uint64(c.nonce), 36)
	buf = append(buf, '-')
	return strconv.AppendInt(buf, id, 36)
}

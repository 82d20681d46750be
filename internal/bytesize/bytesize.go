// Package bytesize reads sizes such as 512MiB, 2G or 1048576: the one parser behind gear worker's
// and gear server's size flags and gear supervise's config file.
package bytesize

import (
	"fmt"
	"strconv"
	"strings"
)

// Size is a number of bytes that reads itself from text: a flag.Value and an
// encoding.TextUnmarshaler (so a TOML string "256MiB" decodes into it).
type Size uint64

func (b *Size) String() string { return strconv.FormatUint(uint64(*b), 10) }

// Set parses v (flag.Value).
func (b *Size) Set(v string) error {
	n, err := Parse(v)
	*b = Size(n)
	return err
}

// UnmarshalText parses text (encoding.TextUnmarshaler).
func (b *Size) UnmarshalText(text []byte) error { return b.Set(string(text)) }

// MarshalText writes the size in bytes.
func (b Size) MarshalText() ([]byte, error) { return strconv.AppendUint(nil, uint64(b), 10), nil }

// Parse reads a size: a number (fractions allowed) with an optional unit, case-insensitive: B,
// K/KiB, M/MiB, G/GiB (powers of 1024) or KB, MB, GB (powers of 1000).
func Parse(v string) (uint64, error) {
	s := strings.ToUpper(strings.TrimSpace(v))
	mult := uint64(1)
	for _, u := range []struct {
		suffix string
		mult   uint64
	}{{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"KB", 1000}, {"MB", 1000000}, {"GB", 1000000000},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	// 1<<63 bytes is far past any memory; the bound keeps the conversion below defined.
	if err != nil || !(n >= 0 && n*float64(mult) < 1<<63) { // also refuses NaN
		return 0, fmt.Errorf("invalid size %q (use e.g. 512MiB, 2G, 1048576)", v)
	}
	return uint64(n * float64(mult)), nil
}

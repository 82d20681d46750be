package bytesize

import "testing"

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"1048576", 1 << 20, true}, {"512MiB", 512 << 20, true}, {"2G", 2 << 30, true}, {"1.5k", 1536, true},
		{" 10 MB ", 10000000, true}, {"7b", 7, true}, {"", 0, false}, {"-1M", 0, false}, {"lots", 0, false},
		{"NaN", 0, false}, {"1e30G", 0, false},
	} {
		got, err := Parse(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("Parse(%q) = %d, %v; want %d (ok %v)", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

package serveraddr

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]string{
		"host":              "host:4730",
		" host ":            "host:4730",
		"host:4731":         "host:4731",
		"host:":             "host:4730", // an empty port is the default one
		"host:04731":        "host:4731",
		"127.0.0.1":         "127.0.0.1:4730",
		"10.0.0.1:1":        "10.0.0.1:1",
		"[::1]":             "[::1]:4730",
		"[::1]:7":           "[::1]:7",
		"[::1]:":            "[::1]:4730",
		"::1":               "[::1]:4730",
		"fe80::1%eth0":      "[fe80::1%eth0]:4730",
		"[fe80::1%eth0]:80": "[fe80::1%eth0]:80",
		"2001:db8::1:80":    "[2001:db8::1:80]:4730", // bare: all of it is the address
		"gear-1.example_x":  "gear-1.example_x:4730",
		"h:65535":           "h:65535",
		"tls://h":           "tls://h:4730",
		" tls://h:4731 ":    "tls://h:4731",
		"tls://[::1]:7":     "tls://[::1]:7",
		"tls://::1":         "tls://[::1]:4730",
	} {
		if got, err := Parse(in); err != nil || got != want {
			t.Errorf("Parse(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for in, why := range map[string]string{
		"":              "empty",
		"   ":           "empty",
		":4730":         "no host",
		"[]":            "no host",
		"[]:1":          "no host",
		"h:x":           "invalid port",
		"h:0":           "invalid port",
		"h:65536":       "invalid port",
		"h:-1":          "invalid port",
		"h:+1":          "invalid port",
		"h:1:2":         "neither host:port nor an IPv6 address",
		"[h]:1":         "not an IPv6 address",
		"[127.0.0.1]":   "not an IPv6 address",
		"[::1":          "unbalanced brackets",
		"::1]":          "unbalanced brackets",
		"a b":           "invalid host",
		"a\tb:1":        "invalid host",
		"a/b":           "invalid host",
		"[::1]x":        "unbalanced brackets",
		"a,b":           "invalid host",
		"h:4730:extra:": "neither host:port nor an IPv6 address",
		"tls://":        "no host",
		"tls://:1":      "no host",
		"tls://tls://h": "unknown scheme",
		"http://h":      "unknown scheme",
		"TLS://h":       "unknown scheme",
		"tls://h:0":     "invalid port",
	} {
		got, err := Parse(in)
		if err == nil || !strings.Contains(err.Error(), why) || !strings.Contains(err.Error(), "server address") {
			t.Errorf("Parse(%q) = %q, %v; want an error saying %q", in, got, err, why)
		}
	}
}

// Port 0 is for listening: Split takes it, only the dialling forms refuse it.
func TestSplit_PortZero(t *testing.T) {
	a, err := Split("0.0.0.0:0")
	if err != nil || a != (Addr{Host: "0.0.0.0", Port: "0"}) {
		t.Errorf("Split(0.0.0.0:0) = %+v, %v", a, err)
	}
	if got := (Addr{Host: "::"}).WithPort("4731"); got != "[::]:4731" {
		t.Errorf("WithPort = %q", got)
	}
	if _, err := a.Dial(); err == nil {
		t.Error("Dial accepted port 0")
	}
}

func TestParseList(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{" , ,", nil},
		{"host", []string{"host:4730"}},
		{" a:1 , b ,, [::1]:9,[::1], ::1 ", []string{"a:1", "b:4730", "[::1]:9", "[::1]:4730"}},
		{"h,h:4730,h:1", []string{"h:4730", "h:1"}},
		{"h, tls://h:4731, tls://h:4731", []string{"h:4730", "tls://h:4731"}},
	} {
		if got, err := ParseList(tc.in); err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ParseList(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if got, err := ParseList("a, b:x, c"); err == nil || !strings.Contains(err.Error(), `"b:x"`) {
		t.Errorf("ParseList with a bad entry = %q, %v; want the error naming it", got, err)
	}
}

func TestServers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		addrs   []string
		env     string
		want    []string
		wantErr string
	}{
		{"default", nil, "", []string{Default}, ""},
		{"blank env", nil, " , ", []string{Default}, ""},
		{"env", nil, "a, b:4731,,[::1],::1,[::1]:7", []string{"a:4730", "b:4731", "[::1]:4730", "[::1]:7"}, ""},
		{"addrs win over env", []string{"x", "y:1,z"}, "a", []string{"x:4730", "y:1", "z:4730"}, ""},
		{"duplicates dropped", []string{"h", "h:4730"}, "", []string{"h:4730"}, ""},
		{"bad env", nil, "a,:1", nil, "GEARMAN_SERVERS: server address \":1\": no host"},
		{"bad addr", []string{"h:0"}, "", nil, "invalid port"},
		{"no server", []string{","}, "a", nil, "no server given"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Servers(tc.addrs, tc.env)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("Servers = %q, %v; want an error with %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("Servers(%q, %q) = %q, %v; want %q", tc.addrs, tc.env, got, err, tc.want)
			}
		})
	}
	if _, err := Servers([]string{""}, ""); !errors.Is(err, ErrNoServer) {
		t.Errorf("Servers([\"\"]) error %v; want ErrNoServer", err)
	}
}

// FuzzParse: any input is read or refused, never a panic, and what Parse returns reads back as
// itself.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"host", "h:1", "[::1]:7", "::1", "fe80::1%eth0", "[", "]:", "h:99999", "a,b",
		"tls://h:1", "tls://", "tls://tls://h", "tls://[::1]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := Parse(s)
		if err != nil {
			return
		}
		again, err := Parse(got)
		if err != nil || again != got {
			t.Errorf("Parse(%q) = %q, which parses as %q, %v", s, got, again, err)
		}
		hostPort, isTLS := CutTLS(got)
		if isTLS != strings.HasPrefix(strings.TrimSpace(s), TLSScheme) || strings.Contains(hostPort, "/") {
			t.Errorf("Parse(%q) = %q: CutTLS gives %q, %v", s, got, hostPort, isTLS)
		}
	})
}

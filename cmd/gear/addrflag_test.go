package main

import (
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
)

// addrFlag is what --server and --listen of every subcommand read; the address forms themselves are
// tested in internal/serveraddr.
func TestAddrFlag_Servers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		flagged []string
		env     string
		want    []string
		wantErr string
	}{
		{"default", nil, "", []string{"127.0.0.1:4730"}, ""},
		{"env with and without ports", nil, "a, b:4731,,[::1],::1,[::1]:7", []string{"a:4730", "b:4731", "[::1]:4730", "[::1]:7"}, ""},
		{"flags win over env", []string{"x", "y:1,z"}, "a", []string{"x:4730", "y:1", "z:4730"}, ""},
		{"flags win over a bad env", []string{"x"}, "a:b", []string{"x:4730"}, ""},
		{"empty port", []string{"h:"}, "", []string{"h:4730"}, ""},
		{"duplicates dropped", []string{"h", "h:4730"}, "", []string{"h:4730"}, ""},
		{"bad port", []string{"h:x"}, "", nil, `invalid port "x"`},
		{"port out of range", []string{"h:0"}, "", nil, `invalid port "0"`},
		{"no host", []string{":4730"}, "", nil, "no host"},
		{"empty flag", []string{","}, "", nil, "no server given"},
		{"bad env", nil, "a,b:99999", nil, "GEARMAN_SERVERS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f addrFlag
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			fs.Var(&f, "server", "")
			var args []string
			for _, v := range tc.flagged {
				args = append(args, "--server", v)
			}
			err := fs.Parse(args)
			var got []string
			if err == nil {
				got, err = f.servers(tc.env)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("got %q, %v; want an error with %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("--server %q with GEARMAN_SERVERS=%q: %q, %v; want %q", tc.flagged, tc.env, got, err, tc.want)
			}
		})
	}
}

// A listening addrFlag takes port 0 and leaves the port of a bare host to --port.
func TestAddrFlag_Listen(t *testing.T) {
	f := addrFlag{listen: true}
	for _, v := range []string{"127.0.0.1", "[::1]:0, 0.0.0.0:4731", "::"} {
		if err := f.Set(v); err != nil {
			t.Fatalf("Set(%q): %v", v, err)
		}
	}
	if got, want := f.withPort("4999"), []string{"127.0.0.1:4999", "[::1]:0", "0.0.0.0:4731", "[::]:4999"}; !slices.Equal(got, want) {
		t.Errorf("withPort = %q, want %q", got, want)
	}
	if got := f.String(); got != "127.0.0.1,[::1]:0,0.0.0.0:4731,[::]" {
		t.Errorf("String = %q", got)
	}
	for _, bad := range []string{"", ":4730", "h:x", "[h]"} {
		if err := f.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
}

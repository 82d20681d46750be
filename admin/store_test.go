package admin

// The `store` command (a Gear extension): parsing, printing, and live against Gear with and without
// a durable store and against gearmand, which does not know it.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gearhq/gear/protocol"
	"github.com/gearhq/gear/server"
	"github.com/gearhq/gear/store"
)

func TestConn_Store(t *testing.T) {
	for _, tc := range []struct {
		name, reply string
		want        StoreInfo
		wantErr     error // nil, errMalformed or a *ServerError
	}{
		{
			name: "pebble",
			reply: "engine\tpebble\npath\t/var/lib/gear data\nsync\tinterval\njobs\t12\n" +
				"last_sync\t2026-11-25T22:54:04.123456789Z\nlast_error\t-\n.\n",
			want: StoreInfo{Engine: "pebble", Path: "/var/lib/gear data", Sync: "interval", Jobs: 12,
				LastSync: "2026-11-25T22:54:04.123456789Z"},
		},
		{
			name:  "never synced, a write failed, CRLF endings",
			reply: "engine\tpebble\r\npath\t/d\r\nsync\talways\r\njobs\t0\r\nlast_sync\t-\r\nlast_error\twrite /d/000002.log: no space left on device\r\n.\r\n",
			want:  StoreInfo{Engine: "pebble", Path: "/d", Sync: "always", LastError: "write /d/000002.log: no space left on device"},
		},
		{name: "memory", reply: "engine\tmemory\n.\n", want: StoreInfo{Engine: "memory"}},
		{
			name:  "keys a later server adds are skipped",
			reply: "engine\tpebble\nwal_size\t123\njobs\t3\nfuture\ta\tb\n.\n",
			want:  StoreInfo{Engine: "pebble", Jobs: 3},
		},
		{name: "no engine", reply: "jobs\t1\n.\n", wantErr: errMalformed},
		{name: "empty list", reply: ".\n", wantErr: errMalformed},
		{name: "line without a tab", reply: "engine pebble\n.\n", wantErr: errMalformed},
		{name: "jobs not a number", reply: "engine\tpebble\njobs\tmany\n.\n", wantErr: errMalformed},
		{name: "negative jobs", reply: "engine\tpebble\njobs\t-1\n.\n", wantErr: errMalformed},
		{name: "server error", reply: "ERR SERVER_ERROR oops\r\n", wantErr: serverErr("SERVER_ERROR", "oops")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, oneByte := range []bool{false, true} {
				sc := scripted(tc.reply)
				r := sc.readerWhole()
				if oneByte {
					r = sc.readerOneByte()
				}
				c := connOver(sc, r)
				got, err := c.Store(t.Context())
				if sc.wrote() != "store\r\n" {
					t.Fatalf("sent %q", sc.wrote())
				}
				checkErr(t, err, tc.wantErr)
				if got != tc.want {
					t.Fatalf("got %+v, want %+v", got, tc.want)
				}
			}
		})
	}
}

// A server without the command: the error says what `store` is and still carries the server's
// ServerError, and the connection stays usable.
func TestConn_StoreUnknownCommand(t *testing.T) {
	for _, reply := range []string{
		"ERR UNKNOWN_COMMAND Unknown+server+commandstore\r\n", // gearmand 1.1, verbatim
		"ERR unknown_command Unknown+server+command\r\n",      // the Perl server's style
	} {
		sc := scripted(reply + "OK 1.1.20\n")
		c := connOver(sc, sc.readerWhole())
		_, err := c.Store(t.Context())
		var se *ServerError
		if !errors.As(err, &se) || !strings.EqualFold(se.Code, "UNKNOWN_COMMAND") {
			t.Fatalf("%q: %v, want a ServerError UNKNOWN_COMMAND", reply, err)
		}
		if !strings.Contains(err.Error(), "Gear extension") {
			t.Errorf("error %q does not say store is a Gear extension", err)
		}
		if v, err := c.Version(t.Context()); err != nil || v != "1.1.20" {
			t.Errorf("Version after the refusal: %q %v", v, err)
		}
	}
}

func TestWriteStore(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   StoreInfo
		want string
	}{
		{
			"pebble",
			StoreInfo{Engine: "pebble", Path: "/var/lib/gear", Sync: "always", Jobs: 1234,
				LastSync: "2026-11-25T22:54:04.5Z"},
			"engine      pebble\n" +
				"path        /var/lib/gear\n" +
				"sync        always\n" +
				"jobs        1234\n" +
				"last sync   2026-11-25T22:54:04.5Z\n" +
				"last error  -\n",
		},
		{
			"odd path and an error",
			StoreInfo{Engine: "pebble", Path: "/tmp/a\tb", Sync: "none", LastError: "disk full"},
			"engine      pebble\n" +
				"path        \"/tmp/a\\tb\"\n" +
				"sync        none\n" +
				"jobs        0\n" +
				"last sync   -\n" +
				"last error  disk full\n",
		},
		{"memory", StoreInfo{Engine: "memory"}, "engine  memory\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := WriteStore(&b, tc.in); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Errorf("got\n%s\nwant\n%s", b.String(), tc.want)
			}
		})
	}
}

func TestWriteJSON_Store(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSON(&b, StoreInfo{Engine: "memory"}); err != nil {
		t.Fatal(err)
	}
	want := "{\n  \"engine\": \"memory\",\n  \"path\": \"\",\n  \"sync\": \"\",\n  \"jobs\": 0,\n" +
		"  \"last_sync\": \"\",\n  \"last_error\": \"\"\n}\n"
	if b.String() != want {
		t.Errorf("got %s, want %s", b.String(), want)
	}
}

// mustStartGearWithStore starts a Gear server keeping background jobs in a Pebble store in dir.
func mustStartGearWithStore(tb testing.TB, dir string) string {
	tb.Helper()
	st, err := store.OpenPebble(dir, store.SyncAlways, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	opts := server.DefaultOptions()
	opts.Listen = nil
	opts.HandlePrefix = "H:test"
	opts.Store = st
	srv, err := server.New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { srv.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	if err := srv.Serve(ln); err != nil {
		ln.Close()
		tb.Fatal(err)
	}
	return ln.Addr().String()
}

func TestLive_Store(t *testing.T) {
	t.Run("gear with a store", func(t *testing.T) {
		dir := t.TempDir()
		addr := mustStartGearWithStore(t, dir)
		c := mustDial(t, addr)
		got, err := c.Store(liveCtx(t))
		if want := (StoreInfo{Engine: "pebble", Path: dir, Sync: "always"}); err != nil || got != want {
			t.Fatalf("Store of an empty store: %+v %v, want %+v", got, err, want)
		}
		client := mustConnect(t, addr)
		client.submitBg(protocol.SubmitJobBg, "fn", "")
		client.submitBg(protocol.SubmitJobLowBg, "fn", "")
		got, err = c.Store(liveCtx(t))
		if err != nil || got.Jobs != 2 || got.LastError != "" {
			t.Fatalf("Store after two background submits: %+v %v", got, err)
		}
		if ts, err := time.Parse(time.RFC3339Nano, got.LastSync); err != nil || time.Since(ts) > time.Minute {
			t.Errorf("LastSync %q: %v", got.LastSync, err)
		}

		var b bytes.Buffer
		if err := Show(liveCtx(t), &b, addr, "store", false); err != nil {
			t.Fatal(err)
		}
		want := "engine      pebble\npath        " + dir + "\nsync        always\njobs        2\n" +
			"last sync   " + got.LastSync + "\nlast error  -\n"
		if b.String() != want {
			t.Errorf("Show store:\n%s\nwant\n%s", b.String(), want)
		}
		b.Reset()
		if err := Show(liveCtx(t), &b, addr, "store", true); err != nil {
			t.Fatal(err)
		}
		var fromJSON StoreInfo
		if err := json.Unmarshal(b.Bytes(), &fromJSON); err != nil || fromJSON != got {
			t.Errorf("Show store --json: %v %s, want %+v", err, b.String(), got)
		}
	})
	t.Run("gear in memory", func(t *testing.T) {
		_, addr := mustStartGear(t)
		got, err := mustDial(t, addr).Store(liveCtx(t))
		if err != nil || got != (StoreInfo{Engine: "memory"}) {
			t.Fatalf("Store: %+v %v", got, err)
		}
		var b bytes.Buffer
		if err := Show(liveCtx(t), &b, addr, "store", false); err != nil || b.String() != "engine  memory\n" {
			t.Errorf("Show store: %v %q", err, b.String())
		}
	})
	t.Run("gearmand", func(t *testing.T) {
		addr, _ := mustStartGearmand(t)
		c := mustDial(t, addr)
		_, err := c.Store(liveCtx(t))
		var se *ServerError
		if !errors.As(err, &se) || se.Code != "UNKNOWN_COMMAND" || !strings.Contains(err.Error(), "Gear extension") {
			t.Fatalf("Store on gearmand: %v, want a clear UNKNOWN_COMMAND error", err)
		}
		var b bytes.Buffer
		if err := Show(liveCtx(t), &b, addr, "store", false); err == nil || b.Len() > 0 {
			t.Errorf("Show store on gearmand: %v, printed %q", err, b.String())
		}
		if _, err := c.Version(liveCtx(t)); err != nil {
			t.Errorf("the connection is unusable after the refusal: %v", err)
		}
	})
}

// FuzzParseStore feeds the `store` parser and printer any reply: errors, never panics.
func FuzzParseStore(f *testing.F) {
	for _, seed := range []string{
		"engine\tpebble\npath\t/d\nsync\talways\njobs\t1\nlast_sync\t-\nlast_error\t-\n.\n",
		"engine\tmemory\n.\n", "jobs\t99999999999999999999\n.\n", "ERR UNKNOWN_COMMAND x\r\n", "\t\n.\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		lines, err := readReply(bufio.NewReaderSize(bytes.NewReader(data), 16), tabular)
		if err != nil {
			return
		}
		s, err := parseStore(lines)
		if err != nil {
			return
		}
		if s.Engine == "" || s.Jobs < 0 {
			t.Fatalf("parsed an invalid reply %q as %+v", lines, s)
		}
		WriteStore(io.Discard, s)
		WriteJSON(io.Discard, s)
	})
}

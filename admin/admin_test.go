package admin

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// scriptConn is a net.Conn that records what the client writes and answers from a fixed reply.
type scriptConn struct {
	net.Conn // nil: only the methods below are used
	reply    io.Reader
	written  bytes.Buffer
}

func (s *scriptConn) Read(p []byte) (int, error)       { return s.reply.Read(p) }
func (s *scriptConn) Write(p []byte) (int, error)      { return s.written.Write(p) }
func (s *scriptConn) Close() error                     { return nil }
func (s *scriptConn) SetDeadline(time.Time) error      { return nil }
func (s *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (s *scriptConn) SetWriteDeadline(time.Time) error { return nil }
func (s *scriptConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (s *scriptConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (s *scriptConn) wrote() string                    { return s.written.String() }
func (s *scriptConn) readerOneByte() *bufio.Reader {
	return bufio.NewReaderSize(iotest.OneByteReader(s), 16)
}
func (s *scriptConn) readerWhole() *bufio.Reader    { return bufio.NewReaderSize(s, 4096) }
func scripted(reply string) *scriptConn             { return &scriptConn{reply: strings.NewReader(reply)} }
func connOver(s *scriptConn, r *bufio.Reader) *Conn { return &Conn{nc: s, r: r} }
func serverErr(code, text string) *ServerError      { return &ServerError{Code: code, Text: text} }
func call[T any](f func(*Conn) (T, error)) func(*Conn) (any, error) {
	return func(c *Conn) (any, error) { return f(c) }
}

// errMalformed marks a case whose reply must be refused as malformed (not a ServerError).
var errMalformed = errors.New("malformed")

func TestConn_Replies(t *testing.T) {
	ctx := context.Background()
	status := call(func(c *Conn) ([]FunctionStatus, error) { return c.Status(ctx) })
	priority := call(func(c *Conn) ([]PriorityStatus, error) { return c.PriorityStatus(ctx) })
	workers := call(func(c *Conn) ([]WorkerInfo, error) { return c.Workers(ctx) })
	jobs := call(func(c *Conn) ([]JobInfo, error) { return c.Jobs(ctx) })
	unique := call(func(c *Conn) ([]string, error) { return c.UniqueJobs(ctx) })
	version := call(func(c *Conn) (string, error) { return c.Version(ctx) })
	pid := call(func(c *Conn) (int, error) { return c.PID(ctx) })
	verbose := call(func(c *Conn) (string, error) { return c.Verbose(ctx) })
	noValue := func(f func(*Conn) error) func(*Conn) (any, error) {
		return func(c *Conn) (any, error) { return nil, f(c) }
	}
	cancel := noValue(func(c *Conn) error { return c.Cancel(ctx, "H:vm:1") })
	create := noValue(func(c *Conn) error { return c.CreateFunction(ctx, "newfn") })
	drop := noValue(func(c *Conn) error { return c.DropFunction(ctx, "fn") })
	shutdown := noValue(func(c *Conn) error { return c.Shutdown(ctx, true) })

	for _, tc := range []struct {
		name    string
		call    func(*Conn) (any, error)
		reply   string
		sent    string
		want    any
		wantErr error // a *ServerError to compare, or errMalformed
	}{
		{"status empty", status, ".\n", "status\r\n", []FunctionStatus{}, nil},
		{"status gearmand", status, "fn\t3\t1\t1\nother\t0\t0\t1\n.\n", "status\r\n",
			[]FunctionStatus{{Name: "fn", Total: 3, Running: 1, Workers: 1}, {Name: "other", Total: 0, Running: 0, Workers: 1}}, nil},
		{"status mixed line endings", status, "a\t1\t0\t0\r\nb\t2\t1\t1\n.\r\n", "status\r\n",
			[]FunctionStatus{{Name: "a", Total: 1, Running: 0, Workers: 0}, {Name: "b", Total: 2, Running: 1, Workers: 1}}, nil},
		{"status tab in name (Perl prefix)", status, "prefix_a\techo_sleep\t1\t0\t0\n.\n", "status\r\n",
			[]FunctionStatus{{Name: "prefix_a\techo_sleep", Total: 1, Running: 0, Workers: 0}}, nil},
		{"status empty name (gearmand create function ab)", status, "\t0\t0\t0\n.\n", "status\r\n",
			[]FunctionStatus{{Name: "", Total: 0, Running: 0, Workers: 0}}, nil},
		{"status function named ERR", status, "ERR x\t1\t0\t0\n.\n", "status\r\n",
			[]FunctionStatus{{Name: "ERR x", Total: 1, Running: 0, Workers: 0}}, nil},
		{"status unknown command", status, "ERR UNKNOWN_COMMAND Unknown+server+commandstatus\r\n", "status\r\n",
			nil, serverErr("UNKNOWN_COMMAND", "Unknown server commandstatus")},
		{"status too few columns", status, "fn\t1\t0\n.\n", "status\r\n", nil, errMalformed},
		{"status not a number", status, "fn\tx\t0\t0\n.\n", "status\r\n", nil, errMalformed},

		{"prioritystatus", priority, "fn\t0\t1\t1\t1\nother\t0\t0\t0\t1\n.\n", "prioritystatus\r\n",
			[]PriorityStatus{{Name: "fn", High: 0, Normal: 1, Low: 1, Workers: 1}, {Name: "other", High: 0, Normal: 0, Low: 0, Workers: 1}}, nil},
		{"prioritystatus crlf", priority, "fn\t5\t4\t3\t2\r\n.\r\n", "prioritystatus\r\n",
			[]PriorityStatus{{Name: "fn", High: 5, Normal: 4, Low: 3, Workers: 2}}, nil},
		{"prioritystatus old gearmand", priority, "ERR UNKNOWN_COMMAND Unknown+server+commandprioritystatus\r\n",
			"prioritystatus\r\n", nil, serverErr("UNKNOWN_COMMAND", "Unknown server commandprioritystatus")},
		{"prioritystatus status columns", priority, "fn\t1\t0\t0\n.\n", "prioritystatus\r\n", nil, errMalformed},

		{"workers gearmand", workers, "17 127.0.0.1 - :\n16 127.0.0.1 worker-1 : other fn\n.\n", "workers\r\n",
			[]WorkerInfo{{FD: "17", IP: "127.0.0.1", ID: "-", Functions: []string{}}, {FD: "16", IP: "127.0.0.1", ID: "worker-1", Functions: []string{"other", "fn"}}}, nil},
		{"workers Perl trailing space", workers, "5 127.0.0.1 - : \n6 127.0.0.1 w : a b \n.\n", "workers\r\n",
			[]WorkerInfo{{FD: "5", IP: "127.0.0.1", ID: "-", Functions: []string{}}, {FD: "6", IP: "127.0.0.1", ID: "w", Functions: []string{"a", "b"}}}, nil},
		{"workers IPv6 and crlf", workers, "7 ::1 id : f\r\n.\r\n", "workers\r\n",
			[]WorkerInfo{{FD: "7", IP: "::1", ID: "id", Functions: []string{"f"}}}, nil},
		{"workers empty", workers, ".\n", "workers\r\n", []WorkerInfo{}, nil},
		{"workers no colon", workers, "1 127.0.0.1 id f\n.\n", "workers\r\n", nil, errMalformed},
		{"workers one word", workers, "garbage\n.\n", "workers\r\n", nil, errMalformed},

		{"show jobs", jobs, "H:vm:1\t0\t0\t1\nH:vm:2\t3\t1\t0\n.\n", "show jobs\r\n",
			[]JobInfo{{Handle: "H:vm:1", Retries: 0, Ignored: false, Queued: true}, {Handle: "H:vm:2", Retries: 3, Ignored: true, Queued: false}}, nil},
		{"show jobs empty", jobs, ".\n", "show jobs\r\n", []JobInfo{}, nil},
		{"show jobs flag out of range", jobs, "H:1\t0\t2\t0\n.\n", "show jobs\r\n", nil, errMalformed},
		{"show jobs no handle", jobs, "\t0\t0\t0\n.\n", "show jobs\r\n", nil, errMalformed},

		{"show unique jobs gearmand blank unique", unique, "\nu1\nu2\n.\n", "show unique jobs\r\n",
			[]string{"u1", "u2"}, nil},
		{"show unique jobs empty", unique, ".\n", "show unique jobs\r\n", []string{}, nil},

		{"version gearmand", version, "OK 1.1.20+ds\n", "version\r\n", "1.1.20+ds", nil},
		{"version Perl server without OK", version, "1.130.1\n", "version\r\n", "1.130.1", nil},
		{"version crlf", version, "OK 0.1.0\r\n", "version\r\n", "0.1.0", nil},
		{"getpid", pid, "OK 14119\n", "getpid\r\n", 14119, nil},
		{"getpid not a number", pid, "OK abc\n", "getpid\r\n", nil, errMalformed},
		{"getpid Perl server", pid, "ERR unknown_command Unknown+command\r\n", "getpid\r\n",
			nil, serverErr("unknown_command", "Unknown command")},
		{"verbose", verbose, "OK WARNING\n", "verbose\r\n", "WARNING", nil},

		{"cancel", cancel, "OK\r\n", "cancel job H:vm:1\r\n", nil, nil},
		{"cancel unknown job", cancel, "ERR UNKNOWN_JOB\r\n", "cancel job H:vm:1\r\n", nil, serverErr("UNKNOWN_JOB", "")},
		{"create function", create, "OK\r\n", "create function newfn\r\n", nil, nil},
		{"drop function workers (free text)", drop, "ERR there are still connected workers or executing clients\r\n",
			"drop function fn\r\n", nil, serverErr("", "there are still connected workers or executing clients")},
		{"drop function not found", drop, "ERR function not found\r\n", "drop function fn\r\n",
			nil, serverErr("", "function not found")},
		{"drop function odd reply", drop, "DONE\n", "drop function fn\r\n", nil, errMalformed},
		{"shutdown OK without CR (Perl)", shutdown, "OK\n", "shutdown graceful\r\n", nil, nil},
		{"shutdown closed without reply", shutdown, "", "shutdown graceful\r\n", nil, nil},
		{"shutdown gearmand 1.1.20", shutdown, "ERR UNKNOWN_COMMAND Unknown+server+commandshutdown\r\n",
			"shutdown graceful\r\n", nil, serverErr("UNKNOWN_COMMAND", "Unknown server commandshutdown")},
	} {
		for _, split := range []string{"whole", "one byte at a time"} {
			t.Run(tc.name+"/"+split, func(t *testing.T) {
				sc := scripted(tc.reply)
				r := sc.readerWhole()
				if split != "whole" {
					r = sc.readerOneByte()
				}
				got, err := tc.call(connOver(sc, r))
				if sc.wrote() != tc.sent {
					t.Errorf("sent %q, want %q", sc.wrote(), tc.sent)
				}
				checkErr(t, err, tc.wantErr)
				if tc.wantErr == nil && tc.want != nil && !reflect.DeepEqual(got, tc.want) {
					t.Errorf("got %#v, want %#v", got, tc.want)
				}
			})
		}
	}
}

func checkErr(t *testing.T, err, want error) {
	t.Helper()
	var se *ServerError
	switch {
	case want == nil:
		if err != nil {
			t.Fatalf("error %v", err)
		}
	case want == errMalformed:
		if err == nil || errors.As(err, &se) {
			t.Fatalf("error %v, want a malformed-reply error", err)
		}
	default:
		if !errors.As(err, &se) || !reflect.DeepEqual(se, want) {
			t.Fatalf("error %#v, want %#v", err, want)
		}
	}
}

// A reply cut short, a line without end, a row that does not parse or bytes beyond the reply are
// errors that break the connection; a server error does not.
func TestConn_BrokenStream(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, reply string
		want        error
	}{
		{"list without end", "fn\t1\t0\t0\n", io.ErrUnexpectedEOF},
		{"line without newline", "fn\t1\t0", io.ErrUnexpectedEOF},
		{"nothing", "", io.EOF},
		{"line too long", strings.Repeat("x", maxLineSize+1) + "\n", errLineTooLong},
		{"row that does not parse", "evil\n.\n", nil},
		{"bytes after the reply", "fn\t1\t0\t0\n.\nERR\t1\t0\t0\n.\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := scripted(tc.reply)
			c := connOver(sc, sc.readerWhole())
			_, err := c.Status(ctx)
			if err == nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Status: %v, want %v", err, tc.want)
			}
			if _, again := c.Version(ctx); again != err {
				t.Fatalf("a call after a broken reply: %v, want the first error again (%v)", again, err)
			}
		})
	}

	sc := scripted("ERR UNKNOWN_COMMAND x\r\nOK 1.0\n")
	c := connOver(sc, sc.readerWhole())
	if _, err := c.PriorityStatus(ctx); err == nil {
		t.Fatal("PriorityStatus: no error")
	}
	if v, err := c.Version(ctx); err != nil || v != "1.0" {
		t.Fatalf("Version after a server error: %q %v", v, err)
	}
}

// Arguments that the text protocol would split, or that would smuggle in a second command, are
// refused before anything is sent.
func TestConn_RefusesUnsafeArguments(t *testing.T) {
	ctx := context.Background()
	for _, bad := range []string{"", "a b", "x\nshutdown", "tab\there", "cr\r"} {
		sc := scripted("OK\r\n")
		c := connOver(sc, sc.readerWhole())
		for name, err := range map[string]error{
			"Cancel":         c.Cancel(ctx, bad),
			"CreateFunction": c.CreateFunction(ctx, bad),
			"DropFunction":   c.DropFunction(ctx, bad),
			"MaxQueue":       c.MaxQueue(ctx, bad, 1),
		} {
			if err == nil {
				t.Errorf("%s(%q): no error", name, bad)
			}
		}
		if sc.wrote() != "" {
			t.Errorf("sent %q for argument %q", sc.wrote(), bad)
		}
	}
}

func TestConn_MaxQueueArguments(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		limits []int
		sent   string
	}{
		{nil, "maxqueue f\r\n"},
		{[]int{5}, "maxqueue f 5\r\n"},
		{[]int{0}, "maxqueue f 0\r\n"},
		{[]int{1, 2, 3}, "maxqueue f 1 2 3\r\n"},
	} {
		sc := scripted("OK\r\n")
		if err := connOver(sc, sc.readerWhole()).MaxQueue(ctx, "f", tc.limits...); err != nil {
			t.Fatalf("MaxQueue %v: %v", tc.limits, err)
		}
		if sc.wrote() != tc.sent {
			t.Errorf("MaxQueue %v sent %q, want %q", tc.limits, sc.wrote(), tc.sent)
		}
	}
	sc := scripted("OK\r\n")
	if err := connOver(sc, sc.readerWhole()).MaxQueue(ctx, "f", 1, 2); err == nil || sc.wrote() != "" {
		t.Fatalf("MaxQueue with 2 limits: %v, sent %q", err, sc.wrote())
	}
}

func TestServerError_Message(t *testing.T) {
	for _, tc := range []struct {
		err  ServerError
		want string
	}{
		{ServerError{"UNKNOWN_JOB", ""}, "server error UNKNOWN_JOB"},
		{ServerError{"INVALID_ARGUMENTS", "bad value"}, "server error INVALID_ARGUMENTS: bad value"},
		{ServerError{"", "function not found"}, "server error: function not found"},
		{ServerError{}, "server error"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("%#v: %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestWrite_Tables(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(io.Writer) error
		want  string
	}{
		{"status sorted and aligned", func(w io.Writer) error {
			return WriteStatus(w, []FunctionStatus{{Name: "resize_image", Total: 12, Running: 3, Workers: 4}, {Name: "email", Total: 0, Running: 0, Workers: 1}, {Name: "a\tb", Total: 1, Running: 0, Workers: 0}})
		}, "" +
			"FUNCTION      TOTAL  RUNNING  WORKERS\n" +
			"\"a\\tb\"        1      0        0\n" +
			"email         0      0        1\n" +
			"resize_image  12     3        4\n"},
		{"status empty", func(w io.Writer) error { return WriteStatus(w, nil) },
			"FUNCTION  TOTAL  RUNNING  WORKERS\n"},
		{"priority", func(w io.Writer) error {
			return WritePriorityStatus(w, []PriorityStatus{{Name: "z", High: 1, Normal: 2, Low: 3, Workers: 4}, {Name: "", High: 0, Normal: 0, Low: 0, Workers: 0}})
		}, "" +
			"FUNCTION  HIGH  NORMAL  LOW  WORKERS\n" +
			"\"\"        0     0       0    0\n" +
			"z         1     2       3    4\n"},
		{"workers", func(w io.Writer) error {
			return WriteWorkers(w, []WorkerInfo{
				{FD: "16", IP: "127.0.0.1", ID: "worker-1", Functions: []string{"other", "fn"}},
				{FD: "17", IP: "127.0.0.1", ID: "-"},
				{FD: "9", IP: "127.0.0.1", ID: "-", Functions: []string{}},
			})
		}, "" +
			"ID        IP         FD  FUNCTIONS\n" +
			"-         127.0.0.1  9\n" +
			"-         127.0.0.1  17\n" +
			"worker-1  127.0.0.1  16  fn other\n"},
		{"jobs in handle order", func(w io.Writer) error {
			return WriteJobs(w, []JobInfo{{Handle: "H:h:10", Retries: 0, Ignored: false, Queued: true}, {Handle: "H:h:9", Retries: 2, Ignored: true, Queued: false}, {Handle: "H:g:11", Retries: 0, Ignored: false, Queued: false}})
		}, "" +
			"HANDLE  RETRIES  IGNORED  QUEUED\n" +
			"H:g:11  0        no       no\n" +
			"H:h:9   2        yes      no\n" +
			"H:h:10  0        no       yes\n"},
		{"unique", func(w io.Writer) error { return writeUnique(w, []string{"b", "a", "with space"}) },
			"a\nb\nwith space\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			if err := tc.write(&b); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Errorf("got\n%s\nwant\n%s", b.String(), tc.want)
			}
		})
	}
}

func TestWrite_DoesNotReorderCallersSlice(t *testing.T) {
	s := []FunctionStatus{{Name: "b"}, {Name: "a"}}
	WriteStatus(io.Discard, s)
	ws := []WorkerInfo{{ID: "b", Functions: []string{"y", "x"}}, {ID: "a"}}
	WriteWorkers(io.Discard, ws)
	if s[0].Name != "b" || ws[0].ID != "b" || ws[0].Functions[0] != "y" {
		t.Errorf("caller's slices were reordered: %v %v", s, ws)
	}
}

func TestWriteJSON(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    any
		want string
	}{
		{"nil slice is []", []FunctionStatus(nil), "[]\n"},
		{"status", []FunctionStatus{{Name: "fn", Total: 3, Running: 1, Workers: 2}},
			"[\n  {\n    \"function\": \"fn\",\n    \"total\": 3,\n    \"running\": 1,\n    \"available_workers\": 2\n  }\n]\n"},
		{"worker without functions", []WorkerInfo{{FD: "1", IP: "::1", ID: "-"}},
			"[\n  {\n    \"fd\": \"1\",\n    \"ip\": \"::1\",\n    \"client_id\": \"-\",\n    \"functions\": []\n  }\n]\n"},
		{"no HTML escaping", []string{"<a&b>"}, "[\n  \"<a&b>\"\n]\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			if err := WriteJSON(&b, tc.v); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Errorf("got %q, want %q", b.String(), tc.want)
			}
		})
	}
}

func TestCompareNatural(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"H:h:9", "H:h:10", -1},
		{"H:h:10", "H:h:10", 0},
		{"H:g:10", "H:h:9", -1},
		{"9", "10", -1},
		{"x", "H:h:1", 1},
		{"H:h:01", "H:h:1", -1}, // equal numbers fall back to bytes, so the order is total
	} {
		if got := compareNatural(tc.a, tc.b); got != tc.want {
			t.Errorf("compareNatural(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := compareNatural(tc.b, tc.a); got != -tc.want {
			t.Errorf("compareNatural(%q, %q) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
}

// FuzzParseReply feeds arbitrary server output to the reply reader and every parser. None may panic,
// and whatever a parser accepts must survive being written back in the server's format and parsed
// again.
func FuzzParseReply(f *testing.F) {
	for _, seed := range []string{
		".\n", "fn\t3\t1\t1\nother\t0\t0\t1\n.\n", "a\t1\t0\t0\r\nb\t2\t1\t1\n.\r\n",
		"prefix_a\techo_sleep\t1\t0\t0\n.\n", "\t0\t0\t0\n.\n", "fn\t0\t1\t1\t1\n.\n",
		"17 127.0.0.1 - :\n16 127.0.0.1 worker-1 : other fn\n.\n", "5 127.0.0.1 - : \n.\n",
		"H:vm:1\t0\t0\t1\nH:vm:2\t3\t1\t0\n.\n", "\nu1\nu2\n.\n", "OK 1.1.20+ds\n", "v1.130.1\n",
		"OK 14119\n", "OK\r\n", "ERR UNKNOWN_JOB\r\n", "ERR function not found\r\n",
		"ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments\r\n", "ERR x\t1\t0\t0\n.\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, kind := range []replyKind{oneLine, list, tabular} {
			lines, err := readReply(bufio.NewReaderSize(bytes.NewReader(data), 16), kind)
			var se *ServerError
			if errors.As(err, &se) {
				_ = se.Error()
			}
			if err != nil {
				continue
			}
			if kind == oneLine {
				parseOK(lines[0])
				parseValue(lines[0])
				parsePID(lines[0])
				continue
			}
			parseUnique(lines)
			if s, err := parseStatus(lines); err == nil {
				again, err := parseStatus(statusLines(s))
				if err != nil || !reflect.DeepEqual(again, s) {
					t.Fatalf("status %q: reparsed %v %v", lines, again, err)
				}
				WriteStatus(io.Discard, s)
			}
			if p, err := parsePriorityStatus(lines); err == nil {
				WritePriorityStatus(io.Discard, p)
			}
			if ws, err := parseWorkers(lines); err == nil {
				again, err := parseWorkers(workerLines(ws))
				if err != nil || !reflect.DeepEqual(again, ws) {
					t.Fatalf("workers %q: reparsed %#v %v, want %#v", lines, again, err, ws)
				}
				WriteWorkers(io.Discard, ws)
			}
			if js, err := parseJobs(lines); err == nil {
				WriteJobs(io.Discard, js)
			}
		}
	})
}

func statusLines(s []FunctionStatus) []string {
	var out []string
	for _, f := range s {
		out = append(out, f.Name+"\t"+strconv.Itoa(f.Total)+"\t"+strconv.Itoa(f.Running)+"\t"+strconv.Itoa(f.Workers))
	}
	return out
}

func workerLines(ws []WorkerInfo) []string {
	var out []string
	for _, w := range ws {
		out = append(out, w.FD+" "+w.IP+" "+w.ID+" : "+strings.Join(w.Functions, " "))
	}
	return out
}

func BenchmarkParseStatus(b *testing.B) {
	var reply strings.Builder
	for i := range 1000 {
		reply.WriteString("function_" + strconv.Itoa(i) + "\t10\t2\t5\n")
	}
	reply.WriteString(".\n")
	data := reply.String()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		lines, err := readReply(bufio.NewReader(strings.NewReader(data)), tabular)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := parseStatus(lines); err != nil {
			b.Fatal(err)
		}
	}
}
